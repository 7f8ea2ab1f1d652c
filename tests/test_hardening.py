"""Issue 16: bounded memory and time for every input, safe JSON, no input content in outputs,
non-finite weights refused, committed results never overwritten by default.

Memory checks run the reader in a child process whose address space is capped with
``resource.setrlimit(RLIMIT_AS)`` a fixed amount above what it holds after its imports
and a warm-up read: a reader that decodes more than the cap allows fails there with a
``MemoryError`` (or a decoder error) instead of giving the expected answer. Hang checks
run under a deadline (``SIGALRM`` in-process, ``timeout=`` for children).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import weakref
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from tests.helpers import REPO, run_script, save_tiny_nets, script_env
from utils.base.outputs import OUTPUTS, CommittedOutputError, check_output_path
from utils.base.safefile import UnreadableFileError, read_capped
from utils.base.safejson import JSONInputError, load_json_file, loads, nesting_depth
from utils.faces.data import (
    DataConfigError,
    load_datasets_config,
    parse_pair_csv,
    parse_pair_lines,
    read_pair_list,
)
from utils.faces.image_io import (
    ImageReadError,
    _flatten_alpha,
    _scale_16_to_8,
    parse_header,
    read_image,
    read_image_info,
    sniff_format,
)

SECRET = "API_KEY=sk-live-51HxSECRETsecret"
KMSG = Path("/proc/kmsg")


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise TimeoutError in the main thread after ``seconds``: a hang fails, never blocks."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_bytes(
    width: int,
    height: int,
    rows: bytes,
    bit_depth: int = 8,
    color_type: int = 0,
    bad_text_crc: bool = False,
) -> bytes:
    """A PNG of ``rows`` (filter bytes included), optionally with a tEXt chunk of wrong CRC."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    text = _chunk(b"tEXt", b"Comment\x00hello", crc=0xDEADBEEF) if bad_text_crc else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + text
        + _chunk(b"IDAT", zlib.compress(rows, 6))
        + _chunk(b"IEND", b"")
    )


