"""The per-pair JSON record (METHOD.md section 4): one definition of fields, writer and reader.

:data:`FIELDS` lists every key in record order with its type and meaning;
:func:`make_record` writes records, :func:`parse_record` / :func:`read_record`
read them (the ``results/`` scripts, the comparison and the run loop's resume
all read through them). Nothing here imports torch.

Keys of METHOD.md section 4 keep the original code's names (``Datasets``,
``Heatmap-method``, ``thresh``, ``topk`` or ``id_thresh``, ``verification-net``,
``image-path1``, ``image-path2``, ``match``, ``similarity``, ``class1``,
``class2``, ``Attribute1-class``, ``Attribute1-score``, ``Attribute2-class``,
``Attribute2-score``, ``attributes-image1`` {``image1-f_attr_<j>``: [sim to
own original, sim to other original]}, ``attributes-image2``,
``attributes-both-masked`` {``Both_masked-f_attr_<j>``: sim}); our extra keys
follow them (``strategy``, ``ablation``, ``discriminant``, ...,
``attribute-vocabulary``, ``run-fingerprint``). With ``calculate-similarity``
false the similarity keys are absent. A record with similarities also carries
its ranked words (:func:`utils.explain.ranking.rank_pair`): ``ranking``,
``ranking-fill``, ``ranking-tie-break`` and ``words-image1`` /
``words-image2`` / ``words-pair`` (:func:`utils.explain.ranking.ranking_record_fields`;
read back as :attr:`PairRecord.words`). Records written before those keys
existed (and the authors') simply lack them; readers rank their words the
paper's way (:mod:`utils.experiments.words`).

Reading is tolerant of the authors' own records:

* ``attribute-vocabulary`` missing: ``"celeba30"`` (the paper's 30 heads);
  the number of heads and the words come from the vocabulary
  (:func:`models.attributes.get_vocabulary`), never a fixed 30;
* ``class1``/``class2`` as an int (their ``Scores-sameid.py``), a list, or a
  nested list ``[[c, ...]]`` (their top-k script): read as a flat list;
* their *no-attribute* ablation (no ``Attribute<i>-class`` keys, one erased
  region per image stored under ``image<i>-f_attr_`` without an index): read
  with the one-head vocabulary :data:`NO_ATTRIBUTE` whose head, the
  counterfactual region, is always present.

Values are plain finite numbers (files are written with ``allow_nan=False``; a
non-finite value raises ``FloatingPointError`` at writing and ``RecordError``
at reading).

How to add a record key: add a :class:`Field` to :data:`FIELDS` (order =
position in the file), fill it in :func:`make_record`, and read it in
:func:`parse_record` if a reader needs it (``PairRecord.meta`` keeps every
key listed in :data:`META_KEYS`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.attributes import DEFAULT_VOCABULARY, Vocabulary, get_vocabulary, register_vocabulary
from utils.base import safejson
from utils.base.atomic import atomic_write_json
from utils.explain.ranking import WordRank, ranking_record_fields, word_ranks_from_json

if TYPE_CHECKING:  # the writer's inputs; importing them would pull in torch
    from utils.explain.ranking import WordRanking
    from utils.explain.sim2word import PairExplanation, Sim2WordConfig

__all__ = [
    "CORE_KEYS",
    "FIELDS",
    "META_KEYS",
    "NO_ATTRIBUTE",
    "REQUIRED_KEYS",
    "TOP5_KEYS",
    "WORD_LISTS",
    "Field",
    "PairRecord",
    "RecordError",
    "check_finite",
    "is_done",
    "make_record",
    "parse_record",
    "read_record",
    "write_record",
]


@dataclass(frozen=True)
class Field:
    """One key of the record.

    Attributes:
        key: the JSON key.
        kind: its type: ``str``, ``int``, ``float``, ``bool``, ``match`` (0/1), ``cosine`` (in [-1,
        1]),
            ``classes`` (identity class ids), ``head-classes`` / ``head-scores`` (one per head),
            ``erased`` / ``both-masked`` (per head, see the module docstring), ``fractions`` (one
            per head), ``words`` (a ranked word list,
            :func:`utils.explain.ranking.word_ranks_from_json`).
            ``sides``: one value per image of the pair.
        doc: what it holds.
        authors: written by the authors' code too (METHOD.md section 4).
    """

    key: str
    kind: str
    doc: str
    authors: bool = False


FIELDS: tuple[Field, ...] = (
    Field("Datasets", "str", "dataset label (--Datasets)", True),
    Field("Heatmap-method", "str", "GradCAM or GradCAM++", True),
    Field("thresh", "float", "erasing threshold theta on J", True),
    Field(
        "topk",
        "int",
        "k of the top-k strategy (1 for sameid); absent with the threshold strategy",
        True,
    ),
    Field("id_thresh", "float", "t of the threshold strategy; absent otherwise", True),
    Field("verification-net", "str", "registered name of V", True),
    Field("image-path1", "str", "image 1 as read", True),
    Field("image-path2", "str", "image 2 as read", True),
    Field("match", "match", "1 same identity, 0 different", True),
    Field("similarity", "cosine", "cos(V(I1), V(I2))", True),
    Field("class1", "classes", "class set C1 of image 1, most likely first", True),
    Field("class2", "classes", "class set C2 of image 2", True),
    Field("Attribute1-class", "head-classes", "A's predicted class per head on image 1", True),
    Field("Attribute1-score", "head-scores", "its softmax confidence", True),
    Field("Attribute2-class", "head-classes", "A's predicted class per head on image 2", True),
    Field("Attribute2-score", "head-scores", "its softmax confidence", True),
    Field(
        "attributes-image1",
        "erased",
        "image1-f_attr_<j>: [cos(V(E1j), V(I1)), cos(V(E1j), V(I2))]",
        True,
    ),
    Field(
        "attributes-image2",
        "erased",
        "image2-f_attr_<j>: [cos(V(E2j), V(I2)), cos(V(E2j), V(I1))]",
        True,
    ),
    Field(
        "attributes-both-masked", "both-masked", "Both_masked-f_attr_<j>: cos(V(E1j), V(E2j))", True
    ),
    Field("strategy", "str", "topk, threshold or sameid"),
    Field("ablation", "str", "none, no-counterfactual or no-attribute"),
    Field(
        "discriminant",
        "str",
        "where H_d comes from: classes (R's class sets, the paper) or verification (V's map)",
    ),
    Field("recognition-net", "str", "registered name of R"),
    Field("attribute-net", "str", "registered name of A"),
    Field("Erasing-method", "str", "black, white, mean or random"),
    Field("seed", "int", "seed of the random fill"),
    Field("pair-index", "int", "the pair's index n in its list (the file is <n>.json)"),
    Field("same-top1", "bool", "both images have the same top-1 identity"),
    Field("mask-fraction1", "fractions", "share of R-input pixels erased per head, image 1"),
    Field("mask-fraction2", "fractions", "share of R-input pixels erased per head, image 2"),
    Field("calculate-similarity", "bool", "the similarity keys were computed"),
    Field("ranking", "str", "how the words were ranked: paper, both-shared or contrast"),
    Field("ranking-fill", "str", "fill of the ranking's erasing (paper: the Erasing-method)"),
    Field("ranking-tie-break", "str", "order of tied words: smaller-region or index"),
    Field(
        "words-image1",
        "words",
        "image 1's present words, best first: {index, word, similarity, score, change, area, "
        "tie, rank[, contrast]}; tie null, unchanged or same-region",
    ),
    Field("words-image2", "words", "image 2's present words, the same way"),
    Field("words-pair", "words", "words present in either image, by the mode's pair score"),
    Field(
        "align-template",
        "str",
        "template the canvases are aligned to (utils.faces.canvas); null: images used as read",
    ),
    Field(
        "align-method",
        "sides",
        "per image: as-read, pre-aligned, file (landmark file), yunet, dlib, haar-eyes, haar-box",
    ),
    Field(
        "align-fallback",
        "sides",
        "per image: --align auto used another landmarker than the template's own",
    ),
    Field(
        "align-estimated",
        "sides",
        "per image: some landmarks were guesses (Haar, or dlib points for an ArcFace template)",
    ),
    Field("attribute-vocabulary", "str", "vocabulary of A (models.attributes); missing = celeba30"),
    Field(
        "run-fingerprint",
        "str",
        "hash of the run's settings and weight files (resume accepts only its own)",
    ),
)
_BY_KEY = {f.key: f for f in FIELDS}
#: The keys of METHOD.md section 4 (a record of ours with similarities has all of them).
REQUIRED_KEYS: tuple[str, ...] = tuple(
    f.key for f in FIELDS if f.authors and f.key not in ("topk", "id_thresh")
)
SIMILARITY_KEYS: tuple[str, ...] = (
    "similarity",
    "attributes-image1",
    "attributes-image2",
    "attributes-both-masked",
)
#: Keys every analysis needs; ``TOP5_KEYS`` are needed on top of them by the top-5 figures.
CORE_KEYS: tuple[str, ...] = ("match", "similarity", "attributes-image1", "attributes-image2")
TOP5_KEYS: tuple[str, ...] = ("attributes-both-masked", "image-path1", "image-path2")
#: Settings keys kept in :attr:`PairRecord.meta` (they describe how a record was made).
META_KEYS: tuple[str, ...] = (
    "Datasets",
    "Heatmap-method",
    "thresh",
    "topk",
    "id_thresh",
    "verification-net",
    "strategy",
    "ablation",
    "Erasing-method",
    "attribute-vocabulary",
    "ranking",
    "discriminant",
)
#: Keys of the ranked word lists and the :attr:`PairRecord.words` name of each.
WORD_LISTS: dict[str, str] = {
    "words-image1": "image1",
    "words-image2": "image2",
    "words-pair": "pair",
}
#: Settings keys of the ranking that are strings when present.
_STRING_KEYS = ("ranking", "discriminant", "ranking-fill", "ranking-tie-break")
_COS_TOL = 1e-3  # float32 cosines may exceed 1 by rounding; anything further out is a bad value

# : The authors' no-attribute ablation records: one region (H_d > theta) per image, no attribute
# words.
NO_ATTRIBUTE = register_vocabulary(
    Vocabulary(
        name="no-attribute",
        attributes=("counterfactual region",),
        region_heads=frozenset({0}),
        description="the no-attribute ablation: one region per image, the discriminant map above "
        "theta",
    )
)


class RecordError(ValueError):
    """A JSON record that cannot be used; the message names the file and the key."""


# -----------------------------------------------------------------------------------------------
# writing
def make_record(
    ex: PairExplanation,
    config: Sim2WordConfig,
    *,
    datasets: str,
    recognition_net: str,
    attribute_net: str,
    verification_net: str,
    image_path1: str,
    image_path2: str,
    match: int,
    pair_index: int,
    vocabulary: str | None = None,
    ranking: WordRanking | None = None,
    alignment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the record of one explained pair (keys in :data:`FIELDS` order).

    Args:
        ex: the explanation (:func:`utils.explain.sim2word.explain_pair`).
        config: the config it was computed with.
        datasets: dataset label (``--Datasets``).
        recognition_net, attribute_net, verification_net: network names.
        image_path1, image_path2: the images' paths.
        match: 1 same person, 0 different.
        pair_index: the pair's index in its list.
        vocabulary: name of A's vocabulary (default: ``ex.vocabulary``'s, else ``"celeba30"``).
        ranking: the pair's ranked words (adds the keys of :func:`ranking_record_fields`); its
            discriminant must be ``config``'s.
        alignment: the ``align-*`` keys (:func:`utils.run.pipeline.alignment_fields`); absent
            when ``None``.

    Returns:
        A JSON-ready dict with only finite numbers. ``run-fingerprint`` is added by the run
        loop when it writes the record (:meth:`utils.run.folder.RunFolder.write_record`).
    """
    d1, d2 = ex.directions
    values: dict[str, Any] = {
        "Datasets": datasets,
        "Heatmap-method": config.heatmap_method,
        "thresh": float(config.thresh),
        "verification-net": verification_net,
        "image-path1": image_path1,
        "image-path2": image_path2,
        "match": int(match),
        "class1": [int(c) for c in ex.class1],
        "class2": [int(c) for c in ex.class2],
        "Attribute1-class": d1.attr_class.tolist(),
        "Attribute1-score": d1.attr_conf.tolist(),
        "Attribute2-class": d2.attr_class.tolist(),
        "Attribute2-score": d2.attr_conf.tolist(),
        "strategy": config.strategy,
        "ablation": config.ablation,
        "discriminant": config.discriminant,
        "recognition-net": recognition_net,
        "attribute-net": attribute_net,
        "Erasing-method": config.erasing_method,
        "seed": int(config.seed),
        "pair-index": int(pair_index),
        "same-top1": bool(ex.same_top1),
        "mask-fraction1": d1.masks.reshape(len(d1.masks), -1).mean(axis=1).tolist(),
        "mask-fraction2": d2.masks.reshape(len(d2.masks), -1).mean(axis=1).tolist(),
        "calculate-similarity": bool(config.calculate_similarity),
        "attribute-vocabulary": vocabulary
        or getattr(ex.vocabulary, "name", None)
        or DEFAULT_VOCABULARY,
    }
    if alignment is not None:
        values.update(alignment)
    if config.strategy == "threshold":
        values["id_thresh"] = float(config.id_thresh)
    else:
        values["topk"] = 1 if config.strategy == "sameid" else int(config.topk)
    if config.calculate_similarity:
        n = len(d1.attr_class)
        values["similarity"] = ex.similarity
        values["attributes-image1"] = {
            f"image1-f_attr_{j}": [float(d1.sim_own[j]), float(d1.sim_other[j])] for j in range(n)
        }
        values["attributes-image2"] = {
            f"image2-f_attr_{j}": [float(d2.sim_own[j]), float(d2.sim_other[j])] for j in range(n)
        }
        values["attributes-both-masked"] = {
            f"Both_masked-f_attr_{j}": float(ex.both_masked[j]) for j in range(n)
        }
    if ranking is not None:
        if ranking.discriminant != config.discriminant:
            raise ValueError(
                f"the ranking says discriminant {ranking.discriminant!r} but the explanation used "
                f"{config.discriminant!r}"
            )
        values.update(ranking_record_fields(ranking))
    unknown = sorted(set(values) - set(_BY_KEY))
    if unknown:  # every key must be declared in FIELDS (its place and type)
        raise KeyError(f"record keys {unknown} are not in records.FIELDS; add them there")
    rec = {f.key: values[f.key] for f in FIELDS if f.key in values}
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


