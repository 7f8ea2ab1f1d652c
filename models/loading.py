"""Safe checkpoint loading: nothing is ever unpickled with full pickle.

* ``.pkl`` (VGGFace2 Caffe conversions): a latin1 pickle of a dict name ->
  numpy array, read by :class:`NumpyDictUnpickler`, whose ``find_class`` only
  hands out what such a dict needs (numpy's ``_reconstruct``, ``ndarray``,
  ``dtype``, ``scalar`` under their numpy 1 and numpy 2 module names, and
  ``_codecs.encode`` restricted to latin1 for Python 3 protocol-2 pickles).
  Any other global is refused before it is looked up, so a payload never runs.
* ``.pth`` / ``.pt``: ``torch.load(..., weights_only=True)``; the result must
  be a flat mapping name -> tensor.
* Every floating-point tensor must be finite: a NaN or +-inf weight (a
  diverged training run, a corrupted or tampered file) is refused at load with
  :class:`NonFiniteCheckpointError` naming the tensors, instead of a run that
  exits 0 with all similarities 1.0 or all masks empty.

Then: ``module.`` prefixes (DataParallel) are stripped, missing
``num_batches_tracked`` buffers are filled with 0 (the ``.pkl`` files have
none; they do not affect eval-mode outputs), keys the network declares as
ignorable (``net.ignored_checkpoint_prefixes``) are dropped, and the file is
checked against the network strictly. A mismatch raises
:class:`CheckpointMismatchError` listing missing / unexpected / mis-shaped
tensors and which registered network the file looks like.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

SHOW = 5  # how many names each part of a mismatch message lists


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (base class)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file references code that a weights file has no reason to contain."""


class CheckpointFormatError(CheckpointError):
    """The file is readable but is not a flat name -> tensor mapping."""


class CheckpointMismatchError(CheckpointError):
    """The file's tensor names or shapes do not match the network."""


