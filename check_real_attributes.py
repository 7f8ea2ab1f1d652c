#!/usr/bin/env python
"""Measure the real-photo attribute words (``real-attributes`` net) on a folder of real photos.

Subcommands (each prints a markdown table; ``--json FILE`` also writes it as JSON):

* ``agreement``: gender / age of dlib's own chips vs the chips the net cuts from a canvas
  (raw photo, dlib 150 chip, ArcFace 112 crop; template or detected geometry);
* ``sanity``: per identity, the gender and age words (direct path and dlib-150 canvas path);
* ``parts``: IoU of part regions from the 68-point predictor vs the 5-point mean shape;
* ``mean-shape``: the mean 68-point shape of the tuning identities (models.face_parts);
* ``split``: the fixed tuning / held-out identity split (utils.experiments.part_swap).

Details: docs/REAL_ATTRIBUTES.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO_ROOT))
DEFAULT_ROOT = REPO_ROOT.parent / "shared" / "data" / "real_faces"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "command",
        choices=["agreement", "sanity", "parts", "mean-shape", "split"],
        help="what to measure (see above)",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="folder with one sub-folder of photos per identity (default: %(default)s)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the table to this JSON file")
    p.add_argument(
        "--arcface-fill",
        choices=["zeros", "reflection"],
        default=None,
        help="agreement/sanity: fill of chip pixels outside ArcFace 112 canvases (default: the "
        "net's own, reflection; zeros is dlib's black)",
    )
    args = p.parse_args(argv)

    import torch

    from models import get_network
    from utils.base.atomic import atomic_write_json
    from utils.experiments import real_attributes_check as check
    from utils.experiments.part_swap import identity_split

    torch.set_num_threads(1)
    photos = check.list_photos(args.root)
    if args.command == "split":
        tuning, held_out = identity_split(p.identity for p in photos)
        table = [
            {
                "part": label,
                "identities": len(group),
                "photos": sum(p.identity in group for p in photos),
                "names": ", ".join(sorted(group)),
            }
            for label, group in (("tuning", tuning), ("held-out", held_out))
        ]
    elif args.command == "mean-shape":
        shape = check.mean_shape(photos)
        table = [{"point": k, "x": float(x), "y": float(y)} for k, (x, y) in enumerate(shape)]
    else:
        net = get_network("real-attributes")
        if args.command == "parts":
            table = [check.part_agreement(photos, net)]
        else:
            rows = check.collect(photos, net, args.arcface_fill)
            if args.command == "agreement":
                parts = ("all", "tuning", "held-out")
                table = [r for part in parts for r in check.chip_agreement(rows, part)]
            else:
                table = check.sanity_table(rows)
                summary = check.sanity_summary(rows)
                print(check.markdown(summary) + "\n")
                if args.json:
                    atomic_write_json(args.json, {"summary": summary, "identities": table})
                    args.json = None
    print(check.markdown(table))
    if args.json:
        atomic_write_json(args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
