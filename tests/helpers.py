"""Helpers of the end-to-end tests: tiny random-weight nets in files, script runs, strict JSON.

Import as ``from tests.helpers import ...`` (the repo root is on ``sys.path``, see
``tests/conftest.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: role -> (registered name, architecture overrides): FaceWorld architectures, a few channels wide.
TINY_ARCH = {
    "recognition": ("FaceWorld-recognition", {"width": 4, "num_classes": 7, "input_size": 64}),
    "attribute": ("FaceWorld-attribute", {"width": 4, "input_size": 64}),
    "verification": (
        "FaceWorld-verification",
        {"width": 4, "embedding_size": 16, "input_size": 32},
    ),
}


def save_tiny_nets(folder: Path, arch: dict = TINY_ARCH, seed: int = 0) -> list[str]:
    """Save seeded random-weight nets as ``<role>.pth`` in ``folder``.

    Returns:
        The script flags that load them.
    """
    import torch

    from models import get_network

    flags: list[str] = []
    for k, (role, (name, overrides)) in enumerate(arch.items()):
        torch.manual_seed(seed * 100 + k)
        net = get_network(name, weights=False, **overrides)
        torch.save(net.state_dict(), folder / f"{role}.pth")
        flags += [
            f"--{role}-weights",
            str(folder / f"{role}.pth"),
            f"--{role}-arch",
            json.dumps(overrides),
        ]
    return flags


def load_tiny_net(folder: Path, role: str, arch: dict = TINY_ARCH):
    """The net of ``role`` saved by :func:`save_tiny_nets` (eval mode, CPU)."""
    from models import get_network

    name, overrides = arch[role]
    return get_network(name, weights=folder / f"{role}.pth", **overrides)


def script_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}


def run_script(
    script: str, args: list[str], cwd: Path, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run a top-level script of the repo with this interpreter; captures text output."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=script_env(),
    )


def strict_load(path: Path):
    """``json.load`` that refuses NaN/Infinity constants.

    ``allow_nan=False`` writers never produce them.
    """

    def bad(c):
        raise ValueError(f"non-finite constant {c} in {path}")

    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=bad)


def all_numbers(obj) -> list[float]:
    """Every int/float (not bool) inside nested dicts/lists."""
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in all_numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in all_numbers(v)]
    return [obj] if isinstance(obj, (int, float)) and not isinstance(obj, bool) else []


def files_under(root: Path) -> dict[str, int]:
    """Relative path -> size of every file under ``root`` (hidden ones included)."""
    return {
        p.relative_to(root).as_posix(): p.stat().st_size
        for p in Path(root).rglob("*")
        if p.is_file()
    }


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
