"""One bar chart per image of an uncertainty run (paper Section 4, METHOD.md section 6 step 4).

Reads the per-image JSON written by ``quantity_single_person_uncertain.py``
(never loads a network) and draws, per image: the image on the left; on the
right the evidential uncertainty of the original (first bar, its own colour,
also drawn as a dashed line) and then of the image with each candidate
attribute erased, largest first (multi-class attributes worded by class).
Bars above the dashed line are the attributes whose removal makes the
evidential net less sure: the most characteristic ones.

Example:
    python quantity_single_person_uncertain.py
    cd results; python uncertainty_visualization.py

Writes ``<Save-fold>/<n>.png`` (n = the JSON's name) and
``<Save-fold>/failures-uncertainty_visualization.jsonl``.
Exit status: 0 all files drawn, 3 some skipped, 2 usage error.
"""

from __future__ import annotations

try:  # run as a file: this folder is on sys.path, the repository root not yet (see _bootstrap.py)
    import _bootstrap  # noqa: F401
except ModuleNotFoundError:  # imported with the repository root on sys.path (tests, python -m)
    _bootstrap = None
import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from tqdm import tqdm

from utils.base import safejson
from utils.experiments.analysis import finish, list_json, run_folder
from utils.experiments.figures import PLACEHOLDER_GREY, load_rgb, save_figure
from utils.run import cli
from utils.experiments.uncertainty import default_json_fold  # a path only: no network is loaded

SCRIPT = "uncertainty_visualization"
ORIGINAL_COLOUR, RAISE_COLOUR, LOWER_COLOUR = "#d62728", "#1f77b4", "#9ecae1"


def build_parser() -> argparse.ArgumentParser:
    p = cli.make_parser(__doc__)
    cli.add_json_fold(
        p,
        default_json_fold(),
        "an uncertainty run folder or its `json` folder (default: the folder a default run of "
        "quantity_single_person_uncertain.py writes, %(default)s)",
    )
    cli.add_flag(
        p,
        "--Save-fold",
        aliases=("--save-fold",),
        dest="save_fold",
        type=Path,
        default=None,
        help="where the charts go (default: <run folder>/visualization)",
    )
    cli.add_image_root(
        p,
        "folder that relative image paths are resolved against first (then the JSON's "
        "folder, then the current directory)",
    )
    cli.add_figure_flags(p, (12.0, 5.0))
    cli.add_progress(p)
    return p


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def read_chart_data(path: Path) -> dict:
    """The fields a chart needs, validated; raises ``ValueError`` naming the bad key."""
    try:
        rec = safejson.load_json_file(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {path} as JSON: {err}") from None
    if not isinstance(rec, dict):
        raise ValueError(f"{path}: expected a JSON object (a per-image uncertainty record)")
    attrs = rec.get("uncertainty-attributes")
    if not isinstance(attrs, list) or not all(isinstance(a, dict) for a in attrs):
        raise ValueError(
            f"{path}: 'uncertainty-attributes' missing or not a list of objects; is this the json "
            "folder of quantity_single_person_uncertain.py?"
        )
    return {
        "u0": _number(rec.get("uncertainty-original"), "uncertainty-original"),
        "words": [str(a.get("word", "?")) for a in attrs],
        "u": [_number(a.get("uncertainty"), f"uncertainty of {a.get('word')!r}") for a in attrs],
        "path": rec.get("image-path"),
        "label": rec.get("label"),
        "pred": rec.get("predicted-identity"),
        "score": rec.get("predicted-score"),
    }


def chart(data: dict, image: np.ndarray | None, title: str, figsize: tuple[float, float]) -> Figure:
    """Image on the left, the bars (original first, then the attributes) on the right."""
    fig = Figure(figsize=figsize)
    ax_img, ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 3.2]})
    ax_img.imshow(
        image if image is not None else np.full((112, 112, 3), PLACEHOLDER_GREY, np.uint8)
    )
    if image is None:
        ax_img.text(56, 56, "image\nnot available", ha="center", va="center", fontsize=10)
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    labels, values = ["original", *data["words"]], [data["u0"], *data["u"]]
    colours = [ORIGINAL_COLOUR] + [
        RAISE_COLOUR if u > data["u0"] else LOWER_COLOUR for u in data["u"]
    ]
    pos = np.arange(len(values))
    bars = ax.bar(pos, values, color=colours)
    for rect, u in zip(bars, values, strict=True):
        ax.text(
            rect.get_x() + rect.get_width() / 2,
            u,
            f"{u:.3f}",
            ha="center",
            va="bottom",
            rotation=90,
            fontsize=6,
        )
    ax.legend(
        handles=[
            Patch(color=ORIGINAL_COLOUR, label="original"),
            Patch(color=RAISE_COLOUR, label="attribute erased: u above the original"),
            Patch(color=LOWER_COLOUR, label="attribute erased: u not above"),
        ],
        loc="lower right",
        fontsize=7,
        framealpha=0.9,
    )
    ax.axhline(data["u0"], color=ORIGINAL_COLOUR, linestyle="--", linewidth=1)
    ax.set_xticks(pos, labels, rotation=60, ha="right", fontsize=8)
    ax.set_xlim(-0.6, max(len(values), 8) - 0.4)
    ax.set_ylim(0.0, max(values) * 1.2 if max(values) > 0 else 1.0)
    ax.set_ylabel("evidential uncertainty u = K / sum(alpha)")
    if not data["words"]:
        ax.text(
            0.5,
            0.5,
            "no candidate attribute (present with confidence > attr-conf)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=9,
        )
    ax.set_title(title, fontsize=9)
    fig.subplots_adjust(left=0.03, right=0.98, top=0.88, bottom=0.30, wspace=0.18)
    return fig


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = list_json(args.json_fold)
    except FileNotFoundError as err:
        print(
            f"error: {err} (run quantity_single_person_uncertain.py first, or pass --Json-fold)",
            file=sys.stderr,
        )
        return 2
    if not paths:
        print(
            f"error: no *.json files in {args.json_fold}; pass the `json` folder of an "
            "uncertainty run",
            file=sys.stderr,
        )
        return 2
    out = (
        args.save_fold
        if args.save_fold is not None
        else run_folder(args.json_fold) / "visualization"
    )
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    for path in tqdm(paths, desc="charts", unit="image", disable=not args.progress):
        try:
            data = read_chart_data(path)
        except ValueError as err:
            failures.append({"file": str(path), "error": str(err)})
            continue
        root = None if args.image_root is None else Path(args.image_root)
        image, note = load_rgb(data["path"], [root, path.parent, Path.cwd()])
        score = data["score"] if isinstance(data["score"], (int, float)) else float("nan")
        title = (
            f"{Path(str(data['path'] or '?')).name}: label {data['label']}, recognition top-1 "
            f"{data['pred']} "
            f"(p = {score:.3f}); uncertainty of the original {data['u0']:.4f}"
            + (f"\n{note}" if note else "")
        )
        save_figure(
            chart(data, image, title, tuple(args.figsize)), out / f"{path.stem}.png", dpi=args.dpi
        )
    return finish(out, SCRIPT, failures, len(paths))


if __name__ == "__main__":
    sys.exit(main())
