"""The comparison table (markdown + JSON rows) and the Fig. 4-style figure."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from models.attributes import ATTRIBUTES
from utils.base.tables import format_table
from utils.explain.visualize import overlay

# (key, header, direction) of the table columns; direction: "+" higher is better, "-" lower is
# better.
COLUMNS = [
    ("game.hit_area", "hit area 1-50% (+)", "+"),
    ("game.hit_at_10", "hit@10% (+)", "+"),
    ("game.flip", "flip at px share (-)", "-"),
    ("fw.genuine_deletion", "FW gen del (-)", "-"),
    ("fw.genuine_insertion", "FW gen ins (+)", "+"),
    ("fw.impostor_deletion", "FW imp del (+)", "+"),
    ("fw.impostor_insertion", "FW imp ins (-)", "-"),
    ("swap.hit_area", "real swap hit area 1-50% (+)", "+"),
    ("swap.hit_at_10", "real swap hit@10% (+)", "+"),
    ("real.genuine_deletion", "real gen del (-)", "-"),
    ("real.genuine_insertion", "real gen ins (+)", "+"),
    ("real.impostor_deletion", "real imp del (+)", "+"),
    ("real.impostor_insertion", "real imp ins (-)", "-"),
    ("seconds", "s / expl.", "-"),
    ("real.seconds", "real s / expl.", "-"),
]


def summarise(values: list[float]) -> dict:
    """Mean, standard error and count of a list (empty -> None values)."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return {"mean": None, "sem": None, "n": 0}
    sem = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "sem": sem, "n": int(v.size)}


def markdown_table(rows: dict[str, dict[str, dict]], chance: dict[str, float]) -> str:
    """rows[method][column key] = summarise(...); chance[column key] = value (analytic chance
    level)."""
    keys = [k for k, _, _ in COLUMNS if any(rows[m].get(k, {}).get("n") for m in rows)]
    heads = [h for k, h, _ in COLUMNS if k in keys]

    def cell(s: dict | None, key: str) -> str:
        if not s or s.get("mean") is None:
            return "-"
        txt = f"{s['mean']:.3f}"
        return txt + (f" ± {s['sem']:.3f}" if key.startswith(("game.", "swap.")) else "")

    body = [[m, *(cell(cols.get(k), k) for k in keys)] for m, cols in rows.items()]
    body.append(
        ["chance (region share)", *(f"{chance[k]:.3f}" if k in chance else "-" for k in keys)]
    )
    return format_table(["method", *heads], body)


def fig4(columns: list[dict], methods: list[str], path: Path) -> Path:
    """Probe / non-mate / mate rows, then one row of maps per method; Sim2Word's word under each
    column.

    Args:
        columns: per triplet {"probe", "nonmate", "mate", "region", "attribute", "maps": {method:
        map},
            "word": str}.
        methods: row order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ["probe", "non-mate (twin)", "mate"] + methods
    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(1.6 * len(columns) + 1.2, 1.6 * len(rows)), squeeze=False
    )
    for c, col in enumerate(columns):
        probe = col["probe"].copy()
        contours, _ = cv2.findContours(
            col["region"].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        cv2.drawContours(probe, contours, -1, (0, 255, 0), 1)
        tiles = [probe, col["nonmate"], col["mate"]] + [
            overlay(col["probe"], col["maps"][m]) for m in methods
        ]
        for r, tile in enumerate(tiles):
            ax = axes[r, c]
            ax.imshow(tile[:, :, ::-1])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(rows[r], fontsize=7, rotation=0, ha="right", va="center")
        axes[0, c].set_title(f"changed: {ATTRIBUTES[col['attribute']]}", fontsize=7)
        axes[-1, c].set_xlabel(f"Sim2Word: {col['word']}", fontsize=7)
    fig.suptitle(
        "Probe (green: true changed region) / non-mate twin / mate, and each method's map on the "
        "probe",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
