"""ctrecctl show: the step listing of a trace folder, recorded from real Ruby
and Python programs through a real ctrecd, compared with the expected
listings in expected/ (one per language; every Python gives the same). The
suite runs once per format, so both trace.json and trace.ct are shown."""
import json
import os
import re
import shutil
import subprocess
import time

from harness import (CTRECCTL, FORMAT, PY_SHIM, SOURCE, Daemon, TempDirTest, record, run,
                     trace_folders)
from test_check import each_python

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = {"python": os.path.join(SOURCE, "tests", "programs", "python", "show_demo.py"),
            "ruby": os.path.join(SOURCE, "tests", "programs", "ruby", "show_demo.rb")}
STEP = re.compile(r"^\s*#(\d+) ")


def expected(lang):
    with open(os.path.join(HERE, "expected", f"show_{lang}.txt")) as f:
        return f.read().splitlines()


def without_closing(lines):
    """A CTFS trace closes at its end the calls the JSON trace leaves open
    (the top-level one), without a value (docs/ctfs.md): those returns go."""
    lines = list(lines)
    while lines and lines[-1].strip() == "← return":
        lines.pop()
    return lines


def step_slice(lines, first, last):
    """The lines of steps first..last (None: open) of a whole listing: from
    the line of step first to the line of the step after last. What comes
    before the first step belongs to step 0."""
    def at(n):
        return next(i for i, l in enumerate(lines) if STEP.match(l) and
                    int(STEP.match(l).group(1)) >= n)
    start = 0 if not first else at(first)
    end = len(lines) if last is None else at(last + 1)
    return lines[start:end]


