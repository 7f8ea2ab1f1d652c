"""Where the face is on a canvas: dlib's unit face frame, canvas templates, chips, landmarks.

**Unit face frame.** dlib aligns a face by fitting a similarity from its
5-point template :data:`DLIB_5PT_UNIT` (eye corners and the base of the nose,
in "unit face" coordinates: roughly [0, 1] x [0, 1] from the outer eye corners
to below the mouth) to the landmarks of its 5-point shape predictor. A *face
chip* of side ``s`` and padding ``p`` (``dlib.get_face_chip_details``) shows
the unit square grown by ``p`` on every side; its pixel ``c`` (pixel centres
at integers) sits at

    u = 0.5 + (c - (s - 1) / 2) * (2 p + 1) / (s - 1)        (:func:`chip_to_unit`)

(dlib's extraction rectangle is ``s * scale - 1`` source pixels wide, so the
exact factor is ``(2 p + 1 - 1 / a) / (s - 1)`` with ``a`` the face's size in
source pixels per unit; the formula above is its limit for large faces, off by
under 0.5 % for faces over 200 source pixels.)

**Canvas geometry** is one affine per image, unit -> *normalised canvas
coordinates* (``align_corners=False`` convention of ``F.grid_sample``: -1 and
+1 are the outer edges of the border pixels, ``n = (2 x + 1) / W - 1``). It
does not depend on the canvas resolution. Sources (:func:`template_geometry`,
:func:`geometry_from_chip_details`):

* ``"dlib-chip-150"``: the canvas is dlib's own chip (size 150, padding 0.25,
  the dlib ResNet's input), so unit -> canvas is exact (formula above).
* ``"arcface-112"``: insightface's 5-point template (eye centres, nose tip,
  mouth corners). The eye centres of dlib's template (the midpoints of its eye
  corners) are mapped onto the ArcFace eye centres; the two templates share no
  other point, so this is a two-point similarity (an approximation: see
  docs/REAL_ATTRIBUTES.md for how well chips cut this way agree with dlib's).
* any canvas: dlib's 5 landmarks detected on the canvas itself
  (:class:`Landmarker`) and dlib's own ``get_face_chip_details``.

**Landmarks.** :class:`Landmarker` runs dlib's HOG face detector and shape
predictors (files of the ``face-recognition-models`` package, found with
``importlib.util.find_spec``, never imported): the 5-point model (CC0) and the
68-point model, whose training data (iBUG 300-W) **excludes commercial use**.
dlib (``dlib-bin``) is imported on first use only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: dlib's 5-point face template in unit face coordinates (x, y), dlib's part order:
#: image-right eye outer and inner corner, image-left eye outer and inner corner, base of the nose.
DLIB_5PT_UNIT = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
#: Eye centres (image-left, image-right) of the unit face: midpoints of the template's eye corners.
UNIT_EYE_CENTRES = np.stack([DLIB_5PT_UNIT[2:4].mean(axis=0), DLIB_5PT_UNIT[0:2].mean(axis=0)])
#: ArcFace eye centres (image-left, image-right) in a 112 x 112 crop (insightface ``arcface_dst``).
ARCFACE_EYES_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014]])
#: Canvas templates with a fixed geometry; ``None`` (a raw photo) has none.
CANVAS_TEMPLATES = ("dlib-chip-150", "arcface-112")
DLIB_CHIP_150 = (150, 0.25)  # size, padding of the dlib ResNet's chip

#: Environment variable naming a folder holding dlib's shape predictor files (default: the
#: ``models`` folder of the installed ``face-recognition-models`` package).
LANDMARK_MODELS_ENV = "SIM2WORD_DLIB_LANDMARK_MODELS"
PREDICTOR_FILES = {
    5: "shape_predictor_5_face_landmarks.dat",
    68: "shape_predictor_68_face_landmarks.dat",
}


def chip_to_unit(size: int, padding: float) -> np.ndarray:
    """Affine (2, 3): chip pixel coordinates (x, y) -> unit face coordinates (module docstring)."""
    k = (2 * padding + 1) / (size - 1)
    return np.array([[k, 0.0, 0.5 - k * (size - 1) / 2], [0.0, k, 0.5 - k * (size - 1) / 2]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Affine (2, 3) ``outer o inner`` (apply ``inner`` first)."""
    return np.hstack([outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2:] + outer[:, 2:]])


