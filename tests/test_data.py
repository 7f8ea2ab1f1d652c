"""Pair lists and the datasets config."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from utils.faces.data import (
    DataConfigError,
    load_datasets_config,
    parse_pair_lines,
    read_pair_list,
    resolve_dataset,
)


def test_pair_list_edge_cases(tmp_path, caplog):
    text = (
        "# a comment\r\n"
        "a.jpg b.jpg 1\r\n"
        "\r\n"
        "   \n"
        "c.jpg\td.jpg\t0\n"
        "only_two.jpg fields.jpg\n"
        "e.jpg f.jpg 2\n"
        "/abs/x.jpg y.jpg 0\n"
        "a.jpg b.jpg 1\n"
        '"with space.jpg" z.jpg 1\n'
        "sp ace.jpg\tz2.jpg\t1\n"
        "a.jpg b.jpg 1 extra\n"
    )
    lst = tmp_path / "pairs.txt"
    lst.write_bytes(text.encode("utf-8"))
    with caplog.at_level(logging.WARNING):
        items = read_pair_list(lst, image_root=tmp_path / "root")
    root = tmp_path / "root"
    assert [it.index for it in items] == list(range(9))
    assert [it.line_no for it in items] == [2, 5, 6, 7, 8, 9, 10, 11, 12]
    assert (items[0].path1, items[0].path2, items[0].label) == (
        str(root / "a.jpg"),
        str(root / "b.jpg"),
        1,
    )
    assert items[1].path2 == str(root / "d.jpg") and items[1].label == 0 and items[1].error is None
    assert items[2].error and "expected 3 fields" in items[2].error and ":6:" in items[2].error
    assert items[3].error and "label must be 0 or 1" in items[3].error
    assert "'2'" not in items[3].error  # no content quoted
    assert items[4].path1 == "/abs/x.jpg"
    assert items[5].error is None and items[5].path1 == items[0].path1  # duplicate kept...
    assert "more than once" in caplog.text  # ...and warned
    assert items[6].path1 == str(root / "with space.jpg")
    assert items[7].path1 == str(root / "sp ace.jpg")
    assert items[8].error and "got 4" in items[8].error


def test_bom_and_default_root(tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_bytes("\ufeffa.png b.png 0\n".encode("utf-8"))
    (item,) = read_pair_list(lst)
    assert item.path1 == str(tmp_path / "a.png") and item.error is None


def test_missing_list_is_a_clear_error(tmp_path):
    with pytest.raises(DataConfigError, match="not found"):
        read_pair_list(tmp_path / "nope.txt")


def test_datasets_config(tmp_path, monkeypatch):
    lst = tmp_path / "p.txt"
    lst.write_text("a b 1\n")
    cfg = tmp_path / "datasets.json"
    cfg.write_text(
        json.dumps(
            {
                "_comment": "x",
                "Mine": {"pair_list": str(lst), "image_root": str(tmp_path / "img")},
                "Placeholder": {
                    "pair_list": "data/nowhere/pairs.txt",
                    "image_root": "data/nowhere",
                },
            }
        )
    )
    monkeypatch.setenv("SIM2WORD_DATASETS", str(cfg))
    assert set(load_datasets_config()) == {"Mine", "Placeholder"}
    assert resolve_dataset("Mine") == (lst, tmp_path / "img")
    with pytest.raises(DataConfigError, match=r"'Placeholder'.*datasets.json"):
        resolve_dataset("Placeholder")
    with pytest.raises(DataConfigError, match="known: Mine, Placeholder"):
        resolve_dataset("Other")
    cfg.write_text("{not json")
    with pytest.raises(DataConfigError, match="not valid JSON"):
        load_datasets_config()


def test_repo_config_has_the_documented_entries():
    repo = Path(__file__).resolve().parents[1]
    cfg = load_datasets_config(repo / "configs" / "datasets.json")
    assert {"FaceWorld", "VGGFace2-train", "VGGFace2-test", "Celeb-A"} <= set(cfg)
    assert cfg["FaceWorld"] == {
        "pair_list": "data/face_world/pairs.txt",
        "image_root": "data/face_world",
    }


def test_parse_lines_without_root():
    (it,) = parse_pair_lines(["x y 0"])
    assert (it.path1, it.path2, it.label) == ("x", "y", 0)
