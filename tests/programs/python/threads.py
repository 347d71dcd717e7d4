"""Threads, one after the other so that the step order is deterministic:
threading.Thread and a bare _thread.start_new_thread."""
import _thread
import threading

results = {}


def work(name, n):
    total = 0
    for i in range(n):
        total += i
    results[name] = total


for k in range(3):
    t = threading.Thread(target=work, args=(f"t{k}", k + 2))
    t.start()
    t.join()

done = _thread.allocate_lock()
done.acquire()


def raw_work(n):
    work("raw", n)
    done.release()


_thread.start_new_thread(raw_work, (4,))
done.acquire()
print(sorted(results.items()))
