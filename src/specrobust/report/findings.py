"""What a report's models show for each of the paper's claims, one sentence per claim, with the
numbers (and, for accuracies, the 95% intervals) behind it and whether it agrees.

The claims (Huang et al., 2023):

- natural models lose their accuracy under low-pass filtering, adversarially trained ones much
  less (they rely on low frequencies);
- a natural model's adversarial perturbations put more of their energy in high frequencies
  than an adversarially trained model's;
- adversarial training makes the first layer's kernels smoother (less non-DC energy);
- robust models have a smaller gap between the spectra of their clean and adversarial logits;
- SAR, which penalises that gap, raises robust accuracy over the same recipe without it.

The roles are read from the labels where they say so (``natural``; a ``+SAR`` model beside the
label without it), else from the numbers: the natural model is the least robust one, the
adversarially trained model the most robust of the others. A verdict is "agrees" or
"disagrees" only where an accuracy difference exceeds what the test sample explains (its 95%
interval excludes zero, or McNemar p < 0.05 for paired evaluations); otherwise "cannot tell".
Spectral shares and gaps are means over the test images, compared as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from specrobust.evaluation.record import SAME_IMAGES
from specrobust.evaluation.stats import Z_95, paired_difference

AGREES, DISAGREES, UNCLEAR = "agrees", "disagrees", "cannot tell"


@dataclass(frozen=True)
class Finding:
    """One claim of the paper, what these models show for it, and whether the two agree."""

    claim: str
    shown: str
    verdict: str


def findings(models) -> list[Finding]:
    """The findings for ``models`` (the report's, each with ``label``, ``parts`` and
    ``evaluation``); a claim whose measurements are missing is left out."""
    out = []
    natural, robust = _roles(models)
    if natural is not None and robust is not None:
        for claim in (_lowpass, _perturbations, _kernels, _logit_gap):
            finding = claim(natural, robust)
            if finding is not None:
                out.append(finding)
    by_label = {m.label: m for m in models}
    for model in models:
        base = by_label.get(model.label.replace("+SAR", "", 1)) if "+SAR" in model.label \
            else None
        if base is not None:
            out.extend(f for f in (_sar_gain(model, base), _sar_gap(model, base)) if f)
    return out


def _both(part: str, first, second) -> list[dict] | None:
    """``part``'s results of the two models, or None when either lacks it."""
    parts = [first.parts.get(part), second.parts.get(part)]
    return parts if all(parts) else None


def _robust_accuracy(model) -> float | None:
    """PGD-20 accuracy from the evaluation, else from an analysis that measured it."""
    for attack in (model.evaluation or {}).get("attacks", []):
        if attack.get("label") == "pgd20":
            return attack["accuracy"]
    logits = model.parts.get("logits")
    if logits:
        return logits["pgd20"]
    low = model.parts.get("filter", {}).get("lowpass")
    return low["pgd20"][0] if low else None


def _roles(models):
    scored = [(accuracy, m) for m in models
              if (accuracy := _robust_accuracy(m)) is not None]
    named = [m for m in models if "natural" in m.label.lower()]
    natural = named[0] if named else (min(scored, key=lambda s: s[0])[1] if scored else None)
    others = [(accuracy, m) for accuracy, m in scored if m is not natural]
    exact = [m for _, m in others if m.label == "AT"]
    robust = exact[0] if exact else (max(others, key=lambda s: s[0])[1] if others else None)
    return natural, robust


