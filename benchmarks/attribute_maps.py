#!/usr/bin/env python
"""Attribute-map localisation on the face world: Grad-CAM mass inside each attribute's true region.

Scores the attribute net's Grad-CAM maps (utils/experiments/map_localisation.py)
on face-world images of identities never used in training, next to chance (the
region's share of the image) and the ceiling of a perfect map at the Grad-CAM
layer's resolution.

Examples:
    python benchmarks/attribute_maps.py                 # committed weights, held-out images
    python benchmarks/attribute_maps.py --set tuning    # the tuning images (design choices)
    python benchmarks/attribute_maps.py --attribute-weights old.pth \\
        --attribute-arch '{"input_size": 64, "stem_pool": false, "strides": [1, 2, 2, 1]}'
                                                        # the former 64 px net (8x8 Grad-CAM layer)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from models import get_network  # noqa: E402
from utils.base.atomic import atomic_write_json  # noqa: E402
from utils.experiments.map_localisation import attribute_map_mass  # noqa: E402
from utils.face_world.demo_training import WorldSplit  # noqa: E402

# identity family / nuisance stream of each set (utils/face_world/demo_training.py docstring)
SETS = {"held-out": "heldout_identities", "tuning": "tuning_identities"}
STREAMS = {"held-out": 2000, "tuning": 2500}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--attribute-net",
        default="FaceWorld-attribute",
        help="registered attribute net (default: %(default)s)",
    )
    p.add_argument(
        "--attribute-weights", default=None, help="weights file (default: the registered file)"
    )
    p.add_argument(
        "--attribute-arch",
        type=json.loads,
        default=None,
        help="architecture overrides as a JSON object (must match the weights)",
    )
    p.add_argument(
        "--set",
        choices=tuple(SETS),
        default="held-out",
        help="images of the reported held-out identities (family 2, stream 2000) or of the tuning "
        "identities (family 13, stream 2500) (default: %(default)s)",
    )
    p.add_argument(
        "--identities", type=int, default=60, help="identities of the set (default: %(default)s)"
    )
    p.add_argument(
        "--images-per-identity",
        type=int,
        default=2,
        help="images per identity (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    p.add_argument(
        "--method", choices=("GradCAM", "GradCAM++"), default="GradCAM", help="heat-map method"
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)"
    )
    p.add_argument("--output", type=Path, default=None, help="also write the result as JSON here")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    net = get_network(
        args.attribute_net, weights=args.attribute_weights, **(args.attribute_arch or {})
    )
    split = WorldSplit(seed=args.seed, num_heldout_identities=args.identities)
    samples = split.render_samples(
        getattr(split, SETS[args.set])(),
        args.images_per_identity,
        STREAMS[args.set],
        with_masks=True,
    )
    res = attribute_map_mass(
        net,
        [s.image for s in samples],
        np.stack([s.labels for s in samples]),
        [s.masks for s in samples],
        method=args.method,
    )
    print(
        f"{args.attribute_net} ({args.attribute_weights or 'registered weights'}), Grad-CAM grid "
        f"{res.grid[0]}x{res.grid[1]}, {len(samples)} {args.set} images"
    )
    print(f"{'attribute':<24s} {'n':>5s} {'mass':>6s} {'ceiling':>7s} {'chance':>6s}")
    for name, r in res.per_head.items():
        print(f"{name:<24s} {r['n']:5d} {r['mass']:6.3f} {r['ceiling']:7.3f} {r['chance']:6.3f}")
    n = sum(r["n"] for r in res.per_head.values())
    total = f"{res.mass:6.3f} {res.ceiling:7.3f} {res.chance:6.3f}"
    print(f"{'all present attributes':<24s} {n:5d} {total}")
    if args.output:
        atomic_write_json(
            args.output,
            {
                "settings": {
                    k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                },
                **res.as_dict(),
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
