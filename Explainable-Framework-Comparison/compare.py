"""Compare Sim2Word with xCos, xFR and generic saliency on one benchmark: prints and writes the
table.

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

Real photos (``real_photos.py``): with ``--real-nets sface`` (default) or
``dlib`` the real-photo columns use real networks on aligned canvases: an
inpainting game on ``--real-swaps`` part swaps of the held-out identities and
deletion / insertion on ``--real-pairs`` pairs of ``pairs.csv``; ``--real-nets
demo`` keeps the demo nets on the photos as read (deletion / insertion only).

Example:
    OMP_NUM_THREADS=1 nice -n 10 python Explainable-Framework-Comparison/compare.py --pairs 40
    --num-masks 500
"""

from __future__ import annotations

import argparse
import os
from contextlib import nullcontext
from pathlib import Path

import _paths  # noqa: F401  (sys.path)
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import benchmark as B
import real_photos
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
from utils.run import cli

DEFAULT_REAL = (
    Path(os.environ.get("SIM2WORD_SHARED", _paths.REPO_ROOT.parent / "shared"))
    / "data"
    / "real_faces"
)
MASK_METHODS = ("RISE-sim", "xFR-blackbox")
ORDER = (
    "Sim2Word-top1",
    "Sim2Word-union",
    "xCos",
    "xFR-whitebox",
    "xFR-blackbox",
    "GradCAM-sim",
    "RISE-sim",
    "random",
)


