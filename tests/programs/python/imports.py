"""Imports a sibling module (sys.path[0] must be this folder) and uses
__name__, sys.argv and __file__ the way the untraced run sees them."""
import os
import sys

import _helper

print(_helper.twice(21))
print(__name__, os.path.basename(sys.argv[0]), sys.argv[1:])
print(os.path.basename(__file__), os.path.basename(sys.path[0]))
