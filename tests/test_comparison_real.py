"""Explainable-Framework-Comparison, real-photo part: swap-game scores, keep rule, mates, real
triplets and the flags (hand-made cases; no network is run)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parents[1] / "Explainable-Framework-Comparison"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import benchmark as B  # noqa: E402
import compare  # noqa: E402
import real_photos  # noqa: E402
from methods import create_method  # noqa: E402
from utils.experiments.part_swap_check import Photo  # noqa: E402
from utils.experiments.saliency_metrics import HIT_FRACTIONS  # noqa: E402
from utils.faces.data import PairItem  # noqa: E402


def _swap_triplet(share_rows: int = 4) -> B.Triplet:
    """20x20 canvases; the swap mask is the top ``share_rows`` rows (share_rows / 20 of the
    pixels)."""
    img = np.zeros((20, 20, 3), np.uint8)
    region = np.zeros((20, 20), bool)
    region[:share_rows] = True
    return B.Triplet(img, img, img, region, 0, "hand")


def test_map_equal_to_the_swap_mask_hits_one_at_10_percent_and_its_area_by_hand():
    t = _swap_triplet(4)  # 80 of 400 pixels: share 0.2
    sc = B.hit_scores(t.region.astype(float), t)
    assert sc["hit_at_10"] == 1.0
    assert sc["region_share"] == pytest.approx(0.2)
    # by hand: the top k = round(f * 400) pixels hold min(k, 80) region pixels
    expected = [min(round(f * 400), 80) / round(f * 400) for f in HIT_FRACTIONS]
    np.testing.assert_allclose(sc["hit_curve"], expected, rtol=0, atol=1e-12)
    area = np.trapezoid(expected, HIT_FRACTIONS) / (HIT_FRACTIONS[-1] - HIT_FRACTIONS[0])
    assert sc["hit_area"] == pytest.approx(area, abs=1e-12)
    # the inverted mask puts no top pixel in the region up to 80 % of the pixels
    assert B.hit_scores((~t.region).astype(float), t)["hit_at_10"] == 0.0


def test_random_map_scores_the_region_share_on_average():
    t = _swap_triplet(3)  # share 0.15
    rand = create_method("random", seed=3)
    hits = np.array(
        [B.hit_scores(rand.explain(t.probe, None, None, None), t)["hit_at_10"] for _ in range(400)]
    )
    sem = hits.std(ddof=1) / np.sqrt(hits.size)
    assert abs(hits.mean() - 0.15) < 4 * sem
    assert sem < 0.01  # the check above is not vacuous


def test_hit_scores_keys_in_the_committed_records_order():
    # game_scores = hit_scores + flip keys, re-ordered to the committed records
    keys = list(B.hit_scores(np.eye(20), _swap_triplet()).keys())
    assert keys == ["hit_curve", "hit_area", "hit_at_10", "region_share"]


@pytest.mark.parametrize(
    ("s_mate", "s_swap", "expected"),
    [
        (0.6, 0.55, {"mate": True, "xfr": False, "none": True}),  # swap still accepted
        (0.6, 0.30, {"mate": True, "xfr": True, "none": True}),  # swap rejected: xFR keeps it
        (0.4, 0.30, {"mate": False, "xfr": False, "none": True}),  # mate rejected
        (0.5, 0.50, {"mate": True, "xfr": False, "none": True}),  # accept when >= threshold
    ],
)
def test_keep_rule_by_hand(s_mate, s_swap, expected):
    for rule, keep in expected.items():
        assert real_photos.keep_swap(s_mate, s_swap, 0.5, rule) is keep, rule
    with pytest.raises(ValueError, match="keep rule"):
        real_photos.keep_swap(s_mate, s_swap, 0.5, "both")


def test_mate_is_the_next_photo_of_the_identity_cyclic_and_none_for_a_single_photo():
    ids = ["a", "a", "b", "c", "c", "c"]
    photos = [Photo(i, f"{i}/{k}.jpg") for k, i in enumerate(ids)]
    assert real_photos.mate_of(photos) == {0: 1, 1: 0, 3: 4, 4: 5, 5: 3}


def test_real_triplets_skip_unreadable_photos_and_leave_out_the_explained_pair():
    pairs = [
        PairItem(0, 1, "a/1", "a/2", 1, None),
        PairItem(1, 2, "a/1", "b/1", 0, None),
        PairItem(2, 3, "c/1", "c/2", 1, None),
        PairItem(3, 4, "c/1", "bad/1", 0, None),
    ]

    def read(path):
        if path.startswith("bad"):
            raise ValueError(f"no face in {path}")
        return np.full((300, 10, 3), 7, np.uint8)

    out = B.real_triplets(pairs, read, 5, seed=0, max_side=None)
    assert [t.name for t in out] == ["a/1|a/2|b/1"]
    assert out[0].leave_out == ("a/1", "b/1")
    assert out[0].probe.shape == (300, 10, 3)  # max_side None: as read
    assert B.real_triplets(pairs, read, 5, seed=0)[0].probe.shape == (256, 9, 3)


def test_flags_real_nets_and_swaps(capsys):
    args = compare.parse_args(["--output-dir", "/tmp/x"])
    assert (args.real_nets, args.real_swaps, args.real_swap_keep) == ("sface", 30, "mate")
    assert compare.parse_args(["--real-nets", "demo", "--real-swaps", "0"]).real_nets == "demo"
    bad = [
        ["--real-nets", "demo"],  # swaps need real nets
        ["--real-nets", "arcface"],
        ["--real-swaps", "-1"],
        ["--real-swap-keep", "both"],
        ["--real-num-masks", "0"],
        ["--methods", "xFR"],
    ]
    for argv in bad:
        with pytest.raises(SystemExit) as err:
            compare.parse_args(argv)
        assert err.value.code == 2, argv
    assert "--real-swaps needs real networks" in capsys.readouterr().err


def test_threshold_uses_only_pairs_of_the_tuning_identities():
    from types import SimpleNamespace

    from utils.experiments.part_swap import identity_split
    from utils.experiments.saliency_metrics import eer_threshold

    rng = np.random.default_rng(0)
    names = [f"id{k}" for k in range(6)]
    tuning, held = identity_split(names)
    ids, emb = [], []
    for k, name in enumerate(names):
        for _ in range(3):
            ids.append(name)
            if name in held:  # held-out photos: all alike, they would move the threshold
                emb.append([1.0, 0.0, 0.0])
            else:
                emb.append(np.eye(3)[k % 3] * 5 + rng.normal(0, 1, 3))
    emb = np.asarray(emb, np.float32)
    R = SimpleNamespace(photos=SimpleNamespace(identities=ids, embeddings=emb))
    # by hand: every pair (i < j) of tuning photos, cosine of the raw embeddings
    rows = [k for k, i in enumerate(ids) if i in tuning]
    labels, sims = [], []
    for a, i in enumerate(rows):
        for j in rows[a + 1 :]:
            u, v = emb[i].astype(float), emb[j].astype(float)
            labels.append(int(ids[i] == ids[j]))
            sims.append(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    thr, eer = eer_threshold(np.array(labels), np.array(sims))
    got = real_photos.tuning_threshold(R)
    assert got["threshold"] == pytest.approx(thr, abs=1e-9)
    assert got["eer"] == pytest.approx(eer, abs=1e-12)
    assert f"EER on {len(labels)} pairs of the {len(tuning)} tuning" in got["source"]
