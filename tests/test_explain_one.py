"""One pair explained: words with ties, the composite figure (texts, panels, size), explain.py and
its Python API ``explain_images``."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from models.attributes import Vocabulary
from utils.explain.ranking import (
    SAME_REGION,
    UNCHANGED,
    format_words,
    rank_candidates,
    rank_pair,
    verification_score,
)

FW = "data/face_world/verification"

# Scores 1 - arccos(s)/pi worked out by hand (arccos in radians / pi):
# s = 0.3: arccos 1.266103673 -> 0.403013 -> 0.596987;  s = 0.6: arccos 0.927295218 -> 0.295167
# -> 0.704833;  s = 0.5: 1/3 -> 0.666667;  s = 0.2: arccos 1.369438406 -> 0.435906 -> 0.564094;
# s = 0.7: arccos 0.795398830 -> 0.253183 -> 0.746817.
SCORE = {0.3: 0.596987, 0.6: 0.704833, 0.5: 0.666667, 0.2: 0.564094, 0.7: 0.746817}


def _rank(values, original, regions=None, unchanged=()):
    """rank_candidates with words w<j>, unknown areas, unchanged ones last (not the paper order)."""
    return rank_candidates(
        sorted(values),
        values,
        original,
        words={j: f"w{j}" for j in values},
        areas={j: float("nan") for j in values},
        regions=regions or {j: j for j in values},
        unchanged=unchanged,
    )[0]


def test_rank_words_by_hand():
    values = {0: 0.5, 1: 0.2, 2: 0.7, 3: 0.5, 4: 0.3}  # head 1 equals s; head 4 has an empty region
    regions = {0: "a", 1: "b", 2: "c", 3: "a", 4: "d"}  # heads 0 and 3 erase the same region
    words = _rank(values, 0.2, regions, unchanged=[4])
    got = [(w.attribute, w.rank, w.tie) for w in words]
    assert got == [
        (2, 1, None),
        (0, 2, SAME_REGION),
        (3, 2, SAME_REGION),
        (1, None, UNCHANGED),
        (4, None, UNCHANGED),
    ]
    top = words[0]
    assert top.score == pytest.approx(SCORE[0.7], abs=1e-6)
    assert top.score_change == pytest.approx(SCORE[0.7] - SCORE[0.2], abs=1e-6)
    assert top.change == pytest.approx(0.5) and top.original == pytest.approx(0.2)
    assert float(verification_score(0.3)) == pytest.approx(SCORE[0.3], abs=1e-6)
    lines = format_words(words, k=2)
    assert lines[0].split()[:2] == ["1.", "w2"]
    assert "(+0.1827)" in lines[0] and "(+0.5000)" in lines[0]
    assert "same erased region" in lines[1] and lines[2].endswith("unchanged: w1, w4")
    # a word is never ranked ahead of another only because of its index: equal values share a rank
    tied = _rank({5: 0.4, 1: 0.4}, 0.0)
    assert [(w.attribute, w.rank) for w in tied] == [(1, 1), (5, 1)]


def _hand_explanation():
    """A pair explained by hand: 4 heads, 8x8 maps, 16x12 images, similarities chosen."""
    from utils.explain.erasing import Eraser
    from utils.explain.sim2word import DirectionExplanation, PairExplanation

    vocab = Vocabulary("hand", ("Gender", "Bangs", "Big Nose", "Smiling"), {0: ("Male", "Female")})
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 12, 3), dtype=np.uint8) for _ in range(2)]
    dirs = []
    for side, (cls, sims) in enumerate(
        (([1, 0, 0, 1], [0.5, 0.6, 0.3, 0.9]), ([0, 0, 0, 0], [0.35, 0.4, 0.45, 0.31]))
    ):
        J = np.zeros((4, 8, 8), np.float32)
        J[0, :, 6:] = 0.9  # right columns
        J[1, :3, :3] = 0.8  # top-left corner
        J[2] = 0.5  # below theta everywhere: an empty region in image 1 ...
        if side == 1:
            J[2, 4:, 4:] = 0.95  # ... but not in image 2
        J[3, 5:, :] = 0.7
        dirs.append(
            DirectionExplanation(
                side=side,
                H_t=np.full((8, 8), 0.5, np.float32),
                H_f=np.zeros((8, 8), np.float32),
                H_d=np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8),
                H_attr=J.copy(),
                J=J,
                masks=J > 0.6,
                attr_class=np.array(cls),
                attr_conf=np.ones(4),
                eraser=Eraser(images[side], "black"),
                sim_own=np.zeros(4),
                sim_other=np.array(
                    [0.3 if (side == 0 and j == 2) else v for j, v in enumerate(sims)]
                ),
            )
        )
    return PairExplanation(
        [0], [1], (dirs[0], dirs[1]), similarity=0.3, both_masked=np.zeros(4), vocabulary=vocab
    )


def test_composite_of_a_hand_made_explanation(tmp_path):
    from utils.base.atomic import atomic_write_figure
    from utils.explain.composite import composite_captions, composite_figure

    ex = _hand_explanation()
    ranked = rank_pair(ex, (None, None), None)  # the paper ranking needs no image nor V
    words = [ranked.image1, ranked.image2]
    # image 1: Smiling (class 1, absent) never appears although its similarity 0.9 is the largest;
    # Big Nose's region is empty, so it is an unchanged tie
    assert [(w.word, w.rank, w.tie) for w in words[0]] == [
        ("Bangs", 1, None),
        ("Female", 2, None),
        ("Big Nose", None, UNCHANGED),
    ]
    assert [w.word for w in words[1]] == ["Big Nose", "Bangs", "Male", "Smiling"]
    # the area is the share of R's 8x8 input grid: Bangs' region is the 3x3 corner
    assert words[0][0].area == pytest.approx(9 / 64)

    text = composite_captions(
        words, similarity=0.3, vocabulary="hand", names=("a.png", "b.png"), k=3, match=0
    )
    assert "cos s = 0.3000" in text.title and f"{SCORE[0.3]:.4f}" in text.title
    assert "'hand'" in text.title and "different identities" in text.title
    row = text.rows[0]
    assert row.face.startswith("image 1: a.png") and row.maps[0].startswith("H_d")
    assert row.maps[1] == "1. Bangs\nscore 0.597 -> 0.705 (+0.108)\ncos 0.300 -> 0.600 (+0.300)"
    assert row.maps[2].startswith("2. Female\nscore 0.597 -> 0.667 (+0.070)")
    assert row.maps[3].startswith("no further word") and "ties" in row.maps[3]
    assert "Big Nose" in row.footer and "unchanged" in row.footer and "Smiling" not in row.footer
    firsts = [m.split("\n")[0] for m in text.rows[1].maps[1:]]
    assert firsts == ["1. Big Nose", "2. Bangs", "3. Male"]
    assert "no tie" in text.rows[1].footer

    fig = composite_figure(ex, names=("a.png", "b.png"), k=3, match=0)
    with_images = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 2 * (2 + 3) + 1  # 10 panels and the colour bar
    assert len(with_images) == 4 + 5  # row 1: face, H_d, 2 words (one empty panel); row 2: 5
    titles = [ax.get_title() for ax in with_images]
    assert row.maps[1] in titles and text.rows[1].maps[3] in titles
    # maps are upsampled to the image (16 x 12), the erased region outlined in white: for Bangs
    # (rows 0-5, columns 0-4, see above) exactly the rectangle's border pixels are white (a JET
    # blend is never white)
    word_axes = [ax for ax in with_images if ax.get_title().startswith(("1.", "2.", "3."))]
    assert all(ax.images[-1].get_array().shape == (16, 12, 3) for ax in word_axes)
    bangs = next(ax for ax in word_axes if ax.get_title().startswith("1. Bangs"))
    white = (np.asarray(bangs.images[-1].get_array()) == 255).all(axis=2)
    border = np.zeros((16, 12), bool)
    border[0, :5] = border[5, :5] = border[:6, 0] = border[:6, 4] = True
    assert (white == border).all(), np.argwhere(white != border)
    # without similarities (--no-calculate-similarity) there are no words: H_t, H_f and H_d
    bare = composite_captions(None, similarity=None, vocabulary="hand", k=3)
    assert "no similarities" in bare.title and "words of" not in bare.title
    assert [m.split(":")[0] for m in bare.rows[1].maps] == ["H_t", "H_f", "H_d"]
    path = atomic_write_figure(tmp_path / "pair.png", fig, dpi=50)
    assert cv2.imread(str(path)).shape == (int(7.4 * 50), int(12.8 * 50), 3)  # figsize * dpi


@pytest.fixture(scope="module")
def demo_pair(tmp_path_factory):
    from utils.run.explain_one import explain_images

    out = tmp_path_factory.mktemp("explain")
    return out, explain_images(
        f"{FW}/049/1202-0.png", f"{FW}/156/1202-0.png", output_dir=out, match=0
    )


def test_explain_images_returns_words_maps_figure_and_record(demo_pair):
    from utils.run.records import parse_record

    out, pw = demo_pair
    assert pw.figure == out / "049-1202-0-vs-156-1202-0.png" and pw.figure.is_file()
    rec = parse_record(json.loads(pw.record_path.read_text()), pw.record_path)
    assert rec.similarity == pytest.approx(pw.similarity) and rec.match == 0
    for i in (1, 2):
        words = pw.words[i - 1]
        # every present attribute once; the ranked ones by descending similarity, ties after them
        assert sorted(w.attribute for w in words) == rec.present(i)
        ranked = [w.similarity for w in words if w.tie != UNCHANGED]
        assert ranked == sorted(ranked, reverse=True)
        for w in words:  # the words' values are the record's
            assert w.similarity == pytest.approx(rec.erased[i - 1][w.attribute][1], abs=1e-12)
        for w in pw.ties(i):  # an unchanged tie: empty region, similarity exactly s
            assert w.similarity == pw.similarity
            assert not pw.explanation.directions[i - 1].masks[w.attribute].any()
        # the words are the record's words-image<i>: the run loop's ranking (rank_pair, paper)
        assert pw.record[f"words-image{i}"] == [w.as_dict() for w in words]
    assert pw.record["ranking"] == pw.ranking == "paper"
    # the demo nets declare no template: both canvases are the images as read
    assert pw.record["align-template"] is None
    assert pw.record["align-method"] == ["as-read", "as-read"]
    assert pw.explanation.directions[0].H_d.shape == (128, 128)  # R reads 128 px
    report = pw.report(3)
    assert all(w.word in report for i in (1, 2) for w in pw.top(i, 3))
    assert pw.as_dict(2)["image1"]["words"] == [w.as_dict() for w in pw.top(1, 2)]


def test_explain_script_prints_json_and_refuses_bad_input(demo_pair, tmp_path, capsys, caplog):
    from utils.run.explain_one import main

    _, pw = demo_pair
    argv = [
        f"{FW}/049/1202-0.png",
        f"{FW}/156/1202-0.png",
        "--output-dir",
        str(tmp_path),
        "--words",
        "2",
        "--json",
        "--name",
        "p",
    ]
    assert main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [w["word"] for w in shown["image2"]["words"]] == [w.word for w in pw.top(2, 2)]
    assert shown["figure"] == str(tmp_path / "p.png") and (tmp_path / "p.json").is_file()
    missing = [f"{FW}/049/1202-0.png", str(tmp_path / "missing.png"), "--output-dir", str(tmp_path)]
    assert main(missing) == 2
    assert "missing.png" in caplog.text and "file not found" in caplog.text
    assert (
        main([f"{FW}/049/1202-0.png", f"{FW}/156/1202-0.png", "--recognition-net", "SFace-gallery"])
        == 2
    )
    assert "needs --gallery DIR" in caplog.text


# ------------------------------------------------------------------ real photos (shared folder)
REAL = ("deepface_01/1.jpg", "deepface_03/3.webp")


def _faceless(path):
    """A smooth noise image in which no landmarker finds a face."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (240, 320, 3), np.uint8)
    cv2.imwrite(str(path), cv2.GaussianBlur(noise, (0, 0), 6))


