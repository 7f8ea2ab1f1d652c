"""The one device helper and the one batched, gradient-free forward over images.

Style habit 9: the device comes from the model, inputs are moved once per
batch, inference runs in ``torch.inference_mode()`` and eval mode, in
fixed-size batches, and the outputs come back to the CPU once per batch.

Example:
    >>> emb = batched_forward(V, images, batch_size=32)      # (N, D) float32 CPU
    >>> heads = batched_forward(A, images)                   # list of (N, n_j) for a multi-head net
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn


def device_of(net: nn.Module) -> torch.device:
    """Device of the network's first parameter (or buffer); CPU if it has neither."""
    for tensor in (*net.parameters(), *net.buffers()):
        return tensor.device
    return torch.device("cpu")


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last may be shorter), consuming ``items`` lazily."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def batched_forward(
    net: nn.Module,
    images: Iterable[np.ndarray] | torch.Tensor,
    batch_size: int = 32,
    amp: bool = False,
) -> torch.Tensor | list[torch.Tensor]:
    """``net`` over many inputs, ``batch_size`` per forward, without autograd.

    Args:
        net: a network with ``net.preprocess`` (used when ``images`` are images).
        images: (H, W, 3) uint8 BGR images (any iterable, consumed one batch at a time so that
            huge images need not all be in memory), or an (N, 3, H, W) tensor already preprocessed.
        batch_size: inputs per forward pass (>= 1).
        amp: bf16 autocast for the forwards (changes outputs by ~1e-3; for GPUs with bf16 units).

    Returns:
        (N, ...) float32 CPU tensor, or for a multi-head net (list output) a list of them, one per
        head.

    Raises:
        ValueError: no input, or a bad batch size.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    device = device_of(net)
    batches: Iterable[Any]
    if isinstance(images, torch.Tensor):
        batches = (images[s : s + batch_size] for s in range(0, images.shape[0], int(batch_size)))
    else:
        # one image preprocessed as it arrives: a batch never holds several raw (large) images
        one_by_one = (net.preprocess([im]) for im in images)
        batches = (torch.cat(chunk) for chunk in chunks(one_by_one, batch_size))
    was_training = net.training
    net.eval()
    outs: list[Any] = []
    try:
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(amp)),
        ):
            for x in batches:
                y = net(x.to(device))
                outs.append(
                    [o.float().cpu() for o in y]
                    if isinstance(y, (list, tuple))
                    else y.float().cpu()
                )
    finally:
        net.train(was_training)
    if not outs:
        raise ValueError("batched_forward got no input")
    if isinstance(outs[0], list):
        return [torch.cat([o[j] for o in outs]) for j in range(len(outs[0]))]
    return torch.cat(outs)
