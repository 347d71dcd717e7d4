"""An independent reference for the values ctrec records: runs a Python
program under sys.settrace and writes, for every line event of code in the
program's folder (all threads), the line and the visible variables rendered
the way client/python/ctr_py_value.c renders them, as JSON.

    python3 oracle.py OUT.json DEPTH LENGTH STRING BUDGET PROGRAM [ARGS...]

Written from CPython's data model alone (f_locals, __dict__, __slots__), not
from ctrec's code paths, so that the suite comparing the two catches a
capture that goes wrong. Each value is [kind, lang_type, ...]:
None, Bool b, Int i, BigInt negative magnitude, Float repr(f), String text,
Raw text, Sequence [items], Tuple [items], Struct [[field, value]...],
Error text. BUDGET (0: none) bounds the values captured per step, all
variables and their elements together; past it each value is an Error
"<value budget reached>"."""
import json
import os
import runpy
import sys
import threading
import types

OUT, DEPTH, LENGTH, STRING, BUDGET, TARGET = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
    os.path.abspath(sys.argv[6]))
FOLDER = os.path.dirname(TARGET) + "/"
BIGINT_MAX = 4096  # bytes of magnitude a BigInt carries (CTR_BIGINT_MAX)
HEAPTYPE = 1 << 9
IMMUTABLETYPE = 1 << 8
steps = []
counted = threading.local()  # values captured for the current step


def tname(v):
    return tname_of_class(type(v))


def raw(v, text):
    return ["Raw", tname(v), text]


def scalar(v):
    if v is None:
        return ["None", tname(v)]
    if isinstance(v, bool):
        return ["Bool", tname(v), v]
    if isinstance(v, int):
        n = int.__index__(v)
        if -2**63 <= n < 2**63:
            return ["Int", tname(v), n]
        if (abs(n).bit_length() + 7) // 8 > BIGINT_MAX:
            return raw(v, "<integer of %d bits>" % abs(n).bit_length())
        return ["BigInt", tname(v), n < 0, abs(n)]
    if isinstance(v, float):
        return ["Float", tname(v), repr(float.__float__(v))]
    if isinstance(v, str):
        return ["String", tname(v), text(str.__str__(v))]
    if isinstance(v, (bytes, bytearray)):
        return ["String", tname(v), as_json_text(bytes(v[:STRING]))]
    if isinstance(v, types.ModuleType):
        return raw(v, "<module %s>" % v.__name__)
    if isinstance(v, types.FunctionType):
        return raw(v, "<function %s>" % v.__qualname__)
    if isinstance(v, types.MethodType) and isinstance(v.__func__, types.FunctionType):
        return raw(v, "<bound method %s>" % v.__func__.__qualname__)
    if isinstance(v, types.BuiltinFunctionType):
        return raw(v, "<built-in function %s>" % v.__name__)
    if isinstance(v, type):
        return raw(v, "<class '%s'>" % tname_of_class(v))
    if isinstance(v, BaseException):
        return raw(v, "<%s>" % tname(v))
    if type(v) is complex:
        return raw(v, "(%.17g%+.17gj)" % (v.real, v.imag))
    return None


def as_json_text(b):
    """How trace.json shows bytes: UTF-8 as itself, other bytes as \\xNN."""
    return b.decode("utf-8", "backslashreplace")


def text(s):
    """A str as its first STRING bytes of UTF-8 (lone surrogates kept as
    their three bytes), never a character cut in two."""
    out, size = [], 0
    for ch in s[:STRING]:
        b = ch.encode("utf-8", "surrogatepass")
        if size + len(b) > STRING:
            break
        out.append(b)
        size += len(b)
    return as_json_text(b"".join(out))


def tname_of_class(c):
    """CPython's tp_name: a Python class's own name, a C type's dotted one,
    which type's repr shows ("<class '_thread.lock'>"). C types are static
    or immutable; classes from class statements are neither."""
    if c.__flags__ & HEAPTYPE and not c.__flags__ & IMMUTABLETYPE:
        return c.__name__
    return type.__repr__(c)[len("<class '"):-len("'>")]


