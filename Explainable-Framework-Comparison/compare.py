"""Compare Sim2Word with xCos, xFR and generic saliency on one benchmark: prints and writes the table.

One command explains the same triplets with every method and the same
networks, scores every map (``benchmark.py`` describes the protocol,
``utils/experiments/saliency_metrics.py`` the scores), times every explanation, prints
the method x metric table with the chance level, writes ``comparison.md``,
``comparison.json`` (settings, threshold, filter statistics, per-triplet
scores) and ``fig4.png`` (the paper's Fig. 4 layout) into ``--output``
(default ``outputs/comparison/``; the committed ``results/`` folder is only
written with ``--output Explainable-Framework-Comparison/results --overwrite-committed``).

Verification threshold: the EER threshold of the verification net on all
image pairs of the demo split's held-out identities (the images the demo
networks were evaluated on), ``--threshold`` overrides it.

Example:
    OMP_NUM_THREADS=1 nice -n 10 python Explainable-Framework-Comparison/compare.py --pairs 40 --num-masks 500
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import _paths  # noqa: F401  (sys.path)
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import benchmark as B
import report
from methods import ComparisonNets, create_method, list_methods
from methods.xcos import load_head
from models import get_network
from utils.base.atomic import atomic_write_json, atomic_write_text
from utils.base.outputs import OUTPUTS, CommittedOutputError, check_output_path
from utils.faces.data import read_pair_list
from utils.face_world.demo_training import WorldSplit
from utils.faces.image_io import read_image
from utils.experiments.saliency_metrics import eer_threshold
from utils.base.seeding import seed_everything

DEFAULT_REAL = Path(os.environ.get("SIM2WORD_SHARED", _paths.REPO_ROOT.parent / "shared")) / "data" / "real_faces"
MASK_METHODS = ("RISE-sim", "xFR-blackbox")
ORDER = ("Sim2Word-top1", "Sim2Word-union", "xCos", "xFR-whitebox", "xFR-blackbox", "GradCAM-sim", "RISE-sim", "random")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=[m for m in ORDER if m in list_methods()], help=f"methods to compare ({', '.join(list_methods())})")
    p.add_argument("--pairs", type=int, default=40, help="face-world twin triplets for the inpainting game")
    p.add_argument("--deletion-pairs", type=int, default=30, help="face-world triplets for deletion / insertion")
    p.add_argument("--real-pairs", type=int, default=20, help="real-photo triplets from --real-faces (0 = skip)")
    p.add_argument("--real-faces", default=str(DEFAULT_REAL), help="folder with pairs.csv and the real photos")
    p.add_argument("--num-masks", type=int, default=500, help="random masks per explanation (RISE-sim, xFR-blackbox)")
    p.add_argument("--flip-steps", type=int, default=50, help="steps of the decision-flip curve (50 = 2 %% of the pixels)")
    p.add_argument("--deletion-steps", type=int, default=32, help="steps of the deletion / insertion curves")
    p.add_argument("--filter", action=argparse.BooleanOptionalAction, default=True,
                   help="keep only twin triplets whose mate is accepted and twin rejected by the net (as xFR)")
    p.add_argument("--threshold", type=float, default=None, help="verification threshold (default: held-out EER)")
    p.add_argument("--verification", default="FaceWorld-verification", help="verification network name")
    p.add_argument("--recognition", default="FaceWorld-recognition", help="recognition network name (Sim2Word)")
    p.add_argument("--attribute", default="FaceWorld-attribute", help="attribute network name (Sim2Word)")
    p.add_argument("--verification-weights", default=None, help="weights file (default: registered file)")
    p.add_argument("--recognition-weights", default=None, help="weights file (default: registered file)")
    p.add_argument("--attribute-weights", default=None, help="weights file (default: registered file)")
    p.add_argument("--xcos-weights", default=str(_paths.REPO_ROOT / "pre-trained" / "face_world" / "xcos_attention.pth"),
                   help="xCos attention head (train_xcos.py)")
    p.add_argument("--random-weights", action=argparse.BooleanOptionalAction, default=False,
                   help="randomly initialised networks and xCos head (smoke tests only)")
    p.add_argument("--figure-columns", type=int, default=5, help="twin triplets shown in fig4.png")
    p.add_argument("--output", default=str(OUTPUTS / "comparison"),
                   help="output folder (default: %(default)s; the committed results in "
                        "Explainable-Framework-Comparison/results are written only with "
                        "--overwrite-committed)")
    p.add_argument("--overwrite-committed", action="store_true",
                   help="allow an --output inside the repository but outside outputs/ "
                        "(replaces committed results)")
    p.add_argument("--seed", type=int, default=0, help="seed of the triplets, masks and tie-breaking")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    args = p.parse_args(argv)
    try:
        check_output_path(args.output, args.overwrite_committed)
    except CommittedOutputError as err:
        p.error(str(err))  # exit 2, before any work
    return args


def load_nets(args) -> ComparisonNets:
    def net(name, weights):
        return get_network(name, weights=False if args.random_weights else weights, device=args.device)

    V = net(args.verification, args.verification_weights)
    need_s2w = any(m.startswith("Sim2Word") for m in args.methods)
    R = net(args.recognition, args.recognition_weights) if need_s2w else None
    A = net(args.attribute, args.attribute_weights) if need_s2w else None
    head = None
    if "xCos" in args.methods:
        if args.random_weights:
            from methods.xcos import XCosAttention

            head = XCosAttention(V.get_submodule("bn2").num_features).to(args.device).eval()
        else:
            head = load_head(args.xcos_weights, args.device)
    return ComparisonNets(V, R, A, head)


def heldout_threshold(V, seed: int) -> tuple[float, float, int]:
    """EER threshold over all pairs of the demo split's held-out identities (4 images each, stream 2000)."""
    split = WorldSplit(seed=seed)
    images, ids, _ = split.render_images(split.heldout_identities(), 4, stream=2000)
    emb = F.normalize(B.embed_images(V, list(images), 128), dim=1)
    iu = np.triu_indices(len(ids), k=1)
    sims = (emb @ emb.T).numpy()[iu]
    thr, eer = eer_threshold((ids[iu[0]] == ids[iu[1]]).astype(int), sims)
    return thr, eer, len(sims)


