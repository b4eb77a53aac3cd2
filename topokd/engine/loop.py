"""The one training loop of topokd.

PI-Net training (:class:`topokd.PINet`), teacher and student training
(:mod:`topokd.distill`) and fine-tuning during compression
(:func:`topokd.compress.kd_finetune`) all run :func:`fit`.  A caller brings
three things:

* ``step(batch, generator) -> {name: loss}`` -- the named loss terms of one
  batch (already weighted); the engine back-propagates their sum and logs
  each one (mdistiller's convention: a distiller returns a dict of losses).
  A step may also return ``(terms, metrics)``: ``metrics`` (e.g. the
  batch's accuracy) are logged, averaged over samples, not trained on;
* ``batches(generator)`` -- the batches of one epoch, shuffled with the
  engine's seeded generator (see :func:`tensor_batches`);
* optionally ``validate(model) -> {"val_...": value}`` after each epoch.

The engine owns the rest: epochs, the learning rate of each epoch, mixed
precision on CUDA, the progress bar, one record per epoch (in memory and,
with a run folder, ``metrics.csv`` / ``metrics.json``), the best epoch by a
:class:`Monitor`, early stopping, checkpoints (:class:`Checkpoints`), a
stop with a message naming the epoch and step when the loss is not finite,
and exact resume from one state format.

State format (``train-state.safetensors``, a topokd checkpoint): tensors
``model.*`` (weights after the last finished epoch), ``optimizer.*``,
``best.*`` (weights of the best epoch so far), ``companion.*`` (modules
trained along, e.g. a loss's regressor), ``rng.generator`` and
``rng.torch`` (the shuffling generator and torch's global generator);
metadata: the caller's metadata plus ``engine = {"state_version",
"epoch", "best_epoch", "stale", "optimizer", "history"}``.  Resuming
restores all of it, so an interrupted run continues bit for bit on CPU.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same call trains data-parallel
on every process: each batch split across the ranks, gradients averaged,
metrics reduced, only rank 0 writing (see :mod:`topokd.engine.distributed`);
with one process nothing of that runs.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .._validation import check_device
from . import distributed
from ..checkpoint import CheckpointError, load_checkpoint, optimizer_tensors, restore_optimizer, save_checkpoint

STATE_VERSION = 1
STATE_FILE = "train-state.safetensors"


@dataclass
class Monitor:
    """Which epoch is the best: the one whose record has the best ``key``
    (``better="max"``: highest, ``"min"``: lowest); equal values go to the lower ``tie_break``
    (e.g. the lower validation loss among epochs of equal accuracy, common on
    small validation sets), and then to the earlier epoch."""

    key: str = "train_loss"
    better: str = "min"
    tie_break: str | None = None

    def __post_init__(self):
        if self.better not in ("min", "max"):
            raise ValueError(f"Monitor better must be 'min' or 'max', got {self.better!r}")

    def improves(self, record: dict, best: dict | None) -> bool:
        if best is None:
            return True
        if self.key not in record:
            raise KeyError(f"the epoch record has no {self.key!r} to monitor; it has {sorted(record)}")
        new, old = record[self.key], best[self.key]
        if new != old:
            return new > old if self.better == "max" else new < old
        if self.tie_break is None:
            return False
        return record[self.tie_break] < best[self.tie_break]


@dataclass
class Checkpoints:
    """What the engine writes.

    ``run_dir``: folder for ``metrics.csv`` / ``metrics.json`` and the
    weight files below (``None``: nothing written there).  ``state``: the
    resume state file (default ``run_dir / "train-state.safetensors"``;
    ``None`` and no ``run_dir``: no state, no resume).  ``best`` / ``last``:
    write ``best.safetensors`` / ``last.safetensors`` (weights + metadata)
    in ``run_dir``.  ``epochs``: ``True`` keeps the weights of every epoch
    in ``run_dir/epochs/epoch-XXX.safetensors`` (ESKD distils from an
    earlier epoch), or a collection of epoch numbers to keep.
    ``metadata``: JSON stored with every file (e.g. the model
    description that rebuilds the model).
    """

    run_dir: Path | None = None
    state: Path | None = None
    best: bool = False
    last: bool = False
    epochs: bool | Iterable[int] = False
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir) if self.run_dir is not None else None
        if self.state is None and self.run_dir is not None:
            self.state = self.run_dir / STATE_FILE
        self.state = Path(self.state) if self.state is not None else None
        if (self.best or self.last or self.epochs) and self.run_dir is None:
            raise ValueError("best/last/epoch checkpoints need a run_dir")

    def keeps_epoch(self, epoch: int) -> bool:
        if isinstance(self.epochs, bool):
            return self.epochs
        return epoch in set(self.epochs)


@dataclass
class TrainResult:
    """What :func:`fit` returns: every epoch's record (``history``, resumed
    epochs included), the best epoch (1-based; 0 if none ran), its record
    and weights, and whether early stopping ended the run."""

    history: list[dict]
    best_epoch: int
    best_record: dict | None
    best_state: dict | None
    stopped_early: bool


class MetricsLog:
    """Per-epoch records in ``metrics.csv`` and ``metrics.json``, rewritten
    after each epoch (so a crash leaves the epochs finished so far)."""

    def __init__(self, run_dir: Path | None, history: list[dict] | None = None):
        self.run_dir = run_dir
        self.history = list(history or [])

    def add(self, record: dict) -> None:
        self.history.append(record)
        if self.run_dir is None:
            return
        keys = sorted({k for r in self.history for k in r}, key=lambda k: (k != "epoch", k))
        with open(self.run_dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        (self.run_dir / "metrics.json").write_text(json.dumps(self.history, indent=1) + "\n")


def draw_order(n: int, samples: int, generator: torch.Generator) -> torch.Tensor:
    """``samples`` indices into ``n`` samples: whole seeded permutations,
    concatenated, the last one cut (each sample at most once more than any
    other).  ``samples == n`` is one ``torch.randperm(n)``."""
    rounds = -(-samples // n)
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(rounds)])[:samples]


def epoch_batches(n: int, samples: int, batch_size: int, generator: torch.Generator,
                  min_batch: int = 2) -> Iterator[torch.Tensor]:
    """The index batches of one epoch of ``samples`` draws (:func:`draw_order`);
    a batch smaller than ``min_batch`` is skipped (BatchNorm in train mode
    needs two samples) unless the epoch itself is that small."""
    for index in draw_order(n, samples, generator).split(batch_size):
        if len(index) < min_batch <= samples:
            continue
        yield index


def tensor_batches(*tensors: torch.Tensor, batch_size: int, device=None, shuffle: bool = True,
                   min_batch: int = 1, samples_per_epoch: int | None = None
                   ) -> Callable[[torch.Generator], Iterable[tuple]]:
    """``batches(generator)`` over aligned tensors: a seeded permutation
    split into ``batch_size`` pieces, moved to ``device``.  Batches smaller
    than ``min_batch`` are skipped (``min_batch=2``: BatchNorm in train mode
    needs two samples) unless the whole epoch is that small.
    ``samples_per_epoch``: epochs of that many samples instead of one pass
    (whole permutations repeated as needed, :func:`draw_order`)."""
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"tensors must hold the same number of samples, got {[len(t) for t in tensors]}")
    samples = n if samples_per_epoch is None else int(samples_per_epoch)

    def batches(generator: torch.Generator):
        if shuffle:
            indices = epoch_batches(n, samples, batch_size, generator, min_batch)
        else:
            indices = (idx for idx in torch.arange(n).split(batch_size) if len(idx) >= min_batch or n < min_batch)
        for idx in indices:
            yield tuple(t[idx].to(device) for t in tensors)

    return batches


def batch_len(batch) -> int:
    """Samples in a batch: ``len(batch)``, or of its first tensor for a tuple."""
    if isinstance(batch, (tuple, list)):
        return len(batch[0])
    return len(batch)


def train_mode(model: nn.Module) -> None:
    """``model.train()``, except BatchNorm layers whose parameters are all
    frozen: they stay in eval mode, so fine-tuning part of a network (or a
    frozen PI-Net inside a student) does not move their running statistics."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def fit(model: nn.Module, step: Callable, batches: Callable, *, epochs: int,
        optimizer: torch.optim.Optimizer, lr_schedule: Callable[[int], float] | None = None,
        device: torch.device | str = "cpu", amp: bool = True, seed: int = 0,
        validate: Callable[[nn.Module], dict] | None = None, monitor: Monitor | None = None,
        patience: int | None = None, checkpoints: Checkpoints | None = None, resume: bool = False,
        restore: str = "best", progress: bool = False, desc: str = "train", show: Iterable[str] = (),
        nan_hint: str = "lower the learning rate", on_epoch_end: Callable[[dict], None] | None = None,
        on_epoch_start: Callable[[int], None] | None = None, companions: nn.Module | None = None,
        postfix: Callable[[dict], dict] | None = None) -> TrainResult:
    """Train ``model`` for ``epochs`` (see the module docstring).

    ``optimizer``: built over the parameters to train (see
    :func:`topokd.engine.make_optimizer`); ``lr_schedule(epoch)`` sets the
    learning rate of each 0-based epoch.  ``monitor`` picks the best epoch
    (default: lowest training loss); ``patience`` stops after that many
    epochs without a better one.  ``restore``: leave the ``"best"`` or the
    ``"last"`` epoch's weights in ``model`` at the end.  ``amp``: mixed
    precision, on CUDA only.  ``show``: record keys for the progress bar;
    ``postfix(record)``, when given, returns the bar's ``{label: value}``
    instead (e.g. metrics converted to the units the caller reports).
    ``on_epoch_end(record)`` runs after the epoch's state is saved,
    ``on_epoch_start(epoch)`` (1-based) before its first batch.
    ``companions``: modules that train along with ``model`` but are not part
    of it (e.g. a FitNet regressor inside a loss): moved to the device, put
    in train mode with it, saved in the resume state (``companion.*``), not in
    the weight checkpoints.

    Under ``torchrun`` (``WORLD_SIZE`` > 1; :mod:`topokd.engine.distributed`)
    every rank runs this call with the same arguments: each batch of the
    stream is split across the ranks (global batch = the stream's batch),
    gradients are averaged, the epoch's training sums are summed over the
    ranks, ``validate`` runs on rank 0 and its values reach every rank, so
    every rank returns the same history; only rank 0 writes and shows the
    progress bar; ``on_epoch_start`` / ``on_epoch_end`` run on every rank.
    ``step`` gets a generator of its own per rank and epoch; ``batches`` the
    shared one.  ``device="cuda"`` is each rank's ``cuda:LOCAL_RANK``.
    """
    from tqdm.auto import tqdm

    if restore not in ("best", "last"):
        raise ValueError(f"restore must be 'best' or 'last', got {restore!r}")
    monitor = monitor or Monitor()
    ckpt = checkpoints or Checkpoints()
    world = distributed.init()  # one process: returns at once, torch.distributed untouched
    device = check_device(device)
    if world.active:
        device = distributed.rank_device(device, world)
    model.to(device)
    if companions is not None:
        companions.to(device)
    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    generator = torch.Generator().manual_seed(seed)
    start, best_epoch, stale, best_state = 0, 0, 0, None
    history: list[dict] = []
    if ckpt.run_dir is not None:
        distributed.on_main(_make_run_dir, ckpt)
    resuming = resume and ckpt.state is not None and ckpt.state.exists()
    if world.active:
        seen_by = distributed.any_rank(resuming)
        if seen_by not in (0, world.size):
            raise RuntimeError(f"{desc}: the training state {ckpt.state} exists for {seen_by} of {world.size} "
                               "ranks; put the run folder on a file system every rank sees")
    if resuming:
        start, best_epoch, stale, history, best_state = _restore_state(ckpt, model, optimizer, generator,
                                                                       companions)
    else:
        torch.manual_seed(seed)
    if world.active:  # every rank starts from rank 0's weights (as DDP does)
        distributed.broadcast_module(model)
        distributed.broadcast_module(companions)
        trained = distributed.optimizer_params(optimizer)
    log = MetricsLog(ckpt.run_dir if world.is_main else None, history)
    best = log.history[best_epoch - 1] if best_epoch else None
    stopped = patience is not None and stale >= patience
    bar = tqdm(range(start, epochs), disable=not progress or stopped or not world.is_main, desc=desc, unit="epoch")
    for epoch in bar:
        if stopped:
            break
        started = time.perf_counter()
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_schedule(epoch)
        train_mode(model)
        if companions is not None:
            train_mode(companions)
        if on_epoch_start is not None:
            on_epoch_start(epoch + 1)
        sums: dict[str, float] = {}
        seen = 0
        step_generator = generator
        if world.active:
            step_generator = torch.Generator().manual_seed(distributed.rank_seed(seed, epoch, world.rank))
            torch.manual_seed(distributed.rank_seed(seed, epoch, world.rank + world.size))
        for index, batch in enumerate(batches(generator), 1):
            if world.active:
                whole = batch_len(batch)
                if whole < world.size:  # a short last batch: skipped on every rank
                    continue
                lo, hi = distributed.part(whole, world.rank, world.size)
                batch = distributed.shard_batch(batch, lo, hi, whole)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=use_amp):
                terms = step(batch, step_generator)
            metrics = {}
            if isinstance(terms, tuple):
                terms, metrics = terms
            if torch.is_tensor(terms):
                terms = {"loss": terms}
            if not terms:
                raise ValueError(f"{desc}: the training step returned no loss term; give a loss a weight > 0")
            loss = sum(terms.values())
            finite = bool(torch.isfinite(loss))
            if world.active and distributed.check_step(desc, whole, finite, epoch + 1, index) and finite:
                raise FloatingPointError(f"{desc}: the training loss became non-finite on another rank at epoch "
                                         f"{epoch + 1}, step {index}; {nan_hint}")
            if not finite:
                parts = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in terms.items())
                where = f" on rank {world.rank}" if world.active else ""
                raise FloatingPointError(f"{desc}: the training loss became {loss.item()}{where} at epoch "
                                         f"{epoch + 1}, step {index} ({parts}); {nan_hint}")
            scaler.scale(loss).backward()
            if world.active:
                distributed.average_gradients(trained, batch_len(batch) / whole)
            scaler.step(optimizer)
            scaler.update()
            n = batch_len(batch)
            seen += n
            sums["loss"] = sums.get("loss", 0.0) + loss.item() * n
            named = {**terms, **metrics} if len(terms) > 1 or "loss" not in terms else metrics
            for k, v in named.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v) * n
        if world.active:
            seen, sums = distributed.reduce_sums(seen, sums)
        if seen == 0:
            raise ValueError(f"{desc}: epoch {epoch + 1} had no training batch; the training data is empty")
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                  **{f"train_{k}": v / seen for k, v in sums.items()}}
        if world.active:  # rank 0's BatchNorm statistics everywhere; its validation and time in every record
            distributed.broadcast_module(model, buffers_only=True)
            distributed.broadcast_module(companions, buffers_only=True)
            record = distributed.main_value(_finish_record, record, validate, model, started)
        else:
            record = _finish_record(record, validate, model, started)
        if monitor.improves(record, best):
            best, best_epoch, stale, best_state = record, epoch + 1, 0, _cpu_state(model)
        else:
            stale += 1

        def persist():
            log.add(record)
            _save_epoch(ckpt, model, record, best_epoch == epoch + 1)
            if ckpt.state is not None:
                _save_state(ckpt, model, optimizer, generator, epoch + 1, best_epoch, stale, log.history,
                            best_state, companions)

        if not world.is_main:
            log.add(record)  # in memory only (run_dir None here)
        distributed.on_main(persist)  # one process: just persist(); several: the others wait while rank 0 writes
        shown = postfix(record) if postfix is not None else {k: record[k] for k in ("train_loss", *show) if k in record}
        bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
        if on_epoch_end is not None:
            on_epoch_end(record)
        stopped = patience is not None and stale >= patience
    bar.close()
    if restore == "best" and best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(log.history, best_epoch, best, best_state, stopped)


