"""Grad-CAM / Grad-CAM++ engine against a plain full backward, pytorch-grad-cam and hand values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils.explain.cam import CAMExplainer, ClassLogit, HeadLogit, minmax_normalise, resize_maps

METHODS = ("GradCAM", "GradCAM++")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny nets: one intra-op thread avoids OpenMP oversubscription on shared CI cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def reference_map(net, layer_name, x, score_fn, method, out_size):
    """Plain Grad-CAM: input requires grad, full graph, one full backward for this one target."""
    layer = net.get_submodule(layer_name)
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        x = x.clone().requires_grad_(True)
        out = net(x)
    finally:
        handle.remove()
    (g,) = torch.autograd.grad(score_fn(out), store["a"])
    a = store["a"].detach().double().numpy()[0]  # (C, h, w)
    g = g.double().numpy()[0]
    if method == "GradCAM":
        w = g.mean(axis=(1, 2))
    else:  # Chattopadhay et al. 2018, Eq. 19, written out independently
        denom = 2 * g**2 + a.sum(axis=(1, 2), keepdims=True) * g**3 + 1e-6
        alpha = np.where(g != 0, g**2 / denom, 0.0)
        w = (alpha * np.maximum(g, 0)).sum(axis=(1, 2))
    raw = np.maximum((w[:, None, None] * a).sum(axis=0), 0)
    rng = raw.max() - raw.min()
    norm = (raw - raw.min()) / rng if rng > 0 else np.zeros_like(raw)
    norm_t = torch.from_numpy(norm).float()[None, None]
    resized = F.interpolate(norm_t, size=out_size, mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()
    return raw, resized


@pytest.fixture(scope="module")
def tiny_nets():
    from models import get_network

    torch.manual_seed(0)
    rec = get_network("FaceWorld-recognition", weights=False, width=4, num_classes=6, input_size=96)
    att = get_network("FaceWorld-attribute", weights=False, width=4, input_size=96)
    for net in (rec, att):  # non-trivial BN statistics so that maps differ between targets
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.3, 0.3)
    return rec, att


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("which", ["identity", "attribute"])
def test_batched_tail_gradient_equals_full_backward(tiny_nets, method, which):
    rec, att = tiny_nets
    net = rec if which == "identity" else att
    x = torch.randn(2, 3, 96, 96)
    if which == "identity":
        targets = [[ClassLogit(c) for c in range(6)], [ClassLogit(c) for c in (4, 1, 0)]]
    else:
        targets = [[HeadLogit(j) for j in range(30)], [HeadLogit(j) for j in range(0, 30, 3)]]
    with CAMExplainer(net, net.target_layer, method) as cam:
        res = cam(x, targets, out_size=(40, 52))
    assert res.maps[0].shape == (len(targets[0]), 40, 52)
    n_varied = 0
    for i, ts in enumerate(targets):
        for k, t in enumerate(ts):
            raw, ref = reference_map(
                net, net.target_layer, x[i : i + 1], lambda out, t=t: t(out)[0], method, (40, 52)
            )
            got = res.maps[i][k].numpy()
            assert np.abs(got - ref).max() < 1e-5, (
                f"image {i} target {t}: max diff {np.abs(got - ref).max()}"
            )
            scale = max(1.0, float(raw.max()))
            assert np.abs(res.raw[i][k].numpy() - raw).max() < 1e-5 * scale, (
                f"raw map of {t} differs"
            )
            n_varied += ref.max() > 0.5
    assert n_varied >= 3, "test is vacuous: almost every map is constant"
    # outputs come back too (no second forward needed)
    direct = net(x)
    if which == "identity":
        assert torch.allclose(res.outputs, direct, atol=1e-5)
    else:
        assert all(
            torch.allclose(a, b, atol=1e-5) for a, b in zip(res.outputs, direct, strict=True)
        )


class _SameResNet(nn.Module):
    """Conv net whose target layer keeps the input resolution (no resize in either library)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 5, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(5, 6, 3, padding=1)
        self.act2 = nn.ReLU()
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(self.act2(self.conv2(self.act(self.conv1(x)))).mean(dim=(2, 3)))


@pytest.mark.parametrize("method", METHODS)
def test_matches_pytorch_grad_cam(method):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(3)
    net = _SameResNet().eval()
    x = torch.randn(1, 3, 12, 12)
    lib = {"GradCAM": GradCAM, "GradCAM++": GradCAMPlusPlus}[method]
    checked = 0
    for c in range(4):
        # pytorch-grad-cam: min-max with +1e-7 in the denominator, cv2 resize (identity here:
        # same size), then min-max again; ours: min-max, bilinear resize (identity).
        # Same resolution -> like with like.
        with lib(model=net, target_layers=[net.conv2]) as ref_cam:
            ref = ref_cam(input_tensor=x, targets=[ClassifierOutputTarget(c)])[0]
        with CAMExplainer(net, "conv2", method) as cam:
            got = cam(x, [[ClassLogit(c)]], out_size=(12, 12)).maps[0][0].numpy()
        assert np.abs(got - ref).max() < 1e-5, f"class {c}: max diff {np.abs(got - ref).max()}"
        checked += ref.max() > 0.5
    assert checked >= 2


