"""Shared helpers for the integration suites: a real ctrecd, real interpreters,
and readers for the trace folders they produce.

Paths come from the environment that ctest sets (CTREC_BUILD, CTREC_SHIMS,
CTREC_SOURCE); running a suite by hand works too when those point at a
build tree. CTREC_TEST_FORMAT (json or ctfs, default ctfs) is the trace
format every daemon the suites start writes: ctest runs each suite that
records twice, it_X in ctfs and it_X_json in json.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CTREC_SOURCE", os.path.normpath(os.path.join(HERE, "..", "..")))
BUILD = os.environ.get("CTREC_BUILD", os.path.join(SOURCE, "build"))
CTRECD = os.path.join(BUILD, "bin", "ctrecd")
CTRECCTL = os.path.join(BUILD, "bin", "ctrecctl")
# A sanitized build tree takes the shims of a normal one (CTREC_TEST_SHIMS).
SHIMS = os.environ.get("CTREC_SHIMS", os.path.join(BUILD, "lib", "ctrec"))
RUBY_SHIM = os.path.join(SHIMS, "ruby")
PY_SHIM = os.path.join(SHIMS, "python")
RUBY_PROGRAMS = os.path.join(SOURCE, "tests", "programs", "ruby")
# Prints a trace folder's records as a JSON array (tests/ctfs_dump.c).
CTFS_DUMP = os.path.join(BUILD, "tests", "ctfs_dump")

FORMAT = os.environ.get("CTREC_TEST_FORMAT", "ctfs")
if FORMAT not in ("json", "ctfs"):
    raise RuntimeError(f"CTREC_TEST_FORMAT must be json or ctfs, not {FORMAT!r}")
# The file a trace folder of FORMAT holds its records in.
TRACE_FILE = {"json": "trace.json", "ctfs": "trace.ct"}[FORMAT]
# For a ctrecd command line, and for `ctrecctl record` with a private ctrecd.
FORMAT_SET = ("--set", f"output.format={FORMAT}")
# How the shims and ctrecctl reach a test's daemon: its socket, or named
# pipes (listen.fifo_dir, CT_RECORDER_SOCKET=fifo:DIR; PROTOCOL.md 1.1).
TRANSPORT = os.environ.get("CTREC_TEST_TRANSPORT", "socket")
if TRANSPORT not in ("socket", "fifo"):
    raise RuntimeError(f"CTREC_TEST_TRANSPORT must be socket or fifo, not {TRANSPORT!r}")
TRANSPORT_ARG = ("--transport", TRANSPORT)
# Programs wait at exit for a service ctrecd that is merely slow on a
# loaded test machine, as for ctrecctl record's private one; the tests of
# the 1 s bound set their own.
PATIENT_SET = ("--set", "limits.client_wait_ms=60000")
FORMAT_ARG = ("--format", FORMAT)

# Recording must never depend on the caller's environment.
for var in ("CT_RECORDER_SOCKET", "RUBYOPT", "RUBYLIB"):
    os.environ.pop(var, None)


def extra_pythons():
    """The other interpreters the Python shim is built for (client/python's
    discovery writes them into the build tree), or those the colon-separated
    CTREC_TEST_PYTHONS names instead. None in a json run unless named: what
    an interpreter sends does not depend on the format, and the ctfs run
    covers each; the json run checks the JSON writer on python3, which
    keeps CI within its time."""
    if os.environ.get("CTREC_TEST_PYTHONS"):
        return os.environ["CTREC_TEST_PYTHONS"].split(":")
    if FORMAT == "json":
        return []
    try:
        with open(os.path.join(BUILD, "ctrec-python-extra.txt")) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def write(path, text):
    """Writes text to path; returns path."""
    with open(path, "w") as f:
        f.write(text)
    return path


def run(cmd, env=None, timeout=120, cwd=None, stdin=subprocess.DEVNULL):
    return subprocess.run(cmd, env=env, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def validate(test, folder, live=False):
    """Runs `ctrecctl check` on one trace folder and fails the test on any
    problem."""
    cmd = [CTRECCTL, "check"] + (["--live"] if live else []) + [folder]
    res = run(cmd)
    test.assertEqual(res.returncode, 0, f"ctrecctl check failed:\n{res.stdout.decode()}"
                     f"{res.stderr.decode()}")


def records_text(folder, live=False):
    """The records of a trace folder as JSON text: trace.json's own, or
    trace.ct's read through ctrecctl's reader (ctfs_dump); live: as
    flushed so far by a recording that goes on."""
    if not os.path.exists(os.path.join(folder, "trace.ct")):
        with open(os.path.join(folder, "trace.json"), "rb") as f:
            return f.read()
    res = run([CTFS_DUMP, *(["--live"] if live else []), folder])
    if res.returncode != 0:
        raise AssertionError(f"ctfs_dump {folder} failed:\n{res.stderr.decode()}")
    return res.stdout


def folder_texts(folder):
    """{file name: bytes} of every file in a trace folder (files/ too), with
    trace.ct as the text of its records: a compressed container shows no
    text to search."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if rel == "trace.ct":
                out[rel] = records_text(folder)
            else:
                with open(path, "rb") as f:
                    out[rel] = f.read()
    return out


