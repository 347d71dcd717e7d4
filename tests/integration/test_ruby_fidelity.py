"""Fidelity of the Ruby shim beyond the plain programs of test_ruby_record:
eval'd code with its source, exit paths, fork/daemon/spawn, frame structure
of blocks, threads and fibers, hard values, the values:none mode, and real
programs nobody here wrote (erb, gem list) with the standard library
skipped and included.

The programs in tests/programs/ruby (calls_params, exceptions_flow,
output_kinds, threads_fibers, values_more) also run through
test_ruby_record's full comparison; here their traces are read for what
that comparison does not look at."""
import os
import signal
import subprocess

from harness import (RUBY_PROGRAMS, TempDirTest, Trace, record, ruby_line_events, run,
                     trace_folders, validate, write)


def thread_stacks(t):
    """Replays Call/Return per ThreadSwitch id; returns the final depth of
    each thread and fails (AssertionError) when a thread returns more than
    it called."""
    depth, cur = {0: 0}, 0
    for r in t.records:
        if not isinstance(r, dict):
            continue
        (k, v), = r.items()
        if k == "ThreadSwitch":
            cur = v["thread_id"] if isinstance(v, dict) else v
            depth.setdefault(cur, 0)
        elif k == "Call":
            depth[cur] += 1
        elif k == "Return":
            depth[cur] -= 1
            assert depth[cur] >= 0, f"thread {cur} returned more than it called"
    return depth


