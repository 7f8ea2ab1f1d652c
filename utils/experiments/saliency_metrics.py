"""Scoring saliency maps: inpainting-game hit curves, decision flips, deletion / insertion.

All functions take NumPy saliency maps ``(H, W)`` (any real values; only the
ranking of the pixels matters) and work on the pixel grid of the map.

* **Inpainting game** (Williford et al., ECCV 2020, Sec. 4; METHOD.md section 7):
  :func:`hit_curve` is the share of a map's top-ranked ``k`` pixels that fall
  inside the true region, for ``k`` = a fraction of all pixels. Tied values
  are split *in expectation*: when the ``k``-th value is shared by ``t``
  pixels of which ``r`` are in the region and ``m`` of them are needed to
  reach ``k``, they contribute ``m * r / t`` hits. So a constant map scores
  exactly the region's area share (chance) at every ``k``, never more by luck
  of the sort order. :func:`curve_area` is the normalised area (mean height).
* **Decision flip**: :func:`replace_top` builds images in which the ``k`` most
  salient pixels of one image are taken from another;
  :func:`first_crossing` finds the first fraction at which a score crosses a
  threshold (a verification decision flips).
* **Deletion / insertion** (Petsiuk et al., RISE, BMVC 2018, Sec. 4.1):
  :func:`trapezoid_auc` of a score over the fraction of pixels removed /
  inserted in saliency order.
* Verification thresholds: :func:`eer_threshold` and
  :func:`kfold_accuracy` (threshold chosen on the training folds, scored on the
  held-out fold; arcface_torch ``eval/verification.py`` protocol, vectorised).

Example:
    >>> sal = np.array([[3.0, 2.0], [1.0, 0.0]]); region = np.array([[True, False], [False, False]])
    >>> hit_curve(sal, region, np.array([0.25, 0.5]))
    array([1. , 0.5])
"""

from __future__ import annotations

import numpy as np

HIT_FRACTIONS = np.round(np.arange(1, 51) / 100.0, 2)  # top 1 % .. 50 % of the pixels


def _check_map(saliency: np.ndarray, name: str = "saliency") -> np.ndarray:
    s = np.asarray(saliency, dtype=np.float64)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"{name} must be a non-empty (H, W) array, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(
            f"{name} has {int((~np.isfinite(s)).sum())} non-finite values; "
            "fix the explanation method"
        )
    return s


def _check_fractions(fractions: np.ndarray, low_open: bool) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64).ravel()
    lo_ok = np.all(f > 0) if low_open else np.all(f >= 0)
    if f.size == 0 or not lo_ok or np.any(f > 1) or np.any(np.diff(f) < 0):
        bound = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(
            f"fractions must be non-empty, non-decreasing and in {bound}, got {f[:5]}..."
        )
    return f


def pixel_counts(n_pixels: int, fractions: np.ndarray, at_least_one: bool = True) -> np.ndarray:
    """Number of pixels ``round(f * n)`` for each fraction. -> (K,) int.

    At least 1 if ``at_least_one``.
    """
    k = np.rint(np.asarray(fractions, dtype=np.float64) * n_pixels).astype(np.int64)
    return np.clip(k, 1 if at_least_one else 0, n_pixels)


def hit_curve(
    saliency: np.ndarray, region: np.ndarray, fractions: np.ndarray = HIT_FRACTIONS
) -> np.ndarray:
    """Share of the top-ranked pixels inside ``region`` (ties split in expectation).

    Args:
        saliency: (H, W) map; larger = more salient.
        region: (H, W) bool true region (same shape).
        fractions: (K,) non-decreasing fractions in (0, 1]; ``k = round(f * H * W)`` (>= 1).

    Returns:
        (K,) float64 in [0, 1].
    """
    s = _check_map(saliency)
    r = np.asarray(region)
    if r.shape != s.shape:
        raise ValueError(
            f"region shape {r.shape} differs from the map's {s.shape}; resize one to the other"
        )
    f = _check_fractions(fractions, low_open=True)
    # groups of equal value, most salient first
    values, inverse = np.unique(-s.ravel(), return_inverse=True)
    size = np.bincount(inverse, minlength=len(values)).astype(np.float64)
    inside = np.bincount(inverse, weights=r.ravel().astype(np.float64), minlength=len(values))
    cum_size, cum_inside = np.cumsum(size), np.cumsum(inside)
    k = pixel_counts(s.size, f).astype(np.float64)
    g = np.searchsorted(cum_size, k, side="left")  # group holding the k-th pixel
    before = np.where(g > 0, cum_size[g - 1], 0.0)
    hits_before = np.where(g > 0, cum_inside[g - 1], 0.0)
    hits = hits_before + (k - before) * inside[g] / size[g]
    return np.clip(hits / k, 0.0, 1.0)


