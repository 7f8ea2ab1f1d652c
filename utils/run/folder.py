"""The run folder: which run owns it, what resume may trust, and the errors of writing into it.

A run folder holds the results of ONE run, named by its settings
fingerprint (:func:`fingerprint`): a SHA-256 of the result-affecting
settings (every flag except :data:`OPERATIONAL_KEYS`) and of the weight files
the networks load (registered name, path and SHA-256 of each file, so
``SIM2WORD_PRETRAINED`` and ``--*-weights`` count). ``config.json`` records
the settings, the weight files and the fingerprint; every record carries it
as ``"run-fingerprint"``.

* **Resume** skips an item only when its record is a valid record of this
  run: it parses, the task's schema check passes (the item's paths and label
  match) and its fingerprint is this run's (:meth:`RunFolder.has_record`).
* **One run per folder.** Starting takes an exclusive lock on the folder
  (``flock`` of the directory itself; no lock file), compares ``config.json``
  with this run and, with ``--resume``, refuses a folder of other settings
  (:class:`UsageError`, exit 2). With ``--no-resume`` the run takes the folder
  over: records that are not this run's are deleted (with their visual
  outputs) before ``config.json`` is rewritten, so no stale record is ever
  described by another run's config. Every record is written under a shared
  lock after checking that ``config.json`` still names this run; a run whose
  folder was taken over by another run stops (:class:`RunConflictError`).
* **Output errors.** A folder that cannot be created or written (a file in
  the way, a read-only mount, a name the file system refuses) is a usage
  error (exit 2) found before any work (:func:`check_writable`). A full disk
  (``ENOSPC``/``EDQUOT`` on any write) ends the run with
  :class:`DiskFullError` (exit 4, :mod:`utils.run.loop`); rerunning the same
  command after freeing space finishes the job.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import argparse
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from utils.base import safejson
from utils.base.atomic import atomic_write_json

try:  # POSIX; elsewhere runs are not protected against concurrent writers (documented)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger("sim2word")

#: Flags that never change a result: a folder may be resumed with other values.
OPERATIONAL_KEYS = frozenset(
    {"output_dir", "resume", "shard", "limit", "batch_size", "device", "visualization", "progress"}
)
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
NAME_MAX = 255  # bytes per path component on every common file system


class UsageError(ValueError):
    """Bad arguments, inputs or output location, found before any item is run (exit code 2)."""


class RunConflictError(RuntimeError):
    """Another run with other settings took over the run folder while this one was writing (exit
    code 2)."""


class DiskFullError(OSError):
    """No space left on the device (or quota exceeded) while writing an output (exit code 4)."""


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` is an ``OSError`` meaning "no space left on device" / "disk quota
    exceeded"."""
    return isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def settings_of(args: dict[str, Any]) -> dict[str, Any]:
    """The result-affecting settings: every argument except :data:`OPERATIONAL_KEYS`, sorted by
    name."""
    return {k: args[k] for k in sorted(args) if k not in OPERATIONAL_KEYS}


