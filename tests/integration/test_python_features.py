"""The Python shim's names, sources and values, with real programs through a
real ctrecd: selectors by dotted module and pkg.mod.Class.meth (push-down
and daemon agreeing), standard-library code brought back by ctrec.yaml
alone, the first output of a program that sent nothing before it, code
compiled from strings and reloaded modules with their own source, and
huge integers (Ruby's too: both shims share the limit)."""
import base64
import os
import resource
import subprocess
import textwrap

import test_python_pushdown as pushdown
from test_python_record import per_interpreter
from harness import (CTRECCTL, PY_SHIM, RUBY_SHIM, SOURCE, Daemon, TempDirTest, Trace, run, service_config,
                     simple, trace_folders, validate)

for var in ("PYTHONPATH",):
    os.environ.pop(var, None)

SHOP = {
    "shop/__init__.py": """\
        def hello():
            return "shop"
        """,
    "shop/pay/__init__.py": """\
        def fee(n):
            return n // 10
        """,
    "shop/pay/card.py": """\
        from shop.pay import fee


        class Card:
            def __init__(self, owner):
                self.owner = owner

            def charge(self, amount):
                total = amount + fee(amount)
                return total
        """,
    "main.py": """\
        import shop
        from shop.pay.card import Card


        def main():
            card = Card("ann")
            print(shop.hello(), card.charge(100))


        main()
        """,
}

JSON_PROG = """\
    import json


    def main():
        text = json.dumps({"a": [1, 2]})
        print(text, json.loads(text))


    main()
    """

BIG_VALUES = [2**64, -(2**100), 2**32768 - 1, 2**40000]


