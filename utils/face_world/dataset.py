"""Worlds of identities x images for training, and a folder-per-identity pair dataset on disk.

Seeding: identity ``i`` of a world with seed ``s`` is drawn from
``SeedSequence([s, i])`` and its image ``k`` nuisance from
``SeedSequence([s, i, k])``, so an identity and its images do not depend on
how many identities or images the world has (a bigger world extends a
smaller one) and any item can be rendered on its own, in any order.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Iterator

import numpy as np
from tqdm import tqdm

from models.attributes import ATTRIBUTES
from utils.base.atomic import atomic_write_image, atomic_write_json, atomic_write_text
from utils.base.pairs import draw_pairs

from .identity import Identity, Nuisance, sample_identity, sample_nuisance
from .render import FaceSample, render


def identity_rng(seed: int, identity_id: int) -> np.random.Generator:
    """Generator of identity ``identity_id`` in the world of ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(identity_id)]))


def image_rng(seed: int, identity_id: int, image_id: int) -> np.random.Generator:
    """Generator of the nuisance of image ``image_id`` of identity ``identity_id``."""
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), int(identity_id), int(image_id)])
    )


@dataclass(frozen=True)
class WorldItem:
    """One image of a world: ``identity_id`` (0..N-1), ``image_id`` (0..K-1) and the
    :class:`FaceSample`."""

    identity_id: int
    image_id: int
    sample: FaceSample


