"""The daemon's filters and recording intervals with real Python programs,
and the Python shim's share of them: it skips filtered code itself
(push-down), captures only the values the daemon keeps, removes its trace
function while the daemon has paused the session and sends its live stack
when recording resumes.

The daemon is the authority: every trace recorded with push-down must be
identical to the one recorded with it turned off (filter.pushdown: false),
where the shim sends everything and the daemon alone filters."""
import os
import subprocess
import time

from test_python_record import per_interpreter
from harness import (CTRECCTL, PY_SHIM, SOURCE, Daemon, TempDirTest, Trace, run, service_config,
                     simple, trace_folders, validate)

PY_PROGRAMS = os.path.join(SOURCE, "tests", "programs", "python")
APP = os.path.join(PY_PROGRAMS, "pushdown_app.py")
SLOW = os.path.join(PY_PROGRAMS, "_slow_stack.py")
SLOW_WORKER = os.path.join(PY_PROGRAMS, "_slow_worker.py")
PYTHON = "python3"

for var in ("PYTHONPATH",):
    os.environ.pop(var, None)

HELPERS_SKIP = """\
    filter:
      rules:
        - {file: "**/_pd_helpers.py", action: skip}
    """
HELPERS_TREE = """\
    filter:
      rules:
        - {file: "**/_pd_helpers.py", action: skip-tree}
    """
MIXED = """\
    filter:
      rules:
        - {function: "__main__.Store.*", action: skip-tree}
        - {function: "__main__.Store.check", action: record}
        - {function: "=__main__.login", action: skip}
        - {function: "re:vis", action: skip}
        - {function: "_pd_helpers.deep", action: skip}
    """
REDACT = """\
    filter:
      values:
        - {name: "*password*", action: redact}
        - {name: secret, in: locals, action: drop}
        - {in: return, function: __main__.login, action: redact}
    """