class NonFiniteCheckpointError(CheckpointFormatError):
    """The file holds NaN or infinite values in a floating-point tensor."""


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for ``bytes`` (latin1 only)."""
    if encoding.lower().replace("_", "-") not in (
        "latin1",
        "latin-1",
        "iso-8859-1",
        "iso8859-1",
        "l1",
    ):
        raise UnsafeCheckpointError(
            f"_codecs.encode with encoding {encoding!r} refused (only latin1 is allowed)"
        )
    return codecs.encode(text, "latin1", errors)


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]  # numpy(._core|.core).multiarray._reconstruct
_SCALAR = np.float32(0).__reduce__()[0]  # numpy(._core|.core).multiarray.scalar
_ALLOWED_GLOBALS = {
    **{
        (mod, "_reconstruct"): _RECONSTRUCT
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
    },
    **{(mod, "scalar"): _SCALAR for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class NumpyDictUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays (latin1 strings, Python 2 or 3 pickles)."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str):  # noqa: D102 (pickle API)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refused to load {self.path}: it references the global {module}.{name}, "
                "but a .pkl weights file may only contain a dict of numpy arrays. "
                "Do not load it with plain pickle; get the file from the "
                'source named in the README section "Pre-trained weights".'
            ) from None

    def persistent_load(self, pid):  # noqa: D102 (pickle API)
        raise UnsafeCheckpointError(
            f"refused to load {self.path}: it uses pickle persistent ids ({pid!r})"
        )


def read_pkl(path: Path) -> dict[str, torch.Tensor]:
    """Read a latin1 pickle of name -> numpy array with :class:`NumpyDictUnpickler`."""
    with open(path, "rb") as f:
        try:
            obj = NumpyDictUnpickler(f, path).load()
        except UnsafeCheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
            raise CheckpointFormatError(
                f"cannot read {path} as a pickle of numpy arrays: {err}"
            ) from err
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(
            f"{path} holds a {type(obj).__name__}, expected a dict name -> numpy array"
        )
    out = {}
    for key, value in obj.items():
        arr = np.asarray(value) if isinstance(value, np.generic) else value
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise CheckpointFormatError(
                f"{path}: entry {key!r} is a {type(arr).__name__} {getattr(arr, 'dtype', '')}, "
                "expected a numeric numpy array"
            )
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if not (arr.flags.writeable and arr.flags.c_contiguous):
            arr = np.array(arr, copy=True, order="C")
        out[str(key)] = torch.from_numpy(arr)
    return out


def read_pth(path: Path) -> dict[str, torch.Tensor]:
    """Read a ``torch.save``d state_dict with ``torch.load(weights_only=True)``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if not found:  # not a pickle of forbidden objects: not a torch.save file at all
            raise CheckpointFormatError(
                f"cannot read {path} with torch.load: not a torch.save file ({err})"
            ) from err
        raise UnsafeCheckpointError(
            f"refused to load {path}: torch.load(weights_only=True) found something "
            "other than tensors "
            f"(the global {found.group(1)}). Weights files must hold "
            "torch.save(model.state_dict(), path), never a whole model or custom objects."
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointFormatError(f"cannot read {path} with torch.load: {err}") from err
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(
            f"{path} holds a {type(obj).__name__}, expected a state_dict (name -> tensor)"
        )
    bad = [(k, type(v).__name__) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        listed = ", ".join(f"{k!r} ({t})" for k, t in bad[:SHOW])
        raise CheckpointFormatError(
            f"{path}: {len(bad)} entries are not tensors: {listed}. "
            "Expected a flat state_dict; if this is a training checkpoint, "
            "save its model state_dict alone."
        )
    return {str(k): v for k, v in obj.items()}


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Safely read a weights file into a flat name -> tensor dict, ``module.`` stripped.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError / CheckpointFormatError: see module docstring.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        state = read_pkl(path)
    elif suffix in (".pth", ".pt"):
        state = read_pth(path)
    else:
        raise CheckpointFormatError(
            f"{path}: unknown weights format {suffix!r}; expected .pkl, .pth or .pt"
        )
    check_finite_state(state, path)
    return {k.removeprefix("module."): v for k, v in state.items()}


def check_finite_state(state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Raise :class:`NonFiniteCheckpointError` if a floating-point tensor holds NaN or +-inf.

    The message names up to :data:`SHOW` tensors with their counts of NaN, +inf and -inf.
    """
    bad = []
    for key, value in state.items():
        if not value.is_floating_point() or bool(torch.isfinite(value).all()):
            continue
        counts = {
            "NaN": int(torch.isnan(value).sum()),
            "+inf": int(torch.isposinf(value).sum()),
            "-inf": int(torch.isneginf(value).sum()),
        }
        found = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        bad.append(f"{key!r} ({found} of {value.numel()})")
    if bad:
        raise NonFiniteCheckpointError(
            f"refused to load {path}: {len(bad)} tensors hold non-finite values: "
            f"{', '.join(bad[:SHOW])}{' ...' if len(bad) > SHOW else ''}. The weights are broken "
            "(diverged training, corrupted or tampered file); use an intact copy of the checkpoint"
        )


def load_weights(
    net: nn.Module, path: str | os.PathLike, network_name: str | None = None, assign: bool = False
) -> nn.Module:
    """Load a weights file into ``net`` strictly (after the conversions of the module docstring).

    Args:
        net: the freshly built network (may live on the meta device when ``assign``).
        path: ``.pkl`` / ``.pth`` / ``.pt`` file.
        network_name: registered name of ``net``, for the error message.
        assign: adopt the file's tensors (cast to the network's dtypes) instead of
            copying into the existing ones; lets callers skip the random init by
            building ``net`` on the meta device.

    Returns:
        ``net`` (loaded in place).
    """
    path = Path(path)
    return load_state(net, read_checkpoint(path), path, network_name, assign)


def load_state(
    net: nn.Module,
    state: dict[str, torch.Tensor],
    source: str | os.PathLike,
    network_name: str | None = None,
    assign: bool = False,
) -> nn.Module:
    """Load a name -> tensor dict into ``net`` strictly (the checks and conversions of load_weights)

    Args:
        net: the network (may live on the meta device when ``assign``).
        state: the tensors; ``module.`` prefixes must already be stripped.
        source: where ``state`` came from, for the error messages.
        network_name: registered name of ``net``, for the error message.
        assign: adopt the tensors instead of copying (see :func:`load_weights`).

    Returns:
        ``net`` (loaded in place).
    """
    path = source
    state = dict(state)
    expected = net.state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros(value.shape, dtype=value.dtype)
    ignored = tuple(getattr(net, "ignored_checkpoint_prefixes", ()))
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(ignored)}
    check_state_dict(
        state, expected, path, network_name or getattr(net, "network_name", type(net).__name__)
    )
    if assign:  # keep the network's dtypes (e.g. fp32 params from an fp16 file)
        state = {
            k: v.to(expected[k].dtype) if v.is_floating_point() else v for k, v in state.items()
        }
    net.load_state_dict(state, strict=True, assign=assign)
    left = [n for n, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointMismatchError(
            f"{path}: no values for {', '.join(left[:SHOW])} (still on the meta device)"
        )
    return net


def check_state_dict(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    network_name: str,
) -> None:
    """Raise :class:`CheckpointMismatchError` unless names and shapes agree exactly."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or misshaped):
        return
    lines = [f"{path} does not fit network {network_name!r}:"]
    if missing:
        lines.append(
            f"  {len(missing)} missing tensors (in the network, not in the file): "
            f"{', '.join(missing[:SHOW])}"
        )
    if unexpected:
        lines.append(
            f"  {len(unexpected)} unexpected tensors (in the file, not in the network): "
            f"{', '.join(unexpected[:SHOW])}"
        )
    if misshaped:
        lines.append(f"  {len(misshaped)} tensors with a different shape:")
        lines += [
            f"    {k}: network expects {tuple(expected[k].shape)}, file has {tuple(state[k].shape)}"
            for k in misshaped[:SHOW]
        ]
    lines.append("  " + guess_network(state))
    raise CheckpointMismatchError("\n".join(lines))


@cache
def _signature(name: str) -> frozenset[tuple[str, tuple[int, ...]]]:
    """(key, shape) pairs of a registered network at its defaults, built on the meta device."""
    from models.registry import build_network, on_meta

    with on_meta():
        net = build_network(name)
    return frozenset(
        (k, tuple(v.shape))
        for k, v in net.state_dict().items()
        if not k.endswith("num_batches_tracked")
    )


def guess_network(state: Mapping[str, torch.Tensor]) -> str:
    """A sentence naming the registered network(s) whose default tensors best match ``state``."""
    from models.registry import get_spec, list_networks

    found = frozenset(
        (k, tuple(v.shape)) for k, v in state.items() if not k.endswith("num_batches_tracked")
    )
    scores: dict[frozenset, tuple[float, list[str]]] = {}
    for name in list_networks():
        if get_spec(name).factory is not None:  # galleries: built around another net, no file
            continue
        sig = _signature(name)
        score = len(found & sig) / max(len(found | sig), 1)
        scores.setdefault(sig, (score, []))[1].append(name)
    best = max(scores.values(), key=lambda s: s[0], default=(0.0, []))
    if best[0] == 0:
        return "The file's tensors match no registered network."
    return (
        f"The file looks like {' / '.join(map(repr, best[1]))} "
        f"({best[0]:.0%} of names and shapes in common); "
        "load it with that name, or pass matching architecture overrides."
    )
