"""How far two runs over the same pairs agree: top-1 word, top-k attributes, identity class sets.

For example a run with the gallery holding every photo against one with
``--gallery-exclude-pair``, or two ablations. Pairs are matched by their index;
the measures are defined in ``utils.experiments.words.run_agreement``.

Example:
    python results/compare_runs.py --Json-fold runs/A --other runs/B

Writes ``compare_runs.json`` to ``--output`` (default: <run folder of --Json-fold>/analysis).
Exit status: 0 all files used, 3 some skipped, 2 usage error.
"""

from __future__ import annotations

try:  # run as a file: this folder is on sys.path, the repository root not yet (see _bootstrap.py)
    import _bootstrap  # noqa: F401
except ModuleNotFoundError:  # imported with the repository root on sys.path (tests, python -m)
    _bootstrap = None
import argparse
import sys
from pathlib import Path

from utils.base.atomic import atomic_write_json
from utils.experiments import analysis as A
from utils.experiments import words as W
from utils.run import cli

STEM = "compare_runs"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(__doc__)
    A.add_common_args(parser)
    cli.add_flag(
        parser,
        "--other",
        type=Path,
        required=True,
        help="the second run folder (or its json folder) to compare --Json-fold with",
    )
    cli.add_flag(
        parser,
        "--topk",
        type=cli.positive_int,
        default=3,
        help="k of the top-k attribute overlap (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    records, failures, n_files = A.load_from_args(args)
    other_args = argparse.Namespace(**{**vars(args), "json_fold": args.other})
    others, other_failures, n_other = A.load_from_args(other_args)
    out = A.output_dir(args)
    result = W.run_agreement(records, others, args.topk)
    rows = [
        [name, A.fmt(value) if isinstance(value, float) else value]
        for name, value in result.items()
    ]
    print(A.format_table(["measure", "value"], rows))
    atomic_write_json(
        out / f"{STEM}.json",
        {
            **A.report_header(args, records, failures, n_files),
            "other": str(args.other),
            "other_n_files": n_other,
            **result,
        },
    )
    return A.finish(out, STEM, failures + other_failures, n_files + n_other)


if __name__ == "__main__":
    sys.exit(main())
