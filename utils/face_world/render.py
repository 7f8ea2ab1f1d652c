"""Rendering a face-world image: OpenCV drawing of the parts, then the nuisance.

Every part of :class:`.shapes.FaceLayout` is mapped from the canonical
128-unit frame to output pixels by one affine matrix (the nuisance rotation,
scale and shift composed with the canonical-to-output scaling) and drawn
anti-aliased with sub-pixel precision, so any output size draws the same face.
After drawing, the image gets the lighting gradient, the blur and the Gaussian
noise of the nuisance, in that order, all pointwise or local and seeded, so a
twin (same nuisance) differs from its source only near the changed parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .identity import (
    HAIR_BGR,
    IRIS_BROWN_BGR,
    IRIS_OTHER_BGR,
    LIPSTICK_BGR,
    SKIN_BGR,
    Identity,
    Nuisance,
    labels_of,
)
from .shapes import FRAME, FaceLayout, ellipse, layout_of

_SHIFT = 4  # sub-pixel bits of the OpenCV drawing calls
_ONE = float(1 << _SHIFT)


@dataclass
class FaceSample:
    """One rendered image with its ground truth.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR.
        labels: ``(30,)`` int64 class indices (METHOD.md section 2; binary 0 = has it).
        masks: ``(30, H, W)`` bool ground-truth region of each attribute (where it is
            drawn, or would be drawn when absent), or ``None`` when not requested.
        landmarks: ``(5, 2)`` float64 (x, y) pixels: left eye, right eye, nose tip,
            left and right mouth corners ("left" = smaller x).
        identity: the rendered :class:`Identity`.
        nuisance: the rendered :class:`Nuisance`.
    """

    image: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None
    landmarks: np.ndarray
    identity: Identity
    nuisance: Nuisance


def _check_size(size: int) -> int:
    if (
        isinstance(size, bool)
        or not isinstance(size, (int, np.integer))
        or not 16 <= int(size) <= 4096
    ):
        raise ValueError(
            f"size must be an int in 16..4096 (output images are size x size), got {size!r}"
        )
    return int(size)


def affine(nuisance: Nuisance, size: int) -> np.ndarray:
    """``(2, 3)`` matrix mapping canonical units to output pixels for this nuisance.

    Rotation (degrees, counter-clockwise on screen) and scale act about the
    canonical centre; the shift is in canonical units.
    """
    s = size / FRAME
    m = cv2.getRotationMatrix2D((FRAME / 2, FRAME / 2), nuisance.rotation, s * nuisance.scale)
    m[0, 2] += (size / 2 - FRAME / 2) + nuisance.shift[0] * s
    m[1, 2] += (size / 2 - FRAME / 2) + nuisance.shift[1] * s
    return m


class Painter:
    """Draws canonical-unit polygons and polylines onto a uint8 BGR image.

    Args:
        image: ``(H, W, 3)`` uint8, drawn on in place.
        matrix: ``(2, 3)`` canonical -> pixel affine.
    """

    def __init__(self, image: np.ndarray, matrix: np.ndarray):
        self.img, self.m = image, matrix
        self._a16 = np.ascontiguousarray(matrix[:, :2].T) * _ONE  # fixed-point transform, see _ints
        self._b16 = matrix[:, 2] * _ONE
        self.unit = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))  # pixels per canonical unit
        self.h, self.w = image.shape[:2]

    def px(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.m[:, :2].T + self.m[:, 2]

    def thick(self, t: float) -> int:
        return max(1, int(round(t * self.unit)))

    def _ints(self, polys: list[np.ndarray], offset=(0.0, 0.0)) -> list[np.ndarray]:
        """Fixed-point (``_SHIFT`` bits) pixel coordinates of each polygon.

        All polygons are transformed in one product.
        """
        if not polys:
            return []
        allp = polys[0] if len(polys) == 1 else np.concatenate(polys)
        q = allp @ self._a16
        q += self._b16 - np.multiply(offset, _ONE)
        q = np.rint(q, out=q).astype(np.int32)
        if len(polys) == 1:
            return [q]
        out, start = [], 0
        for p in polys:
            out.append(q[start : start + len(p)])
            start += len(p)
        return out

    def coverage(self, polys: list[np.ndarray], aa: bool = True) -> np.ndarray:
        """``(H, W)`` uint8 coverage (0..255) of filled polygons."""
        cov = np.zeros((self.h, self.w), np.uint8)
        # one call per polygon: a multi-polygon call fills even-odd, not the union
        for q in self._ints(polys):
            cv2.fillPoly(cov, [q], 255, cv2.LINE_AA if aa else cv2.LINE_8, _SHIFT)
        return cov

    def fill(
        self,
        polys: list[np.ndarray],
        colour,
        alpha: float = 1.0,
        clip: np.ndarray | None = None,
        texture: np.ndarray | None = None,
    ) -> None:
        """Fill polygons with ``colour`` (BGR).

        Optionally translucent, clipped by a coverage map, textured.
        """
        self._draw(polys, colour, None, alpha, clip, texture)

    def line(
        self,
        polys: list[np.ndarray],
        colour,
        thickness: float,
        alpha: float = 1.0,
        clip: np.ndarray | None = None,
    ) -> None:
        """Stroke open polylines, ``thickness`` in canonical units."""
        self._draw(polys, colour, thickness, alpha, clip, None)

    def _draw(self, polys, colour, thickness, alpha, clip, texture) -> None:
        polys = [p for p in polys if p is not None and len(p)]
        if not polys:
            return
        colour = tuple(min(255.0, max(0.0, float(c))) for c in colour)
        if alpha >= 1.0 and clip is None and texture is None:
            if thickness is None:
                for q in self._ints(polys):
                    cv2.fillPoly(self.img, [q], colour, cv2.LINE_AA, _SHIFT)
            else:
                cv2.polylines(
                    self.img,
                    self._ints(polys),
                    False,
                    colour,
                    self.thick(thickness),
                    cv2.LINE_AA,
                    _SHIFT,
                )
            return
        ints = self._ints(polys)
        lo = np.min([q.min(0) for q in ints], 0) >> _SHIFT
        hi = np.max([q.max(0) for q in ints], 0) >> _SHIFT
        pad = 2 + (self.thick(thickness) if thickness is not None else 0)
        x0, y0 = max(int(lo[0]) - pad, 0), max(int(lo[1]) - pad, 0)
        x1, y1 = min(int(hi[0]) + pad + 2, self.w), min(int(hi[1]) + pad + 2, self.h)
        if x0 >= x1 or y0 >= y1:
            return
        cov = np.zeros((y1 - y0, x1 - x0), np.uint8)
        off = np.array([x0 << _SHIFT, y0 << _SHIFT], np.int32)
        ints = [q - off for q in ints]
        if thickness is None:
            for q in ints:
                cv2.fillPoly(cov, [q], 255, cv2.LINE_AA, _SHIFT)
        else:
            cv2.polylines(cov, ints, False, 255, self.thick(thickness), cv2.LINE_AA, _SHIFT)
        a = cov.astype(np.float32)
        a *= np.float32(alpha / 255.0)
        if clip is not None:
            a *= clip[y0:y1, x0:x1]
            a *= np.float32(1 / 255.0)
        if texture is not None:
            a *= texture[y0:y1, x0:x1]
        roi = self.img[y0:y1, x0:x1]
        paint = np.empty_like(roi)
        paint[:] = colour
        # per-pixel alpha blend in one call: (1 - a) * roi + a * paint
        self.img[y0:y1, x0:x1] = cv2.blendLinear(roi, paint, 1.0 - a, a)


def _shade(colour, f: float, add=(0.0, 0.0, 0.0)) -> tuple[float, float, float]:
    """``colour * f + add``, clipped to 0..255 (BGR)."""
    return tuple(min(255.0, max(0.0, float(c) * f + d)) for c, d in zip(colour, add, strict=True))


def palette(identity: Identity) -> dict[str, np.ndarray]:
    """Colours (BGR float) of the identity: skin, hair, beard, brows, iris, lips."""
    g = identity.geometry
    skin = np.clip(np.add(SKIN_BGR[identity.race], g.skin_jitter), 0, 255)
    hair = np.clip(np.add(HAIR_BGR[identity.hair_color], g.hair_jitter), 0, 255)
    iris = IRIS_BROWN_BGR if identity.brown_eyes else IRIS_OTHER_BGR[g.iris_other]
    lips = LIPSTICK_BGR[g.lipstick] if identity.gender == 1 else skin * (0.72, 0.62, 0.86)
    return {
        "skin": skin,
        "hair": hair,
        "beard": hair * 0.8,
        "brow": np.asarray(g.brow_bgr),
        "iris": np.asarray(iris),
        "lips": np.asarray(lips),
    }


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return c[None, :].repeat(size, 0), c[:, None].repeat(size, 1)


@lru_cache(maxsize=8)
def _speckle(size: int) -> np.ndarray:
    """Fixed stubble texture: alpha multipliers in [0.45, 1] on a pixel grid."""
    tex = np.random.default_rng(12345).random((size, size)).astype(np.float32)
    tex = np.where(tex < 0.45, 1.0, 0.45).astype(np.float32)
    tex.setflags(write=False)
    return tex


@lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    bank = np.random.default_rng(0x5EED).standard_normal((2 * size, 2 * size, 3), dtype=np.float32)
    bank.setflags(write=False)
    return bank


def _noise(seed: int, size: int) -> np.ndarray:
    """``(size, size, 3)`` standard normal noise picked by ``seed``.

    A window of a fixed bank, sign and axes flipped by the seed (8 * size**2 distinct fields;
    generating fresh normals would double the render time).
    """
    oy, ox = seed % size, (seed // size) % size
    win = _noise_bank(size)[oy : oy + size, ox : ox + size]
    flip = (seed // (size * size)) % 8
    if flip & 1:
        win = win[::-1]
    if flip & 2:
        win = win[:, ::-1]
    return -win if flip & 4 else win


def background(nuisance: Nuisance, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8 background: gradient, gradient + blobs, or gradient + stripes."""
    rng = np.random.default_rng(nuisance.bg_seed)
    ang = rng.uniform(0, 2 * np.pi)
    corners = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
    t = np.clip(0.5 + 0.5 * (corners @ (np.cos(ang), np.sin(ang))), 0, 1)
    a, b = np.asarray(nuisance.bg_a, np.float32), np.asarray(nuisance.bg_b, np.float32)
    four = (a + (b - a) * t[:, None].astype(np.float32)).reshape(2, 2, 3)
    # bilinear interpolation of the four corner colours = a linear ramp along the gradient direction
    img = cv2.resize(four, (size, size), interpolation=cv2.INTER_LINEAR)
    img = (img + 0.5).astype(np.uint8)
    if nuisance.bg_kind == 1:
        for _ in range(int(rng.integers(4, 8))):
            c = tuple(float(v) for v in (a + rng.uniform(-45, 45, 3)).clip(0, 255))
            centre = (int(rng.uniform(0, size)), int(rng.uniform(0, size)))
            cv2.circle(img, centre, max(1, int(rng.uniform(0.08, 0.25) * size)), c, -1, cv2.LINE_AA)
    elif nuisance.bg_kind == 2:
        gx, gy = _grid(size)
        period = rng.uniform(0.08, 0.2) * size
        ang2 = rng.uniform(0, np.pi)
        phase = (np.cos(ang2) * gx + np.sin(ang2) * gy) * size / period
        stripes = (np.floor(phase) % 2).astype(np.float32)[..., None]
        img = (img.astype(np.float32) * (1 - 0.12 * stripes) + 0.5).astype(np.uint8)
    return img


