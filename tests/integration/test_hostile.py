"""Clients that hold the daemon's resources: connections that never say
HELLO, stalled partial frames, more connections than descriptors. The
daemon bounds what each holds, says so once in its log, and a real Ruby
client recording meanwhile completes its trace."""
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import time

import harness
from harness import (CTRECCTL, PY_SHIM, RUBY_PROGRAMS, Daemon, TempDirTest, Trace, connect,
                     extra_pythons, finish_good_client, finished_traces, frame, hello, mp,
                     trace_folders, validate)

GOOD_PROGRAM = os.path.join(RUBY_PROGRAMS, "slow_counter.rb")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def closed_within(s, seconds):
    """Whether the daemon closed s (EOF or reset) within seconds, reading
    and dropping whatever it sent first (an ERROR frame)."""
    s.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if s.recv(65536) == b"":
                return True
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


class HostileTest(TempDirTest):
    def start(self, *sets, wrapper=None):
        extra = []
        for kv in sets:
            extra += ["--set", kv]
        saved = harness.CTRECD
        if wrapper:
            harness.CTRECD = wrapper
        try:
            self.daemon = Daemon(self.tmp, extra=extra)
        finally:
            harness.CTRECD = saved
        self.good = subprocess.Popen(["ruby", GOOD_PROGRAM, "30"], env=self.daemon.env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.3)

    def tearDown(self):
        if getattr(self, "good", None) and self.good.poll() is None:
            self.good.kill()
            self.good.wait()
        super().tearDown()

    def finish_good_client(self):
        finish_good_client(self, self.good, self.daemon)

    def test_frame_before_hello_is_bounded(self):
        self.start()
        s = connect(self.daemon.sock)
        s.sendall(struct.pack("<I", 8 << 20) + b"\x00" * 1000)
        self.assertTrue(closed_within(s, 5))
        s.close()
        self.assertIn("frame before HELLO larger than a HELLO needs", self.daemon.read_log())
        self.finish_good_client()

    def test_silent_and_idle_connections_time_out(self):
        self.start("limits.handshake_timeout_ms=500")
        silent = connect(self.daemon.sock)
        partial = connect(self.daemon.sock)
        partial.sendall(struct.pack("<I", 1000) + b"\x91")
        control = connect(self.daemon.sock)
        control.sendall(frame(hello(role="control")))
        for s in (silent, partial, control):
            self.assertTrue(closed_within(s, 5))
            s.close()
        self.assertEqual(self.daemon.read_log().count("no HELLO within "
                                                     "limits.handshake_timeout_ms"), 2)
        self.finish_good_client()

    def test_client_that_does_not_read_is_closed(self):
        """A control client that asks and never reads: past 4 MiB of
        answers queued it is closed (with a log line), not served with
        holes."""
        self.start()
        s = connect(self.daemon.sock)
        s.settimeout(120)  # the daemon reads on while it answers
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(frame(hello(role="control")))
        # As many requests as it takes: an answer is shorter once the good
        # client's session has ended, which a loaded machine reaches first.
        deadline = time.monotonic() + 60
        try:
            while "does not read what it is sent" not in self.daemon.read_log() and \
                    time.monotonic() < deadline:
                s.sendall(frame(mp([50]) * 2000))
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed already (a slower, sanitized daemon reads less at a time)
        while "does not read what it is sent" not in self.daemon.read_log() and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertIn("does not read what it is sent", self.daemon.read_log())
        self.assertTrue(closed_within(s, 5))
        s.close()
        self.finish_good_client()

    def test_stalled_partial_frames_are_bounded(self):
        """Clients that each send most of a 12 MiB frame and stall: past
        limits.max_buffered (64 MiB here) the largest holders are closed,
        the daemon's memory stays bounded and is given back."""
        # An ASan build holds freed memory in quarantine (256 MiB): without
        # it the bound measured is the daemon's own, as in a normal build.
        wrapper = os.path.join(self.tmp, "ctrecd-noquarantine")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}"
                    "quarantine_size_mb=0:thread_local_quarantine_size_kb=0\" "
                    f"exec {harness.CTRECD} \"$@\"\n")
        os.chmod(wrapper, stat.S_IRWXU)
        self.start("limits.max_buffered=67108864", wrapper=wrapper)
        base = rss_kib(self.daemon.proc.pid)
        stalled = []
        for i in range(12):
            s = connect(self.daemon.sock)
            s.sendall(frame(hello(program=f"/tmp/stall{i}.rb")))
            s.recv(65536)  # WELCOME
            s.sendall(struct.pack("<I", 12 << 20))
            chunk = b"\x00" * (1 << 20)
            try:
                for _ in range(11):
                    s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            stalled.append(s)
        time.sleep(0.5)
        peak = rss_kib(self.daemon.proc.pid)
        self.assertLess(peak - base, 100 * 1024, "partial frames past limits.max_buffered")
        log = self.daemon.read_log()
        self.assertIn("partial frames of all clients past limits.max_buffered", log)
        closed = sum(closed_within(s, 0.5) for s in stalled)
        self.assertGreaterEqual(closed, 6)
        for s in stalled:
            s.close()
        time.sleep(0.5)
        self.assertLess(rss_kib(self.daemon.proc.pid) - base, 16 * 1024,
                        "memory of closed clients kept")
        self.finish_good_client()

    def test_more_connections_than_descriptors(self):
        """A daemon limited to 160 descriptors facing 400 idle connections:
        it refuses the extra ones (saying so once), times the idle ones out
        and then serves new clients again."""
        wrapper = os.path.join(self.tmp, "ctrecd-160")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nulimit -n 160\nexec {harness.CTRECD} \"$@\"\n")
        os.chmod(wrapper, stat.S_IRWXU)
        self.start("limits.handshake_timeout_ms=1500", wrapper=wrapper)
        idle = []
        for _ in range(400):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.daemon.sock)
            idle.append(s)
        time.sleep(0.5)
        log = self.daemon.read_log()
        self.assertEqual(log.count("refusing new clients"), 1, log)
        time.sleep(2.5)
        for s in idle:
            s.close()
        res = subprocess.run([CTRECCTL, "status", "-s", self.daemon.sock], capture_output=True,
                             timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.finish_good_client()



# Busy for `seconds` of its own wall time: about 500 calls a second, each
# with a new 800-byte string (so about 0.5 MB/s of messages).
RUBY_BUSY = """$stdout.sync = true
def work(s, i) = s.size + i
puts "ready"
t = Time.now
i = n = 0
while Time.now - t < Float(ARGV[0])
  s = format("%08d", i) * 100
  n += work(s, i)
  i += 1
  sleep 0.002
  puts i if i % 100 == 0
end
puts "done"
"""
PY_BUSY = """import sys, time
def work(s, i):
    return len(s) + i
print("ready", flush=True)
t = time.monotonic()
i = n = 0
while time.monotonic() - t < float(sys.argv[1]):
    s = "%08d" % i * 100
    n += work(s, i)
    i += 1
    time.sleep(0.002)
    if i % 100 == 0:
        print(i, flush=True)
print("done", flush=True)
"""


class StalledDaemonTest(TempDirTest):
    """A daemon that stops reading (SIGSTOP) does not hold the traced
    program: it goes on, records nothing past limits.client_buffer (64
    KiB here), says what it left out, and exits within limits.client_wait_ms
    (1 s) of its own end."""

    def setUp(self):
        super().setUp()
        # The defaults' bound (the harness lets other suites wait longer).
        self.daemon = Daemon(self.tmp, extra=["--set", "limits.client_buffer=65536",
                                              "--set", "limits.client_wait_ms=1000"])

    def programs(self):
        ruby = os.path.join(self.tmp, "busy.rb")
        py = os.path.join(self.tmp, "busy.py")
        harness.write(ruby, RUBY_BUSY)
        harness.write(py, PY_BUSY)
        env_py = dict(os.environ, CT_RECORDER_SOCKET=self.daemon.sock, PYTHONPATH=PY_SHIM)
        yield "ruby", ["ruby", ruby], self.daemon.env()
        for python in ["python3"] + extra_pythons():
            yield python, [python, py], env_py

    def run_stalled(self, cmd, env, busy, stop_for):
        """Runs cmd for `busy` s with the daemon stopped for `stop_for` s
        from the program's first line on; returns (stdout, seconds from the
        stop to the program's exit)."""
        p = subprocess.Popen(cmd + [str(busy)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.assertEqual(p.stdout.readline(), b"ready\n")
        # The program has its WELCOME (limits.client_buffer) once the daemon
        # lists its session: a loaded machine may answer after "ready".
        deadline = time.time() + 30
        while str(p.pid).encode() not in subprocess.run(
                [CTRECCTL, "status", "-s", self.daemon.sock], capture_output=True).stdout:
            self.assertLess(time.time(), deadline, "no session")
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(self.daemon.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            if stop_for < busy:
                time.sleep(stop_for)
                os.kill(self.daemon.proc.pid, signal.SIGCONT)
            out, err = p.communicate(timeout=60)
            took = time.monotonic() - stopped
        finally:
            os.kill(self.daemon.proc.pid, signal.SIGCONT)
        self.assertEqual(p.returncode, 0, err)
        self.assertNotIn(b"ctrec:", err)
        return b"ready\n" + out, took

    def trace_of(self, name):
        """The one trace folder of the busy program, once it is finished."""
        deadline = time.time() + 20
        while time.time() < deadline:
            folders = list(finished_traces(self.daemon.out))
            if folders:
                self.assertEqual(len(folders), 1, folders)
                return folders[0]
            time.sleep(0.2)
        self.fail(f"{name}: no finished trace")

    def test_program_does_not_wait_for_a_stopped_daemon(self):
        for name, cmd, env in self.programs():
            with self.subTest(name):
                out, took = self.run_stalled(cmd, env, busy=1.5, stop_for=30)
                self.assertTrue(out.endswith(b"done\n"))
                # 1.5 s of its own work and at most 1 s waiting at exit.
                self.assertLess(took, 6, f"{name} waited for the stopped daemon")
                folder = self.trace_of(name)
                try:
                    validate(self, folder, live=True)
                finally:
                    shutil.rmtree(folder)

    def test_gap_is_counted_and_recording_goes_on(self):
        for name, cmd, env in self.programs():
            with self.subTest(name):
                # Past the bound the program waits 1 s for a daemon that takes
                # nothing, then leaves events out until it catches up.
                out, _ = self.run_stalled(cmd, env, busy=6, stop_for=3)
                folder = self.trace_of(name)
                try:
                    validate(self, folder)
                    t = Trace(folder)
                    self.assertEqual(t.state, "complete")
                    lost = t.meta["ctrec"]["lost_by_cause"]
                    self.assertGreater(lost.get("daemon not reading", 0), 0, lost)
                    # Recording went on after the gap: the end is in the trace.
                    self.assertTrue(t.output().endswith("done\n"), t.output()[-200:])
                    self.assertIn("work", t.call_names())
                finally:
                    shutil.rmtree(folder)


class CrowdTest(TempDirTest):
    """Programs that start while the daemon cannot answer (stopped for 3 s,
    as a crowd of interpreters on a busy machine keeps it) are recorded
    anyway: each goes on after 2 s, recording into its buffer, and its
    events reach the daemon once it answers."""

    def test_programs_started_before_the_daemon_answers_are_recorded(self):
        daemon = Daemon(self.tmp)
        ruby = harness.write(os.path.join(self.tmp, "crowd.rb"),
                             "def f(i) = i * 2\n3.times { |i| puts f(i) }\n")
        py = harness.write(os.path.join(self.tmp, "crowd.py"),
                           "def f(i):\n    return i * 2\nfor i in range(3):\n    print(f(i))\n")
        env_py = dict(os.environ, CT_RECORDER_SOCKET=daemon.sock, PYTHONPATH=PY_SHIM)
        os.kill(daemon.proc.pid, signal.SIGSTOP)
        try:
            procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
                     for _ in range(10)
                     for cmd, env in ((["ruby", ruby], daemon.env()), (["python3", py], env_py))]
            time.sleep(3)
        finally:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        for p in procs:
            out, err = p.communicate(timeout=60)
            self.assertEqual((p.returncode, out, err), (0, b"0\n2\n4\n", b""))
        # The programs are gone; the daemon, behind, still reads what they
        # left in their connections.
        deadline = time.time() + 60
        while len(trace_folders(daemon.out)) < 20 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        # Every program ran to its end: none is counted as having given up.
        self.assertNotIn(b"since it started", self.status(daemon))
        daemon.stop()
        folders = trace_folders(daemon.out)
        self.assertEqual(len(folders), 20)
        for folder in folders:
            validate(self, folder)
            t = Trace(folder)
            self.assertEqual(t.state, "complete")
            self.assertEqual(t.output(), "0\n2\n4\n")
            self.assertEqual(t.call_names().count("f"), 3)

    def test_clients_not_yet_accepted_at_shutdown_are_recorded(self):
        """SIGTERM reaches a daemon whose listener still holds connections
        it has not accepted: it serves them through its grace period
        instead of resetting them."""
        daemon = Daemon(self.tmp)
        py = harness.write(os.path.join(self.tmp, "late.py"),
                           "def f(i):\n    return i * 2\nfor i in range(3):\n    print(f(i))\n")
        env = dict(os.environ, CT_RECORDER_SOCKET=daemon.sock, PYTHONPATH=PY_SHIM)
        os.kill(daemon.proc.pid, signal.SIGSTOP)
        try:
            procs = [subprocess.Popen(["python3", py], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE) for _ in range(6)]
            for p in procs:
                out, err = p.communicate(timeout=60)
                self.assertEqual((p.returncode, out, err), (0, b"0\n2\n4\n", b""))
            os.kill(daemon.proc.pid, signal.SIGTERM)
        finally:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        daemon.proc.wait(timeout=30)
        folders = trace_folders(daemon.out)
        self.assertEqual(len(folders), 6)
        for folder in folders:
            t = Trace(folder)
            self.assertEqual((t.state, t.output()), ("complete", "0\n2\n4\n"))

    def status(self, daemon):
        res = subprocess.run([CTRECCTL, "status", "-s", daemon.sock], capture_output=True,
                             timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        return res.stdout

    def stopped_daemon_run(self, code, seconds):
        """Runs a Python program while the daemon is stopped; returns the
        daemon (running again) and the program's result."""
        daemon = Daemon(self.tmp)
        prog = harness.write(os.path.join(self.tmp, "waits.py"), code)
        env = dict(os.environ, CT_RECORDER_SOCKET=daemon.sock, PYTHONPATH=PY_SHIM)
        os.kill(daemon.proc.pid, signal.SIGSTOP)
        try:
            p = subprocess.Popen(["python3", prog], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            try:
                out, err = p.communicate(timeout=seconds)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
        finally:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        return daemon, p.returncode, out, err

    def counted_trace(self, daemon):
        """Waits for status to count one client that left before it was
        answered; its session has ended by then. Returns its trace."""
        deadline = time.time() + 30
        while b"since it started: 1 client(s) left before it answered" \
                not in self.status(daemon):
            self.assertLess(time.time(), deadline, "not counted")
            time.sleep(0.1)
        folder, = trace_folders(daemon.out)
        return Trace(folder)

    def test_a_client_that_gives_up_is_counted(self):
        """libctrec waits 30 s for WELCOME while the program runs on; then
        it gives up. The daemon, once it reads the HELLO, counts it in
        status and says so in the trace."""
        daemon, rc, out, err = self.stopped_daemon_run(
            "import time\nfor i in range(34):\n    time.sleep(1)\nprint('done')\n", 60)
        self.assertEqual((rc, out), (0, b"done\n"))
        self.assertIn(b"(no answer within 30 s); recording disabled", err)
        self.assertIn("gave up waiting", self.counted_trace(daemon).state)
        daemon.stop()

    def test_a_client_killed_before_the_answer_is_counted(self):
        # Killed once it has gone on without an answer (after 2 s), so
        # that it sent steps and has a trace.
        daemon, rc, out, err = self.stopped_daemon_run(
            "import time\ntime.sleep(30)\n", 4)
        self.assertEqual(rc, -signal.SIGKILL)
        self.assertIn("or died", self.counted_trace(daemon).state)
        daemon.stop()


class OwnershipTest(TempDirTest):
    """A root service daemon gives each trace to the traced program's user,
    readable by that user alone unless output.mode says otherwise."""

    def record_as_nobody(self, *sets):
        os.chmod(self.tmp, 0o755)
        extra = ["--set", "listen.mode=0666"]
        for kv in sets:
            extra += ["--set", kv]
        daemon = Daemon(self.tmp, extra=extra)
        os.chmod(os.path.dirname(daemon.sock), 0o755)
        prog = harness.write(os.path.join(self.tmp, "mine.rb"), "x = 41\nputs x + 1\n")
        os.chmod(prog, 0o644)
        res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "ruby", prog], env=daemon.env(), capture_output=True, timeout=60)
        self.assertEqual((res.returncode, res.stdout, res.stderr), (0, b"42\n", b""))
        daemon.stop()
        folder, = trace_folders(daemon.out)
        validate(self, folder)
        return folder

    def modes(self, folder):
        out = {}
        for d, dirs, files in os.walk(folder):
            for name in dirs + files:
                st = os.lstat(os.path.join(d, name))
                out[os.path.relpath(os.path.join(d, name), folder)] = (
                    st.st_uid, stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode))
        st = os.lstat(folder)
        out["."] = (st.st_uid, stat.S_IMODE(st.st_mode), True)
        return out

    def test_traces_belong_to_the_program_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: a daemon that is not root keeps its traces")
        os.chmod(self.tmp, 0o755)
        for mode, fmode, dmode in (("0600", 0o600, 0o700), ("0640", 0o640, 0o750)):
            with self.subTest(mode):
                sub = os.path.join(self.tmp, mode)
                os.mkdir(sub)
                self.tmp, saved = sub, self.tmp
                try:
                    folder = self.record_as_nobody("output.mode=" + mode)
                finally:
                    self.tmp = saved
                seen = self.modes(folder)
                self.assertIn("trace_metadata.json", seen)
                self.assertTrue(any(k.startswith("files/") for k in seen), seen)
                for name, (uid, m, is_dir) in seen.items():
                    self.assertEqual(uid, 65534, name)
                    self.assertEqual(m, dmode if is_dir else fmode, name)
                # The user reads the trace it owns.
                res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                      "--clear-groups", CTRECCTL, "check", folder],
                                     capture_output=True, timeout=60)
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)