def _n(part: dict) -> int:
    return int(part.get("fingerprint", {}).get("n", 0))


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _lowpass(natural, robust) -> Finding | None:
    parts = [m.parts.get("filter", {}).get("lowpass") for m in (natural, robust)]
    if not all(parts):
        return None
    bandwidths = parts[0]["bandwidths"]
    if bandwidths != parts[1]["bandwidths"] or len(bandwidths) < 2:
        return None
    # The loss averaged over the whole sweep (every bandwidth below the largest), not the
    # bandwidth that happens to show most. Its standard error is bounded by the mean of the
    # single drops' (they are correlated), each as if its two accuracies were independent.
    losses, errors, texts = [], [], []
    for model, low in zip((natural, robust), parts, strict=True):
        n = max(1, _n(model.parts["filter"]))
        full, kept = low["clean"][0], low["clean"][1:]
        losses.append(sum(full - k for k in kept) / len(kept))
        errors.append(sum(math.sqrt((full * (1 - full) + k * (1 - k)) / n)
                          for k in kept) / len(kept))
        texts.append(f"{model.label} {100 * losses[-1]:.1f} ({_pct(full)} at "
                     f"{bandwidths[0]}, {_pct(kept[-1])} at {bandwidths[-1]})")
    difference = losses[0] - losses[1]
    half = Z_95 * math.hypot(*errors)
    verdict = UNCLEAR if abs(difference) <= half else (AGREES if difference > 0 else DISAGREES)
    return Finding(
        "Natural models lose their accuracy under low-pass filtering; adversarially trained "
        "ones much less.",
        f"Clean accuracy lost to low-pass filtering, in points averaged over bandwidths "
        f"{bandwidths[1]} to {bandwidths[-1]}: {'; '.join(texts)}. The natural model loses "
        f"{100 * difference:+.1f} points more (95% interval {100 * (difference - half):+.1f} "
        f"to {100 * (difference + half):+.1f}).", verdict)


def _perturbations(natural, robust) -> Finding | None:
    parts = _both("spectra", natural, robust)
    if parts is None:
        return None
    shares = [p["perturbation_band_shares"]["high"] for p in parts]
    verdict = AGREES if shares[0] > shares[1] else DISAGREES
    return Finding(
        "A natural model's adversarial perturbations put more energy in high frequencies than "
        "an adversarially trained model's.",
        f"High-band share of the PGD-20 perturbation's energy (mean over {_n(parts[0])} "
        f"images): {natural.label} {_pct(shares[0])}, {robust.label} {_pct(shares[1])}.",
        verdict)


def _kernels(natural, robust) -> Finding | None:
    parts = _both("kernels", natural, robust)
    if parts is None:
        return None
    shares = [p["high_frequency_share"] for p in parts]
    verdict = AGREES if shares[0] > shares[1] else DISAGREES
    return Finding(
        "Adversarial training makes the first layer's kernels smoother.",
        f"Share of the first-layer kernels' energy outside the DC term: {natural.label} "
        f"{_pct(shares[0])}, {robust.label} {_pct(shares[1])}.", verdict)


def _logit_gap(natural, robust) -> Finding | None:
    parts = _both("logits", natural, robust)
    if parts is None:
        return None
    gaps = [p["sar_batch_class"] for p in parts]
    verdict = AGREES if gaps[0] > gaps[1] else DISAGREES
    return Finding(
        "Robust models have a smaller gap between the spectra of their clean and adversarial "
        "logits.",
        f"Logit-spectrum gap (the SAR distance, batches of {parts[0]['batch']}): "
        f"{natural.label} {gaps[0]:.3g}, {robust.label} {gaps[1]:.3g}.", verdict)


def _sar_gain(sar, base) -> Finding | None:
    mine = (sar.evaluation or {}).get("per_example", {})
    theirs = (base.evaluation or {}).get("per_example", {})
    same = all(sar.evaluation.get(k) == base.evaluation.get(k)
               for k in SAME_IMAGES) if mine and theirs else False
    attack = next((a for a in ("aa", "pgd20", "cw30", "fgsm") if a in mine and a in theirs
                   and len(mine[a]) == len(theirs[a])), None)
    if not same or attack is None:
        return None
    gap, p_value = paired_difference(mine[attack], theirs[attack])
    verdict = UNCLEAR if p_value >= 0.05 else (AGREES if gap > 0 else DISAGREES)
    return Finding(
        "SAR raises robust accuracy over the same recipe without it.",
        f"{attack} accuracy of {sar.label} minus {base.label} on the same "
        f"{len(mine[attack])} images: {100 * gap:+.1f} points (McNemar p {p_value:.2g}).",
        verdict)


def _sar_gap(sar, base) -> Finding | None:
    parts = _both("logits", sar, base)
    if parts is None:
        return None
    gaps = [p["sar_batch_class"] for p in parts]
    return Finding(
        "SAR narrows the logit-spectrum gap it penalises.",
        f"Logit-spectrum gap: {sar.label} {gaps[0]:.3g}, {base.label} {gaps[1]:.3g}.",
        AGREES if gaps[0] < gaps[1] else DISAGREES)