class Recording(TempDirTest):
    """A ctrecd and the helpers to record programs into it."""
    python = "python3"

    def start(self, yaml="", pushdown=True):
        self.yaml, self.pushdown = yaml, pushdown
        if not pushdown:
            yaml = (yaml.replace("filter:\n", "filter:\n  pushdown: false\n", 1)
                    if "filter:\n" in yaml else yaml + "filter:\n  pushdown: false\n")
        self.daemon = Daemon(self.tmp, service_config(self.tmp, yaml))
        self.addCleanup(self.daemon.stop)
        self.seen = set()

    def restart(self, pushdown):
        """The same configuration with filter.pushdown changed."""
        self.daemon.stop()
        seen = self.seen
        self.start(self.yaml, pushdown)
        self.seen = seen

    def write(self, files):
        """Writes {relative path: dedented text} under tmp/prog."""
        root = os.path.join(self.tmp, "prog")
        for rel, text in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(textwrap.dedent(text))
        return root

    def env(self, **extra):
        env = dict(os.environ, CT_RECORDER_SOCKET=self.daemon.sock, PYTHONPATH=PY_SHIM,
                   RUBYLIB=RUBY_SHIM, RUBYOPT="-rctrec")
        env.update(extra)
        return env

    def traces(self, count=1, check=True):
        """The complete trace folders that appeared since the last call,
        validated (when `check`) and read, oldest first."""
        # The daemon writes a trace when its session ends.
        pushdown.PushdownTest.wait_flushed(self, count)
        done = [f for f in trace_folders(self.daemon.out) if f not in self.seen]
        self.seen.update(done)
        for f in done:
            if check:
                validate(self, f)
        return [Trace(f) for f in done]

    def record(self, cmd, cwd, pushdown=True, check=True, **env):
        """cmd run plainly, then recorded, with the variables `env`: the same
        output and status; the trace."""
        plain = run(cmd, cwd=cwd, env=dict(os.environ, **env))
        if pushdown != self.pushdown:
            self.restart(pushdown)
        res = run(cmd, cwd=cwd, env=self.env(**env))
        self.assertEqual((res.stdout, res.stderr, res.returncode),
                         (plain.stdout, plain.stderr, plain.returncode))
        t, = self.traces(check=check)
        self.assertEqual(t.state, "complete")
        return t, plain

    def both(self, cmd, cwd):
        """Recorded with push-down and without: the very same trace."""
        with_pd, plain = self.record(cmd, cwd)
        without, _ = self.record(cmd, cwd, pushdown=False)
        self.assertEqual(len(with_pd.records), len(without.records))
        for i, (a, b) in enumerate(zip(with_pd.records, without.records)):
            self.assertEqual(a, b, f"record {i} differs")
        return with_pd, plain

    def check_big(self, t, lang_type):
        """show(a, b, c, d) got BIG_VALUES: BigInt up to CTR_BIGINT_MAX
        bytes of magnitude, a Raw <integer of N bits> past it, all of the
        language's integer type."""
        show, = [c for c in t.kinds("Call") if t.functions[c["function_id"]]["name"] == "show"]
        args = {t.varnames[a["variable_id"]]: a["value"] for a in show["args"]}
        for key, n in zip("abcd", BIG_VALUES):
            v, mag = args[key], abs(n)
            self.assertEqual(t.types[v["type_id"]]["lang_type"], lang_type)
            if key == "d":
                self.assertEqual(simple(v), ("raw", "<integer of %d bits>" % mag.bit_length()))
                continue
            self.assertEqual(v["kind"], "BigInt")
            raw = base64.b64decode(v["b"])
            self.assertEqual(raw, mag.to_bytes((mag.bit_length() + 7) // 8, "big"))
            self.assertEqual(v["negative"], n < 0)


class FeaturesTest(Recording):
    # ---- item 1: selectors by dotted module and module.qualname ----------

    def shop(self, rule):
        self.start(f"filter:\n  rules:\n    - {rule}\n")
        root = self.write(SHOP)
        t, plain = self.both([self.python, "main.py"], root)
        self.assertEqual(t.output(), plain.stdout.decode())
        return t

    def test_module_globstar_skips_the_package(self):
        t = self.shop('{module: "shop.pay.**", action: skip}')
        names = t.call_names()
        for n in ("Card.__init__", "Card.charge", "Card"):
            self.assertNotIn(n, names)
        # shop.pay itself (fee) is not below shop.pay.
        self.assertIn("fee", names)
        self.assertIn("hello", names)
        self.assertIn("main", names)
        self.assertGreater(t.meta["ctrec"]["counters"]["filtered"], 0)

    def test_module_exact(self):
        t = self.shop('{module: "shop.pay.card", action: skip}')
        names = t.call_names()
        self.assertNotIn("Card.charge", names)
        self.assertNotIn("Card.__init__", names)
        self.assertIn("fee", names)
        self.assertGreater(t.meta["ctrec"]["counters"]["filtered"], 0)

    def test_module_of_a_package(self):
        t = self.shop('{module: "shop.pay", action: skip}')
        names = t.call_names()
        self.assertNotIn("fee", names)
        self.assertIn("Card.charge", names)

    def test_function_by_module_and_qualname(self):
        t = self.shop('{function: "shop.pay.card.Card.charge", action: skip}')
        names = t.call_names()
        self.assertNotIn("Card.charge", names)
        self.assertIn("Card.__init__", names)
        # fee, called by the skipped charge, appears under main.
        self.assertIn("fee", names)
        self.assertGreater(t.meta["ctrec"]["counters"]["filtered"], 0)

    def test_program_functions_are_in_main(self):
        t = self.shop('{function: "__main__.main", action: skip-tree}')
        names = t.call_names()
        for n in ("main", "Card.charge", "hello", "fee"):
            self.assertNotIn(n, names)

    def test_bare_qualname_is_not_a_python_name(self):
        t = self.shop('{function: "Card.charge", action: skip}')
        self.assertIn("Card.charge", t.call_names())

    def test_globstar_prefix_matches_any_module(self):
        t = self.shop('{function: "**.Card.charge", action: skip}')
        names = t.call_names()
        self.assertNotIn("Card.charge", names)
        self.assertIn("Card.__init__", names)

    # ---- item 2: the standard library, from ctrec.yaml alone ---------------

    def json_trace(self, yaml, identical=True):
        self.start(yaml)
        root = self.write({"js.py": JSON_PROG})
        if identical:
            t, plain = self.both([self.python, "js.py"], root)
        else:
            # The import machinery's values (locks, thread ids) differ from
            # run to run: the same calls and lines, then.
            t, plain = self.record([self.python, "js.py"], root)
            without, _ = self.record([self.python, "js.py"], root, pushdown=False)
            self.assertEqual(t.call_names(), without.call_names())
            self.assertEqual(t.line_steps(), without.line_steps())
        self.assertEqual(t.output(), plain.stdout.decode())
        return t

    def test_record_rule_brings_json_back(self):
        t = self.json_trace('filter:\n  rules:\n'
                            '    - {file: "**/lib/python3.*/json/**", action: record}\n')
        names = t.call_names()
        for n in ("dumps", "loads", "JSONEncoder.encode", "JSONDecoder.decode"):
            self.assertIn(n, names)
        self.assertTrue(any(p.endswith("/json/__init__.py") for p in t.paths), t.paths)
        # Only json: no other library code.
        others = [p for p in t.paths if not p.endswith("js.py") and "/json/" not in p]
        self.assertEqual(others, [])

    def test_defaults_false_records_the_standard_library(self):
        t = self.json_trace("filter:\n  defaults: false\n", identical=False)
        names = t.call_names()
        self.assertIn("dumps", names)
        self.assertTrue(any(p.startswith("<frozen importlib") for p in t.paths), t.paths)
        # The recorder itself stays out.
        self.assertEqual([p for p in t.paths if p.startswith(PY_SHIM)], [])

    def test_defaults_skip_the_standard_library(self):
        t = self.json_trace("")
        self.assertEqual([os.path.basename(p) for p in t.paths], ["js.py"])
        self.assertNotIn("dumps", t.call_names())

    # ---- item 4: the first output ------------------------------------------

    def test_first_output_of_skipped_code(self):
        self.start()
        # Nothing of the program is recorded but its output, so the trace
        # has no steps, which ctrecctl check refuses.
        t, plain = self.record([self.python, "-m", "calendar", "2026", "1"], self.tmp,
                               check=False)
        self.assertIn("January 2026", plain.stdout.decode())
        self.assertEqual(t.output(), plain.stdout.decode())
        self.assertNotIn("", [e["content"] for e in t.kinds("Event")])

    def test_first_output_of_base64(self):
        self.start()
        data = os.path.join(self.tmp, "data.bin")
        with open(data, "wb") as f:
            f.write(b"ctrec\n")
        t, plain = self.record([self.python, "-m", "base64", "-e", data], self.tmp,
                               check=False)
        self.assertEqual(plain.stdout, b"Y3RyZWMK\n")
        self.assertEqual(t.output(), "Y3RyZWMK\n")

    # ---- item 5: code from strings and reloaded modules ---------------------

    def source_of(self, t, path):
        with open(os.path.join(t.folder, "files", path), encoding="utf-8") as f:
            return f.read()

    def steps_in(self, t, path):
        return [line for name, line in t.line_steps() if name == path]

    def test_strings_get_their_own_paths_and_text(self):
        self.start()
        root = self.write({"strings.py": """\
            one = "a = 1\\nb = a + 1\\n"
            exec(one)
            exec("c = 3\\nd = c * 2\\n")
            exec(one)
            print(eval("b + d"))
            """})
        t, _ = self.record([self.python, "strings.py"], root)
        pseudo = [p for p in t.paths if p.startswith("<")]
        self.assertEqual(pseudo, ["<string:1>", "<string:2>", "<string:3>"])
        self.assertEqual(self.source_of(t, "<string:1>"), "a = 1\nb = a + 1\n")
        self.assertEqual(self.source_of(t, "<string:2>"), "c = 3\nd = c * 2\n")
        self.assertEqual(self.source_of(t, "<string:3>"), "b + d")
        # The same text ran twice under one path.
        self.assertEqual(self.steps_in(t, "<string:1>"), [1, 2, 1, 2])
        self.assertEqual(self.steps_in(t, "<string:2>"), [1, 2])

    def test_functions_defined_in_a_string(self):
        self.start()
        root = self.write({"defs.py": """\
            exec("def twice(x):\\n    y = x * 2\\n    return y\\n")
            print(twice(4))
            """})
        t, _ = self.record([self.python, "defs.py"], root)
        self.assertIn("twice", t.call_names())
        self.assertEqual(self.source_of(t, "<string:1>"),
                         "def twice(x):\n    y = x * 2\n    return y\n")
        self.assertEqual(self.steps_in(t, "<string:1>"), [1, 2, 3])

    def test_compile_then_exec(self):
        self.start()
        root = self.write({"comp.py": """\
            code = compile("def f(x):\\n    return x * 2\\n", "<pd>", "exec")
            other = compile("g = 1\\n", "<pd>", "exec")
            exec(code)
            exec(other)
            print(f(4))
            """})
        t, _ = self.record([self.python, "comp.py"], root)
        pseudo = [p for p in t.paths if p.startswith("<")]
        self.assertEqual(pseudo, ["<pd:1>", "<pd:2>"])
        self.assertEqual(self.source_of(t, "<pd:1>"), "def f(x):\n    return x * 2\n")
        self.assertEqual(self.source_of(t, "<pd:2>"), "g = 1\n")
        self.assertEqual(self.steps_in(t, "<pd:1>"), [1, 2])

    def test_python_c(self):
        self.start()
        cmd = [self.python, "-c", "x = 5\nprint(x * 2)"]
        t, plain = self.record(cmd, self.tmp)
        self.assertEqual(plain.stdout, b"10\n")
        self.assertTrue(os.path.basename(t.folder).startswith("python-c-"), t.folder)
        self.assertEqual(t.meta["program"], "python-c")
        self.assertEqual(self.source_of(t, "<string:1>"), "x = 5\nprint(x * 2)\n")
        self.assertEqual(self.steps_in(t, "<string:1>"), [1, 2])

    def test_reload_after_an_edit(self):
        self.start()
        root = self.write({"reloader.py": """\
            import importlib
            import mod_r


            def rewrite(text):
                with open(mod_r.__file__, "w") as f:
                    f.write(text)


            print(mod_r.g())
            rewrite("def g():\\n    x = 41\\n    return x + 1\\n")
            importlib.reload(mod_r)
            print(mod_r.g())
            rewrite("def g():\\n    return 1\\n")
            importlib.reload(mod_r)
            print(mod_r.g())
            """, "mod_r.py": """\
            def g():
                return 1
            """})
        # Without .pyc files every import compiles the file's text.
        t, plain = self.record([self.python, "reloader.py"], root,
                               PYTHONDONTWRITEBYTECODE="1")
        self.assertEqual(plain.stdout, b"1\n42\n1\n")
        reload_paths = [p for p in t.paths if p.startswith("<reload:")]
        self.assertEqual(reload_paths, ["<reload:mod_r.py:1>"])
        self.assertEqual(self.source_of(t, "<reload:mod_r.py:1>"),
                         "def g():\n    x = 41\n    return x + 1\n")
        self.assertEqual(self.steps_in(t, "<reload:mod_r.py:1>"), [1, 2, 3])
        # The first version again is the file's own.
        self.assertEqual(self.steps_in(t, "mod_r.py"), [1, 2, 1, 2])
        with open(os.path.join(t.folder, "files", root.lstrip("/"), "mod_r.py")) as f:
            self.assertEqual(f.read(), "def g():\n    return 1\n")

    # ---- item 6: huge integers ---------------------------------------------

    def test_big_integers_python(self):
        self.start()
        root = self.write({"big.py": """\
            def show(a, b, c, d):
                return 0


            show(2**64, -(2**100), 2**32768 - 1, 2**40000)
            """})
        t, _ = self.record([self.python, "big.py"], root)
        self.check_big(t, "int")


class StringLimitTest(Recording):
    """Once, not per interpreter: 65,536 strings make a big trace."""

    def test_distinct_strings_past_the_limit_share_one_path(self):
        self.start("record:\n  values: none\n")
        root = self.write({"many.py": """\
            for i in range(65540):
                exec("v = %d" % i)
            exec("v = 7")
            """})
        t, _ = self.record([self.python, "many.py"], root)
        pseudo = [p for p in t.paths if p.startswith("<")]
        self.assertEqual(len(pseudo), 65536 + 1)
        self.assertEqual(pseudo[-2:], ["<string:65536>", "<string:over-limit>"])
        with open(os.path.join(t.folder, "files", "<string:8>")) as f:
            self.assertEqual(f.read(), "v = 7")
        with open(os.path.join(t.folder, "files", "<string:over-limit>")) as f:
            self.assertIn("more distinct strings", f.read())
        # Checking its 65,537 paths is linear: it took 12 s of CPU time when
        # the CTFS reader built its list of listed paths quadratically.
        def cap():
            resource.setrlimit(resource.RLIMIT_CPU, (3, 3))
        res = subprocess.run([CTRECCTL, "check", t.folder], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=cap, timeout=120)
        self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())


class RubyBigIntTest(Recording):
    def test_big_integers_ruby(self):
        self.start()
        root = self.write({"big.rb": """\
            def show(a, b, c, d)
              0
            end

            show(2**64, -(2**100), 2**32768 - 1, 2**40000)
            """})
        t, _ = self.record(["ruby", "big.rb"], root)
        self.check_big(t, "Integer")


per_interpreter(FeaturesTest, globals())
# Named after this module, not the one that made them, in test reports.
for _cls in [c for n, c in globals().items() if n.startswith("FeaturesTest_py")]:
    _cls.__module__ = __name__
