"""Batched embeddings and cosine similarities under the verification net V.

METHOD.md section 3 step 7: similarity = cosine of L2-normalised embeddings.
Embeddings are computed in ``torch.inference_mode()``, in eval mode, in
fixed-size batches. A zero-norm embedding is guarded (``F.normalize`` with
eps 1e-12) so its cosine with anything is 0, never NaN.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _chunks(items: Iterable[torch.Tensor], size: int) -> Iterator[list[torch.Tensor]]:
    chunk: list[torch.Tensor] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def embed_images(net: nn.Module, images: Iterable[np.ndarray], batch_size: int = 32, amp: bool = False) -> torch.Tensor:
    """Raw embeddings of BGR uint8 images, ``batch_size`` images per forward.

    Args:
        net: an embedding net (``net.preprocess``, output (N, D)).
        images: iterable of (H, W, 3) uint8 BGR arrays, consumed lazily and
            preprocessed one at a time as they arrive, so at most one raw image is
            held here (a batch of raw erased copies of a large image would not be).
        batch_size: images per forward pass (>= 1).
        amp: run the forwards under bf16 autocast (faster on GPUs with bf16 units;
            similarities change by ~1e-3, see ``benchmarks/bench_pair.py --amp``).

    Returns:
        (N, D) float32 CPU tensor of un-normalised embeddings.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    p = next(net.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    was_training = net.training
    net.eval()
    out = []
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(amp)):
            for chunk in _chunks((net.preprocess([img]) for img in images), batch_size):
                out.append(net(torch.cat(chunk).to(device)).float().cpu())
    finally:
        net.train(was_training)
    if not out:
        raise ValueError("embed_images got no images")
    return torch.cat(out)


def normalise(emb: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows; a zero row stays zero. (N, D) -> (N, D)."""
    return F.normalize(emb.float(), dim=-1, eps=1e-12)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of two (N, D) (or (D,)) embedding sets -> (N,) (or ()); zero norm -> 0."""
    return (normalise(a) * normalise(b)).sum(dim=-1).clamp(-1.0, 1.0)


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs cosine. (N, D), (M, D) -> (N, M)."""
    return (normalise(a) @ normalise(b).T).clamp(-1.0, 1.0)


def arccos_score(s: float | np.ndarray) -> float | np.ndarray:
    """Similarity on the [0, 1] scale: 1 - arccos(s) / pi (METHOD.md section 3 step 8)."""
    return 1.0 - np.arccos(np.clip(s, -1.0, 1.0)) / np.pi
