"""Threads, one after the other so that the step order is deterministic."""
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
print(sorted(results.items()))
