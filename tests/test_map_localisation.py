"""Attribute-map localisation (benchmarks/attribute_maps.py) on a net with a known Grad-CAM map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models.attributes import CELEBA30, HEAD_SIZES
from models.preprocess import Preprocess
from utils.experiments.map_localisation import attribute_map_mass, ceiling_map, present_targets


class KnownMapNet(nn.Module):
    """Activation = the blue channel (1x1 conv), every head = [mean, -mean, ...]: the Grad-CAM
    map of class 0 of any head is the blue channel min-max normalised; of other classes zero."""

    kind = "attribute"
    vocabulary = CELEBA30

    def __init__(self, size: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1))
        self.head_sizes = HEAD_SIZES
        self.preprocess = Preprocess((size, size))  # BGR, no normalisation
        self.target_layer = "conv"

    def forward(self, x):
        s = self.conv(x).mean(dim=(2, 3))
        return [torch.cat([s, -s.expand(-1, n - 1)], dim=1) for n in self.head_sizes]


def test_present_targets_follow_the_vocabulary():
    labels = np.ones(30, np.int64)
    labels[[0, 1, 2, 8]] = [1, 2, 0, 4]  # heads worded by class (incl. Gender): always present
    labels[[3, 28]] = 0  # Bald, Big Nose present
    assert present_targets(labels, CELEBA30) == [(0, 1), (1, 2), (2, 0), (3, 0), (8, 4), (28, 0)]


def test_ceiling_map_is_the_area_average():
    region = np.zeros((8, 8), bool)
    region[:2, :3] = True
    grid = ceiling_map(region, (4, 4))
    np.testing.assert_allclose(grid[0], [1.0, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(grid[1:], 0.0)


def test_mass_inside_the_region_by_hand():
    img = np.zeros((8, 8, 3), np.uint8)
    img[:4, :, 0] = 255  # blue top half: the map is 1 there, 0 below
    masks = np.zeros((30, 8, 8), bool)
    masks[:, :4, :4] = True  # every region: top-left quadrant
    masks[29] = False  # Pointy Nose: empty region, not scored
    labels = np.zeros(30, np.int64)
    labels[3] = 1  # Bald absent: not scored
    labels[1] = 2  # Age class 2: present, but its map is zero (class >= 1 gets -mean)
    res = attribute_map_mass(
        KnownMapNet(), [img, img], np.stack([labels, labels]), [masks, masks], progress=False
    )
    assert res.grid == (8, 8)
    assert "Bald" not in res.per_head and "Pointy Nose" not in res.per_head
    assert res.per_head["Age"]["mass"] == 0.0
    for name in ("Gender", "Big Nose", "Mouth Closed"):
        r = res.per_head[name]
        assert r["n"] == 2
        assert r["mass"] == pytest.approx(16 / 32)  # map mass 32 px, 16 of them in the quadrant
        assert r["chance"] == pytest.approx(16 / 64)
        assert r["ceiling"] == pytest.approx(1.0)  # the grid is the image: a perfect map exists
    # 28 heads scored per image (30 - absent Bald - empty Pointy Nose), Age among them with mass 0
    assert sum(r["n"] for r in res.per_head.values()) == 2 * 28
    assert res.mass == pytest.approx(27 / 28 * 0.5)
