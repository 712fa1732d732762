"""`specrobust report SOURCE...`: one self-contained HTML page comparing models."""

from __future__ import annotations


def add(commands) -> None:
    command = commands.add_parser(
        "report", help="one self-contained HTML page comparing runs (analysis, eval, training)")
    command.add_argument("sources", nargs="+", metavar="RUN",
                         help="run directories, analysis directories, checkpoints, or the "
                         "name of a model without a file (its NAME-analysis/ and "
                         "NAME-eval.json)")
    command.add_argument("-o", "--out", default="report.html", help="HTML file (default "
                         "report.html)")
    command.add_argument("--force", action="store_true",
                         help="replace the -o file even though it is not a specrobust report")
    command.add_argument("--title", default="specrobust report")
    command.add_argument("--reference", metavar="MODEL",
                         help="the model the others are compared with image by image, by its "
                         "label in the report, e.g. 'at' or 'at (best)' (default: the first "
                         "evaluated)")
    command.set_defaults(handler=run)


def run(args) -> int:
    from specrobust.report.html import write_report

    path = write_report(args.sources, args.out, args.title, reference=args.reference,
                        force=args.force)
    print(f"wrote {path} (self-contained; open it in a browser)")
    return 0
