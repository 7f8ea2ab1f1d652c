"""How a network wants its input: size, channel order, normalisation.

Images enter everywhere in the code base as OpenCV BGR ``uint8`` arrays of any
size. A :class:`Preprocess` turns a batch of them into the float tensor a
network consumes:

1. bilinear resize to ``input_size`` = (H, W), the way the network family's
   original code resizes: ``resize="cv2"`` is ``cv2.resize(INTER_LINEAR)``
   (OpenCV's half-pixel convention, no antialiasing: the VGGFace2 family,
   whose authors' code reads images with OpenCV); ``resize="pil"`` is Pillow's
   ``Image.resize(BILINEAR)``, which widens its triangle filter when shrinking
   (antialiased: the iresnet family, whose authors' code resizes a PIL image,
   ``transforms.Resize((112, 112))`` / ``Image.resize((112, 112), BILINEAR)``);
2. reorder channels to ``channel_order`` ("BGR" keeps them, "RGB" flips them);
3. ``(pixel - mean) / std`` per channel, mean/std on the 0..255 scale and in
   ``channel_order``;
4. HWC -> CHW and stack to (N, 3, H, W) float32.

The two families of METHOD.md section 1:

Example:
    >>> VGGFACE2_224.input_size, VGGFACE2_224.channel_order, VGGFACE2_224.resize
    ((224, 224), 'BGR', 'cv2')
    >>> VGGFACE2_224.mean, VGGFACE2_224.std
    ((91.4953, 103.8827, 131.0912), (1.0, 1.0, 1.0))
    >>> x = IRESNET_112([np.zeros((5, 7, 3), np.uint8)])
    >>> tuple(x.shape), float(x[0, 0, 0, 0])
    ((1, 3, 112, 112), -1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

RESIZES = ("cv2", "pil")
VGGFACE2_MEAN_BGR: tuple[float, float, float] = (91.4953, 103.8827, 131.0912)


@dataclass(frozen=True)
class Preprocess:
    """Resize + channel order + normalisation of BGR uint8 images.

    Attributes:
        input_size: (H, W) of the network input.
        channel_order: "BGR" or "RGB": channel order of the output tensor.
        mean: per-channel mean on the 0..255 scale, in ``channel_order``.
        std: per-channel std on the 0..255 scale, in ``channel_order``.
        resize: "cv2" (``cv2.INTER_LINEAR``) or "pil" (Pillow ``BILINEAR``, antialiased
            when shrinking); see the module docstring.
    """

    input_size: tuple[int, int]
    channel_order: str = "BGR"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: str = "cv2"

    def __post_init__(self) -> None:
        size = _as_size(self.input_size)
        object.__setattr__(self, "input_size", size)
        if self.channel_order not in ("BGR", "RGB"):
            raise ValueError(f"channel_order must be 'BGR' or 'RGB', got {self.channel_order!r}")
        if self.resize not in RESIZES:
            raise ValueError(f"resize must be one of {RESIZES}, got {self.resize!r}")
        for field in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, field))
            if len(value) != 3:
                raise ValueError(
                    f"{field} needs 3 values (one per channel), got {getattr(self, field)!r}"
                )
            object.__setattr__(self, field, value)
        if any(s == 0 for s in self.std):
            raise ValueError(f"std must be non-zero, got {self.std}")

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """Preprocess a batch.

        Args:
            images: one (h, w, 3) BGR uint8 array, a list of such arrays (sizes may
                differ), or an (N, h, w, 3) uint8 array.

        Returns:
            (N, 3, H, W) float32 tensor on the CPU, (H, W) = ``input_size``.
        """
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        if len(images) == 0:
            raise ValueError("Preprocess got an empty batch of images")
        batch = np.stack([self._one(img, i) for i, img in enumerate(images)])
        return torch.from_numpy(batch)

    def _one(self, img: np.ndarray, index: int) -> np.ndarray:
        if (
            not isinstance(img, np.ndarray)
            or img.ndim != 3
            or img.shape[2] != 3
            or img.dtype != np.uint8
        ):
            got = f"{type(img).__name__} {getattr(img, 'shape', '')} {getattr(img, 'dtype', '')}"
            raise ValueError(
                f"image {index}: expected an (h, w, 3) BGR uint8 array, got {got.strip()}; "
                "read images with utils.faces.image_io.read_image"
            )
        h, w = self.input_size
        if img.shape[:2] != (h, w):
            img = resize_image(img, (h, w), self.resize)
        if self.channel_order == "RGB":
            img = img[:, :, ::-1]
        x = (img.astype(np.float32) - np.asarray(self.mean, np.float32)) / np.asarray(
            self.std, np.float32
        )
        return np.ascontiguousarray(x.transpose(2, 0, 1))


def resize_image(img: np.ndarray, size: tuple[int, int], method: str = "cv2") -> np.ndarray:
    """Bilinear resize of an (h, w, 3) uint8 image to ``size`` = (H, W).

    ``method="cv2"``: ``cv2.resize(INTER_LINEAR)``. ``method="pil"``: Pillow's
    ``Image.resize((W, H), BILINEAR)`` (each channel is filtered independently,
    so the channel order of ``img`` does not matter).
    """
    h, w = int(size[0]), int(size[1])
    if method == "cv2":
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    if method == "pil":
        return np.asarray(
            Image.fromarray(np.ascontiguousarray(img)).resize((w, h), Image.Resampling.BILINEAR)
        )
    raise ValueError(f"resize method must be one of {RESIZES}, got {method!r}")


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    """``112`` or ``(112, 112)`` -> ``(112, 112)``; validates positivity."""
    pair = (
        (int(size), int(size))
        if isinstance(size, (int, np.integer))
        else tuple(int(s) for s in size)
    )
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError(f"input_size must be a positive int or (H, W), got {size!r}")
    return pair


def vggface2_preprocess(input_size: int | Sequence[int] = 224) -> Preprocess:
    """VGGFace2 (Caffe) preprocessing: OpenCV bilinear resize, BGR, VGGFace2 mean subtracted.

    No scaling: values stay on the 0..255 scale.
    """
    return Preprocess(_as_size(input_size), "BGR", VGGFACE2_MEAN_BGR, (1.0, 1.0, 1.0))


def iresnet_preprocess(input_size: int | Sequence[int] = 112) -> Preprocess:
    """insightface preprocessing: Pillow bilinear resize, RGB, (x - 127.5) / 127.5.

    That is (x/255 - 0.5)/0.5.
    """
    return Preprocess(_as_size(input_size), "RGB", (127.5,) * 3, (127.5,) * 3, resize="pil")


VGGFACE2_224 = vggface2_preprocess(224)
IRESNET_112 = iresnet_preprocess(112)
