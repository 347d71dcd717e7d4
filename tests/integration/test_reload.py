"""Configuration reload and the listener.

A reload (ctrecctl reload, SIGHUP) gives exactly the configuration a
restart with the same file and the same command line would: what the file
no longer says goes back to its default, --set overrides stay, the flush
period and limits change; an option only a restart can change makes it
refuse, naming the key, and the old configuration stays.

Socket activation: a socket passed the way systemd passes it (fd 3,
LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES) is used, and left in place when
ctrecd stops, so the next activation serves on it."""
import os
import signal
import socket
import stat
import subprocess
import sys
import time

from harness import (CTRECCTL, CTRECD, PY_SHIM, RUBY_SHIM, SOURCE, Daemon, TempDirTest, Trace,
                     finished_traces, run, service_config, simple, trace_folders, validate,
                     write)
from test_python_record import OTHER_PYTHONS

PYTHONS = ["python3"] + [exe for _, exe in sorted(OTHER_PYTHONS.items())]

for var in ("PYTHONPATH", "LISTEN_PID",
            "LISTEN_FDS", "LISTEN_FDNAMES"):
    os.environ.pop(var, None)

RUBY_PROG = """\
def tick(i)
  i * 2
end

def greet(name)
  msg = "hello #{name}"
  msg.size
end

total = 0
3.times { |i| total += tick(i) }
puts greet("world") + total
"""

PY_PROG = """\
def tick(i):
    return i * 2


def greet(name):
    msg = "hello " + name
    return len(msg)


total = 0
for i in range(3):
    total += tick(i)
print(greet("world") + total)
"""

# Waits for the file named by its argument (so that a test can reload in
# between), then shows a long string.
RUBY_LONG = """\
def show(s)
  s.size
end

sleep 0.02 until File.exist?(ARGV[0])
puts show("x" * 5000)
"""

SKIP_TICK = """\
filter:
  rules:
    - {function: "tick", action: skip}
"""


class ReloadTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.cfg = os.path.join(self.tmp, "ctrec.yaml")
        self.rb = write(os.path.join(self.tmp, "prog.rb"), RUBY_PROG)
        self.py = write(os.path.join(self.tmp, "prog.py"), PY_PROG)
        self.seen = set()

    def start(self, extra_yaml="", flush=100, args=()):
        self.daemon = Daemon(self.tmp, service_config(self.tmp, extra_yaml, flush=flush),
                             extra=args)
        self.addCleanup(self.daemon.stop)
        return self.daemon

    def rewrite(self, extra_yaml="", flush=100):
        write(self.cfg, service_config(self.tmp, extra_yaml, flush=flush))

    def reload(self):
        return run([CTRECCTL, "reload", "-s", self.daemon.sock])

    def reload_ok(self):
        res = self.reload()
        self.assertEqual(res.returncode, 0, res.stderr.decode() + self.daemon.read_log())

    def wait_trace(self, out_dir=None):
        """The next trace folder to be finished, validated."""
        out_dir = out_dir or self.daemon.out
        deadline = time.time() + 20
        while time.time() < deadline:
            for f in sorted(finished_traces(out_dir)):
                if f not in self.seen:
                    self.seen.add(f)
                    validate(self, f)
                    return Trace(f)
            time.sleep(0.05)
        self.fail("no finished trace in %s:\n%s" % (out_dir, self.daemon.read_log()))

    def record(self, cmd, env, out_dir=None):
        """Runs cmd traced; its output must be what it is untraced."""
        plain = run(cmd)
        res = run(cmd, env=env)
        self.assertEqual((res.stdout, res.stderr, res.returncode),
                         (plain.stdout, plain.stderr, plain.returncode))
        return self.wait_trace(out_dir)

    def record_ruby(self, out_dir=None):
        return self.record(["ruby", self.rb], self.daemon.env(), out_dir)

    def record_python(self, python):
        env = dict(os.environ, CT_RECORDER_SOCKET=self.daemon.sock, PYTHONPATH=PY_SHIM)
        return self.record([python, self.py], env)

    def connected(self, prog, go):
        """Ruby running prog, connected to the daemon and waiting for go."""
        p = subprocess.Popen(["ruby", prog, go], env=self.daemon.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(p.kill)
        deadline = time.time() + 10
        while "hello from" not in self.daemon.read_log():
            self.assertLess(time.time(), deadline, self.daemon.read_log())
            time.sleep(0.05)
        return p

    @staticmethod
    def values(t):
        return [r for r in t.records if "Value" in r]

    # ---- what the file no longer says goes back to its default ----------

    def test_deleted_rules_are_gone(self):
        self.start(SKIP_TICK)
        t = self.record_ruby()
        self.assertNotIn("tick", t.call_names())
        self.rewrite()
        self.reload_ok()
        t = self.record_ruby()
        self.assertEqual(t.call_names().count("tick"), 3, t.call_names())
        self.assertNotIn("tick", t.meta["ctrec"]["filter"])

    def test_deleted_record_values_is_the_default(self):
        self.start("record:\n  values: none\n")
        pythons = PYTHONS
        for python in pythons:
            with self.subTest(python=python):
                self.assertEqual(self.values(self.record_python(python)), [])
        self.assertEqual(self.values(self.record_ruby()), [])
        self.rewrite()
        self.reload_ok()
        for python in pythons:
            with self.subTest(python=python):
                t = self.record_python(python)
                self.assertEqual(t.meta["ctrec"]["values"], "all")
                self.assertIn(("greet", {"name": "world"}), t.calls_with_args())
        t = self.record_ruby()
        self.assertEqual(t.meta["ctrec"]["values"], "all")
        self.assertIn("world", [a.get("name") for n, a in t.calls_with_args() if n == "greet"])

    # ---- the command line's overrides stay -------------------------------

    def test_set_overrides_survive_reload(self):
        self.start("record:\n  values: all\n", args=("--set", "record.values=none"))
        self.assertEqual(self.values(self.record_ruby()), [])
        # The file changes a rule and still says values: all; --set wins.
        self.rewrite("record:\n  values: all\n" + SKIP_TICK)
        self.reload_ok()
        t = self.record_ruby()
        self.assertNotIn("tick", t.call_names())
        self.assertEqual(t.meta["ctrec"]["values"], "none")
        self.assertEqual(self.values(t), [])
        for python in PYTHONS:
            with self.subTest(python=python):
                t = self.record_python(python)
                self.assertEqual(t.meta["ctrec"]["values"], "none")
                self.assertEqual(self.values(t), [])

    def test_reload_gives_what_a_restart_gives(self):
        sets = ("--set", "record.values=args", "--set", "limits.value_string=7")
        first = "record:\n  values: none\n"
        second = SKIP_TICK + "record:\n  values: all\n  while_in: [\"=greet\"]\n"
        self.start(first, args=sets)
        self.rewrite(second)
        self.reload_ok()
        reloaded = self.record_ruby()
        self.daemon.stop()
        self.start(second, args=sets)
        restarted = self.record_ruby()
        for t in (reloaded, restarted):
            self.assertEqual(t.meta["ctrec"]["values"], "args")
        self.assertEqual(reloaded.meta["ctrec"]["filter"], restarted.meta["ctrec"]["filter"])
        self.assertEqual(reloaded.call_names(), restarted.call_names())
        self.assertEqual(reloaded.calls_with_args(), restarted.calls_with_args())
        self.assertEqual(reloaded.line_steps(), restarted.line_steps())
        # record.while_in from the file: only greet's call is recorded.
        self.assertEqual(restarted.call_names(), ["<top-level>", "greet"])
        # --print-config with the same file and command line prints that
        # configuration: a daemon started from its output alone records the
        # same trace again.
        res = run([CTRECD, "--config", self.cfg, *sets, "--print-config"])
        self.assertEqual(res.returncode, 0, res.stderr)
        text = res.stdout.decode()
        self.assertIn("\n  values: args\n", text)
        self.assertIn("\n  value_string: 7\n", text)
        self.assertIn('"=greet"', text)
        self.daemon.stop()
        self.daemon = Daemon(self.tmp, text)
        self.addCleanup(self.daemon.stop)
        printed = self.record_ruby()
        self.assertEqual(printed.meta["ctrec"]["values"], "args")
        self.assertEqual(printed.meta["ctrec"]["filter"], reloaded.meta["ctrec"]["filter"])
        self.assertEqual(printed.calls_with_args(), reloaded.calls_with_args())
        self.assertEqual(printed.line_steps(), reloaded.line_steps())

    # ---- the flush period and limits change ------------------------------

    def test_flush_period_change_applies(self):
        self.start(flush=60000)
        self.rewrite(flush=50)
        self.reload_ok()
        slow = os.path.join(SOURCE, "tests", "programs", "ruby", "slow_counter.rb")
        p = subprocess.Popen(["ruby", slow, "100"], env=self.daemon.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(p.kill)
        for _ in range(5):
            p.stdout.readline()
        # With the old 60 s period nothing would reach the disk before the
        # program ends (5 s).
        steps, deadline = [], time.time() + 2
        while not steps and time.time() < deadline:
            time.sleep(0.1)
            for f in trace_folders(self.daemon.out):
                try:
                    steps = Trace(f).line_steps()
                except (ValueError, OSError):
                    pass
        self.assertIsNone(p.poll())
        self.assertTrue(steps, "nothing flushed within 2 s:\n" + self.daemon.read_log())
        p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0)

    def test_new_limits_apply_to_new_connections(self):
        prog = write(os.path.join(self.tmp, "long.rb"), RUBY_LONG)
        go = os.path.join(self.tmp, "go")
        self.start("limits:\n  value_string: 100000\n")
        early = self.connected(prog, go)
        self.rewrite("limits:\n  value_string: 100000\n  max_string: 2000\n")
        self.reload_ok()
        write(go, "")
        out, err = early.communicate(timeout=60)
        self.assertEqual((out, early.returncode), (b"5000\n", 0), err)
        # The connection made before the reload keeps the limits it had.
        t = self.wait_trace()
        self.assertEqual(t.state, "complete")
        self.assertIn("x" * 5000, [simple(a["value"]) for c in t.kinds("Call") for a in c["args"]])
        # A new one gets the new limit: its 5000-byte string is refused.
        late = run(["ruby", prog, go], env=self.daemon.env())
        self.assertEqual((late.stdout, late.returncode), (b"5000\n", 0), late.stderr)
        t = self.wait_trace()
        self.assertEqual(t.state, "aborted: protocol error: string longer than limits.max_string")

    def test_max_sessions_change_applies(self):
        prog = write(os.path.join(self.tmp, "long.rb"), RUBY_LONG)
        go = os.path.join(self.tmp, "go")
        self.start()
        early = self.connected(prog, go)
        self.rewrite("limits:\n  max_sessions: 1\n")
        self.reload_ok()
        late = run(["ruby", self.rb], env=self.daemon.env())
        self.assertEqual(late.returncode, 0, late.stderr)
        self.assertIn("too many sessions (limits.max_sessions)", self.daemon.read_log())
        write(go, "")
        early.communicate(timeout=60)
        self.assertEqual(self.wait_trace().state, "complete")
        self.assertEqual(len(trace_folders(self.daemon.out)), 1)

    # ---- what a reload cannot change -------------------------------------

    def test_listen_options_need_a_restart(self):
        self.start()
        good = service_config(self.tmp)
        for key, changed in (
                ("listen.path", good.replace("/run/ctrecd.sock", "/run/other.sock")),
                ("listen.mode", good.replace("mode: 0600", "mode: 0660"))):
            with self.subTest(key=key):
                # The file's other change must not apply either.
                write(self.cfg, changed + "record:\n  values: none\n")
                res = self.reload()
                self.assertEqual(res.returncode, 1)
                self.assertEqual(res.stderr.decode(), f"ctrecctl: ctrecd refused: {key}: needs a restart\n")
                self.assertIn(f"reload rejected, the old configuration stays: {key}: needs a "
                              "restart", self.daemon.read_log())
                t = self.record_ruby()
                self.assertEqual(t.meta["ctrec"]["values"], "all")
                self.assertTrue(self.values(t))
        # Logged once, as a refusal rather than as a client's protocol error.
        self.assertNotIn("closing the connection", self.daemon.read_log())
        self.assertEqual(os.stat(self.daemon.sock).st_mode & 0o777, 0o600)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "run", "other.sock")))

    def test_output_dir_changes_or_is_refused(self):
        self.start()
        good = service_config(self.tmp)
        other = os.path.join(self.tmp, "other")
        write(self.cfg, good.replace(f"{self.tmp}/traces", other))
        self.reload_ok()
        self.record_ruby(out_dir=other)
        write(os.path.join(self.tmp, "afile"), "")
        write(self.cfg, good.replace(f"{self.tmp}/traces", f"{self.tmp}/afile/traces"))
        res = self.reload()
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"output.dir {self.tmp}/afile/traces: Not a directory",
                      res.stderr.decode())
        self.record_ruby(out_dir=other)
        self.assertEqual(trace_folders(self.daemon.out), [])

    def test_sighup_is_a_reload(self):
        self.start(SKIP_TICK, args=("--set", "record.values=none"))
        self.rewrite()
        self.daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "reloaded" not in self.daemon.read_log():
            self.assertLess(time.time(), deadline, self.daemon.read_log())
            time.sleep(0.05)
        t = self.record_ruby()
        self.assertEqual(t.call_names().count("tick"), 3)
        self.assertEqual(self.values(t), [])


