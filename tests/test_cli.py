"""One CLI builder (utils/run/cli.py): every script's flags have help, one spelling per flag across
all
scripts, and the older spellings still parse (hidden)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMPARISON = REPO / "Explainable-Framework-Comparison"


def _load(path: Path):
    if str(COMPARISON) not in sys.path:
        sys.path.insert(0, str(COMPARISON))
    spec = importlib.util.spec_from_file_location(f"_cli_test_{path.stem.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parsers() -> dict[str, argparse.ArgumentParser]:
    from utils.experiments.uncertainty import build_parser as uncertainty_parser
    from utils.run.cli import build_parser

    out = {f"{s} Sim2Word script": build_parser(s) for s in ("topk", "threshold", "sameid")}
    out["quantity_single_person_uncertain.py"] = uncertainty_parser()
    from utils.experiments.cam_figures import build_parser as cam_parser
    from utils.experiments.regenerate import build_parser as figures_parser
    from utils.run.explain_one import build_parser as explain_parser

    out["explain.py"] = explain_parser()
    out["CAM_visualization.py"] = cam_parser()
    out["make_figures.py"] = figures_parser()
    for script in (
        "ground_truth_check.py",
        "align_faces.py",
        "generate_verification_list.py",
        "results/AUC_most_attributes.py",
        "results/AUC_in_attributes.py",
        "results/Statistic_most_attributes.py",
        "results/Top_5_attributes.py",
        "results/compare_runs.py",
        "results/uncertainty_visualization.py",
        "results/Stastic_found_attributes_num.py",
        "results/AUC_no_attribute_map.py",
        "results/Detect_attributes_scores.py",
        "Explainable-Framework-Comparison/compare.py",
        "Explainable-Framework-Comparison/train_xcos.py",
        "benchmarks/bench_pair.py",
    ):
        out[script] = _load(REPO / script).build_parser()
    return out


@pytest.fixture(scope="module")
def all_parsers():
    return parsers()


def _visible(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if a.help != argparse.SUPPRESS and a.option_strings]


def test_every_flag_of_every_script_has_help(all_parsers):
    for name, parser in all_parsers.items():
        for action in _visible(parser):
            assert action.help and len(action.help) > 10, (
                f"{name}: {action.option_strings} has no help"
            )


def test_one_spelling_per_flag_across_scripts(all_parsers):
    spellings: dict[str, set[str]] = {}
    for parser in all_parsers.values():
        for action in _visible(parser):
            longest = max(action.option_strings, key=len)
            spellings.setdefault(action.dest, set()).add(
                longest.lstrip("-").replace("no-", "", 1)
                if isinstance(action, argparse.BooleanOptionalAction)
                else longest
            )
    mixed = {dest: s for dest, s in spellings.items() if len(s) > 1}
    assert not mixed, f"flags spelled differently in different scripts: {mixed}"
    visible = {s for spelled in spellings.values() for s in spelled}
    for old in (
        "--verification",
        "--recognition",
        "--attribute",
        "--save-fold",
        "--dataset-root",
        "--uncertainty-net",
        "--no-progress-bar",
    ):
        assert old not in visible, f"{old} is an old spelling; it must stay hidden"


@pytest.mark.parametrize(
    "script, argv, dest, value",
    [
        (
            "Explainable-Framework-Comparison/compare.py",
            ["--verification", "X"],
            "verification_net",
            "X",
        ),
        ("Explainable-Framework-Comparison/compare.py", ["--output", "d"], "output_dir", Path("d")),
        (
            "Explainable-Framework-Comparison/train_xcos.py",
            ["--verification", "X"],
            "verification_net",
            "X",
        ),
        (
            "results/AUC_most_attributes.py",
            ["--Json-fold", "j", "--output", "d"],
            "output_dir",
            Path("d"),
        ),
        ("results/AUC_most_attributes.py", ["--json-fold", "j"], "json_fold", Path("j")),
        ("results/uncertainty_visualization.py", ["--save-fold", "s"], "save_fold", Path("s")),
        ("ground_truth_check.py", ["--output", "d"], "output_dir", Path("d")),
    ],
)
def test_old_spellings_still_parse(script, argv, dest, value):
    assert getattr(_load(REPO / script).build_parser().parse_args(argv), dest) == value


def test_uncertainty_script_keeps_the_authors_names_and_the_old_ones():
    from utils.experiments.uncertainty import build_parser

    args = build_parser().parse_args(
        ["--evidential-net", "E", "--dataset-root", "r", "--Erase_num", "2"]
    )
    assert (args.evidential_net, args.image_root, args.Erase_num) == ("E", "r", [2])
    args = build_parser().parse_args(["--uncertainty-weights", "w.pth", "--uncertainty-net", "U"])
    assert (args.evidential_weights, args.evidential_net) == ("w.pth", "U")


@pytest.mark.parametrize(
    "value, ok",
    [("0", True), (str(2**32 - 1), True), ("-1", False), (str(2**32), False), ("1.5", False)],
)
def test_seed_range(value, ok):
    from utils.run.cli import seed

    if ok:
        assert seed(value) == int(value)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="seed"):
            seed(value)


def test_json_object_refuses_deep_nesting():
    from utils.run.cli import json_object

    assert json_object('{"width": 16}') == {"width": 16}
    with pytest.raises(argparse.ArgumentTypeError, match="nested"):
        json_object("{" + '"a": {' * 20 + "}" * 21)
