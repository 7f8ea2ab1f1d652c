"""Galleries of real photos for ``<embedding-net>-gallery`` classifiers (:mod:`models.gallery`).

A gallery is a folder with one sub-folder of photos per identity (the
sub-folder's name is the identity), or a list of ``(path, identity)`` items.
Each photo is read (:func:`utils.faces.image_io.read_image`), aligned to the
network's template (:func:`utils.faces.templates.align_for`) and embedded; an
identity's mean is the mean of its L2-normalised embeddings. A photo that
cannot be read or has no face is left out and listed in
``Gallery.failures``; the build goes on.

Cache: ``cache=PATH.npz`` keeps one embedding per (file SHA-256, template,
alignment method), so a rerun embeds only new or changed photos. The file also
records the network's fingerprint (SHA-256 of its weights); a cache written by
other weights is ignored and rewritten. Writes are atomic.

Example:
    >>> net = get_gallery_network("SFace-gallery", "../shared/data/real_faces")  # doctest: +SKIP
    >>> net.num_classes, net.identities[:2]                                       # doctest: +SKIP
    (28, ('deepface_01', 'deepface_02'))
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.gallery import (
    DEFAULT_LOGIT_SCALE,
    Gallery,
    GalleryClassifier,
    embed_aligned,
    gallery_base,
)
from models.registry import get_network
from utils.base.atomic import atomic_write_bytes
from utils.faces.canvas import AlignmentError, CanvasAligner
from utils.faces.image_io import ImageReadError, read_image
from utils.faces.pairlists import identities_from_folders
from utils.faces.templates import FaceNotFoundError, align_for

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def gallery_items(
    source: str | os.PathLike | Iterable[tuple[str | os.PathLike, str]],
) -> list[tuple[str, str]]:
    """``(path, identity)`` items of a folder per identity, or of the given items (paths as str)."""
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        found = identities_from_folders(root)
        if not found:
            raise ValueError(
                f"gallery folder {root} has no sub-folder with images; expected one sub-folder of "
                "photos per identity"
            )
        return [(str(root / rel), ident) for ident, rels in found.items() for rel in rels]
    items = [(str(p), str(i)) for p, i in source]
    if not items:
        raise ValueError("the gallery has no items")
    return items


def network_fingerprint(net: nn.Module) -> str:
    """SHA-256 of the network's name and tensors (names, shapes, bytes)."""
    digest = hashlib.sha256(str(getattr(net, "network_name", type(net).__name__)).encode())
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class EmbeddedPhotos:
    """Per-photo embeddings of a gallery.

    Attributes:
        paths: photos that were embedded.
        identities: their identities.
        embeddings: (N, D) float32 raw embeddings.
        methods: the alignment method of each photo (``AlignInfo.method``).
        fallbacks: whether ``"auto"`` fell back from the template's own landmarker.
        failures: (path, reason) of photos left out.
    """

    paths: list[str] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)
    embeddings: np.ndarray | None = None
    methods: list[str] = field(default_factory=list)
    fallbacks: list[bool] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


class _Cache:
    """Embeddings by key in an ``.npz`` (keys, embeddings, methods, fallbacks, fingerprint)."""

    def __init__(self, path: str | os.PathLike | None, fingerprint: str) -> None:
        self.path = Path(path) if path is not None else None
        self.fingerprint = fingerprint
        self.entries: dict[str, tuple[np.ndarray, str, bool]] = {}
        self.dirty = False
        if self.path is None or not self.path.is_file():
            return
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if int(z["version"]) != CACHE_VERSION or str(z["fingerprint"]) != fingerprint:
                    log.info(
                        "gallery cache %s was written by other weights or version; rebuilding",
                        self.path,
                    )
                    return
                for key, emb, method, fb in zip(
                    z["keys"], z["embeddings"], z["methods"], z["fallbacks"], strict=True
                ):
                    self.entries[str(key)] = (emb.astype(np.float32), str(method), bool(fb))
        except (OSError, KeyError, ValueError) as err:
            log.warning(
                "ignoring unreadable gallery cache %s (%s); it will be rewritten", self.path, err
            )
            self.entries = {}

    def add(self, key: str, emb: np.ndarray, method: str, fallback: bool) -> None:
        self.entries[key] = (emb, method, fallback)
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty or not self.entries:
            return
        keys = sorted(self.entries)
        buf = io.BytesIO()
        np.savez(
            buf,
            version=CACHE_VERSION,
            fingerprint=self.fingerprint,
            keys=np.array(keys),
            embeddings=np.stack([self.entries[k][0] for k in keys]),
            methods=np.array([self.entries[k][1] for k in keys]),
            fallbacks=np.array([self.entries[k][2] for k in keys]),
        )
        atomic_write_bytes(self.path, buf.getvalue())


