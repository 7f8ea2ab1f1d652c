"""Ground-truth region of each of the 30 attributes, in output pixels.

A region is where the attribute's cause is drawn, or would be drawn when the
attribute is absent (e.g. the nose for "Big Nose" on a small nose). Regions
of attributes with shape variants are the union over the variants (all four
brow shapes, all eight mouth states, ...), so that the region of an attribute
is the same in an image and in its twin, and covers every pixel the twin
changes (up to the anti-aliasing and blur margin of docs/FACE_WORLD.md).
Parts hidden under later layers (a hat over the hair, the face over the
long hair) are removed where that is simple to state.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from models.attributes import NUM_ATTRIBUTES

from .identity import FACE_SHAPES
from .render import Painter
from .shapes import CX, FaceLayout, layout_of


class _Regions:
    """Rasterises canonical polygons into bool masks with the image's affine."""

    def __init__(self, painter: Painter):
        self.p = painter

    def poly(self, polys) -> np.ndarray:
        return self.p.coverage([q for q in polys if q is not None], aa=False) > 0

    def poly_aa(self, polys) -> np.ndarray:
        """Anti-aliased coverage (uint8), to compare shapes that differ by less than a pixel."""
        return self.p.coverage([q for q in polys if q is not None], aa=True)

    def lines(self, polys, thickness: float) -> np.ndarray:
        cov = np.zeros((self.p.h, self.p.w), np.uint8)
        cv2.polylines(cov, self.p._ints(polys), False, 255, self.p.thick(thickness), cv2.LINE_8, 4)
        return cov > 0

    def grow(self, mask: np.ndarray, units: float) -> np.ndarray:
        k = max(1, int(round(units * self.p.unit)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        return cv2.dilate(mask.view(np.uint8), kernel).view(bool)

    def shrink(self, mask: np.ndarray, units: float) -> np.ndarray:
        k = max(1, int(round(units * self.p.unit)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        return cv2.erode(mask.view(np.uint8), kernel).view(bool)


def _variant(lay: FaceLayout, **changes) -> FaceLayout:
    return layout_of(replace(lay.i, **changes))


def attribute_masks(  # noqa: PLR0915 (one straight block per attribute region, in label order)
    lay: FaceLayout, painter: Painter
) -> np.ndarray:
    """``(30, H, W)`` bool regions for the face ``lay`` drawn with ``painter``'s affine.

    The regions do not depend on the expression: the mouth region is the union of all expressions.
    """
    r, i = _Regions(painter), lay.i
    out = np.zeros((NUM_ATTRIBUTES, painter.h, painter.w), bool)
    face = r.poly([lay.face])
    face_rim = r.grow(face, 1.0)  # parts clipped to the face may colour its anti-aliased rim
    hat, brim = lay.hat
    cover = {
        "hat": r.poly([hat, brim]),
        "band": r.poly([lay.headband]),
        "none": np.zeros_like(face),
    }
    # keep the cover's anti-aliased rim in the regions
    on_top = r.shrink(cover[i.forehead_cover], 2.0)

    # hair ------------------------------------------------------------------------
    back, locks = lay.long_hair()
    shirt, neck = r.poly([lay.shirt]), r.poly([lay.neck])
    long_hair = (r.poly([back]) & ~(shirt | neck) | r.poly(locks)) & ~face
    front = r.poly(lay.fringe) if i.bald else r.poly([lay.cap()])
    if i.bangs:
        front |= r.poly([lay.bangs()])
    if i.gender == 1:
        front |= long_hair
    scalp = r.poly(lay.fringe if i.bald else [lay.cap()])
    temples = r.grow(r.lines(lay.temples, 1.5) & r.grow(scalp, 2.0), 0.5)
    strays = temples if i.age == 2 else np.zeros_like(face)
    beard = _beard(r, lay, face_rim)
    out[8] = r.grow(front | strays, 1.0) & ~on_top | beard
    wavy = [_variant(lay, wavy=w) for w in (False, True)]
    wave = r.poly([v.cap() for v in wavy])
    if i.bangs:
        wave |= r.poly([v.bangs() for v in wavy])
    if i.gender == 1:
        wave |= (
            r.poly([v.long_hair()[0] for v in wavy] + [q for v in wavy for q in v.long_hair()[1]])
            & ~face
        )
    out[4] = r.grow(wave, 1.0) & ~on_top
    out[3] = (
        r.poly([_variant(lay, receding=False).cap(wavy=False)]) | r.poly(lay.fringe)
    ) & ~on_top
    recess = r.poly_aa([lay.cap(receding=True)]) != r.poly_aa([lay.cap(receding=False)])
    out[5] = r.grow(recess, 1.0) & ~on_top
    out[6] = r.grow(r.poly([lay.bangs()]), 0.8) & ~r.shrink(cover["hat"], 2.0)

    # beard -------------------------------------------------------------------------
    side = r.poly(lay.sideburns) & face_rim
    out[7] = side
    out[10] = r.poly([lay.mustache])
    out[11] = r.poly([lay.stubble]) & face_rim
    out[12] = r.poly([lay.goatee]) & face_rim
    out[9] = side | out[10] | out[11] | out[12] | (r.poly([lay.chinstrap]) & face_rim)

    # face outline, cheeks, chin -------------------------------------------------------
    shapes = [r.poly([lay.outline(s)]) for s in FACE_SHAPES]
    union, inter = np.logical_or.reduce(shapes), np.logical_and.reduce(shapes)
    out[13] = out[14] = out[15] = union & ~r.shrink(inter, 6.0)
    chub = [r.poly([lay.outline(chubby=c)]) for c in (False, True)]
    out[18] = (chub[0] | chub[1]) & ~r.shrink(chub[0] & chub[1], 6.0) | r.poly(lay.rosy) & face_rim
    out[16] = r.grow(r.poly([lay.double_chin]), 1.0)
    hi, sh = lay.cheekbones
    out[17] = r.grow(r.poly(hi + sh), 0.8) & face_rim

    # forehead ------------------------------------------------------------------------------
    top = lay.hl_y - 9.0
    rect = np.array(
        [
            [CX - lay.W - 2, top],
            [CX + lay.W + 2, top],
            [CX + lay.W + 2, lay.brow_y - 1.0],
            [CX - lay.W - 2, lay.brow_y - 1.0],
        ]
    )
    forehead = r.poly([rect]) & face
    out[20] = forehead | cover["band"]
    out[19] = forehead | cover["band"] | cover["hat"]

    # eyes, brows, nose, mouth ------------------------------------------------------------------
    out[21] = r.grow(r.poly(lay.eyes), 0.6)
    out[22] = r.grow(r.poly(lay.bags), 1.0)
    brows = [
        b for bushy in (False, True) for arched in (False, True) for b in lay.brows(bushy, arched)
    ]
    out[23] = out[24] = r.grow(r.poly(brows), 0.8)
    out[25] = out[26] = out[27] = mouth = r.grow(_mouth_region(r, lay), 1.0)
    out[28] = out[29] = r.poly(_nose_hulls(lay))

    # gender and age ----------------------------------------------------------------------------
    liner = r.lines(lay.eyeliner, 2.5)
    out[0] = (
        r.grow(long_hair, 1.0) & ~r.shrink(r.poly([] if i.bald else [lay.cap()]), 1.0) & ~on_top
        | mouth
        | liner
    )
    older = _variant(lay, age=2)
    out[1] = (r.lines(older.wrinkles, 2.0) & face_rim & ~r.shrink(front, 1.0) | temples) & ~on_top
    ears = r.poly(lay.ears) & ~r.shrink(r.poly(locks), 1.0) if i.gender == 1 else r.poly(lay.ears)
    skin = face | ears | neck & ~r.shrink(shirt, 1.5) | out[16] & ~r.shrink(shirt, 1.0)
    out[2] = r.grow(skin, 1.0) & ~r.shrink(front & ~face, 1.0) & ~on_top
    return out


def _beard(r: _Regions, lay: FaceLayout, face: np.ndarray) -> np.ndarray:
    i = lay.i
    m = np.zeros_like(face)
    if i.sideburns:
        m |= r.poly(lay.sideburns) & face
    if i.mustache:
        m |= r.poly([lay.mustache])
    if i.stubble:
        m |= r.poly([lay.stubble]) & face
    if i.goatee:
        m |= r.poly([lay.goatee]) & face
    if i.chinstrap:
        m |= r.poly([lay.chinstrap]) & face
    return m


def _mouth_region(r: _Regions, lay: FaceLayout) -> np.ndarray:
    polys = []
    for smiling in (False, True):
        for mouth_open in (False, True):
            for big in (False, True):
                m = lay.mouth(smiling, mouth_open, big)
                polys += [m["upper"], m["lower"], m["gap"]]
    return r.poly(polys)


def _nose_hulls(lay: FaceLayout) -> list[np.ndarray]:
    pts = []
    for big in (False, True):
        for pointy in (False, True):
            parts = lay.nose(big, pointy)
            pts += [q for v in parts.values() for q in v]
    hull = cv2.convexHull(np.vstack(pts).astype(np.float32))[:, 0, :].astype(np.float64)
    centre = hull.mean(0)
    return [centre + (hull - centre) * 1.08]
