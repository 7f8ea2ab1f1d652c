"""The per-pair JSON record (METHOD.md section 4) and resume.

Keys of METHOD.md section 4, with the original code's names: ``Datasets``,
``Heatmap-method``, ``thresh``, ``topk`` (top-k and sameid strategies) or
``id_thresh`` (threshold strategy), ``verification-net``, ``image-path1``,
``image-path2``, ``match``, ``similarity``, ``class1``, ``class2``,
``Attribute1-class``, ``Attribute1-score``, ``Attribute2-class``,
``Attribute2-score``, ``attributes-image1`` {``image1-f_attr_<j>``: [sim to own
original, sim to other original]}, ``attributes-image2``
{``image2-f_attr_<j>``: [...]}, ``attributes-both-masked``
{``Both_masked-f_attr_<j>``: sim}.

Extra keys: ``strategy`` ("topk", "threshold", "sameid"), ``ablation``, ``discriminant``,
``recognition-net``, ``attribute-net``, ``Erasing-method``, ``seed``,
``pair-index``, ``same-top1``, ``mask-fraction1``/``mask-fraction2`` (share of
R-input pixels erased per attribute) and ``calculate-similarity``. With
``calculate_similarity=False`` the similarity keys are absent. With a word
ranking (:func:`utils.explain.ranking.rank_pair`): ``ranking``,
``discriminant``, ``ranking-fill``, ``ranking-tie-break``, ``words-image1``,
``words-image2`` and ``words-pair`` (:func:`utils.explain.ranking.ranking_record_fields`).

Values are plain finite numbers (the file is written with
``allow_nan=False``; a non-finite value raises ``FloatingPointError``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from utils.base.atomic import atomic_write_bytes, atomic_write_json  # also re-exported: docs/ARCHITECTURE.md names them here
from utils.explain.ranking import WordRanking, ranking_record_fields
from utils.explain.sim2word import PairExplanation, Sim2WordConfig

__all__ = ["REQUIRED_KEYS", "atomic_write_bytes", "atomic_write_json", "check_finite", "is_done", "make_record",
           "write_record"]

REQUIRED_KEYS = (
    "Datasets", "Heatmap-method", "thresh", "verification-net", "image-path1", "image-path2", "match",
    "similarity", "class1", "class2", "Attribute1-class", "Attribute1-score", "Attribute2-class",
    "Attribute2-score", "attributes-image1", "attributes-image2", "attributes-both-masked",
)


def make_record(ex: PairExplanation, config: Sim2WordConfig, *, datasets: str, recognition_net: str,
                attribute_net: str, verification_net: str, image_path1: str, image_path2: str,
                match: int, pair_index: int, ranking: WordRanking | None = None) -> dict[str, Any]:
    """Build the section 4 record of one explained pair.

    Args:
        ex: the explanation (:func:`utils.explain.sim2word.explain_pair`).
        config: the config it was computed with.
        datasets: dataset label (``--Datasets``).
        recognition_net, attribute_net, verification_net: network names.
        image_path1, image_path2: the images' paths.
        match: 1 same person, 0 different.
        pair_index: the pair's index in its list.
        ranking: the pair's ranked words (adds the keys of :func:`ranking_record_fields`).

    Returns:
        A JSON-ready dict with only finite numbers.
    """
    d1, d2 = ex.directions
    rec: dict[str, Any] = {"Datasets": datasets, "Heatmap-method": config.heatmap_method, "thresh": float(config.thresh)}
    if config.strategy == "threshold":
        rec["id_thresh"] = float(config.id_thresh)
    else:
        rec["topk"] = 1 if config.strategy == "sameid" else int(config.topk)
    rec.update({
        "verification-net": verification_net, "image-path1": image_path1, "image-path2": image_path2,
        "match": int(match),
    })
    if config.calculate_similarity:
        rec["similarity"] = ex.similarity
    rec.update({
        "class1": [int(c) for c in ex.class1], "class2": [int(c) for c in ex.class2],
        "Attribute1-class": d1.attr_class.tolist(), "Attribute1-score": d1.attr_conf.tolist(),
        "Attribute2-class": d2.attr_class.tolist(), "Attribute2-score": d2.attr_conf.tolist(),
    })
    if config.calculate_similarity:
        n = len(d1.attr_class)
        rec["attributes-image1"] = {f"image1-f_attr_{j}": [float(d1.sim_own[j]), float(d1.sim_other[j])] for j in range(n)}
        rec["attributes-image2"] = {f"image2-f_attr_{j}": [float(d2.sim_own[j]), float(d2.sim_other[j])] for j in range(n)}
        rec["attributes-both-masked"] = {f"Both_masked-f_attr_{j}": float(ex.both_masked[j]) for j in range(n)}
    rec.update({
        "strategy": config.strategy, "ablation": config.ablation, "recognition-net": recognition_net,
        "attribute-net": attribute_net, "Erasing-method": config.erasing_method, "seed": int(config.seed),
        "discriminant": config.discriminant,
        "pair-index": int(pair_index), "same-top1": bool(ex.same_top1),
        "mask-fraction1": d1.masks.reshape(len(d1.masks), -1).mean(axis=1).tolist(),
        "mask-fraction2": d2.masks.reshape(len(d2.masks), -1).mean(axis=1).tolist(),
        "calculate-similarity": bool(config.calculate_similarity),
    })
    if ranking is not None:
        rec.update(ranking_record_fields(ranking))
    check_finite(rec)
    return rec


def check_finite(obj: Any, where: str = "record") -> None:
    """Raise ``FloatingPointError`` naming the key if any number in ``obj`` is NaN/inf."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            check_finite(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_finite(v, f"{where}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        raise FloatingPointError(f"non-finite value {obj} at {where}")


def write_record(path: str | Path, record: dict[str, Any]) -> Path:
    """Write the record atomically as strict JSON."""
    return atomic_write_json(path, record)


def is_done(path: str | Path) -> bool:
    """Resume test: the record exists and parses as a JSON object."""
    path = Path(path)
    try:
        with path.open("r", encoding="utf-8") as fh:
            return isinstance(json.load(fh), dict)
    except (OSError, ValueError):
        return False
