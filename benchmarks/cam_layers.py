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

Example:
    OMP_NUM_THREADS=1 python benchmarks/cam_layers.py --net SFace
    OMP_NUM_THREADS=1 python benchmarks/cam_layers.py --net dlib-ResNet29 --json out.json
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
    "dlib-ResNet29": ("layer3.2.conv2", "layer3.2", "layer4.2.conv2", "layer4.2"),
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
    p.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    return p


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
    for layer in args.layers or CANDIDATES[args.net]:
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
