"""One pair from files to explanation (read -> align -> explain), and the canvas decisions of a run.

The run loop's per-pair step (:class:`utils.run.runner.PairTask`) and any
single-pair caller use the same functions:

    >>> names = {"verification": "SFace", "recognition": "SFace-gallery",
    ...          "attribute": "real-attributes"}
    >>> canvas = plan_canvas(names, align="auto")
    >>> aligner = canvas.aligner()                       # a utils.faces.canvas.CanvasAligner
    >>> prepare_attribute_net(nets.attribute, aligner)   # A.set_canvas_template(...)
    >>> result = explain_files(path1, path2, nets, config, aligner, pair_index=0)
    >>> result.explanation.similarity, result.canvases[0].method
    (0.71..., 'yunet')

**The canvas** (BRIEF interface 4) is the image every map, mask and erasure of
one side lives on (:mod:`utils.faces.canvas`). Its template is the verification
net's (``net.alignment``), or, when that net declares none, the recognition
net's; ``None`` when no net declares one (the face-world nets: images are used
as read). Every net that declares a template must read that canvas with the
right geometry: the same template, or the same template at another scale
(``arcface-112`` / ``vggface2-224``, which the nets' own resizing handles).
Otherwise :func:`plan_canvas` refuses before any work (exit 2) and names the
fix. There is no per-image warp between templates: an ``arcface-112`` crop
lacks the bottom ~12% of dlib's 150 chip and dlib's chip lacks the top ~18% of
the ArcFace crop, so a net of the other template would read a face with a black
band (numbers: the template corners mapped through dlib's mean face,
:func:`utils.faces.templates.template_points`). An attribute net with
``set_canvas_template`` (``real-attributes``) adapts itself to the canvas
(:func:`prepare_attribute_net`) and is not checked.

Failures carry the step that failed: :class:`PairStageError` ``.stage`` is
``"read"``, ``"align"`` or ``"explain"`` (the run loop records the same stage
names in ``failures.jsonl``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from utils.faces.canvas import Canvas, CanvasAligner, same_geometry
from utils.run.folder import UsageError, sha256_file

#: Roles whose net's template the canvas takes, first declared wins (:func:`plan_canvas`).
SOURCE_ROLES = ("verification", "evidential", "recognition")
#: Record keys of the alignment of a pair (:func:`alignment_fields`).
ALIGNMENT_KEYS = ("align-template", "align-method", "align-fallback", "align-estimated")


@dataclass(frozen=True)
class CanvasPlan:
    """What a run decided about canvases before any work.

    Attributes:
        template: the template the nets declare for the canvas (``None``: none declares one).
        source: ``"<role> net <name>"`` whose template it is (``None`` without template).
        align: the ``--align`` method.
        templates: ``{role: template}`` every net declares (``None`` = takes any image).
    """

    template: str | None
    source: str | None
    align: str
    templates: dict[str, str | None]

    @property
    def canvas_template(self) -> str | None:
        """The template canvases are aligned to (``None`` with ``--align none``: as read)."""
        return None if self.align == "none" else self.template

    def aligner(
        self,
        landmarks: dict[str, np.ndarray] | None = None,
        landmark_root: str | os.PathLike | None = None,
    ) -> CanvasAligner:
        """The :class:`CanvasAligner` of this plan (landmarks: a dataset's table, see there)."""
        return CanvasAligner(self.template, self.align, landmarks, landmark_root)


def _alignment_of(name: str, role: str) -> str | None:
    from models.registry import network_alignment

    try:
        return network_alignment(name)
    except ValueError as err:
        raise UsageError(f"--{role}-net: {err}") from None


def _adapts(name: str) -> bool:
    """Whether the registered net ``name`` adapts to any canvas (has ``set_canvas_template``)."""

    from models.registry import build_network, on_meta

    with on_meta():
        return hasattr(build_network(name), "set_canvas_template")


def plan_canvas(
    names: Mapping[str, str | None],
    align: str = "auto",
    sources: Sequence[str] = SOURCE_ROLES,
) -> CanvasPlan:
    """The canvas template of a run from the networks' names (no weights read); see the module
    docstring.

    Args:
        names: ``{role: registered name}`` (``None``: the role has no net in this run), e.g.
            ``{"verification": "SFace", "recognition": "SFace-gallery", "attribute": ...}``.
        align: the ``--align`` method.
        sources: roles whose template the canvas takes, first declared wins (the verification
            net in Sim2Word, the evidential net in the uncertainty experiment, then R).

    Raises:
        UsageError: unknown name, or a net whose template does not fit the canvas (the message
            names the fix).
    """
    templates = {
        role: _alignment_of(name, role)
        for role, name in names.items()
        if name is not None and not (role == "attribute" and _adapts(name))
    }
    return plan_templates(templates, names, align, sources)


def plan_nets(nets: Any, align: str = "auto", sources: Sequence[str] = SOURCE_ROLES) -> CanvasPlan:
    """:func:`plan_canvas` of networks already built (``nets.<role>.alignment``; an attribute
    net with ``set_canvas_template`` adapts and is not checked), for nets that are not
    registered by name (e.g. a :class:`utils.explain.sim2word.Sim2WordNets` built in Python).

    Raises:
        UsageError: a net whose template does not fit the canvas.
    """
    roles = ("verification", "evidential", "recognition", "attribute")
    present = {role: getattr(nets, role, None) for role in roles}
    present = {role: net for role, net in present.items() if net is not None}
    names = {
        role: str(getattr(net, "network_name", type(net).__name__)) for role, net in present.items()
    }
    templates = {
        role: getattr(net, "alignment", None)
        for role, net in present.items()
        if not (role == "attribute" and hasattr(net, "set_canvas_template"))
    }
    return plan_templates(templates, names, align, sources)


def plan_templates(
    templates: Mapping[str, str | None],
    names: Mapping[str, str | None],
    align: str = "auto",
    sources: Sequence[str] = SOURCE_ROLES,
) -> CanvasPlan:
    """The :class:`CanvasPlan` of ``{role: template the role's net declares}`` (the common core
    of :func:`plan_canvas` and :func:`plan_nets`); raises :class:`UsageError` on a mismatch."""
    templates = dict(templates)
    source_role = next((r for r in sources if templates.get(r)), None)
    template = templates[source_role] if source_role else None
    for role, own in templates.items():
        if not same_geometry(own, template):
            raise UsageError(_mismatch(role, names[role], own, source_role, names, template))
    source = f"{source_role} net {names[source_role]}" if source_role else None
    return CanvasPlan(template, source, align, templates)


def _mismatch(
    role: str, name: str, own: str, source_role: str, names: dict[str, Any], template: str
) -> str:
    from models.registry import list_networks

    fix = f"choose a {role} net aligned to {template}"
    base = names[source_role]
    if role == "recognition" and f"{base}-gallery" in list_networks():
        fix = f"--recognition-net {base}-gallery (the gallery classifier of {base})"
    if role == "recognition" and name.endswith("-gallery") and source_role == "verification":
        fix += f", or --verification-net {name[: -len('-gallery')]}"
    return (
        f"the {role} net {name} reads faces aligned to {own}, but the canvas (the image every "
        f"map, mask and erasure of a pair lives on) is aligned to {template}, the template of the "
        f"{source_role} net {base}; the two crops do not cover the same part of the face, so "
        f"{name} would read the wrong geometry. Fix: {fix}; networks of one template work together"
    )


def prepare_attribute_net(net: Any, aligner: CanvasAligner) -> None:
    """Tell an attribute net that adapts to canvases (``set_canvas_template``) what they are:
    the aligner's template, or ``None`` (images as read: the net finds the face itself)."""
    setter = getattr(net, "set_canvas_template", None)
    if setter is not None:
        setter(aligner.template)


def landmarker_files(aligner: CanvasAligner) -> list[dict[str, Any]]:
    """``{"role": "landmarker", "name", "path", "sha256"}`` of the detector model files the
    aligner may use (for the run's config and fingerprint).

    Raises:
        UsageError: a landmarker named by ``--align`` is not installed.
    """
    from models.packages import PackageFileError, package_file
    from utils.faces.align import DetectorUnavailableError, ensure_detector
    from utils.faces.detect import DetectorUnavailable, ensure_available

    if not aligner.aligns or aligner.landmarks is not None:
        return []
    wanted = ("yunet", "dlib") if aligner.method == "auto" else (aligner.method,)
    out = []
    for method in wanted:
        try:
            if method == "haar":
                ensure_detector()
                continue
            ensure_available(method)
            path = package_file({"yunet": "yunet", "dlib": "dlib-shape5"}[method])
        except (DetectorUnavailable, DetectorUnavailableError, PackageFileError) as err:
            if aligner.method == "auto":  # auto falls back to the others, and says so per image
                continue
            raise UsageError(f"--align {method}: {err}") from None
        out.append(
            {"role": "landmarker", "name": method, "path": str(path), "sha256": sha256_file(path)}
        )
    return out


def read_landmark_table(path: str | os.PathLike, fmt: str) -> tuple[dict[str, np.ndarray], str]:
    """``(table, sha256 of the file)`` of ``--landmarks FILE --landmark-format FMT``; raises
    :class:`UsageError`."""
    from utils.faces.landmarks import read_landmarks

    try:
        table = read_landmarks(path, fmt)
        digest = sha256_file(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"--landmarks {path}: {err}") from None
    return table, digest


def aligner_from_args(args: Any, plan: CanvasPlan) -> CanvasAligner:
    """The run's :class:`CanvasAligner` from ``--landmarks``, ``--landmark-format`` and
    ``--image-root`` (flags a script lacks count as absent); raises :class:`UsageError`."""
    landmarks = getattr(args, "landmarks", None)
    fmt = getattr(args, "landmark_format", None)
    if (landmarks is None) != (fmt is None):
        raise UsageError("--landmarks FILE and --landmark-format celeba|vggface2|csv go together")
    if landmarks is not None and plan.align != "auto":
        raise UsageError(
            f"--landmarks gives the landmarks; use it with --align auto, not --align {plan.align}"
        )
    if landmarks is not None and plan.canvas_template is None:
        raise UsageError(
            "--landmarks needs a network that declares a face template to align to "
            "(e.g. --verification-net SFace); the networks of this run take images as read"
        )
    table = read_landmark_table(landmarks, fmt)[0] if landmarks is not None else None
    return plan.aligner(table, getattr(args, "image_root", None))


# --------------------------------------------------------------------------------------- one pair
class PairStageError(RuntimeError):
    """A step of one pair failed. ``stage``: "read", "align" or "explain"; ``cause``: the error."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"[{stage}] {type(cause).__name__}: {cause}")
        self.stage, self.cause = stage, cause


@dataclass
class PairResult:
    """One explained pair: the explanation and the two canvases it lives on."""

    explanation: Any  # utils.explain.sim2word.PairExplanation
    canvases: tuple[Canvas, Canvas]


@dataclass(frozen=True)
class ReadImage:
    """An image as read: pixels, path (``""`` for an array given in memory), and read size /
    file size (for landmark files)."""

    image: np.ndarray
    path: str
    scale: tuple[float, float] = (1.0, 1.0)


def read_pair(path1: str, path2: str) -> tuple[ReadImage, ReadImage]:
    """Read both images (:func:`utils.faces.image_io.read_image_info`); raises
    ``ImageReadError``."""
    from utils.faces.image_io import read_image_info

    out = []
    for path in (path1, path2):
        image, info = read_image_info(path)
        out.append(ReadImage(image, str(path), info.scale))
    return out[0], out[1]


def align_pair(images: Sequence[ReadImage], aligner: CanvasAligner) -> tuple[Canvas, Canvas]:
    """The canvases of two read images; raises :class:`utils.faces.canvas.AlignmentError`."""
    c1, c2 = (aligner.canvas(r.image, r.path or None, r.scale) for r in images)
    return c1, c2


def explain_read_pair(
    images: Sequence[ReadImage],
    nets: Any,
    config: Any,
    aligner: CanvasAligner,
    pair_index: int = 0,
    stage: Callable[[str], None] | None = None,
) -> PairResult:
    """Align two read images and explain the pair on their canvases (METHOD.md section 3).

    Args:
        images: the two images as read (:func:`read_pair`).
        nets: :class:`utils.explain.sim2word.Sim2WordNets` (attribute net prepared with
            :func:`prepare_attribute_net`).
        config: :class:`utils.explain.sim2word.Sim2WordConfig`.
        aligner: the run's :class:`CanvasAligner`.
        pair_index: seeds the random fill.
        stage: called with "align", then "explain", as each step starts.

    Raises:
        AlignmentError: no face found in one image (step "align"); errors of the explanation.
    """
    from utils.explain.sim2word import explain_pair

    note = stage or (lambda _: None)
    note("align")
    c1, c2 = align_pair(images, aligner)
    note("explain")
    ex = explain_pair(c1.image, c2.image, nets, config, pair_index=pair_index)
    return PairResult(ex, (c1, c2))


def explain_files(
    path1: str | os.PathLike,
    path2: str | os.PathLike,
    nets: Any,
    config: Any,
    aligner: CanvasAligner,
    pair_index: int = 0,
) -> PairResult:
    """Read, align and explain one pair of image files.

    Raises:
        PairStageError: with ``stage`` "read", "align" or "explain" and the original ``cause``.
    """
    current = ["read"]
    try:
        images = read_pair(str(path1), str(path2))
        return explain_read_pair(
            images, nets, config, aligner, pair_index, stage=lambda s: current.__setitem__(0, s)
        )
    except Exception as err:  # every failure is reported with its step
        raise PairStageError(current[0], err) from err


def alignment_fields(aligner: CanvasAligner, canvases: Sequence[Canvas]) -> dict[str, Any]:
    """The record keys of a pair's alignment (:data:`ALIGNMENT_KEYS`)."""
    return {
        "align-template": aligner.template,
        "align-method": [c.method for c in canvases],
        "align-fallback": [bool(c.fallback) for c in canvases],
        "align-estimated": [bool(c.estimated) for c in canvases],
    }


# ------------------------------------------------------------------------------------ galleries
def pair_list_gallery(
    items: Sequence[Any], image_root: str | os.PathLike | None
) -> list[tuple[str, str]]:
    """``(path, identity)`` of every image of a pair list, identity = its folder.

    The folder is the image's parent folder relative to ``image_root`` (``deepface_01`` for
    ``deepface_01/1.jpg``; ``n000002`` in VGGFace2's layout); images outside the root are named
    by their parent folder's name. Bad list lines are skipped.
    """
    root = Path(image_root).resolve() if image_root is not None else None
    seen: dict[str, str] = {}
    for item in items:
        if getattr(item, "error", None) is not None:
            continue
        for path in (item.path1, item.path2):
            if path in seen:
                continue
            parent = Path(path).resolve().parent
            ident = parent.name
            if root is not None:
                with contextlib.suppress(ValueError):  # outside the root: the folder's name
                    ident = parent.relative_to(root).as_posix()
            seen[path] = ident if ident not in ("", ".") else parent.name
    return list(seen.items())


def gallery_cache_file(run_dir: Path, name: str, aligner: CanvasAligner) -> Path:
    """Where a run keeps its gallery embeddings (in the run folder; keyed by net and alignment)."""
    key = hashlib.sha256(aligner.cache_key.encode()).hexdigest()[:8]
    return run_dir / f"gallery-{name}-{key}.npz"
