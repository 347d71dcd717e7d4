#!/usr/bin/env python3
"""Issue 12's figures: CTFS (trace.ct) against JSON (trace.json).

For each row the same program is recorded twice, once per format, through
a private ctrecd started with built-in defaults and `output.format` set
(`--set`), so that the daemon's CPU time is its own:

  feed          ctr_feed's Python-shaped stream (tests/bench/daemon/feed.c),
                N iterations (call-heavy, every value flat)
  ruby-calls    tests/bench/ruby/calls.rb, N calls of a method with 3 locals
  python-calls  tests/bench/python/bench_calls.py, N calls, on python3
  rexml         REXML parses, queries and writes inputs/catalog.xml 5 times
                (object-heavy; realworld/setup.sh lays the library out)
  markdown      Python-Markdown renders inputs/doc.md 3 times, python3

and prints, per format: messages the daemon received, steps recorded, the
daemon's CPU seconds (summed over its threads from schedstat once the trace
is complete) and nanoseconds per message, the trace folder's bytes and
bytes per recorded line (step); then JSON bytes / CTFS bytes and CTFS CPU /
JSON CPU. Targets (issue 12): CTFS at least 10x smaller, CPU per message no
higher. --repeat K records each row K times per format, alternating
formats, and keeps each format's run with the least CPU (the machine's
load moves single runs by a third).

Row `follow` measures the latency from a program's output to a follower
showing it: a Python program prints a line holding the time every 100 ms
(30 lines) under `ctrecctl record --format F`, and `ctrecctl follow` tails
the trace folder; each line's latency is the time the follower printed it
minus the time in it (one clock, one machine). Printed: median, 90th
percentile and maximum in milliseconds. `--follower 'CMD ARGS'` follows
with another command instead (`{dir}` is the trace folder, `{ct}` its
trace.ct; CTFS only), e.g. CodeTracer's `ct-print --follow {ct}` by hand.

Usage: tests/bench/ctfs_vs_json.py [--n N] [--repeat K] [--follower CMD] [BUILD_DIR [ROW...]]
(BUILD_DIR defaults to build; no ROW: all rows). Figures, not a pass/fail
test: it fails only when a trace is not complete. Traces go under $TMPDIR
and are deleted after each row (the JSON ones reach 700 MB)."""
import argparse
import glob
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
INPUTS = os.path.join(HERE, "realworld", "inputs")

TICKER = """import sys, time
time.sleep(float(sys.argv[2]))  # the follower attaches meanwhile
for i in range(int(sys.argv[1])):
    print("tick", time.time_ns(), flush=True)
    time.sleep(0.1)
"""


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            sys.exit(f"ctfs_vs_json: {what}")
        time.sleep(0.01)


def metadata(out):
    metas = []
    for path in glob.glob(os.path.join(out, "*", "trace_metadata.json")):
        try:
            with open(path) as f:
                metas.append(json.load(f))
        except (OSError, ValueError):
            return None  # being rewritten
    return metas


def complete(out):
    metas = metadata(out)
    return bool(metas) and all(m.get("ctrec", {}).get("state") == "complete" for m in metas)


def cpu_seconds(pid):
    total = 0
    for stat in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        with open(stat) as f:
            total += int(f.read().split()[0])
    return total / 1e9


def folder_bytes(out):
    return sum(os.path.getsize(os.path.join(d, f))
               for d, _, files in os.walk(out) for f in files)


