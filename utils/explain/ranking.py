"""Ranking the attribute words of an explained pair (METHOD.md section 3 step 8, and more modes).

:func:`rank_pair` turns a :class:`~utils.explain.sim2word.PairExplanation`
(its masks, attribute predictions and similarities) into ranked words, one
list per image and one for the pair, under one of these modes:

* ``"paper"`` (default): the authors' ranking. Image i's present attributes
  by cos(V(E_ij), V(I_other)) descending, E_ij = image i erased in attribute
  j's region (J[j] > theta of image i); ties in index order. The pair list:
  attributes present in either image by the both-masked similarity
  cos(V(E1j), V(E2j)) (each image erased in its own region).
* ``"both-shared"``: one region per attribute, R_j = the union of the two
  images' regions (on the common canvas grid), erased in BOTH images; words
  ranked by cos(V(E1j), V(E2j)) descending. A patch that only one image
  carries lowers the similarity whatever it covers; the same patch in both
  images does not, so the score rises only when the region covers what
  differs. Near ties go to the smaller region (``tie_break``).
* ``"contrast"``: a word must differ between the two faces according to the
  attribute net A AND matter to V. It differs when A's predicted class of
  the word changes from the image to the other, or the probability of the
  image's class drops by at least ``contrast_drop``; it matters when erasing
  its shared region raises the similarity (``change > 0`` in both-shared).
  Words that differ and matter come first, ordered by
  ``drop x change`` (the attribute contrast times the similarity gain;
  ``contrast_order="gain"``: by the gain alone, i.e. V's evidence alone
  decides among the words that differ), then words that only differ, then
  the rest, each group by the both-shared order.

**Ties are not explanations.** A word whose erasure leaves the score
unchanged (empty region, an erased image identical to the original, or a
score exactly equal to the original similarity) is marked ``tie =
"unchanged"`` and gets no rank (``rank = None``); in every mode but
``"paper"`` it is listed after the ranked words. Words whose region is
identical to another candidate's region have identical scores by
construction; they are marked ``tie = "same-region"`` and share a rank
(unless the contrast mode's attribute evidence tells them apart). The
``"paper"`` list keeps the authors' order exactly (so records and figures
of the default run do not change); only the flags and ranks are added.

The discriminant used for the masks (R's class sets or V's own map,
:mod:`utils.explain.similarity_cam`) is chosen in
:class:`~utils.explain.sim2word.Sim2WordConfig` and recorded here.

Example:
    >>> ex = explain_pair(img1, img2, nets, Sim2WordConfig())
    >>> r = rank_pair(ex, (img1, img2), nets.verification, RankingConfig("both-shared"))
    >>> [w.word for w in r.image1[:3]], r.image1[0].tie
    (['Big Nose', 'Bangs', 'Male'], None)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from models.attributes import Vocabulary, get_vocabulary
from utils.explain.erasing import FILLS, erase, noise_image, resize_mask

if TYPE_CHECKING:
    from torch import nn

# This module imports no torch at load time (the results scripts read records with it); the V
# forwards import utils.explain.verification when they run.

RANKINGS = ("paper", "both-shared", "contrast")
CONTRAST_ORDERS = ("product", "gain")
#: Fills of the ranking's own erasing (both-shared, contrast): the paper's four plus two that keep
#: the face plausible: "blur" (a Gaussian blur of the image, sigma = size / 16) and "inpaint"
#: (OpenCV's Telea inpainting from the region's border).
RANKING_FILLS = (*FILLS, "blur", "inpaint")
TIE_BREAKS = ("index", "smaller-region")
UNCHANGED, SAME_REGION = "unchanged", "same-region"
#: How a tie is explained to a reader (figure captions and printed output).
TIE_MEANING = {
    UNCHANGED: "erasure leaves the score unchanged",
    SAME_REGION: "same erased region as another word",
}


def verification_score(s: Any) -> np.ndarray:
    """``1 - arccos(clip(s, -1, 1)) / pi`` elementwise: cosine in [-1, 1] -> score in [0, 1]."""
    return 1.0 - np.arccos(np.clip(np.asarray(s, dtype=np.float64), -1.0, 1.0)) / np.pi


@dataclass(frozen=True)
class RankingConfig:
    """How to rank the words.

    Attributes:
        mode: one of :data:`RANKINGS`.
        fill: fill of the shared-region erasing (both-shared, contrast), one of
            :data:`RANKING_FILLS`; ``None`` = the run's ``--Erasing-method``. The paper
            mode reuses the explanation's own erased images and ignores it.
        tie_break: "smaller-region" (both-shared, contrast): scores within
            ``tie_tolerance`` of each other are ordered by region area, smaller first;
            "index": by attribute index only.
        tie_tolerance: scores in one bucket of this width count as equal for the tie-break
            (1e-4: chosen on the tuning twin set; with true regions it keeps exact ties, as
            when the shared erasure makes both images identical, and separates the rest).
        contrast_drop: contrast mode: the least drop of the word's class probability
            from its image to the other that counts as a difference (a change of the
            predicted class always counts).
        contrast_order: contrast mode, order of the words that differ and matter:
            "product" (A's drop x V's gain) or "gain" (V's gain alone).
        region_thresh: both-shared and contrast: each image's region of attribute j is
            J[j] > ``region_thresh`` (``None``: the run's ``--thresh``); the paper mode
            always uses the run's masks.
        batch_size: images per V forward.
        amp: bf16 autocast of the V forwards.
    """

    mode: str = "paper"
    fill: str | None = None
    tie_break: str = "smaller-region"
    tie_tolerance: float = 1e-4
    contrast_drop: float = 0.5
    contrast_order: str = "product"
    region_thresh: float | None = None
    batch_size: int = 32
    amp: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.mode in RANKINGS, f"ranking mode {self.mode!r} not in {RANKINGS}"),
            (
                self.fill is None or self.fill in RANKING_FILLS,
                f"fill {self.fill!r} not in {RANKING_FILLS}",
            ),
            (self.tie_break in TIE_BREAKS, f"tie_break {self.tie_break!r} not in {TIE_BREAKS}"),
            (
                self.contrast_order in CONTRAST_ORDERS,
                f"contrast_order {self.contrast_order!r} not in {CONTRAST_ORDERS}",
            ),
            (
                0.0 <= float(self.tie_tolerance) < 1.0,
                f"tie_tolerance must be in [0, 1), got {self.tie_tolerance}",
            ),
            (
                0.0 <= float(self.contrast_drop) <= 1.0,
                f"contrast_drop must be in [0, 1], got {self.contrast_drop}",
            ),
            (
                self.region_thresh is None or np.isfinite(self.region_thresh),
                f"region_thresh must be a finite number or None, got {self.region_thresh}",
            ),
            (int(self.batch_size) >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


@dataclass(frozen=True)
class WordRank:
    """One ranked word.

    Attributes:
        attribute: head index j.
        word: the word (multi-class heads worded by class; ``"w1 / w2"`` in a pair list when
            the two images word the head differently).
        similarity: the cosine the mode ranks by (after erasing).
        change: ``similarity`` minus the pair's original similarity.
        area: share of the canvas erased (R-input pixels; the mean over both images when
            each is erased in its own region).
        tie: ``None``, ``"unchanged"`` or ``"same-region"`` (see the module docstring).
        rank: 1-based rank among the words that are not ``"unchanged"`` (``None`` for those);
            same-region words share a rank.
        contrast: contrast mode only: the attribute net's probability drop of the word's
            class (1.0 when the predicted class changes), else ``None``.
    """

    attribute: int
    word: str
    similarity: float
    change: float
    area: float
    tie: str | None = None
    rank: int | None = None
    contrast: float | None = None

    @property
    def score(self) -> float:
        """``similarity`` on the [0, 1] scale 1 - arccos(s)/pi (the paper's display score)."""
        return float(verification_score(self.similarity))

    @property
    def original(self) -> float:
        """The pair's original cosine s (``similarity - change``; NaN when ``change`` is)."""
        return float(self.similarity - self.change)

    @property
    def score_change(self) -> float:
        """Score change on the [0, 1] scale: ``score(similarity) - score(original)``."""
        return float(self.score - verification_score(self.original))

    @property
    def ranked(self) -> bool:
        """Whether the word is an explanation (not an ``"unchanged"`` tie)."""
        return self.tie != UNCHANGED

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the record's ``words-image<i>`` / ``words-pair`` entries).

        ``change`` and ``area`` are ``None`` where unknown (ranked from a record's values alone).
        """
        out = {
            "index": self.attribute,
            "word": self.word,
            "similarity": float(self.similarity),
            "score": self.score,
            "change": _finite_or_none(self.change),
            "area": _finite_or_none(self.area),
            "tie": self.tie,
            "rank": self.rank,
        }
        if self.contrast is not None:
            out["contrast"] = float(self.contrast)
        return out


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


@dataclass
class WordRanking:
    """The ranked words of one pair.

    Attributes:
        mode, discriminant, fill, tie_break: how they were ranked.
        similarity: cos(V(I1), V(I2)).
        image1, image2: each image's present attributes, best first.
        pair: attributes present in either image, best first.
        keys: per list (``"image1"``, ``"image2"``, ``"pair"``), ``{j: sort key}``; equal keys are
            ties (used by the twin check to give tied words the chance share, never a free hit).
    """

    mode: str
    discriminant: str
    fill: str
    tie_break: str
    similarity: float
    image1: list[WordRank]
    image2: list[WordRank]
    pair: list[WordRank]
    keys: dict[str, dict[int, tuple]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the generic ranker
def rank_candidates(
    candidates: Sequence[int],
    values: Mapping[int, float],
    original: float,
    *,
    words: Mapping[int, str],
    areas: Mapping[int, float],
    regions: Mapping[int, Any],
    unchanged: Sequence[int] = (),
    keep_order: bool = False,
    key: Callable[[int], tuple] | None = None,
    contrast: Mapping[int, float] | None = None,
) -> tuple[list[WordRank], dict[int, tuple]]:
    """Order candidate words, flag ties and give ranks.

    Args:
        candidates: head indices that may be words.
        values: the similarity each candidate is ranked by.
        original: the pair's original similarity.
        words: the word of each candidate.
        areas: erased share of each candidate.
        regions: a hashable region id per candidate (equal ids = identical regions).
        unchanged: candidates whose erasure changed nothing (also any value == ``original``).
        keep_order: the paper's list: every candidate by (-value, index), unchanged ones in
            place; otherwise the unchanged ones are listed last, by index.
        key: sort key of a ranked candidate, smaller first (default ``(-value,)``);
            ties in key are listed by index.
        contrast: per candidate, the value of :attr:`WordRank.contrast`.

    Returns:
        ``(words, keys)``: the :class:`WordRank` list and each candidate's sort key
        (unchanged candidates get ``(inf,)`` unless ``keep_order``).
    """
    key = key or (lambda j: (-values[j],))
    dead = {j for j in candidates if j in set(unchanged) or values[j] == original}
    live = [j for j in candidates if j not in dead]
    keys = {j: key(j) for j in live}
    if keep_order:
        keys.update({j: (-values[j],) for j in dead})
        order = sorted(candidates, key=lambda j: (keys[j], j))
    else:
        keys.update({j: (float("inf"),) for j in dead})
        order = sorted(live, key=lambda j: (keys[j], j)) + sorted(dead)
    shared = {}
    for j in live:
        shared.setdefault(regions[j], []).append(j)
    out = []
    for j in order:
        if j in dead:
            tie, rank = UNCHANGED, None
        else:
            tie = SAME_REGION if len(shared[regions[j]]) > 1 else None
            rank = 1 + sum(keys[k] < keys[j] for k in live)
        out.append(
            WordRank(
                j,
                words[j],
                float(values[j]),
                float(values[j] - original),
                float(areas[j]),
                tie,
                rank,
                None if contrast is None else float(contrast[j]),
            )
        )
    return out, keys


def smaller_region_key(
    values: Mapping[int, float], areas: Mapping[int, float], tolerance: float
) -> Callable[[int], tuple]:
    """Sort key: score descending; scores in one ``tolerance`` bucket go to the smaller region.

    Scores are bucketed by ``floor(score / tolerance)`` (``tolerance`` 0: exact scores), so a tie
    is "in the same bucket"; inside it the smaller area wins, then the higher exact score.
    """

    def key(j: int) -> tuple:
        bucket = -np.floor(values[j] / tolerance) if tolerance > 0 else -values[j]
        return (float(bucket), float(areas[j]), -float(values[j]))

    return key


# ----------------------------------------------------------------------------- regions and erasing
def region_id(mask: np.ndarray) -> bytes:
    """A hashable id of a bool mask (equal masks, equal ids)."""
    mask = np.asarray(mask, dtype=bool)
    return hashlib.blake2b(
        np.packbits(mask).tobytes() + repr(mask.shape).encode(), digest_size=16
    ).digest()


def shared_regions(ex, thresh: float | None = None) -> np.ndarray:
    """(K, H, W) bool: per attribute, the union of the two images' regions (R's input grid).

    Args:
        ex: the explained pair.
        thresh: region = J > ``thresh`` in each image; ``None``: the explanation's own masks
            (J > the run's theta).
    """
    d1, d2 = ex.directions
    if thresh is None:
        return np.asarray(d1.masks, dtype=bool) | np.asarray(d2.masks, dtype=bool)
    return (np.asarray(d1.J) > float(thresh)) | (np.asarray(d2.J) > float(thresh))


def fill_region(
    image: np.ndarray, mask: np.ndarray, fill: str, noise: np.ndarray | None = None
) -> np.ndarray:
    """``image`` with the ``mask`` pixels filled by ``fill`` (:data:`RANKING_FILLS`), (H, W, 3)."""
    if fill in FILLS:
        return erase(image, mask, fill, noise)
    if fill not in RANKING_FILLS:
        raise ValueError(f"unknown fill {fill!r}; valid: {', '.join(RANKING_FILLS)}")
    out = image.copy()
    if not mask.any():
        return out
    if fill == "blur":
        sigma = max(image.shape[:2]) / 16.0
        out[mask] = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)[mask]
        return out
    radius = max(1, round(max(image.shape[:2]) / 32))
    return cv2.inpaint(image, mask.astype(np.uint8), radius, cv2.INPAINT_TELEA)


def shared_similarities(
    raws: tuple[np.ndarray, np.ndarray],
    regions: np.ndarray,
    V: nn.Module,
    embeddings: np.ndarray,
    fill: str,
    *,
    seed: int = 0,
    pair_index: int = 0,
    batch_size: int = 32,
    amp: bool = False,
) -> np.ndarray:
    """cos(V(E1j), V(E2j)) with both images erased in the same region R_j.

    Args:
        raws: the two raw canvases (H_i, W_i, 3) uint8 BGR.
        regions: (K, h, w) bool regions on R's input grid (resized nearest to each raw size).
        V: the verification net.
        embeddings: (2, D) V embeddings of the originals (an empty region reuses them).
        fill: one of :data:`RANKING_FILLS`; "random" uses one noise image per pair
            (seed, pair_index) so that both images get the same noise.
        seed, pair_index: seed of the random fill.
        batch_size, amp: V forwards.

    Returns:
        (K,) float64 cosines; identical regions are verified once, empty ones not at all.
    """
    import torch

    from utils.explain.verification import cosine, embed_images

    unique: dict[bytes, int] = {}
    todo: list[int] = []
    index = np.full(len(regions), -1)
    for j, region in enumerate(regions):
        if not region.any():
            continue
        rid = region_id(region)
        if rid not in unique:
            unique[rid] = len(todo)
            todo.append(j)
        index[j] = unique[rid]
    original = float(
        cosine(*(torch.as_tensor(np.asarray(e, dtype=np.float32)) for e in embeddings))
    )
    out = np.full(len(regions), original, dtype=np.float64)
    if not todo:
        return out
    noises = [noise_image(r.shape, seed, pair_index, 0) if fill == "random" else None for r in raws]
    if fill == "random" and raws[0].shape == raws[1].shape:
        noises[1] = noises[0]

    def images():
        for j in todo:
            for raw, noise in zip(raws, noises, strict=True):
                yield fill_region(raw, resize_mask(regions[j], raw.shape[:2]), fill, noise)

    emb = embed_images(V, images(), batch_size, amp).view(len(todo), 2, -1)
    sims = cosine(emb[:, 0], emb[:, 1]).double().numpy()
    out[index >= 0] = sims[index[index >= 0]]
    return out


# ------------------------------------------------------------------------ the attribute contrast
def attribute_contrast(
    probs_own: Sequence[np.ndarray], probs_other: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """How much each attribute differs between the two images, according to A.

    Args:
        probs_own: per head, the (n_j,) softmax of the image whose words are ranked.
        probs_other: the same for the other image.

    Returns:
        ``(drop, changed)``: (K,) ``p_own[c] - p_other[c]`` with c the own predicted class, and
        (K,) bool, the other image's predicted class differs from c.
    """
    own_cls = [int(np.argmax(p)) for p in probs_own]
    drop = np.array(
        [float(p[c] - q[c]) for p, q, c in zip(probs_own, probs_other, own_cls, strict=True)]
    )
    changed = np.array([int(np.argmax(q)) != c for q, c in zip(probs_other, own_cls, strict=True)])
    return drop, changed


# ----------------------------------------------------------------------------- one pair
def _present(vocab: Vocabulary, classes: np.ndarray) -> list[int]:
    return [j for j in range(len(classes)) if vocab.is_present(j, int(classes[j]))]


def _pair_word(vocab: Vocabulary, j: int, c1: np.ndarray, c2: np.ndarray) -> str:
    words = [vocab.word_for(j, int(c[j])) for c in (c1, c2) if vocab.is_present(j, int(c[j]))]
    return " / ".join(dict.fromkeys(words))


def rank_pair(
    ex,
    raws: tuple[np.ndarray, np.ndarray],
    V: nn.Module | None,
    config: RankingConfig | None = None,
    *,
    vocabulary: Vocabulary | None = None,
    discriminant: str = "classes",
    erasing_method: str = "black",
    seed: int = 0,
    pair_index: int = 0,
    regions: np.ndarray | None = None,
    cache: dict | None = None,
) -> WordRanking:
    """Rank the words of an explained pair (see the module docstring).

    Args:
        ex: a :class:`~utils.explain.sim2word.PairExplanation` with similarities.
        raws: the two raw canvases the explanation was computed on.
        V: the verification net (needed by both-shared and contrast; ``None`` for paper).
        config: the mode and its options (default: paper).
        vocabulary: the attribute net's vocabulary (default: ``ex.vocabulary``, else celeba30).
        discriminant: recorded as given (the masks were computed with it).
        erasing_method: the run's fill (default of ``config.fill``).
        seed, pair_index: seed of the random fill.
        cache: a dict kept by the caller for one pair: shared similarities already computed
            for the same regions and fill are reused (several modes on one pair).
        regions: (K, H, W) bool shared regions to use instead of the masks' unions (the twin
            check's oracle); both-shared and contrast only.

    Returns:
        The :class:`WordRanking`.
    """
    config = config or RankingConfig()
    vocab = vocabulary or getattr(ex, "vocabulary", None) or get_vocabulary(None)
    if ex.similarity is None:
        raise ValueError(
            "ranking needs the similarities: explain the pair with calculate_similarity=True"
        )
    d1, d2 = ex.directions
    c1, c2 = d1.attr_class, d2.attr_class
    s = float(ex.similarity)
    present = (_present(vocab, c1), _present(vocab, c2))
    either = sorted(set(present[0]) | set(present[1]))
    words = (
        {j: vocab.word_for(j, int(c1[j])) for j in present[0]},
        {j: vocab.word_for(j, int(c2[j])) for j in present[1]},
        {j: _pair_word(vocab, j, c1, c2) for j in either},
    )
    fill = erasing_method if config.mode == "paper" else (config.fill or erasing_method)
    lists, keys = {}, {}
    if config.mode == "paper":
        for name, d, cands in (("image1", d1, present[0]), ("image2", d2, present[1])):
            empty = [j for j in cands if not d.mask_raw(j).any()]
            lists[name], keys[name] = rank_candidates(
                cands,
                {j: float(d.sim_other[j]) for j in cands},
                s,
                words=words[int(name[-1]) - 1],
                areas={j: float(d.masks[j].mean()) for j in cands},
                regions={j: region_id(d.masks[j]) for j in cands},
                unchanged=empty,
                keep_order=True,
            )
        both_empty = [j for j in either if not d1.mask_raw(j).any() and not d2.mask_raw(j).any()]
        lists["pair"], keys["pair"] = rank_candidates(
            either,
            {j: float(ex.both_masked[j]) for j in either},
            s,
            words=words[2],
            areas={j: float((d1.masks[j].mean() + d2.masks[j].mean()) / 2) for j in either},
            regions={j: (region_id(d1.masks[j]), region_id(d2.masks[j])) for j in either},
            unchanged=both_empty,
            keep_order=True,
        )
    else:
        if V is None:
            raise ValueError(f"ranking mode {config.mode!r} needs the verification net")
        shared = (
            shared_regions(ex, config.region_thresh)
            if regions is None
            else np.asarray(regions, dtype=bool)
        )
        key = (fill, region_id(shared))
        values = None if cache is None else cache.get(key)
        if values is None:
            values = shared_similarities(
                raws,
                shared,
                V,
                ex.embeddings,
                fill,
                seed=seed,
                pair_index=pair_index,
                batch_size=config.batch_size,
                amp=config.amp,
            )
            if cache is not None:
                cache[key] = values
        values_d = {j: float(values[j]) for j in range(len(values))}
        areas = {j: float(shared[j].mean()) for j in range(len(shared))}
        rid = {j: region_id(shared[j]) for j in range(len(shared))}
        empty = [j for j in range(len(shared)) if not shared[j].any()]
        base_key = (
            smaller_region_key(values_d, areas, config.tie_tolerance)
            if config.tie_break == "smaller-region"
            else (lambda j: (-values_d[j],))
        )
        contrasts = _contrasts(ex, config.contrast_drop) if config.mode == "contrast" else None
        for name, cands, k in (
            ("image1", present[0], 0),
            ("image2", present[1], 1),
            ("pair", either, 2),
        ):
            key, shown = base_key, None
            if contrasts is not None:
                strength, differs = contrasts[k]
                key = _contrast_key(strength, differs, values_d, s, base_key, config.contrast_order)
                shown = strength
            lists[name], keys[name] = rank_candidates(
                cands,
                values_d,
                s,
                words=words[k],
                areas=areas,
                regions=rid,
                unchanged=empty,
                key=key,
                contrast=shown,
            )
    return WordRanking(
        config.mode,
        discriminant,
        fill,
        config.tie_break,
        s,
        lists["image1"],
        lists["image2"],
        lists["pair"],
        keys,
    )


def _contrasts(ex, min_drop: float) -> list[tuple[dict[int, float], dict[int, bool]]]:
    """Per list (image 1, image 2, pair): each head's contrast strength in [0, 1], and if it differs

    Image i: strength = the drop of its own class's probability towards the other image;
    it differs when the predicted class changes or the drop is >= ``min_drop``. Pair: the
    larger strength of the two images, differing when either does.
    """
    d1, d2 = ex.directions
    if d1.attr_probs is None or d2.attr_probs is None:
        raise ValueError(
            "the contrast ranking needs the attribute probabilities "
            "(DirectionExplanation.attr_probs)"
        )
    out = []
    for own, other in ((d1, d2), (d2, d1)):
        drop, changed = attribute_contrast(own.attr_probs, other.attr_probs)
        out.append(
            (
                {j: float(max(drop[j], 0.0)) for j in range(len(drop))},
                {j: bool(changed[j] or drop[j] >= min_drop) for j in range(len(drop))},
            )
        )
    (s1, f1), (s2, f2) = out
    out.append(({j: max(s1[j], s2[j]) for j in s1}, {j: f1[j] or f2[j] for j in f1}))
    return out


def _contrast_key(
    strength: Mapping[int, float],
    differs: Mapping[int, bool],
    values: Mapping[int, float],
    original: float,
    base_key: Callable[[int], tuple],
    order: str = "product",
) -> Callable[[int], tuple]:
    """Contrast sort key (group, -strength x gain, base key); groups: differs and matters, differs,
    the rest."""

    def key(j: int) -> tuple:
        gain = values[j] - original
        group = 0 if differs[j] and gain > 0 else 1 if differs[j] else 2
        inner = (-(strength[j] * gain) if order == "product" else 0.0) if group == 0 else 0.0
        return (group, inner, *base_key(j))

    return key


# ----------------------------------------------------------------------------- records
def ranking_record_fields(ranking: WordRanking) -> dict[str, Any]:
    """The record keys of a ranking (added to the METHOD.md section 4 record).

    Keys: ``ranking`` (mode), ``discriminant`` ("classes" or "verification"), ``ranking-fill``,
    ``ranking-tie-break``, and ``words-image1``, ``words-image2``, ``words-pair``: lists, best
    first,
    of ``{"index", "word", "similarity", "score", "change", "area", "tie", "rank"}`` (plus
    ``"contrast"`` in the contrast mode); ``tie`` is ``null``, ``"unchanged"`` or ``"same-region"``
    and ``rank`` is ``null`` for unchanged words.
    """
    return {
        "ranking": ranking.mode,
        "discriminant": ranking.discriminant,
        "ranking-fill": ranking.fill,
        "ranking-tie-break": ranking.tie_break,
        "words-image1": [w.as_dict() for w in ranking.image1],
        "words-image2": [w.as_dict() for w in ranking.image2],
        "words-pair": [w.as_dict() for w in ranking.pair],
    }


def paper_words_from_values(
    values: Mapping[int, float],
    original: float,
    words: Mapping[int, str],
    areas: Mapping[int, float] | None = None,
) -> list[WordRank]:
    """The paper's ranking with tie flags, from recorded similarities (records without ``words-*``).

    A word whose value equals ``original`` exactly is ``"unchanged"`` (an empty region
    reuses the original embedding, and the authors' code recomputes the same image); words
    with exactly equal values are ``"same-region"`` (identical erased images).

    Args:
        values: ``{j: cos(V(E_j), V(other))}`` (or both-masked) of the candidate words.
        original: the pair's similarity.
        words: the word of each candidate.
        areas: erased shares when recorded (``mask-fraction<i>``), else NaN.
    """
    cands = sorted(values)
    ranked, _ = rank_candidates(
        cands,
        values,
        original,
        words=words,
        areas={j: (areas or {}).get(j, float("nan")) for j in cands},
        regions={j: values[j] for j in cands},
        keep_order=True,
    )
    return ranked


def select_words(
    ranked: Sequence[WordRank], k: int | None = 5, ties: str = "skip"
) -> list[WordRank]:
    """The first ``k`` words to show or count.

    Args:
        ranked: a ranked list.
        k: how many (``None``: all).
        ties: "skip" drops ``"unchanged"`` words (they explain nothing); "flag" keeps every
            word in order (callers show the ``tie`` field).
    """
    if ties not in ("skip", "flag"):
        raise ValueError(f"ties must be 'skip' or 'flag', got {ties!r}")
    kept = [w for w in ranked if ties == "flag" or w.tie != UNCHANGED]
    return kept if k is None else kept[:k]


def word_ranks_from_json(items: Any, where: str = "words") -> list[WordRank]:
    """Parse a record's ``words-image<i>`` / ``words-pair`` list back into WordRank objects.

    Raises:
        ValueError: naming ``where``, the entry and what is wrong with it.
    """
    if not isinstance(items, list):
        raise ValueError(f"{where}: expected a list of ranked words, got {type(items).__name__}")
    out = []
    for k, item in enumerate(items):
        at = f"{where}[{k}]"
        if not isinstance(item, dict):
            raise ValueError(
                f"{at}: expected an object with index, word, similarity, change, tie, rank"
            )
        try:
            j, word, sim = item["index"], item["word"], item["similarity"]
            change, tie, rank = item.get("change"), item.get("tie"), item.get("rank")
        except KeyError as err:
            raise ValueError(f"{at}: missing key {err}") from None
        if isinstance(j, bool) or not isinstance(j, int) or j < 0:
            raise ValueError(f"{at}: index must be a non-negative integer, got {j!r}")
        if not isinstance(word, str):
            raise ValueError(f"{at}: word must be a string, got {word!r}")
        if isinstance(sim, bool) or not isinstance(sim, (int, float)) or not np.isfinite(sim):
            raise ValueError(f"{at}: similarity must be a finite number, got {sim!r}")
        if tie not in (None, UNCHANGED, SAME_REGION):
            raise ValueError(
                f"{at}: tie must be null, {UNCHANGED!r} or {SAME_REGION!r}, got {tie!r}"
            )
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise ValueError(f"{at}: rank must be null or a positive integer, got {rank!r}")
        out.append(
            WordRank(
                j,
                word,
                float(sim),
                float("nan") if change is None else float(change),
                float("nan") if item.get("area") is None else float(item["area"]),
                tie,
                rank,
                item.get("contrast"),
            )
        )
    return out


# ----------------------------------------------------------------------------- printed form
def tie_note(w: WordRank) -> str:
    """``""`` or ``" (tie: <meaning>)"`` for a caption."""
    return "" if w.tie is None else f" (tie: {TIE_MEANING[w.tie]})"


def format_words(words: Sequence[WordRank], k: int | None = 5) -> list[str]:
    """Printable lines: the top ``k`` ranked words, then the ``"unchanged"`` ties on one line.

    A line reads ``" 1. Big Nose   score 0.6123 -> 0.6801 (+0.0678)   cos 0.3481 -> 0.5417
    (+0.1936)"`` (score 1 - arccos(s)/pi, then the raw cosine, before -> after erasing); a
    same-region tie says so.
    """
    lines = []
    for w in select_words(words, k):
        lines.append(
            f"{w.rank:>2}. {w.word:<22} score {float(verification_score(w.original)):.4f} -> "
            f"{w.score:.4f} ({w.score_change:+.4f})   cos {w.original:.4f} -> "
            f"{w.similarity:.4f} ({w.change:+.4f}){tie_note(w)}"
        )
    if not lines:
        lines.append("    (no present attribute whose erasure changes the score)")
    dead = [w.word for w in words if not w.ranked]
    if dead:
        lines.append(f"    ties, {TIE_MEANING[UNCHANGED]}: {', '.join(dead)}")
    return lines
