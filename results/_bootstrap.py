"""Lets `python <folder>/<script>.py` (or `cd <folder>; python <script>.py`) import the
repository's packages.

Every script of this folder imports it first (``try: import _bootstrap``). Run as a file, Python
puts only this folder on ``sys.path``; this module adds the repository root once. Imported any other
way (the package, ``python -m``, tests), the root is already on ``sys.path`` and the import is
skipped.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
