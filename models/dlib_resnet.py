"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

The network of dlib's ``dnn_face_recognition_ex.cpp`` (29 convolutions,
5,614,592 parameters, trained by Davis King with a metric loss; released CC0
in ``face-recognition-models``), rebuilt as a plain ``nn.Module`` whose
weights are read from the installed package's ``.dat`` file by
:mod:`models.dlib_format` (no dlib needed to run it). Layers, in application
order (dlib's ``alevel4`` .. ``alevel0`` are ``layer1`` .. ``layer5`` here):

| module | dlib | output at 150x150 input |
|---|---|---|
| ``conv1`` + ``affine1`` + ReLU | ``con<32,7,7,2,2>``, ``affine``, ``relu`` | 32 x 72 x 72 |
| max pool 3x3 / 2 | ``max_pool<3,3,2,2>`` | 32 x 35 x 35 |
| ``layer1`` (3 blocks) | ``alevel4`` = 3 ``ares<32>`` | 32 x 35 x 35 |
| ``layer2`` (4 blocks) | ``alevel3`` = ``ares_down<64>`` + 3 ``ares<64>`` | 64 x 17 x 17 |
| ``layer3`` (3 blocks) | ``alevel2`` = ``ares_down<128>`` + 2 ``ares<128>`` | 128 x 8 x 8 |
| ``layer4`` (3 blocks) | ``alevel1`` = ``ares_down<256>`` + 2 ``ares<256>`` | 256 x 4 x 4 |
| ``layer5`` (1 block) | ``alevel0`` = ``ares_down<256>`` | 256 x 2 x 2 |
| global average pool, ``fc`` (no bias) | ``avg_pool_everything``, ``fc_no_bias<128>`` | 128 |

A block is conv 3x3 (stride s) -> affine -> ReLU -> conv 3x3 -> affine, plus
the shortcut (the input; a 2x2/2 average pool of it when s = 2), then ReLU.
``affine`` is dlib's frozen batch norm: per-channel ``gamma * x + beta``. Two
details of dlib matter: stride-2 convolutions and pools have padding 0 (dlib's
default padding is ``kernel / 2`` only for stride 1), and ``add_prev`` of
tensors of different shapes zero-extends channels, rows and columns at the end
(top-left aligned), so a block's output has the larger of the two shapes (in
``layer4``: a 3x3 main path plus a 4x4 shortcut is 4x4).

Input: a 150x150 face chip aligned the way ``dlib.get_face_chip(size=150,
padding=0.25)`` does (``net.alignment == "dlib-chip-150"``), RGB, minus the
means (122.782, 117.001, 104.298), divided by 256 (dlib's
``input_rgb_image_sized<150>``). Output: the 128-d descriptor (dlib's own
descriptors are not normalised either; dlib compares them by Euclidean
distance, threshold 0.6).

Grad-CAM target layer: ``layer4.2``, the output of the last block of
``layer4``, 4x4 at the 150x150 input (coarser than the paper's 7x7 target
layers). It was ``layer3.2.conv2`` (8x8), but there Sim2Word with
``real-attributes`` left every word region empty for 0.400 of the impostor
images of the tuning identities: H_d = H_t * (max H_f - H_f) is rarely zero,
but its sharp 8x8 peak seldom lies where a part map is high, so J[j] = H_d *
H_attr[j] never exceeds theta = 0.6 (no pixel with both H_d and some H_attr[j]
above 0.6 for 0.244 of them; mean max J 0.671). Measured on the 267 pairs of
tuning identities (``utils.experiments.part_swap.identity_split``) with an
even index in ``pairs.csv``, 442 impostor images, default gallery: images with
every mask empty 0.400 (``layer3.2.conv2``), 0.147 (``layer3.2``), 0.095
(``layer4.2.conv2``), 0.000 (``layer4.2``), 0.011 (``layer4.1``); H_t all zero
0.000, 0.009, 0.041, 0.000, 0.000. ``OMP_NUM_THREADS=1 python
benchmarks/cam_layers.py --net dlib-ResNet29 --pairs
../shared/data/real_faces/pairs.csv --every 2 --layers layer3.2.conv2 layer3.2
layer4.2.conv2 layer4.2 layer4.1``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.dlib_format import DlibFormatError, DlibNet, read_dlib_net
from models.packages import package_file, read_package_weights
from models.preprocess import Preprocess
from models.registry import create_from_defaults, register_network

DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
DLIB_CHIP_SIZE = 150
#: (blocks, width, first block downsamples) per stage, application order (dlib alevel4 .. alevel0).
DLIB_STAGES = ((3, 32, False), (4, 64, True), (3, 128, True), (3, 256, True), (1, 256, True))


class Affine(nn.Module):
    """dlib ``affine_`` (frozen batch norm): ``weight[c] * x + bias[c]``. (N, C, H, W) -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def add_zero_extended(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib ``add_prev``: sum of two (N, C, H, W) tensors, zero-extended at the end to match."""
    shape = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:], strict=True)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(shape):
            return t
        return F.pad(t, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

    return grow(a) + grow(b)


class DlibBlock(nn.Module):
    """dlib ``ares`` (stride 1) / ``ares_down`` (stride 2) residual block.

    (N, in, H, W) -> (N, max(in, out), H', W'); see the module docstring for H'.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        pad = 1 if stride == 1 else 0  # dlib: padding kernel/2 only at stride 1
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=pad)
        self.affine1 = Affine(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1)
        self.affine2 = Affine(planes)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.stride == 2 else x
        return F.relu(add_zero_extended(out, shortcut))


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet. (N, 3, 150, 150) -> (N, 128) descriptor (module docstring).

    Args:
        stages: (blocks, width, downsample) per stage.
        embedding_size: descriptor size (128).
        stem_width: width of the 7x7 stem convolution (32).
    """

    kind = "embedding"
    alignment = "dlib-chip-150"

    def __init__(
        self,
        stages: tuple[tuple[int, int, bool], ...] = DLIB_STAGES,
        embedding_size: int = 128,
        stem_width: int = 32,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_width, 7, stride=2, padding=0)
        self.affine1 = Affine(stem_width)
        inplanes = stem_width
        for i, (blocks, width, down) in enumerate(stages, start=1):
            layer = [DlibBlock(inplanes, width, 2 if down else 1)]
            layer += [DlibBlock(width, width, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layer))
            inplanes = width
        self.num_stages = len(stages)
        self.fc = nn.Linear(inplanes, embedding_size, bias=False)
        self.embedding_size = embedding_size
        self.preprocess = Preprocess(
            (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE), "RGB", DLIB_MEAN_RGB, (256.0,) * 3
        )
        self.target_layer = "layer4.2" if stages == DLIB_STAGES else f"layer{len(stages)}.0.conv2"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.affine1(self.conv1(x))), 3, 2)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean(dim=(2, 3)))


# ----------------------------------------------------------------------------- the file's layout


def _layer_ops(net: DlibResNet) -> list[tuple[str, str, str | None]]:
    """(stack kind, dlib layer type, module name) in application order, tags and skips included."""
    ops = [
        ("add", "con", "conv1"),
        ("add", "affine", "affine1"),
        ("add", "relu", None),
        ("add", "max_pool", None),
    ]
    for i in range(1, net.num_stages + 1):
        for j, block in enumerate(getattr(net, f"layer{i}")):
            name = f"layer{i}.{j}"
            ops.append(("tag", "tag1", None))
            ops += [
                ("add", "con", f"{name}.conv1"),
                ("add", "affine", f"{name}.affine1"),
                ("add", "relu", None),
                ("add", "con", f"{name}.conv2"),
                ("add", "affine", f"{name}.affine2"),
            ]
            if block.stride == 2:  # ares_down: add_prev2<avg_pool<skip1<tag2<block<tag1<..>>>>>>
                ops += [("tag", "tag2", None), ("skip", "skip1", None), ("add", "avg_pool", None)]
            ops += [("add", "add_prev", None), ("add", "relu", None)]
    ops += [("add", "avg_pool", None), ("add", "fc", "fc")]
    return ops


def dlib_stack(net: DlibResNet) -> tuple[str, ...]:
    """The wrapper kinds of the network type, outermost first (what :func:`read_dlib_net` needs)."""
    return tuple(kind for kind, _, _ in reversed(_layer_ops(net)))


def _con(where: str, v: dict, name: str, net: DlibResNet) -> dict[str, torch.Tensor]:
    conv = net.get_submodule(name)
    geometry = (tuple(conv.weight.shape), conv.stride, conv.padding)
    found = (tuple(v["filters"].shape), v["stride"], v["padding"])
    if geometry != found or not v["use_bias"] or v["use_relu"]:
        raise DlibFormatError(f"{where}: (filters, stride, padding) {found}, network {geometry}")
    return {
        f"{name}.weight": torch.from_numpy(v["filters"].copy()),
        f"{name}.bias": torch.from_numpy(v["biases"].copy()),
    }


