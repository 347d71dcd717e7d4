"""Helper module of pushdown_app.py: code that filter rules skip by file.
It calls back into the program, raises and catches, prints, runs code
compiled from a string and drives a generator."""


def each_twice(fn, n):
    total = 0
    for i in range(n):
        total += fn(i) + fn(i)
    return total


def fmt(xs):
    parts = [str(x) for x in xs]
    return ",".join(parts)


def noisy():
    try:
        int("x")
    except ValueError as e:
        print("caught", type(e).__name__)
    return eval("len('abc')")


def squares(fn, n):
    for i in range(n):
        yield fn(i)


def deep(fn, n):
    if n == 0:
        return fn(7)
    return deep(fn, n - 1) + 1
