"""The interface shared by every compared explanation method, and its helpers.

Every method is a small :class:`Explainer` subclass registered by name
(:func:`methods.register_method`). It answers one question for a triplet of
BGR uint8 images (probe, mate, non-mate): *which pixels of the probe make it
match the mate rather than the non-mate?* Methods that explain a single pair
ignore the non-mate (generic similarity maps) or the mate (Sim2Word explains
the probe against its counter image, the non-mate).

``explain(probe, mate, nonmate, nets) -> (H, W) float32 in [0, 1]`` at the
probe's raw size (H, W = ``probe.shape[:2]``): maps computed at a network's
input size are resized bilinearly and min-max normalised (a constant map
becomes all zeros, never NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.base.inference import batched_forward, device_of
from utils.explain.cam import minmax_normalise

__all__ = [
    "ComparisonNets",
    "CosineTarget",
    "Explainer",
    "Explanation",
    "batched_forward",
    "device_of",
    "finish_map",
    "gaussian_smooth",
    "rise_masks",
]


@dataclass
class ComparisonNets:
    """The networks the methods may use.

    Attributes:
        verification: V, an embedding net (``net.preprocess``, output (N, D)).
        recognition: R (Sim2Word only).
        attribute: A (Sim2Word only).
        xcos_head: trained :class:`methods.xcos.XCosAttention` (xCos only).
    """

    verification: nn.Module
    recognition: nn.Module | None = None
    attribute: nn.Module | None = None
    xcos_head: nn.Module | None = None


@dataclass
class Explanation:
    """A map and what the method wants to say about it.

    Attributes:
        saliency: (H, W) float32 in [0, 1] at the probe's raw size.
        info: method-specific extras (e.g. Sim2Word's word), JSON-able.
    """

    saliency: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class Explainer:
    """Base class: subclasses implement :meth:`_explain` and set ``needs``.

    Attributes:
        name: registered name (set by the registry).
        needs: which of ``"mate"``, ``"nonmate"`` must be given.
        nets_needed: which fields of :class:`ComparisonNets` must be set.
    """

    name = "base"
    needs: tuple[str, ...] = ()
    nets_needed: tuple[str, ...] = ("verification",)

    def explain(
        self,
        probe: np.ndarray,
        mate: np.ndarray | None,
        nonmate: np.ndarray | None,
        nets: ComparisonNets,
    ) -> np.ndarray:
        """(H, W) float32 map in [0, 1] at the probe's size. See :meth:`explain_full`."""
        return self.explain_full(probe, mate, nonmate, nets).saliency

    def explain_full(
        self,
        probe: np.ndarray,
        mate: np.ndarray | None,
        nonmate: np.ndarray | None,
        nets: ComparisonNets,
    ) -> Explanation:
        """Validate inputs, run the method, resize and normalise its map."""
        given = {"mate": mate, "nonmate": nonmate}
        for role in self.needs:
            if given[role] is None:
                raise ValueError(
                    f"method {self.name!r} needs a {role} image; pass one (BGR uint8 (H, W, 3))"
                )
        for role in self.nets_needed:
            if getattr(nets, role, None) is None:
                raise ValueError(
                    f"method {self.name!r} needs nets.{role}; load it (see compare.py --help)"
                )
        for role, img in (("probe", probe), *given.items()):
            if img is not None and (
                not isinstance(img, np.ndarray)
                or img.ndim != 3
                or img.shape[2] != 3
                or img.dtype != np.uint8
            ):
                raise ValueError(
                    f"{role} must be an (H, W, 3) BGR uint8 array, got "
                    f"{getattr(img, 'shape', type(img))} {getattr(img, 'dtype', '')}"
                )
        raw, info = self._explain(probe, mate, nonmate, nets)
        return Explanation(finish_map(raw, probe.shape[:2]), info)

    def _explain(
        self,
        probe: np.ndarray,
        mate: np.ndarray | None,
        nonmate: np.ndarray | None,
        nets: ComparisonNets,
    ) -> tuple[torch.Tensor | np.ndarray, dict[str, Any]]:
        """Return an (h, w) map at any resolution (any real values) and an info dict."""
        raise NotImplementedError


def finish_map(raw: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) map -> bilinear resize (align_corners=False) to ``size`` -> min-max [0, 1] float32
    (H, W)."""
    t = torch.as_tensor(
        np.asarray(raw.detach().cpu() if isinstance(raw, torch.Tensor) else raw),
        dtype=torch.float32,
    )
    if t.ndim != 2:
        raise ValueError(f"a method returned a map of shape {tuple(t.shape)}; expected (h, w)")
    t = torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)
    if tuple(t.shape) != tuple(size):
        t = F.interpolate(
            t[None, None], size=tuple(int(s) for s in size), mode="bilinear", align_corners=False
        )[0, 0]
    return minmax_normalise(t[None])[0].numpy().astype(np.float32)


class CosineTarget:
    """Explanation target: cosine of the output embedding to a fixed reference (a small callable).

    Args:
        reference: (D,) embedding (stored detached).
        minus: optional (D,) embedding whose cosine is subtracted (contrastive target).

    ``__call__``: (N, D) or (D,) embeddings -> (N,) or () scores, on the output's device/dtype.
    """

    def __init__(self, reference: torch.Tensor, minus: torch.Tensor | None = None) -> None:
        self.reference = reference.detach().flatten()
        self.minus = None if minus is None else minus.detach().flatten()

    def _cos(self, out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        ref = F.normalize(ref.to(device=out.device, dtype=out.dtype), dim=0)
        return F.normalize(out, dim=-1) @ ref

    def __call__(self, outputs: torch.Tensor) -> torch.Tensor:
        score = self._cos(outputs, self.reference)
        return score if self.minus is None else score - self._cos(outputs, self.minus)


def rise_masks(
    n: int, size: tuple[int, int], grid: int, p_keep: float, rng: np.random.Generator
) -> torch.Tensor:
    """RISE masks (Petsiuk et al. 2018, Sec. 3.2): random ``grid x grid`` binary cells (1 with prob.
    ``p_keep``), bilinearly upsampled to ``(grid + 1) * cell`` and randomly shifted by up to one
    cell.

    Returns:
        (n, H, W) float32 in [0, 1] (1 = keep the pixel).
    """
    if n < 1 or grid < 1 or not 0.0 < p_keep < 1.0:
        raise ValueError(
            f"need n >= 1, grid >= 1 and 0 < p_keep < 1, got n={n}, grid={grid}, p_keep={p_keep}"
        )
    h, w = size
    ch, cw = int(np.ceil(h / grid)), int(np.ceil(w / grid))
    cells = (rng.random((n, grid, grid)) < p_keep).astype(np.float32)
    big = np.empty((n, (grid + 1) * ch, (grid + 1) * cw), dtype=np.float32)
    for i in range(n):
        big[i] = cv2.resize(
            cells[i], ((grid + 1) * cw, (grid + 1) * ch), interpolation=cv2.INTER_LINEAR
        )
    dy, dx = rng.integers(0, ch, n), rng.integers(0, cw, n)
    out = np.stack([big[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    return torch.from_numpy(np.clip(out, 0.0, 1.0))


def gaussian_smooth(m: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a (h, w) float map (``sigma`` in pixels; 0 = unchanged)."""
    if sigma <= 0:
        return m
    return cv2.GaussianBlur(
        m.astype(np.float32), (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT
    )
