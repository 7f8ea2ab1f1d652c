r"""Seconds per pair: our engine vs the authors' way vs the forward-pass floor, at paper size.

Networks (random weights, BatchNorm statistics calibrated on the benchmark
images, see ``benchmarks/common.py``): R = VGGFace2 ResNet-50 (224), A = the
30-head ResNet-50 attribute net (224), V = ArcFace-r50 and ArcFace-r100 (112),
one table row per V. A V whose weights ship in a pip package (``dlib-ResNet29``,
``SFace``) runs with those real weights, uncalibrated. Pairs: rendered
face-world faces at ``--size`` pixels (V resizes them to its own input).

Per pair, in the same run:

(a) engine: ``utils.explain.sim2word.explain_pair`` + ``utils.run.records.make_record``
    (what the runner does for a pair, minus image decoding and the JSON write;
    no visualization);
(b) reference: ``benchmarks/reference.py``, the authors' way (a full forward +
    backward per head and per identity class, input requiring grad; one image
    per verification forward; no reuse) + ``make_record``;
(c) floor: only the forward passes no implementation can avoid, batched, on
    tensors preprocessed beforehand: R and A on the two images, V on the two
    originals and on every distinct non-empty erased image (the images the
    engine verifies).

(a) and (b) records are compared (every number to ``--tol``) for every timed
pair; any mismatch is printed and the script exits 1 without a speed table.

Example:
    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/bench_pair.py --pairs 2
    python benchmarks/bench_pair.py --pairs 2 --threads 1 --clock cpu \
        --verification-net dlib-ResNet29 SFace
"""

from __future__ import annotations

try:  # run as a file: this folder is on sys.path, the repository root not yet (see _bootstrap.py)
    import _bootstrap  # noqa: F401
except ModuleNotFoundError:  # imported with the repository root on sys.path (tests, python -m)
    _bootstrap = None
import argparse
import cProfile
import datetime as dt
from functools import partial
import os
import platform
import pstats
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.common import calibrate_batchnorm, calibration_batch, face_pairs
from benchmarks.reference import ReferenceSim2Word, compare_records
from utils.explain.sim2word import (
    PAPER_THETA,
    PairExplanation,
    Sim2WordConfig,
    Sim2WordNets,
    explain_pair,
)
from utils.base.tables import format_table
from utils.run import cli
from utils.run.folder import UsageError
from utils.run.networks import resolve_device
from utils.run.records import make_record

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"


