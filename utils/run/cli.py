"""The one argparse builder shared by the Sim2Word experiment scripts.

Flag names keep the authors' spelling (``--Datasets``, ``--Erasing-method``,
...). Options whose default is ``None`` mean "the component's default" (e.g.
the registered weights file of a network). Exit code 2 on usage errors
(argparse's own).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from utils.explain.cam import METHODS
from utils.explain.erasing import FILLS
from utils.explain.ranking import RANKING_FILLS, RANKINGS
from utils.explain.sim2word import ABLATIONS, DISCRIMINANTS

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT_DIR = REPO_ROOT / "outputs"
DEFAULT_ID_THRESH = 0.5

_DESCRIPTIONS = {
    "topk": "Sim2Word (METHOD.md section 3): explain verification pairs with attribute words, "
            "class sets = the top-k identities of each image.",
    "threshold": "Sim2Word with the threshold strategy (paper Section 5.5): class set = the smallest set of "
                 "top identities whose softmax sums to more than --id-thresh; joint maps renormalised.",
    "sameid": "Sim2Word, top-1 identity; when both images get the same top-1 identity the discriminant map "
              "is H_t alone (the authors' Scores-sameid.py).",
}


def add_network_flags(p: argparse.ArgumentParser, roles: tuple[tuple[str, str], ...]) -> argparse._ArgumentGroup:
    """The "networks" flag group shared by the scripts: ``--<role>-net/-weights/-arch`` per
    ``(role, default registered name)``, plus the Grad-CAM layers of R and A."""
    nets = p.add_argument_group("networks")
    for role, default in roles:
        nets.add_argument(f"--{role}-net", default=default,
                          help=f"registered name of the {role} network (default: %(default)s)")
        nets.add_argument(f"--{role}-weights", default=None,
                          help=f"weights file of the {role} network (default: its registered file under "
                               "pre-trained/ or $SIM2WORD_PRETRAINED)")
        nets.add_argument(f"--{role}-arch", type=_json_dict, default=None,
                          help=f"architecture overrides of the {role} network as a JSON object, e.g. "
                               "'{\"num_classes\": 500}' (must match the weights)")
    nets.add_argument("--recognition-layer", default=None,
                      help="Grad-CAM layer of the recognition net (default: its target_layer, the last conv)")
    nets.add_argument("--attribute-layer", default=None,
                      help="Grad-CAM layer of the attribute net (default: its target_layer, the last conv)")
    return nets


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}); example: '{{\"width\": 16}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"width\": 16}}', got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def build_parser(strategy: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of one script.

    Args:
        strategy: "topk" (adds ``--topk``), "threshold" (adds ``--id-thresh``) or "sameid".
        prog: program name shown in ``--help``.
    """
    if strategy not in _DESCRIPTIONS:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(_DESCRIPTIONS)}")
    p = argparse.ArgumentParser(prog=prog, description=_DESCRIPTIONS[strategy],
                                epilog="Exit status: 0 all pairs done, 3 some pairs failed (see failures.jsonl in "
                                       "the run folder), 2 usage error.")
    p.set_defaults(strategy=strategy)
    data = p.add_argument_group("data")
    data.add_argument("--Datasets", default=None,
                      help="name of an entry of the datasets config (configs/datasets.json or $SIM2WORD_DATASETS): "
                           "FaceWorld, VGGFace2-train, VGGFace2-test, Celeb-A, ... Default FaceWorld; with "
                           "--pair-list it is only the label used in the output folder name (default: the list's "
                           "file name)")
    data.add_argument("--datasets-config", default=None,
                      help="datasets config file (default $SIM2WORD_DATASETS or <repo>/configs/datasets.json)")
    data.add_argument("--pair-list", default=None,
                      help="pair list file ('path1 path2 label' lines); overrides the --Datasets entry")
    data.add_argument("--image-root", default=None,
                      help="root of the relative image paths of --pair-list (default: the list's folder)")
    data.add_argument("--limit", type=_positive_int, default=None,
                      help="only the first N pairs of the list (before sharding)")

    add_network_flags(p, (("recognition", "FaceWorld-recognition"), ("attribute", "FaceWorld-attribute"),
                          ("verification", "FaceWorld-verification")))

    meth = p.add_argument_group("method")
    meth.add_argument("--heatmap-method", choices=METHODS, default="GradCAM", help="class activation map method (default: %(default)s)")
    meth.add_argument("--thresh", type=_finite_float, default=0.6,
                      help="erasing threshold theta: a pixel is erased for attribute j where J[j] > thresh (default: %(default)s)")
    if strategy == "topk":
        meth.add_argument("--topk", type=_positive_int, default=1,
                          help="k: class set = the k identities with the largest logits (1 = paper Section 3; default: %(default)s)")
    elif strategy == "threshold":
        meth.add_argument("--id-thresh", type=_unit_interval, default=DEFAULT_ID_THRESH,
                          help="t: class set = the smallest set of top identities whose softmax sums to more than t (default: %(default)s)")
    meth.add_argument("--Erasing-method", choices=FILLS, default="black",
                      help="fill of erased pixels: black 0, white 255, mean 125, random uniform (seeded) (default: %(default)s)")
    meth.add_argument("--ablation", choices=ABLATIONS, default="none",
                      help="no-counterfactual: J[j] = H_attr[j]; no-attribute: only H_d, one region "
                           "(stored as 30 identical f_attr entries) (default: %(default)s)")
    meth.add_argument(
        "--ranking", choices=RANKINGS, default="paper",
        help="how the words are ranked (README, 'The twin check'): paper = each image erased "
             "alone, by cos(V(E1j), V(I2)) (the authors'); both-shared = one region per attribute "
             "(the union of both images' regions) erased in both images, by cos(V(E1j), V(E2j)); "
             "contrast = the words the attribute net sees differ between the images first, by "
             "that difference times the similarity gain of their shared erasure. Erasures that "
             "change nothing are flagged as ties in the record's words-image1/words-image2/"
             "words-pair (default: %(default)s)")
    meth.add_argument(
        "--discriminant", choices=DISCRIMINANTS, default="classes",
        help="H_d of the joint maps: classes = from the recognition net's class sets (the "
             "paper); verification = Grad-CAM of the negated cosine similarity through the "
             "verification net, on each image (default: %(default)s)")
    meth.add_argument(
        "--verification-layer", default=None,
        help="Grad-CAM layer of the verification net for --discriminant verification "
             "(default: its target_layer, the last conv)")
    meth.add_argument(
        "--ranking-fill", choices=RANKING_FILLS, default=None,
        help="fill of the shared-region erasing of --ranking both-shared/contrast: the four "
             "--Erasing-method fills, blur (Gaussian, sigma = image size / 16) or inpaint "
             "(OpenCV Telea) (default: the --Erasing-method fill)")
    meth.add_argument(
        "--ranking-thresh", type=_finite_float, default=None,
        help="--ranking both-shared/contrast: an image's region of attribute j is J[j] > this "
             "(the twin check's tuning set favours a lower value than the paper's theta, see the "
             "README) (default: --thresh)")

    run = p.add_argument_group("run")
    run.add_argument("--output-dir", default=str(DEFAULT_OUTPUT_DIR),
                     help="parent of the run folder scores-group-<Datasets>-<verification-net>-... (default: <repo>/outputs)")
    run.add_argument("--visualization", action=argparse.BooleanOptionalAction, default=True,
                     help="write heat-map overlays, masks and erased images to <run>/cam/ (default: %(default)s)")
    run.add_argument("--calculate-similarity", action=argparse.BooleanOptionalAction, default=True,
                     help="run the verification net on originals and erased images (the similarity keys) (default: %(default)s)")
    run.add_argument("--batch-size", type=_positive_int, default=32, help="images per verification forward (default: %(default)s)")
    run.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                     help="bf16 autocast for the verification forwards (for GPUs; changes similarities by about "
                          "1e-3..1e-2, slower on CPUs without bf16 units; default: off)")
    run.add_argument("--device", default=None,
                     help="cpu, cuda or cuda:N (default: cuda when available, cuda:$LOCAL_RANK under torchrun)")
    run.add_argument("--seed", type=int, default=0, help="seed of everything (random fill: seed + pair index; default: %(default)s)")
    run.add_argument("--shard", default=None,
                     help="i/n: run only pairs with index %% n == i (job arrays); under torchrun each rank "
                          "further takes its share automatically")
    run.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                     help="skip pairs whose JSON already exists and parses (default: %(default)s)")
    return p
