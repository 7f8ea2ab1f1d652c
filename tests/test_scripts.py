"""End-to-end runs of the experiment scripts on a tiny pair list with tiny random-weight nets."""

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

from utils.run.records import REQUIRED_KEYS

REPO = Path(__file__).resolve().parents[1]
ARCH = {
    "recognition": ("FaceWorld-recognition", {"width": 4, "num_classes": 7, "input_size": 64}),
    "attribute": ("FaceWorld-attribute", {"width": 4, "input_size": 64}),
    "verification": (
        "FaceWorld-verification",
        {"width": 4, "embedding_size": 16, "input_size": 32},
    ),
}
RUN_DIR = "scores-group-pairs-FaceWorld-verification-topk-1-erase-black-thresh-0.2"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from models import get_network

    root = tmp_path_factory.mktemp("s2w")
    flags = []
    for role, (name, arch) in ARCH.items():
        torch.manual_seed(len(role))
        net = get_network(name, weights=False, **arch)
        torch.save(net.state_dict(), root / f"{role}.pth")
        flags += [
            f"--{role}-weights",
            str(root / f"{role}.pth"),
            f"--{role}-arch",
            json.dumps(arch),
        ]
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    for i, (h, w) in enumerate([(70, 60), (64, 64), (50, 80), (90, 72)]):
        base = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(root / "img" / f"face {i}.png"), base)
    (root / "pairs.txt").write_text(
        "# tiny list\n"
        '"face 0.png" "face 1.png" 1\n'
        '"face 2.png" "face 3.png" 0\n'
        '"face 1.png" missing.png 0\n'
        '"face 3.png" "face 0.png" 1\n'
        "bad line\n"
    )
    common = [
        "--pair-list",
        str(root / "pairs.txt"),
        "--image-root",
        str(root / "img"),
        "--device",
        "cpu",
        "--batch-size",
        "7",
        "--thresh",
        "0.2",
        *flags,
    ]
    return root, common


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny nets: one intra-op thread avoids OpenMP oversubscription on shared CI cores.

    That runs 30x faster here.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def run_script(script, args, cwd):
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


def strict_load(path):
    def bad(c):
        raise ValueError(f"non-finite constant {c} in {path}")

    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=bad)


def all_numbers(obj):
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in all_numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in all_numbers(v)]
    return [obj] if isinstance(obj, (int, float)) and not isinstance(obj, bool) else []


@pytest.fixture(scope="module")
def topk_run(setup):
    root, common = setup
    out = root / "out"
    res = run_script("Multi_Identity_topk.py", [*common, "--output-dir", str(out)], cwd=root)
    return root, common, out, res


def test_topk_script_writes_records_and_failures(topk_run):
    from models import get_network
    from utils.faces.image_io import read_image

    root, _, out, res = topk_run
    assert res.returncode == 3, res.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == [RUN_DIR], "wrote outside the run folder"
    run = out / RUN_DIR
    assert sorted(p.name for p in (run / "json").iterdir()) == ["0.json", "1.json", "3.json"]
    failures = [json.loads(line) for line in (run / "failures.jsonl").read_text().splitlines()]
    assert [(f["pair"], f["stage"]) for f in failures] == [(2, "read"), (4, "parse")]
    assert failures[0]["error_type"] == "ImageReadError" and "missing.png" in failures[0]["message"]
    assert failures[1]["line"] == 6 and "expected 3 fields" in failures[1]["message"]
    assert "done 3" in res.stderr and "failed 2" in res.stderr

    name, arch = ARCH["verification"]
    V = get_network(name, weights=root / "verification.pth", **arch)
    for n, (a, b, match) in {0: (0, 1, 1), 1: (2, 3, 0), 3: (3, 0, 1)}.items():
        rec = strict_load(run / "json" / f"{n}.json")
        assert set(REQUIRED_KEYS) | {"topk"} <= set(rec), set(REQUIRED_KEYS) - set(rec)
        assert all(np.isfinite(x) for x in all_numbers(rec))
        assert rec["match"] == match and rec["topk"] == 1 and rec["Datasets"] == "pairs"
        assert (
            len(rec["class1"]) == 1
            and len(rec["Attribute1-class"]) == 30
            and len(rec["Attribute2-score"]) == 30
        )
        assert set(rec["attributes-image1"]) == {f"image1-f_attr_{j}" for j in range(30)}
        assert set(rec["attributes-both-masked"]) == {f"Both_masked-f_attr_{j}" for j in range(30)}
        assert all(len(v) == 2 for v in rec["attributes-image2"].values())
        with torch.inference_mode():
            e = V(
                V.preprocess(
                    [
                        read_image(root / "img" / f"face {a}.png"),
                        read_image(root / "img" / f"face {b}.png"),
                    ]
                )
            )
        e = e.double().numpy()
        direct = float(e[0] @ e[1] / np.linalg.norm(e[0]) / np.linalg.norm(e[1]))
        assert rec["similarity"] == pytest.approx(direct, abs=1e-5)
    # at least one attribute region was erased somewhere (the test exercises erasing)
    recs = [strict_load(p) for p in (run / "json").iterdir()]
    assert any(max(r["mask-fraction1"]) > 0 for r in recs)
    # default --visualization summary: one composite per pair with a record, nothing else under cam/
    assert sorted(p.name for p in (run / "cam").iterdir()) == ["0.png", "1.png", "3.png"]
    config = json.loads((run / "config.json").read_text())
    assert config["topk"] == 1 and config["thresh"] == 0.2 and config["strategy"] == "topk"