def _make_run_dir(ckpt: Checkpoints) -> None:
    ckpt.run_dir.mkdir(parents=True, exist_ok=True)
    if ckpt.epochs:
        (ckpt.run_dir / "epochs").mkdir(exist_ok=True)


def _finish_record(record: dict, validate, model: nn.Module, started: float) -> dict:
    """The epoch's record with the validation values and the seconds it took."""
    record = dict(record)
    if validate is not None:
        record.update(validate(model))
    record["seconds"] = round(time.perf_counter() - started, 4)
    return record


def _save_epoch(ckpt: Checkpoints, model: nn.Module, record: dict, is_best: bool) -> None:
    if ckpt.run_dir is None or not (ckpt.best or ckpt.last or ckpt.epochs):
        return
    from .. import __version__

    weights = model.state_dict()
    meta = {**ckpt.metadata, "epoch": record["epoch"], "topokd_version": __version__,
            **{k: v for k, v in record.items() if k.startswith("val_")}}
    if ckpt.keeps_epoch(record["epoch"]):
        save_checkpoint(ckpt.run_dir / "epochs" / f"epoch-{record['epoch']:03d}.safetensors", weights, meta)
    if ckpt.best and is_best:
        save_checkpoint(ckpt.run_dir / "best.safetensors", weights, meta)
    if ckpt.last:
        save_checkpoint(ckpt.run_dir / "last.safetensors", weights, meta)


