"""Twin check: the twin sets, the scoring arithmetic and the reference rows, by hand."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from models.attributes import is_present
from utils.experiments.ground_truth import (
    EXPRESSION_ATTRIBUTES,
    TWIN_SETS,
    PairScore,
    Row,
    TwinPair,
    default_rows,
    make_twin_pairs,
    mass_inside,
    score_row,
    summarise,
    tie_aware_hits,
)
from utils.explain.ranking import RankingConfig


def test_twin_sets_deterministic_disjoint_and_probe_has_the_attribute():
    a = make_twin_pairs(3, "tuning", seed=3, size=64)
    b = make_twin_pairs(3, "tuning", seed=3, size=64)
    c = make_twin_pairs(3, "reported", seed=3, size=64)
    for p, q, r in zip(a, b, c, strict=True):
        assert p.changed == q.changed
        np.testing.assert_array_equal(p.probe.image, q.probe.image)
        assert p.probe.identity != r.probe.identity, (
            "the tuning and reported sets share no identity"
        )
    for p in a + c:
        j = p.changed
        assert j not in EXPRESSION_ATTRIBUTES
        assert is_present(j, p.probe.labels[j]), "the changed attribute must be a word of the probe"
        diff = p.probe.labels != p.counter.labels
        assert diff.sum() == 1 and diff[j], "exactly the changed attribute differs"
        outside = np.abs(p.probe.image.astype(int) - p.counter.image.astype(int)).max(axis=2)[
            ~p.region
        ]
        assert outside.max(initial=0) == 0, "twins differ only inside the (grown) true region"
        np.testing.assert_array_equal(p.regions[j], p.region)
    assert set(TWIN_SETS) == {"tuning", "reported"} and len(set(TWIN_SETS.values())) == 2
    with pytest.raises(ValueError, match="unknown twin set"):
        make_twin_pairs(1, "test")


def test_twin_set_streams_are_not_training_streams():
    # demo training draws identities from [seed, 1 | 2 | 10, i] and nuisances from [seed, 3, ...]
    assert not set(TWIN_SETS.values()) & {1, 2, 3, 4, 5, 10}


def test_mass_inside_by_hand():
    values = np.zeros((4, 4), np.float32)
    values[0, 0], values[3, 3] = 3.0, 1.0
    region = np.zeros((4, 4), bool)
    region[0, 0] = True
    assert mass_inside(values, region) == pytest.approx(0.75)  # same size: no resampling
    assert mass_inside(np.zeros((4, 4)), region) == 0.0  # empty map: no mass anywhere, no NaN


def test_tie_aware_hits_by_hand():
    assert tie_aware_hits({1: (0.0,), 2: (1.0,), 3: (2.0,)}, 1) == (1.0, 1.0, 1)
    assert tie_aware_hits({1: (0.0,), 2: (1.0,), 3: (2.0,), 4: (3.0,)}, 4) == (0.0, 0.0, 4)
    # five words tied: 1/5 to be first, 3/5 to be in the first three
    t1, t3, rank = tie_aware_hits({j: (0.5,) for j in range(5)}, 2)
    assert (t1, t3, rank) == (pytest.approx(0.2), pytest.approx(0.6), 1)
    # one word ahead, target tied with two others: never first; in the top 3 with prob 2/3
    t1, t3, rank = tie_aware_hits({0: (0.0,), 1: (1.0,), 2: (1.0,), 3: (1.0,)}, 2)
    assert (t1, t3, rank) == (0.0, pytest.approx(2 / 3), 2)


def test_summarise_by_hand():
    scores = [
        PairScore(True, n_present=4, top1=1.0, top3=1.0, rank=1, jmass=0.5, region_share=0.1),
        PairScore(True, n_present=2, top1=0.0, top3=1.0, rank=3, jmass=0.3, region_share=0.3),
        PairScore(False, n_present=5),
    ]
    s = summarise("x", scores, [28, 3, 0])
    assert (s.pairs_total, s.pairs) == (3, 2)
    assert s.top1 == pytest.approx(0.5) and s.top3 == pytest.approx(1.0)
    assert s.chance_top1 == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert s.chance_top3 == pytest.approx((3 / 4 + 1.0) / 2)
    assert s.jmass == pytest.approx(0.4) and s.region_share == pytest.approx(0.2)
    assert s.per_attribute == {"Bald": [0.0, 1], "Big Nose": [1.0, 1]}
    row = s.as_row()
    assert {"mode", "top1", "top3", "chance_top1", "chance_top3", "jmass", "pairs"} <= set(row)
    json.dumps(row, allow_nan=False)
    assert summarise("y", scores[:2], [28, 3]).as_row()["jmass"] == pytest.approx(0.4)
    no_maps = summarise("z", [PairScore(True, n_present=2, top1=1.0, top3=1.0)], [0])
    assert no_maps.jmass is None


def _fake_pair(sim_other, drop_to):
    """A probe with 5 present words (heads 0, 1, 2, 8, 28) against a counter; j* = 28 (Big Nose)."""
    n = 30
    attr_class = np.ones(n, np.int64)
    attr_class[[0, 1, 2, 8, 28]] = 0
    probs1 = [np.array([0.9, 0.1]) if k != 1 else np.array([0.8, 0.1, 0.1]) for k in range(n)]
    probs1[2] = np.array([0.8, 0.1, 0.1])
    probs1[8] = np.array([0.8, 0.05, 0.05, 0.05, 0.05])
    probs2 = [p.copy() for p in probs1]
    for j, p0 in drop_to.items():  # the counter's probability of the probe's class
        rest = (1 - p0) / (len(probs2[j]) - 1)
        probs2[j] = np.array([p0] + [rest] * (len(probs2[j]) - 1))
    region = np.zeros((8, 8), bool)
    region[2:4, 2:4] = True
    masks = np.zeros((n, 8, 8), bool)
    d1 = SimpleNamespace(
        attr_class=attr_class,
        sim_other=np.asarray(sim_other, float),
        masks=masks,
        J=np.zeros((n, 8, 8)),
        H_d=np.zeros((8, 8)),
        mask_raw=lambda j: masks[j],
        attr_probs=probs1,
    )
    d2 = SimpleNamespace(
        attr_class=attr_class,
        attr_probs=probs2,
        sim_other=np.asarray(sim_other, float),
        masks=masks,
        mask_raw=lambda j: masks[j],
    )
    blank = SimpleNamespace(image=None)
    pair = TwinPair(probe=blank, counter=blank, changed=28, region=region)
    return pair, SimpleNamespace(directions=(d1, d2))


def test_reference_rows_by_hand():
    rng = np.random.default_rng(0)
    pair, ex = _fake_pair(np.full(30, 0.5), {28: 0.1, 0: 0.3, 2: 0.85})
    # attribute-only: drops 0.8 (Big Nose), 0.6 (Gender), 0 (Age, Hair color), -0.05 (Race):
    # j* first
    s = score_row(Row("a", "attribute-only", None), pair, ex, None, rng)
    assert (s.kept, s.top1, s.top3, s.rank, s.n_present) == (True, 1.0, 1.0, 1, 5)
    # filter-random: two words differ (drop >= 0.5): j* is first with probability 1/2 on average
    hits = [
        score_row(
            Row("f", "filter-random", None, RankingConfig(contrast_drop=0.5)), pair, ex, None, rng
        ).top1
        for _ in range(400)
    ]
    assert set(hits) == {0.0, 1.0} and np.mean(hits) == pytest.approx(0.5, abs=0.08)
    assert all(
        score_row(Row("f", "filter-random", None), pair, ex, None, rng).top3 == 1.0
        for _ in range(20)
    )
    # random: 1/5 on average
    hits = [score_row(Row("r", "random", None), pair, ex, None, rng).top1 for _ in range(1000)]
    assert np.mean(hits) == pytest.approx(0.2, abs=0.04)
    # not scored when A does not predict j* present
    ex.directions[0].attr_class[28] = 1
    assert not score_row(Row("a", "attribute-only", None), pair, ex, None, rng).kept


def test_paper_row_ties_earn_chance_not_a_free_hit():
    pair, ex = _fake_pair(np.full(30, 0.5), {})
    ex.similarity, ex.both_masked = 0.5, np.full(30, 0.5)
    row = Row("paper", "ranking", "classes", RankingConfig("paper"))
    tied = score_row(row, pair, ex, None, np.random.default_rng(0))
    assert tied.kept and tied.top1 == pytest.approx(1 / 5) and tied.top3 == pytest.approx(3 / 5)
    assert tied.unchanged == 1.0 and tied.jmass == 0.0
    sims = np.full(30, 0.5)
    sims[28], sims[0] = 0.9, 0.95  # one attribute above j*: rank 2
    pair, ex = _fake_pair(sims, {})
    ex.similarity, ex.both_masked = 0.4, np.full(30, 0.4)
    s = score_row(row, pair, ex, None, np.random.default_rng(0))
    assert (s.rank, s.top1, s.top3) == (2, 0.0, 1.0)


def test_default_rows_order():
    rows = default_rows()
    assert (rows[0].name, rows[0].kind, rows[0].discriminant) == ("paper", "ranking", "classes")
    names = [r.name for r in rows]
    assert names[:4] == ["paper", "both-shared", "contrast", "contrast, V order"]
    assert "contrast (V discriminant)" in names and "contrast, V order (V discriminant)" in names
    assert names[-6:] == [
        "random",
        "filter-random",
        "attribute-only (not Sim2Word)",
        "oracle paper",
        "oracle both-shared",
        "oracle contrast, V order",
    ]
    assert [r.regions for r in rows[-6:]] == ["none", "none", "none", "true", "true", "true"]
    assert rows[3].ranking.contrast_order == "gain" and rows[2].ranking.contrast_order == "product"
    assert len(default_rows(modes=("paper",), discriminants=("classes",), references=False)) == 1


def test_ground_truth_check_cli_writes_the_json_table(tmp_path):
    import importlib

    script = importlib.import_module("ground_truth_check")
    for action in script.build_parser()._actions:
        assert action.help and len(action.help) > 10, f"{action.option_strings} has no help"
    out = tmp_path / "table.json"
    code = script.main(
        [
            "--twin-set",
            "tuning",
            "--num-pairs",
            "2",
            "--rankings",
            "paper",
            "contrast",
            "--discriminants",
            "classes",
            "--output",
            str(tmp_path),
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    rows = json.loads(out.read_text())
    assert [r["mode"] for r in rows][:3] == ["paper", "contrast", "contrast, V order"]
    assert rows[-1]["mode"] == "oracle contrast, V order"
    for r in rows:
        assert {"mode", "top1", "top3", "chance_top1", "chance_top3", "jmass", "pairs"} <= set(r)
        assert 0 <= r["top1"] <= r["top3"] <= 1 and r["pairs"] <= 2
    assert rows[0]["jmass"] is not None and rows[-4]["jmass"] is None  # attribute-only uses no map
    lines = (tmp_path / "ground_truth.md").read_text().splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[0][:2] == ["mode", "regions"] and [c[0] for c in cells[2:]] == [
        r["mode"] for r in rows
    ]
