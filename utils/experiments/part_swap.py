"""Part swaps of real faces: a ground truth for the part words (issue 15, the part-swap check).

:func:`swap_part` replaces one facial part of face A by the same part of
face B with Poisson blending (``cv2.seamlessClone``, Perez et al. 2003), so
the changed part is known. Both faces are canvases of one template and size
(aligned the same way); their 68 landmarks (:class:`models.face_geometry.
Landmarker`) define the parts exactly as the ``real-faces`` region words do
(:func:`models.face_parts.part_masks`):

1. B is warped onto A by the similarity that best takes B's landmarks of
   the part (:data:`PART_FIT_POINTS`) onto A's (least squares,
   :func:`utils.faces.align.umeyama`), so B's part lands where A's is;
2. the blended region is the union of A's part region and B's warped part
   region, grown by :data:`MASK_GROW` of the eye distance and kept 2 pixels
   away from the canvas border;
3. ``cv2.seamlessClone(NORMAL_CLONE)`` solves the Poisson equation in that
   region (B's gradients inside, A's values on its boundary). OpenCV also
   nudges pixels of the region's bounding box outside the region (by a few
   grey levels) and writes into the mask it is given, so the result is
   composited: outside the region every pixel is A's, unchanged.

The returned mask is exactly the set of pixels that may differ from A, in
canvas coordinates. Everything is deterministic (no randomness).

**Identity split** (:func:`identity_split`): the identities (folder names of
``shared/data/real_faces``) sorted by the SHA-256 hex digest of their UTF-8
name; the first ``n // 2`` are the *tuning* part, the rest the *held-out*
part. Settings of the part-swap check may be chosen on tuning identities
only; the held-out identities are used for reporting and never for choosing
anything. On the 28 identities of ``real_faces`` the held-out part is 14
identities with 34 photos (``python check_real_attributes.py split`` lists them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from models.face_parts import PART_WORDS, part_masks
from utils.faces.align import umeyama

#: Landmarks (iBUG 68-point indices) whose positions align B's part onto A's.
PART_FIT_POINTS: dict[str, tuple[int, ...]] = {
    "Eyes": tuple(range(36, 48)),
    "Eyebrows": tuple(range(17, 27)),
    "Nose": tuple(range(27, 36)),
    "Mouth": tuple(range(48, 68)),
    "Chin": (*range(4, 13), 48, 54, 57),
    "Cheeks": (*range(1, 16), 31, 35, 36, 45, 48, 54),
    "Forehead": (*range(17, 27), 36, 45),
    "Hair": tuple(range(0, 27)),
}
#: The blended region is grown by this fraction of the eye distance (room for the blend).
MASK_GROW = 0.05
_BORDER = 2  # pixels kept out of the region along the canvas border (seamlessClone needs room)


@dataclass(frozen=True)
class PartSwap:
    """One swap.

    Attributes:
        image: (H, W, 3) uint8 BGR: face A with B's part.
        mask: (H, W) bool: the blended region, the only pixels that may differ from A.
        part: the part word (one of :data:`models.face_parts.PART_WORDS`).
        warp: (2, 3) similarity taking B's pixel coordinates onto A's.
    """

    image: np.ndarray
    mask: np.ndarray
    part: str
    warp: np.ndarray


def identity_split(identities: Iterable[str]) -> tuple[list[str], list[str]]:
    """(tuning, held-out) identities by the fixed rule of the module docstring.

    Args:
        identities: identity names (duplicates are ignored).

    Returns:
        Two lists, each in the rule's (hash) order.
    """
    ordered = sorted(set(identities), key=lambda n: hashlib.sha256(n.encode("utf-8")).hexdigest())
    half = len(ordered) // 2
    return ordered[:half], ordered[half:]


def _eye_distance(points68: np.ndarray) -> float:
    return float(np.hypot(*(points68[42:48].mean(axis=0) - points68[36:42].mean(axis=0))))


def swap_part(
    face_a: np.ndarray, face_b: np.ndarray, part: str, points_a: np.ndarray, points_b: np.ndarray
) -> PartSwap:
    """Replace ``part`` of ``face_a`` by the same part of ``face_b`` (module docstring).

    Args:
        face_a, face_b: (H, W, 3) uint8 BGR canvases of the same size and template.
        part: a part word of :data:`models.face_parts.PART_WORDS`.
        points_a, points_b: (68, 2) landmarks of each face, in its pixels.

    Returns:
        A :class:`PartSwap`.

    Raises:
        ValueError: unknown part, mismatched images, bad landmarks, or a part region with no
            pixel on the canvas.
    """
    if part not in PART_FIT_POINTS:
        raise ValueError(f"unknown part {part!r}; choose one of {', '.join(PART_WORDS)}")
    for name, img in (("face_a", face_a), ("face_b", face_b)):
        if (
            not isinstance(img, np.ndarray)
            or img.dtype != np.uint8
            or img.ndim != 3
            or img.shape[2] != 3
        ):
            raise ValueError(
                f"{name} must be an (H, W, 3) uint8 BGR image, got "
                f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}"
            )
    if face_a.shape != face_b.shape:
        raise ValueError(
            f"faces must be canvases of one size, got {face_a.shape} and {face_b.shape}"
        )
    pa, pb = (np.asarray(p, dtype=np.float64) for p in (points_a, points_b))
    if pa.shape != (68, 2) or pb.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2) arrays, got {pa.shape} and {pb.shape}")
    h, w = face_a.shape[:2]
    index = PART_WORDS.index(part)
    fit = list(PART_FIT_POINTS[part])
    warp = umeyama(pb[fit], pa[fit])
    warped_b = cv2.warpAffine(
        face_b, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    pb_on_a = pb @ warp[:, :2].T + warp[:, 2]
    region = part_masks(pa, (h, w))[index] | part_masks(pb_on_a, (h, w))[index]
    grow = max(1, round(MASK_GROW * _eye_distance(pa)))
    mask = cv2.dilate(
        region.astype(np.uint8) * 255,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)),
    )
    mask[:_BORDER], mask[-_BORDER:], mask[:, :_BORDER], mask[:, -_BORDER:] = 0, 0, 0, 0
    if not mask.any():
        raise ValueError(f"the {part} region has no pixel inside the {w}x{h} canvas")
    x, y, bw, bh = cv2.boundingRect(mask)
    cloned = cv2.seamlessClone(
        warped_b, face_a, mask.copy(), (x + bw // 2, y + bh // 2), cv2.NORMAL_CLONE
    )
    inside = mask > 0
    image = np.where(inside[..., None], cloned, face_a)
    return PartSwap(image=image, mask=inside, part=part, warp=warp)