@pytest.mark.parametrize(
    "flags, expect", [(["--visualization"], "full"), (["--no-visualization"], "none")]
)
def test_visualization_levels_full_and_none(setup, tmp_path, flags, expect):
    """A bare --visualization is the authors' "on" (full: composite + every map, at the image size
    with a colour-scale strip); --no-visualization writes nothing under cam/."""
    from utils.run.runner import main

    _, common = setup
    assert main("topk", [*common, "--output-dir", str(tmp_path), "--limit", "1", *flags]) == 0
    cam = tmp_path / RUN_DIR / "cam"
    if expect == "none":
        assert not cam.exists() or not any(cam.iterdir())
        return
    assert sorted(p.name for p in cam.iterdir()) == ["0-n1-n2", "0-n2-n1", "0.png"]
    names = {p.name for p in (cam / "0-n1-n2").iterdir()}
    assert {"H_t.jpg", "H_f.jpg", "H_d.jpg"} <= names and len(names) == 3 + 30 * 4
    # image 0 is 70 x 60: overlay at that size + 2 px gap + a max(4, 60 // 12) = 5 px scale strip
    assert cv2.imread(str(cam / "0-n1-n2" / "H_d.jpg")).shape == (70, 60 + 2 + 5, 3)
    [mask] = (cam / "0-n1-n2").glob("attr-00-*-mask.png")
    assert cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE).shape == (70, 60)


def test_rerun_resumes_and_regenerates_deleted_pairs(topk_run):
    root, common, out, _ = topk_run
    run = out / RUN_DIR
    before = {p.name: p.read_bytes() for p in (run / "json").iterdir()}
    (run / "json" / "1.json").unlink()
    res = run_script(
        "Multi_Identity_topk.py",
        [*common, "--output-dir", str(out), "--no-visualization"],
        cwd=root,
    )
    assert res.returncode == 3
    assert "done 1, skipped (already done) 2, failed 2" in res.stderr
    after = {p.name: p.read_bytes() for p in (run / "json").iterdir()}
    assert after == before, "resumed run is not byte-identical to the first run"


def test_sharding_in_process_gives_the_same_records(setup, tmp_path):
    from utils.run.runner import main

    _, common = setup
    full = tmp_path / "full"
    assert (
        main("topk", [*common, "--output-dir", str(full), "--no-visualization", "--limit", "2"])
        == 0
    )
    sharded = tmp_path / "sharded"
    for i in range(2):
        assert (
            main(
                "topk",
                [
                    *common,
                    "--output-dir",
                    str(sharded),
                    "--no-visualization",
                    "--limit",
                    "2",
                    "--shard",
                    f"{i}/2",
                ],
            )
            == 0
        )
    a, b = full / RUN_DIR / "json", sharded / RUN_DIR / "json"
    assert (
        sorted(p.name for p in a.iterdir())
        == sorted(p.name for p in b.iterdir())
        == ["0.json", "1.json"]
    )
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in ("0.json", "1.json"))
    assert (sharded / RUN_DIR / "failures-shard-1-of-2.jsonl").is_file()
    # the same folder with other settings is refused (exit 2) instead of silently mixing results
    assert main("topk", [*common, "--output-dir", str(full), "--limit", "2", "--seed", "5"]) == 2


