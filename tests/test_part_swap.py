"""Part swaps (real-photo ground truth): region, untouched pixels, determinism; identity split."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from models.face_parts import MEAN_SHAPE68_UNIT, PART_WORDS, part_masks
from utils.experiments.part_swap import PART_FIT_POINTS, identity_split, swap_part

#: The held-out identities of shared/data/real_faces under the documented rule (regression pin).
HELD_OUT = {
    "deepface_04",
    "deepface_05",
    "deepface_06",
    "deepface_08",
    "deepface_09",
    "deepface_11",
    "deepface_12",
    "face_recognition_rose_leslie",
    "xfr_n00000001",
    "xfr_n00000002",
    "xfr_subject_0",
    "xfr_subject_1_nonmate",
    "xfr_subject_2",
    "xfr_subject_2_nonmate",
}


def test_identity_split_follows_the_rule(shared_dir):
    root = shared_dir / "data" / "real_faces"
    names = [
        d.name
        for d in root.iterdir()
        if d.is_dir() and any(f.suffix in (".jpg", ".png", ".webp") for f in d.iterdir())
    ]
    tuning, held_out = identity_split(names + names[:3])  # duplicates ignored
    assert len(names) == 28 and len(tuning) == len(held_out) == 14
    assert set(held_out) == HELD_OUT and not set(tuning) & set(held_out)
    digests = sorted(hashlib.sha256(n.encode()).hexdigest() for n in names)
    assert max(hashlib.sha256(n.encode()).hexdigest() for n in tuning) == digests[13]
    assert identity_split(reversed(names)) == (tuning, held_out)


def _face(seed: int, size: int = 160, jitter: float = 0.0):
    """A textured stand-in face and its 68 landmarks (the mean shape, slightly moved)."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3)).astype(np.uint8), (0, 0), 2.0)
    points = MEAN_SHAPE68_UNIT * (size / 2.0) + [size / 4.0, size / 3.5]
    return image, points + rng.normal(0, jitter, points.shape)


@pytest.mark.parametrize("part", ["Mouth", "Eyes", "Nose", "Cheeks"])
def test_swap_changes_only_the_part_region(part):
    (a, pa), (b, pb) = _face(0), _face(1, jitter=1.5)
    swap = swap_part(a, b, part, pa, pb)
    assert swap.image.shape == a.shape and swap.image.dtype == np.uint8 and swap.part == part
    changed = np.any(swap.image != a, axis=2)
    assert not changed[~swap.mask].any(), "pixels outside the blended region must be A's"
    assert changed[swap.mask].mean() > 0.8, "the region must actually change"
    own = part_masks(pa, a.shape[:2])[PART_WORDS.index(part)]
    assert swap.mask[own].all(), "the region covers A's part"
    others = part_masks(pa, a.shape[:2])[
        [k for k, w in enumerate(PART_WORDS) if w not in (part, "Hair")]
    ]
    spill = (swap.mask & others.any(0)).sum() / swap.mask.sum()
    assert spill < 0.5, f"{part}: {spill:.0%} of the region lies on other parts"
    again = swap_part(a, b, part, pa, pb)
    assert np.array_equal(again.image, swap.image) and np.array_equal(again.mask, swap.mask)


def test_swapped_content_is_b_moved_onto_a():
    """Inside the region the gradients are B's (warped by the fitted similarity), not A's."""
    (a, pa), (b, pb) = _face(0), _face(1)
    shifted_b = np.roll(b, (3, -2), axis=(0, 1))
    swap = swap_part(a, shifted_b, "Mouth", pa, pb + [-2, 3])
    np.testing.assert_allclose(swap.warp, [[1, 0, 2], [0, 1, -3]], atol=1e-9)
    inner = cv2.erode(swap.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    lap = [cv2.Laplacian(im.astype(np.float32), cv2.CV_32F) for im in (swap.image, b, a)]
    to_b, to_a = (np.abs(lap[0] - other)[inner].mean() for other in lap[1:])
    assert to_b < 0.6 * to_a, (to_b, to_a)


def test_self_swap_is_nearly_the_identity():
    a, pa = _face(3)
    swap = swap_part(a, a, "Nose", pa, pa)
    assert np.abs(swap.image.astype(int) - a).max() <= 3


def test_bad_inputs_are_refused():
    a, pa = _face(0)
    with pytest.raises(ValueError, match="unknown part 'Ears'"):
        swap_part(a, a, "Ears", pa, pa)
    with pytest.raises(ValueError, match="one size"):
        swap_part(a, a[:100], "Nose", pa, pa)
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        swap_part(a, a, "Nose", pa[:5], pa)
    far = pa + [1000, 1000]
    with pytest.raises(ValueError, match="no pixel inside"):
        swap_part(a, a, "Nose", far, far)
    assert set(PART_FIT_POINTS) == set(PART_WORDS)


def test_mouth_swap_on_real_canvases(shared_dir):
    """Two real dlib-150 canvases: the region sits on A's mouth and shows B's (warped) mouth."""
    pytest.importorskip("dlib", reason="landmarks need dlib-bin")
    from models.face_geometry import LandmarkModelsError
    from models.real_attributes import shared_landmarker
    from utils.faces.image_io import read_image

    try:
        landmarker = shared_landmarker(True)
    except LandmarkModelsError as err:
        pytest.skip(str(err))
    root = shared_dir / "data" / "real_faces"
    canvases = [
        landmarker.face_chip(read_image(root / n), 150, 0.25)
        for n in ("deepface_01/3.jpg", "face_recognition_obama/2.jpg")
    ]
    pa, pb = (landmarker(c).points68 for c in canvases)
    swap = swap_part(canvases[0], canvases[1], "Mouth", pa, pb)
    ys, xs = np.nonzero(swap.mask)
    assert np.hypot(xs.mean() - pa[48:60, 0].mean(), ys.mean() - pa[48:60, 1].mean()) < 5
    assert swap.mask.sum() < 0.15 * swap.mask.size
    warped_b = cv2.warpAffine(canvases[1], swap.warp, (150, 150), flags=cv2.INTER_LINEAR)
    inner = cv2.erode(swap.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    lap = [
        cv2.Laplacian(im.astype(np.float32), cv2.CV_32F)
        for im in (swap.image, warped_b, canvases[0])
    ]
    to_b, to_a = (np.abs(lap[0] - other)[inner].mean() for other in lap[1:])
    assert to_b < 0.5 * to_a, (to_b, to_a)
