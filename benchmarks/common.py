"""Shared set-up of the benchmark and of the reference-equivalence test: face pairs and sane random
networks.

Random weights are enough to time the networks, but the masks (and so the
number of erased images the verification net sees) depend on the values: a
freshly initialised deep net has exploding or vanishing activations (the
arcface init gives 1e26 embeddings, whose cosine under-/overflows to 0) and
input-independent predictions. :func:`calibrate_batchnorm` sets every
BatchNorm's running statistics from a forward pass over the benchmark's own
images (a data-dependent init), so activations stay O(1) and maps, classes and
embeddings depend on the input the way a trained net's do. It changes no
architecture and no cost.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from utils.base.inference import device_of
from utils.face_world import render, sample_identity, sample_nuisance


def face_pairs(n_pairs: int, size: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Rendered face-world pairs, alternating mate (same identity) and non-mate.

    Args:
        n_pairs: number of pairs.
        size: raw image side in pixels (images are size x size BGR uint8).
        seed: world seed.

    Returns:
        List of (img1 (size, size, 3) uint8, img2, label 1/0).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xBE7C]))
    out = []
    for p in range(n_pairs):
        a = int(rng.integers(1 << 30))
        b = a if p % 2 == 0 else int(rng.integers(1 << 30))
        imgs = [
            render(
                sample_identity(ident),
                sample_nuisance(int(rng.integers(1 << 30))),
                size=size,
                with_masks=False,
            ).image
            for ident in (a, b)
        ]
        out.append((imgs[0], imgs[1], int(a == b)))
    return out


@torch.no_grad()
def calibrate_batchnorm(net: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running mean/var from one train-mode forward of ``x``; returns ``net``
    in eval mode.

    Args:
        net: the network (any mode; its other weights are untouched).
        x: (N, 3, H, W) preprocessed calibration batch (N >= 2) on the net's device.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets the statistics exactly
    net.train()
    try:
        net(x)
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
        net.eval()
    return net


def calibration_batch(net: nn.Module, images: list[np.ndarray]) -> torch.Tensor:
    """``net.preprocess(images)`` on the net's device (the calibration input of
    :func:`calibrate_batchnorm`)."""
    return net.preprocess(images).to(device_of(net))
