"""A faithful reference: Sim2Word computed the authors' way, one target at a time.

It exists only to be compared against the engine (:func:`utils.explain.sim2word.explain_pair`):
``benchmarks/bench_pair.py`` times both, ``tests/test_reference_equivalence.py``
checks that they give the same per-pair records. It deliberately shares no
Grad-CAM, class-set, discriminant or joint-map code with ``utils/``; it reuses
only what is not being compared: the networks' preprocessing, the erasing fill
(:class:`utils.explain.erasing.Eraser`, so the seeded random fill is the same) and the
record builder (:func:`utils.run.records.make_record`, via the
:class:`utils.explain.sim2word.PairExplanation` it returns).

How the authors compute one pair (and what this module does, without any reuse):

* identity classes: one forward of R per image (no gradient);
* identity maps: for each direction and EACH class of the own class set and of
  the other image's class set, one full forward + full backward of R with the
  input requiring grad (parameters too, as in ``pytorch_grad_cam``: their
  ``.grad`` is accumulated and zeroed each time), hooks on the target layer;
* attribute maps: for each direction and EACH of the 30 heads, one full forward
  + full backward of A (target: the head's predicted class in that forward);
* verification: one image per forward of V: the two originals, then every erased
  image (all 2 x 30, empty or duplicate masks included).

Example:
    >>> ex = reference_explain_pair(img1, img2, nets, Sim2WordConfig(), pair_index=0)
    >>> ref.counts   # forward / backward passes done by the last call
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import nn

from utils.explain.erasing import Eraser, resize_mask
from utils.base.inference import device_of
from utils.explain.sim2word import (
    DirectionExplanation,
    PairExplanation,
    Sim2WordConfig,
    Sim2WordNets,
)


@dataclass
class PassCounts:
    """Network passes done by one reference call (what makes it slow)."""

    forward: dict[str, int] = field(default_factory=lambda: {"R": 0, "A": 0, "V": 0})
    backward: dict[str, int] = field(default_factory=lambda: {"R": 0, "A": 0})


def _minmax(a: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] in float64; a constant map becomes zeros."""
    a = np.asarray(a, dtype=np.float64)
    rng = a.max() - a.min()
    return (a - a.min()) / rng if np.isfinite(rng) and rng > 0 else np.zeros_like(a)


class FullBackwardGradCAM:
    """Grad-CAM / Grad-CAM++ as ``pytorch_grad_cam`` does it: one full forward + backward per
    target.

    Args:
        net: the network.
        layer: dotted name of the target layer.
        method: "GradCAM" or "GradCAM++".
    """

    def __init__(self, net: nn.Module, layer: str, method: str) -> None:
        self.net, self.layer, self.method = net, net.get_submodule(layer), method

    def __call__(
        self, x: torch.Tensor, score_fn, out_size: tuple[int, int]
    ) -> tuple[np.ndarray, object]:
        """One image ``x`` (1, 3, H, W) and a score function of the outputs -> ((H, W) map in [0,
        1], outputs)."""
        store: dict[str, torch.Tensor] = {}

        def hook(module, inputs, output):
            store["act"] = output.detach()
            output.register_hook(lambda g: store.__setitem__("grad", g.detach()))

        handle = self.layer.register_forward_hook(hook)
        try:
            x = x.clone().requires_grad_(True)
            self.net.zero_grad(set_to_none=True)
            with torch.enable_grad():
                outputs = self.net(x)
                score_fn(outputs).sum().backward()
        finally:
            handle.remove()
            self.net.zero_grad(set_to_none=True)
        a = store["act"][0].double().cpu().numpy()  # (C, h, w)
        g = store["grad"][0].double().cpu().numpy()
        if self.method == "GradCAM":  # Selvaraju et al. 2017, Eq. 1
            w = g.mean(axis=(1, 2))
        else:  # Chattopadhay et al. 2018, Eq. 19 with the ReLU of Eq. 7
            denom = 2 * g**2 + a.sum(axis=(1, 2), keepdims=True) * g**3 + 1e-6
            w = (np.where(g != 0, g**2 / denom, 0.0) * np.maximum(g, 0)).sum(axis=(1, 2))
        cam = _minmax(np.maximum((w[:, None, None] * a).sum(axis=0), 0))  # Eq. 2, then scaled
        resized = cv2.resize(
            cam.astype(np.float32), (out_size[1], out_size[0]), interpolation=cv2.INTER_LINEAR
        )
        return resized.astype(np.float64), outputs