def _save_state(ckpt: Checkpoints, model, optimizer, generator, epoch, best_epoch, stale, history, best_state,
                companions=None):
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if companions is not None:
        tensors.update({f"companion.{k}": v for k, v in companions.state_dict().items()})
    tensors.update(opt_tensors)
    tensors.update({f"best.{k}": v for k, v in (best_state or {}).items()})
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    engine = {"state_version": STATE_VERSION, "epoch": epoch, "best_epoch": best_epoch, "stale": stale,
              "optimizer": opt_meta, "history": history}
    save_checkpoint(ckpt.state, tensors, {**ckpt.metadata, "engine": engine})


def _restore_state(ckpt: Checkpoints, model, optimizer, generator, companions=None):
    path = ckpt.state
    tensors, meta = load_checkpoint(path)
    engine = meta.get("engine")
    if not isinstance(engine, dict):
        raise CheckpointError(f"{path} is not a training state (no 'engine' entry); cannot resume from it")
    if engine.get("state_version", 0) > STATE_VERSION:
        raise CheckpointError(f"{path} was written by a newer topokd (training state {engine['state_version']}); "
                              "upgrade topokd to resume it")
    for key in ("model", "kind", "pi_params"):
        if key in ckpt.metadata and meta.get(key) != ckpt.metadata[key]:
            raise CheckpointError(f"cannot resume from {path}: its {key} is {meta.get(key)}, this run has "
                                  f"{ckpt.metadata[key]}; start without resume or use another run folder")
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"cannot resume from {path}: its weights do not fit this model "
                              f"({str(err).splitlines()[0]})") from None
    if companions is not None:
        companions.load_state_dict({k[len("companion."):]: v for k, v in tensors.items()
                                    if k.startswith("companion.")})
    restore_optimizer(optimizer, tensors, engine["optimizer"])
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    best_state = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")} or None
    return int(engine["epoch"]), int(engine["best_epoch"]), int(engine["stale"]), list(engine["history"]), best_state


def copy_frozen(model: nn.Module) -> nn.Module:
    """A frozen, eval-mode copy (teachers never train during distillation)."""
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen
