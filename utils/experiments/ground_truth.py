"""Ground-truth check of Sim2Word's words and regions on face-world twins.

Protocol (documented with its numbers in the README):

1. Identities: ``num_pairs`` fresh identities drawn from the split's seed on
   a stream of their own (never seen in training), each with one fresh
   nuisance.
2. Twin pair: the probe I1 is that image; the counter image I2 is its twin
   with exactly one identity-level attribute ``j*`` changed (expression
   attributes Mouth Closed / Smiling are per-image, not identity, and are not
   used). For a binary attribute the probe is the side that *has* it, so that
   ``j*`` is a present attribute of the probe and can be its word; a
   multi-class attribute is always present. The change ``(j*, class)`` is
   drawn uniformly among the twins that exist for the face (seeded).
3. Sim2Word explains I1 against I2 (METHOD.md section 3). The probe's words
   are its *predicted*-present attributes ranked by cos(V(E1j), V(I2))
   descending. A pair counts only if the attribute net predicts ``j*``
   present in the probe (otherwise ``j*`` cannot be a word); the number of
   such filtered pairs is reported.
4. Reported: top-1 and top-3 hit rates of ``j*`` with their chance levels
   (mean of 1/n and min(3, n)/n over pairs, n = number of present attributes);
   the share of J[j*]'s mass and of H_d's mass inside the true region of
   ``j*`` (the union of its region in both images, grown by the twin margin),
   with the region's share of the image as chance; the share of the erased
   region of the top-1 word inside the true region.
5. The same pairs under the ablations (no counterfactual, no attribute) and a
   random ranking (seeded) of the same present attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch.nn.functional as F
import torch
from tqdm import tqdm

from models.attributes import ATTRIBUTES, is_present
from utils.base import tables
from utils.face_world.demo_training import WorldSplit
from utils.face_world import render, sample_identity, sample_nuisance
from utils.face_world.twins import changed_region, make_twin, twin_classes
from utils.explain.sim2word import PairExplanation, Sim2WordConfig, Sim2WordNets, explain_pair

EXPRESSION_ATTRIBUTES = (25, 26)  # Mouth Closed, Smiling: per-image, not identity


@dataclass
class TwinPair:
    """One ground-truth pair: the probe has attribute ``changed``; the counter image does not (or
    another class)."""

    probe: object
    counter: object
    changed: int
    region: np.ndarray  # (H, W) bool, true region at the raw image size


def make_twin_pairs(split: WorldSplit, num_pairs: int, size: int = 112) -> list[TwinPair]:
    """Seeded twin pairs over held-out identities (see the module protocol)."""
    rng = np.random.default_rng([split.seed, 7])
    pairs = []
    i = 0
    while len(pairs) < num_pairs:
        ident = sample_identity(np.random.default_rng([split.seed, 8, i]))
        nuis = sample_nuisance(np.random.default_rng([split.seed, 3, 4000, i]))
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
        pairs.append(TwinPair(probe, counter, j, changed_region(source, twin, j)))
    return pairs


@dataclass
class PairScore:
    """Scores of one explained pair under one variant.

    ``top1`` / ``top3`` are the probabilities that ``j*`` is ranked first / in the
    first three when ties (e.g. identical erased images from empty masks) are
    broken uniformly at random, so ties earn chance, never a free hit.
    """

    kept: bool
    rank: int = -1
    n_present: int = 0
    top1: float = 0.0
    top3: float = 0.0
    empty_masks: float = 0.0
    joint_in_region: float = float("nan")
    discriminant_in_region: float = float("nan")
    erased_in_region: float = float("nan")
    region_share: float = float("nan")


def _mass_inside(values: np.ndarray, region: np.ndarray) -> float:
    """Share of a non-negative map's mass inside ``region`` (map resized bilinearly to the
    region's size)."""
    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    up = (
        F.interpolate(t, size=region.shape, mode="bilinear", align_corners=False)[0, 0]
        .clamp_min(0)
        .numpy()
    )
    total = float(up.sum())
    return float(up[region].sum() / total) if total > 0 else 0.0


def score_pair(
    pair: TwinPair, ex: PairExplanation, rng: np.random.Generator | None = None
) -> PairScore:
    """Score the explanation of the probe against the counter image against the truth.

    Args:
        pair: the twin pair.
        ex: ``explain_pair(pair.probe.image, pair.counter.image, ...)``.
        rng: given: the present attributes are ranked randomly instead (the random baseline).
    """
    d = ex.directions[0]
    present = [j for j in range(len(d.attr_class)) if is_present(j, d.attr_class[j])]
    j_true = pair.changed
    if j_true not in present:
        return PairScore(kept=False, n_present=len(present))
    if rng is not None:
        order = list(rng.permutation(present))
        scores = {j: -float(order.index(j)) for j in present}
    else:
        scores = {j: float(d.sim_other[j]) for j in present}
        order = sorted(present, key=lambda j: -scores[j])
    above = sum(scores[j] > scores[j_true] for j in present)
    tied = sum(scores[j] == scores[j_true] for j in present)  # includes j* itself
    top1 = order[0]
    top1_mask = d.mask_raw(top1)
    erased_in = float(top1_mask[pair.region].sum() / top1_mask.sum()) if top1_mask.any() else 0.0
    return PairScore(
        kept=True,
        rank=above + 1,
        n_present=len(present),
        top1=float(np.clip((1 - above) / tied, 0, 1)),
        top3=float(np.clip((3 - above) / tied, 0, 1)),
        empty_masks=float(np.mean([not d.masks[j].any() for j in present])),
        joint_in_region=_mass_inside(d.J[j_true], pair.region),
        discriminant_in_region=_mass_inside(d.H_d, pair.region),
        erased_in_region=erased_in,
        region_share=float(pair.region.mean()),
    )


