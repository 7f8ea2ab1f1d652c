"""Reading an untrusted input file in bounded time and memory.

Every input named by a user (images, pair lists, JSON configs and records)
goes through :func:`read_capped`, which

* refuses anything that is not a **regular file** after following symlinks
  (a FIFO, character device such as ``/dev/zero`` or a tty, socket, block
  device, folder) *before* opening it: such a file can block a ``read``
  forever or never end;
* refuses a file **larger than** ``max_bytes`` from its size on disk, before
  reading a byte (a 3 GiB sparse ``.jpg`` costs nothing);
* refuses a regular file whose size is 0 without reading it (empty files, and
  kernel files such as ``/proc/kmsg`` that report size 0 and never end);
* opens with ``O_NONBLOCK`` and checks the opened descriptor again with
  ``fstat`` (a file swapped for a FIFO between the two checks is refused, and a
  special file that slipped through cannot block), then reads at most
  ``max_bytes + 1`` bytes in chunks (a file growing while it is read is refused).

Errors are :class:`UnreadableFileError` with ``path``, ``reason`` and
``hint``; it is both an ``OSError`` and a ``ValueError``, so callers that
catch either for a bad input keep working. Messages name the file and its
kind, never its content.

Example:
    >>> data = read_capped("pairs.txt", 256 * 2**20, what="pair list")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_CHUNK = 1 << 20


class UnreadableFileError(OSError, ValueError):
    """An input file that is refused before or while reading it.

    Attributes:
        path: the file as named by the caller.
        reason: what is wrong, in a few words (never the file's content).
        hint: what to do about it.
    """

    def __init__(self, path: str | os.PathLike, reason: str, hint: str = "") -> None:
        self.path, self.reason, self.hint = str(path), reason, hint
        super().__init__(f"{self.path}: {reason}" + (f". Fix: {hint}" if hint else ""))


class MissingFileError(UnreadableFileError, FileNotFoundError):
    """The file does not exist (also a ``FileNotFoundError``, so callers can tell absence apart)."""

    def __reduce__(self):  # keep the fields through pickling (worker processes)
        return (type(self), (self.path, self.reason, self.hint))


def file_kind(mode: int) -> str:
    """Words for the type bits of ``st_mode``, e.g. ``"FIFO (named pipe)"``."""
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def format_size(n: int) -> str:
    """``n`` bytes in the largest unit that keeps the number >= 1, e.g. ``"3.0 GiB"``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _check(path: Path, st: os.stat_result, max_bytes: int, what: str, limit_hint: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFileError(
            path,
            f"not a regular file but a {file_kind(st.st_mode)}; only regular files are read",
            f"point the entry at a {what} file",
        )
    if st.st_size == 0:
        raise UnreadableFileError(
            path,
            "empty file (0 bytes)",
            f"re-create the {what}; kernel files that report size 0 (/proc/...) are never read",
        )
    if st.st_size > max_bytes:
        raise UnreadableFileError(
            path,
            f"file is {format_size(st.st_size)}, more than the limit of "
            f"{format_size(max_bytes)} for a {what}",
            limit_hint,
        )


def read_capped(
    path: str | os.PathLike, max_bytes: int, what: str = "file", limit_hint: str = ""
) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` bytes (see the module docstring).

    Args:
        path: the file (symlinks are followed).
        max_bytes: largest size accepted (> 0).
        what: what the file should be, for messages ("image", "pair list", ...).
        limit_hint: how to raise the limit, appended to the too-large message.

    Returns:
        The whole content.

    Raises:
        UnreadableFileError: missing, not a regular file, empty, too large, or unreadable
            (permissions, I/O error, would block).
    """
    path = Path(path)
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise MissingFileError(
            path, "file not found", "check the path (and the root folder it is relative to)"
        ) from None
    except OSError as err:
        raise UnreadableFileError(
            path, f"cannot stat the file ({err.strerror})", "check the path and its permissions"
        ) from None
    _check(path, before, max_bytes, what, limit_hint)
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_NOCTTY", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise UnreadableFileError(
            path, f"cannot open the file ({err.strerror})", "check its permissions"
        ) from None
    try:
        _check(path, os.fstat(fd), max_bytes, what, limit_hint)  # the file actually opened
        chunks, total = [], 0
        while total <= max_bytes:
            try:
                chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
            except BlockingIOError:
                raise UnreadableFileError(
                    path,
                    "reading would block (not a plain file on disk)",
                    f"copy the {what} to a regular file",
                ) from None
            except OSError as err:
                raise UnreadableFileError(
                    path, f"read error ({err.strerror})", "check the disk / network mount"
                ) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > max_bytes:
        raise UnreadableFileError(
            path,
            f"file grew past the limit of {format_size(max_bytes)} while being read",
            limit_hint or f"wait until the {what} is complete",
        )
    if total == 0:
        raise UnreadableFileError(path, "empty file (0 bytes read)", f"re-create the {what}")
    return b"".join(chunks)


def env_limit(name: str, default: int, unit: int = 1) -> int:
    """A positive integer limit from the environment variable ``name`` (x ``unit``), or ``default``.

    Raises:
        ValueError: the variable is set but is not a positive integer.
    """
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(
            f"environment variable {name} must be a positive integer, got {text!r}"
        ) from None
    if value < 1:
        raise ValueError(f"environment variable {name} must be a positive integer, got {value}")
    return value * unit
