"""Measurements behind docs/REAL_ATTRIBUTES.md: the ``real-attributes`` net on real photos.

All on the photos of a folder per identity (``shared/data/real_faces``):

* :func:`chip_agreement`: gender and age from dlib's own chips of the raw
  photo (the *direct* path: HOG box, 5 landmarks, ``get_face_chip``) against
  the net's *canvas* path (chips cut by the net out of the canvas it is
  given) for three canvases: the raw photo, dlib's 150 chip
  (``"dlib-chip-150"``) and an ArcFace 112 crop (``"arcface-112"``; made here
  from the 68-point predictor's eye centres, nose tip and mouth corners with
  :func:`utils.faces.align.align_face`), each with the template and with
  detected geometry.
* :func:`sanity_table`: per identity, the gender and age words of the direct
  path and of the canvas path on dlib chips.
* :func:`part_agreement`: overlap (IoU) of the part regions drawn from the
  68-point predictor and from the mean shape placed by the 5 landmarks.
* :func:`mean_shape`: the mean 68-point shape of the tuning identities in
  the unit face frame (:data:`models.face_parts.MEAN_SHAPE68_UNIT`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models import face_geometry as geo
from models.attributes import REAL_FACES, REAL_FACES_AGE_GROUPS
from models.dlib_age_gender import (
    AGE_BIN_AGES,
    AGE_CHIP_SIZE,
    CHIP_PADDING,
    DLIB_MEAN_RGB,
    GENDER_CHIP_SIZE,
    chip_tensor,
)
from models.face_parts import PART_WORDS, part_masks
from utils.experiments.part_swap import identity_split
from utils.faces.align import align_face
from utils.faces.image_io import read_image

#: Canvas kinds of :func:`chip_agreement`: (name, template or None).
CANVASES = (("raw", None), ("dlib-chip-150", "dlib-chip-150"), ("arcface-112", "arcface-112"))
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


@dataclass(frozen=True)
class Photo:
    identity: str
    path: Path


def list_photos(root: str | Path) -> list[Photo]:
    """Images of ``root/<identity>/*`` (sorted), skipping folders without images."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"photo folder {root} not found; pass --root")
    photos = [
        Photo(d.name, f)
        for d in sorted(root.iterdir())
        if d.is_dir()
        for f in sorted(d.iterdir())
        if f.suffix.lower() in _IMAGE_SUFFIXES
    ]
    if not photos:
        raise ValueError(f"no images in {root}/<identity>/")
    return photos


def _predict_chips(
    net, chips_rgb_g: np.ndarray, chips_rgb_a: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """P(male) (N,) and age class probabilities (N, 81) of uint8 RGB chips."""
    with torch.no_grad():
        p_male = torch.softmax(net.gender(chip_tensor(chips_rgb_g)), 1)[:, 1].numpy()
        p_age = torch.softmax(net.age(chip_tensor(chips_rgb_a)), 1).numpy()
    return p_male, p_age


def _predict_canvas(net, canvas: np.ndarray) -> tuple[float, np.ndarray]:
    """P(male) and age class probabilities from the net's canvas path."""
    x = net.preprocess([canvas])
    with torch.no_grad():
        chips_age = net.chips(x)[1]
        mean = torch.tensor(DLIB_MEAN_RGB, dtype=x.dtype)[:, None, None]
        p_male = torch.softmax(net(x)[0], 1)[0, 0].item()
        p_age = torch.softmax(net.age((chips_age - mean) / 256.0), 1)[0].numpy()
    return p_male, p_age


def expected_age(p_age: np.ndarray) -> np.ndarray:
    """Expected age of class probabilities (..., 81), with the package's class ages."""
    return p_age @ np.asarray(AGE_BIN_AGES, dtype=np.float64)


def age_group(p_age: np.ndarray) -> np.ndarray:
    """Index of the most probable age group (summed class probabilities) of (..., 81)."""
    sums = np.stack([p_age[..., lo : hi + 1].sum(-1) for _, lo, hi in REAL_FACES_AGE_GROUPS], -1)
    return sums.argmax(-1)


def arcface_canvas(image: np.ndarray, points68: np.ndarray) -> np.ndarray:
    """112 x 112 ArcFace crop from the 68-point eye centres, nose tip (30) and mouth corners."""
    five = np.stack(
        [points68[36:42].mean(0), points68[42:48].mean(0), points68[30], points68[48], points68[54]]
    )
    return align_face(image, five, 112)


def collect(photos: list[Photo], net, arcface_fill: str | None = None) -> list[dict]:
    """Per photo: direct-path predictions and canvas-path ones of every canvas and geometry.

    ``arcface_fill`` overrides the fill of chip pixels outside ``arcface-112`` canvases
    (``"zeros"`` or ``"reflection"``; default: the net's own choice).
    """
    landmarker = geo.Landmarker(points68=True)
    rows = []
    for photo in tqdm(photos, desc="photos", unit="photo"):
        image = read_image(photo.path)
        found = landmarker(image)
        rgb = [
            landmarker.face_chip(image, s, CHIP_PADDING, found)[..., ::-1]
            for s in (GENDER_CHIP_SIZE, AGE_CHIP_SIZE)
        ]
        p_male, p_age = _predict_chips(net, rgb[0][None], rgb[1][None])
        row = {
            "identity": photo.identity,
            "path": str(photo.path),
            "detection": found.method,
            "direct": (float(p_male[0]), p_age[0]),
        }
        canvases = {
            "raw": image,
            "dlib-chip-150": landmarker.face_chip(image, 150, 0.25, found),
            "arcface-112": arcface_canvas(image, found.points68),
        }
        for name, template in CANVASES:
            for geometry in ("template", "detect") if template else ("detect",):
                net.set_canvas_template(template, geometry)
                if template == "arcface-112" and arcface_fill:
                    net.outside = arcface_fill
                row[f"{name}/{geometry}"] = _predict_canvas(net, canvases[name])
        rows.append(row)
    net.set_canvas_template(None)
    return rows


def chip_agreement(rows: list[dict], part: str = "all") -> list[dict]:
    """Agreement of each canvas path with the direct path (table rows).

    Args:
        rows: from :func:`collect`.
        part: ``"all"`` photos, or those of the ``"tuning"`` or ``"held-out"`` identities
            (:func:`utils.experiments.part_swap.identity_split`).
    """
    if part != "all":
        tuning, held_out = identity_split(r["identity"] for r in rows)
        keep = set(tuning if part == "tuning" else held_out)
        rows = [r for r in rows if r["identity"] in keep]
    keys = [k for k in rows[0] if "/" in k]
    d_male = np.array([r["direct"][0] for r in rows])
    d_age = np.stack([r["direct"][1] for r in rows])
    out = []
    for key in keys:
        male = np.array([r[key][0] for r in rows])
        ages = np.stack([r[key][1] for r in rows])
        gap = np.abs(expected_age(ages) - expected_age(d_age))
        out.append(
            {
                "photos": part,
                "canvas/geometry": key,
                "n": len(rows),
                "gender agreement": float(np.mean((male > 0.5) == (d_male > 0.5))),
                "max abs dP(male)": float(np.abs(male - d_male).max()),
                "age-group agreement": float(np.mean(age_group(ages) == age_group(d_age))),
                "mean abs d age": float(gap.mean()),
                "max abs d age": float(gap.max()),
            }
        )
    return out


def sanity_table(rows: list[dict], canvas_key: str = "dlib-chip-150/template") -> list[dict]:
    """Per identity: gender words and age groups of the direct path and of ``canvas_key``."""
    words = REAL_FACES.class_words
    out = []
    for identity in sorted({r["identity"] for r in rows}):
        group = [r for r in rows if r["identity"] == identity]
        entry = {"identity": identity, "photos": len(group)}
        for label, key in (("direct", "direct"), ("canvas", canvas_key)):
            genders = Counter(words[0][0] if r[key][0] > 0.5 else words[0][1] for r in group)
            groups = Counter(words[1][int(age_group(r[key][1]))] for r in group)
            ages = [float(expected_age(r[key][1])) for r in group]
            entry[f"{label} gender"] = ", ".join(f"{w} {n}" for w, n in genders.most_common())
            entry[f"{label} age"] = ", ".join(f"{w} {n}" for w, n in groups.most_common())
            entry[f"{label} E[age]"] = f"{min(ages):.0f}-{max(ages):.0f}"
        out.append(entry)
    return out


def sanity_summary(rows: list[dict], canvas_key: str = "dlib-chip-150/template") -> list[dict]:
    """Identities whose photos all get one gender word / one age group (direct and canvas path).

    Age groups are counted over identities with two or more photos only.
    """
    out = []
    for label, key in (("direct", "direct"), ("canvas " + canvas_key, canvas_key)):
        genders, ages = {}, {}
        for r in rows:
            genders.setdefault(r["identity"], set()).add(r[key][0] > 0.5)
            ages.setdefault(r["identity"], []).append(int(age_group(r[key][1])))
        multi = [a for a in ages.values() if len(a) > 1]
        out.append(
            {
                "path": label,
                "identities": len(genders),
                "one gender": sum(len(g) == 1 for g in genders.values()),
                "with 2+ photos": len(multi),
                "one age group": sum(len(set(a)) == 1 for a in multi),
            }
        )
    return out


def part_agreement(photos: list[Photo], net) -> dict:
    """Mean IoU per part of the 68-point regions vs mean-shape regions on dlib-150 canvases."""
    landmarker = geo.Landmarker(points68=True)
    ious = []
    for photo in tqdm(photos, desc="photos", unit="photo"):
        image = read_image(photo.path)
        canvas = landmarker.face_chip(image, 150, 0.25)
        masks = []
        for part_landmarks in ("68", "mean-shape"):
            net.part_landmarks = part_landmarks
            masks.append(part_masks(net.part_points(canvas), canvas.shape[:2]))
        ious.append([(a & b).sum() / max((a | b).sum(), 1) for a, b in zip(*masks, strict=True)])
    net.part_landmarks = "68"
    mean = np.mean(ious, axis=0)
    return {
        "photos": len(photos),
        **{w: float(v) for w, v in zip(PART_WORDS, mean, strict=True)},
        "mean": float(mean.mean()),
    }


def mean_shape(photos: list[Photo]) -> np.ndarray:
    """Mean (68, 2) landmarks in unit face coordinates over the tuning identities of ``photos``."""
    tuning, _ = identity_split(p.identity for p in photos)
    landmarker = geo.Landmarker(points68=True)
    shapes = []
    for photo in tqdm(
        [p for p in photos if p.identity in set(tuning)], desc="photos", unit="photo"
    ):
        image = read_image(photo.path)
        found = landmarker(image)
        h, w = image.shape[:2]
        shapes.append(
            geo.apply(geo.invert(geo.unit_to_pixels(found.geometry, w, h)), found.points68)
        )
    return np.mean(shapes, axis=0)


def markdown(rows: list[dict], digits: int = 3) -> str:
    """A markdown table of dict rows (floats rounded)."""
    cols = list(rows[0])
    fmt = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
