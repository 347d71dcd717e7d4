"""How the Ruby shim captures values at a bounded cost: the per-step budget
(`limits.value_budget`, WELCOME max_nodes) stops capture at an exact point
with a "<value budget reached>" marker, earlier values exact. Real ruby,
real ctrecd (through ctrecctl record), ctrecctl check on every trace."""
import os

from harness import CTRECCTL, TempDirTest, Trace, run, simple, trace_folders, validate, write

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


class RubyValues(TempDirTest):
    def record(self, text, config):
        prog = write(os.path.join(self.tmp, "prog.rb"), text)
        plain = run(["ruby", prog], cwd=self.tmp)
        out_dir = os.path.join(self.tmp, "out")
        cfg = write(os.path.join(self.tmp, "ctrec.yaml"), config)
        rec = run([CTRECCTL, "record", "-q", "-o", out_dir, "-c", cfg, "--", "ruby", prog],
                  cwd=self.tmp)
        self.assertEqual((rec.returncode, rec.stdout, rec.stderr),
                         (plain.returncode, plain.stdout, plain.stderr))
        folders = trace_folders(out_dir)
        self.assertEqual(len(folders), 1, folders)
        validate(self, folders[0])
        t = Trace(folders[0])
        self.assertEqual(t.state, "complete")
        return t, prog

    def test_budget_stops_capture_where_it_is_reached(self):
        t, prog = self.record(
            "a = [1, 2, 3]\n"
            "b = [[1, 2], [3, 4]]\n"
            "a.concat([4, 5, 6, 7, 8, 9, 10])\n"
            "c = 5\n"
            "puts a.size\n"
            "def m(x, y) = x.size + y.size\n"
            "m(a, b)\n",
            "limits:\n  value_budget: 8\n")
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


if __name__ == "__main__":
    import unittest
    unittest.main()
