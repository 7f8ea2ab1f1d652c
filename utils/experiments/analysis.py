"""Analysis of the per-pair JSON records (METHOD.md sections 4 and 5).

Everything the ``results/`` scripts compute lives here; the scripts only parse
flags, call these functions and write files. Nothing here loads a network.

Definitions (s = the cosine similarity stored in a record):

* **Verification score** ``score(s) = 1 - arccos(clip(s, -1, 1)) / pi`` in
  [0, 1]; monotone in s, so rankings by s and by score agree.
* **Present attribute** of image i: one of the four multi-class heads
  (0 Gender, 1 Age, 2 Race, 8 Hair color) or a binary head whose predicted
  class (``Attribute<i>-class[j]``) is 0 (:func:`models.attributes.is_present`).
  A present attribute whose ``image<i>-f_attr_<j>`` entry is missing (e.g. its
  mask was empty) is *not available*: it is skipped, not an error.
* **Original** samples: every pair gives TWO samples (one per image), both with
  score ``score(s)`` and label ``match``.
* **After** samples (the mask game): a genuine pair (match 1) keeps
  ``score(s)`` for both images. For an impostor pair (match 0) image i's sample
  is ``max(score(s), max_j score(attributes-image<i>[f_attr_j][1]))`` over image
  i's present, available attributes j (the similarity of image i with
  attribute j erased to the *other* original image).
* **Per attribute j** (``AUC_in_attributes``): genuine pairs keep ``score(s)``;
  an impostor image i's sample is ``score(attributes-image<i>[f_attr_j][1])``
  when j is present and available in image i, else ``score(s)`` (replaced, not
  maxed: erasing may also lower the similarity).
* **ROC**: ``sklearn.metrics.roc_auc_score`` (ties count one half) and
  ``roc_curve(..., drop_intermediate=False)``. **TPR at FPR f** is step
  interpolated, never linear: the largest TPR among the ROC points (one per
  distinct score threshold, plus the all-negative point) whose FPR <= f, i.e.
  the operating point with the lowest threshold that still keeps FPR <= f.
  With one class only, AUC and TPRs are undefined and reported as ``None``
  (``null`` in JSON, "n/a" in tables), never NaN.
"""
from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from models.attributes import ATTRIBUTES, CLASS_WORDS, HEAD_SIZES, NUM_ATTRIBUTES, is_present, word_for
from utils.explain.ranking import word_ranks_from_json

FPR_TARGETS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Keys every analysis needs; ``TOP5_KEYS`` are needed on top of them by the top-5 figures.
CORE_KEYS: tuple[str, ...] = (
    "match", "similarity", "Attribute1-class", "Attribute2-class", "attributes-image1", "attributes-image2",
)
TOP5_KEYS: tuple[str, ...] = ("attributes-both-masked", "image-path1", "image-path2")
META_KEYS: tuple[str, ...] = ("Datasets", "Heatmap-method", "thresh", "topk", "id_thresh", "verification-net",
                             "strategy", "ablation", "Erasing-method", "ranking", "discriminant")
_COS_TOL = 1e-3  # float32 cosines may exceed 1 by rounding; anything further out is a bad value


