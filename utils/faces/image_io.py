"""Robust image reading in bounded time and memory: any accepted format in, OpenCV BGR uint8 out.

Every image in the code base enters through :func:`read_image`, which decodes
by content (never by file extension) and either returns an ``(H, W, 3)`` uint8
BGR array or raises :class:`ImageReadError` naming the file, the reason and a
fix. In order, before any pixel is decoded:

1. **The file** is read with :func:`utils.base.safefile.read_capped`: regular
   files only (a FIFO, ``/dev/zero``, a tty, a socket or a folder is refused
   before it is opened, symlinks followed), opened non-blocking, at most
   ``max_bytes`` (:data:`MAX_IMAGE_BYTES`, 64 MiB) read: larger files are
   refused from their size on disk, so no read can hang or fill the memory.
2. **The type** is recognised from the first bytes: JPEG, PNG, GIF, BMP, TIFF
   or WEBP. Anything else is refused naming what it looks like ("text file",
   "PDF document", "PostScript/EPS document", "ELF executable", "unknown
   binary data", ...) and never quoting the content. Pillow is restricted to
   these formats (``Image.open(..., formats=...)``), so EPS/PS/PDF never reach
   an external program such as Ghostscript.
3. **The header** is parsed here (PNG IHDR, JPEG SOF, GIF screen, BMP DIB
   header, TIFF IFD0, WEBP VP8/VP8L/VP8X) and the image is refused if it has
   zero size or more than ``max_pixels`` (:data:`MAX_IMAGE_PIXELS`, 200 MP).
   This check does not depend on Pillow identifying the file: a PNG whose
   optional ``tEXt`` chunk has a bad CRC, which Pillow does not identify and
   OpenCV then decodes, is checked like any other. Pillow's own header
   (``im.size``, e.g. a GIF frame larger than its screen) is checked again.
4. **The decode plan**: an image whose longer side exceeds ``max_side``
   (:data:`MAX_IMAGE_SIDE`, 2048 px) is downscaled once, here, to a longer
   side of exactly ``max_side`` (aspect ratio kept, side lengths rounded), so
   no later copy (erased images, overlays) is large. JPEG is decoded at 1/2,
   1/4 or 1/8 scale by libjpeg (``Image.draft`` / ``cv2.IMREAD_REDUCED_*``), other
   formats are decoded at full size and reduced at once. The memory the
   decoder needs is estimated from the header and the image is refused if it
   exceeds ``max_decode_bytes`` (:data:`MAX_DECODE_BYTES`, 1 GiB).

The four limits can be changed per call or for a whole run with the
environment variables ``SIM2WORD_MAX_IMAGE_MB``, ``SIM2WORD_MAX_IMAGE_PIXELS``,
``SIM2WORD_MAX_IMAGE_SIDE`` and ``SIM2WORD_MAX_DECODE_MB``
(:func:`read_limits` gives the values in force). Then:

* **Orientation**: the EXIF orientation tag is applied, so the array is the
  image as displayed.
* **Grayscale / bilevel** are repeated to three channels; **palette** images
  are expanded; CMYK, YCbCr and the like are converted to RGB.
* **Alpha** (RGBA, LA, palette with transparency) is composited over a solid
  background, white (255) by default: transparent regions of cut-out photos
  become white, as they are usually displayed. Pass ``alpha_background=0`` for
  black. Fully opaque images are unchanged either way.
* **16-bit** images (grayscale ``I;16`` and 16-bit RGB PNG) are scaled to 8 bits
  by ``round(v / 257)``, so 65535 -> 255 and ``257 * k`` -> ``k`` exactly (a
  16-bit RGB PNG above the working size is reduced from Pillow's 8-bit decode).
* **Truncated or corrupt data** is refused (``ImageFile.LOAD_TRUNCATED_IMAGES``
  is forced off while reading): no half-grey images reach an experiment.
* Tiny images (8x8) and non-face content are returned as they are: deciding
  what is a face is the job of :mod:`utils.faces.align`.

Downscaling: Pillow's integer ``reduce`` (or libjpeg's scaled decode) to
within 2x of the target, then ``cv2.resize(INTER_AREA)`` to the target size,
before the orientation is applied. :func:`read_image_info` also returns an
:class:`ImageInfo` with the stored and returned sizes; a downscale is logged.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from utils.base.safefile import UnreadableFileError, env_limit, format_size, read_capped

log = logging.getLogger(__name__)

#: Largest image accepted, in pixels (width * height): 200 MP. Env: ``SIM2WORD_MAX_IMAGE_PIXELS``.
MAX_IMAGE_PIXELS = 200_000_000
#: Largest image file read, in bytes: 64 MiB. Env: ``SIM2WORD_MAX_IMAGE_MB`` (MiB).
MAX_IMAGE_BYTES = 64 * 2**20
#: Longer side of the working image; larger images are downscaled to it when read.
#: Env: ``SIM2WORD_MAX_IMAGE_SIDE``.
MAX_IMAGE_SIDE = 2048
#: Largest estimated decoder memory, in bytes: 1 GiB. Env: ``SIM2WORD_MAX_DECODE_MB`` (MiB).
MAX_DECODE_BYTES = 2**30

#: Formats read, as Pillow names them (MPO: multi-picture JPEG written by some cameras).
PILLOW_FORMATS = {
    "JPEG": ["JPEG", "MPO"],
    "PNG": ["PNG"],
    "GIF": ["GIF"],
    "BMP": ["BMP"],
    "TIFF": ["TIFF"],
    "WEBP": ["WEBP"],
}
# Formats OpenCV may decode when Pillow does not identify the file (GIF: Pillow only).
_OPENCV_FALLBACK = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")
_ACCEPTED = "JPEG, PNG, WEBP, BMP, TIFF or GIF"

# What Pillow's decoders raise on broken data (SyntaxError: broken PNG chunks;
# struct.error / zlib.error: garbled headers and streams).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
# Bytes per pixel of Pillow's storage of each mode.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Modes Pillow's reduce() cannot take: converted (at full size) first.
_NOT_REDUCIBLE = ("1", "P", "PA", "I;16", "I;16B", "I;16L", "I;16N")
# Decodes estimated above this many bytes run one at a time in a process (the runner decodes in
# threads a few pairs ahead), so two large images cannot add their peaks.
_SERIAL_DECODE_BYTES = 128 * 2**20
_LARGE_DECODE = threading.Lock()
# Working-size copies made while converting (asarray, channel flip, alpha, 16 bit, orientation).
_WORK_BYTES_PER_PIXEL = 24


class ImageReadError(Exception):
    """An image file that cannot be turned into a BGR uint8 array.

    Attributes:
        path: the file that was asked for.
        reason: what is wrong with it, in a few words (never the file's content).
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


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`read_image_info` read.

    Attributes:
        format: "JPEG", "PNG", "GIF", "BMP", "TIFF" or "WEBP".
        original_size: (width, height) of the image as displayed (EXIF orientation
            applied) at full resolution.
        size: (width, height) of the returned array.
        downscaled: True when the image was larger than ``max_side`` and was reduced.
    """

    format: str
    original_size: tuple[int, int]
    size: tuple[int, int]
    downscaled: bool

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) factors from full-resolution to returned coordinates (1.0 unless downscaled)."""
        return self.size[0] / self.original_size[0], self.size[1] / self.original_size[1]


@dataclass(frozen=True)
class _Header:
    """Dimensions and decoder-relevant facts parsed from a file header."""

    width: int
    height: int
    progressive: bool = False  # JPEG: the decoder buffers every coefficient
    samples: float = 3.0  # JPEG: coefficient blocks per pixel (1.5 for 4:2:0 colour, 3 for 4:4:4)
    sixteen_bit: bool = False  # PNG: 16 bits per sample


def read_limits() -> dict[str, int]:
    """The limits in force (defaults, or the environment variables of the module docstring).

    Returns:
        ``{"max_bytes", "max_pixels", "max_side", "max_decode_bytes"}``.

    Raises:
        ValueError: an environment variable is set to something other than a positive integer.
    """
    return {
        "max_bytes": env_limit("SIM2WORD_MAX_IMAGE_MB", MAX_IMAGE_BYTES, 2**20),
        "max_pixels": env_limit("SIM2WORD_MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS),
        "max_side": env_limit("SIM2WORD_MAX_IMAGE_SIDE", MAX_IMAGE_SIDE),
        "max_decode_bytes": env_limit("SIM2WORD_MAX_DECODE_MB", MAX_DECODE_BYTES, 2**20),
    }


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


# --------------------------------------------------------------------------- what a file is


_ACCEPTED_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_BMP_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)


def sniff_format(data: bytes) -> str | None:
    """The accepted format of ``data`` from its signature ("JPEG", "PNG", ...), or ``None``."""
    for magic, fmt in _ACCEPTED_SIGNATURES:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    bmp = data[:2] == b"BM" and len(data) >= 26
    return "BMP" if bmp and struct.unpack_from("<I", data, 14)[0] in _BMP_HEADER_SIZES else None


_SIGNATURES = (
    (b"%PDF", "PDF document"),
    (b"%!PS", "PostScript/EPS document"),
    (b"\xc5\xd0\xd3\xc6", "EPS document"),
    (b"\x7fELF", "ELF executable"),
    (b"\xca\xfe\xba\xbe", "Mach-O/Java binary"),
    (b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!", "RAR archive"),
    (b"\x93NUMPY", "NumPy array file"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"\xd0\xcf\x11\xe0", "MS Office document"),
    (b"8BPS", "Photoshop PSD image"),
    (b"\x00\x00\x01\x00", "ICO icon"),
    (b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000 image"),
    (b"#?RADIANCE", "Radiance HDR image"),
    (b"\x76\x2f\x31\x01", "OpenEXR image"),
    (b"II+\x00", "BigTIFF image"),
    (b"\x80\x02", "Python pickle"),
    (b"\x80\x03", "Python pickle"),
    (b"\x80\x04", "Python pickle"),
    (b"\x80\x05", "Python pickle"),
)
# Short magics that text can start with: tested after the text test.
_WEAK_SIGNATURES = ((b"MZ", "Windows executable"), (b"BZh", "bzip2 data"))
_HEIF_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")
_TEXT_KINDS = (
    (("<svg", "<?xml"), "XML/SVG text file"),
    (("<!doctype html", "<html"), "HTML text file"),
    (("#!",), "script (text file)"),
)


def _text_kind(data: bytes) -> str | None:
    """ "text file" (or a finer text kind) if the head of ``data`` is UTF-8 text, else ``None``."""
    head = data[:4096]
    text = head.decode("utf-8", "ignore")
    if b"\x00" in head or len(text.encode("utf-8")) < len(head) - 3:  # a cut last character is fine
        return None
    lower = text.lstrip("\ufeff \t\r\n").lower()
    return next((name for prefixes, name in _TEXT_KINDS if lower.startswith(prefixes)), "text file")


def describe_content(data: bytes) -> str:
    """A few words for what non-image ``data`` looks like, e.g. "text file", "PDF document".

    Only the kind is named, never any of the content.
    """
    kind = next((name for magic, name in _SIGNATURES if data.startswith(magic)), None)
    if kind is None and data[4:8] == b"ftyp":
        kind = "HEIF/AVIF image" if data[8:12] in _HEIF_BRANDS else "MP4/MOV media"
    if kind is None and re.match(rb"P[1-7]\s", data[:3]):
        kind = "Netpbm image"
    if kind is None:
        kind = _text_kind(data)
    if kind is None:
        kind = next((name for magic, name in _WEAK_SIGNATURES if data.startswith(magic)), None)
    return kind or "unknown binary data"


# --------------------------------------------------------------------------- headers


def _u16(data: bytes, offset: int, fmt: str = ">H") -> int:
    return struct.unpack_from(fmt, data, offset)[0]


def _jpeg_header(data: bytes) -> _Header:
    """Walk the JPEG markers up to the first scan; the largest frame (SOF) decides."""
    i, n, best = 2, len(data), None
    while i < n:
        if data[i] != 0xFF:  # junk between segments: skipped, as Pillow and libjpeg do
            i += 1
            continue
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan: no frame header can follow
            break
        if i + 2 > n:
            break
        length = _u16(data, i)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and i + 8 <= n:
            height, width, ncomp = _u16(data, i + 3), _u16(data, i + 5), data[i + 7]
            comps = [data[i + 8 + 3 * c + 1] for c in range(ncomp) if i + 8 + 3 * c + 1 < n]
            hv = [(c >> 4) * (c & 15) for c in comps] or [1]
            samples = sum(hv) / max(*hv, 1)
            hdr = _Header(
                width, height, progressive=marker in (0xC2, 0xC6, 0xCA, 0xCE), samples=samples
            )
            if best is None or width * height > best.width * best.height:
                best = hdr
        i += max(length, 2)
    if best is None:
        raise ValueError("no frame header (SOF marker) before the image data")
    return best


def _tiff_header(data: bytes) -> _Header:
    order = "<" if data[:2] == b"II" else ">"
    offset = _u16(data, 4, order + "I")
    count = _u16(data, offset, order + "H")
    size: dict[int, int] = {}
    for k in range(count):
        entry = offset + 2 + 12 * k
        tag, typ = struct.unpack_from(order + "HH", data, entry)
        if tag in (256, 257):  # ImageWidth, ImageLength (SHORT or LONG)
            size[tag] = _u16(data, entry + 8, order + ("H" if typ == 3 else "I"))
    if 256 not in size or 257 not in size:
        raise ValueError("the first image directory has no width/length tags")
    return _Header(size[256], size[257])


def _webp_header(data: bytes) -> _Header:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return _Header(
            1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        )
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ValueError("bad VP8L signature")
        bits = int.from_bytes(data[21:25], "little")
        return _Header(1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        return _Header(_u16(data, 26, "<H") & 0x3FFF, _u16(data, 28, "<H") & 0x3FFF)
    raise ValueError("unknown WEBP chunk")


def _bmp_header(data: bytes) -> _Header:
    if struct.unpack_from("<I", data, 14)[0] == 12:  # OS/2 BITMAPCOREHEADER
        return _Header(_u16(data, 18, "<H"), _u16(data, 20, "<H"))
    width, height = struct.unpack_from("<ii", data, 18)
    return _Header(abs(width), abs(height))  # negative height: stored top-down


def parse_header(fmt: str, data: bytes) -> _Header:
    """Image dimensions (and decoder facts) from the header of ``data`` in format ``fmt``.

    Raises:
        ValueError: the header is cut short or malformed.
    """
    try:
        if fmt == "PNG":
            if data[12:16] != b"IHDR":
                raise ValueError("the first chunk is not IHDR")
            width, height = struct.unpack_from(">II", data, 16)
            return _Header(width, height, sixteen_bit=data[24] == 16)
        if fmt == "GIF":
            return _Header(_u16(data, 6, "<H"), _u16(data, 8, "<H"))
        return {
            "JPEG": _jpeg_header,
            "TIFF": _tiff_header,
            "WEBP": _webp_header,
            "BMP": _bmp_header,
        }[fmt](data)
    except (struct.error, IndexError) as err:
        raise ValueError(f"header cut short ({type(err).__name__})") from None


# --------------------------------------------------------------------------- helpers


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


def _clean(err: BaseException) -> str:
    """A decoder's message without any bytes it may quote from the file."""
    return re.sub(r"""b(['"]).*?(?<!\\)\1""", "<bytes>", str(err))[:300]


def _too_big(path: Path, pixels: int, max_pixels: int) -> ImageReadError:
    return ImageReadError(
        path,
        f"{pixels} pixels is more than the limit of {max_pixels} (possible decompression bomb)",
        "downscale the image, or raise the limit if it is genuine (max_pixels= / "
        "SIM2WORD_MAX_IMAGE_PIXELS)",
    )


def _check_size(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageReadError(path, f"image has zero size ({width}x{height})", "re-export the image")
    if width * height > max_pixels:
        raise _too_big(path, width * height, max_pixels)


def _target(width: int, height: int, max_side: int) -> tuple[int, int] | None:
    """(width, height) with the longer side fitted to ``max_side``; ``None`` if it fits already."""
    if max(width, height) <= max_side:
        return None
    scale = max_side / max(width, height)
    return max(1, min(max_side, round(width * scale))), max(1, min(max_side, round(height * scale)))


def _jpeg_scale(width: int, height: int, target: tuple[int, int] | None) -> int:
    """libjpeg's scale 1, 2, 4 or 8 keeping the decoded image >= ``target`` (as Pillow's draft)."""
    if target is None:
        return 1
    ratio = min(width // target[0], height // target[1])
    return next(s for s in (8, 4, 2, 1) if ratio >= s)


def _too_costly(
    path: Path, fmt: str, width: int, height: int, cost: int, limit: int
) -> ImageReadError:
    return ImageReadError(
        path,
        f"decoding this {width}x{height} {fmt} needs about {format_size(cost)}, more than the "
        f"limit of {format_size(limit)}",
        "downscale the file (e.g. to 2048 px on the longer side, or save it as JPEG, which "
        "decodes at reduced scale), or raise the limit (max_decode_bytes= / "
        "SIM2WORD_MAX_DECODE_MB)",
    )


def _decode_slot(cost: int) -> contextlib.AbstractContextManager:
    """The process-wide slot that large decodes take in turn (small ones run freely)."""
    return _LARGE_DECODE if cost > _SERIAL_DECODE_BYTES else contextlib.nullcontext()


def _orientation(im: Image.Image, path: Path) -> int:
    """The EXIF orientation (1..8) of an opened image; 1 if absent or unreadable."""
    try:
        value = im.getexif().get(0x0112, 1)
    except _DECODE_ERRORS + (KeyError, TypeError) as err:
        # A garbled EXIF block should not cost a good image: keep stored pixels.
        warnings.warn(
            f"{path}: unreadable EXIF orientation ({_clean(err)}); using the stored orientation",
            stacklevel=3,
        )
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """A stored (H, W, C) array as displayed under EXIF orientation 1..8 (as ``exif_transpose``)."""
    if orientation in (5, 6, 7, 8):  # the four with a quarter turn swap the axes
        arr = {
            5: lambda a: a.transpose(1, 0, 2),
            6: lambda a: np.rot90(a, -1),
            7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
            8: lambda a: np.rot90(a, 1),
        }[orientation](arr)
    elif orientation in (2, 3, 4):
        arr = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1]}[
            orientation
        ](arr)
    return np.ascontiguousarray(arr)


def _is_16bit_png(im: Image.Image) -> bool:
    """True for PNGs stored with 16 bits per sample that Pillow reduces to 8."""
    if im.format != "PNG" or not im.tile:
        return False
    rawmode = im.tile[0][3] if isinstance(im.tile[0][3], str) else im.tile[0][3][0]
    return ";16" in rawmode


def _scale_16_to_8(arr: np.ndarray) -> np.ndarray:
    """uint16 range -> uint8 by round(v / 257): 65535 -> 255, 257 * k -> k.

    Integer arithmetic: v / 257 is never exactly k + 0.5 for an integer v, so
    round(v / 257) = (v + 128) // 257.
    """
    arr = np.clip(arr, 0, 65535).astype(np.uint32)
    arr += 128
    arr //= 257
    return arr.astype(np.uint8)


def _flatten_alpha(rgba: np.ndarray, background: int) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (H, W, 3) uint8 RGB composited over ``background``.

    round(rgb * a / 255 + bg * (1 - a / 255)) in integers: the numerator
    n = rgb * a + bg * (255 - a) <= 65025 is never 255 k + 127.5, so the
    rounding is (n + 127) // 255.
    """
    alpha = rgba[..., 3:4].astype(np.uint16)
    out = rgba[..., :3].astype(np.uint16) * alpha
    out += np.uint16(background) * (255 - alpha)
    out += 127
    out //= 255
    return out.astype(np.uint8)


def _to_rgb(im: Image.Image, path: Path, alpha_background: int) -> np.ndarray:
    """A loaded Pillow image of any mode -> (H, W, 3) uint8 RGB."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        gray = _scale_16_to_8(np.asarray(im))
        return np.repeat(gray[..., None], 3, axis=2)
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


def _reduce(im: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Integer box reduction of a loaded image to within 2x of ``target`` (mode made reducible)."""
    if im.mode in _NOT_REDUCIBLE:
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
        else:
            im = im.convert("L" if im.mode == "1" else "I")
    factor = min(im.width // target[0], im.height // target[1])
    return im.reduce(factor) if factor >= 2 else im


def _area_resize(arr: np.ndarray, target: tuple[int, int] | None) -> np.ndarray:
    if target is None or (arr.shape[1], arr.shape[0]) == target:
        return arr
    return cv2.resize(arr, target, interpolation=cv2.INTER_AREA)


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


# --------------------------------------------------------------------------- the two decoders


def _pillow_cost(
    im: Image.Image, fmt: str, hdr: _Header, target: tuple[int, int] | None, sixteen: bool
) -> int:
    """Bytes the Pillow path needs, estimated before decoding: the decoded image, the decoder's own
    buffers, a full-size mode conversion before reduction, and the working-size copies."""
    width, height = im.size
    full = width * height
    scale = _jpeg_scale(width, height, target) if fmt == "JPEG" else 1
    decoded = math.ceil(width / scale) * math.ceil(height / scale)
    cost = decoded * _MODE_BYTES.get(im.mode, 4)
    if fmt == "JPEG" and hdr.progressive:
        cost += int(
            full * 2 * hdr.samples
        )  # libjpeg keeps every DCT coefficient of a progressive file
    if fmt == "WEBP":
        cost += full * 4  # libwebp decodes into its own RGBA buffer first
    if target is not None and im.mode in _NOT_REDUCIBLE:
        cost += full * 4
    if sixteen and target is None:
        cost += full * 8 * 3  # OpenCV's 16-bit decode and the 32-bit rounding
    working = target[0] * target[1] if target is not None else full
    return cost + working * _WORK_BYTES_PER_PIXEL


def _decode_pillow(
    im: Image.Image,
    data: bytes,
    path: Path,
    fmt: str,
    hdr: _Header,
    limits: dict[str, int],
    alpha_background: int,
) -> tuple[np.ndarray, tuple[int, int] | None, bool]:
    width, height = im.size
    _check_size(
        path, width, height, limits["max_pixels"]
    )  # Pillow's own header (e.g. a GIF frame > its screen)
    if im.mode == "F":
        raise ImageReadError(
            path,
            "32-bit floating-point image (mode 'F') has no defined 8-bit range",
            "convert it to an 8-bit or 16-bit PNG/TIFF first",
        )
    target = _target(width, height, limits["max_side"])
    sixteen = _is_16bit_png(im) and im.mode in ("RGB", "RGBA")
    cost = _pillow_cost(im, fmt, hdr, target, sixteen)
    if cost > limits["max_decode_bytes"]:
        raise _too_costly(path, fmt, width, height, cost, limits["max_decode_bytes"])
    with _decode_slot(cost):
        if (
            sixteen and target is None
        ):  # full precision from OpenCV; Pillow would keep the high byte only
            orientation = _orientation(im, path)
            rgb = _decode_16bit_png(data, path, alpha_background)
        else:
            if target is not None and fmt == "JPEG":
                im.draft(
                    im.mode, target
                )  # libjpeg decodes at 1/2, 1/4 or 1/8 scale, still >= target
            im.load()
            orientation = _orientation(
                im, path
            )  # after load: a PNG's eXIf chunk may follow the pixel data
            if target is not None:
                im = _reduce(im, target)
            rgb = _to_rgb(im, path, alpha_background)
        bgr = apply_orientation(_area_resize(rgb, target)[..., ::-1], orientation)
        return bgr, target, orientation >= 5


def _decode_opencv(
    data: bytes, path: Path, fmt: str, hdr: _Header, limits: dict[str, int]
) -> tuple[np.ndarray, tuple[int, int] | None, bool]:
    """Second chance for an accepted format Pillow does not identify -> BGR uint8."""
    if fmt not in _OPENCV_FALLBACK:
        raise ImageReadError(
            path, f"corrupt {fmt} data (not identified by the decoder)", "re-export the image"
        )
    target = _target(hdr.width, hdr.height, limits["max_side"])
    scale = _jpeg_scale(hdr.width, hdr.height, target) if fmt == "JPEG" else 1
    decoded = math.ceil(hdr.width / scale) * math.ceil(hdr.height / scale)
    cost = decoded * (9 if hdr.sixteen_bit else 3) + (
        hdr.width * hdr.height * 4 if fmt == "WEBP" else 0
    )
    cost += (target[0] * target[1] if target else decoded) * _WORK_BYTES_PER_PIXEL
    if cost > limits["max_decode_bytes"]:
        raise _too_costly(path, fmt, hdr.width, hdr.height, cost, limits["max_decode_bytes"])
    flag = {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    }[scale]
    try:
        with _decode_slot(cost):
            arr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error as err:
        raise ImageReadError(
            path, f"corrupt {fmt} data ({_clean(err).splitlines()[-1]})", "re-export the image"
        ) from None
    if arr is None:
        raise ImageReadError(
            path,
            f"corrupt {fmt} data (neither Pillow nor OpenCV can decode it)",
            "re-download or re-export the file",
        )
    # IMREAD_COLOR applies the EXIF orientation: fit the target to what came back
    swapped = (arr.shape[0] > arr.shape[1]) != (hdr.height > hdr.width)
    if target is not None and swapped:
        target = target[::-1]
    return np.ascontiguousarray(_area_resize(arr, target)), target, swapped


# --------------------------------------------------------------------------- entry points


def _read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes (:func:`utils.base.safefile.read_capped`); refusals as ImageReadError."""
    try:
        return read_capped(
            path,
            max_bytes,
            what="image",
            limit_hint="downscale or re-compress the image, or raise the limit "
            "(max_bytes= / SIM2WORD_MAX_IMAGE_MB)",
        )
    except UnreadableFileError as err:
        missing = err.reason == "file not found"
        hint = "check the path and the image root folder (--image-root)" if missing else err.hint
        raise ImageReadError(path, err.reason, hint) from None


_REPORTED: set[str] = set()
_REPORTED_LOCK = threading.Lock()


def _first_report(path: str | os.PathLike) -> bool:
    """True the first time a file is reported in this process (a run reads a photo once per
    pair it is in; its downscaling is logged once)."""
    key = os.fspath(path)
    with _REPORTED_LOCK:
        if key in _REPORTED:
            return False
        _REPORTED.add(key)
        return True


def read_image_info(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = None,
    max_side: int | None = None,
    max_bytes: int | None = None,
    max_decode_bytes: int | None = None,
    alpha_background: int = 255,
) -> tuple[np.ndarray, ImageInfo]:
    """:func:`read_image`, also returning what was read (:class:`ImageInfo`)."""
    path = Path(path)
    overrides = {
        "max_pixels": max_pixels,
        "max_side": max_side,
        "max_bytes": max_bytes,
        "max_decode_bytes": max_decode_bytes,
    }
    limits = {**read_limits(), **{k: int(v) for k, v in overrides.items() if v is not None}}
    data = _read_file(path, limits["max_bytes"])
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageReadError(
            path,
            f"not an image format that is read here (content: {describe_content(data)}; "
            f"accepted: {_ACCEPTED})",
            "check that the file is an image; remove it from the list or convert it",
        )
    try:
        hdr = parse_header(fmt, data)
    except ValueError as err:
        raise ImageReadError(
            path, f"corrupt {fmt} header ({err})", "re-download or re-export the file"
        ) from None
    _check_size(path, hdr.width, hdr.height, limits["max_pixels"])
    with _strict_pillow(limits["max_pixels"]):
        try:
            im = Image.open(io.BytesIO(data), formats=PILLOW_FORMATS[fmt])
        except Image.DecompressionBombError:
            raise _too_big(path, hdr.width * hdr.height, limits["max_pixels"]) from None
        except UnidentifiedImageError:
            im = None
        except _DECODE_ERRORS as err:
            raise ImageReadError(
                path, f"corrupt image header ({_clean(err)})", "re-export the image"
            ) from None
        stored = (hdr.width, hdr.height) if im is None else im.size
        if im is None:
            bgr, target, swapped = _decode_opencv(data, path, fmt, hdr, limits)
        else:
            try:
                bgr, target, swapped = _decode_pillow(
                    im, data, path, fmt, hdr, limits, alpha_background
                )
            except _DECODE_ERRORS as err:
                raise ImageReadError(
                    path,
                    f"truncated or corrupt {im.format or fmt} data ({_clean(err)})",
                    "re-download or re-export the file; partially decoded images are never used",
                ) from None
            finally:
                im.close()
    info = ImageInfo(
        fmt, stored[::-1] if swapped else stored, (bgr.shape[1], bgr.shape[0]), target is not None
    )
    if info.downscaled and _first_report(path):
        log.info(
            "%s: %dx%d image downscaled to %dx%d when read (longer side > %d; "
            "SIM2WORD_MAX_IMAGE_SIDE)",
            path,
            *info.original_size,
            *info.size,
            limits["max_side"],
        )
    return bgr, info


def read_image(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = None,
    max_side: int | None = None,
    max_bytes: int | None = None,
    max_decode_bytes: int | None = None,
    alpha_background: int = 255,
) -> np.ndarray:
    """Read an image file as an OpenCV-style BGR uint8 array, in bounded time and memory.

    Args:
        path: the file. Its extension is ignored: the content decides.
        max_pixels: refuse images with more pixels than this (width * height), from the header.
        max_side: downscale images whose longer side is larger than this to exactly this.
        max_bytes: refuse files larger than this many bytes, from their size on disk.
        max_decode_bytes: refuse images whose decoding would need more memory than this.
        alpha_background: gray level (0..255) that transparent pixels are
            composited over. Default 255 (white).

        Each limit left at ``None`` takes its default or environment value (:func:`read_limits`).

    Returns:
        ``(H, W, 3)`` uint8 array, channels in BGR order, C-contiguous, with
        the EXIF orientation applied, longer side at most ``max_side``.

    Raises:
        ImageReadError: the file is missing, not a regular file, empty, too large,
            not an accepted image format, truncated or corrupt, or over a limit.

    Example:
        >>> img = read_image("faces/n000002/0001_01.jpg")  # doctest: +SKIP
        >>> img.shape, img.dtype                             # doctest: +SKIP
        ((218, 178, 3), dtype('uint8'))
    """
    return read_image_info(
        path,
        max_pixels=max_pixels,
        max_side=max_side,
        max_bytes=max_bytes,
        max_decode_bytes=max_decode_bytes,
        alpha_background=alpha_background,
    )[0]
