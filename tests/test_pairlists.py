"""Pair-list generation: counts, labels, no duplicates, seeding, impossible requests."""

from __future__ import annotations

import itertools

import pytest

import generate_verification_list as gvl
from utils.faces.pairlists import (
    PairCountError,
    format_pair_line,
    generate_pairs,
    identities_from_celeba,
    identities_from_folders,
    max_pair_counts,
    write_pair_list,
)

# sizes 1, 2, 3, 4, 10: genuine = 0 + 1 + 3 + 6 + 45 = 55; N = 20, C(20, 2) = 190, impostor = 135.
IDS = {f"id{k}": [f"id{k}/{i:02d}.jpg" for i in range(n)] for k, n in enumerate([1, 2, 3, 4, 10])}
OWNER = {p: ident for ident, paths in IDS.items() for p in paths}


def _check(pairs, n_gen, n_imp):
    assert (
        sum(lab == 1 for *_, lab in pairs) == n_gen and sum(lab == 0 for *_, lab in pairs) == n_imp
    )
    for a, b, lab in pairs:
        assert a < b, "paths within a pair are written in sorted order"
        assert lab == int(OWNER[a] == OWNER[b]), f"label {lab} wrong for {a} {b}"
    assert len({(a, b) for a, b, _ in pairs}) == len(pairs), "duplicate unordered pair"


def test_max_counts_by_hand():
    assert max_pair_counts(IDS) == (55, 135)
    assert max_pair_counts({"a": ["x"]}) == (0, 0)


# sparse and dense paths
@pytest.mark.parametrize("n_gen, n_imp", [(20, 30), (40, 100), (0, 7), (9, 0)])
def test_counts_labels_no_duplicates(n_gen, n_imp):
    _check(generate_pairs(IDS, n_gen, n_imp, seed=1), n_gen, n_imp)


def test_requesting_every_pair_gives_exactly_all_pairs():
    pairs = generate_pairs(IDS, 55, 135, seed=0)
    everything = {tuple(sorted(c)) for c in itertools.combinations(OWNER, 2)}  # brute force
    assert {(a, b) for a, b, _ in pairs} == everything
    _check(pairs, 55, 135)


@pytest.mark.parametrize(
    "n_gen, n_imp, match", [(56, 0, "at most 55"), (0, 136, "at most 135"), (-1, 0, ">= 0")]
)
def test_impossible_requests_say_the_maximum(n_gen, n_imp, match):
    with pytest.raises(PairCountError, match=match):
        generate_pairs(IDS, n_gen, n_imp, seed=0)


def test_seeding_and_order_independence():
    a = generate_pairs(IDS, 20, 40, seed=7)
    assert a == generate_pairs(IDS, 20, 40, seed=7)
    assert a != generate_pairs(IDS, 20, 40, seed=8)
    shuffled = {k: list(reversed(v)) for k, v in reversed(list(IDS.items()))}
    assert generate_pairs(shuffled, 20, 40, seed=7) == a
    assert {lab for *_, lab in a[:15]} == {0, 1}, (
        "genuine and impostor pairs are mixed, not in blocks"
    )


def test_pairs_are_uniform_over_all_pairs():
    # sizes 2 and 10: 1 + 45 genuine pairs. A uniform 10-subset holds the small
    # identity's only pair with probability 10/46 = 0.217; choosing the identity
    # uniformly first would give far more (~0.6).
    ids = {"small": ["s0", "s1"], "big": [f"b{i}" for i in range(10)]}
    freq = sum(("s0", "s1", 1) in generate_pairs(ids, 10, 0, seed=s) for s in range(300)) / 300
    assert abs(freq - 10 / 46) < 0.07, freq
    # impostors with sizes 1, 1, 10: 21 pairs, (a, b) is one of them; 5-subset -> 5/21 = 0.238.
    ids = {"a": ["a"], "b": ["b"], "c": [f"c{i}" for i in range(10)]}
    freq = sum(("a", "b", 0) in generate_pairs(ids, 0, 5, seed=s) for s in range(300)) / 300
    assert abs(freq - 5 / 21) < 0.07, freq


