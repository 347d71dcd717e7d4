"""Recording over the named-pipe transport (listen.fifo_dir,
CT_RECORDER_SOCKET=fifo:DIR; PROTOCOL.md section 1.1): real Ruby and Python
programs through a real ctrecd, the registration's checks against hostile
clients, end of stream, a vanished daemon and stale FIFOs."""

import os
import signal
import stat
import subprocess
import time

import harness
from harness import (CTRECCTL, CTRECD, PY_SHIM, RUBY_SHIM, Daemon, TempDirTest, Trace,
                     extra_pythons, finished_traces, trace_folders, validate)

RUBY = "def f(i) = i * 2\n3.times { |i| puts f(i) }\n"
PY = "def f(i):\n    return i * 2\nfor i in range(3):\n    print(f(i))\n"


class FifoTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.fifos = os.path.join(self.tmp, "fifos")
        self.daemon = Daemon(self.tmp, extra=["--set", f"listen.fifo_dir={self.fifos}",
                                              "--set", "limits.handshake_timeout_ms=1000"])
        self.ruby = harness.write(os.path.join(self.tmp, "p.rb"), RUBY)
        self.py = harness.write(os.path.join(self.tmp, "p.py"), PY)

    def tearDown(self):
        self.daemon.stop()
        super().tearDown()

    def env(self, spec=None):
        env = dict(os.environ, CT_RECORDER_SOCKET=spec or "fifo:" + self.fifos,
                   RUBYLIB=RUBY_SHIM, RUBYOPT="-rctrec", PYTHONPATH=PY_SHIM)
        return env

    def programs(self):
        yield "ruby", ["ruby", self.ruby]
        for python in ["python3"] + extra_pythons():
            yield python, [python, self.py]

    def wait_traces(self, n):
        deadline = time.time() + 30
        while time.time() < deadline:
            done = sorted(finished_traces(self.daemon.out))
            if len(done) >= n:
                return done
            time.sleep(0.1)
        self.fail(f"{n} traces expected, {trace_folders(self.daemon.out)}")

    def test_folder_is_made_safe(self):
        st = os.stat(self.fifos)
        # listen.mode 0660 (the default): the group may register.
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o1730)
        reg = os.lstat(os.path.join(self.fifos, "ctrecd.reg"))
        self.assertTrue(stat.S_ISFIFO(reg.st_mode))
        self.assertEqual(stat.S_IMODE(reg.st_mode), 0o620)

    def test_programs_record_over_fifos(self):
        for name, cmd in self.programs():
            with self.subTest(name):
                res = subprocess.run(cmd, env=self.env(), capture_output=True, timeout=60)
                self.assertEqual((res.returncode, res.stdout, res.stderr), (0, b"0\n2\n4\n", b""))
        folders = self.wait_traces(len(list(self.programs())))
        for folder in folders:
            validate(self, folder)
            t = Trace(folder)
            self.assertEqual((t.state, t.output()), ("complete", "0\n2\n4\n"))
            self.assertEqual(t.call_names().count("f"), 3)
        # The pairs were unlinked once opened: only the registration FIFO.
        self.assertEqual(os.listdir(self.fifos), ["ctrecd.reg"])

    def test_twenty_programs_at_once(self):
        procs = [subprocess.Popen(cmd, env=self.env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
                 for _ in range(10) for cmd in (["ruby", self.ruby], ["python3", self.py])]
        for p in procs:
            out, err = p.communicate(timeout=120)
            self.assertEqual((p.returncode, out, err.decode()), (0, b"0\n2\n4\n", ""))
        folders = self.wait_traces(20)
        self.assertEqual(len(folders), 20)
        pids = set()
        for folder in folders:
            t = Trace(folder)
            self.assertEqual((t.state, t.output()), ("complete", "0\n2\n4\n"))
            pids.add(t.meta["ctrec"]["pid"])
        # Each trace has the pid of its own process, as the kernel says.
        self.assertEqual(pids, {p.pid for p in procs})

    def test_fork_and_exit_paths(self):
        """A forked child opens its own pair; os._exit and exit! still
        end their traces complete with their status."""
        cases = [
            (["python3", "-c", "import os\ndef f(x):\n    return x + 1\npid = os.fork()\n"
              "print(f(1 if pid else 2), flush=True)\n"
              "if pid: os.waitpid(pid, 0)\nelse: os._exit(3)\n"], 2),
            (["ruby", "-e", "def f(x) = x + 1\npid = fork { puts f(2); $stdout.flush; exit!(4) }\n"
              "puts f(1)\nProcess.wait(pid)\n"], 2),
        ]
        total = 0
        for cmd, n in cases:
            with self.subTest(cmd[0]):
                res = subprocess.run(cmd, env=self.env(), capture_output=True, timeout=60)
                # The two processes' lines may interleave.
                self.assertEqual((res.returncode, sorted(res.stdout.replace(b"\n", b"")),
                                  res.stderr), (0, [ord("2"), ord("3")], b""))
                total += n
                self.assertEqual(len(self.wait_traces(total)), total)
        statuses = sorted(Trace(f).meta["ctrec"]["exit_status"] for f in self.wait_traces(total))
        self.assertEqual(statuses, [0, 0, 3, 4])
        for folder in self.wait_traces(total):
            self.assertEqual(Trace(folder).state, "complete")

    def test_killed_client_leaves_an_aborted_trace(self):
        prog = harness.write(os.path.join(self.tmp, "slow.py"),
                             "import time\nfor i in range(100):\n    print(i, flush=True)\n"
                             "    time.sleep(0.05)\n")
        p = subprocess.Popen(["python3", prog], env=self.env(), stdout=subprocess.PIPE)
        p.stdout.readline()
        time.sleep(0.5)
        p.kill()
        p.wait()
        folder, = self.wait_traces(1)
        validate(self, folder, live=True)
        self.assertTrue(Trace(folder).state.startswith("aborted: client disconnected"))

    def test_intervals_and_filter_over_fifos(self):
        """ctrecctl stop and start (over the socket) pause and resume a
        program that records over FIFOs: PAUSE, RESUME and STACK travel on
        its FIFO pair."""
        prog = harness.write(os.path.join(self.tmp, "ticks.py"),
                             "import sys, time\nfor i in range(40):\n"
                             "    print(i, flush=True)\n    time.sleep(0.05)\n")
        p = subprocess.Popen(["python3", prog], env=self.env(), stdout=subprocess.PIPE)
        p.stdout.readline()
        # Stopped once its first interval has records (a folder).
        deadline = time.time() + 30
        while not trace_folders(self.daemon.out):
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        for verb in ("stop", "start"):
            res = subprocess.run([CTRECCTL, verb, "-s", self.daemon.sock, "--pid", str(p.pid)],
                                 capture_output=True, timeout=30)
            self.assertEqual(res.returncode, 0, res.stderr)
            time.sleep(0.4)
        p.stdout.read()
        self.assertEqual(p.wait(), 0)
        folders = self.wait_traces(2)
        self.assertEqual(len(folders), 2)
        for folder in folders:
            validate(self, folder)

    def test_missing_daemon_leaves_the_program_alone(self):
        res = subprocess.run(["python3", self.py], env=self.env("fifo:" + self.tmp + "/none"),
                             capture_output=True, timeout=60)
        self.assertEqual((res.returncode, res.stdout), (0, b"0\n2\n4\n"))
        self.assertIn(b"recording disabled", res.stderr)
        # A folder without a daemon reading it: said so.
        os.mkdir(os.path.join(self.tmp, "dead"))
        os.mkfifo(os.path.join(self.tmp, "dead", "ctrecd.reg"))
        res = subprocess.run(["python3", self.py], env=self.env("fifo:" + self.tmp + "/dead"),
                             capture_output=True, timeout=60)
        self.assertEqual((res.returncode, res.stdout), (0, b"0\n2\n4\n"))
        self.assertIn(b"no ctrecd reads this folder; recording disabled", res.stderr)

    def test_daemon_killed_while_a_program_runs(self):
        prog = harness.write(os.path.join(self.tmp, "slow.py"),
                             "import time\nfor i in range(30):\n    print(i, flush=True)\n"
                             "    time.sleep(0.05)\n")
        p = subprocess.Popen(["python3", prog], env=self.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        p.stdout.readline()
        self.daemon.proc.kill()
        self.daemon.stop(expect=-signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(out.split(), [str(i).encode() for i in range(1, 30)])
        self.assertIn(b"lost connection to ctrecd", err)
        self.daemon = Daemon(self.tmp, extra=["--set", f"listen.fifo_dir={self.fifos}"])

    def test_fifos_instead_of_a_socket(self):
        """listen.path empty: the daemon listens on its FIFO folder only,
        and says so; with neither, it refuses to start."""
        root = os.path.join(self.tmp, "nosock")
        os.mkdir(root)
        fifos = os.path.join(root, "fifos")
        out = os.path.join(root, "out")
        d = subprocess.Popen([CTRECD, "--set", "listen.path=", "--set", f"listen.fifo_dir={fifos}",
                              "--output", out], stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 30
            while not os.path.exists(os.path.join(fifos, "ctrecd.reg")):
                self.assertLess(time.time(), deadline)
                time.sleep(0.05)
            res = subprocess.run(["python3", self.py], env=self.env("fifo:" + fifos),
                                 capture_output=True, timeout=60)
            self.assertEqual((res.returncode, res.stdout, res.stderr), (0, b"0\n2\n4\n", b""))
            res = subprocess.run([CTRECCTL, "status", "-s", "fifo:" + fifos], capture_output=True,
                                 timeout=30)
            self.assertEqual(res.returncode, 0, res.stderr)
        finally:
            d.terminate()
            _, err = d.communicate(timeout=30)
        self.assertIn(f"listening on FIFOs in {fifos},".encode(), err)
        folder, = trace_folders(out)
        self.assertEqual(Trace(folder).state, "complete")
        res = subprocess.run([CTRECD, "--set", "listen.path=", "--output", out],
                             capture_output=True, timeout=30)
        self.assertEqual(res.returncode, 1)
        self.assertIn(b"listen.path and listen.fifo_dir are both empty", res.stderr)

    def register(self, record):
        fd = os.open(os.path.join(self.fifos, "ctrecd.reg"), os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, record)
        os.close(fd)

    def test_hostile_registrations_are_refused(self):
        secret = harness.write(os.path.join(self.tmp, "secret"), "not for the daemon\n")
        os.symlink(secret, os.path.join(self.fifos, "evil.in"))
        os.mkfifo(os.path.join(self.fifos, "evil.out"), 0o600)
        os.mkfifo(os.path.join(self.fifos, "open.in"), 0o666)
        os.chmod(os.path.join(self.fifos, "open.in"), 0o666)
        os.mkfifo(os.path.join(self.fifos, "open.out"), 0o600)
        # A pair the registering pid does not hold.
        os.mkfifo(os.path.join(self.fifos, "nohold.in"), 0o600)
        os.mkfifo(os.path.join(self.fifos, "nohold.out"), 0o600)
        keep = [os.open(os.path.join(self.fifos, f"{n}.{s}"), os.O_RDWR | os.O_NONBLOCK)
                for n in ("open", "nohold") for s in ("in", "out")]
        # One a second: the daemon logs a dropped registration at most so.
        for record in (b"ctrec1 evil %d\n" % os.getpid(), b"ctrec1 open %d\n" % os.getpid(),
                       b"ctrec1 nohold 1\n", b"ctrec1 ../etc/passwd 1\n",
                       b"garbage" * 100 + b"\n"):
            self.register(record)
            time.sleep(1.1)
        log = self.daemon.read_log()
        self.assertIn("fifo registration evil (pid %d): not a pair of FIFOs of mode 0600" % os.getpid(), log)
        self.assertIn("fifo registration open (pid %d): not a pair of FIFOs of mode 0600" % os.getpid(), log)
        self.assertIn("fifo registration nohold (pid 1): the pid given does not hold", log)
        self.assertIn('not "ctrec1 NAME PID"', log)
        self.assertIn("longer than 128 bytes", log)
        # None became a connection, nothing was opened through the link,
        # and a good client is served all the same.
        res = subprocess.run([CTRECCTL, "status", "-s", self.daemon.sock], capture_output=True)
        self.assertIn(b"no live sessions", res.stdout)
        for fd in keep:
            os.close(fd)
        # A flood of bad records costs a line a second, not one each.
        before = log.count("\n")
        fd = os.open(os.path.join(self.fifos, "ctrecd.reg"), os.O_WRONLY)
        for _ in range(20):
            os.write(fd, b"ctrec1 nohold 1\n" * 200)
        os.close(fd)
        time.sleep(1.2)
        self.register(b"ctrec1 nohold 1\n")
        time.sleep(0.3)
        log = self.daemon.read_log()
        self.assertLess(log.count("\n") - before, 5, log)
        self.assertIn("more registration(s) dropped", log)
        res = subprocess.run(["ruby", self.ruby], env=self.env(), capture_output=True, timeout=60)
        self.assertEqual((res.returncode, res.stdout, res.stderr), (0, b"0\n2\n4\n", b""))
        self.wait_traces(1)

    def test_stale_fifos_are_removed(self):
        """FIFOs a minute old that no registration named go (their client
        died before it registered); newer ones stay."""
        for name in ("c-1-dead.in", "c-1-dead.out", "c-2-new.in"):
            os.mkfifo(os.path.join(self.fifos, name), 0o600)
        for name in ("c-1-dead.in", "c-1-dead.out"):
            then = time.time() - 61
            os.utime(os.path.join(self.fifos, name), (then, then))
        deadline = time.time() + 10
        while len(os.listdir(self.fifos)) > 2 and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(sorted(os.listdir(self.fifos)), ["c-2-new.in", "ctrecd.reg"])
