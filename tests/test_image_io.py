"""Hostile and awkward image files: each read correctly or refused with a reason.

Every file is generated in ``tmp_path``; expected pixels are worked out by hand
(or by an independent formulation such as ``np.rot90``) for small inputs.
"""

from __future__ import annotations

import logging
import pickle
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, features

from utils.faces.image_io import ImageReadError, read_image, resolve_image_path

# A 2x2 RGB image with four distinct colours (row-major: TL, TR, BL, BR).
RGB_2x2 = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)


def _save(arr_or_im, path, fmt=None, **kw):
    im = arr_or_im if isinstance(arr_or_im, Image.Image) else Image.fromarray(arr_or_im)
    im.save(path, format=fmt, **kw)
    return path


def _assert_reason(path, *words, **kw):
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kw)
    err = info.value
    assert err.path == str(path)
    for word in words:
        assert word in err.reason, f"reason {err.reason!r} lacks {word!r}"
    assert str(path) in str(err) and "Fix:" in str(err), str(err)
    return err


def test_png_rgb_exact_values_read_back_as_bgr(tmp_path):
    img = read_image(_save(RGB_2x2, tmp_path / "a.png"))
    assert img.dtype == np.uint8 and img.shape == (2, 2, 3) and img.flags.c_contiguous
    np.testing.assert_array_equal(img, RGB_2x2[..., ::-1])
    assert img[0, 0].tolist() == [0, 0, 255]  # red in BGR


@pytest.mark.parametrize(
    "fmt, name", [("PNG", "x.jpg"), ("BMP", "x.png"), ("WEBP", "x.jpg"), ("TIFF", "x.bmp")]
)
def test_content_decides_not_extension(tmp_path, fmt, name):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow build has no WEBP support")
    kw = {"lossless": True} if fmt == "WEBP" else {}
    img = read_image(_save(RGB_2x2, tmp_path / name, fmt, **kw))
    np.testing.assert_array_equal(img, RGB_2x2[..., ::-1])


def test_real_webp_named_in_shared_data(shared_dir):
    path = shared_dir / "data" / "real_faces" / "deepface_03" / "3.webp"
    if not path.exists():
        pytest.skip(f"{path} not present")
    img = read_image(path)
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and min(img.shape[:2]) > 50


def test_missing_zero_byte_directory_and_text(tmp_path):
    _assert_reason(tmp_path / "nope.jpg", "not found")
    (tmp_path / "empty.jpg").write_bytes(b"")
    _assert_reason(tmp_path / "empty.jpg", "empty", "0 bytes")
    (tmp_path / "folder.jpg").mkdir()
    _assert_reason(tmp_path / "folder.jpg", "not a regular file")
    (tmp_path / "notes.jpg").write_text("this is not a JPEG\n")
    _assert_reason(tmp_path / "notes.jpg", "not an image format")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_jpeg_is_refused(tmp_path, monkeypatch, keep):
    rng = np.random.default_rng(0)
    full = _save(
        rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), tmp_path / "full.jpg", quality=95
    )
    data = full.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: int(len(data) * keep)])
    # Even if some other code switched Pillow to accept truncated files, we refuse.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    _assert_reason(cut, "truncated or corrupt")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True, (
        "read_image must restore Pillow's global setting"
    )
    assert read_image(full).shape == (64, 64, 3)


def test_truncated_png_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    data = _save(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), tmp_path / "f.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    _assert_reason(tmp_path / "cut.png", "truncated or corrupt")


def test_grayscale_and_bilevel(tmp_path):
    gray = np.array([[0, 7], [128, 255]], dtype=np.uint8)
    img = read_image(_save(gray, tmp_path / "g.png"))
    np.testing.assert_array_equal(img, np.repeat(gray[..., None], 3, axis=2))
    bilevel = Image.fromarray(np.array([[True, False]])).convert("1")
    img = read_image(_save(bilevel, tmp_path / "b.png"))
    np.testing.assert_array_equal(img[..., 0], [[255, 0]])


