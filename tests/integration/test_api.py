"""The in-program API with real programs: Python's ctrec.mark, pause,
resume and recording(), Ruby's Ctrec.mark, pause, resume and recording { }.
A mark is a trace-log event at the step that made it; pause and resume
end and open intervals (trace folders) as ctrecctl stop and start do; an
untraced program that calls them behaves exactly as without them. The
Python cases run under python3 and each other CPython the shim is built
for (ApiPython_py312, ...)."""
import os
import shutil
import socket
import subprocess
import textwrap
import time

from harness import (CTRECCTL, PY_SHIM, RUBY_SHIM, SOURCE, Daemon, TempDirTest, Trace,
                     frame, hello, mp, run, service_config, trace_folders, validate, write)
from test_python_record import per_interpreter

os.environ.pop("PYTHONPATH", None)

# Every program prints what it computed, so that traced and untraced runs
# can be compared; the comments name the lines the tests expect.
PY_PROGRAM = textwrap.dedent("""\
    import ctrec

    def work(n):
        total = 0
        for i in range(n):
            total += i
        return total

    a = work(2)
    ctrec.mark("before pause")
    ctrec.pause()
    b = work(3)
    ctrec.mark("never seen")
    ctrec.resume()
    c = work(1)
    with ctrec.recording():
        d = 1
    ctrec.pause()
    try:
        with ctrec.recording():
            e = work(1)
            raise ValueError("out of the block")
    except ValueError:
        e = -1
    f = 2
    print(a, b, c, d, e, f)
    """)

# (basename, line) steps of each interval of PY_PROGRAM, and its output.
PY_INTERVALS = [
    [1, 3, 9, 4, 5, 6, 5, 6, 5, 7, 10, 11],
    [15, 4, 5, 6, 5, 7, 16, 17, 16, 18],
    # 20: CPython reports the with statement again as the exception leaves
    [21, 4, 5, 6, 5, 7, 22, 20],
]
PY_OUTPUT = "1 3 0 1 -1 2\n"

RB_PROGRAM = textwrap.dedent("""\
    def work(n)
      total = 0
      n.times { |i| total += i }
      total
    end

    a = work(2)
    Ctrec.mark("before pause")
    Ctrec.pause
    b = work(3)
    Ctrec.mark("never seen")
    Ctrec.resume
    c = work(1)
    Ctrec.recording do
      d = 1
    end
    Ctrec.pause
    e = begin
      Ctrec.recording do
        work(1)
        raise "out of the block"
      end
    rescue RuntimeError
      -1
    end
    f = 2
    puts [a, b, c, e, f].inspect
    """)

RB_INTERVALS = [
    [1, 7, 2, 3, 3, 3, 4, 8, 9],
    [13, 2, 3, 3, 4, 14, 15, 17],
    [20, 2, 3, 3, 4, 21],
]
RB_OUTPUT = "[1, 3, 0, -1, 2]\n"


def intervals(daemon, test):
    """The daemon's trace folders as Traces, in interval order, each
    checked with ctrecctl check."""
    daemon.stop()
    folders = trace_folders(daemon.out)
    for f in folders:
        validate(test, f)
    return sorted((Trace(f) for f in folders),
                  key=lambda t: t.meta["ctrec"]["interval"]["index"])


def lines(t):
    return [line for _, line in t.line_steps()]


def mark_steps(t):
    """(text, line of the step before it) of every trace-log event."""
    out, line = [], None
    for r in t.records:
        if "Step" in r:
            line = r["Step"]["line"]
        elif "Event" in r and r["Event"]["kind"] == 12:
            out.append((r["Event"]["content"], line))
    return out


class ApiTest(TempDirTest):
    """What the Python and Ruby cases share: a daemon of their own, a
    program run traced, and the intervals of the main example."""
    output = steps = mark_line = None

    def start(self, extra_yaml=""):
        self.daemon = Daemon(self.tmp, service_config(self.tmp, extra_yaml, flush=20))
        return self.daemon

    def run_prog(self, text, env):
        raise NotImplementedError

    def traced_env(self, d):
        raise NotImplementedError

    def traced(self, text, extra_yaml=""):
        d = self.start(extra_yaml)
        res = self.run_prog(text, self.traced_env(d))
        self.assertEqual(res.stderr, b"")
        return res, intervals(d, self)

    def check_example(self, res, traces):
        """The example's run: its output, and its three intervals with
        their steps; the mark is at the step of the line that made it, the
        one made while paused is nowhere, nor is the output after the
        last pause."""
        self.assertEqual((res.returncode, res.stdout.decode()), (0, self.output))
        self.assertEqual([lines(t) for t in traces], self.steps)
        for t in traces:
            self.assertEqual(t.state, "complete")
            self.assertEqual(t.meta["ctrec"]["interval"]["end_reason"], "paused by the program")
        self.assertEqual(mark_steps(traces[0]), [("before pause", self.mark_line)])
        self.assertEqual(mark_steps(traces[1]) + mark_steps(traces[2]), [])
        self.assertEqual("".join(t.output() for t in traces), "")


