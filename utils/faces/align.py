"""Five-point face alignment to the ArcFace template, and a fallback detector.

Alignment (what the paper's data went through): a similarity transform
(rotation, uniform scale, translation) is fitted by least squares (Umeyama
1991, "Least-squares estimation of transformation parameters between two
point patterns", Eq. 40-42) from five facial landmarks to insightface's
ArcFace template and the image is warped with ``cv2.warpAffine``. Landmark
order everywhere: left eye, right eye, nose tip, left mouth corner, right
mouth corner, "left" meaning the image's left (smaller x) as in CelebA,
VGGFace2 and insightface.

* 112x112 uses the template as is (``arcface_dst`` of insightface).
* 224x224 uses the same template scaled by 2 (the VGGFace2 input size).

Photos without landmark files: :func:`detect_landmarks` finds faces with
OpenCV's Haar frontal-face cascade and eyes with its eye cascade, keeps the
largest face box in which a valid eye pair is found (else the largest box), then
*estimates* the five points (so results carry ``estimated=True``):

1. Eyes: the centres of the best left/right pair of eye detections inside the
   face box (upper part of the box, plausible spacing and tilt; among valid
   pairs the one closest to where eyes usually sit in a Haar face box). When
   no such pair is found, the eye centres are placed at fixed fractions of the
   box (:data:`BOX_EYE_FRACTIONS`, measured on the shared real-face photos),
   which assumes no in-plane roll in the searched image.
2. Nose tip and mouth corners: the template's own, carried by the similarity
   that maps the template's two eye centres onto the detected ones. Alignment
   with these five points is therefore an exact two-eye alignment; the nose
   and mouth add no information of their own, and the flag says so.
3. Tilted heads: when the upright photo has no face, copies turned by
   :data:`ROLL_SEARCH_DEGREES` are searched and the points mapped back.

The Haar cascades ship with ``opencv-python(-headless)`` 4.x. OpenCV 5 dropped
``cv2.CascadeClassifier`` and the cascade files from the main package;
:func:`haar_available` tells which case applies, and
:func:`detect_landmarks` raises :class:`DetectorUnavailableError` saying what
to install. :func:`center_crop` is the no-alignment fallback.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: insightface ``arcface_dst``: the 5 landmarks in a 112x112 aligned crop, (5, 2) as (x, y).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

#: Standard aligned sizes: 112 (ArcFace/CosFace) and 224 (VGGFace2 nets).
ALIGN_SIZES = (112, 224)

#: Eye centres as fractions (x, y) of a Haar frontal-face box (left eye, right
#: eye), used when the eye cascade gives no valid pair. Medians over the 74 of
#: the 82 photos of ``shared/data/real_faces`` where both eyes were detected
#: (spread about 0.03 of the box side).
BOX_EYE_FRACTIONS = np.array([[0.305, 0.398], [0.669, 0.390]], dtype=np.float64)

_DETECT_MAX_SIDE = 800  # photos are searched at most this large (speed)
_EYE_ROI_SIDE = 200  # face boxes are rescaled to this side for the eye search
_MAX_FACE_CANDIDATES = 5  # face boxes (largest first) searched for eyes

#: In-plane turns (degrees, counter-clockwise) tried in order until a face is found.
ROLL_SEARCH_DEGREES = (0.0, 20.0, -20.0, 40.0, -40.0)


class DetectorUnavailableError(RuntimeError):
    """The Haar-cascade detector cannot run with the installed OpenCV."""


@dataclass(frozen=True)
class Detection:
    """Outcome of :func:`detect_landmarks`.

    Attributes:
        landmarks: ``(5, 2)`` float64 (x, y) in the input image's pixels, or
            ``None`` when no face was found.
        estimated: ``True``: the points are estimated from detections, not
            annotated (always ``True`` for this detector).
        method: ``"haar-eyes"`` (eyes detected), ``"haar-box"`` (eyes placed
            from the face box) or ``"none"``.
        reason: why no face was returned ("" on success).
        face_box: ``(x, y, w, h)`` of the chosen face in input pixels, or ``None``.
        num_faces: how many face boxes the face cascade found.
        rotation: degrees the image was turned for the search that found the
            face (0 upright; see :data:`ROLL_SEARCH_DEGREES`).
    """

    landmarks: np.ndarray | None
    estimated: bool
    method: str
    reason: str = ""
    face_box: tuple[int, int, int, int] | None = None
    num_faces: int = 0
    rotation: float = 0.0


def arcface_template(size: int = 112) -> np.ndarray:
    """The ArcFace 5-point template for a ``size`` x ``size`` crop.

    Args:
        size: output side in pixels; 112 gives ``arcface_dst``, 224 gives it
            times 2, other sizes scale it by ``size / 112``.

    Returns:
        ``(5, 2)`` float64 array of (x, y).
    """
    if not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(
            f"aligned size must be a positive int (112 or 224 are standard), got {size!r}"
        )
    return ARCFACE_TEMPLATE_112 * (size / 112.0)


def _check_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 2:
        raise ValueError(
            f"{name} must be an (N, 2) array of (x, y) with N >= 2, got shape {points.shape}"
        )
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinity: {points.tolist()}")
    return points


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity transform taking ``src`` points onto ``dst``.

    Minimises ``sum_i || dst_i - (c R src_i + t) ||^2`` over rotations ``R``
    (no reflection), scale ``c`` and translation ``t`` (Umeyama 1991, Eq. 40-42).

    Args:
        src: ``(N, 2)`` source points (x, y).
        dst: ``(N, 2)`` target points.
        estimate_scale: fit ``c``; ``False`` fixes ``c = 1`` (rigid).

    Returns:
        ``(2, 3)`` float64 matrix ``[c R | t]`` as used by ``cv2.warpAffine``.

    Raises:
        ValueError: shapes differ, values are not finite, or ``src`` points all coincide.
    """
    src, dst = _check_points(src, "src"), _check_points(dst, "dst")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must have the same shape, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError(f"source points all coincide ({src.tolist()}); landmarks are degenerate")
    cov = dc.T @ sc / len(src)  # Eq. 38
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # Eq. 39/43: keep a proper rotation
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt  # Eq. 40
    scale = float((s * d).sum() / var_s) if estimate_scale else 1.0  # Eq. 42
    t = mu_d - scale * rot @ mu_s  # Eq. 41
    return np.hstack([scale * rot, t[:, None]])


