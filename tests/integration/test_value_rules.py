"""Value rules (filter.values) with real Ruby and Python programs.

A rule on an argument covers that variable in every record of its frame:
the call, each step, the synthetic call that opens a resumed interval and
so `ctrecctl follow` too; and copies of the hidden value (a block's or
closure's view of it, another variable, a return value). The programs build
their secret at run time, so a trace folder that holds it anywhere leaked
it. Also `in: locals`, `in: return` and function/module narrowing, as
config/ctrec.yaml documents them."""
import os
import subprocess
import time

from harness import (CTRECCTL, FORMAT, PY_SHIM, SOURCE, Daemon, TempDirTest, Trace, folder_texts,
                     records_text, run, service_config, simple, trace_folders, validate)
from test_python_record import PYTHON, per_interpreter

PROGRAMS = os.path.join(SOURCE, "tests", "programs", "values")
# What the programs compute as the secret, and what Auth.check makes of it.
SECRETS = (b"tok42en", b"TOK42EN")
REDACTED = ("raw", "<redacted>")


def rules(*lines):
    return "filter:\n  values:\n" + "".join(f"    - {line}\n" for line in lines)


def frames(t):
    """[(function, where, variable, value)] for every call argument
    (where "arg") and step variable ("step"), by the frame they belong to."""
    out, stack = [], []
    for r in t.records:
        if "Call" in r:
            name = t.functions[r["Call"]["function_id"]]["name"]
            stack.append(name)
            out += [(name, "arg", t.varnames[a["variable_id"]], simple(a["value"]))
                    for a in r["Call"]["args"]]
        elif "Return" in r:
            stack.pop()
        elif "Value" in r:
            out.append((stack[-1], "step", t.varnames[r["Value"]["variable_id"]],
                        simple(r["Value"]["value"])))
    return out


def returns(t):
    """{function: [returned values]}."""
    out, stack = {}, []
    for r in t.records:
        if "Call" in r:
            stack.append(t.functions[r["Call"]["function_id"]]["name"])
        elif "Return" in r:
            out.setdefault(stack.pop(), []).append(simple(r["Return"]["return_value"]))
    return out


