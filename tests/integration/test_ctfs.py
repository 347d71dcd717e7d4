"""output.format: ctfs: real ruby and python3 programs recorded by a real
ctrecd into trace.ct hold what the JSON trace of the same program holds
(read back with the project's own reader, ctrecctl follow/check), while
recording too, and after the client or the daemon was killed."""
import json
import os
import re
import signal
import subprocess
import time
import unittest

from harness import (CTRECCTL, PY_SHIM, RUBY_PROGRAMS, Daemon, TempDirTest, metadata, record,
                     run, trace_folders)
from test_check import each_python, mirror
from test_follow import Lines

PROG_PY = """import sys, threading

class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def norm(self):
        return abs(self.x) + abs(self.y)

def add(a, b):
    c = a + b
    return c

def fail(n):
    raise ValueError("bad %d" % n)

def worker(k):
    w = add(k, 1)
    return w

p = Point(3, -4)
total = 0
for i in range(40):
    total = add(total, i) + p.norm()
    if i < 3:
        print("line", i)
try:
    fail(7)
except ValueError as e:
    msg = str(e)
sys.stderr.write("to stderr\\n")
t = threading.Thread(target=worker, args=(5,))
t.start()
t.join()
d = {"k": [1.5, "x\\n", None, True], "big": 2 ** 80, "p": p}
print(total)
"""

PROG_RB = """class Point
  def initialize(x, y)
    @x = x
    @y = y
  end

  def norm
    @x.abs + @y.abs
  end
end

def add(a, b)
  c = a + b
  c
end

def fail(n)
  raise ArgumentError, "bad #{n}"
end

p = Point.new(3, -4)
total = 0
40.times do |i|
  total = add(total, i) + p.norm
  puts "line #{i}" if i < 3
end
begin
  fail(7)
rescue ArgumentError => e
  msg = e.message
end
$stderr.puts "to stderr"
t = Thread.new { add(5, 1) }
t.join
d = {"k" => [1.5, "x", nil, true], "big" => 2**80, "p" => p}
puts total
"""

# Prints a tick, then waits for its go file before the next one.
STEPPER_PY = """import os, sys, time
go = sys.argv[1]
for i in range(1000):
    print("tick", i, flush=True)
    while i >= 2 and not os.path.exists(go):
        time.sleep(0.02)
"""

# Nested calls returned, then a call chain left open while the program
# waits for its go file (argv[1]).
NESTED_PY = """import os, sys, time
go = sys.argv[1]

def leaf(n):
    return n * 2

def middle(k):
    total = 0
    for j in range(3):
        total += leaf(j + k)
    return total

def wait_here(depth, x):
    if depth > 0:
        return wait_here(depth - 1, x + 1)
    print("waiting", flush=True)
    while not os.path.exists(go):
        time.sleep(0.02)
    return x

for i in range(5):
    middle(i)
r = wait_here(3, 10)
print("done", r)
"""

NESTED_RB = """GO = ARGV[0]

def leaf(n)
  n * 2
end

def middle(k)
  total = 0
  3.times { |j| total += leaf(j + k) }
  total
end

def wait_here(depth, x)
  return wait_here(depth - 1, x + 1) if depth > 0
  puts "waiting"
  $stdout.flush
  sleep 0.02 until File.exist?(GO)
  x
end

5.times { |i| middle(i) }
r = wait_here(3, 10)
puts "done #{r}"
"""

# Calls (nested, recursive, many to one step's caller) across many of
# the reader's windows of 4096 records; argv[1] rounds.
WIDE_PY = """import sys
def leaf(n):
    return n + 1

def mid(k):
    t = 0
    for j in range(3):
        t += leaf(j)
    return t

def rec(d):
    if d == 0:
        return 0
    return rec(d - 1) + 1

for i in range(int(sys.argv[1])):
    mid(i)
    if i % 1000 == 0:
        rec(60)
        print("round", i)
"""

END = re.compile(r"== interval 1 (\S+)[^\n]*==\n$")