@pytest.fixture(scope="module")
def real_pair(tmp_path_factory):
    """One raw real pair explained three ways with SFace as V (demo R and A): the run loop,
    explain.py (both with --ranking both-shared) and explain_images (paper)."""
    from utils.run.explain_one import explain_images, main
    from utils.run.runner import main as run_main

    from tests.conftest import SHARED_DIR

    root = SHARED_DIR / "data" / "real_faces"
    if not root.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DIR} (set SIM2WORD_SHARED)")
    out = tmp_path_factory.mktemp("real")
    (out / "pairs.csv").write_text(f"img1,img2,same\n{REAL[0]},{REAL[1]},0\n")
    flags = ["--verification-net", "SFace", "--ranking", "both-shared", "--device", "cpu"]
    assert (
        run_main(
            "topk",
            [
                "--pair-list",
                str(out / "pairs.csv"),
                "--image-root",
                str(root),
                "--Datasets",
                "real",
                "--output-dir",
                str(out / "runs"),
                "--no-progress",
                "--visualization",
                "none",
                *flags,
            ],
        )
        == 0
    )
    run = out / "runs" / "scores-group-real-SFace-topk-1-erase-black-ranking-both-shared"
    run_rec = json.loads((run / "json" / "0.json").read_text())
    assert (
        main(
            [
                str(root / REAL[0]),
                str(root / REAL[1]),
                *flags,
                "--output-dir",
                str(out / "cli"),
                "--name",
                "p",
                "--json",
            ]
        )
        == 0
    )
    cli_rec = json.loads((out / "cli" / "p.json").read_text())
    pw = explain_images(root / REAL[0], root / REAL[1], {"verification": "SFace"})
    return root, run_rec, cli_rec, pw


