"""Twins: the same identity under the same nuisance with exactly one attribute changed.

A twin is the ground truth for "which attribute explains the difference":
:func:`make_twin` changes attribute ``j`` (and, by construction, no other
label), keeps the geometry, colours and nuisance (hence the same noise,
light and pose), and renders. Its pixels differ from the source only inside
the attribute's region (``masks[j]`` of either image), grown by the
anti-aliasing / blur margin :func:`twin_margin`.

Every attribute can be twinned for some identities (:data:`TWINNABLE`), but
where a change would force another label to change, the twin does not exist
for that identity and :func:`make_twin` raises ``ValueError``;
:func:`twin_classes` lists the classes an attribute can move to. Attributes
twinnable for *every* identity are in :data:`ALWAYS_TWINNABLE`; the
conditions of the others are in docs/FACE_WORLD.md ("Twins").
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from models.attributes import ATTRIBUTES, HEAD_SIZES, NUM_ATTRIBUTES

from .identity import Identity, Nuisance, labels_of, rule_violations
from .render import FaceSample, blur_radius, render

TWINNABLE: tuple[int, ...] = tuple(range(NUM_ATTRIBUTES))
#: Largest grey-level difference allowed between a twin and its source outside
#: :func:`changed_region` (anti-aliasing of thin parts at small sizes; at 112 px it is 0
#: in practice).
TWIN_TOLERANCE = 8
ALWAYS_TWINNABLE: tuple[int, ...] = (1, 2, 8, 16, 17, 18, 21, 22, 23, 24, 25, 26, 27, 28, 29)
_FLAGS = {
    3: "bald",
    4: "wavy",
    5: "receding",
    6: "bangs",
    7: "sideburns",
    10: "mustache",
    11: "stubble",
    12: "goatee",
    16: "double_chin",
    17: "high_cheekbones",
    18: "chubby",
    21: "brown_eyes",
    22: "eye_bags",
    23: "bushy_brows",
    24: "arched_brows",
    27: "big_lips",
    28: "big_nose",
    29: "pointy_nose",
}
_CLASSES = {0: "gender", 1: "age", 2: "race", 8: "hair_color"}
_SHAPES = {13: "oval", 14: "square", 15: "round"}


def _apply(  # noqa: PLR0911 (one return per attribute case reads clearer than a table of lambdas)
    identity: Identity, nuisance: Nuisance, j: int, c: int
) -> tuple[Identity, Nuisance]:
    """Set attribute ``j`` to class ``c`` by changing the fields that draw it (no validation)."""
    has = c == 0
    i, n = identity, nuisance
    if j in _CLASSES:
        return replace(i, **{_CLASSES[j]: c}), n
    if j in _FLAGS:
        return replace(i, **{_FLAGS[j]: has}), n
    if j in _SHAPES:
        shape = _SHAPES[j] if has else ("plain" if i.face_shape == _SHAPES[j] else i.face_shape)
        return replace(i, face_shape=shape), n
    if j == 9:  # "no beard": shaving only the chinstrap keeps the four named beard labels
        return (
            replace(
                i, sideburns=False, mustache=False, stubble=False, goatee=False, chinstrap=False
            )
            if has
            else replace(i, chinstrap=True)
        ), n
    if j == 19:  # Obstructed Forehead: hat <-> headband
        return replace(
            i,
            forehead_cover="hat"
            if has
            else ("band" if i.forehead_cover == "hat" else i.forehead_cover),
        ), n
    if j == 20:  # Fully Visible Forehead: bare <-> headband
        return replace(
            i,
            forehead_cover="none"
            if has
            else ("band" if i.forehead_cover == "none" else i.forehead_cover),
        ), n
    if j == 25:
        return i, replace(n, mouth_open=not has)
    if j == 26:
        return i, replace(n, smiling=has)
    raise ValueError(f"attribute index {j} out of range: expected 0..{NUM_ATTRIBUTES - 1}")


def _why_not(
    identity: Identity, nuisance: Nuisance, j: int, c: int
) -> tuple[str, tuple[Identity, Nuisance]]:
    """Reason the twin (j -> c) does not exist ("" when it does) and the changed pair."""
    if not 0 <= int(j) < NUM_ATTRIBUTES:
        raise ValueError(f"attribute index {j} out of range: expected 0..{NUM_ATTRIBUTES - 1}")
    if not 0 <= int(c) < HEAD_SIZES[j]:
        raise ValueError(
            f"class {c} out of range for {ATTRIBUTES[j]}: expected 0..{HEAD_SIZES[j] - 1}"
        )
    before = labels_of(identity, nuisance)
    if before[j] == c:
        return f"{ATTRIBUTES[j]} is already class {c}", (identity, nuisance)
    new = _apply(identity, nuisance, j, int(c))
    bad = rule_violations(new[0])
    if bad:
        return "; ".join(bad), new
    after = labels_of(*new)
    others = [ATTRIBUTES[k] for k in np.flatnonzero(after != before) if k != j]
    if after[j] != c:
        return f"{ATTRIBUTES[j]} cannot be set to class {c} from this face", new
    if others:
        return f"the change would also change {', '.join(others)}", new
    return "", new


def twin_classes(identity: Identity, nuisance: Nuisance, j: int) -> list[int]:
    """Classes attribute ``j`` can be changed to alone (empty: no twin for this face)."""
    return [c for c in range(HEAD_SIZES[j]) if not _why_not(identity, nuisance, j, c)[0]]


def twin_of(
    identity: Identity, nuisance: Nuisance, j: int, new_class: int | None = None
) -> tuple[Identity, Nuisance]:
    """The (identity, nuisance) of the twin with attribute ``j`` set to ``new_class``.

    Args:
        identity, nuisance: the source image.
        j: attribute index (``models.attributes.ATTRIBUTES``).
        new_class: target class; ``None``: binary heads flip, multi-class heads
            take the next valid class after the current one (cyclically).

    Raises:
        ValueError: the twin does not exist (the message says which rule or
            which other label is in the way), or ``j`` / ``new_class`` out of range.
    """
    if not 0 <= int(j) < NUM_ATTRIBUTES:
        raise ValueError(f"attribute index {j} out of range: expected 0..{NUM_ATTRIBUTES - 1}")
    if new_class is None:
        n, current = HEAD_SIZES[j], int(labels_of(identity, nuisance)[j])
        order = [(current + k) % n for k in range(1, n)]
        new_class = next((c for c in order if not _why_not(identity, nuisance, j, c)[0]), order[0])
    reason, new = _why_not(identity, nuisance, j, int(new_class))
    if reason:
        raise ValueError(
            f"no twin of this face with {ATTRIBUTES[j]} = class {new_class}: {reason}; "
            "use twin_classes() to see which changes exist (docs/FACE_WORLD.md, 'Twins')"
        )
    return new


def make_twin(
    identity: Identity,
    nuisance: Nuisance,
    attribute_index: int,
    new_class: int | None = None,
    size: int = 112,
    with_masks: bool = True,
) -> FaceSample:
    """Render the twin of (identity, nuisance) with one attribute changed. See :func:`twin_of`."""
    return render(
        *twin_of(identity, nuisance, attribute_index, new_class), size=size, with_masks=with_masks
    )


def random_twin(
    rng: np.random.Generator,
    identity: Identity,
    nuisance: Nuisance,
    attributes: tuple[int, ...] = TWINNABLE,
) -> tuple[int, int] | None:
    """A uniformly drawn (attribute, new class) among the twins that exist, or ``None``."""
    options = [(j, c) for j in attributes for c in twin_classes(identity, nuisance, j)]
    if not options:
        return None
    return options[int(rng.integers(len(options)))]


def twin_margin(nuisance: Nuisance, size: int) -> int:
    """Pixels by which a twin's changes may spill outside the region.

    2 (anti-aliasing) + the blur radius.
    """
    return 2 + blur_radius(nuisance, size)


def changed_region(source: FaceSample, twin: FaceSample, j: int, grow: bool = True) -> np.ndarray:
    """``(H, W)`` bool region where ``twin`` may differ from ``source``.

    It is attribute ``j``'s region of both images.

    Args:
        grow: dilate by :func:`twin_margin` (the documented tolerance).
    """
    if source.masks is None or twin.masks is None:
        raise ValueError("changed_region needs masks: render both images with with_masks=True")
    region = source.masks[j] | twin.masks[j]
    if grow:
        k = twin_margin(source.nuisance, region.shape[0])
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        region = cv2.dilate(region.view(np.uint8), kernel).view(bool)
    return region
