"""The Ruby shim takes every recording decision from ctrec.yaml: the
standard library and gems are skipped by the daemon's built-in rules (so
record rules and `filter.defaults: false` bring them back), push-down is
the `filter.pushdown` option, `limits.value_budget` stops value capture at
an exact point, and no environment variable changes what is recorded. Code from `ruby -e` is recorded under its own path with its text.
Real ruby, real ctrecd (through ctrecctl record), ctrecctl check on every
trace."""
import os
import re
import socket
import threading

from harness import (CTRECCTL, CTRECD, RUBY_SHIM, SOURCE, Daemon, TempDirTest, Trace, run,
                     service_config, simple, trace_folders, validate, write)

APP = os.path.join(SOURCE, "tests", "programs", "filter", "app.rb")
README = os.path.join(SOURCE, "README.md")

MARK = ("Error", "<value budget reached>")


def step_values(t, path):
    """[(line, {name: value})] for every Step of `path`, in order, with the
    Values that follow it."""
    out = []
    for r in t.records:
        if not isinstance(r, dict):
            continue
        (k, v), = r.items()
        if k == "Step":
            out.append((v["line"], {}) if t.paths[v["path_id"]] == path else None)
        elif k == "Value" and out and out[-1] is not None:
            out[-1][1][t.varnames[v["variable_id"]]] = v["value"]
    return [s for s in out if s is not None]


def render(v):
    """simple(), with the budget marker as MARK."""
    if v.get("kind") == "Error":
        return ("Error", v["msg"])
    if v.get("kind") == "Sequence":
        return [render(e) for e in v["elements"]]
    return simple(v)


