"""The ``specrobust`` command.

Every user mistake, and every fault of the environment (a full or read-only disk, a path of the
wrong kind, a closed pipe, exhausted memory), ends as one line on stderr and exit status 2;
``--debug`` shows the traceback.
Subcommands: ``data``, ``models``, ``fetch-model``, ``train``, ``eval``, ``analyze``, ``report``,
``study``, ``demo``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from specrobust.errors import SpecRobustError, quoted


def _whole(option: str, low: int | None = None, high: int | None = None):
    """An argparse type: a whole number (in [low, high] where given: options that are not the
    jobs' settings, which the job checks), refused in one line that states the range."""
    def parse(text: str) -> int:
        from specrobust.numbers import check_range, parse_whole

        return int(check_range(parse_whole(text, option), option, low, high))
    return parse


def _number(option: str):
    """An argparse type: a finite number (its range is the job's to check)."""
    def parse(text: str) -> float:
        from specrobust.numbers import parse_number

        return parse_number(text, option)
    return parse


def _add_threat_model(command, default_text: str) -> None:
    from specrobust.settings import NORMS, Settings

    # Kept as written (8/255); checked by the job (Settings.check), against the data's shape.
    command.add_argument("--eps", help=f"budget such as 8/255 or 0.5 (default: {default_text})")
    command.add_argument("--norm", choices=tuple(NORMS), default=Settings.norm,
                         help=f"threat model: L-inf or L2 ball (default {Settings.norm})")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit status 2, like every other error."""

    def error(self, message: str):
        raise SpecRobustError(f"{message} (see `{self.prog} --help`)")

    def _get_value(self, action, arg_string):
        # specrobust's own option types say what is wrong in their error's line; argparse would
        # replace it (the error is a ValueError) with "invalid parse value".
        if not callable(action.type) or isinstance(action.type, type):
            return super()._get_value(action, arg_string)
        try:
            return action.type(arg_string)
        except SpecRobustError:
            raise
        except (TypeError, ValueError):
            name = "/".join(action.option_strings) or action.dest
            self.error(f"argument {name}: invalid value {quoted(arg_string)}")


def _build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="specrobust",
        description="Understand adversarial robustness through the frequency spectrum; improve "
        "it with Spectral Alignment Regularization and weight averaging.",
    )
    from specrobust import __version__

    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"specrobust {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    data = commands.add_parser("data", help="list, verify, fetch and inspect datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True,
                                        parser_class=_OneLineParser)
    data_commands.add_parser("list", help="the datasets specrobust knows and where they are")
    for name, text in (
        ("verify", "check every file's checksum and the split sizes"),
        ("fetch", "make a dataset present (download with checksum verification if needed)"),
        ("inspect", "split sizes, class balance, pixel statistics and spectral energy by band"),
    ):
        command = data_commands.add_parser(name, help=text)
        command.add_argument("name", help="dataset name, e.g. fashion-mnist or synthetic:band=high")
        command.add_argument("--data-root", help="directory holding datasets "
                             "(default: $SPECROBUST_DATA, else ~/.cache/specrobust)")

    recipes = commands.add_parser(
        "recipes", help="the shipped recipes and study plans; `recipes show NAME` prints one",
        description="Without arguments: one line per shipped recipe and plan. `show NAME`: the "
        "recipe with its bases merged (or the plan), as YAML to copy and edit.")
    recipes.add_argument("action", nargs="?", choices=("show",), help="show one")
    recipes.add_argument("name", nargs="?", help="a recipe's or plan's name")
    models = commands.add_parser("models", help="the model zoo with parameter counts")
    models.add_argument("--pretrained", action="store_true",
                        help="list the public checkpoints specrobust can name instead")
    fetch = commands.add_parser("fetch-model", help="make a pretrained model's weights present "
                                "(downloaded where there is a network, then checked)")
    fetch.add_argument("name", help="a name from `specrobust models --pretrained`")
    _add_train(commands)
    _add_eval(commands)
    _add_analyze(commands)
    _add_report(commands)
    _add_study(commands)
    return parser


def _add_study(commands) -> None:
    from specrobust.study.plan import STAGES

    study = commands.add_parser(
        "study", help="run a study plan: methods x seeds trained, evaluated, analysed, compared "
        "in paired tables (RESULTS.md) and one HTML report; resumable, and several processes may "
        "share one plan")
    study.add_argument("plan", help="a shipped plan's name (`specrobust recipes`) or a plan file "
                       "(YAML)")
    demo = commands.add_parser(
        "demo", help="the shipped study `demo`: natural/AT/AT+SAR/AT+SAR+WA on "
        "Fashion-MNIST, writes runs/demo/report.html (resumable)")
    for command in (study, demo):
        command.add_argument("--quick", action="store_true",
                             help="the plan's quick version (the demo's takes minutes)")
        command.add_argument("--out", help="directory (default: the plan's out)")
        command.add_argument("--seeds", type=_seed_list,
                             help="comma list of seeds to work on (default: the plan's)")
        command.add_argument("--stages", type=_stage_list(STAGES), default=STAGES,
                             help=f"comma list of {', '.join(STAGES)} (default: all; aa is the "
                             "plan's late attacks), or none; the tables are always written")
        command.add_argument("--threads", type=_whole("--threads", 0, 1024), default=0,
                             help="torch CPU threads (default 0: torch's choice; with "
                             "--workers, the total they share)")
        command.add_argument("--workers", type=_whole("--workers", 1, 256), default=1,
                             help="processes sharing the plan's runs and evaluations (one GPU "
                             "each where there are GPUs; default 1)")
        command.add_argument("--data-root", help="directory holding datasets")
        command.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")


def _seed_list(text: str) -> list[int]:
    from specrobust.numbers import parse_whole
    from specrobust.settings import MAX_SEED

    seeds = [int(parse_whole(part.strip(), "--seeds")) for part in text.split(",")
             if part.strip()]
    if not seeds or any(not 0 <= seed <= MAX_SEED for seed in seeds):
        raise SpecRobustError(f"--seeds must be a comma list of whole numbers in [0, 2**63 - 1], "
                              f"got {text!r}")
    return seeds


def _stage_list(known: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        if text.strip() == "none":  # the tables only
            return ()
        stages = tuple(part.strip() for part in text.split(",") if part.strip())
        unknown = [s for s in stages if s not in known]
        if unknown or not stages:
            raise SpecRobustError(f"unknown stage {', '.join(unknown) or repr(text)} in "
                                  f"--stages; known: {', '.join(known)}")
        return stages
    return parse


def _add_train(commands) -> None:
    command = commands.add_parser(
        "train", help="train a recipe (natural, PGD-AT, TRADES, MART; SAR, AWP, SWA/EMA)",
        description="Train from a recipe: a shipped one's name (`specrobust recipes`) or a YAML "
        "file (whose `base:` may name a shipped recipe). The run directory receives "
        "config.yaml, metrics.jsonl, checkpoints/, weights/*.safetensors and curves.png.")
    command.add_argument("config", help="a recipe: a shipped name, e.g. fmnist_cnn_at_sar_wa, or "
                         "a YAML file")
    command.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY=VALUE", help="override a setting, e.g. optim.epochs=2 "
                         "(repeatable)")
    command.add_argument("--out", help="run directory (default runs/<recipe name>)")
    command.add_argument("--resume", action="store_true",
                         help="continue the run in --out from its last checkpoint")
    command.add_argument("--force", action="store_true",
                         help="resume even though the config differs from the run's")
    command.add_argument("--branch-from", metavar="RUN",
                         help="start from RUN's state after the epoch SAR starts at (or "
                         "--branch-epoch): RUN must have trained the same recipe without SAR "
                         "that far, with run.snapshot_epochs naming that epoch")
    command.add_argument("--branch-epoch", type=_whole("--branch-epoch", 1), metavar="K",
                         help="with --branch-from: the epoch to branch after")


def _floats(option: str):
    """An argparse type: comma-separated finite numbers, e.g. 0.4914,0.4822,0.4465."""
    def parse(text: str) -> tuple[float, ...]:
        from specrobust.numbers import parse_number

        return tuple(parse_number(v, option) for v in text.split(","))
    return parse


def _add_model_source(command) -> None:
    """The options that say where a model comes from (``specrobust.loading``): declared
    here once for every command that takes a model, read back by :func:`_model_source`."""
    from specrobust.layout import CHECKPOINTS

    group = command.add_argument_group("model source")
    group.add_argument("--model", help="architecture for a weights file: a zoo name "
                       "(specrobust models), or user code path/to/arch.py:factory or "
                       "package.module:factory (this runs that code)")
    group.add_argument("--model-args", metavar="JSON", help="keyword arguments for a --model "
                       "factory, as a JSON object, e.g. '{\"depth\": 28}'")
    group.add_argument("--dataset", help="the data the model takes (needed unless the source "
                       "says so itself)")
    group.add_argument("--mean", type=_floats("--mean"), help="per-channel mean the model "
                       "expects its inputs normalised with, e.g. 0.4914,0.4822,0.4465 "
                       "(default: none, or what the weights file stores)")
    group.add_argument("--std", type=_floats("--std"), help="per-channel std, with --mean")
    group.add_argument("--checkpoint", dest="which", default="auto",
                       choices=("auto", *CHECKPOINTS),
                       help="which checkpoint of a run directory (default auto: the averaged "
                       "model's best if the run averages weights, else the best)")


def _settings(args) -> dict:
    """The shared settings (``specrobust.settings.Settings``) a command's options give."""
    from dataclasses import fields

    from specrobust.settings import Settings

    return {f.name: getattr(args, f.name) for f in fields(Settings) if hasattr(args, f.name)}


def _model_source(args, path: str | None):
    from specrobust.loading import ModelSource

    return ModelSource(path=path, model=args.model, model_args=args.model_args,
                       dataset=args.dataset, mean=args.mean, std=args.std, which=args.which)


def _add_test_job(command) -> None:
    """What `eval` and `analyze` share (``specrobust.settings``): the model, the test images,
    the threat model, the seed and the machine. Their defaults are the Settings'; their ranges
    are checked once, by the job."""
    from specrobust.settings import PRECISIONS, Settings

    command.add_argument("--n", "--num-images", dest="n", type=_whole("--n"),
                         default=Settings.n,
                         help=f"first n test images (default {Settings.n}; spell it "
                         "--num-images under torchrun, whose own options --n would abbreviate)")
    _add_threat_model(command, "the training budget, else the dataset's usual one")
    _add_model_source(command)
    command.add_argument("--data-root", help="directory holding datasets")
    command.add_argument("--seed", type=_whole("--seed"), default=Settings.seed)
    command.add_argument("--batch-size", type=_whole("--batch-size"),
                         default=Settings.batch_size)
    command.add_argument("--device", default=Settings.device,
                         help=f"auto, cpu or cuda (default {Settings.device})")
    command.add_argument("--precision", choices=PRECISIONS, default=Settings.precision,
                         help="arithmetic of the gradient attacks (FGSM, PGD, C&W): bf16 autocast "
                         "is faster where the CPU or GPU has bf16 units and attacks slightly "
                         "differently; outcomes are judged in fp32, and AutoAttack and the "
                         "self-checks always run in fp32 (default fp32)")


def _add_eval(commands) -> None:
    from specrobust.settings import DEFAULT_ATTACKS, Settings

    command = commands.add_parser(
        "eval", help="evaluate a run or checkpoint under an attack suite; writes eval.json",
        description="Attack suites: clean, fgsm, pgd20, pgd50, cw30, aa, aa-apgd-ce, and "
        "parameterised forms such as pgd:steps=100,restarts=5,alpha=0.5/255 or pgd:band=low. "
        "Robust accuracy counts examples correct both clean and attacked; the worst case is "
        "over all attacks given. An interrupted evaluation resumes from its eval.json.")
    command.add_argument("source", nargs="?", help="run directory, specrobust checkpoint or "
                         "safetensors file, pretrained model name, TorchScript or torch.export "
                         "(.pt2) file, or a plain state_dict (then --model and --dataset); "
                         "omitted when --model is user code that returns its own weights")
    command.add_argument("--attacks", default=DEFAULT_ATTACKS,
                         help=f"comma-separated attacks (default {DEFAULT_ATTACKS})")
    _add_test_job(command)
    command.add_argument("--out", help="where to write the evaluation record, a .json file "
                         "(default: eval.json in the run directory, or beside the checkpoint); "
                         "the table goes beside it as .md")
    command.add_argument("--no-checks", dest="checks", action="store_false",
                         help="skip the gradient-masking self-checks")
    command.add_argument("--check-n", type=_whole("--check-n"), default=Settings.check_n,
                         help="examples for the self-checks' extra attacks (default "
                         f"{Settings.check_n})")


def _add_analyze(commands) -> None:
    from specrobust.analysis import PARTS
    from specrobust.settings import Settings

    command = commands.add_parser(
        "analyze", help="spectral analysis of runs or checkpoints; writes analysis/ (JSON + PNG)",
        description="Parts: filter (accuracy on low/high-pass filtered inputs, Table 1), spectra "
        "(clean/adversarial/perturbation spectra, Fig. 2), bands (band-limited PGD), heatmap "
        "(Fourier heat map), kernels (first-layer kernels, Fig. 1), logits (logit-spectrum gap). "
        "Finished parts are not run again.")
    command.add_argument("sources", nargs="*", metavar="SOURCE",
                         help="run directories, checkpoints, pretrained names, programs or "
                         "weights files (see `specrobust eval --help`); none when --model is "
                         "user code that returns its own weights")
    command.add_argument("--parts", "--suite", dest="parts", default=",".join(PARTS),
                         help=f"comma-separated parts (default {','.join(PARTS)}; --suite is "
                         "its earlier name)")
    _add_test_job(command)
    command.add_argument("--out", help="analysis directory (one source only; default "
                         "RUN/analysis, or RUN/analysis-<checkpoint>)")
    command.add_argument("--heatmap-norm", type=_number("--heatmap-norm"),
                         help="L2 norm of the added Fourier basis image (default 4 for 3x32x32, "
                         "scaled by sqrt(pixels/3072))")
    command.add_argument("--heatmap-n", type=_whole("--heatmap-n"), default=Settings.heatmap_n,
                         help="images for the heat map (default 200 up to 32x32 images, fewer "
                         "in proportion to the pixels above, at least 10)")
    command.add_argument("--heatmap-stride", type=_whole("--heatmap-stride"),
                         default=Settings.heatmap_stride,
                         help="every k-th frequency on each axis (default: every frequency up "
                         "to 32x32 images, a 32x32 grid above)")


def _add_report(commands) -> None:
    command = commands.add_parser(
        "report", help="one self-contained HTML page comparing runs (analysis, eval, training)")
    command.add_argument("sources", nargs="+", metavar="RUN",
                         help="run directories, analysis directories or checkpoints")
    command.add_argument("-o", "--out", default="report.html", help="HTML file (default "
                         "report.html)")
    command.add_argument("--force", action="store_true",
                         help="replace the -o file even though it is not a specrobust report")
    command.add_argument("--title", default="specrobust report")
    command.add_argument("--reference", metavar="MODEL",
                         help="the model the others are compared with image by image, by its "
                         "label in the report, e.g. 'at' or 'at (best)' (default: the first "
                         "evaluated)")


def _data_list(args) -> int:
    from specrobust.data import DATASETS, store

    root = store.resolve_data_root(getattr(args, "data_root", None))
    print(f"data root: {root}")
    print(f"{'name':<14} {'shape':<10} {'classes':>7} {'train':>7} {'test':>6} {'eps':>6}  "
          "flip  status")
    for info in DATASETS.values():
        if info.generated:
            status = "generated"
        else:
            found = store.find_layout(info, root)
            status = f"found ({found[0].name}) in {found[1]}" if found else "not found"
        shape = "x".join(str(s) for s in info.image_shape)
        print(f"{info.name:<14} {shape:<10} {info.num_classes:>7} {info.train_size:>7} "
              f"{info.test_size:>6} {info.eps_text:>6}  {'yes' if info.hflip else 'no ':<4}  "
              f"{status}")
    from specrobust.data import user

    imagenet, size = root / "imagenet" / "val", user.IMAGENET_SIZE
    print(f"{'imagenet':<14} {f'3x{size}x{size}':<10} {user.IMAGENET_CLASSES:>7} {'-':>7} "
          f"{'-':>6} {user.IMAGENET_BUDGETS['linf']:>6}  yes   "
          f"{'found in ' + str(imagenet) if imagenet.is_dir() else 'not found'} "
          f"(validation set, resize {user.IMAGENET_RESIZE}, crop {size})")
    print("your own: folder:DIR[,size=S][,resize=R] (class subfolders), npz:FILE[,classes=K] "
          "(arrays x, y); give --eps")
    return 0


def _data_verify(args) -> int:
    from specrobust.data import verify_dataset

    report = verify_dataset(args.name, args.data_root)
    print(f"{report.dataset}: {report.layout} layout in {report.directory}")
    for check in report.files:
        detail = f" (md5 {check.md5})" if check.status == "mismatch" else ""
        print(f"  {check.name:<28} {check.status}{detail}")
    print(f"  train {report.train} (expected {report.expected_train}), "
          f"test {report.test} (expected {report.expected_test})")
    if not report.ok:
        raise SpecRobustError(
            f"{report.dataset} in {report.directory} failed verification (see above); "
            "re-download it with `specrobust data fetch`"
        )
    print(f"{report.dataset}: OK, checksums match")
    return 0


def _data_fetch(args) -> int:
    from specrobust.data import DATASETS, parse_dataset_name, store

    info = DATASETS[parse_dataset_name(args.name)[0]]
    layout, directory = store.fetch(info, store.resolve_data_root(args.data_root))
    print(f"{info.name}: present ({layout.name} layout) in {directory}")
    return 0


def _data_inspect(args) -> int:
    import torch

    from specrobust import fourier
    from specrobust.data import class_balanced_subset, load_dataset

    dataset = load_dataset(args.name, args.data_root)
    info = dataset.info
    print(f"{info.title} from {dataset.source}")
    for split_name, split in (("train", dataset.train), ("test", dataset.test)):
        counts = split.class_counts(len(dataset.class_names))
        print(f"  {split_name}: {len(split)} images of {tuple(split.images.shape[1:])}, "
              f"per class {int(counts.min())}..{int(counts.max())}")
    pixels = dataset.train.images.float().div(255)
    mean = pixels.mean(dim=(0, 2, 3)).tolist()
    std = pixels.std(dim=(0, 2, 3)).tolist()
    print(f"  train pixel mean {_fmt(mean)}, std {_fmt(std)} (for a model's mean/std)")

    # Spectral energy by radial band on a class-balanced sample, with the mean image removed so
    # the (huge) DC component of the average brightness does not swamp the picture.
    n = min(2000, len(dataset.test))
    sample = class_balanced_subset(dataset.test, n, len(dataset.class_names), seed=0).as_float()
    centred = sample - sample.mean(dim=0, keepdim=True)
    shares = fourier.band_energy_shares(centred)
    nyquist = fourier.max_radius(tuple(sample.shape[-2:]))
    print(f"  spectral energy of {n} test images (mean image removed), radial bands of the "
          f"Nyquist radius {nyquist}:")
    print("    " + ", ".join(f"{band} {100 * share:.1f}%" for band, share in shares.items()))
    profile = fourier.radial_profile(centred)
    cumulative = torch.cumsum(profile, 0) / profile.sum()
    half = int(torch.searchsorted(cumulative, torch.tensor(0.5)))
    ninety = int(torch.searchsorted(cumulative, torch.tensor(0.9)))
    print(f"    half of the energy lies within radius {half}, 90% within radius {ninety}")
    return 0


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def _recipes(args) -> int:
    from specrobust import recipes
    from specrobust.recipes import listing

    if args.action is None:
        if args.name:
            raise SpecRobustError(f"did you mean `specrobust recipes show {args.name}`?")
        rows = listing.summaries()
        width = max(len(row.name) for row in rows)
        print(f"{'recipe':<{width}}  {'dataset':<14} {'model':<10} {'method':<15} epochs  "
              "what it is for")
        for row in (r for r in rows if r.kind == recipes.RECIPE):
            print(f"{row.name:<{width}}  {row.dataset:<14} {row.model:<10} {row.method:<15} "
                  f"{row.epochs:>6}  {row.purpose}")
        print(f"\n{'study plan':<{width}}  methods; seeds; what it is")
        for row in (r for r in rows if r.kind != recipes.RECIPE):
            print(f"{row.name:<{width}}  {row.method}; {row.epochs}; {row.purpose}")
        return 0
    if not args.name:
        raise SpecRobustError("`specrobust recipes show` needs a recipe's or plan's name")
    print(listing.show(args.name), end="")
    return 0


def _models(args) -> int:
    import torch

    from specrobust.models import MODELS, count_parameters

    if args.pretrained:
        from specrobust.loading.pretrained import PRETRAINED

        print(f"{'name':<32} {'architecture':<19} {'dataset':<8} {'threat':<12} "
              f"{'clean':>6} {'AA':>6}  present")
        for entry in PRETRAINED.values():
            threat = entry.threat_model + (f" {entry.eps}" if entry.eps else "")
            present = "yes" if _pretrained_present(entry) else "no (specrobust fetch-model)"
            print(f"{entry.name:<32} {entry.architecture:<19} {entry.dataset:<8} {threat:<12} "
                  f"{_percent(entry.clean):>6} {_percent(entry.autoattack):>6}  {present}")
        print("clean and AA: accuracies (%) as published (sources: specrobust/loading/"
              "pretrained.py)")
        return 0
    print(f"{'name':<20} {'parameters (10 classes, 3 channels)':>36}")
    with torch.device("meta"):  # counted without allocating (WRN-70-16 is 267M parameters)
        for name in MODELS:
            print(f"{name:<20} {count_parameters(MODELS[name](10, 3)):>36,}")
    return 0


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _pretrained_present(entry) -> bool:
    from specrobust.loading.pretrained import local_file

    try:
        local_file(entry)
    except SpecRobustError:
        return False
    return True


def _fetch_model(args) -> int:
    from specrobust.loading import fetch_pretrained

    path = fetch_pretrained(args.name)
    print(f"{args.name}: present in {path}")
    return 0


def _train(args) -> int:
    from pathlib import Path

    from specrobust.config import load_config
    from specrobust.training.loop import train

    config = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    branch = None
    if args.branch_from:
        epoch = args.branch_epoch if args.branch_epoch is not None else \
            config.sar_start if config.sar.enabled else None
        if epoch is None:
            raise SpecRobustError("--branch-from needs --branch-epoch when SAR is off")
        branch = (args.branch_from, epoch)
    metrics = train(config, out, resume=args.resume, force=args.force, branch=branch)
    print(f"finished {config.optim.epochs} epochs in {out}; last epoch: "
          + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                      if isinstance(v, float) and k.startswith("val_")))
    print(f"evaluate it with: specrobust eval {out}")
    return 0


