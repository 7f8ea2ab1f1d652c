"""Batched embeddings and cosine similarities under the verification net V.

METHOD.md section 3 step 7: similarity = cosine of L2-normalised embeddings.
Embeddings are computed by :func:`utils.base.inference.batched_forward`
(``torch.inference_mode()``, eval mode, fixed-size batches). A zero-norm embedding is guarded
(``F.normalize`` with
eps 1e-12) so its cosine with anything is 0, never NaN.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.base.inference import batched_forward


def embed_images(
    net: nn.Module, images: Iterable[np.ndarray], batch_size: int = 32, amp: bool = False
) -> torch.Tensor:
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
    return batched_forward(net, images, batch_size, amp)


def normalise(emb: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows; a zero row stays zero. (N, D) -> (N, D)."""
    return F.normalize(emb.float(), dim=-1, eps=1e-12)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of two (N, D) (or (D,)) embedding sets -> (N,) (or ()); zero norm -> 0."""
    return (normalise(a) * normalise(b)).sum(dim=-1).clamp(-1.0, 1.0)