def test_explain_gives_the_run_loops_words_for_the_same_pair(real_pair):
    """A second path to the same answer: explain.py (read -> align -> explain -> rank_pair) and one
    pair of Multi_Identity_topk.py agree on canvases, similarity and every ranked word."""
    _, run_rec, cli_rec, _ = real_pair
    assert cli_rec["ranking"] == run_rec["ranking"] == "both-shared"
    for key in (
        "similarity",
        "align-template",
        "align-method",
        "words-image1",
        "words-image2",
        "words-pair",
    ):
        assert cli_rec[key] == run_rec[key], key
    assert len(run_rec["words-image1"]) > 0


def test_explain_aligns_a_real_photo_for_sface(real_pair, capsys):
    """explain_images on raw photos: both aligned to SFace's ArcFace 112 template by YuNet
    (recorded); the similarity is SFace's on independently aligned crops (align_for + the net
    run directly)."""
    import torch

    from models import get_network
    from utils.faces.image_io import read_image
    from utils.faces.templates import align_for

    root, run_rec, _, pw = real_pair
    assert pw.record["align-template"] == "arcface-112"
    assert pw.record["align-method"] == ["yunet", "yunet"]
    assert [c.image.shape for c in pw.canvases] == [(112, 112, 3)] * 2
    assert pw.explanation.directions[0].raw_shape == (112, 112)
    crops = [align_for(read_image(root / p), "arcface-112", "yunet")[0] for p in REAL]
    net = get_network("SFace")
    with torch.inference_mode():
        e = net(net.preprocess(crops)).double().numpy()
    cos = float(e[0] @ e[1] / np.linalg.norm(e[0]) / np.linalg.norm(e[1]))
    assert pw.similarity == pytest.approx(cos, abs=1e-5)
    assert pw.similarity == pytest.approx(run_rec["similarity"], abs=1e-12)
    assert pw.ranking == "paper" and pw.record["words-image1"] == [w.as_dict() for w in pw.words[0]]
    assert "faces aligned to the arcface-112 template (landmarks: yunet, yunet)" in pw.report()


