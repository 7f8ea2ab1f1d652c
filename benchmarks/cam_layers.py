#!/usr/bin/env python
"""How often a real gallery net's Grad-CAM maps are empty, per candidate layer (tuning photos).

H_d = H_t * (max H_f - H_f) (METHOD.md section 3 step 3) is zero everywhere when
the own-identity map H_t is all zero, and every word of the image then has an
empty region: nothing is erased, nothing is explained. A Grad-CAM map is all
zero when no channel's gradient-weighted activation is positive anywhere
(ReLU of the weighted sum), which depends on the layer. This benchmark
measures, for each candidate layer of a ``<net>-gallery`` recognition net,
the share of photos whose own-identity map (the photo's identity logit) and
whose counterfactual map (the largest other identity's logit) are all zero.

Only the *tuning* identities of ``utils.experiments.part_swap.identity_split``
are used, so a layer chosen here is never chosen on the held-out identities
that the part-swap check reports. The gallery holds every photo of the data
folder; each probe photo is left out of its identity's mean
(``utils.faces.gallery.LeaveOut``), as ``--gallery-exclude-pair`` does.

With ``--pairs LIST`` it runs the real engine instead (the run loop's
:class:`utils.run.runner.PairTask`: alignment, ``explain_pair``, the paper ranking, the record)
on the pairs of the list whose two photos both belong to the chosen identities, once per
layer, with ``real-attributes`` and the default gallery (every photo of the data folder, the
pair's two included, as ``Multi_Identity_topk.py --gallery DIR`` without
``--gallery-exclude-pair``). Per layer it reports, over the impostor images, the share with
every mask empty (``utils.experiments.words.empty_mask_statistics`` of the records) and what
was zero on them: H_t, H_f, H_d all zero; no pixel with H_d > theta and some H_attr[j] > theta
(then no J[j] = H_d * H_attr[j] can exceed theta); the mean of max J.

Example:
    OMP_NUM_THREADS=1 python benchmarks/cam_layers.py --net SFace
    OMP_NUM_THREADS=1 python benchmarks/cam_layers.py --net dlib-ResNet29 --json out.json
    OMP_NUM_THREADS=1 python benchmarks/cam_layers.py --net dlib-ResNet29 \
        --pairs ../shared/data/real_faces/pairs.csv --every 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

#: Candidate layers per embedding net: the registered default first, then the block outputs
#: around it (names inside the embedding net; the gallery net prefixes ``embedding.``).
CANDIDATES: dict[str, tuple[str, ...]] = {
    "SFace": ("blocks.12.pw.conv", "blocks.12", "blocks.11.pw.conv", "blocks.11"),
    "dlib-ResNet29": ("layer4.2", "layer4.2.conv2", "layer4.1", "layer3.2.conv2", "layer3.2"),
}
REPO = Path(__file__).resolve().parent.parent
with contextlib.suppress(ModuleNotFoundError):  # imported with the repository root on sys.path
    import _bootstrap  # noqa: F401


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--net",
        choices=sorted(CANDIDATES),
        default="SFace",
        help="embedding net; its <net>-gallery classifier is probed (default: %(default)s)",
    )
    p.add_argument(
        "--layers",
        nargs="+",
        default=None,
        help="layers of the embedding net to probe (default: the net's CANDIDATES)",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data" / "real_faces",
        help="folder with one sub-folder of photos per identity (default: %(default)s)",
    )
    p.add_argument(
        "--split",
        choices=("tuning", "held-out"),
        default="tuning",
        help="which identities' photos to probe (default: %(default)s; choose layers on tuning)",
    )
    p.add_argument(
        "--pairs",
        type=Path,
        default=None,
        help="pair list (paths relative to --data): run Sim2Word on its pairs of the --split "
        "identities per layer and count the impostor images with every mask empty (default: "
        "probe single photos only)",
    )
    p.add_argument(
        "--every",
        type=int,
        default=1,
        help="with --pairs: only the pairs whose index in the list is a multiple of this "
        "(a fixed subset, as --shard 0/N of the run scripts; default: %(default)s, all)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    return p


def split_pairs(items: list, data: Path, chosen: set[str]) -> list:
    """The pair-list items whose two photos lie in folders of ``chosen`` identities."""

    def identity(path: str) -> str:
        return Path(path).resolve().relative_to(data.resolve()).parts[0]

    return [
        it
        for it in items
        if it.error is None and identity(it.path1) in chosen and identity(it.path2) in chosen
    ]


def direction_flags(d, theta: float) -> dict[str, float]:
    """What is zero on one side of an explained pair (module docstring). ``d``: a
    :class:`utils.explain.sim2word.DirectionExplanation`."""
    overlap = (d.H_d > theta) & (d.H_attr.max(axis=0) > theta)
    return {
        "H_t_zero": float(d.H_t.max() <= 0),
        "H_f_zero": float(d.H_f.max() <= 0),
        "H_d_zero": float(d.H_d.max() <= 0),
        "no_overlap": float(not overlap.any()),
        "J_max": float(d.J.max()),
    }


def pair_rows(args: argparse.Namespace, layers: list[str], chosen: list[str]) -> list[dict]:
    """Per layer, the empty-mask statistics of Sim2Word on the chosen identities' pairs."""
    import tempfile

    import numpy as np
    import torch
    from tqdm import tqdm

    from utils.experiments.words import empty_mask_statistics
    from utils.run.cli import build_parser as sim2word_parser
    from utils.run.loop import ItemContext
    from utils.run.records import parse_record
    from utils.run.runner import (
        PairTask,
        load_nets,
        make_aligner,
        pair_items,
        ranking_config,
        sim2word_config,
    )

    with tempfile.TemporaryDirectory() as tmp:
        run_args = sim2word_parser("topk").parse_args(
            [
                *("--pair-list", str(args.pairs), "--image-root", str(args.data)),
                *("--gallery", str(args.data), "--verification-net", args.net),
                *("--recognition-net", f"{args.net}-gallery", "--attribute-net"),
                *("real-attributes", "--visualization", "none", "--output-dir", tmp),
            ]
        )
        items = split_pairs(pair_items(run_args), args.data, set(chosen))
        items = [it for it in items if it.index % max(1, args.every) == 0]
        if not any(it.label == 0 for it in items):
            raise SystemExit(f"{args.pairs} has no impostor pair of {args.split} identities")
        nets = load_nets(run_args, torch.device("cpu"))
        task = PairTask(
            run_args,
            sim2word_config(run_args),
            nets,
            Path(tmp),
            ranking_config(run_args),
            make_aligner(run_args),
        )
        theta = task.config.thresh
        records: dict[str, list] = {layer: [] for layer in layers}
        flags: dict[str, list[dict]] = {layer: [] for layer in layers}
        for item in tqdm(items, desc=f"{args.net} pairs", unit="pair"):
            inputs = task.read(item)
            for layer in layers:
                nets.recognition_layer = f"embedding.{layer}"
                ctx = ItemContext(Path(tmp))
                result, ranking = task.explain(item, inputs, ctx)
                rec = task.record(item, result, ranking, ctx)
                records[layer].append(parse_record(rec, f"pair {item.index}", task.required))
                if item.label == 0:
                    flags[layer] += [
                        direction_flags(d, theta) for d in result.explanation.directions
                    ]
    rows = []
    for layer in layers:
        stats = empty_mask_statistics(records[layer])
        row = {"net": args.net, "layer": layer, "split": args.split, "pairs": len(items)}
        row.update(stats)
        row.update({k: float(np.mean([f[k] for f in flags[layer]])) for k in flags[layer][0]})
        rows.append(row)
    return rows


