"""An identity classifier for real photos: an embedding net plus one mean embedding per identity.

``<embedding-net>-gallery`` (kind ``"classifier"``) wraps an embedding net E
(``dlib-ResNet29``, ``SFace``) and a :class:`Gallery` of C identities:

    logits_c = s * cos(E(x), m_c),   m_c = mean of the L2-normalised embeddings of identity c,

so Sim2Word's recognition-net maps H_t / H_f are Grad-CAM maps of a real
network's evidence for a real identity (BRIEF interface 3). The Grad-CAM
target layer is E's (``embedding.<E.target_layer>``); preprocessing and the
alignment template are E's.

**The scale s** (``logit_scale``, default :data:`DEFAULT_LOGIT_SCALE` = 64):
Grad-CAM maps and top-k class sets do not depend on s (the gradient of
``s * cos`` is s times that of ``cos``, and every map is min-max normalised),
but the softmax of the threshold strategy (``Multi_identity_thresh.py``, the
smallest class set whose softmax mass exceeds t) does: at s = 1 the softmax of
28 cosines in [-1, 1] is almost uniform and every class set would hold most of
the gallery. s = 64 is the scale hypersphere face embeddings such as ArcFace
(Deng et al. 2019) are trained with, so ``softmax(64 cos)`` has the form of
their training-time posterior. Grad-CAM++ is not exactly scale-invariant
either (its weights mix powers of the gradient).

How a gallery is made: :func:`utils.faces.gallery.build_gallery` (reads,
aligns and embeds a folder per identity, with a cache), or
:meth:`Gallery.from_embeddings`. Then ``get_network("SFace-gallery",
gallery=gallery)``; :func:`utils.faces.gallery.get_gallery_network` does both
(loading the embedding net once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.registry import build_network, get_network, get_spec, register_network

DEFAULT_LOGIT_SCALE = 64.0
GALLERY_SUFFIX = "-gallery"


@dataclass(frozen=True)
class Gallery:
    """Identity means of one embedding network.

    Attributes:
        identities: C identity names (class c is ``identities[c]``).
        means: (C, D) float32, row c = mean of identity c's L2-normalised embeddings.
        counts: images per identity.
        network: the embedding net's registered name.
        failures: (item, reason) for gallery images that could not be used.
    """

    identities: tuple[str, ...]
    means: np.ndarray
    counts: tuple[int, ...]
    network: str
    failures: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        means = np.asarray(self.means, dtype=np.float32)
        if (
            means.ndim != 2
            or means.shape[0] != len(self.identities)
            or len(self.counts) != len(self.identities)
        ):
            raise ValueError(
                f"gallery of {len(self.identities)} identities needs means of shape (C, D) and C "
                f"counts, got {means.shape} and {len(self.counts)}"
            )
        if not len(self.identities):
            raise ValueError("a gallery needs at least one identity with at least one usable image")
        if not np.isfinite(means).all():
            raise ValueError("gallery means contain NaN or infinity")
        object.__setattr__(self, "means", means)

    @classmethod
    def from_embeddings(
        cls,
        embeddings: np.ndarray | torch.Tensor,
        labels: Sequence[str],
        network: str,
        failures: Sequence[tuple[str, str]] = (),
    ) -> Gallery:
        """Identity means of per-image embeddings.

        Args:
            embeddings: (N, D) raw embeddings.
            labels: N identity names (identities are sorted by name).
            network: the embedding net's registered name.
            failures: passed through.
        """
        emb = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        if emb.ndim != 2 or emb.shape[0] != len(labels):
            raise ValueError(f"{len(labels)} labels for embeddings of shape {tuple(emb.shape)}")
        emb = F.normalize(emb, dim=1).numpy()
        names = tuple(sorted(set(labels)))
        labels_arr = np.asarray(labels)
        means = (
            np.stack([emb[labels_arr == n].mean(axis=0) for n in names])
            if names
            else np.zeros((0, 1))
        )
        counts = tuple(int((labels_arr == n).sum()) for n in names)
        return cls(names, means, counts, network, tuple(failures))


class GalleryClassifier(nn.Module):
    """``logits = s * cos(embedding(x), mean_c)``. (N, 3, H, W) -> (N, C) in [-s, s].

    Args:
        embedding: the embedding net (its ``preprocess``, ``alignment`` and ``target_layer`` are
            reused).
        gallery: the identity means.
        logit_scale: s (see the module docstring).
    """

    kind = "classifier"

    def __init__(
        self, embedding: nn.Module, gallery: Gallery, logit_scale: float = DEFAULT_LOGIT_SCALE
    ) -> None:
        super().__init__()
        if not logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0, got {logit_scale}")
        size = getattr(embedding, "embedding_size", gallery.means.shape[1])
        if gallery.means.shape[1] != size:
            raise ValueError(
                f"gallery means have {gallery.means.shape[1]} dimensions, the embedding net "
                f"{size}: the gallery was built with another network ({gallery.network!r})"
            )
        self.embedding = embedding
        self.register_buffer(
            "class_means", F.normalize(torch.from_numpy(gallery.means.copy()), dim=1)
        )
        self.identities = gallery.identities
        self.gallery = gallery
        self.num_classes = len(gallery.identities)
        self.logit_scale = float(logit_scale)
        self.preprocess = embedding.preprocess
        self.alignment = getattr(embedding, "alignment", None)
        self.embedding_size = size
        self.target_layer = f"embedding.{embedding.target_layer}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = F.normalize(self.embedding(x), dim=1)
        return self.logit_scale * F.linear(emb, self.class_means.to(emb.dtype))


@torch.inference_mode()
def embed_aligned(net: nn.Module, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
    """Raw embeddings of already aligned BGR uint8 images, ``batch_size`` per forward, in eval mode.

    Returns:
        (N, D) float32 array.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = net.training
    net.eval()
    try:
        out = [
            net(net.preprocess(list(images[i : i + batch_size])).to(device)).float().cpu()
            for i in range(0, len(images), batch_size)
        ]
    finally:
        net.train(was_training)
    size = getattr(net, "embedding_size", 0)
    return torch.cat(out).numpy() if out else np.zeros((0, size), np.float32)


