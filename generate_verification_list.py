"""Write a seeded verification pair list (``path1 path2 label``) from identity labels.

Identities come from a folder-per-identity dataset (``--image-root``, VGGFace2
layout ``root/<identity>/<image>``) or from CelebA's ``identity_CelebA.txt``
(``--celeba-identities``). Paths in the list are relative to the image root.

Exit status: 0 list written, 2 usage error (bad flags, missing input, or more
pairs requested than exist; the message gives the maximum).

Example:
    python generate_verification_list.py --image-root ../shared/data/real_faces \\
        --num-genuine 100 --num-impostor 100 --seed 0 --output lists/real_faces_pairs.txt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.run import cli
from utils.faces.pairlists import (
    PairCountError,
    generate_pairs,
    identities_from_celeba,
    identities_from_folders,
    max_pair_counts,
    write_pair_list,
)

EXIT_OK, EXIT_USAGE = 0, 2


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(
        __doc__.split("\n\n")[0], "Exit status: 0 list written, 2 usage error."
    )
    parser.add_argument(
        "--image-root",
        type=Path,
        default=None,
        help="dataset folder with one sub-folder per identity (identities are "
        "read from it "
        "unless --celeba-identities is given)",
    )
    parser.add_argument(
        "--celeba-identities",
        type=Path,
        default=None,
        help="CelebA identity_CelebA.txt ('000001.jpg 2880' lines); paths are "
        "written as "
        "named there, i.e. relative to the CelebA image folder",
    )
    parser.add_argument(
        "--num-genuine",
        type=cli.non_negative_int,
        required=True,
        help="number of same-identity pairs (label 1)",
    )
    parser.add_argument(
        "--num-impostor",
        type=cli.non_negative_int,
        required=True,
        help="number of different-identity pairs (label 0)",
    )
    cli.add_seed(parser, "random seed; the same seed gives the same list")
    parser.add_argument("--output", type=Path, required=True, help="pair list file to write")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.image_root is None) == (args.celeba_identities is None):
        parser.error(
            "give exactly one identity source: --image-root DIR or --celeba-identities FILE"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.celeba_identities is not None:
            identities = identities_from_celeba(args.celeba_identities)
        else:
            identities = identities_from_folders(args.image_root)
        pairs = generate_pairs(identities, args.num_genuine, args.num_impostor, args.seed)
        write_pair_list(args.output, pairs)
    except (OSError, ValueError) as err:  # PairCountError is a ValueError
        kind = "too many pairs requested" if isinstance(err, PairCountError) else "error"
        print(f"{kind}: {err}", file=sys.stderr)
        return EXIT_USAGE
    max_gen, max_imp = max_pair_counts(identities)
    print(
        f"wrote {len(pairs)} pairs ({args.num_genuine} genuine of {max_gen} possible, "
        f"{args.num_impostor} "
        f"impostor of {max_imp}) from {len(identities)} identities, "
        f"{sum(map(len, identities.values()))} images, seed {args.seed} -> {args.output}"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