class Trace:
    """A trace folder read back: records, steps (path, line), calls, events."""

    def __init__(self, folder):
        self.folder = folder
        # The metadata first: once it says complete, the records are all
        # there (the writer closes the trace before it says so).
        with open(os.path.join(folder, "trace_metadata.json"), "rb") as f:
            self.meta = json.load(f)
        live = self.meta.get("ctrec", {}).get("state") == "recording"
        self.records = json.loads(records_text(folder, live))
        self.ctfs = os.path.exists(os.path.join(folder, "trace.ct"))
        # The CTFS reader closes the calls still open at the end without a
        # value (docs/ctfs.md); the JSON trace leaves them open.
        while self.ctfs and self.records and self.records[-1] == {"Return": {}}:
            self.records.pop()
        self.paths, self.functions, self.varnames, self.types = [], [], [], []
        for r in self.records:
            if isinstance(r, dict):
                (k, v), = r.items()
                if k == "Path":
                    self.paths.append(v)
                elif k == "Function":
                    self.functions.append(v)
                elif k == "VariableName":
                    self.varnames.append(v)
                elif k == "Type":
                    self.types.append(v)

    @property
    def field_names_known(self):
        """False for a CTFS trace whose reader declares no Struct type with
        field names: docs/ctfs.md, "Struct field names"."""
        return not self.ctfs or any(ty.get("specific_info", {}).get("kind") == "Struct"
                                    for ty in self.types)

    @property
    def state(self):
        return self.meta["ctrec"]["state"]

    def kinds(self, kind):
        return [r[kind] for r in self.records if isinstance(r, dict) and kind in r]

    def line_steps(self):
        """(basename, line) of every Step except the call-location Step that
        precedes each Call (trace-format R3), i.e. the interpreter's line
        events."""
        out, recs = [], self.records
        for i, r in enumerate(recs):
            if not isinstance(r, dict) or "Step" not in r:
                continue
            j = i + 1
            while j < len(recs) and isinstance(recs[j], dict) and \
                    next(iter(recs[j])) in ("Function", "Path", "Type", "VariableName", "Value",
                                            "Event"):
                j += 1
            if j < len(recs) and isinstance(recs[j], dict) and "Call" in recs[j]:
                continue
            s = r["Step"]
            if self.ctfs and self.stepless_call_site(i, s):
                continue
            out.append((os.path.basename(self.paths[s["path_id"]]), s["line"]))
        return out

    def stepless_call_site(self, i, step):
        """Whether Step record i of a CTFS trace is the call-location Step
        of a call that returned without a step of its own. CTFS places such
        a call at that step, so the reader shows Call, Step, Return, as for
        a call whose one step is its own (docs/ctfs.md); it is the former
        when the step is where other calls of the function are located, and
        the step before the Call is not that place too (a one-line
        function's own step)."""
        def neighbour(at, by):
            while 0 <= at < len(self.records) and \
                    next(iter(self.records[at])) in ("Value", "Event", "Type", "VariableName"):
                at += by
            return self.records[at] if 0 <= at < len(self.records) else {}
        call, ret = neighbour(i - 1, -1), neighbour(i + 1, 1)
        if "Call" not in call or "Return" not in ret:
            return False
        at = i - 1
        while "Call" not in self.records[at]:
            at -= 1
        if neighbour(at - 1, -1).get("Step") == step:
            return False
        if not hasattr(self, "_sites"):
            self._sites = {}
            for name, path, line in self.call_sites():
                self._sites.setdefault(name, set()).add((path, line))
        name = self.functions[call["Call"]["function_id"]]["name"]
        return (self.paths[step["path_id"]], step["line"]) in self._sites.get(name, ())

    def call_sites(self):
        """(name, path, line) of every Call: where its call-location Step
        (trace-format R3) places it, its function's definition (None for
        the top-level call). A CTFS
        trace interns functions by name alone, so this, not the Function
        record, says which of two same-named functions was called."""
        out, step = [], None
        for r in self.records:
            if "Step" in r:
                step = r["Step"]
            elif "Call" in r:
                name = self.functions[r["Call"]["function_id"]]["name"]
                if step is None:  # the top-level call, before any step
                    out.append((name, None, None))
                else:
                    out.append((name, self.paths[step["path_id"]], step["line"]))
        return out

    def call_names(self):
        return [self.functions[c["function_id"]]["name"] for c in self.kinds("Call")]

    def output(self, kind=0):
        return "".join(e["content"] for e in self.kinds("Event") if e["kind"] == kind)

    def errors(self):
        return [e["content"] for e in self.kinds("Event") if e["kind"] == 11]

    def reload_marks(self):
        """Indexes of the records that mark a configuration reload."""
        return [i for i, r in enumerate(self.records)
                if "Event" in r and r["Event"]["content"] == "ctrec: configuration reloaded"]

    def values_mode_switched(self, test):
        """Asserts that no values precede the first reload mark and that
        values (and call arguments) follow it."""
        mark = self.reload_marks()[0]
        before, after = self.records[:mark], self.records[mark:]
        test.assertEqual([r for r in before if "Value" in r], [])
        test.assertEqual([r for r in before if "Call" in r and r["Call"]["args"]], [])
        test.assertTrue([r for r in after if "Value" in r])
        test.assertTrue([r for r in after if "Call" in r and r["Call"]["args"]])

    def calls_with_args(self):
        """[(name, {arg: rendered value})] in call order."""
        out = []
        for c in self.kinds("Call"):
            args = {self.varnames[a["variable_id"]]: simple(a["value"]) for a in c["args"]}
            out.append((self.functions[c["function_id"]]["name"], args))
        return out

    def returns(self):
        return [simple(r["return_value"]) for r in self.kinds("Return")]


