"""Self-checks against gradient masking, after the field's evaluation checklists (Carlini et al.
2019, "On Evaluating Adversarial Robustness"; Athalye et al. 2018) and AutoAttack's own flags.

A model that hides its gradients looks robust to gradient attacks without being robust. These
checks catch the usual symptoms. Each gives ``ok`` and a sentence; a failed one is printed as a
loud warning and stored in eval.json. What is checked:

- ``zero_gradients``: the input gradient of the loss is exactly zero for more than 1% of the
  examples (AutoAttack warns on any; rounding or saturated models show it).
- ``pgd_vs_fgsm``: PGD-20 leaves more examples correct than FGSM (one step cannot beat twenty
  unless the loss surface is broken); also compared for the suite's own attacks.
- ``aa_vs_pgd``: AutoAttack leaves more examples correct than the suite's PGD (APGD-CE alone
  is compared with the CE-loss PGDs only).
- ``black_box_gain``: within AutoAttack, the gradient-free Square attack breaks more than 0.2% of
  the examples that its gradient attacks left (AutoAttack's own warning, same threshold).
- ``eps_monotone``: PGD-20 accuracy rises while eps grows (eps/2, eps, 2 eps).
- ``large_eps``: PGD-20 at eps 0.5 in L-inf, 0.5 sqrt(pixel values) in L2 (any image is then
  within reach of a mid-grey one)
  leaves more than 2% correct.

The extra attacks run on the first evaluated examples, as many as ``check_n`` but no more than
keep their cost within the suite's: they take ``EXTRA_PASSES`` gradient passes an image, and run
on at most (the suite's gradient passes) / ``EXTRA_PASSES`` images (:func:`extra_images`), so
checks on versus off costs about twice the attacks at most. Where that leaves fewer than
``MIN_EXTRA_IMAGES`` (a cheap suite such as clean,fgsm), they are not run, and a check named
``extra_attacks`` says so; the zero-gradient check (one pass an image) and the comparisons
of the suite's own attacks always run. Comparisons allow one point (TOLERANCE) for the
randomness of random starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from specrobust import seeds
from specrobust.attacks import fgsm, pgd
from specrobust.attacks.pgd import default_step
from specrobust.attacks.registry import AttackSpec
from specrobust.evaluation.batched import clean_correct, robust_correct
from specrobust.models import attack_mode
from specrobust.settings import Settings

TOLERANCE = 0.01
ZERO_GRADIENT_SHARE = 0.01
LARGE_EPS = 0.5
LARGE_EPS_ACCURACY = 0.02
BLACK_BOX_GAIN = 0.002  # AutoAttack's check_square_sr threshold
SCALES = (0.5, 1.0, 2.0)  # of eps, for eps_monotone
PGD_STEPS = 20
EXTRA_PASSES = 1 + PGD_STEPS * (len(SCALES) + 1)  # FGSM, PGD-20 at each scale and at large eps
MIN_EXTRA_IMAGES = 20  # fewer make the comparisons noise


def extra_images(specs: list[AttackSpec], n: int, check_n: int) -> int:
    """How many images the extra attacks run on: ``check_n`` (at most ``n``), or fewer so they
    spend no more gradient passes than the suite's attacks on their ``n`` images; 0 where that
    reduction leaves fewer than ``MIN_EXTRA_IMAGES``. AutoAttack's passes vary but always
    exceed the checks'."""
    steps = [spec.gradient_steps for spec in specs]
    wanted = min(check_n, n)
    affordable = wanted if any(s is None for s in steps) else \
        sum(s for s in steps if s is not None) * n // EXTRA_PASSES
    if affordable >= wanted:
        return wanted
    return affordable if affordable >= MIN_EXTRA_IMAGES else 0