def main(argv=None) -> int:
    args = parse_args(argv)
    for m in args.methods:
        if m not in list_methods():
            raise SystemExit(f"unknown method {m!r}; valid: {', '.join(list_methods())}")
    seed_everything(args.seed, deterministic=False)
    torch.set_num_threads(args.threads)
    out = Path(args.output)
    nets = load_nets(args)
    V = nets.verification
    if args.threshold is None:
        thr, eer, n_pairs = heldout_threshold(V, args.seed)
        thr_info = {"threshold": thr, "source": f"EER on {n_pairs} held-out face-world pairs", "eer": eer}
    else:
        thr_info = {"threshold": args.threshold, "source": "--threshold"}
    thr = thr_info["threshold"]
    print(f"verification threshold {thr:.4f} ({thr_info['source']})")

    sets = {}
    sets["game"], stats = B.twin_triplets(V, thr, args.pairs, args.seed, filter_=args.filter)
    print(f"twin triplets: drew {stats.drawn}, kept {stats.kept} (mate rejected {stats.mate_rejected}, "
          f"twin accepted {stats.twin_accepted}, no twin {stats.no_twin})")
    sets["fw"] = B.identity_triplets(args.deletion_pairs, args.seed)
    real_root = Path(args.real_faces)
    if args.real_pairs > 0 and (real_root / "pairs.csv").is_file():
        sets["real"] = B.real_triplets(read_pair_list(real_root / "pairs.csv"), read_image, args.real_pairs, args.seed)
    elif args.real_pairs > 0:
        print(f"no pairs.csv under {real_root}: real-photo columns skipped (set --real-faces)")

    methods = {m: create_method(m, **({"num_masks": args.num_masks, "seed": args.seed} if m in MASK_METHODS else {}))
               for m in args.methods}
    first = sets["game"][0] if sets["game"] else sets["fw"][0]
    for m in methods.values():  # warm-up call, not timed (lazy allocations)
        m.explain_full(first.probe, first.mate, first.nonmate, nets)

    per: dict[str, dict[str, list]] = {m: {} for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    fig_cols = []
    total = sum(len(v) for v in sets.values()) * len(methods)
    bar = tqdm(total=total, desc="explaining and scoring")
    for kind, triplets in sets.items():
        for ti, t in enumerate(triplets):
            col = {"probe": t.probe, "nonmate": t.nonmate, "mate": t.mate, "region": t.region,
                   "attribute": t.attribute, "maps": {}, "word": "-"} if kind == "game" and ti < args.figure_columns else None
            for mi, (name, meth) in enumerate(methods.items()):
                ex, sec = B.timed_explain(meth, t, nets)
                seconds[name].append(sec)
                rng = np.random.default_rng([args.seed, 99, ti, mi])
                if kind == "game":
                    sc = B.game_scores(V, ex.saliency, t, thr, args.flip_steps, rng)
                else:
                    sc = B.delins_scores(V, ex.saliency, t, args.deletion_steps, rng)
                sc.update({"triplet": t.name, "info": ex.info})
                per[name].setdefault(kind, []).append(sc)
                if col is not None:
                    col["maps"][name] = ex.saliency
                    if name == "Sim2Word-top1":
                        col["word"] = ex.info.get("word", "-")
                bar.update(1)
            if col is not None:
                fig_cols.append(col)
    bar.close()

    rows: dict[str, dict[str, dict]] = {}
    for name in methods:
        cols = {}
        for kind, scores in per[name].items():
            for key in scores[0]:
                if isinstance(scores[0][key], float) and key not in ("region_share",):
                    cols[f"{kind}.{key}"] = report.summarise([s[key] for s in scores])
        cols["seconds"] = report.summarise(seconds[name])
        rows[name] = cols
    region = float(np.mean([t.region.mean() for t in sets["game"]])) if sets["game"] else None
    chance = {} if region is None else {"game.hit_area": region, "game.hit_at_10": region}
    table = report.markdown_table(rows, chance)
    print(table)
    settings = {k: v for k, v in vars(args).items()}
    atomic_write_text(out / "comparison.md", f"Command: `python Explainable-Framework-Comparison/compare.py "
                      f"{' '.join(argv) if argv else ''}`\n\nThreshold: {thr:.4f} ({thr_info['source']}).\n\n"
                      f"{table}\n")
    atomic_write_json(out / "comparison.json", {
        "settings": settings, "threshold": thr_info, "twin_filter": vars(stats),
        "mean_region_share": region, "table": rows, "per_triplet": per,
    })
    if fig_cols:
        report.fig4(fig_cols, list(methods), out / "fig4.png")
    print(f"wrote {out / 'comparison.md'}, {out / 'comparison.json'}" + (f", {out / 'fig4.png'}" if fig_cols else ""))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
