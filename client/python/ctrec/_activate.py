"""Starts recording when CT_RECORDER_SOCKET is set; otherwise does nothing.

The C extension ``ctrec._ctrec`` does the work. This module only works out
what the program is called, where the shim itself lives (never recorded:
it is the recorder, not the program) and which directories hold the
standard library and installed packages, which the daemon's rules skip or
record like any other code (ctrec.yaml, filter.defaults).
"""
import os
import sys

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _program():
    """The program and its arguments as the user named them."""
    argv = list(sys.argv)
    first = argv[0] if argv else ""
    if first == "-m":
        orig = list(getattr(sys, "orig_argv", []))
        module = "-m"
        for i, a in enumerate(orig[:-1]):
            if a == "-m":
                module = orig[i + 1]
                break
            if a.startswith("-m") and len(a) > 2:
                module = a[2:]
                break
        return module, argv[1:]
    if first == "-c":
        # The command has no name of its own; this one makes the trace
        # folder python-c-<pid>-<time>.
        return "python-c", argv[1:]
    if first in ("-", ""):
        return "-", argv[1:]
    return os.path.abspath(first), argv[1:]


def _variants(dirs):
    out = []
    for d in dirs:
        for v in (os.path.abspath(d), os.path.realpath(d)):
            if v not in out:
                out.append(v)
    return out


def _lib_dirs():
    import site
    import sysconfig
    paths = sysconfig.get_paths()
    dirs = [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")
            if paths.get(k)]
    try:
        dirs.extend(site.getsitepackages())
    except AttributeError:
        pass
    if getattr(site, "ENABLE_USER_SITE", False) or site.USER_SITE:
        dirs.append(site.getusersitepackages())
    return _variants(dirs)


def start(program=None, args=None):
    """Starts recording; True when recording. Idempotent."""
    if not os.environ.get("CT_RECORDER_SOCKET"):
        return False
    try:
        from ctrec import _ctrec
    except ImportError as e:
        sys.stderr.write("ctrec: no recorder for Python %d.%d (%s); recording disabled\n"
                         % (sys.version_info[0], sys.version_info[1], e))
        return False
    if program is None:
        program, args = _program()
    return _ctrec.start(program, list(args or []), _variants([_HERE]),
                        _lib_dirs())


def start_from_site():
    """sitecustomize / ctrec.pth: start, unless python -m ctrec will."""
    program, args = _program()
    if program == "ctrec":
        return False
    return start(program, args)
