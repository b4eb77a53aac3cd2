#!/usr/bin/env python
"""Benchmark topokd.compress on a distilled BasicMotions student.

1. Data: aeon's BasicMotions (smartwatch accelerometer + gyroscope, 6
   channels, T = 100; official 40 train / 40 test, 8 of the train windows
   held out for validation; one test window = 2.5 accuracy points).
2. Models, trained with topokd.distill on CPU: a WRN-16-3 1-D teacher on the
   raw signals (CE, Mix1 augmentation), then the WRN-16-1 1-D student
   distilled from it (0.1 CE + 0.9 KD, T = 4).  Best-validation weights.
3. Variants of the student, each measured with
   :func:`topokd.compress.profile` (test accuracy, parameters, non-zeros,
   serialized size, MACs, CPU latency at batch 1 and 32, peak memory):

   * float32 (the distilled student);
   * structured pruning 50 % and 80 % of the channels (torch-pruning, L1
     filter norm), fine-tuned with KD from the teacher (80 %: three
     prune -> fine-tune rounds, then a final fine-tune);
   * int8 post-training quantisation, dynamic and static (torchao PT2E,
     X86 / oneDNN; static calibrated on the train windows);
   * int8 quantisation-aware training (PT2E QAT, KD fine-tuning);
   * structured 50 % / 80 % followed by static int8 (the combinations).

Everything runs on one thread (``torch.set_num_threads(1)``; this
machine's 2 cores are shared).  Latency: median and IQR of ``--repeats``
forwards after 10 warm-ups; every variant is timed in ``--rounds``
interleaved rounds and the round with the lowest median is kept (the
others are in the JSON), which removes most of the noise from other
processes.

Goal (issue): >= 3x smaller and >= 1.5x faster on CPU at <= 1 accuracy
point lost, relative to float32.  The report says which variants meet it.

Writes ``results/compress.md`` and ``results/compress.json``
(``--quick``: ``compress-quick.*``, a few epochs, a smoke test).

Usage::

    .venv/bin/python benchmarks/bench_compress.py           # full run (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/bench_compress.py --quick   # smoke test (< 2 minutes)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import RESULTS, T0, command_line, log, loadavg, md_table, now_iso  # noqa: E402
from _harness import machine_info as _base_machine_info  # noqa: E402
from _harness import versions_line, write_results  # noqa: E402


def machine_info() -> dict:
    info = _base_machine_info(("scipy", "gudhi", "persim", "ripser", "torchao", "torch-pruning", "aeon", "safetensors"))
    info["load_average"] = [round(v, 2) for v in loadavg() or []]
    return info


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------
def train_models(args, workdir: Path):
    from topokd.distill.config import parse_config
    from topokd.distill.data import load_splits
    from topokd.distill.experiment import distill, load_teacher, train_teacher
    from topokd.distill.models import create_model
    from topokd.checkpoint import load_checkpoint

    raw = {
        "output": str(workdir / "run"), "seed": args.seed,
        "data": {"name": "basic-motions", "val_fraction": 0.2},
        "teachers": {"signal": {"model": "wrn16-3", "inputs": "signal",
                                "train": {"epochs": args.teacher_epochs, "batch_size": 16, "lr": 0.05,
                                          "augment": "mix1", "progress": False, "device": "cpu"}}},
        "student": {"model": "wrn16-1", "teachers": [{"name": "signal", "weight": 1.0}],
                    "losses": {"ce": 0.1, "kd": {"weight": 0.9, "temperature": 4}},
                    "train": {"epochs": args.student_epochs, "batch_size": 16, "lr": 0.05, "progress": False,
                              "device": "cpu"}},
    }
    cfg = parse_config(raw)
    splits = load_splits("basic-motions", val_fraction=0.2, seed=args.seed, with_pis=False)
    t = time.perf_counter()
    teacher_summary = train_teacher(cfg, "signal", splits)
    log(f"teacher WRN-16-3: test acc {teacher_summary['test_acc']:.3f} ({time.perf_counter() - t:.0f} s)")
    t = time.perf_counter()
    student_summary = distill(cfg, splits)
    log(f"student WRN-16-1 (KD): test acc {student_summary['test_acc']:.3f} ({time.perf_counter() - t:.0f} s)")
    teacher = load_teacher(cfg, "signal", "best", splits)
    tensors, meta = load_checkpoint(cfg.output / "student" / "best.safetensors")
    student = create_model("wrn16-1_1d", num_classes=len(splits.classes), in_channels=splits.train.signals.shape[2])
    student.load_state_dict(tensors)
    return splits, teacher.eval(), student.eval(), {"teacher": teacher_summary, "student": student_summary,
                                                     "checkpoint": str(cfg.output / "student" / "best.safetensors")}


# ---------------------------------------------------------------------------
# variants
# ---------------------------------------------------------------------------
def build_variants(args, splits, teacher, student):
    import torch

    import topokd.compress as tc
    from topokd.distill.models import signals_to_tensor

    X = signals_to_tensor(splits.train.signals)
    y = torch.from_numpy(splits.train.labels)
    Xtest = signals_to_tensor(splits.test.signals)
    ytest = torch.from_numpy(splits.test.labels)
    ft = dict(teacher=teacher, batch_size=16, lr=args.ft_lr, kd_weight=0.9, temperature=4.0, seed=args.seed)
    variants = {}

    def add(name, desc, fn):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = fn()
        secs = time.perf_counter() - t
        acc = tc.accuracy(model, Xtest, ytest)
        variants[name] = {"model": model, "desc": desc, "seconds_to_build": secs, "test_acc": acc}
        log(f"{name}: test acc {acc:.3f} (built in {secs:.1f} s)")

    add("float32", "distilled WRN-16-1 student (float32)", lambda: student)

    def structured(amount, rounds):
        def run():
            between = tc.make_fine_tune(X, y, epochs=args.ft_round_epochs, **ft) if rounds > 1 else None
            m = tc.iterative_prune(student, amount, method="structured", steps=rounds, fine_tune=between,
                                   example_input=X[:2])
            tc.kd_finetune(m, X, y, epochs=args.ft_epochs, **ft)
            return m.eval()
        return run

    add("pruned-50", "structured 50 % of channels (L1), KD fine-tune", structured(0.5, 1))
    add("pruned-80", "structured 80 % of channels (L1), 3 rounds, KD fine-tune", structured(0.8, 3))
    add("int8-dynamic", "int8 PTQ, dynamic activation scales", lambda: tc.quantize_dynamic(student, X[:1]))
    add("int8-static", "int8 PTQ, static (calibrated on the train windows)",
        lambda: tc.quantize_static(student, X, X[:1], batch_size=16))
    add("int8-qat", "int8 QAT (PT2E fake-quant), KD fine-tune",
        lambda: tc.quantize_qat(student, X[:2], tc.make_fine_tune(X, y, epochs=args.qat_epochs,
                                                                  **{**ft, "lr": args.qat_lr})))
    add("pruned-50+int8", "structured 50 % + KD fine-tune, then static int8",
        lambda: tc.quantize_static(variants["pruned-50"]["model"], X, X[:1], batch_size=16))
    add("pruned-80+int8", "structured 80 % + KD fine-tune, then static int8",
        lambda: tc.quantize_static(variants["pruned-80"]["model"], X, X[:1], batch_size=16))
    return variants, X


def measure(args, variants, X) -> None:
    import torch

    import topokd.compress as tc

    torch.set_num_threads(1)
    example = X[:1]
    for v in variants.values():
        p = tc.profile(v["model"], example, batch_sizes=(1, 32), repeats=args.repeats, warmup=10, threads=1)
        v["profile"] = p
        v["latency_rounds"] = {bs: [p["latency"][bs]] for bs in p["latency"]}
    for _ in range(1, args.rounds):
        for v in variants.values():
            for bs in ("1", "32"):
                v["latency_rounds"][bs].append(tc.measure_latency(v["model"], example, int(bs),
                                                                  repeats=args.repeats, warmup=10, threads=1))
    for v in variants.values():
        v["latency"] = {bs: min(rounds, key=lambda m: m["median_ms"]) for bs, rounds in v["latency_rounds"].items()}
    log("measured")


COMPILED = ("float32", "pruned-50", "pruned-80", "pruned-50+int8")


def measure_compiled(args, variants, X) -> dict:
    """torch.compile (Inductor, static shapes) of some variants: latency at
    batch 1 and 32, compile time, or the error."""
    import torch

    import topokd.compress as tc
    from topokd.compress._common import batch_of

    torch.set_num_threads(1)
    out = {}
    for name in COMPILED:
        model = variants[name]["model"]
        t = time.perf_counter()
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                compiled = torch.compile(model, dynamic=False)
                compiled(X[:1])
                compiled(batch_of(X[:1], 32))
        except Exception as err:  # noqa: BLE001 - recorded in the report
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            cause = [ln for ln in lines if "Error" in ln or "Attempting" in ln]
            out[name] = {"error": f"{type(err).__name__}: " + " / ".join(dict.fromkeys(cause[:3] or lines[:1]))[:400],
                         "error_text": str(err)[:3000], "seconds": time.perf_counter() - t}
            log(f"torch.compile {name}: failed ({out[name]['error'][:120]})")
            torch._dynamo.reset()
            continue
        secs = time.perf_counter() - t
        lat = {}
        for bs in ("1", "32"):
            rounds = [tc.measure_latency(compiled, X[:1], int(bs), repeats=args.repeats, warmup=10, threads=1)
                      for _ in range(args.rounds)]
            lat[bs] = min(rounds, key=lambda m: m["median_ms"])
        out[name] = {"seconds": secs, "latency": lat}
        log(f"torch.compile {name}: {secs:.0f} s, batch 1 {lat['1']['median_ms']:.3f} ms")
        torch._dynamo.reset()
    return out


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def summarize(variants) -> list[dict]:
    base = variants["float32"]
    bp, bl = base["profile"], base["latency"]
    rows = []
    for name, v in variants.items():
        p, lat = v["profile"], v["latency"]
        row = {
            "variant": name, "description": v["desc"], "test_acc": v["test_acc"],
            "acc_delta_points": (v["test_acc"] - base["test_acc"]) * 100,
            "params": p["params"]["total"], "nonzero": p["params"]["nonzero"], "size_bytes": p["size_bytes"],
            "tensor_bytes": p["tensor_bytes"], "size_zlib_bytes": p["size_zlib_bytes"], "format": p["format"],
            "macs": p["macs"], "latency_b1_ms": lat["1"]["median_ms"], "latency_b1_iqr_ms": lat["1"]["iqr_ms"],
            "latency_b32_ms": lat["32"]["median_ms"], "latency_b32_iqr_ms": lat["32"]["iqr_ms"],
            "peak_memory_bytes": p.get("memory", {}).get("peak_bytes"), "seconds_to_build": v["seconds_to_build"],
        }
        row["smaller_x"] = bp["size_bytes"] / p["size_bytes"]
        row["smaller_tensors_x"] = bp["tensor_bytes"] / p["tensor_bytes"]
        row["faster_b1_x"] = bl["1"]["median_ms"] / lat["1"]["median_ms"]
        row["faster_b32_x"] = bl["32"]["median_ms"] / lat["32"]["median_ms"]
        row["goal_b1"] = bool(row["smaller_x"] >= 3 and row["faster_b1_x"] >= 1.5 and row["acc_delta_points"] >= -1)
        row["goal_b32"] = bool(row["smaller_x"] >= 3 and row["faster_b32_x"] >= 1.5 and row["acc_delta_points"] >= -1)
        rows.append(row)
    return rows


def render(res: dict) -> str:
    rows = res["rows"]
    L = [f"# topokd compression benchmark{' (quick smoke test)' if res['quick'] else ''}", ""]
    m = res["machine"]
    L += [f"- command: `{res['command']}`",
          f"- date: {res['date']}  (script wall time {res['wall_s']:.0f} s = {res['wall_s'] / 60:.1f} min)",
          f"- machine: {m.get('nproc')} CPUs (nproc), {m.get('cpu_model')}; load average at start "
          f"{', '.join(str(v) for v in res['load_average_start'])} (shared machine); {m.get('platform')}",
          versions_line(m),
          f"- data: {res['data']}; test accuracy on {res['n_test']} windows (one window = "
          f"{100 / res['n_test']:.1f} points)",
          "- threads: 1 (training, fine-tuning and timing)",
          f"- training: teacher WRN-16-3 1-D {res['args']['teacher_epochs']} epochs (CE, Mix1), student WRN-16-1 1-D "
          f"{res['args']['student_epochs']} epochs (0.1 CE + 0.9 KD, T = 4), SGD lr 0.05 cosine, batch 16; "
          f"teacher test acc {res['training']['teacher']['test_acc']:.3f}, student "
          f"{res['training']['student']['test_acc']:.3f} (best-validation weights)",
          f"- fine-tuning: KD from the teacher (0.9 KD + 0.1 CE, T = 4), Adam lr {res['args']['ft_lr']}, "
          f"{res['args']['ft_epochs']} epochs after pruning ({res['args']['ft_round_epochs']} between the 80 % rounds); "
          f"QAT {res['args']['qat_epochs']} epochs at lr {res['args']['qat_lr']}",
          f"- latency: CPU, 1 thread, median (± IQR) of {res['args']['repeats']} forwards after 10 warm-ups, "
          "best of "
          f"{res['args']['rounds']} interleaved rounds; size: serialized file (safetensors state_dict for float, "
          "torch.export `.pt2` for int8: graph + int8 weights); tensor bytes: the tensor data alone; MACs: "
          "FlopCounterMode at batch 1 (conv + linear)", ""]
    L += ["## Results", ""]
    L += md_table(
        ["variant", "test acc", "Δ acc (points)", "params", "non-zero", "size (bytes)", "smaller", "tensor bytes",
         "smaller (tensors)", "MACs", "latency b=1 (ms)", "faster b=1", "latency b=32 (ms)", "faster b=32",
         "peak mem b=32 (KiB)", "goal b=1 / b=32"],
        ([r["variant"], f"{r['test_acc']:.3f}", f"{r['acc_delta_points']:+.1f}", f"{r['params']:,}",
          f"{r['nonzero']:,}", f"{r['size_bytes']:,}", f"{r['smaller_x']:.2f}x", f"{r['tensor_bytes']:,}",
          f"{r['smaller_tensors_x']:.2f}x", f"{r['macs']:,}", f"{r['latency_b1_ms']:.3f} ± {r['latency_b1_iqr_ms']:.3f}",
          f"{r['faster_b1_x']:.2f}x", f"{r['latency_b32_ms']:.2f} ± {r['latency_b32_iqr_ms']:.2f}",
          f"{r['faster_b32_x']:.2f}x",
          "–" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 1024:.0f}",
          f"{'yes' if r['goal_b1'] else 'no'} / {'yes' if r['goal_b32'] else 'no'}"] for r in rows),
        "l" + "r" * 14 + "l")
    if res.get("compiled"):
        comp = res["compiled"]
        base = {r["variant"]: r for r in rows}["float32"]
        ref = comp.get("float32", {}).get("latency")
        L += ["", "### The same models under `torch.compile` (Inductor, static shapes, 1 thread)", "",
              "Eager PyTorch spends most of a batch-1 forward of these small networks in per-operator dispatch "
              "and Python module calls; Inductor fuses the graph, which shows what the smaller networks gain once "
              "that overhead is gone. Speed-ups against eager float32 and against compiled float32. Compile "
              "times are those of this run (Inductor's on-disk cache may hold earlier compilations).", ""]
        crows = []
        for name, c in comp.items():
            if "error" in c:
                crows.append([name, f"{c['seconds']:.0f}", f"fails: {c['error']}", "", "", "", "", ""])
                continue
            l1, l32 = c["latency"]["1"]["median_ms"], c["latency"]["32"]["median_ms"]
            r1 = f"{ref['1']['median_ms'] / l1:.2f}x" if ref else "–"
            r32 = f"{ref['32']['median_ms'] / l32:.2f}x" if ref else "–"
            crows.append([name, f"{c['seconds']:.0f}", f"{l1:.3f} ± {c['latency']['1']['iqr_ms']:.3f}",
                          f"{base['latency_b1_ms'] / l1:.2f}x", r1, f"{l32:.2f} ± {c['latency']['32']['iqr_ms']:.2f}",
                          f"{base['latency_b32_ms'] / l32:.2f}x", r32])
        L += md_table(["variant", "compile (s)", "latency b=1 (ms)", "vs eager fp32", "vs compiled fp32",
                       "latency b=32 (ms)", "vs eager fp32", "vs compiled fp32"], crows, "lrrrrrrr")
    L += ["", "Variants:", ""]
    L += [f"- `{r['variant']}`: {r['description']} (built in {r['seconds_to_build']:.1f} s)" for r in rows]
    L += ["", "## Goal: >= 3x smaller, >= 1.5x faster, <= 1 accuracy point lost", ""]
    L += res["verdict"]
    L += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(L) + "\n"


def verdict(rows, compiled=None) -> list[str]:
    out = []
    met_b1 = [r["variant"] for r in rows if r["goal_b1"]]
    met_b32 = [r["variant"] for r in rows if r["goal_b32"]]
    out.append(f"- batch 1: met by {', '.join(f'`{v}`' for v in met_b1) if met_b1 else 'no variant'}.")
    out.append(f"- batch 32: met by {', '.join(f'`{v}`' for v in met_b32) if met_b32 else 'no variant'}.")
    best = max(rows[1:], key=lambda r: (r["acc_delta_points"] >= -1, r["faster_b1_x"] * r["smaller_x"]))
    out.append(f"- closest at batch 1: `{best['variant']}`: {best['smaller_x']:.2f}x smaller, "
               f"{best['faster_b1_x']:.2f}x faster at batch 1, {best['faster_b32_x']:.2f}x at batch 32, "
               f"{best['acc_delta_points']:+.1f} accuracy points.")
    comp = compiled or {}
    by = {r["variant"]: r for r in rows}
    if "latency" in comp.get("float32", {}):
        ref1 = comp["float32"]["latency"]["1"]["median_ms"]
        for name in ("pruned-50", "pruned-80"):
            c = comp.get(name, {})
            if "latency" in c:
                r = by[name]
                x1 = ref1 / c["latency"]["1"]["median_ms"]
                ok = r["smaller_x"] >= 3 and x1 >= 1.5 and r["acc_delta_points"] >= -1
                out.append(f"- with torch.compile on both sides, `{name}` is {x1:.2f}x faster than compiled float32 at "
                           f"batch 1 ({by['float32']['latency_b1_ms'] / c['latency']['1']['median_ms']:.2f}x "
                           f"than eager float32), {r['smaller_x']:.2f}x smaller, {r['acc_delta_points']:+.1f} "
                           f"points: goal {'met' if ok else 'not met'}.")
    return out


NOTES = [
    "Structured pruning removes whole channels (torch-pruning's dependency graph keeps residual additions "
    "consistent), so parameters, MACs, file size and latency all drop; a channel fraction a removes about "
    "1 - (1 - a)^2 of the conv weights.",
    "int8 files are `torch.export` archives: besides the int8 weights they hold the serialized graph "
    "(about 100 KB of JSON for WRN-16-1), which is larger than this tiny model's weights; the `tensor bytes` "
    "column shows the 4x on the tensors themselves.",
    "int8 speed on this CPU (AVX2, no VNNI: 7-bit activations) comes from oneDNN `qconv_pointwise` kernels run "
    "eagerly; per-op overheads and the quantize ops at the graph's edges dominate such a small network at "
    "batch 1. Dynamic int8 keeps convolutions as reference ops (quantize -> dequantize -> float conv), so it is "
    "smaller but slower than float32.",
    "Accuracy is on 40 test windows: one window is 2.5 points, so '<= 1 point lost' means no extra error.",
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\nUsage")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few epochs and repeats (smoke test, < 2 min); "
                   "writes compress-quick.md/json")
    p.add_argument("--name", help="results file stem (default: compress, or compress-quick with --quick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher-epochs", type=int, help="default 30; quick 8 (teacher) / 10 (student)")
    p.add_argument("--student-epochs", type=int, help="default 30; quick 8 (teacher) / 10 (student)")
    p.add_argument("--ft-epochs", type=int, help="KD fine-tuning epochs after pruning (default 30; quick 2)")
    p.add_argument("--ft-round-epochs", type=int, help="fine-tuning epochs between pruning rounds (default 10; quick 1)")
    p.add_argument("--ft-lr", type=float, default=1e-3)
    p.add_argument("--qat-epochs", type=int, help="QAT epochs (default 10; quick 1)")
    p.add_argument("--qat-lr", type=float, default=1e-4)
    p.add_argument("--repeats", type=int, help="timed forwards per measurement (default 200; quick 20)")
    p.add_argument("--rounds", type=int, help="interleaved latency rounds (default 5; quick 1)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="also time torch.compile'd variants (default: on; off with --quick)")
    args = p.parse_args()
    quick = args.quick
    defaults = {"teacher_epochs": (30, 8), "student_epochs": (30, 10), "ft_epochs": (30, 3),
                "ft_round_epochs": (10, 1), "qat_epochs": (10, 1), "repeats": (200, 20), "rounds": (5, 1)}
    for key, (full, small) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)
    if args.compile is None:
        args.compile = not quick
    name = args.name or ("compress-quick" if quick else "compress")
    load_start = [round(v, 2) for v in loadavg() or []]

    import torch

    # One thread throughout (training too): the 2 cores are shared, and two
    # processes with 2 threads each slow each other down far more than 2x.
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        splits, teacher, student, training = train_models(args, Path(tmp))
        variants, X = build_variants(args, splits, teacher, student)
    measure(args, variants, X)
    compiled = measure_compiled(args, variants, X) if args.compile else {}
    rows = summarize(variants)
    res = {"quick": quick, "command": command_line(),
           "date": now_iso(utc=True),
           "machine": machine_info(), "load_average_start": load_start, "args": vars(args),
           "data": splits.description, "n_test": len(splits.test),
           "training": {k: v for k, v in training.items()}, "rows": rows, "verdict": verdict(rows, compiled),
           "notes": NOTES, "compiled": compiled,
           "details": {n: {"profile": v["profile"], "latency_rounds": v["latency_rounds"]}
                       for n, v in variants.items()}}
    for n, v in variants.items():
        info = getattr(v["model"], "info", None)
        if info is not None:
            res["details"][n]["quantization"] = {k: info.get(k) for k in
                                                 ("method", "backend", "reduce_range", "weights", "activations",
                                                  "lowered", "lowered_int8_ops", "reference_ops")}
    res["wall_s"] = time.perf_counter() - T0
    out = RESULTS
    write_results(out, name, res, render(res), indent=1, default=str)
    log(f"wrote {out / (name + '.md')} and .json")
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
