"""Robust image reading: any common format in, OpenCV BGR uint8 out.

Every image in the code base enters through :func:`read_image`, which decodes
by content (never by file extension) and either returns an ``(H, W, 3)`` uint8
BGR array or raises :class:`ImageReadError` naming the file, the reason and a
fix. What it does with awkward inputs:

* **Formats**: whatever Pillow identifies (JPEG, PNG, WEBP, BMP, TIFF, GIF,
  ...); files Pillow cannot identify are handed to ``cv2.imdecode`` as a
  second chance. A ``.jpg`` holding WEBP data reads fine; a text file named
  ``.jpg`` is refused.
* **Orientation**: the EXIF orientation tag is applied
  (``ImageOps.exif_transpose``), so the array is the image as displayed.
* **Grayscale / bilevel** are repeated to three channels; **palette** images
  are expanded; CMYK, YCbCr and the like are converted to RGB.
* **Alpha** (RGBA, LA, palette with transparency) is composited over a solid
  background, white (255) by default: transparent regions of cut-out photos
  become white, as they are usually displayed. Pass ``alpha_background=0`` for
  black. Fully opaque images are unchanged either way.
* **16-bit** images (grayscale ``I;16`` and 16-bit RGB PNG) are scaled to 8 bits
  by ``round(v / 257)``, so 65535 -> 255 and ``257 * k`` -> ``k`` exactly.
* **Truncated or corrupt data** is refused (``ImageFile.LOAD_TRUNCATED_IMAGES``
  is forced off while reading): no half-grey images reach an experiment.
* **Decompression bombs**: images with more than ``max_pixels`` pixels
  (default :data:`MAX_IMAGE_PIXELS`, 200 megapixels; a 6000x6000 photo is 36)
  are refused before their pixel data is decoded.
* Tiny images (8x8) and non-face content are returned as they are: deciding
  what is a face is the job of :mod:`utils.faces.align`.
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

#: Largest image accepted by default, in pixels (width * height): 200 MP.
MAX_IMAGE_PIXELS = 200_000_000

# What Pillow's decoders raise on broken data (SyntaxError: broken PNG chunks;
# struct.error / zlib.error: garbled headers and streams).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


class ImageReadError(Exception):
    """An image file that cannot be turned into a BGR uint8 array.

    Attributes:
        path: the file that was asked for.
        reason: what is wrong with it, in a few words.
        hint: what to do about it.
    """

    def __init__(self, path: str | os.PathLike, reason: str, hint: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        message = f"cannot read image {self.path!r}: {reason}"
        if hint:
            message += f". Fix: {hint}"
        super().__init__(message)

    def __reduce__(self):  # keep path/reason/hint through pickling (DataLoader workers)
        return (type(self), (self.path, self.reason, self.hint))


def resolve_image_path(root: str | os.PathLike | None, relpath: str | os.PathLike) -> Path:
    """Join an image path from a list with the image root.

    Reading is all that is ever done with the result, so a ``relpath`` such as
    ``../other/x.jpg`` or an absolute path is allowed and names exactly that
    file (an absolute ``relpath`` ignores ``root``, as :mod:`pathlib` does).

    Args:
        root: the folder that list paths are relative to, or ``None`` for the
            current directory.
        relpath: the path as written in the list.

    Returns:
        ``Path(root) / relpath``.

    Raises:
        ValueError: ``relpath`` is empty.
    """
    if str(relpath).strip() == "":
        raise ValueError(f"empty image path (root {root!r}); every list entry must name a file")
    return Path(relpath) if root is None else Path(root) / Path(relpath)


@contextlib.contextmanager
def _strict_pillow(max_pixels: int) -> Iterator[None]:
    """Pillow settings for one read: our bomb limit, truncated images refused."""
    saved = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    Image.MAX_IMAGE_PIXELS = max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            # Between max_pixels and 2 * max_pixels Pillow only warns; we refuse
            # those ourselves with a clear error, so the warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _too_big(path: Path, pixels: int, max_pixels: int) -> ImageReadError:
    return ImageReadError(
        path,
        f"{pixels} pixels is more than the limit of {max_pixels} (possible decompression bomb)",
        "downscale the image, or pass a larger max_pixels to read_image if it is genuine",
    )


def _is_16bit_png(im: Image.Image) -> bool:
    """True for PNGs stored with 16 bits per sample that Pillow reduces to 8."""
    if im.format != "PNG" or not im.tile:
        return False
    rawmode = im.tile[0][3] if isinstance(im.tile[0][3], str) else im.tile[0][3][0]
    return ";16" in rawmode


def _scale_16_to_8(arr: np.ndarray) -> np.ndarray:
    """uint16 range -> uint8 by round(v / 257): 65535 -> 255, 257 * k -> k."""
    arr = np.clip(arr.astype(np.float64), 0, 65535)
    return np.rint(arr / 257.0).astype(np.uint8)


def _flatten_alpha(rgba: np.ndarray, background: int) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (H, W, 3) uint8 RGB composited over ``background``."""
    rgb = rgba[..., :3].astype(np.float64)
    alpha = rgba[..., 3:4].astype(np.float64) / 255.0
    out = rgb * alpha + float(background) * (1.0 - alpha)
    return np.rint(out).astype(np.uint8)


