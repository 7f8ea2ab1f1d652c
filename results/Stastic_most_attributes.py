"""Alias with the authors' spelling for ``Statistic_most_attributes.py`` (same flags, same
outputs)."""

from __future__ import annotations

try:  # run as a file: this folder is on sys.path, the repository root not yet (see _bootstrap.py)
    import _bootstrap  # noqa: F401
except ModuleNotFoundError:  # imported with the repository root on sys.path (tests, python -m)
    _bootstrap = None
import sys

from results.Statistic_most_attributes import build_parser, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
