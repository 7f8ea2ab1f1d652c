"""The comparison protocol: triplets, per-map measurements, the table and the Fig. 4-style figure.

Every method gets the same triplets (probe, mate, non-mate) and the same
networks, and each map is scored by the functions of
:mod:`utils.experiments.saliency_metrics`:

* **Inpainting game (face-world twins).** probe = an unseen identity under
  nuisance n1; non-mate = its twin: the same identity and nuisance with
  exactly one attribute changed (``utils.face_world.twins``); mate = the same
  identity under another nuisance n2. True region = the changed attribute's
  region in either image, grown by the documented twin margin
  (``changed_region``). As in xFR, a triplet is kept only when the network
  itself calls the mate a mate and the twin a non-mate at the EER threshold
  (``filter``). Scores: the hit curve over the top 1..50 % pixels and its
  normalised area; the decision flip: the probe's pixels are replaced by the
  twin's in saliency order (2 % steps, ties broken at random, seeded) and the
  flip point is the first fraction at which s(modified probe, non-mate)
  reaches the threshold (always <= 100 %, where the probe *is* the twin).
* **Deletion / insertion** (face world: unseen identities, probe and mate
  two nuisances of one identity, non-mate another identity; real photos:
  ``pairs.csv`` genuine pairs plus an impostor of the probe). One map per
  triplet; pixels removed (replaced by a Gaussian-blurred copy of the probe)
  or inserted (into that blurred copy) in saliency order; AUC of the
  similarity over the fraction of pixels. Genuine = s(., mate): deletion low
  and insertion high are good. Impostor = s(., non-mate): removing the pixels
  that make the probe the mate's identity rather than the non-mate's should
  *raise* it (Sim2Word's counterfactual; deletion high is good) and inserting
  them first should keep it low.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from methods import ComparisonNets, Explainer
from utils.face_world import render, sample_identity, sample_nuisance
from utils.face_world.twins import changed_region, make_twin, random_twin
from utils.experiments.saliency_metrics import (
    HIT_FRACTIONS,
    curve_area,
    first_crossing,
    hit_curve,
    pixel_counts,
    pixel_order,
    replace_top,
    trapezoid_auc,
)
from utils.explain.verification import cosine, embed_images

log = logging.getLogger(__name__)

# Seed namespaces of the benchmark's identities (WorldSplit uses 1 = training, 2 = held-out).
GAME_IDS, DELINS_IDS = 70, 71


@dataclass
class Triplet:
    """Images (BGR uint8) of one test case; ``region`` only for the inpainting game."""

    probe: np.ndarray
    mate: np.ndarray
    nonmate: np.ndarray
    region: np.ndarray | None = None
    attribute: int | None = None
    name: str = ""
    leave_out: tuple[str, ...] = ()  # photos left out of the gallery's means while explaining


@dataclass
class Stats:
    drawn: int = 0
    no_twin: int = 0
    mate_rejected: int = 0
    twin_accepted: int = 0
    kept: int = 0
    attributes: dict = field(default_factory=dict)


def similarities(V, images, refs: np.ndarray | list, batch_size: int = 128) -> np.ndarray:
    """cos(V(image_i), V(ref_k)) for every image and ref. -> (N, K) float64."""
    emb = embed_images(V, list(images), batch_size)
    ref = embed_images(V, list(refs), batch_size)
    return np.stack([cosine(emb, r[None].expand_as(emb)).double().numpy() for r in ref], axis=1)


def twin_triplets(
    V,
    threshold: float,
    n: int,
    seed: int,
    size: int = 112,
    filter_: bool = True,
    max_draws: int | None = None,
    batch: int = 32,
) -> tuple[list[Triplet], Stats]:
    """Draw inpainting-game triplets from unseen identities until ``n`` pass the filter (or
    ``max_draws``)."""
    stats, out = Stats(), []
    max_draws = max_draws or 100 * n
    i = 0
    while len(out) < n and stats.drawn < max_draws:
        cands = []
        while len(cands) < batch and stats.drawn < max_draws:
            rng = np.random.default_rng([seed, GAME_IDS, i])
            ident = sample_identity(rng)
            n1, n2 = sample_nuisance(rng), sample_nuisance(rng)
            i += 1
            stats.drawn += 1
            change = random_twin(rng, ident, n1)
            if change is None:
                stats.no_twin += 1
                continue
            src = render(ident, n1, size=size)
            twin = make_twin(ident, n1, change[0], change[1], size=size)
            mate = render(ident, n2, size=size, with_masks=False).image
            cands.append(
                Triplet(
                    src.image,
                    mate,
                    twin.image,
                    changed_region(src, twin, change[0]),
                    change[0],
                    f"twin-{i - 1}",
                )
            )
        if not cands:
            break
        emb = embed_images(V, [im for c in cands for im in (c.probe, c.mate, c.nonmate)], 3 * batch)
        e = emb.reshape(len(cands), 3, -1)
        s_pm = cosine(e[:, 0], e[:, 1]).numpy()
        s_pn = cosine(e[:, 0], e[:, 2]).numpy()
        for c, pm, pn in zip(cands, s_pm, s_pn, strict=True):
            ok_m, ok_n = pm >= threshold, pn < threshold
            stats.mate_rejected += int(not ok_m)
            stats.twin_accepted += int(not ok_n)
            if ((ok_m and ok_n) or not filter_) and len(out) < n:
                out.append(c)
                stats.attributes[int(c.attribute)] = stats.attributes.get(int(c.attribute), 0) + 1
    stats.kept = len(out)
    return out, stats


def identity_triplets(n: int, seed: int, size: int = 112) -> list[Triplet]:
    """Face-world deletion / insertion triplets: probe and mate of one unseen identity, non-mate
    of another."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, DELINS_IDS, i])
        a, b = sample_identity(rng), sample_identity(rng)
        imgs = [
            render(ident, sample_nuisance(rng), size=size, with_masks=False).image
            for ident in (a, a, b)
        ]
        out.append(Triplet(*imgs, name=f"fw-{i}"))
    return out


