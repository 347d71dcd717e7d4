"""ctrecctl ls, rm and gc, and ctrecd's output limits (output.max_age,
output.max_total_size), on trace folders recorded from real Ruby and Python
programs. Ages are faked by editing the interval's start and end in
trace_metadata.json, which is what ls, gc and ctrecd count ages from."""
import json
import os
import re
import shutil
import subprocess
import time

from harness import (CTRECCTL, CTRECD, FORMAT, PY_SHIM, SOURCE, Daemon, TempDirTest, record,
                     metadata, run, trace_folders)

PY = os.path.join(SOURCE, "tests", "programs", "python")
RB = os.path.join(SOURCE, "tests", "programs", "ruby")
# Blocked in a read, it records nothing more until it is let go.
WAITER = ("import sys\n"
          "print('waiting', flush=True)\n"
          "sys.stdin.readline()\n")


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def edit_metadata(folder, **ctrec):
    """Sets members of the metadata's ctrec object (start and end go into
    its interval), written compact as ctrecd writes it."""
    meta = metadata(folder)
    for key, value in ctrec.items():
        if key in ("start", "end"):
            meta["ctrec"]["interval"][key] = value
        else:
            meta["ctrec"][key] = value
    with open(os.path.join(folder, "trace_metadata.json"), "w") as f:
        json.dump(meta, f, separators=(",", ":"))


def age(folder, seconds_ago, duration=5):
    """Makes the trace one that started seconds_ago and ran duration s."""
    now = int(time.time())
    edit_metadata(folder, start=iso(now - seconds_ago), end=iso(now - seconds_ago + duration))


def du(folder):
    """Bytes on disk of the folder and everything in it (a file a live
    trace's daemon replaces meanwhile counts as gone)."""
    total = os.lstat(folder).st_blocks * 512
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def left_by_dead_daemon(folder):
    """A copy of folder beside it, "recording" by a daemon that is gone."""
    left = os.path.join(os.path.dirname(folder), "left")
    # Without the temporary files of a metadata being replaced right now.
    shutil.copytree(folder, left, ignore=shutil.ignore_patterns(".*"))
    edit_metadata(left, state="recording", daemon_pid=dead_pid())
    return left


