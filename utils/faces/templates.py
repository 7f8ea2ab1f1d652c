"""Align a raw photo to the face template a network expects (BRIEF interface 3): :func:`align_for`.

Templates (``net.alignment``):

* ``"arcface-112"``: insightface's five-point ArcFace template in a 112x112
  crop (:data:`utils.faces.align.ARCFACE_TEMPLATE_112`); similarity transform
  fitted by least squares (Umeyama), ``cv2.warpAffine`` bilinear.
* ``"vggface2-224"``: the same template scaled by 2 in a 224x224 crop.
* ``"dlib-chip-150"``: dlib's face chip, ``get_face_chip(size=150,
  padding=0.25)``: a similarity fitted from dlib's 5-point mean face to the
  landmarks, the chip cut by ``dlib.extract_image_chip`` (bilinear, with an
  image pyramid when it shrinks). :func:`dlib_chip_matrix` gives the chip's
  exact pixel geometry (dlib's ``get_mapping_to_chip``), which is also used,
  with ``cv2.warpAffine``, when dlib is not installed.

Landmarkers (``method``): ``"yunet"`` and ``"dlib"``
(:mod:`utils.faces.detect`), ``"haar"`` (the old Haar-cascade heuristic of
:mod:`utils.faces.align`, eyes only, a last resort), ``"none"`` (the image is
taken as aligned: central square resized to the template size) and
``"auto"``: the template's own landmarker first, then the others
(:data:`AUTO_ORDER`); anything but the first is flagged ``fallback=True``.

Landmarks of one convention are carried to another template through dlib's
68-point mean face (``dlib/image_transforms/interpolation.h``, the frame of
``get_face_chip_details``): the ArcFace points (eye centres = mean of the six
points of each eye, nose tip = point 30, mouth corners = points 48 and 54)
and dlib's five points (eye corners 36, 39, 42, 45 and nose base 33) sit at
known places of that frame (:data:`MEAN_FACE_ARCFACE5`, :data:`MEAN_FACE_DLIB5`).
So YuNet points give a dlib chip by a 5-point fit; dlib points give an ArcFace
crop through the fit of dlib's template (``estimated=True``: nose and mouth
are the mean face's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from utils.faces import detect as detectors
from utils.faces.align import (
    ARCFACE_TEMPLATE_112,
    DetectorUnavailableError,
    center_crop,
    detect_landmarks,
    umeyama,
)
from utils.faces.detect import ARCFACE5, DLIB5, DetectorUnavailable, FaceDetection

TEMPLATES = ("arcface-112", "vggface2-224", "dlib-chip-150")
ALIGN_METHODS = ("auto", "dlib", "yunet", "haar", "none")
AUTO_ORDER = {
    "dlib-chip-150": ("dlib", "yunet", "haar"),
    "arcface-112": ("yunet", "dlib", "haar"),
    "vggface2-224": ("yunet", "dlib", "haar"),
}
DLIB_CHIP_PADDING = 0.25

#: dlib's 5-point template (``get_face_chip_details``), unit frame, order of the 5-point predictor.
MEAN_FACE_DLIB5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
# dlib's mean face shape, points 17..67 (x then y), unit frame (interpolation.h).
_MEAN68_X = np.array(
    [
        0.000213256,
        0.0752622,
        0.18113,
        0.29077,
        0.393397,
        0.586856,
        0.689483,
        0.799124,
        0.904991,
        0.98004,
        0.490127,
        0.490127,
        0.490127,
        0.490127,
        0.36688,
        0.426036,
        0.490127,
        0.554217,
        0.613373,
        0.121737,
        0.187122,
        0.265825,
        0.334606,
        0.260918,
        0.182743,
        0.645647,
        0.714428,
        0.793132,
        0.858516,
        0.79751,
        0.719335,
        0.254149,
        0.340985,
        0.428858,
        0.490127,
        0.551395,
        0.639268,
        0.726104,
        0.642159,
        0.556721,
        0.490127,
        0.423532,
        0.338094,
        0.290379,
        0.428096,
        0.490127,
        0.552157,
        0.689874,
        0.553364,
        0.490127,
        0.42689,
    ]
)
_MEAN68_Y = np.array(
    [
        0.106454,
        0.038915,
        0.0187482,
        0.0344891,
        0.0773906,
        0.0773906,
        0.0344891,
        0.0187482,
        0.038915,
        0.106454,
        0.203352,
        0.307009,
        0.409805,
        0.515625,
        0.587326,
        0.609345,
        0.628106,
        0.609345,
        0.587326,
        0.216423,
        0.178758,
        0.179852,
        0.231733,
        0.245099,
        0.244077,
        0.231733,
        0.179852,
        0.178758,
        0.216423,
        0.244077,
        0.245099,
        0.780233,
        0.745405,
        0.727388,
        0.742578,
        0.727388,
        0.745405,
        0.780233,
        0.864805,
        0.902192,
        0.909281,
        0.902192,
        0.864805,
        0.784792,
        0.778746,
        0.785343,
        0.778746,
        0.784792,
        0.824182,
        0.831803,
        0.824182,
    ]
)


def _mean68(*indices: int) -> np.ndarray:
    idx = np.asarray(indices) - 17
    return np.array([_MEAN68_X[idx].mean(), _MEAN68_Y[idx].mean()])


#: ArcFace-convention points in dlib's unit frame: eye centres, nose tip (30), mouth (48, 54).
MEAN_FACE_ARCFACE5 = np.stack(
    [_mean68(*range(36, 42)), _mean68(*range(42, 48)), _mean68(30), _mean68(48), _mean68(54)]
)
_UNIT = {ARCFACE5: MEAN_FACE_ARCFACE5, DLIB5: MEAN_FACE_DLIB5}


class FaceNotFoundError(ValueError):
    """No landmarker found a face; ``reason`` says what each one did."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AlignInfo:
    """How an image was aligned.

    Attributes:
        template: the template name.
        method: ``"dlib"``, ``"yunet"``, ``"haar-eyes"``, ``"haar-box"``, ``"file"`` (landmarks
            given) or ``"none"`` (central crop).
        landmarks: (5, 2) landmarks in input pixels (``None`` for ``"none"``).
        convention: ``"arcface5"`` / ``"dlib5"`` / ``None``.
        matrix: (2, 3) affine map from input pixels to aligned pixels.
        fallback: ``True`` when ``"auto"`` had to use another landmarker than the template's own.
        estimated: ``True`` when some landmarks are guesses (Haar, or carried between conventions).
        score: detector confidence (``None`` when not detected).
        num_faces: faces the successful detector found.
        notes: what failed before the method that worked.
    """

    template: str
    method: str
    landmarks: np.ndarray | None
    convention: str | None
    matrix: np.ndarray
    fallback: bool = False
    estimated: bool = False
    score: float | None = None
    num_faces: int = 0
    notes: tuple[str, ...] = field(default=())