def simple(v):
    """A ValueRecord reduced to a comparable Python value."""
    k = v.get("kind")
    if k == "Int":
        return v["i"]
    if k == "Float":
        return float(v["f"])
    if k == "String":
        return v["text"]
    if k == "Bool":
        return v["b"]
    if k == "None":
        return None
    if k == "Raw":
        return ("raw", v["r"])
    if k in ("Sequence", "Tuple"):
        return [simple(e) for e in v["elements"]]
    if k == "Struct":
        return ("struct", [simple(e) for e in v["field_values"]])
    if k == "BigInt":
        return ("bigint", v["b"], v["negative"])
    return (k,)


def finish_good_client(test, good, daemon, program="slow_counter.rb"):
    """Waits for the real client that recorded while a suite attacked
    daemon, stops the daemon and checks that its trace is whole: exit 0,
    nothing from the shim on stderr, one complete valid trace with all
    the program's output."""
    out, err = good.communicate(timeout=60)
    test.assertEqual(good.returncode, 0, err)
    test.assertNotIn(b"ctrec:", err)
    test.assertIsNone(daemon.proc.poll())
    daemon.stop()
    folders = [f for f in trace_folders(daemon.out)
               if Trace(f).meta["program"].endswith(program)]
    test.assertEqual(len(folders), 1)
    validate(test, folders[0])
    t = Trace(folders[0])
    test.assertEqual(t.state, "complete")
    test.assertEqual(t.output(), out.decode())


