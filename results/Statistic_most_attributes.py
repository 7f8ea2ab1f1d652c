"""How often each attribute (and each class word) is an image's top-1 word.

Over the impostor pairs (``--pairs``), each image's present attributes are
ranked as in ``Top_5_attributes.py`` (similarity of the erased image to the
other image, descending) and its top-1 is counted, once by attribute (Gender,
Big Nose...) and once by word (multi-class heads by class: Male, Female,
Senior...). Images with no present attribute recorded are counted apart.
Ties (words whose erasure left the similarity unchanged) never win: with
``--ties skip`` (default) an image's top-1 is its first word that changed
something; ``--ties flag`` counts the paper's top-1 as it is and reports in
the ``ties`` column how many of the counts were such ties
(``utils/experiments/words.py``).
The authors' spelling ``Stastic_most_attributes.py`` is an alias.

Example:
    python results/Statistic_most_attributes.py --Json-fold runs/scores-group-X/json

Writes to ``--output``: ``top1_statistics.json``, ``top1_by_attribute.csv``,
``top1_by_word.csv``, ``top1_statistics.png`` and
``failures-top1_statistics.jsonl``. Exit status: 0 all files used,
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
from utils.base.atomic import atomic_write_json, atomic_write_text
from utils.experiments.figures import bar_figure, save_figure
from utils.experiments.words import empty_mask_statistics, top1_statistics
from utils.run import cli

STEM = "top1_statistics"
_PAIRS = {"impostor": 0, "genuine": 1, "all": None}


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(__doc__)
    A.add_common_args(parser)
    cli.add_flag(
        parser,
        "--pairs",
        choices=tuple(_PAIRS),
        default="impostor",
        help="which pairs to count (default: %(default)s, the paper's setting: match 0)",
    )
    cli.add_ties(parser)
    cli.add_figure_flags(parser, (10.0, 10.0), "bar chart")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    records, failures, n_files = A.load_from_args(args)
    out = A.output_dir(args)
    stats = top1_statistics(records, match=_PAIRS[args.pairs], ties=args.ties)
    empty = empty_mask_statistics(records, match=_PAIRS[args.pairs])
    by_attr = [r for r in stats["by_attribute"] if r["count"] > 0]
    attr_table = A.format_table(
        ["Attribute", "count", "ties", "fraction"],
        [[r["attribute"], r["count"], r["ties"], A.fmt(r["fraction"], 3)] for r in by_attr],
    )
    word_table = A.format_table(
        ["Word", "Attribute", "count", "ties", "fraction"],
        [
            [r["word"], r["attribute"], r["count"], r["ties"], A.fmt(r["fraction"], 3)]
            for r in stats["by_word"]
        ],
        align="llrrr",
    )
    print(
        f"\n{stats['n_pairs']} {args.pairs} pairs, {stats['n_images']} images, "
        f"{stats['n_without_word']} without any word, {stats['n_tie_top1']} whose first word "
        f"in the paper's order changed nothing (ties: {args.ties})\n"
        f"\nTop-1 by attribute (attributes never top-1 omitted)\n{attr_table}\nTop-1 by "
        f"word\n{word_table}"
    )
    if empty["images"]:  # records with mask-fraction1/2 (every record of this code base)
        print(
            f"empty masks: {empty['all_masks_empty']} of {empty['images']} images "
            f"({empty['all_masks_empty_share']:.3f}) have every mask empty (theta erases "
            f"nothing); the paper's top-1 word has an empty mask in {empty['top1_mask_empty']} "
            f"({empty['top1_mask_empty_share']:.3f})"
        )
    atomic_write_text(
        out / f"{STEM}.md",
        f"## Top-1 by attribute\n\n{attr_table}\n## Top-1 by word\n\n{word_table}",
    )
    atomic_write_text(
        out / "top1_by_attribute.csv",
        A.csv_text(
            ["attribute", "index", "count", "ties", "fraction"],
            [
                [r["attribute"], r["index"], r["count"], r["ties"], r["fraction"]]
                for r in stats["by_attribute"]
            ],
        ),
    )
    atomic_write_text(
        out / "top1_by_word.csv",
        A.csv_text(
            ["word", "attribute", "index", "class", "count", "ties", "fraction"],
            [
                [
                    r["word"],
                    r["attribute"],
                    r["index"],
                    r["class"],
                    r["count"],
                    r["ties"],
                    r["fraction"],
                ]
                for r in stats["by_word"]
            ],
        ),
    )
    atomic_write_json(
        out / f"{STEM}.json",
        {
            "json_fold": str(args.json_fold),
            "n_files": n_files,
            "n_records": len(records),
            "n_skipped": len(failures),
            "pairs": args.pairs,
            **stats,
            "empty_masks": empty,
        },
    )
    fig = bar_figure(
        [
            (
                f"top-1 attribute over {stats['n_images']} images of {stats['n_pairs']} "
                f"{args.pairs} pairs",
                [r["attribute"] for r in by_attr],
                [r["count"] for r in by_attr],
            ),
            (
                "top-1 word",
                [r["word"] for r in stats["by_word"]],
                [r["count"] for r in stats["by_word"]],
            ),
        ],
        figsize=tuple(args.figsize),
    )
    print(
        f"wrote {save_figure(fig, out / f'{STEM}.png', dpi=args.dpi)} and {out / STEM}.json/.md, "
        f"{out / 'top1_by_attribute.csv'}, {out / 'top1_by_word.csv'}"
    )
    return A.finish(out, STEM, failures, n_files)


if __name__ == "__main__":
    sys.exit(main())
