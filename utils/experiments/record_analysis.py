"""The authors' other analyses of the per-pair records (their ``results/`` scripts).

Three analyses that the paper's code ran over the JSON records, next to the
mask game and the words of :mod:`utils.experiments.analysis` (whose
definitions of *present*, *available* and the score 1 - arccos(s)/pi are used
here unchanged). Nothing here loads a network or imports torch.

* **Found attributes** (``Stastic_found_attributes_num.py``): for each image
  of the chosen pairs (impostor pairs in the paper), the number of its
  present, recorded attributes whose erasure raises the similarity to the
  other image above the pair's original similarity,
  ``#{j : cos(V(E_ij), V(I_other)) > s}``; reported as a histogram over the
  images (how many images have 0, 1, 2, ... such attributes). The authors'
  code also drops a present attribute whose similarity is exactly 0 (a side
  effect of how it masks absent ones); we do not.
* **No-attribute mask game** (``AUC_no_attribute_map.py``): on records of
  the *no-attribute* ablation (one region per image: the discriminant map
  above theta), "After" replaces an impostor image's score by the score of
  its similarity to the other image after erasing that one region (replaced,
  not maxed with the original, as the authors do); genuine pairs keep
  score(s). Both images of a pair are samples, as in the other AUC scripts
  (duplicating every sample does not change a ROC). The region's value is
  read from the authors' variant (one unindexed ``image<i>-f_attr_`` entry)
  or from ours (``"ablation": "no-attribute"``: the same value under every
  head).
* **Detected attributes** (``Detect_attributes_scores.py``): each image's
  present attributes with the attribute net's predicted class and its
  softmax confidence (``Attribute<i>-class`` / ``Attribute<i>-score``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from utils.experiments.analysis import common_vocabulary, verification_score
from utils.run.records import NO_ATTRIBUTE, PairRecord, RecordError

#: ``--pairs`` choices of the counting scripts -> the ``match`` label they keep (``None``: all).
PAIR_SELECTION: dict[str, int | None] = {"impostor": 0, "genuine": 1, "all": None}


# ----------------------------------------------------------------------------- found attributes
def found_attributes(rec: PairRecord, image: int) -> list[int]:
    """Image ``image``'s present, recorded attributes whose erasure raises its similarity to the
    other image above the pair's similarity, ascending (``cos(V(E_ij), V(I_other)) > s``)."""
    if rec.similarity is None:
        raise RecordError(f"{rec.path}: no similarity recorded (run with similarities)")
    cls, erased = rec.classes[image - 1], rec.erased[image - 1]
    return [
        j
        for j, (_, other) in sorted(erased.items())
        if rec.vocabulary.is_present(j, cls[j]) and other > rec.similarity
    ]


def found_attribute_counts(records: Sequence[PairRecord], match: int | None = 0) -> dict[str, Any]:
    """Histogram of :func:`found_attributes` counts over the images of the chosen pairs.

    Args:
        records: the pairs (one vocabulary; :func:`utils.experiments.analysis.common_vocabulary`).
        match: keep pairs with this label (0 impostor, the authors' setting); ``None`` for all.

    Returns:
        ``{"n_pairs", "n_images", "vocabulary", "histogram": [images with 0, 1, ..., K found],
        "mean_found", "images_with_any", "fraction_with_any", "by_attribute": [{attribute,
        index, count}]}``; ``by_attribute`` counts, per head, the images where it is found
        (every head, largest count first, ties by index). ``mean_found`` and
        ``fraction_with_any`` are ``None`` without images.
    """
    vocab = common_vocabulary(records)
    pairs = [r for r in records if match is None or r.match == match]
    hist = np.zeros(len(vocab) + 1, dtype=int)
    per_head = np.zeros(len(vocab), dtype=int)
    for r in pairs:
        for i in (1, 2):
            found = found_attributes(r, i)
            hist[len(found)] += 1
            per_head[found] += 1
    n = 2 * len(pairs)
    total = int((hist * np.arange(len(hist))).sum())
    return {
        "n_pairs": len(pairs),
        "n_images": n,
        "vocabulary": vocab.name,
        "histogram": hist.tolist(),
        "mean_found": total / n if n else None,
        "images_with_any": int(hist[1:].sum()),
        "fraction_with_any": float(hist[1:].sum() / n) if n else None,
        "by_attribute": [
            {"attribute": vocab.attributes[j], "index": j, "count": int(per_head[j])}
            for j in sorted(range(len(vocab)), key=lambda j: (-per_head[j], j))
        ],
    }


