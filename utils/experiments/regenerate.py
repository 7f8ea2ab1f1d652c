"""Regenerate the README's figures and tables from runs (``make_figures.py``).

Each input is recognised by its content (:func:`detect`):

* a **pair run** (a run folder of ``Multi_Identity_topk.py`` & co., or its
  ``json/``): the mask game table and ROC (``results/AUC_most_attributes.py``),
  the top-1 word statistics (``results/Statistic_most_attributes.py``) and the
  top-5 figures (``results/Top_5_attributes.py``); for a run of the
  no-attribute ablation, its mask game (``results/AUC_no_attribute_map.py``);
* an **uncertainty run** (``quantity_single_person_uncertain.py``): the
  quantity table (recomputed from the records,
  :func:`utils.experiments.uncertainty.summarise`) and the bar charts
  (``results/uncertainty_visualization.py``);
* a **twin check** JSON (``ground_truth_check.py``'s ``ground_truth.json``, or
  the row list of its ``--json FILE``): its table;
* a **comparison** JSON (``Explainable-Framework-Comparison/compare.py``'s
  ``comparison.json``): its table (and ``fig4.png`` beside it, copied).

The analysis scripts run in this process through their ``main(argv)``, so
every file is exactly what the script's own command writes; each step's
printed output goes to ``<out>/logs/``. Per README section, a Markdown
snippet ``<out>/<section>.md`` holds the tables, links to the figures
(relative to ``<out>``) and the command behind each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import io
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.base import safejson
from utils.base.atomic import atomic_write_text
from utils.base.tables import format_table

log = logging.getLogger("sim2word")
REPO_ROOT = Path(__file__).resolve().parents[2]
#: README section -> snippet file stem.
SECTIONS = {
    "analysis": "Analysing a run (paper Section 5)",
    "uncertainty": "Explaining identification with uncertainty (paper Section 4)",
    "twin-check": "Are the explanations right? The twin check",
    "comparison": "Comparison with xCos, xFR and generic saliency (paper Section 5, Fig. 4)",
}


@dataclass(frozen=True)
class Source:
    """One input: ``kind`` in ("pair", "no-attribute", "uncertainty", "twin-check",
    "comparison") and the path to read (a run folder or a JSON file)."""

    kind: str
    path: Path


@dataclass
class Section:
    """The Markdown parts of one README section and how many steps failed."""

    parts: list[str] = field(default_factory=list)
    failed: int = 0


class SourceError(ValueError):
    """An input that is missing or is none of the known kinds."""


# ----------------------------------------------------------------------------- detection
def _first_record(folder: Path) -> dict | None:
    from utils.experiments.analysis import list_json

    for path in list_json(folder)[:20]:
        try:
            data = safejson.load_json_file(path)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return None


def detect(path: str | Path) -> Source:
    """What ``path`` is (module docstring); raises :class:`SourceError` naming it and why."""
    path = Path(path)
    if path.is_file():
        try:
            data = safejson.load_json_file(path)
        except (OSError, ValueError) as err:
            raise SourceError(f"{path}: not a readable JSON file ({err})") from None
        if isinstance(data, dict) and "table" in data and "settings" in data:
            return Source("comparison", path)
        if isinstance(data, list) or (
            isinstance(data, dict) and ("variants" in data or "rows" in data)
        ):
            return Source("twin-check", path)
        raise SourceError(
            f"{path}: a JSON file that is neither a twin check (ground_truth.json) "
            "nor a comparison (comparison.json)"
        )
    if not path.is_dir():
        raise SourceError(f"{path} does not exist; pass run folders and result JSON files")
    for name, kind in (("comparison.json", "comparison"), ("ground_truth.json", "twin-check")):
        if (path / name).is_file() and not (path / "json").is_dir():
            return Source(kind, path / name)
    run = path if (path / "json").is_dir() else path.parent if path.name == "json" else path
    rec = _first_record(run)
    if rec is None:
        raise SourceError(f"{path}: no readable record; pass a run folder (holding json/)")
    if "uncertainty-attributes" in rec:
        return Source("uncertainty", run)
    if "attributes-image1" in rec:
        erased = rec["attributes-image1"]
        no_attr = rec.get("ablation") == "no-attribute" or (
            isinstance(erased, dict) and set(erased) == {"image1-f_attr_"}
        )
        return Source("no-attribute" if no_attr else "pair", run)
    raise SourceError(f"{path}: its records are neither pair records nor uncertainty records")


# ----------------------------------------------------------------------------- running a script
def run_script(module: str, argv: Sequence[str], log_file: Path) -> int:
    """``<module>.main(argv)`` in this process, its printed output written to ``log_file``.

    Returns:
        The script's exit status (a ``SystemExit`` code counts).
    """
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = importlib.import_module(module).main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    atomic_write_text(log_file, buf.getvalue())
    return int(code or 0)


def _command(script: str, argv: Sequence[str]) -> str:
    return " ".join(["python", script, *(str(a) for a in argv)])


def _rel(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else "(not written)"


# ----------------------------------------------------------------------------- sections
def _step(section: Section, out: Path, name: str, script: str, argv: list[str]) -> bool:
    module = script.removesuffix(".py").replace("/", ".")
    code = run_script(module, [*argv, "--no-progress"], out / "logs" / f"{name}.log")
    if code not in (0, 3):
        section.failed += 1
        section.parts.append(
            f"`{_command(script, argv)}` failed (exit {code}); see `logs/{name}.log`.\n"
        )
        return False
    if code == 3:
        section.parts.append(f"(`{script}` skipped some records: see `logs/{name}.log`)\n")
    return True


def pair_run_section(src: Source, out: Path, section: Section, top5: int) -> None:
    """The analysis of one pair run: mask game, top-1 statistics and top-5 figures (or, for a
    no-attribute ablation run, its mask game)."""
    name = src.path.name
    folder = out / "analysis" / name
    base = ["--Json-fold", str(src.path), "--output-dir", str(folder)]
    section.parts.append(f"### {name}\n")
    module, label = (
        ("AUC_no_attribute_map", "Mask game of the no-attribute ablation")
        if src.kind == "no-attribute"
        else ("AUC_most_attributes", "Mask game")
    )
    script, stem = f"results/{module}.py", module.lower()
    if _step(section, out, f"{name}-{stem}", script, base):
        roc = folder / stem.replace("auc_", "roc_", 1)
        section.parts.append(
            f"{label} (`{_command(script, base[:2])}`):\n\n{_read_text(folder / f'{stem}.md')}\n\n"
            f"![ROC]({_rel(roc.with_suffix('.png'), out)})\n"
        )
    if src.kind == "no-attribute":
        return
    script = "results/Statistic_most_attributes.py"
    if _step(section, out, f"{name}-top1_statistics", script, base):
        stats = safejson.load_json_file(folder / "top1_statistics.json")
        rows = [
            [r["attribute"], r["count"], f"{r['fraction']:.3f}"]
            for r in stats["by_attribute"]
            if r["count"]
        ]
        section.parts.append(
            f"Top-1 words over {stats['n_images']} images of {stats['n_pairs']} impostor pairs "
            f"(`{_command(script, base[:2])}`):\n\n"
            f"{format_table(['Attribute', 'count', 'fraction'], rows, align='lrr')}\n"
            f"![top-1 words]({_rel(folder / 'top1_statistics.png', out)})\n"
        )
    script = "results/Top_5_attributes.py"
    argv = [*base, "--max-figures", str(top5)]
    if _step(section, out, f"{name}-top5_attributes", script, argv):
        figures = sorted((folder / "top5").glob("*.png"))
        links = " ".join(f"[{p.stem}]({_rel(p, out)})" for p in figures)
        section.parts.append(
            f"Top-5 words per pair (`{_command(script, argv[:2] + argv[4:])}`): "
            f"{links or '(no figure)'}\n"
        )


def uncertainty_section(src: Source, out: Path, section: Section) -> None:
    """The quantity table of an uncertainty run (recomputed from its records) and its charts."""
    from utils.experiments.analysis import list_json
    from utils.experiments.uncertainty import format_summary, summarise

    name = src.path.name
    folder = out / "uncertainty" / name
    records = []
    for path in list_json(src.path):
        try:
            rec = safejson.load_json_file(path)
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("quantity"), dict):
            records.append(rec)
    section.parts.append(f"### {name}\n")
    if records:
        first = records[0]["quantity"]
        nums = sorted(int(n) for n in first)
        random = all("random" in q for q in first.values())
        table = format_summary(summarise(records, nums, random))
        atomic_write_text(folder / "quantity.md", table)
        section.parts.append(
            f"Quantity experiment over {len(records)} images (recomputed from "
            f"`{src.path}/json`):\n\n{table}\n"
        )
    script = "results/uncertainty_visualization.py"
    argv = ["--Json-fold", str(src.path), "--Save-fold", str(folder / "charts")]
    if _step(section, out, f"{name}-uncertainty_visualization", script, argv):
        charts = sorted((folder / "charts").glob("*.png"))
        links = " ".join(f"[{p.stem}]({_rel(p, out)})" for p in charts[:50])
        section.parts.append(
            f"One chart per image (`{_command(script, argv[:2])}`): {links or '(no chart)'}\n"
        )


def twin_check_table(data: Any) -> str:
    """The twin check's table from ``ground_truth.json`` (``{"args", "rows"}``, formatted as
    ``ground_truth_check.py`` prints it) or a row list (``--json FILE``: every scalar column,
    floats with 3 decimals)."""
    from utils.experiments.ground_truth import RowSummary, format_table as gt_table

    rows = data["rows"] if isinstance(data, dict) else data
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise SourceError("the twin check JSON holds no rows")
    fields = {f.name for f in dataclasses.fields(RowSummary)}
    required = {  # rows written before a field with a default was added still qualify
        f.name
        for f in dataclasses.fields(RowSummary)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    if isinstance(data, dict) and all(required <= set(r) for r in rows):
        return gt_table([RowSummary(**{k: r[k] for k in fields if k in r}) for r in rows])
    head = [k for k, v in rows[0].items() if not isinstance(v, (dict, list))]
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else "-" if v is None else str(v)  # noqa: E731
    return format_table(head, [[cell(r.get(k)) for k in head] for r in rows])


def comparison_table(data: dict[str, Any]) -> str:
    """The comparison's table from ``comparison.json`` (its ``report.markdown_table``)."""
    path = REPO_ROOT / "Explainable-Framework-Comparison" / "report.py"
    spec = importlib.util.spec_from_file_location("_comparison_report", path)
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    region = data.get("mean_region_share")
    chance = {} if region is None else {"game.hit_area": region, "game.hit_at_10": region}
    return report.markdown_table(data["table"], chance)


