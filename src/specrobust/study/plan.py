"""A study plan: training runs x seeds, the methods (table rows) read from them, what to
evaluate and analyse, and which pairs of methods to compare. Plain data, read from YAML::

    name: cifar10
    title: "Replication at CPU scale: CIFAR-10, cnn_small, eps 8/255"
    out: benchmarks/replication/cifar10     # relative to the working directory
    seeds: [0, 1, 2, 3, 4]
    eps: 8/255
    n: 1000                                 # test images for evaluation and analysis
    attacks: clean,fgsm,pgd20,cw30
    late_attacks: aa                        # its own stage, after every seed's other results
    analysis: filter,spectra,kernels,logits
    precision: fp32                         # of the gradient attacks: fp32 (default) or bf16
    runs:                                   # recipes relative to this file
      at: {recipe: ../replication/cifar10_cnn_at.yaml}
      at_sar: {recipe: ../replication/cifar10_cnn_at_sar.yaml, branch_from: at}
    methods:                                # label: [run, checkpoint]
      AT: [at, best]
      AT+SAR+WA: [at_sar, best_averaged]
    comparisons: [[AT+SAR+WA, AT]]          # paired differences, first minus second
    quick: {...}                            # `--quick`: these keys replace the plan's

A run may set overrides (``set: [key=value, ...]``, the recipe syntax of `--set`) and branch
from another run of the same seed (``branch_from``): AT+SAR takes AT's state at the epoch SAR
starts instead of training the shared epochs again. ``reference: {root: DIR, methods: {...}}``
names methods of another study's runs (same layout) to compare with; ``branch_root``, the
study whose runs ``branch_from`` names (default: this one). In ``quick``, ``set``
applies to every run and ``runs: {name: [overrides]}`` to one.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from specrobust.errors import SpecRobustError, quoted
from specrobust.files.layout import CHECKPOINTS_IN_TRAINING_ORDER as CHECKPOINTS
from specrobust.files.storage import read_mapping
from specrobust.settings import DEFAULT_ATTACKS, DEFAULT_PARTS, Settings
from specrobust.typed import build

STAGES = ("train", "eval", "analyze", "aa", "report")
# A run's name becomes a directory name (OUT/runs/<run>-seed<k>): one path component.
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}")


@dataclass(frozen=True)
class Run:
    """One training run per seed: a recipe file plus overrides."""

    name: str
    recipe: Path
    overrides: tuple[str, ...] = ()
    branch_from: str | None = None


@dataclass(frozen=True)
class Method:
    """A row of a results table: which run, and which of its checkpoints."""

    label: str
    run: str
    which: str  # last | best | best_averaged | averaged


@dataclass
class Plan:
    name: str
    title: str
    out: Path
    runs: list[Run]
    methods: list[Method]
    seeds: list[int]
    eps: str
    n: int = Settings.n
    attacks: str = DEFAULT_ATTACKS
    late_attacks: str = ""
    analysis: str = DEFAULT_PARTS
    check_n: int = Settings.check_n
    precision: str = Settings.precision  # of the gradient attacks (`--precision`)
    progress: bool = True  # progress bars (off for studies run in the background, into a log)
    comparisons: list[tuple[str, str]] = field(default_factory=list)
    reference_root: Path | None = None  # where reference methods' runs are
    branch_root: Path | None = None  # where branch_from runs are (default: this plan's out)
    reference_methods: list[Method] = field(default_factory=list)
    report_reference: str | None = None  # the report's paired table compares with this method
    notes: list[str] = field(default_factory=list)
    smoke: str = ""  # for a --quick plan: what its scale is and what it leaves out

    def run(self, name: str) -> Run:
        found = [r for r in self.runs if r.name == name]
        if not found:
            raise SpecRobustError(f"plan {self.name} has no run {name!r}; its runs: "
                                  f"{', '.join(r.name for r in self.runs)}")
        return found[0]

    def run_dir(self, run: str, seed: int, root: Path | None = None) -> Path:
        """Where a run of a seed lives: ``OUT/runs/<run>-seed<seed>``."""
        return (self.out if root is None else root) / "runs" / f"{run}-seed{seed}"

    def locate(self, label: str) -> tuple[Method, Path]:
        """A method by label, with the root its runs are under (this plan's or the
        reference's)."""
        for method in self.methods:
            if method.label == label:
                return method, self.out
        for method in self.reference_methods:
            if method.label == label:
                return method, self.reference_root
        raise SpecRobustError(f"plan {self.name} has no method {label!r}; its methods: "
                              f"{', '.join(m.label for m in self.methods)}")


@dataclass(frozen=True)
class RunEntry:
    """A run as a plan file writes it (``set`` is written for ``overrides``)."""

    recipe: str
    overrides: list[str] = field(default_factory=list)
    branch_from: str | None = None


@dataclass(frozen=True)
class ReferenceEntry:
    root: str | None = None
    methods: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportEntry:
    reference: str | None = None


@dataclass(frozen=True)
class PlanFile:
    """A plan file's keys and their types, read by the typed builder that reads recipes; what
    types cannot say (names that become paths, labels, known runs) :func:`_plan` checks."""

    name: str
    eps: str
    runs: dict[str, RunEntry]
    methods: dict[str, list[str]] = field(default_factory=dict)
    title: str | None = None
    out: str | None = None
    branch_root: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    n: int = Settings.n
    attacks: str = DEFAULT_ATTACKS
    late_attacks: str | None = None
    analysis: str | None = None
    check_n: int = Settings.check_n
    precision: str = Settings.precision
    progress: bool = True
    comparisons: list[list[str]] = field(default_factory=list)
    reference: ReferenceEntry = field(default_factory=ReferenceEntry)
    report: ReportEntry = field(default_factory=ReportEntry)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QuickEntry:
    """A plan's ``quick`` section besides the plan keys it replaces."""

    overrides: list[str] = field(default_factory=list)  # every run's (written ``set``)
    runs: dict[str, list[str]] = field(default_factory=dict)  # one run's


_ALIASES = {"set": "overrides"}


def load_plan(path: str | Path, *, quick: bool = False) -> Plan:
    """Read and check a plan file (a path, or a shipped plan's name); with ``quick``, its
    ``quick`` section applied."""
    from specrobust.recipes import PLAN, find

    path = find(str(path), PLAN)
    data = read_mapping(path, kind="study plan", what="a study plan",
                        holds="plan keys (name, runs, methods, ...)")
    changes = data.pop("quick", None)
    if not quick:
        return _plan(_typed(PlanFile, data, path), path)
    if not changes:
        raise SpecRobustError(f"{path} has no quick section, so --quick cannot shorten it")
    if not isinstance(changes, dict):
        raise SpecRobustError(f"{path}: quick must be a mapping, got {quoted(changes)}")
    extra = _typed(QuickEntry, {k: changes.pop(k) for k in ("set", "runs") if k in changes},
                   path, "quick.")
    full = _typed(PlanFile, data, path)
    short = _typed(PlanFile, {**data, **changes}, path)
    for name in extra.runs:
        if name not in short.runs:
            raise SpecRobustError(f"{path}: quick.runs names {quoted(name)}, not a run of the "
                                  "plan")
    short = dataclasses.replace(
        short, title=f"{short.title or short.name} (quick smoke run)",
        runs={name: dataclasses.replace(run, overrides=[*run.overrides, *extra.overrides,
                                                        *extra.runs.get(name, [])])
              for name, run in short.runs.items()})
    plan = _plan(short, path)
    scale = [", ".join(extra.overrides), *(f"{name}: {', '.join(values)}"
                                           for name, values in extra.runs.items() if values)]
    return dataclasses.replace(plan, smoke=_smoke_sentence(full, short, scale, plan))


def _typed(cls, data: dict, path: Path, prefix: str = ""):
    try:
        return build(cls, data, prefix, aliases=_ALIASES, kind="plan")
    except SpecRobustError as error:
        raise SpecRobustError(f"{path}: {error}") from None


def _smoke_sentence(full: PlanFile, quick: PlanFile, changes: list[str], plan: Plan) -> str:
    """What a --quick plan is: its scale (``changes``: the overrides of every run, then each
    run's own), and what it leaves out of the full plan (read from the two plans, so it cannot
    drift from them)."""
    def names(value) -> list[str]:
        return [part.strip() for part in str(value or "").split(",") if part.strip()]

    left_out = []
    for key, what in (("attacks", "attacks"), ("analysis", "analyses")):
        dropped = [name for name in names(getattr(full, key))
                   if name not in names(getattr(quick, key))]
        if dropped:
            left_out.append(f"{what} {', '.join(dropped)}")
    scale = "; ".join(change for change in changes if change)
    return (f"Quick smoke run: every stage at a small scale ({scale}; tested on the first "
            f"{plan.n} test images), to show that everything works. Models this "
            "small and this briefly trained need not show what the paper claims: the full run "
            "(without --quick) is the one to read."
            + (f" Left out of the full run: {'; '.join(left_out)}." if left_out else ""))


def _plan(data: PlanFile, path: Path) -> Plan:
    """The plan a well-typed plan file describes, once its names, labels and references are
    checked."""
    name = _text(data.name, path, "name")
    runs: list[Run] = []
    for run_name, entry in data.runs.items():
        run_name = _run_name(run_name, path)
        if any(r.name == run_name for r in runs):
            raise SpecRobustError(f"{path}: two runs are named {run_name!r}; each run needs its "
                                  "own name (it names the run's directory)")
        branch_from = None if entry.branch_from is None else \
            _run_name(entry.branch_from, path, f"runs.{run_name}.branch_from")
        # Found once everything else is checked (a plan's own mistakes first).
        runs.append(Run(run_name, Path(_text(entry.recipe, path, f"runs.{run_name}.recipe")),
                        tuple(entry.overrides), branch_from))
    if not runs:
        raise SpecRobustError(f"{path}: runs is empty; a study trains at least one run")
    names = {r.name for r in runs}
    branch_root = None if data.branch_root is None else \
        Path(_text(data.branch_root, path, "branch_root"))
    for run in runs:
        if run.branch_from is not None and run.branch_from not in names and branch_root is None:
            raise SpecRobustError(f"{path}: run {run.name} branches from {run.branch_from!r}, "
                                  f"which is not a run of the plan ({', '.join(names)})")
    methods = _methods(data.methods, path, "methods", names)
    reference_root = None if data.reference.root is None else \
        Path(_text(data.reference.root, path, "reference.root"))
    reference_methods = _methods(data.reference.methods, path, "reference.methods", None)
    labels = [m.label for m in methods + reference_methods]
    if len(set(labels)) < len(labels):
        twice = next(label for label in labels if labels.count(label) > 1)
        raise SpecRobustError(f"{path}: two methods are labelled {twice!r}; each table row "
                              "needs its own label")
    for pair in data.comparisons:
        if not (len(pair) == 2 and set(pair) <= set(labels)):
            raise SpecRobustError(f"{path}: a comparison is a pair of method labels, got "
                                  f"{quoted(pair)}; labels: {', '.join(sorted(labels))}")
    from specrobust.settings import MAX_SEED

    if not data.seeds or not all(0 <= s <= MAX_SEED for s in data.seeds):
        raise SpecRobustError(f"{path}: seeds must be a list of whole numbers in [0, 2**63 - 1], "
                              f"got {quoted(data.seeds)}")
    if len(set(data.seeds)) < len(data.seeds):
        raise SpecRobustError(f"{path}: seeds lists a seed twice ({quoted(data.seeds)})")
    report_reference = data.report.reference or None
    if report_reference is not None and report_reference not in labels:
        raise SpecRobustError(f"{path}: report.reference must be a method label "
                              f"({', '.join(sorted(labels))}), got {quoted(report_reference)}")
    if reference_methods and reference_root is None:
        raise SpecRobustError(f"{path}: reference.methods needs reference.root, the directory "
                              "of the study those runs belong to")
    plan = Plan(
        name=name, title=data.title or name,
        out=Path(_text(data.out or f"runs/{name}", path, "out")),
        runs=runs, methods=methods, seeds=list(data.seeds), eps=_eps(data.eps, path),
        n=_whole(data.n, path, "n"), attacks=_text(data.attacks, path, "attacks"),
        late_attacks=data.late_attacks or "", analysis=data.analysis or "",
        check_n=_whole(data.check_n, path, "check_n"),
        precision=_precision(data.precision, path), progress=data.progress,
        comparisons=[(a, b) for a, b in data.comparisons], reference_root=reference_root,
        branch_root=branch_root, reference_methods=reference_methods,
        report_reference=report_reference, notes=list(data.notes))
    _check_work(plan, path)
    plan.runs = [dataclasses.replace(run, recipe=_recipe(str(run.recipe), path.parent))
                 for run in plan.runs]
    return plan


def _recipe(text: str, here: Path) -> Path:
    """A run's recipe: relative to the plan's file, else a shipped recipe's name."""
    from specrobust.recipes import RECIPE, find

    return find(text, RECIPE, relative_to=here)


def _run_name(value, path: Path, key: str = "runs") -> str:
    if not isinstance(value, str) or not _RUN_NAME.fullmatch(value) or value in (".", ".."):
        raise SpecRobustError(f"{path}: {key}: a run's name names its directory, so it is one "
                              "path component of letters, digits and _ . + - (no / or ..), at "
                              f"most 80 characters; got {quoted(value)}")
    return value


def _eps(value, path: Path) -> str:
    """The budget, parsed now (L-inf, in [0, 1]): a typo should not wait for the training."""
    from specrobust.numbers import check_range, parse_fraction

    text = str(_text(value, path, "eps"))
    try:
        check_range(parse_fraction(text, "eps"), "eps", 0, 1)
    except SpecRobustError as error:
        raise SpecRobustError(f"{path}: {error}") from None
    return text


def _precision(value, path: Path) -> str:
    from specrobust.settings import check_precision

    try:
        return check_precision(value)
    except SpecRobustError as error:
        raise SpecRobustError(f"{path}: {error}") from None


def _check_work(plan: Plan, path: Path) -> None:
    """The attacks and analysis parts, parsed now: a typo should not wait for hours of
    training."""
    from specrobust.analysis.job import parse_parts
    from specrobust.attacks.registry import parse_attacks

    try:
        parse_attacks(",".join(a for a in (plan.attacks, plan.late_attacks) if a))
        if plan.analysis:
            parse_parts(plan.analysis)
    except SpecRobustError as error:
        raise SpecRobustError(f"{path}: {error}") from None


# Allowed by list: a label heads a row of RESULTS.md and the report, so no table separator,
# markup or path character can reach them.
_LABEL_PUNCTUATION = "+-_.,()=:@#%"
_LABEL = re.compile(rf"[\w {re.escape(_LABEL_PUNCTUATION)}]{{1,80}}")


def _methods(data: dict, path: Path, key: str, runs: set[str] | None) -> list[Method]:
    methods = []
    for label, spec in data.items():
        if not isinstance(label, str | int) or isinstance(label, bool) or \
                not str(label).strip() or not _LABEL.fullmatch(str(label)):
            raise SpecRobustError(f"{path}: {key}: a method label is letters, digits, spaces and "
                                  f"{_LABEL_PUNCTUATION} (it heads table rows and names files), "
                                  f"got {quoted(label)}")
        if not (len(spec) == 2 and spec[1] in CHECKPOINTS and (runs is None or spec[0] in runs)):
            raise SpecRobustError(f"{path}: {key}.{label} must be [run, checkpoint] with a run "
                                  f"of the plan and a checkpoint of {', '.join(CHECKPOINTS)}; "
                                  f"got {quoted(spec)}")
        methods.append(Method(str(label), spec[0], spec[1]))
    return methods


def _text(value, path: Path, key: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise SpecRobustError(f"{path}: {key} must be given as text, got {quoted(value)}")
    return value


def _whole(value, path: Path, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecRobustError(f"{path}: {key} must be a whole number >= 1, got {quoted(value)}")
    return value
