"""The authors' three other analyses (utils/experiments/record_analysis.py and their results/
scripts) on hand-made records, every expected value worked out by hand in the comments.

Records (celeba30; multi-class heads 0 Gender, 1 Age, 2 Race, 8 Hair color are always present,
binary heads only with class 0; "other" = cos(V(E_ij), V(I_other))):

| name | match | s    | image 1 present: other                              | image 2       |
|------|-------|------|-----------------------------------------------------|---------------|
| A    | 0     | 0.3  | 0: .35, 1: .2, 2: .3, 6: .5, 28: .31 (absent 9: .9) | 0: .1, 8: .29 |
| B    | 0     | -0.1 | 1: 0.0, 2: -0.05                                    | none recorded |
| C    | 1     | 0.8  | 0: 0.9                                              | none recorded |
"""

from __future__ import annotations

import importlib
import json

import cv2
import numpy as np
import pytest

from utils.experiments import analysis as A
from utils.experiments.record_analysis import (
    detected_attributes,
    detected_caption,
    found_attribute_counts,
    found_attributes,
    no_attribute_samples,
    split_no_attribute,
)
from utils.run.records import parse_record


def _record(match, s, present1=(), present2=(), erased1=None, erased2=None, **extra) -> dict:
    cls = [
        [0 if j in (0, 1, 2, 8) or j in present else 1 for j in range(30)]
        for present in (present1, present2)
    ]
    rec = {
        "match": match,
        "similarity": s,
        "image-path1": "a.png",
        "image-path2": "b.png",
        "class1": [[3, 7]],
        "class2": 5,  # the authors' nested list and plain int
        "Attribute1-class": cls[0],
        "Attribute2-class": cls[1],
        "Attribute1-score": [0.5 + j / 100 for j in range(30)],
        "Attribute2-score": [0.9] * 30,
        "attributes-image1": {f"image1-f_attr_{j}": [0.8, v] for j, v in (erased1 or {}).items()},
        "attributes-image2": {f"image2-f_attr_{j}": [0.8, v] for j, v in (erased2 or {}).items()},
    }
    return {**rec, **extra}


RAW = {
    "A": _record(
        0, 0.3, (6, 28), (), {0: 0.35, 1: 0.2, 2: 0.3, 6: 0.5, 28: 0.31, 9: 0.9}, {0: 0.1, 8: 0.29}
    ),
    "B": _record(0, -0.1, (), (), {1: 0.0, 2: -0.05}),
    "C": _record(1, 0.8, (), (), {0: 0.9}),
}


@pytest.fixture
def records():
    return [parse_record(d, f"{name}.json") for name, d in RAW.items()]


def test_found_attributes_by_hand(records):
    a, b, c = records
    # A image 1: 0.35, 0.5, 0.31 > 0.3; Race 0.3 is not > s; No beard (9) 0.9 is absent
    assert found_attributes(a, 1) == [0, 6, 28] and found_attributes(a, 2) == []
    assert found_attributes(b, 1) == [1, 2]  # 0.0 and -0.05 > -0.1 (the authors' code drops 0.0)
    stats = found_attribute_counts(records)  # impostor pairs A, B: 4 images found 3, 0, 2, 0
    assert stats["histogram"][:4] == [2, 0, 1, 1] and sum(stats["histogram"]) == 4
    assert len(stats["histogram"]) == 31
    assert stats["mean_found"] == pytest.approx(5 / 4)
    assert (stats["images_with_any"], stats["fraction_with_any"]) == (2, 0.5)
    assert [(r["attribute"], r["count"]) for r in stats["by_attribute"][:6]] == [
        ("Gender", 1),
        ("Age", 1),
        ("Race", 1),
        ("Bangs", 1),
        ("Big Nose", 1),
        ("Bald", 0),
    ]
    every = found_attribute_counts(records, match=None)  # + C: image 1 finds Gender, image 2 none
    assert every["histogram"][:4] == [3, 1, 1, 1] and every["n_pairs"] == 3


# no-attribute records: the authors' variant (one unindexed region, no attribute classes) and ours
# (ablation no-attribute: the same value under all 30 heads)
def _authors_no_attribute(match, s, other1, other2) -> dict:
    return {
        "match": match,
        "similarity": s,
        "class1": [[1, 2]],
        "class2": [[4]],
        "attributes-image1": {"image1-f_attr_": [0.9, other1]},
        "attributes-image2": {"image2-f_attr_": [0.9, other2]},
    }


def _ours_no_attribute(match, s, other1, other2, ablation="no-attribute") -> dict:
    return _record(
        match,
        s,
        (),
        (),
        dict.fromkeys(range(30), other1),
        dict.fromkeys(range(30), other2),
        ablation=ablation,
    )


NO_ATTR = {
    "1": _authors_no_attribute(0, 0.2, 0.55, 0.1),
    "2": _authors_no_attribute(1, 0.5, 0.9, 0.9),
    "3": _ours_no_attribute(0, 0.25, 0.35, 0.05),
    "4": _ours_no_attribute(1, 0.6, 0.1, 0.1),
    "5": _ours_no_attribute(0, 0.1, 0.3, 0.3, ablation="none"),  # not of this ablation: skipped
}


