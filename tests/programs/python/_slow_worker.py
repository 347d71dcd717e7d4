"""Slow program for the resume test: the work runs in a thread while the
main thread waits in join(), and nothing is printed while it works, so only
the shim's own watcher can notice a resume.

    python3 _slow_worker.py N
"""
import sys
import threading
import time


def step(k):
    time.sleep(0.02)
    return k + 1


def worker(n):
    print("started", flush=True)
    k = 0
    while k < n:
        k = step(k)


t = threading.Thread(target=worker, args=(int(sys.argv[1]),))
t.start()
t.join()
print("done", flush=True)
