"""Tools of the program's own: on 3.12+ the debugger, coverage, profiler
and optimizer sys.monitoring ids stay free for the program while it is
recorded, and cProfile (the profiler id there) works."""
import cProfile
import sys


def work(n):
    return sum(range(n))


mon = getattr(sys, "monitoring", None)
if mon is not None:
    for tool in (mon.DEBUGGER_ID, mon.COVERAGE_ID, mon.PROFILER_ID, mon.OPTIMIZER_ID):
        mon.use_tool_id(tool, "program")
        print(tool, mon.get_tool(tool))
        mon.free_tool_id(tool)
profiler = cProfile.Profile()
profiler.enable()
total = work(10)
profiler.disable()
print("profiled", total)
