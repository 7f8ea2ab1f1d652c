"""Registry, architectures (vs. a functional re-implementation), preprocessing, target layers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models import Preprocess, get_network, list_networks, register_network, resolve_layer
from models.attributes import HEAD_SIZES
from models.registry import PRETRAINED_ENV, REPO_ROOT, build_network

CONTRACT_NAMES = [
    "VGGFace2",
    "VGGFace2-Se",
    "VGGFace2-verification",
    "ArcFace-r50",
    "ArcFace-r100",
    "CosFace-r50",
    "CosFace-r100",
    "iresnet18",
    "iresnet34",
    "iresnet50",
    "iresnet100",
    "iresnet200",
    "VGGFace2-ArcFace",
    "VGGFace2-evidential",
    "attribute-net",
    "FaceWorld-recognition",
    "FaceWorld-attribute",
    "FaceWorld-verification",
    "FaceWorld-evidential",
]
VGG_MEAN = (91.4953, 103.8827, 131.0912)
# name -> (kind, size attribute, value, input size, channel order, target layer)
EXPECTED = {
    "VGGFace2": ("classifier", "num_classes", 8631, (224, 224), "BGR", "layer4.2.conv3"),
    "VGGFace2-Se": ("classifier", "num_classes", 8631, (224, 224), "BGR", "layer4.2.conv3"),
    "VGGFace2-verification": (
        "embedding",
        "embedding_size",
        2048,
        (224, 224),
        "BGR",
        "layer4.2.conv3",
    ),
    "ArcFace-r50": ("embedding", "embedding_size", 512, (112, 112), "RGB", "layer4.2.conv2"),
    "CosFace-r100": ("embedding", "embedding_size", 512, (112, 112), "RGB", "layer4.2.conv2"),
    "iresnet200": ("embedding", "embedding_size", 512, (112, 112), "RGB", "layer4.5.conv2"),
    "VGGFace2-ArcFace": ("classifier", "num_classes", 8631, (112, 112), "RGB", "layer4.2.conv2"),
    "VGGFace2-evidential": ("evidential", "num_classes", 8631, (112, 112), "RGB", "layer4.2.conv2"),
    "attribute-net": (
        "attribute",
        "head_sizes",
        HEAD_SIZES,
        (224, 224),
        "BGR",
        "backbone.layer4.2.conv3",
    ),
    "FaceWorld-recognition": (
        "classifier",
        "num_classes",
        200,
        (128, 128),
        "BGR",
        "layer4.0.conv3",
    ),
    "FaceWorld-attribute": (
        "attribute",
        "head_sizes",
        HEAD_SIZES,
        (128, 128),
        "BGR",
        "backbone.layer4.0.conv3",
    ),
    "FaceWorld-verification": (
        "embedding",
        "embedding_size",
        128,
        (64, 64),
        "RGB",
        "layer4.0.conv2",
    ),
    "FaceWorld-evidential": ("evidential", "num_classes", 200, (64, 64), "RGB", "layer4.0.conv2"),
    "dlib-ResNet29": ("embedding", "embedding_size", 128, (150, 150), "RGB", "layer4.2"),
    "SFace": ("embedding", "embedding_size", 128, (112, 112), "RGB", "blocks.12"),
}
# name -> the face template of its input (BRIEF interface 3); None: images as they are.
ALIGNMENT = {
    "VGGFace2": "vggface2-224",
    "ArcFace-r100": "arcface-112",
    "CosFace-r50": "arcface-112",
    "VGGFace2-ArcFace": "arcface-112",
    "attribute-net": "vggface2-224",
    "dlib-ResNet29": "dlib-chip-150",
    "SFace": "arcface-112",
    "FaceWorld-verification": None,
    "FaceWorld-recognition": None,
}


def _meta(name: str, **overrides) -> nn.Module:
    with torch.device("meta"):
        return build_network(name, **overrides)


# ----------------------------------------------------------------------------- registry


def test_contract_names_registered():
    missing = set(CONTRACT_NAMES) - set(list_networks())
    assert not missing, f"not registered: {missing}"


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_network("VGGFace3", weights=False)
    msg = str(err.value)
    assert (
        "'VGGFace3'" in msg
        and "attribute-net" in msg
        and "CosFace-r100" in msg
        and "Did you mean" in msg
    )


def test_duplicate_registration_fails():
    before = list_networks()
    with pytest.raises(ValueError, match="already registered"):
        register_network("VGGFace2")(lambda **kw: nn.Identity())
    assert list_networks() == before


def test_unknown_override_lists_accepted_arguments():
    with pytest.raises(ValueError, match="depth") as err:
        get_network("FaceWorld-verification", weights=False, depth=50)
    assert "embedding_size" in str(err.value) and "layers" in str(err.value)


def test_missing_weights_names_path_and_readme(monkeypatch, tmp_path):
    monkeypatch.setenv(PRETRAINED_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        get_network("VGGFace2")
    assert str(tmp_path / "resnet50_ft_weight.pkl") in str(err.value)
    assert 'README section "Pre-trained weights"' in str(err.value)
    monkeypatch.delenv(PRETRAINED_ENV)
    with pytest.raises(FileNotFoundError, match=str(REPO_ROOT / "pre-trained")):
        get_network("ArcFace-r50")  # the paper's weights are never committed
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        get_network("FaceWorld-attribute", weights=tmp_path / "nowhere.pth")


def test_default_weights_found_through_env(monkeypatch, tmp_path):
    ref = get_network("FaceWorld-verification", weights=False)
    (tmp_path / "face_world").mkdir()
    torch.save(ref.state_dict(), tmp_path / "face_world" / "FaceWorld-verification.pth")
    monkeypatch.setenv(PRETRAINED_ENV, str(tmp_path))
    net = get_network("FaceWorld-verification")
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(net(x), ref(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_declared_attributes(name):
    kind, attr, value, size, order, target = EXPECTED[name]
    net = _meta(name)
    assert net.kind == kind
    assert getattr(net, attr) == value
    assert isinstance(net.preprocess, Preprocess)
    assert (net.preprocess.input_size, net.preprocess.channel_order) == (size, order)
    assert net.target_layer == target
    # a convolution or a block ending in one (SFace: the last block's output, see models/sface.py)
    layer = net.get_submodule(net.target_layer)
    assert any(isinstance(m, nn.Conv2d) for m in layer.modules())


@pytest.mark.parametrize("name", sorted(ALIGNMENT))
def test_declared_alignment(name):
    from models.registry import network_alignment

    assert _meta(name).alignment == network_alignment(name) == ALIGNMENT[name]


@pytest.mark.parametrize(
    "depth,layers", [(18, (2, 2, 2, 2)), (34, (3, 4, 6, 3)), (200, (6, 26, 60, 6))]
)
def test_iresnet_depths(depth, layers):
    net = _meta(f"iresnet{depth}")
    assert tuple(len(getattr(net, f"layer{i}")) for i in range(1, 5)) == layers
    assert net.fc.in_features == 512 * 7 * 7


@pytest.mark.parametrize(
    "name,grid",
    [
        ("FaceWorld-recognition", (16, 16)),
        ("FaceWorld-attribute", (16, 16)),
        ("FaceWorld-verification", (8, 8)),
        ("FaceWorld-evidential", (4, 4)),
    ],
)
def test_faceworld_gradcam_layer_resolution(name, grid):
    """The demo nets' Grad-CAM layer (last conv) is 16x16 for R and A, 8x8 for V (issue 14)."""
    net = get_network(name, weights=False)
    seen = []
    layer = net.get_submodule(net.target_layer)
    layer.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[2:])))
    with torch.no_grad():
        net(torch.zeros(1, 3, *net.preprocess.input_size))
    assert seen == [grid]
    if name == "FaceWorld-verification":  # bn2, the grid of xCos / xFR, has the same size
        assert net.fc.in_features == 128 * grid[0] * grid[1]


