"""Bad input closes only the offending connection, with a logged reason; a
concurrent real Ruby client keeps recording and its trace completes."""
import json
import os
import struct
import subprocess
import time

from harness import (CTRECCTL, RUBY_PROGRAMS, Daemon, TempDirTest, Trace, connect,
                     finish_good_client, finished_traces, frame, hello, mp,
                     read_until_closed, record, trace_folders, validate)

GOOD_PROGRAM = os.path.join(RUBY_PROGRAMS, "slow_counter.rb")


class BadInputTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.daemon = Daemon(self.tmp, extra=["--set", "limits.max_frame=65536",
                                              "--set", "limits.max_depth=16"])
        # A real traced program runs through every bad connection.
        self.good = subprocess.Popen(["ruby", GOOD_PROGRAM, "30"], env=self.daemon.env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.3)

    def tearDown(self):
        if self.good.poll() is None:
            self.good.kill()
            self.good.wait()
        self.daemon.stop()
        super().tearDown()

    def expect_rejected(self, payload, reason, raw=False, preamble=True, daemon=None):
        daemon = daemon or self.daemon
        s = connect(daemon.sock)
        data = b""
        if preamble:
            data += frame(hello())
        data += payload if raw else frame(payload)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_until_closed(s)
        s.close()
        # The daemon says why (an ERROR frame) and closes the connection.
        self.assertIn(reason.encode(), answer, f"ERROR frame should name: {reason}")
        deadline = time.time() + 5
        while reason not in daemon.read_log() and time.time() < deadline:
            time.sleep(0.05)
        log = daemon.read_log()
        self.assertIn(reason, log)
        self.assertRegex(log, r"peer pid \d+ uid \d+|session \d+ \(pid \d+ uid \d+\)")
        # The daemon is still up and serving.
        self.assertIsNone(daemon.proc.poll())
        connect(daemon.sock).close()

    def finish_good_client(self):
        finish_good_client(self, self.good, self.daemon)

    def test_garbage_bytes(self):
        self.expect_rejected(b"\x05\x00\x00\x00\xc1\xc1\xc1\xc1\xc1", "0xc1", raw=True,
                             preamble=False)
        self.finish_good_client()

    def test_frame_over_limit(self):
        self.expect_rejected(struct.pack("<I", 1 << 30) + b"x" * 100, "limits.max_frame",
                             raw=True)
        self.finish_good_client()

    def test_unknown_tag(self):
        self.expect_rejected(mp([99, 1, 2]), "unknown message tag")
        self.finish_good_client()

    def test_id_out_of_range(self):
        self.expect_rejected(mp([10, 0, "/tmp/a.rb"]) + mp([20, 7, 3]), "out of range")
        self.finish_good_client()

    def test_dense_id_violation(self):
        self.expect_rejected(mp([13, 5, "x"]), "dense id")
        self.finish_good_client()

    def test_path_with_dotdot(self):
        self.expect_rejected(mp([10, 0, "/tmp/../../etc/passwd"]), "..")
        self.finish_good_client()

    def test_value_nested_past_limit(self):
        v = [6, 0, []]
        for _ in range(40):
            v = [6, 0, [v]]
        payload = mp([12, 0, 0, "Array"]) + mp([10, 0, "/tmp/a.rb"]) + mp([20, 0, 1]) + \
            mp([13, 0, "x"]) + mp([23, [[0, v]]])
        self.expect_rejected(payload, "max_depth")
        self.finish_good_client()

    def test_huge_declared_count(self):
        # An array32 header declaring 4 billion elements is refused by the
        # element limit; 1000 elements in a 10-byte frame by the bytes left.
        self.expect_rejected(b"\xdd\xff\xff\xff\xff" + b"\x00" * 5, "limits.max_elements")
        self.expect_rejected(b"\xdd\x00\x00\x03\xe8" + b"\x00" * 5, "bytes left")
        self.finish_good_client()

    # DEF and REF values (PROTOCOL.md 9.1); the daemon keeps 4096
    # definitions, limits.max_depth is 16.
    DECLS = mp([12, 0, 7, "Integer"]) + mp([12, 1, 0, "Array"]) + mp([10, 0, "/tmp/a.rb"]) + \
        mp([13, 0, "x"])

    @staticmethod
    def vars(value):
        return mp([20, 0, 1]) + mp([23, [[0, value]]])

    def test_ref_never_defined(self):
        self.expect_rejected(self.DECLS + self.vars([12, 0]),
                             "REF to a definition that is not kept")
        self.finish_good_client()

    def test_ref_to_evicted_definition(self):
        # 4097 takes the slot of 1 (ids are kept in slot id mod 4096).
        payload = self.DECLS + self.vars([11, 1, [2, 0, 5]]) + \
            self.vars([11, 4097, [2, 0, 6]]) + self.vars([12, 4097]) + self.vars([12, 1])
        self.expect_rejected(payload, "REF to a definition that is not kept")
        self.finish_good_client()

    def test_huge_definition_ids(self):
        top = 2**64 - 1
        payload = self.DECLS + self.vars([11, top, [2, 0, 5]]) + self.vars([12, top]) + \
            self.vars([12, top - 4096])
        self.expect_rejected(payload, "REF to a definition that is not kept")
        self.expect_rejected(self.DECLS + self.vars([11, top, [2, 0, 5]]) +
                             self.vars([11, top, [2, 0, 5]]), "DEF id not above")
        self.finish_good_client()

    def test_def_of_def(self):
        self.expect_rejected(self.DECLS + self.vars([11, 2, [11, 1, [2, 0, 5]]]),
                             "DEF of a DEF or REF value")
        self.finish_good_client()

    def test_ref_chain_past_depth(self):
        # Each definition nests the previous one a level deeper: the REF
        # expanded would pass limits.max_depth.
        payload = self.DECLS + self.vars([11, 1, [2, 0, 5]])
        for i in range(2, 12):
            payload += self.vars([11, i, [6, 1, [[12, i - 1]]]])
        self.expect_rejected(payload, "nested deeper than limits.max_depth")
        self.finish_good_client()

    def test_ref_chain_past_size(self):
        # A few hundred bytes that would expand to more than a million values.
        payload = self.DECLS + self.vars([11, 1, [6, 1, [[2, 0, i] for i in range(100)]]])
        for i in range(2, 6):
            payload += self.vars([11, i, [6, 1, [[12, i - 1]] * 40]])
        self.expect_rejected(payload, "limits.max_elements")
        self.finish_good_client()

    def test_ext_in_value(self):
        # [23, [[0, [6, 1, [ext]]]]]: an ext would pass for a definition.
        ext = b"\xd8\x01" + b"\xff" * 16
        value = b"\x92\x17\x91\x92\x00\x93\x06\x01\x91" + ext
        self.expect_rejected(self.DECLS + mp([20, 0, 1]) + value, "ext object in a value")
        self.finish_good_client()

    def test_refs_turned_off(self):
        os.mkdir(os.path.join(self.tmp, "off"))
        off = Daemon(os.path.join(self.tmp, "off"), extra=["--set", "limits.value_refs=0"])
        try:
            for value in ([11, 1, [2, 0, 5]], [12, 1]):
                self.expect_rejected(self.DECLS + self.vars(value),
                                     "DEF or REF value, but limits.value_refs is 0", daemon=off)
        finally:
            off.stop()
        self.finish_good_client()

    def test_lines_out_of_range(self):
        """A line CodeTracer cannot place is refused, never written."""
        decl = mp([10, 0, "/tmp/a.rb"])
        for payload in (mp([20, 0, -1]), mp([20, 0, 2**31]),
                        mp([11, 0, 0, -5, "f"]),
                        mp([11, 0, 0, 1, "f"]) + mp([29, 0, [[0, -3, []]]])):
            with self.subTest(payload=payload):
                self.expect_rejected(decl + payload, "line out of range")
        self.finish_good_client()

    def test_paths_naming_no_file(self):
        for path in ("/", "//", "/tmp//a.rb", "/tmp/"):
            with self.subTest(path=path):
                self.expect_rejected(mp([10, 0, path]), "path")
        self.finish_good_client()

    def test_lost_count_saturates(self):
        """Counts a client reports stop at the largest u64, never wrap."""
        prog = os.path.join(self.tmp, "lossy.rb")
        with open(prog, "w") as f:
            f.write("a = 1\n")
        s = connect(self.daemon.sock)
        s.sendall(frame(hello(program=prog)))
        top = 2**64 - 1
        s.sendall(frame(mp([10, 0, prog]) + mp([20, 0, 1]) + mp([30, top, "queue full"]) +
                        mp([30, 2, "queue full"]) + mp([4, 0])))
        s.close()
        self.finish_good_client()
        folders = [f for f in trace_folders(self.daemon.out) if Trace(f).meta["program"] == prog]
        self.assertEqual(len(folders), 1)
        self.assertEqual(Trace(folders[0]).meta["ctrec"]["counters"]["lost"], top)

    def test_client_text_cannot_forge_log_lines_or_escapes(self):
        """A program name with a newline and escape sequences is printed
        escaped by the daemon's log and by ctrecctl status."""
        evil = "/tmp/x.rb\nctrecd: error: forged\x1b[2J\x1b]0;owned\x07\u009b31m"
        s = connect(self.daemon.sock)
        s.sendall(frame(hello(program=evil)) + frame(mp([10, 0, "/tmp/x.rb"]) + mp([20, 0, 1])))
        deadline = time.time() + 10
        while "forged" not in self.daemon.read_log() and time.time() < deadline:
            time.sleep(0.05)
        log = self.daemon.read_log()
        self.assertIn("\\x0actrecd: error: forged\\x1b[2J", log)
        for line in log.splitlines():
            self.assertFalse(line.startswith("ctrecd: error: forged"), line)
        for bad in ("\x1b", "\x07", "\u009b"):
            self.assertNotIn(bad, log)
        res = subprocess.run([CTRECCTL, "status", "-s", self.daemon.sock], capture_output=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        shown = res.stdout.decode()
        self.assertIn("\\x0actrecd:", shown)
        for bad in ("\x1b", "\x07", "\u009b"):
            self.assertNotIn(bad, shown)
        self.assertFalse([l for l in shown.splitlines() if l.startswith("ctrecd: error")])
        # The JSON form carries the name exactly, as valid JSON.
        res = subprocess.run([CTRECCTL, "status", "--json", "-s", self.daemon.sock],
                             capture_output=True)
        programs = [json.loads(l)["program"] for l in res.stdout.decode().splitlines()]
        self.assertIn(evil, programs)
        s.close()
        self.finish_good_client()

    def test_program_output_is_shown_escaped_by_follow(self):
        prog = os.path.join(self.tmp, "esc.rb")
        with open(prog, "w") as f:
            f.write('print "clear\\e[2Jnow\\n"\nx = "a\\e]0;t\\a"\nputs x\n')
        res = subprocess.run(["ruby", prog], env=self.daemon.env(), capture_output=True,
                             timeout=60)
        self.assertEqual(res.stdout, b"clear\x1b[2Jnow\na\x1b]0;t\x07\n")
        deadline = time.time() + 30
        while time.time() < deadline:
            folders = [f for f, meta in finished_traces(self.daemon.out).items()
                       if meta["ctrec"]["state"] == "complete" and meta["program"] == prog]
            if folders:
                break
            time.sleep(0.2)
        folder, = folders
        shown = subprocess.run([CTRECCTL, "follow", folder], capture_output=True,
                               timeout=30).stdout.decode()
        self.assertIn("[stdout] clear\\x1b[2Jnow", shown)
        self.assertIn('x = "a\\x1b]0;t\\x07"', shown)
        self.assertNotIn("\x1b", shown)
        self.assertNotIn("\x07", shown)
        self.finish_good_client()

    def test_many_threads_cost_linear_time(self):
        """300,000 distinct thread ids in one frame (a quadratic lookup
        held the loop for minutes) leave the daemon answering at once."""
        os.mkdir(os.path.join(self.tmp, "big"))
        big = Daemon(os.path.join(self.tmp, "big"))
        try:
            s = connect(big.sock)
            s.sendall(frame(hello(program="/tmp/threads.rb")) +
                      frame(mp([10, 0, "/tmp/threads.rb"]) + mp([20, 0, 1])))
            s.sendall(frame(b"".join(mp([26, 2**40 + i * 4096]) for i in range(300000))))
            time.sleep(0.5)
            started = time.monotonic()
            res = subprocess.run([CTRECCTL, "status", "-t", "60", "-s", big.sock],
                                 capture_output=True, timeout=120)
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertIn(b"/tmp/threads.rb", res.stdout)
            self.assertLess(time.monotonic() - started, 10)
            s.close()
        finally:
            big.stop()
        self.finish_good_client()

    def test_threads_with_calls_open_are_bounded(self):
        os.mkdir(os.path.join(self.tmp, "few"))
        few = Daemon(os.path.join(self.tmp, "few"), extra=["--set", "limits.max_threads=8"])
        try:
            decl = mp([10, 0, "/tmp/a.rb"]) + mp([11, 0, 0, 1, "f"]) + mp([20, 0, 1])
            # Idle threads come and go without bound ...
            idle = b"".join(mp([26, i]) + mp([20, 0, 1]) for i in range(1, 1000))
            # ... but the ninth thread with a call open is one too many.
            busy = b"".join(mp([26, i]) + mp([21, 0, []]) for i in range(2000, 2009))
            self.expect_rejected(decl + idle + busy, "limits.max_threads", daemon=few)
        finally:
            few.stop()
        self.finish_good_client()

    def test_pid_comes_from_the_kernel(self):
        """A HELLO claiming pid 1 (or -5) is recorded, shown and matched by
        the connecting process's real pid; the claim stays as a note."""
        for claim in (1, -5):
            with self.subTest(claim=claim):
                prog = os.path.join(self.tmp, f"liar{claim}.rb")
                with open(prog, "w") as f:
                    f.write("a = 1\n")
                hi = mp([1, {"version": 1, "role": "record", "lang": "ruby",
                             "lang_version": "3.1", "shim_version": "test", "pid": claim,
                             "ppid": claim, "program": prog, "args": [], "cwd": "/tmp",
                             "realtime_ns": time.time_ns(), "mono_ns": time.monotonic_ns()}])
                s = connect(self.daemon.sock)
                s.sendall(frame(hi) + frame(mp([10, 0, prog]) + mp([14, 0, b"a = 1\n"]) +
                                            mp([20, 0, 1])))
                deadline = time.time() + 10
                while prog not in self.daemon.read_log() and time.time() < deadline:
                    time.sleep(0.05)
                res = subprocess.run([CTRECCTL, "status", "--json", "-s", self.daemon.sock],
                                     capture_output=True)
                mine = [json.loads(l) for l in res.stdout.decode().splitlines()
                        if json.loads(l)["program"] == prog]
                self.assertEqual([m["pid"] for m in mine], [os.getpid()])
                stop = subprocess.run([CTRECCTL, "stop", "--pid", str(max(claim, 1)), "-s",
                                       self.daemon.sock], capture_output=True)
                self.assertNotIn(prog.encode(), stop.stdout)
                stop = subprocess.run([CTRECCTL, "stop", "--pid", str(os.getpid()), "-s",
                                       self.daemon.sock], capture_output=True)
                self.assertEqual(stop.returncode, 0, stop.stderr)
                s.close()
        self.finish_good_client()
        for claim in (1, -5):
            folder, = [f for f in trace_folders(self.daemon.out)
                       if Trace(f).meta["program"].endswith(f"liar{claim}.rb")]
            self.assertIn(f"-{os.getpid()}-", os.path.basename(folder))
            meta = Trace(folder).meta["ctrec"]
            self.assertEqual(meta["pid"], os.getpid())
            self.assertEqual((meta["uid"], meta["gid"]), (os.getuid(), os.getgid()))
            self.assertEqual(meta["claimed"], {"pid": claim})
            validate(self, folder)

    def test_daemon_opens_no_client_named_path(self):
        """A PATH naming a FIFO (whose open would block) or a file the shim
        did not send: ctrecd opens neither, copies nothing, keeps serving."""
        fifo = os.path.join(self.tmp, "trap.rb")
        os.mkfifo(fifo)
        secret = os.path.join(self.tmp, "secret.rb")
        with open(secret, "w") as f:
            f.write("TOKEN = 'not for the client'\n")
        prog = os.path.join(self.tmp, "main.rb")
        s = connect(self.daemon.sock)
        s.sendall(frame(hello(program=prog)) +
                  frame(mp([10, 0, fifo]) + mp([20, 0, 1]) + mp([10, 1, secret]) +
                        mp([20, 1, 1]) + mp([4, 0])))
        res = subprocess.run([CTRECCTL, "status", "-t", "5", "-s", self.daemon.sock],
                             capture_output=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        s.close()
        self.finish_good_client()
        folder, = [f for f in trace_folders(self.daemon.out) if Trace(f).meta["program"] == prog]
        self.assertEqual(Trace(folder).line_steps(), [("trap.rb", 1), ("secret.rb", 1)])
        copied = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(folder, "files"))
                  for f in fs]
        self.assertEqual(copied, [])

    def test_bad_input_after_events_keeps_trace(self):
        """A session that breaks the protocol mid-stream keeps what it sent,
        in a valid trace marked aborted."""
        prog = os.path.join(self.tmp, "fake.rb")
        with open(prog, "w") as f:
            f.write("a = 1\nb = 2\n")
        s = connect(self.daemon.sock)
        s.sendall(frame(hello(program=prog)))
        s.sendall(frame(mp([10, 0, prog]) + mp([14, 0, b"a = 1\nb = 2\n"]) + mp([20, 0, 1]) +
                        mp([20, 0, 2])))
        s.sendall(frame(mp([77])))
        read_until_closed(s)
        s.close()
        self.finish_good_client()
        folders = [f for f in trace_folders(self.daemon.out) if Trace(f).meta["program"] == prog]
        self.assertEqual(len(folders), 1)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertTrue(t.state.startswith("aborted: protocol error"), t.state)
        self.assertEqual(t.line_steps(), [("fake.rb", 1), ("fake.rb", 2)])


if __name__ == "__main__":
    import unittest
    unittest.main()