def expected_to_differ_in_ctfs(reason):
    """Marks a test that fails on CTFS traces for a known, documented gap
    of the CTFS reader (reason names it); it must pass on JSON. When the
    gap closes, the unexpected success fails the run, so the mark goes."""
    assert reason
    return unittest.expectedFailure if FORMAT == "ctfs" else (lambda test: test)


def without_field_names(v):
    """An oracle's value (lists, Structs as ["Struct", type, [[name, value],
    ...]]) with every field name None, to compare with a trace that names
    no fields."""
    if isinstance(v, dict):
        return {k: without_field_names(x) for k, x in v.items()}
    if not isinstance(v, list):
        return v
    if len(v) == 3 and v[0] == "Struct" and isinstance(v[2], list):
        return [v[0], v[1], [[None, without_field_names(x)] for _, x in v[2]]]
    return [without_field_names(x) for x in v]


def metadata(folder):
    """A trace folder's trace_metadata.json."""
    with open(os.path.join(folder, "trace_metadata.json")) as f:
        return json.load(f)


def trace_folders(out_dir):
    """The trace folders in out_dir (holding trace.json or trace.ct), sorted."""
    if not os.path.isdir(out_dir):
        return []
    return sorted(os.path.join(out_dir, d) for d in os.listdir(out_dir)
                  if any(os.path.isfile(os.path.join(out_dir, d, f))
                         for f in ("trace.json", "trace.ct")))


def finished_traces(out_dir):
    """{folder: metadata} of the trace folders in out_dir whose trace has
    ended; one still being created, or recording, is left out."""
    done = {}
    for folder in trace_folders(out_dir):
        try:
            with open(os.path.join(folder, "trace_metadata.json")) as f:
                meta = json.load(f)
        except (FileNotFoundError, ValueError):
            continue
        if meta.get("ctrec", {}).get("state", "recording") != "recording":
            done[folder] = meta
    return done


def record(cmd, out_dir, env=None, timeout=120, extra=()):
    """ctrecctl record -q -o out_dir --format FORMAT [extra] -- cmd; returns
    CompletedProcess."""
    return run([CTRECCTL, "record", "-q", "-o", out_dir, *FORMAT_ARG, *TRANSPORT_ARG, *extra,
                "--", *cmd], env=env, timeout=timeout)


def ruby_line_events(program, args=(), cwd=None):
    """The line events Ruby itself reports for program (TracePoint in a
    wrapper), as (basename, line), restricted to the program's folder."""
    folder = os.path.dirname(os.path.abspath(program))
    with tempfile.NamedTemporaryFile("r", suffix=".txt", delete=False) as f:
        out = f.name
    wrapper = (
        "lines = []\n"
        f"dir = {json.dumps(folder + '/')}\n"
        "tp = TracePoint.new(:line) { |t| lines << \"#{File.basename(t.path)}:#{t.lineno}\" if t.path.start_with?(dir) }\n"
        f"at_exit {{ tp.disable; File.write({json.dumps(out)}, lines.join(\"\\n\")) }}\n"
        f"$0 = {json.dumps(os.path.abspath(program))}\n"
        "tp.enable\n"
        f"load {json.dumps(os.path.abspath(program))}\n")
    run(["ruby", "-e", wrapper, "--", *args], cwd=cwd)
    with open(out) as f:
        text = f.read()
    os.unlink(out)
    res = []
    for item in text.split("\n"):
        if item:
            name, line = item.rsplit(":", 1)
            res.append((name, int(line)))
    return res


