"""Prints a few lines slowly, so `ctrecctl follow` can be watched while the
program runs:

    python3 _follow_ticker.py COUNT DELAY
"""
import sys
import time


def work(i, label):
    value = i * 3
    print(f"{label} {i} -> {value}", flush=True)
    return value


count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.3
total = 0
for i in range(count):
    total += work(i, "tick")
    time.sleep(delay)
print(f"done {total}", flush=True)
