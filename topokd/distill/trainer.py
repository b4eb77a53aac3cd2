"""Teacher training and distillation loops.

One loop serves both: :func:`train_teacher` fits a classifier (on raw
signals, PIs, or both) with cross-entropy; :func:`distill` fits a student on
raw signals with any weighted combination of CE, KD (one or several
teachers), attention (AT, AMD) and similarity (SP) losses.  Both log
per-epoch metrics to CSV and JSON, keep a checkpoint of every epoch (ESKD
distils from the best-validation epoch instead of the last), save the best
and last weights, and resume from ``train-state.safetensors``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import __version__
from ..checkpoint import CheckpointError, load_checkpoint, optimizer_tensors, restore_optimizer, save_checkpoint
from ..engine.settings import TrainSettings, lr_at, make_optimizer
from .data import Split, Splits

INPUTS = ("signal", "pi", "fusion")


@dataclass
class Batch:
    signal: torch.Tensor  # (B, C, T)
    pi: torch.Tensor | None  # (B, C, R, R)
    y: torch.Tensor


def batches(split: Split, batch_size: int, device, *, shuffle: bool, generator: torch.Generator | None = None):
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    signals = torch.from_numpy(split.signals).transpose(1, 2)
    pis = torch.from_numpy(split.pis) if split.pis is not None else None
    labels = torch.from_numpy(split.labels)
    for idx in order.split(batch_size):
        yield Batch(signals[idx].contiguous().to(device), None if pis is None else pis[idx].to(device),
                    labels[idx].to(device))


def model_input(model: nn.Module, inputs: str, batch: Batch) -> torch.Tensor:
    """Call ``model`` on the part of the batch it takes."""
    if inputs == "signal":
        return model(batch.signal)
    if batch.pi is None:
        raise ValueError(f"a '{inputs}' model needs persistence images: build the splits with with_pis=True")
    if inputs == "pi":
        return model(batch.pi)
    return model(batch.signal, batch.pi)


@torch.no_grad()
def evaluate(model: nn.Module, inputs: str, split: Split, device, batch_size: int = 256) -> dict:
    """Cross-entropy and accuracy of a classifier on a split."""
    model.eval()
    total_loss, correct = 0.0, 0
    for batch in batches(split, batch_size, device, shuffle=False):
        logits = model_input(model, inputs, batch).float()
        total_loss += F.cross_entropy(logits, batch.y, reduction="sum").item()
        correct += int((logits.argmax(1) == batch.y).sum())
    return {"loss": total_loss / len(split), "acc": correct / len(split)}


class RunLog:
    """Per-epoch metrics in ``metrics.csv`` and ``metrics.json`` (rewritten each epoch)."""

    def __init__(self, out_dir: Path, history: list[dict] | None = None):
        self.out_dir = out_dir
        self.history = list(history or [])

    def add(self, record: dict) -> None:
        self.history.append(record)
        keys = sorted({k for r in self.history for k in r}, key=lambda k: (k != "epoch", k))
        with open(self.out_dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        (self.out_dir / "metrics.json").write_text(json.dumps(self.history, indent=1) + "\n")


def fit(model: nn.Module, step, splits: Splits, settings: TrainSettings, out_dir: Path, *, inputs: str,
        metadata: dict, resume: bool = False, params=None) -> dict:
    """The shared loop: ``step(batch, generator) -> (loss, parts)`` trains one batch.

    Writes ``epochs/epoch-XXX.safetensors`` (every epoch; ESKD), ``best``
    (highest validation accuracy, ties broken by lower validation loss) and
    ``last`` weights, ``train-state.safetensors`` (resume), metrics.
    Returns a summary with the best epoch and test accuracy of the best weights.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    (out_dir / "epochs").mkdir(parents=True, exist_ok=True)
    device = settings.torch_device
    model.to(device)
    torch.manual_seed(settings.seed)
    optimizer = make_optimizer(params if params is not None else model.parameters(), settings)
    use_amp = settings.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    gen = torch.Generator().manual_seed(settings.seed)
    start, best_acc, best_epoch, log = 0, -1.0, 0, RunLog(out_dir)
    state_path = out_dir / "train-state.safetensors"
    if resume and state_path.exists():
        start, best_acc, best_epoch, history, rng_state = _restore(state_path, model, optimizer, metadata)
        gen.set_state(rng_state)
        log = RunLog(out_dir, history)
    bar = tqdm(range(start, settings.epochs), disable=not settings.progress, desc=metadata.get("role", "train"),
               unit="epoch")
    for epoch in bar:
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch, settings)
        model.train()
        sums: dict[str, float] = {}
        seen = 0
        for batch in batches(splits.train, settings.batch_size, device, shuffle=True, generator=gen):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=use_amp):
                loss, parts = step(batch, gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}; lower the learning rate")
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            n = len(batch.y)
            seen += n
            for k, v in {"loss": loss.item(), **parts}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
        val = evaluate(model, inputs, splits.val, device) if len(splits.val) else {"loss": float("nan"), "acc": 0.0}
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                  **{f"train_{k}": v / seen for k, v in sums.items()},
                  "val_loss": val["loss"], "val_acc": val["acc"], "seconds": round(time.perf_counter() - started, 3)}
        log.add(record)
        weights = {k: v for k, v in model.state_dict().items()}
        meta = {**metadata, "epoch": epoch + 1, "val_acc": val["acc"], "topokd_version": __version__}
        save_checkpoint(out_dir / "epochs" / f"epoch-{epoch + 1:03d}.safetensors", weights, meta)
        # Best = highest validation accuracy; ties (common on small validation
        # sets) go to the lower validation loss, not to the earliest epoch.
        best_loss = log.history[best_epoch - 1]["val_loss"] if best_epoch else math.inf
        if val["acc"] > best_acc or (val["acc"] == best_acc and val["loss"] < best_loss):
            best_acc, best_epoch = val["acc"], epoch + 1
            save_checkpoint(out_dir / "best.safetensors", weights, meta)
        save_checkpoint(out_dir / "last.safetensors", weights, meta)
        _save_state(state_path, model, optimizer, epoch + 1, best_acc, best_epoch, log.history, gen, metadata)
        bar.set_postfix(loss=f"{record['train_loss']:.3g}", val_acc=f"{val['acc']:.3f}")
    best_weights, _ = load_checkpoint(out_dir / "best.safetensors", device=str(device))
    model.load_state_dict(best_weights)
    test = evaluate(model, inputs, splits.test, device)
    summary = {"best_epoch": best_epoch, "best_val_acc": best_acc, "test_acc": test["acc"],
               "test_loss": test["loss"], "epochs": settings.epochs, "settings": asdict(settings)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _save_state(path, model, optimizer, epoch, best_acc, best_epoch, history, gen, metadata) -> None:
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(opt_tensors)
    tensors["rng"] = gen.get_state()
    save_checkpoint(path, tensors, {**metadata, "resume": {"epoch": epoch, "best_acc": best_acc,
                                                           "best_epoch": best_epoch, "optimizer": opt_meta},
                                    "history": history})


def _restore(path, model, optimizer, metadata):
    tensors, meta = load_checkpoint(path)
    if meta.get("model") != metadata.get("model"):
        raise CheckpointError(f"cannot resume from {path}: it trained {meta.get('model')}, "
                              f"this run builds {metadata.get('model')}")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state = meta["resume"]
    restore_optimizer(optimizer, tensors, state["optimizer"])
    return state["epoch"], state["best_acc"], state["best_epoch"], meta.get("history", []), tensors["rng"]


def copy_frozen(model: nn.Module) -> nn.Module:
    """A frozen, eval-mode copy (teachers never train during distillation)."""
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


def summarize(values) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "n": int(len(arr))}