def build_parser() -> argparse.ArgumentParser:
    p = cli.make_parser(__doc__, "Exit status: 0 done, 2 usage error.")
    cli.add_flag(
        p,
        "--methods",
        nargs="+",
        default=[m for m in ORDER if m in list_methods()],
        help=f"methods to compare ({', '.join(list_methods())})",
    )
    cli.add_flags(
        p,
        [
            ("--pairs", cli.positive_int, 40, "face-world twin triplets for the inpainting game"),
            (
                "--deletion-pairs",
                cli.positive_int,
                30,
                "face-world triplets for deletion / insertion",
            ),
            (
                "--real-pairs",
                cli.non_negative_int,
                20,
                "real-photo triplets from --real-faces (0 = skip)",
            ),
            (
                "--real-faces",
                str,
                str(DEFAULT_REAL),
                "folder with pairs.csv and one sub-folder of photos per identity (also the real "
                "recognition net's gallery)",
            ),
            (
                "--real-swaps",
                cli.non_negative_int,
                30,
                "part-swap triplets of the held-out identities for the real inpainting game "
                "(0 = skip; needs --real-nets sface or dlib)",
            ),
            (
                "--real-num-masks",
                cli.positive_int,
                50,
                "random masks per explanation of RISE-sim and xFR-blackbox on real photos",
            ),
            (
                "--num-masks",
                cli.positive_int,
                500,
                "random masks per explanation (RISE-sim, xFR-blackbox)",
            ),
            (
                "--flip-steps",
                cli.positive_int,
                50,
                "steps of the decision-flip curve (50 = 2 %% of the pixels)",
            ),
            ("--deletion-steps", cli.positive_int, 32, "steps of the deletion / insertion curves"),
            (
                "--threshold",
                cli.finite_float,
                None,
                "verification threshold (None: the held-out EER)",
            ),
            ("--figure-columns", cli.positive_int, 5, "twin triplets shown in fig4.png"),
        ],
    )
    cli.add_flag(
        p,
        "--real-nets",
        choices=(*real_photos.REAL_NETS, "demo"),
        default="sface",
        help="networks of the real-photo columns: sface (SFace, SFace-gallery over --real-faces, "
        "real-attributes) or dlib (dlib-ResNet29 ...), on canvases aligned to the verification "
        "net's template; demo: the face-world networks on the photos as read (default: "
        "%(default)s)",
    )
    cli.add_flag(
        p,
        "--real-swap-keep",
        choices=real_photos.KEEP_RULES,
        default="mate",
        help="which part-swap triplets are kept: mate (the real verification net accepts the "
        "mate), xfr (it also rejects the swapped face; few pass), none (default: %(default)s)",
    )
    cli.add_flag(
        p,
        "--real-cache-dir",
        type=Path,
        default=OUTPUTS / "comparison" / "gallery-cache",
        help="folder for the real gallery's embedding cache (default: %(default)s)",
    )
    cli.add_flag(
        p,
        "--filter",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep only twin triplets whose mate is accepted and twin rejected by the net (as xFR)",
    )
    roles = (
        ("verification", "FaceWorld-verification"),
        ("recognition", "FaceWorld-recognition"),
        ("attribute", "FaceWorld-attribute"),
    )
    nets = cli.add_network_flags(p, roles, layers=())
    for role, _ in roles:
        cli.add_hidden_alias(nets, f"--{role}", f"{role}_net")
    cli.add_flags(
        nets,
        [
            (
                "--xcos-weights",
                str,
                str(_paths.REPO_ROOT / "pre-trained" / "face_world" / "xcos_attention.pth"),
                "xCos attention head (train_xcos.py)",
            )
        ],
    )
    cli.add_flag(
        nets,
        "--random-weights",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="randomly initialised networks and xCos head (smoke tests only)",
    )
    cli.add_output_dir(
        p,
        OUTPUTS / "comparison",
        "output folder (default: %(default)s; the committed results in "
        "Explainable-Framework-Comparison/results are written only with --overwrite-committed)",
    )
    cli.add_flag(
        p,
        "--overwrite-committed",
        action="store_true",
        help="allow an --output-dir inside the repository but outside outputs/ (replaces committed "
        "results)",
    )
    cli.add_compute_flags(p, "seed of the triplets, masks and tie-breaking")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """Parse and validate the flags (exit status 2 on a usage error, before any work)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_output_path(args.output_dir, args.overwrite_committed)
    except CommittedOutputError as err:
        parser.error(str(err))
    unknown = [m for m in args.methods if m not in list_methods()]
    if unknown:
        parser.error(
            f"unknown method(s) {', '.join(map(repr, unknown))}; valid: {', '.join(list_methods())}"
        )
    if args.real_nets == "demo" and args.real_swaps > 0:
        parser.error(
            "--real-swaps needs real networks (the swaps are made on aligned canvases with the "
            "real attribute net's landmarks); use --real-nets sface or dlib, or --real-swaps 0"
        )
    return args


def load_nets(args) -> ComparisonNets:
    def net(role):
        weights = False if args.random_weights else getattr(args, f"{role}_weights")
        return get_network(
            getattr(args, f"{role}_net"),
            weights=weights,
            device=args.device,
            **(getattr(args, f"{role}_arch") or {}),
        )

    V = net("verification")
    need_s2w = any(m.startswith("Sim2Word") for m in args.methods)
    R = net("recognition") if need_s2w else None
    A = net("attribute") if need_s2w else None
    head = None
    if "xCos" in args.methods:
        if args.random_weights:
            from methods.xcos import XCosAttention

            head = XCosAttention(V.get_submodule("bn2").num_features).to(args.device).eval()
        else:
            head = load_head(args.xcos_weights, args.device)
    return ComparisonNets(V, R, A, head)


def heldout_threshold(V, seed: int) -> tuple[float, float, int]:
    """EER threshold over all pairs of the demo split's held-out identities (4 images each, stream
    2000)."""
    split = WorldSplit(seed=seed)
    images, ids, _ = split.render_images(split.heldout_identities(), 4, stream=2000)
    emb = F.normalize(B.embed_images(V, list(images), 128), dim=1)
    iu = np.triu_indices(len(ids), k=1)
    sims = (emb @ emb.T).numpy()[iu]
    thr, eer = eer_threshold((ids[iu[0]] == ids[iu[1]]).astype(int), sims)
    return thr, eer, len(sims)


def threshold_info(args, V) -> dict:
    """The verification threshold and where it comes from (``--threshold`` or the held-out EER)."""
    if args.threshold is not None:
        return {"threshold": args.threshold, "source": "--threshold"}
    thr, eer, n_pairs = heldout_threshold(V, args.seed)
    return {"threshold": thr, "source": f"EER on {n_pairs} held-out face-world pairs", "eer": eer}


def triplet_sets(args, V, thr: float) -> tuple[dict[str, list], B.Stats]:
    """The benchmark's triplets: twin game, face-world deletion/insertion, real photos (if
    found)."""
    sets = {}
    sets["game"], stats = B.twin_triplets(V, thr, args.pairs, args.seed, filter_=args.filter)
    print(
        f"twin triplets: drew {stats.drawn}, kept {stats.kept} (mate rejected "
        f"{stats.mate_rejected}, "
        f"twin accepted {stats.twin_accepted}, no twin {stats.no_twin})"
    )
    sets["fw"] = B.identity_triplets(args.deletion_pairs, args.seed)
    real_root = Path(args.real_faces)
    if args.real_nets != "demo":
        return sets, stats  # the real-photo part runs with its own nets (real_part)
    if args.real_pairs > 0 and (real_root / "pairs.csv").is_file():
        pairs = read_pair_list(real_root / "pairs.csv")
        sets["real"] = B.real_triplets(pairs, read_image, args.real_pairs, args.seed)
    elif args.real_pairs > 0:
        print(f"no pairs.csv under {real_root}: real-photo columns skipped (set --real-faces)")
    return sets, stats


def score_all(args, methods: dict, sets: dict, nets: ComparisonNets, thr: float, leave_out=None):
    """Explain and score every triplet with every method: per-triplet scores, seconds, figure
    columns. ``leave_out``: a :class:`utils.faces.gallery.LeaveOut` of the recognition net; each
    triplet is explained without its ``leave_out`` photos in the gallery's means."""
    V = nets.verification
    per: dict[str, dict[str, list]] = {m: {} for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    fig_cols = []
    bar = tqdm(
        total=sum(len(v) for v in sets.values()) * len(methods),
        desc="explaining and scoring",
        disable=not args.progress,
    )
    for kind, triplets in sets.items():
        for ti, t in enumerate(triplets):
            col = None
            if kind == "game" and ti < args.figure_columns:
                col = {
                    "probe": t.probe,
                    "nonmate": t.nonmate,
                    "mate": t.mate,
                    "region": t.region,
                    "attribute": t.attribute,
                    "maps": {},
                    "word": "-",
                }
            for mi, (name, meth) in enumerate(methods.items()):
                with nullcontext() if leave_out is None else leave_out.excluding(t.leave_out):
                    ex, sec = B.timed_explain(meth, t, nets)
                seconds[name].append(sec)
                rng = np.random.default_rng([args.seed, 99, ti, mi])
                if kind == "game":
                    sc = B.game_scores(V, ex.saliency, t, thr, args.flip_steps, rng)
                elif kind == "swap":
                    sc = B.hit_scores(ex.saliency, t)
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
    return per, seconds, fig_cols


def table_rows(per: dict, seconds: dict) -> dict[str, dict[str, dict]]:
    """rows[method][column] = mean/sem/n of every float score and of the seconds per explanation."""
    rows: dict[str, dict[str, dict]] = {}
    for name, kinds in per.items():
        cols = {}
        for kind, scores in kinds.items():
            for key in scores[0]:
                if isinstance(scores[0][key], float) and key not in ("region_share",):
                    cols[f"{kind}.{key}"] = report.summarise([s[key] for s in scores])
        cols["seconds"] = report.summarise(seconds[name])
        rows[name] = cols
    return rows


def make_methods(names, num_masks: int, seed: int) -> dict:
    """Registered methods by name (the mask methods with ``num_masks`` masks, seeded)."""
    return {
        m: create_method(m, **({"num_masks": num_masks, "seed": seed} if m in MASK_METHODS else {}))
        for m in names
    }


def real_part(args) -> tuple[dict, dict, dict]:
    """The real-photo columns with the ``--real-nets`` networks (``real_photos.py``).

    Returns:
        ``(per, seconds, info)``: per-triplet scores and seconds of the kinds ``swap`` and
        ``real``, and what the record says about the nets, threshold and kept swaps.
    """
    root = Path(args.real_faces)
    setup = real_photos.load_real_nets(args.real_nets, root, args.real_cache_dir, args.progress)
    thr_info = real_photos.tuning_threshold(setup.nets.recognition)
    thr = thr_info["threshold"]
    info = {
        "nets": dict(zip(("verification", "recognition", "attribute"), setup.names, strict=True)),
        "threshold": thr_info,
    }
    print(f"real nets {', '.join(setup.names)}; threshold {thr:.4f} ({thr_info['source']})")
    sets = {}
    if args.real_swaps > 0:
        sets["swap"], stats = real_photos.swap_triplets(
            root, setup, thr, args.real_swaps, args.seed, args.real_swap_keep, args.progress
        )
        info["swap_filter"] = vars(stats)
        info["mean_swap_region_share"] = (
            float(np.mean([t.region.mean() for t in sets["swap"]])) if sets["swap"] else None
        )
        print(
            f"real part swaps (held-out identities, keep rule {stats.rule}): drew {stats.drawn}, "
            f"kept {stats.kept} (failed {stats.failed}, mate rejected {stats.mate_rejected}, "
            f"swapped face still accepted {stats.swap_accepted})"
        )
    if args.real_pairs > 0:
        pairs = read_pair_list(root / "pairs.csv")
        sets["real"] = B.real_triplets(
            pairs, lambda p: setup.aligner.read(p).image, args.real_pairs, args.seed, None
        )
    names = [m for m in args.methods if m != "xCos"]
    if "xCos" in args.methods:
        info["xcos"] = real_photos.XCOS_REAL_REASON
        print(real_photos.XCOS_REAL_REASON)
    methods = make_methods(names, args.real_num_masks, args.seed)
    sets = {k: v for k, v in sets.items() if v}
    if not sets:
        return {m: {} for m in methods}, {m: [] for m in methods}, info
    first = next(iter(sets.values()))[0]
    for m in methods.values():  # warm-up call, not timed
        with setup.leave_out.excluding(first.leave_out):
            m.explain_full(first.probe, first.mate, first.nonmate, setup.nets)
    per, seconds, _ = score_all(args, methods, sets, setup.nets, thr, setup.leave_out)
    return per, seconds, info


def main(argv=None) -> int:
    args = parse_args(argv)
    seed_everything(args.seed, deterministic=False)
    torch.set_num_threads(args.threads)
    out = Path(args.output_dir)
    nets = load_nets(args)
    thr_info = threshold_info(args, nets.verification)
    thr = thr_info["threshold"]
    print(f"verification threshold {thr:.4f} ({thr_info['source']})")
    sets, stats = triplet_sets(args, nets.verification, thr)
    methods = make_methods(args.methods, args.num_masks, args.seed)
    first = sets["game"][0] if sets["game"] else sets["fw"][0]
    for m in methods.values():  # warm-up call, not timed (lazy allocations)
        m.explain_full(first.probe, first.mate, first.nonmate, nets)
    per, seconds, fig_cols = score_all(args, methods, sets, nets, thr)
    rows = table_rows(per, seconds)
    real_info = {"nets": "demo (the face-world networks on the photos as read)"}
    if args.real_nets != "demo" and (args.real_swaps > 0 or args.real_pairs > 0):
        real_per, real_seconds, real_info = real_part(args)
        for name, cols in table_rows(real_per, real_seconds).items():
            cols["real.seconds"] = cols.pop("seconds")
            if cols["real.seconds"]["n"]:
                rows[name].update(cols)
            per[name].update(real_per[name])
    region = float(np.mean([t.region.mean() for t in sets["game"]])) if sets["game"] else None
    chance = {} if region is None else {"game.hit_area": region, "game.hit_at_10": region}
    swap_region = real_info.get("mean_swap_region_share")
    if swap_region is not None:
        chance.update({"swap.hit_area": swap_region, "swap.hit_at_10": swap_region})
    table = report.markdown_table(rows, chance)
    print(table, end="")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    command = f"python Explainable-Framework-Comparison/compare.py {' '.join(argv) if argv else ''}"
    real_line = ""
    if isinstance(real_info.get("nets"), dict):
        sf = real_info.get("swap_filter")
        real_line = (
            f"Real-photo columns: {', '.join(real_info['nets'].values())}, threshold "
            f"{real_info['threshold']['threshold']:.4f} ({real_info['threshold']['source']})"
            + (
                f"; part swaps kept {sf['kept']} of {sf['drawn']} drawn (keep rule {sf['rule']})"
                if sf
                else ""
            )
            + ".\n\n"
        )
    atomic_write_text(
        out / "comparison.md",
        f"Command: `{command}`\n\nThreshold: {thr:.4f} ({thr_info['source']}).\n\n"
        f"{real_line}{table}\n",
    )
    atomic_write_json(
        out / "comparison.json",
        {
            "settings": settings,
            "threshold": thr_info,
            "twin_filter": vars(stats),
            "mean_region_share": region,
            "real": real_info,
            "table": rows,
            "per_triplet": per,
        },
    )
    if fig_cols:
        report.fig4(fig_cols, list(methods), out / "fig4.png")
    print(
        f"wrote {out / 'comparison.md'}, {out / 'comparison.json'}"
        + (f", {out / 'fig4.png'}" if fig_cols else "")
    )
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
