"""Issue 9: hostile inputs, numeric edge cases, untrusted files never crash a run or reach a record.

The end-to-end part runs ``Multi_Identity_topk.py`` in a subprocess with tiny
random-weight FaceWorld-architecture networks (saved to files and loaded through
``--*-weights``/``--*-arch``) over one pair list that mixes good pairs, every
hostile image of the issue and every hostile kind of list line. Good pairs must
produce a record whose similarity equals the verification net on the image as
it should have been decoded (worked out here with NumPy, not with
``read_image``); bad pairs must be in ``failures.jsonl`` with their stage and
reason; the exit status is 3 and the summary counts them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from models.preprocess import Preprocess
from tests.helpers import (
    all_numbers,
    cosine,
    files_under,
    load_tiny_net,
    run_script,
    save_tiny_nets,
    strict_load,
)
from utils.run.records import make_record, write_record
from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets, explain_pair

RUN_DIR = "scores-group-hostile-FaceWorld-verification-topk-1-erase-black-thresh-0.3"
NON_ASCII = "dir with space/ünïcødé 顔 08.png"


# --------------------------------------------------------------------------- hostile images


def _smooth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8 BGR smooth random image (compresses well, survives JPEG)."""
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)


def _pil_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _rgb(bgr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))


def make_images(root: Path) -> dict[str, np.ndarray]:
    """Write the hostile images under ``root``; returns name -> BGR array a correct reader gives.

    Expected arrays are worked out independently: lossless formats give the
    written pixels; grayscale repeats the gray level; RGBA is composited over
    white by hand; the palette image is looked up in its palette; 16-bit
    values become round(v / 257); the EXIF-rotated JPEG is Pillow's raw decode
    turned by NumPy as orientation 6 says (90 degrees clockwise).
    """
    rng = np.random.default_rng(0)
    expected: dict[str, np.ndarray] = {}

    def put(name: str, data: bytes, exp: np.ndarray | None) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if exp is not None:
            expected[name] = exp

    base = _smooth(rng, 60, 52)
    put("base.png", cv2.imencode(".png", base)[1].tobytes(), base)
    img = _smooth(rng, 48, 64)
    put("webp named.jpg", _pil_bytes(_rgb(img), "WEBP", lossless=True, exact=True), img)
    img = _smooth(rng, 50, 50)
    put("png_named.jpg", _pil_bytes(_rgb(img), "PNG"), img)
    img = _smooth(rng, 40, 56)
    put("bmp_named.png", _pil_bytes(_rgb(img), "BMP"), img)
    gray = _smooth(rng, 44, 44)[..., 0]
    put(
        "gray.png",
        _pil_bytes(Image.fromarray(gray, "L"), "PNG"),
        np.repeat(gray[..., None], 3, axis=2),
    )
    img, alpha = _smooth(rng, 46, 46), rng.integers(0, 256, (46, 46), dtype=np.uint8)
    rgba = np.dstack([img[..., ::-1], alpha])
    over_white = np.rint(
        img * (alpha[..., None] / 255.0) + 255.0 * (1 - alpha[..., None] / 255.0)
    ).astype(np.uint8)
    put("rgba.png", _pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"), over_white)
    pal_im = _rgb(_smooth(rng, 42, 42)).quantize(16)
    pal = np.array(pal_im.getpalette()[:768], dtype=np.uint8).reshape(-1, 3)
    put("palette.png", _pil_bytes(pal_im, "PNG"), pal[np.asarray(pal_im)][..., ::-1])
    img16 = (
        _smooth(rng, 40, 40).astype(np.uint16) * 257 + rng.integers(0, 200, (40, 40, 3))
    ).astype(np.uint16)
    put(
        "16bit.png",
        cv2.imencode(".png", img16)[1].tobytes(),
        np.rint(img16 / 257.0).astype(np.uint8),
    )
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    jpeg = _pil_bytes(_rgb(_smooth(rng, 40, 64)), "JPEG", quality=95, exif=exif.tobytes())
    stored = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))[..., ::-1]
    put("exif_rotated.jpg", jpeg, np.ascontiguousarray(np.rot90(stored, k=-1)))
    img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    put("tiny8x8.png", cv2.imencode(".png", img)[1].tobytes(), img)
    big = cv2.resize(_smooth(rng, 60, 60), (3000, 3000), interpolation=cv2.INTER_LINEAR)
    data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    full = np.ascontiguousarray(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[..., ::-1])
    # read_image downscales to a longer side of 2048 px
    put("big3000.jpg", data, cv2.resize(full, (2048, 2048), interpolation=cv2.INTER_AREA))
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    put("noise.png", cv2.imencode(".png", img)[1].tobytes(), img)
    img = _smooth(rng, 52, 48)
    put(NON_ASCII, cv2.imencode(".png", img)[1].tobytes(), img)
    img = _smooth(rng, 50, 54)
    # reached with ../ from the list
    put("../outside.png", cv2.imencode(".png", img)[1].tobytes(), img)
    # unusable ones
    put("zero.jpg", b"", None)
    whole = cv2.imencode(".jpg", _smooth(rng, 128, 128))[1].tobytes()
    put("cut_short.jpg", whole[: len(whole) * 2 // 3], None)  # header intact, scan data cut
    put("text.jpg", b"this is a text file, not an image\n", None)
    return expected


# Pair-list lines: (line, expectation). Expectation None: not a pair (blank/comment);
# ("ok", a, b, label); ("fail", stage, text that the message must contain).
LIST = [
    ("# hostile pair list, Windows line endings", None),
    ("", None),
    ("   ", None),
    ('base.png "webp named.jpg" 1', ("ok", "base.png", "webp named.jpg", 1)),
    ("base.png png_named.jpg 0", ("ok", "base.png", "png_named.jpg", 0)),
    ("bmp_named.png base.png 1", ("ok", "bmp_named.png", "base.png", 1)),
    ("gray.png base.png 0", ("ok", "gray.png", "base.png", 0)),
    ("rgba.png base.png 1", ("ok", "rgba.png", "base.png", 1)),
    ("  # an indented comment", None),
    ("palette.png base.png 0", ("ok", "palette.png", "base.png", 0)),
    ("16bit.png base.png 1", ("ok", "16bit.png", "base.png", 1)),
    ("exif_rotated.jpg base.png 0", ("ok", "exif_rotated.jpg", "base.png", 0)),
    ("tiny8x8.png base.png 1", ("ok", "tiny8x8.png", "base.png", 1)),
    ("big3000.jpg tiny8x8.png 0", ("ok", "big3000.jpg", "tiny8x8.png", 0)),
    ("noise.png base.png 0", ("ok", "noise.png", "base.png", 0)),
    (f"{NON_ASCII}\tbase.png\t1", ("ok", NON_ASCII, "base.png", 1)),
    ("../outside.png base.png 1", ("ok", "../outside.png", "base.png", 1)),
    ("missing.jpg base.png 1", ("fail", "read", "file not found")),
    ("zero.jpg base.png 0", ("fail", "read", "empty file")),
    ("base.png cut_short.jpg 1", ("fail", "read", "truncated or corrupt JPEG data")),
    ("text.jpg base.png 0", ("fail", "read", "not an image")),
    ("../../etc/x.jpg base.png 0", ("fail", "read", "etc/x.jpg")),
    ("only_two.jpg fields.jpg", ("fail", "parse", "expected 3 fields")),
    ("a.jpg b.jpg c.jpg 1", ("fail", "parse", "got 4")),
    ("base.png noise.png 2", ("fail", "parse", "label must be 0 or 1")),
    ("base.png noise.png yes", ("fail", "parse", "label must be 0 or 1")),
    ("noise.png base.png 0", ("ok", "noise.png", "base.png", 0)),  # duplicate of an earlier pair
]
PAIRS = [exp for _, exp in LIST if exp is not None]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One script run over the hostile list; returns everything the tests look at."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "nets").mkdir()
    flags = save_tiny_nets(root / "nets")
    expected = make_images(root / "imgs")
    (root / "hostile.txt").write_bytes("".join(line + "\r\n" for line, _ in LIST).encode("utf-8"))
    before = files_under(root)
    out = root / "out"
    res = run_script(
        "Multi_Identity_topk.py",
        [
            "--pair-list",
            str(root / "hostile.txt"),
            "--image-root",
            str(root / "imgs"),
            "--output-dir",
            str(out),
            "--device",
            "cpu",
            "--thresh",
            "0.3",
            "--batch-size",
            "8",
            "--visualization",
            "full",
            *flags,
        ],
        cwd=root,
    )
    return root, expected, before, out / RUN_DIR, res


def test_hostile_run_exits_3_and_writes_every_good_record(hostile):
    root, _, _, run, res = hostile
    assert res.returncode == 3, res.stderr[-3000:]
    written = sorted(int(p.stem) for p in (run / "json").glob("*.json"))
    good = [n for n, exp in enumerate(PAIRS) if exp[0] == "ok"]
    assert written == good, f"records {written}, expected one for each good pair {good}"
    for n in good:
        _, a, b, label = PAIRS[n]
        rec = strict_load(run / "json" / f"{n}.json")
        assert rec["pair-index"] == n and rec["match"] == label
        assert rec["image-path1"] == str(root / "imgs" / a) and rec["image-path2"] == str(
            root / "imgs" / b
        )
        assert all(np.isfinite(x) for x in all_numbers(rec))


def test_every_bad_pair_is_a_failure_with_stage_and_reason(hostile):
    _, _, _, run, _ = hostile
    lines = (run / "failures.jsonl").read_text(encoding="utf-8").splitlines()
    failures = {f["pair"]: f for f in map(json.loads, lines)}
    assert len(failures) == len(lines), "a pair is listed twice in failures.jsonl"
    bad = {n: exp for n, exp in enumerate(PAIRS) if exp[0] == "fail"}
    assert sorted(failures) == sorted(bad)
    line_of = [i + 1 for i, (_, exp) in enumerate(LIST) if exp is not None]
    for n, (_, stage, text) in bad.items():
        f = failures[n]
        assert set(f) == {"pair", "line", "path1", "path2", "stage", "error_type", "message"}, f
        assert f["stage"] == stage and text in f["message"], f
        assert f["line"] == line_of[n]
        assert f["error_type"] == ("ImageReadError" if stage == "read" else "ValueError")


def test_summary_counts(hostile):
    _, _, _, run, res = hostile
    n_ok = sum(exp[0] == "ok" for exp in PAIRS)
    n_bad = len(PAIRS) - n_ok
    summary = strict_load(run / "summary.json")
    assert summary == {
        "pairs": len(PAIRS),
        "done": n_ok,
        "skipped": 0,
        "failed": n_bad,
        "missing": n_bad,
        "shard": [0, 1],
    }
    assert (
        f"{len(PAIRS)} pairs, done {n_ok}, skipped (already done) 0, failed {n_bad}" in res.stderr
    )
    assert "appear more than once" in res.stderr  # the duplicate is warned about, and run


def test_good_hostile_images_are_decoded_correctly(hostile):
    """Each good record's similarity is V's cosine on the images as a correct reader reads them."""
    root, expected, _, run, _ = hostile
    V = load_tiny_net(root / "nets", "verification")
    names = sorted(expected)
    with torch.inference_mode():
        emb = dict(
            zip(names, V(V.preprocess([expected[k] for k in names])).double().numpy(), strict=True)
        )
    for n, exp in enumerate(PAIRS):
        if exp[0] != "ok":
            continue
        rec = strict_load(run / "json" / f"{n}.json")
        assert rec["similarity"] == pytest.approx(cosine(emb[exp[1]], emb[exp[2]]), abs=1e-5), exp
    # the duplicate pair gives the same numbers under its own index
    dup, first = len(PAIRS) - 1, PAIRS.index(("ok", "noise.png", "base.png", 0))
    a, b = strict_load(run / "json" / f"{dup}.json"), strict_load(run / "json" / f"{first}.json")
    assert {k: v for k, v in a.items() if k != "pair-index"} == {
        k: v for k, v in b.items() if k != "pair-index"
    }


def test_nothing_written_outside_the_output_dir(hostile):
    root, _, before, run, _ = hostile
    after = files_under(root)
    new = {p for p in after if p not in before}
    assert new and all(p.startswith("out/") for p in new), sorted(
        p for p in new if not p.startswith("out/")
    )
    assert {p: after[p] for p in before} == before, "an input file was changed"
    # output names come from pair indices only, never from the (hostile) input paths
    names = {Path(p).name for p in new}
    assert not any("outside" in n or "etc" in n or "ü" in n for n in names), names


def test_cam_folders_for_odd_images(hostile):
    _, expected, _, run, _ = hostile
    n = PAIRS.index(("ok", "tiny8x8.png", "base.png", 1))
    erased = sorted((run / "cam" / f"{n}-n1-n2").glob("attr-*-erased.jpg"))
    assert len(erased) == 30 and cv2.imread(str(erased[0])).shape == (8, 8, 3)
    assert cv2.imread(str(run / "cam" / f"{n}.png")) is not None  # the composite of an 8x8 image
    n = PAIRS.index(("ok", "exif_rotated.jpg", "base.png", 0))
    mask = sorted((run / "cam" / f"{n}-n1-n2").glob("attr-*-mask.png"))[0]
    assert cv2.imread(str(mask)).shape[:2] == expected["exif_rotated.jpg"].shape[:2] == (64, 40)


# ---------------------------------------------------------------- usage errors and untrusted files


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Two tiny images, a one-pair list and the tiny nets, for in-process runs of main()."""
    root = tmp_path_factory.mktemp("small")
    (root / "nets").mkdir()
    flags = save_tiny_nets(root / "nets")
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(root / name), _smooth(rng, 40, 40))
    (root / "pairs.txt").write_text("a.png b.png 1\n")
    common = ["--pair-list", str(root / "pairs.txt"), "--device", "cpu", "--no-visualization"]
    return root, flags, common


def _with(flags: list[str], flag: str, value: str) -> list[str]:
    out = list(flags)
    out[out.index(flag) + 1] = value
    return out


def test_missing_pair_list_exits_2_before_any_work(small, tmp_path, caplog):
    from utils.run.runner import main

    root, flags, common = small
    with caplog.at_level(logging.ERROR):
        code = main(
            "topk",
            [
                *_with(common, "--pair-list", str(tmp_path / "nope.txt")),
                "--output-dir",
                str(tmp_path / "o"),
                *flags,
            ],
        )
    assert code == 2 and "nope.txt" in caplog.text and "not found" in caplog.text
    assert not (tmp_path / "o").exists()


class _TouchPayload:
    """Unpickling this runs ``os.system("touch <marker>")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_malicious_pickle_weights_refused_by_the_script(small, tmp_path, caplog):
    from utils.run.runner import main

    root, flags, common = small
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(
        pickle.dumps(
            {"conv.weight": np.zeros(3, np.float32), "x": _TouchPayload(marker)}, protocol=2
        )
    )
    res = run_script(
        "Multi_Identity_topk.py",
        [
            *common,
            *_with(flags, "--recognition-weights", str(evil)),
            "--output-dir",
            str(tmp_path / "o"),
        ],
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "cannot build the recognition net" in res.stderr and str(evil) in res.stderr
    assert re.search(r"(posix|nt)\.system", res.stderr), res.stderr[-2000:]
    # the same through a .pth (torch.load(weights_only=True)), in-process
    # (the script only calls main)
    evil_pth = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(3), "x": _TouchPayload(marker)}, evil_pth)
    with caplog.at_level(logging.ERROR):
        code = main(
            "topk",
            [
                *common,
                *_with(flags, "--verification-weights", str(evil_pth)),
                "--output-dir",
                str(tmp_path / "o"),
            ],
        )
    assert (
        code == 2
        and "cannot build the verification net" in caplog.text
        and str(evil_pth) in caplog.text
    )
    assert re.search(r"(posix|nt)\.system", caplog.text), caplog.text
    assert not marker.exists(), "the pickle payload ran"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda p: torch.save({"conv1.weight": torch.zeros(3), "epoch": 3}, p), r"'epoch' \(int\)"),
        (lambda p: torch.save(nn.Linear(2, 2), p), r"torch\.nn\.modules\.linear\.Linear"),
        (lambda p: p.write_bytes(b"not a checkpoint at all"), r"bad\.pth"),
        (lambda p: p.write_bytes(b""), r"cannot read .* with torch\.load"),
    ],
    ids=["non-tensor-entry", "whole-module", "garbage", "empty"],
)
def test_bad_pth_files_exit_2_with_a_clear_message(small, tmp_path, caplog, content, message):
    from utils.run.runner import main

    root, flags, common = small
    path = tmp_path / "bad.pth"
    content(path)
    with caplog.at_level(logging.ERROR):
        code = main(
            "topk",
            [
                *common,
                *_with(flags, "--attribute-weights", str(path)),
                "--output-dir",
                str(tmp_path / "o"),
            ],
        )
    assert code == 2
    assert "cannot build the attribute net" in caplog.text and str(path) in caplog.text
    assert re.search(message, caplog.text), caplog.text
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "text",
    [
        "FaceWorld: !!python/object/apply:os.system ['touch {marker}']\n",
        '{"FaceWorld": __import__("os").system("touch {marker}")}\n',
        "FaceWorld:\n  pair_list: pairs.txt\n",
    ],
    ids=["yaml-tag", "python-expression", "plain-yaml"],
)
def test_datasets_config_must_be_json(small, tmp_path, caplog, text):
    from utils.faces.data import DataConfigError, load_datasets_config
    from utils.run.runner import main

    root, flags, _ = small
    marker = tmp_path / "pwned"
    cfg = tmp_path / "datasets.json"
    cfg.write_text(text.replace("{marker}", str(marker)))
    with pytest.raises(DataConfigError, match="is not valid JSON"):
        load_datasets_config(cfg)
    with caplog.at_level(logging.ERROR):
        code = main(
            "topk",
            [
                "--datasets-config",
                str(cfg),
                "--Datasets",
                "FaceWorld",
                "--output-dir",
                str(tmp_path / "o"),
                "--device",
                "cpu",
                *flags,
            ],
        )
    assert code == 2 and "not valid JSON" in caplog.text and str(cfg) in caplog.text
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_garbage_pth_is_not_called_unsafe(tmp_path):
    from models.loading import CheckpointFormatError, UnsafeCheckpointError, read_checkpoint

    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointFormatError) as err:
        read_checkpoint(path)
    assert not isinstance(err.value, UnsafeCheckpointError) and "global" not in str(err.value)