# -----------------------------------------------------------------------------------------------
# reading
@dataclass(frozen=True)
class PairRecord:
    """One validated pair record.

    Attributes:
        name: file stem (``"12"`` for ``12.json``).
        path: the JSON file.
        match: 1 same identity, 0 different.
        similarity: cosine s of the two original images, in [-1, 1] (``None``: not computed).
        classes: predicted class of each head, per image: ``(cls1, cls2)``.
        erased: per image, ``{j: (sim to own original, sim to other image)}``.
        both_masked: ``{j: sim of erased image 1 vs erased image 2}`` (may be empty).
        image_paths: ``(image-path1, image-path2)``, ``None`` where absent.
        meta: the settings keys (:data:`META_KEYS`) that were present.
        vocabulary: the attribute vocabulary the heads belong to.
        class_sets: ``(class1, class2)`` identity class sets as flat lists (empty where absent).
        fingerprint: ``run-fingerprint`` (``None`` in the authors' records).
        pair_index: ``pair-index`` (``None`` where absent).
        confidences: ``(Attribute1-score, Attribute2-score)``: the softmax confidence of each
            head's predicted class, per image (empty where absent).
        words: the record's own ranked words, ``{"image1" | "image2" | "pair": [WordRank, ...]}``
            (keys ``words-image1`` ...); empty for records without them (the authors', and
            older ones: :mod:`utils.experiments.words` ranks those the paper's way).
        mask_fractions: ``(mask-fraction1, mask-fraction2)``: share of pixels erased per head
            (empty tuples where absent, e.g. the authors' records).
    """

    name: str
    path: Path
    match: int
    similarity: float | None
    classes: tuple[tuple[int, ...], tuple[int, ...]]
    erased: tuple[dict[int, tuple[float, float]], dict[int, tuple[float, float]]]
    both_masked: dict[int, float] = field(default_factory=dict)
    image_paths: tuple[str | None, str | None] = (None, None)
    meta: dict[str, Any] = field(default_factory=dict)
    vocabulary: Vocabulary = field(default_factory=lambda: get_vocabulary(None))
    class_sets: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())
    fingerprint: str | None = None
    pair_index: int | None = None
    confidences: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    words: dict[str, list[WordRank]] = field(default_factory=dict)
    mask_fractions: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())

    @property
    def n_heads(self) -> int:
        return len(self.vocabulary)

    def present(self, image: int) -> list[int]:
        """Indices of the attributes present in ``image`` (1 or 2), ascending."""
        cls = self.classes[image - 1]
        return [j for j in range(self.n_heads) if self.vocabulary.is_present(j, cls[j])]

    def word(self, image: int, j: int) -> str:
        """The word of head ``j`` in ``image`` (multi-class heads worded by their class)."""
        return self.vocabulary.word_for(j, self.classes[image - 1][j])