def test_explain_refuses_a_photo_without_a_face_and_a_stray_gallery_flag(
    real_pair, tmp_path, caplog
):
    from utils.run.explain_one import main

    root = real_pair[0]
    _faceless(tmp_path / "nobody.png")
    argv = [
        str(root / REAL[0]),
        str(tmp_path / "nobody.png"),
        "--verification-net",
        "SFace",
        "--output-dir",
        str(tmp_path),
    ]
    assert main(argv) == 2  # no traceback: the error names the file and the cause
    assert "nobody.png" in caplog.text and "no face found" in caplog.text
    assert main([*argv[:1], str(root / REAL[1]), "--gallery-exclude-pair"]) == 2
    assert "--gallery-exclude-pair is used by a <net>-gallery" in caplog.text


def test_explain_with_a_gallery_and_leave_pair_out(real_pair, tmp_path):
    """SFace-gallery from a 3-photo gallery (deepface_01: two photos, deepface_03: one): image 2's
    top-1 identity is its own; with --gallery-exclude-pair its identity has no photo left (logit 0),
    so its top-1 becomes the other identity, while V's similarity does not move. The gallery's
    embeddings are cached in --output-dir, keyed by the canvas aligner."""
    import shutil

    from utils.run.explain_one import main

    root = real_pair[0]
    gallery = tmp_path / "gallery"
    for rel in (*REAL, "deepface_01/2.jpg"):
        (gallery / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, gallery / rel)
    base = [
        str(gallery / REAL[0]),
        str(gallery / REAL[1]),
        "--verification-net",
        "SFace",
        "--recognition-net",
        "SFace-gallery",
        "--gallery",
        str(gallery),
        "--json",
    ]
    assert main([*base, "--output-dir", str(tmp_path / "a"), "--name", "p"]) == 0
    assert (
        main([*base, "--output-dir", str(tmp_path / "b"), "--name", "p", "--gallery-exclude-pair"])
        == 0
    )
    a, b = (json.loads((tmp_path / d / "p.json").read_text()) for d in ("a", "b"))
    assert (a["class1"], a["class2"]) == ([0], [1])
    assert (b["class1"], b["class2"]) == ([0], [0])
    # V alone decides the similarity: unchanged up to float32 rounding (batching differs)
    assert b["similarity"] == pytest.approx(a["similarity"], abs=1e-6)
    assert a["align-method"] == b["align-method"] == ["yunet", "yunet"]
    assert len(list((tmp_path / "a").glob("gallery-SFace-gallery-*.npz"))) == 1