class RubyFidelity(TempDirTest):
    def record_prog(self, prog, args=(), env=None, expect_folders=1, config=None):
        plain = run(["ruby", prog, *args], cwd=self.tmp)
        out_dir = os.path.join(self.tmp, "out-" + os.path.basename(prog) + "-" + "-".join(args))
        extra = ()
        if config is not None:
            extra = ("-c", write(os.path.join(self.tmp, "ctrec.yaml"), config))
        rec = record(["ruby", prog, *args], out_dir, env=env, extra=extra)
        self.assertEqual(rec.returncode, plain.returncode, rec.stderr)
        self.assertEqual(rec.stdout, plain.stdout)
        self.assertEqual(rec.stderr, plain.stderr)
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), expect_folders, folders)
        for f in folders:
            validate(self, f)
        return [Trace(f) for f in folders], plain

    # ---- eval, instance_eval, class_eval, load ------------------------------

    def test_eval_strings_ship_their_source(self):
        write(os.path.join(self.tmp, "lib_part.rb"),
              "def from_lib(v)\n  w = v + 1\n  w * 2\nend\n")
        prog = write(os.path.join(self.tmp, "evals.rb"), (
            'code = "a = 1\\nb = a + 2\\nb * 3"\n'
            "p eval(code)\n"
            'p eval("def made_in_eval(x)\\n  x + 1\\nend\\nmade_in_eval(4)")\n'
            "class Box\n  def initialize; @v = 5; end\nend\n"
            'p Box.new.instance_eval("@v * 2")\n'
            'Box.class_eval("def dbl\\n  @v * 2\\nend")\n'
            "p Box.new.dbl\n"
            'p eval("[1, 2].map { |q|\\n  q * 10\\n}")\n'
            "p made_in_eval(10)\n"
            'load File.join(__dir__, "lib_part.rb")\n'
            "p from_lib(1)\n"
            'load File.join(__dir__, "lib_part.rb")\n'
            "p from_lib(2)\n"))
        (t,), plain = self.record_prog(prog)
        self.assertEqual(t.state, "complete")
        self.assertEqual(t.output(), plain.stdout.decode())
        evals = [p for p in t.paths if p.startswith("<eval")]
        self.assertEqual(len(evals), 5, t.paths)
        self.assertEqual(len(set(evals)), 5)
        # Every eval string is in the trace, under its own pseudo path.
        files = os.path.join(t.folder, "files")
        with open(os.path.join(files, evals[0]), "rb") as f:
            self.assertEqual(f.read(), b"a = 1\nb = a + 2\nb * 3")
        with open(os.path.join(files, evals[3]), "rb") as f:
            self.assertEqual(f.read(), b"def dbl\n  @v * 2\nend")
        # Steps in real files are Ruby's own line events; eval'd lines are
        # steps of their eval path (Ruby calls them all "(eval)").
        real = [s for s in t.line_steps() if not s[0].startswith("<")]
        self.assertEqual(real, ruby_line_events(prog, cwd=self.tmp))
        self.assertIn((evals[0], 3), t.line_steps())
        self.assertIn("made_in_eval", t.call_names())
        self.assertIn("Box#dbl", t.call_names())
        fn = {name: path for name, path, _ in t.call_sites()}
        self.assertEqual(fn["made_in_eval"], evals[1])

    def test_eval_strings_deduplicated_and_bounded(self):
        # The same string evaluated many times declares one path; distinct
        # strings past the old limit of 4096 each keep their own source.
        prog = write(os.path.join(self.tmp, "many_evals.rb"), (
            "20_000.times { eval(\"1 + 2\") }\n"
            "5000.times { |i| eval(\"x = #{i}\\nx * 2\") }\n"
            "p eval(\"40 + 2\")\n"))
        (t,), plain = self.record_prog(prog)
        self.assertEqual(t.state, "complete")
        self.assertEqual(t.output(), plain.stdout.decode())
        evals = [p for p in t.paths if p.startswith("<eval")]
        self.assertEqual(len(evals), 1 + 5000 + 1, evals[:5])
        self.assertNotIn("<eval>", t.paths)
        files = os.path.join(t.folder, "files")
        with open(os.path.join(files, evals[0]), "rb") as f:
            self.assertEqual(f.read(), b"1 + 2")
        with open(os.path.join(files, evals[4999]), "rb") as f:
            self.assertEqual(f.read(), b"x = 4998\nx * 2")
        with open(os.path.join(files, evals[-1]), "rb") as f:
            self.assertEqual(f.read(), b"40 + 2")
        self.assertIn((evals[-1], 1), t.line_steps())

    def test_reloaded_file_with_new_text_gets_its_own_path(self):
        prog = write(os.path.join(self.tmp, "reload.rb"), (
            'lib = File.join(__dir__, "part.rb")\n'
            'File.write(lib, "def part(v)\\n  w = v + 1\\n  w * 2\\nend\\n")\n'
            "load lib\n"
            "p part(1)\n"
            'File.write(lib, "def part(v)\\n  w = v + 10\\n  w * 3\\nend\\n")\n'
            "load lib\n"
            "p part(1)\n"
            'File.write(lib, "def part(v)\\n  w = v + 1\\n  w * 2\\nend\\n")\n'
            "load lib\n"
            "p part(2)\n"))
        (t,), plain = self.record_prog(prog)
        self.assertEqual(t.output(), "4\n33\n6\n")
        part = os.path.join(self.tmp, "part.rb")
        reloads = [p for p in t.paths if p.startswith("<reload:part.rb")]
        self.assertEqual(len(reloads), 1, t.paths)
        files = os.path.join(t.folder, "files")
        with open(os.path.join(files, reloads[0]), "rb") as f:
            self.assertEqual(f.read(), b"def part(v)\n  w = v + 10\n  w * 3\nend\n")
        with open(os.path.join(files, part.lstrip("/")), "rb") as f:
            self.assertEqual(f.read(), b"def part(v)\n  w = v + 1\n  w * 2\nend\n")
        # Each version's lines are steps of its own path, in run order.
        r = reloads[0]
        lib_steps = [s for s in t.line_steps() if s[0] in ("part.rb", r)]
        self.assertEqual(lib_steps, [("part.rb", 1), ("part.rb", 2), ("part.rb", 3),
                                     (r, 1), (r, 2), (r, 3),
                                     ("part.rb", 1), ("part.rb", 2), ("part.rb", 3)])
        fpaths = {path for name, path, _ in t.call_sites() if name == "part"}
        self.assertEqual(fpaths, {part, reloads[0]})

    # ---- exit paths ------------------------------------------------------------

    EXIT_PROG = (
        "def f(x)\n  puts \"in f #{x}\"\n  x * 2\nend\n"
        "at_exit { puts \"at_exit ran\" }\n"
        "f(1)\n"
        "case ARGV[0]\n"
        "when \"exit\" then exit 3\n"
        "when \"bang\" then $stdout.flush; exit!(4)\n"
        "when \"pbang\" then $stdout.flush; Process.exit!(true)\n"
        "when \"abort\" then abort(\"aborting now\")\n"
        "when \"raise\" then raise ArgumentError, \"bad\"\n"
        "when \"term\" then $stdout.flush; Process.kill(:TERM, Process.pid); sleep 5\n"
        "when \"kill\" then $stdout.flush; sleep 0.4; Process.kill(:KILL, Process.pid)\n"
        "end\n"
        "f(2)\n")

    def test_exit_paths(self):
        prog = write(os.path.join(self.tmp, "ex.rb"), self.EXIT_PROG)
        for mode in ("none", "exit", "bang", "pbang", "abort", "raise", "term"):
            with self.subTest(mode=mode):
                (t,), plain = self.record_prog(prog, [mode])
                self.assertEqual(t.state, "complete")
                self.assertEqual(t.output(0), plain.stdout.decode())
                self.assertEqual(t.output(2), plain.stderr.decode())
                self.assertEqual(t.call_names()[:2], ["<top-level>", "f"])
                if mode == "raise":
                    self.assertEqual(t.errors()[-1], "ArgumentError: bad")
                if mode in ("bang", "pbang"):
                    # exit! skips at_exit; the trace still has every event.
                    self.assertNotIn("at_exit", t.output(0))
                    self.assertIn(("ex.rb", 9 if mode == "bang" else 10), t.line_steps())
                status = t.meta["ctrec"]["exit_status"]
                if mode == "term":
                    self.assertEqual(plain.returncode, -signal.SIGTERM)
                    self.assertEqual(status, 128 + signal.SIGTERM)
                else:
                    self.assertEqual(status, plain.returncode)

    def test_sigkill_of_the_program(self):
        prog = write(os.path.join(self.tmp, "ex.rb"), self.EXIT_PROG)
        out_dir = os.path.join(self.tmp, "out")
        rec = record(["ruby", prog, "kill"], out_dir)
        self.assertEqual(rec.returncode, -signal.SIGKILL)
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), 1)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertTrue(t.state.startswith("aborted"), t.state)
        # The program slept 0.4 s before the kill: the flush thread sent all.
        self.assertEqual(t.output(), "in f 1\n")

    # ---- processes ------------------------------------------------------------

    FORK_PROG = (
        "def child_work(tag)\n  v = tag * 3\n  puts \"child #{tag} #{v}\"\n  v\nend\n"
        "puts \"parent\"\n$stdout.flush\n"
        "pid = fork do\n  child_work(1)\nend\nProcess.wait(pid)\n"
        "case ARGV[0]\n"
        "when \"daemon\"\n"
        "  r, w = IO.pipe\n"
        "  if fork.nil?\n"
        "    Process.daemon(true, true)\n"
        "    child_work(2)\n"
        "    w.puts Process.pid\n"
        "    w.close\n"
        "    exit 0\n"
        "  end\n"
        "  w.close\n  r.read\n  Process.wait\n"
        "when \"spawn\"\n"
        "  pid = spawn(\"ruby\", \"-e\", \"def g(x) = x + 1\\nputs g(41)\")\n"
        "  Process.wait(pid)\n"
        "end\n"
        "child_work(9)\n")

    def test_fork_daemon_spawn(self):
        prog = write(os.path.join(self.tmp, "fk.rb"), self.FORK_PROG)
        expected = {"fork": 2, "daemon": 4, "spawn": 3}
        for mode, n in expected.items():
            with self.subTest(mode=mode):
                out_dir = os.path.join(self.tmp, "out-" + mode)
                rec = record(["ruby", prog, mode], out_dir)
                self.assertEqual(rec.returncode, 0, rec.stderr)
                folders = trace_folders(out_dir)
                self.assertEqual(len(folders), n, folders)
                traces = [Trace(f) for f in folders]
                for t in traces:
                    validate(self, t.folder)
                    self.assertEqual(t.state, "complete", t.folder)
                by_pid = {t.meta["ctrec"]["pid"]: t for t in traces}
                root = [t for t in traces if t.meta["ctrec"]["ppid"] not in by_pid]
                self.assertEqual(len(root), 1)
                # Every child names a traced process as its parent.
                for t in traces:
                    if t is not root[0]:
                        self.assertIn(t.meta["ctrec"]["ppid"], by_pid)
                # No event twice: each printed line is in exactly one trace.
                lines = [l for t in traces for l in t.output().splitlines()]
                self.assertEqual(sorted(lines), sorted(set(lines)))
                self.assertIn("child 1 3", lines)
                self.assertIn("child 9 27", lines)
                if mode == "daemon":
                    self.assertIn("child 2 6", lines)
                if mode == "spawn":
                    self.assertIn("42", lines)

    # ---- frames -----------------------------------------------------------------

    def test_blocks_threads_fibers_stay_balanced(self):
        for name in ("calls_params", "threads_fibers", "blocks_procs_lambdas", "exceptions_flow"):
            with self.subTest(program=name):
                prog = os.path.join(RUBY_PROGRAMS, name + ".rb")
                (t,), _ = self.record_prog(prog)
                depth = thread_stacks(t)
                self.assertGreaterEqual(len(depth), 1)
                if name == "threads_fibers":
                    # Three worker threads, the producer, the enumerator's
                    # and the Fiber's own stacks, each balanced.
                    self.assertGreaterEqual(len(depth), 6, depth)
                    self.assertEqual(t.call_names().count("work"), 4)
                if name == "calls_params":
                    names = t.call_names()
                    # A lambda called far from home is its own frame.
                    self.assertIn("block in make_counter", names)
                    for fn in ("Child#greet", "Base#greet", "Child#twice",
                               "Child#method_missing", "Child.only_here", "Base.build",
                               "all_kinds", "anon", "inner_anon", "forward", "target"):
                        self.assertIn(fn, names)
                    calls = dict(t.calls_with_args())
                    # Defaults are bound when the arguments are read.
                    self.assertEqual(calls["Child#greet"]["punct"], "?")
                    self.assertEqual(calls["all_kinds"]["d"], 6)

    def test_block_body_is_never_a_step_of_another_method(self):
        prog = write(os.path.join(self.tmp, "blk.rb"), (
            "def caller_of(pr)\n  pr.call(2)\nend\n"
            "double = ->(v) {\n  v * 2\n}\n"
            "p caller_of(double)\n"))
        (t,), _ = self.record_prog(prog)
        stack, seen = [], []
        for r in t.records:
            if not isinstance(r, dict):
                continue
            (k, v), = r.items()
            if k == "Call":
                stack.append(t.functions[v["function_id"]]["name"])
            elif k == "Return":
                stack.pop()
            elif k == "Step" and v["line"] == 5:
                seen.append(stack[-1])
        self.assertEqual(seen, ["block in <main>"])

    # ---- values -----------------------------------------------------------------

    def test_hard_values(self):
        (t,), _ = self.record_prog(os.path.join(RUBY_PROGRAMS, "values_more.rb"))
        looks = [c for c in t.kinds("Call") if t.functions[c["function_id"]]["name"] == "look"]
        vals = [c["args"][1]["value"] for c in looks]
        kinds = [v["kind"] for v in vals]
        self.assertEqual(len(vals), 19)
        self.assertEqual(kinds[0], "Struct")       # Trap: its ivars, no method called
        self.assertEqual(kinds[1], "Struct")       # BasicObject
        self.assertIn({"kind": "Raw"}, [{"kind": e["kind"]} for e in vals[2]["elements"]])
        self.assertLessEqual(len(vals[4]["elements"]), 1000)  # huge array capped
        self.assertLessEqual(len(vals[5]["text"]), 100_000)
        self.assertEqual(vals[6]["text"], "frozen")
        self.assertEqual([e["i"] for e in vals[7]["elements"]], [1, 2, 3])  # Set
        self.assertEqual(kinds[8:12], ["Struct"] * 4)  # Time, Regexp, Rational, Complex
        self.assertEqual(kinds[13:15], ["Float", "Float"])  # NaN, -Infinity
        self.assertEqual(kinds[15], "BigInt")
        # BigDecimal through its own C to_s, never a Ruby-level call.
        self.assertEqual(vals[12]["kind"], "Raw")
        self.assertEqual(vals[12]["r"], "0.125e1")
        self.assertEqual(t.types[vals[12]["type_id"]]["lang_type"], "BigDecimal")
        # Nothing raised inside the program because of the capture.
        self.assertEqual([e for e in t.errors() if "called" in e], [])

    def test_bigdecimal_with_overridden_to_s_is_not_called(self):
        prog = write(os.path.join(self.tmp, "bigdec.rb"), (
            'require "bigdecimal"\n'
            "def look(v)\n  v\nend\n"
            'look(BigDecimal("-0.001"))\n'
            'look(BigDecimal("Infinity"))\n'
            "class BigDecimal\n  def to_s(*) = raise(\"to_s called\")\nend\n"
            'look(BigDecimal("2"))\n'
            "puts :done\n"))
        (t,), plain = self.record_prog(prog)
        self.assertEqual(t.output(), "done\n")
        looks = [c for c in t.kinds("Call") if t.functions[c["function_id"]]["name"] == "look"]
        self.assertEqual([c["args"][1]["value"].get("r") for c in looks],
                         ["-0.1e-2", "Infinity", "#<BigDecimal>"])
        self.assertEqual([e for e in t.errors() if "called" in e], [])

    def test_values_none_mode(self):
        prog = os.path.join(RUBY_PROGRAMS, "calls_params.rb")
        (t,), plain = self.record_prog(prog, config="record:\n  values: none\n")
        self.assertEqual(t.output(), plain.stdout.decode())
        self.assertEqual(t.line_steps(), ruby_line_events(prog, cwd=self.tmp))
        for c in t.kinds("Call"):
            self.assertEqual(c["args"], [])
        self.assertNotIn("Variable", {next(iter(r)) for r in t.records if isinstance(r, dict)})

    # ---- programs nobody here wrote ----------------------------------------------

    def test_erb_and_gem_list(self):
        tpl = write(os.path.join(self.tmp, "t.erb"),
                    "<% items = %w[a b c] %>\n<% items.each_with_index do |it, i| %>\n"
                    "<%= i %>: <%= it.upcase %>\n<% end %>\nTotal: <%= items.size %>\n")
        for cmd in (["erb", tpl], ["gem", "list"]):
            plain = run(cmd, cwd=self.tmp)
            for stdlib in ("0", "1"):
                with self.subTest(cmd=cmd[0], stdlib=stdlib):
                    out_dir = os.path.join(self.tmp, f"out-{cmd[0]}-{stdlib}")
                    # The built-in rules skip the standard library; without
                    # them it is recorded.
                    cfg = write(os.path.join(self.tmp, "nodefaults.yaml"),
                                "filter:\n  defaults: false\n")
                    extra = ("-c", cfg) if stdlib == "1" else ()
                    rec = record(cmd, out_dir, extra=extra)
                    self.assertEqual(rec.returncode, plain.returncode)
                    self.assertEqual(rec.stdout, plain.stdout)
                    folders = trace_folders(out_dir)
                    self.assertEqual(len(folders), 1)
                    validate(self, folders[0])
                    t = Trace(folders[0])
                    self.assertEqual(t.state, "complete")
                    self.assertEqual(t.output(), plain.stdout.decode())
                    in_stdlib = [p for p in t.paths if p.startswith("/usr/lib/ruby/")]
                    if stdlib == "1":
                        self.assertTrue(in_stdlib)
                        self.assertGreater(len(t.kinds("Call")), 100)
                    else:
                        self.assertEqual(in_stdlib, [])


if __name__ == "__main__":
    import unittest
    unittest.main()
