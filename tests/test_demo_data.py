"""The embedded-default demo pairs: the hard-pair rule by hand; the committed data follows it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.registry import REPO_ROOT
from utils.face_world import Nuisance
from utils.face_world.demo_training import (
    IDENTITY_HEADS,
    PAIR_FAMILY,
    WorldSplit,
    farthest_nuisances,
    most_similar_pairs,
    nuisance_distance,
    write_demo_data,
)

DATA = REPO_ROOT / "data" / "face_world"


def test_nuisance_distance_by_hand():
    a = Nuisance(
        rotation=-8.0, shift=(0.0, 0.0), scale=1.0, gain=1.0, light_strength=0.3, light_angle=0.0
    )
    b = Nuisance(
        rotation=8.0, shift=(3.0, 4.0), scale=1.0, gain=0.67, light_strength=0.3, light_angle=np.pi
    )
    # 16/16 + 5/(8 sqrt 2) + 0 + 0.33/0.33 + |(0.3, 0) - (-0.3, 0)| / 0.6
    assert nuisance_distance(a, b) == pytest.approx(1 + 5 / (8 * np.sqrt(2)) + 1 + 1)
    assert nuisance_distance(a, a) == 0.0
    c = Nuisance(scale=1.07)
    assert nuisance_distance(Nuisance(scale=0.93), c) == pytest.approx(1.0)


def test_most_similar_pairs_greedy_and_disjoint():
    labels = np.zeros((5, 30), np.int64)
    heads = list(IDENTITY_HEADS)
    labels[1, heads[:1]] = 1  # 0-1 share 27
    labels[2, heads[:3]] = 1  # 1-2 share 26, 0-2 share 25
    labels[3, heads[:1]] = 1  # 1-3 share 28 (identical), 0-3 share 27
    labels[4, heads[5:15]] = 1
    labels[:, 25] = [0, 1, 0, 1, 0]  # expression heads are ignored
    # ranked: (1,3) 28, (0,1) 27, (0,3) 27, (1,2) 26, (2,3) 26, (0,2) 25:
    # after (1,3) the first disjoint pair is (0,2)
    assert most_similar_pairs(labels, 2) == [(1, 3, 28), (0, 2, 25)]
    with pytest.raises(ValueError, match="disjoint"):
        most_similar_pairs(labels, 3)


def test_farthest_nuisances_picks_the_largest_change():
    ns = [
        Nuisance(rotation=0.0),
        Nuisance(rotation=-7.0),
        Nuisance(rotation=2.0),
        Nuisance(rotation=7.5),
    ]
    k1, k2, d = farthest_nuisances(ns)
    assert (k1, k2) == (1, 3) and d == pytest.approx(14.5 / 16)


def test_committed_pairs_follow_the_rule(tmp_path):
    """Regenerating the data gives the committed pair list (pixels aside), all from family 12."""
    counts = write_demo_data(tmp_path, WorldSplit(seed=0), num_identification=1)
    assert counts["pairs"] == 40
    assert (tmp_path / "pairs.txt").read_text() == (DATA / "pairs.txt").read_text()
    made, committed = (json.loads((d / "pairs.json").read_text()) for d in (tmp_path, DATA))
    assert made == committed and committed["identity_family"] == PAIR_FAMILY
    pairs = [
        line.split()
        for line in (DATA / "pairs.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert [int(p[2]) for p in pairs] == [1, 0] * 20
    for p in pairs:
        same = p[0].split("/")[1] == p[1].split("/")[1]
        assert same == (p[2] == "1"), p  # mates: one candidate; non-mates: two different ones
        assert all((DATA / q).is_file() for q in p[:2])
    impostor = [(p[0].split("/")[1], p[1].split("/")[1]) for p in pairs if p[2] == "0"]
    assert len({c for pair in impostor for c in pair}) == 40  # disjoint
    truth = json.loads((DATA / "attributes.json").read_text())["labels"]
    for a, b in ((p[0], p[1]) for p in pairs if p[2] == "0"):
        shared = sum(truth[a][j] == truth[b][j] for j in IDENTITY_HEADS)
        assert shared >= 22, (a, b, shared)  # random pairs of candidates share 16 of 28 on average