def _eval(args) -> int:
    from specrobust.evaluation import markdown
    from specrobust.evaluation.job import EvalJob, run_eval_job
    from specrobust.settings import NORMS

    job = EvalJob(source=_model_source(args, args.source), attacks=args.attacks, out=args.out,
                  checks=args.checks, **_settings(args))
    summary, path = run_eval_job(job)
    if summary is None:  # a process of a torchrun evaluation other than the main one
        return 0
    print(f"{summary['model']['name']} from {summary['weights']}: first {summary['n']} test "
          f"images of {summary['dataset']}, {NORMS[summary['norm']]} eps {summary['eps_text']}")
    print(markdown(summary), end="")
    for check in summary["checks"]:
        if not check["ok"]:
            print(f"specrobust: WARNING: possible gradient masking: {check['name']}: "
                  f"{check['message']}", file=sys.stderr)
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return 0


def _analyze(args) -> int:
    from specrobust.analysis.job import AnalysisJob, parse_parts, run_analysis_job

    parse_parts(args.parts)
    if args.out and len(args.sources) > 1:
        raise SpecRobustError("--out names one analysis directory; give one source with it")
    for path in args.sources or [None]:
        directory = run_analysis_job(AnalysisJob(
            source=_model_source(args, path), parts=args.parts, out=args.out,
            **_settings(args)))
        if _main_process():
            print(f"wrote {directory}/ (JSON and PNG per part, summary.json)")
    return 0


