"""The one run loop (utils/run/loop.py, folder.py): resume trusts only this run's records, one run
per
folder, full disks, with a tiny task (no network) so that every rule is checked exactly."""

from __future__ import annotations

import errno
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from utils.base import atomic
from utils.run.folder import RunConflictError, RunFolder, UsageError, check_writable, fingerprint
from utils.run.loop import (
    EXIT_DISK_FULL,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    RunPlan,
    resolve_shard,
    run_task,
)


@dataclass(frozen=True)
class Item:
    index: int
    line_no: int
    path: str
    label: int
    error: str | None = None


class CountingTask:
    """Record = {"index", "path", "label", "value": 10 * index}; item paths containing "bad" fail
    at read."""

    unit, count_key = "thing", "things"
    log = logging.getLogger("sim2word.test")

    def __init__(self) -> None:
        self.ran: list[int] = []

    def read(self, item: Item) -> str:
        if "bad" in item.path:
            raise FileNotFoundError(f"cannot read {item.path}")
        return item.path

    def run(self, item: Item, inputs: str, ctx) -> dict:
        self.ran.append(item.index)
        return {"index": item.index, "path": inputs, "label": item.label, "value": 10 * item.index}

    def failure_fields(self, item: Item) -> dict:
        return {"thing": item.index, "line": item.line_no, "path": item.path}

    def check_record(self, record: dict, item: Item) -> str | None:
        if set(record) != {"index", "path", "label", "value", "run-fingerprint"}:
            return "not a record of this task"
        ok = (record["index"], record["path"], record["label"]) == (
            item.index,
            item.path,
            item.label,
        )
        return None if ok else "record of another item"

    def summarise(self, records: list[dict]) -> tuple[dict, str | None]:
        return {"total-value": sum(r["value"] for r in records)}, None


def items(n: int, prefix: str = "img", bad: tuple[int, ...] = ()) -> list[Item]:
    return [Item(i, i + 1, f"{prefix}{i}{'-bad' if i in bad else ''}.png", i % 2) for i in range(n)]


def plan_for(
    run_dir: Path, its: list[Item], settings: dict | None = None, resume: bool = True
) -> RunPlan:
    settings = settings or {"seed": 0}
    config = {**settings, "weights": [], "fingerprint": fingerprint(settings, [])}
    return RunPlan(RunFolder(run_dir, config), its, its, (0, 1), resume=resume, progress=False)


def records(run_dir: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((run_dir / "json").glob("*.json"))}


def test_a_finished_run_then_a_resume_that_skips_everything(tmp_path):
    task = CountingTask()
    assert run_task(task, plan_for(tmp_path / "run", items(4, bad=(2,)))) == EXIT_FAILED
    recs = records(tmp_path / "run")
    assert sorted(recs) == ["0.json", "1.json", "3.json"] and recs["3.json"]["value"] == 30
    (fail,) = [
        json.loads(x) for x in (tmp_path / "run" / "failures.jsonl").read_text().splitlines()
    ]
    assert fail == {
        "thing": 2,
        "line": 3,
        "path": "img2-bad.png",
        "stage": "read",
        "error_type": "FileNotFoundError",
        "message": "cannot read img2-bad.png",
    }
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary == {
        "things": 4,
        "done": 3,
        "skipped": 0,
        "failed": 1,
        "missing": 1,
        "shard": [0, 1],
        "total-value": 40,
    }
    task2 = CountingTask()
    assert run_task(task2, plan_for(tmp_path / "run", items(4))) == EXIT_OK  # item 2 now readable
    assert task2.ran == [2]


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda p: p.write_text('{"foo": 1}'), "parses but is no record"),
        (
            lambda p: p.write_text(
                json.dumps({**json.loads(p.read_text()), "run-fingerprint": "0" * 32})
            ),
            "record of another run",
        ),
        (
            lambda p: p.write_text(
                json.dumps({**json.loads(p.read_text()), "path": "elsewhere.png"})
            ),
            "the list changed under the same name",
        ),
        (
            lambda p: p.write_text(json.loads(p.read_text()) and '{"index": 1, "path": '),
            "truncated",
        ),
    ],
    ids=["foo", "other-fingerprint", "other-pair", "truncated"],
)
def test_resume_recomputes_any_record_that_is_not_a_valid_record_of_this_run(tmp_path, damage, why):
    run = tmp_path / "run"
    assert run_task(CountingTask(), plan_for(run, items(3))) == EXIT_OK
    before = records(run)
    damage(run / "json" / "1.json")
    task = CountingTask()
    assert run_task(task, plan_for(run, items(3))) == EXIT_OK
    assert task.ran == [1], why
    assert records(run) == before


