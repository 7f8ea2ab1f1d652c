"""One composite figure per explained pair, readable without the code (paper Fig. 1-3 style).

Layout (:func:`composite_figure`): one row per direction (image 1 explained
against image 2, then image 2 against image 1). Each row shows

1. the face as read (the canvas the maps were computed on), named;
2. its discriminant map H_d (evidence for its own identity that is not
   evidence for the other image's identity), upsampled to the image;
3. the top-k words: the joint map J[j] of each, upsampled, with the region
   erased for it outlined in white, and its score before -> after erasing on
   the paper's scale 1 - arccos(s)/pi and as the raw cosine;

then a line under the row listing the words whose erasure leaves the score
unchanged (ties: they are not explanations). A shared colour bar gives the map
scale (0 to 1); the title gives the pair similarity, the vocabulary of the
attribute net and the ranking rule. Without similarities (``--no-calculate-
similarity``) there are no words; the row shows H_t, H_f and H_d instead.

Every text of the figure comes from :func:`composite_captions`, so tests can
check what a reader sees without reading pixels.

Example:
    >>> fig = composite_figure(ex, names=("a.jpg", "b.jpg"), k=3)
    >>> atomic_write_figure("pair.png", fig)
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from utils.explain.ranking import (
    TIE_MEANING,
    UNCHANGED,
    WordRank,
    rank_pair,
    select_words,
    tie_note,
    verification_score,
)
from utils.explain.sim2word import DirectionExplanation, PairExplanation
from utils.explain.visualize import overlay, upsample_map

PANEL_INCHES = 2.4  # width of one image panel
FONT = 9  # smallest font of the figure, in points
ALPHA = 0.5  # weight of the colour map over the face
NO_WORD = "no further word"
#: How each ranking mode orders the words, as the figure's title says it.
RANKING_RULES = {
    "paper": "the score of the image with the word's region erased against the other image "
    "(higher = explains more)",
    "both-shared": "the score after erasing the word's shared region in both images "
    "(higher = explains more)",
    "contrast": "the attribute net's contrast between the images times the score gain of "
    "erasing the word's shared region in both",
}


@dataclass(frozen=True)
class RowText:
    """The texts of one row: the face's title, the map titles, the line under the row."""

    face: str
    maps: tuple[str, ...]
    footer: str


@dataclass(frozen=True)
class CompositeText:
    """Every text of a composite figure: its title and one :class:`RowText` per direction."""

    title: str
    rows: tuple[RowText, RowText]


def _arrow(before: float, after: float) -> str:
    return f"{before:.3f} -> {after:.3f} ({after - before:+.3f})"


def word_caption(w: WordRank) -> str:
    """Title of a word panel: rank and word, score change, cosine change, tie if any."""
    text = (
        f"{w.rank}. {w.word}\n"
        f"score {_arrow(float(verification_score(w.original)), w.score)}\n"
        f"cos {_arrow(w.original, w.similarity)}"
    )
    return text + ("\n" + tie_note(w).strip(" ()") if w.tie else "")


