#!/usr/bin/env python
"""The part-swap check: Sim2Word's words on real photos against a known change.

One facial part of a real face (A) is replaced by the same part of a face of
another identity (B) with Poisson blending, so the part that changed is known.
Sim2Word explains (swapped A, A); the swapped part's word should be first in
the swapped image's list. Every ranking mode (paper first) is scored with
tie-aware top-1 / top-3 and chance levels, beside a random order, with the
share of the part word's map mass inside the swapped region. The protocol
(canvases, the fixed swaps, leave-pair-out, the identity split) is in
utils/experiments/part_swap_check.py.

Examples:
    python part_swap_check.py --json benchmarks/results/part_swap_check.json
    python part_swap_check.py --verification-net dlib-ResNet29 --json FILE --append
    python part_swap_check.py --split tuning     # the only split for choosing settings

Prints a Markdown table; --json FILE writes its rows (network, split, mode,
top1, top3, chance_top1, chance_top3, mass, pairs, region_share, failures,
cpu_s_per_pair, per_attribute = per part [hits, pairs]); --failures FILE
lists the swaps that failed (stage and reason).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from utils.base.atomic import atomic_write_json
from utils.base.seeding import seed_everything
from utils.experiments import part_swap_check as psc
from utils.experiments.ground_truth import format_table
from utils.explain.ranking import RankingConfig
from utils.explain.sim2word import DISCRIMINANTS
from utils.faces.gallery import LeaveOut
from utils.faces.templates import ALIGN_METHODS
from utils.run import cli
from utils.run.folder import UsageError
from utils.run.networks import (
    load_networks,
    plan_gallery_folder,
    resolve_device,
    sim2word_nets,
)
from utils.run.pipeline import plan_canvas, prepare_attribute_net
from utils.run.runner import ranking_config, sim2word_config

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_ROOT = REPO_ROOT.parent / "shared" / "data" / "real_faces"
log = logging.getLogger("sim2word")


def build_parser() -> argparse.ArgumentParser:
    p = cli.make_parser(__doc__, "Exit status: 0 done, 2 usage error.")
    cli.add_flag(
        p,
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="folder with one sub-folder of photos per identity; it is also the recognition "
        "net's gallery (default: ../shared/data/real_faces)",
    )
    cli.add_flag(
        p,
        "--split",
        choices=psc.SPLITS,
        default="held-out",
        help="which identities: 'tuning' (the only ones used to choose settings) or 'held-out' "
        "(the reported numbers; never used to choose anything); the fixed rule is "
        "utils.experiments.part_swap.identity_split (default: %(default)s)",
    )
    cli.add_flag(
        p,
        "--parts",
        nargs="+",
        default=list(psc.PART_WORDS),
        choices=psc.PART_WORDS,
        help="part words to swap (default: all eight)",
    )
    cli.add_limit(p, "swap")
    cli.add_seed(p, "seed of the random orders and the random fill")
    cli.add_check_method_flags(p, "swap")
    cli.add_flag(
        p,
        "--discriminants",
        nargs="+",
        default=["classes"],
        choices=DISCRIMINANTS,
        help="discriminants to score every mode with: classes (R's class sets, the paper) and "
        "verification (Grad-CAM of the pair's cosine through V); each one more explanation "
        "per swap (default: classes)",
    )
    cli.add_ranking_options(p)
    cli.add_flag(
        p,
        "--extra-ranking-thresh",
        nargs="+",
        type=cli.probability,
        default=[],
        help="also score both-shared and contrast with these region thresholds, on the same "
        "explanations (rows '<mode>, ranking-thresh T'); for comparing thresholds in one run "
        "(default: none)",
    )
    cli.add_flag(
        p,
        "--contrast-drop",
        type=cli.probability,
        default=RankingConfig.contrast_drop,
        help="contrast mode: the least drop of a word's class probability from the swapped "
        "image to the original that counts as a difference (default: %(default)s)",
    )
    cli.add_flag(
        p,
        "--leave-pair-out",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="identity means of the recognition gallery without the photos of A and B (the "
        "swapped image is a near copy of A and carries B's part) (default: on)",
    )
    nets = cli.add_network_flags(
        p,
        (
            ("recognition", None),
            ("attribute", "real-attributes"),
            ("verification", "SFace"),
        ),
    )
    cli.add_verification_layer(nets)
    cli.add_flag(
        nets,
        "--align",
        choices=ALIGN_METHODS,
        default="auto",
        help="landmarker that aligns the photos to the verification net's template (auto: the "
        "template's own, then the others; see align_faces.py) (default: %(default)s)",
    )
    cli.add_batch_size(p, 32, "images per verification forward")
    cli.add_output_dir(
        p,
        REPO_ROOT / "outputs" / "part_swap_check",
        "folder for the gallery embedding cache (default: <repo>/outputs/part_swap_check)",
    )
    cli.add_flag(
        p,
        "--json",
        type=Path,
        default=None,
        help="write the table to this file as a JSON list of rows (network, split, mode, top1, "
        "top3, chance_top1, chance_top3, mass, pairs, ...)",
    )
    cli.add_flag(
        p,
        "--append",
        action="store_true",
        help="with --json: keep the file's rows of other (network, split) and replace this "
        "run's, so one file holds every network",
    )
    cli.add_flag(
        p,
        "--failures",
        type=Path,
        default=None,
        help="write the swaps that failed (photos, part, stage, reason) to this JSON file",
    )
    cli.add_flag(
        p,
        "--show",
        type=Path,
        default=None,
        help="only print the table of a --json file written before (every network and split in "
        "it; no network is run) and exit",
    )
    cli.add_progress(p)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.show is not None:
        try:
            print(psc.summary_table(json.loads(args.show.read_text())), end="")
        except (OSError, ValueError, TypeError) as err:
            log.error("--show %s: %s", args.show, err)
            return 2
        return 0
    args.recognition_net = args.recognition_net or f"{args.verification_net}-gallery"
    seed_everything(args.seed, deterministic=False)
    try:
        config = sim2word_config(args)
        ranking = dataclasses.replace(ranking_config(args), contrast_drop=args.contrast_drop)
        photos = psc.split_photos(psc.list_photos(args.root), args.split)
        specs = psc.swap_specs(photos, args.parts)[: args.limit]
        plan = plan_canvas(
            {
                "verification": args.verification_net,
                "recognition": args.recognition_net,
                "attribute": args.attribute_net,
            },
            args.align,
        )
        aligner = plan.aligner()
        args.output_dir.mkdir(parents=True, exist_ok=True)
        cache = args.output_dir / f"gallery-{args.recognition_net}.npz"
        gallery = (plan_gallery_folder(args.root), aligner, cache)
        roles = ("recognition", "attribute", "verification")
        loaded = load_networks(args, roles, resolve_device("cpu"), gallery)
        prepare_attribute_net(loaded["attribute"], aligner)
        nets = sim2word_nets(loaded, args)
        leave_out = LeaveOut(loaded["recognition"]) if args.leave_pair_out else None
    except (UsageError, ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        return 2
    needed = {i for s in specs for i in (s.a, s.b)}
    faces, bad = psc.prepare_faces(
        photos, aligner, loaded["attribute"].part_points, needed, args.progress
    )
    pairs, failures = psc.make_swap_pairs(specs, photos, faces, bad)
    rows = psc.default_swap_rows(
        ranking, [d for d in DISCRIMINANTS if d in args.discriminants], args.extra_ranking_thresh
    )
    result = psc.run_swap_check(
        nets, config, pairs, rows, leave_out=leave_out, seed=args.seed, progress=args.progress
    )
    failures += result.failures
    print(format_table(result.summaries, hmass=True), end="")
    print(
        f"({args.verification_net}, {args.split} split: {len(specs)} swaps, "
        f"{result.pairs - len(result.failures)} explained, {len(failures)} failed; "
        f"{result.cpu_seconds / max(result.pairs, 1):.2f} CPU s per swap)"
    )
    rows_json = psc.json_rows(
        result, args.verification_net, args.split, len(failures) - len(result.failures)
    )
    if args.json is not None:
        old = []
        if args.append and args.json.is_file():
            old = [
                r
                for r in json.loads(args.json.read_text())
                if (r.get("network"), r.get("split")) != (args.verification_net, args.split)
            ]
        atomic_write_json(args.json, old + rows_json)
    if args.failures is not None:
        atomic_write_json(args.failures, [f.as_dict() for f in failures])
    return 0


if __name__ == "__main__":
    sys.exit(main())