def _number(value: Any, where: str) -> float:
    """A finite float from a number or a (nested) one-element list; raises ``RecordError``."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{where}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise RecordError(f"{where}: non-finite value {value!r}")
    return value


def _cosine(value: Any, where: str) -> float:
    value = _number(value, where)
    if abs(value) > 1 + _COS_TOL:
        raise RecordError(f"{where}: cosine similarity {value!r} outside [-1, 1]")
    return value


def _match(value: Any) -> int:
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    if isinstance(value, (bool, int, float)) and float(value) in (0.0, 1.0):
        return int(value)
    raise RecordError(f"key 'match': expected 0 or 1, got {value!r}")


def _class_set(value: Any, key: str) -> tuple[int, ...]:
    """``class1``/``class2``: an int, a list or a nested list ``[[c, ...]]`` -> flat tuple of
    ints."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    items = value if isinstance(value, list) else [value]
    out = []
    for c in items:
        if isinstance(c, bool) or not isinstance(c, (int, float)) or c != int(c) or c < 0:
            raise RecordError(
                f"key {key!r}: expected non-negative integer class ids, got {value!r}"
            )
        out.append(int(c))
    return tuple(out)


def _head_classes(value: Any, key: str, vocab: Vocabulary) -> tuple[int, ...]:
    sizes = vocab.head_sizes
    if not isinstance(value, list) or len(value) != len(sizes):
        size = len(value) if isinstance(value, list) else type(value).__name__
        raise RecordError(
            f"key {key!r}: expected a list of {len(sizes)} class ids (vocabulary "
            f"{vocab.name!r}), got {size}"
        )
    out = []
    for j, raw in enumerate(value):
        c = _number(raw, f"key {key!r}[{j}]")
        if c != int(c) or not 0 <= c < sizes[j]:
            raise RecordError(
                f"key {key!r}[{j}]: class {c:g} not an integer in 0..{sizes[j] - 1} "
                f"for head {vocab.attributes[j]}"
            )
        out.append(int(c))
    return tuple(out)


