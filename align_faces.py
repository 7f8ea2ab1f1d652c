"""Align a folder of face photos to the ArcFace template (112x112 or 224x224).

Landmarks come from a dataset's landmark file (CelebA, VGGFace2, generic CSV)
or, for your own photos, from the Haar-cascade detector (estimated, flagged in
the output). ``--no-align`` only centre-crops. The folder structure (one
folder per identity) and file names are kept, so a pair list written for the
input folder also works for the output folder.

Outputs in ``--output-dir``:

* the aligned images, same relative paths (and format, by extension);
* ``alignment.csv``: per aligned image the method (``haar-eyes``, ``haar-box``,
  the landmark format, or ``center-crop``), the ``estimated`` flag (true when
  the landmarks were estimated by the detector, not read from a file), the
  number of face boxes and the roll search angle (detector only) and the five
  landmarks used (input-image pixels);
* ``skipped.csv`` and ``failures.jsonl``: images that were not aligned (no face
  found, unreadable file, no landmarks) with the stage and the reason.

Exit status: 0 every image aligned, 3 some images skipped, 2 usage error.

Example:
    python align_faces.py --input-dir ../shared/data/real_faces --output-dir aligned/real_faces \\
        --size 224 --landmark-format detect
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from utils.faces.align import (ALIGN_SIZES, DetectorUnavailableError, align_face, center_crop,
                               detect_landmarks, ensure_detector)
from utils.base.atomic import atomic_write_image, atomic_write_text
from utils.faces.image_io import ImageReadError, read_image
from utils.faces.landmarks import read_landmarks
from utils.run import cli

# Read by content; these extensions only choose which files of a folder to try
# (and the output format: each aligned image keeps its name and extension).
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm"}
EXIT_OK, EXIT_USAGE, EXIT_SOME_FAILED = 0, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(
        __doc__.split("\n\n")[0],
        "Exit status: 0 every image aligned, 3 some images skipped (see skipped.csv), 2 usage "
        "error.")
    parser.add_argument("--input-dir", type=Path, required=True,
                        help="folder of images (may hold one sub-folder per identity)")
    parser.add_argument("--output-dir", type=Path, required=True,
                        help="where aligned images and the CSV reports go (must not be inside "
                             "--input-dir)")
    parser.add_argument("--size", type=int, choices=ALIGN_SIZES, default=112,
                        help="aligned side: 112 (ArcFace/CosFace nets) or 224 (VGGFace2 nets); "
                             "default 112")
    parser.add_argument("--landmarks", type=Path, default=None,
                        help="landmark file (paths in it relative to --input-dir); needed unless "
                             "--landmark-format detect or --no-align")
    parser.add_argument("--landmark-format", choices=("celeba", "vggface2", "csv", "detect"),
                        default=None,
                        help="format of --landmarks, or 'detect' to estimate landmarks with the "
                             "Haar-cascade "
                             "detector; default: detect without --landmarks, else required")
    parser.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                        help="--no-align: no landmarks, just a central square crop resized to "
                             "--size")
    cli.add_progress(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.landmark_format is None:
        if args.landmarks is not None:
            parser.error("--landmarks needs --landmark-format celeba|vggface2|csv")
        args.landmark_format = "detect"
    if args.align and args.landmark_format != "detect" and args.landmarks is None:
        parser.error(f"--landmark-format {args.landmark_format} needs --landmarks FILE")
    if not args.input_dir.is_dir():
        parser.error(f"--input-dir {str(args.input_dir)!r} is not a folder")
    inp, out = args.input_dir.resolve(), args.output_dir.resolve()
    if out == inp or inp in out.parents:
        parser.error(f"--output-dir {str(args.output_dir)!r} must not be --input-dir or inside it "
                     "(its outputs would be read as inputs next time)")
    return args


def list_images(root: Path) -> list[str]:
    """Image files under ``root`` (by extension, hidden files skipped), sorted, ``/``-separated."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(found)


def _inside(path: Path, root: Path) -> bool:
    return os.path.commonpath([str(path.resolve()), str(root.resolve())]) == str(root.resolve())


