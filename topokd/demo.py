"""``topokd demo``: the whole pipeline on real wearable data, with a report.

One call runs every layer of topokd on a data set that ships inside a
package (no network):

1. exact persistence images of every window (``standard-signal`` preset),
   with the diagrams checked against gudhi on a sample of channels;
2. a small Signal PI-Net regressing those PIs, scored on the held-out
   test windows against the exact PIs and against the trivial surrogate
   that always predicts the mean training PI; the PI teacher is then fed
   PI-Net PIs instead of exact ones ("drop-in");
3. a raw-signal teacher (WRN-16-3) and a PI teacher, then students
   (WRN-16-1, raw signal only) over several seeds: from scratch, vanilla
   KD from the signal teacher, and topological multi-teacher KD (PI teacher
   0.3 + signal teacher 0.7, TPKD-style; 0.3 is the weight
   ``benchmarks/bench_distill_hapt.py`` chose on HAPT validation users);
4. compression of the topological student (structured pruning 50 %,
   fine-tuning with KD from the signal teacher, static int8);
5. ``report.md`` with the numbers, figures (:mod:`topokd.plot`) and the
   command that reproduces each step, next to the configs it wrote
   (``config.yaml``, ``compress.yaml``).

An existing output folder is refused before any work; ``force`` replaces
it, but only when it is a demo folder (it holds :data:`MARKER`), and only
once the new demo is complete.  A failed or interrupted demo removes what it
wrote (and puts the earlier folder back), so nothing partial is left.

Sizes (``quick`` / full) are in :data:`PLANS`; measured times are in the
report.  On BasicMotions (40 training windows) every model reaches or nears
100 % test accuracy, so it shows the pipeline, not a gain: ``data="hapt"``
(UCI HAPT, ~10,000 windows, subject-wise split) is where distillation has
headroom.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__

#: The file that marks a folder as a demo's output (``force`` deletes only such folders).
MARKER = ".topokd-demo.json"
DATASETS = ("basic-motions", "hapt")
CHANNELS = ("acc x", "acc y", "acc z", "gyro x", "gyro y", "gyro z")
METHODS = {
    "scratch": "CE only, no teacher",
    "kd": "KD from the signal teacher (Hinton et al. 2015)",
    "topological": "multi-teacher KD: PI teacher 0.3 + signal teacher 0.7 (TPKD-style)",
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much the demo trains on one data set (teachers, students, PI-Net, compression)."""

    teacher_epochs: int
    student_epochs: int
    seeds: int
    batch_size: int
    pi_teacher: str  # registry name of the 2-D PI teacher
    pi_resolution: int | None  # None: the preset's 50 x 50
    pinet_epochs: int
    pinet_batch_size: int
    finetune_epochs: int
    finetune_batch_size: int
    finetune_lr: float
    latency_repeats: int


PLANS = {
    # BasicMotions has 32 training windows: batch 8, so that an epoch is 4
    # steps.  PIs at 16 x 16: on validation windows the WRN-16-3 PI teacher
    # reached 100 % at 16 x 16 (batch 8, 15 epochs), 75 % at 50 x 50.  For
    # fine-tuning after pruning, lr 1e-3, 5e-3 and 1e-2 all restore 100 %
    # validation accuracy.
    ("basic-motions", True): Plan(15, 15, 1, 8, "wrn16-3", 16, 60, 16, 15, 8, 5e-3, 20),
    ("basic-motions", False): Plan(40, 40, 3, 8, "wrn16-3", 16, 300, 16, 30, 8, 5e-3, 50),
    ("hapt", True): Plan(2, 2, 1, 64, "wrn16-1", 16, 3, 64, 1, 64, 1e-3, 10),
    ("hapt", False): Plan(8, 8, 2, 64, "wrn16-1", 16, 20, 64, 3, 64, 1e-3, 30),
}


class DemoError(ValueError):
    """The demo cannot start (its output folder, its arguments)."""


