"""Killed by SIGTERM from outside (a shell it starts) while it runs lines,
as a service manager stops a program in the middle of its work."""
import os
import subprocess
import sys
import time


def step(n):
    return n + 1


print("working")
sys.stdout.flush()
subprocess.Popen(["sh", "-c", f"sleep 0.3; kill -TERM {os.getpid()}"])
n = 0
end = time.time() + 60
while time.time() < end:
    n = step(n)
print("not killed")
sys.exit(1)
