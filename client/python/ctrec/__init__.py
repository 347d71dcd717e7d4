"""ctrec: records this Python program into a running ctrecd.

Recording starts from sitecustomize.py (``ctrecctl record -- python3 ...``
puts the shim's folder on PYTHONPATH), from ctrec.pth in site-packages, or
with ``python3 -m ctrec prog.py [args]``. It does nothing at all unless
CT_RECORDER_SOCKET is set.
"""