def check_output(output, force: bool) -> Path:
    """The demo's output folder, checked before any work: a new or empty
    folder, or (``force``) an earlier demo's (it holds :data:`MARKER`)."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise DemoError(f"{out} exists and is not a folder; choose another --output")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise DemoError(f"{out} already exists; pass --force to replace it, or choose another --output")
        if not (out / MARKER).is_file():
            raise DemoError(f"{out} is not a topokd demo folder (no {MARKER}), so --force will not delete it; "
                            "choose another --output")
    return out


def _experiment_config(data: str, plan: Plan, device: str | None) -> dict:
    def train(epochs, augment=True):
        t = {"epochs": epochs, "batch_size": plan.batch_size, "lr": 0.05}
        if augment:
            t["augment"] = "mix1"
        if device:
            t["device"] = device
        return t

    pi_params = {"resolution": plan.pi_resolution} if plan.pi_resolution else None
    data_section = {"name": data, "val_fraction": 0.2, "pi_preset": "standard-signal"}
    if pi_params:
        data_section["pi_params"] = pi_params
    return {
        "output": ".",
        "seed": 0,
        "data": data_section,
        "teachers": {
            "signal": {"model": "wrn16-3", "inputs": "signal", "train": train(plan.teacher_epochs)},
            "pi": {"model": plan.pi_teacher, "inputs": "pi", "train": train(plan.teacher_epochs, augment=False)},
        },
        "student": {
            "model": "wrn16-1",
            # the PI teacher is trained on clean PIs and sees the clean window (view: clean): Mix1's zeroed
            # segment changes the topology of the window it would otherwise see
            "teachers": [{"name": "pi", "weight": 0.3, "view": "clean"}, {"name": "signal", "weight": 0.7}],
            "losses": {"ce": 0.1, "kd": {"weight": 0.9, "temperature": 4}},
            "train": train(plan.student_epochs),
            "scratch": True,
        },
    }


def _compress_config(data: str, plan: Plan, device: str | None) -> dict:
    finetune = {"epochs": plan.finetune_epochs, "batch_size": plan.finetune_batch_size, "lr": plan.finetune_lr}
    if device:
        finetune["device"] = device
    return {
        "data": {"name": data, "val_fraction": 0.2},
        "seed": 0,
        "eval_split": "test",
        "teacher": "teachers/signal/best.safetensors",
        "latency": {"batch_sizes": [1, 32], "repeats": plan.latency_repeats, "warmup": 5, "threads": 1},
        "steps": [{"prune": {"method": "structured", "amount": 0.5}}, {"finetune": finetune},
                  {"quantize": {"method": "static"}}],
    }


def _method_spec(cfg, method: str, seed: int):
    """The config's student spec for one method and seed."""
    student = cfg.student
    train = dataclasses.replace(student.train, seed=seed)
    if method == "scratch":
        return dataclasses.replace(student, teachers=[], losses={"ce": 1.0}, scratch=False, train=train)
    if method == "kd":
        signal_only = [dataclasses.replace(u, weight=1.0) for u in student.teachers if u.name == "signal"]
        return dataclasses.replace(student, teachers=signal_only, scratch=False, train=train)
    return dataclasses.replace(student, scratch=False, train=train)


def _run_dir(method: str, seed: int) -> str:
    """Seed 0 uses the layout of ``topokd run config.yaml`` (student/, scratch/)."""
    if seed == 0 and method in ("topological", "scratch"):
        return "student" if method == "topological" else "scratch"
    return f"students/{method}/seed-{seed}"


