#!/usr/bin/env python
"""Check Sim2Word's words and regions against the face world's ground truth (twin pairs).

Each pair is a face and its twin with exactly one attribute changed; the
changed attribute should be the probe's top word, and its joint map should sit
in the attribute's true region. See utils/experiments/ground_truth.py for the
protocol. Prints a Markdown table (Sim2Word, its two ablations and a random
ranking) and writes it with a JSON summary to --output-dir.

Example:
    python ground_truth_check.py --strategy topk --output-dir outputs/ground_truth_topk
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
from utils.experiments.ground_truth import VARIANTS, format_table, make_twin_pairs, run_check
from utils.explain.sim2word import PAPER_THETA, STRATEGIES
from utils.face_world.demo_training import WorldSplit
from utils.run import cli
from utils.run.folder import UsageError
from utils.run.networks import resolve_device
from utils.run.runner import load_nets, sim2word_config

REPO_ROOT = Path(__file__).resolve().parent
log = logging.getLogger("sim2word")


def build_parser() -> argparse.ArgumentParser:
    p = cli.make_parser(__doc__, "Exit status: 0 done, 2 usage error.")
    cli.add_flag(
        p,
        "--num-pairs",
        type=cli.positive_int,
        default=100,
        help="twin pairs to explain (default: %(default)s)",
    )
    cli.add_seed(p, "seed of the split, the twins and the random ranking")
    cli.add_thresh(p, PAPER_THETA, "a pixel is erased where J[j] > thresh (paper 0.6)")
    cli.add_erasing_method(p)
    cli.add_flag(
        p,
        "--strategy",
        default="sameid",
        choices=STRATEGIES,
        help="class-set strategy; a face and its twin usually get the same top-1 class, where "
        "'sameid' "
        "(Scores-sameid.py) uses H_t alone and 'topk' gives H_d = H_t * (max H_t - H_t) "
        "(default: %(default)s)",
    )
    cli.add_flag(
        p,
        "--topk",
        type=cli.positive_int,
        default=1,
        help="k of the top-k strategy (default: %(default)s)",
    )
    cli.add_heatmap_method(p)
    cli.add_network_flags(
        p,
        (
            ("recognition", "FaceWorld-recognition"),
            ("attribute", "FaceWorld-attribute"),
            ("verification", "FaceWorld-verification"),
        ),
    )
    cli.add_flag(
        p,
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=VARIANTS,
        help="what to score (default: all)",
    )
    cli.add_output_dir(
        p,
        REPO_ROOT / "outputs" / "ground_truth",
        "folder for ground_truth.md and ground_truth.json (default: <repo>/outputs/ground_truth)",
    )
    cli.add_progress(p)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    seed_everything(args.seed, deterministic=False)
    try:
        nets = load_nets(args, resolve_device("cpu"))
    except UsageError as err:
        log.error("%s", err)
        return 2
    config = sim2word_config(args)
    start = time.perf_counter()
    pairs = make_twin_pairs(WorldSplit(seed=args.seed), args.num_pairs)
    summaries = run_check(
        nets, config, pairs, seed=args.seed, variants=tuple(args.variants), progress=args.progress
    )
    table = format_table(summaries)
    print(table, end="")
    print(f"({len(pairs)} twin pairs, {time.perf_counter() - start:.0f} s)")
    atomic_write_text(args.output_dir / "ground_truth.md", table)
    atomic_write_json(
        args.output_dir / "ground_truth.json",
        {
            "args": {k: str(v) for k, v in vars(args).items()},
            "variants": [dataclasses.asdict(s) for s in summaries],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
