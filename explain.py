"""Explain one pair of face images: top words with score changes, one composite figure, the record.

Thin entry point: the flags and the work live in utils/run/explain_one.py
(``explain_images`` is the same as a Python function). Run
`python explain.py --help` for the flags.

Example:
    python explain.py data/face_world/verification/049/1202-0.png \
        data/face_world/verification/156/1202-0.png
"""

import sys
from pathlib import Path

from utils.run.explain_one import main

if __name__ == "__main__":
    sys.exit(main(prog=Path(sys.argv[0]).name))
