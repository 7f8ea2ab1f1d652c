"""Explain one pair of images from Python: its words, scores, maps, figure and record.

:func:`explain_images` is what ``explain.py IMG1 IMG2`` runs, returned as data
(:class:`PairWords`) instead of printed. It is one pair of the run loop
(:class:`utils.run.runner.PairTask`): the same canvases, the same ranking, the
same record.

* **canvases**: both images are aligned to the run's canvas exactly like the
  run loop (:func:`utils.run.pipeline.plan_canvas` /
  :func:`~utils.run.pipeline.plan_nets`, a
  :class:`utils.faces.canvas.CanvasAligner`,
  :func:`~utils.run.pipeline.explain_read_pair`): the face aligned to the
  verification net's template (``net.alignment``, e.g. SFace: ``arcface-112``;
  YuNet or dlib landmarks, ``align=``/``--align``), or the image as read when no
  net declares one (the face-world demo nets). The record carries the
  ``align-*`` keys.
* ``words``: per image, its present attributes ranked by
  :func:`utils.explain.ranking.rank_pair` under ``ranking`` (default
  :class:`~utils.explain.ranking.RankingConfig`: the paper's ranking, the run
  loop's default): ties marked, never ranked. They equal the record's
  ``words-image1`` / ``words-image2``.
* ``similarity`` / ``score``: the pair's cosine and its 1 - arccos(s)/pi score;
* ``explanation``: every map (H_t, H_f, H_d, H_attr, J, masks per direction,
  :class:`utils.explain.sim2word.PairExplanation`) on the canvases
  (``canvases``);
* ``record``: the per-pair JSON record of the experiment scripts
  (:func:`utils.run.records.make_record`; ``match`` only when it is given);
* ``figure`` / ``record_path``: the files written when ``output_dir`` is given
  (the composite figure of :mod:`utils.explain.composite` and the record).

Networks: ``nets=None`` loads the committed face-world demo networks; a
mapping ``{"recognition": name, "attribute": name, "verification": name}``
loads registered networks (a ``<net>-gallery`` recognition net needs
``gallery=DIR``, one sub-folder of photos per identity, aligned like the
pair); a :class:`utils.explain.sim2word.Sim2WordNets` is used as it is.

Example:
    >>> pw = explain_images("a.jpg", "b.jpg", output_dir="outputs/explain")  # doctest: +SKIP
    >>> [(w.word, round(w.score_change, 3)) for w in pw.top(1, 3)]           # doctest: +SKIP
    [('Big Nose', 0.068), ('Bangs', 0.041), ('Senior', 0.012)]
    >>> pw.explanation.directions[0].H_d.shape, pw.figure                    # doctest: +SKIP
    ((128, 128), PosixPath('outputs/explain/a-vs-b.png'))
    >>> pw = explain_images("a.jpg", "b.jpg", {"verification": "SFace",      # doctest: +SKIP
    ...     "recognition": "SFace-gallery", "attribute": "real-attributes"}, gallery="faces/")
    >>> pw.record["align-method"]                                            # doctest: +SKIP
    ['yunet', 'yunet']
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utils.explain.ranking import (
    UNCHANGED,
    RankingConfig,
    WordRank,
    format_words,
    select_words,
    verification_score,
)
from utils.explain.sim2word import PairExplanation, Sim2WordConfig, Sim2WordNets
from utils.faces.canvas import Canvas, CanvasAligner
from utils.run.folder import safe_name
from utils.run.pipeline import ALIGNMENT_KEYS, ReadImage

log = logging.getLogger("sim2word")

#: The committed face-world demo networks (the default of every pair script).
DEMO_NETS: dict[str, str] = {
    "recognition": "FaceWorld-recognition",
    "attribute": "FaceWorld-attribute",
    "verification": "FaceWorld-verification",
}
ImageInput = str | os.PathLike | np.ndarray


@dataclass
class PairWords:
    """One explained pair as data (module docstring).

    Attributes:
        names: how the two images are named (``<folder>/<file>``, or ``"image 1"``/``"image 2"``).
        similarity: cos(V(I1), V(I2)).
        words: per image, every present attribute as a
            :class:`utils.explain.ranking.WordRank`, in the order of
            :func:`utils.explain.ranking.rank_pair` (the record's ``words-image<i>``).
        explanation: the maps and similarities of both directions.
        record: the per-pair JSON record.
        vocabulary: the attribute net's vocabulary name.
        figure: the composite figure written (``None`` when nothing was written).
        record_path: the record written (``None`` when nothing was written).
        networks: ``{role: network name}``.
        ranking: the ranking mode of ``words``.
        canvases: the two canvases the pair was explained on (aligned faces or images as read).
    """

    names: tuple[str, str]
    similarity: float
    words: tuple[list[WordRank], list[WordRank]]
    explanation: PairExplanation
    record: dict[str, Any]
    vocabulary: str
    figure: Path | None = None
    record_path: Path | None = None
    networks: dict[str, str] = field(default_factory=dict)
    ranking: str = "paper"
    canvases: tuple[Canvas, Canvas] | None = None

    @property
    def score(self) -> float:
        """The pair's similarity on the [0, 1] scale 1 - arccos(s)/pi."""
        return float(verification_score(self.similarity))

    def top(self, image: int, k: int | None = 5) -> list[WordRank]:
        """The best ``k`` words of ``image`` (1 or 2) that are explanations (ties skipped)."""
        return select_words(self.words[_side(image)], k)

    def ties(self, image: int) -> list[WordRank]:
        """The words of ``image`` whose erasure leaves the score unchanged (not explanations)."""
        return [w for w in self.words[_side(image)] if w.tie == UNCHANGED]

    def as_dict(self, k: int | None = None) -> dict[str, Any]:
        """JSON-ready summary: similarity, score, vocabulary, files, and per image its top ``k``
        words and its ties."""
        return {
            "images": list(self.names),
            "similarity": self.similarity,
            "score": self.score,
            "vocabulary": self.vocabulary,
            "ranking": self.ranking,
            "alignment": {k: self.record[k] for k in ALIGNMENT_KEYS if k in self.record},
            "networks": self.networks,
            "figure": None if self.figure is None else str(self.figure),
            "record": None if self.record_path is None else str(self.record_path),
            **{
                f"image{i}": {
                    "words": [w.as_dict() for w in self.top(i, k)],
                    "ties": [w.word for w in self.ties(i)],
                }
                for i in (1, 2)
            },
        }

    def report(self, k: int | None = 5) -> str:
        """The printed form: the pair's similarity, then each image's top ``k`` words and ties."""
        from utils.explain.composite import RANKING_RULES

        lines = [
            f"similarity cos s = {self.similarity:.4f}, score 1 - arccos(s)/pi = {self.score:.4f} "
            f"(vocabulary {self.vocabulary})",
        ]
        template = self.record.get("align-template")
        if template is not None:
            methods = ", ".join(self.record.get("align-method", []))
            lines.append(f"faces aligned to the {template} template (landmarks: {methods})")
        rule = (
            "the score after erasing each word's region (higher = explains more)"
            if self.ranking == "paper"
            else f"{RANKING_RULES.get(self.ranking, self.ranking)} (--ranking {self.ranking})"
        )
        for i in (1, 2):
            lines.append(
                f"image {i} ({self.names[i - 1]}) explained against image {3 - i}: words ranked by "
                f"{rule}"
            )
            lines += format_words(self.words[i - 1], k)
        for label, path in (("figure", self.figure), ("record", self.record_path)):
            if path is not None:
                lines.append(f"{label}: {_shown(path)}")
        return "\n".join(lines)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _side(image: int) -> int:
    if image not in (1, 2):
        raise ValueError(f"image must be 1 or 2, got {image!r}")
    return image - 1


def load_pair_nets(
    names: Mapping[str, str] | None = None,
    *,
    weights: Mapping[str, str | os.PathLike] | None = None,
    gallery: str | os.PathLike | None = None,
    device: str | None = None,
    aligner: CanvasAligner | None = None,
) -> Sim2WordNets:
    """The three networks of a pair by registered name (default :data:`DEMO_NETS`).

    Args:
        names: ``{role: registered name}``; missing roles get the demo nets.
        weights: ``{role: weights file}`` (default: each net's registered file).
        gallery: folder per identity, for a ``<net>-gallery`` recognition net.
        device: ``"cpu"``, ``"cuda"``... (default CPU).
        aligner: aligns the gallery's photos (default: to the embedding net's own template,
            ``--align auto``); pass the pair's aligner so gallery and pair share canvases.

    Raises:
        ValueError: a gallery net without ``gallery``, or ``gallery`` for another net.
    """
    from models import get_network

    names = {**DEMO_NETS, **(names or {})}
    weights = dict(weights or {})
    is_gallery = names["recognition"].endswith("-gallery")
    if is_gallery != (gallery is not None):
        raise ValueError(
            f"the recognition net {names['recognition']!r} "
            + (
                "needs gallery=DIR (one sub-folder of photos per identity)"
                if is_gallery
                else "takes no gallery (only <net>-gallery nets do)"
            )
        )
    nets = {
        role: get_network(names[role], weights=weights.get(role), device=device)
        for role in ("attribute", "verification")
    }
    if is_gallery:
        from utils.faces.gallery import get_gallery_network

        nets["recognition"] = get_gallery_network(
            names["recognition"],
            gallery,
            weights=weights.get("recognition"),
            device=device,
            align=aligner if aligner is not None else "auto",
        )
    else:
        nets["recognition"] = get_network(
            names["recognition"], weights=weights.get("recognition"), device=device
        )
    return Sim2WordNets(nets["recognition"], nets["attribute"], nets["verification"])


def _read(image: ImageInput) -> tuple[ReadImage, str]:
    """``(the image as read, its name)``; arrays are named ``""`` and have no path."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"an image array must be (H, W, 3) uint8 BGR, got {image.shape} {image.dtype}"
            )
        return ReadImage(image, ""), ""
    from utils.explain.visualize import display_name
    from utils.faces.image_io import read_image_info

    pixels, info = read_image_info(image)
    return ReadImage(pixels, str(image), info.scale), display_name(image)


def explain_images(
    img1: ImageInput,
    img2: ImageInput,
    nets: Sim2WordNets | Mapping[str, str] | None = None,
    *,
    config: Sim2WordConfig | None = None,
    ranking: RankingConfig | None = None,
    k: int = 3,
    output_dir: str | os.PathLike | None = None,
    name: str | None = None,
    match: int | None = None,
    gallery: str | os.PathLike | None = None,
    gallery_exclude_pair: bool = False,
    align: str = "auto",
    aligner: CanvasAligner | None = None,
    device: str | None = None,
) -> PairWords:
    """Explain one pair (METHOD.md section 3) as the run loop does, and return its words, scores,
    maps and record.

    Args:
        img1, img2: image files (any format :func:`utils.faces.image_io.read_image` reads) or
            (H, W, 3) uint8 BGR arrays (named ``image 1`` / ``image 2`` in the output).
        nets: the networks (module docstring); default the face-world demo nets.
        config: what to compute (default :class:`Sim2WordConfig`: top-1, theta 0.6, black fill).
        ranking: how the words are ranked (default :class:`RankingConfig`: the paper's).
        k: word panels per row of the figure.
        output_dir: where to write ``<name>.png`` (the composite figure) and ``<name>.json``
            (the record); ``None``: write nothing.
        name: file stem (default ``<folder1>-<stem1>-vs-<folder2>-<stem2>``, ``pair`` for arrays).
        match: 1 same identity, 0 different, ``None`` unknown (then the record has no
            ``match``).
        gallery: folder per identity, for a ``<net>-gallery`` recognition net named in ``nets``.
        gallery_exclude_pair: explain with identity means computed without the two images
            (leave-pair-out, :class:`utils.faces.gallery.LeaveOut`; gallery nets only).
        align: ``--align`` method (:data:`utils.faces.templates.ALIGN_METHODS`) of the canvas
            aligner built when ``aligner`` is not given.
        aligner: the canvas aligner (default: planned from the networks' templates,
            :func:`utils.run.pipeline.plan_canvas` / :func:`~utils.run.pipeline.plan_nets`).
        device: where to load named nets.

    Returns:
        :class:`PairWords`.

    Raises:
        utils.faces.image_io.ImageReadError: an image cannot be read.
        utils.faces.canvas.AlignmentError: no face found in an image that must be aligned.
        ValueError: bad arguments (an image array of the wrong type, a gallery for a non-gallery
            net, nets whose templates do not fit one canvas (:class:`UsageError`)...).
    """
    import contextlib

    from utils.explain.ranking import rank_pair
    from utils.run.pipeline import (
        alignment_fields,
        explain_read_pair,
        plan_canvas,
        plan_nets,
        prepare_attribute_net,
    )
    from utils.run.records import make_record

    config = config or Sim2WordConfig()
    ranking = ranking or RankingConfig()
    if not config.calculate_similarity:
        raise ValueError("explain_images needs similarities: config.calculate_similarity=True")
    names = dict(DEMO_NETS)
    if not isinstance(nets, Sim2WordNets):
        names.update(nets or {})
        aligner = aligner or plan_canvas(names, align).aligner()
        nets = load_pair_nets(names, gallery=gallery, device=device, aligner=aligner)
    else:
        names = {role: getattr(getattr(nets, role), "network_name", role) for role in names}
        aligner = aligner or plan_nets(nets, align).aligner()
    prepare_attribute_net(nets.attribute, aligner)
    (r1, name1), (r2, name2) = _read(img1), _read(img2)
    leave_out = contextlib.nullcontext()
    if gallery_exclude_pair:
        from utils.faces.gallery import LeaveOut

        if not hasattr(nets.recognition, "photos"):
            raise ValueError("gallery_exclude_pair needs a <net>-gallery recognition net")
        leave_out = LeaveOut(nets.recognition).excluding([r.path for r in (r1, r2) if r.path])
    with leave_out:
        result = explain_read_pair((r1, r2), nets, config, aligner)
    ex = result.explanation
    ranked = rank_pair(
        ex,
        tuple(c.image for c in result.canvases),
        nets.verification,
        ranking,
        discriminant=config.discriminant,
        erasing_method=config.erasing_method,
        seed=config.seed,
        pair_index=0,
    )
    record = make_record(
        ex,
        config,
        datasets="explain",
        recognition_net=names["recognition"],
        attribute_net=names["attribute"],
        verification_net=names["verification"],
        image_path1=r1.path,
        image_path2=r2.path,
        match=0 if match is None else int(match),
        pair_index=0,
        ranking=ranked,
        alignment=alignment_fields(aligner, result.canvases),
    )
    if match is None:
        record.pop("match")
    pw = PairWords(
        (name1 or "image 1", name2 or "image 2"),
        float(ex.similarity),
        (ranked.image1, ranked.image2),
        ex,
        record,
        getattr(ex.vocabulary, "name", "celeba30"),
        networks=names,
        ranking=ranked.mode,
        canvases=result.canvases,
    )
    if output_dir is not None:
        _write(pw, Path(output_dir), name or _stem(r1.path, r2.path), k, match)
    return pw


def _stem(path1: str, path2: str) -> str:
    """``<parent>-<stem>-vs-<parent>-<stem>`` of two image paths (``pair`` for arrays)."""
    if not path1 and not path2:
        return "pair"

    def part(path: str, default: str) -> str:
        p = Path(path)
        return safe_name(f"{p.parent.name}-{p.stem}" if p.parent.name else p.stem or default)

    return f"{part(path1, 'image1')}-vs-{part(path2, 'image2')}"


def _write(pw: PairWords, out: Path, stem: str, k: int, match: int | None) -> None:
    from utils.base.atomic import atomic_write_figure
    from utils.explain.composite import composite_figure
    from utils.run.records import write_record

    fig = composite_figure(
        pw.explanation, names=pw.names, k=k, match=match, words=pw.words, ranking=pw.ranking
    )
    pw.figure = atomic_write_figure(out / f"{stem}.png", fig, fast_png=True)
    pw.record_path = write_record(out / f"{stem}.json", pw.record)


# ------------------------------------------------------------------------------------------ CLI
DESCRIPTION = """Explain one pair of face images with attribute words (METHOD.md section 3).

Prints, for each image, its top words: the present attributes whose erasure
makes the image look most like the other image, with the score before ->
after erasing (1 - arccos(s)/pi) and the raw cosine; words whose erasure
leaves the score unchanged are listed as ties, not ranked. Writes the
composite figure <output-dir>/<name>.png and the record <name>.json. The pair
is explained exactly as one pair of Multi_Identity_topk.py: the same
alignment (--align), ranking (--ranking) and record.

Examples:
    python explain.py data/face_world/verification/049/1202-0.png \\
        data/face_world/verification/156/1202-0.png
    python explain.py ../shared/data/real_faces/deepface_01/1.jpg \\
        ../shared/data/real_faces/deepface_02/1.jpg --verification-net SFace \\
        --recognition-net SFace-gallery --attribute-net real-attributes \\
        --gallery ../shared/data/real_faces
"""


def build_parser(prog: str | None = None):
    """The flags of ``explain.py`` (:mod:`utils.run.cli` groups)."""
    from utils.explain.sim2word import PAPER_THETA
    from utils.run import cli

    p = cli.make_parser(
        DESCRIPTION,
        "Exit status: 0 done, 2 usage error (bad flag, unreadable image, no face found, weights).",
        prog,
    )
    p.add_argument("image1", type=Path, help="first image (any format; EXIF orientation applied)")
    p.add_argument("image2", type=Path, help="second image")
    nets = cli.add_network_flags(p, tuple(DEMO_NETS.items()))
    cli.add_verification_layer(nets)
    gallery = p.add_argument_group("gallery")
    cli.add_flag(
        gallery,
        "--gallery",
        type=Path,
        default=None,
        help="folder with one sub-folder of photos per identity: the identities of a "
        "<net>-gallery recognition net (e.g. SFace-gallery); its photos are aligned like the "
        "pair (--align) and their embeddings cached in --output-dir",
    )
    cli.add_flag(
        gallery,
        "--gallery-exclude-pair",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="explain with identity means computed without the two images (leave-pair-out; "
        "only matters when they are gallery photos) (default: %(default)s)",
    )
    align = cli.add_align_flags(p)
    cli.add_image_root(
        align, "folder the --landmarks paths are relative to (default: the paths as given)"
    )
    meth = p.add_argument_group("method")
    cli.add_heatmap_method(meth)
    cli.add_thresh(meth, PAPER_THETA, "a pixel is erased for attribute j where J[j] > thresh")
    cli.add_flag(
        meth,
        "--topk",
        type=cli.positive_int,
        default=1,
        help="k: class set = the k identities with the largest logits (default: %(default)s)",
    )
    cli.add_erasing_method(meth)
    cli.add_ranking_flags(meth)
    out = p.add_argument_group("output")
    cli.add_output_dir(
        out,
        cli.DEFAULT_OUTPUT_DIR / "explain",
        "folder of the figure and the record (default: <repo>/outputs/explain)",
    )
    cli.add_flag(
        out,
        "--name",
        default=None,
        help="file stem of the outputs (default: <folder1>-<stem1>-vs-<folder2>-<stem2>)",
    )
    cli.add_flag(
        out,
        "--words",
        type=cli.positive_int,
        default=5,
        help="words printed per image (default: %(default)s)",
    )
    cli.add_flag(
        out,
        "--figure-words",
        type=cli.positive_int,
        default=3,
        help="word panels per image in the figure (default: %(default)s)",
    )
    cli.add_flag(
        out,
        "--match",
        type=int,
        choices=(0, 1),
        default=None,
        help="1 same identity, 0 different, if known (shown in the figure, kept in the record)",
    )
    cli.add_flag(out, "--json", action="store_true", help="print the words as JSON instead of text")
    cli.add_device(out, "cpu")
    cli.add_seed(out, "seed of everything (random fill)")
    return p


def load_explain_nets(args: argparse.Namespace, aligner: CanvasAligner, device) -> Sim2WordNets:
    """The networks of ``explain.py``'s flags, as the run loop loads them
    (:func:`utils.run.networks.load_networks`; a gallery net's photos aligned by ``aligner`` and
    their embeddings cached in ``--output-dir``); raises :class:`UsageError`."""
    from utils.run.folder import UsageError
    from utils.run.networks import (
        is_gallery_network,
        load_networks,
        plan_gallery_folder,
        sim2word_nets,
    )
    from utils.run.pipeline import gallery_cache_file

    is_gallery = is_gallery_network(args.recognition_net)
    if is_gallery != (args.gallery is not None):
        raise UsageError(
            f"--recognition-net {args.recognition_net} "
            + (
                "needs --gallery DIR (one sub-folder of photos per identity)"
                if is_gallery
                else "takes no --gallery (only <net>-gallery nets do)"
            )
        )
    if args.gallery_exclude_pair and not is_gallery:
        raise UsageError(
            "--gallery-exclude-pair is used by a <net>-gallery recognition net (e.g. "
            f"SFace-gallery), not by {args.recognition_net}; drop it or pick a gallery net"
        )
    gallery = None
    if is_gallery:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        gallery = (
            plan_gallery_folder(args.gallery),
            aligner,
            gallery_cache_file(out, args.recognition_net, aligner),
        )
    args.progress = False
    loaded = load_networks(args, tuple(DEMO_NETS), device, gallery)
    nets = sim2word_nets(loaded, args)
    for role in DEMO_NETS:
        getattr(nets, role).network_name = getattr(args, f"{role}_net")
    return nets


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``explain.py``: parse, load the networks, explain, print; returns the exit status."""
    import json

    from utils.base.seeding import seed_everything
    from utils.faces.canvas import AlignmentError
    from utils.faces.image_io import ImageReadError
    from utils.run.folder import UsageError
    from utils.run.networks import resolve_device
    from utils.run.runner import canvas_plan, make_aligner, ranking_config, sim2word_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser(prog).parse_args(argv)
    seed_everything(args.seed)
    try:
        config = sim2word_config(args)
        ranking = ranking_config(args)
        aligner = make_aligner(args, canvas_plan(args))
        nets = load_explain_nets(args, aligner, resolve_device(args.device))
        pw = explain_images(
            args.image1,
            args.image2,
            nets,
            config=config,
            ranking=ranking,
            k=args.figure_words,
            output_dir=args.output_dir,
            name=args.name,
            match=args.match,
            gallery_exclude_pair=args.gallery_exclude_pair,
            aligner=aligner,
        )
    except (UsageError, ImageReadError, AlignmentError, ValueError) as err:
        log.error("%s", err)
        return 2
    print(json.dumps(pw.as_dict(args.words), indent=2) if args.json else pw.report(args.words))
    return 0