# ---- socket activation ------------------------------------------------------

# Puts the given fds at 3, 4, ... and execs ctrecd with LISTEN_PID set to
# its own pid, as systemd does.
WRAPPER = """\
import fcntl, os, sys
# Out of the way first: a passed fd may itself be 3 or 4.
fds = [fcntl.fcntl(int(x), fcntl.F_DUPFD, 100) for x in sys.argv[1].split(",")]
for i, fd in enumerate(fds):
    os.dup2(fd, 3 + i)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = str(len(fds))
os.execv(sys.argv[2], sys.argv[2:])
"""


class ActivationTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.run_dir = os.path.join(self.tmp, "run")
        os.mkdir(self.run_dir, 0o700)
        self.path = os.path.join(self.run_dir, "ctrecd.sock")
        self.out = os.path.join(self.tmp, "traces")
        self.rb = write(os.path.join(self.tmp, "prog.rb"), RUBY_PROG)

    def listening_socket(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(16)
        self.addCleanup(s.close)
        return s

    def activate(self, fds, names=None, n=0):
        """Starts ctrecd as systemd would with fds; returns (proc, log path)."""
        log = os.path.join(self.tmp, f"ctrecd{n}.log")
        env = dict(os.environ)
        if names is not None:
            env["LISTEN_FDNAMES"] = names
        cfg = write(os.path.join(self.tmp, "ctrec.yaml"), service_config(self.tmp))
        with open(log, "wb") as f:
            p = subprocess.Popen([sys.executable, "-c", WRAPPER, ",".join(map(str, fds)),
                                  CTRECD, "--config", cfg],
                                 env=env, stdout=f, stderr=subprocess.STDOUT, pass_fds=fds)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        return p, log

    @staticmethod
    def read(log):
        with open(log, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_listening(self, p, log):
        deadline = time.time() + 10
        while "listening on" not in self.read(log):
            self.assertIsNone(p.poll(), self.read(log))
            self.assertLess(time.time(), deadline, self.read(log))
            time.sleep(0.02)

    def record_through(self):
        env = dict(os.environ, CT_RECORDER_SOCKET=self.path, RUBYLIB=RUBY_SHIM,
                   RUBYOPT="-rctrec")
        res = run(["ruby", self.rb], env=env)
        self.assertEqual((res.stdout, res.stderr, res.returncode), (b"17\n", b"", 0))

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=20), 0)

    def test_systemd_socket_survives_and_serves_the_next_daemon(self):
        sock = self.listening_socket(self.path)
        for n in (1, 2):
            p, log = self.activate([sock.fileno()], names="ctrecd.socket", n=n)
            self.wait_listening(p, log)
            self.assertIn(f"listening on {self.path}", self.read(log))
            self.record_through()
            self.stop(p)
            # The socket belongs to systemd's unit: it stays for the next start.
            self.assertTrue(stat.S_ISSOCK(os.lstat(self.path).st_mode), self.read(log))
            folders = trace_folders(self.out)
            self.assertEqual(len(folders), n)
            for f in folders:
                validate(self, f)
                self.assertEqual(Trace(f).state, "complete")

    def test_bound_socket_is_removed_at_stop(self):
        # LISTEN_PID names another process: the variables are not ctrecd's,
        # so it binds listen.path itself, and removes it when it stops.
        other = self.listening_socket(os.path.join(self.tmp, "other.sock"))
        log = os.path.join(self.tmp, "ctrecd.log")
        cfg = write(os.path.join(self.tmp, "ctrec.yaml"), service_config(self.tmp))
        env = dict(os.environ, LISTEN_PID="1", LISTEN_FDS="1")
        with open(log, "wb") as f:
            p = subprocess.Popen([sys.executable, "-c",
                                  "import os, sys; os.dup2(int(sys.argv[1]), 3); "
                                  "os.execv(sys.argv[2], sys.argv[2:])",
                                  str(other.fileno()), CTRECD, "--config", cfg],
                                 env=env, stdout=f, stderr=subprocess.STDOUT,
                                 pass_fds=[other.fileno()])
        self.addCleanup(lambda: p.poll() is None and p.kill())
        self.wait_listening(p, log)
        self.assertIn(f"listening on {self.path}", self.read(log))
        self.record_through()
        self.stop(p)
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(len(trace_folders(self.out)), 1)

    def test_several_sockets_are_refused(self):
        a = self.listening_socket(self.path)
        b = self.listening_socket(os.path.join(self.run_dir, "b.sock"))
        p, log = self.activate([a.fileno(), b.fileno()], names="ctrecd.socket:other")
        self.assertEqual(p.wait(timeout=20), 1)
        self.assertIn("systemd passed 2 sockets (ctrecd.socket:other); ctrecd listens on one",
                      self.read(log))

    def test_fdnames_must_match_fds(self):
        a = self.listening_socket(self.path)
        p, log = self.activate([a.fileno()], names="ctrecd.socket:other")
        self.assertEqual(p.wait(timeout=20), 1)
        self.assertIn("LISTEN_FDNAMES=ctrecd.socket:other names 2 socket(s), but LISTEN_FDS=1",
                      self.read(log))

    def test_passed_fd_must_be_a_listening_unix_socket(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        p, log = self.activate([r])
        self.assertEqual(p.wait(timeout=20), 1)
        self.assertIn("fd 3 from systemd (LISTEN_FDS) is not a listening Unix stream socket",
                      self.read(log))
        self.assertTrue(os.path.isdir(self.run_dir))
        self.assertFalse(os.path.exists(self.path))


if __name__ == "__main__":
    import unittest
    unittest.main()
