"""The networks of a run from its flags: device, weight files (for the fingerprint), loading.

Every problem is a :class:`utils.run.folder.UsageError` (exit 2) raised before
any item is run, with the fix named in shell terms: a missing weights file
names ``--<role>-weights PATH`` and ``SIM2WORD_PRETRAINED=DIR``; a bad
``--<role>-arch``, ``--<role>-layer`` or ``--device`` names the flag.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.run.folder import UsageError, sha256_file


def resolve_device(spec: str | None, env: dict[str, str] | None = None) -> torch.device:
    """``--device``: ``cpu``, ``cuda`` or ``cuda:N``; ``None``: cuda (cuda:$LOCAL_RANK under
    torchrun) if available.

    Raises:
        UsageError: another device type (``mps``, ``meta``, ...), a malformed name, or CUDA not
        available.
    """
    env = os.environ if env is None else env
    if spec is None:
        return torch.device(
            f"cuda:{int(env.get('LOCAL_RANK', 0) or 0)}" if torch.cuda.is_available() else "cpu"
        )
    m = re.fullmatch(r"\s*(cpu|cuda)(?::(\d+))?\s*", str(spec))
    if m is None or (m.group(1) == "cpu" and m.group(2) is not None):
        raise UsageError(
            f"--device must be cpu, cuda or cuda:N, got {spec!r} (other device types such as mps "
            "or meta are not supported)"
        )
    if m.group(1) == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(
            f"--device {spec} requested but CUDA is not available here; use --device cpu"
        )
    index = int(m.group(2) or 0)
    if index >= torch.cuda.device_count():
        raise UsageError(
            f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here "
            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
        )
    return torch.device("cuda", index)


def weights_file(name: str, weights: str | os.PathLike | None) -> Path:
    """The file ``get_network(name, weights)`` loads: ``weights``, or the registered file under
    the pre-trained folder."""
    from models.registry import default_weights_path, get_spec

    try:
        get_spec(name)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return Path(weights) if weights is not None else default_weights_path(name)


def weights_info(role: str, name: str, weights: str | os.PathLike | None) -> dict[str, Any]:
    """``{"role", "name", "path", "sha256"}`` of the weights file a role's network loads.

    Raises:
        UsageError: the file is missing (the message gives the flag and the environment variable to
        use).
    """
    from models.registry import PRETRAINED_ENV, README_SECTION

    path = weights_file(name, weights)
    if not path.is_file():
        where = (
            f"--{role}-weights {weights}"
            if weights is not None
            else f"the default location {path} (the pre-trained folder is "
            f"{os.environ.get(PRETRAINED_ENV) or 'pre-trained/ in the repository'})"
        )
        raise UsageError(
            f"weights of the {role} net {name!r} not found: {where}. Get the file (see the "
            f"{README_SECTION}), then pass --{role}-weights PATH, or put it at {path.name!s} under "
            f"a folder and run with {PRETRAINED_ENV}=DIR"
        )
    path = path.resolve()
    try:
        digest = sha256_file(path)
    except OSError as err:
        raise UsageError(
            f"cannot read the weights of the {role} net {name!r} ({path}): {err}"
        ) from None
    return {"role": role, "name": name, "path": str(path), "sha256": digest}


def load_network(args: argparse.Namespace, role: str, device: torch.device) -> nn.Module:
    """The network of ``role`` from ``--<role>-net``, ``--<role>-weights`` and ``--<role>-arch``.

    Raises:
        UsageError: unknown name, unreadable/unsafe/mismatched weights, bad architecture arguments.
    """
    from models import get_network

    name = getattr(args, f"{role}_net")
    arch = getattr(args, f"{role}_arch", None) or {}
    try:
        return get_network(name, weights=getattr(args, f"{role}_weights"), device=device, **arch)
    except FileNotFoundError:
        weights_info(role, name, getattr(args, f"{role}_weights"))  # raises with the shell advice
        raise
    except (ValueError, TypeError, RuntimeError, OverflowError, OSError) as err:
        hint = f" (check --{role}-arch {arch})" if arch else ""
        raise UsageError(
            f"cannot build the {role} net {name!r}: {type(err).__name__}: {err}{hint}"
        ) from None


def load_networks(
    args: argparse.Namespace, roles: tuple[str, ...], device: torch.device
) -> dict[str, nn.Module]:
    """``{role: network}`` for ``roles`` (:func:`load_network`), with ``--recognition-layer`` and
    ``--attribute-layer`` checked against the loaded nets. Raises :class:`UsageError`."""
    nets = {role: load_network(args, role, device) for role in roles}
    for role in ("recognition", "attribute"):
        if role in nets:
            check_layer(nets[role], getattr(args, f"{role}_layer", None), f"--{role}-layer")
    return nets


def check_layer(net: nn.Module, layer: str | None, flag: str) -> None:
    """:class:`UsageError` if ``layer`` (a ``--*-layer`` value) is not a submodule of ``net``."""
    from models.registry import resolve_layer

    if layer is None:
        return
    try:
        resolve_layer(net, layer)
    except ValueError as err:
        raise UsageError(f"{flag} {layer!r}: {err}") from None
