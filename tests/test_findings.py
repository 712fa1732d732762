"""The report's sentences per paper claim: roles read from labels or numbers, verdicts only where
the test sample cannot explain the difference."""

from specrobust.report.findings import AGREES, DISAGREES, UNCLEAR, findings
from specrobust.report.html import Model


def _model(label, *, robust, low_clean, high_share, kernel_share, gap, n=1000, bits=None):
    parts = {
        "filter": {"fingerprint": {"n": n},
                   "lowpass": {"bandwidths": [32, 24, 16, 8], "clean": low_clean,
                               "pgd20": [robust] * 4}},
        "spectra": {"fingerprint": {"n": n},
                    "perturbation_band_shares": {"low": 0.5, "mid": 0.2, "high": high_share}},
        "kernels": {"high_frequency_share": kernel_share},
        "logits": {"batch": 128, "sar_batch_class": gap, "pgd20": robust},
    }
    evaluation = None
    if bits is not None:
        evaluation = {"dataset": "d", "first_n": len(bits), "eps": 0.03, "norm": "linf",
                      "attacks": [{"label": "pgd20", "accuracy": bits.count("1") / len(bits)}],
                      "per_example": {"pgd20": bits}}
    return Model(label, parts, evaluation)


def test_a_set_that_shows_the_papers_direction_agrees_with_every_claim():
    natural = _model("natural", robust=0.0, low_clean=[0.9, 0.8, 0.4, 0.1], high_share=0.6,
                     kernel_share=0.9, gap=100.0)
    at = _model("AT", robust=0.5, low_clean=[0.8, 0.8, 0.75, 0.6], high_share=0.2,
                kernel_share=0.6, gap=8.0, bits="1" * 500 + "0" * 500)
    sar = _model("AT+SAR", robust=0.55, low_clean=[0.8, 0.8, 0.75, 0.6], high_share=0.2,
                 kernel_share=0.6, gap=4.0, bits="1" * 550 + "0" * 450)
    found = findings([natural, at, sar])
    assert [f.verdict for f in found] == [AGREES] * 6
    # natural loses (10 + 50 + 80) / 3 points on average, AT (0 + 5 + 20) / 3
    assert "natural 46.7 (90.0% at 32, 10.0% at 8); AT 8.3" in found[0].shown
    assert "+5.0 points" in found[4].shown


def test_the_reverse_disagrees_and_a_small_sample_cannot_tell():
    natural = _model("natural", robust=0.0, low_clean=[0.9, 0.9, 0.9, 0.9], high_share=0.1,
                     kernel_share=0.5, gap=1.0)
    at = _model("AT", robust=0.5, low_clean=[0.8, 0.8, 0.4, 0.2], high_share=0.5,
                kernel_share=0.9, gap=8.0, bits="1" * 500 + "0" * 500)
    sar = _model("AT+SAR", robust=0.45, low_clean=[0.8, 0.8, 0.4, 0.2], high_share=0.5,
                 kernel_share=0.9, gap=9.0, bits="0" * 60 + "1" * 440 + "0" * 500)
    assert [f.verdict for f in findings([natural, at, sar])] == [DISAGREES] * 6
    # The same drops measured on 10 images: within what the sample explains.
    small = [_model(m.label, robust=r, low_clean=m.parts["filter"]["lowpass"]["clean"],
                    high_share=0.5, kernel_share=0.5, gap=1.0, n=10)
             for m, r in ((natural, 0.0), (at, 0.5))]
    assert findings(small)[0].verdict == UNCLEAR
    # One image apart, paired: McNemar cannot tell.
    near = _model("AT+SAR", robust=0.5, low_clean=[0.8] * 4, high_share=0.5, kernel_share=0.9,
                  gap=9.0, bits="1" * 501 + "0" * 499)
    gain = [f for f in findings([natural, at, near]) if f.claim.startswith("SAR raises")]
    assert gain[0].verdict == UNCLEAR


def test_roles_come_from_the_numbers_where_labels_do_not_say():
    weak = _model("model A", robust=0.02, low_clean=[0.9, 0.9, 0.3, 0.1], high_share=0.6,
                  kernel_share=0.9, gap=50.0)
    strong = _model("model B", robust=0.4, low_clean=[0.8, 0.8, 0.75, 0.7], high_share=0.2,
                    kernel_share=0.6, gap=5.0)
    found = findings([strong, weak])
    assert len(found) == 4 and all(f.verdict == AGREES for f in found)
    assert found[1].shown.index("model A") < found[1].shown.index("model B")
    assert findings([strong]) == []  # one model: nothing to compare
