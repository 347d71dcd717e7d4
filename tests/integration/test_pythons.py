"""The build makes a Python shim for every CPython 3.12+ of the machine:
each python3.N on PATH and each of pyenv's versions ($PYENV_ROOT, else
~/.pyenv) that has its headers, and lists them for the Python suites
(harness.extra_pythons)."""
import glob
import os
import re
import subprocess
import unittest

from harness import BUILD

PY_SHIM = os.path.join(BUILD, "lib", "ctrec", "python", "ctrec")
PROBE = ("import os, sys, sysconfig; print(sys.implementation.name, '%d.%d' % sys.version_info[:2],"
         " sysconfig.get_config_var('EXT_SUFFIX'),"
         " os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))")


def probe(exe):
    """(implementation, version, EXT_SUFFIX, has headers), or None when exe
    does not run (a pyenv shim for a version that is not selected)."""
    try:
        res = subprocess.run([exe, "-c", PROBE], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=30)
    except OSError:
        return None
    parts = res.stdout.decode().split()
    return parts if res.returncode == 0 and len(parts) == 4 else None


def machine_pythons():
    """{EXT_SUFFIX: path} of the CPython 3.12+ interpreters with headers."""
    cands = []
    for d in os.environ.get("PATH", "").split(":"):
        cands += [p for p in sorted(glob.glob(os.path.join(d, "python3.*")))
                  if re.search(r"/python3\.\d+$", p)]
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    cands += sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python3")))
    found = {}
    for exe in cands:
        info = probe(exe)
        if info and info[0] == "cpython" and info[3] == "True" and \
                tuple(map(int, info[1].split("."))) >= (3, 12):
            found.setdefault(info[2], exe)
    return found


class Interpreters(unittest.TestCase):
    def test_every_cpython_312_has_a_shim(self):
        for suffix, exe in machine_pythons().items():
            self.assertTrue(os.path.exists(os.path.join(PY_SHIM, "_ctrec" + suffix)),
                            f"no shim for {exe}")

    def test_python3_has_a_shim(self):
        info = probe("python3")
        self.assertTrue(os.path.exists(os.path.join(PY_SHIM, "_ctrec" + info[2])))

    def test_the_build_lists_each_for_the_suites(self):
        # harness.extra_pythons() reads this list unless CTREC_TEST_PYTHONS
        # names others.
        with open(os.path.join(BUILD, "ctrec-python-extra.txt")) as f:
            listed = {probe(exe)[2] for exe in f.read().split()}
        self.assertEqual(listed, set(machine_pythons()) - {probe("python3")[2]})


if __name__ == "__main__":
    unittest.main()