def _finish(img: np.ndarray, nuisance: Nuisance, size: int) -> np.ndarray:
    """Lighting gradient, blur, then Gaussian noise; returns uint8."""
    gx, gy = _grid(size)
    field = nuisance.gain * (
        1
        + nuisance.light_strength
        * (np.cos(nuisance.light_angle) * gx + np.sin(nuisance.light_angle) * gy)
    )
    out = img.astype(np.float32) * field[..., None]
    sigma = nuisance.blur_sigma * size / 112.0
    if sigma >= 0.3:
        r = int(np.ceil(3 * sigma))
        out = cv2.GaussianBlur(out, (2 * r + 1, 2 * r + 1), sigma, borderType=cv2.BORDER_REFLECT)
    if nuisance.noise_sigma > 0:
        out += _noise(nuisance.noise_seed, size) * np.float32(nuisance.noise_sigma)
    return (np.clip(out, 0, 255) + 0.5).astype(np.uint8)


def blur_radius(nuisance: Nuisance, size: int) -> int:
    """Pixels a change can spread by the nuisance blur (0 without blur)."""
    sigma = nuisance.blur_sigma * size / 112.0
    return int(np.ceil(3 * sigma)) if sigma >= 0.3 else 0


def _draw_hair_back(p: Painter, lay: FaceLayout, col) -> None:
    back, _ = lay.long_hair()
    p.fill([back], col["hair"])