CHILD_PRELUDE = """
import json, resource, sys
sys.path.insert(0, {repo!r})
import cv2
cv2.setNumThreads(1)
from utils.faces.image_io import ImageReadError, read_image
for warm in {warm!r}:
    read_image(warm)
vm = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]) * 1024
cap = vm + {cap_mb} * 2**20
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
out = {{}}
try:
    img = read_image({path!r}{kwargs})
    out['shape'] = list(img.shape)
    out['mean'] = [float(img[..., c].mean()) for c in range(3)]
except ImageReadError as err:
    out['reason'] = err.reason
out['maxrss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def warm_files(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("warm")
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    paths = []
    for ext in (".jpg", ".png"):
        cv2.imwrite(str(folder / f"w{ext}"), img)
        paths.append(str(folder / f"w{ext}"))
    return paths


def read_capped_child(path: Path, cap_mb: int, warm: list[str], kwargs: str = "") -> dict:
    """read_image(path) in a child allowed ``cap_mb`` MiB of address space beyond its warm state."""
    code = CHILD_PRELUDE.format(
        repo=str(REPO), warm=warm, cap_mb=cap_mb, path=str(path), kwargs=kwargs
    )
    env = {**script_env(), "MALLOC_ARENA_MAX": "1", "OPENBLAS_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert res.returncode == 0, f"child failed under a {cap_mb} MiB cap:\n{res.stderr[-2000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- 1: decompression bomb bypass


def test_png_bomb_with_bad_text_crc_is_refused_from_its_header_under_a_memory_cap(
    tmp_path, warm_files
):
    # 15000 x 15000 = 225 MP, 1 bit per pixel: a 28 MB stream of zeros, 675 MB of BGR for OpenCV.
    width = height = 15000
    rows = b"\x00" * ((1 + (width + 7) // 8) * height)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(width, height, rows, bit_depth=1, bad_text_crc=True))
    assert bomb.stat().st_size < 200_000
    with pytest.raises(
        UnidentifiedImageError
    ):  # the bypass: Pillow does not identify it, OpenCV would decode it
        Image.open(bomb)
    out = read_capped_child(bomb, cap_mb=200, warm=warm_files)
    assert "reason" in out, out
    assert "limit" in out["reason"] and "225000000" in out["reason"], out


def test_bad_crc_png_of_legal_size_still_read_through_opencv(tmp_path):
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    path = tmp_path / "crc.png"
    path.write_bytes(
        png_bytes(40, 30, b"".join(b"\x00" + r.tobytes() for r in small), bad_text_crc=True)
    )
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)
    np.testing.assert_array_equal(read_image(path), np.repeat(small[..., None], 3, axis=2))
    # larger than the working size: OpenCV decodes, then INTER_AREA to a longer side of 2048
    gray = np.tile(np.arange(3000, dtype=np.int64) % 251, (1000, 1)).astype(np.uint8)
    path.write_bytes(
        png_bytes(3000, 1000, b"".join(b"\x00" + r.tobytes() for r in gray), bad_text_crc=True)
    )
    img, info = read_image_info(path)
    expected = cv2.resize(
        np.repeat(gray[..., None], 3, axis=2), (2048, 683), interpolation=cv2.INTER_AREA
    )
    np.testing.assert_array_equal(img, expected)
    assert (info.original_size, info.size, info.downscaled) == ((3000, 1000), (2048, 683), True)


def _pillow_bytes(fmt: str, size=(37, 23), **kw) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(
        np.random.default_rng(2).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    ).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt, kw",
    [
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("PNG", {}),
        ("GIF", {}),
        ("BMP", {}),
        ("TIFF", {}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {}),
    ],
)
def test_own_header_parser_agrees_with_pillow(fmt, kw):
    data = _pillow_bytes(fmt, **kw)
    assert sniff_format(data) == fmt
    hdr = parse_header(fmt, data)
    assert (hdr.width, hdr.height) == (37, 23)
    if fmt == "JPEG":
        assert hdr.progressive == bool(kw.get("progressive"))


def _declare(fmt: str, data: bytes, width: int, height: int) -> bytes:
    """``data`` with its header patched to declare width x height (pixel data unchanged)."""
    b = bytearray(data)
    if fmt == "JPEG":
        i = b.index(b"\xff\xc0")
        b[i + 5 : i + 9] = struct.pack(">HH", height, width)
    elif fmt == "PNG":
        b[16:24] = struct.pack(">II", width, height)
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    elif fmt == "GIF":
        b[6:10] = struct.pack("<HH", width, height)
    elif fmt == "BMP":
        b[18:26] = struct.pack("<ii", width, height)
    elif fmt == "TIFF":  # little-endian, as Pillow writes it: tags 256/257 of the first IFD
        ifd = struct.unpack_from("<I", b, 4)[0]
        for k in range(struct.unpack_from("<H", b, ifd)[0]):
            e = ifd + 2 + 12 * k
            tag, typ = struct.unpack_from("<HH", b, e)
            if tag in (256, 257):
                struct.pack_into("<HHII", b, e, tag, 4, 1, width if tag == 256 else height)
    elif fmt == "WEBP":  # lossless VP8L: 14 bits width-1, 14 bits height-1
        bits = struct.unpack_from("<I", b, 21)[0]
        struct.pack_into("<I", b, 21, (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14))
    return bytes(b)


@pytest.mark.parametrize(
    "fmt, size",
    [
        ("JPEG", (60000, 60000)),
        ("PNG", (20000, 20000)),
        ("GIF", (65535, 65535)),
        ("BMP", (30000, 30000)),
        ("TIFF", (40000, 40000)),
        ("WEBP", (16384, 16384)),
    ],
)
def test_declared_size_over_the_limit_is_refused_before_decoding(tmp_path, fmt, size):
    data = _declare(
        fmt, _pillow_bytes(fmt, lossless=True) if fmt == "WEBP" else _pillow_bytes(fmt), *size
    )
    path = tmp_path / f"bomb.{fmt.lower()}"
    path.write_bytes(data)
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:  # oracle: what Pillow reads from the patched header
            assert im.size == size
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert f"{size[0] * size[1]} pixels" in info.value.reason and "limit" in info.value.reason


# ----------------------------------------------------------------- 2: large legal images


def test_large_jpeg_is_decoded_at_reduced_scale_under_a_memory_cap(tmp_path, warm_files):
    # 8192 x 6144 (50 MP): a full decode alone is 200 MB in Pillow, 150 MB more as an array
    colour = (40, 120, 200)  # BGR
    ok, buf = cv2.imencode(".jpg", np.full((6144, 8192, 3), colour, dtype=np.uint8))
    assert ok
    path = tmp_path / "big.jpg"
    path.write_bytes(buf.tobytes())
    out = read_capped_child(path, cap_mb=120, warm=warm_files)
    assert out.get("shape") == [1536, 2048, 3], out
    assert np.allclose(out["mean"], colour, atol=3), out


def test_large_png_is_reduced_once_at_read_time(tmp_path, warm_files):
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    full = cv2.resize(small, (4800, 3600), interpolation=cv2.INTER_NEAREST)  # flat blocks of 120 px
    path = tmp_path / "big.png"
    assert cv2.imwrite(str(path), full, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    img, info = read_image_info(path)
    assert img.shape == (1536, 2048, 3) and info.downscaled and info.original_size == (4800, 3600)
    assert info.scale == pytest.approx((2048 / 4800, 1536 / 3600))
    expected = cv2.resize(full, (2048, 1536), interpolation=cv2.INTER_AREA)
    assert (
        np.abs(img.astype(int) - expected).mean() < 1.0
    )  # block interiors agree exactly; edges differ
    out = read_capped_child(path, cap_mb=160, warm=warm_files)  # 17 MP: Pillow's 69 MB, then small
    assert out.get("shape") == [1536, 2048, 3], out
    # the working size is a parameter (and SIM2WORD_MAX_IMAGE_SIDE)
    assert read_image(path, max_side=4800).shape == (3600, 4800, 3)


def test_decode_memory_budget_refuses_with_sizes_named(tmp_path):
    path = tmp_path / "wide.png"
    assert cv2.imwrite(str(path), np.zeros((3000, 4000, 3), dtype=np.uint8))
    with pytest.raises(ImageReadError) as info:
        read_image(path, max_decode_bytes=20 * 2**20)
    assert (
        "needs about" in info.value.reason
        and "20.0 MiB" in info.value.reason
        and "4000x3000" in info.value.reason
    )
    assert read_image(path).shape == (1536, 2048, 3)


def test_env_variables_set_the_limits(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    assert cv2.imwrite(str(path), np.zeros((300, 200, 3), dtype=np.uint8))
    monkeypatch.setenv("SIM2WORD_MAX_IMAGE_SIDE", "100")
    assert read_image(path).shape == (100, 67, 3)
    monkeypatch.setenv("SIM2WORD_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageReadError, match="60000 pixels is more than the limit of 1000"):
        read_image(path)
    monkeypatch.setenv("SIM2WORD_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="SIM2WORD_MAX_IMAGE_PIXELS must be a positive integer"):
        read_image(path)


def test_exif_orientation_of_a_downscaled_jpeg(tmp_path):
    stored = np.zeros((2000, 3000, 3), dtype=np.uint8)
    stored[:1000, :1500] = (0, 0, 255)  # top-left red (BGR)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed = stored turned 90 degrees clockwise: red ends top-right
    path = tmp_path / "o.jpg"
    Image.fromarray(stored[..., ::-1]).save(path, quality=95, exif=exif.tobytes())
    img, info = read_image_info(path)
    assert img.shape == (2048, 1365, 3)
    assert info.original_size == (2000, 3000) and info.size == (1365, 2048)
    assert img[10, -10].tolist() == pytest.approx([0, 0, 255], abs=8) and img[10, 10].max() < 8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    arr = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(arr).save(path, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))[..., ::-1]
    np.testing.assert_array_equal(read_image(path), expected)


def test_integer_16_bit_and_alpha_arithmetic_equal_the_float_formulas():
    v = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(_scale_16_to_8(v), np.rint(v / 257.0).astype(np.uint8))
    rgb, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = np.stack([rgb, rgb, rgb, a], axis=-1).astype(np.uint8)
    for bg in (0, 255, 77):
        want = np.rint(rgb * (a / 255.0) + bg * (1 - a / 255.0)).astype(np.uint8)
        np.testing.assert_array_equal(_flatten_alpha(rgba, bg)[..., 0], want)


def test_embed_images_holds_one_raw_image_at_a_time():
    from models import get_network
    from utils.explain.verification import embed_images

    torch.manual_seed(0)
    V = get_network(
        "FaceWorld-verification", weights=False, width=4, embedding_size=8, input_size=32
    )
    images = [
        np.random.default_rng(k).integers(0, 256, (40, 30, 3), dtype=np.uint8) for k in range(7)
    ]
    alive: list[int] = []
    refs: list[weakref.ref] = []

    def stream():
        for img in images:
            copy = img.copy()  # the only reference is the one handed over
            alive.append(sum(r() is not None for r in refs))
            refs.append(weakref.ref(copy))
            yield copy
            del copy

    got = embed_images(V, stream(), batch_size=4)
    V.eval()
    with torch.inference_mode():
        want = V(V.preprocess(images)).float()
    torch.testing.assert_close(got, want)
    assert max(alive) <= 1, f"raw images still held while the next one is read: {alive}"


# ----------------------------------------------------------------- 3 and 7: no hangs, no huge reads


@pytest.fixture
def specials(tmp_path):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    (tmp_path / "to_fifo.jpg").symlink_to(fifo)
    (tmp_path / "to_zero.jpg").symlink_to("/dev/zero")
    (tmp_path / "folder.jpg").mkdir()
    return {
        "FIFO": [fifo, tmp_path / "to_fifo.jpg"],
        "character device": [Path("/dev/zero"), tmp_path / "to_zero.jpg"],
        "folder": [tmp_path / "folder.jpg"],
    }


def test_special_files_are_refused_before_opening(specials):
    with deadline(10):
        for kind, paths in specials.items():
            for path in paths:
                with pytest.raises(ImageReadError) as info:
                    read_image(path)
                assert "not a regular file" in info.value.reason and kind in info.value.reason
                with pytest.raises(UnreadableFileError, match=kind):
                    load_json_file(path)
                with pytest.raises(DataConfigError, match="not a regular file"):
                    read_pair_list(path)
                with pytest.raises(DataConfigError, match="not a regular file"):
                    load_datasets_config(path)


def test_proc_kmsg_never_blocks():
    if not KMSG.exists():
        pytest.skip("no /proc/kmsg here")
    with deadline(10):
        with pytest.raises(ImageReadError) as info:
            read_image(KMSG)
        assert "empty" in info.value.reason  # size 0 on disk: never read
        with pytest.raises(UnreadableFileError):
            read_capped(KMSG, 1 << 20)
        from utils.faces.landmarks import read_landmarks

        with pytest.raises((OSError, ValueError)):
            read_landmarks(KMSG, "csv")


def test_huge_sparse_files_are_refused_from_their_size(tmp_path, monkeypatch):
    big = tmp_path / "sparse.jpg"
    with open(big, "wb") as fh:
        fh.truncate(3 * 2**30)  # 3 GiB, no blocks on disk
    t0 = time.process_time()
    with deadline(10), pytest.raises(ImageReadError) as info:
        read_image(big)
    assert time.process_time() - t0 < 2
    assert "3.0 GiB" in info.value.reason and "64.0 MiB" in info.value.reason
    assert "SIM2WORD_MAX_IMAGE_MB" in info.value.hint
    lst = tmp_path / "pairs.txt"
    with open(lst, "wb") as fh:
        fh.truncate(3 * 2**20)
    monkeypatch.setenv("SIM2WORD_MAX_LIST_MB", "2")
    with pytest.raises(DataConfigError, match="more than the limit of 2.0 MiB"):
        read_pair_list(lst)
    with pytest.raises(UnreadableFileError, match="more than the limit"):
        load_json_file(big)


def test_script_run_over_blocking_entries_finishes_and_stops_on_the_first_ctrl_c(tmp_path):
    """FIFO, /proc/kmsg (linked) and secret files in a list: the run goes on; one SIGINT ends it."""
    flags = save_tiny_nets(tmp_path)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(4)
    for k in range(3):
        cv2.imwrite(str(imgs / f"g{k}.png"), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    os.mkfifo(imgs / "fifo.jpg")
    (imgs / "kmsg.jpg").symlink_to(KMSG)
    (imgs / "secret.jpg").write_text(f"{SECRET}\nDB_PASSWORD=hunter2\n")
    (imgs / "eps.jpg").write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n" + SECRET.encode() + b"\n"
    )
    bad = ["fifo.jpg", "kmsg.jpg", "secret.jpg", "eps.jpg", str(KMSG)]
    lines = (
        ["g0.png g1.png 1"]
        + [f"{b} g0.png 0" for b in bad]
        + [f"g{k % 3}.png g{(k + 1) % 3}.png 1" for k in range(400)]
    )
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    out, log = tmp_path / "out", tmp_path / "stderr.txt"
    with open(log, "w") as err_fh:  # a file, not a pipe: a full pipe would stall the child
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "Multi_Identity_topk.py"),
                "--pair-list",
                str(tmp_path / "pairs.txt"),
                "--image-root",
                str(imgs),
                "--output-dir",
                str(out),
                "--device",
                "cpu",
                "--no-visualization",
                *flags,
            ],
            cwd=tmp_path,
            env=script_env(),
            stdout=subprocess.DEVNULL,
            stderr=err_fh,
        )
    try:
        failures: list[dict] = []
        end = time.monotonic() + 120
        while time.monotonic() < end and len(failures) < len(bad):
            time.sleep(0.5)
            found = list(out.glob("*/failures.jsonl"))
            if found:
                failures = [
                    json.loads(x) for x in found[0].read_text().splitlines() if x.endswith("}")
                ]
            assert proc.poll() is None, log.read_text()[-2000:]
        assert [f["pair"] for f in failures] == [1, 2, 3, 4, 5], (
            f"the run did not get past them: {failures[:8]}"
        )
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the run did not stop within 30 s of one SIGINT")
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    by_pair = {f["pair"]: f for f in failures}
    assert "FIFO" in by_pair[1]["message"] and "not a regular file" in by_pair[1]["message"]
    kmsg = "empty file" if KMSG.exists() else "file not found"
    assert kmsg in by_pair[2]["message"] and kmsg in by_pair[5]["message"]
    assert (
        "text file" in by_pair[3]["message"] and "PostScript/EPS document" in by_pair[4]["message"]
    )
    text = found[0].read_text()
    assert "sk-live" not in text and "hunter2" not in text and "BoundingBox" not in text


def test_align_faces_skips_blocking_and_special_entries(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "ok.png"), np.full((50, 50, 3), 90, dtype=np.uint8))
    os.mkfifo(src / "fifo.jpg")
    (src / "kmsg.jpg").symlink_to(KMSG)
    (src / "zero.png").symlink_to("/dev/zero")
    res = run_script(
        "align_faces.py",
        ["--input-dir", str(src), "--output-dir", str(tmp_path / "out"), "--no-align"],
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 3, res.stderr[-2000:]
    skipped = (tmp_path / "out" / "skipped.csv").read_text()
    assert "FIFO" in skipped and "character device" in skipped
    assert ("empty file" if KMSG.exists() else "file not found") in skipped
    assert (tmp_path / "out" / "ok.png").is_file()


# ----------------------------------------------------------------- 8: deeply nested JSON


def _depth(obj) -> int:
    """Independent oracle: nesting depth of a parsed value."""
    if isinstance(obj, dict):
        return 1 + max(map(_depth, obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max(map(_depth, obj), default=0)
    return 0


def _random_json(rng: np.random.Generator, depth: int):
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(['a"[{', "x\\", "]}]", "plain", '\\"[[', "é[ü"])
    if rng.random() < 0.5:
        return [_random_json(rng, depth - 1) for _ in range(int(rng.integers(0, 3)))]
    return {f"k{i}[": _random_json(rng, depth - 1) for i in range(int(rng.integers(0, 3)))}


def test_nesting_depth_matches_the_parsed_depth():
    rng = np.random.default_rng(5)
    for _ in range(300):
        obj = _random_json(rng, 8)
        for text in (json.dumps(obj), json.dumps(obj, ensure_ascii=False, indent=1)):
            assert nesting_depth(text) == _depth(obj), text


def test_deep_json_is_a_value_error_everywhere(tmp_path, monkeypatch):
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(RecursionError):  # what every reader did before
        json.loads(deep)
    with pytest.raises(
        JSONInputError, match="nested 100000 levels deep, more than the limit of 100"
    ):
        loads(deep)
    assert isinstance(JSONInputError("x"), (ValueError, json.JSONDecodeError))
    assert loads('{"a": "' + "[" * 500 + '"}') == {
        "a": "[" * 500
    }  # brackets in strings do not count
    err = pickle.loads(pickle.dumps(JSONInputError("m", "src", 2, 3)))
    assert (str(err), err.source, err.lineno, err.colno) == ("m", "src", 2, 3)
    path = tmp_path / "deep.json"
    path.write_text('{"FaceWorld": ' + deep + "}")
    with pytest.raises(DataConfigError, match="nested"):
        load_datasets_config(path)
    # a deep record is not done (recomputed), never a crash
    from utils.run.records import is_done

    assert is_done(path) is False
    # --*-arch: a usage error (argparse exit 2), not a RecursionError
    from utils.run.cli import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser("topk").parse_args(["--recognition-arch", deep])
    assert info.value.code == 2
    # results/: a record error naming the file
    from utils.experiments.analysis import RecordError, read_record

    with pytest.raises(RecordError, match="deep.json"):
        read_record(path)
    sys.path.insert(0, str(REPO / "results"))
    try:
        from uncertainty_visualization import read_chart_data
    finally:
        sys.path.remove(str(REPO / "results"))
    with pytest.raises(ValueError, match="deep.json"):
        read_chart_data(path)


def test_json_syntax_errors_name_line_and_column_not_content(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{\n  "a": 1,\n  ' + SECRET + "\n}")
    with pytest.raises(JSONInputError) as info:
        load_json_file(path)
    assert "line 3 column 3" in str(info.value) and "sk-live" not in str(info.value)
    with pytest.raises(DataConfigError) as cfg_err:
        load_datasets_config(path)
    assert "sk-live" not in str(cfg_err.value) and "is not valid JSON" in str(cfg_err.value)
    path.write_text(json.dumps({"X": SECRET}))
    with pytest.raises(DataConfigError) as cfg_err:
        load_datasets_config(path)
    assert "sk-live" not in str(cfg_err.value) and "got a str" in str(cfg_err.value)


# ----------------------------------------------------------------- 11: non-finite weights


@pytest.mark.parametrize(
    "value, word", [(float("inf"), "+inf"), (float("-inf"), "-inf"), (float("nan"), "NaN")]
)
def test_non_finite_checkpoint_refused_naming_the_tensor(tmp_path, value, word):
    from models import get_network
    from models.loading import NonFiniteCheckpointError

    net = get_network(
        "FaceWorld-verification", weights=False, width=4, embedding_size=8, input_size=32
    )
    state = net.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 3)
    state[name].view(-1)[:3] = value
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(NonFiniteCheckpointError) as info:
        get_network(
            "FaceWorld-verification",
            weights=tmp_path / "w.pth",
            width=4,
            embedding_size=8,
            input_size=32,
        )
    assert repr(name) in str(info.value) and f"3 {word}" in str(info.value)
    with open(tmp_path / "w.pkl", "wb") as fh:  # the .pkl reader (numpy arrays) too
        pickle.dump({k: v.numpy() for k, v in state.items()}, fh, protocol=2)
    with pytest.raises(NonFiniteCheckpointError, match=word.replace("+", r"\+")):
        from models.loading import read_checkpoint

        read_checkpoint(tmp_path / "w.pkl")


def test_script_with_infinite_weights_exits_2(tmp_path, monkeypatch, caplog):
    import runpy

    flags = save_tiny_nets(tmp_path)
    state = torch.load(tmp_path / "verification.pth", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].fill_(float("inf"))
    torch.save(state, tmp_path / "verification.pth")
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((20, 20, 3), dtype=np.uint8))
    (tmp_path / "pairs.txt").write_text("a.png a.png 1\n")
    argv = [
        "--pair-list",
        str(tmp_path / "pairs.txt"),
        "--output-dir",
        str(tmp_path / "out"),
        "--device",
        "cpu",
        *flags,
    ]
    monkeypatch.setattr(sys, "argv", ["Multi_Identity_topk.py", *argv])
    with pytest.raises(
        SystemExit
    ) as info:  # the script itself, in-process (torch is loaded already)
        runpy.run_path(str(REPO / "Multi_Identity_topk.py"), run_name="__main__")
    assert info.value.code == 2
    assert "non-finite" in caplog.text and repr(name) in caplog.text
    assert not list((tmp_path / "out").rglob("*.json"))


# ----------------------------------------------------------------- 12: no content in outputs


@pytest.mark.parametrize(
    "content, kind",
    [
        (f"{SECRET}\n".encode(), "text file"),
        (b"%PDF-1.7\n" + SECRET.encode(), "PDF document"),
        (b"\x7fELF\x02\x01\x01" + SECRET.encode(), "ELF executable"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n" + SECRET.encode(), "PostScript/EPS document"),
        (b"\x00\x01\x02\x03\xfe" + SECRET.encode() + bytes(range(256)), "unknown binary data"),
        (b"PK\x03\x04" + SECRET.encode(), "ZIP archive"),
    ],
)
def test_non_images_are_named_by_kind_never_quoted(tmp_path, content, kind):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert kind in info.value.reason and "not an image format" in info.value.reason
    assert "sk-live" not in str(info.value) and "SECRET" not in str(info.value)


def test_eps_named_jpg_never_reaches_ghostscript(tmp_path):
    """A fake ``gs`` first on PATH leaves a marker if Pillow's EPS plugin ever runs it."""
    fake = tmp_path / "bin"
    fake.mkdir()
    marker = tmp_path / "gs-ran"
    (fake / "gs").write_text(f"#!/bin/sh\ntouch {marker}\necho 10.0\n")
    (fake / "gs").chmod(0o755)
    eps = tmp_path / "x.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n")
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from utils.faces.image_io import read_image, ImageReadError\n"
        f"try:\n    read_image({str(eps)!r})\nexcept ImageReadError as e:\n    print(e.reason)\n"
    )
    env = {**script_env(), "PATH": f"{fake}{os.pathsep}{os.environ.get('PATH', '')}"}
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "PostScript/EPS document" in res.stdout
    assert not marker.exists(), "Ghostscript was run on EPS content named .jpg"


