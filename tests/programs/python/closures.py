"""Closures, nonlocal, decorators, lambdas and nested functions."""
import functools


def counter(start):
    count = start

    def inc(step=1):
        nonlocal count
        count += step
        return count

    return inc


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        result = fn(*args, **kwargs)
        print(f"{fn.__name__}{args} -> {result}")
        return result

    return wrapper


@logged
def add(a, b):
    return a + b


def make_adders(n):
    return [lambda x, i=i: x + i for i in range(n)]


c = counter(10)
c()
c(5)
print(c())
add(2, 3)
adders = make_adders(3)
print([f(10) for f in adders])
squares = list(map(lambda x: x * x, [1, 2, 3]))
print(sorted(squares, key=lambda s: -s))
