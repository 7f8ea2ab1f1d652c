"""Explain one pair of images from Python: its words, scores, maps, figure and record.

:func:`explain_images` is what ``explain.py IMG1 IMG2`` runs, returned as data
(:class:`PairWords`) instead of printed:

* ``words``: per image, its present attributes ranked by the similarity of the
  image with the attribute's region erased to the other image
  (:mod:`utils.explain.pair_words`; ties marked, never ranked);
* ``similarity`` / ``score``: the pair's cosine and its 1 - arccos(s)/pi score;
* ``explanation``: every map (H_t, H_f, H_d, H_attr, J, masks per direction,
  :class:`utils.explain.sim2word.PairExplanation`);
* ``record``: the per-pair JSON record of the experiment scripts
  (:func:`utils.run.records.make_record`; ``match`` only when it is given);
* ``figure`` / ``record_path``: the files written when ``output_dir`` is given
  (the composite figure of :mod:`utils.explain.composite` and the record).

Networks: ``nets=None`` loads the committed face-world demo networks; a
mapping ``{"recognition": name, "attribute": name, "verification": name}``
loads registered networks (a ``<net>-gallery`` recognition net needs
``gallery=DIR``, one sub-folder of photos per identity); a
:class:`utils.explain.sim2word.Sim2WordNets` is used as it is.

Images are used as read (the canvas every map and mask lives on). Networks
that declare a face template (``net.alignment``, e.g. SFace: ``arcface-112``)
expect faces already aligned to it: align them first
(``python align_faces.py ...``); a warning says so.

Example:
    >>> pw = explain_images("a.jpg", "b.jpg", output_dir="outputs/explain")  # doctest: +SKIP
    >>> [(w.word, round(w.score_change, 3)) for w in pw.top(1, 3)]           # doctest: +SKIP
    [('Big Nose', 0.068), ('Bangs', 0.041), ('Senior', 0.012)]
    >>> pw.explanation.directions[0].H_d.shape, pw.figure                    # doctest: +SKIP
    ((64, 64), PosixPath('outputs/explain/a-vs-b.png'))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utils.explain.pair_words import UNCHANGED, Word, format_words, top_ranked, verification_score
from utils.explain.sim2word import PairExplanation, Sim2WordConfig, Sim2WordNets, explain_pair
from utils.run.folder import safe_name

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
        words: per image, every present attribute as a :class:`utils.explain.pair_words.Word`:
            the ranked ones best first, then the ``"unchanged"`` ties.
        explanation: the maps and similarities of both directions.
        record: the per-pair JSON record.
        vocabulary: the attribute net's vocabulary name.
        figure: the composite figure written (``None`` when nothing was written).
        record_path: the record written (``None`` when nothing was written).
    """

    names: tuple[str, str]
    similarity: float
    words: tuple[list[Word], list[Word]]
    explanation: PairExplanation
    record: dict[str, Any]
    vocabulary: str
    figure: Path | None = None
    record_path: Path | None = None
    networks: dict[str, str] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """The pair's similarity on the [0, 1] scale 1 - arccos(s)/pi."""
        return float(verification_score(self.similarity))

    def top(self, image: int, k: int | None = 5) -> list[Word]:
        """The best ``k`` words of ``image`` (1 or 2) that are explanations (ties skipped)."""
        return top_ranked(self.words[_side(image)], k)

    def ties(self, image: int) -> list[Word]:
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
        lines = [
            f"similarity cos s = {self.similarity:.4f}, score 1 - arccos(s)/pi = {self.score:.4f} "
            f"(vocabulary {self.vocabulary})",
        ]
        for i in (1, 2):
            lines.append(
                f"image {i} ({self.names[i - 1]}) explained against image {3 - i}: words ranked by "
                "the score after erasing each word's region (higher = explains more)"
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
) -> Sim2WordNets:
    """The three networks of a pair by registered name (default :data:`DEMO_NETS`).

    Args:
        names: ``{role: registered name}``; missing roles get the demo nets.
        weights: ``{role: weights file}`` (default: each net's registered file).
        gallery: folder per identity, for a ``<net>-gallery`` recognition net.
        device: ``"cpu"``, ``"cuda"``... (default CPU).

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
            names["recognition"], gallery, weights=weights.get("recognition"), device=device
        )
    else:
        nets["recognition"] = get_network(
            names["recognition"], weights=weights.get("recognition"), device=device
        )
    return Sim2WordNets(nets["recognition"], nets["attribute"], nets["verification"])


def _read(image: ImageInput) -> tuple[np.ndarray, str, str]:
    """``(BGR uint8 image, its name, its path or "")``."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"an image array must be (H, W, 3) uint8 BGR, got {image.shape} {image.dtype}"
            )
        return image, "", ""
    from utils.explain.visualize import display_name
    from utils.faces.image_io import read_image

    return read_image(image), display_name(image), str(image)


