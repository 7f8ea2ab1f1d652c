"""Scale: a 2-process CPU torchrun gives exactly the single-process records.

Resume regenerates exactly what was deleted.

Face-world pairs rendered into tmp_path (utils.face_world), tiny random-weight
networks of the face-world architectures saved to tmp .pth files. torchrun is
``python -m torch.distributed.run --standalone --nproc_per_node=2`` (rendezvous on
a free local port); the ranks use no process group while running and a gloo one
only to add up the final report.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ARCH = {
    "recognition": ("FaceWorld-recognition", {"width": 4, "num_classes": 7}),
    "attribute": ("FaceWorld-attribute", {"width": 4}),
    "verification": (
        "FaceWorld-verification",
        {"width": 4, "embedding_size": 16, "input_size": 32},
    ),
}
RUN_DIR = "scores-group-pairs-FaceWorld-verification-topk-1-erase-black-thresh-0.2"
N_GOOD = 6  # face-world pairs; one more list line names a missing image
REPORT = re.compile(
    r"summary of all 2 ranks: (\d+) pairs, done (\d+), skipped \(already done\) (\d+), "
    r"failed (\d+), missing (\d+)"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from models import get_network
    from utils.face_world.dataset import write_pair_dataset

    root = tmp_path_factory.mktemp("torchrun")
    paths = write_pair_dataset(
        root / "data",
        num_identities=4,
        num_pairs=N_GOOD,
        seed=3,
        images_per_identity=2,
        size=64,
        progress=False,
    )
    with paths["pairs"].open("a", encoding="utf-8") as fh:
        fh.write("id_0000/0000.png id_0000/missing.png 1\n")  # pair 6: fails at "read" on rank 0
    flags = [
        "--pair-list",
        str(paths["pairs"]),
        "--device",
        "cpu",
        "--thresh",
        "0.2",
        "--no-visualization",
        "--batch-size",
        "16",
    ]
    for role, (name, arch) in ARCH.items():
        torch.manual_seed(len(role))
        torch.save(get_network(name, weights=False, **arch).state_dict(), root / f"{role}.pth")
        flags += [
            f"--{role}-weights",
            str(root / f"{role}.pth"),
            f"--{role}-arch",
            json.dumps(arch),
        ]
    return root, flags


def torchrun(flags, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(REPO / "Multi_Identity_topk.py"),
        *flags,
        "--output-dir",
        str(out),
    ]
    res = subprocess.run(
        cmd, check=False, cwd=out.parent, capture_output=True, text=True, timeout=240, env=env
    )
    reports = [tuple(map(int, m)) for m in REPORT.findall(res.stderr)]
    assert len(reports) == 1, (
        f"expected one report of all ranks (rank 0), got {reports}:\n{res.stderr[-4000:]}"
    )
    return res, reports[0]


def records(run):
    return {p.name: p.read_bytes() for p in sorted((run / "json").iterdir())}


@pytest.fixture(scope="module")
def runs(world, tmp_path_factory):
    from utils.run.runner import main

    root, flags = world
    single = root / "single"
    assert main("topk", [*flags, "--output-dir", str(single)]) == 3  # one pair fails
    multi = root / "multi"
    res, report = torchrun(flags, multi)
    return single / RUN_DIR, multi / RUN_DIR, res, report


def test_two_ranks_write_exactly_the_single_process_records(runs):
    single, multi, res, report = runs
    expected = [f"{n}.json" for n in range(N_GOOD)]
    assert sorted(records(single)) == sorted(records(multi)) == sorted(expected)
    a, b = records(single), records(multi)
    diff = [n for n in a if a[n] != b[n]]
    assert not diff, f"records differ between the single-process and the torchrun run: {diff}"
    assert res.returncode != 0  # a pair failed: each rank exits 3 (torchrun reports the failure)
    assert report == (N_GOOD + 1, N_GOOD, 0, 1, 1)  # pairs, done, skipped, failed, missing
    total = json.loads((multi / "summary.json").read_text())
    assert (total["pairs"], total["done"], total["failed"], total["missing"], total["ranks"]) == (
        7,
        6,
        1,
        1,
        2,
    )
    # each rank ran only its share (index % 2 == rank) and wrote its own summary and failures files
    shards = [json.loads((multi / f"summary-shard-{r}-of-2.json").read_text()) for r in range(2)]
    assert [(s["pairs"], s["done"], s["failed"]) for s in shards] == [(4, 3, 1), (3, 3, 0)]
    fails = [
        json.loads(line)
        for line in (multi / "failures-shard-0-of-2.jsonl").read_text().splitlines()
    ]
    assert [(f["pair"], f["stage"]) for f in fails] == [(6, "read")]
    assert (multi / "failures-shard-1-of-2.jsonl").read_text() == ""


def test_resume_regenerates_exactly_the_deleted_records(runs, world):
    _, multi, _, _ = runs
    _, flags = world
    before = records(multi)
    stamps = {p.name: p.stat().st_mtime_ns for p in (multi / "json").iterdir()}
    deleted = ["1.json", "4.json"]  # one of each rank
    for name in deleted:
        (multi / "json" / name).unlink()
    # a half-written file does not count as done
    (multi / "json" / "2.json").write_text('{"truncated": ')
    _, report = torchrun(flags, multi.parent)
    assert report == (7, 3, 3, 1, 1), report
    assert records(multi) == before, "resumed records are not byte-identical"
    rewritten = {
        n
        for n, t in stamps.items()
        if n not in deleted and (multi / "json" / n).stat().st_mtime_ns != t
    }
    assert rewritten == {"2.json"}, f"files rewritten besides the deleted/broken ones: {rewritten}"


def test_rerun_of_finished_single_process_run_prints_the_report(runs, world, caplog):
    """A rerun of a finished single-process run prints the all-ranks report.

    (The report of a torchrun rerun comes from the same counts; a third launch would cost ~15 s.)
    """
    from utils.run.runner import main

    single, _, _, _ = runs
    _, flags = world
    with caplog.at_level(logging.INFO, logger="sim2word"):
        assert main("topk", [*flags, "--output-dir", str(single.parent)]) == 3
    assert "7 pairs, done 0, skipped (already done) 6, failed 1, missing 1" in caplog.text
