"""Attribute vocabularies: the words an attribute net can say (METHOD.md section 2).

A :class:`Vocabulary` names the heads of one attribute net, in head order. A
multi-class head (listed in ``class_words``) is *always present* and worded
by its predicted class; a binary head has class 0 = "has it" and class 1 =
"does not have it" and is present only at class 0. A *region head* (listed in
``region_heads``, e.g. a facial-part word) has no Grad-CAM map: its map is a
region of the face given by the net (``net.region_maps``); it is always
present and worded by its name.

Every attribute net exposes ``net.vocabulary``; every per-pair record says
which one it used (``"attribute-vocabulary"``; a record without the key,
such as the authors' own, is read as ``"celeba30"``).

The paper's vocabulary, ``"celeba30"`` (:data:`CELEBA30`), has 30 heads; the
module-level names (:data:`ATTRIBUTES`, :data:`HEAD_SIZES`,
:data:`CLASS_WORDS`, :func:`is_present`, :func:`word_for`, :func:`index_of`)
are kept as its aliases. This module imports nothing heavy (no torch), so the
analysis scripts can word records without loading a network.

Example:
    >>> word_for(0, 1), word_for(28, 0), is_present(28, 1)
    ('Female', 'Big Nose', False)
    >>> get_vocabulary("celeba30").attributes[28]
    'Big Nose'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_VOCABULARY = "celeba30"


@dataclass(frozen=True)
class Vocabulary:
    """The words of one attribute net.

    Attributes:
        name: registered name, recorded as ``"attribute-vocabulary"``.
        attributes: the attribute name of each head, in head order.
        class_words: multi-class heads: head index -> the word of each class.
        region_heads: heads whose map is a face region (``net.region_maps``), not Grad-CAM.
        description: one line for figures and ``--help`` (what the words are and are not).
    """

    name: str
    attributes: tuple[str, ...]
    class_words: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    region_heads: frozenset[int] = frozenset()
    description: str = ""

    def __post_init__(self) -> None:
        n = len(self.attributes)
        bad = sorted(j for j in (*self.class_words, *self.region_heads) if not 0 <= int(j) < n)
        if bad:
            raise ValueError(
                f"vocabulary {self.name!r}: head indices {bad} out of range 0..{n - 1}"
            )
        both = sorted(set(self.class_words) & set(self.region_heads))
        if both:
            raise ValueError(
                f"vocabulary {self.name!r}: heads {both} cannot be multi-class and region heads"
            )
        object.__setattr__(
            self, "class_words", {int(j): tuple(w) for j, w in self.class_words.items()}
        )
        object.__setattr__(self, "region_heads", frozenset(int(j) for j in self.region_heads))

    def __len__(self) -> int:
        return len(self.attributes)

    @property
    def head_sizes(self) -> tuple[int, ...]:
        """Classes per head: multi-class heads their word count, region heads 1, binary heads 2."""
        return tuple(
            len(self.class_words[j])
            if j in self.class_words
            else 1
            if j in self.region_heads
            else 2
            for j in range(len(self.attributes))
        )

    def _check_index(self, j: int) -> None:
        if not 0 <= int(j) < len(self.attributes):
            raise ValueError(
                f"attribute index {j} out of range for vocabulary {self.name!r}: "
                f"expected 0..{len(self.attributes) - 1}"
            )

    def is_present(self, j: int, cls: int) -> bool:
        """Whether head ``j`` with predicted class ``cls`` may be reported as a word."""
        self._check_index(j)
        return j in self.class_words or j in self.region_heads or int(cls) == 0

    def word_for(self, j: int, cls: int) -> str:
        """The word of head ``j`` at class ``cls`` (multi-class heads worded by class)."""
        self._check_index(j)
        if j in self.class_words:
            words = self.class_words[j]
            if not 0 <= int(cls) < len(words):
                raise ValueError(
                    f"class {cls} out of range for head {j} ({self.attributes[j]}) of vocabulary "
                    f"{self.name!r}: expected 0..{len(words) - 1}"
                )
            return words[int(cls)]
        if j in self.region_heads:
            return self.attributes[j]
        return self.attributes[j] if int(cls) == 0 else f"no {self.attributes[j]}"

    def index_of(self, name: str) -> int:
        """Index of a head by its attribute name (case-insensitive)."""
        lowered = {a.lower(): i for i, a in enumerate(self.attributes)}
        try:
            return lowered[name.lower()]
        except KeyError:
            raise ValueError(
                f"unknown attribute {name!r} in vocabulary {self.name!r}; valid names: "
                f"{', '.join(self.attributes)}"
            ) from None


VOCABULARIES: dict[str, Vocabulary] = {}


def register_vocabulary(vocabulary: Vocabulary) -> Vocabulary:
    """Register ``vocabulary`` under its name; registering another one of that name raises."""
    if vocabulary.name in VOCABULARIES and VOCABULARIES[vocabulary.name] != vocabulary:
        raise ValueError(f"vocabulary name {vocabulary.name!r} is already registered")
    VOCABULARIES[vocabulary.name] = vocabulary
    return vocabulary


def get_vocabulary(name: str | None) -> Vocabulary:
    """The registered vocabulary ``name`` (``None``: the paper's ``"celeba30"``).

    Raises:
        ValueError: unknown name (the message lists the registered ones).
    """
    name = DEFAULT_VOCABULARY if name is None else name
    try:
        return VOCABULARIES[name]
    except KeyError:
        raise ValueError(
            f"unknown attribute vocabulary {name!r}; registered: "
            f"{', '.join(sorted(VOCABULARIES))}. Vocabularies are registered by the module "
            "that defines the attribute net"
        ) from None


CELEBA30 = register_vocabulary(
    Vocabulary(
        name="celeba30",
        attributes=(
            "Gender",
            "Age",
            "Race",
            "Bald",
            "Wavy Hair",
            "Receding Hairline",
            "Bangs",
            "Sideburns",
            "Hair color",
            "no beard",
            "Mustache",
            "5 o Clock Shadow",
            "Goatee",
            "Oval Face",
            "Square Face",
            "Round Face",
            "Double Chin",
            "High Cheekbones",
            "Chubby",
            "Obstructed Forehead",
            "Fully Visible Forehead",
            "Brown Eyes",
            "Bags Under Eyes",
            "Bushy Eyebrows",
            "Arched Eyebrows",
            "Mouth Closed",
            "Smiling",
            "Big Lips",
            "Big Nose",
            "Pointy Nose",
        ),
        class_words={
            0: ("Male", "Female"),
            1: ("Young", "Middle Aged", "Senior"),
            2: ("Asian", "White", "Black"),
            8: ("Black Hair", "Blond Hair", "Brown Hair", "Gray Hair", "Unknown Hair"),
        },
        description="the paper's 30 CelebA-style attributes",
    )
)

# Aliases of the paper's vocabulary (the names the code base has always used).
ATTRIBUTES: tuple[str, ...] = CELEBA30.attributes
NUM_ATTRIBUTES = len(ATTRIBUTES)
CLASS_WORDS: dict[int, tuple[str, ...]] = dict(CELEBA30.class_words)
HEAD_SIZES: tuple[int, ...] = CELEBA30.head_sizes
is_present = CELEBA30.is_present
word_for = CELEBA30.word_for
index_of = CELEBA30.index_of

#: Age groups of the real-faces vocabulary: (word, first age, last age) over the 81 one-year classes
#: (0..80) of dlib's age network; see models/real_attributes.py for why these edges.
REAL_FACES_AGE_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("Young", 0, 34),
    ("Middle Aged", 35, 59),
    ("Senior", 60, 80),
)

#: Words of real photos (``real-attributes`` net): dlib's gender and age networks, and eight facial
#: parts whose maps are landmark regions (region heads). Not CelebA's 30 attributes.
REAL_FACES = register_vocabulary(
    Vocabulary(
        name="real-faces",
        attributes=(
            "Gender",
            "Age",
            "Eyes",
            "Eyebrows",
            "Nose",
            "Mouth",
            "Chin",
            "Cheeks",
            "Forehead",
            "Hair",
        ),
        class_words={0: ("Male", "Female"), 1: tuple(w for w, _, _ in REAL_FACES_AGE_GROUPS)},
        region_heads=frozenset(range(2, 10)),
        description="real photos: gender and age (dlib's networks) and 8 facial-part regions "
        "(landmarks); not CelebA's 30 attributes",
    )
)
