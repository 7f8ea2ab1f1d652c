"""Regenerate every README figure and table from runs: one Markdown snippet per README section.

Thin entry point: the work lives in utils/experiments/regenerate.py.
Run `python make_figures.py --help` for the inputs it recognises.

Example:
    python make_figures.py outputs/scores-group-FaceWorld-FaceWorld-verification-topk-1-erase-black
"""

import sys
from pathlib import Path

from utils.experiments.regenerate import main

if __name__ == "__main__":
    sys.exit(main(prog=Path(sys.argv[0]).name))
