"""Verification pair lists: seeded genuine/impostor pairs from identity labels.

The counterpart of the authors' ``Verification/generate_verification_list.py``.
Identities come from a folder-per-identity dataset (VGGFace2 layout,
``root/<identity>/<image>``) or from CelebA's ``identity_CelebA.txt``
(``000001.jpg 2880`` per line). Pairs are drawn uniformly at random without
replacement from all genuine pairs (two different images of one identity) and
all impostor pairs (images of two different identities); an unordered pair is
counted once and written with its two paths in sorted order. The output is
``path1 path2 label`` per line (1 genuine, 0 impostor), paths relative to the
image root, in the format :mod:`utils.faces.data` reads (paths with spaces quoted).

Determinism: the same identities, counts and seed give the same list,
whatever order files were listed in (identities and paths are sorted first).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from utils.base.atomic import atomic_write_text
from utils.base.pairs import draw_pairs, pair_counts
from utils.base.safefile import read_capped

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".bmp",
    ".tif",
    ".tiff",
    ".gif",
    ".ppm",
    ".pgm",
)

Pair = tuple[str, str, int]


class PairCountError(ValueError):
    """More pairs were requested than the identities allow."""


def identities_from_folders(
    root: str | os.PathLike, extensions: tuple[str, ...] = IMAGE_EXTENSIONS
) -> dict[str, list[str]]:
    """Identities of a folder-per-identity dataset.

    Args:
        root: dataset root; each immediate sub-folder is one identity, and the
            image files anywhere below it (by extension, case-insensitive,
            hidden files skipped) are its images.
        extensions: file extensions that count as images.

    Returns:
        ``{identity: sorted image paths relative to root, '/'-separated}``;
        identities without images are left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"image root {str(root)!r} is not a folder; pass the dataset folder "
            "that holds one sub-folder per identity"
        )
    wanted = {e.lower() for e in extensions}
    out: dict[str, list[str]] = {}
    for ident_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(
            p.relative_to(root).as_posix()
            for p in ident_dir.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in wanted
        )
        if images:
            out[ident_dir.name] = images
    return out


def identities_from_celeba(identity_file: str | os.PathLike) -> dict[str, list[str]]:
    """Identities from CelebA's ``identity_CelebA.txt`` (``<image> <identity>`` per line).

    Returns:
        ``{identity: sorted image names}``.

    Raises:
        ValueError: a line without exactly two fields, or an image given two identities.
    """
    identity_file = Path(identity_file)
    if not identity_file.is_file():
        raise FileNotFoundError(f"identity file {str(identity_file)!r} not found")
    owner: dict[str, str] = {}
    text = read_capped(identity_file, 512 * 2**20, what="identity file").decode("utf-8-sig")
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 2:
            raise ValueError(
                f"{identity_file}:{lineno}: expected '<image> <identity>', got {line!r}"
            )
        image, ident = fields
        if owner.get(image, ident) != ident:
            raise ValueError(
                f"{identity_file}:{lineno}: {image} is labelled both {owner[image]} and {ident}"
            )
        owner[image] = ident
    out: dict[str, list[str]] = {}
    for image, ident in owner.items():
        out.setdefault(ident, []).append(image)
    return {ident: sorted(images) for ident, images in sorted(out.items())}


def max_pair_counts(identities: dict[str, list[str]]) -> tuple[int, int]:
    """``(genuine, impostor)``: how many distinct unordered pairs exist.

    genuine = sum_i C(n_i, 2); impostor = C(N, 2) - genuine with N = sum_i n_i.
    """
    return pair_counts([sorted(set(v)) for v in identities.values()])


def generate_pairs(
    identities: dict[str, list[str]], num_genuine: int, num_impostor: int, seed: int = 0
) -> list[Pair]:
    """Draw distinct genuine and impostor pairs, shuffled together.

    Args:
        identities: ``{identity: image paths}`` (from :func:`identities_from_folders`
            or :func:`identities_from_celeba`).
        num_genuine: number of label-1 pairs.
        num_impostor: number of label-0 pairs.
        seed: seed of the NumPy generator; the only source of randomness.

    Returns:
        ``[(path1, path2, label), ...]`` with ``path1 < path2``, no pair twice.

    Raises:
        PairCountError: a count is negative or more than exist (the message says the maximum).
        ValueError: an image is listed under two identities.
    """
    groups = [sorted(set(identities[k])) for k in sorted(identities)]
    seen: dict[str, str] = {}
    for ident, group in zip(sorted(identities), groups, strict=True):
        for p in group:
            if seen.setdefault(p, ident) != ident:
                raise ValueError(
                    f"image {p!r} is listed under two identities, {seen[p]!r} and {ident!r}"
                )
    max_gen, max_imp = max_pair_counts(dict(zip(sorted(identities), groups, strict=True)))
    for what, asked, most in (
        ("genuine", num_genuine, max_gen),
        ("impostor", num_impostor, max_imp),
    ):
        if asked < 0:
            raise PairCountError(f"number of {what} pairs must be >= 0, got {asked}")
        if asked > most:
            raise PairCountError(
                f"requested {asked} {what} pairs but these {len(groups)} identities "
                f"({sum(map(len, groups))} images) allow at most {most}; ask for {most} or fewer, "
                "or add images"
            )
    rng = np.random.default_rng(seed)
    genuine, impostor = draw_pairs(groups, num_genuine, num_impostor, rng)
    pairs = [(a, b, 1) for a, b in genuine] + [(a, b, 0) for a, b in impostor]
    return [pairs[k] for k in rng.permutation(len(pairs))]


def _field(path: str) -> str:
    if any(c in path for c in '"\t\r\n'):
        raise ValueError(
            f"image path {path!r} contains a quote, tab or line break, which a pair list "
            "cannot hold; rename the file"
        )
    return f'"{path}"' if (" " in path or path.startswith("#")) else path


def format_pair_line(path1: str, path2: str, label: int) -> str:
    """``path1 path2 label`` as :func:`utils.faces.data.parse_pair_lines` reads it (spaces
    quoted)."""
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    return f"{_field(path1)} {_field(path2)} {label}"


def write_pair_list(path: str | os.PathLike, pairs: list[Pair]) -> Path:
    """Write pairs atomically, one ``path1 path2 label`` line each."""
    return atomic_write_text(path, "".join(format_pair_line(*p) + "\n" for p in pairs))