def align_one(args, rel: str, landmark_table) -> tuple[np.ndarray, dict]:
    """Read and align one image; returns (aligned image, report row) or raises _Skip."""
    try:
        image = read_image(args.input_dir / rel)
    except ImageReadError as err:
        raise _Skip("read", "ImageReadError", f"{err.reason}. Fix: {err.hint}") from err
    row = {"path": rel, "method": "", "estimated": "", "num_faces": "", "rotation": ""}
    if not args.align:
        row.update(method="center-crop", estimated="")
        return center_crop(image, args.size), row
    if landmark_table is None:
        det = detect_landmarks(image)
        if det.landmarks is None:
            raise _Skip("detect", "NoFaceFound", det.reason)
        points = det.landmarks
        row.update(method=det.method, estimated=str(det.estimated).lower(), num_faces=det.num_faces,
                   rotation=f"{det.rotation:g}")
    else:
        if rel not in landmark_table:
            raise _Skip("landmarks", "MissingLandmarks", f"no row for {rel!r} in {args.landmarks}")
        points = landmark_table[rel]
        row.update(method=args.landmark_format, estimated="false")
    for i, (x, y) in enumerate(points, 1):
        row[f"x{i}"], row[f"y{i}"] = f"{x:.2f}", f"{y:.2f}"
    return align_face(image, points, args.size), row


class _Skip(Exception):
    def __init__(self, stage: str, error_type: str, message: str) -> None:
        super().__init__(message)
        self.stage, self.error_type, self.message = stage, error_type, message


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    landmark_table = None
    if args.align and args.landmark_format == "detect":
        try:
            ensure_detector()
        except DetectorUnavailableError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USAGE
    elif args.align:
        try:
            landmark_table = read_landmarks(args.landmarks, args.landmark_format)
        except (OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USAGE
    items = sorted(landmark_table) if landmark_table is not None else list_images(args.input_dir)
    if not items:
        print(f"error: no images found under {args.input_dir}", file=sys.stderr)
        return EXIT_USAGE
    args.output_dir.mkdir(parents=True, exist_ok=True)

    done, skipped = [], []
    for rel in tqdm(items, desc="align", unit="img", disable=not args.progress):
        out_path = args.output_dir / rel
        try:
            if Path(rel).is_absolute() or not _inside(out_path, args.output_dir):
                raise _Skip("output", "UnsafePath",
                            f"{rel!r} would be written outside --output-dir")
            aligned, row = align_one(args, rel, landmark_table)
            try:
                atomic_write_image(out_path, aligned)
            except (OSError, ValueError) as err:
                raise _Skip("write", type(err).__name__, f"cannot write {out_path}: {err}") from err
            done.append(row)
        except _Skip as skip:
            skipped.append({"path": rel, "stage": skip.stage, "error_type": skip.error_type,
                            "message": skip.message})

    columns = ["path", "method", "estimated", "num_faces", "rotation"]
    columns += [f"{a}{i}" for i in range(1, 6) for a in "xy"]
    atomic_write_text(args.output_dir / "alignment.csv", _csv_text(done, columns))
    atomic_write_text(args.output_dir / "skipped.csv",
                      _csv_text(skipped, ["path", "stage", "error_type", "message"]))
    atomic_write_text(args.output_dir / "failures.jsonl",
                      "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in skipped))
    methods = {}
    for row in done:
        methods[row["method"]] = methods.get(row["method"], 0) + 1
    by_stage = {}
    for row in skipped:
        by_stage[row["stage"]] = by_stage.get(row["stage"], 0) + 1
    print(f"aligned {len(done)} of {len(items)} images to {args.size}x{args.size} in "
          f"{args.output_dir} "
          f"(by method: {methods or 'none'}); skipped {len(skipped)} (by stage: "
          f"{by_stage or 'none'})")
    for row in skipped:
        print(f"  skipped {row['path']}: [{row['stage']}] {row['message']}")
    return EXIT_SOME_FAILED if skipped else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