def test_no_attribute_mask_game_by_hand():
    recs = [parse_record(d, f"{n}.json") for n, d in NO_ATTR.items()]
    kept, failures = split_no_attribute(recs)
    assert [r.name for r in kept] == ["1", "2", "3", "4"]
    assert len(failures) == 1
    assert "5.json" in failures[0]["error"] and "'none'" in failures[0]["error"]
    scores, labels = no_attribute_samples(kept)
    # impostors replaced by the region's value (0.55 and 0.1, 0.35 and 0.05), genuine keep s
    expect = A.verification_score([0.55, 0.1, 0.5, 0.5, 0.35, 0.05, 0.6, 0.6])
    assert scores == pytest.approx(expect)
    assert labels.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    after = A.roc_summary(scores, labels)
    # positives {.5, .5, .6, .6} vs negatives {.55, .1, .35, .05}: 0.5 beats 3 negatives (x2),
    # 0.6 beats 4 (x2): 14 of 16 pairs; FPR <= 0.1 admits no negative: TPR = 2/4 (the two 0.6)
    assert after["auc"] == pytest.approx(14 / 16)
    assert after["tpr_at_fpr"]["0.1"] == pytest.approx(0.5)
    assert A.roc_summary(*A.original_samples(kept))["auc"] == pytest.approx(1.0)
    bad = parse_record(
        _ours_no_attribute(0, 0.1, 0.3, 0.3)
        | {"attributes-image1": {"image1-f_attr_0": [0.9, 0.3], "image1-f_attr_1": [0.9, 0.4]}},
        "6.json",
    )
    assert "2 different values" in split_no_attribute([bad])[1][0]["error"]


def test_detected_attributes_by_hand(records):
    a = records[0]
    assert a.class_sets == ((3, 7), (5,))  # the authors' nested and plain class sets, flattened
    rows = detected_attributes(a, 1)
    assert [(r["index"], r["word"], r["class"]) for r in rows] == [
        (0, "Male", 0),
        (1, "Young", 0),
        (2, "Asian", 0),
        (6, "Bangs", 0),
        (8, "Black Hair", 0),
        (28, "Big Nose", 0),
    ]
    assert [r["confidence"] for r in rows] == pytest.approx([0.5, 0.51, 0.52, 0.56, 0.58, 0.78])
    lines = detected_caption(rows)
    assert lines[0].split() == ["Gender:", "Male", "class", "0", "0.5000"]
    assert lines[3].split() == ["Bangs", "class", "0", "0.5600"]
    authors = parse_record(_authors_no_attribute(0, 0.2, 0.5, 0.1), "x.json")
    assert detected_attributes(authors, 1) == [
        {
            "index": 0,
            "attribute": "counterfactual region",
            "word": "counterfactual region",
            "class": 0,
            "confidence": None,
        }
    ]


def _write(folder, raw: dict) -> None:
    folder.mkdir(parents=True)
    for name, d in raw.items():
        (folder / f"{name}.json").write_text(json.dumps(d))


def _script(name):
    return importlib.import_module(f"results.{name}")


def test_found_attributes_script(tmp_path):
    _write(tmp_path / "run" / "json", RAW)
    out = tmp_path / "out"
    code = _script("Stastic_found_attributes_num").main(
        [
            "--Json-fold",
            str(tmp_path / "run"),
            "--output-dir",
            str(out),
            "--no-progress",
            "--figsize",
            "4",
            "4",
            "--dpi",
            "40",
        ]
    )
    assert code == 0
    stats = json.loads((out / "found_attributes_num.json").read_text())
    assert stats["histogram"][:4] == [2, 0, 1, 1] and stats["n_pairs"] == 2
    assert "| 3 " in (out / "found_attributes_num.md").read_text()
    assert cv2.imread(str(out / "found_attributes_num.png")).shape == (160, 160, 3)


def test_no_attribute_script_skips_other_ablations(tmp_path):
    _write(tmp_path / "json", NO_ATTR)
    code = _script("AUC_no_attribute_map").main(
        [
            "--Json-fold",
            str(tmp_path / "json"),
            "--output-dir",
            str(tmp_path),
            "--no-progress",
            "--dpi",
            "40",
        ]
    )
    assert code == 3  # record 5 is of another ablation: reported, skipped
    summary = json.loads((tmp_path / "auc_no_attribute_map.json").read_text())
    assert summary["n_pairs"] == 4
    assert summary["After (no attribute)"]["auc"] == pytest.approx(0.875)
    failures = (tmp_path / "failures-auc_no_attribute_map.jsonl").read_text().splitlines()
    assert len(failures) == 1 and "--ablation no-attribute" in failures[0]
    assert (tmp_path / "roc_no_attribute_map.png").is_file()


def test_detect_attributes_script(tmp_path):
    _write(tmp_path / "json", RAW)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "json" / "a.png"), rng.integers(0, 255, (40, 30, 3), np.uint8))
    code = _script("Detect_attributes_scores").main(
        [
            "--Json-fold",
            str(tmp_path / "json"),
            "--output-dir",
            str(tmp_path / "out"),
            "--no-progress",
            "--figsize",
            "5",
            "4",
            "--dpi",
            "40",
            "--max-figures",
            "2",
        ]
    )
    assert code == 0
    figures = sorted(p.name for p in (tmp_path / "out" / "images-attributes").iterdir())
    assert figures == ["A.png", "B.png"]
    assert cv2.imread(str(tmp_path / "out" / "images-attributes" / "A.png")).shape == (160, 200, 3)
    listed = json.loads((tmp_path / "out" / "detected_attributes.json").read_text())["pairs"]
    assert [r["word"] for r in listed[0]["image1"]] == [
        "Male",
        "Young",
        "Asian",
        "Bangs",
        "Black Hair",
        "Big Nose",
    ]
