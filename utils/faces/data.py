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

CSV pair lists (a file ending in ``.csv``, e.g. ``real_faces/pairs.csv`` or
deepface's ``master.csv``) are read with :mod:`csv`: comma separated, fields
quoted as CSV quotes them, an optional header row. A header naming
``img1,img2,same``, ``path1,path2,label`` or ``file_x,file_y,decision`` (any
case, any column order, extra columns ignored) picks those columns; without
one the first three columns are used. Labels may be ``1``/``0``,
``yes``/``no`` or ``true``/``false`` (any case). Everything else (comments,
blank lines, per-line errors, indices, duplicates) works as above.

Error messages name the file and the line number, never the line's content
(a list that is not a list, e.g. ``/etc/passwd``, must not be copied into
``failures.jsonl``). List files are read with
:func:`utils.base.safefile.read_capped`: regular files only, at most
:data:`MAX_LIST_BYTES` (env ``SIM2WORD_MAX_LIST_MB``).

Datasets config (``configs/datasets.json``, or the file named by the
environment variable ``SIM2WORD_DATASETS``), parsed with
:func:`utils.base.safejson.load_json_file` (strict JSON, nesting depth capped):
``{"<name>": {"pair_list": "...", "image_root": "..."}}``; paths are relative to
the repository root or absolute; keys starting with ``_`` are comments.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from utils.base.safefile import UnreadableFileError, env_limit, read_capped
from utils.base.safejson import load_json_file

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS_ENV = "SIM2WORD_DATASETS"
DEFAULT_DATASETS_CONFIG = REPO_ROOT / "configs" / "datasets.json"
#: Largest pair / image list read, in bytes (env ``SIM2WORD_MAX_LIST_MB``, in MiB).
MAX_LIST_BYTES = 512 * 2**20
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


def resolve_path(path: str, root: Path | None) -> str:
    """``path`` joined to ``root`` unless it is absolute (reading what it names, even ``../``)."""
    p = Path(path)
    return str(p if p.is_absolute() or root is None else root / p)


def list_fields(lines: Iterable[str]) -> Iterator[tuple[int, str, list[str]]]:
    """``(1-based line number, stripped line, fields)`` of every non-blank, non-comment line.

    Shared by the pair lists and the identification lists: a BOM and CRLF are
    dropped, ``#`` starts a comment line, fields are split by :func:`_split`.
    """
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip().lstrip("\ufeff")
        if line and not line.startswith("#"):
            yield line_no, line, _split(line)


def parse_pair_lines(
    lines: list[str], image_root: str | Path | None = None, source: str = "<pairs>"
) -> list[PairItem]:
    """Parse the lines of a pair list (see the module docstring)."""
    root = Path(image_root) if image_root is not None else None
    items: list[PairItem] = []
    for line_no, _line, fields in list_fields(lines):
        n = len(items)
        if len(fields) != 3:
            err = f"{source}:{line_no}: expected 3 fields 'path1 path2 label', got {len(fields)}"
            items.append(PairItem(n, line_no, "", "", -1, err))
        elif fields[2] not in ("0", "1"):
            err = f"{source}:{line_no}: label must be 0 or 1 (third field)"
            items.append(PairItem(n, line_no, "", "", -1, err))
        else:
            items.append(
                PairItem(
                    n,
                    line_no,
                    resolve_path(fields[0], root),
                    resolve_path(fields[1], root),
                    int(fields[2]),
                )
            )
    _warn_duplicates(items, source)
    return items


def _warn_duplicates(items: list[PairItem], source: str) -> None:
    counts = Counter((it.path1, it.path2) for it in items if it.error is None)
    dups = {k: c for k, c in counts.items() if c > 1}
    if dups:
        first = next(iter(dups))
        log.warning(
            "%s: %d pair(s) appear more than once (kept, each with its own index), e.g. %s %s x%d",
            source,
            len(dups),
            first[0],
            first[1],
            dups[first],
        )


#: Header column triples (path 1, path 2, label) recognised in CSV pair lists, lower case.
CSV_HEADERS = (
    ("img1", "img2", "same"),
    ("path1", "path2", "label"),
    ("file_x", "file_y", "decision"),
)
#: Label spellings accepted in CSV pair lists (lower-cased before lookup).
CSV_LABELS = {"1": 1, "0": 0, "yes": 1, "no": 0, "true": 1, "false": 0}


def _csv_header(fields: list[str]) -> tuple[int, int, int] | None:
    """Column indices (path1, path2, label) if ``fields`` is a header row, else ``None``.

    A row naming a known triple (:data:`CSV_HEADERS`) picks those columns; any
    other row whose third field is not a label and whose first two fields have
    no file extension is taken as a header of columns 0, 1, 2.
    """
    names = [f.strip().lower() for f in fields]
    for triple in CSV_HEADERS:
        if all(n in names for n in triple):
            return tuple(names.index(n) for n in triple)
    looks_like_data = len(names) >= 3 and (
        names[2] in CSV_LABELS or any(Path(n).suffix for n in names[:2])
    )
    return None if looks_like_data else (0, 1, 2)


def _csv_row_error(fields: list[str], cols: tuple[int, int, int], width: int) -> str | None:
    """Why a CSV data row is unusable, or ``None``."""
    if len(fields) != width:
        more = ",..." if width > 3 else ""
        return (
            f"expected {width} comma-separated fields (path1,path2,label{more}), got {len(fields)}"
        )
    if fields[cols[2]].lower() not in CSV_LABELS:
        return f"label must be one of {', '.join(CSV_LABELS)} (column {cols[2] + 1})"
    if not (fields[cols[0]] and fields[cols[1]]):
        return "empty image path"
    return None


def parse_pair_csv(
    lines: list[str], image_root: str | Path | None = None, source: str = "<pairs.csv>"
) -> list[PairItem]:
    """Parse the lines of a CSV pair list (see the module docstring).

    Args:
        lines: the file's lines (line endings already split off).
        image_root: root of relative image paths.
        source: file name used in error messages.

    Returns:
        One :class:`PairItem` per data row (header, blank and ``#`` lines skipped),
        indexed and checked exactly like :func:`parse_pair_lines`.
    """
    root = Path(image_root) if image_root is not None else None
    items: list[PairItem] = []
    cols, width = None, 3  # label columns and the expected number of fields (the header's, else 3)
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        try:
            fields, bad = [f.strip() for f in next(csv.reader([line], strict=True))], None
        except csv.Error as err:
            fields, bad = [], f"not a valid CSV row ({err})"
        if cols is None:  # the first row decides: a header (skipped) or data in columns 0, 1, 2
            header = _csv_header(fields) if bad is None else None
            cols = header or (0, 1, 2)
            if header is not None:
                width = len(fields)
                continue
        bad = bad or _csv_row_error(fields, cols, width)
        if bad is not None:
            items.append(PairItem(len(items), line_no, "", "", -1, f"{source}:{line_no}: {bad}"))
        else:
            items.append(
                PairItem(
                    len(items),
                    line_no,
                    resolve_path(fields[cols[0]], root),
                    resolve_path(fields[cols[1]], root),
                    CSV_LABELS[fields[cols[2]].lower()],
                )
            )
    _warn_duplicates(items, source)
    return items


def read_list_text(path: Path, what: str, fix: str) -> str:
    """The UTF-8 text of a list file (BOM dropped), read with a size cap and never blocking.

    Raises:
        DataConfigError: naming ``what`` and the ``fix`` when the file is missing, not a
            regular file, larger than :data:`MAX_LIST_BYTES`, or not UTF-8 text.
    """
    if not path.exists():
        raise DataConfigError(f"{what} {path} not found; {fix}")
    try:
        limit = env_limit("SIM2WORD_MAX_LIST_MB", MAX_LIST_BYTES, 2**20)
        too_big = "split the list, or raise SIM2WORD_MAX_LIST_MB"
        data = read_capped(path, limit, what=what, limit_hint=too_big)
    except UnreadableFileError as err:
        hint = err.hint or fix
        raise DataConfigError(f"cannot read {what} {path}: {err.reason}; {hint}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataConfigError(
            f"cannot read {what} {path}: not UTF-8 text (invalid byte on line "
            f"{line}); it must be a UTF-8 text file"
        ) from None


def read_pair_list(path: str | Path, image_root: str | Path | None = None) -> list[PairItem]:
    """Read and parse a pair list file.

    ``.csv`` files go through :func:`parse_pair_csv`, others through :func:`parse_pair_lines`.

    Args:
        path: the list file.
        image_root: root of relative image paths (default: the list's folder).

    Raises:
        DataConfigError: the file does not exist or cannot be read/decoded.
    """
    path = Path(path)
    text = read_list_text(
        path, "pair list", "pass an existing file with --pair-list or fix the datasets config entry"
    )
    root = Path(image_root) if image_root is not None else path.parent
    parse = parse_pair_csv if path.suffix.lower() == ".csv" else parse_pair_lines
    return parse(text.splitlines(), root, source=str(path))


def datasets_config_path() -> Path:
    """``$SIM2WORD_DATASETS`` or ``<repo>/configs/datasets.json``."""
    env = os.environ.get(DATASETS_ENV)
    return Path(env) if env else DEFAULT_DATASETS_CONFIG


def load_datasets_config(path: str | Path | None = None) -> dict[str, dict[str, str]]:
    """Parse the datasets config (strict JSON); returns name -> {pair_list, image_root}."""
    path = Path(path) if path is not None else datasets_config_path()
    try:
        cfg = load_json_file(path)
    except UnreadableFileError as err:
        raise DataConfigError(
            f"cannot read datasets config {path}: {err.reason}; pass "
            f"--datasets-config FILE or set {DATASETS_ENV}"
        ) from None
    except ValueError as err:  # names the file, the line and the column, never the content
        raise DataConfigError(f"datasets config {err}") from None
    if not isinstance(cfg, dict):
        raise DataConfigError(
            f"datasets config {path} must be a JSON object name -> {{pair_list, image_root}}"
        )
    out = {}
    for name, entry in cfg.items():
        if name.startswith("_"):
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("pair_list"), str):
            got = (
                "an object without a string 'pair_list'"
                if isinstance(entry, dict)
                else f"a {type(entry).__name__}"
            )
            raise DataConfigError(
                f"datasets config {path}, entry {name!r}: expected an object "
                f"with a string 'pair_list' (optional 'image_root'), got {got}"
            )
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
        raise DataConfigError(
            f"dataset {name!r} is not in {path}; known: {', '.join(cfg)}. Add an entry or pass "
            "--pair-list FILE --image-root DIR"
        )
    entry = cfg[name]
    pair_list = _abs(entry["pair_list"])
    image_root = _abs(entry.get("image_root") or str(pair_list.parent))
    if not pair_list.is_file():
        raise DataConfigError(
            f"dataset {name!r} in {path}: pair list {pair_list} not found. Edit the entry "
            f"{name!r} in {path} to point at your copy (or pass --pair-list FILE --image-root DIR)"
        )
    return pair_list, image_root


def _abs(p: str) -> Path:
    path = Path(os.path.expanduser(p))
    return path if path.is_absolute() else REPO_ROOT / path
