def f(x):
    raise ArgumentError_like(f"bad {x}")


class ArgumentError_like(ValueError):
    pass


print("start")
f(1)