def listing(test, folder, *opts):
    res = run([CTRECCTL, "follow", *opts, folder], timeout=60)
    test.assertEqual((res.returncode, res.stderr.decode()), (0, ""))
    return res.stdout.decode().split("\n", 1)[1]  # the first line names the folder


def without_names(text):
    """Point(x=3, y=-4) as Point(3, -4): field names are checked on their
    own (test_*_objects_show_field_names). Argument names go too (the
    caller checks them). Thread ids differ from run to run, and
    so does the shape of a Thread object's (truncated) line."""
    text = re.sub(r"(?<=[(,] )[@\w]+=|(?<=\()[@\w]+=", "", text)
    text = re.sub(r"\[thread \d+\]", "[thread N]", text)
    return "".join(line for line in text.splitlines(True) if "Thread(" not in line)


def meta_dat_id(folder):
    """The recording id in trace.ct's meta.dat (stored uncompressed after
    "CTMD", version, flags and its length)."""
    with open(os.path.join(folder, "trace.ct"), "rb") as f:
        data = f.read()
    at = data.find(b"CTMD")
    return data[at + 9:at + 9 + 36].decode() if at >= 0 else None


def ctfs_folders(out_dir):
    return sorted(os.path.join(out_dir, d) for d in os.listdir(out_dir)
                  if os.path.isfile(os.path.join(out_dir, d, "trace.ct")))