class ValueRules:
    """The tests, for a language given by the subclass."""
    # What selectors call the program's functions: Ruby's constant paths,
    # Python's module name and qualified name.
    prefix = ""

    def start(self, yaml, flush=100):
        self.daemon = Daemon(self.tmp, service_config(self.tmp, yaml, flush=flush))
        self.addCleanup(self.daemon.stop)

    def traces(self):
        self.daemon.stop()
        folders = trace_folders(self.daemon.out)
        for f in folders:
            validate(self, f)
        return [Trace(f) for f in sorted(folders)]

    def record(self, yaml):
        """The program run untraced and traced: the same behaviour; its
        one trace, complete and valid."""
        self.start(yaml)
        plain = run(self.cmd())
        res = run(self.cmd(), env=self.env())
        self.assertEqual((res.stdout, res.stderr, res.returncode),
                         (plain.stdout, plain.stderr, plain.returncode))
        traces = self.traces()
        self.assertEqual(len(traces), 1)
        self.assertEqual(traces[0].state, "complete")
        return traces[0]

    def assert_no_secret(self, folder):
        for name, data in folder_texts(folder).items():
            for secret in SECRETS:
                at = data.find(secret)
                self.assertEqual(at, -1, "%s holds %r: ...%r..." % (
                    os.path.join(folder, name), secret, data[max(at - 80, 0):at + 20]))

    def vars_of(self, t, name):
        return [(fn, where, value) for fn, where, var, value in frames(t) if var == name]

    def test_dropped_argument_is_nowhere(self):
        t = self.record(rules("{name: token, in: args, action: drop}"))
        self.assert_no_secret(t.folder)
        self.assertEqual(self.vars_of(t, "token"), [])
        # The variables around it stay.
        self.assertIn(("Auth.login", "arg", "bob"), self.vars_of(t, "user"))
        self.assertIn(("Auth.login", "step", "bob"), self.vars_of(t, "user"))
        self.assertIn(("plain", "arg", "visible42"), self.vars_of(t, "secret"))
        self.assertIn(("plain", "step", "visible42"), self.vars_of(t, "secret"))
        self.assertIn(("Auth.login", "step", 7), self.vars_of(t, "n"))
        # An object that keeps it, after its constructor returned.
        self.assertLessEqual({value for _, _, value in self.vars_of(t, "client")}, {None})
        # Auth.echo returns the argument: dropped too, it returns None.
        rets = returns(t)
        self.assertEqual(rets["Auth.echo"], [None])
        self.assertEqual((rets["Auth.login"], rets["Auth.check"], rets["plain"]),
                         ([15], [7], [9]))

    def test_redacted_argument_is_nowhere(self):
        t = self.record(rules("{name: token, in: args, action: redact}"))
        self.assert_no_secret(t.folder)
        token = self.vars_of(t, "token")
        # In the call and at every step of each frame, even rebound.
        for fn in ("Auth.login", "Auth.check", "Auth.echo"):
            self.assertIn((fn, "arg", REDACTED), token)
        for fn in ("Auth.login", "Auth.check"):
            self.assertIn((fn, "step", REDACTED), token)
        self.assertEqual({value for _, _, value in token}, {REDACTED})
        # A copy of it under another name, and text holding it: hidden the
        # same way.
        for name in ("copy", "header"):
            copies = {value for _, _, value in self.vars_of(t, name)}
            self.assertIn(REDACTED, copies)
            self.assertLessEqual(copies, {REDACTED, None})
        self.assertEqual(returns(t)["Auth.echo"], [REDACTED])
        self.assertIn(("plain", "step", "visible42"), self.vars_of(t, "secret"))
        self.assertIn(REDACTED, {value for _, _, value in self.vars_of(t, "client")})

    def test_locals_rule_spares_arguments(self):
        t = self.record(rules("{name: token, in: locals, action: drop}",
                              "{name: n, in: locals, action: redact}"))
        # An argument is not a local, in its call or at its steps.
        token = self.vars_of(t, "token")
        self.assertIn(("Auth.login", "arg", "tok42en"), token)
        self.assertIn(("Auth.login", "step", "tok42en"), token)
        self.assertIn(("Auth.check", "step", "TOK42EN"), token)
        n = self.vars_of(t, "n")
        self.assertIn(("Auth.login", "step", REDACTED), n)
        self.assertEqual({value for _, _, value in n}, {REDACTED})
        self.assertEqual(returns(t)["Auth.login"], [15])

    def test_return_rule_narrowed_to_a_function(self):
        t = self.record(rules('{in: return, function: "%sAuth.echo", action: redact}' % self.prefix))
        rets = returns(t)
        self.assertEqual(rets["Auth.echo"], [REDACTED])
        self.assertEqual((rets["Auth.login"], rets["Auth.check"], rets["plain"]),
                         ([15], [7], [9]))
        self.assertIn(("Auth.echo", "arg", "tok42en"), self.vars_of(t, "token"))

    def test_argument_rule_narrowed_to_a_function(self):
        t = self.record(rules('{name: token, in: args, function: "%sAuth.check", action: drop}'
                              % self.prefix))
        token = self.vars_of(t, "token")
        self.assertEqual([v for v in token if v[0] == "Auth.check"], [])
        self.assertIn(("Auth.login", "arg", "tok42en"), token)
        self.assertIn(("Auth.login", "step", "tok42en"), token)
        # Once hidden, the same text stays hidden wherever it appears later.
        self.assertEqual([v for v in token if v[0] == "Auth.echo"], [])
        self.assertEqual(returns(t)["Auth.echo"], [None])

    def wait_program(self):
        """The program waiting inside Auth.wait(token, go)."""
        go = os.path.join(self.tmp, "go")
        p = subprocess.Popen(self.cmd("wait", go), env=self.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline(), b"waiting\n")
        return p, go

    def wait_recorded(self, text, count=1, interval=1):
        """Waits until the trace of that interval, as flushed, holds text
        count times."""
        deadline = time.time() + 20
        while time.time() < deadline:
            folders = sorted(trace_folders(self.daemon.out))
            if len(folders) >= interval:
                if records_text(folders[interval - 1], live=True).count(text) >= count:
                    return
            time.sleep(0.02)
        self.fail(f"no trace holds {text!r}:\n" + self.daemon.read_log())

    def ctl(self, *args):
        res = run([CTRECCTL, args[0], "-s", self.daemon.sock, *args[1:]])
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_resumed_interval_and_follow(self):
        # The session starts paused: the daemon first sees Auth.wait in the
        # STACK the shim sends when recording starts, without knowing which
        # of its variables are arguments.
        self.start(rules("{name: token, in: args, action: drop}") +
                   "record:\n  start: paused\n", flush=20)
        p, go = self.wait_program()
        self.ctl("start", "--pid", str(p.pid))
        # The synthetic call and a step show go before the program goes on
        # (live, a CTFS trace shows only the step: a call is written once
        # it returned).
        self.wait_recorded(go.encode(), 2 if FORMAT == "json" else 1)
        follow = subprocess.Popen([CTRECCTL, "follow", "-s", self.daemon.sock, "--pid",
                                   str(p.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(follow.kill)
        time.sleep(0.3)
        open(go, "w").close()
        out, err = p.communicate(timeout=60)
        self.assertEqual((out, p.returncode), (b"7\n", 0), err)
        listing, err = follow.communicate(timeout=60)
        self.assertEqual(follow.returncode, 0, err)
        # A CTFS call record is written once it returned; live, a follower
        # has handed out its steps by then and skips it (docs/ctfs.md),
        # so there go shows as the variable of Auth.wait's steps.
        self.assertRegex(listing.decode(), r"→ call Auth\.wait\(.*go=" if FORMAT == "json"
                         else r'\n  go = ".*/go"\n')
        for secret in SECRETS:
            self.assertNotIn(secret, listing)
        t, = self.traces()
        self.assert_no_secret(t.folder)
        self.assertEqual(self.vars_of(t, "token"), [])
        self.assertIn(("Auth.wait", "arg", go), self.vars_of(t, "go"))
        self.assertIn(("Auth.wait", "step", go), self.vars_of(t, "go"))

    def test_stop_and_start(self):
        # Here the daemon saw the call before the stop: the synthetic call
        # of the second interval and its steps still hide the argument.
        self.start(rules("{name: token, in: args, action: redact}"), flush=20)
        p, go = self.wait_program()
        self.wait_recorded(b'"Auth.wait"')
        self.ctl("stop", "--pid", str(p.pid))
        # Time for the shim to pause: resumed, it then sends its STACK.
        time.sleep(0.5)
        self.ctl("start", "--pid", str(p.pid))
        self.wait_recorded(go.encode(), 2 if FORMAT == "json" else 1, interval=2)
        open(go, "w").close()
        out, err = p.communicate(timeout=60)
        self.assertEqual((out, p.returncode), (b"7\n", 0), err)
        traces = self.traces()
        self.assertEqual(len(traces), 2)
        for t in traces:
            self.assert_no_secret(t.folder)
        token = self.vars_of(traces[1], "token")
        self.assertIn(("Auth.wait", "arg", REDACTED), token)
        self.assertIn(("Auth.wait", "step", REDACTED), token)
        self.assertEqual({value for _, _, value in token}, {REDACTED})


class RubyValueRulesTest(ValueRules, TempDirTest):
    def cmd(self, *args):
        return ["ruby", os.path.join(PROGRAMS, "secrets.rb"), *args]

    def env(self):
        return self.daemon.env()

    def test_module_narrowing(self):
        t = self.record(rules('{name: "*", module: Auth, action: redact}'))
        self.assert_no_secret(t.folder)
        for fn, _, var, value in frames(t):
            if fn.startswith("Auth."):
                self.assertEqual(value, REDACTED, (fn, var))
        self.assertIn(("plain", "arg", "visible42"), self.vars_of(t, "secret"))
        # "bob" was hidden in Auth.login, so it stays hidden in plain.
        self.assertIn(("plain", "arg", REDACTED), self.vars_of(t, "user"))


class PythonValueRulesTest(ValueRules, TempDirTest):
    python = PYTHON
    prefix = "__main__."

    def cmd(self, *args):
        return [self.python, os.path.join(PROGRAMS, "secrets.py"), *args]

    def env(self):
        return dict(os.environ, CT_RECORDER_SOCKET=self.daemon.sock, PYTHONPATH=PY_SHIM)

    def test_module_narrowing(self):
        # Python names: module is __name__, function the module plus the
        # qualified name.
        t = self.record(rules('{name: "*", module: "__main__", function: "__main__.Auth.**", '
                              'action: redact}'))
        self.assert_no_secret(t.folder)
        for fn, _, var, value in frames(t):
            if fn.startswith("Auth."):
                self.assertEqual(value, REDACTED, (fn, var))
        self.assertIn(("plain", "arg", "visible42"), self.vars_of(t, "secret"))


per_interpreter(PythonValueRulesTest, globals())


if __name__ == "__main__":
    import unittest
    unittest.main()
