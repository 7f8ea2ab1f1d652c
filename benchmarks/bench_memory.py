"""Peak memory of one experiment-script pair with a large image, relative to a small pair.

For each case, ``Multi_Identity_topk.py`` (the committed FaceWorld demo nets,
``--device cpu``, default ``--batch-size 32``, visualization on) is run in a
child process on a one-pair list ``<big image> <small image> 1``, and once on
``<small image> <small image> 1`` as the reference. The child's peak resident
set (``ru_maxrss`` from ``os.wait4``) minus the reference's peak is the memory
the large image costs beyond the networks; both runs are in the same
invocation, so the networks, Python and torch cost the same in both.

Cases: ``6000``: a 6000x6000 JPEG (36 MP); ``100mp``: a 10000x10000 JPEG
(100 MP); ``png100mp``: a 10000x10000 PNG (not reducible at decode time).
Images are a small random image upscaled (smoothly for JPEG, in flat blocks for
PNG), so the files stay below the 64 MiB file-size cap.

``--repo`` picks the checkout whose script is run, so the same command measures
an older commit (e.g. ``git archive HEAD~3 | tar -x -C /tmp/before``).

Example:
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_memory.py --cases 6000 100mp
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CASES = {"6000": (6000, ".jpg"), "100mp": (10000, ".jpg"), "png100mp": (10000, ".png")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--cases",
        nargs="+",
        choices=sorted(CASES),
        default=["6000", "100mp"],
        help="which large images to measure (default: %(default)s)",
    )
    p.add_argument(
        "--repo",
        type=Path,
        default=REPO_ROOT,
        help="checkout whose Multi_Identity_topk.py is run (default: this one)",
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="--batch-size of the runs (default: %(default)s)"
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where images and run folders go (default: a temp dir)",
    )
    return p.parse_args(argv)


def smooth_image(side: int, seed: int = 0, blocks: bool = False) -> np.ndarray:
    """(side, side, 3) uint8 BGR: a 64x64 random image upscaled.

    Smoothly (compresses like a photo as JPEG) or, with ``blocks``, in flat blocks
    (compresses well as PNG, so a 100 MP PNG stays under the file-size cap).
    """
    small = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return cv2.resize(
        small, (side, side), interpolation=cv2.INTER_NEAREST if blocks else cv2.INTER_CUBIC
    )


def run_pair(
    repo: Path, work: Path, name: str, img1: Path, img2: Path, batch_size: int
) -> tuple[int, int, float]:
    """Run the script on one pair in a child: (exit status, peak RSS in KiB, child CPU s)."""
    (work / f"{name}.txt").write_text(f'"{img1}" "{img2}" 1\n', encoding="utf-8")
    cmd = [
        sys.executable,
        str(repo / "Multi_Identity_topk.py"),
        "--pair-list",
        str(work / f"{name}.txt"),
        "--output-dir",
        str(work / f"out-{name}"),
        "--device",
        "cpu",
        "--batch-size",
        str(batch_size),
        "--no-resume",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(
        cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 3):
        print(f"  {name}: exit {proc.returncode}\n{err[-1500:]}", file=sys.stderr)
    return proc.returncode, int(usage.ru_maxrss), usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        small = work / "small.png"
        cv2.imwrite(str(small), smooth_image(112, seed=1))
        rc, ref_kb, ref_cpu = run_pair(args.repo, work, "reference", small, small, args.batch_size)
        print(f"repo {args.repo.resolve()}  batch size {args.batch_size}")
        print(
            f"reference (112x112 pair): exit {rc}, peak RSS {ref_kb / 1024:.0f} MiB, "
            f"CPU {ref_cpu:.1f} s"
        )
        for case in args.cases:
            side, ext = CASES[case]
            big = work / f"big-{case}{ext}"
            t0 = time.process_time()
            jpeg = ext == ".jpg"
            ok = cv2.imwrite(
                str(big),
                smooth_image(side, blocks=not jpeg),
                [cv2.IMWRITE_JPEG_QUALITY, 90] if jpeg else [],
            )
            if not ok:
                raise SystemExit(f"could not write {big}")
            made = time.process_time() - t0
            rc, kb, cpu = run_pair(args.repo, work, case, big, small, args.batch_size)
            print(
                f"{case:9s} {side}x{side}{ext} ({big.stat().st_size / 2**20:.1f} MiB file, "
                f"made in {made:.0f} s): exit {rc}, peak RSS {kb / 1024:.0f} MiB, "
                f"beyond the reference {(kb - ref_kb) / 1024:.0f} MiB, "
                f"CPU {cpu:.1f} s"
            )
            big.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
