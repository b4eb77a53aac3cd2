"""The per-process side of tests/test_distributed_training.py (not a test module).

Run as ``python tests/distributed_worker.py MODE OUT [ARGS...]`` by one
process, or by every process of ``torchrun --nproc-per-node N``:

* ``engine OUT``: :func:`topokd.engine.fit` of a small MLP (no BatchNorm)
  on tensor batches of 11 (parts of 6 and 5 on two ranks), with a run folder
  ``OUT/run/engine``, then the same run stopped after 2 epochs and resumed
  to 3 in ``OUT/resumed``;
* ``pinet OUT``: :class:`topokd.pinet.PINet` (tiny widths, exact PIs as
  targets, a training state ``OUT/run/pinet-state.safetensors``; ``OUT/run``
  must exist);
* ``engine+pinet OUT``: both, in one launch;
* ``cli OUT ARGS...``: ``topokd ARGS...`` (e.g. ``run CONFIG --quiet``).

Each rank writes what it computed (weights, histories) to
``OUT/ranks/rank-R.pt``, and the files it opened for writing, created,
renamed or removed under ``OUT/run*`` or a ``--watch`` folder (an audit
hook), so the test checks that only rank 0 touched the run folders.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def audit_writes(roots: list[Path]) -> list[str]:
    """Record every write-like file operation under ``roots`` (returned list, filled as they happen)."""
    seen: list[str] = []
    roots = [str(r.resolve()) for r in roots]

    def under(path) -> bool:
        try:
            text = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return False
        return any(text == r or text.startswith(r + os.sep) for r in roots)

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            if (flags & WRITE_FLAGS or any(c in mode for c in "wax+")) and under(args[0]):
                seen.append(f"open {args[0]}")
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree", "os.truncate") and args:
            if any(isinstance(a, (str, bytes, os.PathLike)) and under(a) for a in args[:2]):
                seen.append(f"{event} {args[0]}")

    sys.addaudithook(hook)
    return seen


def engine_run(run_dir: Path | None, epochs: int, resume: bool = False, stop_after: int | None = None):
    """A 3-epoch engine run of a seeded MLP; returns (weights, history)."""
    import torch
    from torch import nn

    from topokd.engine import Checkpoints, Monitor, build_optimizer, fit, schedule_lr, tensor_batches

    g = torch.Generator().manual_seed(3)
    X, V = torch.randn(40, 5, generator=g), torch.randn(16, 5, generator=g)
    w = torch.randn(5, 2, generator=g)
    Y, W = torch.tanh(X @ w), torch.tanh(V @ w)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2))
    optimizer = build_optimizer(model.parameters(), "adamw", lr=0.02, weight_decay=0.01)

    def step(batch, generator):
        xb, yb = batch
        return {"mse": nn.functional.mse_loss(model(xb), yb)}

    @torch.no_grad()
    def validate(m):
        return {"val_mse": float(nn.functional.mse_loss(m(V), W))}

    ckpt = Checkpoints(run_dir, best=True, last=True, epochs=True) if run_dir is not None else None
    result = fit(model, step, tensor_batches(X, Y, batch_size=11), epochs=epochs if stop_after is None else stop_after,
                 optimizer=optimizer, lr_schedule=lambda e: schedule_lr(e, "cosine", 0.02, epochs), seed=5,
                 validate=validate, monitor=Monitor("val_mse"), checkpoints=ckpt, resume=resume, restore="last")
    return {k: v.clone() for k, v in model.state_dict().items()}, result.history


def pinet_run(state: Path | None):
    """Two epochs of a tiny signal PI-Net on exact-PI targets; returns (weights, history)."""
    import numpy as np

    from topokd.pinet import PINet

    X = np.random.default_rng(0).normal(size=(72, 32, 2)).astype(np.float32).cumsum(axis=1)
    est = PINet("signal", widths=(4, 4, 4, 4), pi_params={"resolution": 8}, optimizer="adamw", device="cpu",
                epochs=2, batch_size=16, lr=3e-3, val_fraction=0.2, seed=0, progress=False,
                checkpoint=None if state is None else str(state))
    est.fit(X)
    return {k: v.detach().clone() for k, v in est.model_.state_dict().items()}, est.history_


def main(argv: list[str]) -> int:
    mode, out = argv[0], Path(argv[1])
    rest = argv[2:]
    watch = [out / "run", out / "resumed"]
    if rest[:1] == ["--watch"]:
        watch.append(Path(rest[1]))
        rest = rest[2:]
    writes = audit_writes(watch)
    import torch

    rank = int(os.environ.get("RANK", "0"))
    result: dict = {"rank": rank, "world": int(os.environ.get("WORLD_SIZE", "1"))}
    if mode not in ("engine", "pinet", "engine+pinet", "cli"):
        raise SystemExit(f"unknown mode {mode!r}")
    if mode in ("engine", "engine+pinet"):
        result["weights"], result["history"] = engine_run(out / "run" / "engine", 3)
        engine_run(out / "resumed", 3, stop_after=2)
        result["resumed_weights"], result["resumed_history"] = engine_run(out / "resumed", 3, resume=True)
    if mode in ("pinet", "engine+pinet"):
        result["pinet_weights"], result["pinet_history"] = pinet_run(out / "run" / "pinet-state.safetensors")
    if mode == "cli":
        from topokd.cli import main as cli_main

        result["status"] = cli_main(rest)
    result["writes"] = list(writes)
    ranks = out / "ranks"
    ranks.mkdir(parents=True, exist_ok=True)
    torch.save(result, ranks / f"rank-{rank}.pt")
    return int(result.get("status", 0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