def test_a_folder_of_other_settings_is_refused_with_resume_and_taken_over_without(tmp_path, caplog):
    run = tmp_path / "run"
    assert run_task(CountingTask(), plan_for(run, items(5), {"seed": 0})) == EXIT_OK
    other = plan_for(run, items(5), {"seed": 1})
    with pytest.raises(UsageError, match=r"other settings \(seed: 0 -> 1\).*--no-resume"):
        other.folder.check_resumable(True)
    with caplog.at_level(logging.ERROR):
        assert run_task(CountingTask(), other) == EXIT_USAGE
    assert "other settings" in caplog.text
    # --no-resume --limit 2: the two new records, and no stale record of seed 0 beside them
    task = CountingTask()
    assert run_task(task, plan_for(run, items(2), {"seed": 1}, resume=False)) == EXIT_OK
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 1 and sorted(records(run)) == ["0.json", "1.json"]
    assert {r["run-fingerprint"] for r in records(run).values()} == {config["fingerprint"]}


def test_a_run_whose_folder_is_taken_over_stops_without_writing(tmp_path, caplog):
    run = tmp_path / "run"
    first = plan_for(run, items(4), {"seed": 0})
    first.folder.open(resume=True)
    first.folder.write_record(0, {"index": 0, "path": "img0.png", "label": 0, "value": 0})
    second = plan_for(run, items(4), {"seed": 1}, resume=False)
    second.folder.open(resume=False)  # takes the folder over: removes seed 0's record
    assert list((run / "json").iterdir()) == []
    with pytest.raises(RunConflictError, match="taken over"):
        first.folder.write_record(1, {"index": 1, "path": "img1.png", "label": 1, "value": 10})
    assert list((run / "json").iterdir()) == []
    # through the loop: the first run ends with exit 2 and writes nothing more
    with caplog.at_level(logging.ERROR):
        task = CountingTask()
        first.folder.open = lambda resume: None  # it had started before the takeover
        assert run_task(task, first) == EXIT_USAGE
    assert "taken over" in caplog.text and list((run / "json").iterdir()) == []


def test_two_processes_of_one_run_share_the_folder(tmp_path):
    run = tmp_path / "run"
    a, b = plan_for(run, items(4)), plan_for(run, items(4))
    a.folder.open(resume=True)
    b.folder.open(resume=True)  # same settings: allowed (shards of one job)
    a.folder.write_record(0, {"index": 0, "path": "img0.png", "label": 0, "value": 0})
    b.folder.write_record(1, {"index": 1, "path": "img1.png", "label": 1, "value": 10})
    assert sorted(records(run)) == ["0.json", "1.json"]


def _fail_after(monkeypatch, n: int) -> list[Path]:
    """Make utils.base.atomic.atomic_write_bytes raise ENOSPC after ``n`` successful writes."""
    real, written = atomic.atomic_write_bytes, []

    def write(path, data):
        if len(written) >= n:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(Path(path))
        return real(path, data)

    monkeypatch.setattr(atomic, "atomic_write_bytes", write)
    return written


