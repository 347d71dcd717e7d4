"""The Ruby shim's part in filtering: push-down of the daemon's code rules
(the trace must be identical with and without it), the values mode from
WELCOME, and pause/resume with the live stack sent as STACK. Real Ruby,
real ctrecd, `ctrecctl check` on every trace."""
import json
import os
import subprocess
import textwrap
import time

from harness import (CTRECCTL, RUBY_PROGRAMS, SOURCE, Daemon, TempDirTest, Trace, run,
                     trace_folders, validate)

APP = os.path.join(SOURCE, "tests", "programs", "filter", "app.rb")
MIX = os.path.join(RUBY_PROGRAMS, "pushdown_mix.rb")
STOP_START = os.path.join(RUBY_PROGRAMS, "stop_start.rb")

APP_RULES = [
    """\
    filter:
      rules:
        - {module: Helpers, action: skip}
    """,
    """\
    filter:
      rules:
        - {function: "Store#save", action: skip-tree}
    """,
    """\
    filter:
      rules:
        - {function: "Store#*", action: skip-tree}
        - {function: "Store#check", action: record}
        - {function: "=login", action: skip}
        - {function: "re:vis", action: skip}
    """,
]

MIX_RULES = """\
    filter:
      rules:
        - {module: Fmt, action: skip}
        - {module: Heavy, action: skip-tree}
        - {function: fact, action: skip}
    """


