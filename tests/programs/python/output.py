"""Program output: print, sys.stdout/sys.stderr.write, print to stderr,
os.write to fds 1 and 2, non-ASCII text, bytes written to the streams'
buffers between flushed text (each flush passes text already recorded on
to the buffer, which must not be recorded twice)."""
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
sys.stdout.flush()
sys.stdout.buffer.write(b"buffer write\n")
sys.stdout.buffer.write("bytes \u00e9\n".encode())
sys.stdout.buffer.flush()
print("flushed print", flush=True)
sys.stderr.buffer.write(b"stderr buffer\n")
sys.stderr.flush()
print("last")
