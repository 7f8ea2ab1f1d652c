"""The face world (utils/face_world): determinism, labels, rules, regions, twins, sizes, files."""

from __future__ import annotations

import csv
from dataclasses import replace

import cv2
import numpy as np
import pytest

from models.attributes import ATTRIBUTES, HEAD_SIZES, index_of
from utils.face_world import (
    TWIN_TOLERANCE,
    TWINNABLE,
    Identity,
    Nuisance,
    changed_region,
    labels_of,
    make_twin,
    make_world,
    render,
    rule_violations,
    sample_identity,
    sample_nuisance,
    twin_classes,
    twin_of,
    write_pair_dataset,
)
from utils.face_world.__main__ import main as cli_main
from utils.face_world.shapes import spline

CLEAN = dict(rotation=0.0, shift=(0.0, 0.0), scale=1.0, noise_sigma=0.0, blur_sigma=0.0)


def _pair(seed: int) -> tuple[Identity, Nuisance]:
    return sample_identity(seed), sample_nuisance(10_000 + seed)


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = render(*_pair(3))
    b = render(sample_identity(3), sample_nuisance(10_003))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.landmarks, b.landmarks)
    other_image = render(sample_identity(3), sample_nuisance(10_004)).image
    other_person = render(sample_identity(4), sample_nuisance(10_003)).image
    assert np.abs(a.image.astype(int) - other_image).mean() > 5
    assert np.abs(a.image.astype(int) - other_person).mean() > 5


def test_world_items_do_not_depend_on_world_size():
    small, big = make_world(2, 2, seed=7), make_world(5, 3, seed=7)
    assert small.identities == big.identities[:2]
    assert np.array_equal(small[3].sample.image, big[4].sample.image)  # identity 1, image 1 in both
    assert (small[3].identity_id, small[3].image_id) == (1, 1)
    images, labels, ids = small.arrays()
    assert images.shape == (4, 112, 112, 3) and images.dtype == np.uint8
    assert labels.shape == (4, 30) and labels.dtype == np.int64 and ids.tolist() == [0, 0, 1, 1]


def test_labels_of_a_hand_built_identity():
    ident = Identity(
        gender=1,
        age=2,
        race=0,
        hair_color=1,
        wavy=True,
        bangs=True,
        face_shape="round",
        chubby=True,
        brown_eyes=False,
        big_nose=True,
        forehead_cover="none",
    )
    labels = labels_of(ident, Nuisance(smiling=True, mouth_open=True))
    expected = {
        "Gender": 1,
        "Age": 2,
        "Race": 0,
        "Hair color": 1,
        "Wavy Hair": 0,
        "Bangs": 0,
        "Round Face": 0,
        "Chubby": 0,
        "Big Nose": 0,
        "Smiling": 0,
        "no beard": 0,
        "Obstructed Forehead": 0,
        "Mouth Closed": 1,
        "Fully Visible Forehead": 1,
        "Brown Eyes": 1,
        "Oval Face": 1,
        "Bald": 1,
    }
    for name, cls in expected.items():
        assert labels[index_of(name)] == cls, name
    assert sum(labels[j] == 0 for j in range(30) if j not in (0, 1, 2, 8)) == 8


def test_sampled_identities_follow_the_rules():
    for seed in range(300):
        ident, nuis = _pair(seed)
        assert rule_violations(ident) == [], seed
        lab = labels_of(ident, nuis)
        assert lab.dtype == np.int64 and all(0 <= lab[j] < HEAD_SIZES[j] for j in range(30))
        beard = [
            lab[index_of(n)] == 0 for n in ("Sideburns", "Mustache", "5 o Clock Shadow", "Goatee")
        ]
        if lab[index_of("no beard")] == 0:
            assert not any(beard)
        if lab[0] == 1:  # Female
            assert lab[index_of("no beard")] == 0 and lab[index_of("Bald")] == 1
        if lab[index_of("Bald")] == 0:
            assert all(lab[index_of(n)] == 1 for n in ("Wavy Hair", "Bangs", "Receding Hairline"))
        assert not (lab[19] == 0 and lab[20] == 0), "obstructed and fully visible at once"
        assert (lab[13:16] == 0).sum() <= 1, "two face shapes at once"
        if lab[index_of("Bangs")] == 0:
            assert lab[index_of("Obstructed Forehead")] == 0


