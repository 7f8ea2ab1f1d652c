"""The mask game of the no-attribute ablation: ROC AUC and TPR@FPR "Original" vs "After".

On the records of ``--ablation no-attribute`` (one region per image: the
discriminant map above theta; also the authors' records of that ablation),
"After" replaces an impostor image's score by the score of its similarity to
the other image after erasing that one region; genuine pairs keep theirs.
Compare with ``AUC_most_attributes.py`` on the full method: a larger AUC drop
there means the attribute words find more than the counterfactual map alone.
A record of another ablation is reported and skipped. Exact definitions:
``utils/experiments/record_analysis.py``.

Example:
    python Multi_Identity_topk.py --ablation no-attribute
    RUN=outputs/scores-group-FaceWorld-FaceWorld-verification-topk-1-erase-black
    python results/AUC_no_attribute_map.py --Json-fold $RUN-ablation-no-attribute

Writes to ``--output-dir``: ``auc_no_attribute_map.{json,csv,md}``,
``roc_no_attribute_map.png`` and ``failures-auc_no_attribute_map.jsonl``.
"""

from __future__ import annotations

try:  # run as a file: this folder is on sys.path, the repository root not yet (see _bootstrap.py)
    import _bootstrap  # noqa: F401
except ModuleNotFoundError:  # imported with the repository root on sys.path (tests, python -m)
    _bootstrap = None
import argparse
import sys

from utils.experiments import analysis as A
from utils.experiments.record_analysis import no_attribute_samples, split_no_attribute
from utils.run import cli

STEM = "auc_no_attribute_map"
AFTER = "After (no attribute)"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(__doc__)
    A.add_common_args(parser)
    cli.add_figure_flags(parser, (6.0, 5.0), "ROC plot")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    records, failures, n_files = A.load_from_args(args)
    records, skipped = split_no_attribute(records)
    for fail in skipped:
        print(f"skipping {fail['error']}")
    failures += skipped
    out = A.output_dir(args)
    if not records:
        print(
            f"error: none of the {n_files} files in {args.json_fold} is a usable record of the "
            "no-attribute ablation",
            file=sys.stderr,
        )
        return A.finish(out, STEM, failures, n_files)
    samples = {"Original": A.original_samples(records), AFTER: no_attribute_samples(records)}
    print(f"\n{len(records)} pairs, 2 samples per pair")
    A.write_roc_report(
        out,
        STEM,
        "roc_no_attribute_map.png",
        samples,
        {
            **A.report_header(args, records, failures, n_files),
            "samples_per_pair": 2,
            "settings": A.distinct_settings(records),
            "score": A.SCORE_RULE,
            "after_rule": "impostor image: score of its similarity to the other image with the "
            "one no-attribute region erased (replaced, not maxed); genuine pairs keep score(s)",
        },
        f"Mask game, no-attribute ablation: {len(records)} pairs",
        tuple(args.figsize),
        args.dpi,
    )
    return A.finish(out, STEM, failures, n_files)


if __name__ == "__main__":
    sys.exit(main())
