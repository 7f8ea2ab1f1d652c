"""xFR (Williford, May, Byrne, "Explainable Face Recognition", ECCV 2020): contrastive saliency.

The question is xFR's: which pixels of the probe make it the mate's identity
rather than the non-mate's?

* ``xFR-whitebox``: contrastive gradient x input of the verification net,
  ReLU(sum_c x_c * d[s(p, m) - s(p, n)] / dx_c) on the preprocessed probe x
  (zero input = the normalisation mean, so this is the first-order effect of
  replacing a pixel by the mean), Gaussian-smoothed. xFR's own whitebox maps
  use (contrastive / truncated contrastive) excitation backprop; EBP's
  probabilistic winner-take-all rule needs non-negative activations, which
  PReLU iresnets (signed activations, BN before every conv, residual sums
  without activation) do not have: the normalisers sum_k a_k w_ik^+ become
  zero or negative and the maps NaN (as reported on xFR's issue tracker).
  Forcing positivity (|a|, or LRP's z+ rule) would be a different method, so
  we use the gradient form of the same contrast (see the folder README).
* ``xFR-blackbox``: random occlusion of the probe (RISE-style masks, DISE's
  spirit): each mask i hides pixels O_i; its score is the drop of similarity
  to the mate minus the drop to the non-mate,
  [s(p, m) - s(O_i p, m)] - [s(p, n) - s(O_i p, n)]; the map is the
  per-pixel mean score over the masks that hide the pixel.
"""

from __future__ import annotations

import torch

from .base import (
    ComparisonNets,
    CosineTarget,
    Explainer,
    batched_forward,
    device_of,
    gaussian_smooth,
)
from .generic import _MaskSampler
from .registry import register_method


@register_method("xFR-whitebox")
class XFRWhitebox(Explainer):
    """Contrastive gradient x input; ``sigma``: smoothing in units of the input size (0.03 = 3
    %)."""

    needs = ("mate",)

    def __init__(self, sigma: float = 0.03) -> None:
        if not 0.0 <= float(sigma) < 0.5:
            raise ValueError(f"sigma is a fraction of the input size in [0, 0.5), got {sigma}")
        self.sigma = float(sigma)

    def _explain(self, probe, mate, nonmate, nets: ComparisonNets):
        V = nets.verification
        refs = batched_forward(V, V.preprocess([mate] + ([nonmate] if nonmate is not None else [])))
        target = CosineTarget(refs[0], refs[1] if nonmate is not None else None)
        x = V.preprocess([probe]).to(device_of(V)).requires_grad_(True)
        params = list(V.parameters())
        flags = [p.requires_grad for p in params]
        try:
            for p in params:
                p.requires_grad_(False)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(target(V(x)).sum(), x)
        finally:
            for p, f in zip(params, flags, strict=True):
                p.requires_grad_(f)
        sal = torch.relu((grad * x.detach()).sum(dim=1))[0].cpu().numpy()
        return gaussian_smooth(sal, self.sigma * min(sal.shape)), {}


@register_method("xFR-blackbox")
class XFRBlackbox(_MaskSampler):
    """Contrastive occlusion sampling (``num_masks``, ``grid``, ``p_keep``, ``batch_size``,
    ``seed``)."""

    needs = ("mate",)

    def _explain(self, probe, mate, nonmate, nets: ComparisonNets):
        V = nets.verification
        refs = batched_forward(
            V, V.preprocess([probe, mate] + ([nonmate] if nonmate is not None else []))
        )
        masks, emb = self._sample(V, probe)
        to_mate = CosineTarget(refs[1])
        score = to_mate(refs[0]) - to_mate(emb)  # drop of similarity to the mate
        if nonmate is not None:
            to_non = CosineTarget(refs[2])
            score = score - (to_non(refs[0]) - to_non(emb))
        hidden = 1.0 - masks
        sal = (score[:, None, None] * hidden).sum(0) / hidden.sum(0).clamp_min(1e-6)
        return sal, {}
