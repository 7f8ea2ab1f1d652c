"""Alias with the authors' spelling for ``Statistic_most_attributes.py`` (same flags, same outputs)."""
from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from results.Statistic_most_attributes import build_parser, main  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
