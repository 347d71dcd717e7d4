"""ctrec: starts recording when CT_RECORDER_SOCKET is set.

ctrecctl puts this folder first on PYTHONPATH. PYTHONPATH alone runs no .pth
file, but site imports ``sitecustomize``, so this module is the hook. It then
runs the sitecustomize it hides (Debian's, a virtualenv's, the user's), found
further down sys.path, under the same name, so that one still takes effect.
"""


def _ctrec_chain():
    import importlib.machinery
    import importlib.util
    import os
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


try:
    _ctrec_chain()
finally:
    import os as _os
    if _os.environ.get("CT_RECORDER_SOCKET"):
        from ctrec import _activate as _ctrec_activate
        _ctrec_activate.start_from_site()
    del _os