def test_threshold_and_sameid_scripts(setup, tmp_path):
    from utils.run.runner import main

    root, common = setup
    # in-process (same code path as Multi_identity_thresh.py, which only calls main("threshold"))
    assert (
        main(
            "threshold",
            [
                *common,
                "--output-dir",
                str(tmp_path),
                "--limit",
                "1",
                "--id-thresh",
                "0.3",
                "--no-visualization",
            ],
        )
        == 0
    )
    rec = strict_load(
        tmp_path
        / "scores-group-pairs-FaceWorld-verification-id-thresh-0.3-erase-black-thresh-0.2"
        / "json"
        / "0.json"
    )
    assert rec["id_thresh"] == 0.3 and "topk" not in rec and rec["strategy"] == "threshold"
    res = run_script(
        "Scores-sameid.py",
        [
            *common,
            "--output-dir",
            str(tmp_path),
            "--limit",
            "1",
            "--ablation",
            "no-attribute",
            "--Erasing-method",
            "random",
            "--no-visualization",
        ],
        cwd=root,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / (
        "scores-group-pairs-FaceWorld-verification-sameid-erase-random-thresh-0.2"
        "-ablation-no-attribute"
    )
    rec = strict_load(run / "json" / "0.json")
    assert rec["ablation"] == "no-attribute" and rec["topk"] == 1
    # one region for every attribute
    assert len(set(map(tuple, rec["attributes-image1"].values()))) == 1


def test_ranking_and_discriminant_flags(setup, tmp_path):
    from utils.run.runner import main

    root, common = setup
    assert (
        main(
            "sameid",
            [
                *common,
                "--output-dir",
                str(tmp_path),
                "--limit",
                "1",
                "--no-visualization",
                "--ranking",
                "contrast",
                "--discriminant",
                "verification",
                "--ranking-fill",
                "mean",
            ],
        )
        == 0
    )
    run = tmp_path / (
        "scores-group-pairs-FaceWorld-verification-sameid-erase-black-thresh-0.2"
        "-disc-verification-ranking-contrast-rfill-mean"
    )
    rec = strict_load(run / "json" / "0.json")
    assert (rec["ranking"], rec["discriminant"], rec["ranking-fill"]) == (
        "contrast",
        "verification",
        "mean",
    )
    assert set(REQUIRED_KEYS) <= set(rec)
    for name, classes in (("image1", rec["Attribute1-class"]), ("image2", rec["Attribute2-class"])):
        words = rec[f"words-{name}"]
        present = {j for j, c in enumerate(classes) if j in (0, 1, 2, 8) or c == 0}
        assert {w["index"] for w in words} == present
        ranks = [w["rank"] for w in words if w["tie"] != "unchanged"]
        assert ranks == sorted(ranks) and all("contrast" in w for w in words)
        assert all(w["rank"] is None for w in words if w["tie"] == "unchanged")
    # the default run records the paper ranking, with the classes discriminant
    assert (
        main(
            "topk",
            [*common, "--output-dir", str(tmp_path / "p"), "--limit", "1", "--no-visualization"],
        )
        == 0
    )
    rec = strict_load(tmp_path / "p" / RUN_DIR / "json" / "0.json")
    assert (rec["ranking"], rec["discriminant"]) == ("paper", "classes")
    sims = {int(k.rsplit("_", 1)[1]): v[1] for k, v in rec["attributes-image1"].items()}
    order = [w["index"] for w in rec["words-image1"]]
    assert order == sorted(order, key=lambda j: (-sims[j], j))
    with pytest.raises(SystemExit):
        main("topk", [*common, "--ranking", "best"])
    assert (
        main(
            "topk",
            [
                *common,
                "--output-dir",
                str(tmp_path / "q"),
                "--ranking",
                "both-shared",
                "--no-calculate-similarity",
            ],
        )
        == 2
    )


def test_usage_errors_exit_2_before_any_work(setup, tmp_path):
    root, common = setup
    args = [a if a != str(root / "pairs.txt") else str(root / "nope.txt") for a in common]
    res = run_script(
        "Multi_Identity_topk.py", [*args, "--output-dir", str(tmp_path / "o")], cwd=root
    )
    assert res.returncode == 2 and "nope.txt" in res.stderr and "not found" in res.stderr
    assert not (tmp_path / "o").exists()
    from utils.run.runner import main

    with pytest.raises(SystemExit) as exc:
        main("sameid", ["--heatmap-method", "ScoreCAM"])
    assert exc.value.code == 2


def test_every_flag_has_help():
    from utils.run.cli import build_parser

    for strategy in ("topk", "threshold", "sameid"):
        parser = build_parser(strategy)
        for action in parser._actions:
            assert action.help and len(action.help) > 10, (
                f"{strategy}: {action.option_strings} has no help"
            )
    text = build_parser("topk").format_help()
    for flag in (
        "--Datasets",
        "--recognition-net",
        "--attribute-net",
        "--verification-net",
        "--heatmap-method",
        "--thresh",
        "--topk",
        "--Erasing-method",
        "--output-dir",
        "--no-visualization",
        "--no-calculate-similarity",
        "--shard",
        "--no-resume",
        "--ablation",
        "--seed",
        "--device",
    ):
        assert flag in text
