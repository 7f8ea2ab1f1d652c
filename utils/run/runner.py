"""The per-pair run loop behind the experiment scripts.

Run folder: ``<output-dir>/scores-group-<Datasets>-<verification-net>-<strategy>-erase-<method>``
with ``<strategy>`` = ``topk-<k>``, ``id-thresh-<t>`` or ``sameid``, then, only
when they differ from the defaults, ``-GradCAMpp``, ``-thresh-<theta>`` and
``-ablation-<name>`` appended (so runs with different settings never share a
folder). Inside: ``json/<n>.json`` (n = the pair's index in the list, stable
under resume and sharding), ``cam/<n>-n1-n2/`` and ``cam/<n>-n2-n1/``,
``config.json`` (all arguments, resolved), ``failures.jsonl`` and
``summary.json``. Sharded runs name the last two
``failures-shard-<i>-of-<n>.jsonl`` / ``summary-shard-<i>-of-<n>.json`` so that
no two processes write one file. Nothing is written outside the run folder.

Failures: any per-pair error (bad list line, unreadable image, numerical
failure, ...) is appended to the failures file as one JSON line
``{"pair", "line", "path1", "path2", "stage", "error_type", "message"}`` and the
loop goes on. The failures file is restarted by each run (it lists this
run's failures; pairs done earlier are skipped, not failed).

Exit codes: 0 every pair of the shard done (now or earlier), 3 some pairs
failed, 2 usage error (bad flag, missing pair list or weights, a run folder
holding results of different settings).

Sharding: ``--shard i/n`` takes pairs with ``index % n == i``. Under torchrun
(``RANK``/``WORLD_SIZE`` set) each rank takes its share of that: global shard
``i * WORLD_SIZE + RANK`` of ``n * WORLD_SIZE``. The ranks never talk while
they run; at the end, when torchrun's rendezvous variables (``MASTER_ADDR``,
``MASTER_PORT``) are set, they join a gloo process group once to add up their
counts, and rank 0 logs the report of the whole run and writes it to
``summary.json`` (``summary-shard-<i>-of-<n>.json`` with ``--shard i/n``);
every rank then exits with the code of the whole run.

Images are read (decoded) by a small thread pool a few pairs ahead of the
pair being explained (:func:`prefetch_pairs`), so decoding overlaps compute.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from utils.base.atomic import atomic_write_json
from utils.run.cli import build_parser
from utils.faces.data import DataConfigError, PairItem, read_pair_list, resolve_dataset
from utils.run.records import is_done, make_record, write_record
from utils.base.seeding import seed_everything
from utils.explain.ranking import RankingConfig, rank_pair
from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets, explain_pair

log = logging.getLogger("sim2word")

EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 3
# Arguments that do not change any result: a run folder may be resumed with other values.
OPERATIONAL_KEYS = frozenset({"output_dir", "resume", "shard", "limit", "batch_size", "device", "visualization"})


class UsageError(ValueError):
    """Bad arguments or inputs found before any pair is run (exit code 2)."""


@dataclass
class Plan:
    """Everything resolved before the loop starts."""

    args: argparse.Namespace
    config: Sim2WordConfig
    ranking: RankingConfig
    items: list[PairItem]
    run_dir: Path
    shard: tuple[int, int]
    device: torch.device


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text)).strip("._") or "x"


def run_dir_name(args: argparse.Namespace) -> str:
    """Folder name of a run (see the module docstring)."""
    part = {"topk": lambda: f"topk-{getattr(args, 'topk', 1)}",
            "threshold": lambda: f"id-thresh-{args.id_thresh:g}",
            "sameid": lambda: "sameid"}[args.strategy]()
    name = f"scores-group-{_safe(args.Datasets)}-{_safe(args.verification_net)}-{part}-erase-{args.Erasing_method}"
    if args.heatmap_method != "GradCAM":
        name += "-" + args.heatmap_method.replace("+", "p")
    if args.thresh != 0.6:
        name += f"-thresh-{args.thresh:g}"
    if args.ablation != "none":
        name += f"-ablation-{args.ablation}"
    if getattr(args, "discriminant", "classes") != "classes":
        name += f"-disc-{args.discriminant}"
    if getattr(args, "ranking", "paper") != "paper":
        name += f"-ranking-{args.ranking}"
    if getattr(args, "ranking_fill", None) is not None:
        name += f"-rfill-{args.ranking_fill}"
    if getattr(args, "ranking_thresh", None) is not None:
        name += f"-rthresh-{args.ranking_thresh:g}"
    return name


def resolve_shard(spec: str | None, env: dict[str, str] | None = None) -> tuple[int, int]:
    """(i, n) from ``--shard i/n`` combined with torchrun's RANK/WORLD_SIZE."""
    env = os.environ if env is None else env
    i, n = 0, 1
    if spec is not None:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
        if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
            raise UsageError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {spec!r}")
        i, n = int(m.group(1)), int(m.group(2))
    try:
        rank, world = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
    except ValueError:
        raise UsageError(f"RANK/WORLD_SIZE must be integers, got {env.get('RANK')!r}/{env.get('WORLD_SIZE')!r}") from None
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"invalid torchrun environment RANK={rank} WORLD_SIZE={world}")
    return i * world + rank, n * world


