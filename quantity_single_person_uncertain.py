"""Explain identification with evidential uncertainty (paper Section 4, METHOD.md section 6).

Thin entry point: the flags, the computation and the run are in
utils/experiments/uncertainty.py (the loop: utils/run/loop.py). Run
`python quantity_single_person_uncertain.py --help` for the flags.

Example:
    python quantity_single_person_uncertain.py --Erase_num 1 2 3
    cd results; python uncertainty_visualization.py
"""

import sys
from pathlib import Path

from utils.experiments.uncertainty import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main(build_parser(prog=Path(sys.argv[0]).name)))
