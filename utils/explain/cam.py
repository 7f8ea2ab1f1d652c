"""Grad-CAM and Grad-CAM++ for many targets at once, with tail-only gradients.

METHOD.md section 3 step 2: for a target score ``y`` and the activation ``A``
(C, h, w) of a layer, Grad-CAM (Selvaraju et al. 2017, Eq. 1-2) is

    w_c = mean_{ij} dy/dA_cij,        map = ReLU(sum_c w_c A_c),

min-max normalised to [0, 1] per map (a constant map becomes all zeros, never
NaN) and resized bilinearly (``align_corners=False``) to a requested size.

Grad-CAM++ uses the standard formula of Chattopadhay et al. 2018 (WACV,
Eq. 19 with the ReLU of Eq. 7), exactly as ``pytorch_grad_cam/grad_cam_plusplus.py``:

    a_cij = g^2 / (2 g^2 + sum_{ab} A_cab * g^3 + 1e-6)   (0 where g == 0),
    w_c   = sum_{ij} a_cij * ReLU(g_cij),

with ``g = dy/dA`` the gradient of the raw (pre-softmax) score.

How the engine saves work (the results equal a plain per-target full
backward, see ``tests/test_cam.py``):

* one forward pass per batch of images, with the network's parameters frozen
  (``requires_grad_(False)``, restored afterwards), so nothing before the
  target layer records an autograd graph;
* a forward hook on the target layer replaces its output by a detached leaf
  with ``requires_grad=True``: the graph spans only target layer -> outputs;
* all targets of all images in ONE batched backward
  (``torch.autograd.grad(..., is_grads_batched=True)`` with one-hot rows).

Targets that depend on the predictions (the top-k classes, the predicted
class of each head) are chosen between the two calls: ``forward(x)`` returns
the outputs and a handle, ``maps(handle, targets)`` the maps; nothing calls
back into the caller.

Example:
    >>> with CAMExplainer(net, net.target_layer, "GradCAM") as cam:
    ...     fwd = cam.forward(x)
    ...     top = fwd.outputs.argmax(dim=1).tolist()
    ...     res = cam.maps(fwd, [[ClassLogit(top[0]), ClassLogit(7)], [ClassLogit(1)]],
    out_size=(224, 224))
    >>> res.maps[0].shape, res.outputs.shape
    (torch.Size([2, 224, 224]), torch.Size([2, 8631]))
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import resolve_layer
from utils.base.inference import device_of

METHODS = ("GradCAM", "GradCAM++")


class ClassLogit:
    """Target: the logit of one class of a classifier.

    Args:
        cls: class index.
    """

    def __init__(self, cls: int) -> None:
        self.cls = int(cls)

    def __call__(self, outputs: torch.Tensor) -> torch.Tensor:
        """(N, C) or (C,) logits -> (N,) or () score."""
        return outputs[..., self.cls]

    def __repr__(self) -> str:
        return f"ClassLogit({self.cls})"


class HeadLogit:
    """Target: one logit of one head of a multi-head (attribute) net.

    Args:
        head: head index j.
        cls: class of that head; ``None`` = the head's predicted (arg-max) class
            for each sample.
    """

    def __init__(self, head: int, cls: int | None = None) -> None:
        self.head = int(head)
        self.cls = None if cls is None else int(cls)

    def __call__(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """List of (N, n_j) or (n_j,) logits -> (N,) or () score."""
        logits = outputs[self.head]
        if self.cls is not None:
            return logits[..., self.cls]
        idx = logits.detach().argmax(dim=-1, keepdim=True)
        return logits.gather(-1, idx).squeeze(-1)

    def __repr__(self) -> str:
        return f"HeadLogit({self.head}, {self.cls})"


Target = Callable[[Any], torch.Tensor]


class CAMForward(NamedTuple):
    """Handle of one :meth:`CAMExplainer.forward`.

    Attributes:
        graph: the network's outputs with the tail graph (target layer -> outputs) attached.
        leaf: (N, C, h, w) activation of the target layer, a leaf that requires grad.
    """

    graph: Any
    leaf: torch.Tensor

    @property
    def outputs(self) -> Any:
        """The outputs, detached ((N, C) logits, or a list of (N, n_j) head logits)."""
        return _detach(self.graph)


@dataclass
class CAMResult:
    """Output of :meth:`CAMExplainer.__call__`.

    Attributes:
        outputs: the network's forward outputs, detached ((N, C) logits, or a
            list of (N, n_j) head logits).
        maps: per image i, a (T_i, H, W) float tensor in [0, 1] (one map per target).
        raw: per image i, the un-normalised ReLU maps at layer resolution (T_i, h, w).
    """

    outputs: Any
    maps: list[torch.Tensor]
    raw: list[torch.Tensor]


def gradcam_weights(grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """Grad-CAM channel weights: spatial mean of the gradient. (M, C, h, w) -> (M, C)."""
    del acts
    return grads.mean(dim=(2, 3))


def gradcampp_weights(grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ weights (Chattopadhay et al. 2018, Eq. 19 + ReLU of Eq. 7). (M, C, h, w) -> (M,
    C)."""
    g2 = grads.pow(2)
    g3 = g2 * grads
    sum_acts = acts.sum(dim=(2, 3), keepdim=True)
    aij = g2 / (2 * g2 + sum_acts * g3 + 1e-6)
    aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
    return (grads.clamp_min(0) * aij).sum(dim=(2, 3))


