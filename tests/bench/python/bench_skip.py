"""A program that spends nearly all its time in skipped code, for
tests/bench/python_bench.sh: main calls skip_hot.loop(N) (N calls of a
function with three locals), which a skip-tree rule on skip_hot.py leaves
out of the trace. Prints the loop's own time on stderr.

    python3 bench_skip.py N"""
import sys
import time

import skip_hot


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    start = time.perf_counter()
    total = skip_hot.loop(n)
    elapsed = time.perf_counter() - start
    print(total)
    sys.stderr.write("loop_seconds %.6f\n" % elapsed)


main()
