"""The ``real-attributes`` net: registry, canvas geometry (vs dlib), Grad-CAM warp-back, parts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models import face_geometry as geo
from models import get_network
from models.attributes import REAL_FACES, get_vocabulary
from models.face_parts import MEAN_SHAPE68_UNIT, PART_WORDS, part_maps, part_masks
from models.real_attributes import RealAttributeNet, sample_chip
from utils.explain.cam import CAMExplainer, HeadLogit


def _packaged_net(**overrides):
    from models.dlib_age_gender import ModelFilesError

    pytest.importorskip("onnx", reason="reading the ONNX graphs needs the onnx package")
    try:
        return get_network("real-attributes", **overrides)
    except ModelFilesError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def landmarker():
    pytest.importorskip("dlib", reason="landmarks need dlib-bin")
    from models.real_attributes import shared_landmarker

    try:
        return shared_landmarker(True)
    except geo.LandmarkModelsError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def photos():
    from tests.conftest import SHARED_DIR
    from utils.faces.image_io import read_image

    root = SHARED_DIR / "data" / "real_faces"
    if not root.is_dir():
        pytest.skip(f"real photos not found at {root} (set SIM2WORD_SHARED)")
    return [
        read_image(root / name)
        for name in ("deepface_01/3.jpg", "xfr_subject_1/2.png", "face_recognition_obama/2.jpg")
    ]


# ----------------------------------------------------------------------------- registry, vocabulary


def test_registered_with_vocabulary_and_cam_layer():
    net = get_network("real-attributes", weights=False)  # random weights: no file, no package
    assert net.kind == "attribute" and net.vocabulary is REAL_FACES is get_vocabulary("real-faces")
    assert net.head_sizes == (2, 3, 1, 1, 1, 1, 1, 1, 1, 1)
    assert isinstance(net.get_submodule(net.target_layer), nn.Identity)
    assert [REAL_FACES.word_for(j, 0) for j in range(2, 10)] == list(PART_WORDS)
    assert (REAL_FACES.word_for(0, 1), REAL_FACES.word_for(1, 2)) == ("Female", "Senior")
    assert all(REAL_FACES.is_present(j, 0) for j in range(10))


def test_bad_settings_fail_clearly():
    with pytest.raises(ValueError, match="dlib-chip-150, arcface-112"):
        RealAttributeNet(canvas_template="vggface2-300", geometry="template")
    with pytest.raises(ValueError, match="needs a canvas template"):
        RealAttributeNet(canvas_template=None, geometry="template")
    other = RealAttributeNet(canvas_template="vggface2-300")  # an unknown alignment: detected
    assert other.geometry == "detect" and other._fallback_box(np.zeros((9, 9, 3), np.uint8)) is None
    with pytest.raises(ValueError, match="geometry must be one of"):
        RealAttributeNet(geometry="guess")
    net = RealAttributeNet(canvas_template=None)
    with pytest.raises(ValueError, match="net.preprocess"):
        net(torch.zeros(1, 3, 50, 50))
    with pytest.raises(ValueError, match="image 1"):
        RealAttributeNet("dlib-chip-150").preprocess(
            [np.zeros((9, 9, 3), np.uint8), np.zeros((9, 9), np.uint8)]
        )


def test_outputs_are_the_networks_on_the_chips():
    """Forward = the two networks on the chips it cuts (the Grad-CAM routing adds exactly 0)."""
    from models.dlib_age_gender import DLIB_MEAN_RGB

    torch.manual_seed(0)
    net = get_network("real-attributes", weights=False, canvas_template="dlib-chip-150")
    images = [
        np.random.default_rng(k).integers(0, 255, (150, 150, 3), dtype=np.uint8) for k in range(2)
    ]
    x = net.preprocess(images)
    with torch.no_grad():
        out = net(x)
        chips_g, chips_a = net.chips(x)
        mean = torch.tensor(DLIB_MEAN_RGB)[:, None, None]
        gender = net.gender((chips_g - mean) / 256)
        ages = net.age((chips_a - mean) / 256)
    assert [tuple(o.shape) for o in out] == [(2, 2), (2, 3)] + [(2, 1)] * 8
    torch.testing.assert_close(out[0], gender[:, [1, 0]], rtol=0, atol=0)
    groups = torch.softmax(ages, 1)
    expected = torch.stack(
        [groups[:, :35].sum(1), groups[:, 35:60].sum(1), groups[:, 60:].sum(1)], 1
    )
    torch.testing.assert_close(torch.softmax(out[1], 1), expected, rtol=1e-5, atol=1e-6)
    assert all(float(o.abs().max()) == 0 for o in out[2:])


# ----------------------------------------------------------------------------- geometry


def test_template_geometry_matches_dlib_chip_formula():
    g = geo.template_geometry("dlib-chip-150")
    to_px = geo.unit_to_pixels(g, 150, 150)
    # unit (0.5, 0.5) is the chip centre 74.5; unit 0 and 1 are 74.5 -+ 149 / 1.5 / 2 pixels
    np.testing.assert_allclose(
        geo.apply(to_px, [[0.5, 0.5], [0.0, 1.0]]),
        [[74.5, 74.5], [74.5 - 49.6667, 74.5 + 49.6667]],
        atol=1e-3,
    )
    a = geo.unit_to_pixels(geo.template_geometry("arcface-112"), 112, 112)
    np.testing.assert_allclose(geo.apply(a, geo.UNIT_EYE_CENTRES), geo.ARCFACE_EYES_112, atol=1e-9)


def test_raw_canvas_chips_equal_dlibs_chips(photos, landmarker):
    """Detected geometry on the raw photo reproduces dlib's own chips (to its integer rounding)."""
    net = RealAttributeNet(canvas_template=None)
    for image in photos[:2]:
        found = landmarker(image)
        with torch.no_grad():
            chips = net.chips(net.preprocess([image]))
        for chip, size in zip(chips, (32, 64), strict=True):
            ours = chip[0].permute(1, 2, 0).numpy()
            ref = landmarker.face_chip(image, size, 0.2, found)[..., ::-1].astype(np.float64)
            diff = np.abs(ours - ref)[2:-2, 2:-2].mean()
            assert diff < 3.0, (
                f"{size} chip differs from dlib's by {diff:.2f} grey levels on average"
            )


