"""Safe loading of every checkpoint format the paper uses (manifests in ../shared/checkpoints/).

For each manifest a random checkpoint with exactly its names, shapes and
serialisation is written, loaded strictly through ``get_network`` and run on
one image. Malicious files must be refused before their payload runs.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import get_network
from models.attributes import HEAD_SIZES
from models.loading import (
    CheckpointFormatError,
    CheckpointMismatchError,
    UnsafeCheckpointError,
    read_checkpoint,
)

# manifest -> [(network name, expected output shape per image)]; first entry is run forward.
MANIFESTS = {
    "vggface2_resnet50_pkl": [("VGGFace2", (8631,)), ("VGGFace2-verification", (2048,))],
    "vggface2_senet50_pkl": [("VGGFace2-Se", (8631,))],
    "insightface_iresnet50_pth": [
        ("ArcFace-r50", (512,)),
        ("CosFace-r50", None),
        ("iresnet50", None),
    ],
    "insightface_iresnet100_pth": [
        ("ArcFace-r100", (512,)),
        ("CosFace-r100", None),
        ("iresnet100", None),
    ],
    "evidential_iresnet50_pth": [("VGGFace2-evidential", (8631,))],
    "vggface2_arcface_iresnet50_pth": [("VGGFace2-ArcFace", (8631,))],
}
MODULE_PREFIX_OK = {"evidential_iresnet50_pth", "vggface2_arcface_iresnet50_pth"}


def _random_arrays(tensors: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random but numerically tame values: fan-in scaled weights, positive running variances.

    Slices at random offsets of one uniform pool (cheap on 2 CPUs), so two tensors of
    the same shape still hold different values.
    """
    rng = np.random.default_rng(seed)
    pool = rng.random(20_000_000, dtype=np.float32) * 2 - 1
    out = {}
    for name, shape in tensors.items():
        size = int(np.prod(shape))
        start = int(rng.integers(0, pool.size - size + 1))
        values = pool[start : start + size].reshape(shape)
        if name.endswith("num_batches_tracked"):
            out[name] = np.array(7, dtype=np.int64)
        elif name.endswith("running_var"):
            out[name] = values * 0.5 + 1.0
        elif len(shape) >= 2:
            # unit-variance outputs
            out[name] = values * np.float32(np.sqrt(3.0 / np.prod(shape[1:])))
        else:
            out[name] = values * np.float32(0.1)
    return out


class _Py2StylePickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING), as in the Caffe-converted files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        head = (
            pickle.SHORT_BINSTRING + bytes([n])
            if n < 256
            else pickle.BINSTRING + struct.pack("<i", n)
        )
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _write(arrays: dict[str, np.ndarray], path, prefix: str = "") -> None:
    """``.pkl``: Python 2 style latin1 pickle (as the Caffe conversions); else ``torch.save``."""
    if path.suffix == ".pkl":
        with open(path, "wb") as f:
            _Py2StylePickler(f, protocol=2).dump(
                {(prefix + k).encode("latin1"): v for k, v in arrays.items()}
            )
    else:
        torch.save({prefix + k: torch.from_numpy(v) for k, v in arrays.items()}, path)


def _face(size: int = 120) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (size, size - 10, 3), dtype=np.uint8)


def test_every_manifest_is_covered(shared_dir):
    found = {p.stem for p in (shared_dir / "checkpoints").glob("*.json")}
    assert found == set(MANIFESTS), f"manifests without a loader test: {found - set(MANIFESTS)}"