def test_faceworld_forward_shapes_eval_mode():
    images = [np.full((90, 80, 3), 100, np.uint8), np.zeros((130, 120, 3), np.uint8)]
    for name in ("FaceWorld-recognition", "FaceWorld-verification", "FaceWorld-evidential"):
        net = get_network(name, weights=False)
        assert not net.training and next(net.parameters()).device.type == "cpu"
        out = net(net.preprocess(images))
        expected = net.num_classes if net.kind != "embedding" else net.embedding_size
        assert tuple(out.shape) == (2, expected), name
    net = get_network("FaceWorld-attribute", weights=False)
    outs = net(net.preprocess(images))
    assert [tuple(o.shape) for o in outs] == [(2, n) for n in HEAD_SIZES]


def test_overrides_change_architecture():
    net = get_network(
        "FaceWorld-evidential", weights=False, num_classes=7, embedding_size=32, input_size=(64, 48)
    )
    assert tuple(net(torch.zeros(1, 3, 64, 48)).shape) == (1, 7)
    assert net.fc.in_features == 128 * 4 * 3 and net.preprocess.input_size == (64, 48)


def test_arcface_logits_are_scaled_cosines():
    net = get_network(
        "VGGFace2-ArcFace",
        weights=False,
        layers=(1, 1, 1, 1),
        width=8,
        num_classes=5,
        embedding_size=16,
        logit_scale=4.0,
    )
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        emb, logits = net.forward_embedding(x), net(x)
    cos = torch.stack([F.cosine_similarity(emb, w[None], dim=1) for w in net.weight], dim=1)
    torch.testing.assert_close(logits, 4.0 * cos, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- target layers


def test_resolve_layer_default_override_and_error():
    net = _meta("VGGFace2-Se")
    assert resolve_layer(net) is net.layer4[2].conv3  # SE gates (conv4/conv5) are skipped
    assert resolve_layer(net, "layer3.5.conv2") is net.layer3[5].conv2
    with pytest.raises(ValueError) as err:
        resolve_layer(net, "layer9.conv1")
    assert "'layer9.conv1'" in str(err.value) and "layer4.2.conv3" in str(err.value)


# ----------------------------------------------------------------------------- preprocessing


def test_preprocess_hand_computed_values():
    # BGR, 2x2
    img = np.array([[[255, 0, 51], [10, 20, 30]], [[0, 0, 0], [255, 255, 255]]], np.uint8)
    vgg = Preprocess((2, 2), "BGR", VGG_MEAN, (1, 1, 1))(img)
    assert vgg.dtype == torch.float32 and tuple(vgg.shape) == (1, 3, 2, 2)
    torch.testing.assert_close(vgg[0, :, 0, 0], torch.tensor([163.5047, -103.8827, -80.0912]))
    torch.testing.assert_close(vgg[0, :, 0, 1], torch.tensor([-81.4953, -83.8827, -101.0912]))
    ir = Preprocess((2, 2), "RGB", (127.5,) * 3, (127.5,) * 3)([img])
    torch.testing.assert_close(ir[0, :, 0, 0], torch.tensor([-0.6, -1.0, 1.0]))  # R, G, B
    torch.testing.assert_close(ir[0, :, 1, 1], torch.tensor([1.0, 1.0, 1.0]))


def test_preprocess_bilinear_resize():
    img = np.zeros((1, 2, 3), np.uint8)
    img[0, 1] = 100  # [0, 100] -> 4 px with half-pixel centres: [0, 25, 75, 100]
    out = Preprocess((1, 4), "BGR")(img)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.0, 25.0, 75.0, 100.0]))


