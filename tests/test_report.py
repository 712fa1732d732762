"""`specrobust analyze` and `specrobust report` end to end on a tiny synthetic run."""

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
import yaml
from PIL import Image

from specrobust.analysis import PARTS
from specrobust.cli import main
from specrobust.config import load_config
from specrobust.training.loop import train

TINY = {
    "seed": 1,
    "data": {"dataset": "synthetic:band=low,n_train=400,n_test=100", "val_fraction": 0.2},
    "model": {"name": "cnn_small"},
    "optim": {"epochs": 2, "batch_size": 64, "lr": 0.05, "milestones": [1]},
    "attack": {"eps": "8/255", "alpha": "4/255", "steps": 2},
    "averaging": {"kind": "swa"},
    "validation": {"n": 40, "pgd_steps": 2},
    "run": {"progress": False},
}


@pytest.fixture(scope="module")
def analysed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run = root / "run"
    train(load_config(config), run)
    assert main(["eval", str(run), "--attacks", "clean,pgd20", "--n", "40", "--no-checks"]) == 0
    assert main(["analyze", str(run), "--n", "40"]) == 0
    assert main(["analyze", str(run), "--n", "40", "--checkpoint", "best",
                 "--parts", "filter,kernels"]) == 0
    return run


def test_analyze_writes_json_and_png_for_every_part(analysed_run):
    directory = analysed_run / "analysis"
    for part in PARTS:
        record = json.loads((directory / f"{part}.json").read_text())
        assert record["part"] == part and record["fingerprint"]["n"] == 40
        with Image.open(directory / f"{part}.png") as image:
            assert image.width > 300 and image.height > 200
    summary = json.loads((directory / "summary.json").read_text())
    assert set(summary["parts"]) == set(PARTS)
    assert 0 <= summary["numbers"]["kernel non-DC share"] <= 1
    assert sorted(p.name for p in (analysed_run / "analysis-best").glob("*.json")) == \
        ["filter.json", "kernels.json", "summary.json"]


def test_a_second_analyze_reuses_finished_parts(analysed_run, capsys):
    directory = analysed_run / "analysis"
    before = {p.name: p.stat().st_mtime_ns for p in directory.glob("*.json")
              if p.name != "summary.json"}
    assert main(["analyze", str(analysed_run), "--n", "40"]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in directory.glob("*.json")
             if p.name != "summary.json"}
    assert before == after
    # another n is another analysis: the part is run again
    assert main(["analyze", str(analysed_run), "--n", "30", "--parts", "kernels"]) == 0
    assert json.loads((directory / "kernels.json").read_text())["fingerprint"]["n"] == 30
    # so are other heat map options, and only the heat map is redone
    assert main(["analyze", str(analysed_run), "--n", "40", "--heatmap-stride", "4",
                 "--heatmap-norm", "3"]) == 0
    heatmap = json.loads((directory / "heatmap.json").read_text())
    assert heatmap["norm"] == 3 and len(heatmap["frequencies_x"]) == 8
    assert (directory / "filter.json").stat().st_mtime_ns == before["filter.json"]


def test_a_bf16_analysis_is_its_own_analysis(analysed_run, tmp_path):
    fp32 = json.loads((analysed_run / "analysis" / "filter.json").read_text())
    out = tmp_path / "bf16"
    assert main(["analyze", str(analysed_run), "--n", "40", "--parts", "filter",
                 "--precision", "bf16", "--out", str(out)]) == 0
    bf16 = json.loads((out / "filter.json").read_text())
    assert bf16["fingerprint"]["precision"] == "bf16"
    assert fp32["fingerprint"]["precision"] == "fp32"
    assert {k: v for k, v in bf16["fingerprint"].items() if k != "precision"} == \
        {k: v for k, v in fp32["fingerprint"].items() if k != "precision"}
    # judged in fp32: the clean columns are the same; the attacked ones close
    assert bf16["lowpass"]["clean"] == fp32["lowpass"]["clean"]
    for mine, theirs in zip(bf16["lowpass"]["pgd20"], fp32["lowpass"]["pgd20"], strict=True):
        assert abs(mine - theirs) <= 0.1


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs["src"])
        for key in ("href", "src"):
            if key in attrs:
                self.links.append(attrs[key])


