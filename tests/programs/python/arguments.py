"""Arguments of every kind: positional-only, positional, defaults, *args,
keyword-only, **kwargs."""


def everything(p, /, q, r=3, *args, k, m=7, **kwargs):
    total = p + q + r + k + m
    total += sum(args)
    for key in sorted(kwargs):
        total += kwargs[key]
    return total


def only_star(*args, **kwargs):
    return len(args), len(kwargs)


def defaults(a, b="two", c=None):
    return f"{a}-{b}-{c}"


print(everything(1, 2, k=4))
print(everything(1, 2, 5, 30, 40, k=50, m=5, x=60, y=1))
print(only_star())
print(only_star(1, 2, z=3))
print(defaults(1))
print(defaults(1, c=[1, 2]))
print(defaults(*[1, 2], **{"c": 3}))
f = lambda x, y=2: x * y
print(f(21))
