"""Read an ONNX model's weights as float32 NumPy arrays, dequantising int8 weight-only quantisation.

The OpenCV Zoo ``*_int8bq.onnx`` files store every convolution and
fully-connected weight as int8 with float32 scales and int8 zero points, block
quantised: a ``DequantizeLinear`` node (ONNX opset 21, ``axis`` and
``block_size`` attributes) turns them back into float32 inside the graph, and a
``Reshape`` gives the convolution its 4-d shape. :func:`read_onnx_constants`
evaluates exactly those constant sub-graphs with NumPy (``onnx`` only parses
the protobuf; no ``onnxruntime``), so a network can be rebuilt from the
float32 values the graph itself would compute.

``DequantizeLinear`` (ONNX operator spec): ``y = (x - zero_point) * scale``,
where ``scale`` / ``zero_point`` are a scalar (per tensor), a 1-d array along
``axis`` (per axis) or, with ``block_size`` > 0, an array of ``x``'s rank whose
size along ``axis`` is ``ceil(x.shape[axis] / block_size)``: each value covers
``block_size`` consecutive elements along ``axis``.

Example:
    >>> x = np.array([[2, 4, 6]], np.int8); s = np.array([[0.5, 2.0]], np.float32)
    >>> dequantize_linear(x, s, np.array([[0, 1]], np.int8), axis=1, block_size=2).tolist()
    [[1.0, 2.0, 10.0]]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

FOLDED_OPS = ("DequantizeLinear", "Reshape", "Constant", "Identity")


class OnnxWeightsError(ValueError):
    """The ONNX file cannot be read or its weights cannot be evaluated."""


def dequantize_linear(
    x: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray | None = None,
    axis: int = 1,
    block_size: int = 0,
) -> np.ndarray:
    """ONNX ``DequantizeLinear``: ``(x - zero_point) * scale``, per tensor, per axis or blocked.

    Args:
        x: quantised integers, any shape.
        scale: float scale(s), see the module docstring for the three layouts.
        zero_point: same layout as ``scale`` (default 0).
        axis: the quantised axis (negative counts from the end).
        block_size: 0 (per tensor / per axis) or the block length along ``axis``.

    Returns:
        float32 array of ``x``'s shape.
    """
    x = np.asarray(x)
    scale = np.asarray(scale, dtype=np.float32)
    zp = (
        np.zeros_like(scale, dtype=np.int32)
        if zero_point is None
        else np.asarray(zero_point).astype(np.int32)
    )
    if zp.shape != scale.shape:
        raise OnnxWeightsError(
            f"zero_point shape {zp.shape} differs from scale shape {scale.shape}"
        )
    axis = axis % max(x.ndim, 1)
    if scale.size == 1 and block_size == 0:
        scale_full, zp_full = scale.reshape(()), zp.reshape(())
    elif block_size == 0:
        if scale.ndim != 1 or scale.shape[0] != x.shape[axis]:
            raise OnnxWeightsError(
                f"per-axis scale of shape {scale.shape} does not fit x {x.shape} on axis {axis}"
            )
        shape = [1] * x.ndim
        shape[axis] = -1
        scale_full, zp_full = scale.reshape(shape), zp.reshape(shape)
    else:
        blocks = -(-x.shape[axis] // block_size)
        expected = tuple(blocks if d == axis else n for d, n in enumerate(x.shape))
        if scale.shape != expected:
            raise OnnxWeightsError(
                f"blocked scale of shape {scale.shape} does not fit x {x.shape} "
                f"(axis {axis}, block {block_size}: expected {expected})"
            )
        take = np.arange(x.shape[axis]) // block_size
        scale_full, zp_full = np.take(scale, take, axis=axis), np.take(zp, take, axis=axis)
    return ((x.astype(np.int32) - zp_full).astype(np.float32) * scale_full).astype(np.float32)


def read_onnx_graph(path: str | os.PathLike):
    """``onnx.load`` with a clear error for a missing package or an unreadable file."""
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "reading ONNX weights needs the onnx package. Fix: pip install 'onnx>=1.16'"
        ) from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} does not exist")
    try:
        return onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError, ValueError, ... for foreign bytes
        raise OnnxWeightsError(
            f"{path} is not a readable ONNX model: {type(err).__name__}: {err}"
        ) from err


def _attributes(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def read_onnx_constants(model) -> dict[str, np.ndarray]:
    """Every tensor of the graph that does not depend on its inputs, evaluated with NumPy.

    Args:
        model: an ``onnx.ModelProto`` (see :func:`read_onnx_graph`).

    Returns:
        name -> array: the initializers and the outputs of the ``DequantizeLinear``,
        ``Reshape``, ``Constant`` and ``Identity`` nodes whose inputs are all constants.
    """
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in FOLDED_OPS or not all(n in values for n in node.input if n):
            continue
        attrs = _attributes(node)
        args = [values[n] if n else None for n in node.input]
        if node.op_type == "DequantizeLinear":
            out = dequantize_linear(
                args[0],
                args[1],
                args[2] if len(args) > 2 else None,
                axis=int(attrs.get("axis", 1)),
                block_size=int(attrs.get("block_size", 0)),
            )
        elif node.op_type == "Reshape":
            shape = [int(s) for s in args[1]]
            shape = [
                args[0].shape[i] if s == 0 and not attrs.get("allowzero", 0) else s
                for i, s in enumerate(shape)
            ]
            out = args[0].reshape(shape)
        elif node.op_type == "Constant":
            if "value" not in attrs:
                continue
            out = numpy_helper.to_array(attrs["value"])
        else:
            out = args[0]
        values[node.output[0]] = out
    return values


def node_attributes(node) -> dict:
    """The attributes of an ONNX node as Python values."""
    return _attributes(node)