def fingerprint(settings: dict[str, Any], weights: list[dict[str, Any]]) -> str:
    """SHA-256 (hex, first 32 digits) of the settings and the weight files (name, path, sha256)."""
    blob = json.dumps(
        {"settings": settings, "weights": weights}, sort_keys=True, default=str, ensure_ascii=True
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def safe_name(text: str) -> str:
    """``text`` with every run of characters other than ``A-Za-z0-9._+-`` replaced by ``_``
    (folder names)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text)).strip("._") or "x"


def run_config(args: argparse.Namespace, weights: list[dict[str, Any]]) -> dict[str, Any]:
    """``config.json``: the arguments, the weight files loaded, ``$SIM2WORD_PRETRAINED`` and the
    fingerprint."""
    from models.registry import PRETRAINED_ENV
    from utils.faces.image_io import read_limits

    values = {k: str(v) if isinstance(v, os.PathLike) else v for k, v in vars(args).items()}
    try:  # the image limits decide which images are downscaled when read: they change results
        limits = read_limits()
    except ValueError as err:
        raise UsageError(f"{err}; unset the variable or give a positive integer") from None
    env = {PRETRAINED_ENV: os.environ.get(PRETRAINED_ENV), "image-limits": limits}
    return {
        **values,
        "weights": weights,
        "environment": env,
        "fingerprint": fingerprint({**settings_of(values), **env}, weights),
    }


def check_writable(run_dir: Path) -> None:
    """Raise :class:`UsageError` if ``run_dir`` cannot be created or written; creates nothing.

    Checks: no path component longer than :data:`NAME_MAX` bytes; the nearest existing
    ancestor is a folder (not a file) that this process may write into.
    """
    for part in run_dir.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise UsageError(
                f"the output folder name {part[:60]!r}... is {len(os.fsencode(part))} bytes, "
                "longer "
                f"than file systems allow ({NAME_MAX}); use a shorter --Datasets (it is part of "
                "the name) or a shorter --output-dir"
            )
    probe = run_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(
            f"cannot create the run folder {run_dir}: {probe} is a file, not a folder; pass a "
            "folder "
            "with --output-dir"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(
            f"cannot write into {probe} (permission denied or read-only); pass a writable folder "
            "with --output-dir"
        )


def output_error(err: OSError, where: Path) -> Exception:
    """The exception to raise for an ``OSError`` of creating/writing ``where``: disk full or usage
    error."""
    if is_disk_full(err):
        return DiskFullError(
            err.errno,
            f"no space left on the device while writing {where}: free some space "
            "and rerun the same command to finish the job",
        )
    return UsageError(
        f"cannot write {where}: {err.strerror or err} ({type(err).__name__}); pass a writable "
        "folder with --output-dir"
    )


class RunFolder:
    """The folder of one run: its lock, ``config.json``, the records and what resume may trust.

    Args:
        path: the run folder.
        config: what ``config.json`` holds (the arguments, the weight files, ...); its
        ``"fingerprint"``
            key names the run.
        record_dir: sub-folder of the records (``<n>.json``).
        extras: ``index -> paths`` of an item's other outputs (deleted with a stale record).
    """

    def __init__(
        self,
        path: Path,
        config: dict[str, Any],
        record_dir: str = "json",
        extras: Callable[[int], list[Path]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.config = config
        self.fingerprint = str(config["fingerprint"])
        self.records = self.path / record_dir
        self.extras = extras or (lambda index: [])

    # ------------------------------------------------------------------------------- ownership
    def existing_config(self) -> dict[str, Any] | None:
        """The folder's ``config.json`` (``None`` if absent or unreadable)."""
        path = self.path / "config.json"
        try:
            data = safejson.load_json_file(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable %s (%s); records are checked one by one", path, err)
            return None
        return data if isinstance(data, dict) else None

    def check_resumable(self, resume: bool) -> None:
        """With ``resume``: :class:`UsageError` if ``config.json`` belongs to a run of other
        settings."""
        old = self.existing_config()
        if not resume or old is None or old.get("fingerprint") == self.fingerprint:
            return
        keys = (set(old) | set(self.config)) - OPERATIONAL_KEYS - {"fingerprint"}
        diff = sorted(k for k in keys if old.get(k) != self.config.get(k))
        detail = ", ".join(
            f"{k}: {_short(old[k]) if k in old else '(not in its config.json)'} -> "
            f"{_short(self.config.get(k))}"
            for k in diff
        )
        older = [k for k in diff if k not in old and k in self.config]
        note = (
            f"; it was written by an older version, before the setting(s) {', '.join(older)} "
            "existed"
            if older
            else ""
        )
        raise UsageError(
            f"{self.path} holds results computed with other settings "
            f"({detail or 'an older format'}){note};"
            " use another --output-dir, or --no-resume to recompute it for these settings"
        )

    def open(self, resume: bool) -> None:
        """Create the folder and take it for this run (module docstring); raises on usage/disk
        errors."""
        try:
            self.records.mkdir(parents=True, exist_ok=True)
            with self._locked(exclusive=True):
                self.check_resumable(resume)
                removed = self._purge()
                atomic_write_json(self.path / "config.json", self.config)
        except OSError as err:
            raise output_error(err, self.path) from err
        if removed:
            log.warning(
                "removed %d record(s) of other settings from %s (now described by this run's "
                "config.json)",
                removed,
                self.records,
            )

    def _purge(self) -> int:
        removed = 0
        for path in self.records.glob("*.json"):
            if self._fingerprint_of(path) == self.fingerprint:
                continue
            path.unlink(missing_ok=True)
            if path.stem.isdigit():
                for extra in self.extras(int(path.stem)):
                    _remove_tree(extra)
            removed += 1
        return removed

    def _fingerprint_of(self, path: Path) -> str | None:
        record = read_json(path)
        return record.get("run-fingerprint") if isinstance(record, dict) else None

    # ------------------------------------------------------------------------------- records
    def record_path(self, index: int) -> Path:
        return self.records / f"{int(index)}.json"

    def has_record(self, index: int, check: Callable[[dict[str, Any]], str | None]) -> bool:
        """Resume test: ``<index>.json`` is a record of this run that ``check`` accepts (returns
        ``None``)."""
        record = read_json(self.record_path(index))
        if not isinstance(record, dict) or record.get("run-fingerprint") != self.fingerprint:
            return False
        return check(record) is None

    def write_record(self, index: int, record: dict[str, Any]) -> Path:
        """Write ``record`` (with this run's fingerprint) as ``<index>.json``, atomically, under
        the folder lock.

        Raises:
            RunConflictError: ``config.json`` names another run (the folder was taken over).
            DiskFullError: no space left.
        """
        path = self.record_path(index)
        with self._locked(exclusive=False):
            owner = (self.existing_config() or {}).get("fingerprint")
            if owner != self.fingerprint:
                raise RunConflictError(
                    f"{self.path} was taken over by another run with other settings "
                    f"(config.json fingerprint {owner}, this run {self.fingerprint}); this run "
                    "stopped. Use one --output-dir per setting"
                )
            try:
                return atomic_write_json(path, {**record, "run-fingerprint": self.fingerprint})
            except OSError as err:
                raise output_error(err, path) from err

    # ------------------------------------------------------------------------------- lock
    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock


def read_json(path: Path) -> Any:
    """Decoded JSON of ``path``, or ``None`` if it is missing or not valid JSON."""
    try:
        return safejson.load_json_file(Path(path))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _remove_tree(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
