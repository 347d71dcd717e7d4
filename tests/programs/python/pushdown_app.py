"""Filters and push-down (tests/integration/test_python_pushdown.py): a
helper module to skip by file, methods and functions to skip by qualname,
callbacks from skipped code, exceptions and output in skipped code, code
compiled from strings, a generator and values to redact."""
import _pd_helpers as helpers


class Store:
    def __init__(self, password):
        self.password = password

    def save(self, item):
        checked = self.check(item)
        return checked + " saved"

    def check(self, item):
        secret = item[::-1]
        return secret


def visit(x):
    doubled = x * 2
    return doubled


def login(user, password):
    token = user + ":" + "*" * len(password)
    return token


def risky(n):
    try:
        raise ValueError("bad %d" % n)
    except ValueError:
        return -n


def main():
    total = helpers.each_twice(visit, 3)
    print("total", total)
    store = Store("pw1")
    print(store.save("abc"))
    print(login("bob", "hunter2"))
    print(helpers.fmt([1, 2, 3]))
    print(risky(4))
    print(helpers.noisy())
    print(eval(compile("visit(5)", "<pd>", "eval")))
    print(sum(helpers.squares(visit, 3)))
    print(helpers.deep(visit, 3))
    return total


main()