class FullDiskTest(TempDirTest):
    """Writes that fail (a file-size limit stands in for a full disk): the
    trace on disk stays valid up to its last good write and says it was
    cut, the program is undisturbed, and the next traces are recorded."""

    # Slow enough for a few flushes before the limit is reached.
    BIG = ("def f(i) = i * 2\n30000.times { |i| f(i); sleep 0.02 if i % 1000 == 0 }\n"
           "puts \"end\"\n")

    def record_capped(self, *args, timeout=120):
        """ctrecctl record ARGS with files limited to 1 MiB (ulimit -f), as
        on a full disk."""
        return subprocess.run(["bash", "-c", 'ulimit -f 1024; exec "$@"', "-", CTRECCTL,
                               "record", *args], capture_output=True, timeout=timeout)

    def aborted_by_the_limit(self, res, out):
        """Checks that record_capped's res ran the program to its end and
        left the one trace in out aborted by the limit; returns the trace
        folder and its metadata."""
        self.assertEqual((res.returncode, res.stdout), (0, b"end\n"))
        self.assertIn(b"(aborted: cannot write the trace: File too large)", res.stderr)
        folder, = [os.path.join(out, d) for d in os.listdir(out)]
        with open(os.path.join(folder, "trace_metadata.json")) as f:
            meta = json.load(f)
        self.assertEqual(meta["ctrec"]["state"],
                         "aborted: cannot write the trace: File too large")
        return folder, meta

    def test_write_errors_leave_valid_traces_marked_aborted(self):
        big = harness.write(os.path.join(self.tmp, "big.rb"), self.BIG)
        small = harness.write(os.path.join(self.tmp, "small.rb"), "puts 1 + 1\n")
        for fmt in ("json", "ctfs"):
            with self.subTest(fmt):
                out = os.path.join(self.tmp, "out-" + fmt)
                res = self.record_capped("-o", out, "-f", fmt, "--", "ruby", big)
                self.assertNotIn(b"ctrec:", res.stderr)
                folder, meta = self.aborted_by_the_limit(res, out)
                # Valid as far as it goes: a CTFS trace gets the calls its
                # last good flush owed, as from a killed daemon.
                validate(self, folder)
                self.assertGreater(meta["ctrec"]["counters"]["steps"], 1000)
                calls = harness.records_text(folder).count(b'{"Call"')
                self.assertGreater(calls, 1000)
                res = self.record_capped("-o", out, "-f", fmt, "--", "ruby", small,
                                         timeout=60)
                self.assertEqual(res.stdout, b"2\n")
                self.assertIn(b"(complete)", res.stderr)

    # Flushed once, at the end, the steps fit in 1 MiB, and the calls they
    # owe (200 KB compressed, each returning 1000 random characters) do not.
    OWED = ("require 'securerandom'\n"
            "def g(i) = SecureRandom.hex(500)\n"
            "700.times do |i|\n"
            "  x = SecureRandom.hex(400)\n"
            "  g(i)\n"
            "end\n"
            "puts 'end'\n")

    def test_calls_that_do_not_fit_at_the_end_leave_the_trace_aborted(self):
        """A CTFS trace writes its calls at the end, after the last flush
        that has room: it says aborted and keeps every step."""
        prog = harness.write(os.path.join(self.tmp, "owed.rb"), self.OWED)
        conf = harness.write(os.path.join(self.tmp, "ctrec.yaml"),
                             "output:\n  flush_interval_ms: 60000\n")
        out = os.path.join(self.tmp, "out")
        res = self.record_capped("-c", conf, "-o", out, "-f", "ctfs", "--", "ruby", prog)
        folder, meta = self.aborted_by_the_limit(res, out)
        validate(self, folder, live=True)
        steps = harness.records_text(folder, live=True).count(b'{"Step"')
        self.assertEqual(steps, meta["ctrec"]["counters"]["steps"])
        self.assertGreater(steps, 2000)



class RecoveryTest(TempDirTest):
    def test_metadata_of_any_size_is_recovered(self):
        """A killed daemon's trace whose metadata is large (a 200 KB
        command line) is marked aborted on restart and stays valid."""
        prog = harness.write(os.path.join(self.tmp, "long.rb"),
                             "def f(i) = i\n200.times { |i| f(i); sleep 0.01 }\n")
        daemon = Daemon(self.tmp, extra=["--set", "output.format=json"])
        p = subprocess.Popen(["ruby", prog] + ["x" * 60000] * 4, env=daemon.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.8)
        daemon.proc.kill()
        daemon.stop(expect=-signal.SIGKILL)
        p.communicate(timeout=60)
        again = Daemon(self.tmp, extra=["--set", "output.format=json"])
        again.stop()
        folder, = [os.path.join(again.out, d) for d in os.listdir(again.out)]
        with open(os.path.join(folder, "trace_metadata.json")) as f:
            meta = json.load(f)
        self.assertGreater(os.path.getsize(os.path.join(folder, "trace_metadata.json")), 200000)
        self.assertEqual(meta["ctrec"]["state"], "aborted: daemon stopped unexpectedly")
        validate(self, folder)

if __name__ == "__main__":
    import unittest
    unittest.main()
