"""One definition of the per-pair record (utils/run/records.py): the writer's records read back, the
authors' record variants read, and the vocabulary (not a fixed 30) decides heads and words."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.attributes import Vocabulary, register_vocabulary
from utils.experiments import analysis as A
from utils.experiments.words import top1_statistics
from utils.run.records import FIELDS, NO_ATTRIBUTE, RecordError, parse_record, read_record

THREE = register_vocabulary(
    Vocabulary(
        name="test-three",
        attributes=("Colour", "Hat", "Nose"),
        class_words={0: ("Red", "Green", "Blue")},
        region_heads=frozenset({2}),
    )
)


def _score(s: float) -> float:
    return 1.0 - math.acos(s) / math.pi


def test_the_writer_writes_fields_in_order_and_the_reader_reads_them_back(tmp_path):
    from tests.test_sim2word import IMG1, IMG2, NETS
    from utils.explain.sim2word import Sim2WordConfig, explain_pair
    from utils.run.records import make_record, write_record

    cfg = Sim2WordConfig(thresh=0.3)
    ex = explain_pair(IMG1, IMG2, NETS, cfg, pair_index=4)
    rec = make_record(
        ex,
        cfg,
        datasets="D",
        recognition_net="R",
        attribute_net="A",
        verification_net="V",
        image_path1="a.png",
        image_path2="b.png",
        match=1,
        pair_index=4,
        vocabulary="test-two",
    )
    order = [f.key for f in FIELDS]
    assert list(rec) == [k for k in order if k in rec]
    assert rec["attribute-vocabulary"] == "test-two"
    register_vocabulary(Vocabulary(name="test-two", attributes=("head 0", "head 1")))
    write_record(tmp_path / "4.json", rec)
    back = read_record(tmp_path / "4.json")
    assert back.vocabulary.name == "test-two" and back.n_heads == 2 and back.pair_index == 4
    assert back.similarity == pytest.approx(ex.similarity) and back.class_sets == ((0,), (1,))
    assert back.erased[0][1] == pytest.approx(
        (ex.directions[0].sim_own[1], ex.directions[0].sim_other[1])
    )


def _authors_topk(match: int = 0) -> dict:
    """A record as the authors' Multi_Identity_topk.py writes it (no vocabulary key, class lists
    nested)."""
    cls = [1] * 30
    cls[28] = 0  # Big Nose present in image 1
    return {
        "Datasets": "VGGFace2-train",
        "Heatmap-method": "GradCAM",
        "thresh": 0.6,
        "topk": 1,
        "verification-net": "CosFace-r100",
        "image-path1": "/x/a.jpg",
        "image-path2": "/x/b.jpg",
        "match": match,
        "similarity": 0.2,
        "class1": [[17]],
        "class2": [[4, 9]],
        "Attribute1-class": cls,
        "Attribute1-score": [0.9] * 30,
        "Attribute2-class": [1] * 30,
        "Attribute2-score": [0.9] * 30,
        "attributes-image1": {f"image1-f_attr_{j}": [0.9, 0.2 + 0.01 * j] for j in range(30)},
        "attributes-image2": {f"image2-f_attr_{j}": [0.9, 0.1] for j in range(30)},
        "attributes-both-masked": {f"Both_masked-f_attr_{j}": 0.3 for j in range(30)},
    }


def test_authors_topk_and_sameid_records():
    rec = parse_record(_authors_topk(), "1.json")
    assert rec.vocabulary.name == "celeba30" and rec.class_sets == ((17,), (4, 9))
    # image 1's present attributes: the 4 multi-class heads and Big Nose; ranked by erased sim 0.2
    # + 0.01 j
    assert [w.attribute for w in A.top_words(rec, 1, k=None)] == [28, 8, 2, 1, 0]
    sameid = {**_authors_topk(), "class1": 17, "class2": 4}
    assert parse_record(sameid, "2.json").class_sets == ((17,), (4,))
    with pytest.raises(RecordError, match="class1"):
        parse_record({**_authors_topk(), "class1": [["x"]]}, "3.json")


def _authors_no_attribute(match: int, s: float, e1: float, e2: float) -> dict:
    """A record as the authors' ablation-no-attribute.py writes it: one region, no attribute
    classes."""
    return {
        "Datasets": "Celeb-A",
        "Heatmap-method": "GradCAM",
        "thresh": 0.8,
        "topk": 1,
        "verification-net": "VGGFace2-verification",
        "image-path1": "a",
        "image-path2": "b",
        "match": match,
        "similarity": s,
        "class1": [[3]],
        "class2": [[8]],
        "attributes-image1": {"image1-f_attr_": [0.7, e1]},
        "attributes-image2": {"image2-f_attr_": [0.7, e2]},
        "attributes-both-masked": {"Both_masked-f_attr_": 0.5},
    }


def test_authors_no_attribute_ablation_records(tmp_path):
    recs = [
        parse_record(_authors_no_attribute(0, 0.1, 0.4, 0.05), "1.json"),
        parse_record(_authors_no_attribute(1, 0.6, 0.9, 0.9), "2.json"),
    ]
    r = recs[0]
    assert r.vocabulary is NO_ATTRIBUTE and r.n_heads == 1 and r.present(1) == [0] == r.present(2)
    assert r.erased == ({0: (0.7, 0.4)}, {0: (0.7, 0.05)}) and r.both_masked == {0: 0.5}
    assert [w.word for w in A.top_words(r, 1)] == ["counterfactual region"]
    # mask game "After": an impostor image's score is max(s, its erased similarity); genuine pairs
    # keep s
    scores, labels = A.after_samples(recs)
    np.testing.assert_allclose(scores, [_score(0.4), _score(0.1), _score(0.6), _score(0.6)])
    assert labels.tolist() == [0, 0, 1, 1]
    # the results script reads a folder of them
    fold = tmp_path / "json"
    fold.mkdir()
    (tmp_path / "config.json").write_text('{"seed": 0}')  # a run folder also holds these
    (tmp_path / "summary.json").write_text('{"pairs": 2}')
    for k, rec in enumerate(
        (_authors_no_attribute(0, 0.1, 0.4, 0.05), _authors_no_attribute(1, 0.6, 0.9, 0.9))
    ):
        (fold / f"{k}.json").write_text(json.dumps(rec))
    from results import AUC_most_attributes

    assert (
        AUC_most_attributes.main(["--Json-fold", str(tmp_path), "--no-progress", "--dpi", "30"])
        == 0
    )
    summary = json.loads((tmp_path / "analysis" / "auc_most_attributes.json").read_text())
    assert summary["n_pairs"] == 2 and summary["After"]["auc"] == 1.0


def test_the_head_count_and_words_come_from_the_vocabulary():
    data = {
        "match": 0,
        "similarity": 0.3,
        "attribute-vocabulary": "test-three",
        "Attribute1-class": [2, 0, 0],
        "Attribute2-class": [0, 1, 0],
        "attributes-image1": {
            f"image1-f_attr_{j}": [0.9, v] for j, v in enumerate((0.5, 0.4, 0.6))
        },
        "attributes-image2": {
            f"image2-f_attr_{j}": [0.9, v] for j, v in enumerate((0.35, 0.8, 0.2))
        },
        "attributes-both-masked": {f"Both_masked-f_attr_{j}": 0.1 * j for j in range(3)},
    }
    rec = parse_record(data, "7.json")
    assert (
        rec.n_heads == 3 and rec.present(1) == [0, 1, 2] and rec.present(2) == [0, 2]
    )  # Hat absent in 2
    assert [(w.word, w.name) for w in A.top_words(rec, 1)] == [
        ("Nose", "Nose"),
        ("Blue", "Colour"),
        ("Hat", "Hat"),
    ]
    table = A.sample_table([rec])
    assert table.erased.shape == (1, 2, 3)
    with pytest.raises(RecordError, match="list of 3 class ids .*test-three"):
        parse_record({**data, "Attribute1-class": [0] * 30}, "8.json")
    with pytest.raises(RecordError, match=r"j in 0\.\.2"):
        parse_record({**data, "attributes-image1": {"image1-f_attr_3": [0.1, 0.1]}}, "9.json")
    with pytest.raises(RecordError, match="unknown attribute vocabulary"):
        parse_record({**data, "attribute-vocabulary": "nope"}, "10.json")
    stats = top1_statistics([rec], match=0, ties="flag")
    assert stats["vocabulary"] == "test-three" and len(stats["by_attribute"]) == 3
    # image 1's top-1 is Nose (0.6); image 2's present heads are Colour (0.35, class 0 = Red) and
    # Nose (0.2)
    assert [(r["word"], r["count"]) for r in stats["by_word"]] == [("Red", 1), ("Nose", 1)]


def test_ranked_words_are_declared_fields_written_in_order_and_read_back(monkeypatch):
    from tests.test_sim2word import IMG1, IMG2, NETS
    from utils.explain.ranking import RankingConfig, rank_pair
    from utils.explain.sim2word import Sim2WordConfig, explain_pair
    from utils.run import records

    two = register_vocabulary(Vocabulary(name="test-two", attributes=("head 0", "head 1")))
    cfg = Sim2WordConfig(thresh=0.3)
    ex = explain_pair(IMG1, IMG2, NETS, cfg, pair_index=4)
    ranking = rank_pair(ex, (IMG1, IMG2), NETS.verification, RankingConfig(), vocabulary=two)
    meta = dict(
        datasets="D",
        recognition_net="R",
        attribute_net="A",
        verification_net="V",
        image_path1="a.png",
        image_path2="b.png",
        match=1,
        pair_index=4,
        vocabulary="test-two",
    )
    rec = records.make_record(ex, cfg, **meta, ranking=ranking)
    order = [f.key for f in FIELDS]
    assert list(rec) == [k for k in order if k in rec]
    settings = (rec["ranking"], rec["discriminant"], rec["ranking-fill"])
    assert settings == ("paper", "classes", "black")
    back = parse_record(json.loads(json.dumps(rec)), "4.json")
    assert back.meta["ranking"] == "paper" and back.meta["discriminant"] == "classes"
    for name in ("image1", "image2", "pair"):
        want = [(w.attribute, w.word, w.tie, w.rank) for w in getattr(ranking, name)]
        assert [(w.attribute, w.word, w.tie, w.rank) for w in back.words[name]] == want
        assert back.words[name], "the tiny pair has words in every list"
    # a word index outside the vocabulary, a tie flag of no kind: errors naming the key
    bad = json.loads(json.dumps(rec))
    bad["words-image2"][0]["index"] = 2
    with pytest.raises(RecordError, match=r"'words-image2'\[0\]: index 2 not a head"):
        parse_record(bad, "4.json")
    bad["words-image2"][0].update(index=0, tie="maybe")
    with pytest.raises(RecordError, match="words-image2.*tie must be"):
        parse_record(bad, "4.json")
    with pytest.raises(RecordError, match="'ranking': expected a string"):
        parse_record({**rec, "ranking": 3}, "4.json")
    # the ranking must come from the same explanation settings, and every key must be declared
    wrong = rank_pair(ex, (IMG1, IMG2), None, discriminant="verification", vocabulary=two)
    with pytest.raises(ValueError, match="discriminant 'verification'"):
        records.make_record(ex, cfg, **meta, ranking=wrong)
    monkeypatch.setattr(records, "ranking_record_fields", lambda r: {"words-extra": []})
    with pytest.raises(KeyError, match="words-extra"):
        records.make_record(ex, cfg, **meta, ranking=ranking)
