"""Explaining one verification pair with attribute words (METHOD.md section 3).

:func:`explain_pair` does steps 1-7 for (I1 explained against I2) and
(I2 explained against I1) and returns a :class:`PairExplanation`;
:func:`utils.run.records.make_record` turns it into the section 4 JSON record.

Strategies (``Sim2WordConfig.strategy``):

* ``"topk"``: C = the k classes with the largest logits; J[j] = H_d * H_attr[j].
* ``"threshold"``: C = the smallest set of top classes whose softmax sums to
  MORE than t (all classes if that never happens); each J[j] min-max
  normalised again.
* ``"sameid"`` (``Scores-sameid.py``): top-1; when both images get the same
  top-1 class, the discriminant is H_t alone (the class's Grad-CAM map as
  it is, not normalised again); otherwise as top-k with k = 1. Each J[j] is
  min-max normalised again, as the authors' ``Scores-sameid.py`` does
  (``Segmantically_Attributes_Interpretable_v2``).

Ablations (``Sim2WordConfig.ablation``, paper Section 5):

* ``"no-counterfactual"``: J[j] = H_attr[j] (the strategy's renormalisation
  still applies).
* ``"no-attribute"``: only H_d, one region. It is stored as J[j] = H_d for
  every head j, so the record keeps its 30 ``f_attr_<j>`` entries, all equal
  (the one region erased, verified once thanks to mask de-duplication), and
  the analysis scripts read it unchanged; the record says
  ``"ablation": "no-attribute"``.

All maps live at the recognition net's input size; masks are resized to the
raw image size only for erasing.

Attribute heads: the vocabulary of A (:func:`vocabulary_of`) names them; a
*region head* (``vocabulary.region_heads``) has no Grad-CAM map: its H_attr[j]
is the net's own region map of the canvas image (:class:`AttributeMaps`), and
it is always present (its (N, 1) logit gives class 0, confidence 1).

Example:
    >>> nets = Sim2WordNets(get_network("FaceWorld-recognition"),
    get_network("FaceWorld-attribute"),
    ...                     get_network("FaceWorld-verification"))
    >>> ex = explain_pair(read_image(p1), read_image(p2), nets, Sim2WordConfig(topk=1))
    >>> ex.similarity, ex.directions[0].J.shape
    (0.41..., (30, 64, 64))
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from models.attributes import CELEBA30, Vocabulary
from utils.explain.cam import (
    METHODS,
    CAMExplainer,
    CAMForward,
    ClassLogit,
    HeadLogit,
    minmax_normalise,
)
from utils.explain.erasing import FILLS, Eraser, resize_mask
from utils.explain.verification import cosine, embed_images

STRATEGIES = ("topk", "threshold", "sameid")
ABLATIONS = ("none", "no-counterfactual", "no-attribute")
#: The paper's erasing threshold theta on the joint maps (Section 3; ``--thresh``).
PAPER_THETA = 0.6
#: Where H_d comes from: "classes", R's class sets (the paper, step 3); "verification",
#: Grad-CAM of the pair's cosine through V (:mod:`utils.explain.similarity_cam`).
DISCRIMINANTS = ("classes", "verification")
#: Strategies whose joint maps are min-max normalised again (METHOD.md section 3 step 5).
RENORMALISED = ("threshold", "sameid")


@dataclass(frozen=True)
class Sim2WordConfig:
    """What to compute for a pair.

    Attributes:
        strategy: "topk", "threshold" or "sameid".
        topk: k of the top-k strategy (>= 1).
        id_thresh: t of the threshold strategy, in (0, 1).
        heatmap_method: "GradCAM" or "GradCAM++".
        thresh: erasing threshold theta on J (paper 0.6).
        erasing_method: "black", "white", "mean" or "random".
        ablation: "none", "no-counterfactual" or "no-attribute".
        seed: seed of the random fill (with the pair index).
        batch_size: images per verification forward.
        calculate_similarity: run the verification net (step 7).
        amp: bf16 autocast for the verification forwards (not output-preserving: ~1e-3 on
        similarities).
        discriminant: "classes" (the paper: H_d from R's class sets) or "verification" (H_d =
            Grad-CAM of -cos(V(I1), V(I2)) on each image; the strategy's class sets are still
            computed and recorded, and its J renormalisation still applies).
    """

    strategy: str = "topk"
    topk: int = 1
    id_thresh: float = 0.5
    heatmap_method: str = "GradCAM"
    thresh: float = PAPER_THETA
    erasing_method: str = "black"
    ablation: str = "none"
    seed: int = 0
    batch_size: int = 32
    calculate_similarity: bool = True
    amp: bool = False
    discriminant: str = "classes"

    def __post_init__(self) -> None:
        checks = [
            (
                self.discriminant in DISCRIMINANTS,
                f"discriminant {self.discriminant!r} not in {DISCRIMINANTS}",
            ),
            (self.strategy in STRATEGIES, f"strategy {self.strategy!r} not in {STRATEGIES}"),
            (
                self.heatmap_method in METHODS,
                f"heatmap_method {self.heatmap_method!r} not in {METHODS}",
            ),
            (
                self.erasing_method in FILLS,
                f"erasing_method {self.erasing_method!r} not in {FILLS}",
            ),
            (self.ablation in ABLATIONS, f"ablation {self.ablation!r} not in {ABLATIONS}"),
            (int(self.topk) >= 1, f"topk must be >= 1, got {self.topk}"),
            (
                0.0 < float(self.id_thresh) < 1.0,
                f"id_thresh must be in (0, 1), got {self.id_thresh}",
            ),
            (np.isfinite(self.thresh), f"thresh must be finite, got {self.thresh}"),
            (int(self.batch_size) >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
        ]
        validate(checks)


class RoleNets:
    """Base of the network bundles: checks each role's ``kind`` (:attr:`KINDS`) and A's
    vocabulary."""

    #: field name -> the kinds a network in that field may have (``None`` fields are skipped).
    KINDS: dict[str, tuple[str, ...]] = {}

    def __post_init__(self) -> None:
        for role, kinds in self.KINDS.items():
            net = getattr(self, role)
            kind = getattr(net, "kind", None)
            if net is not None and kind not in kinds:
                raise ValueError(
                    f"the {role} net must be of kind {' or '.join(kinds)}, got {kind!r}; "
                    "pick a matching registered network"
                )
        vocabulary_of(self.attribute)  # raises on a vocabulary that does not fit the heads

    @property
    def vocabulary(self) -> Vocabulary:
        """The attribute net's vocabulary (:func:`vocabulary_of`)."""
        return vocabulary_of(self.attribute)