class RecordError(ValueError):
    """A JSON record that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class PairRecord:
    """One validated pair record.

    Attributes:
        name: file stem (``"12"`` for ``12.json``).
        path: the JSON file.
        match: 1 same identity, 0 different.
        similarity: cosine s of the two original images, in [-1, 1].
        classes: predicted class of each of the 30 heads, per image: ``(cls1, cls2)``.
        erased: per image, ``{j: (sim to own original, sim to other image)}``.
        both_masked: ``{j: sim of erased image 1 vs erased image 2}`` (may be empty).
        image_paths: ``(image-path1, image-path2)``, ``None`` where absent.
        meta: the settings keys (``Datasets``, ``thresh``...) that were present.
        words: the record's own ranked words, ``{"image1" | "image2" | "pair": [WordRank, ...]}``
            (keys ``words-image1`` ... of :func:`utils.explain.ranking.ranking_record_fields`);
            empty for records without them (the authors', and older ones).
    """

    name: str
    path: Path
    match: int
    similarity: float
    classes: tuple[tuple[int, ...], tuple[int, ...]]
    erased: tuple[dict[int, tuple[float, float]], dict[int, tuple[float, float]]]
    both_masked: dict[int, float] = field(default_factory=dict)
    image_paths: tuple[str | None, str | None] = (None, None)
    meta: dict[str, Any] = field(default_factory=dict)
    words: dict[str, list] = field(default_factory=dict)

    def present(self, image: int) -> list[int]:
        """Indices of the attributes present in ``image`` (1 or 2), ascending."""
        cls = self.classes[image - 1]
        return [j for j in range(NUM_ATTRIBUTES) if is_present(j, cls[j])]


# ----------------------------------------------------------------------------- parsing
def natural_key(path: Path) -> tuple:
    """Sort key putting ``2.json`` before ``10.json`` (digit runs compared as numbers)."""
    parts = re.split(r"(\d+)", path.name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def list_json(folder: str | Path) -> list[Path]:
    """The ``*.json`` files of ``folder`` in natural order; raises if the folder is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"JSON folder {folder} does not exist; pass the `json` folder written by the "
                                "experiment scripts with --Json-fold")
    return sorted((p for p in folder.glob("*.json") if p.is_file()), key=natural_key)


def _float(value: Any, where: str) -> float:
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
    value = _float(value, where)
    if abs(value) > 1 + _COS_TOL:
        raise RecordError(f"{where}: cosine similarity {value!r} outside [-1, 1]")
    return value


def _match(value: Any) -> int:
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    if isinstance(value, (bool, int, float)) and float(value) in (0.0, 1.0):
        return int(value)
    raise RecordError(f"key 'match': expected 0 or 1, got {value!r}")


def _classes(value: Any, key: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) != NUM_ATTRIBUTES:
        size = len(value) if isinstance(value, list) else type(value).__name__
        raise RecordError(f"key {key!r}: expected a list of {NUM_ATTRIBUTES} class ids, got {size}")
    out = []
    for j, c in enumerate(value):
        c = _float(c, f"key {key!r}[{j}]")
        if c != int(c) or not 0 <= c < HEAD_SIZES[j]:
            raise RecordError(f"key {key!r}[{j}]: class {c:g} not an integer in 0..{HEAD_SIZES[j] - 1} "
                              f"for head {ATTRIBUTES[j]}")
        out.append(int(c))
    return tuple(out)


def _attr_dict(value: Any, key: str, prefix: str, pair: bool) -> dict:
    if not isinstance(value, dict):
        raise RecordError(f"key {key!r}: expected an object {{'{prefix}<j>': ...}}, got {type(value).__name__}")
    out: dict = {}
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    for name, v in value.items():
        m = pattern.match(name)
        if m is None or int(m.group(1)) >= NUM_ATTRIBUTES:
            raise RecordError(f"key {key!r}: entry {name!r} is not '{prefix}<j>' with j in 0..{NUM_ATTRIBUTES - 1}")
        where = f"key {key!r}[{name!r}]"
        if pair:
            if not isinstance(v, list) or len(v) != 2:
                raise RecordError(f"{where}: expected [sim to own original, sim to other image], got {v!r}")
            out[int(m.group(1))] = (_cosine(v[0], where + "[0]"), _cosine(v[1], where + "[1]"))
        else:
            out[int(m.group(1))] = _cosine(v, where)
    return out