def capture_limits(config=None, keys=("value_depth", "value_length", "value_string")):
    """The capture limits `keys` (by default (value_depth, value_length,
    value_string)) a ctrecd with the ctrec.yaml `config` (None: none) gives
    the shims."""
    cmd = [CTRECD, "--print-config"] + (["-c", config] if config else [])
    text = run(cmd).stdout.decode()
    return tuple(int(re.search(r"^\s*%s: (\d+)" % k, text, re.M).group(1))
                 for k in keys)


def service_config(root, extra="", flush=100):
    """ctrec.yaml text for a Daemon in root (socket in root/run, traces in
    root/traces), followed by the extra YAML sections."""
    return (f"listen:\n  path: {root}/run/ctrecd.sock\n  mode: 0600\n"
            f"output:\n  dir: {root}/traces\n  flush_interval_ms: {flush}\n"
            f"  format: {FORMAT}\n"
            "log:\n  level: debug\n") + textwrap.dedent(extra)


# What ASan, LSan, UBSan and TSan print when they find something.
SANITIZER_REPORT = re.compile(
    r"ERROR: \w+Sanitizer|WARNING: ThreadSanitizer|runtime error:|SUMMARY: \w+Sanitizer")
# Daemons started by the running test and not yet stopped; TempDirTest
# stops and checks them when the test ends.
_running = []


class Daemon:
    """A service-mode ctrecd on a private socket writing FORMAT (later
    --set options in extra win), stopped with SIGTERM.

    Ready once it says so on the --ready-fd pipe. stop() fails the test when
    the daemon exits with another status than expected (0 after SIGTERM) or
    when a sanitizer reported anything in its log."""

    def __init__(self, root, config_text=None, extra=()):
        self.root = root
        self.sock = os.path.join(root, "run", "ctrecd.sock")
        self.out = os.path.join(root, "traces")
        self.log_path = os.path.join(root, "ctrecd.log")
        # What a client names to reach it (CT_RECORDER_SOCKET, ctrecctl -s).
        self.spec = self.sock
        if TRANSPORT == "fifo":
            fifos = os.path.join(root, "fifos")
            extra = ("--set", f"listen.fifo_dir={fifos}", *extra)
            self.spec = "fifo:" + fifos
        cmd = [CTRECD, "--listen", self.sock, "--output", self.out, "--log-level", "debug",
               *FORMAT_SET, *PATIENT_SET, *extra]
        if config_text is not None:
            cfg = os.path.join(root, "ctrec.yaml")
            with open(cfg, "w") as f:
                f.write(config_text)
            cmd = [CTRECD, "--config", cfg, *FORMAT_SET, *PATIENT_SET, *extra]
        self.log = open(self.log_path, "wb")
        self.checked = None
        ready_r, ready_w = os.pipe()
        try:
            self.proc = subprocess.Popen(cmd + ["--ready-fd", str(ready_w)], stdout=self.log,
                                         stderr=subprocess.STDOUT, pass_fds=(ready_w,))
            os.close(ready_w)
            # A daemon that dies before it is ready closes the pipe: EOF.
            ready = select.select([ready_r], [], [], 30)[0] and os.read(ready_r, 64)
        finally:
            os.close(ready_r)
        if ready != b"ready\n":
            self.proc.kill()
            self.proc.wait()
            self.log.close()
            raise RuntimeError(f"ctrecd did not get ready ({ready!r}):\n" + self.read_log())
        _running.append(self)

    def env(self, **extra):
        env = dict(os.environ)
        env.update(CT_RECORDER_SOCKET=self.spec, RUBYLIB=RUBY_SHIM, RUBYOPT="-rctrec")
        env.update(extra)
        return env

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, expect=0):
        """SIGTERM, wait, and check: the exit status must be `expect` (a
        negative signal number for a daemon the test killed) and the log
        free of sanitizer reports. Returns the exit status; stopping again
        only returns it."""
        if self.checked is not None:
            return self.checked
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if self in _running:
            _running.remove(self)
        self.checked = self.proc.returncode
        log = self.read_log()
        if self.checked != expect:
            raise AssertionError(f"ctrecd exited with {self.checked}, not {expect}:\n{log}")
        if SANITIZER_REPORT.search(log):
            raise AssertionError(f"sanitizer report in the ctrecd log:\n{log}")
        return self.checked


