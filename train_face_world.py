#!/usr/bin/env python
"""Train (or evaluate) the face-world demo networks: the embedded default.

Examples:
    python train_face_world.py                      # train all four, then evaluate
    python train_face_world.py --evaluate-only      # evaluate the committed weights
    python train_face_world.py --networks FaceWorld-verification --epochs 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from models import get_network
from utils.base.memory import keep_freed_memory
from utils.face_world.demo_training import (
    DEMO_NETWORKS,
    TrainConfig,
    WorldSplit,
    evaluate,
    format_metrics,
    render_attribute_pool,
    render_pool,
    save_weights,
    schedule,
    small_batch_metrics,
    train_network,
    write_metrics,
)

REPO_ROOT = Path(__file__).resolve().parent


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--networks",
        nargs="+",
        default=list(DEMO_NETWORKS),
        choices=DEMO_NETWORKS,
        help="which demo networks to train / evaluate (default: all four)",
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        default=REPO_ROOT / "pre-trained" / "face_world",
        help="where the weights <name>.pth and metrics.json go (default: pre-trained/face_world)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the identities, images and initialisation"
    )
    p.add_argument(
        "--num-identities", type=int, default=200, help="training identities = classifier classes"
    )
    p.add_argument(
        "--num-heldout-identities",
        type=int,
        default=60,
        help="identities kept out for verification",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=(
            "epochs for every network "
            "(default: per network, utils.face_world.demo_training.DEFAULT_EPOCHS)"
        ),
    )
    p.add_argument(
        "--images-per-identity",
        type=int,
        default=TrainConfig.images_per_identity,
        help="images rendered per training identity (the pool all four networks train on)",
    )
    p.add_argument(
        "--batch-size", type=int, default=TrainConfig.batch_size, help="training batch size"
    )
    p.add_argument(
        "--lr", type=float, default=TrainConfig.lr, help="peak SGD learning rate (cosine schedule)"
    )
    p.add_argument(
        "--low-res-fraction",
        type=float,
        default=None,
        help="share of the epochs run at 64 px before the nets' own input size "
        "(default: per network, utils.face_world.demo_training."
        "DEFAULT_LOW_RES_FRACTION: 0.75 for the recognition net, 0.5 for the "
        "attribute net, 0 for the 64 px iresnets)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=TrainConfig.threads,
        help="torch CPU threads (the committed weights were trained with 1; results depend on it)",
    )
    p.add_argument(
        "--evaluate-only",
        action="store_true",
        help="skip training; load the weights from --output-dir and print the held-out "
        "metrics (metrics.json is left as it is)",
    )
    p.add_argument(
        "--tuning-set",
        action="store_true",
        help="measure on the tuning images (identity family 13, nuisance streams "
        "1500 / 2500) instead of the reported held-out ones; for design choices; "
        "never writes metrics.json",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    split = WorldSplit(
        seed=args.seed,
        num_identities=args.num_identities,
        num_heldout_identities=args.num_heldout_identities,
    )
    cfg = TrainConfig(
        epochs=args.epochs,
        low_res_fraction=args.low_res_fraction,
        images_per_identity=args.images_per_identity,
        batch_size=args.batch_size,
        lr=args.lr,
        threads=args.threads,
    )
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # speed only: no page faults for the per-step activations
    nets = {}
    pools = {}
    if not args.evaluate_only:
        start = time.time()
        if set(args.networks) - {"FaceWorld-attribute"}:
            pools["identity"] = render_pool(split, cfg)
        if "FaceWorld-attribute" in args.networks:
            pools["attribute"] = render_attribute_pool(split, cfg)
        print(
            f"rendered the training pools: {[len(p[1]) for p in pools.values()]} images "
            f"in {time.time() - start:.0f} s"
        )
    for name in args.networks:
        path = args.output_dir / f"{name}.pth"
        overrides = (
            {"num_classes": args.num_identities}
            if name in ("FaceWorld-recognition", "FaceWorld-evidential")
            else {}
        )
        if args.evaluate_only:
            nets[name] = get_network(name, weights=str(path), **overrides)
            continue
        start = time.time()
        nets[name] = train_network(
            name, split, cfg, pools["attribute" if name == "FaceWorld-attribute" else "identity"]
        )
        save_weights(nets[name], path)
        print(f"{name}: trained in {time.time() - start:.0f} s, saved to {path}")
    metrics = evaluate(nets, split, tuning=args.tuning_set)
    metrics["train_config"] = {k: v for k, v in vars(cfg).items() if k != "extra"}
    metrics["schedule"] = {
        name: dict(
            zip(
                ("epochs", "low_res_epochs"),
                schedule(name, cfg, min(net.preprocess.input_size)),
                strict=True,
            )
        )
        for name, net in nets.items()
    }
    print(format_metrics(metrics))
    # never on evaluation or the tuning set
    if set(args.networks) == set(DEMO_NETWORKS) and not (args.evaluate_only or args.tuning_set):
        metrics["small_batch"] = small_batch_metrics(nets, split)  # tests/test_demo_weights.py
        write_metrics(metrics, args.output_dir / "metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
