"""Exceptions: raise, catch, re-raise, finally, chained, custom classes,
exceptions through the standard library, and a __str__ that must never be
called by the recorder."""


class AppError(Exception):
    pass


class Loud(Exception):
    def __str__(self):
        raise RuntimeError("__str__ must not be called by the recorder")


def divide(a, b):
    return a / b


def checked(x):
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x


def wrapped():
    try:
        divide(1, 0)
    except ZeroDivisionError as e:
        raise AppError("wrapped failure") from e


def with_finally(x):
    try:
        return checked(x)
    finally:
        print("finally", x)


try:
    checked(-1)
except ValueError as e:
    print("caught", e)

try:
    wrapped()
except AppError as e:
    print("caught", e, "from", type(e.__cause__).__name__)

print(with_finally(3))
try:
    with_finally(-2)
except ValueError:
    print("propagated")

try:
    int("not a number")
except ValueError as e:
    print("int failed")

try:
    raise Loud()
except Loud:
    print("loud caught")

try:
    {}["missing"]
except KeyError as e:
    print("key", e)