class CtfsLikeJson(TempDirTest):
    """The same program recorded in both formats: the CTFS trace lists the
    same steps, calls with arguments, returns with values, variables,
    output, errors and threads."""

    def record_both(self, lang, python="python3"):
        src = os.path.join(self.tmp, "prog." + ("rb" if lang == "ruby" else "py"))
        with open(src, "w") as f:
            f.write(PROG_RB if lang == "ruby" else PROG_PY)
        cmd = ["ruby" if lang == "ruby" else python, src]
        tag = lang + re.sub(r"\W", "_", python)
        out = {}
        for fmt in ("json", "ctfs"):
            out[fmt] = os.path.join(self.tmp, fmt + "-" + tag)
            res = record(cmd, out[fmt], extra=("--format", fmt))
            self.assertEqual(res.returncode, 0, res.stderr)
        (folder,) = trace_folders(out["json"])
        (ctfs,) = ctfs_folders(out["ctfs"])
        return folder, ctfs

    def assert_same(self, lang, python="python3"):
        folder, ctfs = self.record_both(lang, python)
        self.assertFalse(os.path.exists(os.path.join(ctfs, "trace.json")))
        self.assertTrue(os.path.isdir(os.path.join(ctfs, "files")))
        with open(os.path.join(ctfs, "trace_paths.json")) as f:
            self.assertTrue(any(p.endswith("prog." + ("rb" if lang == "ruby" else "py"))
                                for p in json.load(f)))
        meta = metadata(ctfs)
        self.assertEqual(meta["ctrec"]["state"], "complete")
        self.assertRegex(meta["recording_id"], r"^[0-9a-f]{8}-[0-9a-f]{4}-7")
        self.assertEqual(meta_dat_id(ctfs), meta["recording_id"])
        self.assertEqual(meta["ctrec"]["counters"]["steps"],
                         metadata(folder)["ctrec"]["counters"]["steps"])
        res = run([CTRECCTL, "check", ctfs])
        self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())

        json_text, ctfs_text = listing(self, folder), listing(self, ctfs)
        self.assertRegex(ctfs_text, r"→ call add\((self=main, )?a=0, b=0\)")
        json_text, ctfs_text = without_names(json_text), without_names(ctfs_text)
        for want in ("→ call add(", "[stdout] line 2", "[stderr] to stderr", "bad 7"):
            self.assertIn(want, json_text)
        # CTFS closes at the end the calls the JSON trace leaves open (the
        # top-level one), without a value; everything else is the same.
        end = END.search(json_text).group(0)
        body = json_text[:-len(end)]
        self.assertEqual(ctfs_text[:len(body)], body)
        self.assertTrue(ctfs_text.endswith(end), ctfs_text[-300:])
        self.assertRegex(ctfs_text[len(body):-len(end)], r"^(← return\n)*$")

        def kinds(text):
            return [list(json.loads(line))[0] if line.startswith("{") else line
                    for line in text.splitlines()]
        names = ("Path", "Function", "Type", "VariableName")
        j = [k for k in kinds(listing(self, folder, "--json")) if k not in names]
        c = [k for k in kinds(listing(self, ctfs, "--json")) if k not in names]
        self.assertEqual(c[:len(j)], j)
        self.assertIn("ThreadSwitch", j)

    def test_ruby(self):
        self.assert_same("ruby")

    def test_python(self):
        each_python(self, lambda py: self.assert_same("python", py))

    def test_lines_past_99999_are_left_out_with_their_values(self):
        # CTFS places a step by path * 100000 + line: a step past line
        # 99,999 has no place. It is left out with its values (not shown
        # at the step before), counted as dropped, and the call whose
        # definition line it is still opens and returns in place.
        src = os.path.join(self.tmp, "far.py")
        with open(src, "w") as f:
            f.write("a = 5\nmarker = None\n" + "# filler\n" * 99998 +
                    "def far(x):\n    y = x * 2\n    return y\nb = far(a)\nprint(b)\n")
        out = os.path.join(self.tmp, "out")
        res = record(["python3", src], out, extra=("--format", "ctfs"))
        self.assertEqual((res.returncode, res.stdout.strip()), (0, b"10"), res.stderr)
        (ctfs,) = ctfs_folders(out)
        res = run([CTRECCTL, "check", ctfs])
        self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())
        counters = metadata(ctfs)["ctrec"]["counters"]
        self.assertEqual((counters["steps"], counters["dropped"]), (3, 6))
        text = listing(self, ctfs)
        self.assertIn("→ call far(x=5)", text)
        self.assertIn("← return 10", text)
        self.assertNotIn("y = 10", text)
        self.assertNotIn("y=10", text)

    def assert_field_names(self, lang, python="python3"):
        """Objects read back with their field names, as in the JSON trace:
        the CTFS Struct value carries them ("field_names"), and the reader
        declares the class's Struct type with them."""
        folder, ctfs = self.record_both(lang, python)
        want = "Point(@x=3, @y=-4)" if lang == "ruby" else "Point(x=3, y=-4)"
        json_text, ctfs_text = listing(self, folder), listing(self, ctfs)
        self.assertIn("p = " + want, json_text)
        self.assertIn("p = " + want, ctfs_text)
        self.assertEqual([l for l in ctfs_text.splitlines() if "Point(" in l],
                         [l for l in json_text.splitlines() if "Point(" in l])
        types = [json.loads(line)["Type"] for line in listing(self, ctfs, "--json").splitlines()
                 if line.startswith('{"Type"')]
        fields = [[f["name"] for f in t["specific_info"]["fields"]] for t in types
                  if t["lang_type"] == "Point" and "specific_info" in t]
        at = "@" if lang == "ruby" else ""
        self.assertIn([at + "x", at + "y"], fields)
        res = run([CTRECCTL, "check", ctfs])
        self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())

    def test_ruby_objects_show_field_names(self):
        self.assert_field_names("ruby")

    def test_python_objects_show_field_names(self):
        each_python(self, lambda py: self.assert_field_names("python", py))

    def test_format_option_is_checked(self):
        res = run([CTRECCTL, "record", "--format", "xml", "--", "true"])
        self.assertEqual(res.returncode, 2)
        self.assertIn("json or ctfs", res.stderr.decode())


def assert_same_lines(test, text, want):
    """assertEqual for long texts: the first line that differs."""
    for i, (a, b) in enumerate(zip(text.splitlines(), want.splitlines())):
        test.assertEqual(a, b, "line %d" % (i + 1))
    test.assertEqual(text.count("\n"), want.count("\n"))


