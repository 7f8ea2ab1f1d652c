"""Align a folder of face photos to a network's template (ArcFace 112, VGGFace2 224, dlib chip 150).

The template comes from ``--template``, from the network named by ``--for-net``
(its ``alignment``), or from ``--size`` (112: ArcFace, 224: VGGFace2). The
landmarks come from a dataset's landmark file (CelebA, VGGFace2, generic CSV)
or, for your own photos, from a detector (``--align``): ``auto`` uses the
template's own landmarker first (YuNet for the ArcFace / VGGFace2 templates,
dlib's HOG detector and 5-point predictor for the dlib chip), then the other,
then OpenCV's Haar cascades (eyes only; the nose and mouth are estimated), and
flags every fallback in ``alignment.csv``. ``--align none`` (or ``--no-align``)
only centre-crops. The folder structure (one folder per identity) and file
names are kept, so a pair list written for the input folder also works for
the output folder.

Outputs in ``--output-dir``:

* the aligned images, same relative paths (and format, by extension);
* ``alignment.csv``: per aligned image the template, the method (``yunet``,
  ``dlib``, ``haar-eyes``, ``haar-box``, the landmark format, or ``none``), the
  ``fallback`` flag (``auto`` did not use the template's own landmarker), the
  ``estimated`` flag (some landmarks are guesses: Haar, or dlib points for an
  ArcFace template), the detector score, the number of faces found and the five
  landmarks used (input-image pixels, in the ``convention`` named: ``arcface5``
  eye centres, nose tip, mouth corners; ``dlib5`` eye corners and nose base);
* ``skipped.csv`` and ``failures.jsonl``: images that were not aligned (no face
  found, unreadable file, no landmarks) with the stage and the reason.

Exit status: 0 every image aligned, 3 some images skipped, 2 usage error.

Example:
    python align_faces.py --input-dir ../shared/data/real_faces --output-dir aligned/real_faces \\
        --for-net dlib-ResNet29
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

from utils.base.atomic import atomic_write_image, atomic_write_text
from utils.faces.align import DetectorUnavailableError, ensure_detector
from utils.faces.detect import DetectorUnavailable, ensure_available
from utils.faces.image_io import ImageReadError, read_image_info
from utils.faces.landmarks import read_landmarks
from utils.faces.templates import ALIGN_METHODS, TEMPLATES, FaceNotFoundError, align_for
from utils.run import cli

# Read by content; these extensions only choose which files of a folder to try
# (and the output format: each aligned image keeps its name and extension).
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm"}
EXIT_OK, EXIT_USAGE, EXIT_SOME_FAILED = 0, 2, 3
SIZE_TEMPLATES = {112: "arcface-112", 224: "vggface2-224"}


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(
        __doc__.split("\n\n")[0],
        "Exit status: 0 every image aligned, 3 some images skipped (see skipped.csv), 2 usage "
        "error.",
    )
    add = parser.add_argument
    add(
        "--input-dir",
        type=Path,
        required=True,
        help="folder of images (may hold one sub-folder per identity)",
    )
    add(
        "--output-dir",
        type=Path,
        required=True,
        help="where aligned images and the CSV reports go (must not be inside --input-dir)",
    )
    add(
        "--template",
        choices=TEMPLATES,
        default=None,
        help="face template: arcface-112 (ArcFace/CosFace/SFace nets), vggface2-224 (VGGFace2 "
        "nets), dlib-chip-150 (dlib-ResNet29); default: from --for-net, else from --size",
    )
    add(
        "--for-net",
        default=None,
        metavar="NAME",
        help="use the template of this registered network (e.g. SFace, dlib-ResNet29, "
        "ArcFace-r100)",
    )
    add(
        "--size",
        type=int,
        choices=tuple(SIZE_TEMPLATES),
        default=None,
        help="112 = --template arcface-112, 224 = --template vggface2-224 (default 112 when "
        "neither --template nor --for-net is given)",
    )
    add(
        "--landmarks",
        type=Path,
        default=None,
        help="landmark file (paths in it relative to --input-dir); needed unless "
        "--landmark-format detect or --align none",
    )
    add(
        "--landmark-format",
        choices=("celeba", "vggface2", "csv", "detect"),
        default=None,
        help="format of --landmarks, or 'detect' to find the landmarks with --align's detector; "
        "default: detect without --landmarks, else required",
    )
    add(
        "--align",
        choices=ALIGN_METHODS,
        default="auto",
        help="landmarker for photos without a landmark file: auto (the template's own, then the "
        "others, then Haar; fallbacks flagged), yunet, dlib, haar, or none (central square "
        "crop, no landmarks); default: %(default)s",
    )
    # older spelling of --align none
    add("--no-align", dest="align", action="store_const", const="none", help=argparse.SUPPRESS)
    cli.add_progress(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.template = _template(parser, args)
    if args.landmark_format is None:
        if args.landmarks is not None:
            parser.error("--landmarks needs --landmark-format celeba|vggface2|csv")
        args.landmark_format = "detect"
    if args.align != "none" and args.landmark_format != "detect":
        if args.landmarks is None:
            parser.error(f"--landmark-format {args.landmark_format} needs --landmarks FILE")
        if args.align != "auto":
            parser.error(
                f"--align {args.align} detects landmarks; with a landmark file use --align auto"
            )
    if not args.input_dir.is_dir():
        parser.error(f"--input-dir {str(args.input_dir)!r} is not a folder")
    inp, out = args.input_dir.resolve(), args.output_dir.resolve()
    if out == inp or inp in out.parents:
        parser.error(
            f"--output-dir {str(args.output_dir)!r} must not be --input-dir or inside it "
            "(its outputs would be read as inputs next time)"
        )
    return args


def _template(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The template named by --template, --for-net or --size (they must agree)."""
    from_net = None
    if args.for_net is not None:
        from models.registry import network_alignment

        try:
            from_net = network_alignment(args.for_net)
        except ValueError as err:
            parser.error(f"--for-net: {err}")
        if from_net is None:
            parser.error(
                f"--for-net {args.for_net}: this network declares no face template (it "
                "takes images as "
                "they are); choose --template"
            )
    named = [t for t in (args.template, from_net, SIZE_TEMPLATES.get(args.size)) if t is not None]
    if len(set(named)) > 1:
        parser.error(
            f"--template, --for-net and --size name different templates: {sorted(set(named))}"
        )
    return named[0] if named else SIZE_TEMPLATES[112]


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
        # > 2048 px: downscaled by read_info.scale
        image, read_info = read_image_info(args.input_dir / rel)
    except ImageReadError as err:
        raise _Skip("read", "ImageReadError", f"{err.reason}. Fix: {err.hint}") from err
    points = None
    if landmark_table is not None and args.align != "none":
        if rel not in landmark_table:
            raise _Skip("landmarks", "MissingLandmarks", f"no row for {rel!r} in {args.landmarks}")
        # the file gives full-resolution pixels; the image may have been downscaled when read
        points = np.asarray(landmark_table[rel], dtype=np.float64) * np.asarray(read_info.scale)
    try:
        aligned, info = align_for(image, args.template, args.align, landmarks=points)
    except FaceNotFoundError as err:
        raise _Skip("detect", "NoFaceFound", err.reason) from err
    method = args.landmark_format if info.method == "file" else info.method
    row = {
        "path": rel,
        "template": info.template,
        "method": method,
        "fallback": str(info.fallback).lower(),
        "estimated": str(info.estimated).lower() if info.landmarks is not None else "",
        "score": "" if info.score is None else f"{info.score:.3f}",
        "num_faces": info.num_faces if info.method not in ("file", "none") else "",
        "convention": info.convention or "",
        "notes": "; ".join(info.notes),
    }
    if info.landmarks is not None:
        for i, (x, y) in enumerate(info.landmarks, 1):
            row[f"x{i}"], row[f"y{i}"] = f"{x:.2f}", f"{y:.2f}"
    return aligned, row


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
    if args.align in ("haar", "yunet", "dlib") and args.landmark_format == "detect":
        try:  # a landmarker asked for by name must run; "auto" falls back and flags it
            ensure_detector() if args.align == "haar" else ensure_available(args.align)
        except (DetectorUnavailableError, DetectorUnavailable) as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USAGE
    elif args.align != "none" and args.landmark_format != "detect":
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
                raise _Skip(
                    "output", "UnsafePath", f"{rel!r} would be written outside --output-dir"
                )
            aligned, row = align_one(args, rel, landmark_table)
            try:
                atomic_write_image(out_path, aligned)
            except (OSError, ValueError) as err:
                raise _Skip("write", type(err).__name__, f"cannot write {out_path}: {err}") from err
            done.append(row)
        except _Skip as skip:
            skipped.append(
                {
                    "path": rel,
                    "stage": skip.stage,
                    "error_type": skip.error_type,
                    "message": skip.message,
                }
            )

    columns = (
        ["path", "template", "method", "fallback", "estimated", "score", "num_faces", "convention"]
        + [f"{a}{i}" for i in range(1, 6) for a in "xy"]
        + ["notes"]
    )
    atomic_write_text(args.output_dir / "alignment.csv", _csv_text(done, columns))
    atomic_write_text(
        args.output_dir / "skipped.csv",
        _csv_text(skipped, ["path", "stage", "error_type", "message"]),
    )
    atomic_write_text(
        args.output_dir / "failures.jsonl",
        "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in skipped),
    )
    methods = {}
    for row in done:
        methods[row["method"]] = methods.get(row["method"], 0) + 1
    by_stage = {}
    for row in skipped:
        by_stage[row["stage"]] = by_stage.get(row["stage"], 0) + 1
    fallbacks = sum(row["fallback"] == "true" for row in done)
    print(
        f"aligned {len(done)} of {len(items)} images to {args.template} in {args.output_dir} "
        f"(by method: {methods or 'none'}; fallbacks: {fallbacks}); skipped {len(skipped)} "
        f"(by stage: {by_stage or 'none'})"
    )
    for row in skipped:
        print(f"  skipped {row['path']}: [{row['stage']}] {row['message']}")
    return EXIT_SOME_FAILED if skipped else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