def template_size(template: str) -> int:
    """Side of the aligned image for ``template``."""
    check_template(template)
    return {"arcface-112": 112, "vggface2-224": 224, "dlib-chip-150": 150}[template]


def check_template(template: str) -> str:
    if template not in TEMPLATES:
        raise ValueError(f"unknown face template {template!r}; known: {', '.join(TEMPLATES)}")
    return template


def template_points(template: str, convention: str) -> np.ndarray:
    """Where landmarks of ``convention`` land in the image aligned to ``template``: (5, 2) px."""
    size = template_size(template)
    if template == "dlib-chip-150":
        return (DLIB_CHIP_PADDING + _UNIT[convention]) / (2 * DLIB_CHIP_PADDING + 1) * size
    if convention == ARCFACE5:
        return ARCFACE_TEMPLATE_112 * (size / 112.0)
    raise ValueError(
        f"the {template} template is defined for {ARCFACE5} landmarks; convert {convention} "
        "with convert_landmarks first"
    )


def convert_landmarks(points: np.ndarray, source: str, target: str) -> np.ndarray:
    """Carry (5, 2) landmarks to another convention through dlib's mean face (a 5-point fit)."""
    if source == target:
        return np.asarray(points, dtype=np.float64)
    unit_to_image = umeyama(_UNIT[source], points)
    return np.hstack([_UNIT[target], np.ones((5, 1))]) @ unit_to_image.T