def parse_record(data: Any, path: str | Path, required: Sequence[str] = ()) -> PairRecord:
    """Validate one decoded JSON record.

    Args:
        data: the decoded JSON (must be an object).
        path: the file it came from (named in errors).
        required: keys needed on top of ``CORE_KEYS`` (e.g. ``TOP5_KEYS``); other known
            keys (``attributes-both-masked``, ``image-path1/2``) are validated when present.

    Returns:
        The :class:`PairRecord`.

    Raises:
        RecordError: naming the file, the key and the bad value.
    """
    path = Path(path)
    try:
        if not isinstance(data, dict):
            raise RecordError(f"expected a JSON object at top level, got {type(data).__name__}")
        missing = [k for k in dict.fromkeys((*CORE_KEYS, *required)) if k not in data]
        if missing:
            raise RecordError(f"missing key(s) {', '.join(repr(k) for k in missing)}")
        classes = (_classes(data["Attribute1-class"], "Attribute1-class"),
                   _classes(data["Attribute2-class"], "Attribute2-class"))
        erased = tuple(_attr_dict(data[f"attributes-image{i}"], f"attributes-image{i}",
                                  f"image{i}-f_attr_", pair=True) for i in (1, 2))
        both = _attr_dict(data.get("attributes-both-masked", {}), "attributes-both-masked",
                          "Both_masked-f_attr_", pair=False)
        paths = []
        for i in (1, 2):
            p = data.get(f"image-path{i}")
            if p is not None and not isinstance(p, str):
                raise RecordError(f"key 'image-path{i}': expected a string, got {p!r}")
            paths.append(p)
        words = {}
        for name in ("image1", "image2", "pair"):
            if f"words-{name}" in data:
                try:
                    words[name] = word_ranks_from_json(data[f"words-{name}"], f"key 'words-{name}'")
                except ValueError as err:
                    raise RecordError(str(err)) from None
        return PairRecord(
            name=path.stem, path=path, match=_match(data["match"]),
            similarity=_cosine(data["similarity"], "key 'similarity'"),
            classes=classes, erased=erased, both_masked=both, image_paths=(paths[0], paths[1]),
            meta={k: data[k] for k in META_KEYS if k in data}, words=words,
        )
    except RecordError as err:
        raise RecordError(f"{path}: {err}") from None


def read_record(path: str | Path, required: Sequence[str] = ()) -> PairRecord:
    """Read and validate one JSON file; any problem becomes a ``RecordError`` naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: malformed JSON ({err})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(f"{path}: cannot read ({err})") from None
    return parse_record(data, path, required)


def load_records(paths: Iterable[Path], required: Sequence[str] = (),
                 progress: bool = True) -> tuple[list[PairRecord], list[dict[str, str]]]:
    """Read many records, skipping bad ones.

    Returns:
        ``(records, failures)``; each failure is ``{"file": ..., "error": ...}``
        and is also printed as it happens.
    """
    from tqdm import tqdm

    records, failures = [], []
    for path in tqdm(list(paths), desc="records", unit="file", disable=not progress):
        try:
            records.append(read_record(path, required))
        except RecordError as err:
            tqdm.write(f"skipping {err}")
            failures.append({"file": str(path), "error": str(err)})
    return records, failures


# ----------------------------------------------------------------------------- scores and ROC
def verification_score(s: Any) -> np.ndarray:
    """``1 - arccos(clip(s, -1, 1)) / pi`` elementwise: cosine in [-1, 1] -> score in [0, 1]."""
    return 1.0 - np.arccos(np.clip(np.asarray(s, dtype=np.float64), -1.0, 1.0)) / np.pi


def _available(rec: PairRecord, image: int) -> dict[int, float]:
    """``{j: sim of image erased at j to the other image}`` over present, available attributes."""
    cls, erased = rec.classes[image - 1], rec.erased[image - 1]
    return {j: v[1] for j, v in sorted(erased.items()) if is_present(j, cls[j])}


@dataclass(frozen=True)
class SampleTable:
    """The records as arrays, built once (:func:`sample_table`) for the vectorised sample rules.

    Attributes:
        similarity: ``(N,)`` cosine s of each pair.
        match: ``(N,)`` int labels.
        erased: ``(N, 2, 30)`` sim of image i erased at attribute j to the other image (0 where unavailable).
        available: ``(N, 2, 30)`` bool, attribute j present in image i and recorded.
    """

    similarity: np.ndarray
    match: np.ndarray
    erased: np.ndarray
    available: np.ndarray


def sample_table(records: Sequence[PairRecord] | SampleTable) -> SampleTable:
    """Arrays of :class:`SampleTable` from records (a table is returned unchanged)."""
    if isinstance(records, SampleTable):
        return records
    n = len(records)
    erased = np.zeros((n, 2, NUM_ATTRIBUTES))
    available = np.zeros((n, 2, NUM_ATTRIBUTES), dtype=bool)
    for k, r in enumerate(records):
        for i in (0, 1):
            for j, v in _available(r, i + 1).items():
                erased[k, i, j], available[k, i, j] = v, True
    return SampleTable(np.array([r.similarity for r in records], dtype=np.float64),
                       np.array([r.match for r in records], dtype=int), erased, available)


def original_samples(records: Sequence[PairRecord] | SampleTable) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(2N,)`` and labels ``(2N,)``: each pair twice (image 1 then image 2), score(s)."""
    t = sample_table(records)
    return verification_score(np.repeat(t.similarity, 2)), np.repeat(t.match, 2)


