"""Readers for the five-point landmark files that face datasets ship.

Every reader returns ``dict[str, np.ndarray]``: image path (relative to the
dataset's image folder, ``/``-separated) -> ``(5, 2)`` float64 (x, y) in the
order left eye, right eye, nose tip, left mouth corner, right mouth corner
(image left, as :mod:`utils.faces.align` expects).

Formats:

* **CelebA** ``list_landmarks_celeba.txt`` (in-the-wild images) and
  ``list_landmarks_align_celeba.txt`` (``img_align_celeba``): line 1 the number
  of images, line 2 the header ``lefteye_x lefteye_y righteye_x righteye_y
  nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y``, then
  ``000001.jpg x1 y1 ... x5 y5``, whitespace separated.
* **VGGFace2** ``loose_landmark_train.csv`` / ``loose_landmark_test.csv``: CSV
  with header ``NAME_ID,P1X,P1Y,...,P5X,P5Y``; ``NAME_ID`` such as
  ``n000002/0001_01`` has no extension, so ``.jpg`` is appended (the dataset's
  files) unless another ``extension`` is given.
* **Generic CSV**: ``path,x1,y1,...,x5,y5``, optional header line.

Malformed files raise ``ValueError`` naming the file, the line and what was
expected; a duplicated image path is an error too (which row would be right?).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from utils.base.safefile import read_capped

CELEBA_HEADER = [
    "lefteye_x",
    "lefteye_y",
    "righteye_x",
    "righteye_y",
    "nose_x",
    "nose_y",
    "leftmouth_x",
    "leftmouth_y",
    "rightmouth_x",
    "rightmouth_y",
]
VGGFACE2_HEADER = ["NAME_ID"] + [f"P{i}{axis}" for i in range(1, 6) for axis in "XY"]
LANDMARK_FORMATS = ("celeba", "vggface2", "csv")
#: Largest landmark file read (CelebA's 200k rows are 12 MB).
MAX_LANDMARK_BYTES = 512 * 2**20


def _read_text(path: str | os.PathLike) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"landmark file {str(path)!r} not found; check --landmarks")
    # regular files only, size capped, never blocking; a BOM is dropped, CRLF left to splitlines
    return read_capped(path, MAX_LANDMARK_BYTES, what="landmark file").decode("utf-8-sig")


def _points(values: list[str], path: Path, lineno: int) -> np.ndarray:
    try:
        pts = np.array([float(v) for v in values], dtype=np.float64).reshape(5, 2)
    except ValueError as err:
        raise ValueError(
            f"{path}:{lineno}: expected 10 numbers (x1 y1 ... x5 y5), got {values!r}"
        ) from err
    if not np.isfinite(pts).all():
        raise ValueError(f"{path}:{lineno}: landmark values must be finite, got {values!r}")
    return pts


def _add(out: dict[str, np.ndarray], key: str, pts: np.ndarray, path: Path, lineno: int) -> None:
    key = key.strip().replace("\\", "/")
    if not key:
        raise ValueError(f"{path}:{lineno}: empty image name")
    if key in out:
        raise ValueError(f"{path}:{lineno}: image {key!r} listed twice; remove the duplicate row")
    out[key] = pts


def read_celeba_landmarks(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read CelebA's ``list_landmarks_celeba.txt`` or ``list_landmarks_align_celeba.txt``.

    Args:
        path: the landmark file.

    Returns:
        ``{"000001.jpg": (5, 2) array, ...}``.

    Raises:
        ValueError: bad count line, header, row, or a count that disagrees with the rows.
    """
    path = Path(path)
    lines = [(i + 1, ln) for i, ln in enumerate(_read_text(path).splitlines()) if ln.strip()]
    if len(lines) < 2:
        raise ValueError(
            f"{path}: expected a count line and a header line, found {len(lines)} non-empty lines"
        )
    try:
        count = int(lines[0][1].strip())
    except ValueError as err:
        raise ValueError(
            f"{path}:1: expected the number of images, got {lines[0][1]!r}; "
            "is this a CelebA landmark file?"
        ) from err
    header = lines[1][1].split()
    if header != CELEBA_HEADER:
        raise ValueError(
            f"{path}:{lines[1][0]}: expected header {' '.join(CELEBA_HEADER)!r}, "
            f"got {lines[1][1]!r}"
        )
    out: dict[str, np.ndarray] = {}
    for lineno, line in lines[2:]:
        fields = line.split()
        if len(fields) != 11:
            raise ValueError(
                f"{path}:{lineno}: expected 11 fields (name + 10 coordinates), got {len(fields)}"
            )
        _add(out, fields[0], _points(fields[1:], path, lineno), path, lineno)
    if len(out) != count:
        raise ValueError(
            f"{path}: line 1 announces {count} images but {len(out)} rows were read; "
            "the file may be truncated, re-download it"
        )
    return out


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(_read_text(path)))
    return [
        (reader.line_num, [f.strip() for f in row]) for row in reader if any(f.strip() for f in row)
    ]


def read_vggface2_landmarks(
    path: str | os.PathLike, extension: str = ".jpg"
) -> dict[str, np.ndarray]:
    """Read VGGFace2's ``loose_landmark_train.csv`` / ``loose_landmark_test.csv``.

    Args:
        path: the CSV file.
        extension: appended to ``NAME_ID`` to name the image file.

    Returns:
        ``{"n000002/0001_01.jpg": (5, 2) array, ...}``.
    """
    path = Path(path)
    rows = _csv_rows(path)
    if not rows or rows[0][1] != VGGFACE2_HEADER:
        got = rows[0][1] if rows else "an empty file"
        raise ValueError(f"{path}: expected header {','.join(VGGFACE2_HEADER)!r}, got {got!r}")
    out: dict[str, np.ndarray] = {}
    for lineno, row in rows[1:]:
        if len(row) != 11:
            raise ValueError(
                f"{path}:{lineno}: expected 11 fields (NAME_ID + 10 coordinates), got {len(row)}"
            )
        _add(out, row[0] + extension, _points(row[1:], path, lineno), path, lineno)
    return out


def read_csv_landmarks(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a generic ``path,x1,y1,...,x5,y5`` CSV (a header line is optional).

    Args:
        path: the CSV file; image paths relative to the image folder.

    Returns:
        ``{path: (5, 2) array, ...}``.
    """
    path = Path(path)
    rows = _csv_rows(path)
    if rows:
        try:
            [float(v) for v in rows[0][1][1:]]
        except ValueError:
            rows = rows[1:]  # header
    out: dict[str, np.ndarray] = {}
    for lineno, row in rows:
        if len(row) != 11:
            raise ValueError(
                f"{path}:{lineno}: expected 11 fields (path,x1,y1,...,x5,y5), "
                f"got {len(row)}: {row!r}"
            )
        _add(out, row[0], _points(row[1:], path, lineno), path, lineno)
    return out


def read_landmarks(path: str | os.PathLike, fmt: str) -> dict[str, np.ndarray]:
    """Read a landmark file of format ``fmt`` (one of :data:`LANDMARK_FORMATS`)."""
    readers = {
        "celeba": read_celeba_landmarks,
        "vggface2": read_vggface2_landmarks,
        "csv": read_csv_landmarks,
    }
    if fmt not in readers:
        raise ValueError(
            f"unknown landmark format {fmt!r}; choose one of {', '.join(LANDMARK_FORMATS)}"
        )
    return readers[fmt](path)
