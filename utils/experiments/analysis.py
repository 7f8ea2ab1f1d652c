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
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.attributes import Vocabulary, get_vocabulary
from utils.base.tables import format_table
from utils.explain.ranking import verification_score
from utils.run.cli import FIGURE_EXIT_STATUS, add_json_fold, add_output_dir, add_progress
from utils.run.records import CORE_KEYS, TOP5_KEYS, PairRecord, RecordError, read_record

__all__ = [
    "CORE_KEYS",
    "FPR_TARGETS",
    "TOP5_KEYS",
    "PairRecord",
    "RankedWord",
    "RecordError",
    "SampleTable",
    "after_samples",
    "attribute_samples",
    "both_masked_top",
    "both_masked_word",
    "common_vocabulary",
    "csv_text",
    "distinct_settings",
    "finish",
    "fmt",
    "format_table",
    "list_json",
    "load_from_args",
    "load_records",
    "original_samples",
    "read_record",
    "roc_cells",
    "roc_header",
    "roc_points",
    "roc_summary",
    "sample_table",
    "top_words",
    "verification_score",
]

FPR_TARGETS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


def natural_key(path: Path) -> tuple:
    """Sort key putting ``2.json`` before ``10.json`` (digit runs compared as numbers)."""
    parts = re.split(r"(\d+)", path.name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def list_json(folder: str | Path) -> list[Path]:
    """The ``*.json`` files of ``folder`` in natural order; raises if the folder is missing.

    A run folder (one holding ``json/``, beside its ``config.json`` and ``summary.json``) is read
    through its ``json`` folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"JSON folder {folder} does not exist; pass the run folder written by the "
            "experiment scripts (or its `json` folder) with --Json-fold"
        )
    if (folder / "json").is_dir():
        folder = folder / "json"
    return sorted((p for p in folder.glob("*.json") if p.is_file()), key=natural_key)


def load_records(
    paths: Iterable[Path], required: Sequence[str] = (), progress: bool = True
) -> tuple[list[PairRecord], list[dict[str, str]]]:
    """Read many records (:func:`utils.run.records.read_record`), skipping bad ones.

    Args:
        paths: the files.
        required: keys needed on top of :data:`CORE_KEYS`.
        progress: show a progress bar.

    Returns:
        ``(records, failures)``; each failure is ``{"file": ..., "error": ...}``
        and is also printed as it happens.
    """
    from tqdm import tqdm

    records, failures = [], []
    for path in tqdm(list(paths), desc="records", unit="file", disable=not progress):
        try:
            records.append(read_record(path, (*CORE_KEYS, *required)))
        except RecordError as err:
            tqdm.write(f"skipping {err}")
            failures.append({"file": str(path), "error": str(err)})
    return records, failures


def common_vocabulary(records: Sequence[PairRecord]) -> Vocabulary:
    """The one vocabulary of ``records`` (``celeba30`` when there are none).

    Raises:
        RecordError: the records mix vocabularies (per-attribute results would mix different heads).
    """
    names = sorted({r.vocabulary.name for r in records})
    if len(names) > 1:
        raise RecordError(
            f"the records use {len(names)} attribute vocabularies ({', '.join(names)}); "
            "analyse the runs of each attribute net separately"
        )
    return records[0].vocabulary if records else get_vocabulary(None)


# ----------------------------------------------------------------------------- scores and ROC
def _available(rec: PairRecord, image: int) -> dict[int, float]:
    """``{j: sim of image erased at j to the other image}`` over present, available attributes."""
    cls, erased = rec.classes[image - 1], rec.erased[image - 1]
    return {j: v[1] for j, v in sorted(erased.items()) if rec.vocabulary.is_present(j, cls[j])}


@dataclass(frozen=True)
class SampleTable:
    """The records as arrays, built once (:func:`sample_table`) for the vectorised sample rules.

    Attributes:
        similarity: ``(N,)`` cosine s of each pair.
        match: ``(N,)`` int labels.
        erased: ``(N, 2, K)`` sim of image i erased at attribute j to the other image (0 where
        unavailable);
            K = the largest number of heads of the records' vocabularies.
        available: ``(N, 2, K)`` bool, attribute j present in image i and recorded.
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
    heads = max((r.n_heads for r in records), default=0)
    erased = np.zeros((n, 2, heads))
    available = np.zeros((n, 2, heads), dtype=bool)
    for k, r in enumerate(records):
        for i in (0, 1):
            for j, v in _available(r, i + 1).items():
                erased[k, i, j], available[k, i, j] = v, True
    return SampleTable(
        np.array([r.similarity for r in records], dtype=np.float64),
        np.array([r.match for r in records], dtype=int),
        erased,
        available,
    )


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


def attribute_samples(
    records: Sequence[PairRecord] | SampleTable, j: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores and labels ``(2N,)`` with attribute ``j`` erased in impostor images, plus how many
    changed."""
    t = sample_table(records)
    if j >= t.erased.shape[2]:  # a head no record has: nothing erased
        return original_samples(t) + (0,)
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


def roc_summary(
    scores: np.ndarray, labels: np.ndarray, targets: Sequence[float] = FPR_TARGETS
) -> dict[str, Any]:
    """ROC AUC and TPR at each target FPR (step rule of the module docstring).

    Args:
        scores: ``(M,)`` verification scores (higher = more likely the same person).
        labels: ``(M,)`` 1 genuine, 0 impostor.
        targets: FPR targets.

    Returns:
        ``{"auc": float | None, "tpr_at_fpr": {"1e-6": float | None, ...}, "n_genuine": int,
        "n_impostor": int}``.
    """
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(int)
    out: dict[str, Any] = {
        "auc": None,
        "tpr_at_fpr": {fpr_label(f): None for f in targets},
        "n_genuine": int((labels == 1).sum()),
        "n_impostor": int((labels == 0).sum()),
    }
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
    """One ranked attribute word: head index, word, raw cosine, its [0, 1] score and the head's
    name."""

    attribute: int
    word: str
    similarity: float
    score: float
    name: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.name,
            "index": self.attribute,
            "word": self.word,
            "similarity": self.similarity,
            "score": self.score,
        }


def _rank(
    values: dict[int, float], words: dict[int, str], k: int | None, vocab: Vocabulary
) -> list[RankedWord]:
    # Descending by value; ties broken by attribute index so the order is deterministic.
    order = sorted(values, key=lambda j: (-values[j], j))[:k]
    return [
        RankedWord(
            j, words[j], values[j], float(verification_score(values[j])), vocab.attributes[j]
        )
        for j in order
    ]


def top_words(rec: PairRecord, image: int, k: int | None = 5) -> list[RankedWord]:
    """Image ``image``'s present attributes ranked by sim(erased image, other image), top ``k``.

    The attribute whose removal makes the image look most like the other image
    explains best why they differ (METHOD.md section 3 step 8).
    """
    values = _available(rec, image)
    return _rank(values, {j: rec.word(image, j) for j in values}, k, rec.vocabulary)


def both_masked_word(rec: PairRecord, j: int) -> str:
    """Word of attribute ``j`` for the both-masked ranking: image 1's word if present there, else
    image 2's;
    ``"w1 / w2"`` when the two images word a multi-class head differently (e.g. ``"Male /
    Female"``)."""
    vocab = rec.vocabulary
    words = [vocab.word_for(j, c[j]) for c in rec.classes if vocab.is_present(j, c[j])]
    return " / ".join(dict.fromkeys(words))


def both_masked_top(rec: PairRecord, k: int | None = 5) -> list[RankedWord]:
    """Attributes present in either image ranked by sim(erased image 1, erased image 2), top
    ``k``."""
    vocab = rec.vocabulary
    values = {
        j: v
        for j, v in rec.both_masked.items()
        if vocab.is_present(j, rec.classes[0][j]) or vocab.is_present(j, rec.classes[1][j])
    }
    return _rank(values, {j: both_masked_word(rec, j) for j in values}, k, vocab)


# ----------------------------------------------------------------------------- tables and CLI
# plumbing
def fmt(value: float | None, digits: int = 4) -> str:
    """A table cell: ``"n/a"`` for ``None``, else fixed ``digits`` decimals."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def roc_header(targets: Sequence[float] = FPR_TARGETS) -> list[str]:
    """Column names of a ROC table: ``AUC`` then ``TPR@FPR=<f>`` per target."""
    return ["AUC"] + [f"TPR@FPR={fpr_label(f)}" for f in targets]


def roc_cells(summary: dict[str, Any], digits: int | None = 4) -> list[Any]:
    """A :func:`roc_summary` as cells matching :func:`roc_header` (raw numbers when ``digits`` is
    None)."""
    values = [summary["auc"], *summary["tpr_at_fpr"].values()]
    return values if digits is None else [fmt(v, digits) for v in values]


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


SCORE_RULE = "1 - arccos(clip(s, -1, 1)) / pi"


def report_header(
    args, records: Sequence[PairRecord], failures: Sequence[dict], n_files: int
) -> dict:
    """The first keys of every results script's JSON report: where the records came from, how
    many."""
    return {
        "json_fold": str(args.json_fold),
        "n_files": n_files,
        "n_pairs": len(records),
        "n_skipped": len(failures),
    }


def add_common_args(parser) -> None:
    """``--Json-fold``, ``--output-dir`` and ``--progress/--no-progress``, shared by every results
    script."""
    parser.epilog = FIGURE_EXIT_STATUS
    add_json_fold(parser)
    add_output_dir(parser, None, "folder for tables and figures (default: <run folder>/analysis)")
    add_progress(parser)


def output_dir(args) -> Path:
    """``args.output_dir`` or ``<run folder>/analysis``, created."""
    out = (
        args.output_dir if args.output_dir is not None else run_folder(args.json_fold) / "analysis"
    )
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_folder(json_fold: str | Path) -> Path:
    """The run folder of ``--Json-fold`` (the folder itself when it holds ``json/``, else its
    parent)."""
    path = Path(json_fold).resolve()
    return path if (path / "json").is_dir() else path.parent


def load_from_args(
    args, required: Sequence[str] = ()
) -> tuple[list[PairRecord], list[dict[str, str]], int]:
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
        print(
            f"error: no *.json files in {args.json_fold} (nor in its json/ folder); expected the "
            "per-pair "
            "records <n>.json: pass a run folder or its `json` folder",
            file=sys.stderr,
        )
        raise SystemExit(2)
    records, failures = load_records(paths, required, progress=args.progress)
    return records, failures, len(paths)


def finish(output: Path, script: str, failures: list[dict[str, str]], n_files: int) -> int:
    """Write ``failures-<script>.jsonl`` (one line per skipped file, empty if none), print the
    count.

    Returns:
        The exit status: 0 when every file was used, 3 when some were skipped.
    """
    from utils.base.atomic import atomic_write_text

    lines = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures)
    path = atomic_write_text(output / f"failures-{script}.jsonl", lines)
    if failures:
        print(
            f"skipped {len(failures)} of {n_files} files (reasons in {path}; fix or remove them "
            "and rerun "
            "to include them)"
        )
        return 3
    print(f"used all {n_files} files")
    return 0


def distinct_settings(records: Sequence[PairRecord]) -> list[dict[str, Any]]:
    """The distinct ``meta`` dicts (``Datasets``, ``thresh``...) of the records, in first-seen
    order.

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


def write_roc_report(
    out: Path,
    stem: str,
    roc_file: str,
    samples: dict[str, tuple[np.ndarray, np.ndarray]],
    report: dict[str, Any],
    title: str,
    figsize: tuple[float, float],
    dpi: int,
) -> dict[str, dict[str, Any]]:
    """Score rows of ``samples`` and write ``<stem>.md/.csv/.json`` and the ROC plot ``roc_file``.

    Args:
        out: the output folder.
        stem: file stem of the tables.
        roc_file: file name of the ROC plot (PNG).
        samples: ``{row name: (scores (M,), labels (M,))}`` in row order.
        report: the JSON's first keys (:func:`report_header`, settings, rules); the rows'
            :func:`roc_summary` follow, keyed by row name.
        title: the plot's title.
        figsize, dpi: plot size in inches and pixels per inch.

    Returns:
        ``{row name: roc_summary}``; the Markdown table is printed.
    """
    from utils.base.atomic import atomic_write_json, atomic_write_text
    from utils.experiments.figures import roc_figure, save_figure

    summaries = {name: roc_summary(*s) for name, s in samples.items()}
    text = format_table(
        ["Method", *roc_header()],
        [[name, *roc_cells(summary)] for name, summary in summaries.items()],
    )
    print(text)
    atomic_write_text(out / f"{stem}.md", text)
    atomic_write_text(
        out / f"{stem}.csv",
        csv_text(
            ["method", *roc_header()], [[n, *roc_cells(s, None)] for n, s in summaries.items()]
        ),
    )
    atomic_write_json(out / f"{stem}.json", {**report, **summaries})
    curves = {}
    for name, (scores, labels) in samples.items():
        points = roc_points(scores, labels)
        if points is not None:
            curves[name] = (*points, summaries[name]["auc"])
    path = save_figure(roc_figure(curves, title, figsize=figsize), out / roc_file, dpi=dpi)
    print(f"wrote {path} and {out / stem}.json/.csv/.md")
    return summaries
