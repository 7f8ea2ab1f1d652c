"""Word ranking modes and tie rules on a hand-computable pair (utils/explain/ranking.py).

Images are 4x4, only the blue channel matters. V is linear: its embedding is
(sum of blue over columns 0-1, sum of blue over columns 2-3).

* I1: blue 10 everywhere -> V(I1) = (80, 80);
* I2: blue 10 on the left half, 0 on the right -> V(I2) = (80, 0);
* s = cos(V(I1), V(I2)) = 1/sqrt(2).

Six binary heads, all present in both images, with these regions (rows, cols):

| head | image 1 region | image 2 region | shared region (union) |
|---|---|---|---|
| 0 | top-right quadrant (0-1, 2-3) | bottom-right quadrant (2-3, 2-3) | right half |
| 1 | left half | left half | left half |
| 2 | empty | empty | empty |
| 3 | top-right quadrant | empty | top-right quadrant |
| 4 | right half | empty | right half |
| 5 | right half + bottom-left quadrant | empty | the same |

Black fill. Erasing the right half of both images makes them equal: cos 1.
Erasing the top-right quadrant: V(E1) = (80, 40), V(E2) = (80, 0): cos 2/sqrt(5).
Erasing the left half: V(E2) = (0, 0): cos 0 (zero-norm guard). Right half +
bottom-left quadrant in both: (40, 0) and (40, 0): cos 1, area 3/4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from models.attributes import Vocabulary
from models.preprocess import Preprocess
from utils.explain.erasing import Eraser
from utils.explain.ranking import (
    RankingConfig,
    WordRank,
    paper_words_from_values,
    rank_candidates,
    rank_pair,
    ranking_record_fields,
    select_words,
    smaller_region_key,
    word_ranks_from_json,
)
from utils.explain.sim2word import DirectionExplanation, PairExplanation, verify_pair

S = 1 / math.sqrt(2)
TR = 2 / math.sqrt(5)  # top-right quadrant erased in both / in image 1 only
VOCAB = Vocabulary(name="hand6", attributes=("A0", "A1", "A2", "A3", "A4", "A5"))


class LinearV(nn.Module):
    kind, embedding_size = "embedding", 2

    def __init__(self):
        super().__init__()
        self.preprocess = Preprocess((4, 4), "BGR", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        self.dummy = nn.Parameter(torch.zeros(1))  # embed_images reads the device from a parameter

    def forward(self, x):
        b = x[:, 0]
        return torch.stack([b[:, :, :2].sum(dim=(1, 2)), b[:, :, 2:].sum(dim=(1, 2))], dim=1)


def _img(blue):
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = blue
    return img


I1 = _img(np.full((4, 4), 10))
I2 = _img(np.array([[10, 10, 0, 0]] * 4))


def _mask(*cells):
    m = np.zeros((4, 4), bool)
    for rows, cols in cells:
        m[rows, cols] = True
    return m


TOP_RIGHT, BOTTOM_RIGHT = (slice(0, 2), slice(2, 4)), (slice(2, 4), slice(2, 4))
LEFT, RIGHT, BOTTOM_LEFT = (
    (slice(0, 4), slice(0, 2)),
    (slice(0, 4), slice(2, 4)),
    (slice(2, 4), slice(0, 2)),
)
MASKS1 = np.stack(
    [
        _mask(TOP_RIGHT),
        _mask(LEFT),
        _mask(),
        _mask(TOP_RIGHT),
        _mask(RIGHT),
        _mask(RIGHT, BOTTOM_LEFT),
    ]
)
MASKS2 = np.stack([_mask(BOTTOM_RIGHT), _mask(LEFT), _mask(), _mask(), _mask(), _mask()])


def _direction(side, img, masks, probs=None):
    z = np.zeros((4, 4), np.float32)
    k = len(masks)
    probs = probs or [np.array([0.9, 0.1])] * k
    return DirectionExplanation(
        side=side,
        H_t=z,
        H_f=z,
        H_d=z,
        H_attr=np.zeros((k, 4, 4), np.float32),
        J=masks.astype(np.float32),
        masks=masks,
        attr_class=np.array([int(np.argmax(p)) for p in probs]),
        attr_conf=np.array([float(np.max(p)) for p in probs]),
        eraser=Eraser(img, "black"),
        attr_probs=probs,
    )


def _explained(probs1=None, probs2=None):
    ex = PairExplanation(
        class1=[0],
        class2=[1],
        directions=(_direction(0, I1, MASKS1, probs1), _direction(1, I2, MASKS2, probs2)),
    )
    verify_pair(ex, (I1, I2), V, batch_size=4)
    return ex


V = LinearV()


def _summary(words):
    return [(w.attribute, w.rank, w.tie) for w in words]


def test_paper_mode_keeps_the_authors_order_and_flags_ties():
    ex = _explained()
    assert ex.similarity == pytest.approx(S, abs=1e-6)
    np.testing.assert_allclose(ex.directions[0].sim_other, [TR, 0, S, TR, 1, 1], atol=1e-6)
    r = rank_pair(ex, (I1, I2), None, RankingConfig("paper"), vocabulary=VOCAB)
    # by similarity to I2, descending, ties by index:
    # 4, 5 (1.0), 0, 3 (2/sqrt 5), 2 (s, empty region), 1 (0)
    assert _summary(r.image1) == [
        (4, 1, None),
        (5, 1, None),
        (0, 3, "same-region"),
        (3, 3, "same-region"),
        (2, None, "unchanged"),
        (1, 5, None),
    ]
    # image 2: only the left half changes I2 (to all zero); the bottom-right quadrant of I2 is
    # already
    # black, so head 0 leaves I2 unchanged although its region is not empty
    assert _summary(r.image2) == [
        (0, None, "unchanged"),
        (2, None, "unchanged"),
        (3, None, "unchanged"),
        (4, None, "unchanged"),
        (5, None, "unchanged"),
        (1, 1, None),
    ]
    assert r.image2[0].similarity == ex.similarity and r.image2[-1].similarity == pytest.approx(
        0.0, abs=1e-6
    )
    # pair (both-masked, each image in its own region):
    # 4, 5 (1.0), 0, 3 (2/sqrt 5), 2 (both empty), 1 (0)
    assert _summary(r.pair) == [
        (4, 1, None),
        (5, 1, None),
        (0, 3, None),
        (3, 3, None),
        (2, None, "unchanged"),
        (1, 5, None),
    ]
    assert r.image1[0].change == pytest.approx(1 - S, abs=1e-6) and r.image1[
        0
    ].area == pytest.approx(0.5)
    assert r.pair[2].area == pytest.approx((4 / 16 + 4 / 16) / 2)


def test_both_shared_erases_the_union_in_both_images():
    ex = _explained()
    r = rank_pair(
        ex, (I1, I2), V, RankingConfig("both-shared", tie_break="smaller-region"), vocabulary=VOCAB
    )
    sims = {w.attribute: w.similarity for w in r.image1}
    assert sims == pytest.approx({0: 1.0, 1: 0.0, 2: S, 3: TR, 4: 1.0, 5: 1.0}, abs=1e-6)
    # 0 and 4 share the right half (same region, rank 1); 5 has cos 1 too but a larger region (3/4);
    # 2 changed nothing and is listed last without a rank
    assert _summary(r.image1) == [
        (0, 1, "same-region"),
        (4, 1, "same-region"),
        (5, 3, None),
        (3, 4, None),
        (1, 5, None),
        (2, None, "unchanged"),
    ]
    assert [w.area for w in r.image1[:3]] == [0.5, 0.5, 0.75]
    assert _summary(r.image2) == _summary(r.image1) and _summary(r.pair) == _summary(r.image1)
    plain = rank_pair(
        ex, (I1, I2), V, RankingConfig("both-shared", tie_break="index"), vocabulary=VOCAB
    )
    assert _summary(plain.image1)[:3] == [
        (0, 1, "same-region"),
        (4, 1, "same-region"),
        (5, 1, None),
    ]


def test_both_shared_fills():
    ex = _explained()
    for fill in ("mean", "inpaint", "blur"):
        r = rank_pair(ex, (I1, I2), V, RankingConfig("both-shared", fill=fill), vocabulary=VOCAB)
        sims = {w.attribute: w.similarity for w in r.image1}
        # any fill that does not look inside the region makes the two right-half-erased images equal
        if fill in ("mean", "inpaint"):
            assert sims[0] == pytest.approx(1.0, abs=1e-6), fill
        assert sims[2] == r.similarity == pytest.approx(S) and r.fill == fill
    # mean 125: E1 = E2 = (80, 1000) for the right half -> 1; the left half: (1000, 80) vs (1000, 0)
    r = rank_pair(ex, (I1, I2), V, RankingConfig("both-shared", fill="mean"), vocabulary=VOCAB)
    assert {w.attribute: w.similarity for w in r.image1}[1] == pytest.approx(
        1000 / math.hypot(1000, 80), abs=1e-6
    )


def test_generic_ranker_and_tie_rules_by_hand():
    values = {0: 0.5, 1: 0.9, 2: 0.7, 3: 0.9, 4: 0.7}
    regions = {0: "a", 1: "b", 2: "c", 3: "d", 4: "c"}
    words = {j: f"w{j}" for j in values}
    areas = {0: 0.0, 1: 0.3, 2: 0.1, 3: 0.2, 4: 0.1}
    # 0 is unchanged (value == original 0.5); 2 and 4 share a region
    ranked, keys = rank_candidates(
        list(values), values, 0.5, words=words, areas=areas, regions=regions
    )
    assert _summary(ranked) == [
        (1, 1, None),
        (3, 1, None),
        (2, 3, "same-region"),
        (4, 3, "same-region"),
        (0, None, "unchanged"),
    ]
    assert keys[0] == (float("inf"),)
    ranked, _ = rank_candidates(
        list(values),
        values,
        0.5,
        words=words,
        areas=areas,
        regions=regions,
        key=smaller_region_key(values, areas, 1e-3),
    )
    assert _summary(ranked)[:2] == [(3, 1, None), (1, 2, None)]  # 0.9 tie -> smaller area 0.2 first
    kept = ranked, _
    assert [w.attribute for w in select_words(kept[0], 3)] == [3, 1, 2]
    assert [w.attribute for w in select_words(kept[0], None, "skip")] == [3, 1, 2, 4]
    assert [w.attribute for w in select_words(kept[0], None, "flag")] == [3, 1, 2, 4, 0]


def test_smaller_region_key_tolerance():
    values, areas = {0: 0.9995, 1: 0.9991, 2: 0.998}, {0: 0.5, 1: 0.1, 2: 0.01}
    order = sorted(values, key=smaller_region_key(values, areas, 1e-3))
    assert order == [1, 0, 2]  # 0.9995 and 0.9991 share the bucket [0.999, 1.0): smaller area first
    order = sorted(values, key=smaller_region_key(values, areas, 0.0))
    assert order == [0, 1, 2]


def test_paper_words_from_values_infers_ties_from_records():
    words = paper_words_from_values(
        {3: 0.8, 5: 0.6, 7: 0.8, 9: 0.9}, 0.6, {3: "a", 5: "b", 7: "c", 9: "d"}
    )
    assert _summary(words) == [
        (9, 1, None),
        (3, 2, "same-region"),
        (7, 2, "same-region"),
        (5, None, "unchanged"),
    ]


def test_record_fields_round_trip():
    ex = _explained()
    r = rank_pair(
        ex, (I1, I2), V, RankingConfig("both-shared"), vocabulary=VOCAB, discriminant="verification"
    )
    rec = ranking_record_fields(r)
    assert (rec["ranking"], rec["discriminant"], rec["ranking-fill"], rec["ranking-tie-break"]) == (
        "both-shared",
        "verification",
        "black",
        "smaller-region",
    )
    first = rec["words-image1"][0]
    assert set(first) == {"index", "word", "similarity", "score", "change", "area", "tie", "rank"}
    assert first["score"] == pytest.approx(1.0) and rec["words-image1"][-1]["tie"] == "unchanged"
    back = word_ranks_from_json(rec["words-image1"])
    assert [(w.attribute, w.rank, w.tie) for w in back] == _summary(r.image1)
    with pytest.raises(ValueError, match=r"words\[0\]: tie must be"):
        word_ranks_from_json([{**first, "tie": "maybe"}])
    with pytest.raises(ValueError, match="missing key"):
        word_ranks_from_json([{"index": 1}])


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="ranking mode 'best'"):
        RankingConfig("best")
    with pytest.raises(ValueError, match="fill 'gold'"):
        RankingConfig("both-shared", fill="gold")
    with pytest.raises(ValueError, match="needs the verification net"):
        rank_pair(_explained(), (I1, I2), None, RankingConfig("both-shared"), vocabulary=VOCAB)


def test_word_score_scale():
    assert WordRank(0, "w", 0.0, 0.0, 0.0).score == pytest.approx(0.5)


def test_contrast_mode_by_hand():
    """Shared-region gains (s = 1/sqrt 2): heads 0, 4, 5 -> 1 - s; 3 -> 2/sqrt 5 - s; 1 -> -s;
    2 unchanged.

    A's probabilities (image 1 vs image 2, class 0 = has it): head 0 0.9 -> 0.2 (drop 0.7, class
    changes), 1: 0.8 -> 0.1 (0.7), 2: no change, 3: 0.9 -> 0.6 (0.3 < 0.5, same class: not a
    difference), 4: 0.9 -> 0.3 (0.6), 5: 0.95 -> 0.05 (0.9).
    Groups: differs and matters {0, 4, 5} ordered by drop x gain (0.9 > 0.7 > 0.6: 5, 0, 4); differs
    only {1}; neither {3}; unchanged {2} last.
    """
    p1 = [
        np.array(p)
        for p in ([0.9, 0.1], [0.8, 0.2], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.95, 0.05])
    ]
    p2 = [
        np.array(p)
        for p in ([0.2, 0.8], [0.1, 0.9], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.05, 0.95])
    ]
    ex = _explained(p1, p2)
    r = rank_pair(ex, (I1, I2), V, RankingConfig("contrast", contrast_drop=0.5), vocabulary=VOCAB)
    assert _summary(r.image1) == [
        (5, 1, None),
        (0, 2, "same-region"),  # same region as head 4, but A tells them apart
        (4, 3, "same-region"),
        (1, 4, None),
        (3, 5, None),
        (2, None, "unchanged"),
    ]
    assert [w.contrast for w in r.image1] == pytest.approx([0.9, 0.7, 0.6, 0.7, 0.3, 0.0])
    # image 2 has only heads 2 and 3 (class 0); its class of head 3 is *more* likely in image 1
    assert _summary(r.image2) == [(3, 1, None), (2, None, "unchanged")]
    assert r.image2[0].contrast == 0.0
    assert [w.attribute for w in r.pair] == [5, 0, 4, 1, 3, 2]
    # a stricter difference threshold drops head 4 (0.6) out of the first group
    strict = rank_pair(
        ex, (I1, I2), V, RankingConfig("contrast", contrast_drop=0.65), vocabulary=VOCAB
    )
    assert [w.attribute for w in strict.image1][:3] == [
        5,
        0,
        4,
    ]  # 4's class still changes: it differs
    p2[4] = np.array([0.35, 0.65])
    ex = _explained(p1, p2)
    strict = rank_pair(
        ex, (I1, I2), V, RankingConfig("contrast", contrast_drop=0.65), vocabulary=VOCAB
    )
    assert [w.attribute for w in strict.image1] == [5, 0, 4, 1, 3, 2]
    p2[4] = np.array([0.5, 0.5])  # tie in A's probabilities: argmax keeps class 0, drop 0.4 < 0.65
    ex = _explained(p1, p2)
    strict = rank_pair(
        ex, (I1, I2), V, RankingConfig("contrast", contrast_drop=0.65), vocabulary=VOCAB
    )
    assert [w.attribute for w in strict.image1] == [5, 0, 1, 4, 3, 2]


def test_paper_mode_parity_with_the_default_run_records():
    """On pairs of the default run (committed demo nets), the paper list is the authors' ranking of
    the
    record (what results/Top_5_attributes.py always showed), the record keeps every authors' key
    unchanged, and the ties inferred from a record's values equal the ones flagged live."""
    from models import get_network
    from utils.experiments.analysis import both_masked_top, top_words
    from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets, explain_pair
    from utils.faces.data import read_pair_list
    from utils.faces.image_io import read_image
    from utils.run.records import make_record, parse_record

    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    items = read_pair_list(repo / "data" / "face_world" / "pairs.txt")[:4]
    nets = Sim2WordNets(
        *(get_network(f"FaceWorld-{r}") for r in ("recognition", "attribute", "verification"))
    )
    cfg = Sim2WordConfig()
    for it in items:
        imgs = read_image(it.path1), read_image(it.path2)
        ex = explain_pair(*imgs, nets, cfg, pair_index=it.index)
        meta = dict(
            datasets="FaceWorld",
            recognition_net="R",
            attribute_net="A",
            verification_net="V",
            image_path1=it.path1,
            image_path2=it.path2,
            match=it.label,
            pair_index=it.index,
        )
        plain = make_record(ex, cfg, **meta)
        ranking = rank_pair(
            ex, imgs, nets.verification, RankingConfig("paper"), pair_index=it.index
        )
        rec = make_record(ex, cfg, **meta, ranking=ranking)
        assert {k: rec[k] for k in plain} == plain, "the ranking only adds keys"
        parsed = parse_record(rec, f"{it.index}.json")
        legacy = parse_record(plain, f"{it.index}.json")
        for i, name in ((1, "image1"), (2, "image2")):
            authors = [w.attribute for w in top_words(legacy, i, None)]
            assert [w["index"] for w in rec[f"words-{name}"]] == authors
            inferred = paper_words_from_values(
                {j: v[1] for j, v in legacy.erased[i - 1].items() if j in authors},
                legacy.similarity,
                {j: "" for j in authors},
            )
            assert [(w.attribute, w.tie, w.rank) for w in inferred] == [
                (w.attribute, w.tie, w.rank) for w in parsed.words[name]
            ]
        assert [w["index"] for w in rec["words-pair"]] == [
            w.attribute for w in both_masked_top(legacy, None)
        ]


