"""The paper's claims re-measured on the full Fashion-MNIST (eps 0.1), 3 seeds.

    sudo apt-get install -y dataset-fashion-mnist
    python benchmarks/replicate_fmnist.py [--seeds 0,1,2] [--threads 1] [--stages ...]

Recipes: configs/replication/fmnist_cnn_*.yaml (cnn_small, all 54,000 training images, PGD-5
training, 15 epochs). Per seed: a natural run, an AT run and an AT+SAR run, both with SWA on, read
as natural, AT, AT+WA, AT+SAR, AT+SAR+WA. The AT+SAR run branches from the AT run's state at the
first decay, where SAR starts. Results: RESULTS.md and summary.json in --out.
Resumable: run it again to continue. See benchmarks/replication.py.
"""

from replication import Method, Plan, Run, arguments, execute

PLAN = Plan(
    name="fmnist",
    title="Replication at CPU scale: full Fashion-MNIST, cnn_small, eps 0.1",
    runs=[Run("natural", "replication/fmnist_cnn_natural.yaml"),
          Run("at", "replication/fmnist_cnn_at.yaml"),
          Run("at_sar", "replication/fmnist_cnn_at_sar.yaml", branch_from="at")],
    methods=[Method("natural", "natural", "last"),
             Method("AT", "at", "best"),
             Method("AT+WA", "at", "best_averaged"),
             Method("AT+SAR", "at_sar", "best"),
             Method("AT+SAR+WA", "at_sar", "best_averaged")],
    comparisons=[("AT+SAR", "AT"), ("AT+WA", "AT"), ("AT+SAR+WA", "AT+SAR")],
    seeds=[0, 1, 2],
    eps="0.1",
    notes=["Command: `python benchmarks/replicate_fmnist.py --threads 1` (resumable; see the "
           "docstring). Recipes: `configs/replication/fmnist_cnn_*.yaml`."],
)

if __name__ == "__main__":
    execute(PLAN, arguments(PLAN, __doc__.split("\n\n")[0]))
