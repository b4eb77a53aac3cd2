"""Data-parallel training under ``torchrun``: the engine's side of it.

When a script (or ``topokd``) is started by ``torchrun --nproc-per-node N``
(the environment holds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), :func:`topokd.engine.fit` trains the model
data-parallel on the ``WORLD_SIZE`` processes.  With ``WORLD_SIZE`` unset or
1, nothing here touches ``torch.distributed`` and :func:`fit` is exactly the
single-process loop.

How an epoch is split (the choice, and why)
-------------------------------------------
Every rank runs the caller's ``batches(generator)`` with the same seeded
generator, so every rank sees the same stream of whole batches; the engine
cuts each batch of ``n`` samples into ``WORLD_SIZE`` contiguous parts of
``n // W`` or ``n // W + 1`` samples (:func:`part`, the split of
``numpy.array_split``) and rank ``r`` trains on part ``r``.  So:

* the *global* batch is the configured ``batch_size`` -- the same samples a
  single process trains on in the same step, the same number of steps per
  epoch, the same learning-rate schedule: a config means the same
  optimisation on 1 or N processes (no learning-rate rescaling needed);
* every sample of an epoch is trained on by exactly one rank (the
  guarantee of ``DistributedSampler``), for *any* ``batches`` callable --
  :func:`~topokd.engine.tensor_batches`, the PI-Net's sampled and
  augmented streams, the distillation splits, or a user's own -- without it
  exposing indices;
* gradients are averaged as ``sum_r (n_r / n) * grad_r`` (:func:`average_gradients`),
  which is the full-batch mean gradient also when the parts are unequal
  (DDP's plain ``1/W`` average is that only for equal parts).

The price: each rank builds the whole batch before taking its part (an
index gather for in-memory tensors -- negligible; for the PI-Net's
augmented stream the augmentation and the exact PIs of the whole batch are
computed on every rank, which bounds the speed-up when the PIs cost as much
as the training step).  A batch of fewer than ``W`` samples (only a short
last batch can be) is skipped on every rank.

Gradients are averaged by the engine, not by wrapping the model in
``DistributedDataParallel``: the engine's callers call their modules
directly inside ``step`` (the distiller runs the student more than once,
calls feature hooks, and trains loss modules -- ``companions`` -- and
parameter subsets beside the model), and DDP only synchronises forwards that
go through its wrapper.  The engine all-reduces, after ``backward``, the
gradients of every parameter the optimizer holds, in flat buckets (DDP's
arithmetic, without DDP's overlap of communication with the backward pass).
As with DDP (and ``broadcast_buffers=True``), the initial weights and
buffers are rank 0's, BatchNorm layers normalise with the statistics of the
rank's part of the batch (no SyncBatchNorm: it does not run on CPU), and
the running statistics kept are rank 0's (broadcast after every epoch).

Randomness: the batch stream's generator is the same on every rank (saved
in the training state as in a single process); the ``step``'s generator and
torch's global generator (augmentation, mixup, dropout) are seeded per rank
and epoch from ``(seed, epoch, rank)`` (:func:`rank_seed`), so ranks draw
different augmentations and a resumed run continues exactly.

Outputs: only rank 0 writes (metrics, checkpoints, the training state) and
shows progress; every other rank waits at a barrier while it writes
(:func:`on_main`), and an error there is raised on every rank instead of
leaving them waiting.  Every rank ends an epoch with the same record: the
training sums are all-reduced (:func:`all_sum`), the validation runs on rank
0 on the whole validation set and its values are broadcast.  Resuming, every
rank loads the training state (the run folder must be on a file system all
ranks see -- on several nodes, a shared one).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, is_dataclass, replace

import torch

#: Elements per all-reduce bucket of :func:`average_gradients` (~16 MiB of float32).
BUCKET_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class World:
    """The processes of this run: ``rank`` (0-based), ``size`` (how many),
    ``local_rank`` (rank on this node: its GPU).  ``active``: more than one
    process; ``is_main``: rank 0 (the one that writes)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be a whole number (torchrun sets it)") from None


def world() -> World:
    """This process's :class:`World`: from an initialised process group, else
    from ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (defaults 0, 1, 0: one process)."""
    if _initialized():
        import torch.distributed as dist

        return World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    size, rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0)
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={size} do not describe a process of a run "
                         "(need WORLD_SIZE >= 1 and 0 <= RANK < WORLD_SIZE)")
    return World(rank, size, _env_int("LOCAL_RANK", 0))


