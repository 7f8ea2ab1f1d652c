#!/usr/bin/env python
"""Write the embedded-default face-world data (data/face_world/): pairs and an identification list.

The identities are those of the demo networks' training split (same seed as
train_face_world.py): verification pairs use held-out identities, the
identification list uses training identities with their class ids.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.face_world.demo_training import WorldSplit, write_demo_data

REPO_ROOT = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--output-dir", type=Path, default=REPO_ROOT / "data" / "face_world", help="where to write")
    p.add_argument("--seed", type=int, default=0, help="split seed (must match train_face_world.py --seed)")
    p.add_argument("--num-genuine", type=int, default=20, help="mate pairs")
    p.add_argument("--num-impostor", type=int, default=20, help="non-mate pairs")
    p.add_argument("--num-identification", type=int, default=50, help="images in identification.txt")
    args = p.parse_args(argv)
    counts = write_demo_data(args.output_dir, WorldSplit(seed=args.seed), num_genuine=args.num_genuine,
                             num_impostor=args.num_impostor, num_identification=args.num_identification)
    print(f"wrote {counts} to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