def _gudhi_check(X: np.ndarray, samples: int = 60) -> dict | None:
    """Largest difference between topokd's and gudhi's H0 sublevel diagrams
    on ``samples`` channel-windows (``None`` without gudhi)."""
    try:
        import gudhi
    except ImportError:
        return None
    from .tda import sublevel_diagrams

    rng = np.random.default_rng(0)
    worst, pairs = 0.0, 0
    n, _, c = X.shape
    for flat in rng.choice(n * c, size=min(samples, n * c), replace=False):
        x = X[flat // c, :, flat % c].astype(np.float64)
        ours = sublevel_diagrams(x)
        cc = gudhi.CubicalComplex(top_dimensional_cells=x)
        cc.compute_persistence(homology_coeff_field=2, min_persistence=-1.0)
        ref = np.asarray(cc.persistence_intervals_in_dimension(0), dtype=np.float64).reshape(-1, 2)
        ref = ref[np.isfinite(ref[:, 1]) & (ref[:, 1] > ref[:, 0])]
        ref = ref[np.lexsort((ref[:, 1], ref[:, 0]))]
        if ours.shape != ref.shape:
            return {"samples": int(min(samples, n * c)), "pairs": pairs, "max_abs_diff": math.inf}
        worst = max(worst, float(np.abs(ours - ref).max()) if len(ref) else 0.0)
        pairs += len(ref)
    return {"samples": int(min(samples, n * c)), "pairs": pairs, "max_abs_diff": worst}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _mean_std(values) -> str:
    v = np.asarray(values, dtype=np.float64) * 100
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def run_demo(output, *, data: str = "basic-motions", quick: bool = False, force: bool = False,
             device: str | None = None, progress: bool = True,
             log: Callable[[str], object] | None = print) -> Path:
    """Run the demo into ``output`` (see the module docstring); returns the
    path of ``report.md``.  ``log`` gets one line per step (``None``: silent).
    Raises :class:`DemoError` before any work for an unusable output folder."""
    if data not in DATASETS:
        raise DemoError(f"unknown demo data {data!r}; choose one of {', '.join(DATASETS)}")
    out = check_output(output, force)
    from ._validation import check_device

    if device is not None:
        check_device(device, "--device")
    plan = PLANS[(data, bool(quick))]
    say = log if log is not None else (lambda text: None)
    # An earlier demo (force) is moved aside and deleted only once the new one
    # is complete; a failed or interrupted run removes what it wrote and puts
    # the earlier one back.
    existed = out.is_dir()
    backup = None
    if existed and any(out.iterdir()):
        backup = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        os.replace(out, backup)
        existed = False
    out.mkdir(parents=True, exist_ok=True)
    try:
        (out / MARKER).write_text(json.dumps({"topokd_version": __version__, "data": data, "quick": bool(quick)})
                                  + "\n")
        started = time.perf_counter()
        _Demo(out, data, plan, quick, device, progress, say).run()
        total = time.perf_counter() - started
        report = out / "report.md"
        report.write_text(report.read_text().replace("{TOTAL_TIME}", f"{total:.0f} s"))
    except BaseException:
        if existed:  # an empty folder the user made: empty it again
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(out, ignore_errors=True)
        if backup is not None:
            os.replace(backup, out)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    say(f"demo finished in {total:.0f} s: report {out / 'report.md'} (figures in {out / 'figures'})")
    return out / "report.md"


class _Demo:
    """The demo's steps; each adds its section of the report."""

    def __init__(self, out: Path, data: str, plan: Plan, quick: bool, device, progress: bool, say):
        self.work, self.out, self.data, self.plan, self.quick = out, out, data, plan, quick
        self.device, self.progress, self.say = device, progress, say
        self.sections: list[str] = []
        self.times: dict[str, float] = {}
        self.numbers: dict = {}
        self.figures: list[str] = []

    # -- helpers ------------------------------------------------------------
    def step(self, index: int, total: int, text: str) -> None:
        self.say(f"[{index}/{total}] {text}")

    def figure(self, fig, name: str) -> str:
        from .plot import save_figure

        save_figure(fig, self.work / "figures" / name, formats=("png", "svg"))
        self.figures.append(f"figures/{name}.png")
        return f"figures/{name}.png"

    def run(self) -> None:
        from .io import write_atomic

        import yaml

        raw = _experiment_config(self.data, self.plan, self.device)
        write_atomic(self.work / "config.yaml", yaml.safe_dump(raw, sort_keys=False).encode())
        write_atomic(self.work / "compress.yaml",
                     yaml.safe_dump(_compress_config(self.data, self.plan, self.device), sort_keys=False).encode())
        from .distill.config import load_config

        self.cfg = load_config(self.work / "config.yaml")
        for settings in [t.train for t in self.cfg.teachers.values()] + [self.cfg.student.train]:
            settings.progress = self.progress
        total = 5
        self.step(1, total, f"loading {self.data} and computing exact persistence images")
        self.exact_pis()
        self.step(2, total, "training a small PI-Net and scoring it on the test windows")
        self.pinet()
        self.step(3, total, "training the signal teacher and the PI teacher")
        self.teachers()
        self.step(4, total, f"training students: {', '.join(METHODS)} x {self.plan.seeds} seed(s)")
        self.students()
        self.step(5, total, "compressing the topological student (prune 50 %, fine-tune, int8)")
        self.compress()
        (self.work / "results.json").write_text(json.dumps(self.numbers, indent=1) + "\n")
        self.write_report()

    # -- 1. exact PIs ---------------------------------------------------------
    def exact_pis(self) -> None:
        from .distill.experiment import prepare_data
        from .plot import plot_diagram, plot_pi_grid, plot_signal_pis
        from .tda import sublevel_diagrams

        t0 = time.perf_counter()
        self.splits = prepare_data(self.cfg)
        seconds = time.perf_counter() - t0
        s = self.splits
        windows = len(s.train) + len(s.val) + len(s.test)
        _, t, c = s.train.signals.shape
        r = s.train.pis.shape[-1]
        check = _gudhi_check(s.test.signals)
        self.times["exact PIs (incl. loading)"] = seconds
        self.numbers["data"] = {"name": self.data, "description": s.description, "classes": s.classes,
                                "train": len(s.train), "val": len(s.val), "test": len(s.test), "T": t, "C": c}
        self.numbers["exact_pis"] = {"resolution": r, "seconds_with_loading": seconds, "gudhi_check": check}

        from .tda.pipeline import SignalPersistenceImages, scale_rows

        engine = SignalPersistenceImages("standard-signal", **(self.cfg.data.pi_params or {}))
        engine.transform(s.train.signals[:2])
        self.pi_config = engine.config_
        t0 = time.perf_counter()
        engine.transform(s.test.signals)
        pure = time.perf_counter() - t0
        self.numbers["exact_pis"]["test_seconds"] = pure
        rate = len(s.test) * c / max(pure, 1e-9)

        window = s.test.signals[0]
        label = s.classes[s.test.labels[0]]
        fig_signal = self.figure(plot_signal_pis(window, s.test.pis[0], config=self.pi_config,
                                                 channel_names=CHANNELS[:c],
                                                 title=f"test window 0 ({label}) and its persistence images"),
                                 "signal-pis")
        scale = self.pi_config.get("scale")
        x = scale_rows(window[:, :1].T.astype(np.float64), scale)[0]
        fig_diagram = self.figure(plot_diagram(sublevel_diagrams(x),
                                               title=f"H0 sublevel diagram, test window 0, {CHANNELS[0]}"
                                                     + (f" ({scale})" if scale else "")),
                                  "diagram")
        means = [s.train.pis[s.train.labels == k].mean(axis=(0, 1)) for k in range(len(s.classes))]
        fig_means = self.figure(plot_pi_grid(np.stack(means), config=self.pi_config, titles=list(s.classes),
                                             ncols=min(len(means), 4),
                                             title="mean persistence image per class (training windows, all "
                                                   "channels)"), "class-mean-pis")
        if check is None:
            check_line = "gudhi is not installed, so the diagrams were not cross-checked here (the tests do)."
        else:
            check_line = (f"Cross-check: on {check['samples']} random test channel-windows ({check['pairs']} "
                          f"pairs) topokd's H0 diagrams differ from gudhi's `CubicalComplex` by at most "
                          f"{check['max_abs_diff']:.1e}.")
        self.sections.append("\n".join([
            "## 1. Exact persistence images",
            "",
            f"{s.description}. Splits: train / validation / test = {len(s.train)} / {len(s.val)} / "
            f"{len(s.test)} windows of {t} samples x {c} channels; classes: {', '.join(map(str, s.classes))}.",
            "",
            f"Preset `standard-signal` ({r} x {r} per channel): each channel standardised, H0 sublevel-set "
            f"diagram, persistence image. {windows} windows x {c} channels in {seconds:.2f} s including "
            f"loading; the {len(s.test)} test windows alone in {pure:.3f} s ({rate:,.0f} channel-windows/s, "
            "compiled kernels).",
            "",
            check_line,
            "",
            f"![signal and PIs]({fig_signal})",
            "",
            f"![diagram]({fig_diagram})",
            "",
            f"![class means]({fig_means})",
            "",
            "Reproduce (PIs of the test windows as an .npz):",
            "",
            "```",
            f"topokd pi {self.data}-test.npy --kind signal --preset standard-signal"
            + (f" --resolution {self.plan.pi_resolution}" if self.plan.pi_resolution else "") + " -o pis.npz",
            "```",
            "",
            "(with the windows saved as `(N, T, C)` .npy; `python -c \"import topokd.data\"` loaders: "
            "`load_basic_motions`, `load_hapt`.)",
        ]))

    # -- 2. PI-Net ------------------------------------------------------------
    def pinet(self) -> None:
        from .pinet import PINet
        from .pinet.estimator import pi_agreement
        from .plot import plot_pi_comparison, plot_training_curves

        p = self.plan
        s = self.splits
        pi_params = {"resolution": p.pi_resolution} if p.pi_resolution else None
        X_train = np.concatenate([s.train.signals, s.val.signals])
        self.pinet_model = PINet("signal", preset="standard-signal", pi_params=pi_params, widths=(16, 32, 64, 128),
                                 optimizer="adamw", epochs=p.pinet_epochs, batch_size=p.pinet_batch_size, lr=1e-3,
                                 val_fraction=0.2, seed=0, device=self.device, progress=self.progress)
        t0 = time.perf_counter()
        self.pinet_model.fit(X_train, np.concatenate([s.train.pis, s.val.pis]))
        seconds = time.perf_counter() - t0
        (self.work / "pinet").mkdir()
        self.pinet_model.save(self.work / "pinet" / "pinet.safetensors")
        t0 = time.perf_counter()
        predicted = self.pinet_model.predict(s.test.signals)
        predict_seconds = time.perf_counter() - t0
        scores = pi_agreement(predicted, s.test.pis)
        mean_pi = np.broadcast_to(s.train.pis.mean(axis=0, keepdims=True), s.test.pis.shape)
        baseline = pi_agreement(mean_pi + 0.0, s.test.pis)
        self.pinet_predicted = predicted
        self.numbers["pinet"] = {"parameters": int(sum(q.numel() for q in self.pinet_model.model_.parameters())),
                                 "epochs": p.pinet_epochs, "train_seconds": seconds,
                                 "predict_seconds": predict_seconds, "test": scores, "mean_pi_baseline": baseline}
        self.times["PI-Net training"] = seconds
        history = self.pinet_model.history_
        fig_curve = self.figure(plot_training_curves(history, title="PI-Net training (MSE on scaled targets)"),
                                "pinet-training")
        best = np.argsort([-v for v in _per_image_pearson(predicted, s.test.pis)])
        rows = [best[0], best[len(best) // 2], best[-1]]
        flat_exact = s.test.pis.reshape(-1, *s.test.pis.shape[2:])
        flat_pred = predicted.reshape(flat_exact.shape)
        c = s.test.pis.shape[1]
        titles = [f"window {i // c}, {CHANNELS[i % c]}" for i in rows]
        fig_cmp = self.figure(plot_pi_comparison(flat_exact[rows], flat_pred[rows], config=self.pi_config,
                                                 titles=titles, max_rows=3), "pinet-vs-exact")
        self._pinet_figures = (fig_curve, fig_cmp)

    def pinet_section(self, drop_in: dict | None) -> None:
        p, n = self.plan, self.numbers["pinet"]
        sc, base = n["test"], n["mean_pi_baseline"]
        fig_curve, fig_cmp = self._pinet_figures
        lines = [
            "## 2. PI-Net surrogate",
            "",
            f"A Signal PI-Net (Som et al., 2020) with conv widths 16/32/64/128 ({n['parameters']:,} parameters; "
            f"the paper's is 128/256/512/1024), AdamW + cosine, {p.pinet_epochs} epochs on the training "
            f"windows (20 % held out for the best epoch): {n['train_seconds']:.1f} s. Test windows, against "
            "their exact PIs:",
            "",
            "| surrogate | mean Pearson r | MSE | max abs error |",
            "|---|---:|---:|---:|",
            f"| PI-Net | {sc['pearson']:.3f} | {sc['mse']:.3g} | {sc['max_abs']:.3g} |",
            f"| mean training PI (baseline) | {base['pearson']:.3f} | {base['mse']:.3g} | {base['max_abs']:.3g} |",
            "",
        ]
        if drop_in is not None:
            lines += [f"Drop-in: the PI teacher scores {_pct(drop_in['exact'])} % on the exact test PIs and "
                      f"{_pct(drop_in['pinet'])} % when fed the PI-Net's PIs instead.", ""]
        lines += [
            "A small PI-Net trained on this little data is a rough surrogate: compare its r with the mean-PI "
            "baseline before using it in place of the exact engine (which is fast enough to compute PIs on "
            "the fly).",
            "",
            f"![PI-Net training]({fig_curve})",
            "",
            f"![exact vs PI-Net]({fig_cmp})",
            "",
            "Best, median and worst test image by Pearson r.",
            "",
            "Reproduce:",
            "",
            "```",
            f"topokd pinet train --data {self.data}:train --widths 16,32,64,128 --optimizer adamw "
            f"--epochs {p.pinet_epochs} --batch-size {p.pinet_batch_size} --val-fraction 0.2"
            + (f" --resolution {p.pi_resolution}" if p.pi_resolution else "") + " -o pinet.safetensors",
            f"topokd pinet evaluate pinet.safetensors --data {self.data}:test",
            "```",
        ]
        if self.data == "hapt":
            lines += ["", "(`--data hapt:train` holds the validation users too: the demo trains on the same "
                          "windows.)"]
        self.sections.append("\n".join(lines))

    # -- 3. teachers ----------------------------------------------------------
    def teachers(self) -> None:
        from .distill.experiment import load_teacher, train_teacher
        from .distill.trainer import evaluate
        from .distill.data import Split
        from .plot import plot_training_curves

        self.teacher_summaries = {}
        for name in ("signal", "pi"):
            t0 = time.perf_counter()
            self.teacher_summaries[name] = train_teacher(self.cfg, name, self.splits)
            self.times[f"teacher {name}"] = time.perf_counter() - t0
        pi_teacher = load_teacher(self.cfg, "pi", "best", self.splits)
        device = self.cfg.teachers["pi"].train.torch_device
        test = self.splits.test
        drop_in = {"exact": evaluate(pi_teacher.to(device), "pi", test, device)["acc"],
                   "pinet": evaluate(pi_teacher, "pi", Split(test.signals, self.pinet_predicted, test.labels),
                                     device)["acc"]}
        self.numbers["pinet"]["drop_in"] = drop_in
        self.pinet_section(drop_in)
        figs = {name: self.figure(plot_training_curves(self.work / "teachers" / name,
                                                       title=f"{name} teacher ({self.cfg.teachers[name].model})"),
                                  f"training-teacher-{name}") for name in ("signal", "pi")}
        self.numbers["teachers"] = {name: {k: self.teacher_summaries[name][k] for k in
                                           ("best_epoch", "best_val_acc", "test_acc")}
                                    for name in self.teacher_summaries}
        rows = [f"| {name} | {self.cfg.teachers[name].model} | {self.cfg.teachers[name].inputs} | "
                f"{_pct(r['best_val_acc'])} | {_pct(r['test_acc'])} | {self.times[f'teacher {name}']:.0f} |"
                for name, r in self.teacher_summaries.items()]
        self.sections.append("\n".join([
            "## 3. Teachers",
            "",
            f"{self.plan.teacher_epochs} epochs each, SGD + cosine, batch {self.plan.batch_size}; the signal "
            "teacher with Mix1 augmentation. The best-validation epoch is kept (ESKD).",
            "",
            "| teacher | model | input | val acc % | test acc % | s |",
            "|---|---|---|---:|---:|---:|",
            *rows,
            "",
            f"![signal teacher]({figs['signal']})",
            "",
            f"![PI teacher]({figs['pi']})",
            "",
            "Reproduce: `topokd train-teacher config.yaml --set output=rerun` (the teachers of `config.yaml`).",
        ]))

    # -- 4. students ----------------------------------------------------------
    def students(self) -> None:
        from .distill.experiment import distill
        from .plot import plot_kd_comparison, plot_training_curves

        accs = {m: [] for m in METHODS}
        vals = {m: [] for m in METHODS}
        t0 = time.perf_counter()
        for seed in range(self.plan.seeds):
            for method in METHODS:
                spec = _method_spec(self.cfg, method, seed)
                cfg = dataclasses.replace(self.cfg, student=spec)
                self.say(f"      student {method}, seed {seed}")
                summary = distill(cfg, self.splits, run_dir=self.work / _run_dir(method, seed), role=method)
                accs[method].append(summary["test_acc"])
                vals[method].append(summary["best_val_acc"])
        self.times["students"] = time.perf_counter() - t0
        self.numbers["students"] = {m: {"test_acc": accs[m], "val_acc": vals[m]} for m in METHODS}
        fig_bars = self.figure(plot_kd_comparison(accs, baseline="scratch",
                                                  title=f"WRN-16-1 students on {self.data} "
                                                        f"({self.plan.seeds} seed(s))"), "kd-comparison")
        fig_curve = self.figure(plot_training_curves(self.work / "student",
                                                     title="topological student (seed 0)"),
                                "training-student-topological")
        gains = np.asarray(accs["topological"]) - np.asarray(accs["scratch"])
        delta = {m: f"{100 * np.mean(np.subtract(accs[m], accs['scratch'])):+.1f}" for m in METHODS}
        delta["scratch"] = "–"
        rows = [f"| {m} | {METHODS[m]} | {_mean_std(accs[m])} | {_mean_std(vals[m])} | {delta[m]} |"
                for m in METHODS]
        lines = [
            "## 4. Students (raw signal only)",
            "",
            f"WRN-16-1 (1-D), {self.plan.student_epochs} epochs, Mix1 augmentation; the PI teacher sees the "
            "precomputed PIs of the clean window (`view: clean`; it was trained on clean PIs, and Mix1's zeroed "
            "segment changes a window's topology). Test accuracy at the best-validation epoch, mean ± std "
            f"over {self.plan.seeds} seed(s) (std with ddof=1):",
            "",
            "| student | recipe | test acc % | val acc % | Δ vs scratch (points) |",
            "|---|---|---:|---:|---:|",
            *rows,
            "",
            f"Topological student vs scratch, per seed: {', '.join(f'{100 * g:+.1f}' for g in gains)} points.",
            "",
        ]
        if self.data == "basic-motions":
            lines += ["BasicMotions has 32 training windows and its test set is easy: every model reaches or "
                      "nears 100 %, so this table shows the pipeline working, not a gain. Run "
                      "`topokd demo --data hapt` (UCI HAPT, 30 subjects, test on unseen users) for a data set "
                      "with headroom, and see `benchmarks/results/distill-hapt.md` for the seeded benchmark.", ""]
        else:
            lines += ["The seeded benchmark with more epochs and every loss is `benchmarks/bench_distill_hapt.py` "
                      "(results in `benchmarks/results/distill-hapt.md`).", ""]
        lines += [
            f"![KD comparison]({fig_bars})",
            "",
            f"![student training]({fig_curve})",
            "",
            "Reproduce (seed 0; `--set student.train.seed=1` for the next seed):",
            "",
            "```",
            "topokd run config.yaml --set output=rerun            # teachers, topological student, scratch",
            "topokd distill config.yaml --set output=rerun --set 'student.teachers=[{name: signal, weight: 1.0}]'"
            "   # vanilla KD",
            "```",
        ]
        self.sections.append("\n".join(lines))

    # -- 5. compression -------------------------------------------------------
    def compress(self) -> None:
        from .compress.pipeline import compress_checkpoint
        from .plot import plot_compression

        t0 = time.perf_counter()
        report = compress_checkpoint(self.work / "student" / "best.safetensors", self.work / "compress.yaml",
                                     self.work / "compressed", config_source="compress.yaml",
                                     log=lambda line: self.say(f"      {line}"))
        self.times["compression"] = time.perf_counter() - t0
        before, after = report["before"], report["after"]
        self.numbers["compression"] = {"before": before, "after": after}
        fig = self.figure(plot_compression(before, after, title="topological student: before / after compression"),
                          "compression")
        lat_b, lat_a = before.get("latency", {}), after.get("latency", {})
        lat_rows = [f"| latency, batch {bs} (median ms) | {lat_b[bs]['median_ms']:.3g} | "
                    f"{lat_a[bs]['median_ms']:.3g} | {lat_b[bs]['median_ms'] / lat_a[bs]['median_ms']:.2f}× |"
                    for bs in lat_b if bs in lat_a]
        self.sections.append("\n".join([
            "## 5. Compression for an edge device",
            "",
            f"The topological student (seed 0): structured pruning of 50 % of the channels (torch-pruning), "
            f"{self.plan.finetune_epochs} fine-tuning epochs with KD from the signal teacher, static int8 "
            f"quantisation (torchao PT2E), exported as `compressed/model.pt2` "
            f"({self.times['compression']:.0f} s). Test set:",
            "",
            "| | before | after | ratio |",
            "|---|---:|---:|---:|",
            f"| test accuracy % | {_pct(before['accuracy'])} | {_pct(after['accuracy'])} | "
            f"{100 * (after['accuracy'] - before['accuracy']):+.1f} points |",
            f"| parameters | {before['params']['total']:,} | {after['params']['total']:,} | "
            f"{before['params']['total'] / after['params']['total']:.2f}× |",
            f"| file size (bytes) | {before['size_bytes']:,} | {after['size_bytes']:,} | "
            f"{before['size_bytes'] / after['size_bytes']:.2f}× |",
            f"| MACs (batch 1) | {before['macs']:,} | {after['macs']:,} | {before['macs'] / after['macs']:.2f}× |",
            *lat_rows,
            "",
            "Latency: one CPU thread, median of the timed runs; int8 kernels on x86 CPUs are not always faster "
            "than float32 at batch 1 (see `compressed/report.md`).",
            "",
            f"![compression]({fig})",
            "",
            "Load and run the compressed student:",
            "",
            "```python",
            "import topokd.compress",
            "model = topokd.compress.load(\"compressed/model.pt2\")   # x: (B, C, T) float32 tensor",
            "```",
            "",
            "Reproduce: `topokd compress student/best.safetensors compress.yaml -o rerun-compressed`.",
        ]))

    # -- report ----------------------------------------------------------------
    def write_report(self) -> None:
        import platform

        import torch

        d = self.numbers["data"]
        times = " · ".join(f"{k} {v:.0f} s" for k, v in self.times.items())
        head = [
            f"# topokd demo: {self.data}{' (quick)' if self.quick else ''}",
            "",
            f"- command: `topokd demo --data {self.data}{' --quick' if self.quick else ''} -o {self.out}`",
            f"- topokd {__version__}, torch {torch.__version__}, python {platform.python_version()}, "
            f"{os.cpu_count()} CPU(s), device {self.cfg.teachers['signal'].train.torch_device}",
            f"- total time {{TOTAL_TIME}} ({times})",
            f"- data: {d['description']}",
            "- files: `config.yaml` (teachers + students), `compress.yaml`, `results.json` (every number below), "
            "`teachers/`, `student/`, `scratch/`, `students/` (run folders: checkpoints, metrics), `pinet/`, "
            "`compressed/` (model.pt2, report), `figures/` (PNG + SVG). `topokd plot <run folder>` redraws a "
            "run's figures.",
            "",
        ]
        text = "\n".join(head) + "\n" + "\n\n".join(self.sections) + "\n"
        (self.work / "report.md").write_text(text)


def _per_image_pearson(a: np.ndarray, b: np.ndarray) -> list[float]:
    x = a.reshape(-1, a.shape[-2] * a.shape[-1]).astype(np.float64)
    y = b.reshape(x.shape).astype(np.float64)
    x0, y0 = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    den = np.sqrt((x0 ** 2).sum(1) * (y0 ** 2).sum(1))
    return [float(v) if d > 0 else -math.inf for v, d in zip((x0 * y0).sum(1) / np.where(den > 0, den, 1), den)]


__all__ = ["DATASETS", "MARKER", "METHODS", "PLANS", "DemoError", "Plan", "check_output", "run_demo"]