# --------------------------------------------------------------------------- numerical edge cases


PRE = Preprocess((4, 4), "BGR", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


class ZeroGradR(nn.Module):
    """Classifier whose logits ignore the Grad-CAM layer: every gradient there is exactly 0."""

    kind, num_classes, target_layer = "classifier", 3, "conv"

    def __init__(self) -> None:
        super().__init__()
        self.preprocess = PRE
        self.conv = nn.Conv2d(3, 2, 1)
        self.register_buffer("logits", torch.tensor([0.5, 2.0, -1.0]))

    def forward(self, x):
        return self.logits + 0.0 * self.conv(x).sum(dim=(1, 2, 3))[:, None]


class ConstantA(nn.Module):
    """Attribute net whose Grad-CAM layer is spatially constant, so its maps are constant.

    The layer has zero conv weights and a bias.
    """

    kind, head_sizes, target_layer = "attribute", (2, 3), "conv"

    def __init__(self) -> None:
        super().__init__()
        self.preprocess = PRE
        self.conv = nn.Conv2d(3, 2, 1)
        self.heads = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)])
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.copy_(torch.tensor([1.0, 2.0]))

    def forward(self, x):
        f = self.conv(x).mean(dim=(2, 3)) + 1e-3 * x.mean(dim=(1, 2, 3))[:, None]
        return [h(f) for h in self.heads]


