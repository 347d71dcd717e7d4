"""Real Python programs recorded with `ctrecctl record` (private daemon) and
with `python3 -m ctrec` against a service-mode ctrecd.

Every trace must pass `ctrecctl check`, its steps must equal the line events
CPython itself reports (a sys.settrace reference run, filtered to the
program's folder), its output events must equal the real output, and the
program must behave exactly as it does untraced."""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

from harness import (PY_SHIM, SOURCE, DaemonTest, TempDirTest, Trace,
                     expected_to_differ_in_ctfs, extra_pythons, metadata, record, run,
                     trace_folders, validate)

PY_PROGRAMS = os.path.join(SOURCE, "tests", "programs", "python")
PYTHON = "python3"

os.environ.pop("PYTHONPATH", None)

# Arguments some programs need.
ARGS = {"imports.py": ["a", "b"]}
# Checked by their own tests: no complete single trace to compare steps with.
SPECIAL = {"os_exit.py", "forking.py", "sigterm.py", "sigterm_busy.py", "pool.py"}


def _soabi(exe):
    """(version, EXT_SUFFIX) of an interpreter, or None when it does not run."""
    try:
        res = subprocess.run([exe, "-c", "import sys, sysconfig; print('%d.%d' % "
                              "sys.version_info[:2], sysconfig.get_config_var('EXT_SUFFIX'))"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    parts = res.stdout.decode().split()
    return tuple(parts) if res.returncode == 0 and len(parts) == 2 else None


def other_pythons():
    """{version: path} of CPython 3.12+ interpreters, other than python3's
    version, for which the build holds a _ctrec extension."""
    import shutil
    cands = extra_pythons()
    default = _soabi(PYTHON)
    found = {}
    for c in cands:
        paths = sorted(glob.glob(c)) if any(ch in c for ch in "*?[") else [shutil.which(c)]
        for exe in paths:
            info = exe and _soabi(exe)
            if not info or info == default or info[0] in found:
                continue
            if tuple(int(x) for x in info[0].split(".")) < (3, 12):
                continue
            if os.path.exists(os.path.join(PY_SHIM, "ctrec", "_ctrec" + info[1])):
                found[info[0]] = exe
    return found


OTHER_PYTHONS = other_pythons()


def per_interpreter(cls, namespace):
    """Copies of test class `cls` that run under each other interpreter,
    put into `namespace` (a module's globals) as <cls>_py312 etc."""
    for version, exe in sorted(OTHER_PYTHONS.items()):
        name = "%s_py%s" % (cls.__name__, version.replace(".", ""))
        namespace[name] = type(name, (cls,), {"python": exe})


def programs():
    return sorted(p for p in glob.glob(os.path.join(PY_PROGRAMS, "*.py"))
                  if not os.path.basename(p).startswith("_"))


# The reference: CPython's own line events through a pure-Python
# sys.settrace tracer (threads too), kept for files in `folder` and for code
# compiled from strings that such code runs, the same rule as the shim's.
REFERENCE_WRAPPER = r'''
import _thread, atexit, os, runpy, sys, threading
OUT, FOLDER, MODE, TARGET = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
lines, kept = [], set()

def keep(frame):
    fn = frame.f_code.co_filename
    if fn.startswith(FOLDER + "/"):
        return True
    if fn.startswith("<") and not fn.startswith("<frozen"):
        if frame.f_globals.get("__name__") == "__main__" and frame.f_code.co_name == "<module>":
            return True
        return frame.f_back is not None and id(frame.f_back) in kept
    return False

def tracer(frame, event, arg):
    if event == "call":
        if keep(frame):
            kept.add(id(frame))
        else:
            kept.discard(id(frame))
    elif event == "line" and id(frame) in kept:
        lines.append("%s:%d" % (os.path.basename(frame.f_code.co_filename), frame.f_lineno))
    return tracer

def dump():
    sys.settrace(None)
    with open(OUT, "w") as f:
        f.write("\n".join(lines))

atexit.register(dump)
del sys.argv[:4]
_start_new_thread = _thread.start_new_thread

def start_new_thread(fn, args, kwargs={}):
    def run(*a, **k):
        sys.settrace(tracer)
        return fn(*a, **k)
    return _start_new_thread(run, args, kwargs)

_thread.start_new_thread = start_new_thread
threading.settrace(tracer)
sys.settrace(tracer)
if MODE == "path":
    sys.argv[0] = TARGET
    sys.path[0] = os.path.dirname(TARGET)
    runpy.run_path(TARGET, run_name="__main__")
else:
    sys.argv[0] = TARGET
    runpy.run_module(TARGET, run_name="__main__", alter_sys=True)
'''


def python_line_events(tmp, target, args=(), folder=None, module=False, env=None,
                       python=PYTHON):
    """(basename, line) of CPython's line events in `folder` (default: the
    program's folder) for a program path or, with module=True, python -m."""
    folder = folder or os.path.dirname(os.path.abspath(target))
    wrapper = os.path.join(tmp, "reference_wrapper.py")
    with open(wrapper, "w") as f:
        f.write(REFERENCE_WRAPPER)
    out = os.path.join(tmp, "reference_lines.txt")
    run([python, wrapper, out, folder, "module" if module else "path", target, *args],
        cwd=tmp, env=env)
    with open(out) as f:
        text = f.read()
    os.unlink(out)
    res = []
    for item in text.split("\n"):
        if item:
            name, line = item.rsplit(":", 1)
            res.append((name, int(line)))
    return res


def shim_env(sock, **extra):
    env = dict(os.environ, CT_RECORDER_SOCKET=sock, PYTHONPATH=PY_SHIM)
    env.update(extra)
    return env


class RecordEachProgram(TempDirTest):
    """All test programs: validity, steps vs settrace, output, behaviour."""
    python = PYTHON

    def check_program(self, prog):
        name = os.path.basename(prog)
        args = ARGS.get(name, [])
        plain = run([self.python, prog, *args], cwd=self.tmp)
        out_dir = os.path.join(self.tmp, "out-" + name)
        rec = record([self.python, prog, *args], out_dir)
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
        self.assertEqual(t.meta["ctrec"]["exit_status"], plain.returncode, name)
        # The steps are exactly CPython's own line events; code from a
        # string, "<string>" to CPython, has a path per text ("<string:3>").
        ours = [(re.sub(r":[0-9]+>$", ">", f) if f.startswith("<") else f, line)
                for f, line in t.line_steps()]
        self.assertEqual(ours, python_line_events(self.tmp, prog, args, python=self.python),
                         name)
        # Output events carry exactly the text written.
        self.assertEqual(t.output(0), plain.stdout.decode(errors="replace"), name)
        self.assertEqual(t.output(2), plain.stderr.decode(errors="replace"), name)
        # Calls and returns balance (the top-level call stays open).
        self.assertEqual(len(t.kinds("Call")), len(t.kinds("Return")) + 1, name)
        # The source copy is the program itself.
        with open(prog, "rb") as a, open(os.path.join(folders[0], "files", prog.lstrip("/")), "rb") as b:
            self.assertEqual(a.read(), b.read())
        return t

    def test_all_programs(self):
        progs = programs()
        self.assertGreaterEqual(len(progs), 15)
        for prog in progs:
            if os.path.basename(prog) in SPECIAL:
                continue
            with self.subTest(program=os.path.basename(prog)):
                self.check_program(prog)


class ExpectedTraces(TempDirTest):
    """calc.py and array_sum.py, the programs of the pure-Python recorder's
    golden traces, written out as what we expect of our own traces: calls
    with their arguments, return values, output and CPython's line events.
    Where we differ from that recorder we do so deliberately: it adds a Step
    at the returning line and re-steps the caller's line after a return (we
    record exactly CPython's line events), its path 0 is empty (ours is the
    program), and it drops print's newline."""

    def record_one(self, name):
        prog = os.path.join(PY_PROGRAMS, name + ".py")
        out_dir = os.path.join(self.tmp, name)
        rec = record([PYTHON, prog], out_dir)
        self.assertEqual(rec.returncode, 0, rec.stderr)
        return Trace(trace_folders(out_dir)[0])

    def test_calc(self):
        t = self.record_one("calc")
        self.assertEqual(t.calls_with_args(), [("<top-level>", {}), ("<module>", {}), ("foo", {})])
        self.assertEqual(t.returns(), [2, None])
        self.assertEqual([s[1] for s in t.line_steps()], [1, 6, 2, 3, 4])

    def test_array_sum(self):
        t = self.record_one("array_sum")
        self.assertEqual(t.calls_with_args(),
                         [("<top-level>", {}), ("<module>", {}), ("sum", {"arr": [1, 2, 3]})])
        self.assertEqual(t.returns(), [6, None])
        self.assertEqual(t.output(), "6\n")
        self.assertEqual([s[1] for s in t.line_steps()], [1, 7, 8, 2, 3, 4, 3, 4, 3, 4, 3, 5])


class RecordDetails(TempDirTest):
    """What the trace says about arguments, values, generators, exceptions,
    threads and the end of the program."""
    python = PYTHON

    def trace_of(self, name, args=(), env=None):
        prog = os.path.join(PY_PROGRAMS, name)
        out_dir = os.path.join(self.tmp, "out-" + name)
        rec = record([self.python, prog, *args], out_dir, env=env)
        folders = trace_folders(out_dir)
        self.assertTrue(folders, rec.stderr)
        for f in folders:
            validate(self, f)
        return Trace(folders[0]), rec

    def test_arguments_in_declaration_order(self):
        t, _ = self.trace_of("arguments.py")
        calls = [c for c in t.calls_with_args() if c[0] == "everything"]
        self.assertEqual(list(calls[0][1]), ["p", "q", "r", "args", "k", "m", "kwargs"])
        self.assertEqual(calls[1][1], {"p": 1, "q": 2, "r": 5, "args": [30, 40], "k": 50,
                                       "m": 5, "kwargs": [["x", 60], ["y", 1]]})
        self.assertEqual(t.returns()[:2], [17, 194])

    def test_values_without_running_program_code(self):
        t, rec = self.trace_of("values_edge.py")
        self.assertEqual(rec.returncode, 0, rec.stderr)
        shown = [c[1]["value"] for c in t.calls_with_args() if c[0] == "show"]
        self.assertEqual(shown[0], [1, 2, ("raw", "<cycle>")])
        self.assertEqual(shown[1], [["self", ("raw", "<cycle>")]])
        self.assertEqual(shown[2][0], "bigint")
        self.assertFalse(shown[2][2])
        self.assertTrue(shown[3][2])
        self.assertEqual(shown[4], -5)
        self.assertEqual(shown[6], "abc")
        self.assertEqual(shown[8], ("struct", [1]))  # Evil: its __dict__, nothing called
        # A CTFS trace keeps type names, not their kinds (types.dat).
        types = {(ty["lang_type"], None if t.ctfs else ty["kind"]) for ty in t.types}
        for name, kind in (("int", 7), ("bytes", 9), ("str", 9), ("list", 0), ("tuple", 27),
                           ("dict", 0), ("Evil", 6), ("NoneType", 30), ("bool", 12),
                           ("float", 8)):
            self.assertIn((name, None if t.ctfs else kind), types)

    def test_generators_balanced(self):
        t, _ = self.trace_of("generators_async.py")
        names = t.call_names()
        self.assertEqual(names.count("ticker"), 4 + 3)
        rets = t.returns()
        self.assertEqual(rets[:4], ["tick-0", "tick-1", "tick-2", "done"])
        self.assertIn("a finished", rets)
        self.assertEqual(len(t.kinds("Call")), len(t.kinds("Return")) + 1)

    def test_exceptions(self):
        t, _ = self.trace_of("exceptions.py")
        errors = t.errors()
        self.assertIn("ValueError: negative: -1", errors)
        self.assertIn("ZeroDivisionError: division by zero", errors)
        self.assertIn("AppError: wrapped failure", errors)
        # A user __str__ is never called: only the class is shown.
        self.assertIn("Loud", errors)
        # Frames unwound by an exception return an Error, never None.
        unwound = [r for r in t.kinds("Return") if r["return_value"]["kind"] == "Error"]
        self.assertTrue(any("ValueError: negative: -2" in r["return_value"]["msg"]
                            for r in unwound), unwound)

    def test_threads(self):
        t, _ = self.trace_of("threads.py")
        self.assertEqual(t.meta["ctrec"]["threads"], 5)
        self.assertEqual([c for c in t.call_names() if c == "work"], ["work"] * 4)
        self.assertIn("raw_work", t.call_names())

    def test_program_trace_function_takes_the_thread_for_a_while(self):
        prog = os.path.join(PY_PROGRAMS, "_own_tracer.py")
        plain = run([self.python, prog])
        t, rec = self.trace_of("_own_tracer.py")
        self.assertEqual((rec.returncode, rec.stdout), (0, plain.stdout))
        self.assertEqual(t.output(), plain.stdout.decode())
        names = t.call_names()
        self.assertIn("after", names)
        marks = [e["content"] for e in t.kinds("Event") if e["kind"] == 12]
        if tuple(int(x) for x in _soabi(self.python)[0].split(".")) < (3, 12):
            # One trace function per thread: the program's, for a while.
            self.assertNotIn("traced", names)
            self.assertTrue(any("sys.settrace" in m for m in marks), marks)
        else:
            # sys.monitoring records beside it.
            self.assertIn("traced", names)
            self.assertEqual(marks, [])
        self.assertEqual(len(t.kinds("Call")), len(t.kinds("Return")) + 1)

    def test_uncaught_exception(self):
        t, rec = self.trace_of("uncaught.py")
        self.assertEqual(rec.returncode, 1)
        self.assertEqual(t.errors()[-1], "ArgumentError_like: bad 1")
        self.assertEqual(t.meta["ctrec"]["exit_status"], 1)
        self.assertIn("Traceback (most recent call last)", t.output(2))

    def test_sys_exit_status(self):
        t, rec = self.trace_of("exit3.py")
        self.assertEqual(rec.returncode, 3)
        self.assertEqual(t.meta["ctrec"]["exit_status"], 3)
        self.assertEqual(t.state, "complete")

    def test_os_exit_ends_the_trace_with_its_status(self):
        prog = os.path.join(PY_PROGRAMS, "os_exit.py")
        plain = run([self.python, prog])
        t, rec = self.trace_of("os_exit.py")
        self.assertEqual(rec.returncode, 5)
        self.assertEqual(rec.stdout, plain.stdout)
        self.assertEqual(t.state, "complete")
        self.assertEqual(t.meta["ctrec"]["exit_status"], 5)
        self.assertEqual(t.output(0), plain.stdout.decode())

    def test_sigterm_ends_the_trace_with_the_signal(self):
        prog = os.path.join(PY_PROGRAMS, "sigterm.py")
        plain = run([self.python, prog])
        self.assertEqual(plain.returncode, -signal.SIGTERM)
        t, rec = self.trace_of("sigterm.py")
        self.assertEqual(rec.returncode, plain.returncode)
        self.assertEqual(rec.stdout, plain.stdout)
        self.assertEqual(t.state, "complete")
        self.assertEqual(t.meta["ctrec"]["exit_status"], 128 + signal.SIGTERM)
        self.assertEqual(t.call_names().count("work"), 3)
        self.assertIn(("sigterm.py", 16), t.line_steps())  # the os.kill line
        self.assertEqual(t.output(0), plain.stdout.decode())

    def test_sigterm_while_recording_lines_ends_the_trace(self):
        # The signal mostly lands while the shim packs an event, holding the
        # batch the end of the session must send: the trace still ends
        # complete, with the steps up to the signal.
        prog = os.path.join(PY_PROGRAMS, "sigterm_busy.py")
        plain = run([self.python, prog])
        self.assertEqual((plain.returncode, plain.stdout), (-signal.SIGTERM, b"working\n"))
        for attempt in range(3):
            with self.subTest(attempt=attempt):
                out_dir = os.path.join(self.tmp, f"out-busy-{attempt}")
                rec = record([self.python, prog], out_dir)
                self.assertEqual((rec.returncode, rec.stdout), (plain.returncode, plain.stdout))
                folder, = trace_folders(out_dir)
                validate(self, folder)
                meta = metadata(folder)["ctrec"]
                self.assertEqual(meta["state"], "complete")
                self.assertEqual(meta["exit_status"], 128 + signal.SIGTERM)
                self.assertGreater(meta["counters"]["calls"], 10)
                shutil.rmtree(out_dir)

    def test_pool_workers_recorded_whole(self):
        # The pool's workers leave with os._exit or die of its SIGTERM;
        # either way each worker's trace ends complete, with every call.
        prog = os.path.join(PY_PROGRAMS, "pool.py")
        for method in ("fork", "spawn"):
            with self.subTest(method=method):
                plain = run([self.python, prog, method])
                out_dir = os.path.join(self.tmp, "out-pool-" + method)
                rec = record([self.python, prog, method], out_dir)
                self.assertEqual(rec.returncode, plain.returncode, rec.stderr)
                self.assertEqual(rec.stdout, plain.stdout)
                squares = 0
                for f in trace_folders(out_dir):
                    validate(self, f)
                    t = Trace(f)
                    self.assertEqual(t.state, "complete", f)
                    squares += t.call_names().count("square")
                self.assertEqual(squares, 8)

    def test_fork_records_both_processes(self):
        prog = os.path.join(PY_PROGRAMS, "forking.py")
        plain = run([self.python, prog])
        out_dir = os.path.join(self.tmp, "out")
        rec = record([self.python, prog], out_dir)
        self.assertEqual(rec.returncode, 0, rec.stderr)
        self.assertEqual(sorted(rec.stdout.splitlines()), sorted(plain.stdout.splitlines()))
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), 2)
        outputs = []
        for f in folders:
            validate(self, f)
            t = Trace(f)
            self.assertEqual(t.state, "complete")
            outputs.append(t.output(0))
        self.assertIn("child 42\n", outputs)
        self.assertTrue(any("parent done 0" in o for o in outputs))