def test_list_parse_errors_give_line_numbers_not_content(tmp_path):
    passwd = (
        "root:x:0:0:root:/root:/bin/bash\nsvc:x:1:1:TOKEN=hunter2:/nonexistent:/usr/sbin/nologin\n"
    )
    items = parse_pair_lines(
        passwd.splitlines() + ["a.jpg b.jpg hunter2", "a b c d"], source="/etc/passwd"
    )
    assert [it.line_no for it in items] == [1, 2, 3, 4] and all(it.error for it in items)
    for it in items:
        assert f"/etc/passwd:{it.line_no}:" in it.error
        assert "hunter2" not in it.error and "root" not in it.error and "bash" not in it.error
    items = parse_pair_csv(
        ["img1,img2,same", "a.jpg,b.jpg,hunter2", "a.jpg,hunter2", '"a,hunter2'], source="p.csv"
    )
    assert len(items) == 3 and all(it.error and "hunter2" not in it.error for it in items)
    assert "label must be one of" in items[0].error and "p.csv:2:" in items[0].error


# ----------------------------------------------------------------- also: committed results


def test_output_guard():
    assert check_output_path(OUTPUTS / "comparison", False) == (OUTPUTS / "comparison").resolve()
    assert check_output_path("/tmp/elsewhere", False) == Path("/tmp/elsewhere").resolve()
    for committed in (
        REPO / "pre-trained" / "face_world" / "xcos_attention.pth",
        REPO / "Explainable-Framework-Comparison" / "results",
        REPO / "outputs" / ".." / "pre-trained",
    ):
        with pytest.raises(CommittedOutputError, match="--overwrite-committed"):
            check_output_path(committed, False)
        assert check_output_path(committed, True) == committed.resolve()


