"""Sim2Word with top-1 identities; the discriminant is H_t alone when both images share one.

Thin entry point: all flags and the run loop live in utils/run/cli.py and
utils/run/runner.py. Run `python Scores-sameid.py --help` for the flags.

Example:
    python Scores-sameid.py --Datasets FaceWorld --limit 10
"""

import sys

from utils.base.memory import keep_freed_memory
from utils.run.runner import main

if __name__ == "__main__":
    keep_freed_memory()  # speed only: the per-pair Grad-CAM tensors reuse memory (no page faults)
    sys.exit(main("sameid"))
