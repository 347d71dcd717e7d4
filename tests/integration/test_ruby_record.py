"""Real Ruby programs recorded with `ctrecctl record` (private daemon).

Every trace must pass `ctrecctl check`, its steps must equal Ruby's own line
events (TracePoint reference run), its output events must equal the real
output, and the program must behave exactly as it does untraced."""
import glob
import re
import os
import signal
import subprocess
import time

from harness import (CTRECCTL, RUBY_PROGRAMS, RUBY_SHIM, TempDirTest, Trace, record,
                     ruby_line_events, run, trace_folders, validate)

# Arguments some programs need.
ARGS = {"args_sum.rb": ["1", "2", "3"], "slow_counter.rb": ["3"]}
# Programs that fork: one trace per process, checked in RecordBehaviour.
FORKING = {"fork_threads.rb"}


def programs():
    """Every test program except helpers of other suites (names with _)."""
    return sorted(p for p in glob.glob(os.path.join(RUBY_PROGRAMS, "*.rb"))
                  if not os.path.basename(p).startswith("_"))


class RecordEachProgram(TempDirTest):
    """All test programs: validity, steps vs TracePoint, output, behaviour."""

    def check_program(self, prog):
        name = os.path.basename(prog)
        args = ARGS.get(name, [])
        plain = run(["ruby", prog, *args], cwd=self.tmp)
        out_dir = os.path.join(self.tmp, "out-" + name)
        rec = record(["ruby", prog, *args], out_dir)
        # Same stdout, stderr and exit status as untraced.
        self.assertEqual(rec.stdout, plain.stdout, name)
        self.assertEqual(rec.stderr, plain.stderr, name)
        self.assertEqual(rec.returncode, plain.returncode, name)
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), 1, name)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertEqual(t.state, "complete", name)
        self.assertEqual(t.meta["program"], prog)
        self.assertEqual(t.meta["args"], args)
        self.assertEqual(t.meta["ctrec"]["exit_status"], plain.returncode)
        # The steps are exactly Ruby's own line events.
        self.assertEqual(t.line_steps(), ruby_line_events(prog, args, cwd=self.tmp), name)
        # Output events carry exactly the bytes written.
        self.assertEqual(t.output(0), plain.stdout.decode(errors="replace"), name)
        self.assertEqual(t.output(2), plain.stderr.decode(errors="replace"), name)
        # The source copy is the program itself.
        with open(prog, "rb") as a, open(os.path.join(folders[0], "files", prog.lstrip("/")), "rb") as b:
            self.assertEqual(a.read(), b.read())
        return t

    def test_all_programs(self):
        progs = programs()
        self.assertGreaterEqual(len(progs), 11)
        for prog in progs:
            if os.path.basename(prog) in FORKING:
                continue
            with self.subTest(program=os.path.basename(prog)):
                self.check_program(prog)


def rec_pid(traces):
    """The pid of the process whose parent is not among the traces."""
    pids = {t.meta["ctrec"]["pid"] for t in traces}
    return next(t.meta["ctrec"]["pid"] for t in traces if t.meta["ctrec"]["ppid"] not in pids)


class ExpectedTraces(TempDirTest):
    """Programs like those of the pure-Ruby recorder's golden traces, with
    what we expect of our own traces written out: calls with their arguments
    (self first), return values, output and Ruby's line events. Where we
    differ from that recorder we do so deliberately: our top-level
    function's path is the program (theirs is an empty path 0), we emit no
    Assignment/BindVariable records (the reader ignores them), and we record
    exactly Ruby's line events (it adds a Step at a method's `end` line on
    return and re-steps the caller's line after it)."""

    def record_one(self, name, args=()):
        prog = os.path.join(RUBY_PROGRAMS, name + ".rb")
        out_dir = os.path.join(self.tmp, name)
        rec = record(["ruby", prog, *args], out_dir)
        self.assertEqual(rec.returncode, 0, rec.stderr)
        t = Trace(trace_folders(out_dir)[0])
        return t, rec

    def test_addition(self):
        t, rec = self.record_one("addition")
        self.assertEqual(t.calls_with_args(),
                         [("<top-level>", {}), ("add", {"self": ("raw", "main"), "a": 1, "b": 2})])
        self.assertEqual(t.returns(), [3])
        self.assertEqual(t.output(), "3\n")
        self.assertEqual([s[1] for s in t.line_steps()], [1, 5, 2])

    def test_args_sum(self):
        t, rec = self.record_one("args_sum", ["1", "2", "3"])
        self.assertEqual(t.output(), "6\n")

    def test_exceptions_are_error_events(self):
        t, rec = self.record_one("exceptions")
        self.assertTrue(t.errors(), "raised exceptions become Error events")
        for e in t.errors():
            self.assertRegex(e, r"^[A-Z]\w*(::\w+)*: ")