def print_pair_rows(args: argparse.Namespace, rows: list[dict]) -> None:
    """The table of :func:`pair_rows`."""
    print(f"{args.net}-gallery, pairs of {args.split} identities ({rows[0]['pairs']}):")
    print(
        f"{'layer':16s} {'imp. images':>11s} {'all empty':>9s} {'top1 empty':>10s} "
        f"{'H_t=0':>6s} {'H_f=0':>6s} {'H_d=0':>6s} {'no overlap':>10s} {'mean maxJ':>9s}"
    )
    for r in rows:
        print(
            f"{r['layer']:16s} {r['images']:11d} {r['all_masks_empty_share']:9.3f} "
            f"{r['top1_mask_empty_share']:10.3f} {r['H_t_zero']:6.3f} {r['H_f_zero']:6.3f} "
            f"{r['H_d_zero']:6.3f} {r['no_overlap']:10.3f} {r['J_max']:9.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import numpy as np
    import torch

    from utils.experiments.part_swap import identity_split
    from utils.explain.cam import CAMExplainer
    from utils.faces.canvas import CanvasAligner
    from utils.faces.gallery import LeaveOut, get_gallery_network
    from utils.faces.image_io import read_image

    torch.set_num_threads(1)
    start = time.process_time()
    layers = list(args.layers or CANDIDATES[args.net])
    if args.pairs is not None:
        folders = sorted(d.name for d in args.data.iterdir() if d.is_dir())
        tuning, held_out = identity_split(folders)
        rows = pair_rows(args, layers, tuning if args.split == "tuning" else held_out)
        print_pair_rows(args, rows)
        print(f"CPU time: {time.process_time() - start:.1f} s")
        if args.json is not None:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        return 0
    net = get_gallery_network(f"{args.net}-gallery", args.data, progress=False)
    aligner = CanvasAligner(net.alignment, "auto")
    folders = sorted(d.name for d in args.data.iterdir() if d.is_dir())
    tuning, held_out = identity_split(folders)
    chosen = tuning if args.split == "tuning" else held_out
    photos = [
        (p, net.identities.index(d) if hasattr(net, "identities") else folders.index(d))
        for d in sorted(chosen)
        for p in sorted((args.data / d).iterdir())
        if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    ]
    canvases = []
    for path, cls in photos:
        canvases.append((str(path), aligner.canvas(read_image(path), str(path)).image, cls))
    rows = []
    for layer in layers:
        own_zero = other_zero = either = 0
        with CAMExplainer(net, f"embedding.{layer}") as cam:
            for path, image, cls in canvases:
                with LeaveOut(net).excluding([path]):
                    fwd = cam.forward(net.preprocess([image]))
                    logits = fwd.outputs[0].clone()
                    logits[cls] = -np.inf
                    other = int(logits.argmax())
                    res = cam.maps(fwd, [[lambda o, c=cls: o[:, c], lambda o, c=other: o[:, c]]])
                raw = res.raw[0]
                z_own, z_other = bool(raw[0].max() <= 0), bool(raw[1].max() <= 0)
                own_zero += z_own
                other_zero += z_other
                either += z_own or z_other
        n = len(canvases)
        rows.append(
            {
                "net": args.net,
                "layer": layer,
                "split": args.split,
                "photos": n,
                "own_map_zero": own_zero / n,
                "counterfactual_map_zero": other_zero / n,
                "either_zero": either / n,
            }
        )
    print(f"{args.net}-gallery, {args.split} identities ({len(canvases)} photos):")
    print(f"{'layer':24s} {'H_t zero':>9s} {'H_f zero':>9s} {'either':>7s}")
    for r in rows:
        print(
            f"{r['layer']:24s} {r['own_map_zero']:9.3f} {r['counterfactual_map_zero']:9.3f} "
            f"{r['either_zero']:7.3f}"
        )
    print(f"CPU time: {time.process_time() - start:.1f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
