import os
import sys


def child_work(n):
    return n * 2


print("parent start")
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    print("child", child_work(21))
    sys.stdout.flush()
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("parent done", os.waitstatus_to_exitcode(status))
