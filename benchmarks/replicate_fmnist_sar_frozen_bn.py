"""Fashion-MNIST AT+SAR with SAR's clean pass leaving batch norm's running statistics alone.

    python benchmarks/replicate_fmnist_sar_frozen_bn.py [--seeds 0,1,2] [--threads 1]

The authors' SAR runs its extra clean forward pass in training mode, so the running statistics
become a blend of clean and adversarial batches; on Fashion-MNIST that blend costs robustness
(benchmarks/sar_batchnorm.py). This is the replication's AT+SAR recipe with
``sar.clean_bn=frozen``, branched from the main replication's AT runs (benchmarks/replication/
fmnist/runs/at-seed*) at the first decay, so its rows compare directly with that table's.
"""

from replicate_fmnist import PLAN as MAIN
from replication import Method, Plan, Run, arguments, execute

PLAN = Plan(
    name="fmnist-sar-frozen-bn",
    title="Fashion-MNIST AT+SAR, SAR's clean pass with frozen batch-norm statistics, eps 0.1",
    runs=[Run("at_sar", "replication/fmnist_cnn_at_sar.yaml", ("sar.clean_bn=frozen",),
              branch_from="at")],
    methods=[Method("AT+SAR (frozen BN)", "at_sar", "best"),
             Method("AT+SAR+WA (frozen BN)", "at_sar", "best_averaged")],
    seeds=MAIN.seeds,
    eps=MAIN.eps,
    branch_root="benchmarks/replication/fmnist",
    # The main replication's rows (the authors' batch-norm handling), compared image by image.
    reference_methods=[m for m in MAIN.methods if m.label in ("AT", "AT+SAR", "AT+SAR+WA")],
    comparisons=[("AT+SAR (frozen BN)", "AT+SAR"), ("AT+SAR+WA (frozen BN)", "AT+SAR+WA"),
                 ("AT+SAR (frozen BN)", "AT")],
    notes=["Command: `python benchmarks/replicate_fmnist_sar_frozen_bn.py --threads 1` "
           "(resumable). Compare with `benchmarks/replication/fmnist/RESULTS.md`."],
)

if __name__ == "__main__":
    execute(PLAN, arguments(PLAN, __doc__.split("\n\n")[0]))
