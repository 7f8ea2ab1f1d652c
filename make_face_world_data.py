#!/usr/bin/env python
"""Write the embedded-default face-world data (data/face_world/): hard pairs, identification list.

Verification pairs use identities never used in training, tuning or evaluation
(identity family 12 of the split's seed), chosen by a fixed rule so that the
mask game is not saturated: impostor pairs of the candidates that share the most
identity-level attributes, genuine pairs of two images of one candidate whose
pose and light differ most (utils/face_world/demo_training.py, write_demo_data;
the rule and each pair's numbers are written to pairs.json). The
identification list uses training identities with their class ids (same seed
as train_face_world.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.face_world.demo_training import PAIR_FAMILY, WorldSplit, write_demo_data

REPO_ROOT = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--output-dir", type=Path, default=REPO_ROOT / "data" / "face_world", help="where to write"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="split seed (must match train_face_world.py --seed)"
    )
    p.add_argument("--num-genuine", type=int, default=20, help="mate pairs")
    p.add_argument("--num-impostor", type=int, default=20, help="non-mate pairs")
    p.add_argument(
        "--num-identification", type=int, default=50, help="images in identification.txt"
    )
    p.add_argument(
        "--num-candidates",
        type=int,
        default=200,
        help="identities the pairs are chosen from (impostors: most shared attributes) "
        "(default: 200)",
    )
    p.add_argument(
        "--genuine-draws",
        type=int,
        default=8,
        help="images drawn per genuine identity; the two with the most different pose and light "
        "form the pair (default: 8)",
    )
    p.add_argument(
        "--identity-family",
        type=int,
        default=PAIR_FAMILY,
        help=f"identity family of the candidates (default: {PAIR_FAMILY}, used by nothing else; "
        "13 = the tuning identities, for checking the rule without touching the reported pairs)",
    )
    args = p.parse_args(argv)
    counts = write_demo_data(
        args.output_dir,
        WorldSplit(seed=args.seed),
        num_genuine=args.num_genuine,
        num_impostor=args.num_impostor,
        num_identification=args.num_identification,
        num_candidates=args.num_candidates,
        genuine_draws=args.genuine_draws,
        family=args.identity_family,
    )
    print(f"wrote {counts} to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