def json_section(src: Source, out: Path, section: Section) -> None:
    """The twin check's or the comparison's table (and ``fig4.png`` when it lies beside)."""
    data = safejson.load_json_file(src.path)
    table = twin_check_table(data) if src.kind == "twin-check" else comparison_table(data)
    folder = out / src.kind
    stem = "ground_truth" if src.kind == "twin-check" else "comparison"
    atomic_write_text(folder / f"{stem}.md", table)
    settings = data.get("args", data.get("settings")) if isinstance(data, dict) else None
    shown = ", ".join(
        f"{k} {settings[k]}"
        for k in ("strategy", "thresh", "num_pairs", "pairs")
        if isinstance(settings, dict) and k in settings
    )
    section.parts.append(f"From `{src.path}`{f' ({shown})' if shown else ''}:\n\n{table}\n")
    fig = src.path.parent / "fig4.png"
    if src.kind == "comparison" and fig.is_file():
        shutil.copyfile(fig, folder / "fig4.png")
        section.parts.append(f"![Fig. 4-style figure]({_rel(folder / 'fig4.png', out)})\n")


def make_figures(
    paths: Sequence[str | Path], out: str | Path, command: str, top5: int = 8
) -> tuple[dict[str, Path], int]:
    """Regenerate every figure and table the inputs allow (module docstring).

    Args:
        paths: run folders and result JSON files, any order.
        out: the output folder.
        command: the command line that made them (written at the top of every snippet).
        top5: top-5 figures per pair run (the first pairs).

    Returns:
        ``({section: snippet file}, n_failed)``; ``n_failed`` counts inputs that could not be read
        and steps that failed.

    Raises:
        SourceError: an input is missing or of no known kind (nothing is written).
    """
    out = Path(out).resolve()
    sources = [detect(p) for p in paths]
    sections: dict[str, Section] = {}
    for src in sources:
        key = {"pair": "analysis", "no-attribute": "analysis"}.get(src.kind, src.kind)
        section = sections.setdefault(key, Section())
        try:
            if key == "analysis":
                pair_run_section(src, out, section, top5)
            elif key == "uncertainty":
                uncertainty_section(src, out, section)
            else:
                json_section(src, out, section)
        except (OSError, ValueError, KeyError, TypeError) as err:
            section.failed += 1
            section.parts.append(f"`{src.path}` could not be used: {type(err).__name__}: {err}\n")
            log.error("%s: %s: %s", src.path, type(err).__name__, err)
    written = {}
    for key, section in sections.items():
        head = f'<!-- README section "{SECTIONS[key]}": regenerated by `{command}` -->\n\n'
        written[key] = atomic_write_text(out / f"{key}.md", head + "\n".join(section.parts))
    return written, sum(s.failed for s in sections.values())


