"""DEF and REF values (PROTOCOL.md 9.1) through a real ctrecd: a client
that sends values once and refers to them afterwards gets the same trace
as one that sends every value in full, across filtered steps, intervals
and a definition whose slot was taken."""
import json
import os
import socket
import subprocess

from harness import (CTRECCTL, DaemonTest, Trace, connect, frame, hello, mp,
                     read_until_closed, trace_folders, validate)

# Shim ids: paths, types and names of the crafted session.
APP, LIB = 0, 1
T_INT, T_STR, T_LIST, T_OBJ = 0, 1, 2, 3
SELF, X, A = 0, 1, 2


class Client:
    """Packs values with DEF and REF (refs True) or in full."""

    def __init__(self, refs):
        self.refs = refs
        self.values = {}

    def define(self, i, value):
        self.values[i] = value
        return [11, i, value] if self.refs else value

    def ref(self, i):
        return [12, i] if self.refs else self.values[i]


def script(c, program):
    """The session's frames; the client packs the values. Each frame is
    sent on its own, with ctrecctl stop and start between the third and
    fourth (None)."""
    lst = lambda: [6, T_LIST, [[2, T_INT, 1], [4, T_STR, b"hello world"]]]
    with open(program, "rb") as f:
        source = mp([14, APP, f.read()])  # the daemon opens no client-named path
    decls = mp([10, APP, program]) + source + mp([10, LIB, "/usr/lib/python3.11/lib.py"]) + \
        mp([11, 0, APP, 1, "f"]) + mp([12, T_INT, 7, "int"]) + mp([12, T_STR, 9, "str"]) + \
        mp([12, T_LIST, 0, "list"]) + mp([12, T_OBJ, 6, "Obj"]) + \
        mp([13, SELF, "self"]) + mp([13, X, "x"]) + mp([13, A, "a"])
    # A DEF in a step the filter drops, then REFs in VARS, CALL, RETURN and
    # a DEF of REFs; 4097 takes the slot of 1 (4096 slots), while 2 still
    # holds the list it was defined with.
    obj = c.define(2, [8, T_OBJ, [[A, c.define(1, lst())]]])
    first = decls + mp([20, LIB, 5]) + mp([23, [[SELF, obj]]]) + \
        mp([20, APP, 2]) + mp([23, [[SELF, c.ref(2)], [X, c.ref(1)]]])
    second = mp([21, 0, [[SELF, c.ref(2)]]]) + mp([20, APP, 3]) + \
        mp([23, [[X, c.define(3, [7, T_LIST, [c.ref(1), c.ref(2)]])]]]) + \
        mp([22, c.ref(1)]) + mp([20, APP, 3]) + mp([23, [[A, c.define(4097, [2, T_INT, 42])]]])
    third = mp([20, APP, 4]) + mp([23, [[SELF, c.ref(2)], [X, c.ref(3)]]])
    # Stopped: nothing is written, the definition is kept.
    stopped = mp([20, APP, 5]) + mp([23, [[X, c.define(5000, [6, T_LIST, [c.ref(2)]])]]])
    last = mp([20, APP, 6]) + mp([23, [[SELF, c.ref(2)], [X, c.ref(5000)], [A, c.ref(4097)]]]) + \
        mp([4, 0])
    return [first, second, third, None, stopped, None, last]


class ValueRefsTest(DaemonTest):
    def ctl(self, *args):
        res = subprocess.run([CTRECCTL, args[0], "-s", self.daemon.sock, *args[1:]],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr.decode())

    def session(self, refs):
        program = os.path.join(self.tmp, "refs.py" if refs else "full.py")
        with open(program, "w") as f:
            f.write("\n".join(f"line{i} = {i}" for i in range(1, 8)) + "\n")
        s = connect(self.daemon.sock)
        s.sendall(frame(hello(program=program)))
        # The WELCOME says how many definitions the daemon keeps.
        welcome = s.recv(1 << 16)
        self.assertIn(b"\xa4refs\xcd\x10\x00", welcome)
        stopped = False
        for chunk in script(Client(refs), program):
            if chunk is None:
                self.ctl("start" if stopped else "stop", "--all")
                stopped = not stopped
                continue
            s.sendall(frame(chunk))
            # A round trip: the daemon has read the frame before the next
            # control request.
            self.ctl("status")
        s.shutdown(socket.SHUT_WR)
        read_until_closed(s)
        s.close()
        return program

    def traces(self, program):
        found = sorted(f for f in trace_folders(self.daemon.out)
                       if Trace(f).meta["program"] == program)
        for f in found:
            validate(self, f)
        return [Trace(f) for f in found]

    def test_refs_give_the_trace_of_full_values(self):
        with_refs = self.session(True)
        full = self.session(False)
        self.daemon.stop()
        a, b = self.traces(with_refs), self.traces(full)
        self.assertEqual(len(a), 2)
        self.assertEqual(len(b), 2)
        for x, y in zip(a, b):
            self.assertEqual(x.state, "complete")
            # The same records but for the program's own path.
            rx = json.dumps(x.records).replace(with_refs, "P")
            ry = json.dumps(y.records).replace(full, "P")
            self.assertEqual(rx, ry)
        # The second interval declares its types again and shows the
        # definitions made before it.
        objects = [r["Value"]["value"] for r in a[1].records
                   if "Value" in r and r["Value"]["value"]["kind"] == "Struct"]
        self.assertTrue(objects)
        self.assertEqual({a[1].types[v["type_id"]]["lang_type"] for v in objects}, {"Obj"})
        self.assertEqual(json.dumps(a[1].records).count("hello world"), 2)
        self.assertIn('"i": 42', json.dumps(a[1].records))


if __name__ == "__main__":
    import unittest
    unittest.main()
