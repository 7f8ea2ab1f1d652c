"""Erasing: thresholds, nearest resize to the raw size, fills, seeded random fill."""

from __future__ import annotations

import numpy as np
import pytest

from utils.explain.erasing import (
    Eraser,
    erase,
    mask_from_map,
    noise_image,
    resize_mask,
    threshold_maps,
)


def test_threshold_is_strict():
    J = np.array([[0.6, 0.61], [0.0, 1.0]])
    np.testing.assert_array_equal(threshold_maps(J, 0.6), [[False, True], [False, True]])


def test_nearest_resize_by_hand():
    m = np.array([[1, 0], [0, 0]], bool)
    # 2 -> 3: raw row y takes map row floor(y * 2 / 3) = 0, 0, 1
    np.testing.assert_array_equal(resize_mask(m, (3, 3)), [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    # 2 -> 4 (x2): blocks; non-square raw size (4 rows, 6 cols)
    np.testing.assert_array_equal(resize_mask(m, (4, 6)), np.kron(m, np.ones((2, 3), bool)))
    # 4 -> 2 (downscale): row y takes map row 2y
    big = np.zeros((4, 4), bool)
    big[2, 0] = True
    np.testing.assert_array_equal(resize_mask(big, (2, 2)), [[0, 0], [1, 0]])


@pytest.mark.parametrize("method,value", [("black", 0), ("white", 255), ("mean", 125)])
def test_constant_fills(method, value):
    img = np.full((3, 4, 3), 77, np.uint8)
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = mask[0, 0] = True
    out = erase(img, mask, method)
    assert out[1, 2].tolist() == [value] * 3 and out[0, 0].tolist() == [value] * 3
    assert (out[~mask] == 77).all()
    assert (img == 77).all(), "input image was modified"


def test_random_fill_seeded_and_uniform():
    img = np.zeros((64, 64, 3), np.uint8)
    mask = np.ones((64, 64), bool)
    a = Eraser(img, "random", seed=0, pair_index=5, side=0)(mask)
    b = Eraser(img, "random", seed=0, pair_index=5, side=0)(mask)
    np.testing.assert_array_equal(a, b)
    for other in (
        Eraser(img, "random", seed=1, pair_index=5, side=0),
        Eraser(img, "random", seed=0, pair_index=6, side=0),
        Eraser(img, "random", seed=0, pair_index=5, side=1),
    ):
        assert (other(mask) != a).mean() > 0.9
    # uniform integers over [0, 255]: both ends reached, mean close to 127.5
    assert a.min() == 0 and a.max() == 255 and abs(a.mean() - 127.5) < 3
    np.testing.assert_array_equal(noise_image((64, 64, 3), 0, 5, 0), a)


def test_mask_from_map_and_edge_cases():
    J = np.array([[0.9, 0.1], [0.1, 0.1]])
    m = mask_from_map(J, 0.6, (4, 4))
    assert m.sum() == 4 and m[:2, :2].all()
    img = np.full((4, 4, 3), 9, np.uint8)
    np.testing.assert_array_equal(erase(img, np.zeros((4, 4), bool), "black"), img)  # erase nothing
    assert (erase(img, np.ones((4, 4), bool), "white") == 255).all()  # erase everything
    with pytest.raises(ValueError, match="mask shape"):
        erase(img, np.ones((2, 2), bool), "black")
    with pytest.raises(ValueError, match="erasing method"):
        erase(img, np.ones((4, 4), bool), "blur")
    with pytest.raises(ValueError, match="noise"):
        erase(img, np.ones((4, 4), bool), "random")
