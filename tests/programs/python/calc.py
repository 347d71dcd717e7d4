def foo():
    x = 1
    x += 1
    return x

foo()
