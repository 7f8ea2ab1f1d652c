"""Word selection of the results scripts: ties skipped or flagged, with and without rankings."""

from __future__ import annotations

import json

import pytest

from utils.run.records import parse_record
from utils.experiments.words import record_top_words, record_words, top1_statistics

S = 0.5


def _record(sims1, sims2, match=0, classes1=None, classes2=None, both=None, **extra):
    """A record in the authors' format; heads 0/1/2/8 present, binary heads absent unless listed."""
    c1 = classes1 or [0, 0, 0] + [1] * 5 + [0] + [1] * 21
    c2 = classes2 or list(c1)
    data = {
        "match": match,
        "similarity": S,
        "Attribute1-class": c1,
        "Attribute2-class": c2,
        "attributes-image1": {f"image1-f_attr_{j}": [0.9, v] for j, v in sims1.items()},
        "attributes-image2": {f"image2-f_attr_{j}": [0.9, v] for j, v in sims2.items()},
        "attributes-both-masked": {f"Both_masked-f_attr_{j}": v for j, v in (both or {}).items()},
        **extra,
    }
    return parse_record(json.loads(json.dumps(data)), "7.json")


def test_ties_inferred_from_an_authors_record():
    # image 1: Gender (0) and Age (1) unchanged (value == s), Race (2) 0.7, Hair color (8) 0.7
    # (same value: identical erased images), an absent head (5) never a word
    rec = _record({0: S, 1: S, 2: 0.7, 8: 0.7, 5: 0.99}, {0: 0.4, 1: S, 2: 0.45, 8: 0.3})
    words = record_words(rec, "image1")
    assert [(w.attribute, w.tie, w.rank) for w in words] == [
        (2, "same-region", 1),
        (8, "same-region", 1),
        (0, "unchanged", None),
        (1, "unchanged", None),
    ]
    assert [w.attribute for w in record_top_words(rec, "image1", 3, "skip")] == [2, 8]
    assert [w.attribute for w in record_top_words(rec, "image1", 3, "flag")] == [2, 8, 0]
    # image 2: every value below s except Age (unchanged, first in the paper's order): skip -> Race
    assert [w.attribute for w in record_words(rec, "image2")] == [1, 2, 0, 8]
    assert record_top_words(rec, "image2", 1, "skip")[0].attribute == 2
    assert record_top_words(rec, "image2", 1, "flag")[0].word == "Young"


def test_top1_statistics_skip_and_flag():
    recs = [
        _record({0: S, 1: S, 2: 0.4}, {0: 0.6, 1: S}),  # image 1: top-1 is a tie (Gender)
        _record({0: 0.7, 1: S}, {0: S, 1: S}),  # image 2: only ties
        _record({0: S}, {1: 0.9}, match=1),  # genuine: not counted by default
    ]
    skip = top1_statistics(recs, match=0, ties="skip")
    by = {r["attribute"]: (r["count"], r["ties"]) for r in skip["by_attribute"] if r["count"]}
    # pair 0: image 1 Race (first real word), image 2 Gender; pair 1: image 1 Gender, image 2 none
    assert by == {"Race": (1, 0), "Gender": (2, 0)}
    assert (skip["n_images"], skip["n_without_word"], skip["n_tie_top1"]) == (4, 1, 2)
    assert skip["by_attribute"][0]["fraction"] == pytest.approx(2 / 3)
    flag = top1_statistics(recs, match=0, ties="flag")
    by = {r["attribute"]: (r["count"], r["ties"]) for r in flag["by_attribute"] if r["count"]}
    assert by == {"Gender": (4, 2)}  # the paper's count, two of them ties
    words = {(r["word"], r["ties"]) for r in flag["by_word"]}
    assert ("Male", 2) in words
    with pytest.raises(ValueError, match="ties must be"):
        top1_statistics(recs, ties="maybe")


def test_a_records_own_ranking_is_used():
    words = [
        {
            "index": 8,
            "word": "Black Hair",
            "similarity": 0.8,
            "change": 0.3,
            "area": 0.1,
            "tie": None,
            "rank": 1,
        },
        {
            "index": 0,
            "word": "Male",
            "similarity": S,
            "change": 0.0,
            "area": 0.0,
            "tie": "unchanged",
            "rank": None,
        },
    ]
    rec = _record({0: 0.9, 8: 0.1}, {0: 0.9}, **{"ranking": "both-shared", "words-image1": words})
    assert rec.meta["ranking"] == "both-shared"
    assert [w.attribute for w in record_top_words(rec, "image1", 5)] == [8]
    assert [w.attribute for w in record_top_words(rec, "image1", 5, "flag")] == [8, 0]
    assert record_top_words(rec, "image2", 5)[0].attribute == 0  # no list for image 2: the paper's
    from utils.run.records import RecordError

    with pytest.raises(RecordError, match="words-image1"):
        _record({0: 0.9}, {0: 0.9}, **{"words-image1": [{"index": "x"}]})


def test_pair_list_from_both_masked_values():
    rec = _record({}, {}, both={0: 0.8, 1: S, 5: 0.99, 2: 0.3})
    assert [(w.attribute, w.tie) for w in record_words(rec, "pair")] == [
        (0, None),
        (1, "unchanged"),
        (2, None),
    ]