def composite_captions(
    words: Sequence[Sequence[WordRank]] | None,
    *,
    similarity: float | None,
    vocabulary: str,
    names: tuple[str, str] = ("image 1", "image 2"),
    k: int = 3,
    match: int | None = None,
    ranking: str = "paper",
) -> CompositeText:
    """The texts of a composite figure (what :func:`composite_figure` draws).

    Args:
        words: per image, its ranked words (:func:`utils.explain.ranking.rank_pair`'s
            ``image1`` / ``image2``), or ``None`` when the pair was explained without
            similarities.
        similarity: the pair's cosine s (``None`` without similarities).
        vocabulary: the attribute net's vocabulary name.
        names: how the two images are named.
        k: word panels per row.
        match: 1 same identity, 0 different, ``None`` unknown (shown in the title when known).
        ranking: the ranking mode of ``words`` (:data:`utils.explain.ranking.RANKINGS`), named
            in the title.
    """
    label = {1: "same identity", 0: "different identities"}.get(match, "")
    if similarity is None:
        head = "Sim2Word (no similarities computed: words need the verification net)"
    else:
        head = (
            f"Sim2Word: pair similarity cos s = {similarity:.4f}, "
            f"score 1 - arccos(s)/pi = {float(verification_score(similarity)):.4f}"
        )
    if similarity is None:
        rule = f"attribute vocabulary '{vocabulary}'; H_d = H_t * (max H_f - H_f), normalised"
    else:
        rule = f"words of attribute vocabulary '{vocabulary}', ranked by " + RANKING_RULES.get(
            ranking, f"the {ranking} ranking"
        )
    title = head + (f" ({label})" if label else "") + "\n" + rule
    rows = []
    for side in (0, 1):
        face = f"image {side + 1}: {names[side]}\nexplained against image {2 - side}"
        if words is None:
            maps = ("H_t: evidence for its identity", "H_f: evidence for the other's", "H_d")
            footer = ""
        else:
            top = select_words(words[side], k)
            dead = [w.word for w in words[side] if w.tie == UNCHANGED]
            filler = NO_WORD + (
                ":\nthe other present\nattributes are ties\n(listed below)" if dead else ""
            )
            maps = (
                ("H_d: its identity, not the other's",)
                + tuple(word_caption(w) for w in top)
                + (filler,) * (k - len(top))
            )
            footer = (
                f"ties, {TIE_MEANING[UNCHANGED]} (not explanations): " + ", ".join(dead)
                if dead
                else "no tie: every present attribute's erasure changes the score"
            )
        rows.append(RowText(face, maps, footer))
    return CompositeText(title, (rows[0], rows[1]))


