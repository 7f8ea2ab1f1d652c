"""How many attributes per image raise the similarity when erased (the authors' spelling).

For each image of the chosen pairs (``--pairs``, impostor pairs by default as
in the paper's code), count its present attributes whose erasure makes it
more similar to the other image than the original pair was:
``cos(V(E_ij), V(I_other)) > s``. Prints the histogram (how many images have
0, 1, 2, ... such attributes) and which attributes are found most often.
Exact definitions: ``utils/experiments/record_analysis.py``.

Example:
    python results/Stastic_found_attributes_num.py --Json-fold runs/scores-group-X

Writes to ``--output-dir``: ``found_attributes_num.{json,md,csv,png}`` and
``failures-found_attributes_num.jsonl``.
"""

from __future__ import annotations

try:  # run as a file: this folder is on sys.path, the repository root not yet (see _bootstrap.py)
    import _bootstrap  # noqa: F401
except ModuleNotFoundError:  # imported with the repository root on sys.path (tests, python -m)
    _bootstrap = None
import argparse
import sys

from utils.base.atomic import atomic_write_json, atomic_write_text
from utils.experiments import analysis as A
from utils.experiments.figures import bar_figure, save_figure
from utils.experiments.record_analysis import PAIR_SELECTION, found_attribute_counts
from utils.run import cli

STEM = "found_attributes_num"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(__doc__)
    A.add_common_args(parser)
    cli.add_flag(
        parser,
        "--pairs",
        choices=tuple(PAIR_SELECTION),
        default="impostor",
        help="which pairs to count (default: %(default)s, the paper's setting: match 0)",
    )
    cli.add_figure_flags(parser, (8.0, 8.0), "bar chart")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    records, failures, n_files = A.load_from_args(args)
    out = A.output_dir(args)
    try:
        stats = found_attribute_counts(records, match=PAIR_SELECTION[args.pairs])
    except A.RecordError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    last = max((n for n, c in enumerate(stats["histogram"]) if c), default=0)
    hist = [
        [n, c, A.fmt(c / stats["n_images"], 3) if stats["n_images"] else "n/a"]
        for n, c in enumerate(stats["histogram"][: last + 1])
    ]
    found = [r for r in stats["by_attribute"] if r["count"]]
    table = A.format_table(["attributes found", "images", "fraction"], hist)
    attrs = A.format_table(
        ["Attribute", "images where found"], [[r["attribute"], r["count"]] for r in found]
    )
    mean = "n/a" if stats["mean_found"] is None else f"{stats['mean_found']:.3f}"
    print(
        f"\n{stats['n_pairs']} {args.pairs} pairs, {stats['n_images']} images; attributes whose "
        f"erasure raises the similarity above s: mean {mean} per image, "
        f"{stats['images_with_any']} images with at least one\n{table}\n{attrs}"
    )
    atomic_write_text(out / f"{STEM}.md", f"{table}\n{attrs}")
    atomic_write_text(
        out / f"{STEM}.csv", A.csv_text(["found", "images"], list(enumerate(stats["histogram"])))
    )
    atomic_write_json(
        out / f"{STEM}.json",
        {**A.report_header(args, records, failures, n_files), "pairs": args.pairs, **stats},
    )
    fig = bar_figure(
        [
            (
                f"images by number of attributes found ({stats['n_images']} images, {args.pairs} "
                "pairs)",
                [str(r[0]) for r in hist],
                [r[1] for r in hist],
            ),
            (
                "attributes found most often",
                [r["attribute"] for r in found],
                [r["count"] for r in found],
            ),
        ],
        figsize=tuple(args.figsize),
    )
    print(
        f"wrote {save_figure(fig, out / f'{STEM}.png', dpi=args.dpi)} and "
        f"{out / STEM}.json/.md/.csv"
    )
    return A.finish(out, STEM, failures, n_files)


if __name__ == "__main__":
    sys.exit(main())