@pytest.mark.parametrize(
    "name,expected",
    [
        ("FaceWorld-recognition", [10 - 91.4953, 20 - 103.8827, 30 - 131.0912]),  # B, G, R - mean
        ("VGGFace2", [10 - 91.4953, 20 - 103.8827, 30 - 131.0912]),
        (
            "FaceWorld-verification",
            [(30 - 127.5) / 127.5, (20 - 127.5) / 127.5, (10 - 127.5) / 127.5],
        ),
    ],
)
def test_network_preprocess_on_constant_image(name, expected):
    net = _meta(name)
    batch = np.zeros((2, 37, 41, 3), np.uint8)
    batch[..., 0], batch[..., 1], batch[..., 2] = 10, 20, 30
    x = net.preprocess(batch)
    assert tuple(x.shape) == (2, 3, *net.preprocess.input_size)
    torch.testing.assert_close(x[1, :, 5, 7], torch.tensor(expected, dtype=torch.float32))
    assert torch.all(x == x[:, :, :1, :1])


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        Preprocess((4, 4))([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(ValueError, match="channel_order"):
        Preprocess((4, 4), "RGBA")


# ------------------------------------------------ architectures vs functional re-implementation


def _randomise(net: nn.Module) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen))
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen))
    return net.eval().state_dict()