@dataclass
class Sim2WordNets(RoleNets):
    """The three networks (METHOD.md section 1) and their Grad-CAM layers.

    Attributes:
        recognition: R, a classifier (output (N, C) logits).
        attribute: A, the multi-head attribute net (output list of (N, n_j)).
        verification: V, an embedding net; may be ``None`` when no similarity is computed.
        recognition_layer: Grad-CAM layer of R (default ``recognition.target_layer``).
        attribute_layer: Grad-CAM layer of A (default ``attribute.target_layer``).
        verification_layer: Grad-CAM layer of V for the "verification" discriminant
            (default ``verification.target_layer``).
    """

    KINDS = {
        "recognition": ("classifier", "evidential"),
        "attribute": ("attribute",),
        "verification": ("embedding",),
    }

    recognition: nn.Module
    attribute: nn.Module
    verification: nn.Module | None = None
    recognition_layer: str | None = None
    attribute_layer: str | None = None
    verification_layer: str | None = None


def validate(checks: Sequence[tuple[bool, str]]) -> None:
    """Raise ``ValueError`` with the message of the first failed ``(ok, message)`` check."""
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)


def vocabulary_of(net: nn.Module) -> Vocabulary:
    """The vocabulary of an attribute net: ``net.vocabulary`` (docs/ARCHITECTURE.md, interface 1).

    A net without one (hand-made test nets) gets the paper's ``celeba30`` when its head sizes are
    the
    paper's, else an unregistered vocabulary naming its heads ``head <j>``.

    Raises:
        ValueError: the vocabulary's head count differs from the net's ``head_sizes``.
    """
    sizes = tuple(int(n) for n in getattr(net, "head_sizes", ()))
    vocab = getattr(net, "vocabulary", None)
    if vocab is None:
        if sizes == CELEBA30.head_sizes:
            return CELEBA30
        return Vocabulary(
            name="unregistered",
            attributes=tuple(f"head {j}" for j in range(len(sizes))),
            class_words={
                j: tuple(f"head {j} class {c}" for c in range(n))
                for j, n in enumerate(sizes)
                if n > 2
            },
        )
    if sizes and len(sizes) != len(vocab):
        raise ValueError(
            f"the attribute net has {len(sizes)} heads but its vocabulary {vocab.name!r} names "
            f"{len(vocab)}; fix net.vocabulary"
        )
    return vocab


