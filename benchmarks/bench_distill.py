#!/usr/bin/env python
"""Benchmark topokd's knowledge distillation: does a topological teacher help a small student?

For each data set and seed, one teacher set is trained once and reused by
every student variant:

* ``signal`` teacher: WRN-16-3, 1-D, on the raw windows, Mix1 augmentation
  (as in ``configs/basic-motions-pi-kd.yaml``);
* ``pi`` teacher: WRN-16-3, 2-D, on the per-channel persistence images
  (``standard-signal`` preset at a reduced resolution, see ``--pi-resolution``),
  no augmentation (the PIs are computed once from the unaugmented windows).

The student is a WRN-16-1, 1-D, on the raw windows, in seven variants:

1. ``scratch``     cross-entropy only, no teacher;
2. ``kd``          KD from the signal teacher (0.1 CE + 0.9 KD, T = 4);
3. ``kd+at``       (2) + attention transfer (three stages) from the signal teacher;
4. ``kd+amd``      (2) + angular margin distillation (three stages) from the signal teacher;
5. ``kd+sp``       (2) + similarity preserving (last stage) from the signal teacher;
6. ``pi-kd``       KD from the PI teacher only (0.1 CE + 0.9 KD, T = 4);
7. ``pi+signal``   multi-teacher KD, PI 0.7 + signal 0.3 (0.1 CE + 0.9 KD, T = 4);

each trained without and with Mix1 augmentation of the student's inputs.
Teachers are distilled from their best-validation epoch (ESKD, checkpoint
"best").  Every configuration is a dict passed through
``topokd.distill.parse_config`` and trained with
``topokd.distill.experiment.train_teacher`` / ``distill``.

Reports per variant mean +- std (over seeds, ddof = 1) of the test accuracy
of the best-validation checkpoint (topokd's ``summary["test_acc"]``) and of
the last epoch, the difference to the scratch student trained with the same
augmentation, and the teachers' own accuracies.  Writes
``results/distill.md`` and ``results/distill.json`` (``--quick``:
``distill-quick.*``, one seed, one data set, a few epochs: a smoke test).
The model files go to a temporary directory that is deleted at the end.

Usage::

    .venv/bin/python benchmarks/bench_distill.py            # full run (18 min on 2 shared cores; budget ~25)
    .venv/bin/python benchmarks/bench_distill.py --quick    # smoke test (< 3 minutes)
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import T0, command_line, log, loadavg, md_bullets, md_table, now_iso  # noqa: E402
from _harness import machine_info as _base_machine_info  # noqa: E402
from _harness import versions_line, write_results as _write_results  # noqa: E402

DATASETS = ("basic-motions", "synthetic")
KD = {"weight": 0.9, "temperature": 4.0}
CE_KD = 0.1
# Feature-loss weights (added to CE + KD; --at-weight / --amd-weight / --sp-weight).
# The CIFAR weights of the reference code (AT: beta = 1000 on (Q_s - Q_t)^2.mean(),
# Zagoruyko & Komodakis / mdistiller; SP: gamma = 3000, Tung & Mori) made, at the
# first epoch on basic-motions (seed 0), the AT term ~4x and the SP term ~30x the
# 0.9 KD term: the attention maps here have 25-100 positions instead of 64-1024
# (AT's mean over positions grows) and the batches are 16 instead of 64-128 (SP's
# 1/B^2 Gram distance grows).  The defaults below (AT 250, AMD 1000, SP 100) put
# each feature term at about the size of the KD term at the start of training;
# they were set from loss magnitudes only, not tuned on accuracy.
VARIANTS = {
    # name: (teachers [(name, weight)], losses, description)
    "scratch": ([], {"ce": 1.0}, "CE only, no teacher"),
    "kd": ([("signal", 1.0)], {"ce": CE_KD, "kd": KD}, "KD from the signal teacher"),
    "kd+at": ([("signal", 1.0)], {"ce": CE_KD, "kd": KD, "at": None}, "KD + AT (signal teacher)"),
    "kd+amd": ([("signal", 1.0)], {"ce": CE_KD, "kd": KD, "amd": None}, "KD + AMD (signal teacher)"),
    "kd+sp": ([("signal", 1.0)], {"ce": CE_KD, "kd": KD, "sp": None}, "KD + SP (signal teacher)"),
    "pi-kd": ([("pi", 1.0)], {"ce": CE_KD, "kd": KD}, "KD from the PI teacher"),
    "pi+signal": ([("pi", 0.7), ("signal", 0.3)], {"ce": CE_KD, "kd": KD},
                  "multi-teacher KD, PI 0.7 + signal 0.3"),
}
AUGS = (None, "mix1")


# ---------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------
def per_dataset(value: str, cast=int) -> dict:
    """``"40"`` -> the same for every data set; ``"basic-motions=60,synthetic=30"`` -> per data set."""
    value = str(value)
    if "=" not in value:
        return {d: cast(value) for d in DATASETS}
    out = {}
    for part in value.split(","):
        key, _, val = part.partition("=")
        if key.strip() not in DATASETS:
            raise SystemExit(f"unknown data set {key!r} in {value!r}; choose from {DATASETS}")
        out[key.strip()] = cast(val)
    missing = [d for d in DATASETS if d not in out]
    if missing:
        raise SystemExit(f"{value!r} gives no value for {missing}")
    return out


def base_config(args, dataset: str, seed: int, output: Path) -> dict:
    te, bs = args.teacher_epochs[dataset], args.batch_size[dataset]

    def train(epochs, **extra):
        return {"epochs": epochs, "batch_size": bs, "lr": args.lr, "progress": False, **extra}

    data = {"name": dataset, "val_fraction": 0.2, "pi_preset": "standard-signal",
            "pi_params": {"resolution": args.pi_resolution}}
    if dataset == "synthetic":
        data.update(synthetic_windows=args.synthetic_windows, synthetic_length=100)
    return {
        "output": str(output), "seed": seed, "device": "cpu", "data": data,
        "teachers": {
            "signal": {"model": args.signal_teacher, "inputs": "signal", "train": train(te, augment="mix1")},
            "pi": {"model": args.pi_teacher, "inputs": "pi", "train": train(te)},
        },
    }


def student_config(args, raw: dict, dataset: str, variant: str, augment) -> dict:
    teachers, losses, _ = VARIANTS[variant]
    losses = copy.deepcopy(losses)
    for name, weight in (("at", args.at_weight), ("amd", args.amd_weight), ("sp", args.sp_weight)):
        if name in losses:
            losses[name] = {"weight": weight}
    raw = copy.deepcopy(raw)
    train = {"epochs": args.student_epochs[dataset], "batch_size": args.batch_size[dataset], "lr": args.lr,
             "progress": False}
    if augment:
        train["augment"] = augment
    raw["student"] = {"model": args.student,
                      "teachers": [{"name": n, "weight": w, "checkpoint": "best"} for n, w in teachers],
                      "losses": losses, "train": train}
    return raw


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------
def last_epoch_test_acc_student(cfg, splits, run_dir: Path) -> float:
    from topokd.checkpoint import load_checkpoint
    from topokd.distill.models import create_model
    from topokd.distill.trainer import evaluate

    tensors, _ = load_checkpoint(run_dir / "last.safetensors")
    model = create_model(cfg.student.model, dims=1, num_classes=len(splits.classes),
                         in_channels=splits.train.signals.shape[2])
    model.load_state_dict(tensors)
    return evaluate(model, "signal", splits.test, "cpu")["acc"]


def history(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else []


def train_losses(hist: list[dict]) -> dict:
    """The train loss parts of the first and the last epoch (to check the loss scales)."""
    if not hist:
        return {}
    pick = lambda r: {k[6:]: round(v, 6) for k, v in r.items() if k.startswith("train_")}  # noqa: E731
    return {"first_epoch": pick(hist[0]), "last_epoch": pick(hist[-1])}


def run_seed(args, dataset: str, seed: int, workdir: Path) -> dict:
    from topokd.distill.config import parse_config
    from topokd.distill.experiment import distill, load_teacher, prepare_data, train_teacher
    from topokd.distill.trainer import evaluate

    out = workdir / dataset / f"seed{seed}"
    raw = base_config(args, dataset, seed, out)
    cfg = parse_config(raw)
    t = time.perf_counter()
    splits = prepare_data(cfg)
    data_s = time.perf_counter() - t
    log(f"{dataset} seed {seed}: data {len(splits.train)}/{len(splits.val)}/{len(splits.test)} "
        f"train/val/test, PIs {tuple(splits.train.pis.shape[1:])}, {data_s:.1f} s")
    res = {"dataset": dataset, "seed": seed, "data_s": data_s, "description": splits.description,
           "sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
           "pi_shape": list(splits.train.pis.shape[1:]), "classes": [str(c) for c in splits.classes],
           "teachers": {}, "students": {}}
    for name in ("signal", "pi"):
        t = time.perf_counter()
        summary = train_teacher(cfg, name, splits)
        secs = time.perf_counter() - t
        spec = cfg.teachers[name]
        last = evaluate(load_teacher(cfg, name, "last", splits), spec.inputs, splits.test, "cpu")["acc"]
        res["teachers"][name] = {"test_acc": summary["test_acc"], "test_acc_last": last,
                                 "best_epoch": summary["best_epoch"], "best_val_acc": summary["best_val_acc"],
                                 "epochs": summary["epochs"], "seconds": secs}
        log(f"{dataset} seed {seed}: teacher {name}: test {summary['test_acc']:.3f} (best-val epoch "
            f"{summary['best_epoch']}), last {last:.3f}, {secs:.1f} s")
        shutil.rmtree(out / "teachers" / name / "epochs", ignore_errors=True)  # ESKD uses best.safetensors
    for variant in args.variants:
        for augment in AUGS:
            key = f"{variant}|{augment or 'none'}"
            scfg = parse_config(student_config(args, raw, dataset, variant, augment))
            t = time.perf_counter()
            summary = distill(scfg, splits)
            secs = time.perf_counter() - t
            run_dir = scfg.output / "student"
            last = last_epoch_test_acc_student(scfg, splits, run_dir)
            res["students"][key] = {"variant": variant, "augment": augment, "test_acc": summary["test_acc"],
                                    "test_acc_last": last, "best_epoch": summary["best_epoch"],
                                    "best_val_acc": summary["best_val_acc"], "epochs": summary["epochs"],
                                    "seconds": secs, "train_losses": train_losses(history(run_dir))}
            log(f"{dataset} seed {seed}: {key:18s} test {summary['test_acc']:.3f} (best-val epoch "
                f"{summary['best_epoch']}), last {last:.3f}, {secs:.1f} s")
            shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------
def stats(values) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else float("nan"),
            "n": int(len(arr)), "values": [float(v) for v in arr]}


def summarize(runs: list[dict], variants) -> dict:
    out = {}
    for dataset in DATASETS:
        rs = sorted((r for r in runs if r["dataset"] == dataset), key=lambda r: r["seed"])
        if not rs:
            continue
        d = {"seeds": [r["seed"] for r in rs], "teachers": {}, "students": {}}
        for name in ("signal", "pi"):
            d["teachers"][name] = {m: stats([r["teachers"][name][m] for r in rs])
                                   for m in ("test_acc", "test_acc_last", "best_epoch")}
        for metric in ("test_acc", "test_acc_last"):
            for augment in AUGS:
                a = augment or "none"
                base = np.array([r["students"][f"scratch|{a}"][metric] for r in rs])
                for variant in variants:
                    vals = np.array([r["students"][f"{variant}|{a}"][metric] for r in rs])
                    s = stats(vals)
                    diff = vals - base
                    s.update(diff_mean=float(diff.mean()),
                             diff_std=float(diff.std(ddof=1)) if len(diff) > 1 else float("nan"),
                             scratch_std=float(base.std(ddof=1)) if len(base) > 1 else float("nan"),
                             wins=int((diff > 0).sum()), losses=int((diff < 0).sum()))
                    d["students"].setdefault(f"{variant}|{a}", {})[metric] = s
        for key in d["students"]:
            d["students"][key]["best_epoch"] = stats([r["students"][key]["best_epoch"] for r in rs])
            d["students"][key]["seconds"] = stats([r["students"][key]["seconds"] for r in rs])
        out[dataset] = d
    return out


# ---------------------------------------------------------------------------
# Machine / report
# ---------------------------------------------------------------------------
def machine_info(threads: int) -> dict:
    """The harness's machine description plus torch's threads and the load."""
    info = _base_machine_info(("scipy", "gudhi", "persim", "ripser", "aeon", "safetensors"))
    return {**info, "torch_threads": threads, "loadavg_at_start": loadavg()}


def pct(s: dict, key="mean") -> str:
    v = s[key]
    return "n/a" if v != v else f"{100 * v:.1f}"


def pm(s: dict) -> str:
    return f"{pct(s)} ± {pct(s, 'std')}"


def signed(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:+.1f}"


def verdict(s: dict) -> str:
    """Is the mean gain over scratch larger than the scratch seed-to-seed std?"""
    if s["n"] < 2:
        return "n/a (1 seed)"
    if s["diff_mean"] > s["scratch_std"] and s["diff_mean"] > 0:
        return "**yes**"
    return "no"


def render_markdown(res: dict) -> str:
    m, a = res["machine"], res["settings"]
    L = [f"# topokd distillation benchmark{' (quick smoke test)' if res['quick'] else ''}\n"]
    if res.get("partial"):
        L.append(f"**PARTIAL: {res['partial']}**\n")
    L.append(f"- command: `{res['command']}`")
    L.append(f"- date: {res['date']}  (script wall time {res['wall_s']:.0f} s = {res['wall_s'] / 60:.1f} min)")
    load = m.get("loadavg_at_start")
    L.append(f"- machine: {m['nproc']} CPUs (nproc), {m['cpu_model']}; torch threads {m['torch_threads']}; "
             f"load average at start {', '.join(f'{x:.1f}' for x in load) if load else 'n/a'} "
             f"(shared machine); {m['platform']}")
    L.append(versions_line(m, dirty_label="dirty working tree"))
    L.append(f"- seeds: {a['seeds']} (each seed: its own validation split, initial weights, batch order and "
             "augmentation; for `synthetic` also its own data set)")
    L.append("- epochs: " + "; ".join(
        f"{d}: teachers {a['teacher_epochs'][d]}, students {a['student_epochs'][d]}, batch {a['batch_size'][d]}"
        for d in a["datasets"]) + f"; SGD (Nesterov, momentum 0.9, wd 5e-4), lr {a['lr']}, cosine schedule")
    L.append(f"- models: student `{a['student']}` (1-D, raw windows); signal teacher `{a['signal_teacher']}` (1-D, "
             f"raw windows, trained with Mix1); PI teacher `{a['pi_teacher']}` (2-D, `standard-signal` PIs at "
             f"{a['pi_resolution']}x{a['pi_resolution']}, no augmentation); teachers distilled from their "
             "best-validation epoch (ESKD, checkpoint `best`)")
    L.append(f"- losses: KD = {CE_KD} CE + {KD['weight']} KD (T = {KD['temperature']:g}); AT / AMD / SP are added to "
             f"KD from the signal teacher with weights {a['at_weight']:g} / {a['amd_weight']:g} / {a['sp_weight']:g} "
             "(AT and AMD on the three stages, SP on the last); `pi+signal`: KD weights 0.7 (PI) / 0.3 (signal)")
    L.append("- Mix1 (removal + shift) is applied to the student's input batches only in the `mix1` rows; the "
             "signal teacher then sees the same augmented batch, the PI teacher the PIs of the unaugmented "
             "windows. The teachers are trained once per (data set, seed) and shared by all 14 student runs.\n")

    names = {k: v[2] for k, v in VARIANTS.items()}
    for dataset, d in res["summary"].items():
        run0 = next(r for r in res["runs"] if r["dataset"] == dataset)
        sz = run0["sizes"]
        L.append(f"## {dataset}\n")
        L.append(f"{run0['description']}; train / val / test = {sz['train']} / {sz['val']} / {sz['test']} windows "
                 f"(one test window = {100 / sz['test']:.1f} points of accuracy); PIs "
                 f"{tuple(run0['pi_shape'])}; {len(d['seeds'])} seed(s).\n")
        L.append("**Teachers** (test accuracy %, mean ± std over seeds)\n")
        L += md_table(["teacher", "best-val checkpoint (used for KD)", "last epoch", "best-val epoch"],
                      ([desc, pm(d["teachers"][name]["test_acc"]), pm(d["teachers"][name]["test_acc_last"]),
                        f"{d['teachers'][name]['best_epoch']['mean']:.1f}"]
                       for name, desc in (("signal", f"signal `{a['signal_teacher']}` 1-D"),
                                          ("pi", f"PI `{a['pi_teacher']}` 2-D"))), "lrrr")
        L.append("")
        L.append("**Students** (`WRN-16-1` 1-D; test accuracy %, mean ± std over seeds; Δ = variant − scratch "
                 "trained with the same augmentation, mean over seeds, with the paired std of the per-seed "
                 "differences; wins / losses = seeds where the variant beats / trails scratch; "
                 "\"Δ > scratch std\" asks whether the mean gain exceeds the scratch seed-to-seed std)\n")
        for metric, title in (("test_acc", "best-validation checkpoint (topokd's `summary[\"test_acc\"]`)"),
                              ("test_acc_last", "last epoch")):
            L.append(f"*{title}*\n")
            rows = []
            for augment in AUGS:
                aug = augment or "none"
                for variant in a["variants"]:
                    s = d["students"][f"{variant}|{aug}"][metric]
                    if variant == "scratch":
                        rows.append([f"{variant} ({names[variant]})", aug, pm(s), "–", "–", pct(s, "std"), "–", "–"])
                    else:
                        rows.append([f"{variant} ({names[variant]})", aug, pm(s), signed(s["diff_mean"]),
                                     pct(s, "diff_std"), pct(s, "scratch_std"), f"{s['wins']} / {s['losses']}",
                                     verdict(s)])
            L += md_table(["variant", "aug", "test acc", "Δ vs scratch", "paired std of Δ", "scratch std",
                           "wins / losses", "Δ > scratch std"], rows, "llrrrrrl")
            L.append("")
        L.append("Per-seed test accuracies (best-val checkpoint / last epoch, %):\n")
        rs = sorted((r for r in res["runs"] if r["dataset"] == dataset), key=lambda r: r["seed"])
        rows = []
        for name in ("signal", "pi"):
            cells = [f"{100 * r['teachers'][name]['test_acc']:.1f} / {100 * r['teachers'][name]['test_acc_last']:.1f}"
                     for r in rs]
            secs = np.mean([r["teachers"][name]["seconds"] for r in rs])
            be = np.mean([r["teachers"][name]["best_epoch"] for r in rs])
            rows.append([f"teacher {name}", *cells, f"{secs:.1f}", f"{be:.1f}"])
        for augment in AUGS:
            for variant in a["variants"]:
                key = f"{variant}|{augment or 'none'}"
                cells = [f"{100 * r['students'][key]['test_acc']:.1f} / {100 * r['students'][key]['test_acc_last']:.1f}"
                         for r in rs]
                rows.append([f"{variant}, {augment or 'none'}", *cells, f"{d['students'][key]['seconds']['mean']:.1f}",
                             f"{d['students'][key]['best_epoch']['mean']:.1f}"])
        L += md_table(["run", *(f"seed {s}" for s in d["seeds"]), "mean s per run", "mean best-val epoch"], rows,
                      "l" * (1 + len(d["seeds"])) + "rr")
        L.append("")
    L += md_bullets("Findings", res.get("findings")) + md_bullets("Notes", res.get("notes"))
    return "\n".join(L)


def findings(summary: dict, variants) -> list[str]:
    """One line per (data set, metric): which variants beat scratch by more than the scratch std."""
    out = []
    for dataset, d in summary.items():
        for metric, label in (("test_acc", "best-val checkpoint"), ("test_acc_last", "last epoch")):
            for augment in AUGS:
                aug = augment or "none"
                scratch = d["students"][f"scratch|{aug}"][metric]
                if scratch["n"] < 2:
                    continue
                parts = []
                for v in variants:
                    if v == "scratch":
                        continue
                    s = d["students"][f"{v}|{aug}"][metric]
                    mark = " (> scratch std)" if (s["diff_mean"] > s["scratch_std"] and s["diff_mean"] > 0) else ""
                    parts.append(f"{v} {signed(s['diff_mean'])}{mark}")
                out.append(f"{dataset}, {label}, aug {aug}: scratch {pm(scratch)}; Δ: " + ", ".join(parts))
    # The question of the benchmark: do the topological teachers beat scratch by more than the spread?
    for v in ("pi-kd", "pi+signal", "kd"):
        if v not in variants:
            continue
        cells = [d["students"][f"{v}|{aug or 'none'}"][metric] for d in summary.values()
                 for metric in ("test_acc", "test_acc_last") for aug in AUGS]
        cells = [s for s in cells if s["n"] > 1]
        if not cells:
            continue
        over_scratch = sum(s["diff_mean"] > 0 and s["diff_mean"] > s["scratch_std"] for s in cells)
        over_paired = sum(s["diff_mean"] > 0 and s["diff_mean"] > s["diff_std"] for s in cells)
        all_wins = sum(s["wins"] == s["n"] for s in cells)
        out.append(f"**{v}** vs scratch over {len(cells)} cells (data set x checkpoint x augmentation): mean gain > "
                   f"scratch std in {over_scratch}, > paired std of the gain in {over_paired}, better than scratch "
                   f"on every seed in {all_wins}; mean Δ over the cells "
                   f"{signed(float(np.mean([s['diff_mean'] for s in cells])))} points.")
    return out


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\nUsage")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke test (< 3 min): 1 seed, basic-motions only, 5 epochs; writes distill-quick.md/json; "
                        "explicit options still win")
    p.add_argument("--out", type=Path, default=HERE / "results", help="directory for the results files")
    p.add_argument("--name", help="results file stem (default: distill, or distill-quick with --quick)")
    p.add_argument("--datasets", help=f"comma-separated subset of {','.join(DATASETS)} (default: both; quick: basic-motions)")
    p.add_argument("--seeds", help="comma-separated seeds (default 0,1,2; quick 0)")
    p.add_argument("--teacher-epochs", help="teacher epochs, one number or 'basic-motions=N,synthetic=M' "
                                            "(default basic-motions=30,synthetic=30; quick 5)")
    p.add_argument("--student-epochs", help="student epochs, same format (default basic-motions=30,synthetic=20; quick 5)")
    p.add_argument("--batch-size", default="basic-motions=16,synthetic=32", help="batch size, same format")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default 0.05)")
    p.add_argument("--synthetic-windows", type=int, default=300,
                   help="windows of the synthetic data set (default 300: about 192 / 48 / 60 train / val / test)")
    p.add_argument("--pi-resolution", type=int, default=20, help="PI resolution (default 20; the preset's is 50)")
    p.add_argument("--student", default="wrn16-1", help="student model (default wrn16-1)")
    p.add_argument("--signal-teacher", default="wrn16-3", help="signal teacher model (default wrn16-3)")
    p.add_argument("--pi-teacher", default="wrn16-3", help="PI teacher model (default wrn16-3)")
    p.add_argument("--at-weight", type=float, default=250.0, help="AT weight (default 250)")
    p.add_argument("--amd-weight", type=float, default=1000.0, help="AMD weight (default 1000)")
    p.add_argument("--sp-weight", type=float, default=100.0, help="SP weight (default 100)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)} "
                                                                   "(scratch is always run)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: on a shared 2-core machine 2 threads were ~8x slower)")
    p.add_argument("--workdir", type=Path, help="where the run directories go (default: a new temporary directory)")
    p.add_argument("--keep-runs", action="store_true", help="keep the temporary run directory")
    p.add_argument("--render-json", type=Path, metavar="JSON",
                   help="train nothing: re-render the report of an earlier run's JSON into --out/--name")
    args = p.parse_args(argv)
    q = args.quick
    if args.datasets is None:
        args.datasets = "basic-motions" if q else ",".join(DATASETS)
    args.datasets = [d for d in args.datasets.split(",") if d]
    for d in args.datasets:
        if d not in DATASETS:
            p.error(f"unknown data set {d!r}; choose from {DATASETS}")
    args.seeds = [int(s) for s in (args.seeds or ("0" if q else "0,1,2")).split(",") if s]
    args.teacher_epochs = per_dataset(args.teacher_epochs or ("5" if q else "basic-motions=30,synthetic=30"))
    args.student_epochs = per_dataset(args.student_epochs or ("5" if q else "basic-motions=30,synthetic=20"))
    args.batch_size = per_dataset(args.batch_size)
    args.variants = ["scratch"] + [v for v in args.variants.split(",") if v and v != "scratch"]
    for v in args.variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}; choose from {list(VARIANTS)}")
    args.name = args.name or ("distill-quick" if q else "distill")
    return args


def write_results(args, res: dict) -> None:
    res["wall_s"] = time.perf_counter() - T0
    _write_results(args.out, args.name, res, render_markdown(res), indent=1, default=str)


def make_notes(settings: dict, quick: bool) -> list[str]:
    notes = [
        "Test accuracy of the best-validation checkpoint is what `topokd` reports (`summary.json`); the "
        "validation splits are small (basic-motions: 8 windows), so the best-validation epoch is often an "
        "early one (ties keep the first epoch). The last-epoch accuracy (end of the cosine schedule) is "
        "reported next to it.",
        "Std is the sample standard deviation over seeds (ddof = 1). With 3 seeds it is itself uncertain; "
        "a difference smaller than about one test window is noise.",
        "Δ compares each variant with the scratch student of the same seed and augmentation; all students of a "
        "seed start from the same initial weights (topokd seeds the weights from the config seed).",
        f"Feature-loss weights AT {settings['at_weight']:g} / AMD {settings['amd_weight']:g} / SP "
        f"{settings['sp_weight']:g}: chosen from loss magnitudes so that each term starts at about the size of "
        "the 0.9 KD term (the CIFAR weights AT 1000 / SP 3000 gave terms ~4x / ~30x the KD term on these short "
        "maps and small batches); not tuned on accuracy.",
        f"Epochs, the PI resolution ({settings['pi_resolution']}x{settings['pi_resolution']} instead of the "
        f"preset's 50x50) and the synthetic set ({settings['synthetic_windows']} windows) are reduced so that "
        f"the full run fits in about 25 minutes on 2 shared CPU cores (torch threads = {settings['threads']}; "
        "with 2 threads on the loaded machine training was ~8x slower); the shipped config trains 60 epochs.",
    ]
    if quick:
        notes.append("--quick: 5 epochs and one seed, the numbers are a smoke test, not a measurement.")
    return notes


def render_only(args) -> int:
    res = json.loads(args.render_json.read_text())
    res["findings"] = findings(res["summary"], res["settings"]["variants"])
    res["notes"] = make_notes(res["settings"], res["quick"])
    _write_results(args.out, args.name, res, render_markdown(res), indent=1, default=str)
    log(f"re-rendered {args.render_json} into {args.out / args.name}.md/.json")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render_json:
        return render_only(args)
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    command = command_line(argv)
    log(f"{command}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="topokd-bench-distill-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"run directories under {workdir}")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("out", "name", "workdir", "keep_runs", "render_json")}
    res = {"quick": args.quick, "command": command,
           "date": now_iso(),
           "machine": machine_info(args.threads), "settings": settings,
           "variants": {k: {"teachers": v[0], "losses": student_config(args, {"output": "x"}, DATASETS[0], k, None)
                            ["student"]["losses"], "description": v[2]} for k, v in VARIANTS.items()},
           "runs": [], "summary": {}}
    todo = [(d, s) for d in args.datasets for s in args.seeds]
    try:
        for i, (dataset, seed) in enumerate(todo):
            res["runs"].append(run_seed(args, dataset, seed, workdir))
            res["summary"] = summarize(res["runs"], args.variants)
            res["partial"] = f"{i + 1} of {len(todo)} (data set, seed) pairs done" if i + 1 < len(todo) else None
            write_results(args, res)
            log(f"{i + 1}/{len(todo)} done; results so far in {args.out / args.name}.md")
    finally:
        if not args.keep_runs:
            shutil.rmtree(workdir, ignore_errors=True)
    res["notes"] = make_notes(res["settings"], args.quick)
    res["findings"] = findings(res["summary"], args.variants)
    res["partial"] = None
    write_results(args, res)
    print(render_markdown(res))
    log(f"wrote {args.out / (args.name + '.md')} and {args.out / (args.name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