def _initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def init(backend: str | None = None) -> World:
    """Join the run's process group, once (later calls return at once); a
    single process (``WORLD_SIZE`` unset or 1) returns its :class:`World`
    without touching ``torch.distributed``.

    ``backend``: default ``"cpu:gloo,cuda:nccl"`` when CUDA is available
    (NCCL for GPU tensors, gloo for the engine's small CPU reductions), else
    ``"gloo"``.  With CUDA, the process's GPU becomes ``cuda:LOCAL_RANK``
    (so ``device="cuda"`` means each rank's own GPU).  The group is destroyed
    at exit.
    """
    w = world()
    if not w.active or _initialized():
        return w
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 asks for distributed training, but this torch build has no "
                           "torch.distributed")
    if torch.cuda.is_available() and w.local_rank < torch.cuda.device_count():
        torch.cuda.set_device(w.local_rank)
    if backend is None:
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    atexit.register(_destroy)
    return world()


def _destroy() -> None:
    if _initialized():
        import torch.distributed as dist

        dist.destroy_process_group()


def rank_device(device: torch.device, w: World) -> torch.device:
    """``cuda`` without an index is this rank's GPU, ``cuda:LOCAL_RANK``."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", w.local_rank)
    return device


def rank_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of rank ``rank``'s step generator in 0-based ``epoch``
    (NumPy's ``SeedSequence`` of the three: independent streams)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed) & (2**63 - 1), int(epoch), int(rank)]).generate_state(1, np.uint64)[0]
               >> 1)


def part(n: int, rank: int, size: int) -> tuple[int, int]:
    """``(start, stop)`` of rank ``rank``'s part of ``n`` samples: ``size``
    contiguous parts, the first ``n % size`` one sample longer
    (``numpy.array_split``)."""
    base, extra = divmod(int(n), int(size))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard_batch(batch, start: int, stop: int, n: int):
    """Samples ``start:stop`` of a batch of ``n``: a tensor; a tuple, list or
    dict of them; or a dataclass (e.g. the distiller's ``Batch``) whose tensor
    fields hold the samples.  Entries that are not tensors of ``n`` rows (a
    ``None`` PI, a scalar) are kept as they are; a batch of another type is
    a ``TypeError``."""
    if not (torch.is_tensor(batch) or isinstance(batch, (tuple, list, dict))
            or (is_dataclass(batch) and not isinstance(batch, type))):
        raise TypeError(f"distributed training cannot split a batch of type {type(batch).__name__}: "
                        "batches(generator) must yield tensors, tuples/lists/dicts of tensors, or dataclasses "
                        "of tensors")
    return _shard(batch, start, stop, n)


def _shard(value, start: int, stop: int, n: int):
    if torch.is_tensor(value):
        return value[start:stop] if value.dim() > 0 and len(value) == n else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(_shard(v, start, stop, n) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_shard(v, start, stop, n) for v in value)
    if isinstance(value, dict):
        return {k: _shard(v, start, stop, n) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _shard(getattr(value, f.name), start, stop, n)
                                 for f in fields(value) if f.init})
    return value


def all_sum(values: list[float]) -> list[float]:
    """The sums over all ranks of ``values`` (float64, on the CPU: gloo)."""
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def reduce_sums(seen: int, sums: dict[str, float]) -> tuple[int, dict[str, float]]:
    """An epoch's sample count and per-term sums, summed over the ranks.
    The ranks must have logged the same terms (they run the same step); a
    mismatch is an error, not a silently shifted record."""
    keys = sorted(sums)
    first = broadcast_object(keys)
    if all_sum([float(keys != first)])[0]:
        raise RuntimeError(f"the ranks logged different training terms (rank 0: {first}, this rank: {keys}); "
                           "the step must return the same terms on every rank")
    totals = all_sum([float(seen), *(sums[k] for k in keys)])
    return int(round(totals[0])), dict(zip(keys, totals[1:]))


def broadcast_object(obj):
    """Rank 0's ``obj`` (any picklable value) on every rank."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _module_tensors(module: torch.nn.Module, buffers_only: bool = False) -> list[torch.Tensor]:
    tensors = [] if buffers_only else [p.data for p in module.parameters()]
    return tensors + [b for b in module.buffers()]


def broadcast_module(module: torch.nn.Module | None, buffers_only: bool = False) -> None:
    """Overwrite ``module``'s parameters and buffers (``buffers_only``: its
    buffers, e.g. BatchNorm running statistics) with rank 0's, in place."""
    import torch.distributed as dist

    if module is None:
        return
    for t in _module_tensors(module, buffers_only):
        dist.broadcast(t, src=0)


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    """The parameters ``optimizer`` trains, each once, in a fixed order."""
    seen, params = set(), []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def average_gradients(params: Iterable[torch.nn.Parameter], weight: float) -> None:
    """Replace each ``p.grad`` by ``sum over ranks of weight_r * grad_r``, in
    place (``weight``: this rank's ``n_r / n``).  A parameter without a
    gradient on some ranks counts as zero there; one without a gradient on
    every rank keeps ``None`` (an optimizer skips it, as in one process).
    Gradients travel in flat buckets of :data:`BUCKET_ELEMENTS` per device
    and dtype."""
    import torch.distributed as dist

    params = [p for p in params if p.requires_grad]
    if not params:
        return
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.float64)
    dist.all_reduce(present)
    groups: dict[tuple, list[torch.nn.Parameter]] = {}
    for p, count in zip(params, present.tolist()):
        if count == 0:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        groups.setdefault((p.grad.device, p.grad.dtype), []).append(p)
    for group in groups.values():
        for bucket in _buckets(group):
            flat = torch.cat([p.grad.reshape(-1) for p in bucket]).mul_(weight)
            dist.all_reduce(flat)
            offset = 0
            for p in bucket:
                size = p.grad.numel()
                p.grad.copy_(flat[offset:offset + size].view_as(p.grad))
                offset += size