def invert(affine: np.ndarray) -> np.ndarray:
    """Inverse of an invertible affine (2, 3)."""
    lin = np.linalg.inv(affine[:, :2])
    return np.hstack([lin, -lin @ affine[:, 2:]])


def apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (..., 2) mapped by an affine (2, 3)."""
    return np.asarray(points, dtype=np.float64) @ affine[:, :2].T + affine[:, 2]


def pixels_to_normalised(width: int, height: int) -> np.ndarray:
    """Affine (2, 3): pixel coordinates (centres at integers) -> normalised coordinates."""
    return np.array(
        [[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0]]
    )


def _two_point_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The similarity (2, 3) taking the two points ``src`` exactly onto ``dst`` (complex ratio)."""
    s, d = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    a = (d[1] - d[0]) / (s[1] - s[0])
    b = d[0] - a * s[0]
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def template_geometry(template: str) -> np.ndarray:
    """Unit -> normalised canvas affine (2, 3) of a canvas aligned to ``template``.

    Args:
        template: one of :data:`CANVAS_TEMPLATES`.

    Raises:
        ValueError: unknown template (the message lists the known ones).
    """
    if template == "dlib-chip-150":
        size, padding = DLIB_CHIP_150
        return compose(pixels_to_normalised(size, size), invert(chip_to_unit(size, padding)))
    if template == "arcface-112":
        return compose(
            pixels_to_normalised(112, 112),
            _two_point_similarity(UNIT_EYE_CENTRES, ARCFACE_EYES_112),
        )
    raise ValueError(
        f"unknown canvas template {template!r}; known: {', '.join(CANVAS_TEMPLATES)} "
        "(or None for a raw photo: landmarks are then detected on each image)"
    )


def geometry_from_chip_details(details, padding: float, width: int, height: int) -> np.ndarray:
    """Unit -> normalised canvas affine (2, 3) from a ``dlib.chip_details`` found on the canvas.

    The unit square's centre is the rectangle's centre and its side ``rect.width() / (2 padding
    + 1)`` pixels (dlib's ``s * scale``), turned by ``details.angle``.

    Args:
        details: ``dlib.get_face_chip_details(shape, size, padding)`` of landmarks on the canvas.
        padding: the padding it was made with.
        width, height: canvas size in pixels.
    """
    rect = details.rect
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    side = rect.width() / (2 * padding + 1)
    c, s = np.cos(details.angle), np.sin(details.angle)
    lin = side * np.array([[c, -s], [s, c]])
    to_pixels = np.hstack([lin, (centre - lin @ [0.5, 0.5])[:, None]])
    return compose(pixels_to_normalised(width, height), to_pixels)


def unit_to_pixels(geometry: np.ndarray, width: int, height: int) -> np.ndarray:
    """Unit -> canvas pixel affine (2, 3) of a canvas of ``width`` x ``height`` pixels."""
    return compose(invert(pixels_to_normalised(width, height)), geometry)


@dataclass(frozen=True)
class FaceLandmarks:
    """dlib landmarks found on one image.

    Attributes:
        points5: (5, 2) float64 (x, y) pixels of the 5-point model (dlib's part order).
        points68: (68, 2) of the 68-point model (iBUG order), or ``None`` when not requested.
        box: (left, top, right, bottom) of the face box the predictors ran on.
        method: ``"hog"`` (detected), ``"hog-upsampled"`` or ``"fallback-box"`` (no detection;
            the predictors ran on the given fallback box).
        geometry: unit -> normalised canvas affine (2, 3) from the 5 points (dlib's chip fit).
    """

    points5: np.ndarray
    points68: np.ndarray | None
    box: tuple[int, int, int, int]
    method: str
    geometry: np.ndarray


class LandmarkModelsError(RuntimeError):
    """dlib or its shape predictor files are missing."""


