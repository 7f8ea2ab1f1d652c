"""Train the xCos attention head on the face world with the verification net frozen.

xCos (Lin et al., TOMM 2021) regresses its attention-weighted patch cosine
onto the cosine of the whole embeddings. Here the verification net is frozen,
its last feature grids and embeddings are computed once, and only the
attention head is trained on random genuine / impostor pairs of the training
identities (``utils.face_world.demo_training.WorldSplit``, a nuisance stream not used by
the demo training) with an L1 (``--loss l1``, default) or squared loss
between xCos and the true cosine. The head is then scored on all image pairs
of the held-out identities (the split's verification set): ROC AUC, EER and
10-fold accuracy (on all genuine pairs and as many random impostor pairs) of xCos next to plain
cosine, and how closely xCos tracks the
cosine (mean absolute difference, Pearson r).

Outputs go to ``outputs/xcos/`` by default; replacing the committed head
(``pre-trained/face_world/xcos_attention.pth``) and metrics
(``Explainable-Framework-Comparison/results/xcos_training.json``) takes
``--output``/``--metrics`` naming them and ``--overwrite-committed``.

Example:
    OMP_NUM_THREADS=1 nice -n 10 python Explainable-Framework-Comparison/train_xcos.py
"""

from __future__ import annotations

import argparse
import time

import _paths  # noqa: F401  (sys.path)
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from methods.xcos import XCosAttention, embed_with_grid, save_head, xcos
from models import get_network
from utils.base.atomic import atomic_write_json
from utils.base.outputs import OUTPUTS, CommittedOutputError, check_output_path
from utils.face_world.demo_training import WorldSplit
from utils.experiments.saliency_metrics import eer_threshold, kfold_accuracy
from utils.base.seeding import seed_everything
from utils.run import cli

TRAIN_STREAM = (
    5000  # nuisance stream of the training images (demo training uses 0, evaluation 1000 / 2000)
)
HELDOUT_STREAM = (
    2000  # the demo networks' own verification images (utils.face_world.demo_training.evaluate)
)


def build_parser() -> argparse.ArgumentParser:
    p = cli.make_parser(__doc__, "Exit status: 0 done, 2 usage error.")
    nets = cli.add_network_flags(p, (("verification", "FaceWorld-verification"),), layers=())
    cli.add_hidden_alias(nets, "--verification", "verification_net")
    cli.add_flag(
        nets,
        "--random-weights",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="use a randomly initialised verification net (smoke tests only)",
    )
    cli.add_flags(
        p,
        [
            (
                "--output",
                str,
                str(OUTPUTS / "xcos" / "xcos_attention.pth"),
                "where to write the head's weights (default: %(default)s; the committed head "
                "pre-trained/face_world/xcos_attention.pth is replaced only with "
                "--overwrite-committed)",
            ),
            (
                "--metrics",
                str,
                str(OUTPUTS / "xcos" / "xcos_training.json"),
                "where to write the held-out metrics (JSON; default: %(default)s; the committed "
                "ones are in Explainable-Framework-Comparison/results)",
            ),
            ("--grid-layer", str, "bn2", "verification-net layer whose output is the feature grid"),
            ("--images-per-identity", cli.positive_int, 8, "training images per training identity"),
            (
                "--heldout-per-identity",
                cli.positive_int,
                6,
                "images per held-out identity (evaluation)",
            ),
            ("--steps", cli.positive_int, 1500, "optimisation steps"),
            ("--lr", cli.positive_float, 1e-3, "Adam learning rate"),
            ("--hidden", cli.positive_int, 64, "hidden width of the attention head"),
        ],
    )
    cli.add_flag(
        p,
        "--overwrite-committed",
        action="store_true",
        help="allow --output/--metrics inside the repository but outside outputs/ (replaces "
        "committed files)",
    )
    cli.add_batch_size(p, 256, "pairs per step (half genuine, half impostor)")
    cli.add_flag(
        p,
        "--loss",
        choices=("l1", "mse"),
        default="l1",
        help="regression loss between xCos and the cosine (default: %(default)s)",
    )
    cli.add_compute_flags(p, "seed of the split, the pairs and the initialisation")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    try:
        for path in (args.output, args.metrics):
            check_output_path(path, args.overwrite_committed)
    except CommittedOutputError as err:
        build_parser().error(str(err))  # exit 2, before any work
    return args


def grids_of(V, split: WorldSplit, identities: list, per_identity: int, stream: int, layer: str):
    """Render, embed and grab the grids: embeddings (N, D), grids (N, C, h, w), identity ids
    (N,)."""
    images, ids, _ = split.render_images(identities, per_identity, stream=stream)
    emb, grids = embed_with_grid(V, V.preprocess(list(images)), layer)
    return emb, grids, ids


