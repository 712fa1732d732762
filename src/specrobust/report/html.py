"""`specrobust report`: any number of runs side by side in one self-contained HTML file.

Every image is embedded as a base64 PNG and the style sheet is inline, so the file opens offline
and can be mailed or attached as it is. Inputs are run directories (their ``analysis*/``
directories, ``eval*.json``, ``config.yaml`` and ``curves.png``), analysis directories, or
checkpoint files with ``<stem>-analysis/`` and ``<stem>-eval.json`` beside them.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from specrobust import atomic
from specrobust.analysis import PARTS
from specrobust.analysis.job import headline_numbers, read_parts
from specrobust.errors import SpecRobustError


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
    curves: Path | None = None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _read_eval(path: Path) -> dict | None:
    """A finished evaluation, or the finished attacks of one under way (``under_way`` set)."""
    from specrobust.evaluation.results import readable

    data = _read_json(path) if path.is_file() else None
    return readable(data) if data else None


def _models_of_run(run: Path) -> list[Model]:
    found = []
    names = {p.name for p in run.glob("analysis*") if p.is_dir()}
    names |= {p.stem.replace("eval", "analysis", 1) for p in run.glob("eval*.json")}
    for name in sorted(names):
        which = name[len("analysis-"):] if name.startswith("analysis-") else None
        parts = read_parts(run / name)
        evaluation = _read_eval(run / (f"eval-{which}.json" if which else "eval.json"))
        if parts or evaluation:
            label = run.name if which is None else f"{run.name} ({which})"
            found.append(Model(label, parts, evaluation))
    return found


def collect(sources: list[str]) -> tuple[list[Model], list[RunInfo]]:
    models, runs = [], []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise SpecRobustError(f"{path} does not exist")
        if path.is_dir() and (path / "summary.json").is_file():  # an analysis directory
            parts = read_parts(path)
            label = next(iter(parts.values()))["label"] if parts else path.name
            found = [Model(label, parts)]
        elif path.is_dir():
            found = _models_of_run(path)
            config = path / "config.yaml"
            curves = path / "curves.png"
            if config.is_file() or curves.is_file():
                runs.append(RunInfo(path.name, config.read_text() if config.is_file() else None,
                                    curves if curves.is_file() else None))
        else:
            parts = read_parts(path.with_name(f"{path.stem}-analysis"))
            evaluation = _read_eval(path.with_name(f"{path.stem}-eval.json"))
            found = [Model(path.stem, parts, evaluation)] if parts or evaluation else []
        if not found:
            raise SpecRobustError(f"no analysis or evaluation results in {path}; run `specrobust "
                                  f"analyze {path}` (and `specrobust eval {path}`) first")
        models += found
    return models, runs


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

_EXPLAIN = {
    "filter": ("Accuracy on filtered inputs",
               "The paper's Table 1. Low-pass keeps the centred b x b block of each channel's "
               "spectrum; high-pass removes it (keeping the image mean). PGD-20 images are made "
               "on unfiltered inputs and filtered afterwards. A model that keeps its accuracy "
               "under low-pass filtering relies on low frequencies."),
    "spectra": ("Input and perturbation spectra",
                "The paper's Fig. 2: mean centred |FFT| (low frequencies in the middle) of clean "
                "images, PGD-20 images and the perturbation, and the perturbation's energy per "
                "frequency ring. The attack puts its energy where the model looks."),
    "bands": ("Band-limited attacks",
              "PGD-20 restricted to one radial band (thirds of the Nyquist radius) at the same "
              "L-inf eps: low accuracy marks a band where the model is vulnerable."),
    "heatmap": ("Fourier heat map",
                "Yin et al. (2019): error rate when one Fourier basis image of fixed L2 norm is "
                "added, for every frequency (centre: low frequencies)."),
    "kernels": ("First-layer kernels",
                "The paper's Fig. 1. Non-DC energy: share of the kernels' spectral energy away "
                "from the zero frequency (lower is smoother)."),
    "logits": ("Logit-spectrum gap",
               "SAR's distance between the DFTs of clean and PGD-20 logits (batches of 128, as in "
               "training), next to PGD-20 accuracy."),
}


def _png(figure_function, entries) -> str:
    """Draw a figure into a temporary file (the figure functions write files) and embed it."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "figure.png"
        figure_function(entries, path)
        return _img(path.read_bytes())


