"""Figures of the ``results/`` analysis scripts (matplotlib, no pyplot state).

Figures are built on :class:`matplotlib.figure.Figure` directly (no global
pyplot state, no GUI backend), rendered to bytes and written atomically, so an
interrupted run never leaves a half-written image. The pixel size of a saved
figure is exactly ``figsize * dpi`` (no ``bbox_inches="tight"``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from utils.base.atomic import atomic_write_figure
from utils.faces.image_io import ImageReadError, read_image

PLACEHOLDER_GREY = 128


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Render ``fig`` (format from the suffix: png/jpg/pdf...) and write it atomically."""
    return atomic_write_figure(path, fig, dpi)


def roc_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float | None]],
    title: str,
    fpr_floor: float = 1e-6,
    figsize: tuple[float, float] = (6.0, 5.0),
) -> Figure:
    """ROC curves on a log-scale FPR axis.

    Args:
        curves: ``{label: (fpr (K,), tpr (K,), auc or None)}``.
        title: axes title.
        fpr_floor: FPR values below it (the FPR = 0 points) are drawn at it, since
            a log axis cannot show 0; the axis spans ``[fpr_floor, 1]``.
        figsize: inches.
    """
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot()
    for label, (fpr, tpr, auc) in curves.items():
        name = f"{label} (AUC {'n/a' if auc is None else f'{auc:.4f}'})"
        ax.step(np.maximum(fpr, fpr_floor), tpr, where="post", label=name)
    ax.set_xscale("log")
    ax.set_xlim(fpr_floor, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(f"false positive rate (log scale; FPR = 0 drawn at {fpr_floor:g})")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def resolve_image(path: str | None, roots: Sequence[str | os.PathLike | None]) -> Path | None:
    """The first existing file for ``path``: as is if absolute, else under each root in order."""
    if not path:
        return None
    p = Path(path)
    if p.is_absolute():
        return p if p.is_file() else None
    for root in roots:
        if root is not None and (Path(root) / p).is_file():
            return Path(root) / p
    return None


def load_rgb(
    path: str | None, roots: Sequence[str | os.PathLike | None]
) -> tuple[np.ndarray | None, str]:
    """Read an image for display.

    Returns:
        ``(rgb uint8 (H, W, 3) or None, note)``; the note says why it is missing.
    """
    found = resolve_image(path, roots)
    if found is None:
        return None, f"image not found: {path}"
    try:
        img = read_image(found)  # BGR uint8, any format, EXIF orientation applied
    except ImageReadError as err:
        return None, f"image unreadable: {err}"
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), ""


def pair_figure(
    images: Sequence[np.ndarray | None],
    captions: Sequence[str],
    title: str,
    figsize: tuple[float, float] = (10.0, 6.5),
    caption_height: float = 1.3,
) -> Figure:
    """Two images side by side, each captioned below; a missing image is a grey placeholder.

    Args:
        images: two RGB uint8 ``(H, W, 3)`` arrays or ``None``.
        captions: one multi-line caption per image.
        title: the super-title.
        figsize: inches.
        caption_height: height of the caption row relative to the image row's 3.
    """
    fig = Figure(figsize=figsize)
    # Row 0: the images; row 1: text-only axes holding the captions, so they always fit.
    axes = fig.subplots(2, 2, gridspec_kw={"height_ratios": [3.0, caption_height]})
    for ax, text_ax, img, caption in zip(axes[0], axes[1], images, captions, strict=True):
        if img is None:
            ax.imshow(np.full((112, 112, 3), PLACEHOLDER_GREY, dtype=np.uint8))
            ax.text(56, 56, "image\nnot available", ha="center", va="center", fontsize=10)
        else:
            ax.imshow(img)
        ax.set_xticks([])
        ax.set_yticks([])
        text_ax.axis("off")
        text_ax.text(
            0.0,
            1.0,
            caption,
            ha="left",
            va="top",
            fontsize=9,
            family="monospace",
            transform=text_ax.transAxes,
        )
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.04, right=0.96, top=0.88, bottom=0.02, hspace=0.06, wspace=0.12)
    return fig