def test_rule_violations_are_named():
    bad = Identity(gender=1, mustache=True, bald=True, wavy=True)
    text = "; ".join(rule_violations(bad))
    assert (
        "Female with facial hair" in text and "Female and Bald" in text and "Bald with Wavy" in text
    )


def test_masks_nonempty_and_cover_their_parts():
    for seed in range(8):
        s = render(*_pair(seed))
        assert s.masks.shape == (30, 112, 112) and s.masks.dtype == bool
        for j in range(30):
            if j in (0, 1, 2, 8) or s.labels[j] == 0:
                assert s.masks[j].any(), (seed, ATTRIBUTES[j])
                assert s.masks[j].mean() < 0.6, (seed, ATTRIBUTES[j])
        (lx, ly), (rx, ry), (nx, ny), (ax, ay), (bx, by) = np.rint(s.landmarks).astype(int)
        assert s.masks[index_of("Brown Eyes")][ly, lx] and s.masks[index_of("Brown Eyes")][ry, rx]
        assert s.masks[index_of("Big Nose")][ny, nx] and s.masks[index_of("Pointy Nose")][ny, nx]
        assert s.masks[index_of("Smiling")][ay, ax] and s.masks[index_of("Big Lips")][by, bx]
        assert not s.masks[index_of("Big Nose")][ly, lx], "nose region reaches the eye centre"


def test_landmarks_order_and_position():
    for seed in range(20):
        s = render(*_pair(seed), size=96, with_masks=False)
        le, re, nose, lm, rm = s.landmarks
        assert ((s.landmarks >= 0) & (s.landmarks < 96)).all()
        assert le[0] < nose[0] < re[0] and lm[0] < rm[0]
        assert max(le[1], re[1]) < nose[1] < min(lm[1], rm[1])


def test_landmarks_equal_canonical_points_without_nuisance():
    # A 128-pixel render with no rotation/shift/scale is the canonical frame itself.
    ident = sample_identity(11)
    g = ident.geometry
    s = render(
        ident, replace(sample_nuisance(1), smiling=False, mouth_open=False, **CLEAN), size=128
    )
    tip = g.eye_y + g.nose_len
    assert np.allclose(
        s.landmarks[:3], [[64 - g.eye_dx, g.eye_y], [64 + g.eye_dx, g.eye_y], [64, tip]]
    )
    assert np.allclose(s.landmarks[3:, 0], [64 - g.mouth_w, 64 + g.mouth_w])
    # rotating by +90 degrees about the centre maps (x, y) -> (y, 128 - x) in image coordinates
    rot = render(
        ident,
        replace(sample_nuisance(1), smiling=False, mouth_open=False, **{**CLEAN, "rotation": 90.0}),
        size=128,
        with_masks=False,
    )
    x, y = s.landmarks[:, 0], s.landmarks[:, 1]
    assert np.allclose(rot.landmarks, np.stack([y, 128 - x], 1), atol=1e-6)


@pytest.mark.parametrize("size", [64, 224])
def test_any_size_draws_the_same_face(size):
    ident, nuis = sample_identity(5), replace(sample_nuisance(6), **CLEAN)
    ref = render(ident, nuis, 112)
    s = render(ident, nuis, size)
    assert s.image.shape == (size, size, 3) and s.masks.shape == (30, size, size)
    assert np.allclose(s.landmarks * 112 / size, ref.landmarks, atol=1e-6)
    back = cv2.resize(s.image, (112, 112), interpolation=cv2.INTER_AREA)
    assert np.abs(back.astype(int) - ref.image).mean() < 8
    other = render(sample_identity(6), nuis, 112).image
    assert (
        np.abs(other.astype(int) - ref.image).mean()
        > 2 * np.abs(back.astype(int) - ref.image).mean()
    )


@pytest.mark.parametrize("size,seeds", [(112, range(10)), (64, range(4))])
def test_twin_changes_only_its_attribute_region(size, seeds):
    checked = 0
    for seed in seeds:
        ident, nuis = _pair(seed)
        src = render(ident, nuis, size)
        for j in TWINNABLE:
            for c in twin_classes(ident, nuis, j):
                twin = make_twin(ident, nuis, j, c, size=size)
                changed = np.flatnonzero(twin.labels != src.labels)
                assert changed.tolist() == [j] and twin.labels[j] == c
                diff = np.abs(src.image.astype(int) - twin.image).max(2)
                outside = diff[~changed_region(src, twin, j)]
                assert outside.max(initial=0) <= TWIN_TOLERANCE, (
                    seed,
                    ATTRIBUTES[j],
                    c,
                    outside.max(),
                )
                assert (outside > 0).mean() < 1e-3, (seed, ATTRIBUTES[j], c)
                checked += 1
    assert checked > 20 * len(seeds)