@pytest.mark.parametrize("background", [255, 0])
def test_rgba_composited_over_background(tmp_path, background):
    rgba = np.array([[[10, 20, 30, 255], [200, 100, 50, 0], [100, 100, 100, 128]]], dtype=np.uint8)
    img = read_image(_save(rgba, tmp_path / "a.png"), alpha_background=background)
    # Opaque pixel unchanged; transparent one becomes the background; 128/255
    # alpha: 100 * 128/255 + bg * 127/255 = 50.196 + (127.0 if white else 0).
    half = 177 if background == 255 else 50
    expected_rgb = [[[10, 20, 30], [background] * 3, [half] * 3]]
    np.testing.assert_array_equal(img, np.array(expected_rgb, dtype=np.uint8)[..., ::-1])


def test_la_image(tmp_path):
    la = Image.fromarray(np.array([[[60, 255], [60, 0]]], dtype=np.uint8), mode="LA")
    img = read_image(_save(la, tmp_path / "la.png"))
    np.testing.assert_array_equal(img[0, :, 0], [60, 255])
    assert img.shape == (1, 2, 3)


def test_palette_with_and_without_transparency(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1])
    img = read_image(_save(pal, tmp_path / "p.png"))
    np.testing.assert_array_equal(img[0], [[0, 0, 255], [255, 0, 0]])  # red, blue in BGR
    gif = read_image(_save(pal, tmp_path / "g.gif"))
    np.testing.assert_array_equal(gif[0], [[0, 0, 255], [255, 0, 0]])
    pal.info["transparency"] = 1  # index 1 fully transparent
    img = read_image(_save(pal, tmp_path / "pt.png", transparency=1))
    np.testing.assert_array_equal(img[0], [[0, 0, 255], [255, 255, 255]])


def test_16bit_grayscale_png(tmp_path):
    arr = np.array([[0, 257 * 3], [65535, 257 * 200]], dtype=np.uint16)
    path = _save(Image.fromarray(arr), tmp_path / "g16.png")
    assert Image.open(path).mode.startswith("I"), "fixture must really be 16-bit"
    img = read_image(path)
    np.testing.assert_array_equal(img[..., 1], [[0, 3], [255, 200]])


def test_16bit_rgb_png_scaled_by_257(tmp_path):
    # 386/257 = 1.502 -> 2, which a plain high-byte cut (386 >> 8 = 1) gets wrong.
    rgb16 = np.array([[[65535, 257 * 7, 0], [300, 386, 385]]], dtype=np.uint16)
    assert cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])
    img = read_image(tmp_path / "c16.png")
    np.testing.assert_array_equal(img[..., ::-1], [[[255, 7, 0], [1, 2, 1]]])


