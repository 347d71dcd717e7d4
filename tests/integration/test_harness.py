"""The harness's Daemon fails the test that owns it when ctrecd misbehaves:
a daemon that does not get ready, exits with another status than expected
or logs a sanitizer report. Every suite relies on these checks."""
import os
import signal

from harness import Daemon, TempDirTest, stop_daemons


class DaemonChecks(TempDirTest):
    def test_ready_through_the_pipe(self):
        d = Daemon(self.tmp)
        self.assertTrue(os.path.exists(d.sock))
        self.assertIn("listening on", d.read_log())
        self.assertEqual(d.stop(), 0)

    def test_not_ready_is_an_error(self):
        with self.assertRaisesRegex(RuntimeError, "flush_interval_ms"):
            Daemon(self.tmp, extra=["--set", "output.flush_interval_ms=1"])

    def test_unexpected_exit_status_fails(self):
        d = Daemon(self.tmp)
        d.proc.kill()
        with self.assertRaisesRegex(AssertionError, "exited with -9, not 0"):
            d.stop()
        # A test that expects the status passes.
        d2 = Daemon(self.tmp)
        d2.proc.send_signal(signal.SIGKILL)
        self.assertEqual(d2.stop(expect=-signal.SIGKILL), -signal.SIGKILL)

    def test_sanitizer_report_fails(self):
        d = Daemon(self.tmp)
        # The daemon's own writes would overwrite the line while it runs.
        d.proc.terminate()
        d.proc.wait()
        with open(d.log_path, "a") as f:
            f.write("daemon/ctr_conn.c:10:5: runtime error: signed integer overflow\n")
        with self.assertRaisesRegex(AssertionError, "sanitizer report"):
            d.stop()

    def test_daemons_left_running_are_checked(self):
        d = Daemon(self.tmp)
        d.proc.kill()
        with self.assertRaisesRegex(AssertionError, "exited with -9"):
            stop_daemons()
        self.assertEqual(stop_daemons(), None)


if __name__ == "__main__":
    import unittest
    unittest.main()
