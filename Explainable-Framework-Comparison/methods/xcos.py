"""xCos (Lin, Liu, Chen, Hsu, "xCos: An Explainable Cosine Metric for Face Verification Task", TOMM
2021).

For two images with last feature grids F1, F2 (C, h, w) of the verification
net (the layer before flatten / fc: ``bn2`` of an iresnet, 8 x 8 for the
64 px face-world verification net, whose last stage has stride 1; 7 x 7 at 112 px):

    patch cosine   c_ij = cos(F1[:, i, j], F2[:, i, j])
    attention      a = softmax_ij(head(F1, F2))      (sums to 1 over the grid)
    xCos           = sum_ij a_ij c_ij

The attention head is trained with the verification net frozen so that xCos
regresses the net's own cosine of the whole embeddings (``train_xcos.py``).
Differences from the paper, where the backbone, a 1x1 "patch feature" conv
and the attention are trained jointly with an ArcFace loss plus the xCos
regression loss: here only the attention is trained and the patch cosines
use the frozen grid itself, so the map explains the given network.

Saliency of the probe (``XCos``): the pair's contribution map a * c upsampled
to the probe's size; with a non-mate, the contrast
a(p, m) c(p, m) - a(p, n) c(p, n) (patches that match the mate more than the
non-mate), min-max normalised.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.loading import check_finite_state

from .base import ComparisonNets, Explainer, batched_forward, device_of
from .registry import register_method


class XCosAttention(nn.Module):
    """Attention head: two (N, C, h, w) grids -> (N, h, w) weights summing to 1 (symmetric in the
    pair).

    Args:
        in_channels: C of the grid.
        hidden: width of the hidden conv.
        grid_layer: dotted name of the verification-net layer whose output is the grid.
    """

    def __init__(self, in_channels: int, hidden: int = 64, grid_layer: str = "bn2") -> None:
        super().__init__()
        self.in_channels, self.hidden, self.grid_layer = (
            int(in_channels),
            int(hidden),
            str(grid_layer),
        )
        self.body = (
            nn.Sequential(  # 1x1 reduction, one 3x3 conv for context, 1x1 to one logit per patch
                nn.BatchNorm2d(2 * in_channels),
                nn.Conv2d(2 * in_channels, hidden, 1),
                nn.PReLU(hidden),
                nn.Conv2d(hidden, hidden, 3, padding=1),
                nn.PReLU(hidden),
                nn.Conv2d(hidden, 1, 1),
            )
        )

    def forward(self, g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        if g1.shape != g2.shape or g1.ndim != 4 or g1.shape[1] != self.in_channels:
            raise ValueError(
                f"grids must be equal (N, {self.in_channels}, h, w) tensors, got {tuple(g1.shape)} "
                f"and {tuple(g2.shape)}; was the head trained for another network?"
            )
        logits = (self.body(torch.cat([g1, g2], 1)) + self.body(torch.cat([g2, g1], 1)))[:, 0] / 2
        n, h, w = logits.shape
        return torch.softmax(logits.reshape(n, h * w), dim=1).reshape(n, h, w)


def xcos(
    g1: torch.Tensor, g2: torch.Tensor, head: XCosAttention
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """xCos of grid pairs. (N, C, h, w) x 2 -> xCos (N,), patch cosines (N, h, w), attention (N,
    h, w)."""
    patch = F.cosine_similarity(g1, g2, dim=1, eps=1e-8)
    att = head(g1, g2)
    return (att * patch).sum(dim=(1, 2)), patch, att


def embed_with_grid(
    V: nn.Module, x: torch.Tensor, grid_layer: str, batch_size: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings (N, D) and feature grids (N, C, h, w) of preprocessed inputs (no autograd, CPU
    out)."""
    layer = V.get_submodule(grid_layer)
    grabbed: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: grabbed.append(o.detach().float().cpu()))
    try:
        emb = batched_forward(V, x, batch_size)
    finally:
        handle.remove()
    n_batches = -(-x.shape[0] // batch_size)
    if len(grabbed) != n_batches:
        raise ValueError(
            f"layer {grid_layer!r} ran {len(grabbed)} times in {n_batches} forwards; "
            "pick a layer used once"
        )
    return emb, torch.cat(grabbed)


def save_head(head: XCosAttention, path: str | Path, extra: dict | None = None) -> None:
    """Save the head's weights and architecture (loadable with
    ``torch.load(weights_only=True)``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    blob = {
        "state_dict": head.state_dict(),
        "in_channels": head.in_channels,
        "hidden": head.hidden,
        "grid_layer": head.grid_layer,
        **(extra or {}),
    }
    torch.save(blob, tmp)
    tmp.replace(path)


def load_head(path: str | Path, device: torch.device | str | None = None) -> XCosAttention:
    """Load a head saved by :func:`save_head` (safe loader), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"xCos attention weights not found at {path}; train them with "
            "Explainable-Framework-Comparison/train_xcos.py or pass --xcos-weights"
        )
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise ValueError(
            f"{path} is not an xCos head file (expected a dict with 'state_dict'); re-run "
            "train_xcos.py"
        )
    check_finite_state(blob["state_dict"], path)
    head = XCosAttention(blob["in_channels"], blob["hidden"], blob["grid_layer"])
    head.load_state_dict(blob["state_dict"])
    return head.to(device or "cpu").eval()


@register_method("xCos")
class XCos(Explainer):
    """xCos contribution map (attention x patch cosine); contrastive with the non-mate if
    ``contrastive``."""

    needs = ("mate",)
    nets_needed = ("verification", "xcos_head")

    def __init__(self, contrastive: bool = True) -> None:
        self.contrastive = bool(contrastive)

    def _explain(self, probe, mate, nonmate, nets: ComparisonNets):
        V, head = nets.verification, nets.xcos_head
        use_non = self.contrastive and nonmate is not None
        images = [probe, mate] + ([nonmate] if use_non else [])
        _, grids = embed_with_grid(V, V.preprocess(images), head.grid_layer)
        grids = grids.to(device_of(head))
        with torch.inference_mode():
            others = grids[1:]
            score, patch, att = xcos(grids[:1].expand_as(others), others, head)
        contrib = (att * patch).cpu()
        sal = contrib[0] - contrib[1] if use_non else contrib[0]
        info = {"xcos_mate": float(score[0])}
        if use_non:
            info["xcos_nonmate"] = float(score[1])
        return sal, info
