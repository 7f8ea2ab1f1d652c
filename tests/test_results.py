"""Tests of the analysis of per-pair records (utils/experiments/analysis.py and results/ scripts).

The hand-made records in tests/data/records (values chosen by hand) are:

| file | match | s    | notes |
|------|-------|------|-------|
| 1    | 1     | 0.9  | genuine |
| 2    | 1     | 0.5  | genuine |
| 3    | 1     | 0.2  | genuine; an erased sim 0.95 that must NOT raise its score |
| 20   | 1     | 0.6  | genuine |
| 4    | 0     | 0.3  | 7 present attrs in image 1 (+ Smiling, see below), absent Brown Eyes 0.70 |
| 5    | 0     | 0.1  | image 1's erased sims below s; image 2 path missing on disk |
| 6    | 0     | -0.2 | image 1 has no record at all; absent Big Nose 0.9 in image 2 |
| 10   | 0     | 0.35 | |

In record 4, Smiling is present in image 1 but unrecorded.

Expected values are derived by hand in the comments, and AUC / TPR are also
recomputed with an independent pairwise (Mann-Whitney) count and an explicit
threshold sweep written here, on samples rebuilt from the raw JSON.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.attributes import ATTRIBUTES
from utils.experiments import analysis as A
from utils.experiments import words as W
from utils.experiments.words import top1_statistics

RECORDS = Path(__file__).resolve().parent / "data" / "records"
REPO = Path(__file__).resolve().parents[1]
MULTI = {0, 1, 2, 8}


# ----------------------------------------------------------------------------- independent oracle
def _score(s):
    return 1.0 - math.acos(max(-1.0, min(1.0, s))) / math.pi


def _raw_records() -> list[dict]:
    return [
        json.loads(p.read_text()) for p in sorted(RECORDS.glob("*.json"), key=lambda p: int(p.stem))
    ]


def _present(d: dict, i: int, j: int) -> bool:
    return j in MULTI or d[f"Attribute{i}-class"][j] == 0


def _erased(d: dict, i: int, j: int):
    v = d[f"attributes-image{i}"].get(f"image{i}-f_attr_{j}")
    return None if v is None or not _present(d, i, j) else v[1]


def _oracle_samples(kind: str, j: int | None = None):
    """Rebuild the samples from raw dicts with plain Python (a second formulation)."""
    scores, labels = [], []
    for d in _raw_records():
        for i in (1, 2):
            s = d["similarity"]
            if d["match"] == 0 and kind == "after":
                vals = [v for jj in range(30) if (v := _erased(d, i, jj)) is not None]
                s = max([s] + vals)
            elif d["match"] == 0 and kind == "attribute":
                v = _erased(d, i, j)
                s = s if v is None else v
            scores.append(_score(s))
            labels.append(d["match"])
    return np.array(scores), np.array(labels)


def _mann_whitney_auc(scores, labels) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def _sweep_tpr(scores, labels, target: float) -> float:
    """Max TPR over thresholds t (predict genuine when score >= t) whose FPR <= target."""
    best = 0.0
    for t in list(np.unique(scores)) + [np.inf]:
        pred = scores >= t
        fpr = (pred & (labels == 0)).sum() / (labels == 0).sum()
        if fpr <= target:
            best = max(best, (pred & (labels == 1)).sum() / (labels == 1).sum())
    return float(best)


@pytest.fixture(scope="module")
def records():
    recs, failures = A.load_records(A.list_json(RECORDS), A.TOP5_KEYS, progress=False)
    assert failures == [], failures
    return recs


# ----------------------------------------------------------------------------- scores and ROC
def test_verification_score_known_values():
    got = A.verification_score([1.0, -1.0, 0.0, 0.5, 1.0000001, -1.5])
    np.testing.assert_allclose(got, [1.0, 0.0, 0.5, 2.0 / 3.0, 1.0, 0.0], atol=1e-12)


def test_files_sorted_numerically():
    assert [p.stem for p in A.list_json(RECORDS)] == ["1", "2", "3", "4", "5", "6", "10", "20"]


@pytest.mark.parametrize(
    "kind,builder,hand_auc",
    [
        # Original: impostor s {0.3, 0.1, -0.2, 0.35}; genuine 0.9, 0.5, 0.6 beat all 4,
        # 0.2 beats 2 -> 14/16.
        ("original", A.original_samples, 0.875),
        # After: impostors 0.55, 0.33 | 0.1, 0.6 | -0.2, 0.05 | 0.62, 0.58;
        # genuine 0.9 -> 8, 0.5 -> 4, 0.6 -> 6 + tie 0.5, 0.2 -> 3: 21.5 / 32.
        ("after", A.after_samples, 21.5 / 32),
    ],
)
def test_mask_game_auc_and_tpr(records, kind, builder, hand_auc):
    scores, labels = builder(records)
    o_scores, o_labels = _oracle_samples(kind)
    np.testing.assert_allclose(scores, o_scores, atol=1e-12)
    np.testing.assert_array_equal(labels, o_labels)
    summary = A.roc_summary(scores, labels)
    assert summary["auc"] == pytest.approx(hand_auc, abs=1e-9)
    assert summary["auc"] == pytest.approx(_mann_whitney_auc(o_scores, o_labels), abs=1e-9)
    assert (summary["n_genuine"], summary["n_impostor"]) == (8, 8)
    for f in A.FPR_TARGETS:
        assert summary["tpr_at_fpr"][A.fpr_label(f)] == pytest.approx(
            _sweep_tpr(o_scores, o_labels, f), abs=1e-9
        ), f


def test_tpr_hand_values(records):
    tpr = A.roc_summary(*A.original_samples(records))["tpr_at_fpr"]
    # FPR 0 needs t > 0.35: genuine 0.9, 0.6, 0.5 pass -> 0.75; FPR <= 0.6 allows t = 0.2 -> 1.
    assert tpr["1e-6"] == tpr["0.4"] == 0.75 and tpr["0.6"] == tpr["1"] == 1.0
    tpr = A.roc_summary(*A.after_samples(records))["tpr_at_fpr"]
    # After, FPR 0 needs t > 0.62: only 0.9 -> 0.25;
    # FPR <= 0.4 admits 3 impostors (0.62, 0.6, 0.58) -> 0.9, 0.6 -> 0.5.
    assert tpr["0.1"] == 0.25 and tpr["0.4"] == 0.5


@pytest.mark.parametrize(
    "j,hand_auc",
    [
        # Gender: impostors 0.45, 0.25 | 0.05, 0.1 (unrecorded) | -0.2 (unrecorded), -0.1
        # | 0.40, 0.58; genuine 0.9 -> 8, 0.5 -> 7, 0.6 -> 8, 0.2 -> 4: 27 / 32.
        (0, 27 / 32),
        (28, None),
        (1, None),
        (2, None),
        (21, None),
        (13, 0.875),
    ],
)
def test_per_attribute_auc(records, j, hand_auc):
    scores, labels, changed = A.attribute_samples(records, j)
    o_scores, o_labels = _oracle_samples("attribute", j)
    np.testing.assert_allclose(scores, o_scores, atol=1e-12)
    auc = A.roc_summary(scores, labels)["auc"]
    assert auc == pytest.approx(_mann_whitney_auc(o_scores, o_labels), abs=1e-9)
    if hand_auc is not None:
        assert auc == pytest.approx(hand_auc, abs=1e-9)
    # Big Nose (28) is present and recorded in impostor images 4/1 and 10/1 only (6/2 is absent).
    if j == 28:
        assert changed == 2


def test_one_class_gives_null_not_nan():
    summary = A.roc_summary(np.array([0.2, 0.4]), np.array([1, 1]))
    assert summary["auc"] is None and set(summary["tpr_at_fpr"].values()) == {None}
    json.dumps(summary, allow_nan=False)
    assert A.fmt(summary["auc"]) == "n/a"


# ----------------------------------------------------------------------------- words
def _words(ranked):
    return [(w.word, round(w.similarity, 6)) for w in ranked]


def test_top5_words_by_hand(records):
    r4 = next(r for r in records if r.name == "4")
    # Image 1: Brown Eyes (0.70) is absent, Smiling present but unrecorded, Asian (0.32) is 6th.
    assert _words(A.top_words(r4, 1)) == [
        ("Big Nose", 0.55),
        ("Senior", 0.5),
        ("Female", 0.45),
        ("Gray Hair", 0.41),
        ("Bangs", 0.38),
    ]
    # Image 2: Bangs (0.9) is absent there; White (0.20) is 6th.
    assert _words(A.top_words(r4, 2)) == [
        ("no beard", 0.33),
        ("Brown Eyes", 0.29),
        ("Young", 0.28),
        ("Black Hair", 0.27),
        ("Male", 0.25),
    ]
    # Both masked: Oval Face (0.9) absent in both; multi-class heads worded by both classes.
    assert _words(A.both_masked_top(r4)) == [
        ("Big Nose", 0.5),
        ("Brown Eyes", 0.45),
        ("Female / Male", 0.4),
        ("Bangs", 0.35),
        ("Asian / White", 0.3),
    ]
    top = A.top_words(r4, 1)[0]
    assert top.score == pytest.approx(1 - math.acos(0.55) / math.pi, abs=1e-12)
    r5 = next(r for r in records if r.name == "5")
    assert _words(A.top_words(r5, 1)) == [("Bald", 0.08), ("Male", 0.05)]
    assert _words(A.top_words(r5, 2)) == [("Middle Aged", 0.6), ("Black", 0.15)]
    assert A.both_masked_top(r5) == []
    r6 = next(r for r in records if r.name == "6")
    assert A.top_words(r6, 1) == [] and _words(A.top_words(r6, 2)) == [
        ("Young", 0.05),
        ("Male", -0.1),
    ]


def test_top1_statistics_by_hand(records):
    # Impostor top-1s: 4 -> Big Nose, no beard; 5 -> Bald, Middle Aged; 6 -> (none), Young;
    # 10 -> Big Nose, Female.
    stats = top1_statistics(records, ties="flag")  # the paper's top-1
    assert (stats["n_pairs"], stats["n_images"], stats["n_without_word"]) == (4, 8, 1)
    by_attr = [(r["attribute"], r["count"]) for r in stats["by_attribute"] if r["count"]]
    assert by_attr == [("Age", 2), ("Big Nose", 2), ("Gender", 1), ("Bald", 1), ("no beard", 1)]
    assert len(stats["by_attribute"]) == 30
    assert [(r["word"], r["count"]) for r in stats["by_word"]] == [
        ("Big Nose", 2),
        ("Female", 1),
        ("Young", 1),
        ("Middle Aged", 1),
        ("Bald", 1),
        ("no beard", 1),
    ]
    assert sum(r["fraction"] for r in stats["by_word"]) == pytest.approx(1.0)
    # 1 -> Big Nose, Male; 2 -> Bangs, Female; 3 -> Male, none; 20 -> Senior x2
    genuine = top1_statistics(records, match=1, ties="flag")
    assert {r["word"]: r["count"] for r in genuine["by_word"]} == {
        "Big Nose": 1,
        "Male": 2,
        "Bangs": 1,
        "Female": 1,
        "Senior": 2,
    }


# ----------------------------------------------------------------------------- bad records
BAD = {
    "90.json": ("{not json", "malformed JSON"),
    "91.json": (None, "'match'"),  # key removed
    "92.json": ("nan", "non-finite"),  # similarity NaN (json module reads the NaN literal)
    "93.json": ("cos", "outside [-1, 1]"),
    "94.json": ("cls", "Attribute1-class"),
    "95.json": ("key", "image1-f_attr_31"),
    "96.json": ("[1, 2]", "JSON object"),
    "97.json": ("erased", "'image2-f_attr_0'"),
}


def _bad_folder(tmp_path: Path) -> Path:
    fold = tmp_path / "run" / "json"
    shutil.copytree(RECORDS, fold)
    base = json.loads((RECORDS / "4.json").read_text())
    for name, (kind, _) in BAD.items():
        d = json.loads(json.dumps(base))
        if kind is None:
            del d["match"]
        elif kind == "nan":
            d["similarity"] = float("nan")
        elif kind == "cos":
            d["similarity"] = 1.5
        elif kind == "cls":
            d["Attribute1-class"][0] = 7
        elif kind == "key":
            d["attributes-image1"]["image1-f_attr_31"] = [0.1, 0.2]
        elif kind == "erased":
            d["attributes-image2"]["image2-f_attr_0"] = [0.1, "x"]
        text = kind if kind in ("{not json", "[1, 2]") else json.dumps(d)
        (fold / name).write_text(text)
    return fold


def test_bad_records_reported_and_skipped(tmp_path, capsys):
    fold = _bad_folder(tmp_path)
    recs, failures = A.load_records(A.list_json(fold), progress=False)
    assert [r.name for r in recs] == ["1", "2", "3", "4", "5", "6", "10", "20"]
    assert len(failures) == len(BAD)
    for fail, (name, (_, expected)) in zip(failures, BAD.items(), strict=True):
        assert (
            fail["file"].endswith(name) and name in fail["error"] and expected in fail["error"]
        ), fail
    assert "skipping" in capsys.readouterr().out


def test_present_but_unrecorded_is_not_an_error(records):
    r4 = next(r for r in records if r.name == "4")
    assert 26 in r4.present(1) and 26 not in r4.erased[0]
    assert "Smiling" not in [w.word for w in A.top_words(r4, 1, k=None)]


# ----------------------------------------------------------------------------- scripts
def _script(name: str):
    import importlib

    return importlib.import_module(f"results.{name}")


def test_auc_script_outputs_and_skips(tmp_path):
    fold = _bad_folder(tmp_path)
    code = _script("AUC_most_attributes").main(
        ["--Json-fold", str(fold), "--no-progress", "--dpi", "50"]
    )
    out = fold.parent / "analysis"  # default: <Json-fold>/../analysis
    assert code == 3
    summary = json.loads((out / "auc_most_attributes.json").read_text())
    assert summary["n_pairs"] == 8 and summary["n_skipped"] == len(BAD)
    assert summary["Original"]["auc"] == pytest.approx(0.875, abs=1e-9)
    assert summary["After"]["auc"] == pytest.approx(21.5 / 32, abs=1e-9)
    failures = (out / "failures-auc_most_attributes.jsonl").read_text().splitlines()
    assert len(failures) == len(BAD) and "91.json" in failures[1]
    img = cv2.imread(str(out / "roc_most_attributes.png"))
    assert img is not None and img.shape == (250, 300, 3)  # (5, 6) inches at 50 dpi
    assert "| After " in (out / "auc_most_attributes.md").read_text()


def test_auc_in_attributes_script(tmp_path):
    code = _script("AUC_in_attributes").main(
        ["--Json-fold", str(RECORDS), "--output", str(tmp_path), "--no-progress", "--sort", "auc"]
    )
    assert code == 0
    summary = json.loads((tmp_path / "auc_in_attributes.json").read_text())
    rows = {r["attribute"]: r for r in summary["attributes"]}
    assert set(rows) == set(ATTRIBUTES)
    assert rows["Gender"]["auc"] == pytest.approx(27 / 32, abs=1e-9)
    assert rows["Gender"]["delta_auc"] == pytest.approx(27 / 32 - 0.875, abs=1e-9)
    aucs = [r["auc"] for r in summary["attributes"]]
    assert aucs == sorted(aucs)
    header = (tmp_path / "auc_in_attributes.csv").read_text().splitlines()[0]
    assert header.startswith("attribute,n_erased,delta_auc,AUC,TPR@FPR=1e-6")


def test_top5_script_figures(tmp_path):
    code = _script("Top_5_attributes").main(
        [
            "--Json-fold",
            str(RECORDS),
            "--output",
            str(tmp_path),
            "--no-progress",
            "--figsize",
            "4",
            "3",
            "--dpi",
            "50",
        ]
    )
    assert code == 0
    figs = sorted((tmp_path / "top5").glob("*.png"))
    assert len(figs) == 8
    for fig in figs:
        img = cv2.imread(str(fig))
        assert img is not None and img.shape == (150, 200, 3), fig
        assert img.std() > 5, f"{fig} looks blank"
    summary = json.loads((tmp_path / "top5_attributes.json").read_text())
    assert [p["name"] for p in summary["pairs"]] == ["1", "2", "3", "4", "5", "6", "10", "20"]
    p5 = summary["pairs"][4]
    assert p5["figure_notes"] and "missing.png" in p5["figure_notes"][0]
    assert [w["word"] for w in summary["pairs"][3]["image1"]] == [
        "Big Nose",
        "Senior",
        "Female",
        "Gray Hair",
        "Bangs",
    ]


def test_statistic_script_and_alias(tmp_path):
    alias = _script("Stastic_most_attributes")
    assert alias.main is _script("Statistic_most_attributes").main
    assert (
        alias.main(
            [
                "--Json-fold",
                str(RECORDS),
                "--output",
                str(tmp_path),
                "--no-progress",
                "--figsize",
                "4",
                "4",
                "--dpi",
                "40",
            ]
        )
        == 0
    )
    stats = json.loads((tmp_path / "top1_statistics.json").read_text())
    assert stats["by_word"][0] == {
        "word": "Big Nose",
        "attribute": "Big Nose",
        "index": 28,
        "class": None,
        "count": 2,
        "ties": 0,
        "fraction": 2 / 7,
    }
    img = cv2.imread(str(tmp_path / "top1_statistics.png"))
    assert img is not None and img.shape == (160, 160, 3)
    assert (
        (tmp_path / "top1_by_word.csv")
        .read_text()
        .splitlines()[1]
        .startswith("Big Nose,Big Nose,28,,2,")
    )


def test_missing_folder_is_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exc:
        _script("AUC_most_attributes").main(
            ["--Json-fold", str(tmp_path / "nope"), "--no-progress"]
        )
    assert exc.value.code == 2


@pytest.mark.parametrize(
    "cwd,script",
    [("results", "AUC_most_attributes.py"), (".", "results/Stastic_most_attributes.py")],
)
def test_scripts_run_from_shell(tmp_path, cwd, script):
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run(
        [
            sys.executable,
            script,
            "--Json-fold",
            str(RECORDS),
            "--output",
            str(tmp_path),
            "--no-progress",
        ],
        check=False,
        cwd=REPO / cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "used all 8 files" in proc.stdout


def test_load_rgb_found_missing_unreadable(tmp_path):
    from utils.experiments.figures import load_rgb

    rgb, note = load_rgb("images/a1.png", [None, RECORDS])
    bgr = cv2.imread(str(RECORDS / "images" / "a1.png"))
    assert note == "" and np.array_equal(rgb, bgr[:, :, ::-1])
    assert load_rgb("images/none.png", [RECORDS])[0] is None
    (tmp_path / "text.png").write_text("not an image")
    img, note = load_rgb("text.png", [tmp_path])
    assert img is None and "unreadable" in note and "text.png" in note


def test_run_agreement_counts_changed_words_and_class_sets(records, tmp_path):
    from utils.run.records import parse_record

    raw = _raw_records()
    changed = json.loads(json.dumps(raw))
    k, d = next(
        (k, d)
        for k, d in enumerate(changed)
        if sum(_erased(d, 1, j) is not None for j in range(30)) >= 4
    )
    present = [j for j in range(30) if _erased(d, 1, j) is not None]
    ranked = sorted(present, key=lambda j: (-_erased(d, 1, j), j))
    d["attributes-image1"][f"image1-f_attr_{ranked[-1]}"][1] = 1.0  # now image 1's top-1 word
    changed[(k + 1) % len(changed)]["class1"] = [999]
    changed[(k + 2) % len(changed)]["similarity"] -= 0.25
    names = sorted(RECORDS.glob("*.json"), key=lambda p: int(p.stem))
    other = [parse_record(c, path.name) for c, path in zip(changed, names, strict=True)]
    got = W.run_agreement(records, other, k=3)
    n = len(raw)
    with_words = sum(
        1 for c in raw for i in (1, 2) if any(_erased(c, i, j) is not None for j in range(30))
    )
    assert got["pairs"] == n and got["images"] == 2 * n
    assert got["top1_word_agreement"] == pytest.approx((with_words - 1) / with_words)
    assert got["class_set_agreement"] == pytest.approx((2 * n - 1) / (2 * n))
    assert got["max_abs_similarity_difference"] == pytest.approx(0.25)
    # image 1 of pair k keeps 2 of its 3 top attributes (the last moved up, the 3rd dropped)
    assert got["topk_overlap"] == pytest.approx((with_words - 1 + 2 / 3) / with_words)
    assert W.run_agreement(records, records)["top1_word_agreement"] == 1.0


def test_empty_mask_statistics_by_hand(records, tmp_path):
    from utils.run.records import parse_record

    raw = _raw_records()
    names = sorted(RECORDS.glob("*.json"), key=lambda p: int(p.stem))
    expected_images = expected_all = expected_top = 0
    built = []
    for k, (original, path) in enumerate(zip(raw, names, strict=True)):
        d = json.loads(json.dumps(original))
        for i in (1, 2):
            present = [j for j in range(30) if _erased(d, i, j) is not None]
            fractions = [0.0] * 30  # k % 3 == 0: every mask empty
            if k % 3:  # 1: every present head erased something but the top-1 word; 2: all did
                for j in present:
                    fractions[j] = 0.1
                if present and k % 3 == 1:
                    fractions[max(present, key=lambda j: (_erased(d, i, j), -j))] = 0.0
            d[f"mask-fraction{i}"] = fractions
            if d["match"] == 0 and present:
                expected_images += 1
                expected_all += k % 3 == 0
                expected_top += k % 3 != 2
        built.append(parse_record(d, path.name))
        (tmp_path / "json").mkdir(exist_ok=True)
        (tmp_path / "json" / path.name).write_text(json.dumps(d))
    got = W.empty_mask_statistics(built)
    assert (got["images"], got["all_masks_empty"], got["top1_mask_empty"]) == (
        expected_images,
        expected_all,
        expected_top,
    )
    assert expected_images > expected_top > expected_all > 0
    assert W.empty_mask_statistics(records)["images"] == 0  # records without fractions
    # Statistic_most_attributes.py reports the same counts (impostor pairs, its default)
    assert (
        _script("Statistic_most_attributes").main(
            [
                "--Json-fold",
                str(tmp_path / "json"),
                "--output",
                str(tmp_path / "out"),
                "--no-progress",
                "--figsize",
                "4",
                "4",
                "--dpi",
                "40",
            ]
        )
        == 0
    )
    shown = json.loads((tmp_path / "out" / "top1_statistics.json").read_text())["empty_masks"]
    assert (shown["images"], shown["all_masks_empty"], shown["top1_mask_empty"]) == (
        expected_images,
        expected_all,
        expected_top,
    )