def embed_photos(
    net: nn.Module,
    items: Iterable[tuple[str, str]],
    *,
    align: str | CanvasAligner = "auto",
    cache: str | os.PathLike | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> EmbeddedPhotos:
    """Read, align (to ``net.alignment``) and embed photos; failures are recorded, not raised.

    Args:
        net: an embedding net (``preprocess``; ``alignment`` ``None`` = use photos as they are).
        items: ``(path, identity)`` pairs.
        align: alignment method for :func:`align_for`, or the run's
            :class:`utils.faces.canvas.CanvasAligner` (the gallery photos then become exactly the
            canvases the run explains: same ``--align``, landmarks and "already aligned" rule).
        cache: ``.npz`` embedding cache (module docstring), or ``None``.
        batch_size: photos per forward.
        progress: show a tqdm bar.

    Returns:
        :class:`EmbeddedPhotos` in item order (failures left out).
    """
    template = getattr(net, "alignment", None)
    align_key = align.cache_key if isinstance(align, CanvasAligner) else align
    store = _Cache(cache, network_fingerprint(net))
    out = EmbeddedPhotos()
    rows: list[
        tuple[str, str, str, np.ndarray | None, str, bool]
    ] = []  # path, ident, key, emb, method, fallback
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        embs = embed_aligned(net, [img for _, img in pending], batch_size)
        for (row, _), emb in zip(pending, embs, strict=True):
            path, ident, key, _, method, fb = rows[row]
            rows[row] = (path, ident, key, emb, method, fb)
            store.add(key, emb, method, fb)
        pending.clear()

    for path, ident in tqdm(list(items), desc="gallery", unit="img", disable=not progress):
        try:
            key = f"{hashlib.sha256(Path(path).read_bytes()).hexdigest()}|{template}|{align_key}"
        except OSError as err:
            out.failures.append((path, f"cannot read the file: {err}"))
            continue
        if key in store.entries:
            emb, method, fb = store.entries[key]
            rows.append((path, ident, key, emb, method, fb))
            continue
        try:
            aligned, method, fb = _read_aligned(path, template, align)
        except (ImageReadError, FaceNotFoundError, AlignmentError) as err:
            out.failures.append((path, str(err)))
            continue
        rows.append((path, ident, key, None, method, fb))
        pending.append((len(rows) - 1, aligned))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    store.save()
    for path, ident, _, _, method, fb in rows:
        out.paths.append(path)
        out.identities.append(ident)
        out.methods.append(method)
        out.fallbacks.append(fb)
    size = getattr(net, "embedding_size", 0)
    out.embeddings = (
        np.stack([r[3] for r in rows]).astype(np.float32)
        if rows
        else np.zeros((0, size), np.float32)
    )
    for path, reason in out.failures:
        log.warning("gallery photo left out: %s: %s", path, reason)
    return out


def _read_aligned(
    path: str, template: str | None, align: str | CanvasAligner
) -> tuple[np.ndarray, str, bool]:
    """(aligned image, alignment method, fallback) of one gallery photo."""
    if isinstance(align, CanvasAligner):
        canvas = align.read(path)
        return canvas.image, canvas.method, canvas.fallback
    image = read_image(path)
    if template is None:
        return image, "as-read", False
    aligned, info = align_for(image, template, align)
    return aligned, info.method, info.fallback


def build_gallery(
    net: nn.Module,
    source,
    *,
    align: str | CanvasAligner = "auto",
    cache: str | os.PathLike | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> Gallery:
    """The :class:`models.gallery.Gallery` under ``net`` of a folder per identity, or of items."""
    return _build(net, source, align, cache, batch_size, progress)[0]


def _build(net, source, align, cache, batch_size, progress) -> tuple[Gallery, EmbeddedPhotos]:
    photos = embed_photos(
        net,
        gallery_items(source),
        align=align,
        cache=cache,
        batch_size=batch_size,
        progress=progress,
    )
    if not photos.paths:
        raise ValueError(
            f"no gallery photo could be used ({len(photos.failures)} failed, first: "
            f"{photos.failures[:1]})"
        )
    name = getattr(net, "network_name", type(net).__name__)
    gallery = Gallery.from_embeddings(photos.embeddings, photos.identities, name, photos.failures)
    return gallery, photos


def get_gallery_network(
    name: str,
    source,
    *,
    weights=None,
    device: str | torch.device | None = None,
    align: str | CanvasAligner = "auto",
    cache: str | os.PathLike | None = None,
    logit_scale: float = DEFAULT_LOGIT_SCALE,
    batch_size: int = 32,
    progress: bool = True,
) -> GalleryClassifier:
    """``<embedding-net>-gallery`` built from a gallery folder or items (embedding net loaded once).

    Args:
        name: e.g. ``"SFace-gallery"``.
        source: folder per identity, or ``(path, identity)`` items.
        weights, device: as :func:`models.get_network` for the embedding net.
        align, cache, batch_size, progress: as :func:`embed_photos`.
        logit_scale: s of ``logits = s * cos`` (:mod:`models.gallery`).

    The returned net keeps its photos' embeddings as ``net.photos`` (:class:`EmbeddedPhotos`),
    for :class:`LeaveOut`.
    """
    base = gallery_base(name)
    emb = get_network(base, weights=weights, device=device)
    gallery, photos = _build(emb, source, align, cache, batch_size, progress)
    net = GalleryClassifier(emb, gallery, logit_scale)
    net.photos = photos
    net.network_name = name
    return net.to(torch.device("cpu" if device is None else device)).eval()


class LeaveOut:
    """Class means of a gallery classifier without some of its photos, for a while.

    ``with LeaveOut(net).excluding([path1, path2]): ...`` sets ``net.class_means`` to the
    normalised means of each identity's L2-normalised embeddings without those photos (paths
    compared after ``os.path.realpath``), and restores them afterwards. An identity left without
    photos gets a zero mean: its logit is 0. Paths not in the gallery change nothing.

    Why leave a pair out: with a photo itself in its identity's mean, ``cos(e, m)`` has the
    same gradient direction in ``e`` as without it (the component along ``e`` is projected
    out), so the photo's own maps do not change; but the OTHER photo of the pair sits in the
    mean of its identity, whose Grad-CAM map on this photo is H_t (genuine pair) or H_f
    (impostor pair), and the class sets are chosen by logits of means that contain the probes.

    Args:
        net: a :class:`GalleryClassifier` from :func:`get_gallery_network` (it has ``photos``).
    """

    def __init__(self, net: GalleryClassifier) -> None:
        photos = getattr(net, "photos", None)
        if photos is None:
            raise ValueError(
                "the gallery classifier does not keep its photos' embeddings; build it with "
                "utils.faces.gallery.get_gallery_network"
            )
        self.net = net
        self.rows = {os.path.realpath(p): k for k, p in enumerate(photos.paths)}
        emb = torch.nn.functional.normalize(torch.as_tensor(photos.embeddings).double(), dim=1)
        self.emb = emb.numpy()
        names = list(net.identities)
        self.label = np.array([names.index(i) for i in photos.identities])
        self.sums = np.zeros((len(names), self.emb.shape[1]))
        np.add.at(self.sums, self.label, self.emb)

    def means_without(self, paths: Iterable[str | os.PathLike]) -> torch.Tensor | None:
        """(C, D) normalised class means without ``paths`` (``None``: none of them is a photo)."""
        rows = sorted({self.rows[r] for r in map(os.path.realpath, paths) if r in self.rows})
        if not rows:
            return None
        sums = self.sums.copy()
        np.add.at(sums, self.label[rows], -self.emb[rows])
        counts = np.bincount(self.label, minlength=len(sums)) - np.bincount(
            self.label[rows], minlength=len(sums)
        )
        sums[counts == 0] = 0.0  # no photo left: zero mean, logit 0
        return torch.nn.functional.normalize(torch.from_numpy(sums), dim=1)

    @contextlib.contextmanager
    def excluding(self, paths: Iterable[str | os.PathLike]) -> Iterator[None]:
        means = self.means_without(paths)
        if means is None:
            yield
            return
        old = self.net.class_means.clone()
        self.net.class_means.copy_(means.to(old))
        try:
            yield
        finally:
            self.net.class_means.copy_(old)


def leave_one_out_top1(embeddings: np.ndarray, labels: list[str]) -> tuple[int, int, list[str]]:
    """Leave-one-out identification with identity means.

    Every photo of an identity with at least two photos is classified by the
    cosine between its embedding and each identity's mean (its own identity's
    mean computed without it).

    Args:
        embeddings: (N, D) raw embeddings.
        labels: N identities.

    Returns:
        (correct, evaluated, predicted identity per evaluated photo).
    """
    emb = torch.nn.functional.normalize(
        torch.as_tensor(np.asarray(embeddings, np.float32)), dim=1
    ).numpy()
    labels_arr = np.asarray(labels)
    names = sorted(set(labels))
    sums = np.stack([emb[labels_arr == n].sum(axis=0) for n in names])
    counts = np.array([(labels_arr == n).sum() for n in names])
    correct, evaluated, predicted = 0, 0, []
    for i, lab in enumerate(labels):
        c = names.index(lab)
        if counts[c] < 2:
            continue
        means = sums.copy()
        means[c] = (sums[c] - emb[i]) / (counts[c] - 1)
        means[np.arange(len(names)) != c] /= counts[np.arange(len(names)) != c, None]
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        guess = names[int(np.argmax(means @ emb[i]))]
        predicted.append(guess)
        correct += guess == lab
        evaluated += 1
    return correct, evaluated, predicted
