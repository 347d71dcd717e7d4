"""Another thread mutates a list the main thread shows at every step. The
two threads hand over strictly: each releases the other and blocks on one
line, so both tracers see the same state at each step."""
import _thread
import threading


def worker(shared, go, done):
    shared.append(0)
    done.release(); go.acquire()  # noqa: E702 (one line: a strict handover)
    shared[0] = {"round": 1, "text": "long enough to be sent once and referred to " * 2}
    shared.append([shared[0]])
    done.release(); go.acquire()  # noqa: E702
    del shared[1]
    done.release()


def main():
    shared = [None]
    go = _thread.allocate_lock()
    done = _thread.allocate_lock()
    go.acquire()
    done.acquire()
    threading.Thread(target=worker, args=(shared, go, done)).start(); done.acquire()  # noqa
    middle = list(shared)
    go.release(); done.acquire()  # noqa: E702
    shared.append("main")
    go.release(); done.acquire()  # noqa: E702
    after = len(shared)
    return middle, after


print(main())
