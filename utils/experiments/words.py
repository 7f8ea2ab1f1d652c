"""Which words the results scripts show and count: the records' rankings, ties skipped or flagged.

A record written with a ranking (:func:`utils.explain.ranking.ranking_record_fields`) carries its
ranked words (``words-image1``, ``words-image2``, ``words-pair``) with their tie flags; those lists
are used as they are. A record without them (the authors' records, older runs) is ranked the
paper's way from its similarities (:mod:`utils.experiments.analysis`), and ties are inferred
from the values: a word whose similarity equals the pair's original similarity exactly is
``"unchanged"`` (its erasure changed nothing: an empty region reuses the original's embedding),
and words with exactly equal similarities are ``"same-region"`` (identical erased images).

``ties="skip"`` (the default of the scripts) drops unchanged words: they explain nothing, and
in the paper's order they win only by attribute index. ``ties="flag"`` keeps every word in the
paper's order and lets the caller mark the ties.

Example:
    >>> top = record_top_words(rec, "image1", k=5, ties="skip")
    >>> [(w.word, w.tie) for w in top]
    [('Big Nose', None), ('Bangs', 'same-region'), ('Male', 'same-region')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from utils.experiments.analysis import PairRecord, both_masked_word, common_vocabulary
from utils.explain.ranking import UNCHANGED, WordRank, paper_words_from_values, select_words

WHICH = ("image1", "image2", "pair")


def record_words(rec: PairRecord, which: str) -> list[WordRank]:
    """The ranked words of one list of a record, best first, with tie flags.

    Args:
        rec: the record.
        which: "image1", "image2" or "pair" (the both-masked ranking).

    Raises:
        ValueError: ``which`` is unknown, or the record has neither its own list nor a
            similarity to rank by.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if which in rec.words:
        return list(rec.words[which])
    if rec.similarity is None:
        raise ValueError(f"{rec.path}: no similarity recorded, so no word can be ranked")
    if which == "pair":
        present = set(rec.present(1)) | set(rec.present(2))
        values = {j: v for j, v in rec.both_masked.items() if j in present}
        words = {j: both_masked_word(rec, j) for j in values}
    else:
        i = int(which[-1])
        present = set(rec.present(i))
        values = {j: v[1] for j, v in rec.erased[i - 1].items() if j in present}
        words = {j: rec.word(i, j) for j in values}
    return paper_words_from_values(values, rec.similarity, words)


def record_top_words(
    rec: PairRecord, which: str, k: int | None = 5, ties: str = "skip"
) -> list[WordRank]:
    """The first ``k`` words of a record's list (:func:`record_words`), ties skipped or kept."""
    return select_words(record_words(rec, which), k, ties)


def word_dicts(rec: PairRecord, words: Sequence[WordRank]) -> list[dict[str, Any]]:
    """JSON rows of ranked words: the head's name (``attribute``) and :meth:`WordRank.as_dict`."""
    return [{"attribute": rec.vocabulary.attributes[w.attribute], **w.as_dict()} for w in words]


def top1_statistics(
    records: Sequence[PairRecord], match: int | None = 0, ties: str = "skip"
) -> dict[str, Any]:
    """How often each attribute (and each class word) is an image's top-1 word, ties handled.

    Args:
        records: the pairs.
        match: only pairs with this label (0 impostor, the paper's setting); ``None`` for all.
        ties: "skip": an image's top-1 is its first word that is not ``"unchanged"``;
            "flag": its first word in the paper's order, even an unchanged one.

    Returns:
        ``{"n_pairs", "n_images", "n_without_word", "n_tie_top1", "ties", "vocabulary",
        "by_attribute": [{attribute, index, count, ties, fraction}], "by_word": [{word,
        attribute, index, class, count, ties, fraction}]}``. ``n_tie_top1``: images whose first
        word in the list is an unchanged tie (with "skip" they are counted by their first real
        word; with "flag" they are counted as they are and also in the rows' ``ties``). Lists
        sorted by count descending, then attribute index and class; ``by_attribute`` lists every
        head of the records' vocabulary (:func:`utils.experiments.analysis.common_vocabulary`),
        ``by_word`` only words seen. Fractions are over the images that have a word.

    Raises:
        ValueError: ``ties`` is neither "skip" nor "flag".
        RecordError: the records mix vocabularies.
    """
    if ties not in ("skip", "flag"):
        raise ValueError(f"ties must be 'skip' or 'flag', got {ties!r}")
    vocab = common_vocabulary(records)
    by_attr = np.zeros(len(vocab), dtype=int)
    tie_attr = np.zeros(len(vocab), dtype=int)
    by_word: dict[tuple[int, int], list[int]] = {}
    pairs = [r for r in records if match is None or r.match == match]
    none = tie_top1 = 0
    for r in pairs:
        for i in (1, 2):
            ranked = record_words(r, f"image{i}")
            first_is_tie = bool(ranked) and ranked[0].tie == UNCHANGED
            tie_top1 += first_is_tie
            top = select_words(ranked, 1, ties)
            if not top:
                none += 1
                continue
            j = top[0].attribute
            counted_tie = int(top[0].tie == UNCHANGED)
            by_attr[j] += 1
            tie_attr[j] += counted_tie
            entry = by_word.setdefault((j, r.classes[i - 1][j]), [0, 0])
            entry[0] += 1
            entry[1] += counted_tie
    n_words = int(by_attr.sum())

    def frac(c: int) -> float:
        return c / n_words if n_words else 0.0

    attrs = sorted(range(len(vocab)), key=lambda j: (-by_attr[j], j))
    words = sorted(by_word, key=lambda key: (-by_word[key][0], key))
    return {
        "n_pairs": len(pairs),
        "n_images": 2 * len(pairs),
        "n_without_word": none,
        "n_tie_top1": tie_top1,
        "ties": ties,
        "vocabulary": vocab.name,
        "by_attribute": [
            {
                "attribute": vocab.attributes[j],
                "index": j,
                "count": int(by_attr[j]),
                "ties": int(tie_attr[j]),
                "fraction": frac(int(by_attr[j])),
            }
            for j in attrs
        ],
        "by_word": [
            {
                "word": vocab.word_for(j, c),
                "attribute": vocab.attributes[j],
                "index": j,
                "class": c if j in vocab.class_words else None,
                "count": by_word[(j, c)][0],
                "ties": by_word[(j, c)][1],
                "fraction": frac(by_word[(j, c)][0]),
            }
            for j, c in words
        ],
    }


