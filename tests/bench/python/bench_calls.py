"""Call-heavy loop for tests/bench/python_bench.sh: N calls of a function
with three locals. Prints the loop's own time in seconds on stderr, so that
interpreter start-up and recorder connection are not counted.

    python3 bench_calls.py N [--empty-trace]

--empty-trace installs the empty hook (from the ctrec extension) around
the loop: on 3.11 a C trace function that does nothing, on 3.12+ a
sys.monitoring tool with do-nothing C callbacks for the recorder's events;
CPython's own cost of the hooks."""
import sys
import time


def work(a):
    b = a + 1
    c = b * 2
    return a + b + c


def loop(n):
    total = 0
    for i in range(n):
        total += work(i)
    return total


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    empty = "--empty-trace" in sys.argv
    if empty:
        from ctrec import _ctrec
        _ctrec._empty_trace(True)
    start = time.perf_counter()
    total = loop(n)
    elapsed = time.perf_counter() - start
    if empty:
        _ctrec._empty_trace(False)
    print(total)
    sys.stderr.write("loop_seconds %.6f\n" % elapsed)


main()
