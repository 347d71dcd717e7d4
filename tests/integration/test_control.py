"""ctrecctl's control verbs against real, stopped and fake daemons: every
exchange times out with its own exit status, a reload's config error is a
refusal shown as it is, start/stop show a pending state until the shim
confirms, end reasons are said once, and `record` through a running ctrecd
refuses the options it cannot honour and prints the same summary as with
its private daemon."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from harness import (CTRECCTL, PY_SHIM, RUBY_PROGRAMS, RUBY_SHIM, Daemon, TempDirTest, Trace,
                     frame, mp, run, service_config, trace_folders, validate)
from test_python_record import OTHER_PYTHONS

ADDITION = os.path.join(RUBY_PROGRAMS, "addition.rb")
SLOW = os.path.join(RUBY_PROGRAMS, "slow_counter.rb")
VERBS = [["status"], ["start", "--all"], ["stop", "--all"], ["reload"]]
SUMMARY = re.compile(r"ctrecctl: trace (\S+): (\d+) steps?, (\d+) calls?, (\d+) events?; "
                     r"(?:exit \d+|no exit status), (?:under 1|\d+) s, [\d.]+ [KMG]?i?B \((.*)\)")

# Waits on stdin between phases, so a test decides when it runs on.
WAITER_RB = """\
$stdout.sync = true
def work(n)
  s = 0
  n.times { |i| s += i }
  s
end
puts "ready"
$stdin.gets
puts work(10)
$stdin.gets
puts work(20)
"""
WAITER_PY = """\
import sys
def work(n):
    return sum(range(n))