def _bn(x, sd, p):
    return F.batch_norm(
        x,
        sd[p + ".running_mean"],
        sd[p + ".running_var"],
        sd[p + ".weight"],
        sd[p + ".bias"],
        training=False,
        eps=1e-5,
    )


def _ref_vggface2(sd, x, layers, se):
    """Caffe ResNet from its description.

    Stride in the 1x1 conv1, ceil-mode pool, SE before the addition.
    """
    x = F.max_pool2d(
        F.relu(_bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), sd, "bn1")),
        3,
        2,
        0,
        ceil_mode=True,
    )
    for i, n in enumerate(layers, start=1):
        for b in range(n):
            p, s = f"layer{i}.{b}", (2 if i > 1 and b == 0 else 1)
            out = F.relu(_bn(F.conv2d(x, sd[p + ".conv1.weight"], stride=s), sd, p + ".bn1"))
            out = F.relu(_bn(F.conv2d(out, sd[p + ".conv2.weight"], padding=1), sd, p + ".bn2"))
            out = _bn(F.conv2d(out, sd[p + ".conv3.weight"]), sd, p + ".bn3")
            if se:
                g = F.avg_pool2d(out, out.shape[2])
                g = F.relu(F.conv2d(g, sd[p + ".conv4.weight"], sd[p + ".conv4.bias"]))
                out = out * torch.sigmoid(
                    F.conv2d(g, sd[p + ".conv5.weight"], sd[p + ".conv5.bias"])
                )
            if p + ".downsample.0.weight" in sd:
                x = _bn(
                    F.conv2d(x, sd[p + ".downsample.0.weight"], stride=s), sd, p + ".downsample.1"
                )
            x = F.relu(out + x)
    x = F.avg_pool2d(x, 7, stride=1).flatten(1)  # Caffe's AvgPool2d(7) at 224 input
    return F.linear(x, sd["fc.weight"], sd["fc.bias"])


def _ref_iresnet(sd, x, layers, strides=(2, 2, 2, 2)):
    """arcface_torch iresnet: BN-conv-BN-PReLU-conv(stride)-BN + shortcut, then BN, fc, BN1d."""
    x = F.prelu(_bn(F.conv2d(x, sd["conv1.weight"], padding=1), sd, "bn1"), sd["prelu.weight"])
    for i, n in enumerate(layers, start=1):
        for b in range(n):
            p, s = f"layer{i}.{b}", (strides[i - 1] if b == 0 else 1)
            out = F.conv2d(_bn(x, sd, p + ".bn1"), sd[p + ".conv1.weight"], padding=1)
            out = F.prelu(_bn(out, sd, p + ".bn2"), sd[p + ".prelu.weight"])
            out = _bn(F.conv2d(out, sd[p + ".conv2.weight"], stride=s, padding=1), sd, p + ".bn3")
            if p + ".downsample.0.weight" in sd:
                x = _bn(
                    F.conv2d(x, sd[p + ".downsample.0.weight"], stride=s), sd, p + ".downsample.1"
                )
            x = out + x
    x = _bn(x, sd, "bn2").flatten(1)
    return _bn(F.linear(x, sd["fc.weight"], sd["fc.bias"]), sd, "features")


