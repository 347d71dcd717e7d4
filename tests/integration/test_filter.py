"""Filters applied by the daemon to real Ruby programs: skip, skip-tree,
last rule wins, value redaction, record.values, and the metadata that says
which filter was in force."""
import os

from harness import (CTRECD, SOURCE, Daemon, TempDirTest, Trace, run, service_config, simple,
                     trace_folders, validate)

APP = os.path.join(SOURCE, "tests", "programs", "filter", "app.rb")


class FilterTest(TempDirTest):
    def record_app(self, filter_yaml):
        cfg = service_config(self.tmp, filter_yaml)
        d = Daemon(self.tmp, cfg)
        try:
            plain = run(["ruby", APP])
            res = run(["ruby", APP], env=d.env())
            self.assertEqual((res.stdout, res.stderr, res.returncode),
                             (plain.stdout, plain.stderr, plain.returncode))
        finally:
            self.assertEqual(d.stop(), 0, d.read_log())
        folders = trace_folders(os.path.join(self.tmp, "traces"))
        self.assertEqual(len(folders), 1)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertEqual(t.state, "complete")
        self.assertEqual(t.output(), plain.stdout.decode())
        return t

    @staticmethod
    def methods(t):
        """Call names without block frames (the shim records a block body as
        a call of its own, named like "block in <main>")."""
        return [n for n in t.call_names() if not n.startswith("block ")]

    def lines(self, t):
        return [line for _, line in t.line_steps()]

    def test_no_rules_records_everything(self):
        t = self.record_app("")
        self.assertEqual(self.methods(t), [
            "<top-level>", "Helpers.each_twice", "visit", "visit", "visit", "visit", "Helpers.fmt",
            "Store#initialize", "Store#save", "Store#check", "login"])
        self.assertEqual(t.meta["ctrec"]["counters"]["filtered"], 0)
        self.assertIn("/usr/lib/ruby/**", t.meta["ctrec"]["filter"])

    def test_skip_module_keeps_its_callbacks(self):
        t = self.record_app("""\
            filter:
              rules:
                - {module: Helpers, action: skip}
            """)
        # Helpers' own calls and lines are gone; the block it yields to and
        # the methods called from there still appear, under the caller.
        self.assertEqual(self.methods(t), [
            "<top-level>", "visit", "visit", "visit", "visit",
            "Store#initialize", "Store#save", "Store#check", "login"])
        for line in (4, 8, 9):
            self.assertNotIn(line, self.lines(t))
        self.assertIn(37, self.lines(t))  # the block body in the top level
        self.assertGreater(t.meta["ctrec"]["counters"]["filtered"], 0)
        self.assertRegex(t.meta["ctrec"]["filter"], r'module: "?Helpers"?, action: skip')

    def test_skip_tree_drops_the_subtree(self):
        t = self.record_app("""\
            filter:
              rules:
                - {function: "Store#save", action: skip-tree}
            """)
        self.assertNotIn("Store#save", t.call_names())
        self.assertNotIn("Store#check", t.call_names())
        self.assertIn("Store#initialize", t.call_names())
        for line in (19, 20, 24):
            self.assertNotIn(line, self.lines(t))

    def test_last_matching_rule_wins(self):
        t = self.record_app("""\
            filter:
              rules:
                - {function: "Store#*", action: skip-tree}
                - {function: "Store#check", action: record}
                - {function: "=login", action: skip}
                - {function: "re:vis", action: skip}
            """)
        # Store#check is re-enabled but sits under a skip-tree caller, so the
        # tree wins; "re:vis" must match the whole name, so visit stays.
        names = self.methods(t)
        self.assertNotIn("Store#initialize", names)
        self.assertNotIn("Store#check", names)
        self.assertNotIn("login", names)
        self.assertEqual(names.count("visit"), 4)

    def test_redaction_and_drop(self):
        t = self.record_app("""\
            filter:
              values:
                - {name: "*password*", action: redact}
                - {name: secret, in: locals, action: drop}
                - {in: return, function: login, action: redact}
            """)
        calls = dict(t.calls_with_args())
        self.assertEqual(calls["login"]["password"], ("raw", "<redacted>"))
        self.assertEqual(calls["login"]["user"], "bob")
        self.assertEqual(calls["Store#initialize"]["password"], ("raw", "<redacted>"))
        values = [(t.varnames[v["variable_id"]], v["value"]) for v in t.kinds("Value")]
        self.assertNotIn("secret", [n for n, _ in values])
        self.assertNotIn("s3cret", str(values))
        self.assertNotIn("terc3s", str(t.records))
        # Text a rule hid stays hidden wherever it appears later: the store
        # holding it in @password is redacted.
        self.assertNotIn("hunter2", str(t.records))
        returns, stack = {}, []
        for r in t.records:
            if "Call" in r:
                stack.append(t.functions[r["Call"]["function_id"]]["name"])
            elif "Return" in r:
                returns[stack.pop()] = simple(r["Return"]["return_value"])
        self.assertEqual(returns["login"], ("raw", "<redacted>"))
        self.assertEqual(returns["Store#save"], "saved a")

    def test_values_none(self):
        t = self.record_app("""\
            record:
              values: none
            """)
        self.assertEqual(t.kinds("Value"), [])
        self.assertTrue(all(c["args"] == [] for c in t.kinds("Call")))
        self.assertEqual(len(self.methods(t)), 11)
        self.assertEqual(t.meta["ctrec"]["values"], "none")

    def test_print_config_shows_effective_rules(self):
        cfg = os.path.join(self.tmp, "c.yaml")
        with open(cfg, "w") as f:
            f.write("filter:\n  rules:\n    - {module: Helpers, action: skip}\n")
        res = run([CTRECD, "--config", cfg, "--print-config"])
        self.assertEqual(res.returncode, 0, res.stderr)
        text = res.stdout.decode()
        self.assertRegex(text, r'module: "?Helpers"?, action: skip')
        self.assertIn("/usr/lib/ruby/**", text)


if __name__ == "__main__":
    import unittest
    unittest.main()
