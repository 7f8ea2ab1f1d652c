"""Training losses checked against hand-computed values and a second formulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma, gammaln

from utils.face_world.losses import ArcFaceHead, edl_loss, edl_uncertainty


def test_edl_uncertainty_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    # row 0: evidence (2, 0, 0.5) * 100 -> alpha (201, 1, 51), S = 253, u = 3 / 253
    # row 1: no evidence -> alpha (1, 1, 1), u = 3 / 3 = 1
    u = edl_uncertainty(logits, evidence_scale=100.0)
    torch.testing.assert_close(u, torch.tensor([3 / 253, 1.0]), rtol=0, atol=1e-7)


def test_arcface_margin_only_on_the_label():
    head = ArcFaceHead(2, 3, scale=10.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]))
    emb = torch.tensor([[math.cos(0.3), math.sin(0.3)]]) * 5  # angle 0.3 rad to class 0
    logits = head(emb, torch.tensor([0]))
    expected = [
        10 * math.cos(0.3 + 0.5),
        10 * math.cos(math.pi / 2 - 0.3),
        10 * math.cos(math.pi - 0.3),
    ]
    torch.testing.assert_close(logits, torch.tensor([expected]), rtol=0, atol=1e-5)


def test_arcface_fallback_keeps_logit_monotonic():
    head = ArcFaceHead(2, 2, scale=1.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    theta = math.pi - 0.2  # theta + m > pi: insightface's cos(theta) - m sin(m) branch
    emb = torch.tensor([[math.cos(theta), math.sin(theta)]])
    logit = head(emb, torch.tensor([0]))[0, 0].detach()
    assert float(logit) == pytest.approx(math.cos(theta) - math.sin(math.pi - 0.5) * 0.5, abs=1e-5)


def _edl_numpy(logits: np.ndarray, labels: np.ndarray, kl_weight: float) -> float:
    """Sensoy et al. 2018 Eq. 4 + KL term, written independently with scipy."""
    out = []
    for z, y in zip(logits, labels, strict=True):
        alpha = np.maximum(z, 0) + 1
        k = len(alpha)
        s = alpha.sum()
        nll = digamma(s) - digamma(alpha[y])
        at = alpha.copy()
        at[y] = 1.0
        st = at.sum()
        kl = (
            gammaln(st)
            - gammaln(k)
            - gammaln(at).sum()
            + ((at - 1) * (digamma(at) - digamma(st))).sum()
        )
        out.append(nll + kl_weight * kl)
    return float(np.mean(out))


@pytest.mark.parametrize("kl_weight", [0.0, 0.3, 1.0])
def test_edl_loss_matches_independent_formula(kl_weight):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)) * 3
    labels = rng.integers(0, 4, 5)
    got = edl_loss(torch.from_numpy(logits), torch.from_numpy(labels), kl_weight)
    assert float(got) == pytest.approx(_edl_numpy(logits, labels, kl_weight), rel=1e-9, abs=1e-9)


def test_edl_kl_vanishes_without_misleading_evidence():
    # evidence only on the label: alpha_tilde = (1, ..., 1) and the KL term is 0
    logits = torch.tensor([[0.0, 4.0, -2.0]])
    labels = torch.tensor([1])
    assert float(edl_loss(logits, labels, 1.0)) == pytest.approx(
        float(edl_loss(logits, labels, 0.0)), abs=1e-12
    )
