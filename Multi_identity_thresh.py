"""Sim2Word with the threshold class-set strategy (paper Section 5.5).

Thin entry point: all flags and the run loop live in utils/cli.py and
utils/runner.py. Run `python Multi_identity_thresh.py --help` for the flags.

Example:
    python Multi_identity_thresh.py --Datasets FaceWorld --limit 10
"""
import sys

from utils.runner import main

if __name__ == "__main__":
    sys.exit(main("threshold"))
