"""Contact sheets for looking at the face world: a captioned grid, and twin pairs side by side."""

from __future__ import annotations

import cv2
import numpy as np

from models.attributes import ATTRIBUTES, CLASS_WORDS

from .dataset import identity_rng, image_rng, make_world
from .identity import sample_identity, sample_nuisance
from .render import render
from .twins import random_twin, twin_of

#: Short caption word per attribute (binary: shown when present; multi-class: by class).
SHORT: dict[int, tuple[str, ...] | str] = {
    0: ("Male", "Female"),
    1: ("Young", "MidAge", "Senior"),
    2: ("Asian", "White", "Black"),
    8: ("BlackH", "BlondH", "BrownH", "GrayH", "RedH"),
    3: "Bald",
    4: "Wavy",
    5: "Recede",
    6: "Bangs",
    7: "Sideburn",
    9: "NoBeard",
    10: "Mustache",
    11: "5oClock",
    12: "Goatee",
    13: "Oval",
    14: "Square",
    15: "Round",
    16: "2Chin",
    17: "HiCheek",
    18: "Chubby",
    19: "ObstrFH",
    20: "FullFH",
    21: "BrownEye",
    22: "Bags",
    23: "Bushy",
    24: "Arched",
    25: "MClosed",
    26: "Smile",
    27: "BigLips",
    28: "BigNose",
    29: "Pointy",
}


def caption_words(labels: np.ndarray) -> list[str]:
    """Short words for an image's labels: the four class words, then present binary attributes."""
    words = [SHORT[j][int(labels[j])] for j in sorted(CLASS_WORDS)]
    return words + [
        SHORT[j] for j in range(len(ATTRIBUTES)) if j not in CLASS_WORDS and labels[j] == 0
    ]


def _captioned(
    image: np.ndarray, words: list[str], cell: int, per_line: int = 4, lines: int = 5
) -> np.ndarray:
    face = cv2.resize(image, (cell, cell), interpolation=cv2.INTER_NEAREST)
    text = np.full((lines * 13 + 4, cell, 3), 255, np.uint8)
    for row in range(lines):
        chunk = words[row * per_line : (row + 1) * per_line]
        if chunk:
            cv2.putText(
                text,
                " ".join(chunk),
                (3, 12 + 13 * row),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.36,
                (0, 0, 0),
                1,
                cv2.LINE_AA,
            )
    return np.vstack([face, text])


def _grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * (h + 4), cols * (w + 4), 3), 128, np.uint8)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, cols)
        sheet[r * (h + 4) : r * (h + 4) + h, c * (w + 4) : c * (w + 4) + w] = tile
    return sheet


def contact_sheet(seed: int = 0, grid: int = 8, size: int = 112, cell: int = 224) -> np.ndarray:
    """A ``grid x grid`` sheet of distinct identities (one image each).

    Each image is captioned with short attribute words.
    """
    world = make_world(grid * grid, 1, seed, size)
    tiles = [
        _captioned(item.sample.image, caption_words(item.sample.labels), cell) for item in world
    ]
    return _grid(tiles, grid)


def twin_sheet(
    seed: int = 0,
    attributes: tuple[int, ...] | None = None,
    size: int = 112,
    cell: int = 224,
    cols: int = 4,
) -> np.ndarray:
    """Twin pairs (source | twin), one per attribute, captioned ``attribute: old -> new``.

    For each attribute, identities of the world of ``seed`` are tried in turn
    until one has that twin.
    """
    attributes = tuple(range(len(ATTRIBUTES))) if attributes is None else attributes
    tiles = []
    for j in attributes:
        for i in range(500):
            ident = sample_identity(identity_rng(seed, i))
            nuis = sample_nuisance(image_rng(seed, i, 0))
            pick = random_twin(np.random.default_rng(i), ident, nuis, (j,))
            if pick is not None:
                break
        else:
            continue
        src = render(ident, nuis, size, with_masks=False)
        twin = render(*twin_of(ident, nuis, *pick), size=size, with_masks=False)
        old, new = int(src.labels[j]), pick[1]
        name = SHORT[j] if isinstance(SHORT[j], str) else ""
        words = [f"{ATTRIBUTES[j]}:"] + (
            [SHORT[j][old], "->", SHORT[j][new]]
            if not name
            else [("yes" if old == 0 else "no"), "->", ("yes" if new == 0 else "no")]
        )
        pair = np.hstack(
            [
                cv2.resize(src.image, (cell, cell), interpolation=cv2.INTER_NEAREST),
                cv2.resize(twin.image, (cell, cell), interpolation=cv2.INTER_NEAREST),
            ]
        )
        text = np.full((18, 2 * cell, 3), 255, np.uint8)
        cv2.putText(
            text,
            " ".join(words),
            (3, 13),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.42,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
        tiles.append(np.vstack([pair, text]))
    return _grid(tiles, cols)