def _draw_head(p: Painter, lay: FaceLayout, col, nuisance: Nuisance) -> np.ndarray:
    """Neck, shirt, ears, long-hair locks and the face; returns the face coverage."""
    i, skin = lay.i, col["skin"]
    p.fill([lay.neck], _shade(skin, 0.9))
    if i.double_chin:
        p.fill([lay.double_chin], _shade(skin, 1.0))
        p.line([lay.double_chin[2:-2]], _shade(skin, 0.6), 1.2)
    p.fill([lay.shirt], nuisance.shirt_bgr)
    p.line([lay.shirt[3:8]], _shade(nuisance.shirt_bgr, 0.6), 0.9)
    p.fill(lay.ears, _shade(skin, 0.97))
    p.line(lay.ear_lines, _shade(skin, 0.7), 0.8)
    if i.gender == 1:
        _, locks = lay.long_hair()
        p.fill(locks, col["hair"])
        p.line([lk[2:10] for lk in locks], _shade(col["hair"], 0.7), 0.6)
    p.fill([lay.face], skin)
    return p.coverage([lay.face])


def _draw_skin_features(p: Painter, lay: FaceLayout, col, face_cov: np.ndarray) -> None:
    i, skin = lay.i, col["skin"]
    if i.high_cheekbones:
        hi, sh = lay.cheekbones
        p.fill(hi, _shade(skin, 1.08, (6, 6, 6)), alpha=0.8, clip=face_cov)
        p.fill(sh, _shade(skin, 0.78), alpha=0.6, clip=face_cov)
    if i.chubby:
        p.fill(lay.rosy, _shade(skin, 0.95, (-5, -10, 25)), alpha=0.55, clip=face_cov)
    if lay.wrinkles:
        p.line(
            lay.wrinkles,
            _shade(skin, 0.66 if i.age == 1 else 0.56),
            0.85 if i.age == 1 else 1.0,
            clip=face_cov,
        )
    beard = col["beard"]
    if i.stubble:
        p.fill([lay.stubble], beard, alpha=0.5, clip=face_cov, texture=_speckle(p.h))
    if i.chinstrap:
        p.fill([lay.chinstrap], beard, clip=face_cov)
    if i.goatee:
        p.fill([lay.goatee], beard, clip=face_cov)


