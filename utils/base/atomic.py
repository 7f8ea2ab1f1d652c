"""Atomic file writes: a killed run leaves only complete files.

Every output is written to a temporary name in the destination folder and
renamed into place with :func:`os.replace`, which is atomic on POSIX.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp creates 0600 files, outputs get the usual 0666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON (``allow_nan=False``: NaN/inf raise ``ValueError``)."""
    text = json.dumps(obj, indent=indent, allow_nan=False, sort_keys=False, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")


def atomic_write_image(path: str | os.PathLike, image_bgr: np.ndarray) -> Path:
    """Encode a BGR uint8 image by the file's extension and write it atomically."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", image_bgr)
    if not ok:
        raise ValueError(
            f"could not encode image for {path} (shape {image_bgr.shape}, dtype {image_bgr.dtype})"
        )
    return atomic_write_bytes(path, buf.tobytes())


def atomic_write_figure(
    path: str | os.PathLike, fig: Any, dpi: int = 100, fast_png: bool = False
) -> Path:
    """Render a matplotlib figure (format from the suffix: png, jpg, pdf...) and write it
    atomically.

    The pixel size of a raster file is exactly ``figsize * dpi`` (no ``bbox_inches="tight"``).
    ``fast_png``: zlib level 1 instead of 6 for PNG (a per-pair figure: about 3x faster to
    encode, a slightly larger file, the same pixels).
    """
    import io

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    extra = {"pil_kwargs": {"compress_level": 1}} if fast_png and fmt == "png" else {}
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, **extra)
    return atomic_write_bytes(path, buf.getvalue())
