"""Shared checks and helpers of :mod:`topokd.compress` (private).

The bottom of the package's import graph: :mod:`.prune`, :mod:`.profile`,
:mod:`.quantize` and :mod:`.dynamic` import from here and never from each
other the other way round (``quantize -> profile`` is the one edge between
them), so what several of them need to know about a model lives here:
:func:`pruned_tensors` (masks of :mod:`torch.nn.utils.prune`) and
:class:`QuantizedBase` (recognising int8 models without importing the
quantisation module).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

#: Layers whose weights the pruning and quantisation utilities compress.
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
#: Layers with parameters that may sit beside them (normalisation: pruned
#: along with the channels they scale, kept in float when quantising).
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)
SUPPORTED = WEIGHT_LAYERS + NORM_LAYERS

#: Attribute on a model holding what was done to it (a list of dicts).
HISTORY_ATTR = "topokd_compression"


class CompressionError(ValueError):
    """A model, layer or setting the compression utilities cannot handle."""


class QuantizedBase(nn.Module):
    """Base class of the int8 models of :mod:`topokd.compress.quantize`
    (:class:`~topokd.compress.quantize.QuantizedModel`).

    Pruning refuses such models and profiling measures them through this
    interface, without importing the quantisation module (and torchao)."""

    def parameter_counts(self) -> dict:
        """``{"total", "trainable", "nonzero", ...}`` as :func:`topokd.compress.count_parameters`."""
        raise NotImplementedError

    def flop_counts(self) -> dict:
        """``{"flops", "macs", "by_op"}`` as :func:`topokd.compress.count_flops`."""
        raise NotImplementedError

    def tensor_bytes(self) -> int:
        """Bytes of tensor data in the serialized model."""
        raise NotImplementedError

    def save(self, f, *, metadata: dict | None = None) -> None:
        """Write the model to a path or binary file object."""
        raise NotImplementedError


def is_quantized(model) -> bool:
    return isinstance(model, QuantizedBase)


def pruned_tensors(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(module name, module, tensor name)`` of every tensor under a
    :mod:`torch.nn.utils.prune` reparametrisation."""
    from torch.nn.utils import prune as torch_prune

    out = []
    for name, module in model.named_modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, torch_prune.BasePruningMethod):
                out.append((name, module, hook._tensor_name))
    return out


def check_amount(amount, name: str = "amount") -> float:
    """``amount`` must be a number strictly inside (0, 1)."""
    if isinstance(amount, bool):
        raise TypeError(f"{name} must be a float in (0, 1), got {amount!r}")
    try:
        value = float(amount)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a float in (0, 1), got {amount!r}") from None
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must be in (0, 1) (the fraction to remove), got {amount!r}")
    return value


def check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    return model


def own_parameters(module: nn.Module) -> list[str]:
    return [n for n, p in module.named_parameters(recurse=False) if p is not None]


def unsupported_layers(model: nn.Module, ignore: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """``(name, type)`` of every module holding its own parameters whose type
    is not one of :data:`SUPPORTED` (modules under an ``ignore`` prefix and
    frozen modules, all of whose parameters have ``requires_grad=False``, are
    skipped)."""
    bad = []
    for name, module in model.named_modules():
        if any(name == p or name.startswith(p + ".") for p in ignore):
            continue
        params = [p for _, p in module.named_parameters(recurse=False)]
        if not params or isinstance(module, SUPPORTED):
            continue
        if all(not p.requires_grad for p in params):
            continue
        bad.append((name or "<root>", type(module).__name__))
    return bad


def require_supported(model: nn.Module, what: str, ignore: tuple[str, ...] = ()) -> None:
    bad = unsupported_layers(model, ignore)
    if bad:
        listed = ", ".join(f"{n} ({t})" for n, t in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise CompressionError(f"{what} supports Conv1d, Conv2d, Linear and BatchNorm1d/2d layers; "
                               f"{type(model).__name__} has unsupported layer(s) {listed}")


def weight_layers(model: nn.Module, layers=None) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs to compress: every Conv1d/Conv2d/Linear of
    ``model``, or the ones named in ``layers`` (each must exist and be one of
    those types)."""
    modules = dict(model.named_modules())
    if layers is None:
        found = [(n, m) for n, m in modules.items() if isinstance(m, WEIGHT_LAYERS)]
        if not found:
            raise CompressionError(f"{type(model).__name__} has no Conv1d, Conv2d or Linear layer to compress")
        return found
    if isinstance(layers, str):
        layers = [layers]
    out = []
    for name in layers:
        if name not in modules or name == "":
            import difflib

            close = difflib.get_close_matches(str(name), [n for n in modules if n], n=4)
            raise CompressionError(f"{type(model).__name__} has no layer {name!r}"
                                   + (f"; did you mean {close}?" if close else ""))
        module = modules[name]
        if not isinstance(module, WEIGHT_LAYERS):
            raise CompressionError(f"layer {name!r} is a {type(module).__name__}; only Conv1d, Conv2d and "
                                   "Linear weights can be pruned or quantised")
        out.append((name, module))
    if not out:
        raise CompressionError("layers is empty: name at least one Conv1d, Conv2d or Linear layer")
    return out


def work_copy(model: nn.Module, inplace: bool) -> nn.Module:
    return model if inplace else deepcopy_model(model)


def deepcopy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` that also works on models pruned with
    :mod:`torch.nn.utils.prune`: their ``weight`` attribute is the non-leaf
    ``orig * mask`` of the last forward, which deepcopy refuses; it is
    recomputed without autograd first (the next forward recomputes it anyway)."""
    from torch.nn.utils import prune as torch_prune

    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, torch_prune.BasePruningMethod):
                name = hook._tensor_name
                with torch.no_grad():
                    setattr(module, name, hook.apply_mask(module))
    return copy.deepcopy(model)


def history(model) -> list[dict]:
    return list(getattr(model, HISTORY_ATTR, []) or [])


def add_history(model, record: dict) -> None:
    setattr(model, HISTORY_ATTR, history(model) + [dict(record)])


def as_input(example) -> torch.Tensor:
    if isinstance(example, (tuple, list)):
        if len(example) != 1:
            raise TypeError("example_input must be one tensor (models here take a single input)")
        example = example[0]
    if not torch.is_tensor(example):
        raise TypeError(f"example_input must be a torch.Tensor, got {type(example).__name__}")
    return example


def batch_of(example: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``batch_size`` samples shaped like ``example`` (its samples repeated)."""
    if example.dim() < 1 or example.shape[0] < 1:
        raise ValueError(f"example_input needs a leading batch axis, got shape {tuple(example.shape)}")
    reps = -(-batch_size // example.shape[0])
    return example.repeat(reps, *([1] * (example.dim() - 1)))[:batch_size].contiguous()


def iter_batches(data, batch_size: int = 32):
    """Input tensors from a tensor (split in batches), a DataLoader, or any
    iterable of tensors / ``(x, y, ...)`` tuples / ``{"x": ...}`` dicts."""
    if torch.is_tensor(data):
        for lo in range(0, data.shape[0], batch_size):
            yield data[lo:lo + batch_size]
        return
    for item in data:
        if torch.is_tensor(item):
            yield item
        elif isinstance(item, (tuple, list)) and item and torch.is_tensor(item[0]):
            yield item[0]
        elif isinstance(item, dict) and torch.is_tensor(item.get("x")):
            yield item["x"]
        elif hasattr(item, "signal") and torch.is_tensor(item.signal):  # topokd.distill.trainer.Batch
            yield item.signal
        else:
            raise TypeError(f"cannot take an input tensor from a calibration item of type {type(item).__name__}")
