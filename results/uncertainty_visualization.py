"""One bar chart per image of an uncertainty run (paper Section 4, METHOD.md section 6 step 4).

Reads the per-image JSON written by ``quantity_single_person_uncertain.py``
(never loads a network) and draws, per image: the image on the left (its file
name under it); on the right one horizontal bar per image, each labelled with
its value: the evidential uncertainty of the original (top bar, its own
colour, also drawn as a dashed line) and then of the image with each
candidate attribute erased, largest first (multi-class attributes worded by
class). Bars beyond the dashed line are the attributes whose removal makes
the evidential net less sure: the most characteristic ones. The chart is
drawn by ``utils/experiments/figures.py`` (``uncertainty_chart``).

Example:
    python quantity_single_person_uncertain.py
    cd results; python uncertainty_visualization.py

Writes ``<Save-fold>/<n>.png`` (n = the JSON's name) and
``<Save-fold>/failures-uncertainty_visualization.jsonl``.
Exit status: 0 all files drawn, 3 some skipped, 2 usage error.
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

from utils.experiments.analysis import finish, list_json, run_folder
from utils.experiments.figures import (  # noqa: F401 (read_chart_data: this script's API too)
    load_rgb,
    read_chart_data,
    save_figure,
    uncertainty_chart,
    uncertainty_title,
)
from utils.experiments.uncertainty import default_json_fold  # a path only: no network is loaded
from utils.run import cli

SCRIPT = "uncertainty_visualization"


def build_parser() -> argparse.ArgumentParser:
    p = cli.make_parser(__doc__)
    cli.add_json_fold(
        p,
        default_json_fold(),
        "an uncertainty run folder or its `json` folder (default: the folder a default run of "
        "quantity_single_person_uncertain.py writes, %(default)s)",
    )
    cli.add_flag(
        p,
        "--Save-fold",
        aliases=("--save-fold",),
        dest="save_fold",
        type=Path,
        default=None,
        help="where the charts go (default: <run folder>/visualization)",
    )
    cli.add_image_root(
        p,
        "folder that relative image paths are resolved against first (then the JSON's "
        "folder, then the current directory)",
    )
    cli.add_figure_flags(p, (12.0, 5.0))
    cli.add_progress(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = list_json(args.json_fold)
    except FileNotFoundError as err:
        print(
            f"error: {err} (run quantity_single_person_uncertain.py first, or pass --Json-fold)",
            file=sys.stderr,
        )
        return 2
    if not paths:
        print(
            f"error: no *.json files in {args.json_fold}; pass the `json` folder of an "
            "uncertainty run",
            file=sys.stderr,
        )
        return 2
    out = (
        args.save_fold
        if args.save_fold is not None
        else run_folder(args.json_fold) / "visualization"
    )
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    for path in tqdm(paths, desc="charts", unit="image", disable=not args.progress):
        try:
            data = read_chart_data(path)
        except ValueError as err:
            failures.append({"file": str(path), "error": str(err)})
            continue
        root = None if args.image_root is None else Path(args.image_root)
        image, note = load_rgb(data["path"], [root, path.parent, Path.cwd()])
        name = Path(str(data["path"] or "?"))
        fig = uncertainty_chart(
            data,
            image,
            uncertainty_title(data),
            tuple(args.figsize),
            note or f"{name.parent.name}/{name.name}".lstrip("/"),
        )
        save_figure(fig, out / f"{path.stem}.png", dpi=args.dpi)
    return finish(out, SCRIPT, failures, len(paths))


if __name__ == "__main__":
    sys.exit(main())
