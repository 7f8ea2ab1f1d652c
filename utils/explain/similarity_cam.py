"""A discriminant map from the verification net itself: Grad-CAM of the pair's cosine through V.

The paper's discriminant (METHOD.md section 3 step 3) comes from the
identification net R: H_d = minmax(H_t * (max(H_f) - H_f)), evidence for
I1's identity classes that is not evidence for I2's. The ``"verification"``
discriminant asks V instead: with s(x) = cos(V(x), V(I2)) (V(I2) held fixed),
the Grad-CAM map (Selvaraju et al. 2017, Eq. 1-2) of the score y = -s at V's
Grad-CAM layer on I1,

    w_c = mean_{ij} dy/dA_cij,        H_d^V = minmax(ReLU(sum_c w_c A_c)),

is where I1 holds the evidence that makes it *unlike* I2 (raising those
activations lowers the similarity). The same for I2 against I1. The map is
min-max normalised at the layer, resized bilinearly to the requested size
(R's input size: both nets see the same canvas, so the geometry agrees) and
min-max normalised again, like any H_d.

The two images go through one forward pass with targets fixed before it
(:class:`PairCosine`, no callback), and one batched backward
(:class:`utils.explain.cam.CAMExplainer`).

Example:
    >>> maps = similarity_discriminant(V, img1, img2, out_size=(64, 64))
    >>> maps.shape
    torch.Size([2, 64, 64])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from utils.explain.cam import CAMExplainer, minmax_normalise, resize_maps
from utils.explain.verification import cosine


class PairCosine:
    """Target: ``sign * cos(V(x_i), V(x_partner(i)))`` with the partner's embedding held fixed.

    Args:
        partner: for each row i of the batch, the row of the image it is compared with
            (``(1, 0)`` for a pair).
        sign: -1 scores dissimilarity (the evidence that makes the images unlike), +1 similarity.
    """

    def __init__(self, partner: Sequence[int] = (1, 0), sign: float = -1.0) -> None:
        self.partner = [int(p) for p in partner]
        self.sign = float(sign)

    def __call__(self, outputs: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings -> (N,) scores; the partner rows are detached (a fixed reference)."""
        if outputs.ndim != 2 or outputs.shape[0] != len(self.partner):
            raise ValueError(
                f"PairCosine expects ({len(self.partner)}, D) embeddings, "
                f"got {tuple(outputs.shape)}"
            )
        ref = outputs.detach()[torch.as_tensor(self.partner, device=outputs.device)]
        return self.sign * cosine(outputs, ref)

    def __repr__(self) -> str:
        return f"PairCosine(partner={self.partner}, sign={self.sign:g})"


def similarity_discriminant(
    V: nn.Module,
    img1: np.ndarray,
    img2: np.ndarray,
    layer: str | None = None,
    method: str = "GradCAM",
    out_size: tuple[int, int] | None = None,
    sign: float = -1.0,
) -> torch.Tensor:
    """H_d^V of both images of a pair (see the module docstring).

    Args:
        V: an embedding net (``V.preprocess``, output (N, D)).
        img1, img2: raw (H, W, 3) uint8 BGR canvases.
        layer: Grad-CAM layer of V (default ``V.target_layer``, its last conv).
        method: "GradCAM" or "GradCAM++".
        out_size: (H, W) of the maps (default: the layer's resolution).
        sign: -1 (default) for the dissimilarity evidence; +1 maps the shared evidence instead.

    Returns:
        (2, H, W) float tensor in [0, 1] on CPU: row 0 is I1 against I2, row 1 is I2 against I1.
    """
    was_training = V.training
    V.eval()
    try:
        with CAMExplainer(V, layer or V.target_layer, method) as cam:
            target = PairCosine((1, 0), sign)
            res = cam(V.preprocess([img1, img2]), [[target], [target]])
    finally:
        V.train(was_training)
    maps = torch.cat(res.maps)  # (2, h, w) at the layer, each min-max normalised
    return minmax_normalise(resize_maps(maps, out_size)).float().cpu()
