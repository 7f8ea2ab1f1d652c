"""The part-swap check: are Sim2Word's words right on real photos? (issue 15, item 2)

The twin check (:mod:`utils.experiments.ground_truth`) knows the truth in the
face world; on real photos the truth is made by hand: one facial part of a
real face is replaced by the same part of another identity
(:func:`utils.experiments.part_swap.swap_part`, Poisson blending), so the
part that changed is known. Protocol:

1. **Photos and split.** The photos of a folder per identity
   (``shared/data/real_faces``) split by identity with the fixed rule of
   :func:`utils.experiments.part_swap.identity_split`: *tuning* identities
   (the only ones used to choose a setting) and *held-out* identities (the
   reported numbers; never used to choose anything). A swap takes both faces
   from one part, so no run mixes identities of the two parts.
2. **Canvases.** Every photo is aligned to the verification net's template
   with the run's :class:`utils.faces.canvas.CanvasAligner` (the canvas every
   map, mask and erasure lives on; BRIEF interface 4): ArcFace 112 for
   SFace, dlib's 150 chip for dlib-ResNet29. The 68 landmarks of a canvas are
   the attribute net's own (:meth:`models.real_attributes.RealAttributeNet.
   part_points`), so the swapped part and the part word's region are drawn
   from the same points. A photo without a face fails every swap it is in
   (stage "align"); the run goes on.
3. **Swaps** (:func:`swap_specs`, fixed, no randomness): the photos of the
   part are sorted by path; photo ``i`` (face A) gets every part ``k`` of
   :data:`models.face_parts.PART_WORDS` from the photo ``(i * n_parts + k)
   mod m`` of the ``m`` photos of *other* identities of the same part (face
   B). On the 34 held-out photos: 272 swaps.
4. **Explaining.** Sim2Word explains the pair (swapped A', original A), A'
   as image 1 (METHOD.md section 3), with the recognition net's identity
   means computed **without the photos of A and B** (leave-pair-out,
   :class:`utils.faces.gallery.LeaveOut`): A' is a near copy of A and
   carries B's part, so with either photo inside its identity's mean the
   class evidence would partly be a photo's match with itself.
5. **Scores** (the twin check's :func:`~utils.experiments.ground_truth.
   score_row` and :func:`~utils.experiments.ground_truth.summarise`): the
   swapped part's word j* should be first in **the swapped image's list**
   (``image1``): the words of A' that tell it from A, as the paper shows
   them under a probe. (In the shared-region modes the two images' lists
   rank the same values; the paper mode's list of A' erases A' alone.)
   Every word of the real-faces vocabulary is a candidate (Gender, Age and
   the 8 parts: n = 10, so chance is 1/10 and 3/10, computed per pair from
   the words present). Ties (equal keys) earn their chance share
   (:func:`~utils.experiments.ground_truth.tie_aware_hits`). ``mass``: the
   share of J[j*]'s mass (A''s joint map of the part word) inside the
   swapped region, its chance level the region's share of the canvas. The
   part words' attribute maps ARE landmark regions, so for them the mass
   measures where the identity evidence H_d falls inside the part's region,
   not an attribute network's evidence; ``hmass``, the share of H_d's own
   mass inside the swapped region, says whether the identity evidence itself
   points at the swap.
6. **Settings.** Nothing was chosen on real photos: the explanation uses
   the project's defaults (theta 0.6, black fill, strategy ``sameid``) and the
   recommended ranking is the twin check's (``contrast`` with
   ``--ranking-thresh 0.2``, chosen on the face world's tuning twin set;
   README "How the settings were chosen"). The held-out rows are scored at
   the run's threshold and, with ``extra_thresholds`` (0.2), at that one.
   A setting chosen for real photos must be chosen with ``--split tuning``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from tqdm import tqdm

from models.attributes import REAL_FACES
from models.face_parts import PART_WORDS
from utils.base import tables
from utils.experiments.ground_truth import Row, RowSummary, default_rows, run_check
from utils.experiments.part_swap import identity_split, swap_part
from utils.explain.ranking import RankingConfig
from utils.faces.canvas import Canvas

log = logging.getLogger(__name__)

SPLITS = ("tuning", "held-out")
#: Head index of each part word in the real-faces vocabulary.
PART_HEADS = {word: REAL_FACES.attributes.index(word) for word in PART_WORDS}


@dataclass(frozen=True)
class Photo:
    """One photo of a folder per identity."""

    identity: str
    path: str


@dataclass(frozen=True)
class SwapSpec:
    """One swap: face A (``a``) gets ``part`` of face B (``b``); indices into the photo list."""

    a: int
    b: int
    part: str


@dataclass
class SwapPair:
    """A ground-truth pair (the twin check's pair interface: probe, counter, changed, region).

    Attributes:
        probe: the canvas of A with B's part (image 1).
        counter: the canvas of A (image 2).
        changed: head index j* of the part word.
        region: (H, W) bool: the pixels that may differ from A (the swap's mask).
        spec: the swap.
        photo_a, photo_b: the two photos.
        regions: unused (no oracle rows here).
    """

    probe: Canvas
    counter: Canvas
    changed: int
    region: np.ndarray
    spec: SwapSpec
    photo_a: Photo
    photo_b: Photo
    regions: np.ndarray | None = None


@dataclass
class Failure:
    """A swap that could not be scored: the stage ("align", "swap", "explain") and why."""

    spec: SwapSpec
    stage: str
    error: str
    photos: tuple[str, str] = ("", "")

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        return {
            "a": self.photos[0],
            "b": self.photos[1],
            "part": self.spec.part,
            "stage": self.stage,
            "error": self.error,
        }


def list_photos(root: str | os.PathLike) -> list[Photo]:
    """Photos of ``root/<identity>/*`` sorted by path (:func:`utils.experiments.
    real_attributes_check.list_photos`), paths as strings.

    Raises:
        FileNotFoundError: ``root`` is not a folder. ValueError: it holds no photo.
    """
    from utils.experiments.real_attributes_check import list_photos as photos_of

    return [Photo(p.identity, str(p.path)) for p in photos_of(root)]


def split_photos(photos: Sequence[Photo], split: str) -> list[Photo]:
    """The photos of one part of :func:`identity_split` (``"tuning"`` or ``"held-out"``), by
    path."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    tuning, held_out = identity_split(p.identity for p in photos)
    keep = set(tuning if split == "tuning" else held_out)
    return sorted((p for p in photos if p.identity in keep), key=lambda p: p.path)


def swap_specs(photos: Sequence[Photo], parts: Sequence[str] = PART_WORDS) -> list[SwapSpec]:
    """The fixed swaps of a photo list (module docstring, step 3).

    Args:
        photos: the photos of one split, in the rule's order (by path).
        parts: the part words to swap.

    Raises:
        ValueError: an unknown part, or fewer than two identities.
    """
    bad = [p for p in parts if p not in PART_HEADS]
    if bad:
        raise ValueError(f"unknown part(s) {bad}; choose from {', '.join(PART_WORDS)}")
    if len({p.identity for p in photos}) < 2:
        raise ValueError("part swaps need photos of at least two identities")
    specs = []
    for i, a in enumerate(photos):
        others = [k for k, b in enumerate(photos) if b.identity != a.identity]
        for k, part in enumerate(parts):
            specs.append(SwapSpec(i, others[(i * len(parts) + k) % len(others)], part))
    return specs


@dataclass
class Face:
    """An aligned photo: its canvas and the attribute net's 68 points on it."""

    canvas: Canvas
    points68: np.ndarray


def prepare_faces(
    photos: Sequence[Photo],
    aligner,
    landmarks: Callable[[np.ndarray], np.ndarray],
    needed: set[int] | None = None,
    progress: bool = True,
) -> tuple[dict[int, Face], dict[int, str]]:
    """Align the photos and find their 68 points; a failure is recorded, not raised.

    Args:
        photos: the photos.
        aligner: the run's :class:`utils.faces.canvas.CanvasAligner`.
        landmarks: canvas (H, W, 3) BGR -> (68, 2) points in its pixels (the attribute net's
            ``part_points``).
        needed: indices to prepare (default: all).
        progress: tqdm bar.

    Returns:
        ``(faces, failures)``: ``{index: Face}`` and ``{index: reason}``.
    """
    faces, failures = {}, {}
    todo = sorted(range(len(photos)) if needed is None else needed)
    for i in tqdm(todo, desc="align", unit="photo", disable=not progress):
        try:
            canvas = aligner.read(photos[i].path)
            faces[i] = Face(canvas, np.asarray(landmarks(canvas.image), dtype=np.float64))
        except Exception as err:  # any bad photo fails its swaps, recorded with the reason
            failures[i] = f"{type(err).__name__}: {err}"
            log.warning("photo %s left out: %s", photos[i].path, failures[i])
    return faces, failures


def make_swap_pairs(
    specs: Sequence[SwapSpec],
    photos: Sequence[Photo],
    faces: dict[int, Face],
    face_failures: dict[int, str],
) -> tuple[list[SwapPair], list[Failure]]:
    """Build the swapped images; swaps of a photo that failed, or whose swap fails, are recorded."""
    pairs, failures = [], []
    for s in specs:
        names = (photos[s.a].path, photos[s.b].path)
        bad = [(i, face_failures[i]) for i in (s.a, s.b) if i in face_failures]
        if bad:
            reason = "; ".join(f"{photos[i].path}: {r}" for i, r in bad)
            failures.append(Failure(s, "align", reason, names))
            continue
        fa, fb = faces[s.a], faces[s.b]
        try:
            swap = swap_part(fa.canvas.image, fb.canvas.image, s.part, fa.points68, fb.points68)
        except (ValueError, cv2.error) as err:
            failures.append(Failure(s, "swap", f"{type(err).__name__}: {err}", names))
            continue
        pairs.append(
            SwapPair(
                probe=replace(fa.canvas, image=swap.image),
                counter=fa.canvas,
                changed=PART_HEADS[s.part],
                region=swap.mask,
                spec=s,
                photo_a=photos[s.a],
                photo_b=photos[s.b],
            )
        )
    return pairs, failures


def default_swap_rows(
    ranking=None,
    discriminants: Sequence[str] = ("classes",),
    extra_thresholds: Sequence[float] = (),
) -> list[Row]:
    """Every ranking mode x discriminant (the paper's first), then the random floor.

    The twin check's oracle rows need every attribute's true region (unknown here) and its
    filter / attribute-only references read A's contrast, which is 0 for every part word (a
    region head has no prediction), so only ``random`` is kept as a reference.

    Args:
        ranking: the base :class:`~utils.explain.ranking.RankingConfig`.
        discriminants: "classes" and/or "verification".
        extra_thresholds: more region thresholds of the shared-region modes (both-shared,
            contrast): their rows, named ``"<mode>, ranking-thresh <t>"``, are scored on the same
            explanations (each costs only the shared erasures' V forwards).
    """
    base = ranking or RankingConfig()
    rows = default_rows(base, discriminants, references=False)
    for t in extra_thresholds:
        more = default_rows(
            replace(base, region_thresh=float(t)),
            discriminants,
            modes=("both-shared", "contrast"),
            references=False,
        )
        rows += [replace(r, name=f"{r.name}, ranking-thresh {float(t):g}") for r in more]
    return [*rows, Row("random", "random", None)]


@dataclass
class CheckResult:
    """The summaries of one run, its failures and its cost."""

    summaries: list[RowSummary]
    failures: list[Failure] = field(default_factory=list)
    pairs: int = 0
    cpu_seconds: float = 0.0


def run_swap_check(
    nets,
    config,
    pairs: Sequence[SwapPair],
    rows: Sequence[Row],
    *,
    leave_out=None,
    seed: int = 0,
    progress: bool = True,
) -> CheckResult:
    """Explain and score every swap (module docstring, steps 4-5).

    Args:
        nets: :class:`utils.explain.sim2word.Sim2WordNets`.
        config: :class:`utils.explain.sim2word.Sim2WordConfig`.
        pairs: the swaps.
        rows: the rows to score (:func:`default_swap_rows`).
        leave_out: a :class:`utils.faces.gallery.LeaveOut` of the recognition net, or ``None``.
        seed: seed of the random orders.
        progress: tqdm bar.

    Returns:
        A :class:`CheckResult` (failures at stage "explain" included; CPU seconds of the loop).
    """

    def context(pair: SwapPair):
        if leave_out is None:
            return nullcontext()
        return leave_out.excluding([pair.photo_a.path, pair.photo_b.path])

    errors: list[tuple[int, BaseException]] = []
    start = time.process_time()
    summaries = run_check(
        nets,
        config,
        list(pairs),
        rows,
        seed=seed,
        progress=progress,
        context=context,
        errors=errors,
        names=REAL_FACES.attributes,
        desc="part swaps",
    )
    cpu = time.process_time() - start
    failures = [
        Failure(
            pairs[i].spec,
            "explain",
            f"{type(e).__name__}: {e}",
            (pairs[i].photo_a.path, pairs[i].photo_b.path),
        )
        for i, e in errors
    ]
    return CheckResult(summaries, failures, len(pairs), cpu)


def json_rows(
    result: CheckResult, network: str, split: str, failures_before: int = 0
) -> list[dict]:
    """The ``--json`` rows: the twin check's row plus ``network``, ``mass`` (= ``jmass``),
    ``split``, ``failures`` and ``cpu_s_per_pair``."""
    failed = failures_before + len(result.failures)
    out = []
    for s in result.summaries:
        row = s.as_row()
        row = {
            "network": network,
            "split": split,
            "mode": row.pop("mode"),
            "top1": row.pop("top1"),
            "top3": row.pop("top3"),
            "chance_top1": row.pop("chance_top1"),
            "chance_top3": row.pop("chance_top3"),
            "mass": row.pop("jmass"),
            "pairs": row.pop("pairs"),
            **row,
            "failures": failed,
            "cpu_s_per_pair": result.cpu_seconds / max(result.pairs, 1),
        }
        row.pop("regions", None)
        out.append(row)
    return out


def summary_table(rows: Sequence[dict]) -> str:
    """Markdown table of ``--json`` rows of several runs: network x split x mode (top-1, top-3,
    their chance levels, J[j*] and H_d mass in the swapped region with its share, swaps).

    Raises:
        ValueError: a row lacks one of the keys.
    """
    keys = ("network", "split", "mode", "top1", "top3", "chance_top1", "chance_top3", "pairs")
    for k, r in enumerate(rows):
        missing = [key for key in keys if key not in r]
        if missing:
            raise ValueError(f"row {k} has no {', '.join(missing)}; is it a part_swap_check row?")

    def num(x):
        return "-" if x is None else f"{x:.3f}"

    head = [
        "network",
        "split",
        "mode",
        "top-1",
        "top-3",
        "chance",
        "J[j*] mass",
        "H_d mass",
        "region share",
        "swaps",
    ]
    body = [
        [
            r["network"],
            r["split"],
            r["mode"],
            num(r["top1"]),
            num(r["top3"]),
            f"{r['chance_top1']:.3f} / {r['chance_top3']:.3f}",
            num(r.get("mass")),
            num(r.get("hmass")),
            num(r.get("region_share")),
            f"{r['pairs']}" + (f" ({r['failures']} failed)" if r.get("failures") else ""),
        ]
        for r in rows
    ]
    return tables.format_table(head, body, align="lll" + "r" * 7)