def _warn_templates(nets: Sim2WordNets) -> None:
    for role in ("recognition", "attribute", "verification"):
        template = getattr(getattr(nets, role), "alignment", None)
        if template is not None:
            log.warning(
                "the %s net expects faces aligned to the %s template; the images are used as "
                "read: align them first (python align_faces.py) if they are not",
                role,
                template,
            )


def explain_images(
    img1: ImageInput,
    img2: ImageInput,
    nets: Sim2WordNets | Mapping[str, str] | None = None,
    *,
    config: Sim2WordConfig | None = None,
    k: int = 3,
    output_dir: str | os.PathLike | None = None,
    name: str | None = None,
    match: int | None = None,
    gallery: str | os.PathLike | None = None,
    device: str | None = None,
) -> PairWords:
    """Explain one pair (METHOD.md section 3) and return its words, scores, maps and record.

    Args:
        img1, img2: image files (any format :func:`utils.faces.image_io.read_image` reads) or
            (H, W, 3) uint8 BGR arrays (named ``<folder>/<file>`` in the output).
        nets: the networks (module docstring); default the face-world demo nets.
        config: what to compute (default :class:`Sim2WordConfig`: top-1, theta 0.6, black fill).
        k: word panels per row of the figure.
        output_dir: where to write ``<name>.png`` (the composite figure) and ``<name>.json``
            (the record); ``None``: write nothing.
        name: file stem (default ``<folder1>-<stem1>-vs-<folder2>-<stem2>``, ``pair`` for arrays).
        match: 1 same identity, 0 different, ``None`` unknown (then the record has no
            ``match``).
        gallery: folder per identity, for a ``<net>-gallery`` recognition net named in ``nets``.
        device: where to load named nets.

    Returns:
        :class:`PairWords`.

    Raises:
        utils.faces.image_io.ImageReadError: an image cannot be read.
        ValueError: bad arguments (an image array of the wrong type, a gallery for a non-gallery
            net...).
    """
    from utils.explain.pair_words import explanation_words
    from utils.run.records import make_record

    config = config or Sim2WordConfig()
    if not config.calculate_similarity:
        raise ValueError("explain_images needs similarities: config.calculate_similarity=True")
    names = dict(DEMO_NETS)
    if not isinstance(nets, Sim2WordNets):
        names.update(nets or {})
        nets = load_pair_nets(names, gallery=gallery, device=device)
    else:
        names = {role: getattr(getattr(nets, role), "network_name", role) for role in names}
    _warn_templates(nets)
    (a, name1, path1), (b, name2, path2) = _read(img1), _read(img2)
    ex = explain_pair(a, b, nets, config)
    shown = (name1 or "image 1", name2 or "image 2")
    record = make_record(
        ex,
        config,
        datasets="explain",
        recognition_net=names["recognition"],
        attribute_net=names["attribute"],
        verification_net=names["verification"],
        image_path1=path1,
        image_path2=path2,
        match=0 if match is None else int(match),
        pair_index=0,
    )
    if match is None:
        record.pop("match")
    words = (explanation_words(ex, 0), explanation_words(ex, 1))
    pw = PairWords(
        shown,
        float(ex.similarity),
        words,
        ex,
        record,
        getattr(ex.vocabulary, "name", "celeba30"),
        networks=names,
    )
    if output_dir is not None:
        _write(pw, Path(output_dir), name or _stem(path1, path2), k, match)
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

    fig = composite_figure(pw.explanation, names=pw.names, k=k, match=match, words=pw.words)
    pw.figure = atomic_write_figure(out / f"{stem}.png", fig, fast_png=True)
    pw.record_path = write_record(out / f"{stem}.json", pw.record)