def _find_twin(j: int) -> tuple[Identity, Nuisance, int]:
    for seed in range(400):
        ident, nuis = _pair(seed)
        classes = twin_classes(ident, nuis, j)
        if classes:
            return ident, nuis, classes[0]
    raise AssertionError(f"no identity among 400 has a twin for {ATTRIBUTES[j]}")


@pytest.mark.parametrize("j", TWINNABLE, ids=[ATTRIBUTES[j] for j in TWINNABLE])
def test_every_attribute_has_a_visible_twin(j):
    ident, nuis, c = _find_twin(j)
    src, twin = render(ident, nuis), make_twin(ident, nuis, j, c)
    region = src.masks[j] | twin.masks[j]
    diff = np.abs(src.image.astype(int) - twin.image).max(2)
    assert diff[region].mean() > 2.0, (ATTRIBUTES[j], diff[region].mean())
    assert (diff > 25).sum() >= 8, (ATTRIBUTES[j], (diff > 25).sum())


def test_impossible_twins_raise_with_the_reason():
    woman = Identity(gender=1)
    nuis = Nuisance()
    assert twin_classes(woman, nuis, index_of("Mustache")) == []
    with pytest.raises(ValueError, match="Female with facial hair"):
        twin_of(woman, nuis, index_of("Mustache"))
    bangs = Identity(bangs=True)  # removing bangs would also uncover the forehead
    with pytest.raises(ValueError, match="Obstructed Forehead"):
        twin_of(bangs, nuis, index_of("Bangs"))
    assert twin_of(replace(bangs, forehead_cover="hat"), nuis, index_of("Bangs"))[0].bangs is False
    with pytest.raises(ValueError, match="out of range"):
        twin_of(woman, nuis, 30)


def test_spline_matches_the_catmull_rom_formula():
    pts = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 3.0], [4.0, 0.0]])
    curve = spline(pts, 4)
    assert np.allclose(curve[::4], pts)  # passes through its points
    # midpoint of the middle segment: (-p0 + 9 p1 + 9 p2 - p3) / 16
    assert np.allclose(curve[6], (-pts[0] + 9 * pts[1] + 9 * pts[2] - pts[3]) / 16)


def test_make_pairs_writes_a_consistent_dataset(tmp_path):
    paths = write_pair_dataset(
        tmp_path, num_identities=4, num_pairs=6, seed=2, images_per_identity=3, progress=False
    )
    lines = paths["pairs"].read_text().splitlines()
    assert len(lines) == 6 and [ln.split()[2] for ln in lines] == ["1", "0"] * 3
    for ln in lines:
        a, b, label = ln.split()
        assert (tmp_path / a).is_file() and (tmp_path / b).is_file() and a != b
        assert (a.split("/")[0] == b.split("/")[0]) == (label == "1")
    with open(paths["labels"], newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["path", "identity", *ATTRIBUTES] and len(rows) == 13
    world = make_world(4, 3, seed=2)
    item = world[5]
    stored = cv2.imread(str(tmp_path / rows[6][0]))
    assert rows[6][1] == "1" and np.array_equal(stored, item.sample.image)
    assert [int(v) for v in rows[6][2:]] == item.sample.labels.tolist()


def test_make_pairs_refuses_too_many_pairs(tmp_path):
    with pytest.raises(ValueError, match="at most"):
        write_pair_dataset(
            tmp_path, num_identities=2, num_pairs=20, images_per_identity=2, progress=False
        )


def test_cli_contact_sheet_and_pairs(tmp_path):
    assert cli_main(["contact-sheet", "--out", str(tmp_path / "sheet.png"), "--grid", "2"]) == 0
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert sheet is not None and sheet.shape[1] == 2 * (224 + 4)
    assert (
        cli_main(
            [
                "make-pairs",
                "--out",
                str(tmp_path / "d"),
                "--num-identities",
                "3",
                "--pairs",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    assert len((tmp_path / "d" / "pairs.txt").read_text().splitlines()) == 4
