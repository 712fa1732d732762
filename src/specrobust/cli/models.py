"""`specrobust models [--pretrained]` and `specrobust fetch-model NAME`: the zoo and the public
checkpoints specrobust can name."""

from __future__ import annotations

from specrobust.errors import SpecRobustError


def add(commands) -> None:
    models = commands.add_parser("models", help="the model zoo with parameter counts")
    models.add_argument("--pretrained", action="store_true",
                        help="list the public checkpoints specrobust can name instead")
    models.set_defaults(handler=run)
    fetch = commands.add_parser("fetch-model", help="make a pretrained model's weights present "
                                "(downloaded where there is a network, then checked)")
    fetch.add_argument("name", help="a name from `specrobust models --pretrained`")
    fetch.set_defaults(handler=fetch_model)


def run(args) -> int:
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
    print(f"{'name':<20} {'classes':>7} {'parameters (3 channels)':>24}")
    with torch.device("meta"):  # counted without allocating (WRN-70-16 is 267M parameters)
        for name, factory in MODELS.items():
            classes = _classes(factory)  # as its published weights have them (ImageNet: 1000)
            print(f"{name:<20} {classes:>7} {count_parameters(factory(classes, 3)):>24,}")
    return 0


def _classes(factory) -> int:
    import inspect

    default = inspect.signature(factory).parameters["num_classes"].default
    return default if isinstance(default, int) else 10


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _pretrained_present(entry) -> bool:
    from specrobust.loading.pretrained import local_file

    try:
        local_file(entry)
    except SpecRobustError:
        return False
    return True


def fetch_model(args) -> int:
    from specrobust.loading import fetch_pretrained

    path = fetch_pretrained(args.name)
    print(f"{args.name}: present in {path}")
    return 0