def resolve_device(spec: str | None, env: dict[str, str] | None = None) -> torch.device:
    """``--device`` or cuda (cuda:$LOCAL_RANK under torchrun) when available, else cpu."""
    env = os.environ if env is None else env
    if spec is None:
        return torch.device(f"cuda:{int(env.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"--device must be cpu, cuda or cuda:N, got {spec!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {spec} requested but CUDA is not available; use --device cpu")
    return device


def make_plan(args: argparse.Namespace) -> Plan:
    """Resolve data, shard, device and run folder; validate; raises :class:`UsageError`."""
    try:
        if args.pair_list is not None:
            pair_list = Path(args.pair_list).resolve()
            image_root = Path(args.image_root).resolve() if args.image_root else pair_list.parent
            args.Datasets = args.Datasets or pair_list.stem
        else:
            args.Datasets = args.Datasets or "FaceWorld"
            pair_list, image_root = resolve_dataset(args.Datasets, args.datasets_config)
            if args.image_root:
                image_root = Path(args.image_root).resolve()
        items = read_pair_list(pair_list, image_root)
        config = Sim2WordConfig(
            strategy=args.strategy, topk=getattr(args, "topk", 1), id_thresh=getattr(args, "id_thresh", 0.5),
            heatmap_method=args.heatmap_method, thresh=args.thresh, erasing_method=args.Erasing_method,
            ablation=args.ablation, seed=args.seed, batch_size=args.batch_size,
            calculate_similarity=args.calculate_similarity, amp=getattr(args, "amp", False),
            discriminant=getattr(args, "discriminant", "classes"))
        ranking = RankingConfig(mode=getattr(args, "ranking", "paper"),
                                fill=getattr(args, "ranking_fill", None),
                                region_thresh=getattr(args, "ranking_thresh", None),
                                batch_size=args.batch_size, amp=getattr(args, "amp", False))
        if ranking.mode != "paper" and not args.calculate_similarity:
            raise ValueError(f"--ranking {ranking.mode} needs the similarities; "
                             "drop --no-calculate-similarity")
    except (DataConfigError, ValueError) as err:
        raise UsageError(str(err)) from None
    args.pair_list, args.image_root = str(pair_list), str(image_root)
    if args.limit is not None:
        items = items[: args.limit]
    shard = resolve_shard(args.shard)
    run_dir = Path(args.output_dir).resolve() / run_dir_name(args)
    _check_config(run_dir / "config.json", vars(args), args.resume)
    mine = [it for it in items if it.index % shard[1] == shard[0]]
    return Plan(args, config, ranking, mine, run_dir, shard,
                resolve_device(args.device))


def _check_config(path: Path, new: dict[str, Any], resume: bool) -> None:
    if not resume or not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    keys = (set(old) | set(new)) - OPERATIONAL_KEYS
    diff = sorted(k for k in keys if old.get(k) != new.get(k))
    if diff:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
        raise UsageError(f"{path.parent} holds results computed with other settings ({detail}); use another "
                         "--output-dir, or --no-resume to recompute every pair")


def load_nets(args: argparse.Namespace, device: torch.device) -> Sim2WordNets:
    """Build the networks named by the arguments; raises :class:`UsageError` on bad names/files."""
    from models import get_network

    def one(role: str):
        name = getattr(args, f"{role}_net")
        weights = getattr(args, f"{role}_weights")
        try:
            return get_network(name, weights=weights, device=device, **(getattr(args, f"{role}_arch") or {}))
        except (FileNotFoundError, ValueError, TypeError) as err:
            raise UsageError(f"cannot build the {role} net {name!r}: {err}") from None

    try:
        need_v = (args.calculate_similarity
                  or getattr(args, "discriminant", "classes") == "verification")
        return Sim2WordNets(one("recognition"), one("attribute"),
                            one("verification") if need_v else None,
                            args.recognition_layer, args.attribute_layer,
                            getattr(args, "verification_layer", None))
    except ValueError as err:
        raise UsageError(str(err)) from None


def _shard_suffix(shard: tuple[int, int]) -> str:
    return "" if shard[1] == 1 else f"-shard-{shard[0]}-of-{shard[1]}"


def _record_failure(fh, item: PairItem, stage: str, err: BaseException) -> None:
    line = {"pair": item.index, "line": item.line_no, "path1": item.path1, "path2": item.path2, "stage": stage,
            "error_type": type(err).__name__, "message": str(err)[:2000]}
    fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    fh.flush()


def _read_pair(item: PairItem):
    """The two decoded images of a pair (``None`` for a bad list line: the parse error is raised later)."""
    from utils.faces.image_io import read_image

    if item.error is not None:
        return None
    return read_image(item.path1), read_image(item.path2)


def prefetch_pairs(items: Iterable[PairItem], workers: int = 2, ahead: int = 4) -> Iterator[tuple[PairItem, Future]]:
    """Yield ``(item, future of its two images)`` in order, reading up to ``ahead`` pairs in advance.

    Decoding runs in ``workers`` threads (OpenCV/Pillow release the GIL), overlapping
    the explanation of the current pair. A read error is raised by ``future.result()``.
    """
    queue: deque[tuple[PairItem, Future]] = deque()
    todo = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim2word-read") as pool:
        def submit() -> None:
            item = next(todo, None)
            if item is not None:
                queue.append((item, pool.submit(_read_pair, item)))

        for _ in range(ahead):
            submit()
        while queue:
            item, future = queue.popleft()
            submit()
            yield item, future


def _run_one(plan: Plan, nets: Sim2WordNets, item: PairItem, images: Future | None = None) -> None:
    """Explain and write one pair; an exception carries the failing stage in ``sim2word_stage``.

    ``images``: the prefetched read of the pair (:func:`prefetch_pairs`); ``None`` reads it here.
    """
    stage = "parse"
    try:
        if item.error is not None:
            raise ValueError(item.error)
        stage = "read"
        img1, img2 = images.result() if images is not None else _read_pair(item)
        stage = "explain"
        ex = explain_pair(img1, img2, nets, plan.config, pair_index=item.index)
        ranking = None
        if plan.config.calculate_similarity:
            ranking = rank_pair(ex, (img1, img2), nets.verification, plan.ranking,
                                vocabulary=getattr(nets.attribute, "vocabulary", None),
                                discriminant=plan.config.discriminant,
                                erasing_method=plan.config.erasing_method,
                                seed=plan.config.seed, pair_index=item.index)
        stage = "record"
        a = plan.args
        rec = make_record(ex, plan.config, datasets=a.Datasets, recognition_net=a.recognition_net,
                          attribute_net=a.attribute_net, verification_net=a.verification_net,
                          image_path1=item.path1, image_path2=item.path2, match=item.label,
                          pair_index=item.index, ranking=ranking)
        if a.visualization:
            stage = "visualize"
            from utils.explain.visualize import write_pair
            write_pair(plan.run_dir / "cam", item.index, ex)
        stage = "record"
        write_record(plan.run_dir / "json" / f"{item.index}.json", rec)  # last: the completion marker
    except Exception as err:  # recorded in failures.jsonl by the caller; the run goes on
        err.sim2word_stage = stage
        raise


def run_pairs(plan: Plan, nets: Sim2WordNets) -> int:
    """The loop over the shard's pairs; returns the exit code."""
    seed_everything(plan.args.seed)
    suffix = _shard_suffix(plan.shard)
    (plan.run_dir / "json").mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan.run_dir / "config.json", vars(plan.args))
    counts = {"done": 0, "skipped": 0, "failed": 0}
    seconds = 0.0
    quiet = int(os.environ.get("RANK", 0) or 0) != 0  # one progress bar under torchrun (rank 0's)
    todo = []
    for item in plan.items:
        if plan.args.resume and is_done(plan.run_dir / "json" / f"{item.index}.json"):
            counts["skipped"] += 1
        else:
            todo.append(item)
    with open(plan.run_dir / f"failures{suffix}.jsonl", "w", encoding="utf-8") as fh:
        for item, images in tqdm(prefetch_pairs(todo), total=len(todo), desc=f"pairs{suffix}", unit="pair",
                                 disable=quiet):
            start = time.perf_counter()
            try:
                _run_one(plan, nets, item, images)
                counts["done"] += 1
            except Exception as err:  # per-pair failure: recorded, never fatal
                counts["failed"] += 1
                _record_failure(fh, item, getattr(err, "sim2word_stage", "explain"), err)
                log.warning("pair %d failed at %s: %s: %s", item.index, getattr(err, "sim2word_stage", "?"),
                            type(err).__name__, str(err)[:300])
            seconds += time.perf_counter() - start
    missing = sum(not is_done(plan.run_dir / "json" / f"{it.index}.json") for it in plan.items)
    summary = {"pairs": len(plan.items), "done": counts["done"], "skipped": counts["skipped"],
               "failed": counts["failed"], "missing": missing, "shard": list(plan.shard),
               "seconds_per_pair": round(seconds / max(counts["done"] + counts["failed"], 1), 4)}
    atomic_write_json(plan.run_dir / f"summary{suffix}.json", {k: v for k, v in summary.items() if k != "seconds_per_pair"})
    _log_summary("summary" + suffix, summary, plan.run_dir)
    total = _all_ranks_summary(plan, summary)
    if total is not None:
        summary = total
    return EXIT_FAILED if summary["failed"] or summary["missing"] else EXIT_OK


def _log_summary(name: str, summary: dict[str, Any], run_dir: Path) -> None:
    log.info("%s: %d pairs, done %d, skipped (already done) %d, failed %d, missing %d; %.3f s/pair -> %s",
             name, summary["pairs"], summary["done"], summary["skipped"], summary["failed"], summary["missing"],
             summary["seconds_per_pair"], run_dir)


def _all_ranks_summary(plan: Plan, summary: dict[str, Any]) -> dict[str, Any] | None:
    """Under torchrun: add up the ranks' counts (gloo all-reduce); rank 0 logs and writes the run's report.

    Returns the summed summary (on every rank), or ``None`` outside torchrun.
    """
    env = os.environ
    world = int(env.get("WORLD_SIZE", 1) or 1)
    if world == 1 or not (env.get("MASTER_ADDR") and env.get("MASTER_PORT")):
        return None
    import torch.distributed as dist

    keys = ("pairs", "done", "skipped", "failed", "missing")
    own = dist.is_initialized()
    if not own:  # ranks may finish hours apart: wait for the slowest one
        dist.init_process_group("gloo", timeout=timedelta(days=7))
    try:
        sums = torch.tensor([summary[k] for k in keys] + [summary["seconds_per_pair"]], dtype=torch.float64)
        dist.all_reduce(sums)
    finally:
        if not own:
            dist.destroy_process_group()
    total = {k: int(v) for k, v in zip(keys, sums[:-1].tolist())}
    total["seconds_per_pair"] = round(float(sums[-1]) / world, 4)  # mean over the ranks
    spec = resolve_shard(plan.args.shard, {})  # the --shard part only: the whole torchrun job
    total["shard"] = list(spec)
    total["ranks"] = world
    if int(env.get("RANK", 0)) == 0:
        atomic_write_json(plan.run_dir / f"summary{_shard_suffix(spec)}.json",
                          {k: v for k, v in total.items() if k != "seconds_per_pair"})
        _log_summary(f"summary of all {world} ranks" + _shard_suffix(spec), total, plan.run_dir)
    return total


def main(strategy: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse arguments, run the pairs, return the exit code (0, 2 or 3)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # deterministic cuBLAS (utils.base.seeding asks torch for deterministic kernels); must precede CUDA init
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    parser = build_parser(strategy, prog=prog or Path(sys.argv[0]).name)
    args = parser.parse_args(argv)
    try:
        plan = make_plan(args)
        nets = load_nets(args, plan.device)
    except UsageError as err:
        log.error("%s", err)
        return EXIT_USAGE
    return run_pairs(plan, nets)
