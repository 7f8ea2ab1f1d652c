"""Part-swap check: the fixed swaps, the split, recorded failures, the scoring and the JSON rows."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from models.attributes import REAL_FACES
from models.face_parts import MEAN_SHAPE68_UNIT, PART_WORDS
from utils.experiments import ground_truth
from utils.experiments import part_swap_check as psc
from utils.experiments.ground_truth import PairScore, Row
from utils.explain.ranking import RankingConfig
from utils.faces.canvas import Canvas


def _photos():
    return [
        psc.Photo("x", "x/1.jpg"),
        psc.Photo("x", "x/2.jpg"),
        psc.Photo("y", "y/1.jpg"),
    ]


def test_swap_specs_by_hand():
    specs = psc.swap_specs(_photos(), ("Eyes", "Nose"))
    # photo 0 and 1 (x): the only other identity's photo is 2; photo 2 (y): others [0, 1],
    # part k -> others[(2 * 2 + k) % 2]
    assert [(s.a, s.b, s.part) for s in specs] == [
        (0, 2, "Eyes"),
        (0, 2, "Nose"),
        (1, 2, "Eyes"),
        (1, 2, "Nose"),
        (2, 0, "Eyes"),
        (2, 1, "Nose"),
    ]
    assert len(psc.swap_specs(_photos())) == 3 * len(PART_WORDS)
    with pytest.raises(ValueError, match="unknown part"):
        psc.swap_specs(_photos(), ("Ears",))
    with pytest.raises(ValueError, match="two identities"):
        psc.swap_specs(_photos()[:2])


def test_split_never_mixes_identities(shared_dir):
    photos = psc.list_photos(shared_dir / "data" / "real_faces")
    tuning, held = (psc.split_photos(photos, s) for s in psc.SPLITS)
    ids_t, ids_h = {p.identity for p in tuning}, {p.identity for p in held}
    assert not ids_t & ids_h and len(tuning) + len(held) == len(photos) == 82
    assert (len(ids_h), len(held)) == (14, 34)
    for split in (tuning, held):
        ids = {p.identity for p in split}
        for s in psc.swap_specs(split):
            a, b = split[s.a], split[s.b]
            assert a.identity != b.identity and {a.identity, b.identity} <= ids
    with pytest.raises(ValueError, match="unknown split"):
        psc.split_photos(photos, "all")


def _face(seed: int, size: int = 112):
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3)).astype(np.uint8), (0, 0), 2.0)
    points = MEAN_SHAPE68_UNIT * (size / 2.0) + [size / 4.0, size / 3.5]
    return psc.Face(Canvas(image, "arcface-112", "test"), points)


def test_a_photo_without_a_face_is_a_recorded_failure():
    photos = _photos()

    class Aligner:
        def read(self, path):
            if path == "x/2.jpg":
                raise ValueError("no face found in x/2.jpg")
            return _face(sum(map(ord, path))).canvas

    faces, bad = psc.prepare_faces(photos, Aligner(), lambda img: _face(0).points68, progress=False)
    assert set(faces) == {0, 2} and "no face found" in bad[1]
    specs = psc.swap_specs(photos, ("Nose", "Mouth"))
    pairs, failures = psc.make_swap_pairs(specs, photos, faces, bad)
    # photo 1 fails its own two swaps and the one where it gives a part (2 <- 1, Mouth)
    assert [(f.spec.a, f.spec.b, f.stage) for f in failures] == [
        (1, 2, "align"),
        (1, 2, "align"),
        (2, 1, "align"),
    ]
    assert all("x/2.jpg" in f.error for f in failures)
    json.dumps([f.as_dict() for f in failures])
    assert len(pairs) == 3
    for p in pairs:
        assert p.changed == REAL_FACES.attributes.index(p.spec.part)
        differs = np.any(p.probe.image != p.counter.image, axis=2)
        assert differs.any() and not differs[~p.region].any()
        assert p.counter is faces[p.spec.a].canvas


def _fake_swap(sim_other, changed=4):
    """A swapped image whose 10 real-faces words are all present; j* = ``changed`` (Nose)."""
    n = len(REAL_FACES)
    cls = np.zeros(n, np.int64)
    probs = [np.array([0.9, 0.1]), np.array([0.7, 0.2, 0.1])] + [np.array([1.0])] * (n - 2)
    masks = np.zeros((n, 8, 8), bool)
    region = np.zeros((8, 8), bool)
    region[2:4, 2:4] = True
    J = np.zeros((n, 8, 8))
    J[changed, 2:4, 2:4] = 3.0
    J[changed, 0, 0] = 1.0  # 12 of 13 inside the region
    H_d = np.zeros((8, 8))
    H_d[2, 2], H_d[7, 7] = 1.0, 3.0  # 1 of 4 inside
    d = SimpleNamespace(
        H_d=H_d,
        attr_class=cls,
        sim_other=np.asarray(sim_other, float),
        masks=masks,
        J=J,
        mask_raw=lambda j: masks[j],
        attr_probs=probs,
    )
    ex = SimpleNamespace(
        directions=(d, d), vocabulary=REAL_FACES, similarity=0.5, both_masked=np.full(n, 0.5)
    )
    pair = SimpleNamespace(
        probe=SimpleNamespace(image=None),
        counter=SimpleNamespace(image=None),
        changed=changed,
        region=region,
    )
    return pair, ex


def test_paper_ranking_that_puts_the_swapped_part_first_is_a_hit():
    row = Row("paper", "ranking", "classes", RankingConfig("paper"))
    sims = np.full(10, 0.5)
    sims[4] = 0.8  # erasing the nose of A' brings it closest to A
    pair, ex = _fake_swap(sims)
    s = ground_truth.score_row(row, pair, ex, None, np.random.default_rng(0))
    assert (s.kept, s.n_present, s.top1, s.top3, s.rank) == (True, 10, 1.0, 1.0, 1)
    assert s.jmass == pytest.approx(12 / 13) and s.hmass == pytest.approx(1 / 4)
    sims[5] = 0.8  # tied with Mouth: half a hit, never a free one
    s = ground_truth.score_row(row, *_fake_swap(sims), None, np.random.default_rng(0))
    assert (s.top1, s.top3) == (0.5, 1.0)
    sims[[0, 1, 6]] = 0.9  # three words above: rank 4, no hit
    s = ground_truth.score_row(row, *_fake_swap(sims), None, np.random.default_rng(0))
    assert (s.rank, s.top1, s.top3) == (4, 0.0, 0.0)


def test_run_check_records_a_failing_pair_and_scores_the_rest(monkeypatch):
    calls = []

    def fake(nets, base, pair, i, rows, discriminants, rngs):
        calls.append(i)
        if i == 1:
            raise RuntimeError("explanation failed")
        return {
            r: PairScore(True, n_present=10 if i == 0 else 5, top1=1.0, top3=1.0, rank=1)
            for r in rows
        }

    monkeypatch.setattr(ground_truth, "_score_pair", fake)
    held = []

    class Context:
        def __init__(self, pair):
            self.pair = pair

        def __enter__(self):
            held.append(self.pair.changed)

        def __exit__(self, *exc):
            held.append(-1)
            return False

    pairs = [SimpleNamespace(changed=j) for j in (4, 5, 9)]
    errors: list = []
    rows = [Row("paper", "ranking", "classes", RankingConfig())]
    (s,) = ground_truth.run_check(
        None,
        None,
        pairs,
        rows,
        progress=False,
        context=Context,
        errors=errors,
        names=REAL_FACES.attributes,
    )
    assert calls == [0, 1, 2] and [i for i, _ in errors] == [1]
    assert held == [4, -1, 5, -1, 9, -1], "the context is left even when the pair fails"
    assert (s.pairs, s.pairs_total, s.top1) == (2, 2, 1.0)
    # tie-aware chance by hand: n = 10 and 5 words present
    assert s.chance_top1 == pytest.approx((1 / 10 + 1 / 5) / 2)
    assert s.chance_top3 == pytest.approx((3 / 10 + 3 / 5) / 2)
    assert s.per_attribute == {"Hair": [1.0, 1], "Nose": [1.0, 1]}
    with pytest.raises(RuntimeError, match="explanation failed"):
        ground_truth.run_check(None, None, pairs, rows, progress=False)


def test_json_rows_schema():
    summary = ground_truth.summarise(
        "both-shared",
        [PairScore(True, n_present=10, top1=1.0, top3=1.0, jmass=0.9, region_share=0.05)],
        [4],
        "classes",
        names=REAL_FACES.attributes,
    )
    failure = psc.Failure(psc.SwapSpec(0, 1, "Nose"), "explain", "boom", ("a.jpg", "b.jpg"))
    result = psc.CheckResult([summary], [failure], pairs=2, cpu_seconds=3.0)
    (row,) = psc.json_rows(result, "SFace", "held-out", failures_before=2)
    assert list(row)[:9] == [
        "network",
        "split",
        "mode",
        "top1",
        "top3",
        "chance_top1",
        "chance_top3",
        "mass",
        "pairs",
    ]
    assert (row["network"], row["mode"], row["mass"], row["pairs"]) == (
        "SFace",
        "both-shared",
        0.9,
        1,
    )
    assert (row["chance_top1"], row["failures"], row["cpu_s_per_pair"]) == (0.1, 3, 1.5)
    assert row["per_attribute"] == {"Nose": [1.0, 1]}
    json.dumps(row, allow_nan=False)
    table = psc.summary_table([row]).splitlines()
    assert table[0].split("|")[1].strip() == "network" and len(table) == 3
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[:6] == ["SFace", "held-out", "both-shared", "1.000", "1.000", "0.100 / 0.300"]
    assert cells[-1] == "1 (3 failed)"
    with pytest.raises(ValueError, match="row 0 has no network"):
        psc.summary_table([{"mode": "paper"}])


def test_default_swap_rows():
    rows = psc.default_swap_rows()
    assert [r.name for r in rows] == [
        "paper",
        "both-shared",
        "contrast",
        "contrast, V order",
        "random",
    ]
    rows = psc.default_swap_rows(RankingConfig(region_thresh=None), extra_thresholds=(0.2,))
    assert [r.name for r in rows][4:] == [
        "both-shared, ranking-thresh 0.2",
        "contrast, ranking-thresh 0.2",
        "contrast, V order, ranking-thresh 0.2",
        "random",
    ]
    assert [r.ranking.region_thresh for r in rows[4:7]] == [0.2] * 3
    assert rows[1].ranking.region_thresh is None and rows[6].ranking.contrast_order == "gain"


def test_cli_help_and_bad_root(tmp_path):
    import importlib

    script = importlib.import_module("part_swap_check")
    for action in script.build_parser()._actions:
        assert action.help and len(action.help) > 10, f"{action.option_strings} has no help"
    assert script.main(["--root", str(tmp_path / "missing"), "--no-progress"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('[{"mode": "paper"}]')
    assert script.main(["--show", str(bad)]) == 2