def _img(png: bytes, alt: str = "figure") -> str:
    return (f'<img alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}">')


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _summary_table(models: list[Model]) -> str:
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
        cells = [html.escape(model.label), *(_pct(by_label.get(a)) for a in attacks)]
        if attacks:
            cells.append(f"<b>{_pct(worst)}</b>")
        for key in extra:
            value = numbers[model.label].get(key)
            cells.append("" if value is None else
                         (f"{value:.3f}" if key == "logit-spectrum gap" else _pct(value)))
        rows.append(cells)
    running = [f"{html.escape(m.label)} ({', '.join(map(html.escape, m.evaluation['under_way']))})"
               for m in models if m.evaluation and m.evaluation.get("under_way")]
    note = (f'<p class="note">Evaluation under way for {"; ".join(running)}: its worst case is '
            "over the finished attacks only.</p>") if running else ""
    return _table(header, rows) + note


def _eval_section(model: Model) -> str:
    evaluation = model.evaluation
    rows = [[html.escape(a["label"]), _pct(a["accuracy"]),
             f"{_pct(a['ci95'][0])}-{_pct(a['ci95'][1])}", f"{a['correct']} / {a['n']}",
             f"{a['seconds']:.1f}"] for a in evaluation["attacks"]]
    worst = evaluation["worst_case"]
    rows.append(["<b>worst case</b>", f"<b>{_pct(worst['accuracy'])}</b>",
                 f"{_pct(worst['ci95'][0])}-{_pct(worst['ci95'][1])}",
                 f"{worst['correct']} / {worst['n']}", ""])
    under_way = "".join(
        f'<p class="warn">{html.escape(label)} is under way ({done} of {of} images attacked): '
        "the worst case is over the finished attacks only.</p>"
        for label, (done, of) in evaluation.get("under_way", {}).items())
    failed = [c for c in evaluation.get("checks", []) if not c["ok"]]
    checks = "".join(f'<p class="warn">Possible gradient masking: {html.escape(c["name"])}: '
                     f'{html.escape(c["message"])}</p>' for c in failed)
    if evaluation.get("checks") and not failed:
        checks = f'<p class="note">Self-checks: all {len(evaluation["checks"])} passed.</p>'
    return (f"<h3>{html.escape(model.label)}</h3><p class=\"note\">{evaluation['model']['name']} "
            f"on {html.escape(str(evaluation['dataset']))}, first {evaluation['n']} test images, "
            f"L-inf eps {html.escape(str(evaluation['eps_text']))}</p>"
            + _table(["attack", "accuracy (%)", "95% interval", "correct / n", "seconds"], rows)
            + under_way + checks)


_SAME_IMAGES = ("dataset", "split", "first_n", "eps")  # evaluations that can be paired


def _paired_table(models: list[Model], reference: str | None = None) -> str:
    """Each evaluated model against the reference (by label; default the first evaluated one),
    image by image: the accuracy gap in points and the exact McNemar p-value, where both were
    evaluated on the same images at the same eps."""
    from specrobust.evaluation.stats import paired_difference

    evaluated = [m for m in models if m.evaluation and m.evaluation.get("per_example")]
    if len(evaluated) < 2:
        return ""
    base = next((m for m in evaluated if m.label == reference), evaluated[0])
    others = [m for m in evaluated if m is not base]
    outcomes = base.evaluation["per_example"]
    attacks = [a for a in outcomes if any(a in m.evaluation["per_example"] for m in others)]
    rows = []
    for model in others:
        same = all(model.evaluation.get(k) == base.evaluation.get(k) for k in _SAME_IMAGES)
        cells = []
        for attack in attacks:
            mine = model.evaluation["per_example"].get(attack)
            if not same or mine is None or len(mine) != len(outcomes[attack]):
                cells.append("")
                continue
            gap, p_value = paired_difference(mine, outcomes[attack])
            cells.append(f"{100 * gap:+.1f} <small>(p {p_value:.2g})</small>")
        rows.append([html.escape(model.label), *cells])
    return (f'<h3>Differences from {html.escape(base.label)}, image by image</h3>'
            '<p class="note">Accuracy gap in points on the same test images, with the exact '
            "McNemar p-value: whether the gap is larger than the choice of test images explains "
            "for these trained models (it says nothing about how the gap varies with the "
            "training seed). Empty where the two were evaluated on other images or eps.</p>"
            + _table(["model", *attacks], rows))