@dataclass
class Check:
    name: str
    ok: bool
    message: str
    values: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def self_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                suite: dict[str, tuple[AttackSpec, torch.Tensor]], settings: Settings, *,
                aa_stages: dict[str, list[dict]] | None = None, progress=None) -> list[Check]:
    """Run the checks. ``suite`` maps labels to (spec, per-example correctness) of the attacks
    already evaluated on ``x``; the zero-gradient check uses ``x[:check_n]``, the extra attacks
    the first :func:`extra_images`. ``aa_stages`` maps an AutoAttack's label to its per-attack
    table (``runner.stage_table``). ``progress(label, done, total)`` hears about each."""
    check_n, seed, batch_size, norm = (settings.check_n, settings.seed, settings.batch_size,
                                       settings.norm)
    evaluated = len(y)
    extra = extra_images([spec for spec, _ in suite.values()], evaluated, check_n)
    x, y = x[:check_n], y[:check_n]
    if progress:
        progress("check: zero gradients", 0, len(x))
    checks = [_zero_gradients(model, x, y, batch_size)]
    if progress:
        progress("check: zero gradients", len(x), len(x))
    if eps > 0 and extra:
        checks += _subset_attacks(model, x[:extra], y[:extra], eps, seed, batch_size, norm,
                                  progress)
    elif eps > 0:
        checks.append(Check("extra_attacks", True, "FGSM and PGD-20 at other budgets were not "
                            f"run: they would cost more than the suite's own attacks on "
                            f"{evaluated} images (evaluate with stronger attacks or more "
                            "images to have them)", {"n": 0}))
    checks += _suite_comparisons(suite)
    checks += [_black_box_gain(label, rows, evaluated)
               for label, rows in (aa_stages or {}).items()
               if any(row["attack"] == "square" for row in rows)]
    return checks


def _black_box_gain(label: str, stages: list[dict], n: int) -> Check:
    square = next(row for row in stages if row["attack"] == "square")
    share = square["broken"] / n
    ok = share <= BLACK_BOX_GAIN
    return Check("black_box_gain", ok, f"in {label}, Square broke {square['broken']} examples "
                 f"({share:.1%}) that the gradient attacks left" +
                 ("" if ok else ": the gradients may be masked"),
                 {"square_broken": square["broken"], "n": n})


def _zero_gradients(model, x, y, batch_size) -> Check:
    zero = 0
    with attack_mode(model), torch.enable_grad():
        for start in range(0, len(x), batch_size):
            images = x[start:start + batch_size].clone().requires_grad_(True)
            loss = F.cross_entropy(model(images), y[start:start + batch_size], reduction="sum")
            (gradient,) = torch.autograd.grad(loss, images)
            zero += int((gradient.flatten(1).abs().sum(1) == 0).sum())
    share = zero / max(1, len(x))
    return Check("zero_gradients", share <= ZERO_GRADIENT_SHARE,
                 f"{zero} of {len(x)} examples have an exactly zero input gradient"
                 + (" (gradient masking: gradient attacks cannot move them)"
                    if share > ZERO_GRADIENT_SHARE else ""),
                 {"zero": zero, "n": len(x)})


def large_eps(norm: str, image_shape: tuple[int, ...]) -> float:
    """A budget within which any image can reach a mid-grey one: 0.5 in L-inf, and half the
    square root of the number of pixel values in L2."""
    return LARGE_EPS if norm == "linf" else LARGE_EPS * math.prod(image_shape) ** 0.5