def slots(v):
    """(name, value) of the set __slots__ members, base classes last."""
    out = []
    for cls in type(v).__mro__:
        if not cls.__flags__ & HEAPTYPE:
            continue
        for name, d in cls.__dict__.items():
            if not isinstance(d, types.MemberDescriptorType) or name.startswith("__"):
                continue
            try:
                val = d.__get__(v, type(v))
            except AttributeError:
                continue  # an unset slot is no attribute
            if len(out) < LENGTH:
                out.append((name, val))
    return out


def instance(v, visiting):
    try:
        attrs = object.__getattribute__(v, "__dict__")
    except AttributeError:
        attrs = {}
    sl = slots(v)
    fields = [(k, x) for k, x in dict.items(attrs) if isinstance(k, str)]
    fields = fields[:max(0, LENGTH - len(sl))] + sl
    if not fields:
        return raw(v, "<%s object>" % tname(v))
    return ["Struct", tname(v), [[k, walk(x, visiting)] for k, x in fields]]


def walk(v, visiting):
    if BUDGET and counted.n >= BUDGET:
        return ["Error", tname(v), "<value budget reached>"]
    counted.n += 1
    s = scalar(v)
    if s is not None:
        return s
    if any(x is v for x in visiting):
        return raw(v, "<cycle>")
    if len(visiting) >= DEPTH:
        return raw(v, "<%s object>" % tname(v))
    visiting.append(v)
    try:
        if isinstance(v, list):
            return ["Sequence", tname(v), [walk(x, visiting) for x in list.copy(v)[:LENGTH]]]
        if isinstance(v, tuple):
            items = tuple.__getitem__(v, slice(0, LENGTH))
            return ["Tuple", tname(v), [walk(x, visiting) for x in items]]
        if isinstance(v, dict):
            return ["Sequence", tname(v),
                    [["Tuple", "tuple", [walk(k, visiting), walk(x, visiting)]]
                     for k, x in list(dict.items(v))[:LENGTH]]]
        if isinstance(v, (set, frozenset)):
            items = list(set.__iter__(v) if isinstance(v, set) else frozenset.__iter__(v))
            return ["Sequence", tname(v), [walk(x, visiting) for x in items[:LENGTH]]]
        return instance(v, visiting)
    finally:
        visiting.pop()


def slot_order(code):
    """Local names in fast-locals order: co_varnames, the cells that are not
    arguments, the free variables."""
    names = list(code.co_varnames)
    names += [c for c in code.co_cellvars if c not in names]
    return names + list(code.co_freevars)


def visible(frame):
    """(name, value) of the variables a step shows: bound fast locals of a
    function; the namespace of a module or class body, without dunder names,
    modules, functions and classes."""
    loc = frame.f_locals
    code = frame.f_code
    if code.co_flags & 1:  # CO_OPTIMIZED
        return [(n, loc[n]) for n in slot_order(code) if n in loc]
    return [(n, v) for n, v in dict(loc).items()
            if isinstance(n, str) and not n.startswith("__")
            and not isinstance(v, (types.ModuleType, types.FunctionType, type,
                                   types.BuiltinFunctionType))]


def tracer(frame, event, arg):
    fn = frame.f_code.co_filename
    if not fn.startswith(FOLDER) or fn == __file__:
        return None
    if event == "line":
        counted.n = 0
        steps.append({"path": frame.f_code.co_filename, "line": frame.f_lineno,
                      "vars": [[n, walk(v, [])] for n, v in visible(frame)]})
    return tracer


def dump():
    sys.settrace(None)
    threading.settrace(None)
    with open(OUT, "w") as f:
        json.dump(steps, f)


del sys.argv[:6]  # the program sees its own arguments
sys.argv[0] = TARGET
sys.path[0] = os.path.dirname(TARGET)
threading.settrace(tracer)
sys.settrace(tracer)
try:
    runpy.run_path(TARGET, run_name="__main__")
finally:
    dump()
