"""Shared pytest setup: the repo root on sys.path, CPU by default, seeded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Shared data beside the checkout (read-only); tests that need it skip without it.
SHARED_DIR = Path(os.environ.get("SIM2WORD_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(autouse=True)
def _seed():
    from utils.base.seeding import seed_everything

    seed_everything(0, deterministic=False)
    yield


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DIR} (set SIM2WORD_SHARED)")
    return SHARED_DIR


# Tiny convolutions on a shared 2-core machine run far faster single-threaded
# (thread hand-off dominates); tests never need intra-op parallelism.
import torch  # noqa: E402

torch.set_num_threads(1)
