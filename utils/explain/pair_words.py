"""The words of one explained pair, with their score changes and ties (METHOD.md section 3 step 8).

For image i of a pair, its *present* attributes are ranked by the similarity
of image i with the attribute's region erased to the other image,
cos(V(E_ij), V(I_other)), largest first: the attribute whose removal makes the
image look most like the other one explains best why they differ. Scores are
shown on the paper's [0, 1] scale ``score(s) = 1 - arccos(s) / pi``
(:func:`verification_score`) beside the raw cosine.

Ties are marked, never ranked as explanations (the same rule as the
``words`` ranking of the results scripts, so that code can replace
:func:`rank_words` without changing what is shown):

* ``"unchanged"``: erasing the word's region leaves the similarity exactly
  at the original (its region is empty at the image size, so the original's
  embedding is reused). Such a word explains nothing; it gets no rank and is
  listed after the ranked words.
* ``"same-region"``: two or more ranked words erase the identical region
  (identical erased images, hence identical similarities); they share one
  rank.

Nothing here imports torch.

Example:
    >>> words = explanation_words(ex, side=0)
    >>> [(w.word, w.rank, w.tie) for w in words][:3]
    [('Big Nose', 1, None), ('Bangs', 2, 'same-region'), ('Male', 2, 'same-region')]
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the explanation types pull in torch
    from utils.explain.sim2word import PairExplanation

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
class Word:
    """One word of one image.

    Attributes:
        attribute: head index j.
        name: the head's name (``vocabulary.attributes[j]``, e.g. ``"Gender"``).
        word: the word (multi-class heads worded by class, e.g. ``"Female"``).
        similarity: cos(V(E_ij), V(I_other)), the raw cosine after erasing.
        original: the pair's original cosine s = cos(V(I1), V(I2)).
        area: share of the image erased for this word, in [0, 1] (``nan`` when unknown).
        tie: ``None``, ``"unchanged"`` or ``"same-region"`` (module docstring).
        rank: 1-based rank among the words that are not ``"unchanged"`` (``None`` for those);
            same-region words share a rank (1, 2, 2, 4: competition ranking).
    """

    attribute: int
    name: str
    word: str
    similarity: float
    original: float
    area: float = float("nan")
    tie: str | None = None
    rank: int | None = None

    @property
    def score(self) -> float:
        """``similarity`` on the [0, 1] scale 1 - arccos(s)/pi."""
        return float(verification_score(self.similarity))

    @property
    def change(self) -> float:
        """Raw cosine change: ``similarity - original``."""
        return float(self.similarity - self.original)

    @property
    def score_change(self) -> float:
        """Score change on the [0, 1] scale: ``score(similarity) - score(original)``."""
        return float(self.score - verification_score(self.original))

    @property
    def ranked(self) -> bool:
        """Whether the word is an explanation (not an ``"unchanged"`` tie)."""
        return self.tie != UNCHANGED

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``area`` is ``None`` when unknown)."""
        return {
            "index": self.attribute,
            "attribute": self.name,
            "word": self.word,
            "rank": self.rank,
            "tie": self.tie,
            "similarity": float(self.similarity),
            "change": self.change,
            "score": self.score,
            "score_change": self.score_change,
            "area": None if not np.isfinite(self.area) else float(self.area),
        }


