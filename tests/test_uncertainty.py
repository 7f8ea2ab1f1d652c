"""Section 4 (METHOD.md section 6): evidential uncertainty, candidates, intersection erasing.

Also one end-to-end run of the script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from utils.explain.erasing import Eraser
from utils.experiments.uncertainty import (
    RECORD_KEYS,
    ImageExplanation,
    UncertaintyConfig,
    candidate_attributes,
    default_json_fold,
    erase_regions,
    evidential_uncertainty,
    identification_joint_maps,
    intersection_region,
    parse_image_lines,
    quantity_experiment,
    raising_attributes,
    random_attributes,
    run_dir_name,
)

REPO = Path(__file__).resolve().parents[1]


class MeanLogits(nn.Module):
    """Stub net: logits = per-channel mean of the raw uint8 image (preprocess keeps the pixels)."""

    kind = "evidential"

    def __init__(self) -> None:
        super().__init__()
        self.preprocess = lambda imgs: torch.from_numpy(np.stack(imgs).astype(np.float32)).permute(
            0, 3, 1, 2
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class AnyBlack(nn.Module):
    """Stub recognition net: class 1 when some pixel is exactly black (erased), else class 0."""

    kind = "classifier"

    def __init__(self) -> None:
        super().__init__()
        self.preprocess = MeanLogits().preprocess
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        z = (x == 0).flatten(1).any(dim=1).double() * 10
        return torch.stack([10 - z, z], dim=1)


def test_evidential_uncertainty_by_hand():
    # logits (2, -1, 0.5): evidence 100 * (2, 0, 0.5) = (200, 0, 50), alpha (201, 1, 51),
    # u = 3 / 253.
    # logits (-3, -3, -3): no evidence, alpha (1, 1, 1), u = 3 / 3 = 1.
    a = np.empty((2, 2, 3), np.uint8)
    # channel means 2, 0, 1 -> evidence (200, 0, 100), alpha (201, 1, 101), u = 3 / 303
    a[...] = (
        2,
        0,
        1,
    )
    b = np.zeros((2, 2, 3), np.uint8)  # all zero logits: u = 1
    u, top = evidential_uncertainty(MeanLogits(), [a, b, a], evidence_scale=100, batch_size=2)
    np.testing.assert_allclose(u, [3 / 303, 1.0, 3 / 303], rtol=1e-12)
    assert top[0] == 0
    from utils.face_world.losses import edl_uncertainty

    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, -3.0, -3.0]], dtype=torch.float64)
    np.testing.assert_allclose(edl_uncertainty(logits, 100).numpy(), [3 / 253, 1.0], rtol=1e-12)


def test_candidates_present_and_confident():
    cls = np.ones(30, np.int64)  # binary heads class 1 = absent
    conf = np.full(30, 0.5)
    cls[0], conf[0] = 1, 0.9  # Gender = Female: multi-class, always present, confident -> candidate
    cls[1], conf[1] = 2, 0.8  # Age: present but confidence not > 0.8 -> no
    cls[3], conf[3] = 0, 0.95  # Bald: present, confident -> candidate
    cls[4], conf[4] = 1, 0.99  # Wavy Hair absent (class 1), however confident -> no
    cls[8], conf[8] = 4, 0.81  # Hair color "Unknown Hair": multi-class -> candidate
    cls[29], conf[29] = 0, 0.79  # Pointy Nose present, not confident -> no
    assert candidate_attributes(cls, conf, 0.8) == [0, 3, 8]
    assert candidate_attributes(cls, conf, 0.0) == [0, 1, 2, 3, 8, 29]


def test_joint_maps_and_regions_by_hand():
    H_t = torch.tensor([[0.0, 0.5], [1.0, 1.0]])
    H_attr = torch.tensor(
        [[[1.0, 1.0], [0.5, 0.0]], [[0.3, 0.3], [0.3, 0.3]], [[1.0, 0.0], [0.0, 0.0]]]
    )
    J = identification_joint_maps(H_t, H_attr).numpy()
    # products (0, .5, .5, 0) -> (0, 1, 1, 0); (0, .15, .3, .3) -> (0, .5, 1, 1);
    # (0, 0, 0, 0) constant -> zeros
    np.testing.assert_allclose(
        J, [[[0, 1], [1, 0]], [[0, 0.5], [1, 1]], [[0, 0], [0, 0]]], atol=1e-6
    )
    masks = erase_regions(np.array([[0.1, 0.0999], [0.5, 0.0]]), 0.1)
    assert masks.tolist() == [[True, False], [True, False]]  # >= thresh (0.1 itself is erased)
    assert identification_joint_maps(H_t, H_attr[:0]).shape == (0, 2, 2)


def test_ranking_intersection_and_random_choice():
    assert raising_attributes(0.5, {3: 0.6, 5: 0.7, 7: 0.4, 9: 0.5, 11: 0.7}) == [
        5,
        11,
        3,
    ]  # ties: lower index
    assert raising_attributes(0.5, {3: 0.5, 7: 0.1}) == []
    top = np.zeros((4, 4), bool)
    top[:2] = True
    left = np.zeros((4, 4), bool)
    left[:, :2] = True
    corner = np.zeros((4, 4), bool)
    corner[3, 3] = True
    masks = {3: top, 5: left, 7: corner}
    expected = np.zeros((4, 4), bool)
    expected[:2, :2] = True
    assert np.array_equal(intersection_region(masks, [3, 5]), expected)
    assert not intersection_region(masks, [3, 5, 7]).any()  # empty intersection
    assert np.array_equal(intersection_region(masks, [7]), corner)
    assert intersection_region(masks, []) is None
    assert top.sum() == 8 and left.sum() == 8  # inputs not modified
    draw = random_attributes([2, 4, 6, 8, 10], 3, seed=1, index=7, n=3)
    assert len(draw) == 3 and set(draw) <= {2, 4, 6, 8, 10} and draw == sorted(draw)
    assert draw == random_attributes([2, 4, 6, 8, 10], 3, seed=1, index=7, n=3)
    assert len({tuple(random_attributes(list(range(20)), 3, 0, i, 1)) for i in range(10)}) > 1
    assert (
        random_attributes([1, 2], 5, 0, 0, 1) == [1, 2]
        and random_attributes([1, 2], 0, 0, 0, 1) == []
    )


def _explanation(u_attr: list[float], masks: np.ndarray) -> ImageExplanation:
    """Hand-made explanation of an 8x8 grey image: candidates 3, 5, 7, 9, 4x4 masks (raw 8x8)."""
    img = np.full((8, 8, 3), 200, np.uint8)
    k = len(u_attr)
    return ImageExplanation(
        pred_class=0,
        pred_score=1.0,
        attr_class=np.zeros(30, np.int64),
        attr_conf=np.ones(30),
        candidates=[3, 5, 7, 9][:k],
        H_t=np.zeros((4, 4)),
        H_attr=np.zeros((k, 4, 4)),
        J=np.zeros((k, 4, 4)),
        masks=masks,
        mask_fraction=masks.reshape(k, -1).mean(1),
        u_original=0.5,
        u_attr=np.asarray(u_attr),
        evidential_class=0,
        eraser=Eraser(img, "black"),
    )


def test_quantity_experiment_rules():
    top = np.zeros((4, 4), bool)
    top[:2] = True
    left = np.zeros((4, 4), bool)
    left[:, :2] = True
    corner = np.zeros((4, 4), bool)
    corner[3, 3] = True
    empty = np.zeros((4, 4), bool)
    # u: 3 -> 0.6 (raises), 5 -> 0.7 (raises most), 7 -> 0.4 (lowers),
    # 9 -> 0.9 (raises, but its region is empty)
    ex = _explanation([0.6, 0.7, 0.4, 0.9], np.stack([top, left, corner, empty]))
    R = AnyBlack()
    cfg = UncertaintyConfig(erase_nums=(1, 2, 3, 4), random_baseline=True, seed=3)
    q = quantity_experiment(ex, R, cfg, index=0)
    assert [q[n]["erased-attributes"] for n in (1, 2, 3, 4)] == [[9], [9, 5], [9, 5, 3], [9, 5, 3]]
    assert all(q[n]["qualifying"] == 3 for n in q)  # 7 lowers u: never erased by the ranking
    # N=1: region of 9 is empty -> unchanged, prediction of the original reused (class 0)
    assert (
        q[1]["intersection-empty"]
        and q[1]["mask-fraction"] == 0.0
        and q[1]["predicted-identity"] == 0
    )
    assert all(q[n]["intersection-empty"] for n in (2, 3, 4))  # empty AND anything is empty
    ex2 = _explanation([0.6, 0.7, 0.4], np.stack([top, left, corner]))
    q2 = quantity_experiment(ex2, R, cfg, index=0)
    assert (
        q2[1]["erased-attributes"] == [5]
        and q2[1]["mask-fraction"] == 0.5
        and q2[1]["predicted-identity"] == 1
    )
    # N=2: top AND left = the 2x2 top-left quadrant of the 4x4 map = 4x4 raw pixels of 8x8
    # -> 1/4 erased
    assert q2[2]["erased-attributes"] == [5, 3] and q2[2]["mask-fraction"] == 0.25
    # N=3 and N=4: only two qualify -> the intersection of those two (fewer than N)
    assert q2[3]["erased-attributes"] == q2[4]["erased-attributes"] == [5, 3]
    assert not q2[3]["intersection-empty"] and q2[4]["predicted-identity"] == 1
    # random baseline: as many attributes as the ranking used, drawn from the candidates
    for n in (1, 2, 3, 4):
        r = q2[n]["random"]
        assert len(r["erased-attributes"]) == len(q2[n]["erased-attributes"])
        assert set(r["erased-attributes"]) <= {3, 5, 7}
        region = intersection_region(ex2.mask_dict(), r["erased-attributes"])
        assert r["mask-fraction"] == pytest.approx(region.mean())
        assert r["predicted-identity"] == int(region.any())
    # no attribute raises u: nothing erased, R not even run
    ex3 = _explanation([0.1, 0.5], np.stack([top, left]))
    R3 = AnyBlack()
    q3 = quantity_experiment(ex3, R3, cfg, index=0)
    assert all(q3[n]["erased-attributes"] == [] and not q3[n]["intersection-empty"] for n in q3)
    assert all(q3[n]["random"]["erased-attributes"] == [] for n in q3) and R3.calls == 0


def test_image_list_parsing(tmp_path):
    items = parse_image_lines(
        ["# c", "a.png 3", '"b c.png" 0', "x.png", "y.png cat", "", "z.png 2 1"], tmp_path
    )
    assert [(i.index, i.line_no, i.label) for i in items] == [
        (0, 2, 3),
        (1, 3, 0),
        (2, 4, -1),
        (3, 5, -1),
        (4, 7, -1),
    ]
    assert items[1].path == str(tmp_path / "b c.png") and items[0].error is None
    assert "expected 2 fields" in items[2].error and "non-negative integer" in items[3].error


def test_visualization_default_reads_the_scripts_default_output():
    import quantity_single_person_uncertain as script

    args = script.build_parser().parse_args([])
    name = run_dir_name(Path(args.dataset_list).stem, **vars(args))
    assert default_json_fold() == Path(args.output_dir) / name / "json"
    assert (
        args.Erase_num == [1, 2, 3]
        and args.thresh == 0.1
        and args.attr_conf == 0.8
        and args.evidence_scale == 100
    )
    for action in script.build_parser()._actions:
        assert action.help, f"flag {action.option_strings} has no help"


# ------------------------------------------------------------------------------ end to end
ARCH = {
    "recognition": ("FaceWorld-recognition", {"width": 4, "num_classes": 5}),
    "attribute": ("FaceWorld-attribute", {"width": 4}),
    "uncertainty": ("FaceWorld-evidential", {"width": 4, "num_classes": 5, "input_size": 32}),
}


def _run(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _strict(path: Path):
    def bad(c):
        raise ValueError(f"non-finite constant {c} in {path}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=bad)


@pytest.fixture(scope="module")
def face_world_run(tmp_path_factory):
    from models import get_network
    from utils.face_world import render, sample_identity, sample_nuisance

    root = tmp_path_factory.mktemp("unc")
    flags = []
    for role, (name, arch) in ARCH.items():
        torch.manual_seed(len(role))
        torch.save(get_network(name, weights=False, **arch).state_dict(), root / f"{role}.pth")
        flags += [
            f"--{role}-weights",
            str(root / f"{role}.pth"),
            f"--{role}-arch",
            json.dumps(arch),
        ]
    (root / "img").mkdir()
    for i in range(4):
        cv2.imwrite(
            str(root / "img" / f"face {i}.png"),
            render(sample_identity(i), sample_nuisance(10 + i), size=72, with_masks=False).image,
        )
    (root / "ids.txt").write_text(
        '"img/face 0.png" 0\n"img/face 1.png" 1\nimg/missing.png 2\n'
        '"img/face 2.png" 2\nbad line here\n"img/face 3.png" 3\n'
    )
    common = [
        "--dataset-list",
        str(root / "ids.txt"),
        "--device",
        "cpu",
        "--attr-conf",
        "0.3",
        "--Erase_num",
        "1",
        "2",
        "3",
        "--output-dir",
        str(root / "out"),
        *flags,
    ]
    res = _run("quantity_single_person_uncertain.py", common, root)
    run = (
        root
        / "out"
        / "uncertainty-ids-FaceWorld-recognition-FaceWorld-evidential-erase-black-attr-conf-0.3"
    )
    return root, common, run, res


def test_run_writes_strict_json_with_documented_keys(face_world_run):
    from models import get_network
    from utils.faces.image_io import read_image

    root, _, run, res = face_world_run
    assert res.returncode == 3, res.stderr[-3000:]
    assert sorted(p.name for p in (run / "json").iterdir()) == [
        "0.json",
        "1.json",
        "3.json",
        "5.json",
    ]
    failures = [json.loads(line) for line in (run / "failures.jsonl").read_text().splitlines()]
    assert [(f["image"], f["stage"]) for f in failures] == [(2, "read"), (4, "parse")]
    R = get_network(
        ARCH["recognition"][0], weights=root / "recognition.pth", **ARCH["recognition"][1]
    )
    E = get_network(
        ARCH["uncertainty"][0], weights=root / "uncertainty.pth", **ARCH["uncertainty"][1]
    )
    records = []
    for n, i in {0: 0, 1: 1, 3: 2, 5: 3}.items():
        rec = _strict(run / "json" / f"{n}.json")
        records.append(rec)
        assert list(rec) == list(RECORD_KEYS)
        assert rec["label"] == i and rec["index"] == n and rec["num-classes"] == 5
        img = read_image(root / "img" / f"face {i}.png")
        with torch.inference_mode():
            logits = E(E.preprocess([img])).double().numpy()[0]
            probs = torch.softmax(R(R.preprocess([img])).double(), 1).numpy()[0]
        alpha = np.maximum(logits, 0) * 100 + 1
        assert rec["uncertainty-original"] == pytest.approx(5 / alpha.sum(), rel=1e-5)
        assert rec["predicted-identity"] == int(probs.argmax()) and rec[
            "predicted-score"
        ] == pytest.approx(probs.max())
        assert rec["correct"] == (rec["predicted-identity"] == i)
        cls, conf = rec["Attribute-class"], rec["Attribute-score"]
        assert len(cls) == len(conf) == len(rec["Attribute-word"]) == 30
        assert rec["candidates"] == [
            j for j in range(30) if rec["Attribute-present"][j] and conf[j] > 0.3
        ]
        attrs = rec["uncertainty-attributes"]
        assert sorted(a["attribute"] for a in attrs) == rec["candidates"]
        us = [a["uncertainty"] for a in attrs]
        assert us == sorted(us, reverse=True) and all(0 < u <= 1 for u in us)
        for a in attrs:
            assert a["word"] == rec["Attribute-word"][a["attribute"]]
            assert a["delta"] == pytest.approx(a["uncertainty"] - rec["uncertainty-original"])
            if a["mask-fraction"] == 0:  # nothing erased: the erased image is the original
                assert a["uncertainty"] == pytest.approx(rec["uncertainty-original"], rel=1e-6)
        if rec["Attribute-class"][0] == 1 and 0 in rec["candidates"]:
            assert next(a["word"] for a in attrs if a["attribute"] == 0) == "Female"
        raising = [a["attribute"] for a in attrs if a["uncertainty"] > rec["uncertainty-original"]]
        for n_erase in ("1", "2", "3"):
            q = rec["quantity"][n_erase]
            assert (
                q["qualifying"] == len(raising)
                and q["erased-attributes"] == raising[: int(n_erase)]
            )
            assert len(q["random"]["erased-attributes"]) == len(q["erased-attributes"])
            assert q["correct"] == (q["predicted-identity"] == i)
    assert sum(len(r["candidates"]) for r in records) > 0, (
        "no candidate at all: the test exercises nothing"
    )
    summary = _strict(run / "summary.json")
    assert summary["images"] == 4 and summary["failed"] == 2 and summary["missing"] == 2
    for row in summary["quantity"]:
        n = str(row["N"])
        assert row["accuracy-before"] == pytest.approx(np.mean([r["correct"] for r in records]))
        assert row["accuracy-after"] == pytest.approx(
            np.mean([r["quantity"][n]["correct"] for r in records])
        )
        assert row["accuracy-after-random"] == pytest.approx(
            np.mean([r["quantity"][n]["random"]["correct"] for r in records])
        )
    text = (run / "summary.txt").read_text()
    assert "acc after (random)" in text and "none qualify" in text and "unchanged" in text


def test_resume_and_usage_errors(face_world_run, tmp_path, caplog):
    import quantity_single_person_uncertain as script
    from utils.experiments.uncertainty import main

    root, common, run, _ = face_world_run
    before = {p.name: p.read_bytes() for p in (run / "json").iterdir()}
    with caplog.at_level("INFO", logger="sim2word.uncertainty"):
        assert main(script.build_parser(), [*common, "--limit", "2"]) == 0
    assert "done 0, skipped (already done) 2, failed 0" in caplog.text
    assert {p.name: p.read_bytes() for p in (run / "json").iterdir()} == before
    # other settings: another run folder (never mixed with the first)
    assert main(script.build_parser(), [*common, "--limit", "1", "--thresh", "0.3"]) == 0
    other = run.parent / run.name.replace("-attr-conf", "-thresh-0.3-attr-conf")
    assert (other / "json" / "0.json").is_file() and sorted(
        p.name for p in (other / "json").iterdir()
    ) == ["0.json"]
    caplog.clear()
    assert main(script.build_parser(), [*common, "--dataset-list", str(tmp_path / "nope.txt")]) == 2
    assert "nope.txt" in caplog.text and "not found" in caplog.text
    with pytest.raises(SystemExit) as exc:
        script.build_parser().parse_args(["--Erase_num", "0"])
    assert exc.value.code == 2


def test_visualization_one_chart_per_image(face_world_run, tmp_path, capsys):
    _, _, run, _ = face_world_run
    # a bad file is skipped, not fatal
    (run / "json" / "9.json").write_text('{"uncertainty-original": NaN}')
    try:
        res = _run(
            "results/uncertainty_visualization.py",
            [
                "--Json-fold",
                str(run / "json"),
                "--Save-fold",
                str(tmp_path),
                "--figsize",
                "6",
                "3",
                "--dpi",
                "50",
            ],
            REPO / "results",
        )
    finally:
        (run / "json" / "9.json").unlink()
    assert res.returncode == 3, res.stderr[-3000:]
    charts = sorted(p.name for p in tmp_path.glob("*.png"))
    assert charts == ["0.png", "1.png", "3.png", "5.png"]
    for name in charts:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (150, 300, 3)
    failures = (tmp_path / "failures-uncertainty_visualization.jsonl").read_text().splitlines()
    assert len(failures) == 1 and "9.json" in failures[0]
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "uncertainty_visualization", REPO / "results" / "uncertainty_visualization.py"
    )
    viz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(viz)
    assert viz.main(["--Json-fold", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