def _to_rgb(im: Image.Image, path: Path, alpha_background: int) -> np.ndarray:
    """A loaded Pillow image of any mode -> (H, W, 3) uint8 RGB."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        gray = _scale_16_to_8(np.asarray(im))
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        raise ImageReadError(
            path, "32-bit floating-point image (mode 'F') has no defined 8-bit range",
            "convert it to an 8-bit or 16-bit PNG/TIFF first",
        )
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode in ("1", "L"):
        im = im.convert("L")
        gray = np.asarray(im)
        return np.repeat(gray[..., None], 3, axis=2)
    elif mode not in ("RGB", "RGBA"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    arr = np.asarray(im)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return _flatten_alpha(arr, alpha_background)
    return arr


def _decode_16bit_png(data: bytes, path: Path, alpha_background: int) -> np.ndarray:
    """16-bit RGB(A) PNG at full precision via OpenCV -> (H, W, 3) uint8 RGB."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(path, "corrupt 16-bit PNG data", "re-export the image")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    arr8 = _scale_16_to_8(arr) if arr.dtype == np.uint16 else arr.astype(np.uint8)
    if arr8.shape[2] == 4:  # OpenCV order BGRA
        return _flatten_alpha(arr8[..., [2, 1, 0, 3]], alpha_background)
    return arr8[..., ::-1]


def _decode_with_opencv(data: bytes, path: Path, max_pixels: int) -> np.ndarray:
    """Second chance for content Pillow does not identify -> BGR uint8."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        head = data[:16]
        raise ImageReadError(
            path, f"not an image format that Pillow or OpenCV can decode (first bytes {head!r})",
            "check that the file is an image (JPEG/PNG/WEBP/BMP/TIFF); remove it from the list or convert it",
        )
    if arr.shape[0] * arr.shape[1] > max_pixels:
        raise _too_big(path, arr.shape[0] * arr.shape[1], max_pixels)
    return np.ascontiguousarray(arr)


def _apply_exif_orientation(im: Image.Image, path: Path) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except _DECODE_ERRORS + (KeyError, TypeError) as err:
        # A garbled EXIF block should not cost a good image: keep stored pixels.
        warnings.warn(f"{path}: unreadable EXIF orientation ({err!r}); using the stored orientation")
        return im


def read_image(
    path: str | os.PathLike,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    alpha_background: int = 255,
) -> np.ndarray:
    """Read an image file as an OpenCV-style BGR uint8 array.

    Args:
        path: the file. Its extension is ignored: the content decides.
        max_pixels: refuse images with more pixels than this (width * height).
        alpha_background: gray level (0..255) that transparent pixels are
            composited over. Default 255 (white).

    Returns:
        ``(H, W, 3)`` uint8 array, channels in BGR order, C-contiguous, with
        the EXIF orientation applied.

    Raises:
        ImageReadError: the file is missing, empty, not an image, truncated or
            corrupt, or larger than ``max_pixels``.

    Example:
        >>> img = read_image("faces/n000002/0001_01.jpg")  # doctest: +SKIP
        >>> img.shape, img.dtype                             # doctest: +SKIP
        ((218, 178, 3), dtype('uint8'))
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "file not found", "check the path and the image root folder (--image-root)")
    if not path.is_file():
        raise ImageReadError(path, "not a regular file (a folder?)", "point the list entry at an image file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageReadError(path, f"cannot open the file ({err.strerror})", "check its permissions") from err
    if len(data) == 0:
        raise ImageReadError(path, "empty file (0 bytes)", "re-download or re-export the image")

    with _strict_pillow(max_pixels):
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as err:
            raise ImageReadError(path, f"larger than the limit of {max_pixels} pixels ({err})",
                                 "downscale the image, or pass a larger max_pixels") from err
        except UnidentifiedImageError:
            return _decode_with_opencv(data, path, max_pixels)
        except _DECODE_ERRORS as err:
            raise ImageReadError(path, f"corrupt image header ({err})", "re-export the image") from err
        width, height = im.size
        if width * height > max_pixels:
            raise _too_big(path, width * height, max_pixels)
        if width == 0 or height == 0:
            raise ImageReadError(path, f"image has zero size ({width}x{height})", "re-export the image")
        try:
            sixteen = _is_16bit_png(im)
            im.load()
            im = _apply_exif_orientation(im, path)
            if sixteen and im.mode in ("RGB", "RGBA"):
                rgb = _decode_16bit_png(data, path, alpha_background)
            else:
                rgb = _to_rgb(im, path, alpha_background)
        except _DECODE_ERRORS as err:
            raise ImageReadError(
                path, f"truncated or corrupt {im.format or 'image'} data ({err})",
                "re-download or re-export the file; partially decoded images are never used",
            ) from err
    return np.ascontiguousarray(rgb[..., ::-1])