@dataclass
class FaceWorld:
    """``len(identities)`` identities with ``images_per_identity`` nuisances each; rendered lazily.

    Item ``n`` is image ``n % K`` of identity ``n // K`` (K images per identity).
    """

    identities: list[Identity]
    nuisances: list[list[Nuisance]]
    size: int = 112
    with_masks: bool = False
    seed: int = 0

    @property
    def images_per_identity(self) -> int:
        return len(self.nuisances[0]) if self.nuisances else 0

    def __len__(self) -> int:
        return len(self.identities) * self.images_per_identity

    def __getitem__(self, n: int) -> WorldItem:
        if not -len(self) <= n < len(self):
            raise IndexError(f"item {n} out of range for a world of {len(self)} images")
        n %= len(self)
        i, k = divmod(n, self.images_per_identity)
        return WorldItem(
            i, k, render(self.identities[i], self.nuisances[i][k], self.size, self.with_masks)
        )

    def __iter__(self) -> Iterator[WorldItem]:
        return (self[n] for n in range(len(self)))

    def arrays(self, progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render everything.

        Returns:
            images ``(M, H, W, 3)`` uint8 BGR, labels ``(M, 30)`` int64, identity ids ``(M,)``
            int64.
        """
        m, s = len(self), self.size
        images = np.empty((m, s, s, 3), np.uint8)
        labels = np.empty((m, len(ATTRIBUTES)), np.int64)
        ids = np.empty(m, np.int64)
        for n in tqdm(range(m), desc="rendering", disable=not progress):
            item = self[n]
            images[n], labels[n], ids[n] = item.sample.image, item.sample.labels, item.identity_id
        return images, labels, ids


def make_world(
    num_identities: int,
    images_per_identity: int,
    seed: int = 0,
    size: int = 112,
    with_masks: bool = False,
) -> FaceWorld:
    """Sample ``num_identities`` identities with ``images_per_identity`` nuisances each (see module
    docstring).

    Returns:
        A :class:`FaceWorld`; iterate it for :class:`WorldItem` s or call ``arrays()``.
    """
    for name, v in (
        ("num_identities", num_identities),
        ("images_per_identity", images_per_identity),
    ):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    ids = [sample_identity(identity_rng(seed, i)) for i in range(num_identities)]
    nuis = [
        [sample_nuisance(image_rng(seed, i, k)) for k in range(images_per_identity)]
        for i in range(num_identities)
    ]
    return FaceWorld(ids, nuis, size, with_masks, seed)


def sample_pairs(
    num_identities: int, images_per_identity: int, num_pairs: int, seed: int
) -> list[tuple[tuple[int, int], tuple[int, int], int]]:
    """Distinct verification pairs ``((i1, k1), (i2, k2), label)``, alternating mate (1) / non-mate
    (0).

    Drawn by :func:`utils.base.pairs.draw_pairs` over the images ``(identity, image)``.

    ``ceil(num_pairs / 2)`` mates, ``floor(num_pairs / 2)`` non-mates.

    Raises:
        ValueError: more pairs of a kind than exist.
    """
    n, k = num_identities, images_per_identity
    want_mates, want_non = (num_pairs + 1) // 2, num_pairs // 2
    max_mates, max_non = n * k * (k - 1) // 2, (n * (n - 1) // 2) * k * k
    if want_mates > max_mates or want_non > max_non:
        raise ValueError(
            f"{num_pairs} pairs need {want_mates} mate / {want_non} non-mate pairs, but "
            f"{n} identities x {k} images give at most {max_mates} / {max_non}; "
            "raise --num-identities / --images-per-identity or lower --pairs"
        )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9A125]))
    groups = [[(i, j) for j in range(k)] for i in range(n)]
    genuine, impostor = draw_pairs(groups, want_mates, want_non, rng)
    mates = [(a, b, 1) for a, b in genuine]
    non = [(a, b, 0) for a, b in impostor]
    out = []
    for t in range(max(len(mates), len(non))):
        out += mates[t : t + 1] + non[t : t + 1]
    return out


def image_name(identity_id: int, image_id: int, ext: str = "png") -> str:
    """Relative path of an image in a written dataset: ``id_0003/0001.png``."""
    return f"id_{identity_id:04d}/{image_id:04d}.{ext}"


def write_pair_dataset(
    out: str | Path,
    num_identities: int,
    num_pairs: int,
    seed: int = 0,
    images_per_identity: int = 4,
    size: int = 112,
    ext: str = "png",
    progress: bool = True,
) -> dict[str, Path]:
    """Write a folder-per-identity image set, a pair list and the ground truth.

    Files under ``out`` (all paths inside are relative to ``out``):

    * ``id_XXXX/YYYY.<ext>``: image ``YYYY`` of identity ``XXXX``.
    * ``pairs.txt``: ``path1 path2 label`` per line, label 1 = same identity (mate), 0 = not.
    * ``labels.csv``: ``path,identity,<30 attribute names>`` (class indices, METHOD.md convention).
    * ``landmarks.csv``: ``path,x1,y1,...,x5,y5`` (left eye, right eye, nose, left/right mouth
      corner; pixels).
    * ``world.json``: the generator settings and every identity's attributes and geometry.

    Returns:
        ``{"pairs": ..., "labels": ..., "landmarks": ..., "world": ...}`` paths.
    """
    out = Path(out)
    world = make_world(num_identities, images_per_identity, seed, size)
    pairs = sample_pairs(num_identities, images_per_identity, num_pairs, seed)
    lab, lmk = io.StringIO(), io.StringIO()
    lab_w, lmk_w = csv.writer(lab, lineterminator="\n"), csv.writer(lmk, lineterminator="\n")
    lab_w.writerow(["path", "identity", *ATTRIBUTES])
    lmk_w.writerow(["path"] + [f"{a}{t}" for t in range(1, 6) for a in "xy"])
    for item in tqdm(world, total=len(world), desc="writing faces", disable=not progress):
        name = image_name(item.identity_id, item.image_id, ext)
        atomic_write_image(out / name, item.sample.image)
        lab_w.writerow([name, item.identity_id, *item.sample.labels.tolist()])
        lmk_w.writerow([name] + [f"{v:.3f}" for v in item.sample.landmarks.ravel()])
    lines = [f"{image_name(*a, ext)} {image_name(*b, ext)} {label}\n" for a, b, label in pairs]
    paths = {
        "pairs": out / "pairs.txt",
        "labels": out / "labels.csv",
        "landmarks": out / "landmarks.csv",
        "world": out / "world.json",
    }
    atomic_write_text(paths["pairs"], "".join(lines))
    atomic_write_text(paths["labels"], lab.getvalue())
    atomic_write_text(paths["landmarks"], lmk.getvalue())
    atomic_write_json(
        paths["world"],
        {
            "generator": "utils.face_world",
            "seed": seed,
            "size": size,
            "num_identities": num_identities,
            "images_per_identity": images_per_identity,
            "num_pairs": len(pairs),
            "attributes": list(ATTRIBUTES),
            "identities": [asdict(i) for i in world.identities],
        },
    )
    return paths
