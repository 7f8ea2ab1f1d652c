"""The one per-item run loop: resume, shards, torchrun, failures, progress, summary, exit codes.

An experiment plugs in with a small :class:`Task` (what an item is, how to
read its inputs, how to turn it into a record, how to check a record); the
loop does the rest the same way for every experiment (pairs of Sim2Word,
images of the uncertainty experiment, ...):

* **Items** carry ``index`` (the record is ``json/<index>.json``, stable under
  resume and sharding), ``line_no`` and ``error`` (a bad list line: recorded
  as a failure at stage ``parse``, the run goes on).
* **Reading** runs in a small thread pool a few items ahead
  (:func:`prefetch`), so decoding overlaps compute.
* **Failures**: any per-item error is one JSON line in ``failures.jsonl``
  (``{<unit>: index, "line", ..., "stage", "error_type", "message"}``) and the
  loop goes on. The file is restarted by each run.
* **Records** are written last (the completion marker), atomically, with the
  run's fingerprint, through :class:`utils.run.folder.RunFolder` (resume,
  ownership, locks).
* **Sharding**: ``--shard i/n`` takes items with ``index % n == i``. Under
  torchrun (``RANK``/``WORLD_SIZE``) each rank takes its share of that: global
  shard ``i * WORLD_SIZE + RANK`` of ``n * WORLD_SIZE``. The ranks never talk
  while they run; at the end they join a gloo group once to add up their
  counts, and rank 0 writes the report of the whole job. Sharded runs name
  their files ``failures-shard-<i>-of-<n>.jsonl`` / ``summary-shard-...``.
* **Summary**: ``summary.json`` = ``{<count key>: items, done, skipped, failed,
  missing, shard}`` plus whatever the task adds over the records
  (:meth:`Task.summarise`); the log line says the same and the seconds per item.
* **Exit codes** (:data:`EXIT_OK` ...): 0 every item has its record (now or
  earlier), 3 some items failed or are missing, 2 usage error found before any
  work (or the folder was taken over by a run of other settings), 4 the disk
  filled up (failures and summary are still written if at all possible;
  rerunning the same command finishes the job), 130 interrupted by Ctrl-C (the
  reads queued ahead are cancelled; rerunning resumes).

How to add an experiment: write a :class:`Task` (see
``utils/experiments/uncertainty.py`` for a per-image one), a parser from
:mod:`utils.run.cli` flag groups, and call :func:`run_task` from the script's
``main``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from utils.base.atomic import atomic_write_json, atomic_write_text
from utils.run.folder import (
    DiskFullError,
    RunConflictError,
    RunFolder,
    UsageError,
    is_disk_full,
    output_error,
    read_json,
)

EXIT_OK, EXIT_USAGE, EXIT_FAILED, EXIT_DISK_FULL = 0, 2, 3, 4
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it


class Item(Protocol):
    """What the loop needs of an item (``utils.faces.data.PairItem``, ``ImageItem``, ...)."""

    index: int
    line_no: int
    error: str | None


@dataclass
class ItemContext:
    """Passed to :meth:`Task.run`: the run folder and the current stage (set it as work
    proceeds)."""

    run_dir: Path
    stage: str = "explain"


class Task(Protocol):
    """One kind of per-item experiment.

    Attributes:
        unit: the item's name: ``"pair"``, ``"image"`` (progress bar, failures key, log lines).
        count_key: the ``summary.json`` key of the number of items (``"pairs"``, ``"listed"``).
        log: the logger of the experiment.
    """

    unit: str
    count_key: str
    log: logging.Logger

    def read(self, item: Any) -> Any:
        """Decode the item's inputs (runs in a reader thread); raise to fail the item at stage
        ``read``."""

    def run(self, item: Any, inputs: Any, ctx: ItemContext) -> dict[str, Any]:
        """Compute the item; write its side outputs (figures) under ``ctx.run_dir``; return its
        record."""

    def failure_fields(self, item: Any) -> dict[str, Any]:
        """The item's keys in a failures line (``{"pair": n, "line": l, "path1": ..., "path2":
        ...}``)."""

    def check_record(self, record: dict[str, Any], item: Any) -> str | None:
        """``None`` if ``record`` is a valid record of ``item`` (schema, paths, label), else why
        not."""

    def summarise(self, records: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
        """Extra ``summary.json`` keys over the records of the summarised items, and an optional
        text report."""


@dataclass
class RunPlan:
    """Everything resolved before the loop starts.

    Attributes:
        folder: the run folder (config, fingerprint, records).
        items: this process's items (its shard).
        all_items: every item of the job (all shards of ``--shard``, all torchrun ranks).
        shard: ``(i, n)`` of this process.
        seed: seeds everything once (:func:`utils.base.seeding.seed_everything`).
        resume: skip items whose record is a valid record of this run.
        progress: show a progress bar.
        job_shard: ``(i, n)`` of ``--shard`` alone (the torchrun job's share).
    """

    folder: RunFolder
    items: list[Any]
    all_items: list[Any]
    shard: tuple[int, int]
    seed: int = 0
    resume: bool = True
    progress: bool = True
    job_shard: tuple[int, int] = (0, 1)
    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "skipped": 0, "failed": 0})

    @property
    def run_dir(self) -> Path:
        return self.folder.path


def plan_run(
    args: Any,
    items: list[Any],
    run_dir: Path,
    roles: Sequence[str],
    empty: str,
    extras: Callable[[int], list[Path]] | None = None,
    files: Sequence[dict[str, Any]] = (),
) -> tuple[RunPlan, Any]:
    """The part of planning every experiment shares (nothing is written); raises
    :class:`UsageError`.

    Refuses an empty list, resolves ``--device``, applies ``--limit`` and the shard (``--shard`` and
    torchrun), checks that ``run_dir`` can be written, records the weight files of ``roles``
    (``--<role>-net``, ``--<role>-weights``) in the run's config and fingerprint, and refuses a
    folder of other settings under ``--resume``.

    Args:
        args: the parsed flags (``device``, ``limit``, ``shard``, ``seed``, ``resume``,
        ``progress``, networks).
        items: the parsed list.
        run_dir: the run folder.
        roles: the network roles whose weight files this run loads.
        empty: the message for an empty list (what it is and the line format to add).
        extras: ``index -> paths`` of an item's side outputs (removed with a stale record).
        files: more ``{"role", "name", "path", "sha256"}`` entries for the weights list (model
            files the run reads besides the networks', e.g. the face landmarkers').

    Returns:
        ``(plan, device)``.
    """
    from utils.run.folder import check_writable, run_config
    from utils.run.networks import resolve_device, weight_files

    if not items:
        raise UsageError(empty)
    device = resolve_device(args.device)
    if args.limit is not None:
        items = items[: args.limit]
    shard, job = resolve_shard(args.shard), resolve_shard(args.shard, {})
    check_writable(run_dir)
    weights = [
        entry
        for role in roles
        for entry in weight_files(
            role, getattr(args, f"{role}_net"), getattr(args, f"{role}_weights")
        )
    ] + list(files)
    folder = RunFolder(run_dir, run_config(args, weights), extras=extras)
    folder.check_resumable(args.resume)
    mine = [it for it in items if it.index % shard[1] == shard[0]]
    job_items = [it for it in items if it.index % job[1] == job[0]]
    plan = RunPlan(
        folder,
        mine,
        job_items,
        shard,
        seed=args.seed,
        resume=args.resume,
        progress=getattr(args, "progress", True),
        job_shard=job,
    )
    return plan, device


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
        raise UsageError(
            f"RANK/WORLD_SIZE must be integers, got {env.get('RANK')!r}/{env.get('WORLD_SIZE')!r}"
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"invalid torchrun environment RANK={rank} WORLD_SIZE={world}")
    return i * world + rank, n * world


def shard_suffix(shard: tuple[int, int]) -> str:
    return "" if shard[1] == 1 else f"-shard-{shard[0]}-of-{shard[1]}"


def prefetch(
    items: Iterable[Any], read: Callable[[Any], Any], workers: int = 2, ahead: int = 4
) -> Iterator[tuple[Any, Future]]:
    """Yield ``(item, future of read(item))`` in order, reading up to ``ahead`` items in advance.

    Decoding runs in ``workers`` threads (OpenCV/Pillow release the GIL), overlapping the work
    on the current item. A read error is raised by ``future.result()``; a bad list line
    (``item.error``) is not read.
    """
    queue: deque[tuple[Any, Future]] = deque()
    todo = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim2word-read")

    def submit() -> None:
        item = next(todo, None)
        if item is not None:
            queue.append(
                (item, pool.submit(lambda it=item: None if it.error is not None else read(it)))
            )

    try:
        for _ in range(ahead):
            submit()
        while queue:
            item, future = queue.popleft()
            submit()
            yield item, future
    finally:  # an interrupt (Ctrl-C) does not wait for the reads queued ahead
        pool.shutdown(wait=False, cancel_futures=True)


def run_experiment(
    parser: Any,
    argv: list[str] | None,
    make_plan: Callable[[Any], Any],
    load_nets: Callable[[Any], Any],
    make_task: Callable[[Any, Any], Task],
    log: logging.Logger,
) -> int:
    """The ``main`` of a per-item experiment script: parse, plan, load the networks, run.

    Args:
        parser: the script's ``ArgumentParser``.
        argv: the arguments (``None``: ``sys.argv``).
        make_plan: ``args -> plan`` with ``.device`` and ``.run`` (a :class:`RunPlan`); raises
            :class:`UsageError`.
        load_nets: ``plan -> networks`` (the plan carries ``.args`` and ``.device``, and
            whatever else it resolved once, e.g. the canvas aligner); raises
            :class:`UsageError`.
        make_task: ``(plan, networks) -> Task``.
        log: where usage errors are reported.

    Returns:
        The exit code (module docstring).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # deterministic cuBLAS (utils.base.seeding asks torch for deterministic kernels); before CUDA
    # init
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    args = parser.parse_args(argv)
    try:
        plan = make_plan(args)
        nets = load_nets(plan)
    except UsageError as err:
        log.error("%s", err)
        return EXIT_USAGE
    try:
        return run_task(make_task(plan, nets), plan.run)
    except KeyboardInterrupt:
        log.error(
            "interrupted; every record written so far is complete: rerun the same command to resume"
        )
        return EXIT_INTERRUPTED


def run_task(task: Task, plan: RunPlan) -> int:
    """Run the plan's items through the task; returns the exit code (module docstring)."""
    from utils.base.seeding import seed_everything

    seed_everything(plan.seed)
    log = task.log
    try:
        plan.folder.open(plan.resume)
    except (UsageError, DiskFullError) as err:
        log.error("%s", err)
        return EXIT_DISK_FULL if isinstance(err, DiskFullError) else EXIT_USAGE
    suffix = shard_suffix(plan.shard)
    todo = _pending(task, plan)
    failures_path = plan.run_dir / f"failures{suffix}.jsonl"
    try:
        fh = open(failures_path, "w", encoding="utf-8")  # noqa: SIM115 (closed by _loop, line by line)
    except OSError as err:
        log.error("%s", output_error(err, failures_path))
        return EXIT_DISK_FULL if is_disk_full(err) else EXIT_USAGE
    seconds, stop = _loop(task, plan, todo, fh, suffix)
    counts = plan.counts
    n_run = counts["done"] + counts["failed"]
    summary = {
        task.count_key: len(plan.items),
        **counts,
        "missing": len(plan.items) - counts["done"] - counts["skipped"],
        "shard": list(plan.shard),
    }
    if isinstance(stop, RunConflictError):
        log.error("%s", stop)
        return EXIT_USAGE
    _write_summary(task, plan, plan.items, summary, suffix)
    _log_summary(task, f"summary{suffix}", summary, seconds / max(n_run, 1), plan.run_dir)
    if stop is not None:
        log.error(
            "%s. Stopped after %d %ss (exit status %d)", stop, n_run, task.unit, EXIT_DISK_FULL
        )
        return EXIT_DISK_FULL
    total = _all_ranks_summary(task, plan, summary, seconds / max(n_run, 1))
    if total is not None:
        summary = total
    return EXIT_FAILED if summary["failed"] or summary["missing"] else EXIT_OK


def _pending(task: Task, plan: RunPlan) -> list[Any]:
    """The items to run; with resume, those with a valid record of this run are counted as
    skipped."""
    todo = []
    for item in plan.items:
        if plan.resume and plan.folder.has_record(
            item.index, lambda r, it=item: task.check_record(r, it)
        ):
            plan.counts["skipped"] += 1
        else:
            todo.append(item)
    return todo


def _loop(
    task: Task, plan: RunPlan, todo: list[Any], fh, suffix: str
) -> tuple[float, Exception | None]:
    """Run ``todo``; returns the seconds spent and why the run stopped early (``None``: it did
    not)."""
    quiet = not plan.progress or os.environ.get("RANK", "0") not in (
        "",
        "0",
    )  # one bar under torchrun
    seconds, stop = 0.0, None
    bar = tqdm(
        prefetch(todo, task.read),
        total=len(todo),
        desc=f"{task.unit}s{suffix}",
        unit=task.unit,
        disable=quiet,
    )
    try:
        for item, inputs in bar:
            start = time.perf_counter()
            ctx = ItemContext(plan.run_dir, "parse")
            stop = _one(task, plan, item, inputs, ctx, fh)
            seconds += time.perf_counter() - start
            if stop is not None:
                _note_stop(fh, task, item, ctx.stage, stop)
                break
    except OSError as err:  # the failures file itself could not be written
        if not is_disk_full(err):
            raise
        stop = output_error(err, fh.name)
    finally:
        bar.close()
        _close_quietly(fh)
    return seconds, stop


def _one(
    task: Task, plan: RunPlan, item: Any, inputs: Future, ctx: ItemContext, fh
) -> Exception | None:
    """Run one item; a per-item failure is recorded. Returns the error that must stop the run, if
    any."""
    try:
        _run_item(task, plan, item, inputs, ctx)
    except (RunConflictError, DiskFullError) as err:
        return err
    except Exception as err:  # per-item failure: recorded, never fatal
        if is_disk_full(err):
            return output_error(err, plan.run_dir)
        plan.counts["failed"] += 1
        _write_failure(fh, task, item, ctx.stage, err)
        task.log.warning(
            "%s %d failed at %s: %s: %s",
            task.unit,
            item.index,
            ctx.stage,
            type(err).__name__,
            str(err)[:300],
        )
        return None
    plan.counts["done"] += 1
    return None


def _run_item(task: Task, plan: RunPlan, item: Any, inputs: Future, ctx: ItemContext) -> None:
    if item.error is not None:
        raise ValueError(item.error)
    ctx.stage = "read"
    data = inputs.result()
    ctx.stage = "explain"
    record = task.run(item, data, ctx)
    ctx.stage = "record"
    plan.folder.write_record(item.index, record)  # last: the completion marker


def _write_failure(fh, task: Task, item: Any, stage: str, err: BaseException) -> None:
    line = {
        **task.failure_fields(item),
        "stage": stage,
        "error_type": type(err).__name__,
        "message": str(err)[:2000],
    }
    fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    fh.flush()


def _note_stop(fh, task: Task, item: Any, stage: str, err: BaseException) -> None:
    """Record the item that was being written when the run had to stop (if the disk allows)."""
    try:
        _write_failure(fh, task, item, stage, err)
    except OSError:
        task.log.warning(
            "could not record the failure of %s %d in the failures file", task.unit, item.index
        )


def _close_quietly(fh) -> None:
    try:
        fh.close()
    except (
        OSError
    ) as err:  # a full disk may refuse the last flush; the loop has reported it already
        logging.getLogger("sim2word").debug("closing the failures file: %s", err)


def records_of(plan: RunPlan, task: Task, items: Sequence[Any]) -> list[dict[str, Any]]:
    """The valid records of this run among ``items``, in item order."""
    out = []
    for item in items:
        record = read_json(plan.folder.record_path(item.index))
        if (
            isinstance(record, dict)
            and record.get("run-fingerprint") == plan.folder.fingerprint
            and task.check_record(record, item) is None
        ):
            out.append(record)
    return out


def _write_summary(
    task: Task, plan: RunPlan, items: Sequence[Any], summary: dict[str, Any], suffix: str
) -> None:
    extra, text = task.summarise(records_of(plan, task, items))
    summary.update(extra)
    try:
        atomic_write_json(plan.run_dir / f"summary{suffix}.json", summary)
        if text is not None:
            atomic_write_text(plan.run_dir / f"summary{suffix}.txt", text)
    except OSError as err:
        if not is_disk_full(err):
            raise
        task.log.error(
            "could not write summary%s.json: %s", suffix, output_error(err, plan.run_dir)
        )
    if text is not None:
        task.log.info("%s", text.rstrip("\n"))


def _log_summary(
    task: Task, name: str, summary: dict[str, Any], seconds: float, run_dir: Path
) -> None:
    task.log.info(
        "%s: %d %ss, done %d, skipped (already done) %d, failed %d, missing %d; %.3f s/%s -> %s",
        name,
        summary[task.count_key],
        task.unit,
        summary["done"],
        summary["skipped"],
        summary["failed"],
        summary["missing"],
        seconds,
        task.unit,
        run_dir,
    )


def _all_ranks_summary(
    task: Task, plan: RunPlan, summary: dict[str, Any], seconds: float
) -> dict[str, Any] | None:
    """Under torchrun: add up the ranks' counts (gloo all-reduce); rank 0 logs and writes the job's
    report.

    Returns the summed summary (on every rank), or ``None`` outside torchrun.
    """
    env = os.environ
    world = int(env.get("WORLD_SIZE", 1) or 1)
    if world == 1 or not (env.get("MASTER_ADDR") and env.get("MASTER_PORT")):
        return None
    import torch
    import torch.distributed as dist

    keys = (task.count_key, "done", "skipped", "failed", "missing")
    own = dist.is_initialized()
    if not own:  # ranks may finish hours apart: wait for the slowest one
        dist.init_process_group("gloo", timeout=timedelta(days=7))
    try:
        sums = torch.tensor([summary[k] for k in keys] + [seconds], dtype=torch.float64)
        dist.all_reduce(sums)
    finally:
        if not own:
            dist.destroy_process_group()
    total: dict[str, Any] = {k: int(v) for k, v in zip(keys, sums[:-1].tolist(), strict=True)}
    total["shard"] = list(plan.job_shard)
    total["ranks"] = world
    if int(env.get("RANK", 0)) == 0:
        _write_summary(task, plan, plan.all_items, total, shard_suffix(plan.job_shard))
        _log_summary(
            task,
            f"summary of all {world} ranks" + shard_suffix(plan.job_shard),
            total,
            float(sums[-1]) / world,
            plan.run_dir,
        )
    return total
