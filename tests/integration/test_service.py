"""Service mode: ctrecd --config, clients through CT_RECORDER_SOCKET and
RUBYOPT=-rctrec, ctrecctl status, SIGTERM completing open traces, the
config front end (installing: test_install.py)."""
import json
import os
import signal
import subprocess
import time

from harness import (CTRECCTL, CTRECD, RUBY_PROGRAMS, Daemon, TempDirTest, Trace,
                     metadata, run, service_config, trace_folders, validate, write)

SLOW = os.path.join(RUBY_PROGRAMS, "slow_counter.rb")


def config_text(root, flush=100):
    return service_config(root, flush=flush)


class ServiceTest(TempDirTest):
    def test_client_mode_records_into_output_dir(self):
        d = Daemon(self.tmp, config_text(self.tmp))
        try:
            prog = os.path.join(RUBY_PROGRAMS, "addition.rb")
            plain = run(["ruby", prog])
            res = run(["ruby", prog], env=d.env())
            self.assertEqual((res.stdout, res.stderr, res.returncode),
                             (plain.stdout, plain.stderr, plain.returncode))
        finally:
            self.assertEqual(d.stop(), 0, d.read_log())
        folders = trace_folders(os.path.join(self.tmp, "traces"))
        self.assertEqual(len(folders), 1)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertEqual(t.state, "complete")
        self.assertEqual(t.meta["program"], prog)
        self.assertEqual(t.meta["ctrec"]["uid"], os.getuid())

    def test_a_trace_marked_complete_holds_everything(self):
        """Once trace_metadata.json says complete, the trace holds every
        call: a CTFS trace writes its calls still open (the top-level one,
        and with it every call that returned) at close, which took long
        enough here to be seen with none."""
        d = Daemon(self.tmp, config_text(self.tmp))
        src = write(os.path.join(self.tmp, "calls.rb"),
                    "def f(i)\n  i\nend\n60000.times { |i| f(i) }\n")
        p = subprocess.Popen(["ruby", src], env=d.env())
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        deadline = time.time() + 60
        while time.time() < deadline:
            folders = trace_folders(d.out)
            try:
                with open(os.path.join(folders[0], "trace_metadata.json")) as f:
                    if '"complete"' in f.read():
                        break
            except (IndexError, FileNotFoundError):
                pass
            time.sleep(0.001)
        t = Trace(folders[0])
        self.assertEqual(t.state, "complete")
        self.assertEqual(t.call_names().count("f"), 60000)
        self.assertEqual(p.wait(timeout=60), 0)
        d.stop()

    def test_socket_mode_and_private_dir(self):
        d = Daemon(self.tmp, config_text(self.tmp))
        try:
            self.assertEqual(os.stat(d.sock).st_mode & 0o777, 0o600)
            self.assertEqual(os.stat(os.path.dirname(d.sock)).st_mode & 0o777, 0o700)
            # A second daemon must not steal a live socket.
            res = run([CTRECD, "--listen", d.sock, "--output", os.path.join(self.tmp, "o2")])
            self.assertEqual(res.returncode, 1)
            self.assertIn(b"already listening", res.stderr)
        finally:
            d.stop()
        # A stale socket (daemon gone) is replaced on the next start.
        stale = os.path.join(self.tmp, "run", "ctrecd.sock")
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        d2 = Daemon(self.tmp, config_text(self.tmp))
        self.assertEqual(d2.stop(), 0)

    def test_live_status_and_live_trace(self):
        d = Daemon(self.tmp, config_text(self.tmp, flush=50))
        try:
            p = subprocess.Popen(["ruby", SLOW, "60"], env=d.env(), stdout=subprocess.PIPE)
            for _ in range(5):
                p.stdout.readline()
            res = run([CTRECCTL, "status", "-s", d.sock])
            self.assertEqual(res.returncode, 0, res.stderr)
            text = res.stdout.decode()
            self.assertIn("SESSION", text)
            self.assertRegex(text, rf"\n\d+\s+{p.pid}\s+\S*slow_counter\.rb\s+recording\s+1\s+\d+\s+\d+\s+/")
            js = run([CTRECCTL, "status", "-s", d.sock, "--json"]).stdout.decode().splitlines()
            sessions = [json.loads(l) for l in js]
            self.assertEqual([s["pid"] for s in sessions], [p.pid])
            folder = sessions[0]["trace"]
            # The trace is readable while it is being recorded.
            time.sleep(0.3)
            validate(self, folder, live=True)
            self.assertEqual(Trace(folder).state, "recording")
            self.assertTrue(Trace(folder).line_steps())
            p.wait(timeout=60)
        finally:
            d.stop()
        self.assertEqual(Trace(folder).state, "complete")

    def test_sigterm_completes_open_traces(self):
        d = Daemon(self.tmp, config_text(self.tmp))
        p = subprocess.Popen(["ruby", SLOW, "400"], env=d.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        for _ in range(3):
            p.stdout.readline()
        self.assertEqual(d.stop(), 0, d.read_log())
        # The program runs on without the daemon, unaffected but for one line.
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(out.decode().count("tick"), 400 - 3)
        self.assertLessEqual(err.decode().count("ctrec:"), 1)
        folders = trace_folders(os.path.join(self.tmp, "traces"))
        self.assertEqual(len(folders), 1)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertTrue(t.state.startswith("aborted: daemon stopped"), t.state)
        self.assertIn("stopped", d.read_log())

    def test_daemon_sigkill_leaves_valid_traces_marked_on_restart(self):
        d = Daemon(self.tmp, config_text(self.tmp, flush=50))
        p = subprocess.Popen(["ruby", SLOW, "60"], env=d.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        for _ in range(5):
            p.stdout.readline()
        time.sleep(0.2)
        d.proc.kill()
        d.stop(expect=-signal.SIGKILL)
        out, err = p.communicate(timeout=60)
        # The program runs on: same output, same status, one warning line.
        self.assertEqual(p.returncode, 0)
        self.assertEqual(out.decode().count("tick"), 60 - 5)
        self.assertEqual(err.decode().count("ctrec:"), 1, err)
        folders = trace_folders(os.path.join(self.tmp, "traces"))
        self.assertEqual(len(folders), 1)
        validate(self, folders[0], live=True)
        self.assertEqual(Trace(folders[0]).state, "recording")
        # The next daemon marks what the dead one left behind.
        d2 = Daemon(self.tmp, config_text(self.tmp))
        d2.stop()
        validate(self, folders[0])
        self.assertEqual(Trace(folders[0]).state, "aborted: daemon stopped unexpectedly")
        self.assertIn("marked 1 trace(s)", d2.read_log())

    def test_daemon_killed_before_its_first_flush(self):
        """The metadata a new trace folder first shows already holds its
        state, so a daemon killed before it flushed at all leaves a trace
        the next one marks."""
        d = Daemon(self.tmp, config_text(self.tmp, flush=60000))
        # Enough calls for the shim to send some before its first flush.
        src = write(os.path.join(self.tmp, "calls.rb"),
                    "def f(i)\n  i\nend\n20000.times { |i| f(i) }\n"
                    "puts 'waiting'\n$stdout.flush\n$stdin.read\n")
        p = subprocess.Popen(["ruby", src], env=d.env(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        self.assertEqual(p.stdout.readline(), b"waiting\n")
        out = os.path.join(self.tmp, "traces")
        deadline = time.time() + 30
        while not (trace_folders(out) and os.path.exists(
                os.path.join(trace_folders(out)[0], "trace_metadata.json"))):
            self.assertLess(time.time(), deadline, "no trace metadata")
            time.sleep(0.01)
        (folder,) = trace_folders(out)
        d.proc.kill()
        d.stop(expect=-signal.SIGKILL)
        p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0)
        Daemon(self.tmp, config_text(self.tmp)).stop()
        # What it holds depends on what was written before the kill (with
        # CTFS, nothing past the top-level call): its state is the point.
        self.assertEqual(metadata(folder)["ctrec"]["state"],
                         "aborted: daemon stopped unexpectedly")

    def test_print_config(self):
        cfg = os.path.join(self.tmp, "c.yaml")
        with open(cfg, "w") as f:
            f.write(config_text(self.tmp, flush=250))
        res = run([CTRECD, "--config", cfg, "--print-config"])
        self.assertEqual(res.returncode, 0, res.stderr)
        text = res.stdout.decode()
        self.assertIn("flush_interval_ms: 250", text)
        self.assertIn(f'"{self.tmp}/traces"', text)
        # The printed config loads back.
        with open(cfg, "w") as f:
            f.write(text)
        self.assertEqual(run([CTRECD, "--config", cfg, "--print-config"]).stdout, res.stdout)

    def test_bad_config_is_rejected_with_position(self):
        cfg = os.path.join(self.tmp, "bad.yaml")
        with open(cfg, "w") as f:
            f.write("output:\n  dir: /tmp/x\n  flush_interval_ms: 5\n")
        res = run([CTRECD, "--config", cfg])
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stderr.decode().strip(),
                         f"ctrecd: {cfg}:3:22: output.flush_interval_ms: must be between 10 and 60000")


if __name__ == "__main__":
    import unittest
    unittest.main()
