"""As results/_bootstrap.py: puts the repository root on sys.path for `python
benchmarks/<script>.py`."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