# ----------------------------------------------------------------------------- no-attribute AUC
def no_attribute_region(rec: PairRecord, image: int) -> float:
    """cos(V(E_i), V(I_other)) of image ``image`` with the one no-attribute region erased.

    Raises:
        RecordError: the record is not a no-attribute ablation record, or lacks the value.
    """
    erased = rec.erased[image - 1]
    if rec.vocabulary.name == NO_ATTRIBUTE.name:  # the authors' variant: one unindexed entry
        if 0 not in erased:
            raise RecordError(f"{rec.path}: no 'image{image}-f_attr_' entry")
        return erased[0][1]
    ablation = rec.meta.get("ablation")
    if ablation != "no-attribute":
        raise RecordError(
            f"{rec.path}: a record of ablation {ablation or 'none'!r}, not of the no-attribute "
            "ablation; run the experiment with --ablation no-attribute"
        )
    values = {v[1] for v in erased.values()}
    if len(values) != 1:
        raise RecordError(
            f"{rec.path}: 'attributes-image{image}' holds {len(values)} different values; the "
            "no-attribute ablation erases one region (the same value under every head)"
        )
    return values.pop()


def no_attribute_samples(records: Sequence[PairRecord]) -> tuple[np.ndarray, np.ndarray]:
    """The no-attribute mask game's "After" scores ``(2N,)`` and labels ``(2N,)`` (module
    docstring). Order: pair 0 image 1, pair 0 image 2, pair 1 image 1, ...

    Raises:
        RecordError: a record that is not of the no-attribute ablation (see
            :func:`no_attribute_region`).
    """
    sims = [
        (r.similarity, r.similarity)
        if r.match == 1
        else (no_attribute_region(r, 1), no_attribute_region(r, 2))
        for r in records
    ]
    labels = np.repeat(np.array([r.match for r in records], dtype=int), 2)
    return verification_score(np.array(sims, dtype=np.float64).reshape(-1)), labels


def split_no_attribute(
    records: Sequence[PairRecord],
) -> tuple[list[PairRecord], list[dict[str, str]]]:
    """``(usable records, failures)``: records :func:`no_attribute_samples` cannot use become
    ``{"file", "error"}`` failures instead of stopping the analysis."""
    kept, failures = [], []
    for r in records:
        try:
            if r.match == 0:
                no_attribute_region(r, 1), no_attribute_region(r, 2)
            kept.append(r)
        except RecordError as err:
            failures.append({"file": str(r.path), "error": str(err)})
    return kept, failures


# ----------------------------------------------------------------------------- detected attributes
def detected_attributes(rec: PairRecord, image: int) -> list[dict[str, Any]]:
    """Image ``image``'s present attributes with their predicted class and confidence.

    Returns:
        ``[{"index", "attribute", "word", "class", "confidence"}]`` in head order;
        ``confidence`` is ``None`` when the record has no ``Attribute<i>-score``.
    """
    vocab, cls = rec.vocabulary, rec.classes[image - 1]
    conf = rec.confidences[image - 1]
    return [
        {
            "index": j,
            "attribute": vocab.attributes[j],
            "word": vocab.word_for(j, cls[j]),
            "class": int(cls[j]),
            "confidence": conf[j] if conf else None,
        }
        for j in range(len(vocab))
        if vocab.is_present(j, cls[j])
    ]


def detected_caption(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Caption lines of :func:`detected_attributes`: ``"Gender: Female   class 1   0.9876"``."""
    lines = []
    for r in rows:
        name = r["word"] if r["word"] == r["attribute"] else f"{r['attribute']}: {r['word']}"
        conf = "n/a" if r["confidence"] is None else f"{r['confidence']:.4f}"
        lines.append(f"{name:<28} class {r['class']}  {conf}")
    return lines or ["(no present attribute)"]