def test_dlib_chip_canvas_geometry_against_dlib_ramps(landmarker):
    """Template 'dlib-chip-150': chips cut from dlib's 150 chip see the points dlib's chips see."""
    import dlib

    h, w = 400, 360
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    shape = dlib.full_object_detection(
        dlib.rectangle(80, 90, 280, 290),
        [
            dlib.point(245, 160),
            dlib.point(205, 163),
            dlib.point(115, 158),
            dlib.point(155, 162),
            dlib.point(182, 230),
        ],
    )
    canvas = np.stack(
        [dlib.extract_image_chip(c, dlib.get_face_chip_details(shape, 150, 0.25)) for c in (xs, ys)]
    )
    for size in (32, 64):
        ref = np.stack(
            [
                dlib.extract_image_chip(c, dlib.get_face_chip_details(shape, size, 0.2))
                for c in (xs, ys)
            ]
        )
        to_unit = geo.chip_to_unit(size, 0.2)
        to_canvas = geo.compose(
            geo.unit_to_pixels(geo.template_geometry("dlib-chip-150"), 150, 150), to_unit
        )
        ours = sample_chip(torch.from_numpy(canvas)[None], to_canvas, size)[0].numpy()
        spacing = 200 * 1.4 / size  # source pixels per chip pixel, about
        err = np.abs(ours - ref)[:, 3:-3, 3:-3].max() / spacing
        assert err < 0.35, f"chip {size}: source points differ by {err:.2f} chip pixels"