class ShowTest(TempDirTest):
    def record(self, lang, python="python3"):
        """Records the language's demo program, run from self.tmp (so paths
        show relative to it); returns the trace folder."""
        prog = shutil.copy(PROGRAMS[lang], self.tmp)
        out = os.path.join(self.tmp, "out")
        shutil.rmtree(out, ignore_errors=True)
        cmd = [python if lang == "python" else "ruby", os.path.basename(prog)]
        res = run([CTRECCTL, "record", "-q", "-o", out, "--format", FORMAT, "--", *cmd],
                  cwd=self.tmp)
        self.assertEqual(res.returncode, 0, res.stderr)
        folder, = trace_folders(out)
        return folder

    def show(self, *args, status=0):
        res = run([CTRECCTL, "show", *args])
        self.assertEqual(res.returncode, status, res.stderr.decode())
        return res.stdout.decode().splitlines(), res.stderr.decode()

    def assert_listing(self, lang, python="python3"):
        folder = self.record(lang, python)
        want = expected(lang)
        got, err = self.show(folder)
        self.assertEqual(err, "")
        self.assertEqual(without_closing(got), want)
        calls, _ = self.show("--calls", folder)
        self.assertEqual(without_closing(calls),
                         [l for l in want if re.match(r"\s*(→ call|← return)", l)])
        for first, last in ((7, 9), (None, 3), (14, None), (0, 0)):
            arg = f"{'' if first is None else first}:{'' if last is None else last}"
            part, _ = self.show("--steps", arg, folder)
            self.assertEqual(without_closing(part), step_slice(want, first, last), arg)
        one, _ = self.show("--steps", "9", folder)
        self.assertEqual(one, step_slice(want, 9, 9))
        self.assert_json(folder, want)

    def assert_json(self, folder, want):
        """--json: one object per entry, saying what the text says."""
        got, _ = self.show("--json", folder)
        entries = [json.loads(line) for line in got]
        steps = [e for e in entries if e["kind"] == "step"]
        text_steps = [l.strip() for l in want if STEP.match(l)]
        self.assertEqual([f"#{e['step']} {e['path']}:{e['line']}  {e['source']}" for e in steps],
                         text_steps)
        indents = [(len(l) - len(l.lstrip())) // 2 for l in want if STEP.match(l)]
        self.assertEqual([e["depth"] for e in steps], indents)
        calls = [l.strip() for l in want if "→ call" in l]
        self.assertEqual(["→ call %s(%s)" % (e["function"], ", ".join(
            f"{a['name']}={a['value']}" for a in e["args"]))
            for e in entries if e["kind"] == "call"], calls)
        self.assertEqual([f"{e['name']} = {e['value']}" for e in entries if e["kind"] == "value"],
                         [l.strip() for l in want if re.match(r"\s+[\w@.]+ = ", l)])
        self.assertEqual("".join(e["text"] for e in entries if e["kind"] == "event"),
                         "total: 12\nwidth 9\n")
        rets = [e.get("value") for e in entries if e["kind"] == "return"]
        self.assertIn("9", rets)
        bare, _ = self.show("--json", "--no-source", folder)
        self.assertFalse(any("source" in json.loads(line) for line in bare))
        self.assertEqual(len(bare), len(got))

    def test_python(self):
        each_python(self, lambda py: self.assert_listing("python", py))

    def test_ruby(self):
        self.assert_listing("ruby")

    def test_source_is_the_traces_own_copy(self):
        """The source text comes from the trace's files/, not from the
        program's file as it is now; without a copy, steps show without."""
        folder = self.record("python")
        with open(os.path.join(self.tmp, "show_demo.py"), "w") as f:
            f.write("# changed after the recording\n" * 30)
        got, _ = self.show(folder)
        self.assertEqual(without_closing(got), expected("python"))
        shutil.rmtree(os.path.join(folder, "files"))
        got, _ = self.show(folder)
        no_source = [re.sub(r"^(\s*#\d+ \S+:\d+)  .*$", r"\1", l) for l in expected("python")]
        self.assertEqual(without_closing(got), no_source)
        self.assertIn("    #4 show_demo.py:17", got)
        plain, _ = self.show("--no-source", self.record("python"))
        self.assertEqual(without_closing(plain), no_source)

    def test_follow_uses_the_same_listing(self):
        for lang in ("python", "ruby"):
            folder = self.record(lang)
            res = run([CTRECCTL, "follow", folder])
            self.assertEqual(res.returncode, 0, res.stderr)
            lines = res.stdout.decode().splitlines()
            self.assertRegex(lines[0], r"^== interval 1: ")
            self.assertEqual(lines[-1], "== interval 1 complete (program exited) ==")
            self.assertEqual(without_closing(lines[1:-1]), expected(lang))

    def test_live_trace_shows_what_is_written(self):
        daemon = Daemon(self.tmp, extra=("--set", "output.flush_interval_ms=20"))
        go = os.path.join(self.tmp, "go")
        prog = os.path.join(self.tmp, "waiter.py")
        with open(prog, "w") as f:
            f.write("import os, sys, time\n"
                    "print('waiting', flush=True)\n"
                    "while not os.path.exists(sys.argv[1]):\n"
                    "    time.sleep(0.02)\n"
                    "print('done')\n")
        p = subprocess.Popen(["python3", prog, go], env=daemon.env(PYTHONPATH=PY_SHIM),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertEqual(p.stdout.readline(), b"waiting\n")
            deadline = time.time() + 30
            while True:
                folders = trace_folders(daemon.out)
                got, err = self.show(*folders) if folders else ([], "")
                if "[stdout] waiting" in [l.strip() for l in got] or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertIn("[stdout] waiting", [l.strip() for l in got])
            self.assertIn("is still being recorded", err)
            self.assertTrue(any(re.match(r"\s*#\d+ waiter\.py:3  while not os\.path", l)
                                for l in got), got)
            self.assertIsNone(p.poll())
        finally:
            open(go, "w").close()
            out, err = p.communicate(timeout=60)
        self.assertEqual((p.returncode, out), (0, b"done\n"), err)
        daemon.stop()
        got, err = self.show(*trace_folders(daemon.out))
        self.assertEqual(err, "")
        self.assertIn("[stdout] done", [l.strip() for l in got])

    def test_errors_are_clear(self):
        res = run([CTRECCTL, "show", self.tmp])
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"{self.tmp}: no trace here", res.stderr.decode())
        folder = self.record("ruby")
        name = "trace.ct" if FORMAT == "ctfs" else "trace.json"
        with open(os.path.join(folder, name), "r+b") as f:
            f.seek(100)
            f.write(b"\xff" * 4000)
        res = run([CTRECCTL, "show", folder])
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertRegex(res.stderr.decode(), rf"^ctrecctl: show: {re.escape(folder)}: .+")
        for args, msg in ((["--steps", "5:2", folder], "--steps"),
                          (["--steps", "x", folder], "--steps"),
                          ([], "name one TRACE_DIR"),
                          ([folder, folder], "unexpected argument"),
                          (["--bogus", folder], "")):
            res = run([CTRECCTL, "show", *args])
            self.assertEqual(res.returncode, 2, args)
            self.assertIn(msg, res.stderr.decode())
        res = run([CTRECCTL, "show", "--help"])
        self.assertEqual(res.returncode, 0)
        self.assertIn(b"show [--calls] [--steps FROM:TO] [--json] [--no-source] TRACE_DIR",
                      res.stdout)
        self.assertIn(b"show TRACE_DIR", run([CTRECCTL, "--help"]).stdout)


if __name__ == "__main__":
    import unittest
    unittest.main()
