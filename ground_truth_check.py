#!/usr/bin/env python
"""Check Sim2Word's words and regions against the face world's ground truth (twin pairs).

Each pair is a face and its twin with exactly one identity attribute changed;
the changed attribute should be the probe's top word, and its joint map
should sit in the attribute's true region. See utils/experiments/ground_truth.py for the
protocol. Prints a markdown table (Sim2Word, its two ablations and a random
ranking) and writes it with a JSON summary.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO_ROOT))

from models import get_network  # noqa: E402
from utils.base.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from utils.face_world.demo_training import WorldSplit  # noqa: E402
from utils.experiments.ground_truth import VARIANTS, format_table, make_twin_pairs, run_check  # noqa: E402
from utils.base.seeding import seed_everything  # noqa: E402
from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-pairs", type=int, default=100, help="twin pairs to explain")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the twins and the random ranking")
    p.add_argument("--thresh", type=float, default=0.6, help="erasing threshold theta on the joint maps (paper 0.6)")
    p.add_argument("--Erasing-method", dest="erasing_method", default="black",
                   choices=["black", "white", "mean", "random"], help="fill of erased pixels")
    p.add_argument("--strategy", default="sameid", choices=["topk", "sameid", "threshold"],
                   help="class-set strategy; a face and its twin usually get the same top-1 class, where 'sameid' "
                        "(Scores-sameid.py) uses H_t alone and 'topk' gives H_d = H_t * (max H_t - H_t)")
    p.add_argument("--topk", type=int, default=1, help="k of the top-k strategy")
    p.add_argument("--heatmap-method", default="GradCAM", choices=["GradCAM", "GradCAM++"], help="CAM method")
    p.add_argument("--recognition-net", default="FaceWorld-recognition", help="registered recognition net R")
    p.add_argument("--attribute-net", default="FaceWorld-attribute", help="registered attribute net A")
    p.add_argument("--verification-net", default="FaceWorld-verification", help="registered verification net V")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS, help="what to score")
    p.add_argument("--output", type=Path, default=REPO_ROOT / "outputs" / "ground_truth",
                   help="folder for ground_truth.md and ground_truth.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    seed_everything(args.seed, deterministic=False)
    nets = Sim2WordNets(get_network(args.recognition_net), get_network(args.attribute_net),
                        get_network(args.verification_net))
    config = Sim2WordConfig(strategy=args.strategy, topk=args.topk, thresh=args.thresh, erasing_method=args.erasing_method,
                            heatmap_method=args.heatmap_method, seed=args.seed)
    start = time.time()
    pairs = make_twin_pairs(WorldSplit(seed=args.seed), args.num_pairs)
    summaries = run_check(nets, config, pairs, seed=args.seed, variants=tuple(args.variants),
                          progress=not args.no_progress)
    table = format_table(summaries)
    print(table)
    print(f"({len(pairs)} twin pairs, {time.time() - start:.0f} s)")
    atomic_write_text(args.output / "ground_truth.md", table + "\n")
    atomic_write_json(args.output / "ground_truth.json",
                      {"args": {k: str(v) for k, v in vars(args).items()},
                       "variants": [dataclasses.asdict(s) for s in summaries]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