@dataclass
class DirectionExplanation:
    """Image ``side`` explained against the other image (all maps at R's input size (H, W)).

    Attributes:
        side: 0 = I1 against I2, 1 = I2 against I1.
        H_t: (H, W) mean Grad-CAM of the own class set on this image.
        H_f: (H, W) mean Grad-CAM of the other image's class set on this image.
        H_d: (H, W) discriminant map in [0, 1].
        H_attr: (n_heads, H, W) attribute maps in [0, 1].
        J: (n_heads, H, W) joint maps.
        masks: (n_heads, H, W) bool, J > thresh.
        attr_class: (n_heads,) predicted class per head.
        attr_conf: (n_heads,) softmax confidence of that class.
        eraser: erases the raw image. Erased images are not stored (30 raw-size copies
            per side would be large); :meth:`erased` rebuilds them deterministically,
            :meth:`mask_raw` gives the raw-size region.
        sim_own: (n_heads,) cos(V(E_j), V(own original)), or ``None``.
        sim_other: (n_heads,) cos(V(E_j), V(other original)), or ``None``.
        attr_probs: per head, the (n_j,) softmax of the attribute net on this image (the
            contrast ranking compares them across the pair), or ``None``.
    """

    side: int
    H_t: np.ndarray
    H_f: np.ndarray
    H_d: np.ndarray
    H_attr: np.ndarray
    J: np.ndarray
    masks: np.ndarray
    attr_class: np.ndarray
    attr_conf: np.ndarray
    eraser: Eraser
    sim_own: np.ndarray | None = None
    sim_other: np.ndarray | None = None
    attr_probs: list[np.ndarray] | None = None

    @property
    def raw_shape(self) -> tuple[int, int]:
        return tuple(self.eraser.image.shape[:2])

    def mask_raw(self, j: int) -> np.ndarray:
        """(H_raw, W_raw) bool region of head j at the raw image size."""
        return resize_mask(self.masks[j], self.raw_shape)

    def erased(self, j: int) -> np.ndarray:
        """(H_raw, W_raw, 3) uint8 raw image erased for head j."""
        return self.eraser(self.mask_raw(j))


@dataclass
class PairExplanation:
    """Everything computed for one pair.

    Attributes:
        class1, class2: class sets C1 (of I1) and C2 (of I2).
        directions: (I1 vs I2, I2 vs I1).
        embeddings: (2, D) raw V embeddings of I1, I2, or ``None``.
        erased_embeddings: (2, n_heads, D) embeddings of the erased images, or ``None``.
        similarity: cos(V(I1), V(I2)), or ``None``.
        both_masked: (n_heads,) cos(V(E1j), V(E2j)), or ``None``.
        n_verified: number of images actually run through V (after de-duplication).
        vocabulary: the attribute net's vocabulary (names the heads).
    """

    class1: list[int]
    class2: list[int]
    directions: tuple[DirectionExplanation, DirectionExplanation]
    embeddings: np.ndarray | None = None
    erased_embeddings: np.ndarray | None = None
    similarity: float | None = None
    both_masked: np.ndarray | None = None
    n_verified: int = 0
    same_top1: bool = field(default=False)
    vocabulary: Vocabulary | None = None


def class_set(
    logits: torch.Tensor, strategy: str, topk: int = 1, id_thresh: float = 0.5
) -> list[int]:
    """Class set of one image (METHOD.md section 3 step 1).

    Args:
        logits: (C,) identity logits.
        strategy: "topk"/"sameid" (k largest logits; sameid uses k = 1) or "threshold".
        topk: k.
        id_thresh: t: the smallest set of top classes whose softmax sums to more than t.

    Returns:
        Class ids, most likely first.
    """
    logits = logits.detach().double()
    order = torch.argsort(logits, descending=True, stable=True)
    if strategy == "threshold":
        cum = torch.cumsum(torch.softmax(logits, dim=0)[order], dim=0)
        above = torch.nonzero(cum > float(id_thresh))
        n = int(above[0, 0]) + 1 if len(above) else len(order)
    else:
        n = 1 if strategy == "sameid" else min(int(topk), len(order))
    return [int(c) for c in order[:n]]


