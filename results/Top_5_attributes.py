"""Top-5 attribute words per pair, as a table and one figure per pair.

For image 1, its present attributes are ranked by the similarity of image 1
with that attribute erased to image 2, descending (the attribute whose removal
makes image 1 look most like image 2 explains best why they differ); image 2
likewise; the both-masked ranking uses attributes present in either image,
ranked by the similarity of the two erased images. Scores are shown on the
[0, 1] scale 1 - arccos(s)/pi; multi-class heads are worded by class
(Female, Senior, Asian, Gray Hair...). Exact definitions: ``utils/experiments/analysis.py``.
A record written with another ``--ranking`` shows that ranking's words. Words whose erasure
changed nothing (ties) are skipped (``--ties skip``) or shown marked "(tie)" (``--ties flag``);
see ``utils/experiments/words.py``.

Example:
    python results/Top_5_attributes.py --Json-fold runs/scores-group-X/json --image-root data/

Writes to ``--output``: ``top5/<n>.png`` (both images, each captioned with its
top-5, super-title with the pair similarity and the both-masked top-5),
``top5_attributes.json`` and ``failures-top5_attributes.jsonl``.
Exit status: 0 all files used, 3 some skipped, 2 usage error.
"""

from __future__ import annotations

try:  # run as a file: this folder is on sys.path, the repository root not yet (see _bootstrap.py)
    import _bootstrap  # noqa: F401
except ModuleNotFoundError:  # imported with the repository root on sys.path (tests, python -m)
    _bootstrap = None
import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from utils.experiments import analysis as A
from utils.base.atomic import atomic_write_json
from utils.experiments.figures import add_pair_figure_flags, load_rgb, pair_figure, save_figure
from utils.experiments.words import record_top_words, word_dicts
from utils.run import cli

STEM = "top5_attributes"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser(__doc__)
    A.add_common_args(parser)
    add_pair_figure_flags(parser, (10.0, 6.5))
    cli.add_flag(
        parser,
        "--top-k",
        type=cli.positive_int,
        default=5,
        help="how many words per ranking (default: %(default)s)",
    )
    cli.add_ties(parser)
    return parser


def _words(ranked: list) -> list[str]:
    return [
        f"{k + 1}. {w.word:<22} {w.score:.4f}" + (" (tie)" if w.tie == "unchanged" else "")
        for k, w in enumerate(ranked)
    ]


def draw_pair(rec: A.PairRecord, ranks: tuple[list, list, list], args, out: Path) -> list[str]:
    """Write ``top5/<name>.<fmt>`` for one pair; returns notes about images that could not be shown.

    Args:
        rec: the pair.
        ranks: ``(image-1 words, image-2 words, both-masked words)`` as ``WordRank`` lists.
        args: the parsed flags (image root, size, format).
        out: the output folder.
    """
    images, captions, notes = [], [], []
    roots = [
        None if args.image_root is None else Path(args.image_root),
        rec.path.parent,
        Path.cwd(),
    ]
    for i in (1, 2):
        img, note = load_rgb(rec.image_paths[i - 1], roots)
        images.append(img)
        if note:
            notes.append(note)
        head = f"image {i}: {Path(rec.image_paths[i - 1] or '?').name}" + (
            " (not found)" if note else ""
        )
        captions.append(
            "\n".join([head, *(_words(ranks[i - 1]) or ["(no present attribute recorded)"])])
        )
    both = ", ".join(f"{w.word} {w.score:.3f}" for w in ranks[2]) or "none"
    title = (
        f"pair {rec.name} ({'same' if rec.match else 'different'} identity): similarity "
        f"{rec.similarity:.4f}, score {float(A.verification_score(rec.similarity)):.4f}\n"
        f"both masked top-{args.top_k}: {both}"
    )
    fig = pair_figure(images, captions, title, figsize=tuple(args.figsize))
    save_figure(fig, out / "top5" / f"{rec.name}.{args.image_format}", dpi=args.dpi)
    return notes


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    records, failures, n_files = A.load_from_args(args, A.TOP5_KEYS)
    out = A.output_dir(args)
    lists = ("image1", "image2", "pair")
    ranks = [tuple(record_top_words(r, w, args.top_k, args.ties) for w in lists) for r in records]
    entries = [
        {
            "name": r.name,
            "file": str(r.path),
            "match": r.match,
            "similarity": r.similarity,
            "score": float(A.verification_score(r.similarity)),
            "image_paths": list(r.image_paths),
            "image1": word_dicts(r, r1),
            "image2": word_dicts(r, r2),
            "both_masked": word_dicts(r, rb),
        }
        for r, (r1, r2, rb) in zip(records, ranks, strict=True)
    ]
    n_figures = 0
    if args.figures:
        todo = list(zip(entries, records, ranks, strict=True))[: args.max_figures]
        for entry, rec, rank in tqdm(todo, desc="figures", unit="pair", disable=not args.progress):
            entry["figure_notes"] = draw_pair(rec, rank, args, out)
            for note in entry["figure_notes"]:
                tqdm.write(f"{rec.path}: {note} (drawn as a grey placeholder)")
            n_figures += 1
    for entry in entries[:5]:
        print(
            f"{entry['name']}: s={entry['similarity']:.4f} match={entry['match']}  "
            f"image1: {', '.join(w['word'] for w in entry['image1'])} | "
            f"image2: {', '.join(w['word'] for w in entry['image2'])} | "
            f"both: {', '.join(w['word'] for w in entry['both_masked'])}"
        )
    if len(entries) > 5:
        print(f"... ({len(entries) - 5} more pairs in {out / STEM}.json)")
    atomic_write_json(
        out / f"{STEM}.json",
        {
            **A.report_header(args, records, failures, n_files),
            "top_k": args.top_k,
            "ties": args.ties,
            "score": A.SCORE_RULE,
            "pairs": entries,
        },
    )
    print(f"wrote {out / STEM}.json and {n_figures} figures under {out / 'top5'}")
    return A.finish(out, STEM, failures, n_files)


if __name__ == "__main__":
    sys.exit(main())
