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
    python ground_truth_check.py --ranking-thresh 0.2 --json outputs/ground_truth/table.json
    python ground_truth_check.py --twin-set tuning --num-pairs 100   # for choosing settings

Prints a Markdown table and writes <output-dir>/ground_truth.md and
<output-dir>/ground_truth.json (the table, the arguments and per-attribute
hits); --json FILE also writes the table as a list of rows with mode, top1,
top3, chance_top1, chance_top3, jmass, pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from utils.base.atomic import atomic_write_json, atomic_write_text
from utils.base.seeding import seed_everything
from utils.experiments.ground_truth import (
    TWIN_SETS,
    default_rows,
    format_table,
    make_twin_pairs,
    run_check,
)
from utils.explain.ranking import RANKINGS, RankingConfig
from utils.explain.sim2word import DISCRIMINANTS
from utils.run import cli
from utils.run.folder import UsageError
from utils.run.networks import resolve_device
from utils.run.runner import load_nets, ranking_config, sim2word_config

REPO_ROOT = Path(__file__).resolve().parent
log = logging.getLogger("sim2word")


def build_parser() -> argparse.ArgumentParser:
    p = cli.make_parser(__doc__, "Exit status: 0 done, 2 usage error.")
    cli.add_flag(
        p,
        "--num-pairs",
        type=cli.positive_int,
        default=100,
        help="twin pairs to draw (default: %(default)s)",
    )
    cli.add_flag(
        p,
        "--twin-set",
        choices=tuple(TWIN_SETS),
        default="reported",
        help="which twin set: 'tuning' (the only one used to choose settings) or 'reported' (the "
        "published numbers; never used to choose anything) (default: %(default)s)",
    )
    cli.add_seed(
        p, "base seed of the twin sets (the demo networks' split seed) and of the random orders"
    )
    cli.add_check_method_flags(p, "twin")
    cli.add_flag(
        p,
        "--rankings",
        nargs="+",
        default=list(RANKINGS),
        choices=RANKINGS,
        help="ranking modes to score (default: all, paper first)",
    )
    cli.add_flag(
        p,
        "--discriminants",
        nargs="+",
        default=list(DISCRIMINANTS),
        choices=DISCRIMINANTS,
        help="discriminants to score every mode with: classes (R's class sets, the paper) and "
        "verification (Grad-CAM of the pair's cosine through V) (default: both)",
    )
    cli.add_ranking_options(p)
    cli.add_flag(
        p,
        "--contrast-drop",
        type=cli.probability,
        default=RankingConfig.contrast_drop,
        help="contrast mode (and the filter reference): the least drop of a word's class "
        "probability from the probe to the twin that counts as a difference; a class change "
        "always counts (default: %(default)s)",
    )
    cli.add_flag(
        p,
        "--references",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score the random, filter-random, attribute-only and oracle rows beside the ranking "
        "modes (--no-references: the ranking modes only; default: on)",
    )
    nets = cli.add_network_flags(
        p,
        (
            ("recognition", "FaceWorld-recognition"),
            ("attribute", "FaceWorld-attribute"),
            ("verification", "FaceWorld-verification"),
        ),
    )
    cli.add_verification_layer(nets)
    cli.add_batch_size(p, 32, "images per verification forward")
    cli.add_output_dir(
        p,
        REPO_ROOT / "outputs" / "ground_truth",
        "folder for ground_truth.md and ground_truth.json (default: <repo>/outputs/ground_truth)",
    )
    cli.add_flag(
        p,
        "--json",
        type=Path,
        default=None,
        help="also write the table to this file as a JSON list of rows (mode, discriminant, "
        "regions, top1, top3, chance_top1, chance_top3, jmass, pairs, ...)",
    )
    cli.add_progress(p)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    seed_everything(args.seed, deterministic=False)
    try:
        config = sim2word_config(args)
        ranking = ranking_config(args)
        ranking = dataclasses.replace(ranking, contrast_drop=args.contrast_drop)
        nets = load_nets(args, resolve_device("cpu"))
    except (UsageError, ValueError) as err:
        log.error("%s", err)
        return 2
    rows = default_rows(
        ranking,
        [d for d in DISCRIMINANTS if d in args.discriminants],
        [m for m in RANKINGS if m in args.rankings],
        references=args.references,
    )
    start = time.process_time()
    pairs = make_twin_pairs(args.num_pairs, args.twin_set, seed=args.seed)
    summaries = run_check(nets, config, pairs, rows, seed=args.seed, progress=args.progress)
    table = format_table(summaries)
    print(table, end="")
    print(
        f"({args.twin_set} twin set, {len(pairs)} pairs, {time.process_time() - start:.0f} CPU s)"
    )
    rows_json = [s.as_row() for s in summaries]
    atomic_write_text(args.output_dir / "ground_truth.md", table)
    atomic_write_json(
        args.output_dir / "ground_truth.json",
        {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows_json},
    )
    if args.json is not None:
        atomic_write_json(args.json, rows_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