# ------------------------------------------------------------------------------------------ CLI
DESCRIPTION = """Explain one pair of face images with attribute words (METHOD.md section 3).

Prints, for each image, its top words: the present attributes whose erasure
makes the image look most like the other image, with the score before ->
after erasing (1 - arccos(s)/pi) and the raw cosine; words whose erasure
leaves the score unchanged are listed as ties, not ranked. Writes the
composite figure <output-dir>/<name>.png and the record <name>.json.

Examples:
    python explain.py data/face_world/verification/049/1202-0.png \\
        data/face_world/verification/156/1202-0.png
    python explain.py a.jpg b.jpg --verification-net SFace --recognition-net SFace-gallery \\
        --attribute-net real-attributes --gallery ../shared/data/real_faces
"""


def build_parser(prog: str | None = None):
    """The flags of ``explain.py`` (:mod:`utils.run.cli` groups)."""
    from utils.explain.sim2word import PAPER_THETA
    from utils.run import cli

    p = cli.make_parser(
        DESCRIPTION,
        "Exit status: 0 done, 2 usage error (bad flag, unreadable image, weights).",
        prog,
    )
    p.add_argument("image1", type=Path, help="first image (any format; EXIF orientation applied)")
    p.add_argument("image2", type=Path, help="second image")
    nets = cli.add_network_flags(p, tuple(DEMO_NETS.items()))
    cli.add_flag(
        nets,
        "--gallery",
        type=Path,
        default=None,
        help="folder with one sub-folder of photos per identity: the identities of a "
        "<net>-gallery recognition net (e.g. SFace-gallery)",
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


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``explain.py``: parse, load the networks, explain, print; returns the exit status."""
    import json

    from utils.base.seeding import seed_everything
    from utils.faces.image_io import ImageReadError
    from utils.run.folder import UsageError
    from utils.run.networks import load_networks, resolve_device

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser(prog).parse_args(argv)
    seed_everything(args.seed)
    is_gallery = args.recognition_net.endswith("-gallery")
    try:
        if is_gallery != (args.gallery is not None):
            raise UsageError(
                f"--recognition-net {args.recognition_net} "
                + (
                    "needs --gallery DIR (one sub-folder of photos per identity)"
                    if is_gallery
                    else "takes no --gallery (only <net>-gallery nets do)"
                )
            )
        device = resolve_device(args.device)
        roles = ("attribute", "verification") if is_gallery else tuple(DEMO_NETS)
        loaded = load_networks(args, roles, device)
        if is_gallery:  # built from the gallery's photos (utils/faces/gallery.py)
            from utils.faces.gallery import get_gallery_network

            loaded["recognition"] = get_gallery_network(
                args.recognition_net,
                args.gallery,
                weights=args.recognition_weights,
                device=device,
                progress=False,
            )
        nets = Sim2WordNets(
            loaded["recognition"],
            loaded["attribute"],
            loaded["verification"],
            args.recognition_layer,
            args.attribute_layer,
        )
        for role in DEMO_NETS:
            getattr(nets, role).network_name = getattr(args, f"{role}_net")
        config = Sim2WordConfig(
            topk=args.topk,
            heatmap_method=args.heatmap_method,
            thresh=args.thresh,
            erasing_method=args.Erasing_method,
            seed=args.seed,
        )
        pw = explain_images(
            args.image1,
            args.image2,
            nets,
            config=config,
            k=args.figure_words,
            output_dir=args.output_dir,
            name=args.name,
            match=args.match,
        )
    except (UsageError, ImageReadError, ValueError) as err:
        log.error("%s", err)
        return 2
    print(json.dumps(pw.as_dict(args.words), indent=2) if args.json else pw.report(args.words))
    return 0
