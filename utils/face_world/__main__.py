"""Command line of the face world: contact sheets, twin sheets, pair datasets, timing.

Examples:
    python -m utils.face_world contact-sheet --out sheet.png
    python -m utils.face_world twin-sheet --out twins.png
    python -m utils.face_world make-pairs --out DIR --num-identities 10 --pairs 20 --seed 0
    python -m utils.face_world benchmark --n 500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from utils.base.atomic import atomic_write_image


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m utils.face_world", description=__doc__.splitlines()[0]
    )
    sub = ap.add_subparsers(dest="command", required=True)
    cs = sub.add_parser(
        "contact-sheet", help="save a grid of distinct faces with short attribute captions"
    )
    cs.add_argument(
        "--out", type=Path, default=Path("face_world_sheet.png"), help="output image file (PNG/JPG)"
    )
    cs.add_argument("--seed", type=int, default=0, help="world seed")
    cs.add_argument("--grid", type=int, default=8, help="faces per row and column")
    cs.add_argument(
        "--size", type=int, default=112, help="rendered face size in pixels (shown at 224)"
    )
    ts = sub.add_parser("twin-sheet", help="save one twin pair (source | twin) per attribute")
    ts.add_argument(
        "--out", type=Path, default=Path("face_world_twins.png"), help="output image file"
    )
    ts.add_argument("--seed", type=int, default=0, help="world seed")
    ts.add_argument(
        "--size", type=int, default=112, help="rendered face size in pixels (shown at 224)"
    )
    mp = sub.add_parser(
        "make-pairs", help="write a folder-per-identity dataset with a pair list and labels"
    )
    mp.add_argument("--out", type=Path, required=True, help="output folder (created)")
    mp.add_argument("--num-identities", type=int, default=10, help="number of identities")
    mp.add_argument(
        "--images-per-identity", type=int, default=4, help="images rendered per identity"
    )
    mp.add_argument(
        "--pairs",
        type=int,
        default=20,
        help="pairs in pairs.txt, half mates (1), half non-mates (0)",
    )
    mp.add_argument("--seed", type=int, default=0, help="world seed (identities, images and pairs)")
    mp.add_argument("--size", type=int, default=112, help="image size in pixels")
    mp.add_argument(
        "--format", default="png", choices=("png", "jpg", "bmp"), help="image file format"
    )
    mp.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show a progress bar",
    )
    bm = sub.add_parser("benchmark", help="time rendering (images only, and with masks)")
    bm.add_argument("--n", type=int, default=300, help="images to render per measurement")
    bm.add_argument("--size", type=int, default=112, help="image size in pixels")
    return ap


def _benchmark(n: int, size: int) -> None:
    from .dataset import make_world

    world = make_world(max(1, n // 10), 10, seed=1, size=size)
    for masks in (False, True):
        world.with_masks = masks
        world[0]  # warm caches
        t0, c0 = time.perf_counter(), time.process_time()
        for item in world:
            del item
        wall = (time.perf_counter() - t0) / len(world) * 1e3
        cpu = (time.process_time() - c0) / len(world) * 1e3
        print(
            f"size {size}: {wall:.2f} ms wall, {cpu:.2f} ms CPU per image "
            f"({'with' if masks else 'without'} masks, {len(world)} images, one process)"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "contact-sheet":
        from .sheets import contact_sheet

        atomic_write_image(args.out, contact_sheet(args.seed, args.grid, args.size))
        print(f"wrote {args.out}")
    elif args.command == "twin-sheet":
        from .sheets import twin_sheet

        atomic_write_image(args.out, twin_sheet(args.seed, size=args.size))
        print(f"wrote {args.out}")
    elif args.command == "make-pairs":
        from .dataset import write_pair_dataset

        paths = write_pair_dataset(
            args.out,
            args.num_identities,
            args.pairs,
            args.seed,
            args.images_per_identity,
            args.size,
            args.format,
            args.progress,
        )
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    else:
        _benchmark(args.n, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
