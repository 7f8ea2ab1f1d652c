"""Geometry of a face-world face: every part as polygons in the canonical frame.

The canonical frame is 128 x 128 units, x to the right, y down, the head
centred on x = 64. :class:`FaceLayout` turns an identity (and the expression
of a nuisance) into named parts, each an ``(N, 2)`` float array (a polygon or
a polyline) or a list of them. Drawing (:mod:`.render`) and the ground-truth
regions (:mod:`.masks`) read the same parts, so a region always covers what
is drawn. Parts are computed on first use and cached.
"""

from __future__ import annotations

from functools import cached_property, lru_cache

import numpy as np

from .identity import Identity

CX = 64.0  # x of the face's symmetry axis, canonical units
FRAME = 128.0  # canonical frame side
_T = np.sin(np.linspace(0.0, np.pi / 2, 15))  # jaw samples, denser near the chin


@lru_cache(maxsize=256)
def lin(a: float, b: float, n: int) -> np.ndarray:
    """Cached read-only ``np.linspace(a, b, n)`` for the constant samplings of the parts."""
    t = np.linspace(a, b, n)
    t.setflags(write=False)
    return t


@lru_cache(maxsize=256)
def _unit_arc(a0: float, a1: float, n: int) -> np.ndarray:
    t = np.linspace(a0, a1, n)
    arc = np.stack([np.cos(t), np.sin(t)], axis=1)
    arc.setflags(write=False)
    return arc


def ellipse(
    cx: float, cy: float, ax: float, ay: float, a0: float = 0.0, a1: float = 2 * np.pi, n: int = 24
) -> np.ndarray:
    """``(n, 2)`` points of an axis-aligned ellipse arc from angle ``a0`` to ``a1`` (radians)."""
    return _unit_arc(float(a0), float(a1), int(n)) * (ax, ay) + (cx, cy)


@lru_cache(maxsize=16)
def _catmull_rom_basis(n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n, endpoint=False)
    # (n, 4): weights of p0..p3
    basis = 0.5 * np.stack(
        [-t + 2 * t**2 - t**3, 2 - 5 * t**2 + 3 * t**3, t + 4 * t**2 - 3 * t**3, -(t**2) + t**3],
        axis=1,
    )
    basis.setflags(write=False)
    return basis


def spline(points: np.ndarray | list, n: int = 6) -> np.ndarray:
    """Catmull-Rom curve through ``points`` ``(K, 2)``, ``n`` samples per segment, ends included."""
    p = np.asarray(points, dtype=np.float64)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    k = len(p) - 1
    ctrl = np.stack([ext[0:k], ext[1 : k + 1], ext[2 : k + 2], ext[3 : k + 3]], axis=1)  # (k, 4, 2)
    curve = np.einsum("nj,kjd->knd", _catmull_rom_basis(n), ctrl).reshape(-1, 2)
    return np.vstack([curve, p[-1:]])


def mirror(points: np.ndarray) -> np.ndarray:
    """Mirror points across the face's symmetry axis (x -> 2 * CX - x)."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, 0] = 2 * CX - out[:, 0]
    return out


def band(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Polygon between two polylines running the same direction."""
    return np.vstack([upper, lower[::-1]])


def jaw_profile(shape: str, chubby: bool) -> np.ndarray:
    """Half width of the lower face relative to the width at eye level, at the samples ``_T``.

    ``_T`` runs from 0 (eyes) to 1 (chin).
    """
    t = _T
    if shape == "oval":
        f = np.sqrt(1 - t**2) * (1 - 0.16 * t)
    elif shape == "round":
        f = (1 - t**2.6) ** (1 / 2.6) * (1 + 0.09 * np.sin(np.pi * t))
    elif shape == "square":
        f = np.where(t < 0.8, 1 - 0.05 * t, 0.96 - (t - 0.8) / 0.2 * 0.4)
    else:  # "plain": a tapered, pointed chin that none of the three named shapes describes
        f = (1 - t**1.4) ** 0.75 * (1 - 0.1 * t) + 0.04 * t
    if chubby:
        f = f + 0.13 * np.sin(np.pi * np.clip(t / 0.92, 0, 1)) ** 1.5
    return f


