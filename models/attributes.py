"""The 30-attribute vocabulary of Sim2Word (METHOD.md section 2).

Heads of the attribute net come in this order. Four heads are multi-class and
are *always present*, worded by their predicted class; every other head is
binary with class 0 = "has it" and class 1 = "does not have it".

Example:
    >>> word_for(0, 1), word_for(28, 0), is_present(28, 1)
    ('Female', 'Big Nose', False)
"""
from __future__ import annotations

ATTRIBUTES: tuple[str, ...] = (
    "Gender", "Age", "Race", "Bald", "Wavy Hair", "Receding Hairline", "Bangs",
    "Sideburns", "Hair color", "no beard", "Mustache", "5 o Clock Shadow",
    "Goatee", "Oval Face", "Square Face", "Round Face", "Double Chin",
    "High Cheekbones", "Chubby", "Obstructed Forehead",
    "Fully Visible Forehead", "Brown Eyes", "Bags Under Eyes",
    "Bushy Eyebrows", "Arched Eyebrows", "Mouth Closed", "Smiling", "Big Lips",
    "Big Nose", "Pointy Nose",
)
NUM_ATTRIBUTES = len(ATTRIBUTES)

CLASS_WORDS: dict[int, tuple[str, ...]] = {
    0: ("Male", "Female"),
    1: ("Young", "Middle Aged", "Senior"),
    2: ("Asian", "White", "Black"),
    8: ("Black Hair", "Blond Hair", "Brown Hair", "Gray Hair", "Unknown Hair"),
}
MULTI_CLASS_HEADS: tuple[int, ...] = tuple(sorted(CLASS_WORDS))

HEAD_SIZES: tuple[int, ...] = tuple(
    len(CLASS_WORDS[j]) if j in CLASS_WORDS else 2 for j in range(NUM_ATTRIBUTES)
)


def _check_index(j: int) -> None:
    if not 0 <= int(j) < NUM_ATTRIBUTES:
        raise ValueError(f"attribute index {j} out of range: expected 0..{NUM_ATTRIBUTES - 1}")


def is_present(j: int, cls: int) -> bool:
    """Whether attribute ``j`` with predicted class ``cls`` may be reported as a word."""
    _check_index(j)
    return j in CLASS_WORDS or int(cls) == 0


def word_for(j: int, cls: int) -> str:
    """The word for attribute ``j`` at class ``cls`` (multi-class heads worded by class)."""
    _check_index(j)
    if j in CLASS_WORDS:
        words = CLASS_WORDS[j]
        if not 0 <= int(cls) < len(words):
            raise ValueError(f"class {cls} out of range for head {j} ({ATTRIBUTES[j]}): expected 0..{len(words) - 1}")
        return words[int(cls)]
    return ATTRIBUTES[j] if int(cls) == 0 else f"no {ATTRIBUTES[j]}"


def index_of(name: str) -> int:
    """Index of an attribute by its name (case-insensitive)."""
    lowered = {a.lower(): i for i, a in enumerate(ATTRIBUTES)}
    try:
        return lowered[name.lower()]
    except KeyError:
        raise ValueError(f"unknown attribute {name!r}; valid names: {', '.join(ATTRIBUTES)}") from None
