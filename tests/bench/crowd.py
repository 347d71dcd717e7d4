#!/usr/bin/env python3
"""Issue 13's crowd figures: programs recorded out of N started at once.

Starts a service ctrecd (built-in defaults, a private folder under $TMPDIR),
then N interpreters at the same moment, half Ruby and half Python, each
printing three lines through a recorded function, over the socket or
(--fifo) over the named-pipe transport. Prints: how many exited with their
own output, how many traces are complete and hold that output, the slowest
program's wall time against the slowest untraced one, the daemon's peak RSS,
and the `ctrecctl status` line counting clients that gave up or were
refused (none is printed while both are 0).

Usage: tests/bench/crowd.py [--fifo] [BUILD_DIR [N...]] (BUILD_DIR defaults
to build, N to 100 and 300). Figures, not a pass/fail test: it fails only
when a program's own output or exit status differs from its untraced run."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

RUBY = "def f(i) = i * 2\n3.times { |i| puts f(i) }\n"
PY = "def f(i):\n    return i * 2\nfor i in range(3):\n    print(f(i))\n"
OUT = b"0\n2\n4\n"


def start_all(cmds, env):
    t0 = time.monotonic()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for c in cmds]
    worst = 0.0
    for p in procs:
        out, err = p.communicate(timeout=600)
        worst = max(worst, time.monotonic() - t0)
        if p.returncode != 0 or out != OUT:
            sys.exit(f"a program changed: status {p.returncode}, out {out!r}, err {err!r}")
    return procs, worst


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fifo", action="store_true")
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("n", nargs="*", type=int, default=[100, 300])
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    for n in a.n:
        tmp = tempfile.mkdtemp(prefix="ctrec-crowd-")
        try:
            ruby = os.path.join(tmp, "c.rb")
            py = os.path.join(tmp, "c.py")
            with open(ruby, "w") as f:
                f.write(RUBY)
            with open(py, "w") as f:
                f.write(PY)
            sock = os.path.join(tmp, "run", "s.sock")
            out = os.path.join(tmp, "out")
            fifos = os.path.join(tmp, "fifos")
            cmds = [["ruby", ruby] if i % 2 else ["python3", py] for i in range(n)]
            _, untraced = start_all(cmds, dict(os.environ))
            d = subprocess.Popen([os.path.join(build, "bin", "ctrecd"), "--listen", sock,
                                  "--output", out, "--log-level", "warn",
                                  "--set", f"listen.fifo_dir={fifos}"],
                                 stderr=open(os.path.join(tmp, "ctrecd.log"), "w"))
            while not os.path.exists(sock):
                time.sleep(0.05)
            env = dict(os.environ, CT_RECORDER_SOCKET=("fifo:" + fifos) if a.fifo else sock,
                       RUBYLIB=os.path.join(build, "lib", "ctrec", "ruby"), RUBYOPT="-rctrec",
                       PYTHONPATH=os.path.join(build, "lib", "ctrec", "python"))
            _, traced = start_all(cmds, env)
            deadline = time.time() + 120
            complete = 0
            while time.time() < deadline:
                complete = 0
                for t in os.listdir(out) if os.path.isdir(out) else []:
                    try:
                        with open(os.path.join(out, t, "trace_metadata.json")) as f:
                            complete += json.load(f)["ctrec"]["state"] == "complete"
                    except (OSError, ValueError, KeyError):
                        pass
                if complete >= n:
                    break
                time.sleep(0.2)
            status = subprocess.run([os.path.join(build, "bin", "ctrecctl"), "status", "-s", sock],
                                    capture_output=True, text=True).stdout.splitlines()
            peak = rss_kib(d.pid)
            d.terminate()
            d.wait()
            print(f"N={n} ({'fifo' if a.fifo else 'socket'}): {n}/{n} exited as untraced, "
                  f"{complete}/{n} traces complete; slowest program {traced:.2f} s "
                  f"(untraced {untraced:.2f} s); ctrecd peak RSS {peak // 1024} MiB; "
                  f"{status[-1] if status and status[-1].startswith('since') else 'nobody gave up'}")
        finally:
            if os.environ.get("KEEP"):
                print(tmp)
            else:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