def eye_centres(points: np.ndarray, convention: str) -> np.ndarray:
    """(2, 2) image-left and image-right eye centres of (5, 2) landmarks (dlib: corners' mean)."""
    points = np.asarray(points, dtype=np.float64)
    if convention == ARCFACE5:
        return points[:2].copy()
    if convention == DLIB5:
        return np.stack([points[2:4].mean(axis=0), points[0:2].mean(axis=0)])
    raise ValueError(f"unknown landmark convention {convention!r}; known: {ARCFACE5}, {DLIB5}")


def eye_disagreement(a: FaceDetection, b: FaceDetection) -> float:
    """Largest distance between two detections' eye centres, in inter-ocular distances of ``a``."""
    ea, eb = eye_centres(a.landmarks, a.convention), eye_centres(b.landmarks, b.convention)
    return float(np.linalg.norm(ea - eb, axis=1).max() / np.linalg.norm(ea[1] - ea[0]))


def dlib_chip_matrix(chip_to_image: np.ndarray, size: int) -> np.ndarray:
    """dlib's exact chip geometry for a similarity ``chip_to_image`` (2, 3): (2, 3) image -> chip.

    ``chip_details(chip_points, img_points, dims)`` keeps the similarity's angle
    and scale as a rectangle of ``size * scale`` centred on the image of the
    chip centre ``(size/2, size/2)`` (``centered_drect`` subtracts 1 from each
    side), and ``extract_image_chip`` maps that rectangle's corners onto chip
    pixels 0 and ``size - 1``.
    """
    a, b = chip_to_image[0, 0], chip_to_image[1, 0]
    angle, scale = np.arctan2(b, a), np.hypot(a, b)
    centre = chip_to_image @ np.array([size / 2.0, size / 2.0, 1.0])
    step = (size * scale - 1.0) / (size - 1.0)  # image pixels per chip pixel
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = rot.T / step
    return np.hstack([linear, ((size - 1) / 2.0 - linear @ centre)[:, None]])


def _warp(
    image: np.ndarray, points: np.ndarray, convention: str, template: str
) -> tuple[np.ndarray, np.ndarray]:
    """(aligned image, (2, 3) input -> aligned matrix) for landmarks ``points``."""
    size = template_size(template)
    if template == "dlib-chip-150":
        chip_pts = template_points(template, convention)
        matrix = dlib_chip_matrix(umeyama(chip_pts, points), size)
        try:
            import dlib
        except ImportError:
            dlib = None
        if dlib is not None and image.ndim == 3:
            details = dlib.chip_details(
                dlib.dpoints([dlib.dpoint(*p) for p in chip_pts]),
                dlib.dpoints([dlib.dpoint(*p) for p in points]),
                dlib.chip_dims(size, size),
            )
            rgb = np.ascontiguousarray(image[:, :, ::-1])
            return np.ascontiguousarray(dlib.extract_image_chip(rgb, details)[:, :, ::-1]), matrix
    else:
        arc = convert_landmarks(points, convention, ARCFACE5)
        matrix = umeyama(arc, template_points(template, ARCFACE5))
    return cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    ), matrix


def _crop_matrix(shape: tuple[int, ...], size: int) -> np.ndarray:
    h, w = shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    k = size / side
    return np.array([[k, 0.0, -left * k], [0.0, k, -top * k]])