def _draw_eyes(p: Painter, lay: FaceLayout, col, nuisance: Nuisance) -> None:
    i, skin = lay.i, col["skin"]
    if i.eye_bags:
        p.fill(lay.bags, _shade(skin, 0.8, (8, 0, 0)))
        p.line([b[12:] for b in lay.bags], _shade(skin, 0.66), 0.7)
    p.fill(lay.eyes, (236, 240, 242))
    eye_cov = p.coverage(lay.eyes)
    irises = lay.irises(nuisance.gaze)
    p.fill([_circle(x, y, r) for x, y, r in irises], col["iris"], clip=eye_cov)
    p.fill([_circle(x, y, 0.45 * r) for x, y, r in irises], (15, 12, 12), clip=eye_cov)
    p.fill(
        [_circle(x + 0.35 * r, y - 0.35 * r, 0.22 * r) for x, y, r in irises],
        (250, 250, 250),
        clip=eye_cov,
    )
    p.line(lay.upper_lids, (40, 36, 40), 0.9)
    if i.gender == 1:
        p.line(lay.eyeliner, (16, 14, 18), 1.5)
    p.fill(lay.brows(), col["brow"])


def _circle(x: float, y: float, r: float) -> np.ndarray:
    return ellipse(x, y, r, r, 0.0, 2 * np.pi, 16)