class RecordBehaviour(TempDirTest):
    def test_exit_status_and_output_preserved(self):
        prog = os.path.join(self.tmp, "exit3.rb")
        with open(prog, "w") as f:
            f.write('puts "before"\n$stderr.puts "warn"\nexit 3\n')
        rec = record(["ruby", prog], os.path.join(self.tmp, "out"))
        self.assertEqual(rec.returncode, 3)
        self.assertEqual(rec.stdout, b"before\n")
        self.assertEqual(rec.stderr, b"warn\n")
        t = Trace(trace_folders(os.path.join(self.tmp, "out"))[0])
        validate(self, t.folder)
        self.assertEqual(t.meta["ctrec"]["exit_status"], 3)
        self.assertEqual(t.state, "complete")

    def test_uncaught_exception(self):
        prog = os.path.join(self.tmp, "boom.rb")
        with open(prog, "w") as f:
            f.write('def f(x)\n  raise ArgumentError, "bad #{x}"\nend\nf(1)\n')
        plain = run(["ruby", prog])
        rec = record(["ruby", prog], os.path.join(self.tmp, "out"))
        self.assertEqual(rec.returncode, plain.returncode)
        self.assertEqual(rec.stderr, plain.stderr)
        t = Trace(trace_folders(os.path.join(self.tmp, "out"))[0])
        validate(self, t.folder)
        self.assertEqual(t.errors()[-1], "ArgumentError: bad 1")
        self.assertEqual(t.meta["ctrec"]["exit_status"], 1)

    def test_summary_printed(self):
        prog = os.path.join(RUBY_PROGRAMS, "addition.rb")
        out_dir = os.path.join(self.tmp, "out")
        res = run([CTRECCTL, "record", "-o", out_dir, "--", "ruby", prog])
        self.assertEqual(res.returncode, 0)
        folder = trace_folders(out_dir)[0]
        m = re.search(r"ctrecctl: trace " + re.escape(folder) +
                      r": (\d+) steps?, (\d+) calls?, (\d+) events?; "
                      r"exit 0, (under 1|\d+) s, [\d.]+ KiB \(complete\)", res.stderr.decode())
        self.assertTrue(m, res.stderr)
        # The figures are what a reader of the trace counts (the top-level
        # call included, as CodeTracer's own reader counts it).
        t = Trace(folder)
        self.assertEqual(tuple(map(int, m.groups()[:3])),
                         (len(t.kinds("Step")), len(t.call_names()), len(t.kinds("Event"))))

    def test_shell_script_records_each_program(self):
        a = os.path.join(RUBY_PROGRAMS, "addition.rb")
        b = os.path.join(RUBY_PROGRAMS, "array_sum.rb")
        script = os.path.join(self.tmp, "both.sh")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\nruby {a}\nruby {b}\necho \"sock=$CT_RECORDER_SOCKET\"\n")
        os.chmod(script, 0o755)
        out_dir = os.path.join(self.tmp, "out")
        rec = record([script], out_dir)
        self.assertEqual(rec.returncode, 0, rec.stderr)
        self.assertRegex(rec.stdout.decode(), r"sock=(fifo:)?/.+/ctrec/record-\d+\.(sock|fifos)")
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), 2)
        progs = sorted(Trace(f).meta["program"] for f in folders)
        self.assertEqual(progs, sorted([a, b]))
        for f in folders:
            validate(self, f)
            self.assertEqual(Trace(f).state, "complete")

    def test_daemon_missing(self):
        prog = os.path.join(RUBY_PROGRAMS, "addition.rb")
        env = dict(os.environ, CT_RECORDER_SOCKET=os.path.join(self.tmp, "none.sock"),
                   RUBYLIB=RUBY_SHIM, RUBYOPT="-rctrec")
        plain = run(["ruby", prog])
        res = run(["ruby", prog], env=env)
        self.assertEqual(res.stdout, plain.stdout)
        self.assertEqual(res.returncode, plain.returncode)
        lines = res.stderr.decode().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("ctrec: "), lines)
        self.assertIn("none.sock", lines[0])

    def test_no_socket_variable_means_no_effect(self):
        prog = os.path.join(RUBY_PROGRAMS, "addition.rb")
        env = dict(os.environ, RUBYLIB=RUBY_SHIM, RUBYOPT="-rctrec")
        plain = run(["ruby", prog])
        res = run(["ruby", prog], env=env)
        self.assertEqual((res.stdout, res.stderr, res.returncode),
                         (plain.stdout, plain.stderr, plain.returncode))

    def test_sigkill_leaves_valid_aborted_trace(self):
        prog = os.path.join(RUBY_PROGRAMS, "slow_counter.rb")
        out_dir = os.path.join(self.tmp, "out")
        p = subprocess.Popen([CTRECCTL, "record", "-q", "-o", out_dir, "--", "ruby", prog, "400"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Wait until the program has printed a few lines, then kill it hard.
        lines = [p.stdout.readline() for _ in range(5)]
        self.assertTrue(all(l.startswith(b"tick") for l in lines), lines)
        # The program is ctrecctl's only child in ctrecctl's process group
        # (the private daemon has a group of its own).
        kids = run(["pgrep", "-P", str(p.pid), "-g", str(os.getpgid(p.pid))]).stdout.split()
        self.assertEqual(len(kids), 1, kids)
        os.kill(int(kids[0]), signal.SIGKILL)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, -signal.SIGKILL)
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), 1)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertTrue(t.state.startswith("aborted"), t.state)
        # Everything the program printed before the kill was flushed in time
        # (the shim flushes every 100 ms) except at most the last batch.
        self.assertTrue(t.output().startswith("tick 0 total 0\n"))

    def test_fork_child_is_its_own_session(self):
        prog = os.path.join(RUBY_PROGRAMS, "fork_threads.rb")
        plain = run(["ruby", prog])
        out_dir = os.path.join(self.tmp, "out")
        rec = record(["ruby", prog], out_dir)
        self.assertEqual((rec.stdout, rec.stderr, rec.returncode),
                         (plain.stdout, plain.stderr, plain.returncode))
        traces = [Trace(f) for f in trace_folders(out_dir)]
        self.assertEqual(len(traces), 2)
        for t in traces:
            validate(self, t.folder)
            self.assertEqual(t.state, "complete")
        parent, child = sorted(traces, key=lambda t: t.meta["ctrec"]["pid"] != rec_pid(traces))
        self.assertEqual(child.meta["ctrec"]["ppid"], parent.meta["ctrec"]["pid"])
        # Each process's own output, no event recorded twice.
        self.assertEqual(child.output(), "child:6\n")
        self.assertEqual(parent.output() + child.output(),
                         plain.stdout.decode().replace("child:6\n", "") + "child:6\n")
        self.assertIn("in_child", child.call_names())
        self.assertNotIn("in_child", parent.call_names())

    def test_ctrecctl_help_and_errors(self):
        for verb in ([], ["record"], ["status"]):
            res = run([CTRECCTL, *verb, "--help"])
            self.assertEqual(res.returncode, 0)
            self.assertIn(b"Usage: ctrecctl", res.stdout)
        res = run([CTRECCTL, "frobnicate"])
        self.assertEqual(res.returncode, 2)
        self.assertIn(b"unknown verb 'frobnicate'", res.stderr)
        res = run([CTRECCTL, "record"])
        self.assertEqual(res.returncode, 2)
        self.assertIn(b"missing command", res.stderr)
        res = run([CTRECCTL, "status", "-s", os.path.join(self.tmp, "nope.sock")])
        self.assertEqual(res.returncode, 3)  # not reachable
        self.assertIn(b"cannot reach ctrecd", res.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