def landmark_model_dir() -> Path:
    """Folder of dlib's shape predictors: ``$SIM2WORD_DLIB_LANDMARK_MODELS``, else the package's."""
    env = os.environ.get(LANDMARK_MODELS_ENV)
    if env:
        return Path(env)
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LandmarkModelsError(
            "dlib's shape predictors are not installed: pip install face-recognition-models==0.3.0 "
            f"(data only), or set {LANDMARK_MODELS_ENV} to a folder holding "
            f"{', '.join(PREDICTOR_FILES.values())}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class Landmarker:
    """dlib's HOG face detector and shape predictors, loaded once, with a small per-image cache.

    Args:
        points68: also run the 68-point predictor (iBUG 300-W training data: no commercial use).
        cache_size: images whose landmarks are kept (keyed by a hash of the pixels).

    Detection: the largest HOG face; images under 640 pixels on their longer side are searched
    at 2x as well (dlib's detector misses faces under about 80 pixels). With no face found, the
    predictors run on ``fallback_box`` (default: the whole image, as dlib does for a pre-cropped
    face).
    """

    _lock = threading.Lock()

    def __init__(self, points68: bool = True, cache_size: int = 64) -> None:
        try:
            import dlib
        except ImportError as err:
            raise LandmarkModelsError("landmarks need dlib: pip install dlib-bin") from err
        self._dlib = dlib
        folder = landmark_model_dir()
        sizes = (5, 68) if points68 else (5,)
        paths = {n: folder / PREDICTOR_FILES[n] for n in sizes}
        for n, path in paths.items():
            if not path.is_file():
                raise LandmarkModelsError(
                    f"{path} not found (the {n}-point shape predictor); "
                    "pip install face-recognition-models==0.3.0"
                )
        self._detector = dlib.get_frontal_face_detector()
        self._predictors = {n: dlib.shape_predictor(str(p)) for n, p in paths.items()}
        self._cache: OrderedDict[tuple, FaceLandmarks] = OrderedDict()
        self._cache_size = cache_size

    def _detect_box(self, rgb: np.ndarray) -> tuple[object | None, str]:
        for upsample in (0, 1) if max(rgb.shape[:2]) < 640 else (0,):
            faces = self._detector(rgb, upsample)
            if len(faces):
                best = max(faces, key=lambda r: r.area())
                return best, "hog" if upsample == 0 else "hog-upsampled"
        return None, "fallback-box"

    def __call__(
        self, image_bgr: np.ndarray, fallback_box: tuple[int, int, int, int] | None = None
    ) -> FaceLandmarks:
        """Landmarks of the main face of ``image_bgr`` ((H, W, 3) uint8 BGR)."""
        if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(
                "expected an (H, W, 3) uint8 BGR image, got "
                f"{getattr(image_bgr, 'shape', image_bgr)}"
            )
        key = (
            image_bgr.shape,
            hashlib.blake2b(np.ascontiguousarray(image_bgr).data, digest_size=16).digest(),
            fallback_box,
        )
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        result = self._compute(np.ascontiguousarray(image_bgr[..., ::-1]), fallback_box)
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def face_chip(
        self,
        image_bgr: np.ndarray,
        size: int,
        padding: float,
        landmarks: FaceLandmarks | None = None,
    ) -> np.ndarray:
        """dlib's own face chip of the main face (``dlib.get_face_chip``), (size, size, 3) BGR.

        This is the path dlib's networks were made for: HOG box, 5 landmarks, chip. With
        ``size=150, padding=0.25`` it is the ``"dlib-chip-150"`` canvas of the dlib ResNet.
        """
        found = landmarks or self(image_bgr)
        dlib = self._dlib
        shape = dlib.full_object_detection(
            dlib.rectangle(*found.box), [dlib.point(int(x), int(y)) for x, y in found.points5]
        )
        rgb = np.ascontiguousarray(image_bgr[..., ::-1])
        return np.ascontiguousarray(dlib.get_face_chip(rgb, shape, size, padding)[..., ::-1])

    def _compute(self, rgb: np.ndarray, fallback_box) -> FaceLandmarks:
        dlib = self._dlib
        h, w = rgb.shape[:2]
        rect, method = self._detect_box(rgb)
        if rect is None:
            left, top, right, bottom = fallback_box or (0, 0, w - 1, h - 1)
            rect = dlib.rectangle(int(left), int(top), int(right), int(bottom))
        shape5 = self._predictors[5](rgb, rect)
        points5 = np.array([[p.x, p.y] for p in shape5.parts()], dtype=np.float64)
        points68 = None
        if 68 in self._predictors:
            shape68 = self._predictors[68](rgb, rect)
            points68 = np.array([[p.x, p.y] for p in shape68.parts()], dtype=np.float64)
        size, padding = DLIB_CHIP_150
        geometry = geometry_from_chip_details(
            dlib.get_face_chip_details(shape5, size, padding), padding, w, h
        )
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        return FaceLandmarks(points5, points68, box, method, geometry)