def _class_set(logits: np.ndarray, config: Sim2WordConfig) -> list[int]:
    order = sorted(
        range(len(logits)), key=lambda c: -logits[c]
    )  # stable: ties keep the lower id first
    if config.strategy == "threshold":
        p = np.exp(logits - logits.max())
        p /= p.sum()
        total = 0.0
        for n, c in enumerate(order, start=1):
            total += p[c]
            if total > config.id_thresh:
                return order[:n]
        return order
    return order[: 1 if config.strategy == "sameid" else config.topk]


class ReferenceSim2Word:
    """The authors' way of explaining a pair (see the module docstring).

    Args:
        nets: the same networks as the engine uses.
        config: the same configuration.
    """

    def __init__(self, nets: Sim2WordNets, config: Sim2WordConfig) -> None:
        self.nets, self.config = nets, config
        self.counts = PassCounts()
        R, A = nets.recognition, nets.attribute
        self._cam_r = FullBackwardGradCAM(
            R, nets.recognition_layer or R.target_layer, config.heatmap_method
        )
        self._cam_a = FullBackwardGradCAM(
            A, nets.attribute_layer or A.target_layer, config.heatmap_method
        )

    def _identity_map(self, img: np.ndarray, cls: int, size) -> np.ndarray:
        R = self.nets.recognition
        x = R.preprocess([img]).to(device_of(R))
        self.counts.forward["R"] += 1
        self.counts.backward["R"] += 1
        cam, _ = self._cam_r(x, lambda out: out[:, cls], size)
        return cam

    def _attribute_map(self, img: np.ndarray, j: int, size) -> tuple[np.ndarray, np.ndarray]:
        A = self.nets.attribute
        x = A.preprocess([img]).to(device_of(A))
        self.counts.forward["A"] += 1
        self.counts.backward["A"] += 1
        head = {}

        def score(outputs):
            logits = outputs[j]
            head["logits"] = logits.detach()[0].double().cpu().numpy()
            return logits[:, int(logits.detach().argmax(dim=1)[0])]

        cam, _ = self._cam_a(x, score, size)
        return cam, head["logits"]

    def _embed(self, img: np.ndarray) -> np.ndarray:
        V = self.nets.verification
        self.counts.forward["V"] += 1
        with torch.no_grad():
            return V(V.preprocess([img]).to(device_of(V)))[0].double().cpu().numpy()

    def __call__(self, img1: np.ndarray, img2: np.ndarray, pair_index: int = 0) -> PairExplanation:
        """Explain one pair; returns a :class:`PairExplanation` (maps as float32 at R's input
        size)."""
        cfg, R = self.config, self.nets.recognition
        self.counts = PassCounts()
        size = tuple(R.preprocess.input_size)
        sets = []
        for img in (img1, img2):
            self.counts.forward["R"] += 1
            with torch.no_grad():
                logits = R(R.preprocess([img]).to(device_of(R)))[0].double().cpu().numpy()
            sets.append(_class_set(logits, cfg))
        same_top1 = sets[0][0] == sets[1][0]
        directions = []
        for side, img in enumerate((img1, img2)):
            own, other = sets[side], sets[1 - side]
            H_t = np.mean([self._identity_map(img, c, size) for c in own], axis=0)
            H_f = np.mean([self._identity_map(img, c, size) for c in other], axis=0)
            if cfg.strategy == "sameid" and same_top1:
                H_d = H_t.copy()  # Scores-sameid.py: the top-1 class map as it is
            else:
                H_d = _minmax(H_t * (H_f.max() - H_f))
            maps, confs, classes = [], [], []
            for j in range(len(self.nets.attribute.head_sizes)):
                cam, logits = self._attribute_map(img, j, size)
                p = np.exp(logits - logits.max())
                p /= p.sum()
                maps.append(cam)
                classes.append(int(p.argmax()))
                confs.append(float(p.max()))
            H_attr = np.stack(maps)
            if cfg.ablation == "no-counterfactual":
                J = H_attr.copy()
            elif cfg.ablation == "no-attribute":
                J = np.repeat(H_d[None], len(maps), axis=0)
            else:
                J = H_d[None] * H_attr
            if cfg.strategy in ("threshold", "sameid"):  # authors: renormalised J
                J = np.stack([_minmax(m) for m in J])
            f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
            directions.append(
                DirectionExplanation(
                    side=side,
                    H_t=f32(H_t),
                    H_f=f32(H_f),
                    H_d=f32(H_d),
                    H_attr=f32(H_attr),
                    J=f32(J),
                    masks=f32(J) > float(cfg.thresh),
                    attr_class=np.array(classes, dtype=np.int64),
                    attr_conf=np.array(confs, dtype=np.float64),
                    eraser=Eraser(img, cfg.erasing_method, cfg.seed, pair_index, side),
                )
            )
        ex = PairExplanation(
            class1=sets[0],
            class2=sets[1],
            directions=(directions[0], directions[1]),
            same_top1=same_top1,
        )
        if cfg.calculate_similarity:
            self._verify(ex, (img1, img2))
        return ex

    def _verify(self, ex: PairExplanation, raws: tuple[np.ndarray, np.ndarray]) -> None:
        def cos(a: np.ndarray, b: np.ndarray) -> float:
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            return float(np.clip(a @ b / (na * nb), -1, 1)) if na > 0 and nb > 0 else 0.0

        e = [self._embed(img) for img in raws]
        erased = [
            [self._embed(d.eraser(resize_mask(m, d.raw_shape))) for m in d.masks]
            for d in ex.directions
        ]
        ex.embeddings = np.stack(e).astype(np.float32)
        ex.erased_embeddings = np.array(erased, dtype=np.float32)
        ex.n_verified = 2 + sum(len(x) for x in erased)
        ex.similarity = cos(e[0], e[1])
        for d in ex.directions:
            own, other = e[d.side], e[1 - d.side]
            d.sim_own = np.array([cos(x, own) for x in erased[d.side]])
            d.sim_other = np.array([cos(x, other) for x in erased[d.side]])
        ex.both_masked = np.array([cos(a, b) for a, b in zip(*erased, strict=True)])


