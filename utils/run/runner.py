"""Sim2Word over a pair list: the task the run loop runs for the three experiment scripts.

Run folder: ``<output-dir>/scores-group-<Datasets>-<verification-net>-<strategy>-erase-<method>``
with ``<strategy>`` = ``topk-<k>``, ``id-thresh-<t>`` or ``sameid``, then, only
when they differ from the defaults, ``-GradCAMpp``, ``-thresh-<theta>``,
``-ablation-<name>``, ``-disc-<discriminant>``, ``-ranking-<mode>``,
``-rfill-<fill>``, ``-rthresh-<t>`` and ``-ttol-<tolerance>`` appended.
Inside: ``json/<n>.json`` (n = the pair's index in the list; with the
similarities it carries the ranked words of ``--ranking``), the figures of
``--visualization`` (``cam/<n>.png``, with ``full`` also ``cam/<n>-n1-n2/``
and ``cam/<n>-n2-n1/``; :mod:`utils.explain.visualize`), ``config.json`` (all
arguments, the weight files loaded, the run's fingerprint), ``failures.jsonl``
and ``summary.json``. Nothing is written outside the run folder. Resume,
shards, torchrun, failures, progress, summary and exit codes:
:mod:`utils.run.loop`; which records resume trusts and who owns a folder:
:mod:`utils.run.folder`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from utils.explain.ranking import RankingConfig, rank_pair
from utils.explain.sim2word import PAPER_THETA, Sim2WordConfig, Sim2WordNets, explain_pair
from utils.explain.visualize import pair_outputs
from utils.faces.data import DataConfigError, PairItem, read_pair_list, resolve_dataset
from utils.run.cli import build_parser
from utils.run.folder import UsageError, safe_name
from utils.run.loop import (
    EXIT_DISK_FULL,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ItemContext,
    RunPlan,
    plan_run,
    run_experiment,
    run_task,
)
from utils.run.networks import load_networks
from utils.run.records import (
    REQUIRED_KEYS,
    SIMILARITY_KEYS,
    WORD_LISTS,
    RecordError,
    make_record,
    parse_record,
)

__all__ = [
    "EXIT_DISK_FULL",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PairTask",
    "Plan",
    "UsageError",
    "load_nets",
    "main",
    "make_plan",
    "pair_items",
    "ranking_config",
    "run_dir_name",
    "run_pairs",
    "sim2word_config",
]

log = logging.getLogger("sim2word")


@dataclass
class Plan:
    """Everything resolved before the loop starts (``run``: what the loop needs)."""

    args: argparse.Namespace
    config: Sim2WordConfig
    run: RunPlan
    device: torch.device
    ranking: RankingConfig = field(default_factory=RankingConfig)

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def items(self) -> list[PairItem]:
        return self.run.items

    @property
    def shard(self) -> tuple[int, int]:
        return self.run.shard


def run_dir_name(args: argparse.Namespace) -> str:
    """Folder name of a run (see the module docstring)."""
    part = {
        "topk": lambda: f"topk-{getattr(args, 'topk', 1)}",
        "threshold": lambda: f"id-thresh-{args.id_thresh:g}",
        "sameid": lambda: "sameid",
    }[args.strategy]()
    name = (
        f"scores-group-{safe_name(args.Datasets)}-{safe_name(args.verification_net)}-{part}"
        f"-erase-{args.Erasing_method}"
    )
    if args.heatmap_method != "GradCAM":
        name += "-" + args.heatmap_method.replace("+", "p")
    if args.thresh != PAPER_THETA:
        name += f"-thresh-{args.thresh:g}"
    if args.ablation != "none":
        name += f"-ablation-{args.ablation}"
    ranking = RankingConfig()
    if getattr(args, "discriminant", "classes") != "classes":
        name += f"-disc-{args.discriminant}"
    if getattr(args, "ranking", ranking.mode) != ranking.mode:
        name += f"-ranking-{args.ranking}"
    if getattr(args, "ranking_fill", None) is not None:
        name += f"-rfill-{args.ranking_fill}"
    if getattr(args, "ranking_thresh", None) is not None:
        name += f"-rthresh-{args.ranking_thresh:g}"
    if getattr(args, "tie_tolerance", ranking.tie_tolerance) != ranking.tie_tolerance:
        name += f"-ttol-{args.tie_tolerance:g}"
    return name


def network_roles(args: argparse.Namespace) -> tuple[str, ...]:
    """The roles whose networks this run loads (no verification net without similarities, unless
    the discriminant is V's)."""
    similarity = getattr(args, "calculate_similarity", True)
    need_v = similarity or getattr(args, "discriminant", "classes") == "verification"
    return ("recognition", "attribute") + (("verification",) if need_v else ())


def sim2word_config(args: argparse.Namespace) -> Sim2WordConfig:
    """The :class:`Sim2WordConfig` of parsed flags (flags a script does not have keep their
    defaults)."""
    names = (
        "strategy",
        "topk",
        "id_thresh",
        "heatmap_method",
        "thresh",
        "ablation",
        "seed",
        "batch_size",
        "calculate_similarity",
        "amp",
        "discriminant",
    )
    values = {k: getattr(args, k) for k in names if hasattr(args, k)}
    return Sim2WordConfig(erasing_method=args.Erasing_method, **values)


def ranking_config(args: argparse.Namespace) -> RankingConfig:
    """The :class:`RankingConfig` of parsed flags (``--ranking``, ``--ranking-fill``,
    ``--ranking-thresh``, ``--tie-tolerance``; flags a script does not have keep their defaults).

    Raises:
        ValueError: a bad value, or a shared-region ranking without the similarities.
    """
    names = {
        "ranking": "mode",
        "ranking_fill": "fill",
        "ranking_thresh": "region_thresh",
        "tie_tolerance": "tie_tolerance",
        "batch_size": "batch_size",
        "amp": "amp",
    }
    config = RankingConfig(**{k: getattr(args, a) for a, k in names.items() if hasattr(args, a)})
    if config.mode != "paper" and not getattr(args, "calculate_similarity", True):
        raise ValueError(
            f"--ranking {config.mode} needs the similarities; drop --no-calculate-similarity"
        )
    return config


def pair_items(args: argparse.Namespace) -> list[PairItem]:
    """The pairs of ``--pair-list`` / ``--Datasets`` (:func:`utils.run.cli.add_pair_data_flags`).

    Sets ``args.Datasets`` (default: the list's name, or FaceWorld), ``args.pair_list`` and
    ``args.image_root`` to the resolved paths. Raises :class:`UsageError`.
    """
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
    except (DataConfigError, ValueError) as err:
        raise UsageError(str(err)) from None
    args.pair_list, args.image_root = str(pair_list), str(image_root)
    return items


def make_plan(args: argparse.Namespace) -> Plan:
    """Resolve data, config, shard, device, weight files and run folder; raises :class:`UsageError`.

    Nothing is written; a folder of other settings is refused here (with ``--resume``).
    """
    items = pair_items(args)
    pair_list = args.pair_list
    try:
        config = sim2word_config(args)
        ranking = ranking_config(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    run_dir = Path(args.output_dir).resolve() / run_dir_name(args)
    run, device = plan_run(
        args,
        items,
        run_dir,
        network_roles(args),
        f"the pair list {pair_list} holds no pair (only blank or comment lines); add 'path1 path2 "
        "label' lines",
        extras=lambda n: pair_outputs(run_dir / "cam", n),
    )
    return Plan(args, config, run, device, ranking)


def load_nets(args: argparse.Namespace, device: torch.device) -> Sim2WordNets:
    """Build the networks named by the arguments; raises :class:`UsageError` on bad names, files
    or layers."""
    nets = load_networks(args, network_roles(args), device)
    try:
        return Sim2WordNets(
            nets["recognition"],
            nets["attribute"],
            nets.get("verification"),
            args.recognition_layer,
            args.attribute_layer,
            getattr(args, "verification_layer", None),
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


class PairTask:
    """Sim2Word on one pair per item (METHOD.md section 3): the record and the ``cam/`` figures."""

    unit, count_key = "pair", "pairs"
    log = log

    def __init__(
        self,
        args: argparse.Namespace,
        config: Sim2WordConfig,
        nets: Sim2WordNets,
        run_dir: Path,
        ranking: RankingConfig | None = None,
    ) -> None:
        self.args, self.config, self.nets, self.run_dir = args, config, nets, run_dir
        self.ranking = ranking or RankingConfig()
        skip = () if config.calculate_similarity else SIMILARITY_KEYS
        strategy_key = "id_thresh" if config.strategy == "threshold" else "topk"
        words = ("ranking", *WORD_LISTS) if config.calculate_similarity else ()
        self.required = tuple(k for k in REQUIRED_KEYS if k not in skip) + (
            strategy_key,
            "pair-index",
            "discriminant",
            *words,
        )

    def read(self, item: PairItem) -> tuple[Any, Any]:
        from utils.faces.image_io import read_image

        return read_image(item.path1), read_image(item.path2)

    def run(self, item: PairItem, inputs: tuple[Any, Any], ctx: ItemContext) -> dict[str, Any]:
        img1, img2 = inputs
        ex = explain_pair(img1, img2, self.nets, self.config, pair_index=item.index)
        ranking = None
        if self.config.calculate_similarity:
            ctx.stage = "rank"
            ranking = rank_pair(
                ex,
                (img1, img2),
                self.nets.verification,
                self.ranking,
                discriminant=self.config.discriminant,
                erasing_method=self.config.erasing_method,
                seed=self.config.seed,
                pair_index=item.index,
            )
        ctx.stage = "record"
        a = self.args
        rec = make_record(
            ex,
            self.config,
            datasets=a.Datasets,
            recognition_net=a.recognition_net,
            attribute_net=a.attribute_net,
            verification_net=a.verification_net,
            image_path1=item.path1,
            image_path2=item.path2,
            match=item.label,
            pair_index=item.index,
            ranking=ranking,
        )
        if a.visualization != "none":
            ctx.stage = "visualize"
            from utils.explain.visualize import display_name, write_visuals

            names = (display_name(item.path1), display_name(item.path2))
            write_visuals(a.visualization, ctx.run_dir / "cam", item.index, ex, names,
                          match=item.label)
        return rec

    def failure_fields(self, item: PairItem) -> dict[str, Any]:
        return {"pair": item.index, "line": item.line_no, "path1": item.path1, "path2": item.path2}

    def check_record(self, record: dict[str, Any], item: PairItem) -> str | None:
        try:
            rec = parse_record(record, f"json/{item.index}.json", self.required)
        except RecordError as err:
            return str(err)
        if (
            rec.image_paths != (item.path1, item.path2)
            or rec.match != item.label
            or rec.pair_index != item.index
        ):
            return f"json/{item.index}.json is the record of another pair (the pair list changed)"
        return None

    def summarise(self, records: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
        return {}, None


def run_pairs(plan: Plan, nets: Sim2WordNets) -> int:
    """The loop over the shard's pairs (:func:`utils.run.loop.run_task`); returns the exit code."""
    return run_task(PairTask(plan.args, plan.config, nets, plan.run_dir, plan.ranking), plan.run)


def main(strategy: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse arguments, run the pairs, return the exit code (0, 2, 3 or 4)."""
    parser = build_parser(strategy, prog=prog or Path(sys.argv[0]).name)
    return run_experiment(
        parser,
        argv,
        make_plan,
        load_nets,
        lambda plan, nets: PairTask(plan.args, plan.config, nets, plan.run_dir, plan.ranking),
        log,
    )
