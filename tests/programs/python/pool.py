"""A multiprocessing pool (start method from argv) whose workers the pool
ends with SIGTERM when its `with` block closes."""
import multiprocessing
import sys


def square(x):
    return x * x


if __name__ == "__main__":
    ctx = multiprocessing.get_context(sys.argv[1])
    with ctx.Pool(2) as pool:
        print(pool.map(square, range(8), chunksize=1))
