"""Ground-truth check: pair construction and the scoring arithmetic, by hand."""
from __future__ import annotations

import numpy as np
import pytest

from models.attributes import is_present
from utils.face_world.demo_training import WorldSplit
from utils.experiments.ground_truth import EXPRESSION_ATTRIBUTES, PairScore, _mass_inside, make_twin_pairs, summarise


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
    scores = [PairScore(True, rank=1, n_present=4, top1=1.0, top3=1.0, joint_in_region=0.5,
                        discriminant_in_region=0.2, erased_in_region=1.0, region_share=0.1),
              PairScore(True, rank=3, n_present=2, top1=0.0, top3=1.0, joint_in_region=0.3,
                        discriminant_in_region=0.4, erased_in_region=0.0, region_share=0.3),
              PairScore(False, n_present=5)]
    s = summarise("x", scores, [28, 3, 0])
    assert (s.pairs, s.kept) == (3, 2)
    assert s.top1 == pytest.approx(0.5) and s.top3 == pytest.approx(1.0)
    assert s.chance_top1 == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert s.chance_top3 == pytest.approx((3 / 4 + 1.0) / 2)
    assert s.joint_in_region == pytest.approx(0.4) and s.region_share == pytest.approx(0.2)
    assert s.per_attribute == {"Bald": [0.0, 1], "Big Nose": [1.0, 1]}


def test_ties_earn_chance_not_a_free_hit():
    from types import SimpleNamespace

    from utils.experiments.ground_truth import TwinPair, score_pair

    n = 30
    attr_class = np.ones(n, np.int64)  # binary heads absent ...
    attr_class[[0, 1, 2, 8]] = 0  # ... the four multi-class heads always present
    attr_class[28] = 0  # Big Nose present: 5 present attributes
    region = np.zeros((8, 8), bool)
    region[2:4, 2:4] = True
    masks = np.zeros((n, 8, 8), bool)
    d = SimpleNamespace(attr_class=attr_class, sim_other=np.full(n, 0.5), masks=masks, J=np.zeros((n, 8, 8)),
                        H_d=np.zeros((8, 8)), mask_raw=lambda j: masks[j])
    pair = TwinPair(probe=None, counter=None, changed=28, region=region)
    tied = score_pair(pair, SimpleNamespace(directions=(d,)))
    assert tied.kept and tied.top1 == pytest.approx(1 / 5) and tied.top3 == pytest.approx(3 / 5)
    assert tied.empty_masks == 1.0
    d.sim_other = np.full(n, 0.5)
    d.sim_other[28], d.sim_other[0] = 0.9, 0.95  # one attribute above j*: rank 2
    s = score_pair(pair, SimpleNamespace(directions=(d,)))
    assert (s.rank, s.top1, s.top3) == (2, 0.0, 1.0)
