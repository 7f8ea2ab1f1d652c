"""Erasing the region of a joint map (METHOD.md section 3 step 6).

The region for attribute j is ``J[j] > theta`` at the recognition net's input
size; the mask is resized with nearest-neighbour interpolation
(``cv2.INTER_NEAREST``: raw pixel (y, x) takes map pixel
(floor(y * h / H), floor(x * w / W))) to the raw image size. Erased pixels
are filled with black 0, white 255, mean 125, or random uniform integers in
[0, 255].

The random fill is one noise image per (seed, pair index, side) drawn from a
NumPy ``Generator`` seeded with ``SeedSequence([seed, pair_index, side])``, so
it is reproducible, independent of sharding and of the order pairs are run,
and identical masks of one side give identical erased images (which lets the
verification step embed them once).

Example:
    >>> m = mask_from_map(J, 0.6, raw_shape=img.shape[:2])
    >>> erased = erase(img, m, "black")
"""

from __future__ import annotations

import cv2
import numpy as np

FILLS = ("black", "white", "mean", "random")
_CONSTANT = {"black": 0, "white": 255, "mean": 125}


def threshold_maps(maps: np.ndarray, thresh: float) -> np.ndarray:
    """Binary regions ``maps > thresh``. (..., h, w) float -> (..., h, w) bool."""
    return np.asarray(maps) > float(thresh)


def resize_mask(mask: np.ndarray, raw_shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (h, w) bool mask to ``raw_shape`` = (H, W)."""
    mask = np.asarray(mask, dtype=bool)
    h, w = int(raw_shape[0]), int(raw_shape[1])
    if mask.shape == (h, w):
        return mask.copy()
    out = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return out.astype(bool)


def mask_from_map(joint: np.ndarray, thresh: float, raw_shape: tuple[int, int]) -> np.ndarray:
    """``J > thresh`` on the map, resized (nearest) to ``raw_shape``. (h, w) -> (H, W) bool."""
    return resize_mask(threshold_maps(joint, thresh), raw_shape)


def noise_image(shape: tuple[int, ...], seed: int, pair_index: int, side: int) -> np.ndarray:
    """Uniform random uint8 in [0, 255] of ``shape``, seeded by (seed, pair_index, side)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(pair_index), int(side)]))
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def erase(
    image: np.ndarray, mask: np.ndarray, method: str, noise: np.ndarray | None = None
) -> np.ndarray:
    """Fill the masked pixels of ``image``.

    Args:
        image: (H, W, 3) uint8 BGR image (not modified).
        mask: (H, W) bool, True = erase.
        method: "black" (0), "white" (255), "mean" (125) or "random".
        noise: (H, W, 3) uint8 fill for "random" (see :func:`noise_image`).

    Returns:
        (H, W, 3) uint8 erased copy.
    """
    if method not in FILLS:
        raise ValueError(f"unknown erasing method {method!r}; valid: {', '.join(FILLS)}")
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"mask shape {mask.shape} does not match image shape {image.shape[:2]}; "
            "resize it with resize_mask"
        )
    out = image.copy()
    if method == "random":
        if noise is None or noise.shape != image.shape:
            raise ValueError(
                f"random erasing needs a noise image of shape {image.shape}, got "
                f"{None if noise is None else noise.shape}; build it with noise_image"
            )
        out[mask] = noise[mask]
    else:
        out[mask] = _CONSTANT[method]
    return out


class Eraser:
    """Erases one image for many masks with one fill (and one noise image for "random").

    Args:
        image: (H, W, 3) uint8 BGR raw image.
        method: fill, one of :data:`FILLS`.
        seed: the run's ``--seed``.
        pair_index: index of the pair in the list.
        side: 0 for image 1, 1 for image 2.
    """

    def __init__(
        self, image: np.ndarray, method: str, seed: int = 0, pair_index: int = 0, side: int = 0
    ) -> None:
        if method not in FILLS:
            raise ValueError(f"unknown erasing method {method!r}; valid: {', '.join(FILLS)}")
        self.image = image
        self.method = method
        self._key = (seed, pair_index, side)
        self._noise: np.ndarray | None = None

    @property
    def noise(self) -> np.ndarray | None:
        if self.method == "random" and self._noise is None:
            self._noise = noise_image(self.image.shape, *self._key)
        return self._noise

    def __call__(self, mask_raw: np.ndarray) -> np.ndarray:
        """(H, W) bool raw-size mask -> (H, W, 3) uint8 erased image."""
        return erase(self.image, mask_raw, self.method, self.noise)