def _head_scores(value: Any, key: str, n_heads: int) -> tuple[float, ...]:
    """``Attribute<i>-score``: one confidence in [0, 1] per head."""
    if not isinstance(value, list) or len(value) != n_heads:
        size = len(value) if isinstance(value, list) else type(value).__name__
        raise RecordError(f"key {key!r}: expected a list of {n_heads} confidences, got {size}")
    out = tuple(_number(v, f"key {key!r}[{j}]") for j, v in enumerate(value))
    bad = [j for j, c in enumerate(out) if not 0.0 <= c <= 1.0 + _COS_TOL]
    if bad:
        raise RecordError(f"key {key!r}[{bad[0]}]: confidence {out[bad[0]]!r} outside [0, 1]")
    return out


def _head_dict(
    value: Any, key: str, prefix: str, pair: bool, n_heads: int, unindexed: bool = False
) -> dict:
    if not isinstance(value, dict):
        raise RecordError(
            f"key {key!r}: expected an object {{'{prefix}<j>': ...}}, got {type(value).__name__}"
        )
    out: dict = {}
    pattern = re.compile(re.escape(prefix) + (r"(\d*)$" if unindexed else r"(\d+)$"))
    for name, v in value.items():
        m = pattern.match(name)
        j = (0 if m and m.group(1) == "" else int(m.group(1))) if m else -1
        if not 0 <= j < n_heads:
            raise RecordError(
                f"key {key!r}: entry {name!r} is not '{prefix}<j>' with j in 0..{n_heads - 1}"
            )
        where = f"key {key!r}[{name!r}]"
        if pair:
            if not isinstance(v, list) or len(v) != 2:
                raise RecordError(
                    f"{where}: expected [sim to own original, sim to other image], got {v!r}"
                )
            out[j] = (_cosine(v[0], where + "[0]"), _cosine(v[1], where + "[1]"))
        else:
            out[j] = _cosine(v, where)
    return out