class PushdownTest(TempDirTest):
    def config(self, extra="", flush=100):
        return textwrap.dedent(f"""\
            listen:
              path: {self.tmp}/run/ctrecd.sock
            output:
              dir: {self.tmp}/traces
              flush_interval_ms: {flush}
            """) + textwrap.dedent(extra)

    def record_once(self, program, extra, pushdown=True, args=()):
        """Records program once under a fresh daemon; returns its Trace."""
        out = os.path.join(self.tmp, "traces")
        before = set(trace_folders(out)) if os.path.isdir(out) else set()
        d = Daemon(self.tmp, self.config(extra),
                   extra=() if pushdown else ("--set", "filter.pushdown=false"))
        try:
            res = run(["ruby", program, *args], env=d.env())
            self.assertEqual(res.returncode, 0, res.stderr)
        finally:
            self.assertEqual(d.stop(), 0, d.read_log())
        folders = [f for f in trace_folders(out) if f not in before]
        self.assertEqual(len(folders), 1)
        validate(self, folders[0])
        return Trace(folders[0])

    def assert_same_trace(self, program, extra):
        pushed = self.record_once(program, extra)
        plain = self.record_once(program, extra, pushdown=False)
        self.assertEqual(pushed.state, "complete")
        self.assertEqual(len(pushed.records), len(plain.records))
        for i, (a, b) in enumerate(zip(pushed.records, plain.records)):
            self.assertEqual(a, b, f"record {i} differs")
        for name in ("trace_paths.json",):
            with open(os.path.join(pushed.folder, name)) as f1, \
                    open(os.path.join(plain.folder, name)) as f2:
                self.assertEqual(json.load(f1), json.load(f2))
        return pushed, plain

    def test_app_traces_identical_with_and_without_pushdown(self):
        for rules in APP_RULES:
            with self.subTest(rules=rules):
                pushed, plain = self.assert_same_trace(APP, rules)
                self.assertGreater(plain.meta["ctrec"]["counters"]["filtered"], 0)

    def test_mixed_program_identical_and_sends_less(self):
        pushed, plain = self.assert_same_trace(MIX, MIX_RULES)
        names = pushed.call_names()
        self.assertIn("shown", names)
        for skipped in ("Fmt.wrap", "Fmt.loud", "Heavy.crunch", "Heavy.step", "fact"):
            self.assertNotIn(skipped, names)
        # Output and errors raised inside skipped code are still recorded.
        self.assertIn("crunched", pushed.output())
        self.assertIn("loud shown 0", pushed.output())
        self.assertTrue(any("inside the tree" in json.dumps(e) for e in pushed.errors()))
        # The shim left the skipped code's events out: the daemon saw fewer.
        got = pushed.meta["ctrec"]["counters"]["received"]
        full = plain.meta["ctrec"]["counters"]["received"]
        self.assertLess(got, full * 0.7, (got, full))

    def test_values_none_sends_no_values(self):
        none = self.record_once(APP, "record:\n  values: none\n")
        full = self.record_once(APP, "")
        self.assertEqual(none.kinds("Value"), [])
        self.assertTrue(all(c["args"] == [] for c in none.kinds("Call")))
        self.assertTrue(all(r["return_value"]["kind"] == "None" for r in none.kinds("Return")))
        # No VARS at all: one message per line less, and much smaller.
        got = none.meta["ctrec"]["counters"]["received"]
        all_ = full.meta["ctrec"]["counters"]["received"]
        self.assertLess(got, all_ * 0.75, (got, all_))
        self.assertEqual(full.call_names(), none.call_names())

    def test_values_args_keeps_arguments_only(self):
        t = self.record_once(APP, "record:\n  values: args\n")
        self.assertEqual(t.kinds("Value"), [])
        calls = dict(t.calls_with_args())
        self.assertEqual(calls["login"]["user"], "bob")

    def test_stop_then_start_deeper_sends_the_live_stack(self):
        d = Daemon(self.tmp, self.config("log:\n  level: debug\n", flush=20))
        self.addCleanup(d.stop)
        go, release = os.path.join(self.tmp, "go"), os.path.join(self.tmp, "release")
        p = subprocess.Popen(["ruby", STOP_START, go, release], env=d.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for _ in range(3):
                p.stdout.readline()
            res = run([CTRECCTL, "stop", "-s", d.sock, "--pid", str(p.pid)])
            self.assertEqual(res.returncode, 0, res.stderr)
            for _ in range(3):
                p.stdout.readline()
            open(go, "w").close()
            while p.stdout.readline().strip() != b"in leaf":
                pass
            res = run([CTRECCTL, "start", "-s", d.sock, "--pid", str(p.pid)])
            self.assertEqual(res.returncode, 0, res.stderr)
            time.sleep(0.5)  # the shim notices at leaf's next call of ready?
            open(release, "w").close()
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn(b"mid4:51", out)
        self.assertEqual(d.stop(), 0, d.read_log())
        folders = trace_folders(os.path.join(self.tmp, "traces"))
        self.assertEqual(len(folders), 2)
        for f in folders:
            validate(self, f)
        traces = sorted((Trace(f) for f in folders),
                        key=lambda t: t.meta["ctrec"]["interval"]["index"])
        first, second = traces
        self.assertEqual(first.meta["ctrec"]["interval"]["end_reason"], "stopped by ctrecctl")
        self.assertNotIn("middle", first.call_names())
        # The second interval opens with synthetic calls for the live frames,
        # carrying their current locals.
        calls = second.calls_with_args()
        self.assertEqual([n for n, _ in calls[:3]], ["<top-level>", "middle", "leaf"])
        self.assertEqual(calls[1][1]["x"], 4)
        self.assertEqual(calls[1][1]["label"], "mid4")
        self.assertEqual(calls[2][1]["level"], 5)
        self.assertEqual(calls[2][1]["marker"], 50)
        # Calls and returns stay balanced after the synthetic ones: leaf and
        # middle return into the top level.
        depth, names = 0, []
        for r in second.records:
            if "Call" in r:
                depth += 1
                names.append(second.functions[r["Call"]["function_id"]]["name"])
            elif "Return" in r:
                depth -= 1
                self.assertGreaterEqual(depth, 1)
                names.pop()
        self.assertEqual(names, ["<top-level>"])
        self.assertIn("mid4:51", second.output())
        self.assertIn("done", second.output())
        self.assertNotIn("in leaf", second.output())


if __name__ == "__main__":
    import unittest
    unittest.main()