def reference_explain_pair(
    img1: np.ndarray,
    img2: np.ndarray,
    nets: Sim2WordNets,
    config: Sim2WordConfig,
    pair_index: int = 0,
) -> PairExplanation:
    """Functional form of :class:`ReferenceSim2Word` (same arguments as ``explain_pair``)."""
    return ReferenceSim2Word(nets, config)(img1, img2, pair_index)


def compare_records(
    a: object, b: object, tol: float = 1e-4, where: str = "record"
) -> tuple[float, list[str]]:
    """Compare two JSON-like records: same keys, same strings/ints/bools, floats within ``tol``.

    Returns:
        (max abs difference over all numbers, list of human-readable mismatches; empty = equal).
    """
    if isinstance(a, dict) and isinstance(b, dict):
        worst, bad = 0.0, []
        if set(a) != set(b):
            bad.append(
                f"{where}: keys differ: only in first {sorted(set(a) - set(b))}, "
                f"only in second {sorted(set(b) - set(a))}"
            )
        for k in sorted(set(a) & set(b), key=str):
            w, m = compare_records(a[k], b[k], tol, f"{where}[{k!r}]")
            worst, bad = max(worst, w), bad + m
        return worst, bad
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return float("inf"), [f"{where}: lengths {len(a)} != {len(b)}"]
        worst, bad = 0.0, []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            w, m = compare_records(x, y, tol, f"{where}[{i}]")
            worst, bad = max(worst, w), bad + m
        return worst, bad
    if isinstance(a, float) or isinstance(b, float):
        if (
            isinstance(a, bool)
            or isinstance(b, bool)
            or not isinstance(a, (int, float))
            or not isinstance(b, (int, float))
        ):
            return float("inf"), [f"{where}: {a!r} vs {b!r}"]
        d = abs(float(a) - float(b))
        return d, ([f"{where}: {a!r} vs {b!r} (|diff| {d:.3g} > {tol:g})"] if not d <= tol else [])
    return 0.0, ([] if a == b and type(a) is type(b) else [f"{where}: {a!r} vs {b!r}"])