def test_region_thresh_rethresholds_the_joint_maps():
    ex = _explained()
    ex.directions[0].J[3] *= 0.4  # head 3's map peaks at 0.4 in image 1 (0 in image 2)
    ex.directions[1].J[1] *= 0.4  # head 1's left half in image 2 only reaches 0.4
    low = rank_pair(
        ex, (I1, I2), V, RankingConfig("both-shared", region_thresh=0.3), vocabulary=VOCAB
    )
    assert {w.attribute: w.tie for w in low.image1}[3] is None
    high = rank_pair(
        ex, (I1, I2), V, RankingConfig("both-shared", region_thresh=0.5), vocabulary=VOCAB
    )
    tie = {w.attribute: w.tie for w in high.image1}
    assert tie[3] == "unchanged" and tie[2] == "unchanged"
    # head 1: the union still holds image 1's left half (both erased there): cos 0 as before;
    # the paper list ignores region_thresh
    assert {w.attribute: w.similarity for w in high.image1}[1] == pytest.approx(0.0, abs=1e-6)
    paper = rank_pair(
        ex, (I1, I2), None, RankingConfig("paper", region_thresh=0.5), vocabulary=VOCAB
    )
    assert _summary(paper.image1)[0] == (4, 1, None)


def test_cache_reuses_shared_similarities():
    ex = _explained()
    cache: dict = {}
    a = rank_pair(ex, (I1, I2), V, RankingConfig("both-shared"), vocabulary=VOCAB, cache=cache)
    assert len(cache) == 1
    (key,) = cache
    cache[key] = cache[key] * 0 + 0.25  # a poisoned entry proves the second call reads the cache
    b = rank_pair(ex, (I1, I2), V, RankingConfig("contrast"), vocabulary=VOCAB, cache=cache)
    assert {w.similarity for w in b.image1} == {0.25} and len(cache) == 1
    rank_pair(
        ex, (I1, I2), V, RankingConfig("both-shared", fill="mean"), vocabulary=VOCAB, cache=cache
    )
    assert len(cache) == 2 and a.image1[0].similarity == pytest.approx(1.0)
