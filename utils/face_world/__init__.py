"""The face world: seeded synthetic faces with ground-truth attributes, regions and twins.

See docs/FACE_WORLD.md for what each of the 30 attributes draws and where.

Example:
    >>> from utils.face_world import sample_identity, sample_nuisance, render
    >>> s = render(sample_identity(0), sample_nuisance(1), size=112)
    >>> s.image.shape, s.labels.shape, s.masks.shape, s.landmarks.shape
    ((112, 112, 3), (30,), (30, 112, 112), (5, 2))
"""

from .identity import (
    FACE_SHAPES,
    FOREHEAD_COVERS,
    Geometry,
    Identity,
    Nuisance,
    check_identity,
    labels_of,
    rule_violations,
    sample_identity,
    sample_nuisance,
)
from .dataset import FaceWorld, WorldItem, make_world, sample_pairs, write_pair_dataset
from .render import FaceSample, render
from .twins import (
    ALWAYS_TWINNABLE,
    TWIN_TOLERANCE,
    TWINNABLE,
    changed_region,
    make_twin,
    random_twin,
    twin_classes,
    twin_margin,
    twin_of,
)

__all__ = [
    "ALWAYS_TWINNABLE",
    "FACE_SHAPES",
    "FOREHEAD_COVERS",
    "FaceSample",
    "FaceWorld",
    "Geometry",
    "Identity",
    "Nuisance",
    "TWINNABLE",
    "TWIN_TOLERANCE",
    "WorldItem",
    "changed_region",
    "check_identity",
    "labels_of",
    "make_twin",
    "make_world",
    "random_twin",
    "render",
    "rule_violations",
    "sample_identity",
    "sample_nuisance",
    "sample_pairs",
    "twin_classes",
    "twin_margin",
    "twin_of",
    "write_pair_dataset",
]
