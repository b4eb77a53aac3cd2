"""End to end: ``topokd demo --quick`` on BasicMotions writes a complete report.

One run of the real command (module-scoped, ~1-2 minutes on 2 cores); the
checks read what it wrote: the report and its figures, the numbers in
``results.json`` and in the report's tables, the configs and run folders
the report's commands refer to.  Refusals and the interrupted run are
checked without training.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aeon")
pytest.importorskip("matplotlib")
pytest.importorskip("torch_pruning")

from topokd.demo import MARKER, DemoError, run_demo  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _topokd(*args, cwd):
    return subprocess.run([sys.executable, "-m", "topokd", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("demo")
    proc = _topokd("demo", "--quick", "--quiet", "-o", "out", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd / "out", proc


def test_report_and_every_figure(demo):
    out, proc = demo
    assert proc.stderr.strip() == "", proc.stderr  # no third-party noise, no notice
    report = (out / "report.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(figures) >= 9
    expected = {"signal-pis", "diagram", "class-mean-pis", "pinet-training", "pinet-vs-exact",
                "training-teacher-signal", "training-teacher-pi", "kd-comparison", "training-student-topological",
                "compression"}
    assert expected <= {Path(f).stem for f in figures}
    import matplotlib.image

    for rel in figures:
        png = out / rel
        assert png.read_bytes()[:8] == PNG_MAGIC, rel
        img = matplotlib.image.imread(png)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, (rel, img.shape)
        assert img[..., :3].std() > 0.01, f"{rel} is blank"
        svg = png.with_suffix(".svg")
        assert svg.stat().st_size > 1000 and b"<svg" in svg.read_bytes()[:1000]
    for name in ("1. Exact persistence images", "2. PI-Net surrogate", "3. Teachers", "4. Students",
                 "5. Compression"):
        assert f"## {name}" in report
    assert "{TOTAL_TIME}" not in report


def test_numbers_are_finite_and_in_range(demo):
    out, _ = demo
    numbers = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    assert not re.search(r"\b(nan|inf)\b", report, re.IGNORECASE)

    d = numbers["data"]
    assert (d["train"], d["val"], d["test"], d["T"], d["C"]) == (32, 8, 40, 100, 6)
    check = numbers["exact_pis"]["gudhi_check"]
    if check is not None:  # gudhi installed (the reference extra): topokd's diagrams are gudhi's
        assert check["pairs"] > 0 and check["max_abs_diff"] <= 1e-12
    pinet = numbers["pinet"]
    for scores in (pinet["test"], pinet["mean_pi_baseline"]):
        assert -1 <= scores["pearson"] <= 1 and scores["mse"] >= 0 and scores["max_abs"] >= 0
        assert scores["images"] == 40 * 6
    accuracies = [v for t in numbers["teachers"].values() for v in (t["best_val_acc"], t["test_acc"])]
    accuracies += list(pinet["drop_in"].values())
    for m in ("scratch", "kd", "topological"):
        accuracies += numbers["students"][m]["test_acc"] + numbers["students"][m]["val_acc"]
    comp = numbers["compression"]
    accuracies += [comp["before"]["accuracy"], comp["after"]["accuracy"]]
    assert all(0.0 <= a <= 1.0 for a in accuracies), accuracies
    # every accuracy is a multiple of 1/40 (test) or 1/8 (validation): really measured on those windows
    assert all(min(abs(a * 40 - round(a * 40)), abs(a * 8 - round(a * 8))) < 1e-9 for a in accuracies)
    assert comp["after"]["params"]["total"] < comp["before"]["params"]["total"]
    assert comp["after"]["macs"] < comp["before"]["macs"]
    for side in ("before", "after"):
        for lat in comp[side]["latency"].values():
            assert math.isfinite(lat["median_ms"]) and lat["median_ms"] > 0

    # the report's tables show these numbers
    students = numbers["students"]
    for m in ("scratch", "kd", "topological"):
        row = next(line for line in report.splitlines() if line.startswith(f"| {m} |"))
        assert f"| {100 * np.mean(students[m]['test_acc']):.1f} |" in row
    assert f"| PI-Net | {pinet['test']['pearson']:.3f} |" in report


def test_reproduce_commands_refer_to_real_files(demo):
    out, _ = demo
    from topokd.compress.config import load_config as load_compress
    from topokd.distill.config import load_config

    cfg = load_config(out / "config.yaml")
    assert set(cfg.teachers) == {"signal", "pi"} and cfg.student.scratch
    comp = load_compress(out / "compress.yaml")
    assert comp.teacher.is_file()
    for rel in ("teachers/signal/best.safetensors", "teachers/pi/best.safetensors", "student/best.safetensors",
                "scratch/best.safetensors", "students/kd/seed-0/best.safetensors", "pinet/pinet.safetensors",
                "compressed/model.pt2", MARKER):
        assert (out / rel).is_file(), rel
    import torch

    import topokd.compress

    model = topokd.compress.load(out / "compressed" / "model.pt2")
    logits = model(torch.zeros(2, 6, 100))
    assert tuple(logits.shape) == (2, 4) and torch.isfinite(logits).all()


def test_existing_output_refused_before_any_work(demo, tmp_path):
    out, _ = demo
    before = sorted(p.name for p in out.iterdir())
    proc = _topokd("demo", "--quick", "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("topokd: error: ") and "--force" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == before

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not a topokd demo folder"):
        run_demo(other, quick=True, force=True, log=None)
    assert (other / "notes.txt").read_text() == "keep me"


def test_interrupted_demo_leaves_nothing_and_keeps_the_earlier_one(tmp_path):
    def interrupt_at_step_2(line):
        if line.startswith("[2/5]"):
            raise KeyboardInterrupt

    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        run_demo(fresh, quick=True, progress=False, log=interrupt_at_step_2)
    assert not fresh.exists()

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / MARKER).write_text("{}\n")
    (earlier / "report.md").write_text("the earlier report\n")
    with pytest.raises(KeyboardInterrupt):
        run_demo(earlier, quick=True, force=True, progress=False, log=interrupt_at_step_2)
    assert (earlier / "report.md").read_text() == "the earlier report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier"]  # no backup or half-written folder left