class MeanV(nn.Module):
    """Embedding = ``scale`` * per-channel mean of the raw image: a black image has norm 0."""

    kind, embedding_size = "embedding", 3

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.preprocess = PRE
        self.scale = scale

    def forward(self, x):
        return x.mean(dim=(2, 3)) * self.scale


def _images():
    rng = np.random.default_rng(3)
    return rng.integers(10, 256, (8, 8, 3), dtype=np.uint8), rng.integers(
        10, 256, (6, 10, 3), dtype=np.uint8
    )


def _record(ex, config, tmp_path):
    rec = make_record(
        ex,
        config,
        datasets="edge",
        recognition_net="r",
        attribute_net="a",
        verification_net="v",
        image_path1="1.png",
        image_path2="2.png",
        match=0,
        pair_index=0,
    )
    write_record(tmp_path / "0.json", rec)
    back = strict_load(tmp_path / "0.json")
    assert back == rec and all(np.isfinite(x) for x in all_numbers(back))
    return back


def _emb(img):
    return (
        cv2.resize(img, (4, 4), interpolation=cv2.INTER_LINEAR)
        .reshape(-1, 3)
        .astype(np.float64)
        .mean(axis=0)
    )


@pytest.mark.parametrize("method", ["GradCAM", "GradCAM++"])
@pytest.mark.parametrize(
    "thresh, erased", [(0.6, 0.0), (-1.0, 1.0)], ids=["erase-nothing", "erase-everything"]
)
def test_zero_gradients_constant_maps_and_empty_or_full_masks(tmp_path, method, thresh, erased):
    img1, img2 = _images()
    config = Sim2WordConfig(heatmap_method=method, thresh=thresh)
    ex = explain_pair(img1, img2, Sim2WordNets(ZeroGradR(), ConstantA(), MeanV()), config)
    for d in ex.directions:
        for name in ("H_t", "H_f", "H_d", "H_attr", "J"):
            assert np.all(getattr(d, name) == 0), (
                f"{name} of a zero-gradient / constant map must be all 0"
            )
    rec = _record(ex, config, tmp_path)
    assert rec["class1"] == rec["class2"] == [1]
    assert rec["mask-fraction1"] == rec["mask-fraction2"] == [erased, erased]
    s = cosine(_emb(img1), _emb(img2))
    assert rec["similarity"] == pytest.approx(s, abs=1e-6)
    if erased:  # black images: zero-norm embeddings, whose cosine with anything is 0 (not NaN)
        want1, want2, both = [0.0, 0.0], [0.0, 0.0], 0.0
    else:  # nothing erased: the originals
        want1, want2, both = [1.0, s], [1.0, s], s
    for j in range(2):
        assert rec["attributes-image1"][f"image1-f_attr_{j}"] == pytest.approx(want1, abs=1e-6)
        assert rec["attributes-image2"][f"image2-f_attr_{j}"] == pytest.approx(want2, abs=1e-6)
        assert rec["attributes-both-masked"][f"Both_masked-f_attr_{j}"] == pytest.approx(
            both, abs=1e-6
        )