def _main_process() -> bool:
    """False in the processes of a torchrun job other than the main one (they print nothing)."""
    import os

    return os.environ.get("RANK", "0") == "0"


def _report(args) -> int:
    from specrobust.report.html import write_report

    path = write_report(args.sources, args.out, args.title, reference=args.reference,
                        force=args.force)
    print(f"wrote {path} (self-contained; open it in a browser)")
    return 0


def _study(args) -> int:
    import dataclasses
    from pathlib import Path

    from specrobust.study.execute import Options, execute, run_workers
    from specrobust.study.plan import load_plan

    plan = load_plan(args.plan, quick=args.quick)
    if args.out:
        plan = dataclasses.replace(plan, out=Path(args.out))
    if "train" in args.stages:
        from specrobust.config import load_config
        from specrobust.data import load_dataset

        # A missing dataset fails here, in one line, before anything is written.
        load_dataset(load_config(plan.runs[0].recipe, list(plan.runs[0].overrides)).data.dataset,
                     args.data_root)
    stages = args.stages
    if args.workers > 1:
        work = [s for s in stages if s != "report"]
        code = run_workers(_study_argv(args, work), args.workers, args.threads)
        if code:
            raise SpecRobustError(f"a worker of the study stopped with exit status {code}; "
                                  "run the study again to continue")
        stages = tuple(s for s in stages if s == "report")  # once, over every worker's results
    elif args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = execute(plan, Options(seeds=args.seeds, stages=stages, device=args.device,
                                   data_root=args.data_root))
    print(f"tables: {plan.out / 'RESULTS.md'}" + (f"; report: {report}" if report else ""))
    return 0