class Housekeeping(TempDirTest):
    def setUp(self):
        super().setUp()
        self.out = os.path.join(self.tmp, "out")

    def record(self, cmd):
        """Records cmd into self.out; returns its new trace folder."""
        before = set(trace_folders(self.out))
        res = record(cmd, self.out)
        new = sorted(set(trace_folders(self.out)) - before)
        self.assertEqual(len(new), 1, res.stderr)
        return new[0]

    def three(self):
        """Three finished traces: exit3.py (exit status 3) from 3 hours ago,
        a Ruby one from 2 hours ago, a Python one from 1 hour ago (that one
        ran 25 minutes)."""
        a = self.record(["python3", os.path.join(PY, "exit3.py")])
        b = self.record(["ruby", os.path.join(RB, "show_demo.rb")])
        c = self.record(["python3", os.path.join(PY, "show_demo.py")])
        age(a, 3 * 3600, 5)
        age(b, 2 * 3600, 65)
        age(c, 3600, 1500)
        return a, b, c

    def live(self, daemon):
        """A Python program recording through daemon, blocked; returns
        (process, its trace folder once its metadata says recording)."""
        prog = os.path.join(self.tmp, "waiter.py")
        with open(prog, "w") as f:
            f.write(WAITER)
        before = set(trace_folders(daemon.out))
        p = self.reap_at_end(subprocess.Popen(
            ["python3", prog], env=daemon.env(PYTHONPATH=PY_SHIM), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        self.assertEqual(p.stdout.readline(), b"waiting\n")
        deadline = time.time() + 30
        while time.time() < deadline:
            new = [f for f in set(trace_folders(daemon.out)) - before
                   if os.path.exists(os.path.join(f, "trace_metadata.json"))
                   and "ctrec" in metadata(f)]
            if new:
                return p, new[0]
            time.sleep(0.05)
        self.fail("the live trace has no metadata")

    def finish(self, p):
        p.communicate(b"\n", timeout=60)
        self.assertEqual(p.returncode, 0)

    def ls(self, *args, cwd=None):
        res = run([CTRECCTL, "ls", *args], cwd=cwd)
        self.assertEqual(res.returncode, 0, res.stderr)
        return res.stdout.decode().splitlines()

    # ---- ls ----------------------------------------------------------------

    def test_ls_lists_newest_first(self):
        a, b, c = self.three()
        os.mkdir(os.path.join(self.out, "not-a-trace"))
        # Only the metadata is read: a broken trace file is still listed.
        trace_file = "trace.ct" if FORMAT == "ctfs" else "trace.json"
        with open(os.path.join(a, trace_file), "r+b") as f:
            f.write(b"garbage")
        lines = self.ls(self.out)
        self.assertRegex(lines[0], r"^TRACE +STARTED +DURATION +STATE +EXIT +STEPS +SIZE +PID"
                                   r" +PROGRAM$")
        self.assertEqual(len(lines), 4, lines)
        for line, folder, duration, status in ((lines[1], c, "25m00s", "0"),
                                               (lines[2], b, "1m05s", "0"),
                                               (lines[3], a, "5s", "3")):
            meta = metadata(folder)
            cells = line.split()
            self.assertEqual(cells[0], os.path.basename(folder))
            self.assertEqual(cells[1], meta["ctrec"]["interval"]["start"])
            self.assertEqual(cells[2:5], [duration, "complete", status])
            self.assertEqual(cells[5], str(meta["ctrec"]["counters"]["steps"]))
            self.assertEqual(cells[7:], [str(meta["ctrec"]["pid"]), meta["program"]])
        got = [json.loads(line) for line in self.ls("--json", self.out)]
        self.assertEqual([g["trace"] for g in got], [c, b, a])
        for g, folder, duration in zip(got, (c, b, a), (1500, 65, 5)):
            meta = metadata(folder)
            self.assertEqual(g, {"trace": folder, "program": meta["program"],
                                 "pid": meta["ctrec"]["pid"],
                                 "started": meta["ctrec"]["interval"]["start"],
                                 "duration": duration, "state": "complete", "live": False,
                                 "exit_status": meta["ctrec"]["exit_status"],
                                 "steps": meta["ctrec"]["counters"]["steps"],
                                 "size": du(folder)})
        self.assertEqual(got[2]["exit_status"], 3)
        # Without DIR: ./ctrec-traces, where record writes by default.
        os.rename(self.out, os.path.join(self.tmp, "ctrec-traces"))
        self.assertEqual(len(self.ls(cwd=self.tmp)), 4)

    def test_ls_states(self):
        daemon = Daemon(self.tmp)
        p, live = self.live(daemon)
        left = left_by_dead_daemon(live)
        rows = {g["trace"]: g for g in map(json.loads, self.ls("--json", daemon.out))}
        self.assertEqual((rows[live]["state"], rows[live]["live"], rows[live]["duration"],
                          rows[live]["exit_status"]), ("recording", True, None, None))
        self.assertEqual((rows[left]["state"], rows[left]["live"]),
                         ("aborted: daemon stopped unexpectedly", False))
        text = "\n".join(self.ls(daemon.out))
        self.assertRegex(text, r"\n" + re.escape(os.path.basename(live)) + r" .* recording ")
        self.finish(p)
        daemon.stop()
        rows = {g["trace"]: g for g in map(json.loads, self.ls("--json", daemon.out))}
        self.assertEqual((rows[live]["state"], rows[live]["exit_status"]), ("complete", 0))

    def test_ls_is_fast_on_hundreds_of_traces(self):
        a = self.record(["python3", os.path.join(PY, "show_demo.py")])
        for i in range(300):
            shutil.copytree(a, f"{a}-{i}")
        start = time.monotonic()
        lines = self.ls(self.out)
        took = time.monotonic() - start
        self.assertEqual(len(lines), 302)
        self.assertLess(took, 5, "ls took too long")

    def test_ls_errors(self):
        res = run([CTRECCTL, "ls", os.path.join(self.tmp, "nowhere")])
        self.assertEqual(res.returncode, 1)
        self.assertIn("nowhere: No such file or directory", res.stderr.decode())
        self.assertEqual(run([CTRECCTL, "ls", "a", "b"]).returncode, 2)
        res = run([CTRECCTL, "ls", "--help"])
        self.assertIn(b"ls [--json] [DIR]", res.stdout)
        self.assertIn(b"./ctrec-traces", res.stdout)

    # ---- rm ----------------------------------------------------------------

    def test_rm_deletes_finished_traces_only(self):
        a, b, c = self.three()
        plain = os.path.join(self.tmp, "plain")
        os.mkdir(plain)
        with open(os.path.join(plain, "trace_metadata.json"), "w") as f:
            f.write("{}")
        link = os.path.join(self.tmp, "link")
        os.symlink(b, link)
        res = run([CTRECCTL, "rm", a, plain, link, c])
        self.assertEqual(res.returncode, 1)
        err = res.stderr.decode()
        self.assertIn(f"rm: {plain}: not a ctrec trace folder", err)
        self.assertIn(f"rm: {link}: not a ctrec trace folder", err)
        out = res.stdout.decode()
        self.assertRegex(out, rf"removed {re.escape(a)} \(\d")
        self.assertRegex(out, rf"removed {re.escape(c)} \(\d")
        self.assertFalse(os.path.exists(a) or os.path.exists(c))
        self.assertTrue(os.path.isdir(plain) and os.path.isdir(b) and os.path.islink(link))
        self.assertEqual(run([CTRECCTL, "rm", b]).returncode, 0)
        self.assertFalse(os.path.exists(b))
        self.assertEqual(run([CTRECCTL, "rm"]).returncode, 2)

    def test_rm_refuses_a_live_trace(self):
        daemon = Daemon(self.tmp)
        p, live = self.live(daemon)
        left = left_by_dead_daemon(live)
        res = run([CTRECCTL, "rm", live])
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"rm: {live}: still being recorded", res.stderr.decode())
        self.assertTrue(os.path.isdir(live))
        # Its daemon is gone: that trace is finished (aborted).
        self.assertEqual(run([CTRECCTL, "rm", left]).returncode, 0)
        self.assertFalse(os.path.exists(left))
        self.finish(p)
        daemon.stop()
        self.assertEqual(run([CTRECCTL, "rm", live]).returncode, 0)
        self.assertEqual(trace_folders(daemon.out), [])

    # ---- gc ----------------------------------------------------------------

    def gc(self, *args):
        res = run([CTRECCTL, "gc", *args])
        self.assertEqual(res.returncode, 0, res.stderr)
        return res.stdout.decode()

    def test_gc_by_age(self):
        a, b, c = self.three()
        age(a, 10 * 86400)
        age(b, 3 * 86400)
        out = self.gc(self.out, "--older-than", "2d", "--dry-run")
        self.assertRegex(out, rf"^would remove {re.escape(a)} \(.*\)\n"
                              rf"would remove {re.escape(b)} \(.*\)\n"
                              r"would free \S+ in 2 traces\n$")
        self.assertEqual(len(trace_folders(self.out)), 3)
        out = self.gc(self.out, "--older-than", "2d")
        self.assertRegex(out, rf"^removed {re.escape(a)} .*\nremoved {re.escape(b)} .*\n"
                              r"freed \S+ in 2 traces\n$")
        self.assertEqual(trace_folders(self.out), [c])
        size, end = self.size_text(c), metadata(c)["ctrec"]["interval"]["end"]
        self.assertEqual(self.gc(self.out, "--older-than", "30m"),
                         f"removed {c} ({size}, from {end})\nfreed {size} in 1 trace\n")

    def size_text(self, folder):
        n = du(folder)
        for unit in "KMGT":
            n /= 1024
            if n < 1024:
                return f"{n:.1f}{unit}" if n < 10 else f"{n:.0f}{unit}"

    def test_gc_by_size_oldest_first_never_live(self):
        daemon = Daemon(self.tmp)
        self.out = daemon.out
        p, live = self.live(daemon)
        a, b, c = self.three()
        left = left_by_dead_daemon(c)
        age(left, 4 * 3600)
        edit_metadata(left, end=None)
        # All but the oldest two fit: left (4 h) and a (3 h) go.
        total = sum(du(f) for f in (live, a, b, c, left))
        keep = total - du(left) - du(a) + du(b) // 2
        out = self.gc(daemon.out, "--max-size", str(keep))
        self.assertEqual(re.findall(r"^removed (\S+)", out, re.M), [left, a])
        self.assertEqual(sorted(trace_folders(daemon.out)), sorted([live, b, c]))
        # However small the limit, the live trace stays.
        out = self.gc(daemon.out, "--max-size", "1K", "--older-than", "1s")
        self.assertEqual(re.findall(r"^removed (\S+)", out, re.M), [b, c])
        self.assertEqual(trace_folders(daemon.out), [live])
        self.finish(p)

    def test_gc_usage(self):
        for args, msg in ((["--older-than", "7w"], "--older-than"),
                          (["--max-size", "3X"], "--max-size"),
                          ([], "name a limit"),
                          (["a", "b", "--max-size", "1M"], "unexpected argument")):
            res = run([CTRECCTL, "gc", *args])
            self.assertEqual(res.returncode, 2, args)
            self.assertIn(msg, res.stderr.decode())
        res = run([CTRECCTL, "gc", os.path.join(self.tmp, "nowhere"), "--max-size", "1M"])
        self.assertEqual(res.returncode, 1)
        res = run([CTRECCTL, "gc", "--help"])
        self.assertIn(b"gc [DIR] [--older-than DURATION] [--max-size SIZE] [--dry-run]",
                      res.stdout)

    # ---- ctrecd's output limits -------------------------------------------

    def wait_gone(self, daemon, folders, timeout=30):
        deadline = time.time() + timeout
        while any(os.path.exists(f) for f in folders) and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse([f for f in folders if os.path.exists(f)], daemon.read_log())

    def seed(self, root):
        """Finished traces in root/traces before a daemon starts there:
        returns (10 days old, 3 days old, 1 hour old)."""
        a, b, c = self.three()
        age(a, 10 * 86400)
        age(b, 3 * 86400)
        shutil.move(self.out, os.path.join(root, "traces"))
        return tuple(os.path.join(root, "traces", os.path.basename(f)) for f in (a, b, c))

    def test_daemon_deletes_old_traces(self):
        a, b, c = self.seed(self.tmp)
        daemon = Daemon(self.tmp, extra=("--set", "output.max_age=2d"))
        self.wait_gone(daemon, [a, b])
        self.assertTrue(os.path.isdir(c))
        log = daemon.read_log()
        self.assertIn(f"output limits: deleted {a} (", log)
        self.assertIn(f"output limits: deleted {b} (", log)
        self.assertNotIn(c, log)

    def test_daemon_keeps_the_folder_within_its_size(self):
        a, b, c = self.seed(self.tmp)
        daemon = Daemon(self.tmp, extra=("--set", "output.max_total_size=1K"))
        # At start: every finished trace goes, oldest first.
        self.wait_gone(daemon, [a, b, c])
        log = daemon.read_log()
        self.assertLess(log.index(f"deleted {a} "), log.index(f"deleted {b} "))
        self.assertLess(log.index(f"deleted {b} "), log.index(f"deleted {c} "))
        # A live trace stays, also when another one completes meanwhile.
        p, live = self.live(daemon)
        q, second = self.live(daemon)
        self.finish(q)
        self.wait_gone(daemon, [second])
        self.assertTrue(os.path.isdir(live))
        self.assertNotIn(f"deleted {live}", daemon.read_log())
        # Once complete, it is over the limit too.
        self.finish(p)
        self.wait_gone(daemon, [live])
        self.assertIn(f"output limits: deleted {live} (", daemon.read_log())

    def test_daemon_checks_every_minute(self):
        """A trace that grows old (here: one put in place) while nothing
        completes goes at the next periodic check, within a minute."""
        a, b, c = self.seed(self.tmp)
        old = os.path.join(self.tmp, "old")
        shutil.move(a, old)
        daemon = Daemon(self.tmp, extra=("--set", "output.max_age=2d"))
        self.wait_gone(daemon, [b])
        shutil.move(old, a)
        self.wait_gone(daemon, [a], timeout=90)
        self.assertTrue(os.path.isdir(c))
        self.assertIn(f"output limits: deleted {a} (", daemon.read_log())

    def test_limits_are_options(self):
        res = run([CTRECD, "--set", "output.max_age=7d", "--set", "output.max_total_size=20M",
                   "--print-config"])
        self.assertEqual(res.returncode, 0, res.stderr)
        text = res.stdout.decode()
        self.assertRegex(text, r"\n  max_age: 7d\n")
        self.assertRegex(text, r"\n  max_total_size: 20M\n")
        res = run([CTRECD, "--set", "output.max_age=7w", "--print-config"])
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("output.max_age", res.stderr.decode())


if __name__ == "__main__":
    import unittest
    unittest.main()
