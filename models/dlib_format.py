"""Pure-NumPy reader for dlib's ``serialize()`` stream of a DNN.

E.g. ``dlib_face_recognition_resnet_model_v1.dat``.

dlib writes a network by recursion over its C++ type (``dlib/serialize.h``,
``dlib/dnn/core.h``, ``layers.h``, ``input.h``, ``loss.h``). The primitives:

* **integer**: a control byte (bit 0x80: negative, low nibble: byte count
  1..8), then the absolute value's bytes, little-endian. ``-300`` is
  ``82 2C 01``; ``0`` is ``01 00``.
* **float / double**: dlib's ``float_details``: an int64 mantissa and an int16
  exponent, both as integers above; value = mantissa * 2**exponent (exponents
  32000/32001/32002 mean +inf/-inf/NaN).
* **string**: its length (integer) then the raw bytes. **bool**: one ASCII
  byte, ``'1'`` or ``'0'``.
* **tensor**: version 2, four int64 dims (num_samples, k, nr, nc), then
  ``prod(dims)`` raw little-endian float32. An **alias tensor** (a parameter
  block's shape) is version 1 and the four dims, no data.

A network ``loss<l_n<...<l_1<input>>>>`` is stored as: version 1, the loss
details, then one version integer per ``add_layer`` / tag / skip layer from
the outermost inward, then the input layer, then every ``add_layer``'s details
(and its cached buffers) from the innermost outward. Layer details begin with a
version string naming their type (``"con_4"``, ``"affine_"``, ``"relu_"``...),
so they parse themselves; tags and skips carry no bytes beyond their version,
so the reader needs the stack of kinds (``"add"``, ``"tag"``, ``"skip"``) that
the C++ type implies, outermost first.

:func:`read_dlib_net` consumes the stream to its last byte; a truncated file, a
version it does not know, or bytes left over raise :class:`DlibFormatError`
with the byte offset.

Example:
    >>> r = DlibReader(bytes([0x82, 0x2C, 0x01, 0x01, 0xC0, 0x81, 0x08]), "<example>")
    >>> r.int(), r.float()
    (-300, 0.75)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_FLOAT_SPECIAL = {
    32000: np.inf,
    32001: -np.inf,
    32002: np.nan,
}  # float_details::is_inf, is_ninf, is_nan
STACK_KINDS = ("add", "tag", "skip")


class DlibFormatError(ValueError):
    """The bytes are not (or not all of) a dlib network of the expected type."""


class DlibReader:
    """Cursor over a dlib ``serialize()`` byte stream.

    Args:
        data: the whole stream.
        source: a name for error messages (the file path).
    """

    def __init__(self, data: bytes, source: str) -> None:
        self.data = memoryview(data)
        self.source = source
        self.pos = 0

    def error(self, what: str, problem: str) -> DlibFormatError:
        return DlibFormatError(f"{self.source}: byte {self.pos}: {what}: {problem}")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(
                what,
                f"needs {n} bytes but only {len(self.data) - self.pos} are left "
                "(truncated or not a dlib file)",
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self, what: str = "integer", signed: bool = True) -> int:
        """One integer (serialize.h ``pack_int``)."""
        control = self.take(1, what)[0]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8 or (control & 0x80 and not signed):
            self.pos -= 1
            raise self.error(what, f"control byte 0x{control:02x} is not a dlib integer")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def uint(self, what: str = "unsigned integer") -> int:
        return self.int(what, signed=False)

    def float(self, what: str = "float") -> float:
        """One float/double (``float_details``: mantissa * 2**exponent)."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.error(
                what, "uses dlib's old text float format, which this reader does not support"
            )
        mantissa = self.int(f"{what} (mantissa)")
        exponent = self.int(f"{what} (exponent)")
        if exponent in _FLOAT_SPECIAL:
            return float(_FLOAT_SPECIAL[exponent])
        if abs(exponent) > 2000:
            raise self.error(what, f"exponent {exponent} is out of range")
        return float(np.ldexp(float(mantissa), exponent))

    def string(self, what: str = "string") -> str:
        size = self.uint(f"{what} (length)")
        raw = bytes(self.take(size, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(what, f"{raw[:20]!r} is not an ASCII name") from None

    def bool(self, what: str = "bool") -> bool:
        ch = self.take(1, what)[0]
        if ch not in (ord("0"), ord("1")):
            self.pos -= 1
            raise self.error(what, f"byte 0x{ch:02x} is not '0' or '1'")
        return ch == ord("1")

    def _dims(self, what: str, version: int) -> tuple[int, int, int, int]:
        got = self.int(f"{what} (version)")
        if got != version:
            self.pos -= 2
            raise self.error(what, f"version {got}, expected {version}")
        dims = tuple(self.int(f"{what} (dim {i})") for i in range(4))
        if min(dims) < 0:
            raise self.error(what, f"negative dimension in {dims}")
        return dims

    def tensor(self, what: str = "tensor") -> np.ndarray:
        """A ``resizable_tensor``: (num_samples, k, nr, nc) float32."""
        dims = self._dims(what, 2)
        count = int(np.prod(dims, dtype=np.int64))
        raw = self.take(4 * count, f"{what} data ({dims})")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias_shape(self, what: str = "alias tensor") -> tuple[int, int, int, int]:
        """An ``alias_tensor``: only its shape."""
        return self._dims(what, 1)

    def string_in(self, what: str, allowed: Sequence[str]) -> str:
        start = self.pos
        name = self.string(what)
        if name not in allowed:
            self.pos = start
            raise self.error(what, f"found {name!r}, expected one of {list(allowed)}")
        return name

    def at_end(self) -> bool:
        return self.pos == len(self.data)


@dataclass
class DlibLayer:
    """One layer's details as stored.

    Attributes:
        type: ``"con"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``,
            ``"add_prev"``, ``"fc"``, ``"input_rgb_image"``, ``"loss_metric"``.
        version: the version string in the file (e.g. ``"con_4"``, ``"bn_con2"``).
        values: the fields (tensors as float32 arrays, see the ``_read_*`` functions).
    """

    type: str
    version: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed network.

    Attributes:
        loss: the loss layer.
        input: the input layer.
        layers: the ``add_layer`` details in the order they are applied
            (innermost first); tags and skips are not listed (they carry no data).
        stack: the kinds outermost first, as given to :func:`read_dlib_net`.
    """

    loss: DlibLayer
    input: DlibLayer
    layers: list[DlibLayer]
    stack: tuple[str, ...]


def _multipliers(r: DlibReader, what: str) -> dict[str, float]:
    names = (
        "learning_rate_multiplier",
        "weight_decay_multiplier",
        "bias_learning_rate_multiplier",
        "bias_weight_decay_multiplier",
    )
    return {n: r.float(f"{what} {n}") for n in names}


def _split_params(
    r: DlibReader, what: str, params: np.ndarray, *shapes: tuple[int, ...]
) -> list[np.ndarray]:
    """Consecutive blocks of ``params`` with the given alias shapes (dlib's parameter packing)."""
    flat = params.reshape(-1)
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    if sum(sizes) > flat.size:
        raise r.error(
            what, f"parameter tensor has {flat.size} values, the blocks {shapes} need {sum(sizes)}"
        )
    out, start = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        out.append(flat[start : start + size].reshape(shape))
        start += size
    return out


def _read_con(r: DlibReader, version: str) -> DlibLayer:
    v: dict[str, Any] = {
        "params": r.tensor("con_ params"),
        "num_filters": r.int("con_ num_filters"),
    }
    v["kernel"] = (r.int("con_ nr"), r.int("con_ nc"))
    v["stride"] = (r.int("con_ stride_y"), r.int("con_ stride_x"))
    v["padding"] = (r.int("con_ padding_y"), r.int("con_ padding_x"))
    filters_shape, biases_shape = r.alias_shape("con_ filters"), r.alias_shape("con_ biases")
    v.update(_multipliers(r, "con_"))
    v["use_bias"] = r.bool("con_ use_bias") if version in ("con_5", "con_6") else True
    v["use_relu"] = r.bool("con_ use_relu") if version == "con_6" else False
    blocks = (filters_shape, biases_shape) if v["use_bias"] else (filters_shape,)
    parts = _split_params(r, "con_", v["params"], *blocks) if v["params"].size else []
    v["filters"] = parts[0] if parts else np.zeros(filters_shape, np.float32)
    v["biases"] = parts[1].reshape(-1) if len(parts) > 1 else None
    return DlibLayer("con", version, v)


def _read_affine(r: DlibReader, version: str) -> DlibLayer:
    params = r.tensor("affine_ params")
    gamma_shape, beta_shape = r.alias_shape("affine_ gamma"), r.alias_shape("affine_ beta")
    mode = r.int("affine_ mode")
    disabled = r.bool("affine_ disabled") if version == "affine_2" else False
    gamma, beta = (
        _split_params(r, "affine_", params, gamma_shape, beta_shape)
        if params.size
        else (None, None)
    )
    return DlibLayer(
        "affine", version, {"gamma": gamma, "beta": beta, "mode": mode, "disabled": disabled}
    )


def _read_bn(r: DlibReader, version: str) -> DlibLayer:
    """A batch norm where an affine layer is expected, converted as dlib does (``affine_(bn_)``)."""
    params = r.tensor("bn_ params")
    gamma_shape, beta_shape = r.alias_shape("bn_ gamma"), r.alias_shape("bn_ beta")
    for name in ("means", "invstds"):
        r.tensor(f"bn_ {name}")
    running_means, running_variances = (
        r.tensor("bn_ running_means"),
        r.tensor("bn_ running_variances"),
    )
    r.uint("bn_ num_updates")
    r.uint("bn_ running_stats_window_size")
    _multipliers(r, "bn_")
    eps = r.float("bn_ eps")
    gamma, beta = _split_params(r, "bn_", params, gamma_shape, beta_shape)
    scale = gamma.reshape(-1) / np.sqrt(running_variances.reshape(-1) + np.float32(eps))
    shift = beta.reshape(-1) - scale * running_means.reshape(-1)
    return DlibLayer(
        "affine",
        version,
        {
            "gamma": scale.astype(np.float32).reshape(gamma_shape),
            "beta": shift.astype(np.float32).reshape(beta_shape),
            "mode": 0 if version == "bn_con2" else 1,
            "disabled": False,
        },
    )


def _read_relu(r: DlibReader, version: str) -> DlibLayer:
    return DlibLayer(
        "relu", version, {"disabled": r.bool("relu_ disabled") if version == "relu_2" else False}
    )


def _read_pool(r: DlibReader, version: str) -> DlibLayer:
    kind = version.rsplit("_", 1)[0]  # "max_pool" / "avg_pool"
    v = {
        "kernel": (r.int(f"{kind} nr"), r.int(f"{kind} nc")),
        "stride": (r.int(f"{kind} stride_y"), r.int(f"{kind} stride_x")),
        "padding": (r.int(f"{kind} padding_y"), r.int(f"{kind} padding_x")),
    }
    return DlibLayer(kind, version, v)


def _read_fc(r: DlibReader, version: str) -> DlibLayer:
    v: dict[str, Any] = {
        "num_outputs": r.uint("fc_ num_outputs"),
        "num_inputs": r.uint("fc_ num_inputs"),
        "params": r.tensor("fc_ params"),
    }
    weights_shape, biases_shape = r.alias_shape("fc_ weights"), r.alias_shape("fc_ biases")
    v["bias_mode"] = r.int("fc_ bias_mode")
    v.update(_multipliers(r, "fc_"))
    v["use_bias"] = r.bool("fc_ use_bias") if version == "fc_3" else True
    has_bias = v["bias_mode"] == 0 and v["use_bias"]  # FC_HAS_BIAS == 0
    blocks = (weights_shape, biases_shape) if has_bias else (weights_shape,)
    parts = _split_params(r, "fc_", v["params"], *blocks)
    v["weights"] = parts[0].reshape(v["num_inputs"], v["num_outputs"])  # y = x @ weights
    v["biases"] = parts[1].reshape(-1) if has_bias else None
    return DlibLayer("fc", version, v)


def _read_add_prev(r: DlibReader, version: str) -> DlibLayer:
    return DlibLayer("add_prev", version, {})


_DETAILS = {
    **{v: _read_con for v in ("con_4", "con_5", "con_6")},
    **{v: _read_affine for v in ("affine_", "affine_2")},
    **{v: _read_bn for v in ("bn_con2", "bn_fc2")},
    **{v: _read_relu for v in ("relu_", "relu_2")},
    "max_pool_2": _read_pool,
    "avg_pool_2": _read_pool,
    **{v: _read_fc for v in ("fc_2", "fc_3")},
    "add_prev_": _read_add_prev,
}


def _read_input(r: DlibReader) -> DlibLayer:
    version = r.string_in("input layer", ("input_rgb_image", "input_rgb_image_sized"))
    v: dict[str, Any] = {
        "avg_rgb": tuple(r.float(f"input avg_{c}") for c in ("red", "green", "blue"))
    }
    if version == "input_rgb_image_sized":
        v["size"] = (r.uint("input nr"), r.uint("input nc"))
    return DlibLayer("input_rgb_image", version, v)


def _read_loss(r: DlibReader) -> DlibLayer:
    version = r.string_in("loss layer", ("loss_metric_", "loss_metric_2"))
    if version == "loss_metric_":  # the values dlib hard-coded for this version
        return DlibLayer("loss_metric", version, {"margin": 0.1, "distance_threshold": 0.75})
    return DlibLayer(
        "loss_metric",
        version,
        {"margin": r.float("loss margin"), "distance_threshold": r.float("loss dist_thresh")},
    )


def read_dlib_net(source: str | os.PathLike | bytes, stack: Sequence[str]) -> DlibNet:
    """Parse a whole serialised ``loss<...<input>>`` network.

    Args:
        source: a file path, or the bytes themselves.
        stack: the kinds of the wrapper layers, outermost first, as the C++
            network type implies: ``"add"`` (an ``add_layer`` with details),
            ``"tag"`` or ``"skip"``. The innermost must be ``"add"`` (the layer
            on top of the input layer).

    Returns:
        A :class:`DlibNet` whose ``layers`` are in application order.

    Raises:
        FileNotFoundError: no such file.
        DlibFormatError: truncated, foreign or unexpected content, or bytes left over.
    """
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "<bytes>"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"dlib network file {path} does not exist")
        data, name = path.read_bytes(), str(path)
    stack = tuple(stack)
    if not stack or stack[-1] != "add" or set(stack) - set(STACK_KINDS):
        raise ValueError(
            f"stack must be kinds from {STACK_KINDS} ending with 'add', got {stack[-3:]}..."
        )
    r = DlibReader(data, name)
    if r.int("loss layer (version)") != 1:
        raise r.error("loss layer", "add_loss_layer version is not 1 (not a dlib DNN file)")
    loss = _read_loss(r)
    versions = [
        _read_wrapper_version(r, i, kind, i == len(stack) - 1) for i, kind in enumerate(stack)
    ]
    net_input = _read_input(r)
    layers = []
    for i in reversed(range(len(stack))):
        if stack[i] == "add":
            layers.append(_read_details(r, len(layers)))
            _read_add_layer_buffers(r, len(layers) - 1, versions[i], i == len(stack) - 1)
    if not r.at_end():
        raise r.error(
            "end of network",
            f"{len(r.data) - r.pos} bytes left over after the last layer: the file holds more "
            "than this network type (a different dlib model?)",
        )
    return DlibNet(loss, net_input, layers, stack)


def _read_wrapper_version(r: DlibReader, index: int, kind: str, innermost: bool) -> int:
    """The version integer of one add_layer / tag / skip wrapper, checked against its kind."""
    what = f"wrapper {index} ({kind}) version"
    start = r.pos
    version = r.int(what)
    allowed = {"add": (2, 3) if innermost else (1, 2), "tag": (1,), "skip": (1,)}[kind]
    if version not in allowed:
        r.pos = start  # report where the integer starts
        raise r.error(
            what,
            f"found {version}, expected one of {allowed}: the file's layer stack does not match "
            "the network type (a different dlib model?)",
        )
    return version


def _read_add_layer_buffers(r: DlibReader, index: int, version: int, innermost: bool) -> None:
    """What an add_layer writes after its details: three flags and its cached tensors."""
    for flag in (
        "this_layer_setup_called",
        "gradient_input_is_stale",
        "get_output_and_gradient_input_disabled",
    ):
        r.bool(f"layer {index} {flag}")
    r.tensor(f"layer {index} x_grad")
    r.tensor(f"layer {index} cached_output")
    if innermost:  # the add_layer on the input layer: grad_final (+ sample_expansion_factor)
        r.tensor(f"layer {index} grad_final")
        if version == 3:
            r.uint("sample_expansion_factor")
    elif version == 2:
        r.tensor(f"layer {index} params_grad")


def _read_details(r: DlibReader, index: int) -> DlibLayer:
    version = r.string_in(f"details of layer {index}", tuple(_DETAILS))
    return _DETAILS[version](r, version)
