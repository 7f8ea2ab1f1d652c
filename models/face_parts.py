"""Facial-part regions from 68 landmarks: the region maps of the real-faces part words.

Eight parts, :data:`PART_WORDS`, each a soft map in [0, 1] on the canvas
(:func:`part_maps`), drawn from 68 points in the iBUG 300-W order (jaw 0-16,
eyebrows 17-26, nose 27-35, eyes 36-47, mouth 48-67). The points come either
from dlib's 68-point predictor on the canvas (its training data excludes
commercial use) or from :data:`MEAN_SHAPE68_UNIT` placed by the 5-point fit
(see :mod:`models.real_attributes`).

Scales are fixed fractions of two lengths of the face itself, set from
anatomy, not tuned: ``d``, the distance between the eye centres, and ``t``,
one facial third (eyebrows to the base of the nose; by the classical rule of
thirds the forehead, from eyebrows to hairline, is as high):

=========  ==================================================================
Eyes       each eye's outline (36-41, 42-47) grown by 0.12 d (lids, lashes)
Eyebrows   each brow's line (17-21, 22-26), 0.2 d thick, centred 0.04 d below it
Nose       outline of the nose points 27-35 grown by 0.08 d
Mouth      outer lip outline 48-59 grown by 0.08 d
Chin       jaw 4-12 up to the lower lip (chin and lower jaw), minus the mouth
Cheeks     jaw 1-4 / 12-15, mouth corner, nose wing, lower eyelid; minus eyes,
           eyebrows, nose, mouth and chin
Forehead   from the eyebrow line up by t, minus the eyebrows
Hair       a band 0.6 t high above the forehead and 0.35 d wide beside the
           temples (where hair usually is; landmarks cannot see hair, so on a
           bald head this is skin)
=========  ==================================================================

Each hard region (later rows never take pixels of the facial features before
them) is blurred with a Gaussian of sigma 0.05 d and divided by its maximum.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.attributes import REAL_FACES

#: The part words, in head order of the ``real-faces`` vocabulary (its heads 2..9).
PART_WORDS = tuple(REAL_FACES.attributes[j] for j in sorted(REAL_FACES.region_heads))

#: Mean of dlib's 68-point predictor output in the unit face frame of
#: :mod:`models.face_geometry` (each photo mapped by its own 5-point fit), over the 48 photos of
#: the tuning identities of ``shared/data/real_faces`` (:func:`utils.experiments.part_swap.
#: identity_split`); ``python -m utils.experiments.real_attributes_check mean-shape`` prints it.
MEAN_SHAPE68_UNIT = np.array(
    [
        [-0.097, 0.231],
        [-0.090, 0.386],
        [-0.071, 0.542],
        [-0.043, 0.696],
        [0.012, 0.842],
        [0.102, 0.969],
        [0.215, 1.078],
        [0.347, 1.164],
        [0.500, 1.187],
        [0.653, 1.160],
        [0.785, 1.073],
        [0.898, 0.965],
        [0.988, 0.838],
        [1.041, 0.694],
        [1.068, 0.538],
        [1.085, 0.382],
        [1.091, 0.226],
        [0.005, 0.111],
        [0.079, 0.046],
        [0.183, 0.027],
        [0.290, 0.043],
        [0.392, 0.084],
        [0.585, 0.082],
        [0.689, 0.039],
        [0.798, 0.023],
        [0.905, 0.044],
        [0.982, 0.109],
        [0.489, 0.199],
        [0.488, 0.305],
        [0.488, 0.411],
        [0.488, 0.519],
        [0.373, 0.583],
        [0.430, 0.603],
        [0.490, 0.623],
        [0.551, 0.602],
        [0.607, 0.582],
        [0.123, 0.218],
        [0.188, 0.177],
        [0.267, 0.179],
        [0.334, 0.232],
        [0.260, 0.246],
        [0.184, 0.246],
        [0.649, 0.232],
        [0.716, 0.177],
        [0.795, 0.176],
        [0.861, 0.217],
        [0.801, 0.243],
        [0.723, 0.245],
        [0.244, 0.759],
        [0.336, 0.729],
        [0.425, 0.715],
        [0.491, 0.730],
        [0.560, 0.714],
        [0.651, 0.725],
        [0.745, 0.752],
        [0.658, 0.843],
        [0.569, 0.887],
        [0.496, 0.897],
        [0.422, 0.889],
        [0.333, 0.848],
        [0.281, 0.766],
        [0.425, 0.769],
        [0.493, 0.776],
        [0.563, 0.767],
        [0.708, 0.761],
        [0.565, 0.807],
        [0.494, 0.818],
        [0.424, 0.809],
    ]
)

_SUPERSAMPLE = 4  # polygons are filled at 4x and area-averaged (anti-aliased edges)


def _scales(p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float]:
    """(d, right unit vector, up unit vector, t) of 68 points (module docstring)."""
    left, right = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
    axis = right - left
    d = float(np.hypot(*axis))
    if not np.isfinite(d) or d < 1e-6:
        raise ValueError("the 68 landmarks are degenerate (both eyes at one point)")
    r = axis / d
    up = np.array([r[1], -r[0]])  # image y points down
    t = float(np.dot(p[17:27].mean(axis=0) - p[33], up))
    return d, r, up, max(t, 0.3 * d)


def _hull(points: np.ndarray) -> np.ndarray:
    return cv2.convexHull(np.asarray(points, dtype=np.float32)).reshape(-1, 2)


def part_polygons(points68: np.ndarray) -> dict[str, list[tuple[np.ndarray, float]]]:
    """Hard regions as ``{part: [(polygon (k, 2), grow radius in pixels), ...]}`` (or polylines).

    Brow entries are open polylines (their radius is half the thickness); every other entry is
    a closed polygon grown by its radius (0: as is).
    """
    p = np.asarray(points68, dtype=np.float64)
    if p.shape != (68, 2) or not np.isfinite(p).all():
        raise ValueError(f"expected (68, 2) finite landmarks, got {p.shape}")
    d, r, up, t = _scales(p)
    brow_line = [p[17:22] - 0.04 * d * up, p[22:27] - 0.04 * d * up]
    forehead_base = p[17:27]
    forehead_top = forehead_base + t * up
    hair_top = forehead_top + 0.6 * t * up
    side = 0.35 * d * r
    hair = np.vstack(
        [
            p[0] - side,
            forehead_top[0] - side + 0.3 * t * up,
            hair_top,
            forehead_top[-1] + side + 0.3 * t * up,
            p[16] + side,
            p[16],
            forehead_top[::-1],
            p[0],
        ]
    )
    return {
        "Eyes": [(_hull(p[36:42]), 0.12 * d), (_hull(p[42:48]), 0.12 * d)],
        "Eyebrows": [(brow_line[0], 0.1 * d), (brow_line[1], 0.1 * d)],
        "Nose": [(_hull(p[27:36]), 0.08 * d)],
        "Mouth": [(_hull(p[48:60]), 0.08 * d)],
        "Chin": [(np.vstack([p[4:13], p[54:60], p[48:49]]), 0.0)],
        "Cheeks": [
            (np.vstack([p[1:5], p[48], p[31], p[39:42], p[36]]), 0.0),
            (np.vstack([p[12:16][::-1], p[54], p[35], p[42], p[47], p[46], p[45]]), 0.0),
        ],
        "Forehead": [(np.vstack([forehead_base, forehead_top[::-1]]), 0.0)],
        "Hair": [(hair, 0.0)],
    }


def _draw(
    shape: tuple[int, int], entries: list[tuple[np.ndarray, float]], open_line: bool
) -> np.ndarray:
    """Boolean mask (H, W) of polygons (or polylines) grown by their radius, at 4x then averaged."""
    h, w = shape
    big = np.zeros((h * _SUPERSAMPLE, w * _SUPERSAMPLE), np.uint8)
    for pts, radius in entries:
        q = np.round((np.asarray(pts) + 0.5) * _SUPERSAMPLE - 0.5).astype(np.int32)
        thick = max(1, round(2 * radius * _SUPERSAMPLE))
        if open_line:
            cv2.polylines(big, [q], False, 255, thickness=thick, lineType=cv2.LINE_8)
            for end in (q[0], q[-1]):
                cv2.circle(big, tuple(int(v) for v in end), thick // 2, 255, -1)
            continue
        cv2.fillPoly(big, [q], 255)
        if radius > 0:
            cv2.polylines(big, [q], True, 255, thickness=thick, lineType=cv2.LINE_8)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA) >= 128


def part_masks(points68: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Hard part regions (8, H, W) bool in the order of :data:`PART_WORDS` (module docstring).

    Args:
        points68: (68, 2) landmarks in pixels of an (H, W) canvas (pixel centres at integers).
        shape: (H, W).
    """
    polys = part_polygons(points68)
    masks = {name: _draw(shape, entries, name == "Eyebrows") for name, entries in polys.items()}
    features = masks["Eyes"] | masks["Eyebrows"] | masks["Nose"] | masks["Mouth"]
    masks["Chin"] &= ~masks["Mouth"]
    masks["Cheeks"] &= ~(features | masks["Chin"])
    masks["Forehead"] &= ~masks["Eyebrows"]
    masks["Hair"] &= ~(features | masks["Forehead"] | masks["Cheeks"] | masks["Chin"])
    return np.stack([masks[name] for name in PART_WORDS])


def part_maps(points68: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Soft part maps (8, H, W) float32 in [0, 1]: :func:`part_masks` blurred (sigma 0.05 d), max 1.

    A part wholly outside the canvas gives an all-zero map.
    """
    masks = part_masks(points68, shape).astype(np.float32)
    d = _scales(np.asarray(points68, dtype=np.float64))[0]
    sigma = max(0.05 * d, 0.5)
    out = np.empty_like(masks)
    for k, mask in enumerate(masks):
        soft = cv2.GaussianBlur(
            mask, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT
        )
        peak = float(soft.max())
        out[k] = soft / peak if peak > 1e-6 else 0.0
    return np.clip(out, 0.0, 1.0)