# ----------------------------------------------------------------------------- CLI
DESCRIPTION = """Regenerate the README's figures and tables from runs, one snippet per section.

Give run folders (pair runs, uncertainty runs) and result JSON files (the twin
check's ground_truth.json, the comparison's comparison.json) in any order;
each is recognised by its content. Writes under --output-dir: the tables and
figures per run (analysis/<run>/, uncertainty/<run>/, twin-check/,
comparison/), the analysis scripts' printed output (logs/), and per README
section a snippet with the tables, links to the figures and the command behind
each (analysis.md, uncertainty.md, twin-check.md, comparison.md).

Example:
    python Multi_Identity_topk.py && python quantity_single_person_uncertain.py
    python make_figures.py outputs/scores-group-FaceWorld-* outputs/uncertainty-identification-* \\
        outputs/ground_truth/ground_truth.json \\
        Explainable-Framework-Comparison/results/comparison.json
"""


def build_parser(prog: str | None = None):
    """The flags of ``make_figures.py``."""
    from utils.run import cli

    p = cli.make_parser(
        DESCRIPTION,
        "Exit status: 0 everything regenerated, 3 some inputs or "
        "steps failed (see the snippets and logs/), 2 usage error.",
        prog,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        help="run folders and result JSON files (recognised by their content)",
    )
    cli.add_output_dir(
        p,
        cli.DEFAULT_OUTPUT_DIR / "figures",
        "folder of the figures, tables and snippets (default: <repo>/outputs/figures)",
    )
    cli.add_flag(
        p,
        "--top5",
        type=cli.non_negative_int,
        default=8,
        help="top-5 figures per pair run, for its first N pairs (default: %(default)s)",
    )
    return p


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``make_figures.py``: returns the exit status."""
    import shlex
    import sys

    args = build_parser(prog).parse_args(argv)
    shown = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python make_figures.py", *(shlex.quote(a) for a in shown)])
    try:
        written, failed = make_figures(args.inputs, args.output_dir, command, args.top5)
    except SourceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for key, path in written.items():
        print(f"{SECTIONS[key]}: {path}")
    if failed:
        print(f"{failed} input(s) or step(s) failed: see the snippets and {args.output_dir}/logs")
    return 3 if failed else 0
