"""The one command-line builder: every flag of every script is spelled, typed and explained once.

Scripts compose their parser from the flag groups below (:func:`add_data_flags`,
:func:`add_network_flags`, :func:`add_method_flags`, :func:`add_run_flags`,
:func:`add_output_dir`, :func:`add_seed`, ...), so a flag has the same name,
type, default rule and help wherever it appears. Names keep the authors'
spelling (``--Datasets``, ``--recognition-net``, ``--heatmap-method``,
``--thresh``, ``--topk``, ``--Erasing-method``, ``--output-dir``,
``--Json-fold``, ``--Erase_num``, ``--dataset-list``, ``--evidential-net``);
older spellings of this project stay accepted as hidden aliases
(:func:`add_flag` ``aliases=``; not shown by ``--help``). Options whose
default is ``None`` mean "the component's default" (e.g. the registered
weights file of a network).

Values are checked by the types here before any work: a bad value is exit
status 2 with a message naming the value and what is expected.

How to add a flag group: write ``add_<name>_flags(parser)`` here with
:func:`add_flag` calls, use it from every script that needs the flags, and
list them in docs/ARCHITECTURE.md. This module imports nothing heavy (no
torch), so ``--help`` and the analysis scripts stay fast.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from utils.base import safejson

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT_DIR = REPO_ROOT / "outputs"
MAX_SEED = 2**32 - 1  # NumPy seeds are 32-bit
EXIT_STATUS = (
    "Exit status: 0 every {unit} done, 3 some {unit}s failed (see failures.jsonl in the run "
    "folder), "
    "2 usage error (nothing was run), 4 the disk filled up (free space and rerun the same command "
    "to finish)."
)
FIGURE_EXIT_STATUS = (
    "Exit status: 0 all files used, 3 some skipped (see failures-*.jsonl), 2 usage error."
)


# ---------------------------------------------------------------------------------------------
# value types
def _number(text: str, kind: type, expect: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expect}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expect}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _number(text, int, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def seed(text: str) -> int:
    """A seed NumPy accepts: an integer in [0, 2**32 - 1]."""
    value = _number(text, int, "an integer seed")
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"a seed must be an integer in [0, {MAX_SEED}] (NumPy's range), got {value}"
        )
    return value


def finite_float(text: str) -> float:
    """A finite number."""
    return _number(text, float, "a finite number")


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float, "a number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value:g}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1] (a threshold on maps or confidences in [0, 1])."""
    value = _number(text, float, "a number in [0, 1]")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1] (maps and confidences lie in [0, 1]), got {value:g}"
        )
    return value


def open_unit_interval(text: str) -> float:
    """A number strictly between 0 and 1."""
    value = _number(text, float, "a number in (0, 1)")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a number strictly between 0 and 1, got {value:g}"
        )
    return value


def json_object(text: str) -> dict:
    """A JSON object (architecture overrides); nested at most 8 levels."""
    try:
        value = safejson.loads(text, source="the value")
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({err}); example: '{{\"width\": 16}}'"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object like '{{\"width\": 16}}', got {text[:80]!r}"
        )
    if _depth(value) > 8:
        raise argparse.ArgumentTypeError(
            "the JSON object is nested more than 8 levels; architecture "
            "overrides are flat, e.g. '{\"width\": 16}'"
        )
    return value


def _depth(value: Any) -> int:
    stack, deepest = [(value, 1)], 0
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