print("ready", flush=True)
sys.stdin.readline()
print(work(10), flush=True)
sys.stdin.readline()
print(work(20), flush=True)
"""


def interpreters():
    """(name, argv prefix, program text, env for a daemon socket) to test
    the shims with: Ruby, python3 (3.11) and every other CPython built."""
    out = [("ruby", ["ruby"], WAITER_RB,
            lambda sock: dict(os.environ, CT_RECORDER_SOCKET=sock, RUBYLIB=RUBY_SHIM,
                              RUBYOPT="-rctrec"))]
    py_env = lambda sock: dict(os.environ, CT_RECORDER_SOCKET=sock, PYTHONPATH=PY_SHIM)
    out.append(("python3", ["python3"], WAITER_PY, py_env))
    for version, exe in sorted(OTHER_PYTHONS.items()):
        out.append(("python" + version, [exe], WAITER_PY, py_env))
    return out


class ControlTest(TempDirTest):
    def start_daemon(self, extra_yaml="", flush=50, root=None):
        root = root or self.tmp
        self.daemon = Daemon(root, service_config(root, extra_yaml, flush=flush))
        self.addCleanup(self.daemon.stop)
        return self.daemon

    def ctl(self, *args, sock=None, timeout=60):
        return run([CTRECCTL, args[0], "-s", sock or self.daemon.spec, *args[1:]],
                   timeout=timeout)

    def status_of(self, pid):
        res = self.ctl("status", "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        for line in res.stdout.decode().splitlines():
            s = json.loads(line)
            if s["pid"] == pid:
                return s
        return None

    def wait_state(self, pid, want, seconds=10):
        deadline = time.time() + seconds
        while True:
            s = self.status_of(pid)
            # A session is told to pause at its first message.
            if s and s["state"] == want and s["received"] > 0:
                return s
            if time.time() > deadline:
                self.fail(f"pid {pid}: state {s and s['state']!r}, expected {want!r}")
            time.sleep(0.05)

    def wait_for_session(self, seconds=10):
        """The pid of the only session, once there is one."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            res = self.ctl("status", "--json")
            lines = res.stdout.decode().splitlines()
            if lines:
                self.assertEqual(len(lines), 1, lines)
                return json.loads(lines[0])["pid"]
            time.sleep(0.05)
        self.fail("no session")

    def assert_times_out(self, args, sock, seconds, limit):
        t0 = time.time()
        res = run([CTRECCTL, *args, "-s", sock, *(["--timeout", str(seconds)] if seconds else [])],
                  timeout=30)
        took = time.time() - t0
        self.assertEqual(res.returncode, 4, (args, res.stderr))
        self.assertLess(took, limit, args)
        self.assertEqual(res.stderr.decode(),
                         f"ctrecctl: no answer from ctrecd at {sock} within "
                         f"{seconds or 5:g} s (is it stopped or wedged?)\n")
        self.assertEqual(res.stdout, b"")

    # ---- item 12: time-outs ---------------------------------------------

    def test_control_verbs_time_out_on_a_stopped_daemon(self):
        d = self.start_daemon()
        d.proc.send_signal(signal.SIGSTOP)
        try:
            for args in VERBS:
                self.assert_times_out(args, d.spec, 1, 3.5)
            # Without --timeout: a few seconds, not forever.
            t0 = time.time()
            self.assert_times_out(["status"], d.spec, None, 9)
            self.assertGreater(time.time() - t0, 4)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        # The daemon is fine once it runs again.
        res = self.ctl("status")
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_control_verbs_time_out_on_a_server_that_never_answers(self):
        sock_path = os.path.join(self.tmp, "fake.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(sock_path)
        srv.listen(16)
        held, stop = [], threading.Event()

        def accept():
            srv.settimeout(0.1)
            while not stop.is_set():
                try:
                    held.append(srv.accept()[0])
                except socket.timeout:
                    pass
        t = threading.Thread(target=accept)
        t.start()
        try:
            for args in VERBS:
                self.assert_times_out(args, sock_path, 0.5, 3)
        finally:
            stop.set()
            t.join()
            for c in held:
                c.close()
            srv.close()
        self.assertEqual(len(held), len(VERBS))

    def test_control_verbs_time_out_on_a_full_listen_queue(self):
        # A server that never accepts: once its queue is full, connect()
        # itself blocks.
        sock_path = os.path.join(self.tmp, "full.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(sock_path)
        srv.listen(0)
        queued = []
        try:
            while True:
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.setblocking(False)
                try:
                    c.connect(sock_path)
                except BlockingIOError:
                    c.close()
                    break
                queued.append(c)
            self.assertTrue(queued)
            try:
                self.assert_times_out(["status"], sock_path, None, 9)
            except subprocess.TimeoutExpired:
                self.fail("ctrecctl status blocked in connect()")
        finally:
            for c in queued:
                c.close()
            srv.close()

    def test_no_daemon_is_unreachable(self):
        sock_path = os.path.join(self.tmp, "none.sock")
        for args in VERBS:
            res = run([CTRECCTL, *args, "-s", sock_path])
            self.assertEqual(res.returncode, 3, (args, res.stderr))
            self.assertEqual(res.stderr.decode(),
                             f"ctrecctl: cannot reach ctrecd at {sock_path}: "
                             "No such file or directory\n")

    def test_bad_timeout_is_a_usage_error(self):
        for bad in ("0", "-1", "x", "1e9"):
            res = run([CTRECCTL, "status", "-s", "/nonexistent", "--timeout", bad])
            self.assertEqual(res.returncode, 2, bad)
            self.assertIn(b"--timeout", res.stderr)

    # ---- item 12: refusals and end reasons --------------------------------

    def test_reload_config_error_is_a_refusal_shown_as_is(self):
        d = self.start_daemon()
        cfg = os.path.join(self.tmp, "ctrec.yaml")
        with open(cfg) as f:
            good = f.read()
        bad = good.replace("flush_interval_ms: 50", "flush_interval_ms: 5")
        line = bad.splitlines().index("  flush_interval_ms: 5") + 1
        with open(cfg, "w") as f:
            f.write(bad)
        res = self.ctl("reload")
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stderr.decode(),
                         f"ctrecctl: ctrecd refused: {cfg}:{line}:22: output.flush_interval_ms: "
                         "must be between 10 and 60000\n")
        self.assertNotIn("protocol error", d.read_log())
        with open(cfg, "w") as f:
            f.write(good)
        res = self.ctl("reload")
        self.assertEqual((res.returncode, res.stdout), (0, b"configuration reloaded\n"),
                         res.stderr)

    def test_nothing_matched_is_a_refusal(self):
        self.start_daemon()
        res = self.ctl("stop", "--pid", "999999")
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stderr, b"ctrecctl: no session matched\n")

    def test_end_reason_is_said_once(self):
        d = self.start_daemon()
        p = subprocess.Popen(["ruby", SLOW, "200"], env=d.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        for _ in range(3):
            p.stdout.readline()
        f = subprocess.Popen([CTRECCTL, "follow", "-s", d.spec, "--pid", str(p.pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        p.kill()
        p.wait()
        out, err = f.communicate(timeout=30)
        reason = "client disconnected without BYE"
        self.assertIn(f"== interval 1 aborted: {reason} ==\n", out.decode())
        self.assertEqual(out.decode().count(reason), 1, out.decode()[-500:])
        logged = [l for l in d.read_log().splitlines() if "interval 1 aborted" in l]
        self.assertEqual(len(logged), 1, d.read_log())
        self.assertEqual(logged[0].count(reason), 1, logged[0])

    # ---- item 12: pending states ------------------------------------------

    def waiter(self, name, argv, text, env):
        path = os.path.join(self.daemon.root, "waiter.rb" if name == "ruby" else "waiter.py")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.Popen(argv + [path], env=env(self.daemon.spec), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        self.assertEqual(p.stdout.readline(), b"ready\n")
        return p

    def finish(self, p, outputs):
        out, err = p.communicate(b"go\n", timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(out.decode().split(), outputs)

    def test_start_shows_resuming_until_the_program_runs(self):
        for name, argv, text, env in interpreters():
            with self.subTest(name):
                self.start_daemon("record:\n  start: paused\n", root=self.subdir(name))
                p = self.waiter(name, argv, text, env)
                self.wait_state(p.pid, "paused")
                res = self.ctl("start", "--pid", str(p.pid))
                self.assertEqual(res.returncode, 0, res.stderr)
                # Blocked in a read, the program sends its stack only when it
                # runs again.
                time.sleep(0.3)
                s = self.status_of(p.pid)
                self.assertEqual((s["state"], s["intervals"]), ("resuming", 0))
                p.stdin.write(b"go\n")
                p.stdin.flush()
                self.assertEqual(p.stdout.readline(), b"45\n")
                self.wait_state(p.pid, "recording")
                self.finish(p, ["190"])
                self.daemon.stop()
                folders = trace_folders(self.daemon.out)
                self.assertEqual(len(folders), 1)
                validate(self, folders[0])
                self.assertIn("190", Trace(folders[0]).output())

    def test_stop_shows_pausing_until_the_shim_confirms(self):
        for name, argv, text, env in interpreters():
            with self.subTest(name):
                self.start_daemon(root=self.subdir(name))
                p = self.waiter(name, argv, text, env)
                self.wait_state(p.pid, "recording")
                p.send_signal(signal.SIGSTOP)
                try:
                    res = self.ctl("stop", "--pid", str(p.pid))
                    self.assertEqual(res.returncode, 0, res.stderr)
                    time.sleep(0.3)
                    self.assertEqual(self.status_of(p.pid)["state"], "pausing")
                finally:
                    p.send_signal(signal.SIGCONT)
                self.wait_state(p.pid, "paused")
                p.stdin.write(b"go\n")
                p.stdin.flush()
                self.assertEqual(p.stdout.readline(), b"45\n")
                self.finish(p, ["190"])
                self.daemon.stop()
                folders = trace_folders(self.daemon.out)
                self.assertEqual(len(folders), 1)
                validate(self, folders[0])
                t = Trace(folders[0])
                self.assertEqual(t.meta["ctrec"]["interval"]["end_reason"], "stopped by ctrecctl")
                self.assertNotIn("45", t.output())

    def subdir(self, name):
        """A fresh folder for one interpreter of a looping test."""
        path = os.path.join(self.tmp, name)
        os.makedirs(path)
        return path

    def test_shims_confirm_a_pause_that_comes_with_welcome(self):
        # ctrecd may pause a client (its tick) before the client has read
        # WELCOME; the shim then reads PAUSE and FLUSH with WELCOME and
        # must still answer the FLUSH, or the session stays "pausing". A
        # fake daemon sends them together every time.
        token = 0xBEEF
        flushed = b"\x92\x2c\xcd\xbe\xef"  # [44, token] as msgpack-c packs it
        for name, argv, text, env in interpreters():
            with self.subTest(name):
                root = self.subdir(name)
                sock_path = os.path.join(root, "fake.sock")
                srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                srv.bind(sock_path)
                srv.listen(1)
                srv.settimeout(30)
                prog = os.path.join(root, "w.rb" if name == "ruby" else "w.py")
                with open(prog, "w") as f:
                    f.write(text)
                p = subprocess.Popen(argv + [prog], env=env(sock_path), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                conn = srv.accept()[0]
                conn.settimeout(30)
                head = conn.recv(4, socket.MSG_WAITALL)
                conn.recv(int.from_bytes(head, "little"), socket.MSG_WAITALL)  # HELLO
                welcome = {"session": 1, "state": "recording", "flush_ms": 20,
                           "values": "all", "filter": []}
                conn.sendall(frame(mp([2, welcome])) + frame(mp([40])) +
                             frame(mp([43, token])))
                out, err = p.communicate(b"a\nb\n", timeout=60)
                data = b""
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.close()
                srv.close()
                self.assertEqual((p.returncode, out.split()), (0, [b"ready", b"45", b"190"]), err)
                self.assertIn(flushed, data)

    # ---- item 13: record through a running ctrecd -------------------------

    def test_record_through_a_service_refuses_output_and_config(self):
        d = self.start_daemon()
        env = dict(os.environ, CT_RECORDER_SOCKET=d.spec)
        for opt, why in ((["-o", os.path.join(self.tmp, "mine")], "-o: a running ctrecd writes "
                          "its traces to its own output.dir"),
                         (["-c", os.path.join(self.tmp, "ctrec.yaml")], "-c: a running ctrecd "
                          "keeps its own configuration"),
                         (["-L", "debug"], "-L: a running ctrecd keeps its own log level")):
            res = run([CTRECCTL, "record", *opt, "--", "ruby", ADDITION], env=env)
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertEqual(res.stderr.decode(),
                             f"ctrecctl: record: {why}; unset CT_RECORDER_SOCKET (now {d.spec}) "
                             "to record with a private ctrecd\n")
            self.assertEqual(res.stdout, b"")  # the program did not run
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "mine")))
        self.assertEqual(trace_folders(d.out), [])

    def test_record_log_level_is_an_option(self):
        # The private daemon logs to the program's stderr: warnings only,
        # unless -L asks for more.
        out = os.path.join(self.tmp, "priv")
        quiet = run([CTRECCTL, "record", "-q", "-o", out, "--", "ruby", ADDITION])
        self.assertEqual(quiet.returncode, 0, quiet.stderr)
        self.assertNotIn(b"ctrecd", quiet.stderr)
        loud = run([CTRECCTL, "record", "-q", "-L", "info", "-o", out, "--", "ruby", ADDITION],
                   env=dict(os.environ, CTREC_LOG_LEVEL="warn"))
        self.assertEqual(loud.returncode, 0, loud.stderr)
        self.assertIn(b"listening on", loud.stderr)
        # No environment variable changes it.
        env = run([CTRECCTL, "record", "-q", "-o", out, "--", "ruby", ADDITION],
                  env=dict(os.environ, CTREC_LOG_LEVEL="debug"))
        self.assertNotIn(b"ctrecd", env.stderr)

    def test_record_through_a_service_prints_the_summary(self):
        # The same program through a private daemon, for the figures.
        priv = run([CTRECCTL, "record", "-o", os.path.join(self.tmp, "priv"), "--", "ruby",
                    ADDITION])
        self.assertEqual(priv.returncode, 0, priv.stderr)
        figures = SUMMARY.search(priv.stderr.decode()).group(2, 3, 4, 5)

        d = self.start_daemon()
        # A session of someone else's program, live meanwhile, is not ours.
        other = subprocess.Popen(["ruby", SLOW, "40"], env=d.env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: other.poll() is None and other.kill())
        other.stdout.readline()
        env = dict(os.environ, CT_RECORDER_SOCKET=d.spec)
        # Two programs: one the script waits for, one orphaned at once.
        script = f"ruby {ADDITION}; (ruby {ADDITION} &); exit 3"
        res = run([CTRECCTL, "record", "--", "sh", "-c", script], env=env)
        self.assertEqual(res.returncode, 3, res.stderr)
        self.assertEqual(res.stdout, b"3\n3\n")
        lines = res.stderr.decode().splitlines()
        self.assertEqual(lines[0], f"ctrecctl: recording through the ctrecd at {d.spec}")
        found = [SUMMARY.fullmatch(l) for l in lines[1:]]
        self.assertTrue(all(found), lines)
        self.assertEqual(len(found), 2, lines)
        for m in found:
            self.assertEqual(m.group(2, 3, 4, 5), figures)
            self.assertEqual(os.path.dirname(m.group(1)), d.out)
            validate(self, m.group(1))
            t = Trace(m.group(1))
            self.assertEqual((t.state, t.meta["program"]), ("complete", ADDITION))
        # Quiet is quiet.
        res = run([CTRECCTL, "record", "-q", "--", "ruby", ADDITION], env=env)
        self.assertEqual((res.returncode, res.stdout, res.stderr), (0, b"3\n", b""))
        other.wait(timeout=60)
        self.assertEqual(len(trace_folders(d.out)), 4)

    def test_record_through_a_service_python(self):
        prog = os.path.join(os.path.dirname(RUBY_PROGRAMS), "python", "calc.py")
        d = self.start_daemon()
        env = dict(os.environ, CT_RECORDER_SOCKET=d.spec)
        for name, argv, _, _ in interpreters()[1:]:
            with self.subTest(name):
                priv = run([CTRECCTL, "record", "-o", self.subdir(name), "--", *argv, prog])
                self.assertEqual(priv.returncode, 0, priv.stderr)
                figures = SUMMARY.search(priv.stderr.decode()).group(2, 3, 4, 5)
                res = run([CTRECCTL, "record", "--", *argv, prog], env=env)
                self.assertEqual(res.returncode, 0, res.stderr)
                lines = res.stderr.decode().splitlines()
                self.assertEqual(len(lines), 2, lines)
                m = SUMMARY.fullmatch(lines[1])
                self.assertTrue(m, lines)
                self.assertEqual(m.group(2, 3, 4, 5), figures)
                self.assertEqual(os.path.dirname(m.group(1)), d.out)
                validate(self, m.group(1))

    def test_record_through_a_service_reports_every_interval(self):
        # A session that is stopped and started again leaves two traces.
        d = self.start_daemon()
        env = dict(os.environ, CT_RECORDER_SOCKET=d.spec)
        p = subprocess.Popen([CTRECCTL, "record", "--", "ruby", SLOW, "30"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        p.stdout.readline()
        pid = self.wait_for_session()
        self.wait_state(pid, "recording")
        self.assertEqual(self.ctl("stop", "--all").returncode, 0)
        self.wait_state(pid, "paused")
        self.assertEqual(self.ctl("start", "--all").returncode, 0)
        out, err = p.communicate(timeout=60)
        self.assertEqual((p.returncode, out.decode().count("tick")), (0, 29), err)
        found = [SUMMARY.fullmatch(l) for l in err.decode().splitlines()[1:]]
        self.assertEqual(len(found), 2, err)
        self.assertTrue(all(found), err)
        self.assertEqual(sorted(m.group(1) for m in found), trace_folders(d.out))
        self.assertEqual([m.group(5) for m in found], ["complete", "complete"])

    def test_record_through_a_stopped_service_times_out(self):
        d = self.start_daemon()
        env = dict(os.environ, CT_RECORDER_SOCKET=d.spec)
        d.proc.send_signal(signal.SIGSTOP)
        try:
            res = run([CTRECCTL, "record", "--timeout", "1", "--", "ruby", ADDITION], env=env,
                      timeout=30)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        self.assertEqual(res.returncode, 125, res.stderr)
        self.assertEqual(res.stdout, b"")
        self.assertEqual(res.stderr.decode(),
                         f"ctrecctl: no answer from ctrecd at {d.spec} within 1 s "
                         "(is it stopped or wedged?)\n")

    # ---- help ---------------------------------------------------------------

    def test_help_lists_every_verb_and_option(self):
        res = run([CTRECCTL, "--help"])
        self.assertEqual(res.returncode, 0)
        text = res.stdout.decode()
        for verb in ("record", "status", "follow", "start", "stop", "reload"):
            self.assertRegex(text, rf"\n  {verb}\b")
        self.assertIn("Exit status", text)
        for verb, opts in (("status", ["--socket", "--timeout", "--json"]),
                           ("start", ["--socket", "--timeout", "--all", "--pid"]),
                           ("stop", ["--socket", "--timeout", "--all", "--pid"]),
                           ("reload", ["--socket", "--timeout"]),
                           ("follow", ["--socket", "--timeout", "--json", "--pid"]),
                           ("record", ["--output", "--config", "--quiet", "--timeout"])):
            res = run([CTRECCTL, verb, "--help"])
            self.assertEqual(res.returncode, 0, verb)
            text = res.stdout.decode()
            for o in opts:
                self.assertIn(o, text, verb)
            self.assertIn("Exit status", text, verb)


if __name__ == "__main__":
    import unittest
    unittest.main()
