"""Ground-truth check: pair construction and the scoring arithmetic, by hand."""
from __future__ import annotations

import numpy as np
import pytest

from models.attributes import is_present
from utils.demo_training import WorldSplit
from utils.ground_truth import EXPRESSION_ATTRIBUTES, PairScore, _mass_inside, make_twin_pairs, summarise


def test_twin_pairs_deterministic_and_probe_has_the_attribute():
    a = make_twin_pairs(WorldSplit(seed=3), 4, size=64)
    b = make_twin_pairs(WorldSplit(seed=3), 4, size=64)
    for p, q in zip(a, b):
        assert p.changed == q.changed
        np.testing.assert_array_equal(p.probe.image, q.probe.image)
    for p in a:
        j = p.changed
        assert j not in EXPRESSION_ATTRIBUTES
        assert is_present(j, p.probe.labels[j]), "the changed attribute must be a word of the probe"
        diff = p.probe.labels != p.counter.labels
        assert diff.sum() == 1 and diff[j], "exactly the changed attribute differs"
        outside = np.abs(p.probe.image.astype(int) - p.counter.image.astype(int)).max(axis=2)[~p.region]
        assert outside.max(initial=0) == 0, "twins differ only inside the (grown) true region"


def test_mass_inside_by_hand():
    values = np.zeros((4, 4), np.float32)
    values[0, 0], values[3, 3] = 3.0, 1.0
    region = np.zeros((4, 4), bool)
    region[0, 0] = True
    assert _mass_inside(values, region) == pytest.approx(0.75)  # same size: no resampling
    assert _mass_inside(np.zeros((4, 4)), region) == 0.0  # empty map: no mass anywhere, no NaN


def test_summarise_by_hand():
    scores = [PairScore(True, rank=1, n_present=4, joint_in_region=0.5, discriminant_in_region=0.2,
                        erased_in_region=1.0, region_share=0.1),
              PairScore(True, rank=3, n_present=2, joint_in_region=0.3, discriminant_in_region=0.4,
                        erased_in_region=0.0, region_share=0.3),
              PairScore(False, n_present=5)]
    s = summarise("x", scores, [28, 3, 0])
    assert (s.pairs, s.kept) == (3, 2)
    assert s.top1 == pytest.approx(0.5) and s.top3 == pytest.approx(1.0)
    assert s.chance_top1 == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert s.chance_top3 == pytest.approx((3 / 4 + 1.0) / 2)
    assert s.joint_in_region == pytest.approx(0.4) and s.region_share == pytest.approx(0.2)
    assert s.per_attribute == {"Bald": [0, 1], "Big Nose": [1, 1]}
