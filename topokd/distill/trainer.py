"""Teacher training and distillation on the training engine.

One engine serves both: :func:`train_teacher` fits a classifier (on raw
signals, PIs, or both) with cross-entropy; :func:`distill` fits a student on
raw signals with any weighted combination of CE, KD (one or several
teachers), attention (AT, AMD) and similarity (SP) losses.  Both log
per-epoch metrics to CSV and JSON, keep a checkpoint of every epoch (ESKD
distils from the best-validation epoch instead of the last), save the best
and last weights, and resume from ``train-state.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..engine import distributed
from ..engine.loop import Checkpoints, Monitor
from ..engine.loop import fit as engine_fit
from ..engine.settings import TrainSettings, lr_at, make_optimizer
from .data import Split, Splits

INPUTS = ("signal", "pi", "fusion")


@dataclass
class Batch:
    signal: torch.Tensor  # (B, C, T)
    pi: torch.Tensor | None  # (B, C, R, R)
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device) -> "Batch":
        return Batch(self.signal.to(device), None if self.pi is None else self.pi.to(device), self.y.to(device))


def batches(split: Split, batch_size: int, device, *, shuffle: bool, generator: torch.Generator | None = None,
            min_batch: int = 1):
    """The split in batches of ``batch_size`` (the last may be smaller; one
    smaller than ``min_batch`` is skipped, e.g. 2 for BatchNorm in training)."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    signals = torch.from_numpy(split.signals).transpose(1, 2)
    pis = torch.from_numpy(split.pis) if split.pis is not None else None
    labels = torch.from_numpy(split.labels)
    for idx in order.split(batch_size):
        if len(idx) < min_batch and n >= min_batch:
            continue
        yield Batch(signals[idx].contiguous().to(device), None if pis is None else pis[idx].to(device),
                    labels[idx].to(device))


class OnlinePIs:
    """Exact PIs of the windows of a batch, computed inside the batch
    pipeline by topokd's engine (after augmentation and mixup), so a PI or
    fusion model sees the PIs of the very window the student sees.

    ``transformer``: a :class:`topokd.SignalPersistenceImages` (the data's
    preset and parameters).  ``signal`` is ``(B, C, T)``; the result
    ``(B, C, R, R)`` float32 on the signal's device equals
    ``transformer.transform(signal.transpose(1, 2))`` of the float32 window
    (on an un-augmented batch, the precomputed PIs exactly).
    ``seconds`` accumulates the time spent (for the cost report).

    The engine's numba kernels run with at most as many threads as torch
    has (``torch.get_num_threads()``, and never more than numba's own
    setting), so jobs that each limit torch to a share of the cores do not
    oversubscribe them when they compute PIs (under ``torchrun``, whose
    ranks get ``OMP_NUM_THREADS=1``, that is one thread per rank): two
    single-threaded jobs side by side on 2 cores, each letting numba use
    both, take 2.2x as long per batch (HAPT, 64 windows, 16x16: 8.8 vs
    4.1 ms).
    """

    def __init__(self, transformer):
        self.transformer = transformer
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, signal: torch.Tensor) -> torch.Tensor:
        import time

        import numba

        started = time.perf_counter()
        windows = signal.detach().to("cpu", torch.float32).transpose(1, 2).numpy()
        before = numba.get_num_threads()
        numba.set_num_threads(max(1, min(torch.get_num_threads(), before)))
        try:
            pis = self.transformer.transform(windows)
        finally:
            numba.set_num_threads(before)
        pis = torch.from_numpy(pis).to(signal.device)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return pis


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


def fit(model: nn.Module, step, splits: Splits, settings: TrainSettings, out_dir: Path, *, inputs: str,
        metadata: dict, resume: bool = False, params=None, keep_epochs=True, companions=None,
        on_epoch_start=None, min_batch: int = 2) -> dict:
    """Train a classifier with the training engine (:func:`topokd.engine.fit`).

    ``step(batch, generator) -> {name: weighted loss}`` trains one batch.
    Writes ``epochs/epoch-XXX.safetensors`` (``keep_epochs``: every epoch,
    or the listed ones; ESKD), ``best``
    (highest validation accuracy, ties broken by lower validation loss) and
    ``last`` weights, ``train-state.safetensors`` (resume), metrics.
    ``params``: what the optimizer trains (default the model's);
    ``companions`` / ``on_epoch_start``: see :func:`topokd.engine.fit`.
    A last training batch smaller than ``min_batch`` (default 2: BatchNorm)
    is skipped.
    Returns a summary with the best epoch and test accuracy of the best weights.
    Under ``torchrun`` every rank trains (see :mod:`topokd.engine.distributed`)
    and returns the same summary; rank 0 writes ``summary.json``.
    """
    out_dir = Path(out_dir)
    device = settings.torch_device
    model.to(device)
    optimizer = make_optimizer(params if params is not None else model.parameters(), settings)

    def epoch_batches(generator):
        return batches(splits.train, settings.batch_size, device, shuffle=True, generator=generator,
                       min_batch=min_batch)

    def validate(m):
        if not len(splits.val):
            return {"val_loss": float("nan"), "val_acc": 0.0}
        scores = evaluate(m, inputs, splits.val, device)
        return {"val_loss": scores["loss"], "val_acc": scores["acc"]}

    result = engine_fit(
        model, step, epoch_batches, epochs=settings.epochs, optimizer=optimizer,
        lr_schedule=lambda epoch: lr_at(epoch, settings), device=device, amp=settings.amp, seed=settings.seed,
        validate=validate, monitor=Monitor("val_acc", better="max", tie_break="val_loss"),
        checkpoints=Checkpoints(out_dir, best=True, last=True, epochs=keep_epochs, metadata=metadata), resume=resume,
        progress=settings.progress, desc=metadata.get("role", "train"), show=("val_acc",),
        companions=companions, on_epoch_start=on_epoch_start)
    # The engine leaves the best epoch's weights in the model (restore="best").
    test = evaluate(model, inputs, splits.test, device)
    summary = {"best_epoch": result.best_epoch, "best_val_acc": result.best_record["val_acc"],
               "test_acc": test["acc"], "test_loss": test["loss"], "epochs": settings.epochs,
               "settings": asdict(settings)}
    distributed.on_main(_write_json, out_dir / "summary.json", summary)
    return summary


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n")


def summarize(values) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "n": int(len(arr))}
