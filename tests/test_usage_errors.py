"""Issue 16 items 5, 9, 10 and issue 18's small items through the scripts' own entry points: every
bad
flag, list or output location is exit status 2 before any work, with the fix named; config.json says
which weight files were loaded, and they are part of the run's fingerprint."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import cv2
import numpy as np
import pytest

from tests.helpers import save_tiny_nets
from utils.run.runner import main

RUN_DIR = "scores-group-pairs-FaceWorld-verification-topk-1-erase-black"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("usage")
    (root / "nets").mkdir()
    flags = save_tiny_nets(root / "nets")
    rng = np.random.default_rng(2)
    for name in ("a.png", "b.png"):
        cv2.imwrite(
            str(root / name),
            cv2.GaussianBlur(rng.integers(0, 256, (40, 40, 3), np.uint8), (0, 0), 2),
        )
    (root / "pairs.txt").write_text("a.png b.png 1\n")
    common = [
        "--pair-list",
        str(root / "pairs.txt"),
        "--device",
        "cpu",
        "--no-visualization",
        "--no-progress",
        *flags,
    ]
    return root, common


def _run(args, tmp_path, caplog):
    out = tmp_path / "o"
    with caplog.at_level(logging.INFO):
        code = main("topk", [*args, "--output-dir", str(out)])
    return code, out, caplog.text


@pytest.mark.parametrize(
    "flags",
    [
        ["--seed", "-1"],
        ["--seed", str(2**32)],
        ["--thresh", "1.5"],
        ["--thresh", "-0.1"],
        ["--thresh", "nan"],
        ["--topk", "0"],
        ["--recognition-arch", "[1, 2]"],
        ["--ranking-thresh", "1.5"],
        ["--tie-tolerance", "-0.1"],
    ],
    ids=[
        "seed-negative",
        "seed-too-big",
        "thresh-above-1",
        "thresh-below-0",
        "thresh-nan",
        "topk-0",
        "arch-not-object",
        "ranking-thresh-above-1",
        "tie-tolerance-negative",
    ],
)
def test_bad_values_are_refused_by_the_parser(small, tmp_path, flags, capsys):
    _, common = small
    with pytest.raises(SystemExit) as exc:
        main("topk", [*common, *flags, "--output-dir", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flags[0] in err and ("expected" in err or "must be" in err), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--device", "meta"], "--device must be cpu, cuda or cuda:N"),
        (["--device", "mps"], "--device must be cpu, cuda or cuda:N"),
        (["--device", "nonsense"], "--device must be cpu, cuda or cuda:N"),
        (["--recognition-layer", "nosuchlayer"], "--recognition-layer 'nosuchlayer'"),
        (["--attribute-layer", "no.such"], "--attribute-layer 'no.such'"),
        (["--shard", "3/2"], "--shard must be i/n"),
    ],
    ids=["meta", "mps", "nonsense", "layer", "attribute-layer", "shard"],
)
def test_bad_settings_exit_2_before_any_work(small, tmp_path, caplog, flags, message):
    _, common = small
    code, out, text = _run([*common, *flags], tmp_path, caplog)
    assert code == 2 and message in text, text
    assert not out.exists()


def test_bad_architecture_is_exit_2_with_the_flag_named(small, tmp_path, caplog):
    _, common = small
    args = list(common)
    args[args.index("--recognition-arch") + 1] = json.dumps(
        {"width": 4, "num_classes": -1, "input_size": 64}
    )
    code, out, text = _run(args, tmp_path, caplog)
    assert code == 2 and "cannot build the recognition net" in text and "--recognition-arch" in text
    assert not out.exists()


@pytest.mark.parametrize(
    "content", ["", "# only a comment\n\n   \n# and another\n"], ids=["empty", "comments"]
)
def test_an_empty_list_is_exit_2(small, tmp_path, caplog, content):
    _, common = small
    (tmp_path / "list.txt").write_text(content)
    args = list(common)
    args[args.index("--pair-list") + 1] = str(tmp_path / "list.txt")
    code, out, text = _run(args, tmp_path, caplog)
    # an empty file is refused by the list reader itself (size 0), a comment-only one by the plan
    expected = "empty file (0 bytes)" if content == "" else "holds no pair"
    assert code == 2 and expected in text and not out.exists()


def test_output_dir_naming_a_file_and_overlong_names_are_exit_2(small, tmp_path, caplog):
    _, common = small
    (tmp_path / "a_file").write_text("x")
    with caplog.at_level(logging.ERROR):
        assert main("topk", [*common, "--output-dir", str(tmp_path / "a_file")]) == 2
    assert "is a file" in caplog.text
    caplog.clear()
    code, out, text = _run([*common, "--Datasets", "D" * 300], tmp_path, caplog)
    assert code == 2 and "shorter --Datasets" in text and "Traceback" not in text


def test_missing_weights_give_shell_advice(small, tmp_path, caplog):
    _, common = small
    args = list(common)
    args[args.index("--attribute-weights") + 1] = str(tmp_path / "nope.pth")
    code, out, text = _run(args, tmp_path, caplog)
    assert code == 2 and "--attribute-weights PATH" in text and "SIM2WORD_PRETRAINED=DIR" in text
    assert "weights=" not in text, "Python advice given to a shell user"
    assert not out.exists()


def test_config_names_the_weight_files_and_they_are_part_of_the_fingerprint(
    small, tmp_path, caplog, monkeypatch
):
    root, common = small
    code, out, _ = _run(common, tmp_path, caplog)
    assert code == 0
    config = json.loads((out / RUN_DIR / "config.json").read_text())
    weights = {w["role"]: w for w in config["weights"]}
    assert sorted(weights) == ["attribute", "recognition", "verification"]
    for role, w in weights.items():
        path = root / "nets" / f"{role}.pth"
        assert (
            w["path"] == str(path) and w["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        )
        assert w["name"].startswith("FaceWorld-")
    record = json.loads((out / RUN_DIR / "json" / "0.json").read_text())
    assert (
        record["run-fingerprint"] == config["fingerprint"]
        and record["attribute-vocabulary"] == "celeba30"
    )
    # the same flags with other weight files (same names): the folder is refused, not silently
    # resumed
    other = tmp_path / "other_nets"
    shutil.copytree(root / "nets", other)
    (other / "recognition.pth").write_bytes((other / "recognition.pth").read_bytes() + b"\0")
    args = [a.replace(str(root / "nets"), str(other)) for a in common]
    caplog.clear()
    code, _, text = _run(args, tmp_path, caplog)
    assert code == 2 and "other settings" in text and "weights" in text
    # SIM2WORD_PRETRAINED is recorded and counts too
    monkeypatch.setenv("SIM2WORD_PRETRAINED", str(tmp_path))
    caplog.clear()
    code, _, text = _run(common, tmp_path, caplog)
    assert code == 2 and "environment" in text


def test_every_script_flag_has_help_and_no_progress_exists():
    from utils.run.cli import build_parser

    for strategy in ("topk", "threshold", "sameid"):
        parser = build_parser(strategy)
        assert parser.parse_args(["--no-progress"]).progress is False
        for action in parser._actions:
            assert action.help, action.option_strings


def test_bad_image_limit_variable_is_exit_2(small, tmp_path, caplog, monkeypatch):
    """A bad SIM2WORD_MAX_* value is a usage error up front, not a failure of every pair."""
    _, common = small
    monkeypatch.setenv("SIM2WORD_MAX_IMAGE_SIDE", "lots")
    code, out, text = _run(common, tmp_path, caplog)
    assert code == 2 and "SIM2WORD_MAX_IMAGE_SIDE" in text and not (out / RUN_DIR / "json").exists()


def test_image_limits_are_part_of_the_fingerprint(small, tmp_path, caplog, monkeypatch):
    """Another downscale limit changes the images, so a folder of the old limit is not resumed."""
    _, common = small
    assert _run(common, tmp_path, caplog)[0] == 0
    config = json.loads((tmp_path / "o" / RUN_DIR / "config.json").read_text())
    assert config["environment"]["image-limits"]["max_side"] == 2048
    monkeypatch.setenv("SIM2WORD_MAX_IMAGE_SIDE", "32")
    code, _, text = _run(common, tmp_path, caplog)
    assert code == 2 and "other settings" in text


def test_ranking_settings_checked_before_any_work(small, tmp_path, caplog):
    _, common = small
    code, out, text = _run([*common, "--tie-tolerance", "1"], tmp_path, caplog)
    assert code == 2 and "tie_tolerance must be in [0, 1)" in text and not out.exists()
    caplog.clear()
    code, out, text = _run(
        [*common, "--ranking", "contrast", "--no-calculate-similarity"], tmp_path, caplog
    )
    assert code == 2 and "drop --no-calculate-similarity" in text and not out.exists()


RANKING_SETTINGS = (
    "ranking",
    "discriminant",
    "ranking_fill",
    "ranking_thresh",
    "tie_tolerance",
    "verification_layer",
)
RANKING_KEYS = (
    "ranking",
    "discriminant",
    "ranking-fill",
    "ranking-tie-break",
    "words-image1",
    "words-image2",
    "words-pair",
)


def test_a_folder_written_before_the_ranking_settings_is_refused_with_a_clear_message(
    small, tmp_path, caplog
):
    """A run folder of the version before --ranking/--discriminant (its config.json lacks them, its
    records lack the ranked words) is not resumed as if it had the defaults: its records would
    lack the words and its sameid maps were computed without the renormalisation. Resuming is
    refused (exit 2) naming the new settings; --no-resume recomputes it."""
    _, common = small
    code, out, _ = _run(common, tmp_path, caplog)
    assert code == 0
    run = out / RUN_DIR
    config = json.loads((run / "config.json").read_text())
    assert (config["ranking"], config["discriminant"]) == ("paper", "classes")
    for key in RANKING_SETTINGS:
        del config[key]
    config["fingerprint"] = "0" * 32  # another settings hash, as the older version computed
    (run / "config.json").write_text(json.dumps(config))
    record = json.loads((run / "json" / "0.json").read_text())
    assert all(k in record for k in RANKING_KEYS)
    old = {k: v for k, v in record.items() if k not in RANKING_KEYS}
    old["run-fingerprint"] = "0" * 32
    (run / "json" / "0.json").write_text(json.dumps(old))
    caplog.clear()
    code, _, text = _run(common, tmp_path, caplog)
    assert code == 2
    assert "ranking: (not in its config.json) -> 'paper'" in text
    assert "written by an older version, before the setting(s) discriminant, ranking, " in text
    assert "--no-resume" in text
    assert json.loads((run / "json" / "0.json").read_text()) == old, "nothing was overwritten"
    caplog.clear()
    code, _, _ = _run([*common, "--no-resume"], tmp_path, caplog)
    assert code == 0
    record = json.loads((run / "json" / "0.json").read_text())
    assert record["ranking"] == "paper" and record["words-image1"] is not None
    assert {k: v for k, v in record.items() if k in old and k != "run-fingerprint"} == {
        k: v for k, v in old.items() if k != "run-fingerprint"
    }
