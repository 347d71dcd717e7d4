"""ctrecctl record as a user meets it (issue 14): the private daemon says
where it records and is reached from another shell by status, start, stop
and follow; killing `record` (SIGTERM or SIGKILL) leaves no daemon behind
and only valid traces; background children are recorded to their end; the
options that need no YAML file; follow --wait, its boundary record and
its exit status on Ctrl-C; and the summary line of each trace."""
import json
import os
import re
import signal
import subprocess
import time

from harness import (CTRECCTL, FORMAT_ARG, RUBY_PROGRAMS, Daemon, TempDirTest, Trace,
                     metadata, run, trace_folders, validate)
from test_follow import Lines
from test_python_record import OTHER_PYTHONS

ANNOUNCE = re.compile(r"ctrecctl: recording to (\S+) \(private ctrecd at (\S+), pid (\d+); "
                      r"'ctrecctl status' reaches it\)")
SUMMARY = re.compile(r"ctrecctl: trace (\S+): (\d+) (steps?), (\d+) (calls?), (\d+) (events?); "
                     r"(exit -?\d+|no exit status), (under 1 s|\d+ s), ([\d.]+ (?:B|KiB|MiB)) "
                     r"\((.*)\)")

# Waits for a line on stdin before its work, so that a test decides when;
# the work takes a second, for a resumed recording to catch it.
WAITER_PY = """\
import sys, time
def work(n):
    return sum(range(n))
print("ready", flush=True)
sys.stdin.readline()
for i in range(20):
    work(i)
    time.sleep(0.05)
print(work(10), flush=True)
"""
WAITER_RB = """\
$stdout.sync = true
def work(n)
  (0...n).sum
end
puts "ready"
$stdin.gets
20.times { |i| work(i); sleep 0.05 }
puts work(10)
"""
# Runs for about `seconds`, calling tick() all along.
LONG_PY = """\
import sys, time
def tick(i):
    return i * 2
end = time.time() + float(sys.argv[1])
i = 0
while time.time() < end:
    tick(i)
    i += 1
    time.sleep(0.05)
print("long done", flush=True)
"""
LONG_RB = """\
$stdout.sync = true
def tick(i)
  i * 2
end
stop = Time.now + ARGV[0].to_f
i = 0
while Time.now < stop
  tick(i)
  i += 1
  sleep 0.05
end
puts "long done"
"""
# Two functions, for the filter options.
TWO_PY = """\
def keep(a, b):
    return a + b
def drop(x):
    return x * 3
print(keep(drop(1), 2))
"""
TWO_RB = """\
def keep(a, b)
  a + b
end
def drop(x)
  x * 3
end
puts keep(drop(1), 2)
"""


def interpreters():
    """(name, argv prefix, language) for Ruby and every CPython built."""
    out = [("ruby", ["ruby"], "rb"), ("python3", ["python3"], "py")]
    for version, exe in sorted(OTHER_PYTHONS.items()):
        out.append(("python" + version, [exe], "py"))
    return out


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for this purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def folder_size(folder):
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def steps_flushed(out_dir):
    """Whether a trace in out_dir has flushed a step, as its metadata says."""
    for folder in trace_folders(out_dir):
        try:
            if metadata(folder)["ctrec"].get("counters", {}).get("steps", 0) > 0:
                return True
        except (FileNotFoundError, ValueError):
            pass
    return False


class RecordCliTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.rundir = os.path.join(os.environ["XDG_RUNTIME_DIR"], "ctrec")

    def program(self, lang, text, name="prog"):
        path = os.path.join(self.tmp, f"{name}.{lang}")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_record(self, *args, out="out", stdin=subprocess.DEVNULL):
        return self.reap_at_end(subprocess.Popen(
            [CTRECCTL, "record", "-o", os.path.join(self.tmp, out), *FORMAT_ARG, *args],
            cwd=self.tmp, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE))

    def announced(self, p):
        """(output folder, socket, daemon pid) from record's first line."""
        line = p.stderr.readline().decode()
        m = ANNOUNCE.fullmatch(line.rstrip("\n"))
        self.assertTrue(m, line)
        return m.group(1), m.group(2), int(m.group(3))

    def status(self, *args):
        res = run([CTRECCTL, "status", "--json", *args])
        self.assertEqual(res.returncode, 0, res.stderr)
        return [json.loads(l) for l in res.stdout.decode().splitlines()]

    def wait_until(self, what, fn, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            got = fn()
            if got:
                return got
            time.sleep(0.05)
        self.fail(f"timed out waiting for {what}")

    # ---- item 1: reachable recordings -----------------------------------

    def test_paused_record_is_started_from_another_shell(self):
        for name, argv, lang in interpreters():
            with self.subTest(name):
                prog = self.program(lang, WAITER_PY if lang == "py" else WAITER_RB)
                p = self.start_record("--paused", "--", *argv, prog, out=name,
                                      stdin=subprocess.PIPE)
                out, sock, daemon = self.announced(p)
                self.assertEqual(out, os.path.join(self.tmp, name))
                self.assertEqual(os.path.dirname(sock), self.rundir)
                self.assertEqual(os.stat(self.rundir).st_mode & 0o777, 0o700)
                self.assertEqual(p.stdout.readline(), b"ready\n")
                # Another shell: no socket given, no CT_RECORDER_SOCKET.
                s = self.wait_until("a paused session", lambda: [
                    s for s in self.status() if s["state"] == "paused" and s["received"] > 0])
                self.assertEqual(len(s), 1, s)
                self.assertEqual(s[0]["daemon"], sock)
                self.assertEqual(s[0]["program"], prog)
                text = run([CTRECCTL, "status"]).stdout.decode().splitlines()
                self.assertEqual(text[0].split()[-2:], ["TRACE", "DAEMON"])
                self.assertEqual([l.split()[-1] for l in text[1:]], [sock])
                res = run([CTRECCTL, "start", "--pid", str(s[0]["pid"])])
                self.assertEqual(res.returncode, 0, res.stderr)
                # Blocked in a read, the program resumes once it runs.
                self.wait_until("resuming", lambda: [
                    s for s in self.status() if s["state"] in ("resuming", "recording")])
                p.stdin.write(b"go\n")
                p.stdin.close()
                self.assertEqual(p.stdout.read(), b"45\n")
                self.assertEqual(p.wait(timeout=60), 0)
                err = p.stderr.read().decode()
                folders = trace_folders(out)
                self.assertEqual(len(folders), 1, err)
                validate(self, folders[0])
                t = Trace(folders[0])
                self.assertEqual(t.state, "complete")
                self.assertIn("work", [n.split("#")[-1].split(".")[-1] for n in t.call_names()])
                self.assertFalse(alive(daemon))
                self.assertEqual(os.listdir(self.rundir), [])

    def test_two_private_daemons_are_told_apart(self):
        prog = self.program("py", WAITER_PY)
        a = self.start_record("--paused", "--", "python3", prog, out="a", stdin=subprocess.PIPE)
        b = self.start_record("--paused", "--", "python3", prog, out="b", stdin=subprocess.PIPE)
        socks = {self.announced(a)[1], self.announced(b)[1]}
        for p in (a, b):
            self.assertEqual(p.stdout.readline(), b"ready\n")
        got = self.wait_until("two sessions", lambda: len(self.status()) == 2 and self.status())
        self.assertEqual({s["daemon"] for s in got}, socks)
        # Session ids are per daemon: with two, an id is ambiguous.
        res = run([CTRECCTL, "start", "1"])
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn(b"session ids are per ctrecd and 2 are running", res.stderr)
        res = run([CTRECCTL, "start", "-s", sorted(socks)[0], "1"])
        self.assertEqual(res.returncode, 0, res.stderr)
        res = run([CTRECCTL, "start", "--all"])
        self.assertEqual(res.returncode, 0, res.stderr)
        # Blocked in a read, a program whose shim had noticed the pause
        # sends its stack, and so records, only once it runs again.
        self.wait_until("both started", lambda: all(
            s["state"] in ("resuming", "recording") for s in self.status()))
        for p in (a, b):
            p.stdin.write(b"go\n")
            p.stdin.close()
            self.assertEqual(p.wait(timeout=60), 0)
        for out in ("a", "b"):
            folders = trace_folders(os.path.join(self.tmp, out))
            self.assertEqual(len(folders), 1)
            self.assertIn("work", [n.split(".")[-1] for n in Trace(folders[0]).call_names()])

    def test_stale_sockets_are_skipped_and_removed(self):
        os.makedirs(self.rundir, 0o700, exist_ok=True)
        # A record process that is gone (pid 2^22 + 1 is above pid_max).
        stale = os.path.join(self.rundir, "record-4194305.sock")
        open(stale, "w").close()
        res = run([CTRECCTL, "status"])
        self.assertFalse(os.path.exists(stale))
        self.assertEqual(res.returncode, 3)  # no service daemon either
        self.assertIn(b"cannot reach ctrecd at /run/ctrec/ctrecd.sock", res.stderr)

    def test_someone_elses_folder_is_not_used(self):
        os.makedirs(self.rundir, 0o755)
        res = run([CTRECCTL, "record", "-o", os.path.join(self.tmp, "out"), "--", "true"])
        self.assertEqual(res.returncode, 125)
        self.assertEqual(res.stderr.decode(),
                         f"ctrecctl: {self.rundir}: Operation not permitted (it must be a "
                         "folder of yours, mode 0700)\n")

    def assert_killed_record_cleans_up(self, sig):
        for name, argv, lang in interpreters()[:2]:
            with self.subTest(name):
                prog = self.program(lang, LONG_PY if lang == "py" else LONG_RB)
                p = self.start_record("--", *argv, prog, "1.5", out=f"{name}-{sig.name}")
                out, sock, daemon = self.announced(p)
                # Once the program runs its lines: killed before its first
                # one, it leaves a trace without a step, which no reader
                # can replay.
                self.wait_until("a step", lambda: steps_flushed(out))
                p.send_signal(sig)
                p.wait(timeout=30)
                self.wait_until("the daemon to stop", lambda: not alive(daemon))
                self.assertFalse(os.path.exists(sock))
                self.wait_until("a finished trace", lambda: trace_folders(out) and
                                Trace(trace_folders(out)[0]).state != "recording")
                folders = trace_folders(out)
                self.assertEqual(len(folders), 1)
                validate(self, folders[0])
                self.assertIn(Trace(folders[0]).state,
                              ("complete", "aborted: daemon stopped while the client was running"))
                self.assertEqual(os.listdir(self.rundir), [])

    def test_sigterm_of_record_stops_its_daemon(self):
        self.assert_killed_record_cleans_up(signal.SIGTERM)

    def test_sigkill_of_record_stops_its_daemon(self):
        self.assert_killed_record_cleans_up(signal.SIGKILL)

    def test_sigint_and_sighup_of_record_stop_its_daemon(self):
        # Sent to record alone (not by a terminal): passed on to the program.
        for sig in (signal.SIGINT, signal.SIGHUP):
            with self.subTest(sig.name):
                self.assert_killed_record_cleans_up(sig)

    def test_background_child_is_recorded_to_its_end(self):
        for name, argv, lang in interpreters()[:2]:
            with self.subTest(name):
                prog = self.program(lang, LONG_PY if lang == "py" else LONG_RB)
                # The background child outlives the shell by about 5 s:
                # longer than any grace period.
                script = f"{' '.join(argv)} {prog} 5 & echo fg"
                p = self.start_record("--", "sh", "-c", script, out=name)
                out, err = p.communicate(timeout=120)
                self.assertEqual((p.returncode, out), (0, b"fg\nlong done\n"), err)
                err = err.decode()
                self.assertIn("ctrecctl: the command exited; waiting for the 1 recorded "
                              "process it started (pid ", err)
                folders = trace_folders(os.path.join(self.tmp, name))
                self.assertEqual(len(folders), 1, err)
                t = Trace(folders[0])
                self.assertEqual(t.state, "complete", err)
                self.assertEqual(t.meta["ctrec"]["interval"]["end_reason"], "program exited")
                self.assertEqual(t.output(), "long done\n")

    def test_sigterm_stops_waiting_for_background_children(self):
        prog = self.program("py", LONG_PY)
        p = self.start_record("--", "sh", "-c", f"python3 {prog} 30 >/dev/null 2>&1 & echo fg")
        self.announced(p)
        self.assertEqual(p.stdout.readline(), b"fg\n")
        line = p.stderr.readline().decode()
        m = re.fullmatch(r"ctrecctl: the command exited; waiting for the 1 recorded process "
                         r"it started \(pid (\d+); Ctrl-C stops waiting\)\n", line)
        self.assertTrue(m, line)
        child = int(m.group(1))
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        err = p.stderr.read().decode()
        self.assertIn(f"ctrecctl: stopped waiting for pid {child} (session 1): Terminated; its "
                      "trace is aborted unless it ends within 3 s\n", err)
        folders = trace_folders(os.path.join(self.tmp, "out"))
        self.assertEqual(Trace(folders[0]).state,
                         "aborted: daemon stopped while the client was running")
        # The program itself goes on, untraced.
        self.assertTrue(alive(child))
        os.kill(child, signal.SIGKILL)

    # ---- item 5: options without YAML --------------------------------------

    def record_two(self, name, argv, lang, *opts):
        prog = self.program(lang, TWO_PY if lang == "py" else TWO_RB, "two")
        out = os.path.join(self.tmp, name)
        res = run([CTRECCTL, "record", "-q", "-o", out, *FORMAT_ARG, *opts, "--", *argv, prog],
                  cwd=self.tmp)
        self.assertEqual((res.returncode, res.stdout, res.stderr), (0, b"5\n", b""))
        folders = trace_folders(out)
        self.assertEqual(len(folders), 1)
        validate(self, folders[0])
        return Trace(folders[0])

    def test_values_skip_only_and_set(self):
        for name, argv, lang in interpreters():
            with self.subTest(name):
                # Ruby names them Object#keep, Python keep; the top level
                # is <main> or <top-level>.
                short = lambda t: [n.split("#")[-1] for n in t.call_names()
                                   if not n.startswith("<")]
                t = self.record_two(name + "-all", argv, lang)
                self.assertEqual(short(t)[-2:], ["drop", "keep"])
                self.assertTrue(t.kinds("Value"))
                t = self.record_two(name + "-none", argv, lang, "--values", "none")
                self.assertEqual(t.kinds("Value"), [])
                self.assertEqual([a for _, a in t.calls_with_args()], [{}] * len(t.kinds("Call")))
                self.assertEqual(t.meta["ctrec"]["values"], "none")
                t = self.record_two(name + "-args", argv, lang, "--values", "args")
                self.assertEqual(t.meta["ctrec"]["values"], "args")
                args = dict(t.calls_with_args())[t.call_names()[-1]]
                args.pop("self", None)  # Ruby's receiver
                self.assertEqual(args, {"a": 3, "b": 2})
                t = self.record_two(name + "-skip", argv, lang, "--skip", "**drop")
                self.assertNotIn("drop", short(t))
                self.assertIn("keep", short(t))
                t = self.record_two(name + "-only", argv, lang, "--only", "**keep")
                self.assertEqual(short(t), ["keep"])
                t = self.record_two(name + "-file", argv, lang, "--only", "file:**/two.*")
                self.assertEqual(short(t)[-2:], ["drop", "keep"])
                t = self.record_two(name + "-nofile", argv, lang, "--only", "file:**/one.*",
                                    "--only", "**keep")
                self.assertEqual(short(t), ["keep"])
                t = self.record_two(name + "-set", argv, lang, "--set", "record.values=none",
                                    "--set", "filter.rules=[{function: \"**drop\", action: skip}]")
                self.assertEqual(t.kinds("Value"), [])
                self.assertNotIn("drop", short(t))

    def test_paused_without_start_records_nothing(self):
        prog = self.program("py", TWO_PY, "two")
        res = run([CTRECCTL, "record", "-o", os.path.join(self.tmp, "out"), "--paused", "--",
                   "python3", prog])
        self.assertEqual((res.returncode, res.stdout), (0, b"5\n"), res.stderr)
        self.assertEqual(res.stderr.decode().splitlines()[1:], ["ctrecctl: nothing was recorded"])

    def test_bad_options_are_usage_errors(self):
        for opts, why in ((["--values", "some"], "--values: all, args or none, not some"),
                          (["--set", "novalue"], "--set: expected KEY=VALUE, not novalue"),
                          (["--skip", "file:"], "--skip/--only: an empty pattern: file:"),
                          (["-c", "x.yaml", "--only", "f"],
                           "--skip and --only replace the filter.rules of -c FILE; put the "
                           "rules in the file")):
            res = run([CTRECCTL, "record", *opts, "--", "true"])
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertEqual(res.stderr.decode().splitlines()[0], f"ctrecctl: {why}")
        res = run([CTRECCTL, "record", "--set", "record.values=most", "--", "true"])
        self.assertEqual(res.returncode, 125)
        self.assertIn(b"--set: record.values: ", res.stderr)

    def test_service_refuses_private_options(self):
        d = Daemon(self.tmp)
        env = dict(os.environ, CT_RECORDER_SOCKET=d.sock)
        for opts, why in ((["--values", "none"], "--values: a running ctrecd keeps its own "
                           "record.values"),
                          (["--skip", "f"], "--skip: a running ctrecd keeps its own filter.rules"),
                          (["--only", "f"], "--only: a running ctrecd keeps its own filter.rules"),
                          (["--paused"], "--paused: a running ctrecd keeps its own record.start"),
                          (["--set", "a.b=c"], "--set: a running ctrecd keeps its own "
                           "configuration")):
            res = run([CTRECCTL, "record", *opts, "--", "python3", "-c", "print(1)"], env=env)
            self.assertEqual((res.returncode, res.stdout), (2, b""), res.stderr)
            self.assertEqual(res.stderr.decode(),
                             f"ctrecctl: record: {why}; unset CT_RECORDER_SOCKET (now {d.sock}) "
                             "to record with a private ctrecd\n")
        self.assertEqual(trace_folders(d.out), [])

    # ---- item 6: follow --wait, boundary, Ctrl-C --------------------------

    def follow(self, *args):
        p = self.reap_at_end(subprocess.Popen(
            [CTRECCTL, "follow", *args], cwd=self.tmp, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        return p, Lines(p.stdout)

    def test_follow_waits_for_the_next_session_of_a_program(self):
        for name, argv, lang in interpreters():
            with self.subTest(name):
                # It runs long enough for a poll to see it.
                prog = self.program(lang, LONG_PY if lang == "py" else LONG_RB, "long")
                other = self.program(lang, WAITER_PY if lang == "py" else WAITER_RB, "other")
                # Before any daemon runs.
                fol, out = self.follow("--wait", "--program", os.path.basename(prog), "--json")
                time.sleep(0.5)
                self.assertIsNone(fol.poll())
                # Another program's session is not the one waited for.
                o = self.start_record("--", *argv, other, out=name + "-o",
                                      stdin=subprocess.PIPE)
                self.assertEqual(o.stdout.readline(), b"ready\n")
                time.sleep(0.5)
                self.assertEqual(out.lines(), [])
                res = run([CTRECCTL, "record", "-q", "-o", os.path.join(self.tmp, name),
                           *FORMAT_ARG, "--", *argv, prog, "1"])
                self.assertEqual(res.returncode, 0, res.stderr)
                fol.wait(timeout=30)
                self.assertEqual(fol.returncode, 0, fol.stderr.read())
                out.thread.join(5)
                lines = [json.loads(l) for l in out.lines()]
                # Steps, not calls: a live CTFS follower skips the calls
                # written after their entry step went out (docs/ctfs.md),
                # which on a loaded machine can be all of them.
                self.assertTrue(any("Step" in r for r in lines), lines)
                self.assertIn({"Event": {"kind": 0, "metadata": "", "content": "long done\n"}},
                              lines)
                o.stdin.close()
                o.wait(timeout=60)

    def test_follow_wait_for_a_pid_and_ctrl_c(self):
        prog = self.program("py", WAITER_PY)
        p = self.start_record("--", "python3", prog, stdin=subprocess.PIPE)
        self.assertEqual(p.stdout.readline(), b"ready\n")
        pid = self.wait_until("a session", lambda: self.status())[0]["pid"]
        # A live session of --pid is followed at once.
        fol, out = self.follow("--wait", "--pid", str(pid))
        out.wait_for(r"^== session 1: pid ")
        p.stdin.write(b"go\n")
        p.stdin.close()
        self.assertEqual(p.wait(timeout=60), 0)
        fol.wait(timeout=30)
        self.assertEqual(fol.returncode, 0)
        # Waiting is ended by Ctrl-C with the shell's status for it.
        fol, out = self.follow("--wait", "--program", "nothing.py")
        time.sleep(0.5)
        fol.send_signal(signal.SIGINT)
        self.assertEqual(fol.wait(timeout=10), 130)
        self.assertEqual(fol.stderr.read(), b"")

    def test_follow_finds_the_private_daemon(self):
        prog = self.program("rb", WAITER_RB)
        p = self.start_record("--", "ruby", prog, stdin=subprocess.PIPE)
        self.assertEqual(p.stdout.readline(), b"ready\n")
        self.wait_until("a session", lambda: self.status())
        fol, out = self.follow()
        out.wait_for(r"^== interval 1: ")
        fol.send_signal(signal.SIGINT)
        self.assertEqual(fol.wait(timeout=10), 130)
        p.stdin.close()
        p.wait(timeout=60)

    # ---- item 9: the summary line ------------------------------------------

    def test_summary_line(self):
        one = self.program("py", "import sys\nsys.exit(3)\n", "one")
        for name, argv, prog, status in (
                ("py", ["python3"], one, 3),
                ("rb", ["ruby"], os.path.join(RUBY_PROGRAMS, "addition.rb"), 0)):
            with self.subTest(name):
                out = os.path.join(self.tmp, name)
                res = run([CTRECCTL, "record", "-o", out, *FORMAT_ARG, "--", *argv, prog])
                self.assertEqual(res.returncode, status, res.stderr)
                lines = res.stderr.decode().splitlines()
                self.assertEqual(len(lines), 2, lines)
                m = SUMMARY.fullmatch(lines[1])
                self.assertTrue(m, lines[1])
                folder = trace_folders(out)[0]
                t = Trace(folder)
                counters = t.meta["ctrec"]["counters"]
                self.assertEqual(m.group(1), folder)
                for at, key in ((2, "steps"), (4, "calls"), (6, "events")):
                    self.assertEqual(int(m.group(at)), counters[key])
                    self.assertEqual(m.group(at + 1), key if counters[key] != 1 else key[:-1])
                self.assertEqual(m.group(8), f"exit {status}")
                self.assertIn(m.group(9), ("under 1 s", "1 s", "2 s"))
                size = folder_size(folder)
                self.assertEqual(m.group(10), f"{size / 1024:.1f} KiB" if size >= 1024
                                 else f"{size} B")
                self.assertEqual(m.group(11), "complete")
        # Singular where it is one.
        self.assertRegex(run([CTRECCTL, "record", "-o", os.path.join(self.tmp, "x"), "--",
                              "ruby", "-e", "puts 1"]).stderr.decode(),
                         r": 1 step, 1 call, 1 event; exit 0, ")


if __name__ == "__main__":
    import unittest
    unittest.main()