def test_report_is_self_contained_with_valid_embedded_images(analysed_run, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(analysed_run), "-o", str(out), "--title", "tiny"]) == 0
    text = out.read_text()
    collector = _Collector()
    collector.feed(text)
    assert text.startswith("<!DOCTYPE html>") and "</html>" in text
    # every part's figure, the training curves; nothing fetched from elsewhere
    assert len(collector.images) >= len(PARTS) + 1
    assert not [link for link in collector.links if link.startswith(("http:", "https:", "//"))]
    for source in collector.images:
        assert source.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as image:
            image.verify()
    # both checkpoints analysed in this run appear as models, the evaluation table too
    assert "run (best)" in text and "pgd20" in text and "config.yaml" in text


def test_report_and_analyze_reject_bad_input_with_one_line(analysed_run, tmp_path, capsys):
    cases = [
        ["analyze", str(tmp_path / "missing")],
        ["analyze", str(analysed_run), "--parts", "filter,nonsense"],
        ["analyze", str(analysed_run), "--n", "0"],
        ["analyze", str(analysed_run), "--heatmap-n", "0"],
        ["analyze", str(analysed_run), str(analysed_run), "--out", str(tmp_path / "x")],
        ["report", str(tmp_path / "missing"), "-o", str(tmp_path / "r.html")],
        ["report", str(tmp_path), "-o", str(tmp_path / "r.html")],  # nothing analysed there
        ["report", str(analysed_run), "-o", str(tmp_path / "r.html"), "--reference", "nope"],
    ]
    for argv in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        error = capsys.readouterr().err.strip()
        assert error.startswith("specrobust: error:") and "\n" not in error, argv
    assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="no headless Chromium on this machine")
def test_report_renders_in_headless_chromium(analysed_run, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(analysed_run), "-o", str(out)]) == 0
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=1280,2000", out.as_uri()],
                   check=True, capture_output=True, timeout=120)
    with Image.open(shot) as image:
        colours = image.convert("L").getextrema()
        assert image.width == 1280 and colours[1] - colours[0] > 100  # not a blank page


def test_report_pairs_models_evaluated_on_the_same_images():
    from specrobust.report.html import Model, _paired_table

    def evaluation(bits, n=10, eps=0.1):
        return {"dataset": "toy", "split": "test", "first_n": n, "eps": eps,
                "per_example": {"clean": "1" * n, "pgd20": bits}}

    models = [Model("analysed only"),  # not evaluated: skipped, the reference is the next one
              Model("AT", evaluation=evaluation("1100000000")),
              Model("SAR", evaluation=evaluation("0011111111")),
              Model("other eps", evaluation=evaluation("1111111111", eps=0.2))]
    table = _paired_table(models)
    assert "Differences from AT" in table
    assert "Differences from SAR" in _paired_table(models, reference="SAR")
    # SAR alone right on 8, AT alone on 2: +60 points of 10 images, p = 112/1024
    assert "<td>SAR</td><td>+0.0 <small>(p 1)</small></td><td>+60.0 <small>(p 0.11)" in table
    assert "<td>other eps</td><td></td><td></td>" in table
    assert _paired_table(models[:2]) == ""  # nothing to pair


def test_report_shows_the_finished_attacks_of_an_evaluation_under_way(analysed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(analysed_run, run)
    finished = json.loads((run / "eval.json").read_text())
    # AutoAttack's late pass rewrites the record: clean and PGD-20 are final, the new attack
    # has 1 of its images done so far.
    targets = finished["per_example"]["clean"].count("1")
    partial = {**finished, "complete": False, "checks": []}
    partial["attacks"] = finished["attacks"] + [
        {"label": "aa", "kind": "aa", "options": {}, "done": 1, "attacked": targets,
         "seconds": 1.0}]
    partial["per_example"] = {**finished["per_example"],
                              "aa": "1" + "0" * (len(finished["per_example"]["clean"]) - 1)}
    (run / "eval.json").write_text(json.dumps(partial))
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    page = out.read_text()
    assert f"aa is under way (1 of {targets} images attacked)" in page
    pgd = next(a for a in finished["attacks"] if a["label"] == "pgd20")
    assert f"{pgd['correct']} / {pgd['n']}" in page  # the finished attack, as it was