def main_face(image: np.ndarray, method: str) -> tuple[FaceDetection | None, str]:
    """The largest face one landmarker finds (``"yunet"``, ``"dlib"``, ``"haar"``): (face, note).

    The face is ``None`` when none was found; the note is then why (no face, detector missing),
    else the number of faces found.
    """
    if method == "haar":
        try:
            det = detect_landmarks(image)
        except DetectorUnavailableError as err:
            return None, f"haar: unavailable ({err})"
        if det.landmarks is None:
            return None, f"haar: {det.reason}"
        box = tuple(float(v) for v in det.face_box) if det.face_box else (0.0, 0.0, 0.0, 0.0)
        face = FaceDetection(box, det.landmarks, ARCFACE5, float("nan"), det.method)
        return face, str(det.num_faces)
    try:
        faces = detectors.detect(image, method)
    except DetectorUnavailable as err:
        return None, f"{method}: unavailable ({err})"
    if not faces:
        return None, f"{method}: no face found"
    return faces[0], f"{len(faces)}"


def align_for(
    image_bgr: np.ndarray, template: str, method: str = "auto", landmarks: np.ndarray | None = None
) -> tuple[np.ndarray, AlignInfo]:
    """Detect the main face of a photo and align it to ``template``.

    Args:
        image_bgr: (H, W, 3) uint8 BGR photo.
        template: one of :data:`TEMPLATES` (a network's ``alignment``).
        method: one of :data:`ALIGN_METHODS` (module docstring).
        landmarks: (5, 2) ArcFace-convention landmarks from a dataset file; when
            given, no detector runs (``method`` must be ``"auto"``).

    Returns:
        (aligned (S, S, 3) uint8 BGR image, :class:`AlignInfo`), S = :func:`template_size`.

    Raises:
        FaceNotFoundError: no landmarker found a face (``reason`` lists each attempt).
        ValueError: unknown template or method, bad image or landmarks.
    """
    size = template_size(template)
    if method not in ALIGN_METHODS:
        raise ValueError(
            f"unknown alignment method {method!r}; choose one of {', '.join(ALIGN_METHODS)}"
        )
    if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            "align_for needs an (H, W, 3) uint8 BGR image, got "
            f"{getattr(image_bgr, 'shape', None)} "
            f"{getattr(image_bgr, 'dtype', type(image_bgr).__name__)}"
        )
    if landmarks is not None:
        if method != "auto":
            raise ValueError(f"landmarks were given, so method must be 'auto', not {method!r}")
        points = np.asarray(landmarks, dtype=np.float64)
        if points.shape != (5, 2) or not np.isfinite(points).all():
            raise ValueError(f"landmarks must be a finite (5, 2) array, got {points.shape}")
        aligned, matrix = _warp(image_bgr, points, ARCFACE5, template)
        return aligned, AlignInfo(template, "file", points, ARCFACE5, matrix, estimated=False)
    if method == "none":
        return center_crop(image_bgr, size), AlignInfo(
            template, "none", None, None, _crop_matrix(image_bgr.shape, size)
        )
    order = AUTO_ORDER[template] if method == "auto" else (method,)
    notes = []
    for rank, name in enumerate(order):
        face, note = main_face(image_bgr, name)
        if face is None:
            notes.append(note)
            continue
        aligned, matrix = _warp(image_bgr, face.landmarks, face.convention, template)
        # Haar's nose and mouth are the template's; dlib's 5 points have no mouth for ArcFace.
        estimated = face.method.startswith("haar") or (
            face.convention == DLIB5 and template != "dlib-chip-150"
        )
        score = None if np.isnan(face.score) else face.score
        return aligned, AlignInfo(
            template,
            face.method,
            face.landmarks,
            face.convention,
            matrix,
            fallback=rank > 0,
            estimated=bool(estimated),
            score=score,
            num_faces=int(note) if note.isdigit() else 1,
            notes=tuple(notes),
        )
    h, w = image_bgr.shape[:2]
    raise FaceNotFoundError(f"no face found in the {w}x{h} image ({'; '.join(notes)})")
