"""Pair lists and the datasets config.

Pair list format (the authors' lists): one pair per line, ``path1 path2 label``,
whitespace separated, label 1 = same person, 0 = different. Blank lines and
lines starting with ``#`` are skipped; Windows line endings are fine. A path
containing spaces is written in double quotes (``"a b.jpg" c.jpg 1``), or the
line is tab separated. Relative paths are relative to the image root.

A malformed line (wrong number of fields, label not 0/1) does not stop the
run: it becomes a :class:`PairItem` with ``error`` set, which the runner records
as a per-pair failure with its line number. Every non-blank, non-comment line
gets the next pair index ``n`` (0-based), the name of its output ``<n>.json``.
Duplicate pairs are kept (each has its own index) and reported with a warning.

Datasets config (``configs/datasets.json``, or the file named by the
environment variable ``SIM2WORD_DATASETS``), parsed with :mod:`json`:
``{"<name>": {"pair_list": "...", "image_root": "..."}}``; paths are relative to
the repository root or absolute; keys starting with ``_`` are comments.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS_ENV = "SIM2WORD_DATASETS"
DEFAULT_DATASETS_CONFIG = REPO_ROOT / "configs" / "datasets.json"
_FIELD = re.compile(r'"([^"]*)"|(\S+)')


class DataConfigError(ValueError):
    """A pair list or datasets entry cannot be used (a usage error: exit code 2)."""


@dataclass(frozen=True)
class PairItem:
    """One line of a pair list.

    Attributes:
        index: pair index n (0-based, counting non-blank non-comment lines).
        line_no: 1-based line number in the file.
        path1, path2: image paths resolved against the image root ("" if the line is bad).
        label: 1 same person, 0 different (-1 if the line is bad).
        error: why the line is unusable, or ``None``.
    """

    index: int
    line_no: int
    path1: str
    path2: str
    label: int
    error: str | None = None


def _split(line: str) -> list[str]:
    if "\t" in line:
        return [f.strip() for f in line.split("\t") if f.strip()]
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _FIELD.finditer(line)]


def _resolve(path: str, root: Path | None) -> str:
    p = Path(path)
    return str(p if p.is_absolute() or root is None else root / p)


def parse_pair_lines(lines: list[str], image_root: str | Path | None = None, source: str = "<pairs>") -> list[PairItem]:
    """Parse the lines of a pair list (see the module docstring)."""
    root = Path(image_root) if image_root is not None else None
    items: list[PairItem] = []
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        fields, n = _split(line), len(items)
        if len(fields) != 3:
            err = f"{source}:{line_no}: expected 3 fields 'path1 path2 label', got {len(fields)}: {line[:200]!r}"
            items.append(PairItem(n, line_no, "", "", -1, err))
        elif fields[2] not in ("0", "1"):
            err = f"{source}:{line_no}: label must be 0 or 1, got {fields[2][:50]!r}"
            items.append(PairItem(n, line_no, "", "", -1, err))
        else:
            items.append(PairItem(n, line_no, _resolve(fields[0], root), _resolve(fields[1], root), int(fields[2])))
    counts = Counter((it.path1, it.path2) for it in items if it.error is None)
    dups = {k: c for k, c in counts.items() if c > 1}
    if dups:
        first = next(iter(dups))
        log.warning("%s: %d pair(s) appear more than once (kept, each with its own index), e.g. %s %s x%d",
                    source, len(dups), first[0], first[1], dups[first])
    return items


def read_pair_list(path: str | Path, image_root: str | Path | None = None) -> list[PairItem]:
    """Read and parse a pair list file.

    Args:
        path: the list file.
        image_root: root of relative image paths (default: the list's folder).

    Raises:
        DataConfigError: the file does not exist or cannot be read/decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise DataConfigError(f"pair list {path} not found; pass an existing file with --pair-list or fix the "
                              "datasets config entry")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataConfigError(f"cannot read pair list {path}: {err}; it must be a UTF-8 text file") from err
    root = Path(image_root) if image_root is not None else path.parent
    return parse_pair_lines(text.splitlines(), root, source=str(path))


def datasets_config_path() -> Path:
    """``$SIM2WORD_DATASETS`` or ``<repo>/configs/datasets.json``."""
    env = os.environ.get(DATASETS_ENV)
    return Path(env) if env else DEFAULT_DATASETS_CONFIG


def load_datasets_config(path: str | Path | None = None) -> dict[str, dict[str, str]]:
    """Parse the datasets config (strict JSON); returns name -> {pair_list, image_root}."""
    path = Path(path) if path is not None else datasets_config_path()
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataConfigError(f"cannot read datasets config {path}: {err}; set {DATASETS_ENV} to a valid file") from err
    except ValueError as err:
        raise DataConfigError(f"datasets config {path} is not valid JSON: {err}") from err
    if not isinstance(cfg, dict):
        raise DataConfigError(f"datasets config {path} must be a JSON object name -> {{pair_list, image_root}}")
    out = {}
    for name, entry in cfg.items():
        if name.startswith("_"):
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("pair_list"), str):
            raise DataConfigError(f"datasets config {path}, entry {name!r}: expected an object with a string "
                                  f"'pair_list' (and optional 'image_root'), got {entry!r}")
        out[name] = entry
    return out


def resolve_dataset(name: str, config_path: str | Path | None = None) -> tuple[Path, Path]:
    """(pair list, image root) of a named dataset entry, paths made absolute against the repo root.

    Raises:
        DataConfigError: unknown name, or the entry's pair list does not exist.
    """
    path = Path(config_path) if config_path is not None else datasets_config_path()
    cfg = load_datasets_config(path)
    if name not in cfg:
        raise DataConfigError(f"dataset {name!r} is not in {path}; known: {', '.join(cfg)}. Add an entry or pass "
                              "--pair-list FILE --image-root DIR")
    entry = cfg[name]
    pair_list = _abs(entry["pair_list"])
    image_root = _abs(entry.get("image_root") or str(pair_list.parent))
    if not pair_list.is_file():
        raise DataConfigError(f"dataset {name!r} in {path}: pair list {pair_list} not found. Edit the entry "
                              f"{name!r} in {path} to point at your copy (or pass --pair-list FILE --image-root DIR)")
    return pair_list, image_root


def _abs(p: str) -> Path:
    path = Path(os.path.expanduser(p))
    return path if path.is_absolute() else REPO_ROOT / path