def after_samples(records: Sequence[PairRecord] | SampleTable) -> tuple[np.ndarray, np.ndarray]:
    """The mask game's "After" scores ``(2N,)`` and labels ``(2N,)`` (see the module docstring).

    Order: pair 0 image 1, pair 0 image 2, pair 1 image 1, ...
    """
    t = sample_table(records)
    s = np.repeat(t.similarity[:, None], 2, axis=1)  # (N, 2)
    best = np.where(t.available, t.erased, -np.inf).max(axis=2)  # (N, 2); -inf: nothing available
    after = np.where((t.match == 0)[:, None], np.maximum(s, best), s)
    return verification_score(after.reshape(-1)), np.repeat(t.match, 2)


def attribute_samples(records: Sequence[PairRecord] | SampleTable, j: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores and labels ``(2N,)`` with attribute ``j`` erased in impostor images, plus how many changed."""
    t = sample_table(records)
    use = t.available[:, :, j] & (t.match == 0)[:, None]  # (N, 2)
    sims = np.where(use, t.erased[:, :, j], t.similarity[:, None])
    return verification_score(sims.reshape(-1)), np.repeat(t.match, 2), int(use.sum())


def fpr_label(f: float) -> str:
    """``1e-06 -> '1e-6'``, ``1e-3 -> '1e-3'``, ``0.1 -> '0.1'``, ``1.0 -> '1'``."""
    return re.sub(r"e-0*(\d)", r"e-\1", f"{f:.0e}") if 0 < f < 0.01 else f"{f:g}"


def roc_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(fpr, tpr)`` of every threshold (none dropped), or ``None`` with one class only."""
    from sklearn.metrics import roc_curve

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return None
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return fpr, tpr


def roc_summary(scores: np.ndarray, labels: np.ndarray, targets: Sequence[float] = FPR_TARGETS) -> dict[str, Any]:
    """ROC AUC and TPR at each target FPR (step rule of the module docstring).

    Args:
        scores: ``(M,)`` verification scores (higher = more likely the same person).
        labels: ``(M,)`` 1 genuine, 0 impostor.
        targets: FPR targets.

    Returns:
        ``{"auc": float | None, "tpr_at_fpr": {"1e-6": float | None, ...}, "n_genuine": int, "n_impostor": int}``.
    """
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(int)
    out: dict[str, Any] = {"auc": None, "tpr_at_fpr": {fpr_label(f): None for f in targets},
                           "n_genuine": int((labels == 1).sum()), "n_impostor": int((labels == 0).sum())}
    points = roc_points(scores, labels)
    if points is None:
        return out
    fpr, tpr = points
    out["auc"] = float(roc_auc_score(labels, scores))
    for f in targets:
        out["tpr_at_fpr"][fpr_label(f)] = float(tpr[fpr <= f + 1e-12].max())
    return out


# ----------------------------------------------------------------------------- words
@dataclass(frozen=True)
class RankedWord:
    """One ranked attribute word: head index, word, raw cosine and its [0, 1] score."""

    attribute: int
    word: str
    similarity: float
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"attribute": ATTRIBUTES[self.attribute], "index": self.attribute, "word": self.word,
                "similarity": self.similarity, "score": self.score}