def test_comparison_scripts_default_outside_committed_results():
    here = REPO / "Explainable-Framework-Comparison"
    sys.path.insert(0, str(here))
    try:
        import compare
        import train_xcos
    finally:
        sys.path.remove(str(here))
    args = compare.parse_args([])
    assert Path(args.output_dir) == OUTPUTS / "comparison"
    args = train_xcos.parse_args([])
    assert (
        Path(args.output).parent == OUTPUTS / "xcos"
        and Path(args.metrics).parent == OUTPUTS / "xcos"
    )
    for parse, argv in (
        (compare.parse_args, ["--output", str(here / "results")]),
        (
            train_xcos.parse_args,
            ["--output", str(REPO / "pre-trained/face_world/xcos_attention.pth")],
        ),
        (train_xcos.parse_args, ["--metrics", str(here / "results" / "xcos_training.json")]),
    ):
        with pytest.raises(SystemExit) as info:
            parse(argv)
        assert info.value.code == 2
        assert parse([*argv, "--overwrite-committed"]).overwrite_committed


def test_evaluate_only_leaves_metrics_json_alone(tmp_path, monkeypatch):
    import shutil

    import train_face_world

    src = REPO / "pre-trained" / "face_world"
    for pth in src.glob("FaceWorld-*.pth"):
        shutil.copy(pth, tmp_path / pth.name)
    (tmp_path / "metrics.json").write_text('{"small_batch": {"kept": true}}')
    monkeypatch.setattr(
        train_face_world, "evaluate", lambda nets, split, **_: {"identification_top1": 1.0}
    )
    monkeypatch.setattr(train_face_world, "format_metrics", lambda metrics: "")
    assert (
        train_face_world.main(["--evaluate-only", "--output-dir", str(tmp_path), "--threads", "1"])
        == 0
    )
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"small_batch": {"kept": True}}


def test_missing_file_is_also_file_not_found(tmp_path):
    """Callers that treat a missing file as 'absent' (config.json of a new run) tell it apart."""
    from utils.base import safejson
    from utils.base.safefile import UnreadableFileError

    with pytest.raises(FileNotFoundError) as info:
        safejson.load_json_file(tmp_path / "absent.json")
    assert isinstance(info.value, UnreadableFileError) and isinstance(info.value, ValueError)
