"""The hot loop of bench_skip.py, in a module of its own so that a
skip-tree rule on this file leaves it out of the trace."""


def work(a):
    b = a + 1
    c = b * 2
    return a + b + c


def loop(n):
    total = 0
    for i in range(n):
        total += work(i)
    return total
