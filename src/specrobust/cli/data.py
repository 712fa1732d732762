"""`specrobust data list|verify|fetch|inspect`: the datasets specrobust knows, checked, fetched
and described."""

from __future__ import annotations

from collections.abc import Sequence

from specrobust.cli.options import OneLineParser, add_data_root
from specrobust.errors import SpecRobustError


def add(commands) -> None:
    data = commands.add_parser("data", help="list, verify, fetch and inspect datasets")
    actions = data.add_subparsers(dest="data_command", required=True, parser_class=OneLineParser)
    listing = actions.add_parser("list", help="the datasets specrobust knows and where they are")
    listing.set_defaults(handler=list_datasets)
    for name, text, handler in (
        ("verify", "check every file's checksum and the split sizes", verify),
        ("fetch", "make a dataset present (download with checksum verification if needed)",
         fetch),
        ("inspect", "split sizes, class balance, pixel statistics and spectral energy by band",
         inspect),
    ):
        command = actions.add_parser(name, help=text)
        command.add_argument("name", help="dataset name, e.g. fashion-mnist or synthetic:band=high")
        add_data_root(command)
        command.set_defaults(handler=handler)


def list_datasets(args) -> int:
    from specrobust.data import catalogue, store

    root = store.resolve_data_root(getattr(args, "data_root", None))
    print(f"data root: {root}")
    print(f"{'name':<14} {'shape':<10} {'classes':>7} {'train':>7} {'test':>6} {'eps':>6}  "
          "flip  status")
    for entry in catalogue(root):
        shape = "x".join(str(s) for s in entry.shape)
        print(f"{entry.name:<14} {shape:<10} {entry.classes:>7} {entry.train or '-':>7} "
              f"{entry.test or '-':>6} {entry.eps:>6}  {'yes' if entry.flip else 'no ':<4}  "
              f"{entry.status}")
    print("your own: folder:DIR[,size=S][,resize=R] (class subfolders), npz:FILE[,classes=K] "
          "(arrays x, y); give --eps")
    return 0


def verify(args) -> int:
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


def fetch(args) -> int:
    from specrobust.data import DATASETS, parse_dataset_name, store, user_data

    own = user_data(args.name, store.resolve_data_root(args.data_root))
    if own is not None and own.subset == "robustbench":  # ImageNet itself is the user's
        from specrobust.data import robustbench

        path = robustbench.fetch(store.resolve_data_root(args.data_root))
        print(f"RobustBench's ImageNet subset ({robustbench.IMAGES:,} images, RobustBench "
              f"{robustbench.VERSION}): its list in {path}")
        return 0
    info = DATASETS[parse_dataset_name(args.name)[0]]
    layout, directory = store.fetch(info, store.resolve_data_root(args.data_root))
    print(f"{info.name}: present ({layout.name} layout) in {directory}")
    return 0


def inspect(args) -> int:
    from specrobust.data import load_dataset
    from specrobust.data.statistics import statistics

    dataset = load_dataset(args.name, args.data_root)
    figures = statistics(dataset)
    print(f"{dataset.info.title} from {dataset.source}")
    for split in figures.splits:
        print(f"  {split.name}: {split.size} images of {split.image_shape}, per class "
              f"{split.fewest_per_class}..{split.most_per_class}")
    print(f"  train pixel mean {_fmt(figures.mean)}, std {_fmt(figures.std)} (for a model's "
          "mean/std)")
    print(f"  spectral energy of {figures.sample} test images (mean image removed), radial bands "
          f"of the Nyquist radius {figures.nyquist}:")
    print("    " + ", ".join(f"{band} {100 * share:.1f}%"
                             for band, share in figures.band_shares.items()))
    print(f"    half of the energy lies within radius {figures.half_radius}, 90% within radius "
          f"{figures.ninety_radius}")
    return 0


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"