def _rank(values: dict[int, float], words: dict[int, str], k: int | None) -> list[RankedWord]:
    # Descending by value; ties broken by attribute index so the order is deterministic.
    order = sorted(values, key=lambda j: (-values[j], j))[:k]
    return [RankedWord(j, words[j], values[j], float(verification_score(values[j]))) for j in order]


def top_words(rec: PairRecord, image: int, k: int | None = 5) -> list[RankedWord]:
    """Image ``image``'s present attributes ranked by sim(erased image, other image), top ``k``.

    The attribute whose removal makes the image look most like the other image
    explains best why they differ (METHOD.md section 3 step 8).
    """
    cls = rec.classes[image - 1]
    values = _available(rec, image)
    return _rank(values, {j: word_for(j, cls[j]) for j in values}, k)


def both_masked_word(rec: PairRecord, j: int) -> str:
    """Word of attribute ``j`` for the both-masked ranking: image 1's word if present there, else image 2's;
    ``"w1 / w2"`` when the two images word a multi-class head differently (e.g. ``"Male / Female"``)."""
    words = [word_for(j, c[j]) for c in rec.classes if is_present(j, c[j])]
    return " / ".join(dict.fromkeys(words))


def both_masked_top(rec: PairRecord, k: int | None = 5) -> list[RankedWord]:
    """Attributes present in either image ranked by sim(erased image 1, erased image 2), top ``k``."""
    values = {j: v for j, v in rec.both_masked.items()
              if is_present(j, rec.classes[0][j]) or is_present(j, rec.classes[1][j])}
    return _rank(values, {j: both_masked_word(rec, j) for j in values}, k)


def top1_statistics(records: Sequence[PairRecord], match: int | None = 0) -> dict[str, Any]:
    """Count how often each attribute (and each class word) is an image's top-1 word.

    Args:
        records: the pairs.
        match: use only pairs with this label (0 impostor, the paper's setting); ``None`` for all.

    Returns:
        ``{"n_pairs", "n_images", "n_without_word", "by_attribute": [{attribute, index, count, fraction}],
        "by_word": [{word, attribute, index, class, count, fraction}]}``; lists sorted by count
        descending, ties by attribute index then class. ``by_attribute`` lists all 30 heads;
        ``by_word`` only words seen at least once. Fractions are over images that have a word.
    """
    by_attr = np.zeros(NUM_ATTRIBUTES, dtype=int)
    by_word: dict[tuple[int, int], int] = {}
    pairs = [r for r in records if match is None or r.match == match]
    none = 0
    for r in pairs:
        for i in (1, 2):
            top = top_words(r, i, k=1)
            if not top:
                none += 1
                continue
            j = top[0].attribute
            by_attr[j] += 1
            key = (j, r.classes[i - 1][j])
            by_word[key] = by_word.get(key, 0) + 1
    n_words = int(by_attr.sum())
    frac = (lambda c: c / n_words) if n_words else (lambda c: 0.0)
    attrs = sorted(range(NUM_ATTRIBUTES), key=lambda j: (-by_attr[j], j))
    words = sorted(by_word, key=lambda key: (-by_word[key], key))
    return {
        "n_pairs": len(pairs), "n_images": 2 * len(pairs), "n_without_word": none,
        "by_attribute": [{"attribute": ATTRIBUTES[j], "index": j, "count": int(by_attr[j]),
                          "fraction": frac(int(by_attr[j]))} for j in attrs],
        "by_word": [{"word": word_for(j, c), "attribute": ATTRIBUTES[j], "index": j,
                     "class": c if j in CLASS_WORDS else None, "count": by_word[(j, c)],
                     "fraction": frac(by_word[(j, c)])} for j, c in words],
    }


