"""Heat-map overlays and the per-pair ``cam/`` folders (METHOD.md section 4).

For pair n, ``<run>/cam/<n>-n1-n2/`` holds image 1 explained against image 2
and ``<n>-n2-n1/`` image 2 against image 1 (folder names come from the pair
index only, never from input paths). Each folder has:

* ``H_t.jpg``, ``H_f.jpg``, ``H_d.jpg``: JET overlays on the image resized to
  the recognition net's input size;
* per attribute j (``<jj>`` two digits, ``<word>`` = its word for the
  predicted class, e.g. ``07-no_Sideburns``): ``attr-<jj>-<word>-H_attr.jpg``,
  ``attr-<jj>-<word>-J.jpg`` (overlays), ``attr-<jj>-<word>-mask.png`` (white =
  erased, raw size) and ``attr-<jj>-<word>-erased.jpg`` (raw size).

Every file is written atomically.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from models.attributes import CELEBA30, Vocabulary
from utils.base.atomic import atomic_write_image
from utils.explain.sim2word import DirectionExplanation, PairExplanation


def overlay(image_bgr: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """JET colour map of ``heat`` blended over the image.

    Args:
        image_bgr: (H, W, 3) uint8 (resized to the map's size if needed).
        heat: (h, w) float map in [0, 1].
        alpha: weight of the colour map.

    Returns:
        (h, w, 3) uint8 BGR.
    """
    h, w = heat.shape
    if image_bgr.shape[:2] != (h, w):
        image_bgr = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    heat_u8 = np.uint8(np.clip(np.nan_to_num(heat), 0.0, 1.0) * 255)
    colour = cv2.applyColorMap(heat_u8, cv2.COLORMAP_JET)
    return cv2.addWeighted(colour, alpha, image_bgr, 1 - alpha, 0)


def _safe(word: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", word).strip("_") or "attr"


def attribute_label(j: int, cls: int, vocabulary: Vocabulary = CELEBA30) -> str:
    """File-name label ``<jj>-<word>`` of head j at class ``cls`` (words of ``vocabulary``)."""
    word = vocabulary.word_for(j, cls) if j < len(vocabulary) else f"head{j}"
    return f"{j:02d}-{_safe(word)}"


def write_direction(
    folder: Path, d: DirectionExplanation, vocabulary: Vocabulary = CELEBA30
) -> None:
    """Write one direction's overlays, masks and erased images into ``folder``."""
    image = d.eraser.image
    for name in ("H_t", "H_f", "H_d"):
        atomic_write_image(folder / f"{name}.jpg", overlay(image, getattr(d, name)))
    for j in range(len(d.J)):
        label = attribute_label(j, int(d.attr_class[j]), vocabulary)
        atomic_write_image(folder / f"attr-{label}-H_attr.jpg", overlay(image, d.H_attr[j]))
        atomic_write_image(folder / f"attr-{label}-J.jpg", overlay(image, d.J[j]))
        mask = d.mask_raw(j)
        atomic_write_image(folder / f"attr-{label}-mask.png", mask.astype(np.uint8) * 255)
        atomic_write_image(folder / f"attr-{label}-erased.jpg", d.eraser(mask))


def write_pair(cam_dir: str | Path, pair_index: int, ex: PairExplanation) -> list[Path]:
    """Write both directions of pair ``pair_index`` under ``cam_dir``; returns the two folders."""
    cam_dir = Path(cam_dir)
    folders = [cam_dir / f"{int(pair_index)}-n1-n2", cam_dir / f"{int(pair_index)}-n2-n1"]
    for folder, d in zip(folders, ex.directions, strict=True):
        write_direction(folder, d, ex.vocabulary or CELEBA30)
    return folders