@pytest.mark.slow
@pytest.mark.parametrize("manifest", sorted(MANIFESTS))
def test_manifest_loads_strictly(manifest, shared_dir, tmp_path):
    spec = json.loads((shared_dir / "checkpoints" / f"{manifest}.json").read_text())
    arrays = _random_arrays(spec["tensors"])
    path = tmp_path / ("weights.pkl" if manifest.endswith("_pkl") else "weights.pth")
    _write(arrays, path)
    if manifest.endswith("_pkl"):
        assert not any(k.endswith("num_batches_tracked") for k in arrays)
    outputs = {}
    for name, out_shape in MANIFESTS[manifest]:
        net = get_network(name, weights=path)
        assert not net.training
        state = net.state_dict()
        for key, value in arrays.items():
            if key in state:  # VGGFace2-verification drops fc.*
                assert torch.equal(state[key], torch.from_numpy(value)), (
                    f"{name}: {key} not loaded from file"
                )
        if out_shape is not None:
            with torch.no_grad():
                out = net(net.preprocess([_face()]))
            assert tuple(out.shape) == (1, *out_shape), f"{name}: output {tuple(out.shape)}"
            assert torch.isfinite(out).all()
            outputs[name] = (net, out)
    # 2048-d embedding + the file's fc == the classifier's logits
    if manifest == "vggface2_resnet50_pkl":
        emb = outputs["VGGFace2-verification"][1]
        logits = F.linear(
            emb, torch.from_numpy(arrays["fc.weight"]), torch.from_numpy(arrays["fc.bias"])
        )
        torch.testing.assert_close(logits, outputs["VGGFace2"][1], rtol=1e-4, atol=1e-4)
    if manifest == "vggface2_arcface_iresnet50_pth":  # cosine logits, independent formula
        net, logits = outputs["VGGFace2-ArcFace"]
        with torch.no_grad():
            emb = net.forward_embedding(net.preprocess([_face()]))[0].double()
        w = torch.from_numpy(arrays["weight"]).double()
        cos = (w @ emb) / (w.norm(dim=1) * emb.norm())
        torch.testing.assert_close(logits[0].double(), cos, rtol=1e-4, atol=1e-5)
    if manifest in MODULE_PREFIX_OK:
        prefixed = tmp_path / "weights_module.pth"
        _write(arrays, prefixed, prefix="module.")
        name = MANIFESTS[manifest][0][0]
        state = get_network(name, weights=prefixed).state_dict()
        assert torch.equal(
            state["fc2.weight" if "evidential" in manifest else "weight"],
            torch.from_numpy(arrays["fc2.weight" if "evidential" in manifest else "weight"]),
        )


@pytest.mark.slow
def test_attribute_net_own_format_roundtrip(tmp_path):
    state = get_network("attribute-net", weights=False).state_dict()
    assert tuple(state["heads.8.weight"].shape) == (5, 2048)
    assert "backbone.conv1.weight" in state and "backbone.fc.weight" not in state
    for key in state:
        if key.endswith("running_var"):
            state[key].uniform_(0.5, 1.5)
    path = tmp_path / "attr.pth"
    torch.save(state, path)
    loaded = get_network("attribute-net", weights=path)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    with torch.no_grad():
        outs = loaded(loaded.preprocess([_face()]))
    assert [tuple(o.shape) for o in outs] == [(1, n) for n in HEAD_SIZES]
    assert all(torch.isfinite(o).all() for o in outs)


def test_half_precision_file_gives_float32_network(tmp_path):
    state = {
        k: v.half() if v.is_floating_point() else v
        for k, v in get_network("FaceWorld-verification", weights=False).state_dict().items()
    }
    path = tmp_path / "fp16.pth"
    torch.save(state, path)
    net = get_network("FaceWorld-verification", weights=path)
    assert {p.dtype for p in net.parameters()} == {torch.float32}
    assert torch.equal(net.fc.weight, state["fc.weight"].float())
    assert not net.features.weight.requires_grad  # arcface_torch freezes the BN1d scale


def test_python2_style_pkl(tmp_path):
    arrays = {
        b"conv1.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
        b"bn1.bias": np.ones(300, np.float32),
    }
    path = tmp_path / "py2.pkl"
    buf = io.BytesIO()
    _Py2StylePickler(buf, protocol=2).dump(arrays)
    # numpy 1 names
    data = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in data and b"_codecs" not in data
    path.write_bytes(data)
    state = read_checkpoint(path)
    assert set(state) == {"conv1.weight", "bn1.bias"}
    assert torch.equal(
        state["conv1.weight"], torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)
    )


