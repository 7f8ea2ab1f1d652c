"""The twin check: are Sim2Word's words and maps right where the truth is known?

Protocol (the README's "Are the explanations right? The twin check" shows its numbers):

1. **Twin sets.** A twin pair is a fresh face-world identity under one fresh
   nuisance (the probe) and its twin: the same face, pose, light and noise
   with exactly one identity attribute j* changed (the expression attributes
   Mouth Closed / Smiling are per-image and not used). For a binary
   attribute the probe is the side that *has* it, so j* is a possible word of
   the probe. The change (j*, class) is drawn uniformly among the twins that
   exist for the face. Everything of a set is drawn from its own seed stream
   ``[seed, S, ...]``, disjoint from every stream of the demo networks'
   training (``utils/face_world/demo_training.py`` draws identities from
   ``[seed, 1|2|10, i]`` and nuisances from ``[seed, 3, ...]``):

   * the **tuning** set, S = 80: the only set used to choose anything
     (ranking mode, threshold, fill, tie tolerance, contrast threshold,
     Grad-CAM layer of V);
   * the **reported** set, S = 81: the set whose numbers are published; it
     is never used to choose a setting. Run it only with settings fixed on
     the tuning set.

2. **Explaining.** Sim2Word explains the probe against its twin (METHOD.md
   section 3) once per discriminant ("classes", the paper's; "verification",
   V's own map); every row below ranks words from those explanations.
   A pair is *scored* only when the attribute net predicts j* present in
   the probe (otherwise j* cannot be one of its words).

3. **Rows**, all on the same pairs, the paper's default first:

   * ranking modes (:mod:`utils.explain.ranking`): ``paper``, ``both-shared``,
     ``contrast`` and ``contrast, V order`` (the words that differ ordered by
     V's shared-erasure gain alone: what the verification evidence adds over
     the filter-random reference), each with the paper's discriminant and
     with V's;
   * ``random``: the probe's present attributes in a seeded random order (floor);
   * ``filter-random``: the attributes that differ between the two images
     according to A (the contrast mode's rule) first, in random order, then
     the rest in random order: the reference the contrast mode must beat;
   * ``attribute-only``: the probe's present attributes by A's probability
     drop of their class from the probe to the twin. It uses neither maps
     nor V: **not Sim2Word**, shown so that the value added by the
     verification evidence is visible;
   * ``oracle paper``, ``oracle both-shared`` and ``oracle contrast, V
     order``: those rankings with every attribute's *true* region (the union
     of its region in both images, grown by the twin margin) instead of the
     maps' regions: the ceiling of each ranking with perfect maps.

4. **Scores.** top-1 / top-3: the probability that j* is first / in the
   first three when tied words (equal sort keys, e.g. several unchanged
   words) are ordered uniformly at random, so a tie earns its chance share,
   never a free hit; chance levels: the mean over pairs of 1/n and
   min(3, n)/n with n the probe's present attributes. ``jmass``: the share
   of J[j*]'s mass inside j*'s true region (rows that use maps), with the
   region's share of the image as its chance level; ``hmass``: the same for
   the probe's discriminant map H_d (where the identity evidence is).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.attributes import ATTRIBUTES, get_vocabulary, is_present
from utils.base import tables
from utils.explain.ranking import RankingConfig, attribute_contrast, rank_pair
from utils.explain.sim2word import PairExplanation, Sim2WordConfig, Sim2WordNets, explain_pair
from utils.explain.verification import cosine, embed_images
from utils.face_world import render, sample_identity, sample_nuisance
from utils.face_world.twins import changed_region, make_twin, twin_classes

EXPRESSION_ATTRIBUTES = (25, 26)  # Mouth Closed, Smiling: per-image, not identity
#: Seed stream of each twin set (see the module docstring).
TWIN_SETS = {"tuning": 80, "reported": 81}


@dataclass
class TwinPair:
    """A ground-truth pair: the probe has attribute ``changed``; the counter not (or another class).

    Attributes:
        probe, counter: the rendered images (``FaceSample``).
        changed: j*.
        region: (H, W) bool true region of j* at the raw size (both images, grown by the margin).
        regions: (K, H, W) bool true region of every attribute, built the same way.
    """

    probe: object
    counter: object
    changed: int
    region: np.ndarray
    regions: np.ndarray | None = None


def make_twin_pairs(
    num_pairs: int, twin_set: str = "reported", seed: int = 0, size: int = 112
) -> list[TwinPair]:
    """Seeded twin pairs of one twin set (see the module docstring).

    Args:
        num_pairs: how many pairs.
        twin_set: "tuning" or "reported".
        seed: base seed (the demo networks' split seed).
        size: rendered image size.
    """
    if twin_set not in TWIN_SETS:
        raise ValueError(f"unknown twin set {twin_set!r}; valid: {', '.join(TWIN_SETS)}")
    stream = TWIN_SETS[twin_set]
    rng = np.random.default_rng([seed, stream, 2])
    pairs: list[TwinPair] = []
    i = 0
    while len(pairs) < num_pairs:
        ident = sample_identity(np.random.default_rng([seed, stream, 0, i]))
        nuis = sample_nuisance(np.random.default_rng([seed, stream, 1, i]))
        i += 1
        options = [
            (j, c)
            for j in range(len(ATTRIBUTES))
            if j not in EXPRESSION_ATTRIBUTES
            for c in twin_classes(ident, nuis, j)
        ]
        if not options:
            continue
        j, c = options[int(rng.integers(len(options)))]
        source = render(ident, nuis, size=size)
        twin = make_twin(ident, nuis, j, c, size=size)
        probe, counter = (source, twin) if is_present(j, source.labels[j]) else (twin, source)
        regions = np.stack([changed_region(source, twin, k) for k in range(len(ATTRIBUTES))])
        pairs.append(TwinPair(probe, counter, j, regions[j], regions))
    return pairs


# ------------------------------------------------------------------------ scoring one ranked list
def tie_aware_hits(keys: dict[int, tuple], target: int) -> tuple[float, float, int]:
    """(top-1, top-3, rank) of ``target`` when equal keys are ordered uniformly at random.

    Args:
        keys: sort key of every candidate (smaller first).
        target: the candidate to find.

    Returns:
        The probabilities that ``target`` is first / in the first three, and its best rank
        (1 + number of candidates strictly before it).
    """
    above = sum(k < keys[target] for k in keys.values())
    tied = sum(k == keys[target] for k in keys.values())  # includes the target
    return (
        float(np.clip((1 - above) / tied, 0, 1)),
        float(np.clip((3 - above) / tied, 0, 1)),
        above + 1,
    )


def mass_inside(values: np.ndarray, region: np.ndarray) -> float:
    """Share of a non-negative map's mass inside ``region`` (resized bilinearly to its size)."""
    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    up = (
        F.interpolate(t, size=region.shape, mode="bilinear", align_corners=False)[0, 0]
        .clamp_min(0)
        .numpy()
    )
    total = float(up.sum())
    return float(up[region].sum() / total) if total > 0 else 0.0


@dataclass
class PairScore:
    """One pair under one row. ``kept``: j* is predicted present in the probe (else not scored);
    ``jmass`` / ``hmass``: share of J[j*] / H_d mass inside the true region (rows with maps)."""

    kept: bool
    n_present: int = 0
    top1: float = 0.0
    top3: float = 0.0
    rank: int = -1
    jmass: float | None = None
    region_share: float = float("nan")
    unchanged: float = 0.0
    hmass: float | None = None


@dataclass
class RowSummary:
    """One row of the twin-check table (a ranking mode or a reference)."""

    mode: str
    discriminant: str | None
    regions: str
    pairs: int
    pairs_total: int
    top1: float
    top3: float
    chance_top1: float
    chance_top3: float
    jmass: float | None
    region_share: float
    unchanged: float
    per_attribute: dict = field(default_factory=dict)
    hmass: float | None = None

    def as_row(self) -> dict:
        """The JSON row: ``mode``, ``top1``, ``top3``, ``chance_top1``, ``chance_top3``, ``jmass``,
        ``pairs`` and more."""
        return {
            "mode": self.mode,
            "discriminant": self.discriminant,
            "regions": self.regions,
            "top1": self.top1,
            "top3": self.top3,
            "chance_top1": self.chance_top1,
            "chance_top3": self.chance_top3,
            "jmass": self.jmass,
            "pairs": self.pairs,
            "pairs_total": self.pairs_total,
            "region_share": self.region_share,
            "unchanged": self.unchanged,
            "per_attribute": self.per_attribute,
            "hmass": self.hmass,
        }


def summarise(
    mode: str,
    scores: list[PairScore],
    changed: list[int],
    discriminant: str | None = None,
    regions: str = "maps",
    names: Sequence[str] = ATTRIBUTES,
) -> RowSummary:
    """Hit rates, chance levels and map mass over the scored pairs of one row.

    ``names``: the word of each head index (``per_attribute`` keys; the vocabulary's
    attributes, default celeba30).
    """
    kept = [(s, j) for s, j in zip(scores, changed, strict=True) if s.kept]
    if not kept:
        raise ValueError(
            f"{mode}: no pair scored (the attribute net never predicted the changed attribute "
            "present)"
        )
    ks = [s for s, _ in kept]
    n = np.array([s.n_present for s in ks], dtype=float)
    per_attr: dict[str, list[float]] = {}
    for s, j in kept:
        per_attr.setdefault(names[j], []).append(s.top1)
    masses = [s.jmass for s in ks if s.jmass is not None]
    hmasses = [s.hmass for s in ks if s.hmass is not None]
    return RowSummary(
        mode=mode,
        discriminant=discriminant,
        regions=regions,
        pairs=len(ks),
        pairs_total=len(scores),
        top1=float(np.mean([s.top1 for s in ks])),
        top3=float(np.mean([s.top3 for s in ks])),
        chance_top1=float((1 / n).mean()),
        chance_top3=float((np.minimum(3, n) / n).mean()),
        jmass=float(np.mean(masses)) if masses else None,
        region_share=float(np.mean([s.region_share for s in ks])),
        unchanged=float(np.mean([s.unchanged for s in ks])),
        per_attribute={k: [float(sum(v)), len(v)] for k, v in sorted(per_attr.items())},
        hmass=float(np.mean(hmasses)) if hmasses else None,
    )


# ----------------------------------------------------------------------------- the rows
@dataclass(frozen=True)
class Row:
    """One row of the table.

    Attributes:
        name: the row's label (``mode`` in the JSON).
        kind: "ranking" (a :class:`RankingConfig` on the explanation's maps), "oracle" (the
            same on every attribute's true region), "oracle-paper", or a reference:
            "random", "filter-random", "attribute-only".
        discriminant: the explanation used ("classes" or "verification"); ``None`` for rows
            that use no map.
        ranking: the ranking of "ranking" and "oracle" rows (and the filter of "filter-random").
    """

    name: str
    kind: str
    discriminant: str | None = "classes"
    ranking: RankingConfig | None = None

    @property
    def regions(self) -> str:
        """Which regions are erased: "maps", "true" or "none"."""
        if self.kind in ("oracle", "oracle-paper"):
            return "true"
        return "none" if self.discriminant is None else "maps"


def default_rows(
    ranking: RankingConfig | None = None,
    discriminants: Sequence[str] = ("classes", "verification"),
    modes: Sequence[str] = ("paper", "both-shared", "contrast"),
    references: bool = True,
) -> list[Row]:
    """The table: every mode x discriminant (the paper's first), then the references.

    With the contrast mode, a "contrast, V order" row orders the words that differ by the
    shared-region gain alone (``contrast_order="gain"``): the verification evidence's own
    contribution over the filter-random reference.
    """
    base = ranking or RankingConfig()
    gain = replace(base, mode="contrast", contrast_order="gain")
    rows = []
    for d in discriminants:
        suffix = "" if d == "classes" else " (V discriminant)"
        for m in modes:
            rows.append(Row(m + suffix, "ranking", d, replace(base, mode=m)))
            if m == "contrast":
                rows.append(Row("contrast, V order" + suffix, "ranking", d, gain))
    if references:
        rows += [
            Row("random", "random", None),
            Row("filter-random", "filter-random", None, base),
            Row("attribute-only (not Sim2Word)", "attribute-only", None),
            Row("oracle paper", "oracle-paper", "classes"),
            Row("oracle both-shared", "oracle", "classes", replace(base, mode="both-shared")),
            Row("oracle contrast, V order", "oracle", "classes", gain),
        ]
    return rows


def _probe_present(ex: PairExplanation) -> list[int]:
    d = ex.directions[0]
    vocab = getattr(ex, "vocabulary", None) or get_vocabulary(None)
    return [j for j in range(len(d.attr_class)) if vocab.is_present(j, int(d.attr_class[j]))]


def _contrast(ex: PairExplanation) -> tuple[np.ndarray, np.ndarray]:
    """(K,) A's drop of the probe's class probability towards the twin, and (K,) class changed."""
    return attribute_contrast(ex.directions[0].attr_probs, ex.directions[1].attr_probs)


def _oracle_paper_values(
    pair: TwinPair, ex: PairExplanation, V, batch_size: int
) -> dict[int, float]:
    """cos(V(E1j), V(I2)), the probe alone erased (the run's fill) in attribute j's true region."""
    erase_probe = ex.directions[0].eraser
    present = _probe_present(ex)
    emb = embed_images(V, (erase_probe(pair.regions[j]) for j in present), batch_size)
    sims = cosine(emb, torch.as_tensor(ex.embeddings[1])[None].expand_as(emb)).double().numpy()
    return dict(zip(present, sims.tolist(), strict=True))


def score_row(
    row: Row,
    pair: TwinPair,
    ex: PairExplanation,
    V,
    rng: np.random.Generator,
    *,
    seed: int = 0,
    pair_index: int = 0,
    erasing_method: str = "black",
    batch_size: int = 32,
    cache: dict | None = None,
) -> PairScore:
    """Score one pair under one row (see the module docstring).

    ``cache``: one dict per pair, shared by its rows (shared-region similarities computed once).
    """
    present = _probe_present(ex)
    j_true = pair.changed
    if j_true not in present:
        return PairScore(kept=False, n_present=len(present))
    base = PairScore(kept=True, n_present=len(present), region_share=float(pair.region.mean()))
    if row.kind == "random":
        order = rng.permutation(present)
        keys = {int(j): (float(k),) for k, j in enumerate(order)}
    elif row.kind == "filter-random":
        drop, changed = _contrast(ex)
        differs = changed | (drop >= (row.ranking or RankingConfig()).contrast_drop)
        noise = rng.random(len(present))
        keys = {
            j: (0.0 if differs[j] else 1.0, float(u)) for j, u in zip(present, noise, strict=True)
        }
    elif row.kind == "attribute-only":
        drop, _ = _contrast(ex)
        keys = {j: (-float(drop[j]),) for j in present}
    elif row.kind == "oracle-paper":
        values = _oracle_paper_values(pair, ex, V, batch_size)
        keys = {j: (-v,) for j, v in values.items()}
    elif row.kind in ("ranking", "oracle"):
        regions = pair.regions if row.kind == "oracle" else None
        ranking = rank_pair(
            ex,
            (pair.probe.image, pair.counter.image),
            V,
            row.ranking,
            discriminant=row.discriminant or "classes",
            erasing_method=erasing_method,
            seed=seed,
            pair_index=pair_index,
            regions=regions,
            cache=cache,
        )
        keys = ranking.keys["image1"]
        base.unchanged = float(np.mean([w.tie == "unchanged" for w in ranking.image1]))
        if regions is None:
            base.jmass = mass_inside(ex.directions[0].J[j_true], pair.region)
            h_d = getattr(ex.directions[0], "H_d", None)
            base.hmass = None if h_d is None else mass_inside(h_d, pair.region)
    else:
        raise ValueError(f"unknown row kind {row.kind!r}")
    base.top1, base.top3, base.rank = tie_aware_hits(keys, j_true)
    return base


def run_check(
    nets: Sim2WordNets,
    base: Sim2WordConfig,
    pairs: list,
    rows: Sequence[Row],
    seed: int = 0,
    progress: bool = True,
    *,
    context: Callable[[object], AbstractContextManager] | None = None,
    errors: list | None = None,
    names: Sequence[str] = ATTRIBUTES,
    desc: str = "twin pairs",
) -> list[RowSummary]:
    """Explain every pair (once per discriminant) and score every row on the same pairs.

    Args:
        nets, base: the networks and the explanation's configuration.
        pairs: :class:`TwinPair` or any pair with ``probe.image``, ``counter.image``,
            ``changed``, ``region`` and ``regions`` (e.g. the part-swap check's pairs).
        rows: the rows to score.
        seed: seed of the random orders.
        progress: tqdm bar (labelled ``desc``).
        context: per pair, a context manager held while it is explained and scored (e.g.
            leave-pair-out class means); ``None``: nothing.
        errors: if given, a pair whose explanation or scoring raises is left out of every row
            and ``(pair index, error)`` is appended here (the run goes on); ``None``: raise.
        names: the word of each head index (:func:`summarise`).
    """
    discriminants = sorted({r.discriminant or "classes" for r in rows})
    scores: dict[Row, list[PairScore]] = {r: [] for r in rows}
    rngs = {r: np.random.default_rng([seed, 9, k]) for k, r in enumerate(rows)}
    changed: list[int] = []
    for i, pair in enumerate(tqdm(pairs, desc=desc, unit="pair", disable=not progress)):
        try:
            with context(pair) if context is not None else nullcontext():
                row_scores = _score_pair(nets, base, pair, i, rows, discriminants, rngs)
        except Exception as err:  # recorded per pair when the caller keeps errors
            if errors is None:
                raise
            errors.append((i, err))
            continue
        for r in rows:
            scores[r].append(row_scores[r])
        changed.append(pair.changed)
    return [summarise(r.name, scores[r], changed, r.discriminant, r.regions, names) for r in rows]


def _score_pair(nets, base, pair, i, rows, discriminants, rngs) -> dict:
    """Explain one pair once per discriminant and score every row (:func:`run_check`)."""
    exs = {
        d: explain_pair(
            pair.probe.image,
            pair.counter.image,
            nets,
            replace(base, discriminant=d),
            pair_index=i,
        )
        for d in discriminants
    }
    cache: dict = {}  # shared-region similarities of this pair, reused across rows
    return {
        r: score_row(
            r,
            pair,
            exs[r.discriminant or "classes"],
            nets.verification,
            rngs[r],
            seed=base.seed,
            pair_index=i,
            erasing_method=base.erasing_method,
            batch_size=base.batch_size,
            cache=cache,
        )
        for r in rows
    }


def format_table(summaries: Sequence[RowSummary], hmass: bool = False) -> str:
    """Markdown table of the rows (:func:`utils.base.tables.format_table`), ending in a newline.

    ``hmass``: add a column with the share of H_d's mass inside the region.
    """
    head = [
        "mode",
        "regions",
        "pairs scored",
        "top-1",
        "chance",
        "top-3",
        "chance",
        "J[j*] mass in region (region share)",
        "words unchanged",
    ] + (["H_d mass in region"] if hmass else [])
    rows = [
        [
            s.mode,
            s.regions,
            f"{s.pairs}/{s.pairs_total}",
            f"{s.top1:.3f}",
            f"{s.chance_top1:.3f}",
            f"{s.top3:.3f}",
            f"{s.chance_top3:.3f}",
            "-" if s.jmass is None else f"{s.jmass:.3f} ({s.region_share:.3f})",
            "-" if math.isnan(s.unchanged) else f"{s.unchanged:.2f}",
        ]
        + (["-" if s.hmass is None else f"{s.hmass:.3f}"] if hmass else [])
        for s in summaries
    ]
    return tables.format_table(head, rows, align="ll" + "r" * (len(head) - 2))
