"""Pruning: unstructured magnitude masks, structured channel removal, schedules.

Functions
---------
:func:`prune_unstructured`
    L1 (magnitude) unstructured pruning of the ``weight`` of every
    Conv1d/Conv2d/Linear (or of the named ``layers``), per layer
    (:func:`torch.nn.utils.prune.l1_unstructured`: each layer loses
    ``round(amount * n_layer)`` weights) or globally
    (:func:`torch.nn.utils.prune.global_unstructured`: ``round(amount *
    n_total)`` weights over all the layers, the smallest magnitudes wherever
    they are).  The layers keep torch's reparametrisation (``weight_orig``
    and ``weight_mask``; ``weight`` is recomputed before each forward), so
    fine-tuning keeps the pruned weights at zero; :func:`finalize` makes it
    permanent.  Shapes do not change, so dense kernels are not faster:
    the gain is in a compressed archive or sparse kernels.
:func:`prune_structured`
    Filter/channel pruning that *physically removes* channels with the
    maintained `torch-pruning <https://github.com/VainF/Torch-Pruning>`_
    library (``pip install topokd[compress]``): its ``DependencyGraph``
    traces the model once on ``example_input`` and groups every coupled
    tensor (a conv's output channels, the next BatchNorm, the next conv's
    input channels, residual additions that tie channels of several
    layers together); each group is ranked by the L1 norm of its weights
    (``MagnitudeImportance(p=1)``, Li et al. 2017) and the lowest
    ``amount`` fraction of channels is removed from every tensor of the
    group (``BasePruner``, the successor of ``MagnitudePruner``).  Convs,
    BatchNorms and Linears shrink, so MACs and latency drop.  The output
    layer (the model's ``fc`` / last Linear) keeps its outputs (the classes);
    the input channels of the first layer are never touched.  Since a
    channel is removed from both sides of a conv, the parameter count falls
    by about ``1 - (1 - amount)^2``.
:func:`iterative_prune`
    ``steps`` rounds of prune -> ``fine_tune(model)`` up to ``amount``
    (cumulative targets ``amount * i / steps``, or ``1 - (1 - amount)^(i /
    steps)`` with ``schedule="geometric"``).
:func:`finalize`
    :func:`torch.nn.utils.prune.remove` on every pruned tensor: no
    ``*_orig`` / ``*_mask`` left in the ``state_dict``, the zeros stay.
:func:`kd_finetune` / :func:`make_fine_tune`
    A few epochs of ``(1 - kd_weight) * CE + kd_weight * KD`` (Hinton KD via
    :class:`topokd.distill.losses.KDLoss`; plain CE without a teacher) on
    ``(X, y)`` tensors: the ``fine_tune`` callback of the schedules.

Every function works on a deep copy and returns it (``inplace=True``
changes the given model, and structured pruning does so only once it has
succeeded).  A model is pruned once: a second :func:`prune_unstructured` /
:func:`prune_structured` on it raises :class:`CompressionError` (use
:func:`iterative_prune`, or prune the original with the final amount).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import prune as torch_prune

from ._common import (
    CompressionError,
    add_history,
    as_input,
    check_amount,
    check_model,
    history,
    is_quantized,
    pruned_tensors,
    require_supported,
    weight_layers,
    work_copy,
)

METHODS = ("unstructured", "global", "structured")
SCHEDULES = ("linear", "geometric")


# ---------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------
def is_pruned(model: nn.Module) -> bool:
    """Whether the model carries pruning masks (``*_mask`` buffers) or was
    pruned by this module before (its compression history says so)."""
    return bool(pruned_tensors(model)) or any(r.get("op") == "prune" for r in history(model))


def _refuse_repruning(model: nn.Module) -> None:
    masked = pruned_tensors(model)
    if masked:
        name, _, tensor = masked[0]
        raise CompressionError(f"the model is already pruned: layer {name!r} has {tensor}_mask; a model is pruned "
                               "once (use iterative_prune for several rounds, or prune the original model with "
                               "the final amount)")
    done = [r for r in history(model) if r.get("op") == "prune"]
    if done:
        raise CompressionError(f"the model was already pruned ({done[-1].get('method')}, amount "
                               f"{done[-1].get('amount')}); a model is pruned once (use iterative_prune, or prune "
                               "the original model with the final amount)")
    if any(r.get("op") == "quantize" for r in history(model)):
        raise CompressionError("the model is quantised; prune the float model before quantising it")


def _refuse_quantized(model) -> None:
    if is_quantized(model) or isinstance(model, torch.fx.GraphModule):
        raise CompressionError(f"cannot prune a quantised / exported model ({type(model).__name__}); prune the "
                               "float model, then quantise")


# ---------------------------------------------------------------------------
# unstructured
# ---------------------------------------------------------------------------
def _zeros_in_mask(module: nn.Module) -> int:
    mask = getattr(module, "weight_mask", None)
    return 0 if mask is None else int((mask == 0).sum())


def _unstructured_to(targets, sparsity: float, scope: str) -> None:
    """Bring ``targets`` to ``sparsity`` (cumulative, exact up to rounding)."""
    if scope == "layer":
        for _, module in targets:
            n = module.weight.numel()
            extra = int(round(sparsity * n)) - _zeros_in_mask(module)
            if extra > 0 or not hasattr(module, "weight_mask"):
                torch_prune.l1_unstructured(module, "weight", amount=max(extra, 0))
    else:
        total = sum(m.weight.numel() for _, m in targets)
        extra = int(round(sparsity * total)) - sum(_zeros_in_mask(m) for _, m in targets)
        if extra > 0 or not all(hasattr(m, "weight_mask") for _, m in targets):
            torch_prune.global_unstructured([(m, "weight") for _, m in targets],
                                            pruning_method=torch_prune.L1Unstructured, amount=max(extra, 0))


def prune_unstructured(model: nn.Module, amount: float, *, scope: str = "layer", layers=None,
                       inplace: bool = False) -> nn.Module:
    """Magnitude (L1) unstructured pruning of Conv1d/Conv2d/Linear weights.

    ``scope="layer"``: every layer loses ``round(amount * n)`` of its own
    weights; ``scope="global"``: ``round(amount * N)`` over all ``layers``
    together.  ``layers`` names the modules (default: every
    Conv1d/Conv2d/Linear).  Masks stay attached (``weight_orig`` /
    ``weight_mask``) until :func:`finalize`.
    """
    check_model(model)
    _refuse_quantized(model)
    amount = check_amount(amount)
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    _refuse_repruning(model)
    weight_layers(model, layers)  # validate names / types on the original
    out = work_copy(model, inplace)
    targets = weight_layers(out, layers)
    _unstructured_to(targets, amount, scope)
    add_history(out, {"op": "prune", "method": "unstructured" if scope == "layer" else "global",
                      "amount": amount, "layers": [n for n, _ in targets]})
    return out


# ---------------------------------------------------------------------------
# structured
# ---------------------------------------------------------------------------
def _require_torch_pruning():
    try:
        import torch_pruning as tp
    except ImportError as err:  # pragma: no cover - the compress extra is in dev
        raise ImportError("structured pruning needs the torch-pruning package: pip install 'topokd[compress]' "
                          f"({err})") from None
    return tp


def _output_layer(model: nn.Module) -> list[nn.Module]:
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return [fc]
    for attr in ("classifier", "head"):
        m = getattr(model, attr, None)
        if isinstance(m, nn.Linear):
            return [m]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


def _check_structured_model(model: nn.Module) -> None:
    require_supported(model, "structured pruning")
    from ..distill.models import ResNetBasicBlock

    for name, module in model.named_modules():
        if isinstance(module, ResNetBasicBlock) and module.shortcut is None and module.extra_channels:
            raise CompressionError(f"layer {name!r}: a ResNet block with a zero-padding shortcut "
                                   "(shortcut='pad') ties its channels to positions, which channel pruning "
                                   "cannot follow; use shortcut='projection' or unstructured pruning")
        if isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.groups != 1:
            raise CompressionError(f"layer {name!r}: grouped convolutions (groups={module.groups}) are not "
                                   "supported by structured pruning here")


def _layer_shapes(model: nn.Module) -> dict[str, list[int]]:
    return {n: list(m.weight.shape) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}


def _sync_attributes(model: nn.Module) -> None:
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear) and hasattr(model, "num_features"):
        model.num_features = fc.in_features


class _StructuredPruner:
    """torch-pruning's BasePruner around a model, in eval mode while tracing
    (so BatchNorm statistics are not updated by the trace)."""

    def __init__(self, model: nn.Module, example_input, amount: float, *, steps: int = 1,
                 schedule: str = "linear", global_pruning: bool = False, ignored_layers=None):
        tp = _require_torch_pruning()
        x = as_input(example_input)
        ignored = list(ignored_layers) if ignored_layers is not None else _output_layer(model)
        fractions = [r / amount for r in _cumulative(amount, steps, schedule)]

        def scheduler(pruning_ratio, n):  # torch-pruning also asks it for head ratios (0 here)
            return [0.0] + [pruning_ratio * f for f in fractions]

        was_training = model.training
        model.eval()
        try:
            with torch.enable_grad():
                self.pruner = tp.pruner.BasePruner(
                    model, x[:1], importance=tp.importance.MagnitudeImportance(p=1),
                    pruning_ratio=amount, iterative_steps=steps, iterative_pruning_ratio_scheduler=scheduler,
                    ignored_layers=ignored, global_pruning=global_pruning)
        except Exception as err:
            raise CompressionError(f"torch-pruning could not trace {type(model).__name__} "
                                   f"({type(err).__name__}: {err})") from None
        finally:
            model.train(was_training)
        self.model, self.example = model, x[:1]

    def step(self) -> None:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                self.pruner.step()
            _sync_attributes(self.model)
            with torch.no_grad():
                self.model(self.example)
        except Exception as err:
            raise CompressionError(f"structured pruning left {type(self.model).__name__} unable to run "
                                   f"({type(err).__name__}: {err}); a layer couples channels in a way "
                                   "torch-pruning does not follow") from None
        finally:
            self.model.train(was_training)


def _commit(target: nn.Module, source: nn.Module) -> nn.Module:
    """Make ``target`` (the caller's object) become ``source`` (inplace=True)."""
    target.__dict__.clear()
    target.__dict__.update(source.__dict__)
    return target


def prune_structured(model: nn.Module, amount: float, example_input, *, global_pruning: bool = False,
                     ignored_layers=None, inplace: bool = False) -> nn.Module:
    """Remove the ``amount`` fraction of channels (lowest L1 norm) from every
    prunable group, physically (see the module docstring).

    ``example_input`` is one batch the model accepts (only its first sample
    is used to trace).  ``ignored_layers`` (modules of ``model``) keep their
    output channels; default: the output layer.  ``global_pruning=True``
    ranks channels across layers (uneven widths) instead of per layer.
    """
    check_model(model)
    _refuse_quantized(model)
    amount = check_amount(amount)
    _refuse_repruning(model)
    _check_structured_model(model)
    x = as_input(example_input)
    with torch.no_grad():
        was = model.training
        model.eval()
        try:
            expected = model(x[:1]).shape
        finally:
            model.train(was)
    work = copy.deepcopy(model)
    ignored = _map_modules(model, work, ignored_layers)
    before = _layer_shapes(work)
    pruner = _StructuredPruner(work, x, amount, global_pruning=global_pruning, ignored_layers=ignored)
    pruner.step()
    _check_output(work, x, expected)
    add_history(work, {"op": "prune", "method": "structured", "amount": amount, "global": bool(global_pruning),
                       "shapes_before": before, "shapes_after": _layer_shapes(work)})
    return _commit(model, work) if inplace else work


def _map_modules(original: nn.Module, clone: nn.Module, modules):
    if modules is None:
        return None
    names = {id(m): n for n, m in original.named_modules()}
    clone_modules = dict(clone.named_modules())
    out = []
    for m in modules:
        if isinstance(m, str):
            if m not in clone_modules:
                raise CompressionError(f"ignored_layers names {m!r}, which is not a layer of the model")
            out.append(clone_modules[m])
        elif id(m) in names:
            out.append(clone_modules[names[id(m)]])
        else:
            raise CompressionError(f"ignored_layers holds a {type(m).__name__} that is not part of the model")
    return out


def _check_output(model: nn.Module, x: torch.Tensor, expected) -> None:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            got = model(x[:1]).shape
    finally:
        model.train(was)
    if got != expected:
        raise CompressionError(f"structured pruning changed the output shape from {tuple(expected)} to "
                               f"{tuple(got)}; pass the output layer in ignored_layers")


# ---------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------
def _cumulative(amount: float, steps: int, schedule: str) -> list[float]:
    if schedule == "linear":
        return [amount * i / steps for i in range(1, steps + 1)]
    return [1.0 - (1.0 - amount) ** (i / steps) for i in range(1, steps + 1)]


def iterative_prune(model: nn.Module, amount: float, *, method: str = "structured", steps: int = 3,
                    fine_tune: Callable[[nn.Module], object] | None = None, example_input=None,
                    schedule: str = "linear", layers=None, inplace: bool = False) -> nn.Module:
    """``steps`` rounds of prune -> ``fine_tune(model)``, reaching ``amount``.

    ``method``: ``"unstructured"`` (per layer), ``"global"`` (global
    unstructured) or ``"structured"`` (channels; needs ``example_input``).
    Round ``i`` prunes to the cumulative target ``amount * i / steps``
    (``schedule="linear"``) or ``1 - (1 - amount) ** (i / steps)``
    (``"geometric"``: the same fraction of the remaining weights each
    round).  Unstructured masks stay attached during fine-tuning (pruned
    weights stay zero) and after; call :func:`finalize` at the end.
    ``fine_tune`` receives the model being pruned (train it in place; e.g.
    :func:`make_fine_tune`); ``None`` skips fine-tuning.
    """
    check_model(model)
    _refuse_quantized(model)
    amount = check_amount(amount)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if fine_tune is not None and not callable(fine_tune):
        raise TypeError("fine_tune must be a callable taking the model, or None")
    _refuse_repruning(model)
    targets_by_round = _cumulative(amount, steps, schedule)
    if method == "structured":
        if example_input is None:
            raise ValueError("structured pruning needs example_input (one batch the model accepts)")
        if layers is not None:
            raise ValueError("layers applies to unstructured pruning; structured pruning follows the dependency graph")
        _check_structured_model(model)
        x = as_input(example_input)
        work = copy.deepcopy(model)
        before = _layer_shapes(work)
        with torch.no_grad():
            work.eval()
            expected = work(x[:1]).shape
        pruner = _StructuredPruner(work, x, amount, steps=steps, schedule=schedule)
        for _ in range(steps):
            pruner.step()
            _check_output(work, x, expected)
            if fine_tune is not None:
                fine_tune(work)
        add_history(work, {"op": "prune", "method": "structured", "amount": amount, "steps": steps,
                           "schedule": schedule, "shapes_before": before, "shapes_after": _layer_shapes(work)})
        return _commit(model, work) if inplace else work
    weight_layers(model, layers)
    out = work_copy(model, inplace)
    targets = weight_layers(out, layers)
    scope = "layer" if method == "unstructured" else "global"
    for target in targets_by_round:
        _unstructured_to(targets, target, scope)
        if fine_tune is not None:
            fine_tune(out)
    add_history(out, {"op": "prune", "method": method, "amount": amount, "steps": steps, "schedule": schedule,
                      "layers": [n for n, _ in targets]})
    return out


def finalize(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Make pruning permanent: :func:`torch.nn.utils.prune.remove` on every
    pruned tensor, so the ``state_dict`` holds plain ``weight`` tensors (with
    their zeros) and no ``weight_orig`` / ``weight_mask``.  A model without
    masks is returned unchanged (a copy unless ``inplace``)."""
    check_model(model)
    out = work_copy(model, inplace)
    for _, module, tensor in pruned_tensors(out):
        torch_prune.remove(module, tensor)
    leftovers = [k for k in out.state_dict() if k.endswith(("_orig", "_mask"))]
    if leftovers:  # pragma: no cover - would be a torch change
        raise RuntimeError(f"finalize left reparametrised tensors {leftovers[:4]}")
    return out


# ---------------------------------------------------------------------------
# fine-tuning with knowledge distillation
# ---------------------------------------------------------------------------
def _as_tensor(x, dtype) -> torch.Tensor:
    t = x if torch.is_tensor(x) else torch.as_tensor(x)
    return t.to(dtype)


def kd_finetune(model: nn.Module, X, y, *, teacher: nn.Module | None = None, epochs: int = 3,
                batch_size: int = 32, lr: float = 1e-3, optimizer: str = "adam", weight_decay: float = 0.0,
                temperature: float = 4.0, kd_weight: float = 0.9, seed: int = 0,
                wrap_optimizer: Callable | None = None, progress: bool = False,
                state: str | None = None, resume: bool = False) -> list[dict]:
    """Train ``model`` in place for ``epochs`` on ``(X, y)`` with the
    training engine (:func:`topokd.engine.fit`).

    Loss per batch: ``(1 - kd_weight) * CE(student, y) + kd_weight *
    KD_tau(student, teacher)`` with Hinton's KD (:class:`KDLoss`,
    ``temperature``) when a ``teacher`` is given (kept frozen in eval mode),
    plain cross-entropy otherwise.  ``X`` is ``(N, C, T)`` (or whatever the
    model takes), ``y`` ``(N,)`` integer labels; batches of one sample are
    skipped (BatchNorm).  ``optimizer``: ``"adam"``, ``"adamw"`` or
    ``"sgd"`` (momentum 0.9, no Nesterov); ``wrap_optimizer(opt)`` may wrap
    it (e.g. :class:`topokd.compress.psg.PSG`).  ``state``: a training-state
    file written after every epoch, from which ``resume=True`` continues
    exactly.  Returns per-epoch ``{"epoch", "loss", "acc"}`` (training
    batches).  The model keeps the last epoch's weights, in eval mode.
    """
    from ..distill.losses import KDLoss
    from ..engine import Checkpoints, build_optimizer, fit, tensor_batches

    X = _as_tensor(X, torch.float32)
    y = _as_tensor(y, torch.long)
    if X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"X and y must hold the same, non-zero number of samples, got {X.shape[0]} and {y.shape[0]}")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    if not 0.0 <= kd_weight <= 1.0:
        raise ValueError(f"kd_weight must be in [0, 1], got {kd_weight}")
    opt = build_optimizer(model.parameters(), optimizer, lr=lr, weight_decay=weight_decay, momentum=0.9,
                          nesterov=False)
    if wrap_optimizer is not None:
        opt = wrap_optimizer(opt)
    kd = KDLoss(temperature) if teacher is not None else None
    if teacher is not None:
        teacher.eval()

    def step(batch, generator):
        xb, yb = batch
        logits = model(xb)
        terms = {"ce": F.cross_entropy(logits, yb)}
        if kd is not None:
            with torch.no_grad():
                t_logits = teacher(xb).float()
            terms = {"ce": (1.0 - kd_weight) * terms["ce"], "kd": kd_weight * kd(logits.float(), t_logits)}
        return terms, {"acc": (logits.argmax(1) == yb).float().mean()}

    result = fit(model, step, tensor_batches(X, y, batch_size=batch_size, min_batch=2), epochs=epochs,
                 optimizer=opt, device=X.device, seed=seed, amp=False,
                 checkpoints=Checkpoints(state=state) if state else None, resume=resume, restore="last",
                 progress=progress, desc="fine-tune", show=("train_acc",), nan_hint="lower lr")
    model.eval()
    return [{"epoch": r["epoch"], "loss": r["train_loss"], "acc": r["train_acc"]} for r in result.history]


def make_fine_tune(X, y, **kwargs) -> Callable[[nn.Module], list[dict]]:
    """A ``fine_tune(model)`` callback running :func:`kd_finetune` with
    ``kwargs`` (``teacher=``, ``epochs=``, ``lr=``, ...) on ``(X, y)``."""
    def fine_tune(model: nn.Module) -> list[dict]:
        return kd_finetune(model, X, y, **kwargs)

    return fine_tune


def accuracy(model: nn.Module, X, y, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``(X, y)`` tensors (eval mode, no grad)."""
    X = _as_tensor(X, torch.float32)
    y = _as_tensor(y, torch.long)
    model.eval()
    correct = 0
    with torch.no_grad():
        for lo in range(0, X.shape[0], batch_size):
            correct += int((model(X[lo:lo + batch_size]).argmax(1) == y[lo:lo + batch_size]).sum())
    return correct / max(X.shape[0], 1)


__all__ = ["accuracy", "finalize", "is_pruned", "iterative_prune", "kd_finetune", "make_fine_tune",
           "prune_structured", "prune_unstructured", "pruned_tensors"]