def explain_pair(
    img1: np.ndarray,
    img2: np.ndarray,
    nets: Sim2WordNets,
    config: Sim2WordConfig,
    pair_index: int = 0,
) -> PairExplanation:
    """Explain one pair both ways (METHOD.md section 3 steps 1-7).

    Args:
        img1, img2: raw (H, W, 3) uint8 BGR images (any sizes).
        nets: the networks.
        config: what to compute.
        pair_index: the pair's index in its list (seeds the random fill).

    Returns:
        :class:`PairExplanation`; maps are float32 NumPy arrays at R's input size.
    """
    R, A = nets.recognition, nets.attribute
    size = tuple(R.preprocess.input_size)
    with CAMExplainer(R, nets.recognition_layer or R.target_layer, config.heatmap_method) as cam:
        fwd = cam.forward(R.preprocess([img1, img2]))
        logits = fwd.outputs
        if not torch.isfinite(logits).all():  # NaN logits would become all-zero maps and class 0
            raise FloatingPointError("the recognition net's logits are not finite for this pair")
        c1 = class_set(logits[0], config.strategy, config.topk, config.id_thresh)
        c2 = class_set(logits[1], config.strategy, config.topk, config.id_thresh)
        union = list(dict.fromkeys(c1 + c2))
        rec = cam.maps(fwd, [[ClassLogit(c) for c in union]] * 2, out_size=size)
    vocab = nets.vocabulary
    with AttributeMaps(A, nets.attribute_layer, config.heatmap_method) as am:
        afwd = am.forward([img1, img2])
        H_attr_both = am.maps(afwd, [list(range(len(vocab)))] * 2, out_size=size)

    same_top1 = c1[0] == c2[0]
    H_dV = None
    if config.discriminant == "verification":
        H_dV = _verification_discriminant(img1, img2, nets, config, size)
    directions = []
    for side, (own, other) in enumerate(((c1, c2), (c2, c1))):
        maps = rec.maps[side]  # (|union|, H, W)
        H_t = maps[[union.index(c) for c in own]].mean(dim=0)
        H_f = maps[[union.index(c) for c in other]].mean(dim=0)
        if H_dV is None:
            H_d = discriminant(H_t, H_f, same_id=config.strategy == "sameid" and same_top1)
        else:
            H_d = H_dV[side].to(H_t)
        H_attr = H_attr_both[side]
        J = joint_maps(H_d, H_attr, config.strategy, config.ablation)
        probs = head_probabilities(afwd.outputs, side)
        attr_class, attr_conf = head_predictions(afwd.outputs, side)
        directions.append(
            DirectionExplanation(
                side=side,
                H_t=_np(H_t),
                H_f=_np(H_f),
                H_d=_np(H_d),
                H_attr=_np(H_attr),
                J=_np(J),
                masks=_np(J) > float(config.thresh),
                attr_class=attr_class,
                attr_conf=attr_conf,
                attr_probs=probs,
                eraser=Eraser(
                    (img1, img2)[side], config.erasing_method, config.seed, pair_index, side
                ),
            )
        )
    for d in directions:
        _check_finite(d)
    ex = PairExplanation(
        class1=c1,
        class2=c2,
        directions=(directions[0], directions[1]),
        same_top1=same_top1,
        vocabulary=vocab,
    )
    if config.calculate_similarity:
        if nets.verification is None:
            raise ValueError("calculate_similarity=True needs a verification net")
        verify_pair(ex, (img1, img2), nets.verification, config.batch_size, config.amp)
    return ex


