"""Measure a model: parameters, MACs/FLOPs, serialized size, CPU latency, memory.

:func:`profile` gathers everything in one dict; the pieces are also public.

What each number is
-------------------
``params``
    ``total`` / ``trainable`` / ``nonzero`` over the model's *effective*
    parameters: for a layer pruned with :mod:`torch.nn.utils.prune` the
    masked ``weight`` (``weight_orig * weight_mask``) counts once, not
    ``weight_orig`` plus the mask; non-zero counts entries ``!= 0``.  For a
    :class:`~topokd.compress.quantize.QuantizedModel` they are the counts of
    the float model it was quantised from (same weights, stored in int8),
    with ``nonzero`` taken from the int8 weights.
``flops`` / ``macs``
    :class:`torch.utils.flop_counter.FlopCounterMode` on one forward at
    batch 1.  Its convention: one multiply-add = 2 FLOPs, and only matrix
    products and convolutions are counted (conv, linear/addmm, mm, bmm, ...;
    not BatchNorm, activations, pooling, additions, biases).  ``macs =
    flops / 2``.  Unstructured zeros are still counted (dense kernels
    multiply them); structured pruning lowers the count because the tensors
    shrink.  Quantised models report the MACs of their float graph (int8
    MACs; FlopCounterMode has no formulas for the oneDNN int8 ops).
``size_bytes``
    Bytes of the serialized model: float models -> their ``state_dict`` in
    safetensors (in memory, as :mod:`topokd.checkpoint` would write it, less
    the JSON header); quantised models -> the ``torch.export`` ``.pt2``
    archive (graph + int8 weights + scales) that
    :meth:`QuantizedModel.save` writes, since their activation scales live
    in the graph.  ``tensor_bytes`` is the part of it that is tensor data,
    ``size_zlib_bytes`` the size after ``zlib`` level 6 (shows what
    unstructured zeros would save in a compressed archive).
``latency``
    Per batch size: ``median_ms`` and ``iqr_ms`` (75th - 25th percentile)
    of ``repeats`` timed forwards (``time.perf_counter``, ``torch.no_grad``,
    eval mode) after ``warmup`` untimed ones, on CPU with the current
    ``torch.get_num_threads()`` (recorded as ``threads``; pass
    ``threads=`` to set it for the measurement).  Inputs are the
    ``example_input`` samples repeated to the batch size.
``memory``
    ``peak_bytes``: the peak of live bytes allocated through PyTorch's CPU
    allocator during one forward at the largest batch size, from
    :mod:`torch.profiler` with ``profile_memory=True`` (the allocation and
    free events replayed in time order).  Weights that exist before the
    call are not included; memory that a library allocates outside
    PyTorch's allocator (oneDNN scratch pads) is not seen.  ``None`` when the
    profiler gives no memory events.
"""

from __future__ import annotations

import io
import os
import re
import statistics
import sys
import tempfile
import time
import zlib
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from ._common import as_input, batch_of, check_model, is_quantized, weight_layers


def effective_parameters(model: nn.Module):
    """``(name, tensor, requires_grad)`` of the parameters a forward uses,
    with pruning reparametrisations resolved (``weight`` = orig * mask)."""
    for mod_name, module in model.named_modules():
        masks = {n[: -len("_mask")] for n, _ in module.named_buffers(recurse=False) if n.endswith("_mask")}
        for name, param in module.named_parameters(recurse=False):
            if param is None:
                continue
            full = f"{mod_name}.{name}" if mod_name else name
            if name.endswith("_orig") and name[: -len("_orig")] in masks:
                base = name[: -len("_orig")]
                value = getattr(module, base)
                yield (f"{mod_name}.{base}" if mod_name else base), value.detach(), param.requires_grad
            else:
                yield full, param.detach(), param.requires_grad


def count_parameters(model: nn.Module) -> dict:
    """``{"total", "trainable", "nonzero"}`` effective parameter counts (see module doc)."""
    check_model(model)
    if is_quantized(model):
        return model.parameter_counts()
    total = trainable = nonzero = 0
    for _, value, grad in effective_parameters(model):
        total += value.numel()
        trainable += value.numel() if grad else 0
        nonzero += int(torch.count_nonzero(value))
    return {"total": total, "trainable": trainable, "nonzero": nonzero}


def sparsity(model: nn.Module, layers=None) -> float:
    """Fraction of zero entries over the weights of ``layers`` (default: all
    Conv1d/Conv2d/Linear), pruning masks applied."""
    zeros = total = 0
    for _, module in weight_layers(model, layers):
        w = module.weight.detach()
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / total


