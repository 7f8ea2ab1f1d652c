"""Identities and per-image nuisances of the face world, their sampling and labels.

An :class:`Identity` holds the identity-level attributes (as named fields, not
as the 30 labels: a few labels are functions of several fields, e.g. the two
forehead labels) plus a :class:`Geometry` of continuous shape and colour
parameters, so two identities with equal attributes still look different. A
:class:`Nuisance` holds everything that varies from image to image of the
same identity: pose, lighting, background, clothes, noise, blur and the
expression (Smiling, Mouth Closed).

:func:`labels_of` maps (identity, nuisance) to the 30 class indices of
``models.attributes`` (binary heads: 0 = has it, 1 = does not). The drawing
code reads the same fields, so the labels are what is drawn. The consistency
rules are in :func:`rule_violations` and documented in ``docs/FACE_WORLD.md``.

Example:
    >>> ident = sample_identity(0)
    >>> labels_of(ident, sample_nuisance(1)).shape
    (30,)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.attributes import HEAD_SIZES

FACE_SHAPES: tuple[str, ...] = ("oval", "square", "round", "plain")
FOREHEAD_COVERS: tuple[str, ...] = ("none", "band", "hat")

# Base colours, BGR uint8 scale. Skin by Race class (Asian, White, Black).
SKIN_BGR = ((128.0, 186.0, 232.0), (192.0, 206.0, 250.0), (52.0, 80.0, 124.0))
# Hair by Hair-color class (Black, Blond, Brown, Gray, Unknown = red/auburn:
# a natural colour that none of the four named classes covers).
HAIR_BGR = (
    (28.0, 28.0, 34.0),
    (96.0, 186.0, 228.0),
    (36.0, 66.0, 108.0),
    (176.0, 176.0, 172.0),
    (30.0, 62.0, 176.0),
)
IRIS_BROWN_BGR = (28.0, 62.0, 112.0)
# blue, green, grey
IRIS_OTHER_BGR = (
    (178.0, 126.0, 52.0),
    (84.0, 150.0, 82.0),
    (150.0, 148.0, 136.0),
)
LIPSTICK_BGR = ((52.0, 30.0, 196.0), (128.0, 86.0, 224.0))  # red, pink


@dataclass(frozen=True)
class Geometry:
    """Continuous identity parameters, canonical units (a 128 x 128 frame, x right, y down).

    Attributes mirror the drawing: eye centres at ``(64 -/+ eye_dx, eye_y)``,
    nose tip at ``eye_y + nose_len``, mouth centre at ``nose tip + mouth_gap``,
    chin at ``mouth + chin_gap``; ``face_w`` is the half width of the head at
    eye level; colours are BGR offsets added to the class base colour.
    """

    eye_y: float = 60.0
    eye_dx: float = 15.0
    eye_w: float = 6.0
    eye_h: float = 2.9
    brow_gap: float = 7.5
    brow_len: float = 13.0
    brow_thick: float = 1.7
    nose_len: float = 18.0
    nose_w: float = 4.5
    mouth_gap: float = 12.0
    mouth_w: float = 9.5
    lip_t: float = 2.2
    chin_gap: float = 15.0
    face_w: float = 31.0
    skull_h: float = 44.0
    hairline: float = 24.0
    ear_size: float = 1.0
    neck_w: float = 12.0
    hair_vol: float = 3.5
    wave_phase: float = 0.0
    wave_freq: float = 10.0
    skin_jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)
    hair_jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)
    brow_bgr: tuple[float, float, float] = (30.0, 34.0, 40.0)
    iris_other: int = 0
    lipstick: int = 0
    hat_bgr: tuple[float, float, float] = (120.0, 60.0, 40.0)
    band_bgr: tuple[float, float, float] = (60.0, 60.0, 200.0)


@dataclass(frozen=True)
class Identity:
    """One synthetic person: identity-level attributes plus :class:`Geometry`.

    Binary fields are ``True`` when the person has the attribute. ``chinstrap``
    is a beard that is none of Goatee / Mustache / 5 o Clock Shadow /
    Sideburns (a thin beard along the jaw); it exists so that "no beard" can
    change alone. ``forehead_cover``: "none", "band" (a thin headband: forehead
    neither fully visible nor obstructed) or "hat" (obstructs the forehead).
    """

    gender: int = 0
    age: int = 0
    race: int = 0
    hair_color: int = 0
    bald: bool = False
    wavy: bool = False
    receding: bool = False
    bangs: bool = False
    sideburns: bool = False
    mustache: bool = False
    stubble: bool = False
    goatee: bool = False
    chinstrap: bool = False
    face_shape: str = "plain"
    double_chin: bool = False
    high_cheekbones: bool = False
    chubby: bool = False
    forehead_cover: str = "none"
    brown_eyes: bool = True
    eye_bags: bool = False
    bushy_brows: bool = False
    arched_brows: bool = False
    big_lips: bool = False
    big_nose: bool = False
    pointy_nose: bool = False
    geometry: Geometry = field(default_factory=Geometry)

    @property
    def has_beard(self) -> bool:
        """Any facial hair at all (the negation of the "no beard" attribute)."""
        return self.sideburns or self.mustache or self.stubble or self.goatee or self.chinstrap


@dataclass(frozen=True)
class Nuisance:
    """Per-image variation. Angles in degrees, shifts in canonical units, colours BGR.

    ``smiling`` and ``mouth_open`` are the per-image expression attributes
    (Smiling, Mouth Closed = not ``mouth_open``).
    """

    rotation: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    gain: float = 1.0
    light_strength: float = 0.0
    light_angle: float = 0.0
    bg_a: tuple[float, float, float] = (200.0, 200.0, 200.0)
    bg_b: tuple[float, float, float] = (150.0, 150.0, 150.0)
    bg_kind: int = 0
    bg_seed: int = 0
    shirt_bgr: tuple[float, float, float] = (120.0, 80.0, 40.0)
    gaze: tuple[float, float] = (0.0, 0.0)
    noise_sigma: float = 0.0
    noise_seed: int = 0
    blur_sigma: float = 0.0
    smiling: bool = False
    mouth_open: bool = False


def _rng(rng_or_seed: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    if rng_or_seed is None or isinstance(rng_or_seed, (int, np.integer)):
        return np.random.default_rng(rng_or_seed)
    raise TypeError(f"expected a numpy Generator or an int seed, got {type(rng_or_seed).__name__}")


def _u(rng: np.random.Generator, centre: float, half: float) -> float:
    return float(centre + rng.uniform(-half, half))


def _colour(rng: np.random.Generator, low: float, high: float) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.uniform(low, high, 3))


def sample_geometry(rng: np.random.Generator) -> Geometry:
    """Draw the continuous parameters of one identity (uniform within ranges)."""
    return Geometry(
        eye_y=_u(rng, 60, 1.5),
        eye_dx=_u(rng, 15, 1.3),
        eye_w=_u(rng, 6.0, 0.5),
        eye_h=_u(rng, 2.9, 0.3),
        brow_gap=_u(rng, 7.5, 1.0),
        brow_len=_u(rng, 13, 1.0),
        brow_thick=_u(rng, 1.7, 0.2),
        nose_len=_u(rng, 18, 1.5),
        nose_w=_u(rng, 4.5, 0.5),
        mouth_gap=_u(rng, 12, 1.2),
        mouth_w=_u(rng, 9.5, 0.9),
        lip_t=_u(rng, 2.2, 0.3),
        chin_gap=_u(rng, 15, 1.5),
        face_w=_u(rng, 31, 1.5),
        skull_h=_u(rng, 44, 2.0),
        hairline=_u(rng, 24, 2.0),
        ear_size=_u(rng, 1.0, 0.1),
        neck_w=_u(rng, 12, 1.0),
        hair_vol=_u(rng, 3.5, 1.0),
        wave_phase=float(rng.uniform(0, 2 * np.pi)),
        wave_freq=_u(rng, 10, 1.5),
        skin_jitter=_colour(rng, -8, 8),
        hair_jitter=_colour(rng, -10, 10),
        brow_bgr=tuple(float(v) for v in np.full(3, rng.uniform(18, 55)) + rng.uniform(-4, 8, 3)),
        iris_other=int(rng.integers(3)),
        lipstick=int(rng.integers(2)),
        hat_bgr=_colour(rng, 20, 230),
        band_bgr=_colour(rng, 20, 230),
    )


def sample_identity(rng_or_seed: np.random.Generator | int | None = None) -> Identity:
    """Draw one identity that satisfies every consistency rule.

    Args:
        rng_or_seed: a ``numpy.random.Generator`` (advanced in place) or an int seed.

    Returns:
        An :class:`Identity`; :func:`rule_violations` of it is empty.
    """
    rng = _rng(rng_or_seed)
    gender = int(rng.random() < 0.5)
    age = int(rng.choice(3, p=(0.4, 0.35, 0.25)))
    race = int(rng.integers(3))
    hair_p = (0.28, 0.2, 0.27, 0.13, 0.12) if age < 2 else (0.2, 0.1, 0.15, 0.45, 0.1)
    hair_color = int(rng.choice(5, p=hair_p))
    male = gender == 0
    bald = male and rng.random() < (0.18 if age == 0 else 0.35)
    if bald:
        wavy = bangs = receding = False
        cover = str(rng.choice(("none", "band"), p=(0.75, 0.25)))
    else:
        wavy = bool(rng.random() < 0.4)
        cover = str(rng.choice(FOREHEAD_COVERS, p=(0.55, 0.2, 0.25)))
        bangs = bool(rng.random() < 0.3)
        receding = bool(not bangs and cover != "hat" and rng.random() < (0.2 if age == 0 else 0.45))
    beard = dict(sideburns=False, mustache=False, stubble=False, goatee=False, chinstrap=False)
    if male and rng.random() < 0.65:
        for name, p in (
            ("sideburns", 0.45),
            ("mustache", 0.5),
            ("stubble", 0.45),
            ("goatee", 0.45),
            ("chinstrap", 0.3),
        ):
            beard[name] = bool(rng.random() < p)
        if not any(beard.values()):
            beard["chinstrap"] = True
    chubby = bool(rng.random() < 0.25)
    return Identity(
        gender=gender,
        age=age,
        race=race,
        hair_color=hair_color,
        bald=bald,
        wavy=wavy,
        receding=receding,
        bangs=bangs,
        **beard,
        face_shape=str(rng.choice(FACE_SHAPES, p=(0.3, 0.2, 0.2, 0.3))),
        double_chin=bool(rng.random() < (0.4 if chubby else 0.15)),
        high_cheekbones=bool(rng.random() < 0.4),
        chubby=chubby,
        forehead_cover=cover,
        brown_eyes=bool(rng.random() < 0.5),
        eye_bags=bool(rng.random() < (0.2, 0.35, 0.5)[age]),
        bushy_brows=bool(rng.random() < 0.35),
        arched_brows=bool(rng.random() < (0.3 if male else 0.55)),
        big_lips=bool(rng.random() < 0.35),
        big_nose=bool(rng.random() < 0.35),
        pointy_nose=bool(rng.random() < 0.4),
        geometry=sample_geometry(rng),
    )


def sample_nuisance(rng_or_seed: np.random.Generator | int | None = None) -> Nuisance:
    """Draw the per-image variation.

    Rotation +-8 deg, shift, scale, light, background, noise, blur, expression.
    """
    rng = _rng(rng_or_seed)
    smiling = bool(rng.random() < 0.5)
    return Nuisance(
        rotation=float(rng.uniform(-8, 8)),
        shift=(float(rng.uniform(-4, 4)), float(rng.uniform(-4, 4))),
        scale=float(rng.uniform(0.93, 1.07)),
        gain=float(rng.uniform(0.82, 1.15)),
        light_strength=float(rng.uniform(0, 0.3)),
        light_angle=float(rng.uniform(0, 2 * np.pi)),
        bg_a=_colour(rng, 30, 235),
        bg_b=_colour(rng, 30, 235),
        bg_kind=int(rng.integers(3)),
        bg_seed=int(rng.integers(2**31)),
        shirt_bgr=_colour(rng, 20, 220),
        gaze=(float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.3, 0.3))),
        noise_sigma=float(rng.uniform(0, 6)),
        noise_seed=int(rng.integers(2**31)),
        blur_sigma=float(rng.choice((0.0, rng.uniform(0.3, 0.8)))),
        smiling=smiling,
        mouth_open=bool(rng.random() < (0.45 if smiling else 0.3)),
    )


def _b(has: bool) -> int:
    return 0 if has else 1


def labels_of(identity: Identity, nuisance: Nuisance) -> np.ndarray:
    """The 30 class indices (METHOD.md section 2 convention) of an image.

    Returns:
        ``(30,)`` int64; binary heads 0 = has it, 1 = does not.
    """
    i = identity
    covered = i.bangs or i.forehead_cover == "hat"
    return np.array(
        [
            i.gender,
            i.age,
            i.race,
            _b(i.bald),
            _b(i.wavy),
            _b(i.receding),
            _b(i.bangs),
            _b(i.sideburns),
            i.hair_color,
            _b(not i.has_beard),
            _b(i.mustache),
            _b(i.stubble),
            _b(i.goatee),
            _b(i.face_shape == "oval"),
            _b(i.face_shape == "square"),
            _b(i.face_shape == "round"),
            _b(i.double_chin),
            _b(i.high_cheekbones),
            _b(i.chubby),
            _b(covered),
            _b(not i.bangs and i.forehead_cover == "none"),
            _b(i.brown_eyes),
            _b(i.eye_bags),
            _b(i.bushy_brows),
            _b(i.arched_brows),
            _b(not nuisance.mouth_open),
            _b(nuisance.smiling),
            _b(i.big_lips),
            _b(i.big_nose),
            _b(i.pointy_nose),
        ],
        dtype=np.int64,
    )


def rule_violations(identity: Identity) -> list[str]:
    """The consistency rules an identity breaks (empty list = consistent).

    Rules: Female -> no facial hair and not Bald; Bald -> no Wavy Hair, no
    Bangs, no Receding Hairline, no hat; hat -> no Receding Hairline (it would
    be hidden); Bangs -> no Receding Hairline; classes in range; face shape and
    forehead cover from their vocabularies.
    """
    i, bad = identity, []
    for name, j in (("gender", 0), ("age", 1), ("race", 2), ("hair_color", 8)):
        if not 0 <= getattr(i, name) < HEAD_SIZES[j]:
            bad.append(f"{name}={getattr(i, name)} outside 0..{HEAD_SIZES[j] - 1}")
    if i.face_shape not in FACE_SHAPES:
        bad.append(f"face_shape={i.face_shape!r} not in {FACE_SHAPES}")
    if i.forehead_cover not in FOREHEAD_COVERS:
        bad.append(f"forehead_cover={i.forehead_cover!r} not in {FOREHEAD_COVERS}")
    if i.gender == 1 and i.has_beard:
        bad.append("Female with facial hair")
    if i.gender == 1 and i.bald:
        bad.append("Female and Bald")
    if i.bald and (i.wavy or i.bangs or i.receding):
        bad.append("Bald with Wavy Hair / Bangs / Receding Hairline")
    if i.forehead_cover == "hat" and (i.bald or i.receding):
        bad.append("hat hides Bald / Receding Hairline")
    if i.bangs and i.receding:
        bad.append("Bangs hide the Receding Hairline")
    return bad


def check_identity(identity: Identity) -> Identity:
    """Return ``identity`` unchanged, or raise ``ValueError`` naming the broken rules."""
    bad = rule_violations(identity)
    if bad:
        raise ValueError(
            f"inconsistent face-world identity: {'; '.join(bad)} (see docs/FACE_WORLD.md, 'Rules')"
        )
    return identity