def _rgb(image_bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def _map_panel(ax, image_bgr: np.ndarray, heat: np.ndarray, mask: np.ndarray | None) -> None:
    """The map upsampled and blended over the face (OpenCV's JET, the colour bar's ``jet``),
    the erased region outlined in white; drawn as one RGB image (fast to render)."""
    h, w = image_bgr.shape[:2]
    panel = overlay(image_bgr, upsample_map(heat, (h, w)), ALPHA)
    if mask is not None and mask.any() and not mask.all():
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        cv2.drawContours(panel, contours, -1, (255, 255, 255), max(1, round(max(h, w) / 112)))
    ax.imshow(_rgb(panel), interpolation="nearest")


def _off(ax) -> None:
    """No ticks, no tick labels; the frame stays (hiding the axis objects draws the same pixels as
    empty tick lists, and skips building and drawing them)."""
    ax.xaxis.set_visible(False)
    ax.yaxis.set_visible(False)


@dataclass
class _Skeleton:
    """The parts of a composite figure that do not depend on the pair: the figure, its panel axes
    (one list per row) and the colour bar. Creating the axes is about a third of the time of a
    figure, so a run drawing many figures of one layout fills one skeleton again and again."""

    fig: Figure
    axes: tuple[list, list]
    footers: list


_SKELETONS: dict[int, _Skeleton] = {}


def _skeleton(cols: int) -> _Skeleton:
    """A fresh skeleton of ``cols`` panels per row (the axes in the order a reader's eye takes,
    then the colour bar: the draw order of the figure)."""
    fig = Figure(figsize=(cols * PANEL_INCHES + 0.8, 2 * PANEL_INCHES + 2.6))
    grid = fig.add_gridspec(2, cols + 1, width_ratios=[1.0] * cols + [0.06])
    fig.subplots_adjust(left=0.02, right=0.95, top=0.83, bottom=0.08, hspace=0.62, wspace=0.08)
    axes = ([], [])
    for side in (0, 1):
        for c in range(cols):
            ax = fig.add_subplot(grid[side, c])
            _off(ax)
            axes[side].append(ax)
    bar = fig.colorbar(
        ScalarMappable(Normalize(0.0, 1.0), cmap="jet"), cax=fig.add_subplot(grid[:, cols])
    )
    bar.set_label(
        "map value (0 = none, 1 = strongest); white outline = erased region", fontsize=FONT
    )
    bar.ax.tick_params(labelsize=FONT)
    return _Skeleton(fig, axes, [])


def _clear_panel(ax) -> None:
    """Empty a panel of a reused skeleton: no image, no text, no title, as a new axes."""
    for artist in [*ax.images, *ax.texts]:
        artist.remove()
    ax.set_aspect("auto")  # imshow sets "equal" and the limits of its own image again
    ax.set_axis_on()
    ax.set_title("", fontsize=FONT)


def composite_figure(
    ex: PairExplanation,
    names: tuple[str, str] = ("image 1", "image 2"),
    k: int = 3,
    match: int | None = None,
    words: Sequence[Sequence[WordRank]] | None = None,
    ranking: str = "paper",
    reuse: bool = False,
) -> Figure:
    """The composite figure of one explained pair (module docstring).

    Args:
        ex: the explanation (maps at R's input size; faces from its erasers).
        names: how the two images are named (e.g. their file names).
        k: word panels per row (>= 1).
        match: 1 same identity, 0 different, ``None`` unknown.
        words: per image, its ranked words; default: the paper ranking
            (:func:`utils.explain.ranking.rank_pair`) when the pair has similarities.
        ranking: the ranking mode of ``words`` (named in the title).
        reuse: fill the figure this module drew last for the same layout instead of a new one
            (the same pixels, a third faster; for a loop that writes each figure before drawing
            the next: the figure returned before is changed).

    Returns:
        A figure of ``2 * (2 + k)`` image panels (``2 * 4`` without similarities) and one colour
        bar, ``(2 + k) * PANEL_INCHES + 0.8`` inches wide.
    """
    if int(k) < 1:
        raise ValueError(f"k (word panels per row) must be >= 1, got {k}")
    if words is None and ex.similarity is not None:
        paper = rank_pair(ex, (None, None), None)  # the paper mode needs no image nor V
        words, ranking = [paper.image1, paper.image2], "paper"
    text = composite_captions(
        words,
        similarity=ex.similarity,
        vocabulary=getattr(ex.vocabulary, "name", "celeba30"),
        names=tuple(str(n) for n in names),
        k=k,
        match=match,
        ranking=ranking,
    )
    cols = 1 + len(text.rows[0].maps)
    if reuse and cols in _SKELETONS:
        sk = _SKELETONS[cols]
        for ax in (*sk.axes[0], *sk.axes[1]):
            _clear_panel(ax)
        for footer in sk.footers:
            footer.remove()
        sk.footers.clear()
    else:
        sk = _skeleton(cols)
        if reuse:
            _SKELETONS[cols] = sk
    fig = sk.fig
    for side, row in enumerate(text.rows):
        d = ex.directions[side]
        image = d.eraser.image
        ax = sk.axes[side][0]
        ax.imshow(_rgb(image), interpolation="nearest")
        ax.set_title(row.face, fontsize=FONT)
        for c, (caption, (heat, mask)) in enumerate(
            zip(row.maps, _panels(d, words, side, k), strict=True), start=1
        ):
            ax = sk.axes[side][c]
            if heat is None:
                ax.text(
                    0.5,
                    0.5,
                    caption,
                    ha="center",
                    va="center",
                    fontsize=FONT,
                    transform=ax.transAxes,
                )
                ax.set_axis_off()
                continue
            _map_panel(ax, image, heat, mask)
            ax.set_title(caption, fontsize=FONT)
        if row.footer:
            y = sk.axes[side][-1].get_position().y0  # the row's bottom edge, in figure fractions
            sk.footers.append(
                fig.text(
                    0.02,
                    y - 0.012,
                    "\n".join(textwrap.wrap(row.footer, 28 * cols)),
                    ha="left",
                    va="top",
                    fontsize=FONT,
                )
            )
    width = int(cols * PANEL_INCHES * 72 / (FONT + 1) * 1.7)  # characters that fit the width
    fig.suptitle(
        "\n".join(textwrap.fill(line, width) for line in text.title.split("\n")), fontsize=FONT + 1
    )
    return fig


def _panels(d: DirectionExplanation, words, side: int, k: int):
    """``(map or None, image-size mask or None)`` of each map panel of a row, in caption order."""
    if words is None:
        return [(d.H_t, None), (d.H_f, None), (d.H_d, None)]
    top = select_words(words[side], k)
    out = [(d.H_d, None)] + [(d.J[w.attribute], d.mask_raw(w.attribute)) for w in top]
    return out + [(None, None)] * (k - len(top))