def _affine(where: str, v: dict, name: str, net: DlibResNet) -> dict[str, torch.Tensor]:
    if v["mode"] != 0 or v["disabled"]:
        raise DlibFormatError(f"{where}: expected a conv-mode affine layer, got mode {v['mode']}")
    return {
        f"{name}.weight": torch.from_numpy(v["gamma"].reshape(-1).copy()),
        f"{name}.bias": torch.from_numpy(v["beta"].reshape(-1).copy()),
    }


def _fc(where: str, v: dict, name: str, net: DlibResNet) -> dict[str, torch.Tensor]:
    expected = tuple(net.fc.weight.shape[::-1])
    if v["biases"] is not None or v["weights"].shape != expected:
        raise DlibFormatError(
            f"{where}: fc weights {v['weights'].shape}, bias "
            f"{v['biases'] is not None}; expected {expected} without bias"
        )
    return {"fc.weight": torch.from_numpy(np.ascontiguousarray(v["weights"].T))}


def _pool(where: str, v: dict, expected: tuple) -> None:
    if (v["kernel"], v["stride"]) != expected or v["padding"] != (0, 0):
        raise DlibFormatError(
            f"{where}: pool {v['kernel']}/{v['stride']} pad {v['padding']}, "
            f"expected {expected[0]}/{expected[1]} pad (0, 0)"
        )


def state_dict_from_dlib(parsed: DlibNet, net: DlibResNet, source: str) -> dict[str, torch.Tensor]:
    """Map a parsed dlib network onto ``net``'s state_dict keys, checking each layer's kind, shape.

    Raises:
        DlibFormatError: a layer of the file does not fit the module.
    """
    ops = [op for op in _layer_ops(net) if op[0] == "add"]
    if len(ops) != len(parsed.layers):
        raise DlibFormatError(f"{source}: {len(parsed.layers)} layers, the network has {len(ops)}")
    pools = {"max_pool": ((3, 3), (2, 2)), "avg_pool": ((2, 2), (2, 2))}
    state: dict[str, torch.Tensor] = {}
    for index, ((_, dtype, name), layer) in enumerate(zip(ops, parsed.layers, strict=True)):
        where = f"{source}: layer {index} ({name or dtype})"
        if layer.type != dtype:
            raise DlibFormatError(
                f"{where}: the file has a {layer.version!r} layer, the network expects {dtype}"
            )
        if dtype in ("con", "affine", "fc"):
            convert = {"con": _con, "affine": _affine, "fc": _fc}[dtype]
            state.update(convert(where, layer.values, name, net))
        elif dtype in pools:  # the last pool is avg_pool_everything
            _pool(where, layer.values, ((0, 0), (1, 1)) if index == len(ops) - 2 else pools[dtype])
        elif dtype == "relu" and layer.values["disabled"]:
            raise DlibFormatError(f"{where}: a disabled relu layer is not supported")
    inp = parsed.input.values
    size = inp.get("size", (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE))
    if not np.allclose(inp["avg_rgb"], DLIB_MEAN_RGB, atol=1e-3) or size != (DLIB_CHIP_SIZE,) * 2:
        raise DlibFormatError(
            f"{source}: input layer means {inp['avg_rgb']} / size {size} differ from "
            f"{DLIB_MEAN_RGB} / (150, 150) that the preprocessing assumes"
        )
    return state


def _convert(path: str) -> dict[str, torch.Tensor]:
    with torch.device("cpu"):
        net = DlibResNet()
    return state_dict_from_dlib(read_dlib_net(path, dlib_stack(net)), net, path)


def read_dlib_resnet_weights(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """State dict of :class:`DlibResNet` from a ``.dat`` file (default: face-recognition-models').

    Raises:
        models.packages.PackageFileError: the package is not installed (names the ``pip install``).
        DlibFormatError: the file is truncated or not this network.
    """
    return read_package_weights("dlib-resnet", _convert, path)


@register_network(
    "dlib-ResNet29",
    package_weights=read_dlib_resnet_weights,
    package_files=lambda: [package_file("dlib-resnet")],
)
def dlib_resnet29(**overrides) -> DlibResNet:
    """dlib's face-recognition ResNet (128-d, 150x150 chip); weights of face-recognition-models."""
    return create_from_defaults(DlibResNet, {}, overrides)
