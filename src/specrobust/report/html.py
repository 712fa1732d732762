"""`specrobust report`: any number of runs side by side in one self-contained HTML file.

Every image is embedded as a base64 PNG and the style sheet is inline, so the file opens offline
and can be mailed or attached as it is. Inputs are run directories (their ``analysis*/``
directories, ``eval*.json``, ``config.yaml`` and ``curves.png``), analysis directories, or
checkpoint files with ``<stem>-analysis/`` and ``<stem>-eval.json`` beside them.

Reports are shared, so what goes into one is guarded: every value reaches the HTML through
``report.markup`` (escaped), only regular files of the run are read (no symbolic link is
followed below a source), an embedded PNG is checked to be one, and a record that is not what
it claims ends the command with one line instead of a half-written page.
"""

from __future__ import annotations

import base64
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from specrobust.analysis import PARTS
from specrobust.analysis.job import headline_numbers, read_parts
from specrobust.errors import SpecRobustError
from specrobust.evaluation.record import SAME_IMAGES
from specrobust.files import layout, locks, outputs, storage
from specrobust.files.storage import read_json
from specrobust.report.findings import findings
from specrobust.report.markup import Markup, html, join
from specrobust.settings import NORMS

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Larger than any figure specrobust draws by far; a larger "curves.png" is not one of them.
MAX_PNG_BYTES = 16 << 20
MAX_CONFIG_BYTES = 1 << 20
# What a damaged or hand-edited record raises when a reader walks it.
_MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError)


@dataclass
class Model:
    """One column of the report: a model with its analysis parts and evaluation."""

    label: str
    parts: dict[str, dict] = field(default_factory=dict)
    evaluation: dict | None = None


@dataclass
class RunInfo:
    name: str
    config: str | None = None
    curves: bytes | None = None  # the PNG, read (and checked) once


def _read_json(path: Path | None) -> dict | None:
    if path is None:
        return None
    try:
        data = read_json(path, "record")
    except (OSError, ValueError, SpecRobustError):
        return None
    return data if isinstance(data, dict) else None


def _read_eval(path: Path | None) -> dict | None:
    """A finished evaluation, or the finished attacks of one under way (``under_way`` set);
    None when there is none. A record that is not well formed is refused in one line."""
    from specrobust import __version__
    from specrobust.evaluation.record import FORMAT_VERSION, EvalRecord, is_well_formed

    if path is None:
        return None
    data = _read_json(path)
    if data is None:
        raise SpecRobustError(f"{path} is damaged (not a JSON record specrobust can read); "
                              "evaluate again into a new file, or remove it")
    if isinstance(data, dict) and data.get("format_version") != FORMAT_VERSION:
        raise SpecRobustError(f"{path} is an evaluation record of format version "
                              f"{data.get('format_version')}, which specrobust "
                              f"{__version__} does not read; evaluate again into a new file")
    try:
        result = EvalRecord.from_dict(data).summary()
    except _MALFORMED:
        result = {}
    if result is None:
        return None
    if not is_well_formed(result):
        raise SpecRobustError(f"{path} is not a well-formed evaluation record; evaluate again "
                              "into a new file")
    return result