def empty_mask_statistics(records: Sequence[PairRecord], match: int | None = 0) -> dict[str, Any]:
    """How often erasing changed nothing: images whose masks are all empty, and images whose
    top-1 word has an empty mask.

    An empty mask leaves the image as it is, so its word scores exactly the original similarity;
    such words are flagged ``"unchanged"`` and skipped by default (:func:`record_top_words`), but
    the paper's order puts them first among ties (lowest head index: Gender in ``celeba30`` and
    ``real-faces``). The top-1 word counted here keeps them (``ties="flag"``): how often the
    paper's top-1 word says nothing about the pair.

    Args:
        records: pairs whose records carry ``mask-fraction1/2``.
        match: only pairs with this label (0 impostor); ``None`` for all.

    Returns:
        ``{"images", "all_masks_empty", "top1_mask_empty"}`` (counts) and the same as
        ``*_share`` fractions of ``images``; images without fractions or words are not counted.
    """
    images = all_empty = top_empty = 0
    for rec in records:
        if match is not None and rec.match != match:
            continue
        for i in (1, 2):
            fractions = rec.mask_fractions[i - 1]
            top = (
                record_top_words(rec, f"image{i}", 1, ties="flag")
                if rec.words or (rec.similarity is not None)
                else []
            )
            if not fractions or not top:
                continue
            images += 1
            all_empty += all(f == 0 for f in fractions)
            top_empty += fractions[top[0].attribute] == 0
    share = (lambda c: c / images) if images else (lambda c: None)
    return {
        "images": images,
        "all_masks_empty": all_empty,
        "top1_mask_empty": top_empty,
        "all_masks_empty_share": share(all_empty),
        "top1_mask_empty_share": share(top_empty),
    }


def run_agreement(a: Sequence[PairRecord], b: Sequence[PairRecord], k: int = 3) -> dict[str, Any]:
    """How far two runs over the same pairs agree (e.g. a gallery with and without the probes).

    Pairs are matched by ``pair-index`` (else file name); per image of a matched pair: its top-1
    word (:func:`record_top_words`, ties skipped) equal in both runs, the overlap of its
    top-``k`` attributes (shared / k), its identity class set equal; per pair the absolute
    difference of ``similarity``. Images with no present attribute in either run are left out
    of the word measures.

    Returns:
        ``{"pairs", "images", "top1_word_agreement", "topk", "topk_overlap",
        "class_set_agreement", "max_abs_similarity_difference"}`` (``None`` where nothing counts).
    """

    def key(r: PairRecord) -> Any:
        return r.pair_index if r.pair_index is not None else r.name

    other = {key(r): r for r in b}
    matched = [(r, other[key(r)]) for r in a if key(r) in other]
    top1, overlap, classes, diffs = [], [], [], []
    for ra, rb in matched:
        if ra.similarity is not None and rb.similarity is not None:
            diffs.append(abs(ra.similarity - rb.similarity))
        for i in (1, 2):
            classes.append(ra.class_sets[i - 1] == rb.class_sets[i - 1])
            if ra.similarity is None or rb.similarity is None:
                continue
            wa = record_top_words(ra, f"image{i}", k)
            wb = record_top_words(rb, f"image{i}", k)
            if not wa or not wb:
                continue
            top1.append(wa[0].word == wb[0].word)
            shared = {w.attribute for w in wa} & {w.attribute for w in wb}
            overlap.append(len(shared) / min(k, len(wa), len(wb)))

    def mean(values: list) -> float | None:
        return float(np.mean(values)) if values else None

    return {
        "pairs": len(matched),
        "images": 2 * len(matched),
        "top1_word_agreement": mean(top1),
        "topk": k,
        "topk_overlap": mean(overlap),
        "class_set_agreement": mean(classes),
        "max_abs_similarity_difference": float(max(diffs)) if diffs else None,
    }
