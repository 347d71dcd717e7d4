"""ctrec: records this Python program into a running ctrecd.

Recording starts from sitecustomize.py (``ctrecctl record -- python3 ...``
puts the shim's folder on PYTHONPATH), from ctrec.pth in site-packages, or
with ``python3 -m ctrec prog.py [args]``. It does nothing at all unless
CT_RECORDER_SOCKET is set.

The program may mark moments and pause and resume its own recording::

    import ctrec
    ctrec.mark("cache warmed")      # an event in the trace at this step
    ctrec.pause()                   # ends the interval (ctrecctl stop)
    ctrec.resume()                  # opens a new one (ctrecctl start)
    with ctrec.recording():         # records the block, then pauses
        work()                      # again if it was paused before

Each does nothing, quietly and at once, when the program is not being
recorded (no CT_RECORDER_SOCKET, no daemon, or no shim for this Python).
"""

try:
    from ctrec._ctrec import active as _active, mark, pause, resume
except ImportError:
    # No shim for this interpreter: nothing is ever recorded.
    def _active():
        return False

    def mark(text):
        """An event in the trace at the current step (a trace-log event)."""

    def pause():
        """Ends the recording interval, as ctrecctl stop does."""

    def resume():
        """Opens a new recording interval, as ctrecctl start does."""


class recording:
    """``with ctrec.recording():`` records the block (resume), then goes
    back to the state before it: pauses again if the program was not being
    recorded when the block began, also when the block raises."""

    __slots__ = ("_was",)

    def __enter__(self):
        self._was = _active()
        resume()
        return self

    def __exit__(self, *exc):
        if not self._was:
            pause()
        return False


__all__ = ["mark", "pause", "resume", "recording"]