class Activation(DaemonTest):
    """sitecustomize, ctrec.pth and python -m ctrec; missing daemons."""

    def traces(self):
        return [Trace(f) for f in trace_folders(self.daemon.out)]

    def test_python_m_ctrec_behaves_like_python(self):
        for name, args in (("imports.py", ["a", "b"]), ("uncaught.py", []), ("exit3.py", [])):
            with self.subTest(program=name):
                prog = os.path.join(PY_PROGRAMS, name)
                plain = run([PYTHON, prog, *args], cwd=self.tmp)
                res = run([PYTHON, "-m", "ctrec", prog, *args], cwd=self.tmp,
                          env=shim_env(self.daemon.spec))
                self.assertEqual(res.stdout, plain.stdout)
                self.assertEqual(res.stderr, plain.stderr)
                self.assertEqual(res.returncode, plain.returncode)
        self.daemon.stop()
        traces = self.traces()
        self.assertEqual(len(traces), 3)
        for t in traces:
            validate(self, t.folder)
            self.assertEqual(t.state, "complete")
        by_prog = {os.path.basename(t.meta["program"]): t for t in traces}
        self.assertEqual(by_prog["imports.py"].meta["args"], ["a", "b"])
        self.assertIn("twice", by_prog["imports.py"].call_names())
        self.assertEqual(by_prog["exit3.py"].meta["ctrec"]["exit_status"], 3)

    def test_pth_file_activates(self):
        site = os.path.join(self.tmp, "site")
        os.makedirs(site)
        with open(os.path.join(PY_SHIM, "ctrec.pth")) as src, \
                open(os.path.join(site, "ctrec.pth"), "w") as dst:
            dst.write(src.read())
        prog = os.path.join(PY_PROGRAMS, "calc.py")
        # site.addsitedir runs .pth files; -c keeps PYTHONPATH out of it.
        code = ("import site, runpy, sys; site.addsitedir(%r); sys.argv = [%r]; "
                "runpy.run_path(%r, run_name='__main__')" % (site, prog, prog))
        env = dict(os.environ, CT_RECORDER_SOCKET=self.daemon.spec)
        res = run([PYTHON, "-c", code], env=env)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.daemon.stop()
        traces = self.traces()
        self.assertEqual(len(traces), 1)
        self.assertIn("foo", traces[0].call_names())

    def test_chains_to_other_sitecustomize(self):
        other = os.path.join(self.tmp, "other")
        os.makedirs(other)
        with open(os.path.join(other, "sitecustomize.py"), "w") as f:
            f.write("MARK = 'chained'\n")
        env = shim_env(self.daemon.spec, PYTHONPATH=PY_SHIM + ":" + other)
        res = run([PYTHON, "-c", "import sitecustomize; print(sitecustomize.MARK)"], env=env)
        self.assertEqual(res.stdout, b"chained\n", res.stderr)
        # The system's own sitecustomize (Debian's) still runs too.
        if os.path.exists("/usr/lib/python3.11/sitecustomize.py"):
            res = run(["/usr/bin/python3", "-c", "import sitecustomize; print(sitecustomize.__file__)"],
                      env=shim_env(self.daemon.spec))
            self.assertNotIn(PY_SHIM.encode(), res.stdout)

    def test_daemon_missing(self):
        prog = os.path.join(PY_PROGRAMS, "array_sum.py")
        plain = run([PYTHON, prog])
        res = run([PYTHON, prog], env=shim_env(os.path.join(self.tmp, "none.sock")))
        self.assertEqual(res.stdout, plain.stdout)
        self.assertEqual(res.returncode, plain.returncode)
        lines = res.stderr.decode().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("ctrec: "), lines)
        self.assertIn("none.sock", lines[0])

    def test_no_socket_variable_means_no_effect(self):
        prog = os.path.join(PY_PROGRAMS, "output.py")
        plain = run([PYTHON, prog])
        env = dict(os.environ, PYTHONPATH=PY_SHIM)
        res = run([PYTHON, "-c", "import sys; print(sorted(m for m in sys.modules if 'ctrec' in m))"],
                  env=env)
        self.assertEqual(res.stdout, b"[]\n")
        res = run([PYTHON, prog], env=env)
        self.assertEqual((res.stdout, res.stderr, res.returncode),
                         (plain.stdout, plain.stderr, plain.returncode))