def test_zero_norm_embeddings_give_zero_similarity(tmp_path):
    img1, img2 = _images()
    config = Sim2WordConfig(thresh=0.6)
    ex = explain_pair(img1, img2, Sim2WordNets(ZeroGradR(), ConstantA(), MeanV(scale=0.0)), config)
    rec = _record(ex, config, tmp_path)
    assert rec["similarity"] == 0.0
    assert all(v == [0.0, 0.0] for v in rec["attributes-image1"].values())
    assert all(v == 0.0 for v in rec["attributes-both-masked"].values())


class NaNA(ConstantA):
    def forward(self, x):
        return [h * float("nan") for h in super().forward(x)]


class NaNR(ZeroGradR):
    def forward(self, x):
        return super().forward(x) * float("nan")


def _one_pair_plan(small, tmp_path):
    from utils.run.cli import build_parser
    from utils.run.runner import make_plan

    root, _, common = small
    return make_plan(
        build_parser("topk").parse_args([*common, "--output-dir", str(tmp_path / "o")])
    )


@pytest.mark.parametrize(
    "nets, stage",
    [
        (lambda: Sim2WordNets(ZeroGradR(), ConstantA(), MeanV(scale=float("inf"))), "record"),
        (lambda: Sim2WordNets(ZeroGradR(), NaNA(), MeanV()), "explain"),
    ],
    ids=["inf-embedding", "nan-attribute-logits"],
)
def test_non_finite_networks_fail_the_pair_and_write_no_record(small, tmp_path, nets, stage):
    from utils.run.runner import run_pairs

    plan = _one_pair_plan(small, tmp_path)
    assert run_pairs(plan, nets()) == 3
    assert list((plan.run_dir / "json").iterdir()) == []
    (failure,) = map(json.loads, (plan.run_dir / "failures.jsonl").read_text().splitlines())
    assert failure["stage"] == stage and failure["error_type"] == "FloatingPointError", failure
    assert strict_load(plan.run_dir / "summary.json")["failed"] == 1


def test_nan_recognition_logits_fail_the_pair(small, tmp_path):
    from utils.run.runner import run_pairs

    plan = _one_pair_plan(small, tmp_path)
    code = run_pairs(plan, Sim2WordNets(NaNR(), ConstantA(), MeanV()))
    assert code == 3 and list((plan.run_dir / "json").iterdir()) == []
