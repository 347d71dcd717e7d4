"""Slow program for the pause and resume tests: ticks in a shallow phase,
then three calls deep, so a resume sees a deeper stack than a stop.

    python3 _slow_stack.py N
"""
import sys
import time


def tick(n):
    msg = "tick %d" % n
    print(msg, flush=True)
    time.sleep(0.02)


def descend(depth, n, start):
    if depth > 1:
        return descend(depth - 1, n, start)
    for k in range(start, n):
        tick(k)
    return n


def main(n):
    phase = "shallow"
    i = 0
    while i < n // 4:
        tick(i)
        i += 1
    phase = "deep"
    print(phase, flush=True)
    i = descend(3, n, i)
    return i


main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