class RealProgram(TempDirTest):
    """python3 -m calendar 2026: a program none of us wrote.

    ctrecd's own default filter skips the standard library too, so each
    test gives it a config: one that records calendar.py (the program)
    and one without the default rules."""

    def config(self, text):
        path = os.path.join(self.tmp, "ctrec.yaml")
        with open(path, "w") as f:
            f.write(text)
        return ("-c", path)

    @expected_to_differ_in_ctfs("a call that returned without a step of its own is placed "
                                "at its caller's step, like a call whose one step is its "
                                "own; Trace.line_steps cannot always tell them apart")
    def test_calendar_stdlib_skipped(self):
        plain = run([PYTHON, "-m", "calendar", "2026"], cwd=self.tmp)
        out_dir = os.path.join(self.tmp, "out")
        cfg = self.config("filter:\n  rules:\n    - {file: \"**/calendar.py\", action: record}\n")
        rec = record([PYTHON, "-m", "calendar", "2026"], out_dir, extra=cfg)
        self.assertEqual((rec.stdout, rec.stderr, rec.returncode),
                         (plain.stdout, plain.stderr, plain.returncode))
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), 1)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertEqual(t.state, "complete")
        self.assertEqual(t.meta["program"], "calendar")
        self.assertEqual(t.meta["args"], ["2026"])
        self.assertEqual(t.output(0), plain.stdout.decode())
        # The module run as __main__ is the program; the rest of the
        # standard library is skipped.
        self.assertEqual({s[0] for s in t.line_steps()}, {"calendar.py"})
        import calendar
        cal = os.path.realpath(calendar.__file__)
        ref = [s for s in python_line_events(self.tmp, "calendar", ["2026"],
                                             folder=os.path.dirname(cal), module=True)
               if s[0] == "calendar.py"]
        self.assertEqual(t.line_steps(), ref)

    @expected_to_differ_in_ctfs("a call that returned without a step of its own is placed "
                                "at its caller's step, like a call whose one step is its "
                                "own; Trace.line_steps cannot always tell them apart")
    def test_calendar_with_stdlib(self):
        plain = run([PYTHON, "-m", "calendar", "2026"], cwd=self.tmp)
        out_dir = os.path.join(self.tmp, "out")
        rec = record([PYTHON, "-m", "calendar", "2026"], out_dir,
                     extra=self.config("filter:\n  defaults: false\n"
                                       "limits:\n  value_depth: 1\n  value_length: 4\n"))
        self.assertEqual((rec.stdout, rec.returncode), (plain.stdout, plain.returncode))
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), 1)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertEqual(t.state, "complete")
        self.assertEqual(t.output(0), plain.stdout.decode())
        import calendar
        cal = os.path.realpath(calendar.__file__)
        ours = [s for s in t.line_steps() if s[0] == "calendar.py"]
        ref = [s for s in python_line_events(self.tmp, "calendar", ["2026"],
                                             folder=os.path.dirname(cal), module=True)
               if s[0] == "calendar.py"]
        self.assertGreater(len(ours), 1000)
        self.assertEqual(ours, ref)


per_interpreter(RecordEachProgram, globals())
per_interpreter(RecordDetails, globals())