class PushdownTest(TempDirTest):
    python = PYTHON

    def start(self, extra_yaml="", flush=100, pushdown=True):
        self.yaml, self.flush, self.pushdown = extra_yaml, flush, pushdown
        self.daemon = Daemon(self.tmp, service_config(self.tmp, extra_yaml, flush=flush),
                             extra=() if pushdown else ("--set", "filter.pushdown=false"))
        self.addCleanup(self.daemon.stop)
        self.seen = set()
        return self.daemon

    def restart(self, pushdown):
        """The same daemon configuration with filter.pushdown changed."""
        self.daemon.stop()
        seen = self.seen
        self.start(self.yaml, self.flush, pushdown)
        self.seen = seen

    def env(self, **extra):
        env = dict(os.environ, CT_RECORDER_SOCKET=self.daemon.sock, PYTHONPATH=PY_SHIM)
        env.update(extra)
        return env

    def new_traces(self):
        """Trace folders that appeared since the last call, validated."""
        folders = [f for f in trace_folders(self.daemon.out) if f not in self.seen]
        self.seen.update(folders)
        for f in folders:
            validate(self, f)
        return [Trace(f) for f in folders]

    def wait_flushed(self, count):
        """The daemon writes a trace when the session ends; wait for it."""
        def complete(folder):
            # The folder exists a moment before its first metadata.
            try:
                with open(os.path.join(folder, "trace_metadata.json")) as f:
                    return '"complete"' in f.read()
            except FileNotFoundError:
                return False
        deadline = time.time() + 20
        while time.time() < deadline:
            done = [f for f in trace_folders(self.daemon.out)
                    if f not in self.seen and complete(f)]
            if len(done) >= count:
                return
            time.sleep(0.05)
        self.fail("no complete trace:\n" + self.daemon.read_log())

    def record_app(self, pushdown=True, prog=APP, all_output=True):
        plain = run([self.python, prog])
        if pushdown != self.pushdown:
            self.restart(pushdown)
        res = run([self.python, prog], env=self.env())
        self.assertEqual((res.stdout, res.stderr, res.returncode),
                         (plain.stdout, plain.stderr, plain.returncode))
        self.wait_flushed(1)
        traces = self.new_traces()
        self.assertEqual(len(traces), 1)
        t = traces[0]
        self.assertEqual(t.state, "complete")
        if all_output:
            self.assertEqual(t.output(), plain.stdout.decode())
        return t

    def both(self, yaml, all_output=True):
        """The app recorded with and without push-down: the same trace."""
        self.start(yaml)
        with_pd = self.record_app(True, all_output=all_output)
        without = self.record_app(False, all_output=all_output)
        self.assertEqual(len(with_pd.records), len(without.records))
        for i, (a, b) in enumerate(zip(with_pd.records, without.records)):
            self.assertEqual(a, b, f"record {i} differs")
        self.assertEqual(with_pd.meta["ctrec"]["counters"]["calls"],
                         without.meta["ctrec"]["counters"]["calls"])
        return with_pd

    @staticmethod
    def lines(t):
        return [line for name, line in t.line_steps() if name == "pushdown_app.py"]

    @staticmethod
    def helper_lines(t):
        return [line for name, line in t.line_steps() if name == "_pd_helpers.py"]

    def balanced(self, t):
        self.assertEqual(len(t.kinds("Call")), len(t.kinds("Return")) + 1)

    # ---- push-down identity and the filters themselves -------------------

    def test_no_rules_identical(self):
        t = self.both("")
        names = t.call_names()
        for n in ("each_twice", "visit", "Store.save", "Store.check", "login", "fmt",
                  "noisy", "squares", "deep"):
            self.assertIn(n, names)
        self.balanced(t)

    def test_skip_module_keeps_callbacks(self):
        t = self.both(HELPERS_SKIP)
        names = t.call_names()
        for n in ("each_twice", "fmt", "noisy", "squares", "deep", "<listcomp>"):
            self.assertNotIn(n, names)
        # visit, called back from the skipped helpers, appears under main:
        # 6 times from each_twice, once from eval, 3 from the generator, 1
        # from deep.
        self.assertEqual(names.count("visit"), 6 + 1 + 3 + 1)
        self.assertEqual(self.helper_lines(t), [])
        # Output and exceptions of the skipped module are still recorded.
        self.assertIn("caught ValueError\n", t.output())
        self.assertIn("ValueError: invalid literal for int() with base 10: 'x'", t.errors())
        # Code compiled from a string that skipped code runs is the
        # program's no more than without the rule.
        self.balanced(t)

    def test_skip_tree_drops_callbacks(self):
        t = self.both(HELPERS_TREE)
        names = t.call_names()
        # Only main's own eval of "visit(5)" remains.
        self.assertEqual(names.count("visit"), 1)
        self.assertNotIn("deep", names)
        self.assertEqual(self.helper_lines(t), [])
        self.assertIn("caught ValueError\n", t.output())
        self.assertIn("ValueError: invalid literal for int() with base 10: 'x'", t.errors())
        self.balanced(t)

    def test_function_rules_last_match_wins(self):
        t = self.both(MIXED)
        names = t.call_names()
        # Store.check is re-enabled but runs under the skip-tree Store.save.
        for n in ("Store.__init__", "Store.save", "Store.check", "login", "deep"):
            self.assertNotIn(n, names)
        # "re:vis" must match the whole name: visit stays.
        self.assertEqual(names.count("visit"), 11)
        self.assertIn("risky", names)
        self.assertIn("ValueError: bad 4", t.errors())
        self.balanced(t)

    def test_redaction(self):
        t = self.both(REDACT)
        calls = dict(t.calls_with_args())
        self.assertEqual(calls["login"]["password"], ("raw", "<redacted>"))
        self.assertEqual(calls["login"]["user"], "bob")
        self.assertEqual(calls["Store.__init__"]["password"], ("raw", "<redacted>"))
        values = [(t.varnames[v["variable_id"]], v["value"]) for v in t.kinds("Value")]
        self.assertNotIn("secret", [n for n, _ in values])
        self.assertNotIn("hunter2", str(t.records))
        returns, stack = {}, []
        for r in t.records:
            if "Call" in r:
                stack.append(t.functions[r["Call"]["function_id"]]["name"])
            elif "Return" in r:
                returns[stack.pop()] = simple(r["Return"]["return_value"])
        self.assertEqual(returns["login"], ("raw", "<redacted>"))
        self.assertEqual(returns["Store.save"], "cba saved")

    def test_values_none(self):
        self.start("record:\n  values: none\n")
        t = self.record_app(True)
        self.assertEqual(t.kinds("Value"), [])
        self.assertTrue(all(c["args"] == [] for c in t.kinds("Call")))
        self.assertTrue(all(r["return_value"]["kind"] == "None" for r in t.kinds("Return")))
        self.assertEqual(t.meta["ctrec"]["values"], "none")
        without = self.record_app(False)
        # The same steps and calls as when the shim sends every value.
        self.assertEqual(t.line_steps(), without.line_steps())
        self.assertEqual(t.call_names(), without.call_names())
        self.balanced(t)

    def test_values_args(self):
        self.start("record:\n  values: args\n")
        t = self.record_app(True)
        self.assertEqual(t.kinds("Value"), [])
        calls = dict(t.calls_with_args())
        self.assertEqual(calls["login"], {"user": "bob", "password": "hunter2"})
        self.assertIn("cba saved", t.returns())
        without = self.record_app(False)
        self.assertEqual(t.records, without.records)

    def test_while_in_one_function(self):
        self.start("record:\n  while_in: [__main__.Store.save]\n")
        res = run([self.python, APP], env=self.env())
        self.assertEqual(res.returncode, 0, res.stderr)
        self.wait_flushed(1)
        traces = self.new_traces()
        self.assertEqual(len(traces), 1)
        t = traces[0]
        self.assertEqual(t.call_names(), ["<top-level>", "<module>", "main", "Store.save",
                                          "Store.check"])
        self.assertEqual(t.meta["ctrec"]["interval"]["end_reason"], "outside record.while_in")
        self.assertEqual(t.output(), "")
        self.assertEqual(set(self.lines(t)), {13, 14, 17, 18})

    def test_while_in_function_that_a_rule_skips(self):
        # Skipped, its call still opens the interval: with push-down the
        # shim must send it anyway.
        t = self.both("filter:\n  rules:\n    - {function: __main__.Store.save, action: skip}\n"
                      "record:\n  while_in: [__main__.Store.save]\n", all_output=False)
        self.assertEqual(t.call_names(), ["<top-level>", "<module>", "main", "Store.check"])
        self.assertEqual(set(self.lines(t)), {17, 18})

    def test_pushdown_sends_less(self):
        self.start(HELPERS_TREE)
        with_pd = self.record_app(True)
        without = self.record_app(False)
        a, b = with_pd.meta["ctrec"]["counters"], without.meta["ctrec"]["counters"]
        # The shim left out what the daemon would have filtered, and said
        # so (LOST "filtered"), so both traces count filtered events.
        self.assertGreater(a["filtered"], 0)
        self.assertGreater(b["filtered"], 0)
        self.assertLess(a["received"], b["received"])

    # ---- pause and resume --------------------------------------------------

    def ctl(self, *args):
        return run([CTRECCTL, args[0], "-s", self.daemon.sock, *args[1:]])

    def test_reload_changes_what_the_shim_captures(self):
        self.start("record:\n  values: none\n", flush=20)
        cfg = os.path.join(self.tmp, "ctrec.yaml")
        p = subprocess.Popen([self.python, SLOW, "40"], env=self.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        for _ in range(3):
            p.stdout.readline()
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace("values: none", "values: all"))
        res = run([CTRECCTL, "reload", "-s", self.daemon.sock])
        self.assertEqual(res.returncode, 0, res.stderr)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.daemon.stop()
        traces = self.new_traces()
        self.assertEqual(len(traces), 1)
        traces[0].values_mode_switched(self)

    def test_resume_while_main_thread_waits(self):
        # The main thread sits in join() and the worker prints nothing: the
        # resume must still reach the worker.
        self.start(flush=20)
        p = subprocess.Popen([self.python, SLOW_WORKER, "100"], env=self.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.stdout.readline(), b"started\n")
        time.sleep(0.3)
        res = self.ctl("stop", "--pid", str(p.pid))
        self.assertEqual(res.returncode, 0, res.stderr)
        time.sleep(0.3)
        res = self.ctl("start", "--pid", str(p.pid))
        self.assertEqual(res.returncode, 0, res.stderr)
        out, err = p.communicate(timeout=60)
        self.assertEqual((p.returncode, out), (0, b"done\n"), err)
        self.daemon.stop()
        traces = sorted(self.new_traces(), key=lambda t: t.meta["ctrec"]["interval"]["index"])
        self.assertEqual(len(traces), 2)
        first, second = traces
        steps_first = first.call_names().count("step")
        steps_second = second.call_names().count("step")
        self.assertGreater(steps_first, 0)
        self.assertGreater(steps_second, 0)
        # The pause left some out; the worker's frames open the second one.
        self.assertLess(steps_first + steps_second, 100)
        self.assertIn("worker", second.call_names())

    def test_stop_start_sends_live_stack(self):
        self.start(flush=20)
        p = subprocess.Popen([self.python, SLOW, "60"], env=self.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        # Stopped in the shallow phase...
        seen = b"".join(p.stdout.readline() for _ in range(3))
        res = self.ctl("stop", "--pid", str(p.pid))
        self.assertEqual(res.returncode, 0, res.stderr)
        # ...and started again in the deep one.
        while not seen.endswith(b"deep\n"):
            seen += p.stdout.readline()
        seen += b"".join(p.stdout.readline() for _ in range(2))
        res = self.ctl("start", "--pid", str(p.pid))
        self.assertEqual(res.returncode, 0, res.stderr)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.daemon.stop()
        traces = sorted(self.new_traces(), key=lambda t: t.meta["ctrec"]["interval"]["index"])
        self.assertEqual(len(traces), 2)
        first, second = traces
        self.assertEqual(first.meta["ctrec"]["interval"]["end_reason"], "stopped by ctrecctl")
        self.assertEqual(second.state, "complete")
        self.assertNotIn("descend", first.call_names())
        # The second interval opens with synthetic calls for the live frames,
        # outermost first, carrying their current locals.
        calls = second.calls_with_args()
        opening = [n for n, _ in calls[:6]]
        self.assertEqual(opening, ["<top-level>", "<module>", "main", "descend", "descend",
                                   "descend"])
        main_args = calls[2][1]
        self.assertEqual(main_args["phase"], "deep")
        self.assertGreater(main_args["i"], 0)
        self.assertEqual([a["depth"] for _, a in calls[3:6]], [3, 2, 1])
        # Then real events; every synthetic call is closed by a real return.
        self.assertIn("tick", second.call_names())
        self.assertEqual(len(second.kinds("Call")), len(second.kinds("Return")) + 1)
        full = (seen + out).decode()
        self.assertTrue(full.startswith(first.output()))
        self.assertTrue(full.endswith(second.output()))
        self.assertLess(len(first.output()) + len(second.output()), len(full))

    def test_paused_start_resumes_with_stack(self):
        self.start("record:\n  start: paused\n", flush=20)
        p = subprocess.Popen([self.python, SLOW, "40"], env=self.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        while b"deep" not in p.stdout.readline():
            pass
        self.assertEqual(trace_folders(self.daemon.out), [])
        res = self.ctl("start", "--pid", str(p.pid))
        self.assertEqual(res.returncode, 0, res.stderr)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.daemon.stop()
        traces = self.new_traces()
        self.assertEqual(len(traces), 1)
        t = traces[0]
        self.assertEqual(t.call_names()[:6], ["<top-level>", "<module>", "main", "descend",
                                              "descend", "descend"])
        self.assertEqual(len(t.kinds("Call")), len(t.kinds("Return")) + 1)
        self.assertIn("tick 39", t.output())


# The same under each other CPython the shim is built for (3.12+:
# sys.monitoring).
per_interpreter(PushdownTest, globals())


if __name__ == "__main__":
    import unittest
    unittest.main()