def _words(value: Any, key: str, n_heads: int) -> list[WordRank]:
    """A ``words-*`` list (:func:`utils.explain.ranking.word_ranks_from_json`), indices checked."""
    try:
        words = word_ranks_from_json(value, f"key {key!r}")
    except ValueError as err:
        raise RecordError(str(err)) from None
    for k, w in enumerate(words):
        if w.attribute >= n_heads:
            raise RecordError(
                f"key {key!r}[{k}]: index {w.attribute} not a head of the vocabulary "
                f"(0..{n_heads - 1})"
            )
    return words


def _fractions(value: Any, i: int, n_heads: int) -> tuple[float, ...]:
    """``mask-fraction<i>``: one share in [0, 1] per head (absent: empty)."""
    if value is None:
        return ()
    key = f"mask-fraction{i}"
    if not isinstance(value, list) or len(value) != n_heads:
        raise RecordError(f"key {key!r}: expected a list of {n_heads} numbers, got {value!r}")
    out = tuple(_number(v, f"key {key!r}[{j}]") for j, v in enumerate(value))
    if any(not 0.0 <= v <= 1.0 for v in out):
        raise RecordError(f"key {key!r}: shares must lie in [0, 1], got {value!r}")
    return out


def _is_authors_no_attribute(data: dict) -> bool:
    """The authors' no-attribute ablation record: no attribute classes, one unindexed region per
    image."""
    erased = data.get("attributes-image1")
    return (
        "Attribute1-class" not in data
        and isinstance(erased, dict)
        and set(erased) <= {"image1-f_attr_"}
    )


