#!/usr/bin/env python
"""Training throughput with 1 and 2 processes under torchrun (gloo, CPU).

Two workloads through the one training engine (:func:`topokd.engine.fit`):

* ``student``: a ResNet-8 student (1-D, 6 channels, 6 classes) trained with
  cross-entropy on ``--windows`` seeded random windows of 128 x 6, batch 64;
* ``pinet``: :class:`topokd.pinet.PINet` (signal, widths 16/32/64/128,
  resolution 20, ``optimizer="adamw"``) on ``--windows`` windows with precomputed
  (random) target PIs, batch 64 -- the network's cost, not the PIs'.

Each is run as one process with 1 torch thread, as one process with 2
threads (the other way to use this machine's two cores), and as 2 processes
of 1 thread each under ``python -m torch.distributed.run --nproc-per-node 2``
(gloo).  The same global batch everywhere.  Each run trains ``--epochs``
epochs; the throughput is ``n`` / the fastest epoch after the first (the
engine's per-epoch ``seconds``, rank 0's).  Scaling efficiency = throughput
of 2 processes / (2 x throughput of 1 process of 1 thread).  Writes
``results/ddp.md`` / ``results/ddp.json``.

Usage::

    .venv/bin/python benchmarks/bench_ddp.py            # about two minutes on 2 cores
    .venv/bin/python benchmarks/bench_ddp.py --quick    # 256 windows, 2 epochs: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import RESULTS, T0, command_line, log, loadavg, machine_info, md_bullets, md_table, now_iso  # noqa: E402
from _harness import publish, report_header  # noqa: E402

BATCH = 64


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--windows", dest="n", type=int, default=4096, help="training windows (default 4096)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is a warm-up (default 3)")
    p.add_argument("--quick", action="store_true", help="256 windows, 2 epochs (a smoke test)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default=None)
    p.add_argument("--child", nargs=2, metavar=("WORKLOAD", "JSON"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.epochs = 256, 2
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch is a warm-up)")
    args.name = args.name or ("ddp-quick" if args.quick else "ddp")
    return args


# -- one training run (in the child processes) ------------------------------------
def child(workload: str, out: Path, n: int, epochs: int) -> None:
    import numpy as np
    import torch

    from topokd.engine import build_optimizer, distributed, fit, tensor_batches

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 128, 6)).astype(np.float32).cumsum(axis=1) / 8
    if workload == "student":
        from topokd.models import build_model

        torch.manual_seed(0)
        model = build_model({"model": "resnet8", "inputs": "signal", "num_classes": 6, "in_channels": 6})
        y = torch.from_numpy(rng.integers(0, 6, n))
        optimizer = build_optimizer(model.parameters(), "adamw", lr=1e-3, weight_decay=0.0)

        def step(batch, generator):
            xb, yb = batch
            return {"ce": torch.nn.functional.cross_entropy(model(xb), yb)}

        result = fit(model, step, tensor_batches(torch.from_numpy(X).transpose(1, 2).contiguous(), y,
                                                 batch_size=BATCH, min_batch=2),
                     epochs=epochs, optimizer=optimizer, seed=0)
        history, params = result.history, sum(p.numel() for p in model.parameters())
    else:
        from topokd.pinet import PINet

        Y = rng.random(size=(n, 6, 20, 20)).astype(np.float32) * 0.1
        est = PINet("signal", widths=(16, 32, 64, 128), pi_params={"resolution": 20}, optimizer="adamw",
                    device="cpu", epochs=epochs, batch_size=BATCH, val_fraction=0.0, seed=0, progress=False)
        est.fit(X, Y)
        history, params = est.history_, sum(p.numel() for p in est.model_.parameters())
    if distributed.is_main():
        seconds = [h["seconds"] for h in history]
        out.write_text(json.dumps({"seconds": seconds, "train_loss": [h["train_loss"] for h in history],
                                   "world": distributed.world().size, "parameters": params, "threads": torch.get_num_threads()}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_setup(workload: str, processes: int, threads: int, args, tmp: Path) -> dict:
    out = tmp / f"{workload}-{processes}x{threads}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads), PYTHONPATH=str(HERE.parent))
    script = [str(Path(__file__).resolve()), "--windows", str(args.n), "--epochs", str(args.epochs),
              "--child", workload, str(out)]
    if processes == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), *script]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    got = json.loads(out.read_text())
    best = min(got["seconds"][1:])
    return {"workload": workload, "processes": processes, "threads_per_process": threads,
            "epoch_seconds": got["seconds"], "best_epoch_seconds": best, "samples_per_s": args.n / best,
            "train_loss": got["train_loss"], "parameters": got["parameters"], "wall_s": round(wall, 2),
            "command": " ".join(["python" if processes == 1 else f"torchrun --nproc-per-node {processes}",
                                 "benchmarks/bench_ddp.py --child", workload, "..."])}


def main(argv=None) -> int:
    args = parse(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), args.n, args.epochs)
        return 0
    res = {"command": command_line(argv), "date": now_iso(), "loadavg_start": loadavg(),
           "machine": machine_info(), "n": args.n, "epochs": args.epochs, "batch_size": BATCH, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for workload in ("student", "pinet"):
            for processes, threads in ((1, 1), (1, 2), (2, 1)):
                log(f"{workload}: {processes} process(es) x {threads} thread(s)")
                row = run_setup(workload, processes, threads, args, Path(tmp))
                log(f"  {row['samples_per_s']:.0f} samples/s (epochs {row['epoch_seconds']})")
                res["rows"].append(row)
    res["loadavg_end"] = loadavg()
    res["wall_s"] = time.perf_counter() - T0
    rows = res["rows"]
    base = {w: next(r for r in rows if r["workload"] == w and r["processes"] == 1 and r["threads_per_process"] == 1)
            for w in ("student", "pinet")}
    for r in rows:
        r["speedup_vs_1x1"] = r["samples_per_s"] / base[r["workload"]]["samples_per_s"]
        r["efficiency"] = r["speedup_vs_1x1"] / (r["processes"] * r["threads_per_process"])
    cores = os.cpu_count() or 1
    params = {r["workload"]: r["parameters"] for r in rows}
    findings = []
    for w in ("student", "pinet"):
        two = next(r for r in rows if r["workload"] == w and r["processes"] == 2)
        threads = next(r for r in rows if r["workload"] == w and r["threads_per_process"] == 2)
        findings.append(f"{w}: 2 processes {two['samples_per_s']:.0f} samples/s = {two['speedup_vs_1x1']:.2f}x one "
                        f"process of 1 thread (scaling efficiency {100 * two['efficiency']:.0f} %); one process "
                        f"of 2 threads {threads['speedup_vs_1x1']:.2f}x.")
    res["notes"] = [
        f"This machine has {cores} cores and is shared with other jobs (load averages in the header): with "
        "two other jobs running, two training processes compete with them for the same two cores, so the "
        "2-process figures are a lower bound of what two free cores give.",
        "Every setup trains the same global batch (64): 2 processes train 32 samples each per step and "
        "average their gradients (one all-reduce per step over gloo, plus a tiny all-reduce of the loss check).",
        "On a real cluster (one process per GPU, NCCL, or one per CPU socket), data-parallel training "
        "scales near linearly while each process's compute per step (its part of the batch through the "
        "network, forward and backward) stays large against the all-reduce of the gradients (2 x the "
        "parameter bytes per step over the interconnect): these networks are small (ResNet-8 "
        f"{params['student']:,}, this PI-Net {params['pinet']:,} parameters), so keep the per-process batch large (hundreds of samples per GPU) "
        "and scale the global batch with the processes (and the learning rate with it) once one process "
        "is saturated. The engine does not overlap the all-reduce with the backward pass (DDP does); "
        "not measured here.",
    ]
    L = [*report_header("Data-parallel training with torchrun (gloo, CPU)", res, args.quick),
         f"- data: {args.n} seeded random windows of 128 x 6 float32; global batch {BATCH}; {args.epochs} epochs "
         "per run, throughput from the fastest epoch after the first\n", "## Throughput\n"]
    L += md_table(["workload", "processes x threads", "best epoch s", "samples/s", "vs 1 x 1", "efficiency"],
                  [[r["workload"], f"{r['processes']} x {r['threads_per_process']}", f"{r['best_epoch_seconds']:.2f}",
                    f"{r['samples_per_s']:.0f}", f"{r['speedup_vs_1x1']:.2f}x", f"{100 * r['efficiency']:.0f} %"]
                   for r in rows], "llrrrr")
    L.append("")
    L += md_bullets("Findings", findings) + md_bullets("Notes", res["notes"])
    publish(args.out, args.name, res, "\n".join(L))
    return 0


if __name__ == "__main__":
    sys.exit(main())
