"""Program output: print, sys.stdout/sys.stderr.write, print to stderr,
os.write to fds 1 and 2, non-ASCII text."""
import os
import sys

print("hello", "world", sep=", ")
sys.stdout.write("no newline")
sys.stdout.write("\n")
print("to stderr", file=sys.stderr)
sys.stderr.write("err write\n")
print("unicode: héllo ✓")
sys.stdout.flush()
sys.stderr.flush()
os.write(1, b"raw fd 1\n")
os.write(2, b"raw fd 2\n")
print("after", end="!\n")
sys.stdout.writelines(["a\n", "b\n"])
