"""Issue 13 items 3-6: the experiment scripts on raw photos with the real networks.

Alignment in the run loop (:mod:`utils.faces.canvas`, :mod:`utils.run.pipeline`): canvases at the
template's size, the ``align-*`` record keys, a photo without a face failing its pair at stage
``align``; templates that do not fit refused with exit 2; ``<net>-gallery`` recognition nets from
the pair list's identities; a few pairs end to end with SFace, SFace-gallery and real-attributes,
checked against the networks run directly on independently aligned crops.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import TINY_ARCH, cosine, save_tiny_nets, strict_load
from utils.faces.canvas import AlignmentError, CanvasAligner, same_geometry
from utils.faces.data import PairItem
from utils.run.folder import UsageError

D1, D2, D3 = "deepface_01/1.jpg", "deepface_01/2.jpg", "deepface_03/3.webp"


def _copy_photos(shared_dir, root, rels):
    src = shared_dir / "data" / "real_faces"
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, root / rel)


def _faceless(path):
    """A smooth noise image in which no landmarker finds a face."""
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), np.uint8), (0, 0), 6)
    cv2.imwrite(str(path), img)


def _sface_crops(paths):
    """Independent path: align_for (YuNet, ArcFace 112) and SFace run directly."""
    from models import get_network
    from utils.faces.image_io import read_image
    from utils.faces.templates import align_for

    crops = [align_for(read_image(p), "arcface-112", "yunet")[0] for p in paths]
    net = get_network("SFace")
    with torch.inference_mode():
        emb = net(net.preprocess(crops)).double().numpy()
    return crops, emb


# ------------------------------------------------------------------------------- canvas rules


def test_canvas_rules_as_read_pre_aligned_and_no_face(tmp_path, monkeypatch):
    import utils.faces.canvas as canvas_mod

    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (90, 70, 3), np.uint8)
    assert CanvasAligner(None).canvas(raw).method == "as-read"
    none = CanvasAligner("arcface-112", "none")
    assert none.template is None and none.canvas(raw).image is raw

    # an align_faces.py report lists the images it aligned; its path column is relative to it
    folder = tmp_path / "aligned"
    (folder / "id").mkdir(parents=True)
    rows = "path,template,method\nid/a.png,arcface-112,yunet\nid/b.png,dlib-chip-150,dlib\n"
    (folder / "alignment.csv").write_text(rows)
    sq = rng.integers(0, 256, (224, 224, 3), np.uint8)
    auto = CanvasAligner("vggface2-224")  # the same geometry as arcface-112
    c = auto.canvas(sq, str(folder / "id" / "a.png"))
    assert (c.method, c.template, c.image is sq) == ("pre-aligned", "vggface2-224", True)
    calls = []

    def no_face(image, template, method="auto", landmarks=None):
        calls.append(method)
        raise canvas_mod.FaceNotFoundError("no face found (test)")

    monkeypatch.setattr(canvas_mod, "align_for", no_face)
    # listed with another geometry, not listed, or no report at all: aligned (its size says
    # nothing: a 224 square may be a tight crop, not an ArcFace crop)
    for path in (folder / "id" / "b.png", folder / "id" / "c.png", tmp_path / "d.png"):
        with pytest.raises(AlignmentError, match="no face found"):
            auto.canvas(sq, str(path))
    with pytest.raises(AlignmentError):  # a named landmarker always runs, even on a listed image
        CanvasAligner("arcface-112", "yunet").canvas(sq, str(folder / "id" / "a.png"))
    assert calls == ["auto", "auto", "auto", "yunet"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "alignment.csv").write_text("file,score\nx.png,1\n")
    with pytest.raises(ValueError, match="not the report of align_faces.py"):
        auto.canvas(sq, str(tmp_path / "bad" / "x.png"))


def test_canvas_from_a_landmark_file_maps_the_points_onto_the_template(tmp_path):
    from utils.faces.align import ARCFACE_TEMPLATE_112

    # five points of a face rotated by 20 degrees, scaled by 2.5 and shifted, in file pixels
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = ARCFACE_TEMPLATE_112 @ rot.T * 2.5 + [40.0, 25.0]
    path = tmp_path / "imgs" / "a" / "x.png"
    path.parent.mkdir(parents=True)
    cv2.imwrite(str(path), np.zeros((400, 400, 3), np.uint8))
    aligner = CanvasAligner(
        "arcface-112", landmarks={"a/x.png": points}, landmark_root=tmp_path / "imgs"
    )
    image = np.zeros((200, 200, 3), np.uint8)  # read at half the file's size
    c = aligner.canvas(image, str(path), scale=(0.5, 0.5))
    assert c.method == "file" and c.image.shape == (112, 112, 3)
    mapped = np.hstack([points * 0.5, np.ones((5, 1))]) @ c.matrix.T
    np.testing.assert_allclose(mapped, ARCFACE_TEMPLATE_112, atol=1e-6)
    with pytest.raises(AlignmentError, match="no row for 'a/y.png'"):
        aligner.canvas(image, str(tmp_path / "imgs" / "a" / "y.png"))
    with pytest.raises(ValueError, match="use --align auto"):
        CanvasAligner("arcface-112", "dlib", landmarks={})


def test_canvas_of_a_file_is_aligned_once(tmp_path, monkeypatch):
    import utils.faces.canvas as canvas_mod

    calls = []

    def fake(image, template, method="auto", landmarks=None):
        calls.append(1)
        from utils.faces.templates import AlignInfo

        info = AlignInfo(template, "yunet", None, None, np.eye(2, 3))
        return np.zeros((112, 112, 3), np.uint8), info

    monkeypatch.setattr(canvas_mod, "align_for", fake)
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), np.zeros((50, 60, 3), np.uint8))
    aligner = CanvasAligner("arcface-112")
    first = aligner.read(path)
    assert aligner.read(path) is first and len(calls) == 1
    path.write_bytes(path.read_bytes() + b"\0")  # changed file: aligned again
    aligner.read(path)
    assert len(calls) == 2


def test_template_geometry_and_canvas_plans():
    from utils.run.pipeline import plan_canvas

    assert same_geometry("arcface-112", "vggface2-224") and same_geometry(None, "dlib-chip-150")
    assert not same_geometry("arcface-112", "dlib-chip-150")
    paper = plan_canvas(
        {"verification": "ArcFace-r50", "recognition": "VGGFace2", "attribute": "attribute-net"}
    )
    assert (paper.template, paper.source) == ("arcface-112", "verification net ArcFace-r50")
    real = plan_canvas(
        {
            "verification": "dlib-ResNet29",
            "recognition": "dlib-ResNet29-gallery",
            "attribute": "real-attributes",
        }
    )
    assert real.template == "dlib-chip-150" and "attribute" not in real.templates  # it adapts
    # without a verification net (no similarities) the recognition net's template
    assert plan_canvas({"recognition": "SFace-gallery"}, "none").canvas_template is None
    assert plan_canvas({"verification": None, "recognition": "SFace-gallery"}).template == (
        "arcface-112"
    )
    with pytest.raises(
        UsageError,
        match="attribute net attribute-net reads faces aligned to vggface2-224.*dlib-chip-150",
    ):
        plan_canvas(
            {
                "verification": "dlib-ResNet29",
                "recognition": "dlib-ResNet29-gallery",
                "attribute": "attribute-net",
            }
        )


def test_a_recognition_net_of_another_template_is_refused_with_the_fix(tmp_path, caplog):
    from utils.run.runner import main

    (tmp_path / "pairs.txt").write_text("a.png b.png 1\n")
    args = [
        "--pair-list",
        str(tmp_path / "pairs.txt"),
        "--verification-net",
        "SFace",
        "--recognition-net",
        "dlib-ResNet29-gallery",
        "--output-dir",
        str(tmp_path / "o"),
        "--no-progress",
    ]
    with caplog.at_level(logging.INFO):
        code = main("topk", args)
    assert code == 2 and not (tmp_path / "o").exists()
    text = caplog.text
    assert "recognition net dlib-ResNet29-gallery reads faces aligned to dlib-chip-150" in text
    assert "--recognition-net SFace-gallery" in text and "--verification-net dlib-ResNet29" in text


def test_uncertainty_refuses_an_embedding_net_as_evidential_net(tmp_path, caplog):
    from utils.experiments.uncertainty import main

    with caplog.at_level(logging.INFO):
        code = main(
            argv=["--evidential-net", "SFace", "--output-dir", str(tmp_path / "o"), "--no-progress"]
        )
    assert code == 2 and not (tmp_path / "o").exists()
    assert "SFace is a network of kind 'embedding'" in caplog.text
    assert "needs your own evidential checkpoint" in caplog.text


# ------------------------------------------------------------------------------------ galleries


def test_gallery_of_the_pair_list_is_its_images_by_folder(tmp_path):
    from utils.run.networks import plan_gallery
    from utils.run.pipeline import pair_list_gallery

    r = tmp_path / "root"
    items = [
        PairItem(0, 1, str(r / "b/1.jpg"), str(r / "a/x/2.jpg"), 0),
        PairItem(1, 2, "", "", -1, "bad line"),
        PairItem(2, 3, str(r / "b/1.jpg"), str(r / "b/3.jpg"), 1),
        PairItem(3, 4, str(tmp_path / "elsewhere/c/4.jpg"), str(r / "b/3.jpg"), 0),
    ]
    got = pair_list_gallery(items, r)
    assert got == [
        (str(r / "b/1.jpg"), "b"),
        (str(r / "a/x/2.jpg"), "a/x"),
        (str(r / "b/3.jpg"), "b"),
        (str(tmp_path / "elsewhere/c/4.jpg"), "c"),
    ]
    plan = plan_gallery(got, "test")
    assert plan.identities == ("a/x", "b", "c") and len(plan.digest) == 32
    (r / "b").mkdir(parents=True)
    (r / "b" / "3.jpg").write_bytes(b"12345")  # a file that changes size changes the digest
    assert plan_gallery(got, "test").digest != plan.digest
    with pytest.raises(UsageError, match="at least 2"):
        plan_gallery([(str(r / "b/1.jpg"), "b")], "one folder")


def test_gradcam_of_the_own_identity_ignores_the_probe_in_its_mean():
    """Why the gallery may hold the probe itself: cos(e, m) with m = (e/|e| + r)/n has the same
    gradient direction in e as cos(e, r) (the component along e is projected out), so the
    Grad-CAM map of the own identity is the same with or without the probe in its mean."""
    from models import get_network
    from models.gallery import Gallery, GalleryClassifier
    from utils.explain.cam import CAMExplainer, ClassLogit

    torch.manual_seed(0)
    name, arch = TINY_ARCH["verification"]
    emb_net = get_network(name, weights=False, **arch)
    rng = np.random.default_rng(3)
    images = [
        cv2.GaussianBlur(rng.integers(0, 256, (32, 32, 3), np.uint8), (0, 0), 1.5) for _ in range(5)
    ]
    with torch.inference_mode():
        emb = emb_net(emb_net.preprocess(images)).numpy()
    labels = ["p", "p", "p", "q", "q"]  # image 0 is the probe, of identity p
    maps = []
    for keep in (range(5), range(1, 5)):
        gallery = Gallery.from_embeddings(emb[list(keep)], [labels[i] for i in keep], name)
        net = GalleryClassifier(emb_net, gallery).eval()
        with CAMExplainer(net, net.target_layer, "GradCAM") as cam:
            res = cam(net.preprocess(images[:1]), [[ClassLogit(0)]], out_size=(32, 32))
        maps.append(res.maps[0][0])
    assert float(maps[0].max()) == pytest.approx(1.0) and float(maps[0].std()) > 0.05
    torch.testing.assert_close(maps[0], maps[1], rtol=0, atol=2e-5)


def test_leave_pair_out_means_equal_a_gallery_built_without_the_pair(tmp_path):
    from models import get_network
    from models.gallery import Gallery, GalleryClassifier
    from utils.explain.cam import CAMExplainer, ClassLogit
    from utils.faces.gallery import EmbeddedPhotos, LeaveOut

    torch.manual_seed(0)
    name, arch = TINY_ARCH["verification"]
    emb_net = get_network(name, weights=False, **arch)
    rng = np.random.default_rng(4)
    images = [
        cv2.GaussianBlur(rng.integers(0, 256, (32, 32, 3), np.uint8), (0, 0), 1.5) for _ in range(6)
    ]
    with torch.inference_mode():
        emb = emb_net(emb_net.preprocess(images)).numpy()
    labels = ["p", "p", "p", "q", "q", "r"]
    paths = [str(tmp_path / f"{k}.png") for k in range(6)]
    net = GalleryClassifier(emb_net, Gallery.from_embeddings(emb, labels, name)).eval()
    net.photos = EmbeddedPhotos(paths, labels, emb)
    before = net.class_means.clone()
    pair = (paths[1], str(tmp_path / "." / "5.png"))  # spelled differently: realpath decides

    def maps(classifier):
        with CAMExplainer(classifier, classifier.target_layer, "GradCAM") as cam:
            res = cam(
                classifier.preprocess([images[0], images[3]]),
                [[ClassLogit(0), ClassLogit(1)]] * 2,
                out_size=(32, 32),
            )
        with torch.inference_mode():
            logits = classifier(classifier.preprocess(images))
        return torch.stack(list(res.maps)), logits

    keep = [0, 2, 3, 4]  # oracle: a gallery of the other photos (r has none left: logit 0)
    oracle = GalleryClassifier(
        emb_net, Gallery.from_embeddings(emb[keep], [labels[k] for k in keep], name)
    ).eval()
    want_maps, want_logits = maps(oracle)
    with LeaveOut(net).excluding(pair):
        got_maps, got_logits = maps(net)
    torch.testing.assert_close(got_maps, want_maps, rtol=0, atol=2e-5)
    torch.testing.assert_close(got_logits[:, :2], want_logits, rtol=0, atol=1e-4)
    assert torch.all(got_logits[:, 2] == 0)
    assert torch.equal(net.class_means, before)  # restored
    with LeaveOut(net).excluding([str(tmp_path / "elsewhere.png")]):
        assert torch.equal(net.class_means, before)


# --------------------------------------------------------------------------------- run loop


def test_alignment_in_the_run_loop_on_real_photos(shared_dir, tmp_path):
    """SFace as V (real weights), tiny random R and A: canvases are the ArcFace 112 crops, a
    pre-aligned crop is used as read, a photo without a face fails its pair at stage 'align'."""
    from utils.run.runner import main

    import align_faces

    root = tmp_path / "photos"
    xfr = "xfr_subject_0/1.png"  # a 224x224 tight crop, not an ArcFace crop
    _copy_photos(shared_dir, root, (D1, D2, xfr))
    _faceless(root / "nobody" / "0.png")
    crops, emb = _sface_crops([root / D1, root / D2, root / xfr])
    (root / "aligned").mkdir()
    cv2.imwrite(str(root / "aligned" / "1.png"), crops[0])  # lossless: the canvas of D1 itself
    row = {"path": "1.png", "template": "arcface-112", "method": "yunet"}
    (root / "aligned" / "alignment.csv").write_text(align_faces._csv_text([row], list(row)))
    (tmp_path / "nets").mkdir()
    arch = {k: TINY_ARCH[k] for k in ("recognition", "attribute")}
    flags = save_tiny_nets(tmp_path / "nets", arch)
    (tmp_path / "pairs.csv").write_text(
        f"img1,img2,same\n{D1},{D2},1\n{D1},nobody/0.png,0\naligned/1.png,{D2},1\n{xfr},{D2},0\n"
    )
    code = main(
        "topk",
        [
            "--pair-list",
            str(tmp_path / "pairs.csv"),
            "--image-root",
            str(root),
            "--Datasets",
            "real",
            "--verification-net",
            "SFace",
            "--device",
            "cpu",
            "--output-dir",
            str(tmp_path / "out"),
            "--no-progress",
            "--visualization",
            "full",
            *flags,
        ],
    )
    assert code == 3
    run = tmp_path / "out" / "scores-group-real-SFace-topk-1-erase-black"
    (failure,) = [json.loads(x) for x in (run / "failures.jsonl").read_text().splitlines()]
    assert (failure["pair"], failure["stage"]) == (1, "align")
    assert failure["error_type"] == "AlignmentError"
    assert "nobody/0.png" in failure["message"] and "no face found" in failure["message"]

    r0, r2 = strict_load(run / "json" / "0.json"), strict_load(run / "json" / "2.json")
    assert r0["align-template"] == "arcface-112" and r0["align-method"] == ["yunet", "yunet"]
    assert r0["align-fallback"] == [False, False] and r0["align-estimated"] == [False, False]
    assert r0["similarity"] == pytest.approx(cosine(emb[0], emb[1]), abs=1e-5)
    assert r2["align-method"] == ["pre-aligned", "yunet"]
    assert r2["similarity"] == pytest.approx(r0["similarity"], abs=1e-6)
    r3 = strict_load(run / "json" / "3.json")
    assert r3["align-method"] == ["yunet", "yunet"]
    assert r3["similarity"] == pytest.approx(cosine(emb[2], emb[1]), abs=1e-5)
    for side in ("0-n1-n2", "0-n2-n1", "2-n1-n2"):  # maps, masks, erasing: on the 112 canvas
        (erased,) = (run / "cam" / side).glob("attr-00-*-erased.jpg")
        assert cv2.imread(str(erased)).shape == (112, 112, 3)

    config = json.loads((run / "config.json").read_text())
    assert config["canvas_template"] == "arcface-112" and config["align"] == "auto"
    files = {(w["role"], w["name"]): w for w in config["weights"]}
    sface = files[("verification", "SFace")]
    with open(sface["path"], "rb") as fh:
        assert sface["sha256"] == hashlib.sha256(fh.read()).hexdigest()
    assert ("landmarker", "yunet") in files and ("landmarker", "dlib") in files
    summary = strict_load(run / "summary.json")
    assert summary["alignment"] == {
        "template": "arcface-112",
        "fallbacks": 0,
        "methods": {"yunet": 5, "pre-aligned": 1},
    }


def test_explain_files_reads_aligns_and_names_the_failing_step(shared_dir, tmp_path):
    """The single-pair entry point (explain.py's): the same canvases as the run loop."""
    from models import get_network
    from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets
    from utils.run.pipeline import PairStageError, explain_files, plan_canvas

    root = tmp_path / "photos"
    _copy_photos(shared_dir, root, (D1, D2))
    _faceless(root / "nobody.png")
    torch.manual_seed(0)
    R, A = (
        get_network(TINY_ARCH[r][0], weights=False, **TINY_ARCH[r][1])
        for r in ("recognition", "attribute")
    )
    nets = Sim2WordNets(R, A, get_network("SFace"))
    aligner = plan_canvas(
        {
            "verification": "SFace",
            "recognition": TINY_ARCH["recognition"][0],
            "attribute": TINY_ARCH["attribute"][0],
        }
    ).aligner()
    result = explain_files(root / D1, root / D2, nets, Sim2WordConfig(), aligner)
    assert [c.method for c in result.canvases] == ["yunet", "yunet"]
    assert all(c.image.shape == (112, 112, 3) for c in result.canvases)
    assert result.explanation.directions[0].raw_shape == (112, 112)
    _, emb = _sface_crops([root / D1, root / D2])
    assert result.explanation.similarity == pytest.approx(cosine(emb[0], emb[1]), abs=1e-5)
    for path, stage in ((root / "nobody.png", "align"), (root / "missing.jpg", "read")):
        with pytest.raises(PairStageError) as info:
            explain_files(root / D1, path, nets, Sim2WordConfig(), aligner)
        assert info.value.stage == stage


def test_real_networks_end_to_end_on_a_few_pairs(shared_dir, tmp_path):
    """SFace, SFace-gallery (the pair list's identities) and real-attributes on raw photos; the
    record's similarity and words equal the networks run directly on independently aligned crops,
    and a gallery photo without a face is left out, not fatal."""
    from models import get_network
    from models.attributes import REAL_FACES
    from utils.run.records import parse_record
    from utils.run.runner import main

    root = tmp_path / "photos"
    _copy_photos(shared_dir, root, (D1, D2, D3))
    _faceless(root / "deepface_01" / "nobody.png")
    (tmp_path / "pairs.csv").write_text(
        f"img1,img2,same\n{D1},{D2},1\n{D1},{D3},0\n{D2},{D3},0\ndeepface_01/nobody.png,{D3},0\n"
    )
    code = main(
        "topk",
        [
            "--pair-list",
            str(tmp_path / "pairs.csv"),
            "--image-root",
            str(root),
            "--Datasets",
            "real",
            "--verification-net",
            "SFace",
            "--recognition-net",
            "SFace-gallery",
            "--attribute-net",
            "real-attributes",
            "--device",
            "cpu",
            "--no-visualization",
            "--no-progress",
            "--output-dir",
            str(tmp_path / "out"),
        ],
    )
    assert code == 3
    run = tmp_path / "out" / "scores-group-real-SFace-topk-1-erase-black"
    (failure,) = [json.loads(x) for x in (run / "failures.jsonl").read_text().splitlines()]
    assert (failure["pair"], failure["stage"]) == (3, "align")
    config = json.loads((run / "config.json").read_text())
    assert config["gallery_identities"] == ["deepface_01", "deepface_03"]
    summary = strict_load(run / "summary.json")
    assert summary["gallery"]["photos"] == 3 and summary["gallery"]["identities"] == 2
    (left_out,) = summary["gallery"]["left-out"]
    assert left_out["path"].endswith("deepface_01/nobody.png") and "no face" in left_out["reason"]

    crops, emb = _sface_crops([root / D1, root / D2, root / D3])
    A = get_network("real-attributes").set_canvas_template("arcface-112")
    with torch.inference_mode():
        gender, age = (o.argmax(1).tolist() for o in A(A.preprocess(crops))[:2])
    for n, (i, j, match) in enumerate([(0, 1, 1), (0, 2, 0), (1, 2, 0)]):
        data = strict_load(run / "json" / f"{n}.json")
        rec = parse_record(data, f"{n}.json")
        assert rec.match == match and rec.vocabulary is REAL_FACES
        assert data["attribute-vocabulary"] == "real-faces" and data["attribute-net"] == (
            "real-attributes"
        )
        assert rec.similarity == pytest.approx(cosine(emb[i], emb[j]), abs=1e-5)
        assert rec.class_sets == ((0 if i < 2 else 1,), (0 if j < 2 else 1,))
        for side, k in ((1, i), (2, j)):
            cls = rec.classes[side - 1]
            assert cls[:2] == (gender[k], age[k]) and set(cls[2:]) == {0}
            assert rec.word(side, 0) in ("Male", "Female")
            assert [rec.word(side, h) for h in range(2, 10)] == list(REAL_FACES.attributes[2:])
            assert data[f"Attribute{side}-score"][2:] == [1.0] * 8
        assert data["align-method"] == ["yunet", "yunet"]

    # leave-pair-out: every photo of one identity is in each pair here (pair 0: both of
    # deepface_01's usable photos; pair 1: deepface_03's only one), so that identity has logit 0
    # and both images' top-1 is the other identity
    code = main(
        "topk",
        [
            "--pair-list",
            str(tmp_path / "pairs.csv"),
            "--image-root",
            str(root),
            "--Datasets",
            "real",
            "--verification-net",
            "SFace",
            "--recognition-net",
            "SFace-gallery",
            "--attribute-net",
            "real-attributes",
            "--gallery-exclude-pair",
            "--limit",
            "2",
            "--device",
            "cpu",
            "--no-visualization",
            "--no-progress",
            "--output-dir",
            str(tmp_path / "out"),
        ],
    )
    assert code == 0
    loo = tmp_path / "out" / "scores-group-real-SFace-topk-1-erase-black-gallery-exclude-pair"
    r0, r1 = (strict_load(loo / "json" / f"{n}.json") for n in (0, 1))
    assert (r0["class1"], r0["class2"], r1["class1"], r1["class2"]) == ([1], [1], [0], [0])
    assert r1["similarity"] == pytest.approx(cosine(emb[0], emb[2]), abs=1e-5)  # V unchanged