def bar_figure(
    panels: Sequence[tuple[str, Sequence[str], Sequence[int]]],
    figsize: tuple[float, float] = (10.0, 8.0),
) -> Figure:
    """Horizontal bar charts, one panel per ``(title, labels, counts)``, largest bar on top."""
    fig = Figure(figsize=figsize)
    axes = np.atleast_1d(fig.subplots(len(panels), 1))
    for ax, (title, labels, counts) in zip(axes, panels, strict=True):
        if len(labels) == 0:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        else:
            pos = np.arange(len(labels))[::-1]
            ax.barh(pos, counts)
            ax.set_yticks(pos, labels, fontsize=8)
            for y, c in zip(pos, counts, strict=True):
                ax.text(c, y, f" {c}", va="center", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("count")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def add_pair_figure_flags(parser, figsize: tuple[float, float]) -> None:
    """The flags of the results scripts that draw one figure per pair: ``--image-root``,
    ``--figures/--no-figures``, ``--max-figures``, ``--figsize``, ``--dpi``, ``--image-format``."""
    import argparse

    from utils.run import cli

    cli.add_image_root(
        parser,
        "folder that relative image-path1/image-path2 are resolved against first "
        "(then the JSON's folder, then the current directory)",
    )
    cli.add_flag(
        parser,
        "--figures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw one figure per pair (--no-figures: only the JSON summary)",
    )
    cli.add_flag(
        parser,
        "--max-figures",
        type=cli.non_negative_int,
        default=None,
        help="draw figures for the first N pairs only (default: all)",
    )
    cli.add_figure_flags(parser, figsize)
    cli.add_flag(
        parser,
        "--image-format",
        choices=("png", "jpg"),
        default="png",
        help="figure file format (default: %(default)s)",
    )


# ----------------------------------------------------------------------------- uncertainty charts
UNCERTAINTY_COLOURS = {"original": "#d62728", "raise": "#1f77b4", "lower": "#9ecae1"}
LABEL_PT = 8  # the smallest text of a chart, in points


def _finite_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def read_chart_data(path: str | os.PathLike) -> dict[str, Any]:
    """The fields an uncertainty chart needs from a per-image record, validated.

    Returns:
        ``{"u0", "words", "u", "path", "label", "pred", "score"}``.

    Raises:
        ValueError: naming the file and the bad key.
    """
    from utils.base import safejson

    path = Path(path)
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
        "u0": _finite_number(rec.get("uncertainty-original"), "uncertainty-original"),
        "words": [str(a.get("word", "?")) for a in attrs],
        "u": [
            _finite_number(a.get("uncertainty"), f"uncertainty of {a.get('word')!r}") for a in attrs
        ],
        "path": rec.get("image-path"),
        "label": rec.get("label"),
        "pred": rec.get("predicted-identity"),
        "score": rec.get("predicted-score"),
    }


def uncertainty_title(data: dict[str, Any]) -> str:
    """The chart's title: label, recognition top-1 and p, the original's uncertainty (no file
    name: it is written under the image)."""
    score = data["score"] if isinstance(data["score"], (int, float)) else float("nan")
    return (
        f"identity {data['label']}: recognised as {data['pred']} (p = {score:.3f}); "
        f"uncertainty of the original u = {data['u0']:.4f}"
    )


def uncertainty_chart(
    data: dict[str, Any],
    image: np.ndarray | None,
    title: str,
    figsize: tuple[float, float] = (12.0, 5.0),
    note: str = "",
) -> Figure:
    """Image on the left; on the right one horizontal bar per image: the original first (top),
    then each candidate attribute erased, largest uncertainty first.

    Bars are labelled with their value at their end (8 pt, horizontal); the original's value is
    also a dashed line; the legend sits above the bars, never over them.

    Args:
        data: :func:`read_chart_data`.
        image: the image (RGB uint8) or ``None`` (a grey placeholder).
        title: the figure title (:func:`uncertainty_title`).
        figsize: inches.
        note: a line under the image (its file name, or why it is missing).
    """
    from matplotlib.patches import Patch

    fig = Figure(figsize=figsize)
    ax_img, ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 3.2]})
    ax_img.imshow(
        image if image is not None else np.full((112, 112, 3), PLACEHOLDER_GREY, np.uint8)
    )
    if image is None:
        ax_img.text(
            0.5,
            0.5,
            "image\nnot available",
            ha="center",
            va="center",
            fontsize=LABEL_PT + 2,
            transform=ax_img.transAxes,
        )
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    if note:
        ax_img.set_xlabel(note, fontsize=LABEL_PT)
    labels, values = ["original", *data["words"]], [data["u0"], *data["u"]]
    colours = [UNCERTAINTY_COLOURS["original"]] + [
        UNCERTAINTY_COLOURS["raise" if u > data["u0"] else "lower"] for u in data["u"]
    ]
    pos = np.arange(len(values))[::-1]  # the original on top
    ax.barh(pos, values, color=colours, height=0.7)
    top = max(values) if max(values) > 0 else 1.0
    for y, u in zip(pos, values, strict=True):
        ax.text(u + 0.01 * top, y, f"{u:.3f}", va="center", ha="left", fontsize=LABEL_PT)
    ax.axvline(data["u0"], color=UNCERTAINTY_COLOURS["original"], linestyle="--", linewidth=1)
    ax.set_yticks(pos, labels, fontsize=LABEL_PT + 1)
    ax.set_ylim(-0.6, len(values) - 0.4)
    ax.set_xlim(0.0, top * 1.18)
    ax.tick_params(axis="x", labelsize=LABEL_PT)
    ax.set_xlabel(
        "evidential uncertainty u = K / sum(alpha) (larger = the net is less sure)",
        fontsize=LABEL_PT + 1,
    )
    if not data["words"]:
        ax.text(
            0.5,
            0.5,
            "no candidate attribute (present with confidence > attr-conf)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=LABEL_PT + 1,
        )
    ax.legend(
        handles=[
            Patch(color=UNCERTAINTY_COLOURS["original"], label="original image"),
            Patch(
                color=UNCERTAINTY_COLOURS["raise"], label="attribute erased: u above the original"
            ),
            Patch(color=UNCERTAINTY_COLOURS["lower"], label="attribute erased: u not above"),
        ],
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=3,
        fontsize=LABEL_PT,
        frameon=False,
        borderaxespad=0.2,
    )
    fig.suptitle(title, fontsize=LABEL_PT + 2)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.84, bottom=0.12, wspace=0.32)
    return fig
