"""`specrobust study PLAN` and `specrobust demo`: a study plan trained, evaluated, analysed and
compared (resumable; several processes may share one plan)."""

from __future__ import annotations

from pathlib import Path

from specrobust.cli.options import add_data_root, seed_list, stage_list, whole
from specrobust.errors import SpecRobustError


def add(commands) -> None:
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
                             help="the plan's quick version, a smoke run at a small scale")
        command.add_argument("--out", help="directory (default: the plan's out)")
        command.add_argument("--seeds", type=seed_list,
                             help="comma list of seeds to work on (default: the plan's)")
        command.add_argument("--stages", type=stage_list(STAGES), default=STAGES,
                             help=f"comma list of {', '.join(STAGES)} (default: all; aa is the "
                             "plan's late attacks), or none; the tables are always written")
        command.add_argument("--threads", type=whole("--threads", 0, 1024), default=0,
                             help="torch CPU threads (default 0: torch's choice; with "
                             "--workers, the total they share)")
        command.add_argument("--workers", type=whole("--workers", 1, 256), default=1,
                             help="processes sharing the plan's runs and evaluations (one GPU "
                             "each where there are GPUs; default 1)")
        add_data_root(command)
        command.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
        command.add_argument("--runs", type=_names, default=(),
                             help="comma list of the plan's training runs to work on "
                             "(default: all)")
        slurm = command.add_mutually_exclusive_group()
        slurm.add_argument("--slurm", action="store_true",
                           help="submit the work as Slurm batch jobs chained by dependencies "
                           "(training, then attacks and analyses, then the late attacks, then "
                           "the report), and return; each job resumes if requeued")
        slurm.add_argument("--slurm-status", action="store_true",
                           help="show the submitted jobs: queued, running, done or failed")
        command.add_argument("--slurm-option", action="append", default=[], metavar="OPTION",
                             help="an sbatch option for every job, e.g. "
                             "--slurm-option=--gres=gpu:1 (repeat for more)")
    study.set_defaults(handler=run)
    demo.set_defaults(handler=demo_run)


def run(args) -> int:
    import dataclasses

    from specrobust.study import execute
    from specrobust.study.plan import load_plan

    plan = load_plan(args.plan, quick=args.quick)
    if plan.smoke:
        print(plan.smoke, flush=True)
    if args.out:
        plan = dataclasses.replace(plan, out=Path(args.out))
    unknown = [name for name in args.runs if name not in {run.name for run in plan.runs}]
    if unknown:
        raise SpecRobustError(f"--runs: plan {plan.name} has no run {unknown[0]!r}; its runs: "
                              f"{', '.join(run.name for run in plan.runs)}")
    if args.slurm or args.slurm_status:
        return _on_slurm(args, plan)
    report = execute.run(plan, execute.Options(seeds=args.seeds, stages=args.stages,
                                               device=args.device, data_root=args.data_root,
                                               runs=args.runs),
                         workers=args.workers, threads=args.threads,
                         worker_argv=lambda stages: _worker_argv(args, stages))
    print(f"tables: {plan.out / 'RESULTS.md'}" + (f"; report: {report}" if report else ""))
    return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _on_slurm(args, plan) -> int:
    from specrobust.study import slurm

    if args.slurm:
        argv = ["study", str(args.plan), "--out", str(plan.out.resolve()), "--device",
                args.device, "--threads", str(args.threads)]
        if args.quick:
            argv.append("--quick")
        if args.data_root:
            argv += ["--data-root", str(Path(args.data_root).resolve())]
        work = slurm.jobs(plan, args.seeds or plan.seeds, args.stages, args.runs)
        ids = slurm.submit(plan, work, argv, args.slurm_option)
        print(f"submitted {len(ids)} jobs to Slurm (scripts and logs in "
              f"{plan.out / slurm.DIRECTORY}); `specrobust study {args.plan} "
              f"{'--out ' + str(args.out) + ' ' if args.out else ''}--slurm-status` shows them")
        return 0
    states = slurm.status(plan.out)
    if not states:
        print(f"no jobs submitted for {plan.out}")
        return 0
    width = max(len(name) for name, _, _ in states)
    for name, job, state in states:
        print(f"{name:{width}}  {job:>8}  {state}")
    return 0


def _worker_argv(args, stages: list[str]) -> list[str]:
    """The command line of one of ``--workers``' processes."""
    argv = ["study", str(args.plan), "--stages", ",".join(stages) or "none",
            "--device", args.device]
    for flag, value in (("--out", args.out), ("--data-root", args.data_root),
                        ("--seeds", ",".join(map(str, args.seeds or []))),
                        ("--runs", ",".join(args.runs))):
        if value:
            argv += [flag, value]
    return argv + (["--quick"] if args.quick else [])


def demo_run(args) -> int:
    args.plan = "demo"  # the shipped plan
    return run(args)
