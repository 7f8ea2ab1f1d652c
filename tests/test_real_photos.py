"""Issue 10: CSV pair lists, and real photos end to end.

The pipeline: read_image -> align_faces.py -> Multi_Identity_topk.py.

The end-to-end test copies three photos of ``shared/data/real_faces`` (two of
one person, one WEBP file of another) into a temporary folder, aligns them with
YuNet (the ArcFace template's own landmarker) to 112x112, and runs the
experiment script on the aligned folder through a ``pairs.csv``-style list
(header ``img1,img2,same``) with tiny random-weight networks. It is skipped
when the shared folder is absent.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from tests.helpers import (
    all_numbers,
    cosine,
    load_tiny_net,
    run_script,
    save_tiny_nets,
    strict_load,
)
from utils.faces.data import parse_pair_csv, read_pair_list

PHOTOS = ("deepface_01/1.jpg", "deepface_01/2.jpg", "deepface_03/3.webp")


# --------------------------------------------------------------------------- CSV pair lists


def test_csv_with_header_quotes_labels_and_bad_rows(tmp_path):
    text = (
        "\ufeffimg1,img2,same\r\n"
        "a/1.jpg,a/2.jpg,1\r\n"
        "# a comment\r\n"
        "\r\n"
        '"b/with, comma.jpg",c/3.png,0\r\n'
        "a/1.jpg,c/3.png,No\r\n"
        " a/2.jpg , b/x.jpg , TRUE \r\n"
        "only,two\r\n"
        "a/1.jpg,a/2.jpg,2\r\n"
        ",a/2.jpg,1\r\n"
        '"unclosed,a.jpg,1\r\n'
        "a/1.jpg,a/2.jpg,1\r\n"
    )
    path = tmp_path / "pairs.csv"
    path.write_bytes(text.encode("utf-8"))
    items = read_pair_list(path, image_root=tmp_path / "root")
    r = tmp_path / "root"
    assert [it.index for it in items] == list(range(9)) and [it.line_no for it in items] == [
        2,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
    ]
    good = [(it.path1, it.path2, it.label) for it in items if it.error is None]
    assert good == [
        (str(r / "a/1.jpg"), str(r / "a/2.jpg"), 1),
        (str(r / "b/with, comma.jpg"), str(r / "c/3.png"), 0),
        (str(r / "a/1.jpg"), str(r / "c/3.png"), 0),
        (str(r / "a/2.jpg"), str(r / "b/x.jpg"), 1),
        (str(r / "a/1.jpg"), str(r / "a/2.jpg"), 1),
    ]
    errors = {it.index: it.error for it in items if it.error is not None}
    assert sorted(errors) == [4, 5, 6, 7]
    assert "expected 3 comma-separated fields" in errors[4] and f"{path}:8:" in errors[4]
    assert "label must be one of" in errors[5] and "'2'" not in errors[5]  # no content quoted
    assert "empty image path" in errors[6]
    assert "not a valid CSV row" in errors[7]


def test_csv_header_picks_named_columns_and_extra_columns_are_ignored():
    lines = [
        "Decision,file_y,score,file_x",
        "Yes,b.jpg,0.3,a.jpg",
        "no,d.jpg,0.9,c.jpg",
        "yes,b.jpg,0.1",
    ]
    items = parse_pair_csv(lines, None, source="master.csv")
    assert [(it.path1, it.path2, it.label) for it in items[:2]] == [
        ("a.jpg", "b.jpg", 1),
        ("c.jpg", "d.jpg", 0),
    ]
    assert items[2].error and "expected 4 comma-separated fields" in items[2].error


def test_csv_without_header_and_with_an_unknown_header():
    assert [(it.path1, it.label) for it in parse_pair_csv(["a.jpg,b.jpg,1", "c.jpg,d.jpg,0"])] == [
        ("a.jpg", 1),
        ("c.jpg", 0),
    ]
    assert [
        (it.index, it.path2) for it in parse_pair_csv(["first,second,match", "a.jpg,b.jpg,1"])
    ] == [(0, "b.jpg")]


def test_whitespace_lists_are_unchanged_by_the_csv_reader(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("a,1.jpg b.jpg 1\n")  # a comma inside a path of a whitespace list stays a path
    (item,) = read_pair_list(path, image_root=tmp_path)
    assert item.path1 == str(tmp_path / "a,1.jpg") and item.label == 1


def test_shared_pairs_csv_reads_whole(shared_dir):
    path = shared_dir / "data" / "real_faces" / "pairs.csv"
    items = read_pair_list(path)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(items) == len(rows) == 1614 and all(it.error is None for it in items)
    assert sum(it.label for it in items) == 126
    assert items[5].path1 == str(path.parent / rows[5]["img1"]) and items[5].label == int(
        rows[5]["same"]
    )


# --------------------------------------------------------------------------- real photos end to end


def test_real_photos_read_align_and_explain(shared_dir, tmp_path):
    import align_faces
    from utils.faces.image_io import read_image

    src = shared_dir / "data" / "real_faces"
    for rel in PHOTOS:
        (tmp_path / "photos" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, tmp_path / "photos" / rel)
    raw = {rel: read_image(tmp_path / "photos" / rel) for rel in PHOTOS}
    assert all(
        img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) > 200 for img in raw.values()
    )

    aligned = tmp_path / "aligned"
    code = align_faces.main(
        [
            "--input-dir",
            str(tmp_path / "photos"),
            "--output-dir",
            str(aligned),
            "--size",
            "112",
            "--landmark-format",
            "detect",
        ]
    )
    assert code == 0
    with (aligned / "alignment.csv").open(newline="") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == sorted(PHOTOS)
    expected = ("arcface-112", "yunet", "false", "false")
    assert all(
        (r["template"], r["method"], r["fallback"], r["estimated"]) == expected
        for r in rows.values()
    ), rows
    crops = {rel: read_image(aligned / rel) for rel in PHOTOS}
    assert all(c.shape == (112, 112, 3) for c in crops.values())

    (tmp_path / "nets").mkdir()
    flags = save_tiny_nets(tmp_path / "nets")
    (tmp_path / "pairs.csv").write_text(
        "img1,img2,same\n"
        f"{PHOTOS[0]},{PHOTOS[1]},1\n"
        f"{PHOTOS[0]},{PHOTOS[2]},0\n"
        "deepface_01/2.jpg,not_aligned/9.jpg,0\n"
    )
    res = run_script(
        "Multi_Identity_topk.py",
        [
            "--pair-list",
            str(tmp_path / "pairs.csv"),
            "--image-root",
            str(aligned),
            "--Datasets",
            "real_faces",
            "--output-dir",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--no-visualization",
            *flags,
        ],
        cwd=tmp_path,
    )
    assert res.returncode == 3, res.stderr[-3000:]
    run = tmp_path / "out" / "scores-group-real_faces-FaceWorld-verification-topk-1-erase-black"
    assert sorted(p.name for p in (run / "json").iterdir()) == ["0.json", "1.json"]
    (failure,) = [json.loads(line) for line in (run / "failures.jsonl").read_text().splitlines()]
    assert (
        failure["pair"] == 2
        and failure["stage"] == "read"
        and "not_aligned/9.jpg" in failure["message"]
    )

    V = load_tiny_net(tmp_path / "nets", "verification")
    with torch.inference_mode():
        emb = V(V.preprocess([crops[rel] for rel in PHOTOS])).double().numpy()
    for n, (i, j, match) in enumerate([(0, 1, 1), (0, 2, 0)]):
        rec = strict_load(run / "json" / f"{n}.json")
        assert rec["image-path1"] == str(aligned / PHOTOS[i]) and rec["match"] == match
        assert rec["Datasets"] == "real_faces" and all(np.isfinite(x) for x in all_numbers(rec))
        # computed on the aligned crops
        assert rec["similarity"] == pytest.approx(cosine(emb[i], emb[j]), abs=1e-5)
