"""Sim2Word with the top-k class-set strategy (paper Section 3 with --topk 1, else Section 5.5).

Thin entry point: all flags and the run loop live in utils/run/cli.py and
utils/run/runner.py. Run `python Multi_Identity_topk.py --help` for the flags.

Example:
    python Multi_Identity_topk.py --Datasets FaceWorld --limit 10
"""

import sys

from utils.base.memory import keep_freed_memory
from utils.run.runner import main

if __name__ == "__main__":
    keep_freed_memory()  # speed only: the per-pair Grad-CAM tensors reuse memory (no page faults)
    sys.exit(main("topk"))
