def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def walk(tree, depth=0):
    name, children = tree
    lines = ["  " * depth + name]
    for child in children:
        lines.extend(walk(child, depth + 1))
    return lines


print(fact(6))
print(fib(7))
print("\n".join(walk(("root", [("a", [("a1", [])]), ("b", [])]))))