def _study_argv(args, stages: list[str]) -> list[str]:
    """The command line of one of ``--workers``' processes."""
    argv = ["study", str(args.plan), "--stages", ",".join(stages) or "none",
            "--device", args.device]
    for flag, value in (("--out", args.out), ("--data-root", args.data_root),
                        ("--seeds", ",".join(map(str, args.seeds or [])))):
        if value:
            argv += [flag, value]
    return argv + (["--quick"] if args.quick else [])


def _demo(args) -> int:
    args.plan = "demo"  # the shipped plan
    return _study(args)


_HANDLERS = {
    ("data", "list"): _data_list,
    ("data", "verify"): _data_verify,
    ("data", "fetch"): _data_fetch,
    ("data", "inspect"): _data_inspect,
    ("models", None): _models,
    ("recipes", None): _recipes,
    ("fetch-model", None): _fetch_model,
    ("train", None): _train,
    ("eval", None): _eval,
    ("analyze", None): _analyze,
    ("report", None): _report,
    ("study", None): _study,
    ("demo", None): _demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        if any("\x00" in arg for arg in argv):  # no shell passes one; paths cannot hold one
            raise SpecRobustError("an argument contains a NUL character")
        args = _build_parser().parse_args(argv)
        handler = _HANDLERS[(args.command, getattr(args, "data_command", None))]
        code = handler(args)
        sys.stdout.flush()  # here, so that a closed pipe is reported like any other fault
        return code
    except KeyboardInterrupt:
        print("specrobust: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - sorted below: user errors, faults, bugs
        from specrobust.errors import environment_error

        user_error = error if isinstance(error, SpecRobustError) else environment_error(error)
        if user_error is None or debug:
            raise
        if isinstance(error, BrokenPipeError):
            _silence_stdout()
        print(f"specrobust: error: {' '.join(str(user_error).split())}", file=sys.stderr)
        return SpecRobustError.exit_code
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun: leave the process group before exiting. Left to the interpreter's exit,
    gloo's threads are torn down while still running, and a process that finished first can
    abort ("terminate called without an active exception")."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush does not
    fail a second time."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
