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
import contextlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from utils.explain.ranking import RankingConfig, WordRanking, rank_pair
from utils.explain.sim2word import PAPER_THETA, Sim2WordConfig, Sim2WordNets
from utils.explain.visualize import pair_outputs
from utils.faces.canvas import CanvasAligner
from utils.faces.data import DataConfigError, PairItem, read_pair_list, resolve_dataset
from utils.faces.gallery import LeaveOut
from utils.run.cli import build_parser
from utils.run.folder import UsageError, safe_name, sha256_file
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
from utils.run.networks import (
    GalleryPlan,
    is_gallery_network,
    load_networks,
    plan_gallery,
    plan_gallery_folder,
    sim2word_nets,
)
from utils.run.pipeline import (
    CanvasPlan,
    PairResult,
    ReadImage,
    aligner_from_args,
    alignment_fields,
    explain_read_pair,
    gallery_cache_file,
    landmarker_files,
    pair_list_gallery,
    plan_canvas,
    prepare_attribute_net,
    read_pair,
)
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
    "pair_task",
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
    aligner: CanvasAligner | None = None

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
    if getattr(args, "gallery_exclude_pair", False):
        name += "-gallery-exclude-pair"
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


def canvas_plan(args: argparse.Namespace) -> CanvasPlan:
    """The run's :class:`utils.run.pipeline.CanvasPlan` from the network and ``--align`` flags
    (without similarities no verification net is loaded: the recognition net's template)."""
    similarity = getattr(args, "calculate_similarity", True)
    names = {
        "verification": args.verification_net if similarity else None,
        "recognition": args.recognition_net,
        "attribute": args.attribute_net,
    }
    return plan_canvas(names, getattr(args, "align", "auto"))


def make_aligner(args: argparse.Namespace, plan: CanvasPlan | None = None) -> CanvasAligner:
    """The run's :class:`CanvasAligner` (:func:`utils.run.pipeline.aligner_from_args`)."""
    return aligner_from_args(args, plan or canvas_plan(args))


def gallery_plan(
    args: argparse.Namespace, items: list[PairItem] | None = None
) -> GalleryPlan | None:
    """The gallery of a ``<net>-gallery`` recognition net (``--gallery`` or the pair list's
    identities), ``None`` for other nets; raises :class:`UsageError`."""
    folder = getattr(args, "gallery", None)
    if not is_gallery_network(args.recognition_net):
        for flag, value in (
            ("--gallery", folder),
            ("--gallery-exclude-pair", getattr(args, "gallery_exclude_pair", 0)),
        ):
            if value:
                raise UsageError(
                    f"{flag} is used by a <net>-gallery recognition net (e.g. SFace-gallery), "
                    f"not by {args.recognition_net}; drop {flag} or pick a gallery net"
                )
        return None
    if folder is not None:
        return plan_gallery_folder(folder)
    if items is None:
        if getattr(args, "pair_list", None) is None:
            raise UsageError(
                f"--recognition-net {args.recognition_net} needs --gallery DIR here (one "
                "sub-folder of photos per identity)"
            )
        items = read_pair_list(args.pair_list, args.image_root)
    return plan_gallery(
        pair_list_gallery(items, args.image_root),
        f"the identities of the pair list {args.pair_list} (folders under {args.image_root})",
    )


