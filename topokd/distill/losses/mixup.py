"""Mixup (Zhang et al., ICLR 2018), partial mixup and the mixed-label criterion."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ._checks import _nonnegative, _tensor, _unit_interval

__all__ = ["mixup", "mixup_criterion", "partial_mixup"]


def _check_batch(x, y) -> int:
    _tensor(x, "x")
    if x.ndim < 1:
        raise ValueError(f"x must be batched (B, ...), got shape {tuple(x.shape)}")
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"x and y must have the same batch size, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return x.shape[0]


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    """lam ~ Beta(alpha, alpha), reproducible from a torch generator (1.0 when alpha == 0)."""
    if alpha == 0:
        return 1.0
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=_gen_device(generator)).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _gen_device(generator: torch.Generator | None):
    return generator.device if generator is not None else "cpu"


def _permutation(n: int, generator: torch.Generator | None, device) -> Tensor:
    return torch.randperm(n, generator=generator, device=_gen_device(generator)).to(device)


def mixup(x: Tensor, y: Tensor, alpha: float = 1.0, generator: torch.Generator | None = None):
    """Mixup (Zhang et al., ICLR 2018).

    ``lam ~ Beta(alpha, alpha)`` (``lam = 1``, i.e. no mixing, when
    ``alpha == 0``), a random permutation ``perm`` of the batch, and
    ``x_mix = lam * x + (1 - lam) * x[perm]``.

    Returns ``(x_mix, y_a, y_b, lam)`` with ``y_a = y``, ``y_b = y[perm]`` and
    ``lam`` a Python float; train with :func:`mixup_criterion`.  All
    randomness comes from ``generator`` (a ``torch.Generator``; the global
    torch RNG when None), so a seeded generator reproduces the result.
    """
    b = _check_batch(x, y)
    alpha = _nonnegative(alpha, "alpha")
    lam = _beta(alpha, generator)
    perm = _permutation(b, generator, x.device)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam


def partial_mixup(x: Tensor, y: Tensor, alpha: float = 1.0, fraction: float = 0.5,
                  generator: torch.Generator | None = None, replace: bool = False):
    """Mixup applied to only part of the batch (partial mixup, as in the study of
    mixup in knowledge distillation).

    One ``lam ~ Beta(alpha, alpha)`` and one random permutation ``perm`` of
    the batch (the partners) are drawn as in :func:`mixup`; then
    ``k = floor(fraction * B + 0.5)`` (``fraction * B`` rounded half up)
    index draws choose the samples to mix:

    * ``replace=False``: ``k`` distinct indices (without replacement), so
      exactly ``k`` samples are mixed;
    * ``replace=True``: the reference code's behaviour, ``k`` indices drawn
      *with* replacement, so duplicates occur and usually fewer than ``k``
      distinct samples get mixed.

    A chosen sample ``i`` becomes ``lam * x[i] + (1 - lam) * x[perm[i]]``
    (from the original batch; ``perm[i] == i`` leaves it unchanged); the other
    samples are returned untouched.

    Returns ``(x_mix, y_a, y_b, lam)``: ``y_a = y``, ``y_b[i] = y[perm[i]]``
    for mixed samples and ``y[i]`` otherwise, and ``lam`` a ``(B,)`` tensor
    (dtype of ``x``) holding ``lam`` for mixed and 1.0 for unmixed samples.
    Use :func:`mixup_criterion` with a per-sample (``reduction="none"``)
    criterion.
    """
    b = _check_batch(x, y)
    alpha = _nonnegative(alpha, "alpha")
    fraction = _unit_interval(fraction, "fraction")
    lam = _beta(alpha, generator)
    perm = _permutation(b, generator, x.device)
    k = int(math.floor(fraction * b + 0.5))
    if replace:
        idx = torch.randint(0, b, (k,), generator=generator, device=_gen_device(generator)).to(x.device)
    else:
        idx = _permutation(b, generator, x.device)[:k]
    mixed = torch.zeros(b, dtype=torch.bool, device=x.device)
    mixed[idx] = True
    lam_vec = torch.where(mixed, torch.tensor(lam, dtype=x.dtype, device=x.device),
                          torch.ones((), dtype=x.dtype, device=x.device))
    shape = (b,) + (1,) * (x.ndim - 1)
    x_mix = torch.where(mixed.view(shape), lam * x + (1 - lam) * x[perm], x)
    partner = torch.where(mixed, perm, torch.arange(b, device=x.device))
    return x_mix, y, y[partner], lam_vec


def mixup_criterion(criterion: Callable[[Tensor, Tensor], Tensor], pred: Tensor, y_a: Tensor, y_b: Tensor,
                    lam) -> Tensor:
    """Loss for mixed inputs: ``lam * criterion(pred, y_a) + (1 - lam) * criterion(pred, y_b)``.

    ``lam`` a number or 0-d tensor (from :func:`mixup`): ``criterion`` may
    reduce as it likes.  ``lam`` a ``(B,)`` tensor (from
    :func:`partial_mixup`): ``criterion`` must return per-sample losses
    ``(B,)`` (e.g. ``nn.CrossEntropyLoss(reduction="none")``) and the result
    is the batch mean of ``lam_i * l_a,i + (1 - lam_i) * l_b,i``.
    """
    if isinstance(lam, Tensor) and lam.ndim > 0:
        if lam.ndim != 1 or lam.shape[0] != pred.shape[0]:
            raise ValueError(
                f"per-sample lam must have shape (B,) matching pred {tuple(pred.shape)}, got {tuple(lam.shape)}"
            )
        la, lb = criterion(pred, y_a), criterion(pred, y_b)
        if la.shape != lam.shape or lb.shape != lam.shape:
            raise ValueError(
                f"with a per-sample lam the criterion must return per-sample losses of shape {tuple(lam.shape)}, "
                f"got {tuple(la.shape)}; use e.g. nn.CrossEntropyLoss(reduction='none')"
            )
        return (lam * la + (1 - lam) * lb).mean()
    lam = float(lam)
    if not 0 <= lam <= 1:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    return lam * criterion(pred, y_a) + (1 - lam) * criterion(pred, y_b)
