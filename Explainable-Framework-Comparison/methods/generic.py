"""Generic single-pair baselines: Grad-CAM of the cosine similarity, RISE on the similarity, random.

* ``GradCAM-sim``: Grad-CAM (Selvaraju et al. 2017) at the verification net's
  last conv (``V.target_layer``) of the target cos(V(probe), V(mate)), through
  :class:`utils.explain.cam.CAMExplainer` with a :class:`methods.base.CosineTarget`.
* ``RISE-sim``: RISE (Petsiuk et al. 2018, Eq. 6) with the masked probe's
  cosine to the mate as the score: map = sum_i s_i M_i / sum_i M_i (the
  per-pixel mean over the masks that keep it; RISE's 1/(N p) up to sampling
  noise). A mask multiplies the *preprocessed* input, so hidden pixels become
  the network's normalisation mean (zero input).
* ``random``: a seeded uniform-noise map: the empirical chance level.
"""

from __future__ import annotations

import numpy as np
import torch

from utils.explain.cam import CAMExplainer

from .base import ComparisonNets, CosineTarget, Explainer, batched_forward, rise_masks
from .registry import register_method


@register_method("GradCAM-sim")
class GradCAMSimilarity(Explainer):
    """Grad-CAM of cos(V(probe), V(mate)) at ``layer`` (default ``V.target_layer``); ignores the
    non-mate."""

    needs = ("mate",)

    def __init__(self, layer: str | None = None) -> None:
        self.layer = layer

    def _explain(self, probe, mate, nonmate, nets: ComparisonNets):
        V = nets.verification
        x = V.preprocess([probe, mate])
        ref = batched_forward(V, x[1:])[0]
        with CAMExplainer(V, self.layer or V.target_layer, "GradCAM") as cam:
            res = cam(x[:1], [[CosineTarget(ref)]])
        return res.maps[0][0], {}


class _MaskSampler(Explainer):
    """Shared RISE-style sampling: ``num_masks`` masks, ``grid`` cells, ``p_keep``, seeded,
    batched."""

    def __init__(
        self,
        num_masks: int = 500,
        grid: int = 8,
        p_keep: float = 0.5,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        if int(num_masks) < 1 or int(batch_size) < 1:
            raise ValueError(
                f"num_masks and batch_size must be >= 1, got {num_masks}, {batch_size}"
            )
        self.num_masks, self.grid, self.p_keep = int(num_masks), int(grid), float(p_keep)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.calls = 0

    def _sample(self, V, probe) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks (n, H, W) (1 = keep) and the embeddings (n, D) of the masked probes."""
        rng = np.random.default_rng([self.seed, self.calls])
        self.calls += 1
        x = V.preprocess([probe])
        masks = rise_masks(self.num_masks, tuple(x.shape[-2:]), self.grid, self.p_keep, rng)
        emb = []
        for start in range(0, self.num_masks, self.batch_size):
            emb.append(
                batched_forward(
                    V, x * masks[start : start + self.batch_size, None], self.batch_size
                )
            )
        return masks, torch.cat(emb)


@register_method("RISE-sim")
class RISESimilarity(_MaskSampler):
    """RISE with score cos(V(mask * probe), V(mate)); ignores the non-mate."""

    needs = ("mate",)

    def _explain(self, probe, mate, nonmate, nets: ComparisonNets):
        V = nets.verification
        masks, emb = self._sample(V, probe)
        score = CosineTarget(batched_forward(V, V.preprocess([mate]))[0])(emb)  # (n,)
        sal = (score[:, None, None] * masks).sum(0) / masks.sum(0).clamp_min(1e-6)
        return sal, {}


@register_method("random")
class RandomMap(Explainer):
    """Uniform noise, seeded per call: the chance level of every measurement."""

    nets_needed = ()

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.calls = int(seed), 0

    def _explain(self, probe, mate, nonmate, nets):
        rng = np.random.default_rng([self.seed, 7, self.calls])
        self.calls += 1
        return rng.random(probe.shape[:2]), {}
