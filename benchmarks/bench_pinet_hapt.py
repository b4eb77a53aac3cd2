#!/usr/bin/env python
"""Benchmark the Signal PI-Net as a surrogate on UCI HAPT (issue: PI-Nets that reproduce PIs).

One run reports, on real smartphone IMU windows (UCI HAPT, 6 channels x 128
samples, the 6 basic activities; :func:`topokd.data.load_hapt`):

1. Surrogate quality.  PI-Nets are trained on the training users (1-21) and
   tested on the test users (22-30) against the exact PIs of the default
   ``standard-signal`` preset: held-out mean Pearson correlation, MSE next to
   the predict-the-mean-training-PI baseline, max abs error.  Validation (best
   epoch, for the recommended mode) is on whole held-out *training* users
   (``topokd.data.group_split``), never on test users.  Configurations, all
   with the same number of training windows seen:

   * ``adamw``: the recommended mode on the precomputed PIs of the training
     windows;
   * ``adamw + on-the-fly``: the same, each batch augmented
     (``SurrogateMix`` + axis permutations within the accelerometer and the
     gyroscope) and labelled with the exact PIs of the augmented windows;
   * ``reference``: the authors' training script (Keras Adam, 30/30/40 %
     stages with a fresh optimizer, raw targets, last epoch, Keras pooling,
     Glorot init) on the same epoch budget;
   * ``conv head``: the recommended on-the-fly run with the slim
     convolutional decoder instead of the dense layer.

2. Downstream.  Logistic regression on the PIs average-pooled to 10 x 10
   per channel (600 features; 15,000 raw pixels x 6,000 windows make lbfgs
   slow and add nothing for a linear model): trained and tested on exact
   PIs; trained on exact, tested on PI-Net PIs ("drop-in"); trained and
   tested on PI-Net PIs; the same for an untrained network of the same
   architecture (the control: what random convolutional features give).

3. Transfer HAPT -> BasicMotions (the paper's section 4): the best HAPT
   PI-Net evaluated on BasicMotions' test split as it is, after FA (all 40
   training recordings) and FS (a seeded half) fine-tuning, and a network
   trained on BasicMotions alone with the same budget.

4. Speed on CPU: PI-Net training and inference windows/s against the exact
   engine (``signal_pis``) on the same windows, measured in this run.

Writes ``results/pinet-hapt.md`` and ``.json`` (``--quick``: ``pinet-hapt-quick.*``,
widths 32..256, 2,000 / 600 windows, 3 epochs: a smoke test within 5 minutes).

Usage::

    .venv/bin/python benchmarks/bench_pinet_hapt.py --threads 1          # full run
    .venv/bin/python benchmarks/bench_pinet_hapt.py --quick --threads 1  # smoke test
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import training_device, command_line, finish_run, fmt_rate, limit_threads, log, md_table, now_iso, publish  # noqa: E402
from _harness import timed, torch_machine_info, versions_line  # noqa: E402
from bench_pinet import baseline, history_summary  # noqa: E402

#: Axes of one tri-axial sensor (HAPT and BasicMotions: accelerometer x, y, z, gyroscope x, y, z).
CHANNEL_GROUPS = [(0, 1, 2), (3, 4, 5)]
TARGET_PEARSON = 0.90
TARGET_DROPIN_POINTS = 3.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke test: widths 32..256, subsets, 3 epochs (< 5 min)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="directory for the results files")
    p.add_argument("--name", help="results file stem (default pinet-hapt, or pinet-hapt-quick)")
    p.add_argument("--epochs", type=int, help="epochs (passes of training-window count) per config (default 12; quick 3)")
    p.add_argument("--widths", help="PI-Net widths (default the reference 128,256,512,1024; quick 32,64,128,256)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch (default 128, the authors')")
    p.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (default 1e-3)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="share of training users held out for validation")
    p.add_argument("--configs", default="adamw,adamw-onthefly,reference,conv-onthefly",
                   help=f"configurations to run, of {', '.join(CONFIGS)} (default the first four)")
    p.add_argument("--train-windows", type=int, help="subsample the training users' windows (default all; quick 2000)")
    p.add_argument("--test-windows", type=int, help="subsample the test users' windows (default all; quick 600)")
    p.add_argument("--transfer-epochs", type=int, help="epochs of FA / FS fine-tuning and of the BasicMotions-only "
                                                       "network (default 60; quick 10)")
    p.add_argument("--device", help="training device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, help="torch and numba threads (default: theirs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the networks, splits and classifier")
    p.add_argument("--pearson-weight", type=float, default=1.0,
                   help="pearson_weight of the pearson-onthefly config (default 1.0)")
    args = p.parse_args(argv)
    q = args.quick
    args.name = args.name or ("pinet-hapt-quick" if q else "pinet-hapt")
    args.epochs = args.epochs or (3 if q else 12)
    args.widths = tuple(int(w) for w in (args.widths or ("32,64,128,256" if q else "128,256,512,1024")).split(","))
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(args.configs) - set(CONFIGS)
    if unknown:
        p.error(f"unknown configs {sorted(unknown)}; choose from {list(CONFIGS)}")
    args.train_windows = args.train_windows or (2000 if q else None)
    args.test_windows = args.test_windows or (600 if q else None)
    args.transfer_epochs = args.transfer_epochs or (10 if q else 60)
    return args


#: name -> (label, PINet keyword arguments beyond the shared ones, on-the-fly?)
CONFIGS = {
    "adamw": ("adamw (recommended), precomputed PIs", dict(optimizer="adamw"), False),
    "adamw-onthefly": ("adamw, on-the-fly augmented targets", dict(optimizer="adamw"), True),
    "reference": ("reference (authors' script), precomputed PIs", dict(optimizer="reference"), False),
    "conv-onthefly": ("adamw, on-the-fly, conv head", dict(optimizer="adamw", head_type="conv"), True),
    "pearson-onthefly": ("adamw, on-the-fly, MSE + w (1 - Pearson) (w: --pearson-weight)",
                         dict(optimizer="adamw", pearson_weight=1.0), True),
}


def subsample(data, n, seed):
    if n is None or n >= len(data.X):
        return data.X, data.y, data.groups
    keep = np.sort(np.random.default_rng(seed).permutation(len(data.X))[:n])
    return data.X[keep], data.y[keep], data.groups[keep]


def pooled(pis: np.ndarray, block: int = 5) -> np.ndarray:
    """(N, C, R, R) -> (N, C * (R/block)^2): block means (the classifier's features)."""
    n, c, r, _ = pis.shape
    k = r // block
    return pis[:, :, :k * block, :k * block].reshape(n, c, k, block, k, block).mean(axis=(3, 5)).reshape(n, -1)


def classify(F_tr, y_tr, F_te, y_te, seed: int, scale_from=None) -> float:
    """Logistic regression, all features divided by one number: the RMS of ``scale_from`` (default F_tr)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    ref = F_tr if scale_from is None else scale_from
    rms = float(np.sqrt(np.mean(np.square(ref, dtype=np.float64)))) or 1.0
    with threadpool_limits(1):
        clf = LogisticRegression(max_iter=3000, random_state=seed).fit(F_tr / rms, y_tr)
        return float((clf.predict(F_te / rms) == y_te).mean())


def make_pinet(args, extra: dict, onthefly: bool, n_train: int, device, epochs=None):
    from topokd.distill.augment import ChannelPermutation, Compose, SurrogateMix
    from topokd.pinet import PINet

    if "pearson_weight" in extra:
        extra = {**extra, "pearson_weight": args.pearson_weight}

    augment = Compose([SurrogateMix(), ChannelPermutation(CHANNEL_GROUPS)]) if onthefly else None
    return PINet("signal", widths=args.widths, epochs=epochs or args.epochs, batch_size=args.batch_size, lr=args.lr,
                 augment=augment, samples_per_epoch=n_train if onthefly else None, device=device, seed=args.seed,
                 progress=False, **extra)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    import topokd
    from topokd.data import group_split, load_basic_motions, load_hapt
    from topokd.pinet import pi_agreement

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    limit_threads(args.threads)
    command = command_line(argv)
    device = training_device(args.device)
    log(f"{command}; device {device}")
    machine = torch_machine_info(device, ("gudhi", "persim", "ripser", "aeon", "scikit-learn"))
    notes = []

    # -- data: training users (minus validation users) / test users -------------------
    X_all, y_all, g_all = subsample(load_hapt("train"), args.train_windows, args.seed)
    X_te, y_te, g_te = subsample(load_hapt("test"), args.test_windows, args.seed)
    keep, held = group_split(g_all, args.val_fraction, args.seed)
    X_tr, y_tr, X_val = X_all[keep], y_all[keep], X_all[held]
    log(f"HAPT: train {X_tr.shape} ({len(np.unique(g_all[keep]))} users), val {X_val.shape} "
        f"({len(np.unique(g_all[held]))} users), test {X_te.shape} ({len(np.unique(g_te))} users)")
    topokd.signal_pis(X_tr[:2])  # numba warm-up
    E_tr, exact_train_s = timed(lambda: topokd.signal_pis(X_tr))
    E_val = topokd.signal_pis(X_val)
    E_te, exact_test_s = timed(lambda: topokd.signal_pis(X_te))
    base = baseline(E_tr, E_te)
    log(f"exact PIs: {len(X_tr) / exact_train_s:,.0f} windows/s; mean baseline Pearson {base['pearson']:.3f}")

    # -- 1. quality -------------------------------------------------------------------
    quality, models, preds = [], {}, {}
    for name in args.configs:
        label, extra, onthefly = CONFIGS[name]
        est = make_pinet(args, extra, onthefly, len(X_tr), device)
        log(f"training {name}: {label}, {args.epochs} epochs of {len(X_tr)} windows")
        _, fit_s = timed(lambda: est.fit(X_tr, None if onthefly else E_tr, X_val=X_val,
                                         Y_val=E_val))
        pred, predict_s = timed(lambda: est.predict(X_te))
        test = pi_agreement(pred, E_te)
        row = {"name": name, "label": label, "epochs": args.epochs, "fit_s": fit_s, "test": test,
               "mse_ratio_vs_baseline": test["mse"] / base["mse"], "history": history_summary(est),
               "parameters": int(sum(p.numel() for p in est.model_.parameters())),
               "train_windows_per_s": len(X_tr) * len(est.history_) / fit_s,
               "predict_windows_per_s": len(X_te) / predict_s, "val_pearson": pi_agreement(est.predict(X_val),
                                                                                             E_val)["pearson"]}
        quality.append(row)
        models[name], preds[name] = est, pred
        log(f"  {fit_s:.0f} s: test Pearson {test['pearson']:.3f} (baseline {base['pearson']:.3f}), MSE ratio "
            f"{row['mse_ratio_vs_baseline']:.3f}, val Pearson {row['val_pearson']:.3f}")

    # the configuration kept for downstream and transfer: best *validation* Pearson (never the test users)
    best = max(quality, key=lambda r: r["val_pearson"])["name"]
    log(f"best on validation users: {best}")

    # -- 2. downstream ----------------------------------------------------------------
    F_tr, F_te = pooled(E_tr), pooled(E_te)
    exact_acc = classify(F_tr, y_tr, F_te, y_te, args.seed)
    down = {"exact_to_exact": exact_acc, "configs": {}}
    for name, est in models.items():
        P_tr = pooled(est.predict(X_tr))
        P_te = pooled(preds[name])
        down["configs"][name] = {"exact_to_pinet": classify(F_tr, y_tr, P_te, y_te, args.seed),
                                 "pinet_to_pinet": classify(P_tr, y_tr, P_te, y_te, args.seed)}
    label, extra, _ = CONFIGS[best]
    control = make_pinet(args, extra, False, len(X_tr), device)
    control._check_params()
    torch.manual_seed(args.seed)
    control.model_ = control._build(X_tr.shape[2])
    control.target_scale_ = float(np.sqrt(np.mean(np.square(E_tr, dtype=np.float64))))
    C_tr, C_te = pooled(control.predict(X_tr)), pooled(control.predict(X_te))
    down["untrained_control"] = {"config": best, "pinet_to_pinet": classify(C_tr, y_tr, C_te, y_te, args.seed)}
    log(f"downstream: exact {exact_acc:.3f}; {down['configs']}; untrained {down['untrained_control']}")

    # -- 3. transfer HAPT -> BasicMotions ---------------------------------------------
    Xb_tr, _, _ = load_basic_motions("train")
    Xb_te, _, _ = load_basic_motions("test")
    Eb_tr, Eb_te = topokd.signal_pis(Xb_tr), topokd.signal_pis(Xb_te)
    transfer = {"source": best, "epochs": args.transfer_epochs,
                "baseline_mean": baseline(Eb_tr, Eb_te), "zero_shot": pi_agreement(models[best].predict(Xb_te), Eb_te)}
    import copy

    for strategy, fraction in (("FA", 1.0), ("FS", 0.5)):
        est = copy.deepcopy(models[best])
        est.set_params(augment=None, samples_per_epoch=None)  # BasicMotions: its own exact PIs
        _, fit_s = timed(lambda: est.fine_tune(Xb_tr, Eb_tr, strategy=strategy, fraction=fraction,
                                               epochs=args.transfer_epochs))
        transfer[strategy] = {**pi_agreement(est.predict(Xb_te), Eb_te), "fraction": fraction, "fit_s": fit_s}
    scratch = make_pinet(args, CONFIGS[best][1], False, len(Xb_tr), device, epochs=args.transfer_epochs)
    scratch.set_params(val_fraction=0.0)
    _, fit_s = timed(lambda: scratch.fit(Xb_tr, Eb_tr))
    transfer["scratch"] = {**pi_agreement(scratch.predict(Xb_te), Eb_te), "fit_s": fit_s}
    log(f"transfer: zero-shot {transfer['zero_shot']['pearson']:.3f}, FA {transfer['FA']['pearson']:.3f}, "
        f"FS {transfer['FS']['pearson']:.3f}, scratch {transfer['scratch']['pearson']:.3f}")

    # -- verdicts -----------------------------------------------------------------------
    top = next(r for r in quality if r["name"] == best)
    dropin = 100 * (down["configs"][best]["exact_to_pinet"] - exact_acc)
    verdicts = [
        f"held-out mean Pearson >= {TARGET_PEARSON}: {top['test']['pearson']:.3f} ({best}, the configuration "
        f"chosen on validation users): {'met' if top['test']['pearson'] >= TARGET_PEARSON else 'NOT met'}",
        f"drop-in within {TARGET_DROPIN_POINTS:g} points of exact -> exact: {dropin:+.1f} points: "
        f"{'met' if dropin >= -TARGET_DROPIN_POINTS else 'NOT met'}",
    ]
    if args.quick:
        notes.append("--quick: widths 32..256, subsets, 3 epochs; a smoke test, not a measurement.")
    notes.append(f"The exact engine computed the {len(X_tr)} training windows' PIs in {exact_train_s:.2f} s "
                 f"({len(X_tr) / exact_train_s:,.0f} windows/s) in this run: targets cost nothing next to training.")
    res = {"quick": args.quick, "command": command, "date": now_iso(), "machine": machine, "seed": args.seed,
           "data": {"train": list(X_tr.shape), "val": list(X_val.shape), "test": list(X_te.shape),
                    "train_users": sorted(int(u) for u in np.unique(g_all[keep])),
                    "val_users": sorted(int(u) for u in np.unique(g_all[held])),
                    "test_users": sorted(int(u) for u in np.unique(g_te))},
           "training": {"widths": list(args.widths), "epochs": args.epochs, "batch_size": args.batch_size,
                        "lr": args.lr, "channel_groups": CHANNEL_GROUPS, "pearson_weight": args.pearson_weight},
           "exact": {"train_windows_per_s": len(X_tr) / exact_train_s, "test_windows_per_s": len(X_te) / exact_test_s},
           "baseline_mean": base, "quality": quality, "best": best, "downstream": down, "transfer": transfer,
           "verdicts": verdicts, "notes": notes}
    finish_run(res)
    publish(args.out, args.name, res, render_markdown(res))
    return 0


def render_markdown(res: dict) -> str:
    m, d, t = res["machine"], res["data"], res["training"]
    L = [f"# topokd PI-Net on UCI HAPT{' (quick smoke test)' if res['quick'] else ''}\n",
         f"- command: `{res['command']}`",
         f"- date: {res['date']} (wall time {res['wall_s']:.0f} s; CPU time {res['process_cpu_s']:.0f} s)",
         f"- machine: {m['nproc']} CPUs, {m['cpu_model']}; torch threads {m['torch_threads']}; device "
         f"**{m['device']}**; load average at start {', '.join(f'{x:.2f}' for x in m.get('loadavg_start', []))}, "
         f"at end {', '.join(f'{x:.2f}' for x in res.get('loadavg_end', []))}",
         versions_line(m),
         f"- data: HAPT, 6 basic activities, windows of 128 x 6; train {d['train'][0]} windows of users "
         f"{d['train_users']}, validation {d['val'][0]} windows of users {d['val_users']} (held-out training "
         f"users), test {d['test'][0]} windows of users {d['test_users']}",
         f"- PI-Net: widths {tuple(t['widths'])}, batch {t['batch_size']}, lr {t['lr']:g}, {t['epochs']} epochs of "
         "the training-window count per configuration; targets: exact PIs of `standard-signal` (6 x 50 x 50)"
         + (f"; pearson-onthefly: pearson_weight {t['pearson_weight']:g}" if "pearson-onthefly" in
            [q["name"] for q in res["quality"]] else ""),
         "- on-the-fly: `Compose([SurrogateMix(), ChannelPermutation([(0, 1, 2), (3, 4, 5)])])` per batch, the "
         "targets computed by the exact engine on the augmented windows\n",
         "## Verdicts\n"]
    L += [f"- {v}" for v in res["verdicts"]]
    L.append("\n## 1. Surrogate quality on the test users (vs exact PIs)\n")
    base = res["baseline_mean"]
    L += md_table(["configuration", "parameters", "train s", "train windows/s", "val Pearson", "test Pearson",
                   "test MSE", "MSE / mean baseline", "max abs err", "best epoch"],
                  ([r["label"], f"{r['parameters']:,}", f"{r['fit_s']:.0f}", fmt_rate(r["train_windows_per_s"]),
                    f"{r['val_pearson']:.3f}", f"**{r['test']['pearson']:.3f}**", f"{r['test']['mse']:.3e}",
                    f"{r['mse_ratio_vs_baseline']:.3f}", f"{r['test']['max_abs']:.3f}",
                    f"{r['history']['best_epoch']} / {r['history']['epochs_run']}"] for r in res["quality"]),
                  "lrrrrrrrrr")
    L.append(f"\nMean-training-PI baseline: Pearson {base['pearson']:.3f}, MSE {base['mse']:.3e}. Pearson is the "
             "mean over (window, channel) 50 x 50 images (`topokd.pinet.pi_agreement`). The configuration used "
             f"below is the best on the validation users: **{res['best']}**.\n")
    L.append("## 2. Speed on this machine (same run)\n")
    ex = res["exact"]
    L += md_table(["what", "windows/s"],
                  [["exact engine `signal_pis` (training windows)", fmt_rate(ex["train_windows_per_s"])]]
                  + [[f"PI-Net training, {r['name']}", fmt_rate(r["train_windows_per_s"])] for r in res["quality"]]
                  + [[f"PI-Net inference, {r['name']}", fmt_rate(r["predict_windows_per_s"])] for r in res["quality"]],
                  "lr")
    L.append("\n## 3. Downstream: logistic regression on 10 x 10 block means of the PIs\n")
    dn = res["downstream"]
    L += md_table(["features", "train on", "test on", "accuracy"],
                  [["exact", "exact", "exact", f"{100 * dn['exact_to_exact']:.1f} %"]]
                  + [row for name, acc in dn["configs"].items() for row in (
                      [name, "exact", "PI-Net (drop-in)", f"{100 * acc['exact_to_pinet']:.1f} %"],
                      [name, "PI-Net", "PI-Net", f"{100 * acc['pinet_to_pinet']:.1f} %"])]
                  + [[f"untrained {dn['untrained_control']['config']} (control)", "its output", "its output",
                      f"{100 * dn['untrained_control']['pinet_to_pinet']:.1f} %"]], "lllr")
    tr = res["transfer"]
    L.append(f"\n## 4. Transfer HAPT -> BasicMotions ({tr['source']}, {tr['epochs']} fine-tuning epochs)\n")
    L += md_table(["network", "BasicMotions test Pearson", "MSE"],
                  [["mean BasicMotions training PI (baseline)", f"{tr['baseline_mean']['pearson']:.3f}",
                    f"{tr['baseline_mean']['mse']:.3e}"],
                   ["HAPT PI-Net as it is", f"{tr['zero_shot']['pearson']:.3f}", f"{tr['zero_shot']['mse']:.3e}"],
                   ["FA: fine-tuned on all 40 training recordings", f"{tr['FA']['pearson']:.3f}", f"{tr['FA']['mse']:.3e}"],
                   ["FS: fine-tuned on a seeded half (20)", f"{tr['FS']['pearson']:.3f}", f"{tr['FS']['mse']:.3e}"],
                   ["trained on BasicMotions only, same epochs", f"{tr['scratch']['pearson']:.3f}",
                    f"{tr['scratch']['mse']:.3e}"]], "lrr")
    L.append("\n## Notes\n")
    L += [f"- {n}" for n in res["notes"] + derived_notes(res)]
    return "\n".join(L) + "\n"


def derived_notes(res: dict) -> list[str]:
    """Readings of the numbers above that a reader would otherwise have to work out."""
    notes = []
    base = res["baseline_mean"]["mse"]
    for r in res["quality"]:
        if r["name"] == "reference":
            notes.append(f"reference mode: last-epoch train MSE {r['history']['final_train_mse_scaled']:.3e} (raw PI "
                         f"units) against a mean-baseline MSE of {base:.3e}: with Keras Adam's eps = 0.1 on the "
                         "uncorrected sqrt(v) and raw targets of ~1e-2, each step is about lr x gradient / 0.1, so "
                         f"{r['epochs']} epochs ({r['epochs'] * -(-res['data']['train'][0] // res['training']['batch_size'])} "
                         "steps) leave the network near its initial output; the authors' script runs 1000 epochs.")
    dn = res["downstream"]
    better = [n for n, acc in dn["configs"].items() if acc["pinet_to_pinet"] > dn["exact_to_exact"] + 0.01]
    if better:
        notes.append(f"PI-Net -> PI-Net beats exact -> exact for {', '.join(better)}: the network's outputs carry "
                     "information about the activity that the exact PIs do not (they are trained features, not "
                     "faithful PIs); the untrained-network control shows how much random features alone give.")
    return notes


if __name__ == "__main__":
    sys.exit(main())