def _buckets(params: list[torch.nn.Parameter]) -> Iterable[list[torch.nn.Parameter]]:
    bucket, size = [], 0
    for p in params:
        if bucket and size + p.numel() > BUCKET_ELEMENTS:
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel()
    if bucket:
        yield bucket


def any_rank(flag: bool) -> int:
    """How many ranks have ``flag`` set (every rank learns the count)."""
    return int(round(all_sum([float(bool(flag))])[0]))


def check_step(desc: str, whole: int, finite: bool, epoch: int, step: int) -> int:
    """One all-reduce per step: how many ranks have a non-finite loss, and a
    check that every rank split a batch of the same size (a ``batches``
    stream that is not the same on every rank would silently train on
    overlapping or missing samples)."""
    non_finite, total = all_sum([float(not finite), float(whole)])
    size = world().size
    if total != whole * size:
        raise RuntimeError(f"{desc}: at epoch {epoch}, step {step} the ranks' batches differ in size (this rank: "
                           f"{whole}, mean {total / size:g}); batches(generator) must yield the same batches on "
                           "every rank for the same generator")
    return int(round(non_finite))


def on_main(fn: Callable, *args, **kwargs):
    """Run ``fn`` on rank 0 only, then let every rank go on (a barrier):
    returns ``fn``'s result on rank 0 and ``None`` elsewhere.  Without a
    process group (one process) it is just ``fn(*args, **kwargs)``.  If
    ``fn`` raises on rank 0, rank 0 re-raises it and the other ranks raise
    a ``RuntimeError`` naming it, so no rank is left waiting."""
    if not world().active:
        return fn(*args, **kwargs)
    init()
    error, result = None, None
    if world().is_main:
        try:
            result = fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 -- re-raised below, after the other ranks hear of it
            error = err
    message = broadcast_object(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if message is not None:
        raise RuntimeError(f"rank 0 failed while writing: {message}")
    return result


def main_value(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` computed on rank 0 and broadcast: every rank
    returns rank 0's value (errors as in :func:`on_main`)."""
    if not world().active:
        return fn(*args, **kwargs)
    value = on_main(fn, *args, **kwargs)
    return broadcast_object(value)


def is_main() -> bool:
    """Whether this process writes outputs: rank 0, or the only process."""
    return world().is_main


__all__ = ["BUCKET_ELEMENTS", "World", "all_sum", "any_rank", "average_gradients", "broadcast_module",
           "broadcast_object", "check_step", "init", "is_main", "main_value", "on_main", "optimizer_params", "part",
           "rank_device", "rank_seed", "reduce_sums", "shard_batch", "world"]