def _subset_attacks(model, x, y, eps, seed, batch_size, norm, progress=None) -> list[Check]:
    clean = clean_correct(model, x, y, batch_size)
    done = 0

    def accuracy(label, attack) -> float:
        nonlocal done
        if progress:
            progress(f"check: FGSM, PGD-{PGD_STEPS} x{len(SCALES) + 1} on {len(x)} images",
                     done, len(SCALES) + 2)
        result = robust_correct(model, attack, x, y, clean, label=label, seed=seed,
                                batch_size=batch_size).float().mean().item()
        done += 1
        if progress:
            progress(f"check: FGSM, PGD-{PGD_STEPS} x{len(SCALES) + 1} on {len(x)} images",
                     done, len(SCALES) + 2)
        return result

    steps = PGD_STEPS

    def pgd20(at_eps):
        return lambda a, b, s: pgd(model, a, b, at_eps, default_step(at_eps), steps, norm=norm,
                                   generator=seeds.generator(s, a.device))

    fgsm_accuracy = accuracy("check-fgsm", lambda a, b, s: fgsm(model, a, b, eps, norm=norm))
    by_eps = {scale: accuracy(f"check-pgd20x{scale}", pgd20(scale * eps)) for scale in SCALES}
    large_budget = max(large_eps(norm, tuple(x.shape[1:])), eps)
    large = accuracy("check-pgd20-large", pgd20(large_budget))

    pgd_accuracy = by_eps[1.0]
    accuracies = [by_eps[scale] for scale in sorted(by_eps)]
    rising = any(later > earlier + TOLERANCE for earlier, later in zip(accuracies, accuracies[1:],
                                                                   strict=False))
    return [
        Check("pgd_vs_fgsm", pgd_accuracy <= fgsm_accuracy + TOLERANCE,
              f"on {len(x)} examples PGD-20 leaves {pgd_accuracy:.1%} correct, FGSM "
              f"{fgsm_accuracy:.1%}",
              {"pgd20": pgd_accuracy, "fgsm": fgsm_accuracy, "n": len(x)}),
        Check("eps_monotone", not rising,
              "PGD-20 accuracy at eps x0.5, x1, x2: " + ", ".join(f"{a:.1%}" for a in accuracies)
              + (" (rises with eps)" if rising else ""),
              {"eps": [scale * eps for scale in sorted(by_eps)], "accuracy": accuracies,
               "n": len(x)}),
        Check("large_eps", large <= LARGE_EPS_ACCURACY,
              f"PGD-20 at eps {large_budget:g} leaves {large:.1%} correct"
              + (f" (expected about 0, at most {LARGE_EPS_ACCURACY:.0%})"
                 if large > LARGE_EPS_ACCURACY else ""),
              {"eps": large_budget, "accuracy": large, "n": len(x)}),
    ]


def _suite_comparisons(suite: dict[str, tuple[AttackSpec, torch.Tensor]]) -> list[Check]:
    """The suite's own attacks, compared on all evaluated examples."""
    def accuracy(label):
        return suite[label][1].float().mean().item()

    full_image_pgd = [label for label, (spec, _) in suite.items()
                      if spec.kind == "pgd" and spec.options["band"] is None]
    fgsms = [label for label, (spec, _) in suite.items() if spec.kind == "fgsm"]
    autoattacks = [label for label, (spec, _) in suite.items() if spec.kind == "aa"]
    def comparable(aa_label, pgd_label):
        # APGD-CE alone is held to PGD on the same (CE) loss only: a margin-loss PGD may
        # legitimately beat it. Any AutoAttack with a margin-type attack is held to every PGD.
        attacks = suite[aa_label][0].options["attacks"]
        return not (attacks and set(attacks) <= {"apgd-ce"}) or \
            suite[pgd_label][0].options["loss"] == "ce"

    pairs = [(p, f, "pgd_vs_fgsm") for p in full_image_pgd for f in fgsms]
    pairs += [(a, p, "aa_vs_pgd") for a in autoattacks for p in full_image_pgd if comparable(a, p)]
    checks = []
    for strong, weak, name in pairs:
        ok = accuracy(strong) <= accuracy(weak) + TOLERANCE
        checks.append(Check(name, ok, f"{strong} leaves {accuracy(strong):.1%} correct, {weak} "
                            f"{accuracy(weak):.1%}" + ("" if ok else f" ({strong} is weaker)"),
                            {strong: accuracy(strong), weak: accuracy(weak)}))
    return checks