_WEIGHTS = {"GradCAM": gradcam_weights, "GradCAM++": gradcampp_weights}


def minmax_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map to [0, 1]; constant (or non-finite-range) maps -> zeros.

    Args:
        maps: (M, H, W) float tensor.

    Returns:
        (M, H, W) tensor in [0, 1], never NaN.
    """
    flat = maps.flatten(1)
    lo = flat.min(dim=1).values[:, None, None]
    rng = flat.max(dim=1).values[:, None, None] - lo
    ok = torch.isfinite(rng) & (rng > 0)
    out = (maps - lo) / torch.where(ok, rng, torch.ones_like(rng))
    return torch.where(ok, out, torch.zeros_like(out)).clamp_(0.0, 1.0)


def resize_maps(maps: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of (M, h, w) maps to (M, H, W)."""
    if size is None or tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[
        :, 0
    ]


class CAMExplainer:
    """Grad-CAM / Grad-CAM++ engine for one network and one layer.

    The object owns its hook handles: a hook exists only during a forward
    pass and is removed in ``finally``; :meth:`close` (called by ``__exit__``)
    removes anything left and restores the parameters' ``requires_grad``.

    Args:
        net: the network (its device is used).
        layer: dotted layer name (resolved with ``net.get_submodule``) or a module.
        method: "GradCAM" or "GradCAM++".
    """

    def __init__(self, net: nn.Module, layer: str | nn.Module, method: str = "GradCAM") -> None:
        if method not in _WEIGHTS:
            raise ValueError(f"unknown heat-map method {method!r}; valid: {', '.join(METHODS)}")
        self.net = net
        self.layer = resolve_layer(net, layer) if isinstance(layer, str) else layer
        self.method = method
        self._weights = _WEIGHTS[method]
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._leaf: torch.Tensor | None = None

    def __enter__(self) -> CAMExplainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook this object registered."""
        while self._handles:
            self._handles.pop().remove()
        self._leaf = None

    def _hook(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if self._leaf is not None:
            raise ValueError(
                f"target layer {type(module).__name__} ran twice in one forward; pick a layer "
                "used once"
            )
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            raise ValueError(
                "target layer must output an (N, C, h, w) tensor, got "
                f"{getattr(output, 'shape', type(output))}"
            )
        self._leaf = output.detach().requires_grad_(True)
        # A clone, so that an in-place op after the layer (ReLU(inplace=True)) is legal.
        return self._leaf.clone()

    def forward(self, x: torch.Tensor) -> CAMForward:
        """One forward pass that keeps the tail graph (target layer -> outputs).

        Args:
            x: (N, 3, H, W) input (moved to the network's device).

        Returns:
            :class:`CAMForward`: ``.outputs`` (detached) to choose targets from, and the
            handle :meth:`maps` takes the gradients from (any number of times).
        """
        x = x.to(device_of(self.net))
        params = list(self.net.parameters())
        flags = [p.requires_grad for p in params]
        self._leaf = None
        self._handles.append(self.layer.register_forward_hook(self._hook))
        try:
            for p in params:
                p.requires_grad_(False)
            with torch.enable_grad():
                outputs = self.net(x)
        finally:
            self.close_hooks()
            for p, f in zip(params, flags, strict=True):
                p.requires_grad_(f)
        if self._leaf is None:
            raise ValueError(
                "the target layer did not run in the forward pass; check the layer name"
            )
        leaf, self._leaf = self._leaf, None
        return CAMForward(outputs, leaf)

    def close_hooks(self) -> None:
        """Remove the hooks (keeps nothing else)."""
        while self._handles:
            self._handles.pop().remove()

    def maps(
        self,
        fwd: CAMForward,
        targets: Sequence[Sequence[Target]],
        out_size: tuple[int, int] | None = None,
    ) -> CAMResult:
        """Maps for many targets of the images of one :meth:`forward`: one batched backward.

        Args:
            fwd: the handle returned by :meth:`forward`.
            targets: per image, a list of targets (callables outputs -> (N,) score); choose
                them from ``fwd.outputs`` first when they depend on the predictions.
            out_size: (H, W) of the returned maps; ``None`` keeps the layer resolution.

        Returns:
            :class:`CAMResult` with the outputs and, per image, (T_i, H, W) maps.
        """
        if callable(targets) or isinstance(targets, torch.Tensor):
            raise TypeError(
                "targets must be a list (one per image) of lists of targets; to choose targets "
                "from the predictions, call forward(x), read .outputs, then maps(handle, targets)"
            )
        leaf, detached = fwd.leaf, fwd.outputs
        if len(targets) != leaf.shape[0]:
            raise ValueError(
                f"got target lists for {len(targets)} images but the batch has {leaf.shape[0]}"
            )
        img_idx = [i for i, ts in enumerate(targets) for _ in ts]
        if not img_idx:
            empty = [leaf.new_zeros((0, *(out_size or leaf.shape[-2:]))) for _ in targets]
            return CAMResult(
                detached, empty, [leaf.new_zeros((0, *leaf.shape[-2:])) for _ in targets]
            )
        with torch.enable_grad():
            scores = torch.stack([t(fwd.graph)[i] for i, ts in enumerate(targets) for t in ts])
            grads = _batched_grad(scores, leaf)  # (M, N, C, h, w)
        sel = torch.as_tensor(img_idx, device=leaf.device)
        g = grads[torch.arange(len(img_idx), device=leaf.device), sel]
        acts = leaf.detach()[sel]
        weights = self._weights(g, acts)
        raw = torch.relu((weights[:, :, None, None] * acts).sum(dim=1))
        maps = resize_maps(minmax_normalise(raw), out_size)
        counts = [len(ts) for ts in targets]
        return CAMResult(detached, list(maps.split(counts)), list(raw.split(counts)))

    def __call__(
        self,
        x: torch.Tensor,
        targets: Sequence[Sequence[Target]],
        out_size: tuple[int, int] | None = None,
    ) -> CAMResult:
        """:meth:`forward` then :meth:`maps`: targets known before the forward pass."""
        return self.maps(self.forward(x), targets, out_size)


def _batched_grad(scores: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    """d scores[m] / d leaf for every m in one batched backward. (M,) -> (M, *leaf.shape)."""
    eye = torch.eye(scores.numel(), dtype=scores.dtype, device=scores.device)
    try:
        (grads,) = torch.autograd.grad(
            scores, leaf, grad_outputs=eye, is_grads_batched=True, retain_graph=True
        )
        return grads
    except RuntimeError as err:  # an op without a vmap rule: same result, one row at a time
        warnings.warn(
            f"batched backward unavailable ({err}); falling back to one backward per target",
            stacklevel=2,
        )
        rows = [
            torch.autograd.grad(scores, leaf, grad_outputs=e, retain_graph=True)[0] for e in eye
        ]
        return torch.stack(rows)


def _detach(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.detach()
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_detach(o) for o in outputs)
    return outputs
