"""Values against an independent oracle: each program under
tests/programs/oracle/ (mutate_*.py) is recorded by a real ctrecd (default
settings, values: all) and run under oracle.py, a pure-Python sys.settrace
tracer that renders every visible variable at every line event to ctrec's
capture limits. The trace, read as CodeTracer reads it (a Value belongs to
the last Step before it; names via VariableName ids, types via Type ids),
must agree with the oracle at every step and for every variable."""
import base64
import glob
import json
import os

from harness import (SOURCE, TempDirTest, Trace, capture_limits,
                     record, run, trace_folders, validate, without_field_names)
from test_python_record import PYTHON, per_interpreter

ORACLE = os.path.join(SOURCE, "tests", "programs", "oracle")


def canonical(t, v):
    """A trace ValueRecord in the oracle's form: [kind, lang_type, ...]."""
    k = v["kind"]
    ty = t.types[v["type_id"]]
    head = [k, ty["lang_type"]]
    if k == "None":
        return head
    if k == "Bool":
        return head + [v["b"]]
    if k == "Int":
        return head + [v["i"]]
    if k == "BigInt":
        return head + [v["negative"], int.from_bytes(base64.b64decode(v["b"]), "big")]
    if k == "Float":
        return head + [repr(float(v["f"]))]  # repr: -0.0 is not 0.0
    if k == "String":
        return head + [v["text"]]
    if k == "Raw":
        return head + [v["r"]]
    if k == "Error":
        return head + [v["msg"]]
    if k in ("Sequence", "Tuple"):
        return head + [[canonical(t, e) for e in v["elements"]]]
    if k == "Struct":
        if not t.field_names_known:
            names = [None] * len(v["field_values"])
        else:
            names = [f["name"] for f in ty["specific_info"]["fields"]]
        return head + [[[n, canonical(t, e)] for n, e in zip(names, v["field_values"],
                                                                strict=True)]]
    return head + [v]


def trace_steps(t):
    """[{path, line, vars}] of the trace's line steps (not the call-location
    Step before each Call) with the Values that follow each."""
    out, cur = [], None
    for i, r in enumerate(t.records):
        (kind, body), = r.items()
        if kind == "Step":
            j = i + 1
            while j < len(t.records) and next(iter(t.records[j])) in (
                    "Function", "Path", "Type", "VariableName", "Value"):
                j += 1
            at_call = j < len(t.records) and "Call" in t.records[j]
            cur = None if at_call else {"path": t.paths[body["path_id"]], "line": body["line"],
                                        "vars": []}
            if cur is not None:
                out.append(cur)
        elif kind == "Value":
            assert cur is not None, "a Value after a call-location Step (record %d)" % i
            cur["vars"].append([t.varnames[body["variable_id"]], canonical(t, body["value"])])
    return out


class OracleTest(TempDirTest):
    python = PYTHON
    limits = {}  # ctrec.yaml limits of the recording ctrecd

    def compare(self, name, names=False, **limits):
        """Records ORACLE/name through a ctrecd with self.limits and
        `limits` and compares its trace with the oracle's steps; field
        names only where the trace has them, unless names."""
        prog = os.path.join(ORACLE, name)
        cfg = os.path.join(self.tmp, "ctrec.yaml")
        limits = {**self.limits, **limits}
        with open(cfg, "w") as f:
            f.write("limits:\n" + "".join("  %s: %s\n" % kv for kv in limits.items())
                    if limits else "")
        # One string hash seed for all runs: a set of strings is in the same
        # order in each.
        env = dict(os.environ, PYTHONHASHSEED="0")
        plain = run([self.python, prog], cwd=self.tmp, env=env)
        out = os.path.join(self.tmp, "out")
        rec = record([self.python, prog], out, env=env, extra=("-c", cfg))
        self.assertEqual((rec.stdout, rec.stderr, rec.returncode),
                         (plain.stdout, plain.stderr, plain.returncode))
        folder, = trace_folders(out)
        validate(self, folder)
        t = Trace(folder)
        self.assertEqual(t.state, "complete")
        dump = os.path.join(self.tmp, "oracle.json")
        limits = [str(n) for n in capture_limits(cfg, ("value_depth", "value_length",
                                                        "value_string", "value_budget"))]
        ran = run([self.python, os.path.join(ORACLE, "oracle.py"), dump, *limits, prog],
                  cwd=self.tmp, env=env)
        self.assertEqual(ran.stdout, plain.stdout, ran.stderr.decode())
        with open(dump) as f:
            want = json.load(f)
        if not t.field_names_known and not names:
            want = without_field_names(want)
        got = trace_steps(t)
        self.assertEqual(len(got), len(want), "step count")
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertEqual((g["path"], g["line"]), (w["path"], w["line"]), "step %d" % i)
            self.assertEqual(g["vars"], w["vars"], "values at step %d (%s:%d)"
                             % (i, os.path.basename(w["path"]), w["line"]))
        return got

    def test_containers(self):
        self.compare("mutate_containers.py")

    def test_objects(self):
        self.compare("mutate_objects.py")

    def test_objects_name_their_fields(self):
        self.compare("mutate_objects.py", names=True)

    def test_kinds(self):
        self.compare("mutate_kinds.py")

    def test_scalars(self):
        self.compare("mutate_scalars.py")

    def test_threads(self):
        steps = self.compare("mutate_threads.py")
        # The main thread's step after the first handover shows what the
        # other thread put into the list.
        at, = [s for s in steps if s["line"] == 27]
        shared = dict(at["vars"])["shared"]
        self.assertEqual(shared[2][0][:2], ["Sequence", "dict"])

    def test_shared(self):
        self.compare("mutate_shared.py")

    def test_budget(self):
        steps = self.compare("mutate_budget.py", value_budget=12)
        # The budget runs out inside the dict at nested()'s last steps and
        # after the twelfth scalar of scalars().
        cut = [s for s in steps if "<value budget reached>" in json.dumps(s["vars"])]
        self.assertTrue(any(s["line"] == 21 for s in cut), "scalars() cut")
        self.assertTrue(any(s["line"] == 28 for s in cut), "nested() cut")
        self.assertFalse(any(s["line"] in (35, 36) for s in cut), "within() cut")

    def test_every_program_is_compared(self):
        """Each mutate_<theme>.py has its test_<theme>."""
        themes = sorted(os.path.basename(p)[len("mutate_"):-len(".py")]
                        for p in glob.glob(os.path.join(ORACLE, "mutate_*.py")))
        self.assertTrue(themes)
        for theme in themes:
            self.assertTrue(hasattr(self, "test_" + theme), theme)

per_interpreter(OracleTest, globals())


class OracleRefsTest(OracleTest):
    """The same with room for only 4 definitions in the daemon: values
    sent as definitions are soon evicted and must be sent again."""
    limits = {"value_refs": 4}


per_interpreter(OracleRefsTest, globals())