def test_canvas_plan_of_built_nets_takes_vs_template_and_refuses_another_geometry():
    """plan_nets (explain_images with a Sim2WordNets): the verification net's template is the
    canvas; a net of the same geometry at another scale fits, one of another geometry is refused
    naming both templates; an attribute net that adapts (set_canvas_template) is not checked."""
    from types import SimpleNamespace as NS

    from utils.run.folder import UsageError
    from utils.run.pipeline import plan_nets

    adapts = NS(alignment="dlib-chip-150", set_canvas_template=lambda t: None)
    nets = NS(
        verification=NS(alignment="arcface-112"),
        recognition=NS(alignment="vggface2-224"),
        attribute=adapts,
    )
    plan = plan_nets(nets)
    assert plan.template == "arcface-112" and plan.source.startswith("verification net")
    assert plan.aligner().template == "arcface-112"
    assert plan_nets(nets, "none").aligner().template is None  # --align none: images as read
    plain = NS(
        verification=NS(alignment=None),
        recognition=NS(alignment=None),
        attribute=NS(alignment=None),
    )
    assert plan_nets(plain).template is None
    nets.recognition = NS(alignment="dlib-chip-150", network_name="dlib-ResNet29-gallery")
    with pytest.raises(UsageError, match="dlib-chip-150.*arcface-112"):
        plan_nets(nets)


def test_composite_reused_figure_draws_the_same_pixels(tmp_path):
    """A run fills one figure again and again (``reuse=True``); every figure it writes must be
    byte-identical to a figure drawn new, whatever the figure before held: another layout of
    panels (a row with an empty word panel, then without), faces of another size, no words."""
    import dataclasses

    from utils.base.atomic import atomic_write_figure
    from utils.explain.composite import composite_figure
    from utils.explain.erasing import Eraser

    ex = _hand_explanation()
    # the same pair seen from the other side: row 1 now has the empty word panel
    swapped = dataclasses.replace(ex, directions=(ex.directions[1], ex.directions[0]))
    # wide faces (10 x 24): the panels' limits and boxes must follow the new image, and a panel
    # that held a wide face and now holds no word must not keep the face's box (the footer under
    # the row is placed from it)
    rng = np.random.default_rng(1)
    wide = dataclasses.replace(
        ex,
        directions=tuple(
            dataclasses.replace(
                d, eraser=Eraser(rng.integers(0, 256, (10, 24, 3), dtype=np.uint8), "black")
            )
            for d in ex.directions
        ),
    )
    wide_swapped = dataclasses.replace(wide, directions=(wide.directions[1], wide.directions[0]))
    bare = dataclasses.replace(ex, similarity=None)  # no words: H_t, H_f, H_d
    cases = [
        (ex, 0),
        (swapped, 1),
        (wide, None),
        (wide_swapped, None),
        (ex, 0),
        (bare, None),
        (swapped, 1),
    ]

    def png(case, reuse, name):
        pair, match = case
        fig = composite_figure(pair, names=("a.png", "b.png"), k=3, match=match, reuse=reuse)
        return atomic_write_figure(tmp_path / f"{name}.png", fig, dpi=40).read_bytes()

    fresh = [png(c, False, f"fresh{i}") for i, c in enumerate(cases)]
    reused = [png(c, True, f"reused{i}") for i, c in enumerate(cases)]
    assert len(set(fresh)) == 5  # five different figures (cases 4 and 6 repeat 0 and 1)
    for i, (a, b) in enumerate(zip(fresh, reused, strict=True)):
        assert a == b, f"case {i}: the reused figure differs from a new one"