class CtfsReadInWindows(TempDirTest):
    """ctrecctl reads a CTFS trace a window of records at a time: memory
    does not grow with the trace, and the windows cut nowhere."""

    def wide(self, rounds, fmt):
        src = os.path.join(self.tmp, "wide.py")
        with open(src, "w") as f:
            f.write(WIDE_PY)
        out = os.path.join(self.tmp, fmt + str(rounds))
        res = record(["python3", src, str(rounds)], out, extra=("--format", fmt))
        self.assertEqual(res.returncode, 0, res.stderr)
        (folder,) = ctfs_folders(out) if fmt == "ctfs" else trace_folders(out)
        return folder

    def test_check_memory_does_not_grow_with_the_trace(self):
        folder = self.wide(15000, "ctfs")  # 287,000 steps, 61,000 calls
        with open(os.path.join(self.tmp, "check.out"), "w+") as out:
            p = subprocess.Popen([CTRECCTL, "check", folder], stdout=out,
                                 stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            text = out.read()
        self.assertEqual(p.returncode, 0, text)
        self.assertGreater(int(re.search(r"(\d+) steps", text).group(1)), 250000)
        # Every record of the trace at once took 600 MB.
        self.assertLess(usage.ru_maxrss, 48 * 1024, text)

    def test_windows_cut_nowhere(self):
        json_text = listing(self, self.wide(3000, "json"))
        ctfs_text = listing(self, self.wide(3000, "ctfs"))
        self.assertGreater(json_text.count("→ call"), 2 * 4096)
        end = END.search(json_text).group(0)
        body = json_text[:-len(end)]
        assert_same_lines(self, ctfs_text[:len(body)], body)
        self.assertRegex(ctfs_text[len(body):-len(end)], r"^(← return\n)*$")

    def test_more_events_at_one_step_than_a_window(self):
        json_folder = self.wide(10, "json")
        path = os.path.join(json_folder, "trace.json")
        with open(path) as f:
            records = json.load(f)
        last = max(i for i, r in enumerate(records) if "Step" in r)
        events = [{"Event": {"kind": 0, "metadata": "", "content": "e%d" % k}}
                  for k in range(10000)]
        records[last + 1:last + 1] = events
        with open(path, "w") as f:
            f.write("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")
        ctfs_folder = mirror(self, json_folder, os.path.join(self.tmp, "mirrored"))
        json_text = listing(self, json_folder, "--json")
        ctfs_text = listing(self, ctfs_folder, "--json")
        self.assertEqual(ctfs_text.count('"Event"'), 10000 + json_text.count("round"))
        seq = lambda text: "".join(json.dumps(json.loads(line), sort_keys=True) + "\n"
                                   for line in text.splitlines()
                                   if '"Event"' in line or '"Step"' in line)
        assert_same_lines(self, seq(ctfs_text), seq(json_text))


class CtfsLive(TempDirTest):
    """A running CTFS recording is readable up to the last flush; a killed
    client or daemon leaves a readable trace marked aborted."""

    def start(self, daemon, go):
        src = os.path.join(self.tmp, "stepper.py")
        with open(src, "w") as f:
            f.write(STEPPER_PY)
        env = daemon.env(PYTHONPATH=PY_SHIM)
        p = subprocess.Popen(["python3", src, go], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        for _ in range(3):
            p.stdout.readline()
        deadline = time.time() + 30
        while not ctfs_folders(daemon.out) and time.time() < deadline:
            time.sleep(0.05)
        (folder,) = ctfs_folders(daemon.out)
        return p, folder

    def wait_listing(self, folder, want, *opts):
        """The follow listing of folder once it shows want (the trace may be
        complete or aborted by then; a live folder is read with a timeout)."""
        deadline = time.time() + 30
        while True:
            p = subprocess.Popen([CTRECCTL, "follow", *opts, folder], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            lines = Lines(p.stdout)
            try:
                lines.wait_for(want, timeout=max(1, deadline - time.time()))
                return lines
            finally:
                p.kill()
                p.wait()

    def test_live_trace_shows_steps_up_to_the_last_flush(self):
        d = Daemon(self.tmp, extra=("--set", "output.format=ctfs",
                                    "--set", "output.flush_interval_ms=50"))
        go = os.path.join(self.tmp, "go")
        p, folder = self.start(d, go)
        # The program is blocked after tick 2: a follower sees it already.
        self.wait_listing(folder, r"\[stdout\] tick 2")
        self.assertIsNone(p.poll())
        self.assertEqual(metadata(folder)["ctrec"]["state"], "recording")
        res = run([CTRECCTL, "check", "--live", folder])
        self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())
        open(go, "w").close()
        self.assertEqual(p.wait(timeout=60), 0)
        d.stop()
        self.assertEqual(metadata(folder)["ctrec"]["state"], "complete")
        text = listing(self, folder)
        self.assertIn("[stdout] tick 999", text)

    def test_killed_client_leaves_an_aborted_readable_trace(self):
        d = Daemon(self.tmp, extra=("--set", "output.format=ctfs",))
        p, folder = self.start(d, os.path.join(self.tmp, "never"))
        time.sleep(0.3)
        p.kill()
        p.wait()
        deadline = time.time() + 30
        while metadata(folder)["ctrec"]["state"] == "recording" and time.time() < deadline:
            time.sleep(0.05)
        d.stop()
        self.assertTrue(metadata(folder)["ctrec"]["state"].startswith("aborted"),
                        metadata(folder)["ctrec"]["state"])
        text = listing(self, folder)
        self.assertIn("[stdout] tick 2", text)
        self.assertRegex(text, r"== interval 1 aborted")
        res = run([CTRECCTL, "check", folder])
        self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())

    def test_killed_daemon_is_recovered_on_restart(self):
        d = Daemon(self.tmp, extra=("--set", "output.format=ctfs",
                                    "--set", "output.flush_interval_ms=50"))
        go = os.path.join(self.tmp, "go")
        p, folder = self.start(d, go)
        self.wait_listing(folder, r"\[stdout\] tick 2")
        d.proc.kill()
        d.stop(expect=-signal.SIGKILL)
        open(go, "w").close()
        self.assertEqual(p.wait(timeout=60), 0)  # the program runs on
        self.assertEqual(metadata(folder)["ctrec"]["state"], "recording")
        d2 = Daemon(self.tmp, extra=("--set", "output.format=ctfs",))
        d2.stop()
        self.assertEqual(metadata(folder)["ctrec"]["state"],
                         "aborted: daemon stopped unexpectedly")
        text = listing(self, folder)
        self.assertIn("[stdout] tick 2", text)
        self.assertRegex(text, r"== interval 1 aborted")
        # The calls open when the daemon died were completed on restart.
        self.assertRegex(text, r"^→ call <top-level>\(\)\n")
        res = run([CTRECCTL, "check", folder])
        self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())

    def kill_daemon_in_nested_calls(self, lang, python="python3"):
        """Records NESTED_* until it waits four calls deep, kills ctrecd
        with SIGKILL after a flush, lets the program end untraced and
        starts a new ctrecd on the same output folder; returns the
        listing of the recovered trace."""
        sub = os.path.join(self.tmp, lang + re.sub(r"\W", "_", python))
        os.makedirs(sub)
        d = Daemon(sub, extra=("--set", "output.format=ctfs",
                               "--set", "output.flush_interval_ms=50"))
        src = os.path.join(sub, "nested." + ("rb" if lang == "ruby" else "py"))
        with open(src, "w") as f:
            f.write(NESTED_RB if lang == "ruby" else NESTED_PY)
        go = os.path.join(sub, "go")
        cmd = ["ruby", src, go] if lang == "ruby" else [python, src, go]
        p = subprocess.Popen(cmd, env=d.env(PYTHONPATH=PY_SHIM), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        self.assertEqual(p.stdout.readline(), b"waiting\n")
        deadline = time.time() + 30
        while not ctfs_folders(d.out) and time.time() < deadline:
            time.sleep(0.05)
        (folder,) = ctfs_folders(d.out)
        self.wait_listing(folder, r"\[stdout\] waiting")  # flushed
        d.proc.kill()
        d.stop(expect=-signal.SIGKILL)
        self.assertTrue(os.path.exists(os.path.join(folder, "trace.ct.calls")))
        open(go, "w").close()
        self.assertEqual(p.wait(timeout=60), 0)  # the program runs on
        d2 = Daemon(sub, extra=("--set", "output.format=ctfs",))
        d2.stop()
        self.assertEqual(metadata(folder)["ctrec"]["state"],
                         "aborted: daemon stopped unexpectedly")
        self.assertFalse(os.path.exists(os.path.join(folder, "trace.ct.calls")))
        # Every step is inside a call again: check needs no --live.
        res = run([CTRECCTL, "check", folder])
        self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())
        return listing(self, folder)

    def assert_calls_recovered(self, text):
        # The calls returned before the kill, with their arguments, values
        # and parents (each inside the call that made it)...
        self.assertEqual(len(re.findall(r"→ call middle\((self=main, )?k=\d\)", text)), 5, text)
        self.assertEqual(len(re.findall(r"→ call leaf\((self=main, )?n=\d\)", text)), 15, text)
        self.assertIn("← return 18", text)  # middle(4) = 2 * (4 + 5 + 6)
        self.assertRegex(text, r"→ call middle\((self=main, )?k=4\)\n(.*\n)*?"
                               r"\s+→ call leaf\((self=main, )?n=6\)")
        self.assertEqual(len(re.findall(r"→ call wait_here\((self=main, )?depth=\d, x=1\d\)", text)), 4)
        # ... and the open ones: the four wait_here calls and the top level
        # (and Python's <module>) close at the last step, without a value.
        self.assertRegex(text, r"\[stdout\] waiting\n(\s+#\d+ nested\.\w+:\d+  .*\n)*"
                               r"(\s*← return\n){5,6}== interval 1 aborted")
        self.assertNotIn("done", text)

    def test_killed_daemon_keeps_its_calls_python(self):
        each_python(self, lambda py: self.assert_calls_recovered(
            self.kill_daemon_in_nested_calls("python", py)))

    def test_killed_daemon_keeps_its_calls_ruby(self):
        self.assert_calls_recovered(self.kill_daemon_in_nested_calls("ruby"))

    def test_intervals_are_folders_of_their_own(self):
        """ctrecctl stop and start: the second interval is its own trace.ct,
        opening with the calls on the stack, readable on its own."""
        d = Daemon(self.tmp, extra=("--set", "output.format=ctfs",
                                    "--set", "output.flush_interval_ms=20"))
        p = subprocess.Popen(["ruby", os.path.join(RUBY_PROGRAMS, "slow_counter.rb"), "40"],
                             env=d.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(8):
            p.stdout.readline()
        for verb in ("stop", "start"):
            args = ["--pid", str(p.pid)] if verb == "stop" else ["--all"]
            res = run([CTRECCTL, verb, "-s", d.sock, *args])
            self.assertEqual(res.returncode, 0, res.stderr)
            for _ in range(8):
                p.stdout.readline()
        p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0)
        d.stop()
        first, second = ctfs_folders(d.out)
        self.assertEqual(second, first + "-2")
        self.assertEqual(metadata(first)["ctrec"]["interval"]["end_reason"],
                         "stopped by ctrecctl")
        self.assertEqual(metadata(second)["ctrec"]["interval"]["index"], 2)
        self.assertNotEqual(metadata(first)["recording_id"], metadata(second)["recording_id"])
        self.assertEqual(meta_dat_id(second), metadata(second)["recording_id"])
        for folder in (first, second):
            res = run([CTRECCTL, "check", folder])
            self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())
        text = listing(self, second)
        self.assertRegex(text, r"^→ call <top-level>\(\)\n")
        self.assertIn("→ call tick(", text)
        self.assertRegex(text, r"== interval 2 complete")


if __name__ == "__main__":
    unittest.main()
