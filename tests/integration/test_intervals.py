"""Recording intervals with real Ruby programs: ctrecctl stop/start, time
windows, record.while_in, per-interval limits, a paused start and config
reloads. Every interval is its own trace folder and passes `ctrecctl check`."""
import json
import os
import signal
import subprocess
import time

from harness import (CTRECCTL, RUBY_PROGRAMS, Daemon, TempDirTest, Trace, run, service_config,
                     trace_folders, validate)

SLOW = os.path.join(RUBY_PROGRAMS, "slow_counter.rb")


class IntervalTest(TempDirTest):
    def start(self, extra_yaml=""):
        cfg = service_config(self.tmp, extra_yaml, flush=20)
        self.daemon = Daemon(self.tmp, cfg)
        self.addCleanup(self.daemon.stop)
        return self.daemon

    def ctl(self, *args):
        res = run([CTRECCTL, *args, "-s", self.daemon.spec] if args[0] == "reload"
                  else [CTRECCTL, args[0], "-s", self.daemon.spec, *args[1:]])
        return res

    def traces(self):
        self.daemon.stop()
        folders = trace_folders(os.path.join(self.tmp, "traces"))
        for f in folders:
            validate(self, f)
        return [Trace(f) for f in folders]

    def run_slow(self, n, env=None):
        return subprocess.Popen(["ruby", SLOW, str(n)], env=env or self.daemon.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def test_stop_and_start_make_two_interval_traces(self):
        d = self.start()
        p = self.run_slow(40)
        seen = b"".join(p.stdout.readline() for _ in range(8))
        res = self.ctl("stop", "--pid", str(p.pid))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(b"stopped 1 session(s), 1 changed", res.stdout)
        # "pausing" until the shim confirms, within a flush period.
        status = self.ctl("status").stdout.decode()
        self.assertRegex(status, rf"{p.pid}\s+\S+\s+paus(ed|ing)\s+1\s")
        for _ in range(100):
            js = json.loads(self.ctl("status", "--json").stdout.decode().splitlines()[0])
            if js["state"] != "pausing":
                break
            time.sleep(0.02)
        self.assertEqual((js["pid"], js["state"], js["intervals"], js["reason"]),
                         (p.pid, "paused", 1, "stopped"))
        self.assertIn("/usr/lib/ruby/**", js["filter"])
        seen += b"".join(p.stdout.readline() for _ in range(8))
        res = self.ctl("start", "--all")
        self.assertEqual(res.returncode, 0, res.stderr)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        traces = sorted(self.traces(), key=lambda t: t.meta["ctrec"]["interval"]["index"])
        self.assertEqual(len(traces), 2)
        first, second = traces
        self.assertTrue(second.folder.endswith(os.path.basename(first.folder) + "-2"))
        self.assertEqual(first.meta["ctrec"]["interval"]["end_reason"], "stopped by ctrecctl")
        self.assertEqual(first.state, "complete")
        self.assertEqual(second.state, "complete")
        self.assertEqual(second.meta["ctrec"]["interval"]["end_reason"], "program exited")
        # The second interval opens with synthetic calls for the frames on
        # the stack (the loop's block), then continues with real events.
        names = second.call_names()
        self.assertEqual(names[0], "<top-level>")
        self.assertIn("tick", names)
        # Output was recorded in each interval but not while stopped.
        o1, o2, full = first.output(), second.output(), (seen + out).decode()
        self.assertTrue(full.startswith(o1), (o1, full))
        self.assertTrue(full.endswith(o2), (o2, full))
        self.assertLess(len(o1) + len(o2), len(full))

    def test_while_in_opens_an_interval_per_call(self):
        self.start("""\
            record:
              while_in: [tick]
            """)
        p = self.run_slow(3)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        traces = self.traces()
        self.assertEqual(len(traces), 3)
        for t in traces:
            names = [n for n in t.call_names() if not n.startswith("block ")]
            self.assertEqual(names, ["<top-level>", "tick"])
            self.assertEqual(t.meta["ctrec"]["interval"]["end_reason"], "outside record.while_in")
            # Only tick's body, not the loop's puts.
            self.assertEqual(t.output(), "")
            self.assertEqual({line for _, line in t.line_steps()}, {3, 4})

    def test_each_interval_has_its_own_recording_id(self):
        # CodeTracer's TraceMetadata requires a UUIDv7 recording_id; each
        # interval folder is a recording of its own.
        self.start("""\
            record:
              while_in: [tick]
            """)
        before = int(time.time() * 1000)
        p = self.run_slow(3)
        out, err = p.communicate(timeout=60)
        after = int(time.time() * 1000)
        self.assertEqual(p.returncode, 0, err)
        traces = sorted(self.traces(), key=lambda t: t.meta["ctrec"]["interval"]["index"])
        ids = [t.meta.get("recording_id") for t in traces]
        self.assertEqual(len(ids), 3)
        for rid in ids:
            self.assertRegex(rid or "", r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                             r"-[0-9a-f]{12}$")
            ms = int(rid[:8] + rid[9:13], 16)
            self.assertTrue(before <= ms <= after, (before, ms, after))
        self.assertEqual(ids, sorted(set(ids)))

    def test_time_window(self):
        self.start("""\
            record:
              windows:
                - {after: 400ms, for: 500ms}
            """)
        p = self.run_slow(30)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        traces = self.traces()
        self.assertEqual(len(traces), 1)
        t = traces[0]
        self.assertEqual(t.meta["ctrec"]["interval"]["end_reason"], "outside record.windows")
        ticks = t.output().count("tick")
        self.assertGreater(ticks, 2)
        self.assertLess(ticks, 20)
        self.assertNotIn("tick 0 total", t.output())

    def test_absolute_window(self):
        import datetime
        start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + \
            datetime.timedelta(seconds=2)
        end = start + datetime.timedelta(seconds=1)
        self.start(f"""\
            record:
              windows:
                - {{at: "{start.isoformat()}", until: "{end.isoformat()}"}}
            """)
        p = self.run_slow(80)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        traces = self.traces()
        self.assertEqual(len(traces), 1)
        t = traces[0]
        self.assertEqual(t.meta["ctrec"]["interval"]["end_reason"], "outside record.windows")
        # About a second of a 50 ms tick, neither the start nor the end.
        ticks = t.output().count("tick")
        self.assertGreater(ticks, 5)
        self.assertLess(ticks, 40)
        self.assertNotIn("tick 0 total", t.output())
        self.assertNotIn("tick 79 total", t.output())

    def test_max_events_ends_the_interval(self):
        self.start("""\
            record:
              max_events: 300
            """)
        p = self.run_slow(20)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        traces = self.traces()
        self.assertEqual(len(traces), 1)
        t = traces[0]
        self.assertEqual(t.meta["ctrec"]["interval"]["end_reason"], "record.max_events reached")
        self.assertLess(len(t.records), 400)
        # The program ran on to its end; the rest was not recorded.
        self.assertEqual(out.decode().count("tick"), 20)
        self.assertLess(t.output().count("tick"), 20)

    def test_paused_start_then_ctrecctl_start(self):
        self.start("""\
            record:
              start: paused
            """)
        p = self.run_slow(30)
        for _ in range(5):
            p.stdout.readline()
        self.assertEqual(trace_folders(os.path.join(self.tmp, "traces")), [])
        res = self.ctl("start", "--pid", str(p.pid))
        self.assertEqual(res.returncode, 0, res.stderr)
        out, err = p.communicate(timeout=60)
        traces = self.traces()
        self.assertEqual(len(traces), 1)
        self.assertNotIn("tick 0 total", traces[0].output())
        self.assertIn("tick 29 total", traces[0].output())

    def test_reload_bad_file_keeps_old_config_good_file_applies(self):
        d = self.start()
        cfg = os.path.join(self.tmp, "ctrec.yaml")
        p = self.run_slow(40)
        for _ in range(5):
            p.stdout.readline()
        with open(cfg) as f:
            good = f.read()
        with open(cfg, "w") as f:
            f.write(good + "filter:\n  rules:\n    - {function: tick, action: sideways}\n")
        res = self.ctl("reload")
        self.assertEqual(res.returncode, 1)
        self.assertIn(b"filter.rules[0].action", res.stderr)
        self.assertIn("reload rejected", d.read_log())
        with open(cfg, "w") as f:
            f.write(good + "filter:\n  rules:\n    - {function: tick, action: skip}\n")
        res = self.ctl("reload")
        self.assertEqual(res.returncode, 0, res.stderr)
        for _ in range(5):
            p.stdout.readline()
        # SIGHUP does the same: the (unchanged) file loads again.
        d.proc.send_signal(signal.SIGHUP)
        out, err = p.communicate(timeout=60)
        traces = self.traces()
        self.assertEqual(len(traces), 1)
        t = traces[0]
        marks = t.reload_marks()
        self.assertGreaterEqual(len(marks), 1)
        calls_after = [t.functions[r["Call"]["function_id"]]["name"]
                       for r in t.records[marks[0]:] if "Call" in r]
        calls_before = [t.functions[r["Call"]["function_id"]]["name"]
                        for r in t.records[:marks[0]] if "Call" in r]
        self.assertIn("tick", calls_before)
        self.assertNotIn("tick", calls_after)
        self.assertIn("function: \"tick\"", t.meta["ctrec"]["filter"].replace("function: tick",
                                                                              "function: \"tick\""))


    def test_each_thread_opens_its_frames_in_a_new_interval(self):
        prog = os.path.join(self.tmp, "threads_slow.rb")
        with open(prog, "w") as f:
            f.write("def step(i)\n  sleep 0.01\n  i + 1\nend\n\n"
                    "def work(n)\n  i = 0\n  i = step(i) while i < n\nend\n\n"
                    "ts = [Thread.new { work(150) }, Thread.new { work(150) }]\n"
                    "puts 'started'\n$stdout.flush\nts.each(&:join)\nputs 'done'\n")
        self.start()
        p = subprocess.Popen(["ruby", prog], env=self.daemon.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.assertEqual(p.stdout.readline(), b"started\n")
        time.sleep(0.3)
        self.assertEqual(self.ctl("stop", "--pid", str(p.pid)).returncode, 0)
        time.sleep(0.3)
        self.assertEqual(self.ctl("start", "--pid", str(p.pid)).returncode, 0)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        traces = sorted(self.traces(), key=lambda t: t.meta["ctrec"]["interval"]["index"])
        self.assertEqual(len(traces), 2)
        second = traces[1]
        # Both workers were inside work() when recording started again: each
        # opens it with a synthetic call when it next runs, and every call
        # of the interval is closed except the top level's.
        self.assertEqual(second.call_names().count("work"), 2)
        self.assertEqual(len(second.kinds("Call")), len(second.kinds("Return")) + 1)

    def test_reload_changes_what_running_shims_capture(self):
        d = self.start("record:\n  values: none\n")
        cfg = os.path.join(self.tmp, "ctrec.yaml")
        p = self.run_slow(40)
        for _ in range(5):
            p.stdout.readline()
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace("values: none", "values: all"))
        res = self.ctl("reload")
        self.assertEqual(res.returncode, 0, res.stderr)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        traces = self.traces()
        self.assertEqual(len(traces), 1)
        traces[0].values_mode_switched(self)


if __name__ == "__main__":
    import unittest
    unittest.main()
