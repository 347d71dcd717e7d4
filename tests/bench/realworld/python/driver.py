"""Shared by the Python drivers: imports a library from the copy beside
this file (run.sh puts it there), refusing an installed one, whose code the
built-in filter rules would leave out, then renders sys.argv[1]'s text
sys.argv[2] times and prints the last output's size and a digest of all."""
import hashlib
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name):
    module = importlib.import_module(name)
    if not module.__file__.startswith(HERE + os.sep):
        sys.exit(f"{sys.argv[0]}: {name} comes from {module.__file__}, not a copy in {HERE}")
    return module


def run(render):
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    digest = hashlib.sha256()
    for i in range(int(sys.argv[2])):
        out = render(text, i)
        digest.update(out.encode())
    print(len(out), digest.hexdigest()[:16])