def _gallery_entry(base: str):
    def entry(
        num_classes: int = 1, logit_scale: float = DEFAULT_LOGIT_SCALE, **overrides
    ) -> GalleryClassifier:
        """A random-weight shell (for shapes); real ones: ``get_network(..., gallery=)``."""
        emb = build_network(base, **overrides)
        size = emb.embedding_size
        empty = Gallery(
            tuple(f"class{i}" for i in range(num_classes)),
            np.ones((num_classes, size), np.float32),
            (1,) * num_classes,
            base,
        )
        return GalleryClassifier(emb, empty, logit_scale)

    def factory(
        weights=None,
        device=None,
        gallery: Gallery | None = None,
        logit_scale: float = DEFAULT_LOGIT_SCALE,
        **overrides,
    ) -> GalleryClassifier:
        name = f"{base}{GALLERY_SUFFIX}"
        if gallery is None:
            raise ValueError(
                f"{name} needs its gallery of identities: get_network('{name}', "
                "gallery=utils.faces.gallery.build_gallery(net, DIR)), or "
                f"utils.faces.gallery.get_gallery_network('{name}', DIR) "
                "(scripts: --gallery DIR, one sub-folder of photos per identity)"
            )
        if not isinstance(gallery, Gallery):
            raise TypeError(
                f"gallery must be a models.gallery.Gallery, got {type(gallery).__name__}; "
                "build one from a folder with utils.faces.gallery.build_gallery"
            )
        if gallery.network != base:
            raise ValueError(
                f"the gallery was embedded with {gallery.network!r}, not {base!r}: its means are "
                "in another embedding space; rebuild it with this network"
            )
        emb = get_network(base, weights=weights, device=device, **overrides)
        net = GalleryClassifier(emb, gallery, logit_scale)
        net.network_name = name
        return net.to(torch.device("cpu" if device is None else device)).eval()

    return entry, factory


def register_gallery_network(base: str) -> str:
    """Register ``<base>-gallery`` for a registered embedding net; returns the new name."""
    name = f"{base}{GALLERY_SUFFIX}"
    entry, factory = _gallery_entry(base)
    entry.__name__ = entry.__qualname__ = name.replace("-", "_").lower()
    register_network(name, factory=factory)(entry)
    return name


def gallery_base(name: str) -> str:
    """The embedding net of a ``<base>-gallery`` name (``ValueError`` for other names)."""
    if not name.endswith(GALLERY_SUFFIX) or get_spec(name).factory is None:
        raise ValueError(
            f"{name!r} is not a gallery classifier (names end with {GALLERY_SUFFIX!r})"
        )
    return name[: -len(GALLERY_SUFFIX)]


for _base in ("dlib-ResNet29", "SFace"):
    register_gallery_network(_base)
