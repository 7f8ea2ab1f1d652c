"""Per-attribute mask game: ROC AUC and TPR@FPR with one attribute erased at a time.

For attribute j, an impostor image's score becomes 1 - arccos(s_j)/pi where
s_j is its similarity to the other image after erasing j (when j is present
in that image and its record exists; otherwise the original score); genuine
pairs keep their original score. One row per attribute, named by word, plus
the "Original" row. Exact definitions: ``utils/experiments/analysis.py``.

Example:
    python results/AUC_in_attributes.py --Json-fold runs/scores-group-X/json

Writes to ``--output``: ``auc_in_attributes.{json,csv,md}`` and
``failures-auc_in_attributes.jsonl``. Exit status: 0 all files used,
3 some skipped, 2 usage error.
"""

from __future__ import annotations

try:  # run as a file: this folder is on sys.path, the repository root not yet (see _bootstrap.py)
    import _bootstrap  # noqa: F401
except ModuleNotFoundError:  # imported with the repository root on sys.path (tests, python -m)
    _bootstrap = None
import argparse
import sys

from utils.experiments import analysis as A
from utils.run import cli
from utils.base.atomic import atomic_write_json, atomic_write_text

STEM = "auc_in_attributes"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(__doc__)
    A.add_common_args(parser)
    parser.add_argument(
        "--sort",
        choices=("index", "auc"),
        default="index",
        help="row order: attribute index (METHOD.md order) or AUC ascending "
        "(largest drop first; n/a last) (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    records, failures, n_files = A.load_from_args(args)
    out = A.output_dir(args)
    if not records:
        print(
            f"error: none of the {n_files} files in {args.json_fold} is a usable record",
            file=sys.stderr,
        )
        return A.finish(out, STEM, failures, n_files)
    try:
        vocab = A.common_vocabulary(records)
    except A.RecordError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    samples = A.sample_table(records)
    original = A.roc_summary(*A.original_samples(samples))
    rows = []
    for j in range(len(vocab)):
        scores, labels, changed = A.attribute_samples(samples, j)
        summary = A.roc_summary(scores, labels)
        delta = (
            None
            if summary["auc"] is None or original["auc"] is None
            else summary["auc"] - original["auc"]
        )
        rows.append(
            {
                "attribute": vocab.attributes[j],
                "index": j,
                "n_erased": changed,
                "delta_auc": delta,
                **summary,
            }
        )
    if args.sort == "auc":
        rows.sort(
            key=lambda r: (r["auc"] is None, r["auc"] if r["auc"] is not None else 0.0, r["index"])
        )

    header = ["Attribute", "n erased", "dAUC", *A.roc_header()]
    orig_row = ["Original", 0, None, *A.roc_cells(original, None)]
    raw = [orig_row] + [
        [r["attribute"], r["n_erased"], r["delta_auc"], *A.roc_cells(r, None)] for r in rows
    ]
    shown = [
        [r[0], r[1], A.fmt(r[2]) if k else "", *(A.fmt(v) for v in r[3:])]
        for k, r in enumerate(raw)
    ]
    table = A.format_table(header, shown)
    print(f"\n{len(records)} pairs, {original['n_impostor']} impostor images\n{table}")
    atomic_write_text(out / f"{STEM}.md", table)
    atomic_write_text(
        out / f"{STEM}.csv",
        A.csv_text(["attribute", "n_erased", "delta_auc", *A.roc_header()], raw),
    )
    atomic_write_json(
        out / f"{STEM}.json",
        {
            **A.report_header(args, records, failures, n_files),
            "settings": A.distinct_settings(records),
            "score": A.SCORE_RULE,
            "Original": original,
            "attributes": rows,
        },
    )
    print(f"wrote {out / STEM}.json/.csv/.md")
    return A.finish(out, STEM, failures, n_files)


if __name__ == "__main__":
    sys.exit(main())
