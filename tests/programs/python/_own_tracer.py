"""A program with a trace function of its own for a while (sys.settrace):
it sees what it would see without the recorder, and the recorder takes
the thread back once the program removes it."""
import sys

seen = []


def tracer(frame, event, arg):
    if event == "call":
        seen.append(frame.f_code.co_name)
    return None


def traced(n):
    return n * 2


def after(n):
    return n + 1


def main():
    sys.settrace(tracer)
    traced(1)
    sys.settrace(None)
    print(seen)
    print(after(2))


main()
