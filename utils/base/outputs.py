"""Where documented commands may write: never over committed files unless asked.

The repository holds committed results and weights (``pre-trained/``,
``Explainable-Framework-Comparison/results/``, ``data/``, ...) that the README
and the tests rely on. Commands therefore write under ``outputs/`` (git-ignored)
by default, and :func:`check_output_path` refuses any other destination inside
the repository unless the caller passes ``--overwrite-committed``. Paths outside
the repository are always allowed.

Example:
    >>> check_output_path(OUTPUTS / "x.json", overwrite_committed=False)  # doctest: +ELLIPSIS
    PosixPath('.../outputs/x.json')
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The git-ignored folder that outputs go to by default.
OUTPUTS = REPO_ROOT / "outputs"
FLAG = "--overwrite-committed"


class CommittedOutputError(ValueError):
    """A destination in the repository, not under ``outputs/``, without the override flag."""


def check_output_path(path: str | os.PathLike, overwrite_committed: bool) -> Path:
    """``path`` resolved, if a command may write there.

    Args:
        path: a file or folder that is about to be written.
        overwrite_committed: the user asked to write committed files (``--overwrite-committed``).

    Returns:
        The resolved path.

    Raises:
        CommittedOutputError: ``path`` is inside the repository but not under
            ``outputs/``, and ``overwrite_committed`` is false.
    """
    resolved = Path(path).expanduser().resolve()
    inside = resolved == REPO_ROOT or REPO_ROOT in resolved.parents
    if (
        inside
        and not overwrite_committed
        and not (resolved == OUTPUTS or OUTPUTS in resolved.parents)
    ):
        raise CommittedOutputError(
            f"refusing to write {resolved}: it is inside the repository (committed results and "
            f"weights live there). Write under {OUTPUTS} or outside the repository, or pass "
            f"{FLAG} to replace the committed files on purpose"
        )
    return resolved
