"""Issue 9, crashes: a run killed by SIGKILL and resumed ends with an uninterrupted run's outputs.

Twenty face-world pairs (rendered here at 64 px) run through
``Multi_Identity_topk.py`` with tiny random-weight FaceWorld-architecture nets,
random-fill erasing (so the seed matters) and visualisation on (so image files
are written too). Compared file by file, byte for byte:

* two uninterrupted runs with the same seed and flags;
* an uninterrupted run and a run killed hard partway, with one of its finished
  records then truncated by hand, and resumed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, run_script, save_tiny_nets, script_env, strict_load
from utils.base.atomic import atomic_write_bytes, atomic_write_json
from utils.face_world.dataset import write_pair_dataset
from utils.run.records import is_done

N_PAIRS = 20
RUN_DIR = "scores-group-pairs-FaceWorld-verification-topk-1-erase-random-thresh-0.3"
TMP_NAME = re.compile(r"^\..+\.tmp$")  # utils.base.atomic's temporary names: hidden, never *.json


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    paths = write_pair_dataset(
        root / "fw",
        num_identities=6,
        num_pairs=N_PAIRS,
        seed=3,
        images_per_identity=4,
        size=64,
        progress=False,
    )
    (root / "nets").mkdir()
    flags = save_tiny_nets(root / "nets", seed=1)
    common = [
        "--pair-list",
        str(paths["pairs"]),
        "--device",
        "cpu",
        "--seed",
        "7",
        "--Erasing-method",
        "random",
        "--thresh",
        "0.3",
        "--batch-size",
        "16",
        *flags,
    ]
    ref = run_script(
        "Multi_Identity_topk.py", [*common, "--output-dir", str(root / "ref")], cwd=root
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    return root, common, root / "ref" / RUN_DIR


def outputs(run: Path) -> dict[str, bytes]:
    """Visible result files of a run folder -> bytes.

    config.json is taken without its output_dir; the summary is left out.
    """
    out = {}
    for p in sorted(run.rglob("*")):
        rel = p.relative_to(run).as_posix()
        if (
            p.is_file()
            and not p.name.startswith(".")
            and rel not in ("summary.json", "config.json")
        ):
            out[rel] = p.read_bytes()
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    config.pop("output_dir")
    out["config.json (without output_dir)"] = json.dumps(config, sort_keys=True).encode()
    return out


def _compare(a: dict[str, bytes], b: dict[str, bytes]) -> None:
    assert sorted(a) == sorted(b), (
        f"file sets differ: only in first {sorted(set(a) - set(b))[:5]}, "
        f"only in second {sorted(set(b) - set(a))[:5]}"
    )
    differ = [k for k in a if a[k] != b[k]]
    assert not differ, f"{len(differ)} files differ, e.g. {differ[:5]}"


def test_reference_run_is_complete(world):
    _, _, ref = world
    files = outputs(ref)
    assert sorted(int(Path(k).stem) for k in files if k.startswith("json/")) == list(range(N_PAIRS))
    cam = sorted(k for k in files if k.startswith("cam/"))
    assert cam == sorted(f"cam/{n}.png" for n in range(N_PAIRS))
    assert (ref / "failures.jsonl").read_text() == ""
    assert strict_load(ref / "summary.json") == {
        "pairs": N_PAIRS,
        "done": N_PAIRS,
        "skipped": 0,
        "failed": 0,
        "missing": 0,
        "shard": [0, 1],
    }
    assert not [p for p in ref.rglob(".*")], (
        "temporary files left by a run that was not interrupted"
    )


def test_same_seed_and_flags_give_byte_identical_outputs(world, tmp_path):
    root, common, ref = world
    limit = 8  # the first 8 pairs suffice (and keep CI time down)
    res = run_script(
        "Multi_Identity_topk.py",
        [*common, "--output-dir", str(tmp_path), "--limit", str(limit)],
        cwd=root,
    )
    assert res.returncode == 0, res.stderr[-3000:]

    def first(files: dict[str, bytes]) -> dict[str, bytes]:
        return {
            k: v
            for k, v in files.items()
            if re.match(rf"(json|cam)/({'|'.join(map(str, range(limit)))})[.-]", k)
        }

    again, before = first(outputs(tmp_path / RUN_DIR)), first(outputs(ref))
    assert len(before) == limit * 2  # the record and the composite figure (--visualization summary)
    _compare(before, again)


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with log.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, str(REPO / "Multi_Identity_topk.py"), *args],
            cwd=cwd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=script_env(),
        )


def test_sigkill_then_resume_equals_an_uninterrupted_run(world, tmp_path):
    root, common, ref = world
    run = tmp_path / "out" / RUN_DIR
    proc = _start([*common, "--output-dir", str(tmp_path / "out")], root, tmp_path / "killed.log")
    try:
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            if len(list((run / "json").glob("*.json"))) >= 3 if (run / "json").is_dir() else False:
                break
            time.sleep(0.01)
        assert proc.poll() is None, (
            "the run ended before it could be killed: "
            + (tmp_path / "killed.log").read_text(errors="replace")[-2000:]
        )
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    # what a kill leaves: complete records and hidden temporary files only
    names = [p.name for p in (run / "json").iterdir()]
    records = [n for n in names if n.endswith(".json")]
    assert 3 <= len(records) < N_PAIRS, f"killed after {len(records)} of {N_PAIRS} records"
    assert all(re.fullmatch(r"\d+\.json", n) and is_done(run / "json" / n) for n in records), (
        records
    )
    assert all(TMP_NAME.match(n) for n in names if n not in records), names
    assert all(TMP_NAME.match(p.name) for p in run.rglob(".*")), "a visible partial file"
    killed_with = len(records)

    # a record damaged outside our control (e.g. copied half-way) is recomputed, not trusted
    damaged = run / "json" / sorted(records)[0]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])

    res = run_script(
        "Multi_Identity_topk.py", [*common, "--output-dir", str(tmp_path / "out")], cwd=root
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = strict_load(run / "summary.json")
    assert summary["skipped"] == killed_with - 1 and summary["done"] == N_PAIRS - killed_with + 1, (
        summary
    )
    assert summary["failed"] == summary["missing"] == 0
    _compare(outputs(ref), outputs(run))


def test_atomic_write_leaves_old_file_or_new_file_never_a_partial_one(tmp_path, monkeypatch):
    target = tmp_path / "3.json"
    atomic_write_json(target, {"old": 1})

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b'{"new": ')
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["3.json"], "temporary file not cleaned up"
    with pytest.raises(ValueError, match="JSON compliant"):
        # allow_nan=False: refused before any byte is written
        atomic_write_json(target, {"x": float("nan")})
    assert json.loads(target.read_text()) == {"old": 1} and len(list(tmp_path.iterdir())) == 1