class _Brightness(nn.Module):
    """Stand-in features: the chip's brightness pooled onto the network's cell grid."""

    def __init__(self, channels: int, pool: int, crop: int = 0) -> None:
        super().__init__()
        self.channels, self.pool, self.crop = channels, pool, crop

    def forward(self, x):
        if self.crop:
            x = x[..., self.crop : -self.crop, self.crop : -self.crop]
        return F.avg_pool2d(x.mean(1, keepdim=True), self.pool).expand(-1, self.channels, -1, -1)


@pytest.mark.parametrize(
    "template,blob",
    [("dlib-chip-150", (50, 95)), ("dlib-chip-150", (104, 40)), ("arcface-112", (70, 60))],
)
@pytest.mark.parametrize("head", [0, 1])
def test_gradcam_map_lands_on_the_canvas_blob(template, blob, head):
    """A bright blob on the canvas -> chip -> features -> Grad-CAM at 'cam' -> back on the blob."""
    size = 150 if template == "dlib-chip-150" else 112
    net = RealAttributeNet(canvas_template=template, geometry="template").eval()
    net.gender.features = _Brightness(64, 2)
    net.gender.forward_head = lambda f: torch.stack([-f.sum((1, 2, 3)), f.sum((1, 2, 3))], 1)
    net.age.forward_features = _Brightness(128, 8, crop=5)  # cells centred on chip pixels 8 f + 8.5
    net.age.forward_head = lambda f: (
        f.sum((1, 2, 3))[:, None].expand(-1, 81) * torch.linspace(-1, 1, 81)
    )
    canvas = np.full((size, size, 3), 118, np.uint8)  # about dlib's mean: features ~0 off the blob
    cv2.circle(canvas, blob, 4, (255, 255, 255), -1)
    cls = 0 if head == 0 else 2  # Male = +brightness; Senior = the largest age classes
    with CAMExplainer(net, net.target_layer) as cam:
        res = cam(net.preprocess([canvas]), [[HeadLogit(head, cls)]], out_size=(size, size))
    heat = res.maps[0][0].numpy()
    assert heat.max() > 0.9  # the 1 of the cam grid, resized bilinearly
    ys, xs = np.nonzero(heat > 0.5)
    centre = np.array([xs.mean(), ys.mean()])
    # a gender cell is 9 (150 canvas) or 6 (112) canvas pixels, an age cell 18 or 12: the
    # thresholded map's centre may sit anywhere in the blob's cell, but never a cell away
    tol = 4.0 if head == 0 else 10.0
    assert np.hypot(*(centre - blob)) < tol, f"map centre {centre} is not on the blob at {blob}"


def test_cam_cells_warp_to_their_canvas_positions():
    """One hot Grad-CAM cell -> its chip pixel (stride f + offset) -> that pixel's canvas point."""
    from models.real_attributes import _AGE_CELL, _GENDER_CELL, _warp

    net = RealAttributeNet(canvas_template="dlib-chip-150")
    g = geo.template_geometry("dlib-chip-150")
    to_px = geo.unit_to_pixels(g, 150, 150)
    for size, cells, (stride, offset) in ((32, 16, _GENDER_CELL), (64, 7, _AGE_CELL)):
        back, _ = net._warps(g[None], size, cells, (stride, offset), torch.device("cpu"))
        feat = torch.zeros(1, 1, cells, cells)
        feat[0, 0, 2, 5] = 1.0  # row 2, column 5
        canvas = _warp(feat, back, 150)[0, 0].numpy()
        y, x = np.unravel_index(canvas.argmax(), canvas.shape)
        expected = geo.apply(
            geo.compose(to_px, geo.chip_to_unit(size, 0.2)),
            [stride * 5 + offset, stride * 2 + offset],
        )
        assert np.hypot(x - expected[0], y - expected[1]) <= 0.75, (size, (x, y), expected)


