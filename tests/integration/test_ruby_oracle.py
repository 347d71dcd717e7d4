"""Values at every step against an independent oracle.

Each program in tests/programs/oracle is recorded by a real ctrecd (default
settings, record.values: all; then again keeping only 4 values for
references, limits.value_refs), and run again under oracle.rb: a pure-Ruby
TracePoint that renders the visible locals at every line (and self and the
parameters at every call) with ctrec's capture rules and limits, from a
fresh Binding each time. The trace, read as CodeTracer reads it, must agree
with the oracle at every step, for every variable: a Value belongs to the
last Step before it, the arguments of a Call to the Step right before the
Call, names come through VariableName ids, types and struct field names
through Type ids. Steps are compared per trace thread (one per fiber), in
each one's own order: threads that hand work over in lock step see the same
values in every run, but may interleave differently."""
import json
import os

from harness import (SOURCE, TempDirTest, Trace, capture_limits,
                     record, run, trace_folders, validate, without_field_names, write)

ORACLE_DIR = os.path.join(SOURCE, "tests", "programs", "oracle")
ORACLE = os.path.join(ORACLE_DIR, "oracle.rb")
# Files starting with "_" are helpers the programs require.
PROGRAMS = sorted(f for f in os.listdir(ORACLE_DIR)
                  if f.endswith(".rb") and f != "oracle.rb" and not f.startswith("_"))


def trace_value(t, v):
    """A trace ValueRecord in the oracle's form [kind, [type kind, type name],
    payload]."""
    ty = t.types[v["type_id"]]
    # A CTFS trace keeps type names only (types.dat), not their kinds.
    tk = [None if t.ctfs else ty["kind"], ty["lang_type"]]
    k = v["kind"]
    if k == "Int":
        return ["Int", tk, v["i"]]
    if k == "BigInt":
        return ["BigInt", tk, [v["negative"], v["b"]]]
    if k == "Float":
        return ["Float", tk, float(v["f"])]
    if k == "Bool":
        return ["Bool", tk, v["b"]]
    if k == "None":
        return ["None", tk, None]
    if k == "String":
        return ["String", tk, v["text"]]
    if k == "Raw":
        return ["Raw", tk, v["r"]]
    if k == "Sequence":
        return ["Seq", tk, [trace_value(t, e) for e in v["elements"]]]
    if k == "Struct":
        info = ty.get("specific_info", {})
        names = [f["name"] for f in info["fields"]] if info.get("kind") == "Struct" else []
        fields = v["field_values"]
        # A field the type does not name shows as None: CodeTracer cannot
        # name it either.
        return ["Struct", tk, [[names[i] if i < len(names) else None, trace_value(t, f)]
                               for i, f in enumerate(fields)]]
    return [k, tk, v]


def oracle_value(v, ctfs):
    """The oracle's value with floats as numbers (it writes Float#to_s),
    without type kinds for a CTFS trace (its types are names only)."""
    kind, tk, payload = v
    tk = [None, tk[1]] if ctfs else tk
    if kind == "Float":
        return [kind, tk, float(payload)]
    if kind == "Seq":
        return [kind, tk, [oracle_value(e, ctfs) for e in payload]]
    if kind == "Struct":
        return [kind, tk, [[n, oracle_value(x, ctfs)] for n, x in payload]]
    return [kind, tk, payload]


def trace_steps(t):
    """{thread number: [(path, line, [[name, value], ...]), ...]}: threads are
    numbered as they first step, the main thread 0."""
    threads, cur, out = {0: 0}, 0, {}
    step = None
    for r in t.records:
        if not isinstance(r, dict):
            continue
        (k, v), = r.items()
        if k == "ThreadSwitch":
            wire = v["thread_id"] if isinstance(v, dict) else v
            cur = threads.setdefault(wire, len(threads))
        elif k == "Step":
            step = (t.paths[v["path_id"]], v["line"], [])
            out.setdefault(cur, []).append(step)
        elif k == "Value" and step is not None:
            step[2].append([t.varnames[v["variable_id"]], trace_value(t, v["value"])])
        elif k == "Call" and step is not None:
            for a in v["args"]:
                step[2].append([t.varnames[a["variable_id"]], trace_value(t, a["value"])])
    return out


def oracle_steps(dump, ctfs):
    out = {}
    for s in dump:
        out.setdefault(s["thread"], []).append(
            (s["path"], s["line"], [[n, oracle_value(x, ctfs)] for n, x in s["vars"]]))
    return out


class RubyOracle(TempDirTest):
    def compare(self, name, config=None, names=False):
        """Records ORACLE_DIR/name and compares its trace with the oracle's
        steps; field names only where the trace has them, unless names."""
        prog = os.path.join(ORACLE_DIR, name)
        limits = capture_limits()
        dump_path = os.path.join(self.tmp, name + ".json")
        env = dict(os.environ, ORACLE_OUT=dump_path,
                   ORACLE_LIMITS=",".join(str(x) for x in limits))
        plain = run(["ruby", "-r", ORACLE, prog], env=env, cwd=self.tmp)
        self.assertEqual(plain.returncode, 0, plain.stderr.decode())
        with open(dump_path) as f:
            dump = json.load(f)
        out_dir = os.path.join(self.tmp, "out-" + name)
        extra = ()
        if config is not None:
            extra = ("-c", write(os.path.join(self.tmp, name + ".yaml"), config))
        rec = record(["ruby", prog], out_dir, extra=extra)
        self.assertEqual(rec.returncode, 0, rec.stderr.decode())
        self.assertEqual(rec.stdout, plain.stdout)
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), 1, folders)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertEqual(t.state, "complete")
        expected = oracle_steps(dump, t.ctfs)
        if not t.field_names_known and not names:
            expected = {th: [(p, line, without_field_names(vs)) for p, line, vs in steps]
                        for th, steps in expected.items()}
        got = trace_steps(t)
        self.assertEqual(sorted(got), sorted(expected), "threads")
        for th in sorted(expected):
            exp, act = expected[th], got[th]
            for i in range(min(len(exp), len(act))):
                self.assertEqual(act[i][:2], exp[i][:2], f"thread {th} step {i}: where")
                self.assertEqual(act[i][2], exp[i][2],
                                 f"thread {th} step {i} at line {exp[i][1]}: values")
            self.assertEqual(len(act), len(exp), f"thread {th}: number of steps")
        return t, expected

    def test_programs_agree_with_the_oracle(self):
        self.assertTrue(PROGRAMS)
        for name in PROGRAMS:
            with self.subTest(program=name):
                self.compare(name)

    def test_objects_name_their_fields(self):
        _, expected = self.compare("mutate_in_place.rb", names=True)
        self.assertIn('"Struct"', json.dumps(expected))

    def test_programs_agree_with_few_kept_values(self):
        """With 4 kept definitions the shim's references to values it sent
        before are evicted again and again: every value must still be the
        one the oracle sees."""
        for name in PROGRAMS:
            with self.subTest(program=name):
                self.compare(name, "limits:\n  value_refs: 4\n")


if __name__ == "__main__":
    import unittest
    unittest.main()
