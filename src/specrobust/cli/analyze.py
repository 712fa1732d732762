"""`specrobust analyze SOURCE...`: the spectral analyses of models; writes analysis/ (JSON and
PNG per part)."""

from __future__ import annotations

from specrobust.cli.options import (
    add_test_job,
    main_process,
    model_source,
    number,
    settings_of,
    whole,
)
from specrobust.errors import SpecRobustError


def add(commands) -> None:
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
    command.add_argument("--parts", default=",".join(PARTS),
                         help=f"comma-separated parts (default {','.join(PARTS)})")
    add_test_job(command)
    command.add_argument("--out", help="analysis directory (one source only; default "
                         "RUN/analysis, or RUN/analysis-<checkpoint>)")
    command.add_argument("--heatmap-norm", type=number("--heatmap-norm"),
                         help="L2 norm of the added Fourier basis image (default 4 for 3x32x32, "
                         "scaled by sqrt(pixels/3072))")
    command.add_argument("--heatmap-n", type=whole("--heatmap-n"), default=Settings.heatmap_n,
                         help="images for the heat map (default 200 up to 32x32 images, fewer "
                         "in proportion to the pixels above, at least 10)")
    command.add_argument("--heatmap-stride", type=whole("--heatmap-stride"),
                         default=Settings.heatmap_stride,
                         help="every k-th frequency on each axis (default: every frequency up "
                         "to 32x32 images, a 32x32 grid above)")
    command.set_defaults(handler=run)


def run(args) -> int:
    from specrobust.analysis.job import AnalysisJob, parse_parts, run_analysis_job

    parse_parts(args.parts)
    if args.out and len(args.sources) > 1:
        raise SpecRobustError("--out names one analysis directory; give one source with it")
    for path in args.sources or [None]:
        directory = run_analysis_job(AnalysisJob(
            source=model_source(args, path), parts=args.parts, out=args.out,
            **settings_of(args)))
        if main_process():
            print(f"wrote {directory}/ (JSON and PNG per part, summary.json)")
    return 0