class ApiPython(ApiTest):
    python = "python3"
    output, steps, mark_line = PY_OUTPUT, PY_INTERVALS, 10

    def run_prog(self, text, env):
        prog = write(os.path.join(self.tmp, "prog.py"), text)
        return run([self.python, prog], env=env, cwd=self.tmp)

    def traced_env(self, d):
        return d.env(PYTHONPATH=PY_SHIM)

    def test_marks_pauses_and_resumes_make_intervals(self):
        self.check_example(*self.traced(PY_PROGRAM))

    def test_under_python_m_ctrec(self):
        d = self.start()
        prog = write(os.path.join(self.tmp, "prog.py"), PY_PROGRAM)
        res = run([self.python, "-m", "ctrec", prog], env=d.env(PYTHONPATH=PY_SHIM),
                  cwd=self.tmp)
        self.assertEqual(res.stderr, b"")
        self.check_example(res, intervals(d, self))

    def test_untraced_runs_behave_the_same(self):
        """The same output and exit status with the shim's folder on the
        path and no daemon, with no socket set, and with a ctrec package
        that has no shim for the interpreter at all."""
        text = PY_PROGRAM + "import sys; sys.exit(3)\n"
        d = self.start()
        traced = self.run_prog(text, d.env(PYTHONPATH=PY_SHIM))
        bare = os.path.join(self.tmp, "bare")
        shutil.copytree(os.path.join(SOURCE, "client", "python", "ctrec"),
                        os.path.join(bare, "ctrec"))
        envs = [dict(os.environ, PYTHONPATH=PY_SHIM), dict(os.environ, PYTHONPATH=bare)]
        for env in envs:
            res = self.run_prog(text, env)
            self.assertEqual((res.returncode, res.stdout, res.stderr), (3, PY_OUTPUT.encode(), b""))
        self.assertEqual((traced.returncode, traced.stdout, traced.stderr),
                         (3, PY_OUTPUT.encode(), b""))

    def test_marks_name_what_is_not_text(self):
        prog = ("import ctrec\nclass Loud:\n    def __str__(self):\n        raise RuntimeError\n"
                "ctrec.mark(Loud())\nctrec.mark(b'raw')\nctrec.mark('x' * 100000)\n")
        res, traces = self.traced(prog)
        self.assertEqual(res.returncode, 0)
        (t,) = traces
        marks = mark_steps(t)
        self.assertEqual(marks[:2], [("<Loud>", 5), ("raw", 6)])
        self.assertEqual((len(marks[2][0]), marks[2][1]), (65536, 7))

    def test_paused_start_is_resumed_by_the_program(self):
        """record.start: paused, as ctrecctl stop leaves a session: a pause
        changes nothing, the program's resume opens the first interval."""
        prog = ("import ctrec\nctrec.pause()\nx = 1\nctrec.resume()\ny = 2\n"
                "ctrec.mark('on')\n")
        res, traces = self.traced(prog, "record:\n  start: paused\n")
        self.assertEqual(res.returncode, 0)
        (t,) = traces
        self.assertEqual(t.meta["ctrec"]["interval"]["index"], 1)
        self.assertEqual(lines(t), [5, 6])
        self.assertEqual(mark_steps(t), [("on", 6)])
        self.assertEqual(t.meta["ctrec"]["interval"]["end_reason"], "program exited")

    def test_resume_does_not_pass_a_limit(self):
        """A record.max_* limit reached stays reached: the program cannot
        record past the operator's bound."""
        prog = ("import ctrec\nfor i in range(50):\n    x = i\nctrec.resume()\n"
                "for i in range(50):\n    y = i\n")
        res, traces = self.traced(prog, "record:\n  max_events: 30\n")
        self.assertEqual(res.returncode, 0)
        (t,) = traces
        self.assertEqual(t.meta["ctrec"]["interval"]["end_reason"], "record.max_events reached")

    def test_threads_mark_on_their_own_step(self):
        prog = textwrap.dedent("""\
            import threading, ctrec
            def worker():
                ctrec.mark("in thread")
            t = threading.Thread(target=worker)
            t.start()
            t.join()
            ctrec.mark("in main")
            """)
        res, traces = self.traced(prog)
        self.assertEqual(res.returncode, 0)
        (t,) = traces
        self.assertEqual(mark_steps(t), [("in thread", 3), ("in main", 7)])

    def test_forked_child_is_a_session_of_its_own(self):
        """A pause is the process's: a child forked while paused records
        (record.start says so), and its own pause ends its interval."""
        prog = textwrap.dedent("""\
            import os, ctrec, warnings; warnings.simplefilter("ignore")
            ctrec.pause()
            pid = os.fork()
            if pid == 0:
                x = 1
                ctrec.pause()
                y = 2
                os._exit(0)
            os.waitpid(pid, 0)
            z = 3
            """)
        res, traces = self.traced(prog)
        self.assertEqual(res.returncode, 0)
        self.assertEqual(sorted(lines(t) for t in traces), [[1, 2], [4, 5, 6]])