def real_triplets(pairs, read, n: int, seed: int, max_side: int | None = 256) -> list[Triplet]:
    """Real-photo triplets: each genuine pair (p, m) of the list plus an impostor partner of p from
    the list.

    Args:
        pairs: ``utils.faces.data.PairItem`` list. read: path -> BGR image. max_side: photos are
            shrunk so that their longer side is at most this (the demo nets see 64-128 px anyway;
            keeps the curves small); ``None``: as read (canvases of a real net's aligner).

    A triplet whose photo cannot be read (``read`` raises ``ValueError`` or ``OSError``, e.g. no
    face to align) is logged and skipped. ``leave_out`` = (probe, non-mate): the pair Sim2Word
    explains.
    """
    impostors: dict[str, list[str]] = {}
    for p in pairs:
        if p.error is None and p.label == 0:
            impostors.setdefault(p.path1, []).append(p.path2)
            impostors.setdefault(p.path2, []).append(p.path1)
    genuine = [p for p in pairs if p.error is None and p.label == 1 and (p.path1 in impostors)]
    rng = np.random.default_rng([seed, 73])
    out = []
    for k in rng.permutation(len(genuine))[:n]:
        g = genuine[k]
        other = impostors[g.path1][int(rng.integers(len(impostors[g.path1])))]
        try:
            imgs = [read(path) for path in (g.path1, g.path2, other)]
        except (ValueError, OSError) as err:
            log.warning("real triplet %s|%s|%s skipped: %s", g.path1, g.path2, other, err)
            continue
        if max_side is not None:
            imgs = [_shrink(img, max_side) for img in imgs]
        out.append(Triplet(*imgs, name=f"{g.path1}|{g.path2}|{other}", leave_out=(g.path1, other)))
    return out


def _shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    f = max_side / max(h, w)
    return (
        img
        if f >= 1
        else cv2.resize(
            img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
        )
    )


def blurred(img: np.ndarray) -> np.ndarray:
    """The deletion fill / insertion start: Gaussian blur with sigma = 1/16 of the image's longer
    side."""
    return cv2.GaussianBlur(img, (0, 0), sigmaX=max(img.shape[:2]) / 16.0)


def timed_explain(method: Explainer, t: Triplet, nets: ComparisonNets):
    """(Explanation, CPU seconds of this process: on a shared machine wall time measures the
    other jobs too)."""
    start = time.process_time()
    ex = method.explain_full(t.probe, t.mate, t.nonmate, nets)
    return ex, time.process_time() - start


def game_scores(
    V, sal: np.ndarray, t: Triplet, threshold: float, flip_steps: int, rng: np.random.Generator
) -> dict:
    """Hit curve, its area and the flip point of one map on one twin triplet."""
    out = hit_scores(sal, t)
    fr = np.linspace(0.0, 1.0, flip_steps + 1)
    order = pixel_order(sal, rng)
    imgs = replace_top(t.probe, t.nonmate, order, pixel_counts(sal.size, fr, at_least_one=False))
    s = similarities(V, imgs, [t.nonmate])[:, 0]
    flip = first_crossing(fr, s, threshold, above=True)
    out.update({"flip": 1.0 if flip is None else flip, "flipped": flip is not None})
    out["region_share"] = out.pop("region_share")  # key order of the committed records
    return out


def hit_scores(sal: np.ndarray, t: Triplet) -> dict:
    """Hit curve over the top 1..50 % pixels, its normalised area, its value at 10 % and the
    region's share of the map (the chance level of both) of one map on one triplet."""
    curve = hit_curve(sal, t.region, HIT_FRACTIONS)
    return {
        "hit_curve": curve.tolist(),
        "hit_area": curve_area(HIT_FRACTIONS, curve),
        "hit_at_10": float(curve[list(HIT_FRACTIONS).index(0.1)]),
        "region_share": float(t.region.mean()),
    }


def delins_scores(V, sal: np.ndarray, t: Triplet, steps: int, rng: np.random.Generator) -> dict:
    """Deletion / insertion AUCs of s(., mate) (genuine) and s(., non-mate) (impostor) for one
    map."""
    fr = np.linspace(0.0, 1.0, steps + 1)
    order = pixel_order(sal, rng)
    counts = pixel_counts(sal.size, fr, at_least_one=False)
    fill = blurred(t.probe)
    imgs = np.concatenate(
        [replace_top(t.probe, fill, order, counts), replace_top(fill, t.probe, order, counts)]
    )
    s = similarities(V, imgs, [t.mate, t.nonmate])
    d, i = s[: steps + 1], s[steps + 1 :]
    return {
        "genuine_deletion": trapezoid_auc(fr, d[:, 0]),
        "genuine_insertion": trapezoid_auc(fr, i[:, 0]),
        "impostor_deletion": trapezoid_auc(fr, d[:, 1]),
        "impostor_insertion": trapezoid_auc(fr, i[:, 1]),
    }