def curve_area(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoid area under ``y(x)`` divided by the x-range (the curve's mean height)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.size < 2 or x[-1] <= x[0]:
        raise ValueError(
            f"curve_area needs >= 2 points with increasing x, got x {x.shape} y {y.shape}"
        )
    return float(trapezoid_auc(x, y) / (x[-1] - x[0]))


def trapezoid_auc(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoid rule: sum_i (x[i+1] - x[i]) * (y[i] + y[i+1]) / 2."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(
            f"trapezoid_auc needs two 1-D arrays of equal length >= 2, got {x.shape} and {y.shape}"
        )
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def pixel_order(saliency: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Flat pixel indices, most salient first; ties broken by ``rng`` (uniformly) or by index.

    Returns:
        (H * W,) int64 permutation.
    """
    s = _check_map(saliency).ravel()
    tie = rng.random(s.size) if rng is not None else np.arange(s.size)
    return np.lexsort((tie, -s)).astype(np.int64)


def replace_top(
    base: np.ndarray, source: np.ndarray, order: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """``base`` with the first ``counts[k]`` pixels of ``order`` taken from ``source``, for each k.

    Deletion: ``replace_top(image, fill, ...)``; insertion: ``replace_top(fill, image, ...)``;
    decision flip: ``replace_top(probe, non_mate, ...)``.

    Args:
        base, source: (H, W, C) arrays of the same shape and dtype.
        order: (H * W,) flat pixel order (:func:`pixel_order`).
        counts: (K,) ints in [0, H * W].

    Returns:
        (K, H, W, C) array of ``base``'s dtype.
    """
    if base.shape != source.shape or base.ndim != 3:
        raise ValueError(
            f"base {base.shape} and source {source.shape} must be equal (H, W, C) shapes"
        )
    h, w = base.shape[:2]
    if order.shape != (h * w,):
        raise ValueError(f"order has shape {order.shape}; expected ({h * w},) for a {h}x{w} image")
    counts = np.asarray(counts, dtype=np.int64)
    if np.any(counts < 0) or np.any(counts > h * w):
        raise ValueError(
            f"counts must be in [0, {h * w}], got min {counts.min()} max {counts.max()}"
        )
    rank = np.empty(h * w, dtype=np.int64)
    rank[order] = np.arange(h * w)
    take = (rank[None, :] < counts[:, None]).reshape(len(counts), h, w, 1)
    return np.where(take, source[None], base[None]).astype(base.dtype)


def first_crossing(
    fractions: np.ndarray, scores: np.ndarray, threshold: float, above: bool = True
) -> float | None:
    """First fraction at which ``scores >= threshold`` (``above``) or ``scores < threshold``.

    ``None`` if never.
    """
    f, y = np.asarray(fractions, np.float64), np.asarray(scores, np.float64)
    if f.shape != y.shape:
        raise ValueError(f"fractions {f.shape} and scores {y.shape} differ in shape")
    hit = y >= threshold if above else y < threshold
    idx = np.flatnonzero(hit)
    return float(f[idx[0]]) if idx.size else None


def eer_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Threshold at the equal error rate: accept when ``score >= threshold``.

    Candidate thresholds are the observed scores; the chosen one minimises
    |FAR - FRR| (ties: the smaller max(FAR, FRR)).

    Args:
        labels: (N,) 1 = genuine, 0 = impostor (both present).
        scores: (N,) similarities.

    Returns:
        (threshold, EER = (FAR + FRR) / 2 at that threshold).
    """
    y, s = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    if y.shape != s.shape or y.all() or (~y).all():
        raise ValueError(
            "eer_threshold needs equal-length labels/scores with both genuine (1) "
            "and impostor (0) pairs"
        )
    t = np.unique(s)
    far = (s[~y][None, :] >= t[:, None]).mean(axis=1)
    frr = (s[y][None, :] < t[:, None]).mean(axis=1)
    best = np.lexsort((np.maximum(far, frr), np.abs(far - frr)))[0]
    return float(t[best]), float((far[best] + frr[best]) / 2)


def kfold_accuracy(
    labels: np.ndarray, scores: np.ndarray, folds: int = 10, seed: int = 0
) -> tuple[float, float]:
    """Verification accuracy with the threshold chosen on the other folds (mean, std over folds).

    Candidate thresholds are the midpoints between the training folds' sorted scores (plus one
    below and one above all); among equally accurate ones the middle one is taken.

    Args:
        labels: (N,) 1 genuine / 0 impostor.
        scores: (N,) similarities (accept when >= threshold).
        folds: number of folds (<= N).
        seed: seed of the fold assignment (a random permutation).
    """
    y, s = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    if y.shape != s.shape or not 2 <= folds <= len(y):
        raise ValueError(
            f"need equal-length labels/scores and 2 <= folds <= N; got N={len(y)}, folds={folds}"
        )
    fold_of = np.random.default_rng(seed).permutation(len(y)) % folds
    accs = []
    for k in range(folds):
        train = fold_of != k
        u = np.unique(s[train])
        # midpoints of training scores
        t = np.concatenate([[u[0] - 1.0], (u[1:] + u[:-1]) / 2, [u[-1] + 1.0]])
        acc = ((s[train][None, :] >= t[:, None]) == y[train][None, :]).mean(axis=1)
        best = np.flatnonzero(acc == acc.max())
        thr = t[best[len(best) // 2]]  # the middle of the best range, not its edge
        accs.append(((s[~train] >= thr) == y[~train]).mean())
    return float(np.mean(accs)), float(np.std(accs))
