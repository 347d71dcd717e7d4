"""ctrecctl follow: the live feed of a session, tailed from its trace folder
while real Ruby and Python programs run under a real ctrecd. Checks that
records show up while the program still runs, that --json prints exactly
the records of trace.json, that the feed moves on to a new recording
interval, ends by itself with the session, and fails clearly when there is
nothing to follow."""
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

from harness import (CTRECCTL, FORMAT, PY_SHIM, SOURCE, Daemon, TempDirTest, records_text, run,
                     service_config, trace_folders)
from test_check import each_python, record_ctfs_pair, start_live_mirror

# A step line: its number, file:line and the line's source text.
STEP_5 = re.compile(r"#\d+ _follow_ticker\.rb:5  \S.*")
RUBY_TICKER = os.path.join(SOURCE, "tests", "programs", "ruby", "_follow_ticker.rb")
PY_TICKER = os.path.join(SOURCE, "tests", "programs", "python", "_follow_ticker.py")


class Lines:
    """Reads a pipe in a thread and keeps (arrival time, line) pairs."""

    def __init__(self, stream):
        self.items = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            self.items.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

    def lines(self):
        return [line for _, line in self.items]

    def when(self, pattern):
        """Arrival time of the first line matching pattern, or None."""
        for t, line in list(self.items):
            if re.search(pattern, line):
                return t
        return None

    def wait_for(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.when(pattern)
            if t is not None:
                return t
            time.sleep(0.01)
        raise AssertionError(f"no line matching {pattern!r} in {self.lines()!r}")


def file_records(folder):
    """The trace's records as their own text lines (ctrecd writes one
    record per line of trace.json, ctfs_dump one per line too), and
    parsed."""
    text = records_text(folder).decode()
    lines = [line[:-1] if line.endswith(",") else line
             for line in text.split("\n")[1:-2]]
    return lines, json.loads(text)


def assert_feed_is(test, got, texts, ctfs=FORMAT == "ctfs"):
    """The --json feed is the trace's records, in order. Live, a CTFS
    follower hands out declarations as each poll finds them, and skips
    the calls written after their first step was handed out, with their
    returns (docs/ctfs.md): only those may be missing."""
    if not ctfs:
        test.assertEqual(got, texts)
        return
    decl = re.compile(r'\{"(Path|Function|Type|VariableName)"')
    for kind in ("Path", "Function", "Type", "VariableName"):
        test.assertEqual([l for l in got if l.startswith(f'{{"{kind}"')],
                         [l for l in texts if l.startswith(f'{{"{kind}"')])
    got = [l for l in got if not decl.match(l)]
    texts = [l for l in texts if not decl.match(l)]
    missing, at = [], 0
    for line in got:
        while at < len(texts) and texts[at] != line:
            missing.append(texts[at])
            at += 1
        test.assertLess(at, len(texts), f"{line} is not in the trace, or out of order")
        at += 1
    missing += texts[at:]
    test.assertEqual([m for m in missing if not re.match(r'\{"(Call|Return)"', m)], [])


class FollowTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.daemon = Daemon(self.tmp, service_config(self.tmp, flush=20))
        self.addCleanup(self.daemon.stop)

    def spawn(self, cmd, env=None):
        return self.reap_at_end(subprocess.Popen(
            cmd, env=env or self.env(), cwd=self.tmp, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE))

    def env(self):
        return self.daemon.env(PYTHONPATH=PY_SHIM)

    def ticker(self, lang, count, delay):
        prog = RUBY_TICKER if lang == "ruby" else PY_TICKER
        p = self.spawn(["ruby" if lang == "ruby" else "python3", prog, str(count), str(delay)])
        return p, Lines(p.stdout)

    def follow(self, *args):
        p = self.spawn([CTRECCTL, "follow", "-s", self.daemon.sock, *args])
        return p, Lines(p.stdout)

    def finish(self, p, timeout=30):
        """Waits for a process that must end by itself; returns its stderr."""
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            self.fail(f"{p.args} did not end by itself")
        return p.stderr.read().decode()

    def traces(self):
        return trace_folders(os.path.join(self.tmp, "traces"))

    def test_step_listing_is_live_and_ends_with_the_session(self):
        prog, prog_out = self.ticker("ruby", 8, 0.3)
        prog_out.wait_for(r"^tick 0 ")
        fol, out = self.follow("--pid", str(prog.pid))
        # Live: a line the program prints after follow started shows up
        # in the feed while the program is still running.
        seen = out.wait_for(r"\[stdout\] tick 2 -> 6$")
        done = prog_out.wait_for(r"^done 84$")
        self.assertLess(seen, done)
        self.assertEqual(prog.wait(timeout=30), 0)
        err = self.finish(fol)
        self.assertEqual(fol.returncode, 0, err)
        fol_out = out
        fol_out.thread.join(5)
        lines = fol_out.lines()
        self.assertRegex(lines[0], rf"^== session \d+: pid {prog.pid} .*_follow_ticker\.rb")
        self.assertRegex(lines[1], r"^== interval 1: .*/traces/_follow_ticker\.rb-")
        self.assertEqual(lines[-2:], ["== interval 1 complete (program exited) ==",
                                      f"== session {lines[0].split()[2][:-1]} ended =="])
        pos = 0
        if FORMAT == "ctfs":
            # Live, a CTFS follower shows no call of work(): a call record
            # is written once every call opened before it returned, here
            # at the end, after its steps were handed out (docs/ctfs.md).
            for i in range(8):
                stdout = next(k for k in range(pos, len(lines))
                              if lines[k].strip() == f"[stdout] tick {i} -> {i * 3}")
                step = next(k for k in range(pos, stdout)
                            if STEP_5.fullmatch(lines[k].strip()))
                self.assertIn(f"value = {i * 3}", [l.strip() for l in lines[step:stdout]])
                pos = stdout
        # Everything in order: each call, its output, its return, indented
        # one level deeper than the loop that calls it.
        for i in range(8 if FORMAT == "json" else 0):
            call = next(k for k in range(pos, len(lines)) if re.fullmatch(
                rf"( *)→ call work\(self=main, i={i}, label=\"tick\"\)", lines[k]))
            indent = len(lines[call]) - len(lines[call].lstrip())
            step = next(k for k in range(call, len(lines))
                        if STEP_5.fullmatch(lines[k].strip()))
            stdout = lines.index(" " * (indent + 2) + f"[stdout] tick {i} -> {i * 3}", call)
            ret = lines.index(" " * indent + f"← return {i * 3}", stdout)
            self.assertLess(step, stdout)
            self.assertIn(" " * (indent + 4) + f"value = {i * 3}", lines[call:ret])
            pos = ret
        self.assertIn("[stdout] done 84", [l.strip() for l in lines[pos:]])
        self.assertIn("total = 84", [l.strip() for l in lines[pos:]])

    def test_json_lines_are_the_trace_records(self):
        prog, prog_out = self.ticker("python", 6, 0.3)
        prog_out.wait_for(r"^tick 0 ")
        # The only live session is followed when none is named.
        fol, out = self.follow("--json")
        first = out.wait_for(r"^\{")
        self.assertIsNone(prog.poll())
        prog_out.wait_for(r"^done 45$")
        self.assertLess(first, prog_out.when(r"^done"))
        self.assertEqual(prog.wait(timeout=30), 0)
        err = self.finish(fol)
        self.assertEqual(fol.returncode, 0, err)
        out.thread.join(5)
        folders = self.traces()
        self.assertEqual(len(folders), 1)
        texts, records = file_records(folders[0])
        got = out.lines()
        assert_feed_is(self, got, texts)
        self.assertEqual(len(records), len(texts))
        # The program's output arrived through the feed too.
        events = [json.loads(line)["Event"]["content"] for line in got if '"Event"' in line]
        self.assertIn("tick 5 -> 15\n", events)

    def test_follows_into_the_next_interval(self):
        prog, prog_out = self.ticker("ruby", 14, 0.2)
        prog_out.wait_for(r"^tick 0 ")
        status = run([CTRECCTL, "status", "-s", self.daemon.sock, "--json"])
        sid = [json.loads(l)["id"] for l in status.stdout.decode().splitlines()
               if json.loads(l)["pid"] == prog.pid][0]
        fol, out = self.follow("--json", str(sid))
        listing, text = self.follow(str(sid))
        prog_out.wait_for(r"^tick 2 ")
        res = run([CTRECCTL, "stop", "-s", self.daemon.sock, "--pid", str(prog.pid)])
        self.assertEqual(res.returncode, 0, res.stderr)
        prog_out.wait_for(r"^tick 5 ")
        text.wait_for(r"^== interval 1 complete \(stopped by ctrecctl\) ==$")
        self.assertIsNone(fol.poll(), "follow ended while the session was paused")
        res = run([CTRECCTL, "start", "-s", self.daemon.sock, "--pid", str(prog.pid)])
        self.assertEqual(res.returncode, 0, res.stderr)
        text.wait_for(r"^== interval 2: ")
        self.assertLess(text.when(r"^== interval 2: "), prog_out.wait_for(r"^done "))
        self.assertEqual(prog.wait(timeout=30), 0)
        for p in (fol, listing):
            err = self.finish(p)
            self.assertEqual(p.returncode, 0, err)
        out.thread.join(5)
        text.thread.join(5)
        folders = sorted(self.traces(), key=len)
        self.assertEqual(len(folders), 2)
        self.assertTrue(folders[1].endswith(os.path.basename(folders[0]) + "-2"))
        # One boundary record stands between the intervals' records.
        got = out.lines()
        bounds = [i for i, l in enumerate(got) if l.startswith('{"IntervalBoundary"')]
        self.assertEqual(len(bounds), 1, got)
        self.assertEqual(json.loads(got[bounds[0]]), {"IntervalBoundary": {
            "ended": 1, "state": "complete", "end_reason": "stopped by ctrecctl",
            "next": 2, "trace": folders[1]}})
        first = file_records(folders[0])[0]
        assert_feed_is(self, got[:bounds[0]], first)
        assert_feed_is(self, got[bounds[0] + 1:], file_records(folders[1])[0])
        lines = text.lines()
        self.assertIn(f"== interval 2: {folders[1]} ==", lines)
        self.assertEqual(lines[-2:], ["== interval 2 complete (program exited) ==",
                                      f"== session {sid} ended =="])
        second = lines[lines.index(f"== interval 2: {folders[1]} =="):]
        self.assertIn("[stdout] done 273", [l.strip() for l in second])

    def test_ctrl_c_ends_follow_cleanly(self):
        prog, prog_out = self.ticker("python", 40, 0.1)
        prog_out.wait_for(r"^tick 0 ")
        fol, out = self.follow("--pid", str(prog.pid))
        out.wait_for(r"\[stdout\] tick 1 ")
        fol.send_signal(signal.SIGINT)
        err = self.finish(fol, timeout=5)
        self.assertEqual(fol.returncode, 130, err)  # as a shell reports Ctrl-C
        self.assertEqual(err, "")
        # The program and its recording go on undisturbed.
        self.assertIsNone(prog.poll())
        self.assertEqual(prog.wait(timeout=30), 0)

    def test_errors_name_the_problem(self):
        res = run([CTRECCTL, "follow", "-s", self.daemon.sock])
        self.assertEqual(res.returncode, 1)
        self.assertIn(b"no live session to follow", res.stderr)
        self.assertEqual(res.stdout, b"")
        prog, prog_out = self.ticker("ruby", 30, 0.1)
        prog_out.wait_for(r"^tick 0 ")
        res = run([CTRECCTL, "follow", "-s", self.daemon.sock, "424242"])
        self.assertEqual(res.returncode, 1)
        self.assertIn(b"no live session 424242", res.stderr)
        res = run([CTRECCTL, "follow", "-s", self.daemon.sock, "--pid", "999999999"])
        self.assertEqual(res.returncode, 1)
        self.assertIn(b"no live session for pid 999999999", res.stderr)
        # Two live sessions and none named: the user has to choose.
        other, other_out = self.ticker("python", 30, 0.1)
        other_out.wait_for(r"^tick 0 ")
        res = run([CTRECCTL, "follow", "-s", self.daemon.sock])
        self.assertEqual(res.returncode, 1)
        err = res.stderr.decode()
        self.assertIn("2 live sessions", err)
        self.assertIn(f"pid {prog.pid}", err)
        self.assertIn(f"pid {other.pid}", err)
        res = run([CTRECCTL, "follow", "-s", self.daemon.sock, "abc"])
        self.assertEqual(res.returncode, 2)
        self.assertIn(b"not a session id or trace folder: abc", res.stderr)
        res = run([CTRECCTL, "follow", "-s", os.path.join(self.tmp, "nothing.sock")])
        self.assertEqual(res.returncode, 1)
        self.assertIn(b"cannot reach ctrecd", res.stderr)
        res = run([CTRECCTL, "follow", "--help"])
        self.assertEqual(res.returncode, 0)
        self.assertIn(b"follow [-s SOCKET] [-t SEC] [--json] [--wait]\n"
                      b"                [SESSION | --pid PID | --program NAME]", res.stdout)
        self.assertIn(b"follow [SESSION]", run([CTRECCTL, "--help"]).stdout)


if __name__ == "__main__":
    import unittest
    unittest.main()


class FollowCtfs(TempDirTest):
    """follow TRACE_DIR renders a trace.ct as it renders the JSON trace of
    the same records, and follows one while it is written."""

    def listing(self, folder, *opts):
        res = run([CTRECCTL, "follow", *opts, folder], timeout=60)
        self.assertEqual((res.returncode, res.stderr.decode()), (0, ""))
        # The first line names the folder.
        return res.stdout.decode().split("\n", 1)[1]

    def assert_same_listing(self, lang, python="python3"):
        folder, ctfs = record_ctfs_pair(self, lang, python)
        json_text, ctfs_text = self.listing(folder), self.listing(ctfs)
        self.assertIn("→ call add(", json_text)
        self.assertIn("[stdout] line 3", json_text)
        # CTFS closes at the end the calls the JSON trace leaves open (the
        # top-level one), without a value; everything else is the same.
        end = "== interval 1 complete (program exited) ==\n"
        closing = ctfs_text[len(json_text) - len(end):-len(end)]
        self.assertEqual(ctfs_text[:len(json_text) - len(end)], json_text[:-len(end)])
        self.assertTrue(ctfs_text.endswith(end), ctfs_text)
        self.assertTrue(json_text.endswith(end), json_text)
        self.assertRegex(closing, r"^(← return\n)*$")
        # --json prints the same records but for the interning ones, which
        # CTFS keeps in tables (read before the records that use them).
        def kinds(text):
            return [list(json.loads(line))[0] if line.startswith("{") else line
                    for line in text.splitlines()]
        names = ("Path", "Function", "Type", "VariableName")
        j = [k for k in kinds(self.listing(folder, "--json")) if k not in names]
        c = [k for k in kinds(self.listing(ctfs, "--json")) if k not in names]
        self.assertEqual(c[:len(j)], j)

    def test_ruby(self):
        self.assert_same_listing("ruby")

    def test_python(self):
        each_python(self, lambda py: self.assert_same_listing("python", py))

    def follow_live_mirror(self, folder, opts, shown, *follow_opts):
        """follow [follow_opts] of a trace.ct that ctfs_mirror opts writes
        from folder while the metadata says recording, then complete;
        returns the lines follow printed, the first line matching shown
        (a step) while the writer still wrote."""
        live, writer = start_live_mirror(self, folder, opts)
        p = subprocess.Popen([CTRECCTL, "follow", *follow_opts, live], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        lines = Lines(p.stdout)
        try:
            lines.wait_for(shown)
            self.assertIsNone(writer.poll(), "the writer ended before a step was shown")
            self.assertEqual(writer.wait(timeout=60), 0)
            time.sleep(0.3)
            self.assertIsNone(p.poll(), "follow ended while the trace was recording")
            shutil.copy(os.path.join(folder, "trace_metadata.json"), live)
            p.wait(timeout=30)
        finally:
            for q in (p, writer):
                if q.poll() is None:
                    q.kill()
                q.wait()
            err = p.stderr.read()
            lines.thread.join(timeout=10)
            for f in (p.stderr, p.stdout, writer.stderr):
                f.close()
        self.assertEqual((p.returncode, err), (0, b""))
        return lines.lines()

    def test_folder_found_before_its_metadata(self):
        """ctrecd writes a new folder's metadata just after its trace file:
        follow DIR started in between waits for it, then follows the trace
        it names, instead of ending at once with a folder read as it is."""
        _, ctfs = record_ctfs_pair(self, "python")
        meta = os.path.join(ctfs, "trace_metadata.json")
        with open(meta) as f:
            saved = f.read()
        os.unlink(meta)
        p = subprocess.Popen([CTRECCTL, "follow", ctfs], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        time.sleep(0.5)
        self.assertIsNone(p.poll(), "follow did not wait for the metadata")
        with open(meta + ".new", "w") as f:
            f.write(saved)
        os.replace(meta + ".new", meta)
        out, err = p.communicate(timeout=30)
        self.assertEqual((p.returncode, err), (0, b""))
        self.assertRegex(out.decode(), r"^== interval 1: ")
        self.assertIn("[stdout] line 3", out.decode())
        self.assertTrue(out.decode().endswith("== interval 1 complete (program exited) ==\n"))

    def test_live_output_stays_with_its_step(self):
        """A flush between a step and its output (ctrecd flushes on a timer,
        not at steps): a follower hands the step out, then its output at
        the next poll, still before any later step."""
        folder, ctfs = record_ctfs_pair(self, "python")
        got = self.follow_live_mirror(folder, ("--delay", "150", "--flush", "1",
                                               "--flush-at", "Event"), r'^\{"Step"', "--json")
        self.assertEqual(len([l for l in got if l.startswith('{"Event"')]), 5)
        assert_feed_is(self, got, file_records(ctfs)[0], ctfs=True)

    def test_live(self):
        """While a slow writer flushes trace.ct, follow shows its steps as
        they arrive (calls are only written once the calls opened before
        them returned, so a live listing has the steps and output without
        the calls still open) and ends when the metadata says complete."""
        folder, _ = record_ctfs_pair(self, "python")
        got = self.follow_live_mirror(folder, ("--delay", "100", "--flush", "300"),
                                      r"prog\.py:\d+")
        self.assertEqual(got[-1], "== interval 1 complete (program exited) ==")
        steps = [line.strip() for line in got if re.fullmatch(r"\s*#\d+ prog\.py:\d+  \S.*", line)]
        want = [line.strip() for line in self.listing(folder).splitlines()
                if re.fullmatch(r"\s*#\d+ prog\.py:\d+  \S.*", line)]
        # Every step the finished listing shows is there, in order (the
        # live one also shows the lines that hold a call it cannot see).
        it = iter(steps)
        self.assertTrue(all(s in it for s in want), (want, steps))
        out = [line.strip() for line in got if "[stdout]" in line]
        self.assertEqual(out, [f"[stdout] line {i}" for i in range(4)] +
                         ["[stdout] 1208925819614629174706176"])
