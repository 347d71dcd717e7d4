"""python3 -m ctrec prog.py [args]: runs prog.py as __main__, recorded.

sys.argv, sys.path[0], __main__ and the exit status are what
``python3 prog.py [args]`` gives.
"""
import os
import sys
import types


def _main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: python3 -m ctrec PROGRAM.py [ARGS...]\n"
                         "Records PROGRAM into the ctrecd at $CT_RECORDER_SOCKET.\n")
        return 2
    prog = sys.argv[1]
    path = os.path.abspath(prog)
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        sys.stderr.write("%s: can't open file %r: [Errno %d] %s\n"
                         % (sys.executable, prog, e.errno, e.strerror))
        return 2
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __cached__=None, __loader__=None,
                         __package__=None, __spec__=None,
                         __builtins__=sys.modules["builtins"])
    sys.modules["__main__"] = main
    code = compile(source, path, "exec", dont_inherit=True)
    from ctrec import _activate
    _activate.start(path, sys.argv[1:])
    try:
        exec(code, main.__dict__)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as e:
        # Report it as python3 prog.py would: without this frame.
        tb = e.__traceback__.tb_next if e.__traceback__ else None
        e.__traceback__ = tb
        sys.last_type, sys.last_value, sys.last_traceback = type(e), e, tb
        sys.excepthook(type(e), e, tb)
        return 1
    return 0


sys.exit(_main())