def parse_record(data: Any, path: str | Path, required: Sequence[str] = CORE_KEYS) -> PairRecord:
    """Validate one decoded JSON record.

    Args:
        data: the decoded JSON (must be an object).
        path: the file it came from (named in errors).
        required: keys that must be present (default :data:`CORE_KEYS`, what every analysis needs);
            the other known keys are validated when present.

    Returns:
        The :class:`PairRecord`.

    Raises:
        RecordError: naming the file, the key and the bad value.
    """
    path = Path(path)
    try:
        if not isinstance(data, dict):
            raise RecordError(f"expected a JSON object at top level, got {type(data).__name__}")
        missing = [k for k in dict.fromkeys(required) if k not in data]
        if missing:
            raise RecordError(f"missing key(s) {', '.join(repr(k) for k in missing)}")
        for key in (
            "image-path1",
            "image-path2",
            "attribute-vocabulary",
            "run-fingerprint",
            *_STRING_KEYS,
        ):
            if key in data and not isinstance(data[key], str):
                raise RecordError(f"key {key!r}: expected a string, got {data[key]!r}")
        unindexed = _is_authors_no_attribute(data)
        if unindexed:
            vocab, classes = NO_ATTRIBUTE, ((0,), (0,))
        else:
            try:
                vocab = get_vocabulary(data.get("attribute-vocabulary"))
            except ValueError as err:
                raise RecordError(f"key 'attribute-vocabulary': {err}") from None
            if "Attribute1-class" not in data or "Attribute2-class" not in data:
                raise RecordError("missing key(s) 'Attribute1-class'/'Attribute2-class'")
            classes = (
                _head_classes(data["Attribute1-class"], "Attribute1-class", vocab),
                _head_classes(data["Attribute2-class"], "Attribute2-class", vocab),
            )
        n = len(vocab)
        erased = tuple(
            _head_dict(
                data.get(f"attributes-image{i}", {}),
                f"attributes-image{i}",
                f"image{i}-f_attr_",
                True,
                n,
                unindexed,
            )
            for i in (1, 2)
        )
        both = _head_dict(
            data.get("attributes-both-masked", {}),
            "attributes-both-masked",
            "Both_masked-f_attr_",
            False,
            n,
            unindexed,
        )
        sets = tuple(_class_set(data[k], k) if k in data else () for k in ("class1", "class2"))
        confidences = tuple(
            _head_scores(data[k], k, n) if k in data and not unindexed else ()
            for k in ("Attribute1-score", "Attribute2-score")
        )
        words = {name: _words(data[key], key, n) for key, name in WORD_LISTS.items() if key in data}
        index = data.get("pair-index")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise RecordError(f"key 'pair-index': expected an integer, got {index!r}")
        fractions = tuple(_fractions(data.get(f"mask-fraction{i}"), i, n) for i in (1, 2))
        return PairRecord(
            name=path.stem,
            path=path,
            match=_match(data["match"]) if "match" in data else -1,
            similarity=_cosine(data["similarity"], "key 'similarity'")
            if "similarity" in data
            else None,
            classes=classes,
            erased=(erased[0], erased[1]),
            both_masked=both,
            image_paths=(data.get("image-path1"), data.get("image-path2")),
            meta={k: data[k] for k in META_KEYS if k in data},
            vocabulary=vocab,
            class_sets=(sets[0], sets[1]),
            fingerprint=data.get("run-fingerprint"),
            pair_index=index,
            confidences=(confidences[0], confidences[1]),
            words=words,
            mask_fractions=(fractions[0], fractions[1]),
        )
    except RecordError as err:
        raise RecordError(f"{path}: {err}") from None


def read_record(path: str | Path, required: Sequence[str] = CORE_KEYS) -> PairRecord:
    """Read and validate one JSON file; any problem becomes a ``RecordError`` naming the file."""
    path = Path(path)
    try:
        data = safejson.load_json_file(path)
    except json.JSONDecodeError as err:  # also safejson's JSONInputError (too deep, too big)
        raise RecordError(f"{path}: malformed JSON ({err})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    return parse_record(data, path, required)


def is_done(path: str | Path) -> bool:
    """Whether ``path`` holds a readable pair record (the run loop's resume checks more:
    :mod:`utils.run.folder`)."""
    try:
        read_record(path, required=("match",))
    except RecordError:
        return False
    return True