# ----------------------------------------------------------------------------- tables and CLI plumbing
def fmt(value: float | None, digits: int = 4) -> str:
    """A table cell: ``"n/a"`` for ``None``, else fixed ``digits`` decimals."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def roc_header(targets: Sequence[float] = FPR_TARGETS) -> list[str]:
    """Column names of a ROC table: ``AUC`` then ``TPR@FPR=<f>`` per target."""
    return ["AUC"] + [f"TPR@FPR={fpr_label(f)}" for f in targets]


def roc_cells(summary: dict[str, Any], digits: int | None = 4) -> list[Any]:
    """A :func:`roc_summary` as cells matching :func:`roc_header` (raw numbers when ``digits`` is None)."""
    values = [summary["auc"], *summary["tpr_at_fpr"].values()]
    return values if digits is None else [fmt(v, digits) for v in values]


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table with padded columns.

    Args:
        header: column names.
        rows: cells (``str()`` is applied).
        align: one ``"l"``/``"r"`` per column; default: first column left, the rest right.
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    align = align or "l" + "r" * (len(header) - 1)

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)) + " |"

    rule = "|" + "|".join("-" * (w + 2) if a == "l" else "-" * (w + 1) + ":" for w, a in zip(widths, align)) + "|"
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]]) + "\n"


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV text; ``None`` becomes an empty cell, floats keep full precision."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if c is None else repr(c) if isinstance(c, float) else c for c in row])
    return buf.getvalue()


def add_common_args(parser) -> None:
    """``--Json-fold``, ``--output`` and ``--progress/--no-progress``, shared by every results script."""
    import argparse

    parser.add_argument("--Json-fold", "--json-fold", dest="json_fold", required=True, type=Path,
                        help="folder of per-pair records <n>.json written by the experiment scripts "
                             "(the `json` folder of a run)")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for tables and figures (default: <Json-fold>/../analysis)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show a progress bar over the files (default: on)")


def output_dir(args) -> Path:
    """``args.output`` or ``<Json-fold>/../analysis``, created."""
    out = args.output if args.output is not None else Path(args.json_fold).resolve().parent / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_from_args(args, required: Sequence[str] = ()) -> tuple[list[PairRecord], list[dict[str, str]], int]:
    """List and read ``args.json_fold``.

    Returns:
        ``(records, failures, n_files)``.

    Raises:
        SystemExit(2): the folder is missing or holds no ``*.json``.
    """
    try:
        paths = list_json(args.json_fold)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if not paths:
        print(f"error: no *.json files in {args.json_fold}; expected the per-pair records <n>.json "
              "(pass the run's `json` folder)", file=sys.stderr)
        raise SystemExit(2)
    records, failures = load_records(paths, required, progress=args.progress)
    return records, failures, len(paths)


def finish(output: Path, script: str, failures: list[dict[str, str]], n_files: int) -> int:
    """Write ``failures-<script>.jsonl`` (one line per skipped file, empty if none), print the count.

    Returns:
        The exit status: 0 when every file was used, 3 when some were skipped.
    """
    from utils.base.atomic import atomic_write_text

    lines = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures)
    path = atomic_write_text(output / f"failures-{script}.jsonl", lines)
    if failures:
        print(f"skipped {len(failures)} of {n_files} files (reasons in {path}; fix or remove them and rerun "
              "to include them)")
        return 3
    print(f"used all {n_files} files")
    return 0


def distinct_settings(records: Sequence[PairRecord]) -> list[dict[str, Any]]:
    """The distinct ``meta`` dicts (``Datasets``, ``thresh``...) of the records, in first-seen order.

    Values that strict JSON cannot hold (NaN, infinity) are turned into strings.
    """
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        try:
            key = json.dumps(r.meta, sort_keys=True, allow_nan=False)
            value = r.meta
        except ValueError:
            value = {k: str(v) for k, v in r.meta.items()}
            key = json.dumps(value, sort_keys=True)
        seen.setdefault(key, value)
    return list(seen.values())
