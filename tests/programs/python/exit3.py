import sys


def leave(code):
    print("leaving with", code)
    sys.exit(code)


print("before")
sys.stderr.write("warn\n")
leave(3)
print("never")
