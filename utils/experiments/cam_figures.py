"""Class activation maps of a pair list, drawn as the authors' ``CAM_visualization*.py`` did.

``CAM_visualization.py --mode ...`` runs the pair loop (:mod:`utils.run.loop`:
resume, shards, failures, exit codes) with only the recognition net R and the
attribute net A, and writes JET overlays of the maps, upsampled to each image
with a colour-scale strip (:func:`utils.explain.visualize.overlay_with_scale`):

* ``identity`` (their ``CAM_visualization.py``, Identity-CAM): the Grad-CAM
  of each image's own class set, H_t: ``identity/<n>-1.jpg``,
  ``identity/<n>-2.jpg``;
* ``attribute`` (their Attribute-CAM and ``CAM_visualization_attribute.py``):
  the map of every attribute head on each image, H_attr[j]:
  ``attribute/<n>-<i>/<jj>-<word>.jpg``; ``--present-only`` keeps the present
  attributes (worded by class), as ``CAM_visualization_attribute.py`` does;
* ``counterfactual`` (their ``CAM_visualization_counterfactual.py``): per
  direction, H_t ("real"), H_f ("counter"), 1 - H_f ("counter-f") and H_d
  ("heatmap"): ``counterfactual/<n>-n1-n2/{H_t,H_f,1-H_f,H_d}.jpg`` and
  ``<n>-n2-n1/``.

Run folder: ``<output-dir>/CAM-<Datasets>-<recognition-net>-topk-<k>`` (+ the
settings that differ from the defaults, :func:`run_dir_name`) with
``json/<n>.json`` (what was drawn for pair n), ``config.json``,
``failures.jsonl`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.base.atomic import atomic_write_image
from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets, explain_pair
from utils.explain.visualize import attribute_label, overlay_with_scale
from utils.faces.data import PairItem
from utils.run import cli
from utils.run.folder import UsageError, safe_name
from utils.run.loop import ItemContext, RunPlan, plan_run, run_experiment
from utils.run.networks import load_networks
from utils.run.runner import pair_items

log = logging.getLogger("sim2word")
MODES = ("identity", "attribute", "counterfactual")
ROLES = (("recognition", "FaceWorld-recognition"), ("attribute", "FaceWorld-attribute"))
RECORD_KEYS = (
    "pair-index",
    "image-path1",
    "image-path2",
    "match",
    "modes",
    "class1",
    "class2",
    "files",
)

DESCRIPTION = """Class activation maps of a pair list (the authors' CAM_visualization scripts).

--mode identity: Grad-CAM of each image's own identity (top-k class set) on R;
--mode attribute: the map of every attribute head of A on each image;
--mode counterfactual: per direction H_t, H_f, 1 - H_f and the discriminant H_d.
Overlays are upsampled to each image, with a colour-scale strip (top = 1).

Example:
    python CAM_visualization.py --mode identity attribute counterfactual --limit 5
"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of ``CAM_visualization.py`` (:mod:`utils.run.cli` groups)."""
    p = cli.make_parser(DESCRIPTION, cli.EXIT_STATUS.format(unit="pair"), prog)
    cli.add_pair_data_flags(p)
    cli.add_network_flags(p, ROLES)
    meth = p.add_argument_group("method")
    cli.add_flag(
        meth,
        "--mode",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="which maps to draw (one or more; default: all three)",
    )
    cli.add_flag(
        meth,
        "--present-only",
        action="store_true",
        help="--mode attribute: only the attributes present in the image (the authors' "
        "CAM_visualization_attribute.py)",
    )
    cli.add_heatmap_method(meth)
    cli.add_flag(
        meth,
        "--topk",
        type=cli.positive_int,
        default=1,
        help="k: class set = the k identities with the largest logits (default: %(default)s)",
    )
    cli.add_run_flags(
        p,
        "pair",
        "parent of the run folder CAM-<Datasets>-<recognition-net>-... (default: <repo>/outputs)",
        "seed of everything",
        "images per forward (unused: two images per pair)",
    )
    return p


def run_dir_name(args: argparse.Namespace) -> str:
    """``CAM-<Datasets>-<recognition-net>-topk-<k>``, then ``-GradCAMpp`` for Grad-CAM++, the
    modes (``-identity+attribute``) unless all three, ``-present`` with ``--present-only``."""
    name = f"CAM-{safe_name(args.Datasets)}-{safe_name(args.recognition_net)}-topk-{args.topk}"
    name += "" if args.heatmap_method == "GradCAM" else "-GradCAMpp"
    modes = sorted(set(args.mode), key=MODES.index)
    name += "" if len(modes) == len(MODES) else "-" + "+".join(modes)
    return name + ("-present" if args.present_only else "")


def pair_files(run_dir: Path, n: int) -> list[Path]:
    """Every output of pair ``n`` (removed with a stale record)."""
    return [
        run_dir / "identity" / f"{n}-1.jpg",
        run_dir / "identity" / f"{n}-2.jpg",
        run_dir / "attribute" / f"{n}-1",
        run_dir / "attribute" / f"{n}-2",
        run_dir / "counterfactual" / f"{n}-n1-n2",
        run_dir / "counterfactual" / f"{n}-n2-n1",
    ]


@dataclass
class CAMPlan:
    """Arguments, config, the loop's plan and the device."""

    args: argparse.Namespace
    config: Sim2WordConfig
    run: RunPlan
    device: torch.device


def make_plan(args: argparse.Namespace) -> CAMPlan:
    """Resolve the pairs, config, shard, device, weight files and run folder; raises
    :class:`UsageError`."""
    items = pair_items(args)
    args.mode = sorted(set(args.mode), key=MODES.index)
    config = Sim2WordConfig(
        topk=args.topk,
        heatmap_method=args.heatmap_method,
        seed=args.seed,
        calculate_similarity=False,
    )
    run_dir = Path(args.output_dir).resolve() / run_dir_name(args)
    run, device = plan_run(
        args,
        items,
        run_dir,
        tuple(r for r, _ in ROLES),
        f"the pair list {args.pair_list} holds no pair; add 'path1 path2 label' lines",
        extras=lambda n: pair_files(run_dir, n),
    )
    return CAMPlan(args, config, run, device)


def load_nets(args: argparse.Namespace, device: torch.device) -> Sim2WordNets:
    """R and A from the flags (no verification net); raises :class:`UsageError`."""
    nets = load_networks(args, tuple(r for r, _ in ROLES), device)
    try:
        return Sim2WordNets(
            nets["recognition"],
            nets["attribute"],
            None,
            args.recognition_layer,
            args.attribute_layer,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


def write_maps(run_dir: Path, n: int, ex, modes, present_only: bool) -> list[str]:
    """Write the overlays of ``modes`` for pair ``n``; returns the files, relative to ``run_dir``.

    Args:
        run_dir: the run folder.
        n: the pair's index.
        ex: its :class:`utils.explain.sim2word.PairExplanation` (maps at R's input size).
        modes: a subset of :data:`MODES`.
        present_only: attribute mode: only present attributes.
    """
    written = []

    def put(rel: str, image: np.ndarray, heat: np.ndarray) -> None:
        atomic_write_image(run_dir / rel, overlay_with_scale(image, heat))
        written.append(rel)

    vocab = ex.vocabulary
    for i, d in enumerate(ex.directions, start=1):
        image = d.eraser.image
        if "identity" in modes:
            put(f"identity/{n}-{i}.jpg", image, d.H_t)
        if "attribute" in modes:
            for j in range(len(d.H_attr)):
                cls = int(d.attr_class[j])
                if not present_only or vocab.is_present(j, cls):
                    put(
                        f"attribute/{n}-{i}/{attribute_label(j, cls, vocab)}.jpg",
                        image,
                        d.H_attr[j],
                    )
        if "counterfactual" in modes:
            folder = f"counterfactual/{n}-n{i}-n{3 - i}"
            for name, heat in (
                ("H_t", d.H_t),
                ("H_f", d.H_f),
                ("1-H_f", 1.0 - d.H_f),
                ("H_d", d.H_d),
            ):
                put(f"{folder}/{name}.jpg", image, heat)
    return written


class CAMTask:
    """One pair per item: the maps of ``--mode`` and a record of what was drawn."""

    unit, count_key = "pair", "pairs"
    log = log

    def __init__(
        self, args: argparse.Namespace, config: Sim2WordConfig, nets: Sim2WordNets
    ) -> None:
        self.args, self.config, self.nets = args, config, nets

    def read(self, item: PairItem) -> tuple[np.ndarray, np.ndarray]:
        from utils.faces.image_io import read_image

        return read_image(item.path1), read_image(item.path2)

    def run(self, item: PairItem, inputs, ctx: ItemContext) -> dict[str, Any]:
        ex = explain_pair(*inputs, self.nets, self.config, pair_index=item.index)
        ctx.stage = "visualize"
        files = write_maps(ctx.run_dir, item.index, ex, self.args.mode, self.args.present_only)
        return {
            "pair-index": item.index,
            "image-path1": item.path1,
            "image-path2": item.path2,
            "match": item.label,
            "modes": list(self.args.mode),
            "class1": ex.class1,
            "class2": ex.class2,
            "files": files,
        }

    def failure_fields(self, item: PairItem) -> dict[str, Any]:
        return {"pair": item.index, "line": item.line_no, "path1": item.path1, "path2": item.path2}

    def check_record(self, record: dict[str, Any], item: PairItem) -> str | None:
        if not all(k in record for k in RECORD_KEYS):
            return f"json/{item.index}.json is not a record of CAM_visualization.py"
        if (
            record["pair-index"],
            record["image-path1"],
            record["image-path2"],
            record["match"],
        ) != (item.index, item.path1, item.path2, item.label):
            return f"json/{item.index}.json is the record of another pair (the list changed)"
        return None

    def summarise(self, records: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
        return {"files": sum(len(r["files"]) for r in records)}, None


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``CAM_visualization.py``: parse, plan, load R and A, run; returns the exit code."""
    parser = build_parser(prog or Path(sys.argv[0]).name)
    return run_experiment(
        parser,
        argv,
        make_plan,
        lambda plan: load_nets(plan.args, plan.device),
        lambda plan, nets: CAMTask(plan.args, plan.config, nets),
        log,
    )