@pytest.mark.parametrize("orientation, k", [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_applied(tmp_path, orientation, k):
    # 64 wide x 32 high, quadrants TL red, TR blue, BL green, BR white.
    stored = np.zeros((32, 64, 3), dtype=np.uint8)
    stored[:16, :32] = (255, 0, 0)
    stored[:16, 32:] = (0, 0, 255)
    stored[16:, :32] = (0, 255, 0)
    stored[16:, 32:] = (255, 255, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(stored, tmp_path / "o.jpg", quality=100, subsampling=0, exif=exif.tobytes())
    img = read_image(path)[..., ::-1].astype(int)  # back to RGB for readability
    expected = np.rot90(stored, k=k).astype(int)  # np.rot90: k=1 counter-clockwise
    assert img.shape == expected.shape
    assert np.abs(img - expected).mean() < 3
    if orientation == 6:  # displayed = stored turned 90 deg clockwise, worked out by hand
        h, w = img.shape[:2]
        assert (h, w) == (64, 32)
        corners = [img[4, 4], img[4, w - 5], img[h - 5, 4], img[h - 5, w - 5]]
        for got, want in zip(
            corners, [(0, 255, 0), (255, 0, 0), (255, 255, 255), (0, 0, 255)], strict=True
        ):
            assert np.abs(got - np.array(want)).max() < 12, (got, want)


def test_tiny_noise_and_odd_paths(tmp_path):
    noise = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    folder = tmp_path / "dir with space" / "ünïcødé 顔"
    folder.mkdir(parents=True)
    path = _save(noise, folder / "tiny face 08 é.png")
    np.testing.assert_array_equal(read_image(path), noise[..., ::-1])
    np.testing.assert_array_equal(read_image(str(path)), noise[..., ::-1])


def test_huge_image_is_fine(tmp_path):
    big = np.zeros((6000, 6000, 3), dtype=np.uint8)
    big[3000:, :, 2] = 200
    assert cv2.imwrite(str(tmp_path / "big.jpg"), big)
    img = read_image(tmp_path / "big.jpg", max_side=6000)
    assert img.shape == (6000, 6000, 3)
    assert img[10, 10, 2] < 5 and abs(int(img[5990, 10, 2]) - 200) < 5
    small = read_image(tmp_path / "big.jpg")  # default: longer side downscaled to 2048 at read time
    assert small.shape == (2048, 2048, 3)
    assert small[10, 10, 2] < 5 and abs(int(small[2040, 10, 2]) - 200) < 5


def _png_header_only(path, width, height):
    """A PNG that declares width x height RGB but carries a tiny (empty) stream."""

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    return path


def test_decompression_bomb_refused_before_decoding(tmp_path):
    bomb = _png_header_only(tmp_path / "bomb.png", 20000, 20000)  # 400 MP declared
    err = _assert_reason(bomb, "limit")
    assert "200000000" in err.reason
    # The limit is a parameter, and also applies between 1x and 2x of it.
    small = _save(np.zeros((20, 20, 3), dtype=np.uint8), tmp_path / "s.png")
    _assert_reason(small, "limit", max_pixels=300)
    assert read_image(small, max_pixels=400).shape == (20, 20, 3)
    assert Image.MAX_IMAGE_PIXELS != 300, "Pillow's global limit must be restored"


def test_cmyk_jpeg_converted(tmp_path):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    img = read_image(_save(cmyk, tmp_path / "c.jpg", quality=100))
    assert np.abs(img[4, 4].astype(int) - [0, 0, 255]).max() < 8


def test_error_pickles_with_fields(tmp_path):
    err = ImageReadError(tmp_path / "x.jpg", "empty file (0 bytes)", "re-export")
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.reason, back.hint, str(back)) == (
        err.path,
        err.reason,
        err.hint,
        str(err),
    )


def test_resolve_image_path_reads_what_it_names(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = _save(RGB_2x2, tmp_path / "outside.png")
    path = resolve_image_path(root, "../outside.png")
    assert path == root / ".." / "outside.png"
    np.testing.assert_array_equal(read_image(path), read_image(outside))
    assert resolve_image_path(root, outside) == outside  # absolute entries stand alone
    assert resolve_image_path(None, "a/b.jpg").as_posix() == "a/b.jpg"
    with pytest.raises(ValueError, match="empty image path"):
        resolve_image_path(root, "  ")


def test_downscaling_is_logged_once_per_file(tmp_path, caplog):
    big = np.zeros((10, 40, 3), dtype=np.uint8)
    assert cv2.imwrite(str(tmp_path / "wide.png"), big)
    assert cv2.imwrite(str(tmp_path / "wide2.png"), big)
    with caplog.at_level(logging.INFO, logger="utils.faces.image_io"):
        for _ in range(3):  # a photo read once per pair it is in
            assert read_image(tmp_path / "wide.png", max_side=20).shape == (5, 20, 3)
        read_image(tmp_path / "wide2.png", max_side=20)
    said = [r.getMessage() for r in caplog.records if "downscaled" in r.getMessage()]
    assert len(said) == 2 and "wide.png" in said[0] and "wide2.png" in said[1]
