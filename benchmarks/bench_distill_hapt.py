#!/usr/bin/env python
"""Topological knowledge distillation on real wearable data: UCI HAPT, 6 activities.

Protocol (issue "Topological distillation that works on real wearable data"):

* data: ``topokd.data.load_hapt`` (smartphone on the waist, acc + gyro, 50 Hz,
  windows of 128 samples, step 64), 6 basic activities; test = users 22-30
  (the standard split), validation = training users held out group-wise
  (no subject in two splits); the student sees raw windows only;
* teachers, trained once (seed 0): WRN-16-3 on the raw windows with Mix1, a
  PI teacher (2-D WRN over the 6-channel stack of ``standard-signal`` PIs at
  ``--pi-resolution``, smaller than the preset's 50x50 so that the CPU
  budget holds; see the results for the resolution used), and a fusion
  teacher (1-D WRN on the signal + 2-D WRN on the PIs, late fusion);
* WRN-16-1 students, all with Mix1, ``--seeds`` seeds: scratch, KD (signal
  teacher), KD + AMD, PI-KD, PI + signal multi-teacher KD (TPKD-style),
  fused SP (TGD recipe: multi-teacher KD + fused similarity over all
  stages), partial-mixup KD (MIX-KD recipe: standardised-logit KD on
  partially mixed batches); scratch and the best topological variant also
  without augmentation; one KD run from the last-epoch teacher (ESKD);
* a second table, one seed: AT, SP, FT, DDGSD, FitNet, RKD, PKT, DKD, DIST
  (each with CE, against the signal teacher, DDGSD self-distilled);
* hyper-parameters chosen on validation users only, seed 0, by validation
  accuracy: first the PI teacher's view (``student``: the PIs of the
  augmented window the student sees; ``clean``: the original window's
  precomputed PIs, as in Jeon et al.'s code) and the AMD weight, then the
  PI teacher's weight in TPKD and the fused-SP weight, each from a small
  grid; the selection is reported;
* per student: test accuracy of the best-validation epoch and of the last
  epoch, and with Gaussian noise added to the test windows at 30, 20, 10 and
  5 dB SNR (noise power = the mean square of each window channel / 10^(SNR/10)).

Jobs run two at a time, one thread each (``--jobs``).  Writes
``results/distill-hapt.md`` / ``.json`` (``--quick``: ``distill-hapt-quick``).

Usage::

    .venv/bin/python benchmarks/bench_distill_hapt.py            # full run (target: <= 90 min on 2 cores)
    .venv/bin/python benchmarks/bench_distill_hapt.py --quick    # smoke test (< 5 minutes)
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import T0, command_line, limit_threads, log, loadavg, md_table, now_iso  # noqa: E402
from _harness import machine_info as _base_machine_info  # noqa: E402
from _harness import versions_line, write_results  # noqa: E402

SNRS = (30, 20, 10, 5)
KD = {"temperature": 4.0}
TOPOLOGICAL = ("pi-kd", "tpkd", "fused-sp")
#: the hyper-parameters chosen on validation users, and the variant each is chosen with
SELECTED_ON = {"pi_view": "pi-kd", "amd_weight": "kd+amd", "tpkd_pi_weight": "tpkd", "fused_sp_weight": "fused-sp"}


# ---------------------------------------------------------------------------
# configurations
# ---------------------------------------------------------------------------
def base_config(args, output: Path, seed: int) -> dict:
    def train(epochs, **extra):
        return {"epochs": epochs, "batch_size": args.batch_size, "lr": args.lr, "progress": False, "device": "cpu",
                **extra}

    te = args.teacher_epochs
    return {
        "output": str(output), "seed": seed, "device": "cpu", "checkpoints": "needed",
        "data": {"name": "hapt", "val_fraction": 0.2, "pi_preset": "standard-signal",
                 "pi_params": {"resolution": args.pi_resolution}},
        "teachers": {
            "signal": {"model": args.signal_teacher, "inputs": "signal", "train": train(te, augment="mix1")},
            "pi": {"model": args.pi_teacher, "inputs": "pi", "train": train(te)},
            "fusion": {"model": args.fusion_signal, "inputs": "fusion", "pi_model": args.fusion_pi,
                       "train": train(te, augment="mix1")},
        },
    }


def variants(args, chosen: dict) -> dict:
    """name -> (teachers [(name, weight, checkpoint)], losses, description, topological)."""
    ce, kd = 1.0 - args.kd_weight, {"weight": args.kd_weight, **KD}
    a = chosen.get("tpkd_pi_weight", 0.5)
    view = chosen.get("pi_view", "student")
    return {
        "scratch": ([], {"ce": 1.0}, "CE only, no teacher", False),
        "kd": ([("signal", 1.0, "best")], {"ce": ce, "kd": kd}, "KD from the signal teacher", False),
        "kd-last": ([("signal", 1.0, "last")], {"ce": ce, "kd": kd},
                    "KD from the signal teacher's last epoch (ESKD comparison)", False),
        "kd+amd": ([("signal", 1.0, "best")], {"ce": ce, "kd": kd, "amd": {"weight": chosen.get("amd_weight", 1.0)}},
                   "KD + AMD (signal teacher)", False),
        "pi-kd": ([("pi", 1.0, "best", view)], {"ce": ce, "kd": kd}, f"KD from the PI teacher (view {view})", True),
        "tpkd": ([("pi", a, "best", view), ("signal", 1.0 - a, "best")], {"ce": ce, "kd": kd},
                 f"multi-teacher KD, PI {a:g} (view {view}) + signal {1 - a:g} (TPKD-style)", True),
        "fused-sp": ([("pi", a, "best", view), ("signal", 1.0 - a, "best")],
                     {"ce": ce, "kd": kd, "fused_sp": {"weight": chosen.get("fused_sp_weight", 100.0),
                                                       "stages": "all"}},
                     f"TGD: multi-teacher KD (PI view {view}) + fused SP over all stages", True),
        "mix-kd": ([("signal", 1.0, "best")],
                   {"ce": ce, "kd": {**kd, "standardize": True},
                    "partial_mixup": {"alpha": 0.4, "fraction": 0.5}},
                   "MIX-KD: standardised-logit KD on partially mixed batches (signal teacher)", False),
    }


SECOND = {
    # name: losses added to CE 1.0 (weights set from loss magnitudes at the first epoch, not tuned on accuracy)
    "at": {"at": {"weight": 250.0}}, "sp": {"sp": {"weight": 100.0}}, "ft": {"ft": {"weight": 200.0}},
    "ddgsd": {"ddgsd": {"weight": 1.0}}, "fitnet": {"fitnet": {"weight": 100.0}}, "rkd": {"rkd": {"weight": 1.0}},
    "pkt": {"pkt": {"weight": 30000.0}}, "dkd": {"dkd": {"weight": 1.0}}, "dist": {"dist": {"weight": 1.0}},
}


def student_raw(args, base: dict, teachers, losses, augment: str | None, tag: str) -> dict:
    raw = copy.deepcopy(base)
    train = {"epochs": args.student_epochs, "batch_size": args.batch_size, "lr": args.lr, "progress": False,
             "device": "cpu"}
    if augment:
        train["augment"] = augment
    raw["student"] = {"model": args.student, "losses": copy.deepcopy(losses), "train": train,
                      "teachers": [{"name": n, "weight": w, "checkpoint": c, "view": v[0] if v else "student"}
                                   for n, w, c, *v in teachers]}
    raw["output"] = str(Path(base["output"]))
    raw["_tag"] = tag
    return raw


# ---------------------------------------------------------------------------
# jobs (each in a worker process, one torch and numba thread)
# ---------------------------------------------------------------------------
def _init_worker(threads: int) -> None:
    import torch

    limit_threads(threads)  # torch and numba: jobs side by side must not oversubscribe the cores
    torch.set_num_interop_threads(1)


def add_noise(X: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """``X`` (N, T, C) plus Gaussian noise at ``snr_db`` per window channel."""
    rng = np.random.default_rng(seed)
    power = np.mean(np.square(X, dtype=np.float64), axis=1, keepdims=True)
    sigma = np.sqrt(power / 10 ** (snr_db / 10))
    return (X + sigma * rng.standard_normal(X.shape)).astype(np.float32)


def _evaluate_signal_model(model, split, seed: int) -> dict:
    from topokd.distill.data import Split
    from topokd.distill.trainer import evaluate

    out = {"clean": evaluate(model, "signal", split, "cpu")["acc"]}
    for snr in SNRS:
        noisy = Split(add_noise(split.signals, snr, 1000 + seed), None, split.labels)
        out[f"{snr}dB"] = evaluate(model, "signal", noisy, "cpu")["acc"]
    return out


def teacher_job(raw: dict, name: str) -> dict:
    from topokd.distill.config import parse_config
    from topokd.distill.experiment import load_teacher, prepare_data, train_teacher
    from topokd.distill.trainer import evaluate

    cfg = parse_config({k: v for k, v in raw.items() if not k.startswith("_")})
    t = time.perf_counter()
    splits = prepare_data(cfg)
    data_s = time.perf_counter() - t
    t = time.perf_counter()
    summary = train_teacher(cfg, name, splits, force=True)
    secs = time.perf_counter() - t
    spec = cfg.teachers[name]
    last = evaluate(load_teacher(cfg, name, "last", splits), spec.inputs, splits.test, "cpu")["acc"]
    return {"name": name, "test_acc": summary["test_acc"], "test_acc_last": last,
            "best_epoch": summary["best_epoch"], "best_val_acc": summary["best_val_acc"], "seconds": secs,
            "data_s": data_s, "sizes": {k: len(getattr(splits, k)) for k in ("train", "val", "test")},
            "subjects": {k: sorted({int(g) for g in getattr(splits, k).groups})
                         for k in ("train", "val", "test") if getattr(splits, k).groups is not None},
            "pi_shape": list(splits.train.pis.shape[1:]), "description": splits.description}


def student_job(raw: dict) -> dict:
    from topokd.checkpoint import load_checkpoint
    from topokd.distill.config import parse_config
    from topokd.distill.experiment import distill, prepare_data
    from topokd.models import build_model

    tag = raw["_tag"]
    run_dir = Path(raw["output"]) / "students" / tag
    cfg = parse_config({k: v for k, v in raw.items() if not k.startswith("_")})
    splits = prepare_data(cfg)
    t = time.perf_counter()
    summary = distill(cfg, splits, force=True, run_dir=run_dir, role=tag)
    secs = time.perf_counter() - t
    res = {"tag": tag, "seed": cfg.seed, "test_acc": summary["test_acc"], "best_epoch": summary["best_epoch"],
           "best_val_acc": summary["best_val_acc"], "seconds": secs,
           "online_pi_seconds": summary.get("online_pi_seconds")}
    for which in ("best", "last"):
        tensors, meta = load_checkpoint(run_dir / f"{which}.safetensors")
        model = build_model(meta["model"])
        model.load_state_dict(tensors)
        res[which] = _evaluate_signal_model(model.eval(), splits.test, cfg.seed)
    history = json.loads((run_dir / "metrics.json").read_text())
    res["epoch_seconds"] = float(np.mean([h["seconds"] for h in history]))
    res["first_epoch_losses"] = {k[6:]: round(v, 5) for k, v in history[0].items() if k.startswith("train_")}
    shutil.rmtree(run_dir, ignore_errors=True)
    return res


def run_jobs(pool, jobs: list, what: str) -> list:
    log(f"{what}: {len(jobs)} job(s)")
    results = []
    for res in pool.imap_unordered(_dispatch, jobs):
        results.append(res)
        label = res.get("tag", res.get("name"))
        extra = f", clean {res['best']['clean']:.3f} / 5 dB {res['best']['5dB']:.3f}" if "best" in res else ""
        log(f"  {label}: test {res['test_acc']:.4f} (val {res['best_val_acc']:.4f}, epoch {res['best_epoch']}) "
            f"{res['seconds']:.0f} s{extra}")
    return results


def _dispatch(job):
    kind, args = job
    return teacher_job(*args) if kind == "teacher" else student_job(*args)


# ---------------------------------------------------------------------------
# statistics and report
# ---------------------------------------------------------------------------
def stats(values) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else float("nan"),
            "n": int(len(arr)), "values": [float(v) for v in arr]}


def noise_drop(res: dict, which: str = "best") -> float:
    """Mean accuracy lost under noise (clean - noisy, over the SNRs)."""
    r = res[which]
    return float(np.mean([r["clean"] - r[f"{s}dB"] for s in SNRS]))


def summarize(students: list, seeds: list) -> dict:
    by = {}
    for r in students:
        by.setdefault(r["tag"].rsplit("|seed", 1)[0], {})[r["seed"]] = r
    out = {}
    for key, runs in by.items():
        seeds_here = sorted(runs)
        row = {"seeds": seeds_here, "test": stats([runs[s]["test_acc"] for s in seeds_here]),
               "last": stats([runs[s]["last"]["clean"] for s in seeds_here]),
               "val": stats([runs[s]["best_val_acc"] for s in seeds_here]),
               "noise_drop": stats([noise_drop(runs[s]) for s in seeds_here]),
               "snr": {f"{s}dB": stats([runs[k]["best"][f"{s}dB"] for k in seeds_here]) for s in SNRS},
               "epoch_seconds": float(np.mean([runs[s]["epoch_seconds"] for s in seeds_here])),
               "online_pi_seconds": [runs[s].get("online_pi_seconds") for s in seeds_here],
               "seconds": float(np.mean([runs[s]["seconds"] for s in seeds_here]))}
        aug = key.split("|")[1]
        base = by.get(f"scratch|{aug}")
        if base is not None and key.split("|")[0] != "scratch":
            common = [s for s in seeds_here if s in base]
            diffs = [runs[s]["test_acc"] - base[s]["test_acc"] for s in common]
            row["gain"] = stats(diffs)
            row["wins"] = int(sum(d > 0 for d in diffs))
            row["losses"] = int(sum(d < 0 for d in diffs))
            row["noise_drop_vs_scratch"] = float(np.mean([noise_drop(runs[s]) - noise_drop(base[s]) for s in common]))
        out[key] = row
    return out


def pct(v: float) -> str:
    return f"{100 * v:.1f}"


def render(res: dict) -> str:
    L = ["# topokd: topological knowledge distillation on UCI HAPT", ""]
    L += [f"- command: `{res['command']}`", f"- date: {res['date']}  (script wall time {res['wall_s']:.0f} s = "
          f"{res['wall_s'] / 60:.1f} min)", f"- machine: {res['machine']['cpu_model']}, {res['machine']['nproc']} CPUs; "
          f"{res['settings']['jobs']} job(s) side by side, torch and numba threads {res['settings']['threads']} each; load "
          f"average at start {res['load_start']}", res["versions"]]
    t = res["teachers"]["signal"]
    L += [f"- data: {t['description']}; train / val / test = {t['sizes']['train']} / {t['sizes']['val']} / "
          f"{t['sizes']['test']} windows; subjects val {t['subjects'].get('val')}, test {t['subjects'].get('test')}",
          f"- PIs: `standard-signal` at {t['pi_shape'][1]}x{t['pi_shape'][2]} (the preset's is 50x50; smaller so "
          "that the 2-D PI teacher fits the CPU budget), 6 channels", "- settings: " + ", ".join(
              f"{k} {v}" for k, v in res["settings"].items()), ""]
    L += ["## Headline", "", res["headline"], "", *[f"- {f}" for f in res["findings"]], ""]
    L += ["## Hyper-parameters chosen on validation users (seed 0)", "",
          "`pi_view`: what the PI teacher sees while the student trains on Mix1-augmented windows: `student` (the "
          "augmented window, its PIs computed on the fly) or `clean` (the original window's precomputed PIs, as in "
          "Jeon et al.'s code); the PI teacher is trained on clean PIs. Chosen first; the PI-teacher weights are "
          "then chosen with it.", ""]
    L += md_table(["parameter", "chosen with", "grid", "validation accuracy per value", "chosen"],
                  [[k, v["variant"], ", ".join(f"{g:g}" if isinstance(g, float) else str(g) for g in v["grid"]),
                    ", ".join(pct(a) for a in v["val"]),
                    f"{v['chosen']:g}" if isinstance(v["chosen"], float) else str(v["chosen"])]
                   for k, v in res["selection"].items()])
    L += ["", "## Teachers (seed 0)", ""]
    L += md_table(["teacher", "model", "test acc (best-val epoch)", "test acc (last epoch)", "best-val epoch", "s"],
                  [[n, r["model"], pct(r["test_acc"]), pct(r["test_acc_last"]), r["best_epoch"], f"{r['seconds']:.0f}"]
                   for n, r in res["teachers"].items()])
    L += ["", "## Students (WRN-16-1 on raw windows)", "",
          "Test accuracy %, mean ± std over seeds (best-validation epoch); Δ = paired gain over scratch with the "
          "same augmentation (mean and std of the per-seed differences); noise: accuracy lost on the test windows "
          "with Gaussian noise, mean over 30/20/10/5 dB (lower is more robust), and its difference to scratch.", ""]
    rows = []
    for key, r in res["summary"].items():
        name, aug = key.split("|")
        desc = res["descriptions"].get(name, "")
        g = r.get("gain")
        rows.append([f"{name}{' (topological)' if name in TOPOLOGICAL else ''}", aug, desc,
                     f"{pct(r['test']['mean'])} ± {pct(r['test']['std'])}",
                     "–" if g is None else f"{100 * g['mean']:+.1f}", "–" if g is None else f"{100 * g['std']:.1f}",
                     "–" if g is None else f"{r['wins']} / {r['losses']}", f"{pct(r['last']['mean'])}",
                     f"{pct(r['noise_drop']['mean'])}",
                     "–" if "noise_drop_vs_scratch" not in r else f"{100 * r['noise_drop_vs_scratch']:+.1f}",
                     f"{pct(r['val']['mean'])}"])
    L += md_table(["variant", "aug", "recipe", "test acc", "Δ vs scratch", "paired std", "wins / losses",
                   "last epoch", "noise drop", "vs scratch", "val acc"], rows)
    L += ["", "Accuracy under noise (best-validation epoch, mean over seeds, %):", ""]
    L += md_table(["variant", "clean", *[f"{s} dB" for s in SNRS]],
                  [[k, pct(r["test"]["mean"]), *[pct(r["snr"][f"{s}dB"]["mean"]) for s in SNRS]]
                   for k, r in res["summary"].items()])
    L += ["", "## Other losses (one seed, CE + the loss, signal teacher; DDGSD self-distilled; Mix1)", ""]
    L += md_table(["loss", "test acc", "Δ vs scratch (seed 0)", "last epoch", "noise drop", "s per epoch"],
                  [[k, pct(r["test_acc"]), f"{100 * (r['test_acc'] - res['scratch_seed0']):+.1f}",
                    pct(r["last"]["clean"]), pct(noise_drop(r)), f"{r['epoch_seconds']:.1f}"]
                   for k, r in sorted(res["second"].items())])
    L += ["", "## Cost of the PIs computed in the batch pipeline", "", res["pi_cost"], ""]
    return "\n".join(L) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: 1 seed, 2 epochs, a subset of variants")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--teacher-epochs", type=int, default=15)
    p.add_argument("--student-epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--kd-weight", type=float, default=0.9, help="KD weight; CE gets 1 - it (default 0.9)")
    p.add_argument("--pi-resolution", type=int, default=16)
    p.add_argument("--student", default="wrn16-1")
    p.add_argument("--signal-teacher", default="wrn16-3")
    p.add_argument("--pi-teacher", default="wrn16-1")
    p.add_argument("--fusion-signal", default="wrn16-1")
    p.add_argument("--fusion-pi", default="wrn16-1")
    p.add_argument("--jobs", type=int, default=2, help="training jobs side by side (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch and numba threads per job (default 1)")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--name", help="results file name (default distill-hapt, or distill-hapt-quick)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds, args.teacher_epochs, args.student_epochs = seeds[:1], 2, 2
    name = args.name or ("distill-hapt-quick" if args.quick else "distill-hapt")
    load_start = loadavg()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="topokd-bench-hapt-"))
    base = base_config(args, workdir, 0)
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs, initializer=_init_worker, initargs=(args.threads,)) as pool:
        log(f"{command_line(argv)}; work in {workdir}")
        teachers = run_jobs(pool, [("teacher", (base, n)) for n in ("signal", "pi", "fusion")], "teachers")
        teachers = {t["name"]: {**t, "model": {"signal": args.signal_teacher, "pi": args.pi_teacher,
                                               "fusion": f"{args.fusion_signal} + {args.fusion_pi}"}[t["name"]]}
                    for t in teachers}
        # selection on validation users (seed 0), in two rounds: first the PI teacher's view (and the
        # AMD weight, which does not depend on it), then the PI-teacher weights with the chosen view
        rounds = [{"pi_view": ["student", "clean"], "amd_weight": [300.0, 3000.0]},
                  {"tpkd_pi_weight": [0.3, 0.5, 0.7], "fused_sp_weight": [30.0, 300.0]}]
        if args.quick:
            rounds = [{k: v if k == "pi_view" else v[:1] for k, v in r.items()} for r in rounds]
        selection, chosen, selected_runs = {}, {}, []
        for number, grids in enumerate(rounds, 1):
            sel_jobs = []
            for key, grid in grids.items():
                for g in grid:
                    trial = {**chosen, key: g}
                    if key == "fused_sp_weight":
                        trial["tpkd_pi_weight"] = 0.5
                    vname = SELECTED_ON[key]
                    teach, losses, _, _ = variants(args, trial)[vname]
                    sel_jobs.append(("student", (student_raw(args, base, teach, losses, "mix1",
                                                             f"select-{key}={g}|seed0"),)))
            selected = run_jobs(pool, sel_jobs, f"selection round {number} (validation users, seed 0)")
            selected_runs += selected
            for key, grid in grids.items():
                vals = [next(r["best_val_acc"] for r in selected if r["tag"] == f"select-{key}={g}|seed0")
                        for g in grid]
                chosen[key] = grid[int(np.argmax(vals))]
                selection[key] = {"grid": grid, "val": vals, "chosen": chosen[key], "variant": SELECTED_ON[key]}
        table = variants(args, chosen)
        if args.quick:
            table = {k: table[k] for k in ("scratch", "kd", "tpkd")}
        jobs = []
        for seed in seeds:
            seed_base = {**base, "seed": seed}
            for vname, (teach, losses, _, _) in table.items():
                jobs.append(("student", (student_raw(args, seed_base, teach, losses, "mix1", f"{vname}|mix1|seed{seed}"),)))
        main_runs = run_jobs(pool, jobs, "students with Mix1")
        summary = summarize(main_runs, seeds)
        topo = {k: v for k, v in summary.items() if k.split("|")[0] in TOPOLOGICAL and k.endswith("|mix1")}
        best_topo = max(topo, key=lambda k: topo[k]["val"]["mean"]).split("|")[0]  # chosen on validation
        jobs = []
        for seed in seeds:
            seed_base = {**base, "seed": seed}
            for vname in ("scratch", best_topo):
                teach, losses, _, _ = table[vname]
                jobs.append(("student", (student_raw(args, seed_base, teach, losses, None, f"{vname}|none|seed{seed}"),)))
        main_runs += run_jobs(pool, jobs, "scratch and the best topological variant without augmentation")
        second_jobs = []
        for lname, extra in (SECOND.items() if not args.quick else list(SECOND.items())[:2]):
            teach = [] if lname == "ddgsd" else [("signal", 1.0, "best")]
            second_jobs.append(("student", (student_raw(args, base, teach, {"ce": 1.0, **extra}, "mix1",
                                                        f"{lname}|mix1|seed0"),)))
        second = {r["tag"].split("|")[0]: r for r in run_jobs(pool, second_jobs, "other losses (seed 0)")}
    summary = summarize(main_runs, seeds)
    descriptions = {k: v[2] for k, v in table.items()}
    scratch, kd = summary["scratch|mix1"], summary.get("kd|mix1")
    best = summary[f"{best_topo}|mix1"]
    over_kd = 100 * (best["test"]["mean"] - kd["test"]["mean"]) if kd else float("nan")
    g = best["gain"]
    headline = (f"best topological: {best_topo} {100 * g['mean']:+.1f} pts over scratch (paired std "
                f"{100 * g['std']:.1f}), {over_kd:+.1f} pts over vanilla KD; noise drop {pct(best['noise_drop']['mean'])} "
                f"vs scratch {pct(scratch['noise_drop']['mean'])} pts (chosen among {', '.join(TOPOLOGICAL)} by "
                "validation accuracy)")
    findings = [
        f"target: >= +2.0 pts over scratch: {'met' if 100 * g['mean'] >= 2.0 else 'NOT met'} ({100 * g['mean']:+.1f})",
        f"target: >= +0.5 pt over vanilla KD: {'met' if over_kd >= 0.5 else 'NOT met'} ({over_kd:+.1f})",
        f"target: mean gain larger than its paired seed std: {'met' if g['mean'] > g['std'] else 'NOT met'} "
        f"({100 * g['mean']:+.1f} vs {100 * g['std']:.1f})",
        f"target: loses less accuracy under noise than scratch: "
        f"{'met' if best['noise_drop']['mean'] < scratch['noise_drop']['mean'] else 'NOT met'} "
        f"({pct(best['noise_drop']['mean'])} vs {pct(scratch['noise_drop']['mean'])} pts)",
        f"ESKD: KD from the best-validation teacher {pct(summary['kd|mix1']['test']['mean'])} vs from its last epoch "
        f"{pct(summary['kd-last|mix1']['test']['mean'])}" if "kd-last|mix1" in summary else "ESKD: not run (quick)",
    ]
    online = [r for r in main_runs + selected_runs if r.get("online_pi_seconds")]
    pis = [(r["online_pi_seconds"], r["seconds"]) for r in online]
    pi_cost = ("no run computed PIs on the fly" if not pis else
               f"PI-teacher students with view `student` ({', '.join(sorted({r['tag'] for r in online}))}) "
               f"computed the PIs of every augmented batch with the exact engine: "
               f"{100 * np.mean([a / b for a, b in pis]):.1f} % of their run time on average (the whole distill "
               f"call: training epochs with their validation and checkpoints; of the training steps alone a "
               f"little more) "
               f"(max {100 * max(a / b for a, b in pis):.1f} %; target < 10 %), over {len(pis)} runs.")
    res = {"command": command_line(argv), "date": now_iso(), "wall_s": time.perf_counter() - T0,
           "machine": _base_machine_info(["torch", "numba", "aeon"]), "load_start": load_start,
           "settings": {"seeds": seeds, "teacher_epochs": args.teacher_epochs, "student_epochs": args.student_epochs,
                        "batch_size": args.batch_size, "lr": args.lr, "kd_weight": args.kd_weight,
                        "pi_resolution": args.pi_resolution, "student": args.student, "jobs": args.jobs,
                        "threads": args.threads},
           "teachers": teachers, "selection": selection, "summary": summary, "descriptions": descriptions,
           "second": second, "scratch_seed0": next(r["test_acc"] for r in main_runs if r["tag"] == "scratch|mix1|seed0"),
           "headline": headline, "findings": findings, "pi_cost": pi_cost, "best_topological": best_topo,
           "runs": main_runs}
    res["versions"] = versions_line(res["machine"])
    write_results(args.out, name, res, render(res))
    log(headline)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