def head_predictions(outputs: Sequence[torch.Tensor], i: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class of every head for image ``i`` and its softmax confidence.

    Args:
        outputs: the attribute net's outputs, a list of (N, n_j) logits.
        i: the image.

    Returns:
        ``(classes (K,) int64, confidences (K,) float64)``; a region head's (N, 1) logit gives
        class 0, confidence 1.
    """
    probs = head_probabilities(outputs, i)
    return (
        np.array([int(p.argmax()) for p in probs], dtype=np.int64),
        np.array([float(p.max()) for p in probs], dtype=np.float64),
    )


def head_probabilities(outputs: Sequence[torch.Tensor], i: int) -> list[np.ndarray]:
    """Per head, the (n_j,) float64 softmax of the attribute net's logits for image ``i``.

    A region head's (N, 1) logit gives ``[1.0]``.
    """
    return [torch.softmax(o[i].detach().double(), dim=0).cpu().numpy() for o in outputs]


@dataclass
class AttributeForward:
    """Handle of :meth:`AttributeMaps.forward`: the canvas images, the CAM handle and the detached
    outputs."""

    images: list[np.ndarray]
    cam: CAMForward
    outputs: list[torch.Tensor]


class AttributeMaps:
    """H_attr of chosen heads of an attribute net A (METHOD.md section 3 step 4).

    A head's map is the Grad-CAM (or Grad-CAM++) map of its predicted-class logit, except for a
    *region head* (``vocabulary.region_heads``, docs/ARCHITECTURE.md interface 2), whose map is
    ``A.region_maps(images, out_size)[:, j]``, computed by the net on the same canvas images. One
    forward pass serves every head: choose the heads from :meth:`forward`'s outputs, then call
    :meth:`maps`.

    Args:
        net: the attribute net.
        layer: its Grad-CAM layer (default ``net.target_layer``).
        method: "GradCAM" or "GradCAM++".
    """

    def __init__(self, net: nn.Module, layer: str | None = None, method: str = "GradCAM") -> None:
        self.net = net
        self.vocabulary = vocabulary_of(net)
        self._cam = CAMExplainer(net, layer or net.target_layer, method)

    def __enter__(self) -> AttributeMaps:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cam.close()

    def forward(self, images: Sequence[np.ndarray]) -> AttributeForward:
        """One forward pass over the canvas images ((H, W, 3) uint8 BGR)."""
        images = list(images)
        fwd = self._cam.forward(self.net.preprocess(images))
        return AttributeForward(images, fwd, list(fwd.outputs))

    def maps(
        self, fwd: AttributeForward, heads: Sequence[Sequence[int]], out_size: tuple[int, int]
    ) -> list[torch.Tensor]:
        """Per image i, the (len(heads[i]), H, W) maps in [0, 1] of ``heads[i]``, in that order."""
        region = self.vocabulary.region_heads
        targets = [[HeadLogit(j) for j in hs if j not in region] for hs in heads]
        cams = self._cam.maps(fwd.cam, targets, out_size=out_size).maps
        regions = None
        if any(j in region for hs in heads for j in hs):
            regions = region_maps(self.net, fwd.images, out_size)
        out = []
        for i, hs in enumerate(heads):
            grad_maps = iter(cams[i])
            rows = [
                torch.as_tensor(regions[i, j]).to(cams[i]) if j in region else next(grad_maps)
                for j in hs
            ]
            out.append(torch.stack(rows) if rows else cams[i])
        return out


def region_maps(
    net: nn.Module, images: Sequence[np.ndarray], out_size: tuple[int, int]
) -> np.ndarray:
    """``net.region_maps(images, out_size)``, checked: (N, n_heads, H, W) finite values in [0, 1]
    (float32)."""
    if not hasattr(net, "region_maps"):
        raise ValueError(
            f"the attribute net's vocabulary has region heads but {type(net).__name__} has no "
            "region_maps(images_bgr, out_size) method (docs/ARCHITECTURE.md, interface 2)"
        )
    maps = np.asarray(net.region_maps(list(images), tuple(out_size)), dtype=np.float32)
    want = (len(images), len(vocabulary_of(net)), *out_size)
    if maps.shape != want:
        raise ValueError(
            f"{type(net).__name__}.region_maps returned shape {maps.shape}, expected {want}"
        )
    if not np.all(np.isfinite(maps)) or maps.min() < -1e-6 or maps.max() > 1 + 1e-6:
        raise ValueError(
            f"{type(net).__name__}.region_maps must return finite values in [0, 1], got "
            f"[{np.nanmin(maps):g}, {np.nanmax(maps):g}]"
        )
    return np.clip(maps, 0.0, 1.0)


def _verification_discriminant(
    img1: np.ndarray,
    img2: np.ndarray,
    nets: Sim2WordNets,
    config: Sim2WordConfig,
    size: tuple[int, int],
) -> torch.Tensor:
    """(2, H, W) H_d of the "verification" discriminant (:func:`similarity_discriminant`)."""
    from utils.explain.similarity_cam import similarity_discriminant

    if nets.verification is None:
        raise ValueError("the 'verification' discriminant needs the verification net")
    return similarity_discriminant(
        nets.verification, img1, img2, nets.verification_layer, config.heatmap_method, size
    )


def discriminant(H_t: torch.Tensor, H_f: torch.Tensor, same_id: bool = False) -> torch.Tensor:
    """H_d = minmax(H_t * (max(H_f) - H_f)) (section 3 step 3); ``same_id``: H_t. (H, W) -> (H, W).

    ``same_id`` is the authors' ``Scores-sameid.py`` case (both images share the top-1 class):
    their discriminant is that class's Grad-CAM map, used without a second normalisation.
    """
    if same_id:
        return H_t.clone()
    return minmax_normalise((H_t * (H_f.max() - H_f))[None])[0]


def joint_maps(
    H_d: torch.Tensor, H_attr: torch.Tensor, strategy: str, ablation: str = "none"
) -> torch.Tensor:
    """J[j] (section 3 step 5 and the ablations). (H, W), (K, H, W) -> (K, H, W).

    The threshold and sameid strategies min-max normalise each J[j] again (the authors'
    ``Multi_identity_thresh.py`` and ``Scores-sameid.py``); top-k uses J as it is.
    """
    if ablation == "no-counterfactual":
        J = H_attr.clone()
    elif ablation == "no-attribute":
        J = H_d[None].expand_as(H_attr).clone()
    else:
        J = H_d[None] * H_attr
    return minmax_normalise(J) if strategy in RENORMALISED else J


def verify_pair(
    ex: PairExplanation,
    raws: tuple[np.ndarray, np.ndarray],
    V: nn.Module,
    batch_size: int,
    amp: bool = False,
) -> None:
    """Step 7: embed originals and erased images in batches; fill the similarities of ``ex`` in
    place.

    Output-preserving savings: an empty (raw-size) mask reuses the original's
    embedding; identical masks of one side (same fill) are embedded once.
    ``amp``: bf16 autocast for the V forwards (changes similarities by ~1e-3).
    """
    n_heads = ex.directions[0].masks.shape[0]
    index = np.zeros((2, n_heads), dtype=np.int64)
    unique: list[tuple[int, int]] = []  # (side, j) of each image to embed after the two originals
    seen: dict[tuple[int, bytes], int] = {}
    for d in ex.directions:
        for j in range(n_heads):
            if not d.mask_raw(j).any():
                index[d.side, j] = d.side
                continue
            key = (
                d.side,
                hashlib.blake2b(np.packbits(d.masks[j]).tobytes(), digest_size=16).digest(),
            )
            if key not in seen:
                seen[key] = 2 + len(unique)
                unique.append((d.side, j))
            index[d.side, j] = seen[key]

    def images() -> Iterator[np.ndarray]:
        yield from raws
        for side, j in unique:
            yield ex.directions[side].erased(j)

    emb = embed_images(V, images(), batch_size, amp)
    e1, e2 = emb[0], emb[1]
    erased = emb[torch.as_tensor(index)]  # (2, K, D)
    ex.embeddings = emb[:2].numpy()
    ex.erased_embeddings = erased.numpy()
    ex.n_verified = int(emb.shape[0])
    ex.similarity = float(cosine(e1, e2))
    for d, own, other in ((ex.directions[0], e1, e2), (ex.directions[1], e2, e1)):
        d.sim_own = cosine(erased[d.side], own[None]).double().numpy()
        d.sim_other = cosine(erased[d.side], other[None]).double().numpy()
    ex.both_masked = cosine(erased[0], erased[1]).double().numpy()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _check_finite(d: DirectionExplanation) -> None:
    for name in ("H_t", "H_f", "H_d", "H_attr", "J", "attr_conf"):
        if not np.all(np.isfinite(getattr(d, name))):
            raise FloatingPointError(
                f"non-finite values in {name} of side {d.side}; check the network weights"
            )
