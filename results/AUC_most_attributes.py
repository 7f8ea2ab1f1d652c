"""The mask game (METHOD.md section 5): ROC AUC and TPR@FPR "Original" vs "After".

"Original": every pair gives two samples (one per image) scored
1 - arccos(s)/pi against ``match``. "After": an impostor image's score becomes
the largest score of its similarity to the other image after erasing one of
its present attributes, when that is larger than the original; genuine pairs
keep theirs. A drop of AUC from Original to After means the erased regions are
the ones that separate the identities. Exact definitions: ``utils/experiments/analysis.py``.

Example:
    python results/AUC_most_attributes.py --Json-fold runs/scores-group-X/json

Writes to ``--output``: ``auc_most_attributes.{json,csv,md}``,
``roc_most_attributes.png`` and ``failures-auc_most_attributes.jsonl``.
Exit status: 0 all files used, 3 some skipped, 2 usage error.
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

STEM = "auc_most_attributes"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(__doc__)
    A.add_common_args(parser)
    cli.add_figure_flags(parser, (6.0, 5.0), "ROC plot")
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
    table = A.sample_table(records)
    samples = {"Original": A.original_samples(table), "After": A.after_samples(table)}
    n_genuine = int(table.match.sum())
    print(
        f"\n{len(records)} pairs ({n_genuine} genuine, {len(records) - n_genuine} impostor), "
        "2 samples per pair"
    )
    A.write_roc_report(
        out,
        STEM,
        "roc_most_attributes.png",
        samples,
        {
            **A.report_header(args, records, failures, n_files),
            "samples_per_pair": 2,
            "settings": A.distinct_settings(records),
            "score": A.SCORE_RULE,
            "tpr_rule": "max TPR over ROC points with FPR <= target (step, no interpolation)",
        },
        f"Mask game: {len(records)} pairs",
        tuple(args.figsize),
        args.dpi,
    )
    return A.finish(out, STEM, failures, n_files)


if __name__ == "__main__":
    sys.exit(main())