def test_python3_protocol2_pkl(tmp_path):
    """Python 3 writes bytes through _codecs.encode(..., 'latin1') at protocol 2."""
    arrays = {"fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "fc.bias": np.float32(2.5)}
    data = pickle.dumps(arrays, protocol=2)
    assert b"_codecs" in data
    (tmp_path / "py3.pkl").write_bytes(data)
    state = read_checkpoint(tmp_path / "py3.pkl")
    assert torch.equal(state["fc.weight"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert state["fc.bias"].item() == 2.5 and state["fc.bias"].shape == ()


def test_codecs_other_than_latin1_refused(tmp_path):
    data = pickle.dumps({"a": np.zeros(2, np.float32)}, protocol=2).replace(b"latin1", b"zlib__")
    (tmp_path / "c.pkl").write_bytes(data)
    with pytest.raises(UnsafeCheckpointError, match="zlib__"):
        read_checkpoint(tmp_path / "c.pkl")


class _OpenPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _SystemPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("payload", [_OpenPayload, _SystemPayload])
def test_malicious_pkl_refused(payload, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    data = pickle.dumps({"conv1.weight": np.zeros(3, np.float32), "x": payload(marker)}, protocol=2)
    globals_used = {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    # the payload is live
    assert any("open" in g or "system" in g for g in globals_used), globals_used
    path.write_bytes(data)
    with pytest.raises(UnsafeCheckpointError) as err:
        get_network("FaceWorld-verification", weights=path)
    msg = str(err.value)
    assert str(path) in msg and ("open" in msg or "system" in msg), msg
    assert not marker.exists()


def test_malicious_pth_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(3), "x": _SystemPayload(marker)}, path)
    with pytest.raises(
        UnsafeCheckpointError, match=r"weights_only=True.*global (posix|nt)\.system"
    ) as err:
        get_network("FaceWorld-verification", weights=path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_pth_with_non_tensor_entry(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"conv1.weight": torch.zeros(3), "epoch": 3}, path)
    with pytest.raises(CheckpointFormatError, match=r"'epoch' \(int\)"):
        read_checkpoint(path)


def test_pth_whole_module_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(
        UnsafeCheckpointError, match=r"torch\.nn\.modules\.linear\.Linear.*state_dict"
    ):
        read_checkpoint(path)


def test_pkl_with_non_array_entry(tmp_path):
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps({"a": np.zeros(2, np.float32), "b": "text"}, protocol=2))
    with pytest.raises(CheckpointFormatError, match="'b'"):
        read_checkpoint(path)


def test_mismatch_error_is_readable(tmp_path):
    state = get_network("FaceWorld-verification", weights=False).state_dict()
    del state["layer2.0.conv1.weight"]
    state["fc.weight"] = torch.zeros(128, 99)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as err:
        get_network("FaceWorld-verification", weights=path)
    msg = str(err.value)
    assert "missing" in msg and "layer2.0.conv1.weight" in msg, msg
    assert "unexpected" in msg and "extra.weight" in msg, msg
    # 128 channels x 8 x 8 at 64 px (the last stage has stride 1)
    assert "fc.weight: network expects (128, 8192), file has (128, 99)" in msg, msg
    assert str(path) in msg


def test_mismatch_names_the_lookalike(tmp_path):
    path = tmp_path / "recognition.pth"
    torch.save(get_network("FaceWorld-recognition", weights=False).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match="looks like 'FaceWorld-recognition'"):
        get_network("FaceWorld-verification", weights=path)


def test_module_prefix_and_missing_num_batches_tracked(tmp_path):
    net = get_network("FaceWorld-evidential", weights=False)
    state = {
        "module." + k: v.clone()
        for k, v in net.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    state["module.fc2.bias"].fill_(0.25)
    path = tmp_path / "dp.pth"
    torch.save(state, path)
    loaded = get_network("FaceWorld-evidential", weights=path)
    assert torch.all(loaded.fc2.bias == 0.25)
    assert int(loaded.bn1.num_batches_tracked) == 0