def test_a_full_disk_stops_the_run_with_exit_4_and_a_rerun_finishes(tmp_path, monkeypatch, caplog):
    run = tmp_path / "run"
    written = _fail_after(monkeypatch, 3)  # config.json + 2 records, then the disk is full
    task = CountingTask()
    with caplog.at_level(logging.INFO):
        code = run_task(task, plan_for(run, items(6)))
    assert code == EXIT_DISK_FULL
    assert [p.name for p in written] == ["config.json", "0.json", "1.json"]
    assert task.ran == [0, 1, 2], "the run went on after the disk filled up"
    assert "no space left on the device" in caplog.text and "rerun the same command" in caplog.text
    (fail,) = [json.loads(x) for x in (run / "failures.jsonl").read_text().splitlines()]
    assert (
        fail["thing"] == 2 and fail["stage"] == "record" and fail["error_type"] == "DiskFullError"
    )
    assert "could not write summary.json" in caplog.text
    assert not [p for p in run.rglob("*.tmp")], "a temporary file was left behind"
    monkeypatch.undo()
    task = CountingTask()
    assert run_task(task, plan_for(run, items(6))) == EXIT_OK
    assert task.ran == [2, 3, 4, 5] and sorted(records(run)) == [f"{i}.json" for i in range(6)]
    assert json.loads((run / "summary.json").read_text())["skipped"] == 2


def test_a_full_disk_at_the_start_is_exit_4(tmp_path, monkeypatch, caplog):
    _fail_after(monkeypatch, 0)
    with caplog.at_level(logging.ERROR):
        assert run_task(CountingTask(), plan_for(tmp_path / "run", items(2))) == EXIT_DISK_FULL
    assert "no space left" in caplog.text


def test_output_location_errors_are_usage_errors(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        check_writable(tmp_path / "file" / "run")
    with pytest.raises(UsageError, match="shorter --Datasets"):
        check_writable(tmp_path / ("scores-group-" + "x" * 300))
    monkeypatch.setattr("os.access", lambda path, mode: False)
    with pytest.raises(UsageError, match="read-only"):
        check_writable(tmp_path / "new")


def test_a_read_only_mount_is_exit_2(tmp_path, monkeypatch, caplog):
    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with caplog.at_level(logging.ERROR):
        assert run_task(CountingTask(), plan_for(tmp_path / "run", items(2))) == EXIT_USAGE
    assert "Read-only file system" in caplog.text and "--output-dir" in caplog.text


def test_shards_and_ranks():
    assert resolve_shard(None, {}) == (0, 1)
    assert resolve_shard("1/4", {}) == (1, 4)
    assert resolve_shard("1/4", {"RANK": "1", "WORLD_SIZE": "2"}) == (3, 8)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(UsageError, match="--shard"):
            resolve_shard(bad, {})


def test_ctrl_c_is_exit_130_and_cancels_queued_reads():
    """A KeyboardInterrupt in the loop ends the run with 130; reads queued ahead never start."""
    import threading

    from utils.run import loop

    started: list[int] = []
    gate = threading.Event()

    class Item:
        def __init__(self, n: int) -> None:
            self.index, self.error = n, None

    def read(item):
        started.append(item.index)
        gate.wait(5)
        return item.index

    gen = loop.prefetch([Item(n) for n in range(50)], read, workers=1, ahead=4)
    next(gen)
    gen.close()  # what an exception in the consumer does to the generator
    gate.set()
    assert len(started) <= 2, started  # the running read may finish; the queued ones are cancelled

    class Plan:
        device = "cpu"
        run = None

    def make_plan(args):
        return Plan()

    def interrupted(task, plan):
        raise KeyboardInterrupt

    import argparse
    import logging

    original = loop.run_task
    loop.run_task = interrupted
    try:
        code = loop.run_experiment(
            argparse.ArgumentParser(),
            [],
            make_plan,
            lambda plan: None,
            lambda plan, nets: None,
            logging.getLogger("test"),
        )
    finally:
        loop.run_task = original
    assert code == loop.EXIT_INTERRUPTED == 130
