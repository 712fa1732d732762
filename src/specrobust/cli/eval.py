"""`specrobust eval SOURCE`: a model under an attack suite, with the gradient-masking
self-checks; writes eval.json and eval.md (resumable)."""

from __future__ import annotations

import sys

from specrobust.cli.options import add_test_job, model_source, settings_of, whole


def add(commands) -> None:
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
    add_test_job(command)
    command.add_argument("--out", help="where to write the evaluation record, a .json file "
                         "(default: eval.json in the run directory, or beside the checkpoint); "
                         "the table goes beside it as .md")
    command.add_argument("--no-checks", dest="checks", action="store_false",
                         help="skip the gradient-masking self-checks")
    command.add_argument("--check-n", type=whole("--check-n"), default=Settings.check_n,
                         help="examples for the self-checks' extra attacks (default "
                         f"{Settings.check_n})")
    command.set_defaults(handler=run)


def run(args) -> int:
    from specrobust.evaluation import markdown
    from specrobust.evaluation.job import EvalJob, run_eval_job
    from specrobust.settings import NORMS

    job = EvalJob(source=model_source(args, args.source), attacks=args.attacks, out=args.out,
                  checks=args.checks, **settings_of(args))
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
