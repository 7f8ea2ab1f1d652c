"""The one JSON reader for files and strings a user hands us.

:mod:`json` parses nested arrays and objects recursively, so a 100 KB file of
``[[[[...`` raises ``RecursionError`` (not a ``ValueError``), which no caller
expects: a record, a datasets config, an ``--*-arch`` flag or a file read by
``results/`` crashed the run, and every resume crashed again. Here the nesting
depth is measured first, by a linear scan over the text with string literals
removed, and a document nested deeper than ``max_depth`` is refused before
:func:`json.loads` sees it. Files are read with
:func:`utils.base.safefile.read_capped` (regular files only, size capped, never
blocking).

Content problems (not UTF-8, nested too deep, syntax) raise
:class:`JSONInputError`, a :class:`json.JSONDecodeError` (so a ``ValueError``):
code that caught ``json.JSONDecodeError`` around ``json.loads`` keeps working
when it switches to :func:`loads`. File problems (missing, not a regular file,
too large) raise :class:`utils.base.safefile.UnreadableFileError`, both an
``OSError`` and a ``ValueError``. Messages name the source and, for syntax
errors, the line and column, never the content.

Example:
    >>> loads('{"a": [1, 2]}')
    {'a': [1, 2]}
    >>> loads("[" * 200 + "]" * 200)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    JSONInputError: <string> is JSON nested 200 levels deep, more than the limit of 100
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from utils.base.safefile import read_capped

#: Deepest nesting of arrays/objects accepted (records and configs need < 10).
MAX_DEPTH = 100
#: Largest JSON file read (records are a few KB, configs less).
MAX_JSON_BYTES = 64 * 2**20

# A JSON string literal (escapes included); unrolled so it runs in linear time.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


class JSONInputError(json.JSONDecodeError):
    """A JSON document that is refused (not UTF-8, nested too deep, or a syntax error).

    Attributes:
        source: the document's name (a path, a flag).
        lineno, colno: position of a syntax error (0 when not applicable).
    """

    def __init__(
        self, message: str, source: str = "<string>", lineno: int = 0, colno: int = 0
    ) -> None:
        ValueError.__init__(
            self, message
        )  # the message is ours: JSONDecodeError would append a position
        self.msg, self.doc, self.pos = message, "", 0
        self.source, self.lineno, self.colno = source, lineno, colno

    def __reduce__(self):
        return (type(self), (self.args[0], self.source, self.lineno, self.colno))


def nesting_depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` outside string literals (0 for a scalar).

    Linear in the length of ``text``. For invalid JSON (unbalanced brackets, an
    unterminated string) the number is only an upper bound of what a parser would
    reach; :func:`json.loads` reports such text as invalid anyway.
    """
    skeleton = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    codes = np.frombuffer(skeleton, np.uint8)
    step = np.isin(codes, _OPEN).astype(np.int64) - np.isin(codes, _CLOSE).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def loads(text: str | bytes, max_depth: int = MAX_DEPTH, source: str = "<string>") -> Any:
    """Parse JSON like :func:`json.loads`, refusing documents nested deeper than ``max_depth``.

    Args:
        text: the document (``bytes`` are decoded as UTF-8, a BOM dropped).
        max_depth: deepest nesting of arrays/objects accepted.
        source: name of the document in messages (a path, a flag).

    Returns:
        The parsed value.

    Raises:
        JSONInputError: not UTF-8, nested too deep, or not valid JSON (line and column named).
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise JSONInputError(
                f"{source} is not UTF-8 text (invalid byte at offset {err.start}); JSON must be "
                "UTF-8",
                source,
            ) from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JSONInputError(
            f"{source} is JSON nested {depth} levels deep, more than the limit of {max_depth}",
            source,
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise JSONInputError(
            f"{source} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})",
            source,
            err.lineno,
            err.colno,
        ) from None
    except RecursionError:  # cannot happen below the depth limit; kept so that it is never a crash
        raise JSONInputError(f"{source} is JSON nested too deeply to parse", source) from None


def load_json_file(
    path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """Read and parse a JSON file safely (see the module docstring).

    Args:
        path: the file.
        max_bytes: largest file size accepted.
        max_depth: deepest nesting accepted.

    Returns:
        The parsed value.

    Raises:
        UnreadableFileError: the file is missing, not a regular file, empty or larger
            than ``max_bytes`` (an ``OSError`` and a ``ValueError``).
        JSONInputError: not UTF-8, nested too deep or not valid JSON (a ``ValueError``).
    """
    data = read_capped(path, max_bytes, what="JSON file")
    return loads(data, max_depth=max_depth, source=str(path))
