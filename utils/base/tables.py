"""The one table formatter: Markdown tables for terminals, ``.md`` files and the README."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None
) -> str:
    """A Markdown table with padded columns.

    Args:
        header: column names.
        rows: cells (``str()`` is applied; format numbers before).
        align: one ``"l"``/``"r"`` per column; default: first column left, the rest right.

    Returns:
        The table, one line per row, ending in a newline.

    Example:
        >>> print(format_table(["name", "n"], [["a", 1], ["bb", 22]]), end="")
        | name |  n |
        |------|---:|
        | a    |  1 |
        | bb   | 22 |
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if any(len(r) != len(header) for r in cells):
        raise ValueError(
            f"every row needs {len(header)} cells (the header's), got "
            f"{sorted({len(r) for r in cells})}"
        )
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align must be one 'l' or 'r' per column ({len(header)}), got {align!r}")

    def line(row: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if a == "l" else c.rjust(w)
                for c, w, a in zip(row, widths, align, strict=True)
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join(
            "-" * (w + 2) if a == "l" else "-" * (w + 1) + ":"
            for w, a in zip(widths, align, strict=True)
        )
        + "|"
    )
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]]) + "\n"