@pytest.mark.parametrize("se", [False, True])
def test_vggface2_resnet_matches_reference(se):
    layers = (1, 2, 1, 1)
    net = get_network(
        "VGGFace2-Se" if se else "VGGFace2", weights=False, layers=layers, width=8, num_classes=11
    )
    sd = _randomise(net)
    x = torch.randn(2, 3, 224, 224)
    sizes = []
    hook = net.layer1.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:])))
    with torch.no_grad():
        out = net(x)
    hook.remove()
    assert sizes == [(56, 56)]  # 224 -> 112 -> ceil-mode pool -> 56 as in Caffe
    torch.testing.assert_close(out, _ref_vggface2(sd, x, layers, se), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "strides,grid",
    [
        ((2, 2, 2, 2), (4, 3)),  # 50 -> 25 -> 13 -> 7 -> 4, 38 -> 19 -> 10 -> 5 -> 3
        ((2, 2, 2, 1), (7, 5)),  # last stage at stride 1 (FaceWorld-verification)
        ((2, 1, 2, 1), (13, 10)),
    ],
)
def test_iresnet_matches_reference(strides, grid):
    layers = (1, 2, 1, 1)
    net = get_network(
        "iresnet50",
        weights=False,
        layers=layers,
        width=8,
        embedding_size=16,
        input_size=(50, 38),
        strides=strides,
    )
    assert net.fc.in_features == 64 * grid[0] * grid[1]
    sd = _randomise(net)
    x = torch.randn(2, 3, 50, 38)
    with torch.no_grad():
        ref = _ref_iresnet(sd, x, layers, strides)
        torch.testing.assert_close(net(x), ref, rtol=1e-4, atol=1e-4)


def test_iresnet_rejects_bad_strides():
    with pytest.raises(ValueError, match="strides"):
        get_network("iresnet18", weights=False, strides=(2, 2, 3, 2))


def test_attribute_net_heads_on_pooled_feature():
    net = get_network("FaceWorld-attribute", weights=False)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feat = net.backbone.forward_features(x)
        outs = net(x)
    assert tuple(feat.shape) == (2, 512)
    for j, head in enumerate(net.heads):
        torch.testing.assert_close(outs[j], feat @ head.weight.T + head.bias)


# ----------------------------------------------------------------------------- device


@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (none visible to torch)"
)
def test_cuda_device_matches_cpu():
    cpu = get_network("FaceWorld-verification", weights=False)
    gpu = get_network("FaceWorld-verification", weights=False, device="cuda")
    gpu.load_state_dict(cpu.state_dict())
    assert next(gpu.parameters()).is_cuda and not gpu.training
    x = cpu.preprocess([np.full((120, 100, 3), 77, np.uint8)])
    with torch.no_grad():
        torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("shape", [(250, 180), (61, 83), (112, 112), (40, 30)])