@dataclass
class VariantSummary:
    """Aggregate of :class:`PairScore` over the pairs of one variant."""

    name: str
    pairs: int
    kept: int
    empty_masks: float
    top1: float
    top3: float
    chance_top1: float
    chance_top3: float
    joint_in_region: float
    discriminant_in_region: float
    erased_in_region: float
    region_share: float
    per_attribute: dict = field(default_factory=dict)


def summarise(name: str, scores: list[PairScore], changed: list[int]) -> VariantSummary:
    """Hit rates, chance levels and region shares over the kept pairs."""
    kept = [(s, j) for s, j in zip(scores, changed, strict=True) if s.kept]
    if not kept:
        raise ValueError(
            f"{name}: no pair kept (the attribute net never predicted the changed attribute "
            "present)"
        )
    ks = [s for s, _ in kept]
    n = np.array([s.n_present for s in ks], dtype=float)
    per_attr: dict[str, list[float]] = {}
    for s, j in kept:
        per_attr.setdefault(ATTRIBUTES[j], []).append(s.top1)
    return VariantSummary(
        name=name,
        pairs=len(scores),
        kept=len(ks),
        empty_masks=float(np.mean([s.empty_masks for s in ks])),
        top1=float(np.mean([s.top1 for s in ks])),
        top3=float(np.mean([s.top3 for s in ks])),
        chance_top1=float((1 / n).mean()),
        chance_top3=float((np.minimum(3, n) / n).mean()),
        joint_in_region=float(np.mean([s.joint_in_region for s in ks])),
        discriminant_in_region=float(np.mean([s.discriminant_in_region for s in ks])),
        erased_in_region=float(np.mean([s.erased_in_region for s in ks])),
        region_share=float(np.mean([s.region_share for s in ks])),
        per_attribute={k: [float(sum(v)), len(v)] for k, v in sorted(per_attr.items())},
    )


VARIANTS = ("sim2word", "no-counterfactual", "no-attribute", "random-ranking")


def run_check(
    nets: Sim2WordNets,
    base: Sim2WordConfig,
    pairs: list[TwinPair],
    seed: int = 0,
    variants: tuple[str, ...] = VARIANTS,
    progress: bool = True,
) -> list[VariantSummary]:
    """Score every variant on the same pairs."""
    changed = [p.changed for p in pairs]
    scores: dict[str, list[PairScore]] = {v: [] for v in variants}
    ablations = {v: (v if v in ("no-counterfactual", "no-attribute") else "none") for v in variants}
    for ablation in dict.fromkeys(
        ablations.values()
    ):  # the random ranking reuses Sim2Word's explanations
        config = Sim2WordConfig(**{**base.__dict__, "ablation": ablation})
        rng = np.random.default_rng([seed, 9])
        for i, pair in enumerate(tqdm(pairs, desc=f"ablation {ablation}", disable=not progress)):
            ex = explain_pair(pair.probe.image, pair.counter.image, nets, config, pair_index=i)
            for v in variants:
                if ablations[v] == ablation:
                    scores[v].append(score_pair(pair, ex, rng if v == "random-ranking" else None))
    return [summarise(v, scores[v], changed) for v in variants]


def format_table(summaries: list[VariantSummary]) -> str:
    """Markdown table of the variants (:func:`utils.base.tables.format_table`)."""
    head = [
        "variant",
        "pairs kept",
        "empty masks",
        "top-1",
        "chance",
        "top-3",
        "chance",
        "J[j*] mass in region",
        "H_d mass in region",
        "top-1 erased region in region",
        "region share (chance)",
    ]
    rows = [
        [
            s.name,
            f"{s.kept}/{s.pairs}",
            f"{s.empty_masks:.2f}",
            f"{s.top1:.3f}",
            f"{s.chance_top1:.3f}",
            f"{s.top3:.3f}",
            f"{s.chance_top3:.3f}",
            f"{s.joint_in_region:.3f}",
            f"{s.discriminant_in_region:.3f}",
            f"{s.erased_in_region:.3f}",
            f"{s.region_share:.3f}",
        ]
        for s in summaries
    ]
    return tables.format_table(head, rows)