def _filter_table(models: list[Model]) -> str:
    rows, header = [], None
    for model in models:
        low = model.parts.get("filter", {}).get("lowpass")
        if not low:
            continue
        header = header or ["model", "input", *(f"b = {b}" for b in low["bandwidths"])]
        for key, name in (("clean", "clean"), ("pgd20", "PGD-20")):
            rows.append([html.escape(model.label), name, *(_pct(v) for v in low[key])])
    return _table(header, rows) if rows else ""


def render(models: list[Model], runs: list[RunInfo], title: str,
           reference: str | None = None) -> str:
    from specrobust.report.analysis_figures import PLOTS

    sections = [f"<h1>{html.escape(title)}</h1><p class=\"lead\">{len(models)} model(s); "
                f"generated {time.strftime('%Y-%m-%d %H:%M')} by specrobust. Accuracies in %."
                "</p>"]
    present = [p for p in PARTS if any(p in m.parts for m in models)]
    nav = ['<a href="#summary">summary</a>']
    nav += [f'<a href="#{p}">{_EXPLAIN[p][0].lower()}</a>' for p in present]
    if any(m.evaluation for m in models):
        nav.append('<a href="#evaluation">evaluation</a>')
    if runs:
        nav.append('<a href="#training">training</a>')
    sections.append(f"<nav>{''.join(nav)}</nav>")
    sections.append(f'<h2 id="summary">Summary</h2>{_summary_table(models)}')
    for part in present:
        entries = [(m.label, m.parts[part]) for m in models if part in m.parts]
        heading, text = _EXPLAIN[part]
        body = _filter_table(models) if part == "filter" else ""
        sections.append(f'<h2 id="{part}">{heading}</h2><p class="note">{text}</p>{body}'
                        + _png(PLOTS[part], entries))
    evaluated = [m for m in models if m.evaluation]
    if evaluated:
        sections.append('<h2 id="evaluation">Evaluation</h2>' + _paired_table(models, reference)
                        + "".join(_eval_section(m) for m in evaluated))
    if runs:
        sections.append('<h2 id="training">Training</h2>')
        for run in runs:
            sections.append(f"<h3>{html.escape(run.name)}</h3>")
            if run.curves:
                sections.append(_img(run.curves.read_bytes(), f"training curves of {run.name}"))
            if run.config:
                sections.append(f"<details><summary>config.yaml</summary>"
                                f"<pre>{html.escape(run.config)}</pre></details>")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><main>{''.join(sections)}</main></body></html>\n")


def write_report(sources: list[str], out: str | Path, title: str = "specrobust report",
                 names: dict[str, str] | None = None, reference: str | None = None) -> Path:
    """``names`` renames models, e.g. ``{"AT+SAR (best_averaged)": "AT+SAR+WA"}``;
    ``reference`` is the model (by label, after renaming) the others are compared with image by
    image (default: the first evaluated one)."""
    models, runs = collect(sources)
    for model in models:
        model.label = (names or {}).get(model.label, model.label)
    evaluated = [m.label for m in models if m.evaluation]
    if reference is not None and reference not in evaluated:
        raise SpecRobustError(f"--reference {reference!r} is not an evaluated model here; "
                              f"evaluated: {', '.join(evaluated) or 'none'}")
    out = Path(out)
    if out.is_dir():
        raise SpecRobustError(f"{out} is a directory; give the report a file name such as "
                              f"{out / 'report.html'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, render(models, runs, title, reference))
    return out