def _draw_nose_mouth(p: Painter, lay: FaceLayout, col, nuisance: Nuisance) -> None:
    skin, nose = col["skin"], lay.nose()
    p.fill(nose["fill"], _shade(skin, 0.93))
    p.line(nose["bridge"], _shade(skin, 0.82), 0.9)
    p.fill(nose["nostrils"], _shade(skin, 0.32))
    p.line(nose["wings"], _shade(skin, 0.62), 0.9)
    p.fill(nose["shade"], _shade(skin, 1.08, (6, 6, 6)))
    p.line(nose["tip"], _shade(skin, 0.5), 1.1)
    m = lay.mouth(nuisance.smiling, nuisance.mouth_open)
    if m["gap"] is not None:
        p.fill([m["gap"]], (50, 32, 62))
    if m["teeth"] is not None:
        p.fill([m["teeth"]], (228, 232, 236))
    p.fill([m["upper"]], _shade(col["lips"], 0.92))
    p.fill([m["lower"]], col["lips"])
    p.line([m["line"]], _shade(col["lips"], 0.45), 0.7)
    if lay.i.mustache:
        p.fill([lay.mustache], col["beard"])


def _draw_hair_front(p: Painter, lay: FaceLayout, col, face_cov: np.ndarray) -> None:
    i, hair = lay.i, col["hair"]
    if i.sideburns:
        p.fill(lay.sideburns, col["beard"], clip=face_cov)
    dark = _shade(hair, 0.72)
    front = lay.fringe if i.bald else [lay.cap()]
    p.fill(front, hair)
    front_cov = p.coverage(front)
    if not i.bald:
        p.line(lay.hair_strands(), dark, 0.6, clip=front_cov)
        if i.bangs:
            bangs = lay.bangs()
            p.fill([bangs], hair)
            xs = bangs[-25::3]
            p.line([np.array([[x, lay.hl_y - 2], [x + 0.3, y - 1.5]]) for x, y in xs], dark, 0.55)
    if i.age == 2:
        grey = (206, 208, 210) if i.hair_color != 3 else (240, 242, 244)
        p.line(lay.temples, grey, 0.7, clip=front_cov)
    if i.forehead_cover == "hat":
        hat, brim = lay.hat
        p.fill([hat], lay.g.hat_bgr)
        p.fill([brim], _shade(lay.g.hat_bgr, 0.75))
    elif i.forehead_cover == "band":
        p.fill([lay.headband], lay.g.band_bgr)


def render(
    identity: Identity, nuisance: Nuisance, size: int = 112, with_masks: bool = True
) -> FaceSample:
    """Render one image of ``identity`` under ``nuisance``.

    Args:
        identity: the person (see :func:`.identity.sample_identity`).
        nuisance: the per-image variation (see :func:`.identity.sample_nuisance`).
        size: output side in pixels (square image).
        with_masks: also compute the ``(30, size, size)`` ground-truth regions
            (about as costly as the drawing; training can skip them).

    Returns:
        A :class:`FaceSample`.
    """
    size = _check_size(size)
    m = affine(nuisance, size)
    lay = layout_of(identity)
    col = palette(identity)
    p = Painter(background(nuisance, size), m)
    if identity.gender == 1:
        _draw_hair_back(p, lay, col)
    face_cov = _draw_head(p, lay, col, nuisance)
    _draw_skin_features(p, lay, col, face_cov)
    _draw_eyes(p, lay, col, nuisance)
    _draw_nose_mouth(p, lay, col, nuisance)
    _draw_hair_front(p, lay, col, face_cov)
    image = _finish(p.img, nuisance, size)
    masks = None
    if with_masks:
        from .masks import attribute_masks  # local import: masks imports this module's Painter

        masks = attribute_masks(lay, p)
    return FaceSample(
        image=image,
        labels=labels_of(identity, nuisance),
        masks=masks,
        landmarks=p.px(lay.landmarks(nuisance.smiling, nuisance.mouth_open)),
        identity=identity,
        nuisance=nuisance,
    )


__all__ = ["FaceSample", "Painter", "affine", "background", "blur_radius", "palette", "render"]
