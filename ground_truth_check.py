#!/usr/bin/env python
"""The twin check: Sim2Word's words and maps against the face world's ground truth.

Each pair is a face and its twin with exactly one identity attribute j*
changed; j* should be the probe's top word, and its joint map should sit in
j*'s true region. Every ranking mode (paper first) is scored with the
paper's discriminant and with V's, on the same pairs, beside the references:
random order (floor), the attribute filter in random order, the attribute
net alone (not Sim2Word) and true regions (ceiling). The protocol, and the
rule that settings are chosen on the tuning twin set only, are in
utils/experiments/ground_truth.py.

Examples:
    python ground_truth_check.py --json outputs/ground_truth/table.json      # the README's table
    python ground_truth_check.py --twin-set tuning --num-pairs 100   # for choosing settings

Prints a markdown table and writes <output>/ground_truth.md and
<output>/ground_truth.json (the table, the arguments and per-attribute hits);
--json FILE also writes the table as a list of rows with mode, top1, top3,
chance_top1, chance_top3, jmass, pairs. Exit status 0, or 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO_ROOT))

from models import get_network  # noqa: E402
from utils.base.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from utils.base.seeding import seed_everything  # noqa: E402
from utils.experiments.ground_truth import (  # noqa: E402
    TWIN_SETS,
    default_rows,
    format_table,
    make_twin_pairs,
    run_check,
)
from utils.explain.cam import METHODS  # noqa: E402
from utils.explain.erasing import FILLS  # noqa: E402
from utils.explain.ranking import RANKING_FILLS, RANKINGS, RankingConfig  # noqa: E402
from utils.explain.sim2word import DISCRIMINANTS, STRATEGIES, Sim2WordConfig, Sim2WordNets  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--num-pairs", type=int, default=100, help="twin pairs to draw (default: %(default)s)"
    )
    p.add_argument(
        "--twin-set",
        choices=tuple(TWIN_SETS),
        default="reported",
        help="which twin set: 'tuning' (the only one used to choose settings) or 'reported' (the "
        "published numbers; never used to choose anything) (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="base seed of the twin sets (the demo networks' split seed) and of the random orders "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--strategy",
        default="sameid",
        choices=STRATEGIES,
        help="class-set strategy; a face and its twin almost always share R's top-1 class, where "
        "'sameid' (Scores-sameid.py) uses H_t as the discriminant and renormalises J "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--topk", type=int, default=1, help="k of the top-k strategy (default: %(default)s)"
    )
    p.add_argument(
        "--thresh",
        type=float,
        default=0.6,
        help="erasing threshold theta on the joint maps (paper 0.6; default: %(default)s)",
    )
    p.add_argument(
        "--Erasing-method",
        dest="erasing_method",
        default="black",
        choices=FILLS,
        help="fill of the paper's erasing (default: %(default)s)",
    )
    p.add_argument(
        "--heatmap-method",
        default="GradCAM",
        choices=METHODS,
        help="CAM method (default: %(default)s)",
    )
    p.add_argument(
        "--rankings",
        nargs="+",
        default=list(RANKINGS),
        choices=RANKINGS,
        help="ranking modes to score (default: all, paper first)",
    )
    p.add_argument(
        "--discriminants",
        nargs="+",
        default=list(DISCRIMINANTS),
        choices=DISCRIMINANTS,
        help="discriminants to score every mode with: classes (R's class sets, the paper) and "
        "verification (Grad-CAM of the pair's cosine through V) (default: both)",
    )
    p.add_argument(
        "--ranking-fill",
        default=None,
        choices=RANKING_FILLS,
        help="fill of the shared-region erasing (both-shared, contrast) "
        "(default: --Erasing-method)",
    )
    p.add_argument(
        "--ranking-thresh",
        type=float,
        default=None,
        help="both-shared and contrast: an image's region of attribute j is J[j] > this "
        "(default: --thresh; the paper rows always use --thresh)",
    )
    p.add_argument(
        "--tie-tolerance",
        type=float,
        default=RankingConfig.tie_tolerance,
        help="both-shared and contrast: scores in one bucket of this width are ordered by region "
        "area, smaller first (0: exact ties only) (default: %(default)s)",
    )
    p.add_argument(
        "--contrast-drop",
        type=float,
        default=RankingConfig.contrast_drop,
        help="contrast mode (and the filter reference): the least drop of a word's class "
        "probability "
        "from the probe to the twin that counts as a difference; a class change always counts "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--no-references",
        action="store_true",
        help="score only the ranking modes (no random, filter, attribute-only and oracle rows)",
    )
    p.add_argument(
        "--recognition-net",
        default="FaceWorld-recognition",
        help="registered recognition net R (default: %(default)s)",
    )
    p.add_argument(
        "--attribute-net",
        default="FaceWorld-attribute",
        help="registered attribute net A (default: %(default)s)",
    )
    p.add_argument(
        "--verification-net",
        default="FaceWorld-verification",
        help="registered verification net V (default: %(default)s)",
    )
    p.add_argument(
        "--verification-layer",
        default=None,
        help="Grad-CAM layer of V for the verification discriminant (default: V's last conv)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="images per verification forward (default: %(default)s)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "outputs" / "ground_truth",
        help="folder for ground_truth.md and ground_truth.json "
        "(default: <repo>/outputs/ground_truth)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the table to this file as a JSON list of rows (mode, discriminant, "
        "regions, "
        "top1, top3, chance_top1, chance_top3, jmass, pairs, ...)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_pairs < 1:
        parser.error(f"--num-pairs must be >= 1, got {args.num_pairs}")
    if not 0.0 <= args.tie_tolerance < 1.0:
        parser.error(f"--tie-tolerance must be in [0, 1), got {args.tie_tolerance}")
    if not 0.0 <= args.contrast_drop <= 1.0:
        parser.error(f"--contrast-drop must be in [0, 1], got {args.contrast_drop}")
    seed_everything(args.seed, deterministic=False)
    try:
        nets = Sim2WordNets(
            get_network(args.recognition_net),
            get_network(args.attribute_net),
            get_network(args.verification_net),
            verification_layer=args.verification_layer,
        )
        config = Sim2WordConfig(
            strategy=args.strategy,
            topk=args.topk,
            thresh=args.thresh,
            erasing_method=args.erasing_method,
            heatmap_method=args.heatmap_method,
            seed=args.seed,
            batch_size=args.batch_size,
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ranking = RankingConfig(
        fill=args.ranking_fill,
        contrast_drop=args.contrast_drop,
        region_thresh=args.ranking_thresh,
        tie_tolerance=args.tie_tolerance,
        batch_size=args.batch_size,
    )
    modes = [m for m in RANKINGS if m in args.rankings]
    rows = default_rows(
        ranking,
        [d for d in DISCRIMINANTS if d in args.discriminants],
        modes,
        references=not args.no_references,
    )
    start = time.process_time()
    pairs = make_twin_pairs(args.num_pairs, args.twin_set, seed=args.seed)
    summaries = run_check(nets, config, pairs, rows, seed=args.seed, progress=not args.no_progress)
    table = format_table(summaries)
    print(table)
    print(
        f"({args.twin_set} twin set, {len(pairs)} pairs, {time.process_time() - start:.0f} CPU s)"
    )
    rows_json = [s.as_row() for s in summaries]
    atomic_write_text(args.output / "ground_truth.md", table + "\n")
    atomic_write_json(
        args.output / "ground_truth.json",
        {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows_json},
    )
    if args.json is not None:
        atomic_write_json(args.json, rows_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