def make_plan(args: argparse.Namespace) -> Plan:
    """Resolve data, config, shard, device, weight files and run folder; raises :class:`UsageError`.

    Nothing is written; a folder of other settings is refused here (with ``--resume``). The
    canvas template, the landmark file's SHA-256 and the gallery (identity names and a digest of
    its photos) go into ``config.json`` and the run's fingerprint.
    """
    items = pair_items(args)
    pair_list = args.pair_list
    try:
        config = sim2word_config(args)
        ranking = ranking_config(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    canvas = canvas_plan(args)
    aligner = make_aligner(args, canvas)
    gallery = gallery_plan(args, items)
    args.canvas_template = aligner.template
    args.landmarks_sha256 = (
        sha256_file(args.landmarks) if getattr(args, "landmarks", None) is not None else None
    )
    args.gallery_identities = list(gallery.identities) if gallery is not None else None
    args.gallery_files = gallery.digest if gallery is not None else None
    run_dir = Path(args.output_dir).resolve() / run_dir_name(args)
    run, device = plan_run(
        args,
        items,
        run_dir,
        network_roles(args),
        f"the pair list {pair_list} holds no pair (only blank or comment lines); add 'path1 path2 "
        "label' lines",
        extras=lambda n: pair_outputs(run_dir / "cam", n),
        files=landmarker_files(aligner),
    )
    return Plan(args, config, run, device, ranking, aligner)


def load_nets(
    args: argparse.Namespace, device: torch.device, aligner: CanvasAligner | None = None
) -> Sim2WordNets:
    """Build the networks named by the arguments; raises :class:`UsageError` on bad names, files,
    layers or templates (``aligner``: the run's, as :func:`make_plan` built it; default: built
    from the arguments).

    A ``<net>-gallery`` recognition net is built from its gallery here, its photos aligned by the
    run's aligner, with its embeddings cached in the run folder
    (:func:`utils.run.pipeline.gallery_cache_file`). An attribute net that adapts to canvases
    (``real-attributes``) is told the canvas template.
    """
    aligner = aligner if aligner is not None else make_aligner(args)
    gallery = None
    plan = gallery_plan(args)
    if plan is not None:
        run_dir = Path(args.output_dir).resolve() / run_dir_name(args)
        run_dir.mkdir(parents=True, exist_ok=True)
        gallery = (plan, aligner, gallery_cache_file(run_dir, args.recognition_net, aligner))
    nets = load_networks(args, network_roles(args), device, gallery)
    prepare_attribute_net(nets["attribute"], aligner)
    return sim2word_nets(nets, args)


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
        aligner: CanvasAligner | None = None,
    ) -> None:
        self.args, self.config, self.nets, self.run_dir = args, config, nets, run_dir
        self.ranking = ranking or RankingConfig()
        self.aligner = aligner if aligner is not None else make_aligner(args)
        self.leave_out = (
            LeaveOut(nets.recognition) if getattr(args, "gallery_exclude_pair", False) else None
        )
        skip = () if config.calculate_similarity else SIMILARITY_KEYS
        strategy_key = "id_thresh" if config.strategy == "threshold" else "topk"
        words = ("ranking", *WORD_LISTS) if config.calculate_similarity else ()
        self.required = tuple(k for k in REQUIRED_KEYS if k not in skip) + (
            strategy_key,
            "pair-index",
            "discriminant",
            *words,
        )

    def read(self, item: PairItem) -> tuple[ReadImage, ReadImage]:
        return read_pair(item.path1, item.path2)

    def run(
        self, item: PairItem, inputs: tuple[ReadImage, ReadImage], ctx: ItemContext
    ) -> dict[str, Any]:
        result, ranking = self.explain(item, inputs, ctx)
        return self.record(item, result, ranking, ctx)

    def explain(
        self, item: PairItem, inputs: tuple[ReadImage, ReadImage], ctx: ItemContext
    ) -> tuple[PairResult, WordRanking | None]:
        """Align, explain and rank one pair (the steps of :meth:`run` before its record)."""
        gallery = (
            self.leave_out.excluding((item.path1, item.path2))
            if self.leave_out is not None
            else contextlib.nullcontext()
        )
        with gallery:
            result = explain_read_pair(
                inputs,
                self.nets,
                self.config,
                self.aligner,
                pair_index=item.index,
                stage=lambda name: setattr(ctx, "stage", name),
            )
        ex = result.explanation
        ranking = None
        if self.config.calculate_similarity:
            ctx.stage = "rank"
            c1, c2 = result.canvases
            ranking = rank_pair(
                ex,
                (c1.image, c2.image),
                self.nets.verification,
                self.ranking,
                discriminant=self.config.discriminant,
                erasing_method=self.config.erasing_method,
                seed=self.config.seed,
                pair_index=item.index,
            )
        return result, ranking

    def record(
        self,
        item: PairItem,
        result: PairResult,
        ranking: WordRanking | None,
        ctx: ItemContext,
    ) -> dict[str, Any]:
        """The record of an explained pair (and its figures, per ``--visualization``)."""
        ex = result.explanation
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
            alignment=alignment_fields(self.aligner, result.canvases),
        )
        if a.visualization != "none":
            ctx.stage = "visualize"
            from utils.explain.visualize import display_name, write_visuals

            names = (display_name(item.path1), display_name(item.path2))
            shown = (
                {}
                if ranking is None
                else {  # the figure shows the record's words
                    "words": (ranking.image1, ranking.image2),
                    "ranking": ranking.mode,
                }
            )
            write_visuals(
                a.visualization,
                ctx.run_dir / "cam",
                item.index,
                ex,
                names,
                match=item.label,
                **shown,
            )
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
        """When images are aligned, the counts of the alignment methods over the records; for a
        gallery net, its gallery (identities, photos, the photos left out and why)."""
        extra: dict[str, Any] = {}
        if self.aligner.aligns:
            methods: dict[str, int] = {}
            fallbacks = 0
            for rec in records:
                for method in rec.get("align-method", []):
                    methods[method] = methods.get(method, 0) + 1
                fallbacks += sum(bool(f) for f in rec.get("align-fallback", []))
            extra["alignment"] = {
                "template": self.aligner.template,
                "methods": methods,
                "fallbacks": fallbacks,
            }
        gallery = getattr(self.nets.recognition, "gallery", None)
        if gallery is not None:
            extra["gallery"] = {
                "identities": len(gallery.identities),
                "photos": int(sum(gallery.counts)),
                "left-out": [{"path": p, "reason": r} for p, r in gallery.failures],
            }
        return extra, None


def run_pairs(plan: Plan, nets: Sim2WordNets) -> int:
    """The loop over the shard's pairs (:func:`utils.run.loop.run_task`); returns the exit code."""
    return run_task(pair_task(plan, nets), plan.run)


def pair_task(plan: Plan, nets: Sim2WordNets) -> PairTask:
    """The :class:`PairTask` of a plan (its aligner reused)."""
    return PairTask(plan.args, plan.config, nets, plan.run_dir, plan.ranking, plan.aligner)


def main(strategy: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse arguments, run the pairs, return the exit code (0, 2, 3 or 4)."""
    parser = build_parser(strategy, prog=prog or Path(sys.argv[0]).name)
    return run_experiment(
        parser,
        argv,
        make_plan,
        lambda plan: load_nets(plan.args, plan.device, plan.aligner),
        pair_task,
        log,
    )
