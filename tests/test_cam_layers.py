"""benchmarks/cam_layers.py --pairs: which pairs it takes and what it counts as zero."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("cam_layers", REPO / "benchmarks/cam_layers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_split_pairs_keeps_pairs_with_both_photos_in_the_chosen_identities(tmp_path):
    item = lambda a, b, err=None: SimpleNamespace(  # noqa: E731
        path1=str(tmp_path / a), path2=str(tmp_path / b), error=err
    )
    items = [
        item("x/1.jpg", "y/1.jpg"),
        item("x/1.jpg", "z/1.jpg"),
        item("z/1.jpg", "z/2.jpg"),
        item("x/2.jpg", "x/3.jpg", err="bad line"),
    ]
    kept = _module().split_pairs(items, tmp_path, {"x", "y"})
    assert kept == items[:1]


def test_direction_flags_hand_case():
    # H_d > 0.6 only at pixel (0, 0); H_attr[1] > 0.6 only at (1, 1): no overlap, and
    # J = H_d * H_attr has max 0.9 * 0.5 = 0.45 at (0, 0).
    H_d = np.array([[0.9, 0.1], [0.0, 0.2]], np.float32)
    H_attr = np.array([[[0.5, 0, 0, 0.0]], [[0.0, 0, 0, 1.0]]], np.float32).reshape(2, 2, 2)
    d = SimpleNamespace(
        H_t=np.zeros((2, 2), np.float32),
        H_f=np.full((2, 2), 0.3, np.float32),
        H_d=H_d,
        H_attr=H_attr,
        J=H_d[None] * H_attr,
    )
    flags = _module().direction_flags(d, 0.6)
    assert flags == {
        "H_t_zero": 1.0,
        "H_f_zero": 0.0,
        "H_d_zero": 0.0,
        "no_overlap": 1.0,
        "J_max": float(np.float32(0.9) * np.float32(0.5)),
    }
    H_attr[1, 0, 0] = 0.8  # now both exceed 0.6 at (0, 0)
    assert _module().direction_flags(d, 0.6)["no_overlap"] == 0.0
