"""Heat-map overlays, the per-pair composite figure and the ``cam/`` folders (METHOD.md section 4).

Visualisation levels (``--visualization``, :data:`LEVELS`):

* ``"none"``: nothing.
* ``"summary"`` (default): one composite figure per pair, ``<run>/cam/<n>.png``
  (:mod:`utils.explain.composite`: both faces, H_d of each direction, the
  top-k word maps with their erased regions outlined and score changes).
* ``"full"``: the composite plus every map of every attribute. For pair n,
  ``<run>/cam/<n>-n1-n2/`` holds image 1 explained against image 2 and
  ``<n>-n2-n1/`` image 2 against image 1 (folder names come from the pair
  index only, never from input paths). Each folder has:

  * ``H_t.jpg``, ``H_f.jpg``, ``H_d.jpg``: JET overlays of the maps upsampled
    (bilinear) to the image size, with a colour-scale strip on the right
    (top = 1, bottom = 0; :func:`overlay_with_scale`);
  * per attribute j (``<jj>`` two digits, ``<word>`` = its word for the
    predicted class, e.g. ``07-no_Sideburns``): ``attr-<jj>-<word>-H_attr.jpg``,
    ``attr-<jj>-<word>-J.jpg`` (overlays as above), ``attr-<jj>-<word>-mask.png``
    (white = erased, image size) and ``attr-<jj>-<word>-erased.jpg`` (image size).

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


#: Visualisation levels of the pair scripts (module docstring).
LEVELS = ("none", "summary", "full")
SCALE_GAP = 2  # white pixels between an overlay and its colour-scale strip


def upsample_map(heat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a (h, w) map to ``shape`` = (H, W), clipped to [0, 1] (NaN -> 0).

    The maps live at the recognition net's input size, which is the whole image resized, so
    upsampling puts each map value back over the image pixels it describes.
    """
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    h, w = int(shape[0]), int(shape[1])
    if heat.shape == (h, w):
        return heat
    return np.clip(cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def scale_strip(height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8 BGR JET colour scale, 1 at the top, 0 at the bottom."""
    ramp = np.linspace(255, 0, max(int(height), 1)).astype(np.uint8)[:, None]
    return cv2.applyColorMap(np.repeat(ramp, max(int(width), 1), axis=1), cv2.COLORMAP_JET)


def overlay_with_scale(image_bgr: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The map upsampled to the image, blended over it, and a colour-scale strip on the right.

    Args:
        image_bgr: (H, W, 3) uint8 image (the canvas the map was computed on).
        heat: (h, w) map in [0, 1] at any size.
        alpha: weight of the colour map.

    Returns:
        (H, W + 2 + s, 3) uint8 BGR with s = max(4, W // 12): the overlay, a 2-pixel white
        gap, then the scale (top = 1, bottom = 0).
    """
    h, w = image_bgr.shape[:2]
    blended = overlay(image_bgr, upsample_map(heat, (h, w)), alpha)
    gap = np.full((h, SCALE_GAP, 3), 255, np.uint8)
    return np.concatenate([blended, gap, scale_strip(h, max(4, w // 12))], axis=1)


def write_direction(
    folder: Path, d: DirectionExplanation, vocabulary: Vocabulary = CELEBA30
) -> None:
    """Write one direction's overlays, masks and erased images into ``folder`` (level full)."""
    image = d.eraser.image
    for name in ("H_t", "H_f", "H_d"):
        atomic_write_image(folder / f"{name}.jpg", overlay_with_scale(image, getattr(d, name)))
    for j in range(len(d.J)):
        label = attribute_label(j, int(d.attr_class[j]), vocabulary)
        atomic_write_image(
            folder / f"attr-{label}-H_attr.jpg", overlay_with_scale(image, d.H_attr[j])
        )
        atomic_write_image(folder / f"attr-{label}-J.jpg", overlay_with_scale(image, d.J[j]))
        mask = d.mask_raw(j)
        atomic_write_image(folder / f"attr-{label}-mask.png", mask.astype(np.uint8) * 255)
        atomic_write_image(folder / f"attr-{label}-erased.jpg", d.eraser(mask))


def direction_folders(cam_dir: str | Path, pair_index: int) -> list[Path]:
    """``[<cam_dir>/<n>-n1-n2, <cam_dir>/<n>-n2-n1]`` (level full)."""
    cam_dir = Path(cam_dir)
    return [cam_dir / f"{int(pair_index)}-n1-n2", cam_dir / f"{int(pair_index)}-n2-n1"]


def composite_path(cam_dir: str | Path, pair_index: int) -> Path:
    """``<cam_dir>/<n>.png``: the pair's composite figure (levels summary and full)."""
    return Path(cam_dir) / f"{int(pair_index)}.png"


def pair_outputs(cam_dir: str | Path, pair_index: int) -> list[Path]:
    """Every visual output a pair may have (removed with a stale record)."""
    return [*direction_folders(cam_dir, pair_index), composite_path(cam_dir, pair_index)]


def write_pair(cam_dir: str | Path, pair_index: int, ex: PairExplanation) -> list[Path]:
    """Write both directions of pair ``pair_index`` under ``cam_dir``; returns the two folders."""
    folders = direction_folders(cam_dir, pair_index)
    for folder, d in zip(folders, ex.directions, strict=True):
        write_direction(folder, d, ex.vocabulary or CELEBA30)
    return folders


def display_name(path: str | Path) -> str:
    """``<folder>/<file>`` of an image path: how figures name an image."""
    path = Path(path)
    return "/".join(p for p in (path.parent.name, path.name) if p)


def write_visuals(
    level: str,
    cam_dir: str | Path,
    pair_index: int,
    ex: PairExplanation,
    names: tuple[str, str] = ("image 1", "image 2"),
    **composite: object,
) -> list[Path]:
    """The visual outputs of one pair at ``level`` (module docstring); returns what was written.

    Args:
        level: "none", "summary" or "full".
        cam_dir: ``<run>/cam``.
        pair_index: the pair's index.
        ex: its explanation.
        names: how the two images are named in the composite (:func:`display_name`).
        **composite: more arguments of :func:`utils.explain.composite.composite_figure`.
    """
    if level not in LEVELS:
        raise ValueError(f"visualization level {level!r} not in {LEVELS}")
    if level == "none":
        return []
    from utils.base.atomic import atomic_write_figure
    from utils.explain.composite import composite_figure

    written = [
        atomic_write_figure(
            composite_path(cam_dir, pair_index),
            composite_figure(ex, names=names, reuse=True, **composite),
            fast_png=True,
        )
    ]
    if level == "full":
        written += write_pair(cam_dir, pair_index, ex)
    return written