def test_iresnet_preprocess_equals_the_authors_pil_pipeline(shape):
    """iresnet nets resize like the authors' code: torchvision ``Resize`` on a PIL RGB image."""
    from PIL import Image
    from torchvision import transforms

    from models.preprocess import iresnet_preprocess

    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    authors = transforms.Compose(
        [
            transforms.Resize((112, 112)),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )
    expected = authors(Image.fromarray(bgr[:, :, ::-1].copy()))
    got = iresnet_preprocess(112)([bgr])[0]
    assert torch.allclose(got, expected, atol=1e-6), float((got - expected).abs().max())


def test_vggface2_preprocess_keeps_opencv_resize():
    """VGGFace2 nets resize with cv2.INTER_LINEAR (the authors read and resize with OpenCV)."""
    from models.preprocess import vggface2_preprocess

    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, size=(300, 260, 3), dtype=np.uint8)
    expected = cv2.resize(bgr, (224, 224), interpolation=cv2.INTER_LINEAR).astype(
        np.float32
    ) - np.float32(VGG_MEAN)
    got = vggface2_preprocess(224)([bgr])[0].numpy().transpose(1, 2, 0)
    assert np.allclose(got, expected, atol=1e-4)
    pil = (
        Preprocess((224, 224), "BGR", VGG_MEAN, (1, 1, 1), resize="pil")([bgr])[0]
        .numpy()
        .transpose(1, 2, 0)
    )
    assert np.abs(pil - expected).max() > 1.0  # the two resizes really differ when shrinking


def test_preprocess_rejects_unknown_resize():
    with pytest.raises(ValueError, match="resize"):
        Preprocess((4, 4), resize="lanczos")


def test_vocabulary_words_and_registry():
    from models.attributes import CELEBA30, Vocabulary, get_vocabulary, register_vocabulary

    assert get_vocabulary(None) is CELEBA30 and get_vocabulary("celeba30") is CELEBA30
    assert CELEBA30.head_sizes == HEAD_SIZES and len(CELEBA30) == 30
    parts = Vocabulary(
        "test-parts", ("Gender", "Nose", "Smiling"), {0: ("Male", "Female")}, frozenset({1})
    )
    assert parts.head_sizes == (2, 1, 2)
    assert [parts.is_present(1, 5), parts.is_present(2, 1), parts.is_present(0, 1)] == [
        True,
        False,
        True,
    ]
    assert [parts.word_for(0, 1), parts.word_for(1, 0), parts.word_for(2, 1)] == [
        "Female",
        "Nose",
        "no Smiling",
    ]
    with pytest.raises(ValueError, match="out of range"):
        Vocabulary("bad", ("A",), {3: ("x", "y")})
    with pytest.raises(ValueError, match="unknown attribute vocabulary"):
        get_vocabulary("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_vocabulary(Vocabulary("celeba30", ("A",)))
    assert get_network("FaceWorld-attribute", weights=False).vocabulary is CELEBA30


def test_package_all_lists_every_lazy_export():
    """``models.__all__`` is spelled out for static tools; it must name exactly the lazy exports."""
    import models

    assert models.__all__ == sorted(models._EXPORTS)
    for name in models.__all__:
        assert getattr(models, name) is not None


@pytest.mark.parametrize("name", ["ArcFace-r50", "VGGFace2"])
@pytest.mark.parametrize(
    ("arch", "message"),
    [({"layers": (1, 1, 1)}, "layers must be 4"), ({"strides": (1, 3, 2, 2)}, "strides must be")],
)
def test_bad_stage_arguments_name_the_tuple(name, arch, message):
    with pytest.raises(ValueError, match=message):
        build_network(name, **arch)


def test_on_meta_builds_without_initialisers_and_restores_them():
    from models.registry import on_meta

    original = nn.init.kaiming_uniform_
    with pytest.raises(RuntimeError, match="boom"), on_meta():
        conv = nn.Conv2d(3, 4, 3)
        assert conv.weight.is_meta
        assert nn.init.normal_(conv.weight) is conv.weight  # a no-op inside
        raise RuntimeError("boom")
    assert nn.init.kaiming_uniform_ is original  # restored, also after an error
    torch.manual_seed(0)
    w = nn.Conv2d(3, 4, 3).weight
    assert not w.is_meta and float(w.detach().abs().sum()) > 0  # initialisers run again outside