def test_gradient_reaches_the_canvas_inside_the_chip_only():
    torch.manual_seed(0)
    net = get_network("real-attributes", weights=False, canvas_template="dlib-chip-150")
    x = net.preprocess([np.full((150, 150, 3), 120, np.uint8)]).requires_grad_(True)
    out = net(x)
    (out[0][:, 0].sum() + out[1][:, 2].sum()).backward()
    grad = x.grad[0, :3].abs().sum(0)
    assert grad[40:110, 40:110].sum() > 0
    # rows 0-2 lie above the chips (unit y < -0.2): only the pyramid filter's tails reach them
    assert float(grad[:3].sum()) < 1e-3 * float(grad.sum())


# ----------------------------------------------------------------------------- part regions


def _template_points(size: int = 200) -> np.ndarray:
    """The mean shape on a size x size canvas with room above the face for the hair."""
    return MEAN_SHAPE68_UNIT * (size / 2.2) + [0.6 * size / 2.2, 1.0 * size / 2.2]


def test_part_masks_are_where_the_parts_are():
    p = _template_points(300)
    masks = part_masks(p, (300, 300))
    assert masks.shape == (8, 300, 300) and masks.dtype == bool
    idx = {w: k for k, w in enumerate(PART_WORDS)}

    def at(part, point):
        x, y = np.round(point).astype(int)
        return bool(masks[idx[part], y, x])

    assert at("Eyes", p[36:42].mean(0)) and at("Eyes", p[42:48].mean(0))
    assert at("Eyebrows", p[19]) and at("Nose", p[30]) and at("Mouth", (p[51] + p[57]) / 2)
    assert at("Chin", (p[57] + p[8]) / 2) and at("Cheeks", (p[2] + p[31]) / 2)
    brow = p[17:27].mean(0)
    third = np.linalg.norm(brow - p[33])
    assert at("Forehead", brow - [0, 0.5 * third]) and at("Hair", brow - [0, 1.3 * third])
    assert not at("Eyes", p[30]) and not at("Mouth", p[30]) and not at("Hair", p[30])
    features = masks[[idx[w] for w in ("Eyes", "Nose", "Mouth", "Cheeks", "Chin")]].astype(int)
    assert features.sum(0).max() == 1, "eyes, nose, mouth, cheeks and chin must not overlap"


def test_part_maps_are_soft_and_normalised():
    maps = part_maps(_template_points(), (200, 200))
    assert maps.shape == (8, 200, 200) and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.reshape(8, -1).max(1), 1.0)
    with pytest.raises(ValueError, match="68, 2"):
        part_maps(np.zeros((5, 2)), (10, 10))


def test_region_maps_on_real_canvases(photos, landmarker):
    net = RealAttributeNet(canvas_template="dlib-chip-150")
    canvases = [landmarker.face_chip(img, 150, 0.25) for img in photos[:2]]
    maps = net.region_maps(canvases, (112, 112))
    assert maps.shape == (2, 10, 112, 112) and maps.dtype == np.float32
    assert maps[:, :2].max() == 0 and maps.min() >= 0 and maps.max() <= 1
    for k, canvas in enumerate(canvases):
        p = landmarker(canvas).points68 * (112 / 150)
        mouth = maps[k, 2 + PART_WORDS.index("Mouth")]
        ys, xs = np.nonzero(mouth > 0.5)
        assert np.hypot(xs.mean() - p[48:60, 0].mean(), ys.mean() - p[48:60, 1].mean()) < 4
        eyes = maps[k, 2 + PART_WORDS.index("Eyes")]
        assert eyes[tuple(np.round(p[36:42].mean(0)[::-1]).astype(int))] > 0.9
    template = RealAttributeNet(canvas_template="dlib-chip-150", part_landmarks="mean-shape")
    shared = template.region_maps(canvases[:1], (112, 112))[0, 2:] > 0.5
    found = maps[0, 2:] > 0.5
    iou = (shared & found).sum((1, 2)) / (shared | found).sum((1, 2))
    assert iou.mean() > 0.5, f"mean-shape and 68-point regions overlap by only {iou.mean():.2f}"
