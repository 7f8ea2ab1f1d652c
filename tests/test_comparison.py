"""Explainable-Framework-Comparison: method contracts on tiny nets, scoring on hand-made cases."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parents[1] / "Explainable-Framework-Comparison"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from methods import ComparisonNets, CosineTarget, create_method, list_methods  # noqa: E402
from methods.xcos import XCosAttention, load_head, save_head, xcos  # noqa: E402
from models import get_network  # noqa: E402
from utils.experiments.saliency_metrics import (  # noqa: E402
    curve_area,
    eer_threshold,
    first_crossing,
    hit_curve,
    kfold_accuracy,
    pixel_counts,
    pixel_order,
    replace_top,
    trapezoid_auc,
)

SMALL = {"input_size": 32}


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    V = get_network("FaceWorld-verification", weights=False, **SMALL)
    R = get_network("FaceWorld-recognition", weights=False, num_classes=5, **SMALL)
    A = get_network("FaceWorld-attribute", weights=False, **SMALL)
    head = XCosAttention(V.get_submodule("bn2").num_features, hidden=8).eval()
    return ComparisonNets(V, R, A, head)


@pytest.fixture(scope="module")
def triplet():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)  # non-square, not the nets' input size
    mate = np.clip(base.astype(int) + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
    non = base.copy()
    non[5:20, 10:30] = 255 - non[5:20, 10:30]
    return base, mate, non


@pytest.mark.parametrize(
    "name",
    [
        "Sim2Word-top1",
        "Sim2Word-union",
        "xCos",
        "xFR-whitebox",
        "xFR-blackbox",
        "GradCAM-sim",
        "RISE-sim",
        "random",
    ],
)
def test_every_method_returns_a_finite_unit_map_of_probe_size(name, nets, triplet):
    kwargs = {"num_masks": 16, "batch_size": 8} if name in ("RISE-sim", "xFR-blackbox") else {}
    probe, mate, non = triplet
    before = probe.copy()
    ex = create_method(name, **kwargs).explain_full(probe, mate, non, nets)
    sal = ex.saliency
    assert sal.shape == probe.shape[:2], f"{name}: map {sal.shape} vs probe {probe.shape[:2]}"
    assert sal.dtype == np.float32 and np.all(np.isfinite(sal)), (
        f"{name}: non-finite or wrong dtype {sal.dtype}"
    )
    assert sal.min() >= 0.0 and sal.max() <= 1.0, f"{name}: range [{sal.min()}, {sal.max()}]"
    assert np.array_equal(probe, before), f"{name} modified its input"
    if name.startswith("Sim2Word"):
        assert isinstance(ex.info["word"], str) and ex.info["word"]


def test_registry_lists_all_and_rejects_unknown_names():
    assert {
        "xCos",
        "xFR-whitebox",
        "xFR-blackbox",
        "GradCAM-sim",
        "RISE-sim",
        "Sim2Word-top1",
        "Sim2Word-union",
        "random",
    } <= set(list_methods())
    with pytest.raises(ValueError, match="valid: .*xCos"):
        create_method("xcos-typo")


def test_missing_inputs_are_refused(nets, triplet):
    probe, mate, non = triplet
    with pytest.raises(ValueError, match="needs a mate"):
        create_method("GradCAM-sim").explain(probe, None, non, nets)
    with pytest.raises(ValueError, match="needs nets.xcos_head"):
        create_method("xCos").explain(probe, mate, non, ComparisonNets(nets.verification))
    with pytest.raises(ValueError, match="BGR uint8"):
        create_method("random").explain(probe.astype(np.float32), mate, non, nets)


def test_mask_methods_are_seeded(nets, triplet):
    probe, mate, non = triplet
    a = create_method("xFR-blackbox", num_masks=12, seed=3).explain(probe, mate, non, nets)
    b = create_method("xFR-blackbox", num_masks=12, seed=3).explain(probe, mate, non, nets)
    c = create_method("xFR-blackbox", num_masks=12, seed=4).explain(probe, mate, non, nets)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_cosine_target_batched_unbatched_and_contrastive():
    torch.manual_seed(1)
    ref, other, out = torch.randn(6), torch.randn(6), torch.randn(3, 6)
    expected = F.cosine_similarity(out, ref[None], dim=1) - F.cosine_similarity(
        out, other[None], dim=1
    )
    t = CosineTarget(ref, minus=other)
    assert torch.allclose(t(out), expected, atol=1e-6)
    assert torch.allclose(t(out[0]), expected[0], atol=1e-6)
    assert t(out.double()).dtype == torch.float64


def test_xcos_identical_grids_give_one_and_attention_sums_to_one(tmp_path):
    torch.manual_seed(2)
    head = XCosAttention(8, hidden=4).eval()
    g1, g2 = torch.randn(2, 8, 3, 3), torch.randn(2, 8, 3, 3)
    score, patch, att = xcos(g1, g1, head)
    assert torch.allclose(score, torch.ones(2), atol=1e-5)
    _, patch, att = xcos(g1, g2, head)
    assert torch.allclose(att.sum(dim=(1, 2)), torch.ones(2), atol=1e-6)
    assert torch.allclose(
        patch[0, 1, 2], F.cosine_similarity(g1[0, :, 1, 2], g2[0, :, 1, 2], dim=0), atol=1e-6
    )
    assert torch.allclose(head(g1, g2), head(g2, g1), atol=1e-6), (
        "attention must be symmetric in the pair"
    )
    save_head(head, tmp_path / "h.pth")
    assert torch.allclose(load_head(tmp_path / "h.pth")(g1, g2), head(g1, g2))


# ---- scoring functions on hand-made cases ----


def _region():
    r = np.zeros((10, 10), bool)
    r[2:5, 3:8] = True  # 15 pixels = 15 % of the image
    return r


def test_indicator_map_hits_everything_up_to_region_size_and_reversed_map_nothing():
    r = _region()
    fr = np.array([0.01, 0.05, 0.10, 0.15, 0.20, 0.50])
    assert np.allclose(hit_curve(r.astype(float), r, fr)[:4], 1.0)
    # all 15 found, then diluted
    assert np.allclose(hit_curve(r.astype(float), r, fr)[4:], [15 / 20, 15 / 50])
    assert np.allclose(hit_curve(1.0 - r, r, fr), 0.0)  # 85 outside pixels come first; 50 % < 85 %


def test_constant_map_scores_the_region_share_and_ties_split_in_expectation():
    r = _region()
    assert np.allclose(hit_curve(np.zeros((10, 10)), r, np.array([0.01, 0.3, 1.0])), 0.15)
    # by hand: 4 pixels valued 2 (1 in the region), then 4 valued 1 (2 in the region),
    # the rest 0 (none)
    s = np.zeros((4, 4))
    reg = np.zeros((4, 4), bool)
    s.flat[[0, 1, 2, 3]] = 2.0
    s.flat[[4, 5, 6, 7]] = 1.0
    reg.flat[[0, 4, 5]] = True
    # k = 2: half of the top group -> 1 * 2/4 hits; k = 6: 1 + 2 * (2/4) hits; k = 8: 3 hits.
    got = hit_curve(s, reg, np.array([2, 6, 8]) / 16)
    assert np.allclose(got, [0.5 / 2, 2.0 / 6, 3.0 / 8])


def test_trapezoid_auc_and_curve_area_by_hand():
    x = np.array([0.0, 1 / 3, 2 / 3, 1.0])
    y = np.array([0.9, 0.4, 0.3, 0.1])
    # (1/3) * ((0.9 + 0.4) / 2 + (0.4 + 0.3) / 2 + (0.3 + 0.1) / 2) = (1/3) * 1.2 = 0.4
    assert trapezoid_auc(x, y) == pytest.approx(0.4)
    assert curve_area(np.array([0.01, 0.5]), np.array([0.2, 0.2])) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        trapezoid_auc(x, y[:3])


def test_replace_top_and_pixel_order():
    sal = np.array([[0.1, 0.9], [0.5, 0.5]])
    base = np.zeros((2, 2, 1), np.uint8)
    src = np.full((2, 2, 1), 7, np.uint8)
    order = pixel_order(sal)  # 0.9 first, then the tie 0.5/0.5 by index, then 0.1
    assert order.tolist() == [1, 2, 3, 0]
    imgs = replace_top(base, src, order, np.array([0, 1, 3, 4]))
    assert imgs[:, :, :, 0].reshape(4, 4).tolist() == [
        [0, 0, 0, 0],
        [0, 7, 0, 0],
        [0, 7, 7, 7],
        [7, 7, 7, 7],
    ]
    tie_orders = {tuple(pixel_order(sal, np.random.default_rng(k))[1:3]) for k in range(20)}
    assert tie_orders == {(2, 3), (3, 2)}, "random tie-breaking must permute only the tied pixels"
    assert pixel_counts(4, np.array([0.0, 0.5, 1.0]), at_least_one=False).tolist() == [0, 2, 4]


def test_first_crossing_eer_and_kfold_by_hand():
    fr = np.array([0.0, 0.25, 0.5, 1.0])
    assert first_crossing(fr, np.array([0.1, 0.2, 0.6, 1.0]), 0.5) == 0.5
    assert first_crossing(fr, np.array([0.9, 0.8, 0.6, 0.6]), 0.5, above=False) is None
    labels = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.5, 0.3, 0.1])
    # t = 0.5: FAR = 1/3 (0.5 accepted), FRR = 1/3 (0.4 rejected) -> EER 1/3;
    # no threshold balances better
    thr, eer = eer_threshold(labels, scores)
    assert thr == pytest.approx(0.5) and eer == pytest.approx(1 / 3)
    acc, std = kfold_accuracy(
        np.array([1, 1, 1, 1, 0, 0, 0, 0]),
        np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1]),
        folds=4,
    )
    assert acc == 1.0 and std == 0.0
