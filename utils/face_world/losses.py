"""Training losses of the demo networks: ArcFace margin and evidential (EDL).

These train the small face-world members of the paper's network families
(``train_face_world.py``); the paper's own weights were trained with the same
losses at scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ArcFaceHead(nn.Module):
    """Additive angular margin softmax head (Deng et al., CVPR 2019, Eq. 3).

    ``logit_y = s * cos(theta_y + m)`` for the label, ``s * cos(theta_j)``
    otherwise, with ``theta_j`` the angle between the L2-normalised embedding
    and the L2-normalised class centre ``j``. When ``theta_y + m > pi`` the
    usual "easy margin" fallback of insightface (``cos(theta) - m sin(m)``)
    keeps the logit monotonic.

    Args:
        embedding_size: D.
        num_classes: C.
        scale: s.
        margin: m in radians.
    """

    def __init__(
        self, embedding_size: int, num_classes: int, scale: float = 32.0, margin: float = 0.3
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)
        self.scale, self.margin = scale, margin
        self._th = math.cos(math.pi - margin)
        self._mm = math.sin(math.pi - margin) * margin

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings -> (N, C) cosines to the class centres."""
        return F.linear(F.normalize(embeddings), F.normalize(self.weight))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Margin logits (N, C) for the cross-entropy loss."""
        cos = self.cosine(embeddings).clamp(-1 + 1e-7, 1 - 1e-7)
        sin = torch.sqrt(1.0 - cos * cos)
        cos_m = cos * math.cos(self.margin) - sin * math.sin(self.margin)
        cos_m = torch.where(cos > self._th, cos_m, cos - self._mm)
        onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return self.scale * (onehot * cos_m + (1 - onehot) * cos)


def edl_uncertainty(logits: torch.Tensor, evidence_scale: float = 1.0) -> torch.Tensor:
    """Evidential uncertainty (METHOD.md section 6, step 3).

    ``e = ReLU(logits) * evidence_scale``, ``alpha = e + 1``,
    ``u = K / sum_k alpha_k``.

    Args:
        logits: (N, K).
        evidence_scale: the evidence multiplier (the paper's scripts use 100).

    Returns:
        (N,) uncertainties in (0, 1].
    """
    alpha = F.relu(logits) * evidence_scale + 1.0
    return logits.shape[-1] / alpha.sum(dim=-1)


def edl_loss(logits: torch.Tensor, labels: torch.Tensor, kl_weight: float) -> torch.Tensor:
    """Evidential deep learning loss (Sensoy et al., NeurIPS 2018, Eq. 4 and 5).

    The expected cross-entropy under Dir(alpha), ``sum_k y_k (digamma(S) -
    digamma(alpha_k))``, plus ``kl_weight`` times KL(Dir(alpha_tilde) ||
    Dir(1)) with ``alpha_tilde = y + (1 - y) * alpha`` (the misleading
    evidence removed). ``kl_weight`` is annealed from 0 to 1 by the caller.

    Args:
        logits: (N, K); evidence = ReLU(logits).
        labels: (N,) class ids.
        kl_weight: annealing coefficient.

    Returns:
        Scalar mean loss.
    """
    k = logits.shape[1]
    alpha = F.relu(logits) + 1.0
    y = F.one_hot(labels, k).to(alpha.dtype)
    strength = alpha.sum(dim=1, keepdim=True)
    nll = (y * (torch.digamma(strength) - torch.digamma(alpha))).sum(dim=1)
    alpha_t = y + (1 - y) * alpha
    s_t = alpha_t.sum(dim=1)
    kl = (
        torch.lgamma(s_t)
        - math.lgamma(k)
        - torch.lgamma(alpha_t).sum(dim=1)
        + ((alpha_t - 1) * (torch.digamma(alpha_t) - torch.digamma(s_t)[:, None])).sum(dim=1)
    )
    return (nll + kl_weight * kl).mean()