def proxied_run(daemon, proxy_path, cmd):
    """Runs cmd with its shim connected to `daemon` through a proxy at
    proxy_path; returns (CompletedProcess, bytes the shim sent)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(proxy_path)
    srv.listen(4)
    sent, pumps = [0], []

    def pump(src, dst, count):
        while True:
            data = src.recv(65536)
            if not data:
                break
            if count:
                sent[0] += len(data)
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            d = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            d.connect(daemon.sock)
            for a, b, count in ((c, d, True), (d, c, False)):
                th = threading.Thread(target=pump, args=(a, b, count), daemon=True)
                th.start()
                pumps.append(th)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    res = run(cmd, env=daemon.env(CT_RECORDER_SOCKET=proxy_path))
    for th in pumps:
        th.join(20)
    srv.close()
    return res, sent[0]


class RubyFeatures(TempDirTest):
    def record_cmd(self, cmd, config=None, env=None, name="out"):
        """Records cmd with a private ctrecd; checks that the program behaves
        as without recording and returns its only Trace."""
        plain = run(cmd, cwd=self.tmp, env=env)
        out_dir = os.path.join(self.tmp, name)
        extra = ()
        if config is not None:
            extra = ("-c", write(os.path.join(self.tmp, name + ".yaml"), config))
        rec = run([CTRECCTL, "record", "-q", "-o", out_dir, *extra, "--", *cmd],
                  cwd=self.tmp, env=env)
        self.assertEqual((rec.returncode, rec.stdout, rec.stderr),
                         (plain.returncode, plain.stdout, plain.stderr))
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), 1, folders)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertEqual(t.state, "complete")
        self.assertEqual(t.output(), plain.stdout.decode())
        return t

    def prog(self, name, text):
        return write(os.path.join(self.tmp, name), text)

    @staticmethod
    def stdlib_paths(t):
        return [p for p in t.paths if p.startswith("/usr/lib/ruby/") or "/ruby/3." in p]

    # ---- the standard library through ctrec.yaml alone ---------------------------

    def test_readme_json_example_records_json(self):
        # The rule exactly as README shows it.
        with open(README) as f:
            rule = re.search(r'- (\{file: "/usr/lib/ruby/\*\*", function: "JSON\.\*", '
                             r'action: record\})', f.read()).group(1)
        prog = self.prog("j.rb", 'require "json"\n'
                                 's = JSON.generate({"a" => [1, 2]})\n'
                                 "p JSON.parse(s)\n")
        t = self.record_cmd(["ruby", prog], f"filter:\n  rules:\n    - {rule}\n")
        names = t.call_names()
        self.assertIn("JSON.generate", names)
        self.assertIn("JSON.parse", names)
        # Only JSON's singleton methods: the rest of the library stays out.
        self.assertEqual([n for n in names if not n.startswith("JSON.")], ["<top-level>"])
        common = [p for p in t.paths if p.endswith("/json/common.rb")]
        self.assertEqual(len(common), 1)
        self.assertIn(os.path.basename(common[0]), {n for n, _ in t.line_steps()})
        self.assertTrue(os.path.isfile(os.path.join(t.folder, "files", common[0].lstrip("/"))))

    def test_defaults_false_records_the_standard_library(self):
        prog = self.prog("s.rb", 'require "set"\ns = Set.new([1])\np s.include?(1)\n')
        t = self.record_cmd(["ruby", prog], "filter:\n  defaults: false\n")
        names = t.call_names()
        self.assertIn("Set#initialize", names)
        self.assertIn("Set#include?", names)
        self.assertTrue(any(p.endswith("/set.rb") for p in t.paths))
        # The rest of the require that loaded the shim is no part of the
        # program: the trace starts at the program's first line.
        self.assertEqual(t.line_steps()[0], ("s.rb", 1))
        self.assertEqual(t.call_names()[:2], ["<top-level>", "Kernel#require"])

    def test_record_rule_over_internal_code(self):
        prog = self.prog("tap.rb", "x = 5.tap { |v| v + 1 }\np x\n")
        t = self.record_cmd(["ruby", prog],
                            'filter:\n  rules:\n    - {file: "<internal:**>", action: record}\n')
        self.assertIn("Kernel#tap", t.call_names())
        self.assertIn("<internal:kernel>", t.paths)
        plain = self.record_cmd(["ruby", prog], name="plain")
        self.assertNotIn("Kernel#tap", plain.call_names())

    def test_defaults_skip_library_code_even_outside_rubygems_require(self):
        # Without rubygems no Ruby-level require frame surrounds a library's
        # top level: its lines run inside the program's method, yet follow
        # the library file's (built-in) rules.
        prog = self.prog("lib.rb", "def main\n  require 'set'\n  require 'shellwords'\n"
                                   "  Set.new([Shellwords.escape('a b')]).size\nend\np main\n")
        for opts in ([], ["--disable-gems"]):
            with self.subTest(opts=opts):
                t = self.record_cmd(["ruby", *opts, prog], name="out" + "".join(opts))
                self.assertEqual(self.stdlib_paths(t), [])
                self.assertEqual({n for n, _ in t.line_steps()}, {"lib.rb"})
                self.assertEqual(t.call_names(), ["<top-level>", "main"])
                self.assertGreater(t.meta["ctrec"]["counters"]["filtered"], 0)

    def test_required_file_follows_its_own_file_rules(self):
        os.mkdir(os.path.join(self.tmp, "vendor"))
        self.prog("vendor/lib.rb", "X = 1\nclass Lib\n  def self.go = X + 1\nend\n")
        prog = self.prog("main.rb", "def main\n  require_relative 'vendor/lib'\n  Lib.go\nend\n"
                                    "p main\n")
        rules = 'filter:\n  rules:\n    - {file: "**/vendor/**", action: skip}\n'
        pushed = self.record_cmd(["ruby", prog], rules, name="pushed")
        plain = self.record_cmd(["ruby", prog], rules + "  pushdown: false\n", name="plain")
        self.assertEqual(pushed.records, plain.records)
        # Its top level and class body ran inside main, yet are vendor code.
        self.assertEqual({n for n, _ in pushed.line_steps()}, {"main.rb"})
        self.assertEqual(pushed.call_names(), ["<top-level>", "main"])

    def test_time_subclass_initialize(self):
        # Time#initialize is Ruby code (<internal:timev>) that defaults:false
        # records, and so is a subclass's: their self is a Time not yet
        # initialized, whose capture raised while the shim held its batch,
        # and the next event waited for that batch for ever.
        prog = self.prog("stamp.rb", "class Stamp < Time\n  def initialize(*args)\n"
                                     "    super\n  end\nend\np Stamp.new(2020, 1, 2).year\n")
        for config in ("", "filter:\n  defaults: false\n"):
            with self.subTest(config=config):
                d = Daemon(self.tmp, f"listen:\n  path: {self.tmp}/run/ctrecd.sock\n"
                                     f"output:\n  dir: {self.tmp}/traces\n{config}")
                try:
                    res = run(["ruby", prog], env=d.env(), timeout=30)
                finally:
                    self.assertEqual(d.stop(), 0, d.read_log())
                self.assertEqual((res.returncode, res.stdout), (0, b"2020\n"), res.stderr)
                folders = trace_folders(d.out)
                validate(self, folders[-1])
                t = Trace(folders[-1])
                self.assertEqual(t.state, "complete")
                self.assertIn("Stamp#initialize", t.call_names())
                if config:
                    self.assertIn("Time#initialize", t.call_names())
                for f in folders:
                    os.rename(f, f + ".seen")

    # ---- options in ctrec.yaml, not in the environment --------------------------

    def test_pushdown_is_a_config_option(self):
        res = run([CTRECD, "--print-config"])
        self.assertIn("  pushdown: true\n", res.stdout.decode())
        rules = "filter:\n  rules:\n    - {module: Helpers, action: skip-tree}\n"
        pushed = self.record_cmd(["ruby", APP], rules, name="pushed")
        plain = self.record_cmd(["ruby", APP], rules + "  pushdown: false\n", name="plain")
        self.assertEqual(pushed.records, plain.records)
        # Without push-down the shim sent the skipped code for the daemon to drop.
        a, b = pushed.meta["ctrec"]["counters"], plain.meta["ctrec"]["counters"]
        self.assertLess(a["received"], b["received"])
        self.assertGreater(a["filtered"], 0)

    def test_environment_changes_nothing(self):
        base = self.record_cmd(["ruby", APP], name="base")
        env = dict(os.environ, CTREC_RUBY_STDLIB="1", CTREC_VALUES="none",
                   CTREC_NO_PUSHDOWN="1")
        other = self.record_cmd(["ruby", APP], env=env, name="env")
        self.assertEqual(base.records, other.records)
        self.assertEqual(base.meta["ctrec"]["counters"]["received"],
                         other.meta["ctrec"]["counters"]["received"])

    def test_every_variable_the_shim_reads_is_documented(self):
        with open(os.path.join(RUBY_SHIM, "ctrec.so"), "rb") as f:
            names = set(re.findall(rb"CTREC_[A-Z0-9_]+", f.read()))
        with open(README) as f:
            readme = f.read()
        section = readme[readme.index("### Environment variables"):]
        for name in names:
            self.assertIn(f"`{name.decode()}", section)
        self.assertEqual(names, {b"CTREC_BENCH_EMPTY_HOOK"})

    # ---- ruby -e -------------------------------------------------------------------

    def test_ruby_e_is_recorded_with_its_source(self):
        code = "def add(a, b)\n  a + b\nend\np add(1, 2)"
        t = self.record_cmd(["ruby", "-e", code, "-e", "p 3", "x", "y"])
        self.assertRegex(os.path.basename(t.folder), r"^ruby_-e-\d+-")
        self.assertEqual(t.meta["program"], "ruby -e")
        self.assertEqual(t.meta["args"], ["x", "y"])
        self.assertIn("<-e>", t.paths)
        with open(os.path.join(t.folder, "files", "<-e>")) as f:
            self.assertEqual(f.read(), code + "\np 3\n")
        self.assertEqual(t.line_steps(), [("<-e>", 1), ("<-e>", 4), ("<-e>", 2), ("<-e>", 5)])
        self.assertIn(("add", "<-e>", 1), t.call_sites())

    def test_paths_with_dot_components_are_normalized(self):
        os.makedirs(os.path.join(self.tmp, "a", "lib"))
        write(os.path.join(self.tmp, "a", "lib", "two.rb"), "def two = 2\n")
        self.prog(os.path.join("a", "main.rb"),
                  'require_relative "./lib/../lib/two"\nload "a//lib/./two.rb"\np two\n')
        t = self.record_cmd(["ruby", "a/./lib/../main.rb"])
        mine = sorted(p for p in t.paths if p.startswith(self.tmp))
        self.assertEqual(mine, [os.path.join(self.tmp, "a", "lib", "two.rb"),
                                os.path.join(self.tmp, "a", "main.rb")])

    def test_eval_named_dash_e_gets_a_path_of_its_own(self):
        code = 'x = eval("y = 2\\ny * 3", binding, "-e")\np x'
        t = self.record_cmd(["ruby", "-e", code])
        self.assertEqual(sorted(p for p in t.paths if p.startswith("<-e")), ["<-e:1>", "<-e>"])
        texts = {}
        for p in ("<-e>", "<-e:1>"):
            with open(os.path.join(t.folder, "files", p)) as f:
                texts[p] = f.read()
        self.assertEqual(texts, {"<-e>": code + "\n", "<-e:1>": "y = 2\ny * 3"})
        self.assertEqual(t.line_steps(), [("<-e>", 1), ("<-e:1>", 1), ("<-e:1>", 2), ("<-e>", 2)])

    # ---- values ------------------------------------------------------------------

    def test_budget_stops_capture_where_it_is_reached(self):
        prog = self.prog("budget.rb", "a = [1, 2, 3]\n"
                                      "b = [[1, 2], [3, 4]]\n"
                                      "a.concat([4, 5, 6, 7, 8, 9, 10])\n"
                                      "c = 5\n"
                                      "puts a.size\n"
                                      "def m(x, y) = x.size + y.size\n"
                                      "m(a, b)\n")
        t = self.record_cmd(["ruby", prog], "limits:\n  value_budget: 8\n")
        steps = {line: {n: render(v) for n, v in vals.items()}
                 for line, vals in step_values(t, prog)}
        # 6 values: all exact.
        self.assertEqual(steps[2], {"a": [1, 2, 3], "b": None, "c": None})
        # a takes 4, then b's Seq, [1, 2] and its two elements make 8: the
        # second pair and c are past the budget.
        self.assertEqual(steps[3], {"a": [1, 2, 3], "b": [[1, 2], MARK], "c": MARK})
        # The Seq and its first 7 elements make 8.
        self.assertEqual(steps[5], {"a": [1, 2, 3, 4, 5, 6, 7, MARK, MARK, MARK],
                                    "b": MARK, "c": MARK})
        # Each message has its own budget: a call's arguments are captured
        # afresh (self, "main", counts one).
        (name, args), = [c for c in t.calls_with_args() if c[0] == "m"]
        self.assertEqual(args["self"], ("raw", "main"))
        self.assertEqual(args["x"], [1, 2, 3, 4, 5, 6] + [("Error",)] * 4)
        self.assertEqual(args["y"], ("Error",))
        # So is a RETURN's value.
        self.assertEqual(t.returns()[-1], 12)

    def test_values_sent_before_travel_as_references(self):
        """A large object repeated at every step crosses the socket once
        when the daemon keeps definitions (limits.value_refs), and the trace
        is the same as when every value is sent in full."""
        prog = self.prog("big.rb", "class Big\n"
                                   "  def initialize\n"
                                   "    30.times { |i| instance_variable_set(:\"@f#{i}\", \"field #{i} \" * 8) }\n"
                                   "  end\n"
                                   "end\n"
                                   "big = Big.new\n"
                                   "total = 0\n"
                                   "200.times { |i| total += i }\n"
                                   "p total\n")
        seen = {}
        for refs in (0, 4096):
            root = os.path.join(self.tmp, f"refs{refs}")
            os.makedirs(root)
            d = Daemon(root, service_config(root, f"limits:\n  value_refs: {refs}\n"))
            res, sent = proxied_run(d, os.path.join(root, "proxy.sock"), ["ruby", prog])
            self.assertEqual((res.returncode, res.stdout), (0, b"19900\n"), res.stderr)
            d.stop()
            folders = trace_folders(d.out)
            self.assertEqual(len(folders), 1, folders)
            validate(self, folders[0])
            t = Trace(folders[0])
            self.assertEqual(t.state, "complete")
            values = [(line, {n: simple(v) for n, v in vals.items()})
                      for line, vals in step_values(t, prog)]
            seen[refs] = (sent, values)
        (full, full_values), (kept, kept_values) = seen[0], seen[4096]
        self.assertEqual(kept_values, full_values)
        self.assertGreater(len(full_values), 200)
        self.assertLess(kept, full / 5, (kept, full))

if __name__ == "__main__":
    import unittest
    unittest.main()