class ApiRuby(ApiTest):
    output, steps, mark_line = RB_OUTPUT, RB_INTERVALS, 8

    def run_prog(self, text, env):
        prog = write(os.path.join(self.tmp, "prog.rb"), text)
        return run(["ruby", prog], env=env, cwd=self.tmp)

    def traced_env(self, d):
        return d.env()

    def test_marks_pauses_and_resumes_make_intervals(self):
        self.check_example(*self.traced(RB_PROGRAM))

    def test_untraced_runs_behave_the_same(self):
        text = RB_PROGRAM + "exit 3\n"
        d = self.start()
        traced = self.run_prog(text, d.env())
        untraced = [self.run_prog(text, dict(os.environ, RUBYLIB=RUBY_SHIM, RUBYOPT="-rctrec")),
                    self.run_prog("require 'ctrec'\n" + text, dict(os.environ, RUBYLIB=RUBY_SHIM))]
        for res in [traced] + untraced:
            self.assertEqual((res.returncode, res.stdout, res.stderr), (3, RB_OUTPUT.encode(), b""))

    def test_marks_name_what_is_not_text(self):
        prog = ("class Loud\n  def to_s = raise('no')\nend\nCtrec.mark(Loud.new)\n"
                "Ctrec.mark(:sym)\n")
        res, traces = self.traced(prog)
        self.assertEqual(res.returncode, 0)
        (t,) = traces
        self.assertEqual(mark_steps(t), [("<Loud>", 4), ("<Symbol>", 5)])

    def test_paused_start_is_resumed_by_the_program(self):
        prog = "Ctrec.pause\nx = 1\nCtrec.resume\ny = 2\nCtrec.mark('on')\n"
        res, traces = self.traced(prog, "record:\n  start: paused\n")
        self.assertEqual(res.returncode, 0)
        (t,) = traces
        self.assertEqual(t.meta["ctrec"]["interval"]["index"], 1)
        self.assertEqual(lines(t), [4, 5])
        self.assertEqual(mark_steps(t), [("on", 5)])

    def test_recording_without_a_block_raises_as_untraced(self):
        prog = "begin\n  Ctrec.recording\nrescue LocalJumpError\n  puts 'no block'\nend\n"
        d = self.start()
        for env in (d.env(), dict(os.environ, RUBYLIB=RUBY_SHIM, RUBYOPT="-rctrec")):
            res = self.run_prog(prog, env)
            self.assertEqual((res.returncode, res.stdout, res.stderr), (0, b"no block\n", b""))


class ApiWire(TempDirTest):
    """RECORD from a hand-made client: WELCOME offers it, and a client
    that spams it costs the daemon nothing lasting."""

    def test_welcome_offers_record_and_spam_is_bounded(self):
        d = Daemon(self.tmp)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(d.sock)
        s.sendall(frame(hello()))
        welcome = s.recv(65536)
        self.assertIn(b"\xafprogram_control\xc3", welcome)
        # 20000 switches with nothing recorded between them: no folder;
        # the daemon's PAUSE/RESUME answers are read as they come.
        batch = b"".join(mp([31, i % 2 == 1]) for i in range(2000))
        for _ in range(10):
            s.sendall(frame(batch))
            s.setblocking(False)
            try:
                while s.recv(65536):
                    pass
            except BlockingIOError:
                pass
            s.setblocking(True)
        s.sendall(frame(mp([27, time.monotonic_ns()]) + mp([4, 0])))
        s.close()
        # The daemon still answers.
        res = run([CTRECCTL, "status", "-s", d.sock])
        self.assertEqual(res.returncode, 0, res.stderr)
        d.stop()
        self.assertEqual(trace_folders(d.out), [])


per_interpreter(ApiPython, globals())