def traced(build, fmt, work, client):
    """Runs client(socket) against a private ctrecd writing fmt; returns
    (messages, steps, cpu seconds, bytes)."""
    sock, out = os.path.join(work, "ctrecd.sock"), os.path.join(work, "traces")
    daemon = subprocess.Popen(
        [os.path.join(build, "bin", "ctrecd"), "--listen", sock, "--output", out,
         "--set", f"output.format={fmt}", "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(sock), 10, "ctrecd did not start")
        client(sock)
        wait_for(lambda: complete(out), 600, "a trace is not complete")
        cpu = cpu_seconds(daemon.pid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait()
    metas = metadata(out)
    messages = sum(m["ctrec"]["counters"]["received"] for m in metas)
    steps = sum(m["ctrec"]["counters"]["steps"] for m in metas)
    size = folder_bytes(out)
    shutil.rmtree(out)
    return messages, steps, cpu, size


def program(build, cmd):
    def client(sock):
        env = dict(os.environ, CT_RECORDER_SOCKET=sock)
        res = subprocess.run([os.path.join(build, "bin", "ctrecctl"), "record", "-q", "--",
                              *cmd], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        if res.returncode != 0:
            sys.exit(f"ctfs_vs_json: {cmd} failed")
    return client


def feed(build, n):
    def client(sock):
        subprocess.run([os.path.join(build, "tests", "ctr_feed"), sock, str(n)],
                       stdout=subprocess.DEVNULL, check=True)
    return client


def row(build, label, client, work, repeat):
    got = {}
    for _ in range(repeat):  # interleaved, so that load changes hit both
        for fmt in ("json", "ctfs"):
            one = traced(build, fmt, work, client)
            if fmt not in got or one[2] < got[fmt][2]:
                got[fmt] = one
    for fmt in ("json", "ctfs"):
        msgs, steps, cpu, size = got[fmt]
        print(f"{label:<14} {fmt:<5} {msgs:>10} {steps:>9} {cpu:8.3f} {cpu / msgs * 1e9:7.0f}"
              f" {size:>12} {size / max(steps, 1):9.1f}", flush=True)
    (_, _, jcpu, jsize), (_, _, ccpu, csize) = got["json"], got["ctfs"]
    print(f"{label:<14} json/ctfs bytes {jsize / csize:.1f}x, ctfs/json cpu {ccpu / jcpu:.2f}",
          flush=True)


def latency(build, fmt, work, follower):
    src = os.path.join(work, "ticker.py")
    with open(src, "w") as f:
        f.write(TICKER)
    out = os.path.join(work, "follow-" + fmt)
    rec = subprocess.Popen([os.path.join(build, "bin", "ctrecctl"), "record", "-q",
                            "--format", fmt, "-o", out, "--", "python3", src, "30", "2"],
                           stdout=subprocess.DEVNULL)
    name = "trace.ct" if fmt == "ctfs" else "trace.json"
    wait_for(lambda: glob.glob(os.path.join(out, "*", name)), 10, "no trace folder")
    folder = os.path.dirname(glob.glob(os.path.join(out, "*", name))[0])
    cmd = ([os.path.join(build, "bin", "ctrecctl"), "follow", folder] if not follower else
           [a.format(dir=folder, ct=os.path.join(folder, "trace.ct"))
            for a in shlex.split(follower)])
    start = time.time_ns()
    fol = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lat = []

    def read():
        for line in fol.stdout:
            now = time.time_ns()
            m = re.search(r"tick (\d+)", line)
            if m and int(m.group(1)) > start:
                lat.append((now - int(m.group(1))) / 1e6)
    reader = threading.Thread(target=read)
    reader.start()
    rec.wait()
    deadline = time.time() + 15
    while len(lat) < 30 and time.time() < deadline:
        time.sleep(0.05)
    fol.terminate()
    fol.wait()
    reader.join()
    shutil.rmtree(out)
    if not lat:
        sys.exit(f"ctfs_vs_json: the follower of {fmt} showed no line")
    lat.sort()
    what = "ctrecctl follow" if not follower else shlex.split(follower)[0]
    print(f"follow {fmt:<5} {what:<16} {len(lat):>3} lines  median {statistics.median(lat):6.0f}"
          f" ms  p90 {lat[int(0.9 * (len(lat) - 1))]:6.0f} ms  max {lat[-1]:6.0f} ms", flush=True)


def main():
    ap = argparse.ArgumentParser(usage=__doc__.split("Usage: ")[1].split("\n")[0])
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--follower")
    ap.add_argument("build", nargs="?", default=os.path.join(SOURCE, "build"))
    ap.add_argument("rows", nargs="*")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    rows = set(a.rows) or {"feed", "ruby-calls", "python-calls", "rexml", "markdown", "follow"}
    work = tempfile.mkdtemp(prefix="ctrec-ctfs-vs-json-")
    try:
        print(f"ctfs_vs_json, {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        print(f"{'row':<14} {'fmt':<5} {'messages':>10} {'steps':>9} {'cpu s':>8} {'ns/msg':>7}"
              f" {'trace B':>12} {'B/step':>9}")
        if "feed" in rows:
            row(build, "feed", feed(build, a.n), work, a.repeat)
        if "ruby-calls" in rows:
            row(build, "ruby-calls",
                program(build, ["ruby", os.path.join(HERE, "ruby", "calls.rb"), str(a.n)]),
                work, a.repeat)
        if "python-calls" in rows:
            row(build, "python-calls",
                program(build, ["python3", os.path.join(HERE, "python", "bench_calls.py"),
                                str(a.n)]), work, a.repeat)
        if rows & {"rexml", "markdown"}:
            subprocess.run(["sh", "-c", '. "$1/setup.sh"; realworld_packages; '
                            'realworld_programs "$1" "$2"', "sh",
                            os.path.join(HERE, "realworld"), work], check=True)
        if "rexml" in rows:
            row(build, "rexml", program(build, ["ruby", os.path.join(work, "rb", "rexml_drv.rb"),
                                                os.path.join(INPUTS, "catalog.xml"), "5"]),
                work, a.repeat)
        if "markdown" in rows:
            v = subprocess.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True).stdout.strip()
            row(build, "markdown/" + v,
                program(build, ["python3", os.path.join(work, "py", "markdown_drv.py"),
                                os.path.join(INPUTS, "doc.md"), "3"]), work, a.repeat)
        if "follow" in rows:
            for fmt in (("ctfs",) if a.follower else ("json", "ctfs")):
                latency(build, fmt, work, a.follower)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
