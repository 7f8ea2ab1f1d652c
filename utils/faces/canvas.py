"""The canvas of an image: the face every map, mask and erasure of Sim2Word lives on.

BRIEF interface 4: each side of a pair is explained on ONE image, the *canvas*:
the photo as read, or the face aligned to a template (:mod:`utils.faces.templates`)
by :class:`CanvasAligner`. The recognition, attribute and verification nets all
read the canvas; their maps are in its coordinates.

How a photo becomes a canvas (``method``, the ``--align`` flag of the experiment
scripts):

* no template (every net takes images as they are, e.g. the face-world nets), or
  ``"none"``: the image as read (``Canvas.method == "as-read"``); use it for a
  folder aligned beforehand with ``align_faces.py``;
* a landmark table (``--landmarks FILE``): the image's five landmarks from the
  dataset's file, aligned with them (``"file"``); an image without a row fails;
* ``"auto"`` (default): an image that is **already aligned** is used as read
  (``"pre-aligned"``); every other image is aligned by the template's own
  landmarker, then the others (:func:`utils.faces.templates.align_for`; a
  fallback is flagged);
* ``"dlib"``, ``"yunet"``, ``"haar"``: that landmarker only, always (even for an
  image that is already aligned).

**Already aligned** (``"auto"`` only) means: listed in the ``alignment.csv`` that
``align_faces.py`` writes beside its output, with a template of the same
geometry (:func:`same_geometry`). The nearest ``alignment.csv`` in the image's
folder or above it decides (its ``path`` column is relative to its own folder).
The size of an image says nothing: the 224x224 ``xfr_subject_*`` photos of
``shared/data/real_faces`` are tight face crops, not ArcFace crops; taken as
aligned by their size they lowered SFace's ROC AUC on ``pairs.csv`` from 1.0000
to 0.9991. A folder aligned by other means (insightface's 112 crops, VGGFace2's
loose crops) is used as read with ``--align none``; with ``auto`` it is aligned
again, which costs a detection per image and resamples it once more.

A photo in which no landmarker finds a face raises :class:`AlignmentError` (the
run loop records the pair as failed at stage ``align`` and goes on).

Aligned canvases are cached per file (path, size, modification time), so a photo
that appears in many pairs is aligned once per run.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.faces.templates import (
    ALIGN_METHODS,
    FaceNotFoundError,
    align_for,
    check_template,
)

#: The report ``align_faces.py`` writes beside aligned images (columns ``path``, ``template``).
ALIGNMENT_REPORT = "alignment.csv"
#: Largest alignment report read (a VGGFace2-size folder's is about 400 MB).
MAX_REPORT_BYTES = 1024 * 2**20
#: Templates that are one geometry at different scales (a net of one reads a canvas of the other).
TEMPLATE_GEOMETRY = {
    "arcface-112": "arcface",
    "vggface2-224": "arcface",
    "dlib-chip-150": "dlib-chip",
}
AS_READ, PRE_ALIGNED, FROM_FILE = "as-read", "pre-aligned", "file"


class AlignmentError(ValueError):
    """An image could not be aligned (no face found, or no landmarks in the landmark file)."""


def same_geometry(a: str | None, b: str | None) -> bool:
    """Whether a net aligned to template ``a`` reads a canvas aligned to ``b`` correctly.

    ``None`` (a net without a template takes any image) fits everything; otherwise the two must
    be the same template up to scale (``arcface-112`` and ``vggface2-224`` are).
    """
    if a is None or b is None:
        return True
    return TEMPLATE_GEOMETRY[check_template(a)] == TEMPLATE_GEOMETRY[check_template(b)]


def read_alignment_report(folder: str | os.PathLike) -> dict[str, str] | None:
    """``{path relative to folder: template}`` of ``folder/alignment.csv`` (``None``: none there).

    Raises:
        ValueError: the file is not an ``align_faces.py`` report (no ``path``/``template`` columns).
    """
    from utils.base.safefile import read_capped

    path = Path(folder) / ALIGNMENT_REPORT
    if not path.is_file():
        return None
    text = read_capped(path, MAX_REPORT_BYTES, what="alignment report").decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    if not {"path", "template"} <= set(reader.fieldnames or ()):
        raise ValueError(
            f"{path} has no 'path' and 'template' columns; it is not the report of "
            "align_faces.py (rename it, or align with --align none/yunet/dlib)"
        )
    return {row["path"].replace("\\", "/"): row["template"] for row in reader if row["path"]}


@dataclass(frozen=True)
class Canvas:
    """One image as Sim2Word explains it.

    Attributes:
        image: (S, S, 3) uint8 BGR canvas (the image as read for ``as-read``/``pre-aligned``).
        template: the template it is aligned to (``None``: as read, no template assumed).
        method: ``"as-read"``, ``"pre-aligned"``, ``"file"``, or the landmarker that aligned
            it: ``"yunet"``, ``"dlib"``, ``"haar-eyes"``, ``"haar-box"``.
        fallback: ``"auto"`` used another landmarker than the template's own.
        estimated: some landmarks were guesses (Haar, or dlib points for an ArcFace template).
        matrix: (2, 3) affine from image-as-read pixels to canvas pixels (``None`` when the
            canvas is the image as read).
    """

    image: np.ndarray
    template: str | None
    method: str
    fallback: bool = False
    estimated: bool = False
    matrix: np.ndarray | None = None


class CanvasAligner:
    """Turn images into canvases (module docstring); one per run, cached per file.

    Args:
        template: the canvas template (``None``: every image is used as read).
        method: one of :data:`utils.faces.templates.ALIGN_METHODS`.
        landmarks: ``{path relative to landmark_root: (5, 2) ArcFace-order points}`` from a
            dataset's landmark file (:func:`utils.faces.landmarks.read_landmarks`), in the
            image's full-resolution pixels; needs ``method == "auto"``.
        landmark_root: the folder the table's paths are relative to (the image root).
        cache_size: canvases kept (least recently used dropped).

    Raises:
        ValueError: unknown method or template, or landmarks with another method than auto.
    """

    def __init__(
        self,
        template: str | None,
        method: str = "auto",
        landmarks: dict[str, np.ndarray] | None = None,
        landmark_root: str | os.PathLike | None = None,
        cache_size: int = 256,
    ) -> None:
        if method not in ALIGN_METHODS:
            raise ValueError(
                f"unknown alignment method {method!r}; choose one of {', '.join(ALIGN_METHODS)}"
            )
        if template is not None:
            check_template(template)
        if landmarks is not None and method != "auto":
            raise ValueError(
                f"a landmark file gives the landmarks: use --align auto with it, not {method!r}"
            )
        self.template = template if method != "none" else None
        self.method = method
        self.landmarks = landmarks
        self.landmark_root = Path(landmark_root) if landmark_root is not None else None
        self._cache: OrderedDict[tuple, Canvas] = OrderedDict()
        self._cache_size = int(cache_size)
        self._reports: dict[Path, dict[str, str] | None] = {}
        self._lock = threading.Lock()

    @property
    def aligns(self) -> bool:
        """Whether any image may be aligned (else every canvas is the image as read)."""
        return self.template is not None

    @property
    def cache_key(self) -> str:
        """What decides the canvas of a file besides its bytes (gallery embedding caches)."""
        key = f"{self.template}|{self.method}"
        if self.landmarks is not None:
            digest = hashlib.sha256()
            for name in sorted(self.landmarks):
                digest.update(
                    name.encode() + np.asarray(self.landmarks[name], np.float64).tobytes()
                )
            digest = digest.hexdigest()[:16]
            key += f"|landmarks-{digest}"
        return key

    def _points(self, path: str | None, scale: tuple[float, float]) -> np.ndarray:
        if path is None:
            raise AlignmentError("a landmark file is in use but the image has no path")
        key = Path(path).as_posix()
        if self.landmark_root is not None:
            with contextlib.suppress(ValueError):  # outside the root: the path as given
                key = Path(path).resolve().relative_to(self.landmark_root.resolve()).as_posix()
        if key not in self.landmarks:
            raise AlignmentError(f"no row for {key!r} in the landmark file (--landmarks)")
        return np.asarray(self.landmarks[key], dtype=np.float64) * np.asarray(scale)

    def canvas(
        self, image: np.ndarray, path: str | None = None, scale: tuple[float, float] = (1.0, 1.0)
    ) -> Canvas:
        """The canvas of one image read from ``path`` (``scale``: read size / file size).

        Raises:
            AlignmentError: no face found, or no landmarks for the image in the table.
        """
        key = _file_key(path) if path is not None else None
        if key is not None:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
        result = self._make(image, path, scale)
        if key is not None:
            with self._lock:
                self._cache[key] = result
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return result

    def _make(self, image: np.ndarray, path: str | None, scale: tuple[float, float]) -> Canvas:
        template = self.template
        if template is None:
            return Canvas(image, None, AS_READ)
        points = None
        if self.landmarks is not None:
            points = self._points(path, scale)
        elif self.method == "auto" and path is not None and self.pre_aligned(path):
            return Canvas(image, template, PRE_ALIGNED)
        try:
            aligned, info = align_for(image, template, self.method, landmarks=points)
        except FaceNotFoundError as err:
            raise AlignmentError(f"{path or 'image'}: {err.reason}") from None
        return Canvas(aligned, template, info.method, info.fallback, info.estimated, info.matrix)

    def pre_aligned(self, path: str | os.PathLike) -> bool:
        """Whether the nearest ``alignment.csv`` above ``path`` lists it with a template of the
        canvas template's geometry (module docstring)."""
        target = Path(os.path.abspath(path))
        for folder in target.parents:
            with self._lock:
                if folder not in self._reports:
                    self._reports[folder] = read_alignment_report(folder)
                report = self._reports[folder]
            if report is not None:
                listed = report.get(target.relative_to(folder).as_posix())
                return (
                    listed is not None
                    and listed in TEMPLATE_GEOMETRY
                    and (same_geometry(listed, self.template))
                )
        return False

    def read(self, path: str | os.PathLike) -> Canvas:
        """Read a file (:func:`utils.faces.image_io.read_image_info`) and make its canvas.

        Raises:
            ImageReadError: the file cannot be read as an image.
            AlignmentError: as :meth:`canvas`.
        """
        from utils.faces.image_io import read_image_info

        image, info = read_image_info(path)
        return self.canvas(image, str(path), info.scale)


def _file_key(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