class _HandNet(nn.Module):
    """x (1 ch, 4x4) -> A = [x, 15 - x] (1x1 conv) -> GAP -> logit = A0_mean - 0.5 * A1_mean."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.fc = nn.Linear(2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, 15.0]))
            self.fc.weight.copy_(torch.tensor([[1.0, -0.5]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("method", METHODS)
def test_hand_computed_maps(method):
    x = torch.arange(16.0).view(1, 1, 4, 4)
    with CAMExplainer(_HandNet(), "conv", method) as cam:
        res = cam(x, [[ClassLogit(0)]])
    # dy/dA0 = 1/16, dy/dA1 = -0.5/16 everywhere.
    if method == "GradCAM":
        # map = ReLU(x/16 - 0.5 (15 - x)/16) = ReLU(1.5 x - 7.5)/16 -> min-max: max(0, (x - 5) / 10)
        expected = np.maximum(0, (np.arange(16.0) - 5) / 10).reshape(4, 4)
    else:
        # channel 1 has a negative gradient -> ReLU kills its weight;
        # channel 0 weight > 0 -> map = x / 15
        expected = (np.arange(16.0) / 15).reshape(4, 4)
    np.testing.assert_allclose(res.maps[0][0].numpy(), expected, atol=1e-6)
    assert res.outputs.shape == (1, 1) and abs(float(res.outputs[0, 0]) - (7.5 - 0.5 * 7.5)) < 1e-5


def test_hooks_released_and_params_restored(tiny_nets):
    rec, _ = tiny_nets
    layer = rec.get_submodule(rec.target_layer)
    flags = [p.requires_grad for p in rec.parameters()]
    x = torch.randn(1, 3, 96, 96)
    for _ in range(20):
        with CAMExplainer(rec, rec.target_layer) as cam:
            cam(x, [[ClassLogit(0)]])
        assert len(layer._forward_hooks) == 0
    # a failing target: hooks still released
    with pytest.raises(IndexError), CAMExplainer(rec, rec.target_layer) as cam:
        cam(x, [[ClassLogit(99)]])
    assert len(layer._forward_hooks) == 0
    assert [p.requires_grad for p in rec.parameters()] == flags
    assert not any(len(m._forward_hooks) or len(m._backward_hooks) for m in rec.modules())


def test_no_graph_before_target_layer(tiny_nets):
    rec, _ = tiny_nets
    cam = CAMExplainer(rec, rec.target_layer)
    seen = {}
    handle = rec.conv1.register_forward_hook(
        lambda m, i, o: seen.__setitem__("grad", o.requires_grad)
    )
    try:
        outputs, leaf = cam.forward(torch.randn(1, 3, 96, 96))
    finally:
        handle.remove()
    assert seen["grad"] is False, "the stem recorded an autograd graph"
    assert leaf.is_leaf and leaf.requires_grad and outputs.requires_grad


def test_constant_and_zero_gradient_maps_are_zero_not_nan():
    m = torch.stack(
        [torch.full((3, 3), 2.0), torch.zeros(3, 3), torch.tensor([[0.0, 1.0, 2.0]] * 3)]
    )
    out = minmax_normalise(m)
    assert torch.isfinite(out).all()
    assert out[0].abs().max() == 0 and out[1].abs().max() == 0
    torch.testing.assert_close(out[2], torch.tensor([[0.0, 0.5, 1.0]] * 3))

    class Zero(nn.Module):  # output does not depend on the layer's values: all-zero gradient
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 1)

        def forward(self, x):
            return self.conv(x).sum(dim=(1, 2, 3))[:, None] * 0.0

    with CAMExplainer(Zero(), "conv", "GradCAM++") as cam:
        res = cam(torch.randn(1, 1, 4, 4), [[ClassLogit(0)]], out_size=(8, 8))
    assert torch.isfinite(res.maps[0]).all() and res.maps[0].abs().max() == 0


def test_resize_is_bilinear_half_pixel():
    # (1, 1, 2) -> width 4: centres at -0.25, 0.25, 0.75, 1.25 -> clamp
    m = torch.tensor([[[0.0, 1.0]]])
    torch.testing.assert_close(resize_maps(m, (1, 4)), torch.tensor([[[0.0, 0.25, 0.75, 1.0]]]))


def test_unknown_method_and_layer_errors(tiny_nets):
    rec, _ = tiny_nets
    with pytest.raises(ValueError, match="GradCAM"):
        CAMExplainer(rec, rec.target_layer, "ScoreCAM")
    with pytest.raises(ValueError, match="layer"):
        CAMExplainer(rec, "no.such.layer")
