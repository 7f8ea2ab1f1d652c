"""The comparison's real-photo part with real networks (issue 15, item 3).

The face-world columns use the demo networks; the real-photo columns use a
real network set (``--real-nets``):

* ``sface``: verification ``SFace``, recognition ``SFace-gallery``,
  attribute ``real-attributes``; ``dlib``: the same with ``dlib-ResNet29``.
  The gallery is the folder per identity of ``--real-faces`` (28 identities
  of ``shared/data/real_faces``); Sim2Word explains every triplet with the
  identity means computed without the photos it explains
  (:class:`utils.faces.gallery.LeaveOut`, :attr:`benchmark.Triplet.leave_out`).
  Every photo is aligned to the verification net's template
  (:class:`utils.faces.canvas.CanvasAligner`): all maps, regions and
  pixel replacements live on that canvas (BRIEF interface 4).
* ``demo``: the demo nets on the photos as read (shrunk), the former columns.

Two measurements:

1. **Inpainting game on part swaps** (:func:`swap_triplets`). Photos of the
   *held-out* identities of the part-swap split
   (:func:`utils.experiments.part_swap.identity_split`), swaps of the part-swap
   check's fixed rule (:func:`utils.experiments.part_swap_check.swap_specs`)
   drawn in a seeded order. Triplet: probe = A (a photo), non-mate = A' (A
   with one part of a photo B of another identity, Poisson-blended; it
   differs from A only inside the swap's mask), mate = the next photo of A's
   identity (by path, cyclic). As in xFR's inpainting game the probe and the
   non-mate differ only in the region, so a map answering "which pixels of
   the probe make it the mate's identity rather than the non-mate's?" should
   put its top pixels there. Keep rule (:func:`keep_swap`, ``--real-swap-keep``):
   ``mate`` (default): V accepts the mate at the threshold; ``xfr``: V also
   rejects A' (xFR's rule; a single blended part rarely flips a real
   network's decision, so it keeps few or none); ``none``: all. Score: the
   hit curve (share of the top 1-50 % pixels inside the mask, ties split in
   expectation) and its value at 10 %; chance = the mask's share of the
   canvas.
2. **Deletion / insertion** on ``pairs.csv`` genuine pairs plus an impostor
   partner of the probe (:func:`benchmark.real_triplets`), on the canvases.

Threshold: the EER threshold of V over all pairs of the gallery photos of the
*tuning* identities (:func:`tuning_threshold`; the held-out photos choose
nothing).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import benchmark as B
from methods import ComparisonNets
from utils.experiments import part_swap_check as psc
from utils.experiments.part_swap import identity_split
from utils.experiments.saliency_metrics import eer_threshold
from utils.faces.gallery import LeaveOut

log = logging.getLogger(__name__)

#: --real-nets choice -> (verification, recognition, attribute) registered names.
REAL_NETS = {
    "sface": ("SFace", "SFace-gallery", "real-attributes"),
    "dlib": ("dlib-ResNet29", "dlib-ResNet29-gallery", "real-attributes"),
}
KEEP_RULES = ("mate", "xfr", "none")
#: Why xCos has no real-photo column.
XCOS_REAL_REASON = (
    "xCos is left out of the real-photo columns: its attention head was trained for the demo "
    "verification net's bn2 grid (train_xcos.py) and does not fit the real net's features"
)


@dataclass
class RealSetup:
    """The loaded real network set."""

    nets: ComparisonNets
    aligner: object
    leave_out: LeaveOut
    names: tuple[str, str, str]


def load_real_nets(kind: str, root: str | Path, cache_dir: Path, progress: bool) -> RealSetup:
    """Load the ``--real-nets`` set (``sface`` or ``dlib``) with its gallery over ``root``.

    Raises:
        ValueError: unknown ``kind``. utils.run.folder.UsageError: a net or the gallery cannot
            be built.
    """
    from utils.run.networks import load_networks, plan_gallery_folder, resolve_device
    from utils.run.pipeline import plan_canvas, prepare_attribute_net

    if kind not in REAL_NETS:
        raise ValueError(f"unknown real network set {kind!r}; valid: {', '.join(REAL_NETS)}")
    v, r, a = REAL_NETS[kind]
    plan = plan_canvas({"verification": v, "recognition": r, "attribute": a}, "auto")
    aligner = plan.aligner()
    args = argparse.Namespace(progress=progress)
    for role, name in (("verification", v), ("recognition", r), ("attribute", a)):
        setattr(args, f"{role}_net", name)
        setattr(args, f"{role}_weights", None)
        setattr(args, f"{role}_arch", None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    gallery = (plan_gallery_folder(root), aligner, cache_dir / f"gallery-{r}.npz")
    loaded = load_networks(
        args, ("recognition", "attribute", "verification"), resolve_device("cpu"), gallery
    )
    prepare_attribute_net(loaded["attribute"], aligner)
    nets = ComparisonNets(loaded["verification"], loaded["recognition"], loaded["attribute"])
    return RealSetup(nets, aligner, LeaveOut(loaded["recognition"]), (v, r, a))


def tuning_threshold(recognition) -> dict:
    """EER threshold of the gallery photos' embeddings over all pairs of the tuning identities.

    Args:
        recognition: a ``<net>-gallery`` classifier (``recognition.photos``: paths, identities,
            raw embeddings of the verification net on the aligned photos).
    """
    photos = recognition.photos
    tuning, _ = identity_split(photos.identities)
    rows = [k for k, i in enumerate(photos.identities) if i in set(tuning)]
    emb = F.normalize(torch.as_tensor(photos.embeddings[rows]).double(), dim=1).numpy()
    ids = np.array([photos.identities[k] for k in rows])
    iu = np.triu_indices(len(rows), k=1)
    labels = (ids[iu[0]] == ids[iu[1]]).astype(int)
    thr, eer = eer_threshold(labels, (emb @ emb.T)[iu])
    return {
        "threshold": thr,
        "eer": eer,
        "source": f"EER on {len(labels)} pairs of the {len(tuning)} tuning identities' photos",
    }


def keep_swap(s_mate: float, s_swap: float, threshold: float, rule: str) -> bool:
    """The keep rule of a swap triplet (module docstring).

    Args:
        s_mate: cos(V(A), V(mate)). s_swap: cos(V(A), V(A')). threshold: accept when >=.
        rule: ``"mate"`` (mate accepted), ``"xfr"`` (mate accepted and A' rejected), ``"none"``.
    """
    if rule not in KEEP_RULES:
        raise ValueError(f"unknown keep rule {rule!r}; valid: {', '.join(KEEP_RULES)}")
    if rule == "none":
        return True
    return s_mate >= threshold and (rule == "mate" or s_swap < threshold)


@dataclass
class SwapStats:
    """Counts of :func:`swap_triplets`. ``failed``: swaps skipped because A has no other photo
    (no mate: 3 of the 14 held-out identities of ``real_faces`` have one photo) or a photo could
    not be aligned or swapped; ``mate_rejected`` / ``swap_accepted``: of the swaps scored, V
    rejects the mate / still accepts A' as A."""

    drawn: int = 0
    failed: int = 0
    mate_rejected: int = 0
    swap_accepted: int = 0
    kept: int = 0
    rule: str = "mate"


def mate_of(photos: list[psc.Photo]) -> dict[int, int]:
    """Index of each photo's mate: the next photo of its identity in the list order (cyclic);
    photos alone in their identity have none."""
    by_id: dict[str, list[int]] = {}
    for k, p in enumerate(photos):
        by_id.setdefault(p.identity, []).append(k)
    return {
        k: idx[(j + 1) % len(idx)]
        for idx in by_id.values()
        if len(idx) > 1
        for j, k in enumerate(idx)
    }


def swap_triplets(
    root: str | Path,
    setup: RealSetup,
    threshold: float,
    n: int,
    seed: int,
    rule: str = "mate",
    progress: bool = True,
) -> tuple[list[B.Triplet], SwapStats]:
    """Part-swap triplets of the held-out identities until ``n`` pass :func:`keep_swap`.

    Swaps are drawn from :func:`~utils.experiments.part_swap_check.swap_specs` of the held-out
    photos in a seeded random order; a swap whose photo cannot be aligned or swapped is counted
    in ``failed`` and skipped.
    """
    photos = psc.split_photos(psc.list_photos(root), "held-out")
    specs = psc.swap_specs(photos)
    mates = mate_of(photos)
    attr = setup.nets.attribute
    faces, bad = psc.prepare_faces(photos, setup.aligner, attr.part_points, None, progress)
    V = setup.nets.verification
    stats, out = SwapStats(rule=rule), []
    for k in np.random.default_rng([seed, 74]).permutation(len(specs)):
        if len(out) >= n:
            break
        spec = specs[int(k)]
        stats.drawn += 1
        m = mates.get(spec.a)
        pairs, failures = psc.make_swap_pairs([spec], photos, faces, bad)
        if m is None or m not in faces or failures:
            stats.failed += 1
            continue
        pair = pairs[0]
        a, swapped, mate = pair.counter.image, pair.probe.image, faces[m].canvas.image
        s_mate, s_swap = B.similarities(V, [a], [mate, swapped])[0]
        stats.mate_rejected += int(s_mate < threshold)
        stats.swap_accepted += int(s_swap >= threshold)
        if keep_swap(s_mate, s_swap, threshold, rule):
            out.append(
                B.Triplet(
                    a,
                    mate,
                    swapped,
                    pair.region,
                    pair.changed,
                    f"{pair.photo_a.path}|{spec.part}<-{pair.photo_b.path}",
                    leave_out=(pair.photo_a.path, pair.photo_b.path),
                )
            )
    stats.kept = len(out)
    return out, stats
