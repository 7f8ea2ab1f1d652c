"""The one pair sampler: distinct genuine and impostor pairs drawn from groups of items.

Used by the pair lists of real datasets (:func:`utils.faces.pairlists.generate_pairs`) and by the
face world's pair datasets (:func:`utils.face_world.dataset.sample_pairs`). Items are anything
hashable and ordered (paths, ``(identity, image)`` tuples); a pair is stored as ``(a, b)`` with
``a < b``, so ``(a, b)`` and ``(b, a)`` are the same pair and never drawn twice.

Sparse requests (fewer than half of what exists) are drawn by rejection: an identity chosen with
probability proportional to its number of pairs, then two of its images (genuine), or two random
images of different identities (impostor); dense requests enumerate every pair and choose without
replacement. Either way every distinct pair is equally likely.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from math import comb
from typing import Any

import numpy as np

Pair = tuple[Any, Any]


def pair_counts(groups: Sequence[Sequence[Hashable]]) -> tuple[int, int]:
    """``(genuine, impostor)``: how many distinct unordered pairs exist.

    genuine = sum_i C(n_i, 2); impostor = C(N, 2) - genuine with N = sum_i n_i.
    """
    sizes = [len(g) for g in groups]
    genuine = sum(comb(n, 2) for n in sizes)
    return genuine, comb(sum(sizes), 2) - genuine


def draw_pairs(
    groups: Sequence[Sequence[Any]], num_genuine: int, num_impostor: int, rng: np.random.Generator
) -> tuple[list[Pair], list[Pair]]:
    """Draw distinct genuine pairs (same group) and impostor pairs (different groups).

    Args:
        groups: items per identity (each group without duplicates, no item in two groups).
        num_genuine, num_impostor: how many of each (at most :func:`pair_counts`; checked by
        callers,
            who name the flags in their messages).
        rng: the only source of randomness (genuine pairs are drawn first, then impostors).

    Returns:
        ``(genuine, impostor)`` lists of ``(a, b)`` with ``a < b``.
    """
    max_gen, max_imp = pair_counts(groups)
    genuine = (
        _genuine([g for g in groups if len(g) > 1], num_genuine, max_gen, rng)
        if num_genuine
        else []
    )
    impostor = _impostor(groups, num_impostor, max_imp, rng) if num_impostor else []
    return genuine, impostor


def _canonical(a: Any, b: Any) -> Pair:
    return (a, b) if a < b else (b, a)


def _genuine(
    groups: Sequence[Sequence[Any]], n: int, total: int, rng: np.random.Generator
) -> list[Pair]:
    if 2 * n >= total:  # dense: enumerate all, then choose
        everything = [
            (g[i], g[j]) for g in groups for i in range(len(g)) for j in range(i + 1, len(g))
        ]
        return [
            _canonical(*everything[k]) for k in rng.choice(len(everything), size=n, replace=False)
        ]
    sizes = np.array([len(g) for g in groups])
    weights = sizes * (sizes - 1) / 2.0
    chosen: dict[Pair, None] = {}
    while len(chosen) < n:
        m = 2 * (n - len(chosen)) + 16
        gid = rng.choice(
            len(groups), size=m, p=weights / weights.sum()
        )  # identity by its pair count
        i = (rng.random(m) * sizes[gid]).astype(int)
        j = (rng.random(m) * (sizes[gid] - 1)).astype(int)
        j += j >= i  # a second, different image
        for g, a, b in zip(gid, i, j, strict=True):
            chosen.setdefault(_canonical(groups[g][a], groups[g][b]))
            if len(chosen) == n:
                break
    return list(chosen)


def _impostor(
    groups: Sequence[Sequence[Any]], n: int, total: int, rng: np.random.Generator
) -> list[Pair]:
    images = [p for g in groups for p in g]
    owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    if 2 * n >= total:  # dense
        pairs = [
            (a, b)
            for a in range(len(images))
            for b in range(a + 1, len(images))
            if owner[a] != owner[b]
        ]
        return [
            _canonical(images[pairs[k][0]], images[pairs[k][1]])
            for k in rng.choice(len(pairs), size=n, replace=False)
        ]
    chosen: dict[Pair, None] = {}
    while len(chosen) < n:
        m = 2 * (n - len(chosen)) + 16
        a, b = rng.integers(0, len(images), size=m), rng.integers(0, len(images), size=m)
        for x, y in zip(a, b, strict=True):
            if owner[x] != owner[y]:
                chosen.setdefault(_canonical(images[x], images[y]))
                if len(chosen) == n:
                    break
    return list(chosen)