def similarity_to_template(landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """``(2, 3)`` matrix mapping image landmarks ``(5, 2)`` onto :func:`arcface_template`."""
    landmarks = _check_points(landmarks, "landmarks")
    if landmarks.shape != (5, 2):
        raise ValueError(
            f"landmarks must have shape (5, 2) (eyes, nose, mouth corners), got {landmarks.shape}"
        )
    return umeyama(landmarks, arcface_template(size))


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(
            f"image must be a non-empty (H, W[, C]) numpy array, got {type(image).__name__} "
            f"{getattr(image, 'shape', '')}"
        )
    return image


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp a face so its five landmarks land on the ArcFace template.

    Args:
        image: ``(H, W, 3)`` uint8 BGR (any dtype/channels ``cv2.warpAffine`` takes).
        landmarks: ``(5, 2)`` (x, y) in ``image`` pixels, order left eye, right
            eye, nose tip, left mouth corner, right mouth corner.
        size: output side, 112 or 224 (see :func:`arcface_template`).

    Returns:
        ``(size, size, 3)`` aligned crop, same dtype; areas outside the photo are black.
    """
    matrix = similarity_to_template(landmarks, size)
    return cv2.warpAffine(
        _check_image(image),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def center_crop(image: np.ndarray, size: int = 112) -> np.ndarray:
    """The ``--no-align`` fallback: central square of side ``min(H, W)``, resized to ``size``.

    Args:
        image: ``(H, W[, C])`` array.
        size: output side.

    Returns:
        ``(size, size[, C])``; ``cv2.INTER_AREA`` when shrinking, ``cv2.INTER_LINEAR`` when
        enlarging.
    """
    image = _check_image(image)
    arcface_template(size)  # validates size
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    if side == size:
        return crop.copy()
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def haar_available() -> bool:
    """True when the installed OpenCV has ``CascadeClassifier`` and its cascade files."""
    data = getattr(cv2, "data", None)
    folder = Path(getattr(data, "haarcascades", "") or "")
    return (
        hasattr(cv2, "CascadeClassifier")
        and (folder / "haarcascade_frontalface_default.xml").is_file()
    )


@functools.lru_cache(maxsize=1)
def _cascades():
    if not haar_available():
        raise DetectorUnavailableError(
            "face detection needs OpenCV's Haar cascades, "
            f"which OpenCV {cv2.__version__} does not ship "
            "(OpenCV 5 removed cv2.CascadeClassifier). "
            "Fix: pip install 'opencv-python-headless>=4.8,<5', "
            "or give a landmark file (--landmarks FILE --landmark-format celeba|vggface2|csv), "
            "or use --no-align"
        )
    folder = Path(cv2.data.haarcascades)
    face = cv2.CascadeClassifier(str(folder / "haarcascade_frontalface_default.xml"))
    eye = cv2.CascadeClassifier(str(folder / "haarcascade_eye.xml"))
    if face.empty() or eye.empty():
        raise DetectorUnavailableError(f"could not load the Haar cascade files from {folder}")
    return face, eye


def ensure_detector() -> None:
    """Load the Haar cascades now.

    Raises:
        DetectorUnavailableError: they are missing (the message names the fix).
    """
    _cascades()


def _eyes_in_box(
    gray: np.ndarray, box: tuple[int, int, int, int], eye_cascade
) -> np.ndarray | None:
    """Eye centres ``(2, 2)`` in box fractions (left, right), or ``None``."""
    x, y, w, h = box
    roi = cv2.resize(
        gray[y : y + h, x : x + w],
        (_EYE_ROI_SIDE, _EYE_ROI_SIDE),
        interpolation=cv2.INTER_AREA if w > _EYE_ROI_SIDE else cv2.INTER_LINEAR,
    )
    found = eye_cascade.detectMultiScale(
        roi, scaleFactor=1.05, minNeighbors=3, minSize=(16, 16), maxSize=(90, 90)
    )
    if len(found) < 2:
        return None
    centres = np.array([[ex + ew / 2, ey + eh / 2] for ex, ey, ew, eh in found]) / _EYE_ROI_SIDE
    centres = centres[(centres[:, 1] > 0.15) & (centres[:, 1] < 0.6)]
    left, right = centres[centres[:, 0] < 0.5], centres[centres[:, 0] >= 0.5]
    best, best_cost = None, np.inf
    for le in left:
        for re in right:
            spacing, tilt = re[0] - le[0], abs(re[1] - le[1])
            if not (0.22 <= spacing <= 0.6) or tilt > 0.6 * spacing:  # |roll| below ~30 deg
                continue
            cost = np.abs(np.stack([le, re]) - BOX_EYE_FRACTIONS).sum()
            if cost < best_cost:
                best, best_cost = np.stack([le, re]), cost
    return best


def landmarks_from_eyes(eyes: np.ndarray) -> np.ndarray:
    """Five points from two eye centres via the template's own geometry.

    Args:
        eyes: ``(2, 2)`` left and right eye centres (x, y) in image pixels.

    Returns:
        ``(5, 2)``: the eyes as given, nose and mouth corners from the template
        carried by the similarity that maps the template eyes onto ``eyes``.
    """
    eyes = _check_points(eyes, "eyes")
    matrix = umeyama(ARCFACE_TEMPLATE_112[:2], eyes)
    return np.hstack([ARCFACE_TEMPLATE_112, np.ones((5, 1))]) @ matrix.T


def _rotated(gray: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """``gray`` turned by ``degrees`` (counter-clockwise) on a canvas that holds
    all of it, and the ``(2, 3)`` matrix mapping rotated pixels back to ``gray``."""
    h, w = gray.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    matrix[:, 2] += (new_w / 2 - w / 2, new_h / 2 - h / 2)
    turned = cv2.warpAffine(
        gray, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return turned, cv2.invertAffineTransform(matrix)


def _detect_upright(gray: np.ndarray, face_cascade, eye_cascade):
    """Faces and eyes in an (equalised) gray image.

    Returns:
        ``(box, eyes (2, 2), method, num_faces)`` or ``None``.
    """
    h, w = gray.shape
    scale = min(1.0, _DETECT_MAX_SIDE / max(h, w))
    small = (
        cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        if scale < 1.0
        else gray
    )
    faces = face_cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    if len(faces) == 0:
        return None
    # Largest first; the first box with a valid eye pair wins (false positives
    # in hair or clothing are often larger than the face but have no eyes).
    boxes = [
        tuple(int(round(v / scale)) for v in b) for b in sorted(faces, key=lambda b: -b[2] * b[3])
    ]
    box, eyes_frac, method = boxes[0], BOX_EYE_FRACTIONS, "haar-box"
    for candidate in boxes[:_MAX_FACE_CANDIDATES]:
        found = _eyes_in_box(gray, candidate, eye_cascade)
        if found is not None:
            box, eyes_frac, method = candidate, found, "haar-eyes"
            break
    eyes = np.array(box[:2], dtype=np.float64) + eyes_frac * np.array(box[2:], dtype=np.float64)
    return box, eyes, method, len(faces)


def detect_landmarks(image: np.ndarray) -> Detection:
    """Find the main frontal face and estimate its five landmarks.

    The frontal-face cascade tolerates little in-plane roll, so when the upright
    image has no face the search is repeated on copies turned by
    :data:`ROLL_SEARCH_DEGREES`; the points are mapped back to the input image.

    Args:
        image: ``(H, W, 3)`` uint8 BGR (or ``(H, W)`` gray).

    Returns:
        A :class:`Detection`; ``landmarks is None`` and ``reason`` set when no
        face is found.

    Raises:
        DetectorUnavailableError: the installed OpenCV has no Haar cascades.
    """
    face_cascade, eye_cascade = _cascades()
    image = _check_image(image)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    gray = cv2.equalizeHist(gray.astype(np.uint8))
    for degrees in ROLL_SEARCH_DEGREES:
        turned, back = _rotated(gray, degrees) if degrees else (gray, np.eye(2, 3))
        found = _detect_upright(turned, face_cascade, eye_cascade)
        if found is None:
            continue
        box, eyes, method, num_faces = found
        eyes = eyes @ back[:, :2].T + back[:, 2]
        if degrees:
            corners = (
                np.array(
                    [
                        [box[0], box[1]],
                        [box[0] + box[2], box[1]],
                        [box[0], box[1] + box[3]],
                        [box[0] + box[2], box[1] + box[3]],
                    ],
                    dtype=np.float64,
                )
                @ back[:, :2].T
                + back[:, 2]
            )
            lo, hi = corners.min(axis=0), corners.max(axis=0)
            box = (int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1]))
        return Detection(
            landmarks_from_eyes(eyes), True, method, "", box, num_faces, float(degrees)
        )
    h, w = gray.shape
    return Detection(
        None,
        True,
        "none",
        f"no face found by the Haar frontal-face cascade in a {w}x{h} image, "
        f"also turned by {list(ROLL_SEARCH_DEGREES[1:])} degrees "
        "(profile, very small, or occluded faces are missed)",
    )