def count_flops(model: nn.Module, example_input) -> dict:
    """``{"flops", "macs", "by_op"}`` of one forward on ``example_input[:1]``
    (FlopCounterMode: a multiply-add is 2 FLOPs; convolutions and matrix
    products only; ``macs = flops // 2``)."""
    from torch.utils.flop_counter import FlopCounterMode

    check_model(model)
    if is_quantized(model):
        return model.flop_counts()
    x = as_input(example_input)[:1]
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    by_op: dict[str, int] = {}
    for ops in counter.get_flop_counts().get("Global", {}).items():
        op, n = ops
        key = str(getattr(op, "__name__", op)).split(".")[0]
        by_op[key] = by_op.get(key, 0) + int(n)
    flops = int(counter.get_total_flops())
    return {"flops": flops, "macs": flops // 2, "by_op": by_op}


def state_dict_bytes(model: nn.Module) -> bytes:
    """The model's ``state_dict`` as safetensors bytes (no metadata)."""
    from safetensors.torch import save

    tensors = {}
    for k, v in model.state_dict().items():
        if torch.is_tensor(v):
            tensors[k] = v.detach().to("cpu").contiguous().clone()
    return save(tensors)


def serialize(model: nn.Module) -> tuple[bytes, str, int]:
    """``(bytes, format, tensor_bytes)``: safetensors of the state_dict for
    float models, the ``torch.export`` ``.pt2`` archive for quantised ones."""
    if is_quantized(model):
        buf = io.BytesIO()
        model.save(buf)
        return buf.getvalue(), "torch.export .pt2 (ExportedProgram archive: graph + int8 weights)", \
            model.tensor_bytes()
    data = state_dict_bytes(model)
    tensor_bytes = sum(v.numel() * v.element_size() for v in model.state_dict().values() if torch.is_tensor(v))
    return data, "safetensors (state_dict)", tensor_bytes


@contextmanager
def _threads(n):
    if n is None:
        yield torch.get_num_threads()
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield int(n)
    finally:
        torch.set_num_threads(before)


def measure_latency(model: nn.Module, example_input, batch_size: int = 1, *, repeats: int = 50, warmup: int = 10,
                    threads: int | None = None) -> dict:
    """CPU latency of ``model`` at ``batch_size``: median and IQR (ms) over
    ``repeats`` timed forwards after ``warmup`` untimed ones."""
    check_model(model)
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, batch_size >= 1; got {repeats}, {warmup}, {batch_size}")
    x = batch_of(as_input(example_input), int(batch_size))
    was_training = model.training
    model.eval()
    times = []
    try:
        with _threads(threads) as used, torch.no_grad():
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - start) * 1e3)
    finally:
        model.train(was_training)
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return {"batch_size": int(batch_size), "median_ms": float(med), "iqr_ms": float(q3 - q1),
            "mean_ms": float(statistics.fmean(times)), "repeats": repeats, "warmup": warmup, "threads": used}


#: What Kineto writes to the C-level stderr at every profiler start / stop.
_PROFILER_CHATTER = re.compile(rb"^USDT:.*profiler_(start|stop)\s*$")


@contextmanager
def _without_profiler_chatter():
    """Around a ``torch.profiler`` session only: capture file descriptor 2
    (Kineto prints ``USDT:... profiler_start`` / ``profiler_stop`` from C,
    past ``sys.stderr``) and write back everything except those lines, so
    real errors still reach the terminal."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError, OSError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True) if not _PROFILER_CHATTER.match(line)]
            if kept:
                os.write(2, b"".join(kept))


def peak_memory(model: nn.Module, example_input, batch_size: int = 1) -> int | None:
    """Peak live bytes allocated through PyTorch's CPU allocator during one
    forward at ``batch_size`` (torch.profiler ``profile_memory``); ``None``
    if the profiler records no memory events."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    x = batch_of(as_input(example_input), int(batch_size))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)  # first-call allocations (prepacking, caches) are not the steady state
            with _without_profiler_chatter(), \
                    torch_profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                model(x)
    finally:
        model.train(was_training)
    try:
        events = prof.profiler.kineto_results.events()
        mem = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    except Exception:  # the private event API moved: report "not measured"
        return None
    if not mem:
        return None
    live = peak = 0
    for _, nbytes in mem:
        live += nbytes
        peak = max(peak, live)
    return int(peak)


def profile(model: nn.Module, example_input, *, batch_sizes=(1, 32), repeats: int = 50, warmup: int = 10,
            threads: int | None = None, memory: bool = True) -> dict:
    """Everything at once (see the module docstring for the definitions)::

        {"params": {"total", "trainable", "nonzero"},
         "flops": int, "macs": int, "flops_by_op": {...},
         "size_bytes": int, "tensor_bytes": int, "size_zlib_bytes": int, "format": str,
         "latency": {"1": {"median_ms", "iqr_ms", ...}, "32": {...}},
         "memory": {"peak_bytes": int | None, "batch_size": int, "method": str}}
    """
    check_model(model)
    x = as_input(example_input)
    sizes = tuple(int(b) for b in batch_sizes)
    if not sizes or min(sizes) < 1:
        raise ValueError(f"batch_sizes must hold positive ints, got {batch_sizes!r}")
    flops = count_flops(model, x)
    data, fmt, tensor_bytes = serialize(model)
    out = {
        "params": count_parameters(model),
        "flops": flops["flops"],
        "macs": flops["macs"],
        "flops_by_op": flops["by_op"],
        "size_bytes": len(data),
        "tensor_bytes": int(tensor_bytes),
        "size_zlib_bytes": len(zlib.compress(data, 6)),
        "format": fmt,
        "latency": {str(b): measure_latency(model, x, b, repeats=repeats, warmup=warmup, threads=threads)
                    for b in sizes},
    }
    if memory:
        with _threads(threads):
            peak = peak_memory(model, x, max(sizes))
        out["memory"] = {"peak_bytes": peak, "batch_size": max(sizes),
                         "method": "torch.profiler profile_memory: peak live CPU-allocator bytes in one forward"}
    return out
