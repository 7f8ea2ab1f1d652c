"""How well an attribute net's Grad-CAM maps find the attribute's true region (face world).

For every face-world image and every attribute present in it (binary head
class 0, or the true class of a multi-class head: ``Vocabulary.is_present``),
the Grad-CAM map of that class's logit is taken at the net's Grad-CAM layer
resolution (min-max normalised, :class:`utils.explain.cam.CAMExplainer`),
resized bilinearly to the image and scored by the share of its mass inside the
attribute's true region (``FaceSample.masks[j]``). Two references per head:

* chance: the region's share of the image (a uniform map);
* ceiling at the layer's resolution: the region itself area-averaged onto the
  h x w grid and resized back the same way (the best a map of that grid can do).

This measures the attribute maps H_attr only, not Sim2Word's joint maps (those
are scored on twins by :mod:`utils.experiments.ground_truth`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from torch import nn
from tqdm import tqdm

from models.attributes import ATTRIBUTES, CELEBA30, Vocabulary
from utils.experiments.ground_truth import mass_inside
from utils.explain.cam import CAMExplainer, HeadLogit


@dataclass
class MapMass:
    """Per-head means over the present (image, attribute) cases.

    Attributes:
        grid: (h, w) of the Grad-CAM layer.
        per_head: attribute -> {"n", "mass", "chance", "ceiling"}.
        mass / chance / ceiling: means over all cases (each case weighs the same).
    """

    grid: tuple[int, int]
    per_head: dict[str, dict[str, float]] = field(default_factory=dict)
    mass: float = float("nan")
    chance: float = float("nan")
    ceiling: float = float("nan")

    def as_dict(self) -> dict:
        return {
            "grid": list(self.grid),
            "mass": self.mass,
            "chance": self.chance,
            "ceiling": self.ceiling,
            "cases": int(sum(v["n"] for v in self.per_head.values())),
            "per_head": self.per_head,
        }


def present_targets(labels: np.ndarray, vocabulary: Vocabulary) -> list[tuple[int, int]]:
    """(head, class) of the present attributes that have a Grad-CAM map (no region heads)."""
    return [
        (j, int(c))
        for j, c in enumerate(labels)
        if vocabulary.is_present(j, int(c)) and j not in vocabulary.region_heads
    ]


def ceiling_map(region: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The region (H, W) bool area-averaged onto an (h, w) grid: the best map of that resolution."""
    return cv2.resize(region.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_AREA)


def attribute_map_mass(
    net: nn.Module,
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    masks: Sequence[np.ndarray],
    layer: str | None = None,
    method: str = "GradCAM",
    batch_size: int = 2,
    progress: bool = True,
) -> MapMass:
    """Share of each present attribute's Grad-CAM mass inside its true region.

    Args:
        net: an attribute net (list of per-head logits; ``head_sizes``, ``preprocess``).
        images: (H, W, 3) uint8 BGR face-world images.
        labels: (N, n_heads) true classes.
        masks: per image, (n_heads, H, W) bool true regions.
        layer: Grad-CAM layer (default ``net.target_layer``).
        method: "GradCAM" or "GradCAM++".
        batch_size: images per Grad-CAM call (the batched backward holds targets x images grads).
        progress: show a progress bar.
    """
    vocabulary = getattr(net, "vocabulary", CELEBA30)
    if len(vocabulary.attributes) != len(ATTRIBUTES):
        raise ValueError(
            f"the face world labels the {len(ATTRIBUTES)} attributes of 'celeba30'; the net's "
            f"vocabulary {vocabulary.name!r} has {len(vocabulary.attributes)}"
        )
    names = vocabulary.attributes
    cases: dict[str, list[tuple[float, float, float]]] = {}
    grid: tuple[int, int] | None = None
    with CAMExplainer(net, layer or net.target_layer, method) as cam:
        for start in tqdm(
            range(0, len(images), batch_size), desc="attribute maps", disable=not progress
        ):
            chunk = range(start, min(start + batch_size, len(images)))
            targets = [present_targets(labels[i], vocabulary) for i in chunk]
            res = cam(
                net.preprocess([images[i] for i in chunk]),
                [[HeadLogit(j, c) for j, c in t] for t in targets],
            )
            for i, maps, tgt in zip(chunk, res.maps, targets, strict=True):
                grid = tuple(maps.shape[-2:])
                for (j, _), m in zip(tgt, maps.detach().cpu().numpy(), strict=True):
                    region = np.asarray(masks[i][j], bool)
                    if not region.any():
                        continue
                    cases.setdefault(names[j], []).append(
                        (
                            mass_inside(m, region),
                            float(region.mean()),
                            mass_inside(ceiling_map(region, grid), region),
                        )
                    )
    if grid is None:
        raise ValueError("no image with a present attribute to score")
    out = MapMass(grid=grid)
    for name in names:
        if name in cases:
            a = np.asarray(cases[name])
            out.per_head[name] = {
                "n": len(a),
                "mass": float(a[:, 0].mean()),
                "chance": float(a[:, 1].mean()),
                "ceiling": float(a[:, 2].mean()),
            }
    allc = np.concatenate([np.asarray(v) for v in cases.values()])
    out.mass, out.chance, out.ceiling = (float(x) for x in allc.mean(axis=0))
    return out