# ------------------------------------------------------------------------------------------------
# parsers
def make_parser(
    description: str | None, epilog: str | None = None, prog: str | None = None
) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` that keeps the description's line breaks (module docstrings)."""
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_flag(
    group: argparse._ActionsContainer, name: str, *, aliases: Sequence[str] = (), **kwargs: Any
) -> argparse.Action:
    """``group.add_argument(name, **kwargs)`` plus hidden ``aliases`` (older spellings, not in
    ``--help``).

    A required flag keeps its aliases as visible option strings of the same argument (argparse
    would otherwise ask for the main spelling even when an alias was given).
    """
    if kwargs.get("required"):
        return group.add_argument(name, *aliases, **kwargs)
    action = group.add_argument(name, **kwargs)
    for alias in aliases:
        hidden = {
            k: v
            for k, v in kwargs.items()
            if k not in ("help", "default", "required", "metavar", "dest")
        }
        group.add_argument(
            alias, dest=action.dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **hidden
        )
    return action


def add_flags(group: argparse._ActionsContainer, rows: Sequence[tuple[str, Any, Any, str]]) -> None:
    """Many plain flags at once: ``(name, type, default, help)`` rows (``%(default)s`` is
    appended)."""
    for name, kind, default, text in rows:
        add_flag(group, name, type=kind, default=default, help=f"{text} (default: %(default)s)")


def add_hidden_alias(group: argparse._ActionsContainer, old: str, dest: str) -> None:
    """Accept an older spelling ``old`` of an existing flag (storing into ``dest``), not shown by
    --help."""
    group.add_argument(old, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS)


def add_seed(group: argparse._ActionsContainer, what: str = "seed of everything") -> None:
    add_flag(
        group,
        "--seed",
        type=seed,
        default=0,
        help=f"{what} (an integer in [0, 2**32-1]; default: %(default)s)",
    )


def add_device(group: argparse._ActionsContainer, default: str | None = None) -> None:
    auto = "cuda when available, cuda:$LOCAL_RANK under torchrun, else cpu"
    add_flag(
        group, "--device", default=default, help=f"cpu, cuda or cuda:N (default: {default or auto})"
    )


def add_progress(group: argparse._ActionsContainer) -> None:
    add_flag(
        group,
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show progress bars (--no-progress: none, e.g. in batch jobs; default: on)",
    )


def add_threads(group: argparse._ActionsContainer, default: int = 1) -> None:
    add_flag(
        group,
        "--threads",
        type=positive_int,
        default=default,
        help="torch CPU threads (default: %(default)s)",
    )


def add_compute_flags(
    group: argparse._ActionsContainer, seed_help: str, device: str | None = "cpu"
) -> None:
    """``--seed``, ``--threads``, ``--device`` and ``--progress`` of the tools that are no
    per-item run."""
    add_seed(group, seed_help)
    add_threads(group)
    add_device(group, device)
    add_progress(group)


def add_batch_size(
    group: argparse._ActionsContainer, default: int = 32, what: str = "images per forward"
) -> None:
    add_flag(
        group,
        "--batch-size",
        type=positive_int,
        default=default,
        help=f"{what} (default: %(default)s)",
    )


def add_output_dir(
    group: argparse._ActionsContainer, default: str | Path | None, what: str
) -> None:
    """``--output-dir`` (older spelling ``--output`` hidden): the folder a script writes into."""
    add_flag(group, "--output-dir", aliases=("--output",), type=Path, default=default, help=what)


def add_figure_flags(
    group: argparse._ActionsContainer, figsize: tuple[float, float], what: str = "figure"
) -> None:
    add_flag(
        group,
        "--figsize",
        type=positive_float,
        nargs=2,
        default=figsize,
        metavar=("W", "H"),
        help=f"{what} size in inches (default: %(default)s)",
    )
    add_flag(
        group,
        "--dpi",
        type=positive_int,
        default=100,
        help=f"{what} pixels per inch (image = figsize * dpi pixels) (default: %(default)s)",
    )


def add_network_flags(
    p: argparse.ArgumentParser,
    roles: Sequence[tuple[str, str]],
    layers: Sequence[str] = ("recognition", "attribute"),
    aliases: dict[str, str] | None = None,
) -> argparse._ArgumentGroup:
    """The "networks" group: ``--<role>-net/-weights/-arch`` per ``(role, default registered
    name)``,
    and ``--<role>-layer`` (the Grad-CAM layer) for the roles in ``layers``.

    Args:
        p: the parser.
        roles: ``(role, default name)`` pairs.
        layers: roles that get a ``--<role>-layer`` flag.
        aliases: ``{role: older role name}``: ``--<old>-net`` etc. stay accepted, hidden.
    """
    nets = p.add_argument_group("networks")
    aliases = aliases or {}
    for role, default in roles:
        old = (aliases[role],) if role in aliases else ()
        add_flag(
            nets,
            f"--{role}-net",
            aliases=[f"--{o}-net" for o in old],
            default=default,
            help=f"registered name of the {role} network (default: %(default)s)",
        )
        add_flag(
            nets,
            f"--{role}-weights",
            aliases=[f"--{o}-weights" for o in old],
            default=None,
            help=f"weights file of the {role} network (default: its registered file under "
            "pre-trained/, "
            "or under the folder $SIM2WORD_PRETRAINED)",
        )
        add_flag(
            nets,
            f"--{role}-arch",
            aliases=[f"--{o}-arch" for o in old],
            type=json_object,
            default=None,
            help=f"architecture overrides of the {role} network as a JSON object, e.g. "
            "'{\"num_classes\": 500}' (must match the weights)",
        )
    for role in layers:
        add_flag(
            nets,
            f"--{role}-layer",
            default=None,
            help=f"Grad-CAM layer of the {role} net, a dotted module name (default: its "
            "target_layer, "
            "the last conv)",
        )
    return nets


def add_heatmap_method(group: argparse._ActionsContainer) -> None:
    from utils.explain.cam import METHODS

    add_flag(
        group,
        "--heatmap-method",
        choices=METHODS,
        default="GradCAM",
        help="class activation map method (default: %(default)s)",
    )


def add_erasing_method(group: argparse._ActionsContainer) -> None:
    from utils.explain.erasing import FILLS

    add_flag(
        group,
        "--Erasing-method",
        choices=FILLS,
        default="black",
        help="fill of erased pixels: black 0, white 255, mean 125, random uniform (seeded) "
        "(default: %(default)s)",
    )


def add_thresh(group: argparse._ActionsContainer, default: float, rule: str) -> None:
    add_flag(
        group,
        "--thresh",
        type=probability,
        default=default,
        help=f"erasing threshold theta in [0, 1]: {rule} (default: %(default)s)",
    )


def add_json_fold(
    group: argparse._ActionsContainer, default: Path | None = None, what: str | None = None
) -> None:
    add_flag(
        group,
        "--Json-fold",
        aliases=("--json-fold",),
        dest="json_fold",
        type=Path,
        default=default,
        required=default is None,
        help=what
        or "the run folder written by the experiment scripts, or its `json` folder of per-pair "
        "records <n>.json",
    )


def add_image_root(group: argparse._ActionsContainer, what: str) -> None:
    add_flag(group, "--image-root", aliases=("--dataset-root",), default=None, help=what)


def add_limit(group: argparse._ActionsContainer, unit: str) -> None:
    add_flag(
        group,
        "--limit",
        type=positive_int,
        default=None,
        help=f"only the first N {unit}s of the list (before sharding)",
    )


def add_verification_layer(group: argparse._ActionsContainer) -> None:
    add_flag(
        group,
        "--verification-layer",
        default=None,
        help="Grad-CAM layer of the verification net for --discriminant verification, a dotted "
        "module name (default: its target_layer, the last conv)",
    )


def add_ranking_options(group: argparse._ActionsContainer) -> None:
    """``--ranking-fill``, ``--ranking-thresh`` and ``--tie-tolerance``: the options of the
    shared-region rankings (:class:`utils.explain.ranking.RankingConfig`)."""
    from utils.explain.ranking import RANKING_FILLS, RankingConfig

    add_flag(
        group,
        "--ranking-fill",
        choices=RANKING_FILLS,
        default=None,
        help="fill of the shared-region erasing of the both-shared and contrast rankings: the "
        "four --Erasing-method fills, blur (Gaussian, sigma = image size / 16) or inpaint "
        "(OpenCV Telea) (default: the --Erasing-method fill)",
    )
    add_flag(
        group,
        "--ranking-thresh",
        type=probability,
        default=None,
        help="both-shared and contrast rankings: an image's region of attribute j is J[j] > this "
        "(the twin check's tuning set favours 0.2, see the README; the paper ranking always uses "
        "--thresh) (default: --thresh)",
    )
    add_flag(
        group,
        "--tie-tolerance",
        type=probability,
        default=RankingConfig.tie_tolerance,
        help="both-shared and contrast rankings: similarities in one bucket of this width count "
        "as tied and go to the smaller region (0: exact ties only; must be < 1) "
        "(default: %(default)s)",
    )


def add_ranking_flags(group: argparse._ActionsContainer) -> None:
    """The word ranking of a run: ``--ranking``, ``--discriminant`` and
    :func:`add_ranking_options` (README, "How the words are ranked")."""
    from utils.explain.ranking import RANKINGS
    from utils.explain.sim2word import DISCRIMINANTS

    add_flag(
        group,
        "--ranking",
        choices=RANKINGS,
        default=RANKINGS[0],
        help="how the words are ranked (README, 'How the words are ranked'): paper = each image "
        "erased alone, by cos(V(E1j), V(I2)) (the authors'); both-shared = one region per "
        "attribute (the union of both images' regions) erased in both images, by "
        "cos(V(E1j), V(E2j)); contrast = the words the attribute net sees differ between the "
        "images first, by that difference times the similarity gain of their shared erasure. "
        "Erasures that change nothing are flagged as ties in the record's words-image1/"
        "words-image2/words-pair (default: %(default)s)",
    )
    add_flag(
        group,
        "--discriminant",
        choices=DISCRIMINANTS,
        default=DISCRIMINANTS[0],
        help="H_d of the joint maps: classes = from the recognition net's class sets (the "
        "paper); verification = Grad-CAM of the negated cosine similarity through the "
        "verification net, on each image (see --verification-layer) (default: %(default)s)",
    )
    add_ranking_options(group)


def add_ties(group: argparse._ActionsContainer) -> None:
    """``--ties skip|flag`` of the results scripts that show or count words
    (:mod:`utils.experiments.words`)."""
    add_flag(
        group,
        "--ties",
        choices=("skip", "flag"),
        default="skip",
        help="words whose erasure left the similarity unchanged (empty or no-op region) explain "
        "nothing: skip them (an image's words start at its first word that changed the "
        "similarity), or keep them in the paper's order, marked as ties (default: %(default)s)",
    )


def add_run_flags(
    p: argparse.ArgumentParser, unit: str, output_help: str, seed_help: str, batch_help: str
) -> argparse._ArgumentGroup:
    """The "run" group of the per-item experiments (:mod:`utils.run.loop`)."""
    run = p.add_argument_group("run")
    add_output_dir(run, str(DEFAULT_OUTPUT_DIR), output_help)
    add_batch_size(run, 32, batch_help)
    add_device(run)
    add_seed(run, seed_help)
    add_flag(
        run,
        "--shard",
        default=None,
        help=f"i/n: run only {unit}s with index %% n == i (job arrays); under torchrun each rank "
        "further "
        "takes its share automatically",
    )
    add_flag(
        run,
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"skip {unit}s whose record in the run folder is a valid record of this run (same "
        "settings "
        f"and weights); --no-resume recomputes them and removes records of other settings "
        "(default: %(default)s)",
    )
    add_progress(run)
    return run


def add_visualization(group: argparse._ActionsContainer, default: str = "summary") -> None:
    """``--visualization {none,summary,full}`` (bare ``--visualization``: full) and the hidden
    ``--no-visualization`` (= none), the spellings of the authors' boolean flag."""
    from utils.explain.visualize import LEVELS

    add_flag(
        group,
        "--visualization",
        nargs="?",
        const="full",
        choices=LEVELS,
        default=default,
        help="what to draw per pair under <run>/cam/: none; summary = one composite figure "
        "<n>.png (both faces, H_d, the top words' maps with their erased regions and score "
        "changes); full = the composite plus every map, mask and erased image of every attribute "
        "(<n>-n1-n2/, <n>-n2-n1/). A bare --visualization means full (the authors' flag); "
        "--no-visualization means none (default: %(default)s)",
    )
    group.add_argument(
        "--no-visualization",
        dest="visualization",
        action="store_const",
        const="none",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )


def add_align_flags(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The "alignment" group: ``--align``, ``--landmarks``, ``--landmark-format``
    (:mod:`utils.faces.canvas`, :mod:`utils.run.pipeline`)."""
    from utils.faces.landmarks import LANDMARK_FORMATS
    from utils.faces.templates import ALIGN_METHODS

    group = p.add_argument_group(
        "alignment",
        "Every image is explained on one canvas: the face aligned to the verification net's "
        "template (net.alignment; else the recognition net's), or the image as read when no net "
        "declares one. Per-pair alignment details go into the records (align-*).",
    )
    add_flag(
        group,
        "--align",
        choices=ALIGN_METHODS,
        default="auto",
        help="auto: align every image with the template's own landmarker (YuNet for "
        "ArcFace/VGGFace2, dlib for the dlib chip), then the other, then Haar (fallbacks "
        "recorded), except images already aligned: listed in the alignment.csv that "
        "align_faces.py wrote in their folder (or above it) with a template of the same "
        "geometry, used as read; yunet, dlib, haar: that landmarker only, always; none: every "
        "image is used as read (folders aligned by other means). An image without a face fails "
        "its pair at stage 'align' (default: %(default)s)",
    )
    add_flag(
        group,
        "--landmarks",
        default=None,
        help="a dataset's five-point landmark file (paths in it relative to --image-root): "
        "images are aligned with these landmarks instead of a detector (needs --align auto "
        "and --landmark-format)",
    )
    add_flag(
        group,
        "--landmark-format",
        choices=LANDMARK_FORMATS,
        default=None,
        help="format of --landmarks: celeba (list_landmarks_celeba.txt / "
        "list_landmarks_align_celeba.txt), vggface2 (loose_landmark_{train,test}.csv) or csv "
        "(path,x1,y1,...,x5,y5)",
    )
    return group


def add_gallery_flags(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The "gallery" group: ``--gallery`` (``<embedding-net>-gallery`` recognition nets)."""
    group = p.add_argument_group("gallery")
    add_flag(
        group,
        "--gallery",
        default=None,
        help="for --recognition-net <embedding-net>-gallery (e.g. SFace-gallery): a folder with "
        "one sub-folder of photos per identity; its classes are the sorted sub-folder names "
        "(listed in config.json as gallery-identities). Default: the identities of the pair "
        "list (every image of the list, identity = its folder under --image-root). Photos are "
        "aligned like the pairs (--align); one that fails is left out and reported in "
        "summary.json",
    )
    add_flag(
        group,
        "--gallery-exclude-pair",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="explain each pair with identity means computed without the pair's two photos "
        "(leave-pair-out: neither image nor its partner is in the classifier that explains it; "
        "an identity left without photos gets logit 0). Default off: the gallery holds every "
        "photo, the probes included (README 'Real photos with real networks' says what that "
        "changes) (default: %(default)s)",
    )
    return group


# -------------------------------------------------------------------------------------- Sim2Word
# scripts
_DESCRIPTIONS = {
    "topk": "Sim2Word (METHOD.md section 3): explain verification pairs with attribute words, "
    "class sets = the top-k identities of each image.",
    "threshold": "Sim2Word with the threshold strategy (paper Section 5.5): class set = the "
    "smallest set of "
    "top identities whose softmax sums to more than --id-thresh; joint maps renormalised.",
    "sameid": "Sim2Word, top-1 identity; when both images get the same top-1 identity the "
    "discriminant map "
    "is H_t alone (the authors' Scores-sameid.py).",
}


def add_pair_data_flags(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The "data" group of the pair scripts: ``--Datasets``, ``--datasets-config``,
    ``--pair-list``, ``--image-root``, ``--limit`` (:func:`utils.run.runner.pair_items`)."""
    data = p.add_argument_group("data")
    add_flag(
        data,
        "--Datasets",
        default=None,
        help="name of an entry of the datasets config (configs/datasets.json or "
        "$SIM2WORD_DATASETS): "
        "FaceWorld, VGGFace2-train, VGGFace2-test, Celeb-A, ... Default FaceWorld; with "
        "--pair-list "
        "it is only the label used in the output folder name (default: the list's file name)",
    )
    add_flag(
        data,
        "--datasets-config",
        default=None,
        help="datasets config file (default $SIM2WORD_DATASETS or <repo>/configs/datasets.json)",
    )
    add_flag(
        data,
        "--pair-list",
        default=None,
        help="pair list file ('path1 path2 label' lines, or a CSV); overrides the --Datasets entry",
    )
    add_image_root(
        data, "root of the relative image paths of --pair-list (default: the list's folder)"
    )
    add_limit(data, "pair")
    return data


def build_parser(strategy: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of one Sim2Word script.

    Args:
        strategy: "topk" (adds ``--topk``), "threshold" (adds ``--id-thresh``) or "sameid".
        prog: program name shown in ``--help``.
    """
    from utils.explain.sim2word import ABLATIONS, PAPER_THETA, Sim2WordConfig

    defaults = Sim2WordConfig()

    if strategy not in _DESCRIPTIONS:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(_DESCRIPTIONS)}")
    p = make_parser(_DESCRIPTIONS[strategy], EXIT_STATUS.format(unit="pair"), prog)
    p.set_defaults(strategy=strategy)
    add_pair_data_flags(p)

    nets = add_network_flags(
        p,
        (
            ("recognition", "FaceWorld-recognition"),
            ("attribute", "FaceWorld-attribute"),
            ("verification", "FaceWorld-verification"),
        ),
    )
    add_verification_layer(nets)
    add_gallery_flags(p)
    add_align_flags(p)

    meth = p.add_argument_group("method")
    add_heatmap_method(meth)
    add_thresh(
        meth, PAPER_THETA, "a pixel is erased for attribute j where J[j] > thresh (paper 0.6)"
    )
    if strategy == "topk":
        add_flag(
            meth,
            "--topk",
            type=positive_int,
            default=defaults.topk,
            help="k: class set = the k identities with the largest logits (1 = paper Section 3; "
            "default: %(default)s)",
        )
    elif strategy == "threshold":
        add_flag(
            meth,
            "--id-thresh",
            type=open_unit_interval,
            default=defaults.id_thresh,
            help="t: class set = the smallest set of top identities whose softmax sums to more "
            "than t "
            "(default: %(default)s)",
        )
    add_erasing_method(meth)
    add_flag(
        meth,
        "--ablation",
        choices=ABLATIONS,
        default="none",
        help="no-counterfactual: J[j] = H_attr[j]; no-attribute: only H_d, one region "
        "(stored as identical f_attr entries, one per head) (default: %(default)s)",
    )
    add_ranking_flags(meth)

    run = add_run_flags(
        p,
        "pair",
        "parent of the run folder scores-group-<Datasets>-<verification-net>-... "
        "(default: <repo>/outputs)",
        "seed of everything (random fill: seed + pair index)",
        "images per verification forward",
    )
    add_visualization(run)
    add_flag(
        run,
        "--calculate-similarity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the verification net on originals and erased images (the similarity keys) "
        "(default: %(default)s)",
    )
    add_flag(
        run,
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="bf16 autocast for the verification forwards (for GPUs; changes similarities by about "
        "1e-3..1e-2, slower on CPUs without bf16 units; default: off)",
    )
    return p


def add_check_method_flags(p: argparse._ActionsContainer, pair: str) -> None:
    """The Sim2Word settings of the ground-truth checks (twin check, part-swap check):
    ``--strategy`` (default sameid), ``--topk``, ``--thresh``, ``--Erasing-method``,
    ``--heatmap-method``; ``pair`` names the check's second image in the help ("twin", "swap")."""
    from utils.explain.sim2word import PAPER_THETA, STRATEGIES

    add_flag(
        p,
        "--strategy",
        default="sameid",
        choices=STRATEGIES,
        help=f"class-set strategy; a face and its {pair} almost always share R's top-1 class, "
        "where 'sameid' (Scores-sameid.py) uses H_t as the discriminant and renormalises J "
        "(default: %(default)s)",
    )
    add_flag(
        p,
        "--topk",
        type=positive_int,
        default=1,
        help="k of the top-k strategy (default: %(default)s)",
    )
    add_thresh(p, PAPER_THETA, "a pixel is erased where J[j] > thresh (paper 0.6)")
    add_erasing_method(p)
    add_heatmap_method(p)