def stop_daemons():
    """Stops and checks every daemon the test left running."""
    errors = []
    while _running:
        try:
            _running[0].stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        raise AssertionError("\n".join(errors))


class TempDirTest(unittest.TestCase):
    """A fresh temporary folder per test; daemons left running are stopped
    and checked before the folder goes (cleanups run after tearDown)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ctrec-it-")
        self.addCleanup(self.remove_tmp)
        self.addCleanup(stop_daemons)
        # The private daemons of `ctrecctl record` announce themselves in
        # $XDG_RUNTIME_DIR/ctrec: each test sees its own only.
        os.environ["XDG_RUNTIME_DIR"] = os.path.join(self.tmp, "xdg")
        os.mkdir(os.environ["XDG_RUNTIME_DIR"], 0o700)

    def reap_at_end(self, p):
        """Process p is killed if still running when the test ends, waited
        for, and its pipes closed; returns p."""
        def reap():
            if p.poll() is None:
                p.kill()
            p.wait()
            for s in (p.stdin, p.stdout, p.stderr):
                if s:
                    s.close()
        self.addCleanup(reap)
        return p

    def remove_tmp(self):
        if os.environ.get("CTREC_KEEP_TMP"):
            print(f"\nkept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


class DaemonTest(TempDirTest):
    """TempDirTest with a ctrecd of its own per test, self.daemon."""

    def setUp(self):
        super().setUp()
        self.daemon = Daemon(self.tmp)

    def tearDown(self):
        self.daemon.stop()
        super().tearDown()


# ---- a minimal msgpack encoder for hand-made (and broken) wire input ----

def mp(obj):
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 128:
            return bytes([obj])
        if 0 <= obj < 2**32:
            return b"\xce" + struct.pack(">I", obj)
        if 0 <= obj < 2**64:
            return b"\xcf" + struct.pack(">Q", obj)
        if -32 <= obj < 0:
            return struct.pack("b", obj)
        return b"\xd3" + struct.pack(">q", obj)
    if isinstance(obj, float):
        return b"\xcb" + struct.pack(">d", obj)
    if isinstance(obj, str):
        b = obj.encode()
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(obj, bytes):
        return b"\xc6" + struct.pack(">I", len(obj)) + obj
    if isinstance(obj, (list, tuple)):
        return b"\xdd" + struct.pack(">I", len(obj)) + b"".join(mp(x) for x in obj)
    if isinstance(obj, dict):
        return b"\xdf" + struct.pack(">I", len(obj)) + b"".join(mp(k) + mp(v) for k, v in obj.items())
    raise TypeError(obj)


def frame(payload):
    return struct.pack("<I", len(payload)) + payload


def hello(program="/tmp/fake.rb", role="record"):
    return mp([1, {"version": 1, "role": role, "lang": "ruby", "lang_version": "3.1",
                   "shim_version": "test", "pid": os.getpid(), "ppid": os.getppid(),
                   "program": program, "args": [], "cwd": "/tmp",
                   "realtime_ns": time.time_ns(), "mono_ns": time.monotonic_ns()}])


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def read_until_closed(s, limit=1 << 20):
    data = b""
    while len(data) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
