"""The attributes the attribute net detects in each image of a pair, with their confidences.

For each pair, a figure with both images, each captioned with its present
attributes (multi-class heads worded by class), the predicted class and the
softmax confidence of that class (the records' ``Attribute<i>-class`` and
``Attribute<i>-score``), and a JSON listing the same. Exact definitions:
``utils/experiments/record_analysis.py``.

Example:
    python results/Detect_attributes_scores.py --Json-fold runs/scores-group-X --max-figures 20

Writes to ``--output-dir``: ``images-attributes/<n>.<fmt>``,
``detected_attributes.json`` and ``failures-detected_attributes.jsonl``.
"""

from __future__ import annotations

try:  # run as a file: this folder is on sys.path, the repository root not yet (see _bootstrap.py)
    import _bootstrap  # noqa: F401
except ModuleNotFoundError:  # imported with the repository root on sys.path (tests, python -m)
    _bootstrap = None
import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from utils.base.atomic import atomic_write_json
from utils.experiments import analysis as A
from utils.experiments.figures import add_pair_figure_flags, load_rgb, pair_figure, save_figure
from utils.experiments.record_analysis import detected_attributes, detected_caption
from utils.run import cli

STEM = "detected_attributes"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(__doc__)
    A.add_common_args(parser)
    add_pair_figure_flags(parser, (10.0, 9.0))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    records, failures, n_files = A.load_from_args(args)
    out = A.output_dir(args)
    entries = [
        {
            "name": r.name,
            "file": str(r.path),
            "match": r.match,
            "image_paths": list(r.image_paths),
            **{f"image{i}": detected_attributes(r, i) for i in (1, 2)},
        }
        for r in records
    ]
    n_figures = 0
    todo = list(zip(entries, records, strict=True))[: args.max_figures] if args.figures else []
    for entry, rec in tqdm(todo, desc="figures", unit="pair", disable=not args.progress):
        roots = [args.image_root, rec.path.parent, Path.cwd()]
        images, captions = [], []
        for i in (1, 2):
            img, note = load_rgb(rec.image_paths[i - 1], roots)
            images.append(img)
            head = f"image {i}: {Path(rec.image_paths[i - 1] or '?').name}" + (
                f" ({note})" if note else ""
            )
            captions.append("\n".join([head, *detected_caption(entry[f"image{i}"])]))
        title = (
            f"pair {rec.name}: attributes detected by the attribute net (present ones: "
            "predicted class, softmax confidence)"
        )
        fig = pair_figure(images, captions, title, figsize=tuple(args.figsize), caption_height=3.0)
        save_figure(
            fig, out / "images-attributes" / f"{rec.name}.{args.image_format}", dpi=args.dpi
        )
        n_figures += 1
    atomic_write_json(
        out / f"{STEM}.json",
        {**A.report_header(args, records, failures, n_files), "pairs": entries},
    )
    print(f"wrote {out / STEM}.json and {n_figures} figures under {out / 'images-attributes'}")
    return A.finish(out, STEM, failures, n_files)


if __name__ == "__main__":
    sys.exit(main())