def test_image_under_two_identities_is_an_error():
    with pytest.raises(ValueError, match="two identities"):
        generate_pairs({"a": ["x.jpg", "y.jpg"], "b": ["x.jpg", "z.jpg"]}, 1, 1)


def test_identities_from_folders(tmp_path):
    for rel in [
        "n000002/0001_01.jpg",
        "n000002/0002_01.JPG",
        "n000002/sub/0003.png",
        "n000009/a b.webp",
        "n000002/.hidden.jpg",
        "n000002/notes.txt",
        "empty_id/readme.md",
        "loose.jpg",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert identities_from_folders(tmp_path) == {
        "n000002": ["n000002/0001_01.jpg", "n000002/0002_01.JPG", "n000002/sub/0003.png"],
        "n000009": ["n000009/a b.webp"],
    }
    with pytest.raises(FileNotFoundError, match="not a folder"):
        identities_from_folders(tmp_path / "nope")


def test_identities_from_celeba(tmp_path):
    path = tmp_path / "identity_CelebA.txt"
    path.write_text("000001.jpg 2880\r\n000002.jpg 2937\n\n000003.jpg 2880\n")
    assert identities_from_celeba(path) == {
        "2880": ["000001.jpg", "000003.jpg"],
        "2937": ["000002.jpg"],
    }
    path.write_text("000001.jpg 2880\n000001.jpg 17\n")
    with pytest.raises(ValueError, match="labelled both 2880 and 17"):
        identities_from_celeba(path)
    path.write_text("000001.jpg\n")
    with pytest.raises(ValueError, match=":1: expected"):
        identities_from_celeba(path)


def test_written_list_round_trips_through_the_reader(tmp_path):
    data = pytest.importorskip(
        "utils.faces.data", reason="utils.faces.data (pair-list reader) not present"
    )
    pairs = [("a b/1.jpg", "c/2.jpg", 1), ("#odd.jpg", "d/3.jpg", 0)]
    write_pair_list(tmp_path / "p.txt", pairs)
    assert (tmp_path / "p.txt").read_text().splitlines()[0] == '"a b/1.jpg" c/2.jpg 1'
    items = data.read_pair_list(tmp_path / "p.txt", image_root="")
    assert [(i.path1, i.path2, i.label, i.error) for i in items] == [p + (None,) for p in pairs]
    with pytest.raises(ValueError, match="quote, tab"):
        format_pair_line('x"y.jpg', "z.jpg", 1)
    with pytest.raises(ValueError, match="0 or 1"):
        format_pair_line("x.jpg", "z.jpg", 2)


def test_cli(tmp_path, capsys):
    root = tmp_path / "data"
    for _ident, paths in IDS.items():
        for p in paths:
            (root / p).parent.mkdir(parents=True, exist_ok=True)
            (root / p).write_bytes(b"x")
    out = tmp_path / "lists" / "pairs.txt"
    args = [
        "--image-root",
        str(root),
        "--num-genuine",
        "12",
        "--num-impostor",
        "30",
        "--output",
        str(out),
    ]
    assert gvl.main(args) == gvl.EXIT_OK
    lines = out.read_text().splitlines()
    assert len(lines) == 42
    pairs = [(a, b, int(c)) for a, b, c in (ln.split() for ln in lines)]
    _check(pairs, 12, 30)
    assert pairs == generate_pairs(IDS, 12, 30, seed=0)
    assert "12 genuine of 55 possible" in capsys.readouterr().out
    assert gvl.main(args[:3] + ["100"] + args[4:]) == gvl.EXIT_USAGE
    assert "at most 55" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        gvl.main(args + ["--celeba-identities", str(out)])
    assert info.value.code == 2