def sample_pairs(
    ids: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n index pairs, the first half genuine (same id, different image), the rest impostor."""
    by_id = {i: np.flatnonzero(ids == i) for i in np.unique(ids)}
    keys = np.array(list(by_id))
    a, b = [], []
    for k in range(n):
        if k < n // 2:
            members = by_id[keys[rng.integers(len(keys))]]
            i, j = rng.choice(members, 2, replace=False)
        else:
            i, j = rng.integers(len(ids), size=2)
            while ids[i] == ids[j]:
                j = rng.integers(len(ids))
        a.append(i)
        b.append(j)
    return np.asarray(a), np.asarray(b)


def evaluate(head, emb, grids, ids, batch: int = 4096) -> dict:
    """Verification metrics of plain cosine and xCos over all pairs of the given images."""
    iu = np.triu_indices(len(ids), k=1)
    labels = (ids[iu[0]] == ids[iu[1]]).astype(int)
    e = F.normalize(emb, dim=1)
    cos = (e[iu[0]] * e[iu[1]]).sum(1).numpy()
    xs = []
    with torch.inference_mode():
        for s in range(0, len(labels), batch):
            i, j = torch.from_numpy(iu[0][s : s + batch]), torch.from_numpy(iu[1][s : s + batch])
            xs.append(xcos(grids[i], grids[j], head)[0])
    xc = torch.cat(xs).numpy()
    gen = np.flatnonzero(labels == 1)
    imp = np.random.default_rng(0).choice(np.flatnonzero(labels == 0), size=len(gen), replace=False)
    balanced = np.concatenate([gen, imp])  # accuracy on as many impostor as genuine pairs
    out = {
        "pairs": {
            "genuine": int(labels.sum()),
            "impostor": int((1 - labels).sum()),
            "balanced_for_accuracy": int(len(balanced)),
        }
    }
    for name, s in (("cosine", cos), ("xcos", xc)):
        thr, eer = eer_threshold(labels, s)
        acc, std = kfold_accuracy(labels[balanced], s[balanced], folds=10)
        out[name] = {
            "auc": float(roc_auc_score(labels, s)),
            "eer": eer,
            "eer_threshold": thr,
            "accuracy_10fold": acc,
            "accuracy_10fold_std": std,
        }
    out["xcos_vs_cosine"] = {
        "mean_abs_diff": float(np.abs(xc - cos).mean()),
        "pearson_r": float(np.corrcoef(xc, cos)[0, 1]),
    }
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    seed_everything(args.seed, deterministic=False)
    torch.set_num_threads(args.threads)
    V = get_network(
        args.verification_net,
        weights=False if args.random_weights else args.verification_weights,
        device=args.device,
        **(args.verification_arch or {}),
    )
    split = WorldSplit(seed=args.seed)
    t0 = time.time()
    emb, grids, ids = grids_of(
        V, split, split.identities(), args.images_per_identity, TRAIN_STREAM, args.grid_layer
    )
    h_emb, h_grids, h_ids = grids_of(
        V,
        split,
        split.heldout_identities(),
        args.heldout_per_identity,
        HELDOUT_STREAM,
        args.grid_layer,
    )
    print(
        f"features of {len(ids)} training and {len(h_ids)} held-out images: grid "
        f"{tuple(grids.shape[1:])} "
        f"({time.time() - t0:.0f} s)"
    )
    head = XCosAttention(grids.shape[1], args.hidden, args.grid_layer)
    opt = torch.optim.Adam(head.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    rng = np.random.default_rng([args.seed, 11])
    e = F.normalize(emb, dim=1)
    head.train()
    bar = tqdm(range(args.steps), desc="xCos head", disable=not args.progress)
    for step in bar:
        a, b = (torch.from_numpy(v) for v in sample_pairs(ids, args.batch_size, rng))
        target = (e[a] * e[b]).sum(1)
        pred = xcos(grids[a], grids[b], head)[0]
        loss = F.l1_loss(pred, target) if args.loss == "l1" else F.mse_loss(pred, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    head.eval()
    metrics = {
        "settings": vars(args),
        "train_images": int(len(ids)),
        "heldout_images": int(len(h_ids)),
        "heldout": evaluate(head, h_emb, h_grids, h_ids),
        "seconds": round(time.time() - t0, 1),
    }
    save_head(head, args.output, {"verification_net": args.verification_net, "loss": args.loss})
    atomic_write_json(args.metrics, metrics)
    m = metrics["heldout"]
    print(
        f"held-out identities ({m['pairs']['genuine']} genuine / {m['pairs']['impostor']} "
        "impostor pairs):"
    )
    for name in ("cosine", "xcos"):
        r = m[name]
        print(
            f"  {name:7s} AUC {r['auc']:.4f}  EER {r['eer']:.4f}  10-fold accuracy "
            f"{r['accuracy_10fold']:.4f} +- {r['accuracy_10fold_std']:.4f}"
        )
    print(
        f"  |xCos - cos| mean {m['xcos_vs_cosine']['mean_abs_diff']:.4f}, Pearson r "
        f"{m['xcos_vs_cosine']['pearson_r']:.4f}"
    )
    print(f"wrote {args.output} and {args.metrics}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