def _memo(method):
    """Cache a layout method's result per argument tuple on the instance (layouts are immutable)."""
    name = method.__name__

    def wrapper(self, *args, **kwargs):
        key = (name, args, tuple(sorted(kwargs.items())))
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = method(self, *args, **kwargs)
            return value

    wrapper.__name__, wrapper.__doc__ = name, method.__doc__
    return wrapper


@lru_cache(maxsize=256)
def layout_of(identity: Identity) -> FaceLayout:
    """The (cached) :class:`FaceLayout` of an identity: one person's images share their parts."""
    return FaceLayout(identity)


class FaceLayout:
    """All parts of one face, canonical coordinates. Parts are computed on first use and cached.

    The returned arrays are shared between calls (and, through :func:`layout_of`,
    between images of the same identity): treat them as read-only.

    Args:
        identity: the person. Per-image parts (mouth, irises, landmarks) take
            the expression / gaze as arguments.
    """

    def __init__(self, identity: Identity):
        self.i, self.g = identity, identity.geometry
        self._memo: dict = {}
        g = self.g
        self.ey = g.eye_y
        self.tip_y = g.eye_y + g.nose_len
        self.my = self.tip_y + g.mouth_gap
        self.chin_y = self.my + g.chin_gap
        self.brow_y = g.eye_y - g.brow_gap
        self.hl_y = g.eye_y - g.hairline
        self.W = g.face_w

    # ---- head -----------------------------------------------------------
    @_memo
    def outline(self, shape: str | None = None, chubby: bool | None = None) -> np.ndarray:
        """Closed head polygon: cranium ellipse above the eyes, jaw profile below."""
        shape = self.i.face_shape if shape is None else shape
        chubby = self.i.chubby if chubby is None else chubby
        top = ellipse(CX, self.ey, self.W, self.g.skull_h, np.pi, 2 * np.pi, 28)
        f = jaw_profile(shape, chubby)
        right = np.stack([CX + self.W * f, self.ey + _T * (self.chin_y - self.ey)], axis=1)
        return np.vstack([top, right[1:], mirror(right[::-1])[:-1]])

    @cached_property
    def face(self) -> np.ndarray:
        return self.outline()

    @cached_property
    def ears(self) -> list[np.ndarray]:
        s = self.g.ear_size
        left = ellipse(CX - self.W + 0.5, self.ey + 7, 4.4 * s, 9 * s, n=20)
        return [left, mirror(left)]

    @cached_property
    def ear_lines(self) -> list[np.ndarray]:
        s = self.g.ear_size
        left = ellipse(CX - self.W + 0.3, self.ey + 7, 2.4 * s, 6 * s, 0.6 * np.pi, 1.5 * np.pi, 8)
        return [left, mirror(left)]

    @cached_property
    def neck(self) -> np.ndarray:
        w = self.g.neck_w
        return np.array(
            [
                [CX - w, self.ey + 22],
                [CX - w - 1.5, FRAME + 8],
                [CX + w + 1.5, FRAME + 8],
                [CX + w, self.ey + 22],
            ]
        )

    @cached_property
    def shirt(self) -> np.ndarray:
        w, y = self.g.neck_w, self.chin_y + 9
        left = [[CX - 80, FRAME + 10], [CX - 80, y + 16], [CX - 42, y + 6], [CX - w - 2, y]]
        return np.vstack(
            [left, [[CX - 4, y + 10], [CX, y + 13], [CX + 4, y + 10]], mirror(np.array(left[::-1]))]
        )

    @cached_property
    def double_chin(self) -> np.ndarray:
        return ellipse(CX, self.chin_y - 1, self.g.mouth_w + 4, 7.0, 0, np.pi, 16)

    # ---- cheeks and skin features -------------------------------------------
    @cached_property
    def cheekbones(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(highlights, shadows) on both cheeks."""
        g = self.g
        hi = ellipse(CX - g.eye_dx - 2.5, self.ey + 9, 6.5, 2.6, n=16)
        shadow = band(
            spline(
                [
                    [CX - self.W + 1.5, self.ey + 11],
                    [CX - g.eye_dx - 3, self.ey + 16.5],
                    [CX - g.mouth_w - 4, self.tip_y + 5],
                ],
                4,
            ),
            spline(
                [
                    [CX - self.W + 1.5, self.ey + 14],
                    [CX - g.eye_dx - 2, self.ey + 19],
                    [CX - g.mouth_w - 4, self.tip_y + 5.5],
                ],
                4,
            ),
        )
        return [hi, mirror(hi)], [shadow, mirror(shadow)]

    @cached_property
    def rosy(self) -> list[np.ndarray]:
        c = ellipse(CX - self.g.eye_dx - 3, self.tip_y + 2, 7.5, 5.0, n=18)
        return [c, mirror(c)]

    @cached_property
    def wrinkles(self) -> list[np.ndarray]:
        """Age lines: forehead (2 middle-aged, 3 senior) and nasolabial.

        Seniors also get crow's feet and marionette lines.
        """
        age, g, out = self.i.age, self.g, []
        if age == 0:
            return out
        half = 0.5 * self.W
        for k in range(2 if age == 1 else 3):
            y = self.brow_y - 5.5 - 3.4 * k
            xs = half * lin(-1.0, 1.0, 7)
            out.append(np.stack([CX + xs, y + 1.3 * (xs / half) ** 2], axis=1))
        left = [
            spline(
                [
                    [CX - g.nose_w - 3.5, self.tip_y - 2.5],
                    [CX - g.mouth_w - 2.5, self.my - 2],
                    [CX - g.mouth_w - 3.0, self.my + 3.5],
                ],
                4,
            )
        ]
        if age == 2:
            x0 = CX - g.eye_dx - g.eye_w - 1.2
            for a in (-0.5, 0.0, 0.5):
                left.append(
                    np.array([[x0, self.ey], [x0 - 3.6 * np.cos(a), self.ey + 3.6 * np.sin(a)]])
                )
            left.append(
                np.array(
                    [[CX - g.mouth_w - 0.8, self.my + 2.5], [CX - g.mouth_w - 1.8, self.my + 8.5]]
                )
            )
        return out + left + [mirror(p) for p in left]

    @cached_property
    def temples(self) -> list[np.ndarray]:
        """Grey strands at the temples (Senior), inside the hair at the sides of the head."""
        out = []
        for k, top in enumerate((-24.0, -19.0, -22.0, -16.0)):
            x = CX - self.W - 2.0 + 2.0 * k
            out.append(
                np.array([[x - 1.2, self.ey + top], [x - 0.4, self.ey - 10], [x, self.ey - 3.0]])
            )
        return out + [mirror(p) for p in out]

    # ---- facial hair ----------------------------------------------------------
    @cached_property
    def stubble(self) -> np.ndarray:
        g = self.g
        t0 = self.ey + 13
        left = [
            [CX - self.W - 3, t0],
            [CX - g.eye_dx - 1, t0 + 3],
            [CX - g.mouth_w - 3, self.tip_y + 1],
            [CX - 3, self.tip_y + 3.2],
        ]
        top = spline(left + [[CX, self.tip_y + 3.4]] + mirror(np.array(left[::-1])).tolist(), 4)
        return np.vstack(
            [top, [[CX + self.W + 4, self.chin_y + 6], [CX - self.W - 4, self.chin_y + 6]]]
        )

    @cached_property
    def chinstrap(self) -> np.ndarray:
        f = jaw_profile(self.i.face_shape, self.i.chubby)
        k = _T >= 0.3
        t, f = _T[k], f[k]
        L = self.chin_y - self.ey
        outer = np.stack([CX + self.W * f + 2, self.ey + t * L + 2], axis=1)
        inner = np.stack([CX + np.maximum(self.W * f - 3.4, 0), self.ey + t * (L - 3.4)], axis=1)
        return np.vstack([mirror(outer), outer[::-1], inner, mirror(inner)[::-1]])

    @cached_property
    def goatee(self) -> np.ndarray:
        g = self.g
        y0 = self.my + 1.7 * g.lip_t + 1.8
        w0, w1 = 0.42 * g.mouth_w, 0.62 * g.mouth_w
        return np.array(
            [
                [CX - w0, y0],
                [CX - 1.0, y0 - 0.8],
                [CX + 1.0, y0 - 0.8],
                [CX + w0, y0],
                [CX + w1, self.chin_y - 2],
                [CX + 0.5 * w1, self.chin_y + 1.5],
                [CX - 0.5 * w1, self.chin_y + 1.5],
                [CX - w1, self.chin_y - 2],
            ]
        )

    @cached_property
    def mustache(self) -> np.ndarray:
        g = self.g
        xs = (g.mouth_w + 2.0) * lin(-1.0, 1.0, 11)
        r = (xs / g.mouth_w) ** 2
        top = np.stack([CX + xs, self.my - g.lip_t - 4.3 + 1.2 * r], axis=1)
        bottom = np.stack([CX + xs, self.my - 0.55 * g.lip_t + 1.6 * r], axis=1)
        return band(top, bottom)

    @cached_property
    def sideburns(self) -> list[np.ndarray]:
        x = CX - self.W
        left = np.array(
            [
                [x - 1.5, self.ey - 11],
                [x + 5.0, self.ey - 11],
                [x + 5.5, self.ey + 11],
                [x + 2.5, self.ey + 14],
                [x - 1.5, self.ey + 14],
            ]
        )
        return [left, mirror(left)]

    # ---- eyes, brows, nose, mouth -------------------------------------------------
    def eye_centres(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (CX - self.g.eye_dx, self.ey), (CX + self.g.eye_dx, self.ey)

    @cached_property
    def eyes(self) -> list[np.ndarray]:
        g, out = self.g, []
        for ex, ey in self.eye_centres():
            up = ellipse(ex, ey, g.eye_w, 1.2 * g.eye_h, 0, -np.pi, 12)
            low = ellipse(ex, ey, g.eye_w, 0.8 * g.eye_h, np.pi, 0, 12)
            out.append(np.vstack([up, low[1:-1]]))
        return out

    @cached_property
    def upper_lids(self) -> list[np.ndarray]:
        g = self.g
        return [
            ellipse(ex, ey, g.eye_w, 1.2 * g.eye_h, 0, -np.pi, 12) for ex, ey in self.eye_centres()
        ]

    @cached_property
    def eyeliner(self) -> list[np.ndarray]:
        g, out = self.g, []
        for side, (ex, ey) in zip((-1, 1), self.eye_centres(), strict=True):
            lid = ellipse(ex, ey - 0.3, g.eye_w + 0.4, 1.25 * g.eye_h + 0.5, 0, -np.pi, 12)
            wing = [[ex + side * (g.eye_w + 2.6), ey - 2.2]]
            out.append(np.vstack([lid if side < 0 else lid[::-1], wing]))
        return out

    def irises(self, gaze: tuple[float, float]) -> list[tuple[float, float, float]]:
        """(x, y, radius) of both irises for a per-image ``gaze`` offset (canonical units)."""
        g, (gx, gy) = self.g, gaze
        return [(ex + gx, ey + 0.3 + gy, 1.08 * g.eye_h) for ex, ey in self.eye_centres()]

    @cached_property
    def bags(self) -> list[np.ndarray]:
        g, out = self.g, []
        for ex, ey in self.eye_centres():
            up = ellipse(
                ex, ey + 1.2, 0.9 * g.eye_w, 0.8 * g.eye_h, np.pi * 1.05, -0.05 * np.pi, 10
            )[::-1]
            low = ellipse(
                ex, ey + 1.2, 0.9 * g.eye_w, 0.8 * g.eye_h + 3.4, np.pi * 1.1, -0.1 * np.pi, 10
            )[::-1]
            out.append(band(up, low))
        return out

    @_memo
    def brows(self, bushy: bool | None = None, arched: bool | None = None) -> list[np.ndarray]:
        bushy = self.i.bushy_brows if bushy is None else bushy
        arched = self.i.arched_brows if arched is None else arched
        g, L, out = self.g, self.g.brow_len, []
        u = lin(0.0, 1.0, 12)
        lift = np.interp(u, [0, 0.3, 0.62, 1.0], [0.0, 2.3, 3.6, 0.6]) if arched else 0.4 + 0.6 * u
        thick = g.brow_thick * (2.2 if bushy else 1.0) * (1.2 - 0.55 * u)
        for d, (ex, _) in zip((1, -1), self.eye_centres(), strict=True):
            x = ex + d * (0.45 - u) * L
            y = self.brow_y - lift
            out.append(band(np.stack([x, y - thick / 2], 1), np.stack([x, y + thick / 2], 1)))
        return out

    @_memo
    def nose(
        self, big: bool | None = None, pointy: bool | None = None
    ) -> dict[str, list[np.ndarray]]:
        """Nose parts: ``bridge`` lines, ``wings`` arcs, ``nostrils`` polygons, ``tip`` lines,
        ``fill`` / ``shade`` polygons."""
        big = self.i.big_nose if big is None else big
        pointy = self.i.pointy_nose if pointy is None else pointy
        k, y, w = (1.5 if big else 1.0), self.tip_y, self.g.nose_w
        wing = ellipse(CX - w * k * 0.8, y - 0.2, 2.3 * k, 2.8 * k, 0.45 * np.pi, 1.45 * np.pi, 9)
        nostril = ellipse(CX - w * k * 0.42, y + 1.1, 1.5 * k, 0.85 * k, n=10)
        bridge = np.array([[CX - 2.4, self.ey + 1], [CX - 0.55 * w * k, y - 3.5 * k]])
        fill = ellipse(CX, y - 0.3, w * k * 0.95, 2.4 * k, n=16)
        if pointy:  # a sharp V below the nostrils, lit along the bridge
            tip = [np.array([[CX - 2.9 * k, y - 1.2], [CX, y + 4.0 * k], [CX + 2.9 * k, y - 1.2]])]
            shade = [
                np.array(
                    [
                        [CX, y - 9.0 * k],
                        [CX - 2.6 * k, y - 1.2],
                        [CX, y + 3.6 * k],
                        [CX + 2.6 * k, y - 1.2],
                    ]
                )
            ]
        else:  # a round ball tip
            tip = [ellipse(CX, y - 0.6, 2.7 * k, 2.6 * k, 0.08 * np.pi, 0.92 * np.pi, 10)]
            shade = [ellipse(CX, y - 0.6, 2.6 * k, 2.5 * k, n=16)]
        return {
            "bridge": [bridge, mirror(bridge)],
            "wings": [wing, mirror(wing)],
            "fill": [fill],
            "nostrils": [nostril, mirror(nostril)],
            "tip": tip,
            "shade": shade,
        }

    @_memo
    def mouth(
        self, smiling: bool, mouth_open: bool, big_lips: bool | None = None
    ) -> dict[str, np.ndarray]:
        """Mouth parts for an expression.

        ``upper``/``lower`` lip polygons, ``gap`` (open interior) and ``teeth`` or ``None``,
        ``line``, ``corners``.
        """
        big_lips = self.i.big_lips if big_lips is None else big_lips
        g = self.g
        mw = g.mouth_w * (1.1 if smiling else 1.0)
        lt = g.lip_t * (1.8 if big_lips else 1.0)
        u = lin(0.0, 1.0, 13)
        x = CX + (2 * u - 1) * mw
        lift, sag = (2.8, 1.0) if smiling else (0.0, 0.15)
        mid = self.my + sag - (lift + sag) * (2 * u - 1) ** 2
        bump = np.sin(np.pi * u)
        oh = (3.2 if smiling else 3.6) if mouth_open else 0.0
        up_bot = mid - 0.35 * oh * bump
        low_top = mid + 0.65 * oh * bump
        bow = 0.35 * lt * np.exp(-(((u - 0.5) / 0.09) ** 2))
        up_top = up_bot - lt * bump**0.6 + bow
        low_bot = low_top + 1.25 * lt * bump**0.7
        pts = lambda ys: np.stack([x, ys], 1)  # noqa: E731
        gap = band(pts(up_bot), pts(low_top)) if mouth_open else None
        teeth = (
            band(pts(up_bot), pts(up_bot + 0.5 * (low_top - up_bot)))
            if (mouth_open and smiling)
            else None
        )
        corners = np.array([[x[0], mid[0]], [x[-1], mid[-1]]])
        return {
            "upper": band(pts(up_top), pts(up_bot)),
            "lower": band(pts(low_top), pts(low_bot)),
            "gap": gap,
            "teeth": teeth,
            "line": pts(mid),
            "corners": corners,
        }

    # ---- hair ---------------------------------------------------------------------
    def _wave(self, theta: np.ndarray, wavy: bool) -> np.ndarray:
        return 1.7 * np.sin(self.g.wave_freq * theta + self.g.wave_phase) if wavy else 0.0 * theta

    @_memo
    def hairline(self, receding: bool | None = None) -> np.ndarray:
        """Front hairline from the right temple to the left temple."""
        receding = self.i.receding if receding is None else receding
        W, hl = self.W, self.hl_y
        if receding:
            right = [
                [CX + W - 1.5, self.ey - 3],
                [CX + W - 3.0, self.ey - 13],
                [CX + 0.52 * W, hl - 7.5],
                [CX + 0.2 * W, hl - 1.5],
            ]
        else:
            right = [
                [CX + W - 1.5, self.ey - 3],
                [CX + W - 2.5, self.ey - 12],
                [CX + 0.62 * W, hl + 2.5],
                [CX + 0.25 * W, hl + 0.5],
            ]
        pts = np.array(right + [[CX, hl]] + mirror(np.array(right[::-1])).tolist())
        return spline(pts, 4)

    @_memo
    def cap(
        self, wavy: bool | None = None, receding: bool | None = None, extra: float = 0.0
    ) -> np.ndarray:
        """Scalp hair above the hairline (short hair), outer edge ``hair_vol`` outside the skull."""
        wavy = self.i.wavy if wavy is None else wavy
        vol = self.g.hair_vol + (1.5 if wavy else 0.0) + extra
        a = np.arcsin(3.0 / (self.g.skull_h + vol))
        th = np.linspace(np.pi + a, 2 * np.pi - a, 40)
        r = vol + self._wave(th, wavy)
        outer = np.stack(
            [CX + (self.W + r) * np.cos(th), self.ey + (self.g.skull_h + r) * np.sin(th)], 1
        )
        return np.vstack([outer, self.hairline(receding)])

    @cached_property
    def fringe(self) -> list[np.ndarray]:
        """Bald men's remaining hair at the sides of the head."""
        g = self.g
        th = np.linspace(np.pi + np.arcsin(3.0 / g.skull_h), np.pi + 0.62, 8)
        outer = np.stack(
            [CX + (self.W + 1.8) * np.cos(th), self.ey + (g.skull_h + 1.8) * np.sin(th)], 1
        )
        inner = np.stack(
            [CX + (self.W - 4.5) * np.cos(th), self.ey + (g.skull_h - 4.5) * np.sin(th)], 1
        )
        left = band(outer, inner)
        return [left, mirror(left)]

    @_memo
    def long_hair(self, wavy: bool | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """(back hair behind the head, [left, right] locks over the shoulders) of long hair."""
        wavy = self.i.wavy if wavy is None else wavy
        g, W = self.g, self.W
        vol = g.hair_vol + 3.0 + (1.5 if wavy else 0.0)
        th = np.linspace(np.pi, 2 * np.pi, 36)
        r = vol + self._wave(th, wavy)
        top = np.stack([CX + (W + r) * np.cos(th), self.ey + (g.skull_h + r) * np.sin(th)], 1)
        ys = self.ey + lin(-8.0, 60.0, 14)
        wob = 1.6 * np.sin(0.5 * ys + g.wave_phase) if wavy else 0.0 * ys
        outer_r = np.stack([CX + W + vol + 2.0 * np.clip(ys - self.ey, 0, None) / 60 + wob, ys], 1)
        below = outer_r[ys > self.ey]
        back = np.vstack([top, below, mirror(below[::-1])])
        inner_r = np.stack(
            [
                CX
                + np.interp(
                    ys,
                    [self.ey - 8, self.ey + 25, self.ey + 60],
                    [W - 2.0, W - 4.0, g.neck_w + 4.0],
                )
                + 0.6 * wob,
                ys,
            ],
            1,
        )
        right = band(outer_r, inner_r)
        return back, [mirror(right), right]

    @_memo
    def bangs(self, wavy: bool | None = None) -> np.ndarray:
        wavy = self.i.wavy if wavy is None else wavy
        W, y1 = self.W, self.brow_y - 4.0
        xs = 0.8 * W * lin(-1.0, 1.0, 25)
        if wavy:
            edge = y1 + 1.3 * np.sin(0.9 * xs + self.g.wave_phase)
        else:
            edge = y1 + np.where(np.arange(25) % 2 == 0, 1.3, -0.9)
        edge = edge - 5.0 * (np.abs(xs) / (0.8 * W)) ** 3
        bottom = np.stack([CX + xs, edge], 1)[::-1]
        top = np.array(
            [
                [CX - 0.8 * W - 1, self.hl_y - 3],
                [CX, self.hl_y - 6],
                [CX + 0.8 * W + 1, self.hl_y - 3],
            ]
        )
        return np.vstack([spline(top, 4), bottom])

    @_memo
    def hair_strands(self, wavy: bool | None = None) -> list[np.ndarray]:
        """Texture lines inside the scalp hair: from the crown towards the hairline."""
        wavy = self.i.wavy if wavy is None else wavy
        crown = np.array([CX, self.ey - self.g.skull_h + 2.0])
        # end above the receding line too, so Receding Hairline leaves them alone
        line = self.hairline(True)
        out = []
        for k in lin(0.08, 0.92, 7):
            end = line[int(round(k * (len(line) - 1)))] + np.array([0.0, -2.5])
            s = lin(0.1, 0.9, 8)[:, None]
            p = crown + s * (end - crown)
            if wavy:
                d = end - crown
                nrm = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9)
                p = p + 1.3 * np.sin(9 * s + self.g.wave_phase) * nrm
            out.append(p)
        return out

    @cached_property
    def hat(self) -> tuple[np.ndarray, np.ndarray]:
        """(hat polygon, brim polygon): covers the skull down to mid forehead."""
        g, r = self.g, self.g.hair_vol + 5.5
        y_edge = self.hl_y + 6.0
        a = np.arcsin(np.clip((self.ey - y_edge) / (g.skull_h + r), -1, 1))
        th = np.linspace(np.pi + a, 2 * np.pi - a, 30)
        hat = np.stack([CX + (self.W + r) * np.cos(th), self.ey + (g.skull_h + r) * np.sin(th)], 1)
        a2 = np.arcsin(np.clip((self.ey - y_edge + 5.5) / (g.skull_h + r + 0.5), -1, 1))
        th2 = np.linspace(np.pi + a2, 2 * np.pi - a2, 12)
        upper = np.stack([CX + (self.W + r + 0.5) * np.cos(th2), np.full(12, y_edge - 5.5)], 1)
        brim = band(upper, np.stack([upper[:, 0], np.full(12, y_edge + 0.5)], 1))
        return hat, brim

    @cached_property
    def headband(self) -> np.ndarray:
        g, r = self.g, self.g.hair_vol + 1.0
        ys = np.array([self.hl_y + 1.2, self.hl_y + 4.8])
        half = (self.W + r) * np.sqrt(np.clip(1 - ((self.ey - ys) / (g.skull_h + r)) ** 2, 0, 1))
        return np.array(
            [
                [CX - half[0], ys[0]],
                [CX + half[0], ys[0]],
                [CX + half[1], ys[1]],
                [CX - half[1], ys[1]],
            ]
        )

    def landmarks(self, smiling: bool, mouth_open: bool) -> np.ndarray:
        """``(5, 2)`` landmarks in canonical units.

        Left eye, right eye, nose tip, left and right mouth corners.
        """
        (lx, ly), (rx, ry) = self.eye_centres()
        c = self.mouth(smiling, mouth_open)["corners"]
        return np.array([[lx, ly], [rx, ry], [CX, self.tip_y], c[0], c[1]])
