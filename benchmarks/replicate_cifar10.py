"""The paper's claims re-measured at CPU scale on real CIFAR-10 (eps 8/255).

    ../shared/tools/get-cifar10 ~/.cache/specrobust      # the official binary files
    python benchmarks/replicate_cifar10.py [--seeds 0,1,2,3,4] [--threads 1] [--stages ...]

Recipes: configs/replication/cifar10_cnn_*.yaml (cnn_small, 10,000 class-balanced training
images, PGD-5 training, 30 epochs). Per seed: a natural run, an AT run and an AT+SAR run, both
with SWA on, read as natural, AT, AT+WA, AT+SAR, AT+SAR+WA. The AT+SAR run branches from the AT
run's state at the first decay, where SAR starts (seed 0 trained it whole, before branching
existed; the weights are the same either way). Results: RESULTS.md and summary.json in --out.
Resumable: run it again to continue. See benchmarks/replication.py.
"""

from replication import Method, Plan, Run, arguments, execute

PLAN = Plan(
    name="cifar10",
    title="Replication at CPU scale: CIFAR-10, cnn_small, 10k training images, eps 8/255",
    runs=[Run("natural", "replication/cifar10_cnn_natural.yaml"),
          Run("at", "replication/cifar10_cnn_at.yaml"),
          Run("at_sar", "replication/cifar10_cnn_at_sar.yaml", branch_from="at")],
    methods=[Method("natural", "natural", "last"),
             Method("AT", "at", "best"),
             Method("AT+WA", "at", "best_averaged"),
             Method("AT+SAR", "at_sar", "best"),
             Method("AT+SAR+WA", "at_sar", "best_averaged")],
    comparisons=[("AT+SAR", "AT"), ("AT+SAR+WA", "AT"), ("AT+WA", "AT"),
                 ("AT+SAR+WA", "AT+SAR")],
    seeds=[0, 1, 2, 3, 4],
    eps="8/255",
    notes=["Command: `python benchmarks/replicate_cifar10.py --threads 1` (resumable; see the "
           "docstring). Recipes: `configs/replication/cifar10_cnn_*.yaml`."],
)

if __name__ == "__main__":
    execute(PLAN, arguments(PLAN, __doc__.split("\n\n")[0]))