def build_parser() -> argparse.ArgumentParser:
    p = cli.make_parser(
        __doc__.split("\n\n")[0], "Exit status: 0 done, 1 engine and reference records differ."
    )
    cli.add_flags(
        p,
        [
            ("--pairs", cli.positive_int, 2, "number of pairs timed per verification net"),
            ("--size", cli.positive_int, 250, "raw image side in pixels, >= 16"),
            ("--recognition-net", str, "VGGFace2", "registered name of R"),
            ("--attribute-net", str, "attribute-net", "registered name of A"),
            ("--threads", cli.positive_int, None, "torch intra-op threads on CPU (None: torch's)"),
            (
                "--tol",
                cli.positive_float,
                1e-4,
                "max abs difference allowed between (a) and (b) records",
            ),
        ],
    )
    cli.add_flag(
        p,
        "--verification-nets",
        aliases=("--verification-net",),
        nargs="+",
        default=["ArcFace-r50", "ArcFace-r100"],
        help="registered names of V, one table row each; nets with package weights "
        "(dlib-ResNet29, SFace) use them (default: %(default)s)",
    )
    cli.add_device(p)
    cli.add_flag(
        p,
        "--clock",
        choices=tuple(CLOCK),
        default="wall",
        help="wall: elapsed seconds; cpu: CPU seconds of the process (all threads), robust to "
        "other "
        "processes on a shared machine (use with --threads 1; CUDA: use wall) (default: "
        "%(default)s)",
    )
    cli.add_batch_size(p, 32, "images per verification forward")
    cli.add_thresh(p, PAPER_THETA, "a pixel is erased where J[j] > thresh")
    cli.add_seed(p, "seed of weights and faces")
    for flag, text in (
        (
            "--reference",
            "time (b) and check (a) == (b); --no-reference for a quick engine-vs-floor run",
        ),
        (
            "--amp",
            "also time the engine with bf16 autocast on the verification forwards and report "
            "the max abs change of the similarities",
        ),
        ("--profile", "cProfile one extra engine pair per V and print the top functions"),
    ):
        cli.add_flag(
            p,
            flag,
            action=argparse.BooleanOptionalAction,
            default=flag == "--reference",
            help=f"{text} (default: %(default)s)",
        )
    cli.add_output_dir(
        p,
        DEFAULT_OUT,
        "folder of the result files bench-<date>.json/.md (default: <repo>/benchmarks/results)",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.size < 16:
        p.error(f"--size must be >= 16, got {args.size}")
    return args


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(fn, device: torch.device, clock: str = "wall"):
    """(result, seconds) of ``fn()`` with the device synchronised around it.

    ``clock``: "wall" (elapsed) or "cpu" (CPU seconds of this process, all threads: on
    a shared machine it does not count the time other processes hold the cores).
    """
    _sync(device)
    now = CLOCK[clock]
    start = now()
    out = fn()
    _sync(device)
    return out, now() - start


def record(ex: PairExplanation, config: Sim2WordConfig, n: int, label: int, v_name: str) -> dict:
    return make_record(
        ex,
        config,
        datasets="bench",
        recognition_net="R",
        attribute_net="A",
        verification_net=v_name,
        image_path1=f"{n}_1.png",
        image_path2=f"{n}_2.png",
        match=label,
        pair_index=n,
    )


def distinct_erased(ex: PairExplanation) -> list[np.ndarray]:
    """The erased images the engine verified: per side, one per distinct non-empty raw-size mask."""
    out = []
    for d in ex.directions:
        seen = set()
        for j in range(len(d.masks)):
            m = d.mask_raw(j)
            key = np.packbits(d.masks[j]).tobytes()
            if m.any() and key not in seen:
                seen.add(key)
                out.append(d.eraser(m))
    return out


def floor_inputs(
    nets: Sim2WordNets, img1, img2, erased: list[np.ndarray], device: torch.device
) -> list:
    R, A, V = nets.recognition, nets.attribute, nets.verification
    return [
        R.preprocess([img1, img2]).to(device),
        A.preprocess([img1, img2]).to(device),
        V.preprocess([img1, img2, *erased]).to(device),
    ]


def floor_pass(nets: Sim2WordNets, inputs: list, batch_size: int) -> None:
    """(c): the unavoidable forwards only, batched, inference mode."""
    xr, xa, xv = inputs
    with torch.inference_mode():
        nets.recognition(xr)
        nets.attribute(xa)
        for chunk in xv.split(batch_size):
            nets.verification(chunk)


def similarities(rec: dict) -> np.ndarray:
    vals = [rec["similarity"]]
    for key in ("attributes-image1", "attributes-image2", "attributes-both-masked"):
        for v in rec[key].values():
            vals += v if isinstance(v, list) else [v]
    return np.asarray(vals, dtype=np.float64)


def machine_info(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": str(device),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def build_nets(args: argparse.Namespace, device: torch.device, pairs) -> tuple:
    from models import get_network

    images = [im for p in pairs for im in p[:2]]
    torch.manual_seed(args.seed)
    R = get_network(args.recognition_net, weights=False, device=device)
    A = get_network(args.attribute_net, weights=False, device=device)
    for net in (R, A):
        calibrate_batchnorm(net, calibration_batch(net, images))
    return R, A, images


def bench_one_v(args, device, pairs, R, A, images, v_name: str) -> dict:
    from models import get_network

    from models.registry import get_spec

    torch.manual_seed(args.seed + 1)
    if get_spec(v_name).package_weights is not None:  # real weights from a pip package: keep them
        V = get_network(v_name, device=device)
    else:
        V = get_network(v_name, weights=False, device=device)
        calibrate_batchnorm(V, calibration_batch(V, images))
    nets = Sim2WordNets(R, A, V)
    config = Sim2WordConfig(thresh=args.thresh, batch_size=args.batch_size)
    amp_config = Sim2WordConfig(thresh=args.thresh, batch_size=args.batch_size, amp=True)
    explain_pair(
        *pairs[0][:2], nets, Sim2WordConfig(thresh=args.thresh, calculate_similarity=False)
    )  # warm-up
    rows = {
        "a": [],
        "b": [],
        "c": [],
        "amp": [],
        "n_verified": [],
        "max_diff": 0.0,
        "amp_max_diff": 0.0,
        "mismatches": [],
    }
    for n, (img1, img2, label) in enumerate(tqdm(pairs, desc=v_name, unit="pair")):
        ex, ta = timed(
            partial(explain_pair, img1, img2, nets, config, pair_index=n), device, args.clock
        )
        rec_a, tr = timed(partial(record, ex, config, n, label, v_name), device, args.clock)
        rows["a"].append(ta + tr)
        rows["n_verified"].append(ex.n_verified)
        if args.reference:
            ref = ReferenceSim2Word(nets, config)
            rx, tb = timed(partial(ref, img1, img2, pair_index=n), device, args.clock)
            rows["b"].append(tb + tr)
            worst, bad = compare_records(rec_a, record(rx, config, n, label, v_name), tol=args.tol)
            rows["max_diff"] = max(rows["max_diff"], worst)
            rows["mismatches"] += [f"pair {n}: {m}" for m in bad]
        inputs = floor_inputs(nets, img1, img2, distinct_erased(ex), device)
        _, tc = timed(partial(floor_pass, nets, inputs, args.batch_size), device, args.clock)
        rows["c"].append(tc)
        if args.amp:
            ex_amp, tamp = timed(
                partial(explain_pair, img1, img2, nets, amp_config, pair_index=n),
                device,
                args.clock,
            )
            rows["amp"].append(tamp)
            diff = np.abs(
                similarities(record(ex_amp, amp_config, n, label, v_name)) - similarities(rec_a)
            ).max()
            rows["amp_max_diff"] = max(rows["amp_max_diff"], float(diff))
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(explain_pair, *pairs[0][:2], nets, config)
        print(f"\n--- cProfile of one engine pair, V = {v_name} ---")
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return rows


def summarise(v_name: str, rows: dict) -> dict:
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    a, b, c = mean(rows["a"]), mean(rows["b"]), mean(rows["c"])
    out = {
        "verification_net": v_name,
        "pairs": len(rows["a"]),
        "engine_s": a,
        "reference_s": b,
        "floor_s": c,
        "speedup_b_over_a": b / a if b else None,
        "overhead_a_over_c": a / c,
        "verified_images_per_pair": mean(rows["n_verified"]),
        "max_abs_diff_a_b": rows["max_diff"] if b else None,
        "engine_s_per_pair_all": rows["a"],
        "reference_s_per_pair_all": rows["b"],
        "floor_s_per_pair_all": rows["c"],
    }
    if rows["amp"]:
        out.update(
            {"engine_amp_s": mean(rows["amp"]), "amp_max_abs_sim_diff": rows["amp_max_diff"]}
        )
    return out


def markdown(results: list[dict], info: dict, command: str) -> str:
    amp = any("engine_amp_s" in r for r in results)
    head = [
        "V",
        "pairs",
        "(a) engine s/pair",
        "(b) reference s/pair",
        "(c) floor s/pair",
        "speedup b/a",
        "overhead a/c",
        "images verified/pair",
        "max abs diff a-b",
    ]
    if amp:
        head += ["engine bf16 s/pair", "bf16 max abs sim diff"]
    fmt = lambda x, f=".2f": "-" if x is None else format(x, f)  # noqa: E731
    rows = []
    for r in results:
        cells = [
            r["verification_net"],
            str(r["pairs"]),
            fmt(r["engine_s"]),
            fmt(r["reference_s"]),
            fmt(r["floor_s"]),
            fmt(r["speedup_b_over_a"], ".1f") + ("x" if r["speedup_b_over_a"] else ""),
            fmt(r["overhead_a_over_c"]) + "x",
            fmt(r["verified_images_per_pair"], ".1f"),
            fmt(r["max_abs_diff_a_b"], ".1e"),
        ]
        if amp:
            cells += [fmt(r.get("engine_amp_s")), fmt(r.get("amp_max_abs_sim_diff"), ".1e")]
        rows.append(cells)
    meta = (
        f"Clock: {info['clock']} seconds  \nCommand: `{command}`  \nMachine: {info['cpu']}, "
        f"{info['cpu_count']} cores, device {info['device']}"
        f"{', ' + info['gpu'] if 'gpu' in info else ''}, torch {info['torch']} ({info['threads']} "
        "threads); "
        f"load average before/after {info.get('load_before')} / {info.get('load_after')}  \nDate: "
        f"{info['date']}"
    )
    return format_table(head, rows) + "\n" + meta + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = resolve_device(args.device)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info(device)
    info["clock"] = args.clock
    info["load_before"] = load_average()
    pairs = face_pairs(args.pairs, args.size, args.seed)
    R, A, images = build_nets(args, device, pairs)
    results, mismatches = [], []
    for v_name in args.verification_nets:
        rows = bench_one_v(args, device, pairs, R, A, images, v_name)
        mismatches += [f"{v_name} {m}" for m in rows["mismatches"]]
        results.append(summarise(v_name, rows))
    info["load_after"] = load_average()
    if mismatches:
        print(
            f"engine and reference records differ ({len(mismatches)} values), no speed table:",
            file=sys.stderr,
        )
        print("\n".join(mismatches[:20]), file=sys.stderr)
        return 1
    command = "python benchmarks/bench_pair.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown(results, info, command)
    print("\n" + table)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{device.type}"
    from utils.base.atomic import atomic_write_json, atomic_write_text

    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    atomic_write_json(out / f"{stem}.json", {"machine": info, "args": settings, "results": results})
    atomic_write_text(out / f"{stem}.md", table)
    print(f"written: {out / stem}.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