def rank_words(
    values: Mapping[int, float],
    original: float,
    words: Mapping[int, str],
    names: Mapping[int, str] | Sequence[str],
    *,
    areas: Mapping[int, float] | None = None,
    regions: Mapping[int, Hashable] | None = None,
    unchanged: Sequence[int] = (),
) -> list[Word]:
    """Rank candidate words and mark ties (module docstring).

    Args:
        values: ``{j: cos(V(E_ij), V(I_other))}`` of the candidates (the present attributes).
        original: the pair's original cosine s.
        words: the word of each candidate.
        names: the head names (indexable by j).
        areas: erased share of each candidate (default unknown).
        regions: a hashable id of each candidate's erased region (equal ids = identical regions);
            default: the value itself (identical erased images give identical similarities).
        unchanged: candidates known to have an empty region (also any value equal to ``original``).

    Returns:
        The ranked words by (-similarity, j), then the ``"unchanged"`` ones by j.
    """
    areas = areas or {}
    regions = regions if regions is not None else {j: ("value", values[j]) for j in values}
    dead = {j for j in values if j in set(unchanged) or values[j] == original}
    live = sorted((j for j in values if j not in dead), key=lambda j: (-values[j], j))
    shared: dict[Hashable, list[int]] = {}
    for j in live:
        shared.setdefault(regions[j], []).append(j)
    out = []
    for j in live:
        rank = 1 + sum(values[k] > values[j] for k in live)
        tie = SAME_REGION if len(shared[regions[j]]) > 1 else None
        out.append(_word(j, values, original, words, names, areas, tie, rank))
    out += [_word(j, values, original, words, names, areas, UNCHANGED, None) for j in sorted(dead)]
    return out


def _word(j, values, original, words, names, areas, tie, rank) -> Word:
    return Word(
        int(j),
        str(names[j]),
        str(words[j]),
        float(values[j]),
        float(original),
        float(areas.get(j, float("nan"))),
        tie,
        rank,
    )


def explanation_words(ex: PairExplanation, side: int) -> list[Word]:
    """The words of image ``side + 1`` of an explained pair (:func:`rank_words`).

    Regions come from the explanation's masks (at the image size, so an empty mask is an
    ``"unchanged"`` tie even if the similarity moved by rounding).

    Args:
        ex: the pair explained with similarities (``ex.similarity`` not ``None``).
        side: 0 for image 1 (explained against image 2), 1 for image 2.

    Raises:
        ValueError: the explanation has no similarities (``calculate_similarity=False``).
    """
    if ex.similarity is None:
        raise ValueError(
            "the pair was explained without similarities; words need the verification net "
            "(calculate_similarity=True)"
        )
    d = ex.directions[side]
    vocab = ex.vocabulary
    present = [j for j in range(len(d.attr_class)) if vocab.is_present(j, int(d.attr_class[j]))]
    regions, empty, areas = {}, [], {}
    for j in present:
        raw = d.mask_raw(j)
        if not raw.any():
            empty.append(j)
        regions[j] = hashlib.blake2b(np.packbits(raw).tobytes(), digest_size=16).digest()
        areas[j] = float(raw.mean())
    return rank_words(
        {j: float(d.sim_other[j]) for j in present},
        float(ex.similarity),
        {j: vocab.word_for(j, int(d.attr_class[j])) for j in present},
        vocab.attributes,
        areas=areas,
        regions=regions,
        unchanged=empty,
    )


def top_ranked(words: Sequence[Word], k: int | None) -> list[Word]:
    """The first ``k`` words that are explanations (``"unchanged"`` ties skipped)."""
    return [w for w in words if w.ranked][:k]


def tie_note(w: Word) -> str:
    """``""`` or ``" (tie: <meaning>)"`` for a caption."""
    return "" if w.tie is None else f" (tie: {TIE_MEANING[w.tie]})"


def format_words(words: Sequence[Word], k: int | None = 5) -> list[str]:
    """Printable lines: the top ``k`` ranked words, then the ``"unchanged"`` ties on one line.

    A line reads ``"1. Big Nose   score 0.6123 -> 0.6801 (+0.0678)   cos 0.3481 -> 0.5417
    (+0.1936)"``; a same-region tie says so.
    """
    lines = []
    for w in top_ranked(words, k):
        lines.append(
            f"{w.rank:>2}. {w.word:<22} score {verification_score(w.original):.4f} -> "
            f"{w.score:.4f} ({w.score_change:+.4f})   cos {w.original:.4f} -> "
            f"{w.similarity:.4f} ({w.change:+.4f}){tie_note(w)}"
        )
    if not lines:
        lines.append("    (no present attribute whose erasure changes the score)")
    dead = [w.word for w in words if not w.ranked]
    if dead:
        lines.append(f"    ties, {TIE_MEANING[UNCHANGED]}: {', '.join(dead)}")
    return lines
