"""The measurement helpers behind docs/REAL_ATTRIBUTES.md, on hand-made predictions."""

from __future__ import annotations

import numpy as np

from tests.helpers import REPO, run_script
from utils.experiments.real_attributes_check import (
    age_group,
    chip_agreement,
    expected_age,
    markdown,
    sanity_summary,
)


def _one_hot(age: int) -> np.ndarray:
    p = np.zeros(81)
    p[age] = 1.0
    return p


def test_age_groups_and_expected_age():
    assert [int(age_group(_one_hot(a))) for a in (0, 34, 35, 59, 60, 80)] == [0, 0, 1, 1, 2, 2]
    split = np.zeros(81)
    split[[30, 40, 41]] = [0.4, 0.3, 0.3]  # Young 0.4 < Middle Aged 0.6
    assert int(age_group(split)) == 1
    assert expected_age(_one_hot(0)) == 0.25 and expected_age(split) == 0.4 * 30 + 0.3 * 81


def _row(identity, direct, canvas):
    return {"identity": identity, "direct": direct, "raw/detect": canvas}


def test_chip_agreement_and_summary_by_hand():
    rows = [
        _row("a", (0.9, _one_hot(30)), (0.8, _one_hot(36))),  # gender same, age group differs
        _row("a", (0.9, _one_hot(30)), (0.3, _one_hot(31))),  # gender differs
        _row("b", (0.1, _one_hot(70)), (0.2, _one_hot(70))),
        _row("c", (0.2, _one_hot(50)), (0.2, _one_hot(50))),
    ]
    (table,) = chip_agreement(rows)
    assert table["n"] == 4 and table["photos"] == "all"
    assert table["gender agreement"] == 0.75 and table["age-group agreement"] == 0.75
    assert np.isclose(table["max abs dP(male)"], 0.6) and table["max abs d age"] == 6.0
    assert table["mean abs d age"] == (6 + 1 + 0 + 0) / 4
    summary = sanity_summary(rows, canvas_key="raw/detect")
    assert [(s["one gender"], s["with 2+ photos"], s["one age group"]) for s in summary] == [
        (3, 1, 1),  # direct: a, b, c one gender; a (2 photos) one age group
        (2, 1, 0),  # canvas: a splits in gender and in age group
    ]
    assert markdown(summary).splitlines()[1] == "|" + "---|" * 5


def test_split_command_lists_the_held_out_identities(shared_dir, tmp_path):
    run = run_script(
        "check_real_attributes.py",
        ["split", "--root", str(shared_dir / "data" / "real_faces")],
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    held_out = next(line for line in run.stdout.splitlines() if line.startswith("| held-out"))
    assert "| 14 | 34 |" in held_out and "face_recognition_rose_leslie" in held_out
    assert (REPO / "check_real_attributes.py").is_file()