def _png(path: Path | None) -> bytes | None:
    """The file's bytes if it is a PNG image of a size specrobust draws, else None (a report
    embeds nothing else). The header and the size are checked before the file is read."""
    if path is None:
        return None
    try:
        if path.stat().st_size > MAX_PNG_BYTES:
            return None
        with open(path, "rb") as handle:
            head = handle.read(16)
            if not (head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR"):
                return None
            return head + handle.read(MAX_PNG_BYTES)
    except OSError:
        return None


def _models_of_run(run: Path) -> list[Model]:
    from specrobust.training.rundir import RunDir

    found, layout = [], RunDir(run)
    for which, suffix in layout.results():
        parts = read_parts(layout.analysis_dir(which), root=run)
        evaluation = _read_eval(outputs.regular_file_inside(run, layout.eval_path(which).name))
        if parts or evaluation:
            found.append(Model(run.name + suffix, parts, evaluation))
    return found


def collect(sources: list[str]) -> tuple[list[Model], list[RunInfo]]:
    models, runs = [], []
    for source in sources:
        path = Path(source)
        # A model named without a file of its own (a pretrained name) has its results written
        # beside where the file would be: NAME-analysis/ and NAME-eval.json.
        stem = path.stem if path.exists() else path.name
        if not path.exists() and not any(
                (path.parent / f"{stem}{suffix}").exists() for suffix in ("-analysis",
                                                                           "-eval.json")):
            raise SpecRobustError(f"{path} does not exist, nor do the {stem}-analysis or "
                                  f"{stem}-eval.json that analyze and eval write for a model of "
                                  "that name")
        if path.is_dir() and (path / "summary.json").is_file():  # an analysis directory
            parts = read_parts(path)
            label = str(next(iter(parts.values())).get("label", path.name)) if parts \
                else path.name
            found = [Model(label, parts)]
        elif path.is_dir():
            found = _models_of_run(path)
            config = _read_text(outputs.regular_file_inside(path, "config.yaml"))
            curves = _png(outputs.regular_file_inside(path, "curves.png"))
            if config is not None or curves is not None:
                runs.append(RunInfo(path.name, config, curves))
        else:
            parts = read_parts(path.parent / f"{stem}-analysis", root=path.parent)
            evaluation = _read_eval(outputs.regular_file_inside(path.parent,
                                                                f"{stem}-eval.json"))
            found = [Model(stem, parts, evaluation)] if parts or evaluation else []
        if not found:
            raise SpecRobustError(f"no analysis or evaluation results in {path}; run `specrobust "
                                  f"analyze {path}` (and `specrobust eval {path}`) first")
        models += found
    return models, runs


def _read_text(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_CONFIG_BYTES:
        return None  # not a config specrobust wrote
    return data.decode("utf-8", errors="replace")


# ---- rendering ---------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       margin: 0; background: #f5f6f8; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 60px; background: #fff;
       min-height: 100vh; box-shadow: 0 0 24px rgba(0,0,0,.06); }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #e3e6ec; }
h3 { font-size: 15px; margin: 20px 0 6px; }
p.lead, p.note { color: #5a6272; margin: 4px 0 12px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13.5px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e3e6ec; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f2f6; font-weight: 600; }
tr:hover td { background: #fafbfc; }
img { max-width: 100%; border: 1px solid #e3e6ec; border-radius: 4px; margin: 6px 0; }
details { margin: 6px 0; } summary { cursor: pointer; color: #2f5da8; }
pre { background: #f5f6f8; padding: 10px; font-size: 12px; overflow-x: auto; }
.warn { color: #a33; font-weight: 600; }
nav a { margin-right: 14px; color: #2f5da8; text-decoration: none; }
"""

def _figure(part: str, entries) -> Markup:
    """Draw a part's figure into a temporary file (figures are drawn into files) and embed
    it."""
    from specrobust.analysis import draw

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "figure.png"
        draw(part, entries, path)
        return _img(path.read_bytes())


def _img(png: bytes, alt: str = "figure") -> Markup:
    return html('<img alt="{}" src="data:image/png;base64,{}">', alt,
                base64.b64encode(png).decode())


def _table(header: list, rows: list[list]) -> Markup:
    """A table; header and cells are escaped unless they are Markup."""
    head = join(html("<th>{}</th>", h) for h in header)
    body = join(html("<tr>{}</tr>", join(html("<td>{}</td>", c) for c in row)) for row in rows)
    return html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _summary_table(models: list[Model]) -> Markup:
    attacks = list(dict.fromkeys(a["label"] for m in models if m.evaluation
                                 for a in m.evaluation["attacks"]))
    numbers = {m.label: headline_numbers(m.parts) for m in models}
    extra = [k for k in ("perturbation low-band share", "perturbation high-band share",
                         "kernel non-DC share", "logit-spectrum gap")
             if any(k in n for n in numbers.values())]
    header = ["model", *attacks, *(["worst case"] if attacks else []), *extra]
    rows = []
    for model in models:
        by_label = {a["label"]: a["accuracy"] for a in (model.evaluation or {}).get("attacks", [])}
        worst = model.evaluation["worst_case"]["accuracy"] if model.evaluation else None
        cells = [model.label, *(_pct(by_label.get(a)) for a in attacks)]
        if attacks:
            cells.append(html("<b>{}</b>", _pct(worst)))
        for key in extra:
            value = numbers[model.label].get(key)
            cells.append("" if value is None else
                         (f"{value:.3f}" if key == "logit-spectrum gap" else _pct(value)))
        rows.append(cells)
    running = [html("{} ({})", m.label, join(m.evaluation["under_way"], ", "))
               for m in models if m.evaluation and m.evaluation.get("under_way")]
    note = html('<p class="note">Evaluation under way for {}: its worst case is over the '
                "finished attacks only.</p>", join(running, "; ")) if running else ""
    return join([_table(header, rows), note])


def _eval_section(model: Model) -> Markup:
    evaluation = model.evaluation
    rows = [[a["label"], _pct(a["accuracy"]), f"{_pct(a['ci95'][0])}-{_pct(a['ci95'][1])}",
             f"{a['correct']} / {a['n']}", f"{a['seconds']:.1f}"] for a in evaluation["attacks"]]
    worst = evaluation["worst_case"]
    rows.append([html("<b>worst case</b>"), html("<b>{}</b>", _pct(worst["accuracy"])),
                 f"{_pct(worst['ci95'][0])}-{_pct(worst['ci95'][1])}",
                 f"{worst['correct']} / {worst['n']}", ""])
    under_way = join(
        html('<p class="warn">{} is under way ({} of {} images attacked): the worst case is over '
             "the finished attacks only.</p>", label, *progress)
        for label, progress in evaluation.get("under_way", {}).items())
    failed = [c for c in evaluation.get("checks", []) if not c["ok"]]
    checks = join(html('<p class="warn">Possible gradient masking: {}: {}</p>', c["name"],
                       c["message"]) for c in failed)
    if evaluation.get("checks") and not failed:
        checks = html('<p class="note">Self-checks: all {} passed.</p>',
                      len(evaluation["checks"]))
    return join([
        html('<h3>{}</h3><p class="note">{} on {}, first {} test images, {} eps {}</p>',
             model.label, evaluation["model"].get("name"), evaluation.get("dataset"),
             evaluation.get("n"), NORMS.get(evaluation.get("norm", "linf"), "?"),
             evaluation.get("eps_text")),
        _table(["attack", "accuracy (%)", "95% interval", "correct / n", "seconds"], rows),
        under_way, checks])


def _paired_table(models: list[Model], reference: str | None = None) -> Markup:
    """Each evaluated model against the reference (by label; default the first evaluated one),
    image by image: the accuracy gap in points and the exact McNemar p-value, where both were
    evaluated on the same images at the same eps."""
    from specrobust.evaluation.stats import paired_difference

    evaluated = [m for m in models if m.evaluation and m.evaluation.get("per_example")]
    if len(evaluated) < 2:
        return Markup("")
    base = next((m for m in evaluated if m.label == reference), evaluated[0])
    others = [m for m in evaluated if m is not base]
    outcomes = base.evaluation["per_example"]
    attacks = [a for a in outcomes if any(a in m.evaluation["per_example"] for m in others)]
    rows = []
    for model in others:
        same = all(model.evaluation.get(k) == base.evaluation.get(k) for k in SAME_IMAGES)
        cells = []
        for attack in attacks:
            mine = model.evaluation["per_example"].get(attack)
            if not same or mine is None or len(mine) != len(outcomes[attack]):
                cells.append("")
                continue
            gap, p_value = paired_difference(mine, outcomes[attack])
            cells.append(html("{} <small>(p {})</small>", f"{100 * gap:+.1f}", f"{p_value:.2g}"))
        rows.append([model.label, *cells])
    return join([
        html("<h3>Differences from {}, image by image</h3>", base.label),
        html('<p class="note">Accuracy gap in points on the same test images, with the exact '
             "McNemar p-value: whether the gap is larger than the choice of test images explains "
             "for these trained models (it says nothing about how the gap varies with the "
             "training seed). Empty where the two were evaluated on other images or eps.</p>"),
        _table(["model", *attacks], rows)])


def _filter_table(models: list[Model]) -> Markup:
    rows, header = [], None
    for model in models:
        low = model.parts.get("filter", {}).get("lowpass")
        if not low:
            continue
        header = header or ["model", "input", *(f"b = {b}" for b in low["bandwidths"])]
        for key, name in (("clean", "clean"), ("pgd20", "PGD-20")):
            rows.append([model.label, name, *(_pct(v) for v in low[key])])
    return _table(header, rows) if rows else Markup("")


def render(models: list[Model], runs: list[RunInfo], title: str, notes: tuple[str, ...] = (),
           reference: str | None = None) -> str:
    sections = [html('<h1>{}</h1><p class="lead">{} model(s); generated {} by specrobust. '
                     "Accuracies in %.</p>", title, len(models), time.strftime("%Y-%m-%d %H:%M"))]
    sections += [html('<p class="note"><strong>{}</strong></p>', note) for note in notes]
    present = [p for p in PARTS if any(p in m.parts for m in models)]
    found = findings(models)
    nav = [html('<a href="#summary">summary</a>')]
    if found:
        nav.append(html('<a href="#findings">findings</a>'))
    nav += [html('<a href="#{}">{}</a>', p, PARTS[p].title.lower()) for p in present]
    if any(m.evaluation for m in models):
        nav.append(html('<a href="#evaluation">evaluation</a>'))
    if runs:
        nav.append(html('<a href="#training">training</a>'))
    sections.append(html("<nav>{}</nav>", join(nav)))
    sections.append(html('<h2 id="summary">Summary</h2>{}', _summary_table(models)))
    if found:
        sections.append(html(
            '<h2 id="findings">What these models show</h2><p class="note">Each claim of the '
            "paper, what these models show for it, and whether the two agree (cannot tell: "
            "the difference is within what the choice of test images explains).</p>{}",
            _table(["the paper's claim", "these models", "verdict"],
                   [[f.claim, f.shown, f.verdict] for f in found])))
    for part in present:
        entries = [(m.label, m.parts[part]) for m in models if part in m.parts]
        heading, text = PARTS[part].title, PARTS[part].explanation
        body = _filter_table(models) if part == "filter" else ""
        sections.append(html('<h2 id="{}">{}</h2><p class="note">{}</p>{}{}', part, heading,
                             text, body, _figure(part, entries)))
    evaluated = [m for m in models if m.evaluation]
    if evaluated:
        sections.append(html('<h2 id="evaluation">Evaluation</h2>{}{}',
                             _paired_table(models, reference),
                             join(_eval_section(m) for m in evaluated)))
    if runs:
        sections.append(html('<h2 id="training">Training</h2>'))
        for run in runs:
            sections.append(html("<h3>{}</h3>", run.name))
            if run.curves:
                sections.append(_img(run.curves, f"training curves of {run.name}"))
            if run.config:
                sections.append(html("<details><summary>config.yaml</summary><pre>{}</pre>"
                                     "</details>", run.config))
    return html('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                "{}<title>{}</title><style>{}</style></head><body><main>{}</main></body></html>\n",
                Markup(outputs.REPORT_MARKER), title, Markup(_STYLE), join(sections))


def write_report(sources: list[str], out: str | Path, title: str = "specrobust report",
                 names: dict[str, str] | None = None, reference: str | None = None,
                 force: bool = False, notes: tuple[str, ...] = ()) -> Path:
    """``names`` renames models, e.g. ``{"AT+SAR (best_averaged)": "AT+SAR+WA"}``;
    ``reference`` is the model (by label, after renaming) the others are compared with image by
    image (default: the first evaluated one); ``notes``: sentences shown first, under the title
    (a smoke run says so). An existing ``out`` is replaced only when it is a specrobust report,
    or with ``force``."""
    out = outputs.output_file(out, outputs.REPORT, force=force, how="choose another -o")
    models, runs = collect(sources)
    for model in models:
        model.label = (names or {}).get(model.label, model.label)
    evaluated = [m.label for m in models if m.evaluation]
    if reference is not None and reference not in evaluated:
        raise SpecRobustError(f"--reference {reference!r} is not an evaluated model here; "
                              f"evaluated: {', '.join(evaluated) or 'none'}")
    try:
        page = render(models, runs, title, reference=reference, notes=notes)
    except _MALFORMED as error:
        raise SpecRobustError(f"an analysis record among {', '.join(map(str, sources))} is not "
                              f"well formed ({type(error).__name__}); analyse again into a new "
                              "directory") from None
    storage.make_directories(out.parent)
    with locks.waited(locks.beside(out)):  # reports into one file are written in turn
        layout.remove_leftovers(out.parent, (out.name,))  # what a killed report left
        storage.write_text(out, page)
    return out
