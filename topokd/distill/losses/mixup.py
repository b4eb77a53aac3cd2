"""Mixup (Zhang et al., ICLR 2018), partial mixup (with MIX-KD's exact PMU draw), mixed soft targets and
the mixed-label criterion."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import _nonnegative, _tensor, _unit_interval

__all__ = ["mixkd_partial_mixup", "mixup", "mixup_criterion", "mixup_targets", "partial_mixup"]


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


def _beta_vector(alpha: float, n: int, generator: torch.Generator | None, beta_rng=None) -> np.ndarray:
    """``n`` independent Beta(alpha, alpha) draws as float64 (ones when alpha == 0).

    From ``beta_rng.beta(alpha, alpha, n)`` when ``beta_rng`` is given (e.g.
    ``numpy.random`` itself, as MIX-KD); otherwise from a numpy Generator
    seeded by one ``torch.randint`` draw of ``generator`` (so a seeded torch
    generator reproduces it).
    """
    if alpha == 0:
        return np.ones(n)
    if beta_rng is None:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=_gen_device(generator)).item())
        beta_rng = np.random.default_rng(seed)
    return np.asarray(beta_rng.beta(alpha, alpha, n), dtype=np.float64).reshape(n)


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


def _mix(x: Tensor, i_a: Tensor, i_b: Tensor, lam: np.ndarray) -> Tensor:
    """``x[i_a] * fl(lam) + x[i_b] * fl(1 - lam)`` per sample, both coefficients rounded to x's dtype."""
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    a = torch.as_tensor(lam, device=x.device).to(x.dtype).view(shape)
    b = torch.as_tensor(1.0 - lam, device=x.device).to(x.dtype).view(shape)
    return x[i_a] * a + x[i_b] * b


def partial_mixup(x: Tensor, y: Tensor, alpha: float = 1.0, fraction: float = 0.5,
                  generator: torch.Generator | None = None, replace: bool = False, *, per_sample: bool = True):
    """Mixup applied to only part of the batch, with one mixing coefficient per
    sample (partial mixup, after MIX-KD: Choi, Jeon, Shukla & Turaga, WACV 2023).

    ``fraction`` is the share of the batch that gets mixed.  The draw, in this
    order from ``generator`` (the global torch RNG when None):

    1. ``lam_i ~ Beta(alpha, alpha)`` independently for every sample
       (``per_sample=True``, default, as MIX-KD's PMU) or one ``lam`` for the
       whole batch (``per_sample=False``, topokd before this option);
       ``lam = 1`` (no mixing) when ``alpha == 0``;
    2. a random permutation ``perm`` of the batch (the partners);
    3. ``k = floor(fraction * B + 0.5)`` (``fraction * B`` rounded half up)
       index draws choosing the samples to mix: ``k`` distinct indices
       (``replace=False``, default: exactly ``k`` samples are mixed) or ``k``
       indices drawn with replacement (``replace=True``: duplicates occur, so
       ``B (1 - (1 - 1/B)^k)`` distinct samples on average).

    A chosen sample ``i`` becomes ``lam_i * x[i] + (1 - lam_i) * x[perm[i]]``
    (from the original batch; ``perm[i] == i`` leaves it unchanged); the other
    samples are returned untouched, so ``y`` stays aligned with the output.

    This is *not* MIX-KD's draw: MIX-KD's ``partmixup`` marks the samples it
    leaves *unmixed*, with replacement, and shuffles both sides; its
    ``partmixup = 0.9`` mixes about 40 % of a 64-sample batch, not 10 % (nor
    90 %).  :func:`mixkd_partial_mixup` reproduces that draw exactly.

    Returns ``(x_mix, y_a, y_b, lam)``: ``y_a = y``, ``y_b[i] = y[perm[i]]``
    for mixed samples and ``y[i]`` otherwise, and ``lam`` a ``(B,)`` tensor
    (dtype of ``x``) holding ``lam_i`` for mixed and 1.0 for unmixed samples.
    Use :func:`mixup_criterion` with a per-sample (``reduction="none"``)
    criterion, or :func:`mixup_targets` for soft targets.  The draw depends
    only on ``B`` and the generator, so replaying the generator state mixes
    another tensor of the same batch (e.g. its persistence images) with the
    same partners and coefficients.
    """
    b = _check_batch(x, y)
    alpha = _nonnegative(alpha, "alpha")
    fraction = _unit_interval(fraction, "fraction")
    lam = _beta_vector(alpha, b, generator) if per_sample else np.full(b, _beta(alpha, generator))
    perm = _permutation(b, generator, x.device)
    k = int(math.floor(fraction * b + 0.5))
    if replace:
        idx = torch.randint(0, b, (k,), generator=generator, device=_gen_device(generator)).to(x.device)
    else:
        idx = _permutation(b, generator, x.device)[:k]
    mixed = torch.zeros(b, dtype=torch.bool)
    mixed[idx.cpu()] = True
    lam = np.where(mixed.numpy(), lam, 1.0)
    partner = torch.where(mixed.to(x.device), perm, torch.arange(b, device=x.device))
    x_mix = _mix(x, torch.arange(b, device=x.device), partner, lam)
    lam_vec = torch.as_tensor(lam, device=x.device).to(x.dtype)
    return x_mix, y, y[partner], lam_vec


def mixkd_partial_mixup(x: Tensor, y: Tensor, alpha: float = 1.0, partmixup: float = 0.9,
                        generator: torch.Generator | None = None, *, beta_rng=None):
    """MIX-KD's partial mixup ("PMU"), drawn exactly as in the authors' code
    (Choi, Jeon, Shukla & Turaga, "Understanding the Role of Mixup in Knowledge
    Distillation: An Empirical Study", WACV 2023; hchoi71/MIX-KD
    ``helper/loops_mixstd.py``, ``PMU``).

    In this order:

    1. ``rp1 = randperm(B)``, ``rp2 = randperm(B)`` (torch, ``generator``);
    2. ``lam_i ~ Beta(alpha, alpha)`` for every sample (all ones when
       ``alpha == 0``, MIX-KD's ``mixup=False``), float64;
    3. ``ridx = randint(0, B, (int(B * partmixup),))`` (torch, ``generator``;
       Python's ``int`` truncates) and ``lam[ridx] = 1``: ``partmixup`` marks,
       with replacement, the samples left *unmixed*;
    4. ``x_mix = x[rp1] * fl(lam) + x[rp2] * fl(1 - lam)``, with both
       coefficients rounded to ``x``'s dtype (MIX-KD's
       ``torch.from_numpy(b).float()`` and ``torch.from_numpy(1 - b).float()``).

    A sample is mixed unless one of the ``k = int(B * partmixup)`` draws hits
    it, so the expected mixed fraction is ``(1 - 1/B)^k``: 40.75 % for MIX-KD's
    defaults ``partmixup = 0.9``, ``B = 64`` (``k = 57``), although its
    ``--partmixup`` help text reads "0.9=10%".

    MIX-KD draws ``lam`` from numpy's global RNG (``numpy.random.beta``).
    Pass ``beta_rng=numpy.random`` (any object with a numpy-style
    ``beta(a, b, size)`` method) to do the same: with ``generator=None`` the
    whole draw then comes from the global torch and numpy RNGs, as in MIX-KD.
    With ``beta_rng=None`` (default) ``lam`` comes from a numpy Generator
    seeded by one ``torch.randint(0, 2**62, (1,))`` draw of ``generator``,
    taken at step 2, so a seeded torch generator alone reproduces everything.

    Returns ``(x_mix, y_a, y_b, lam)`` with ``y_a = y[rp1]``, ``y_b = y[rp2]``
    and ``lam`` a ``(B,)`` tensor (dtype of ``x``); MIX-KD's soft targets are
    ``mixup_targets(y_a, y_b, lam, num_classes)``.  Note that ``x_mix`` is in
    ``rp1`` order even for unmixed samples: use ``y_a``, not ``y``.
    """
    b = _check_batch(x, y)
    alpha = _nonnegative(alpha, "alpha")
    partmixup = _unit_interval(partmixup, "partmixup")
    rp1 = _permutation(b, generator, x.device)
    rp2 = _permutation(b, generator, x.device)
    lam = _beta_vector(alpha, b, generator, beta_rng).copy()
    ridx = torch.randint(0, b, (int(b * partmixup),), generator=generator, device=_gen_device(generator))
    lam[ridx.cpu().numpy()] = 1.0
    x_mix = _mix(x, rp1, rp2, lam)
    return x_mix, y[rp1], y[rp2], torch.as_tensor(lam, device=x.device).to(x.dtype)


def mixup_targets(y_a: Tensor, y_b: Tensor, lam, num_classes: int) -> Tensor:
    """Soft targets of a mixed batch: ``lam * onehot(y_a) + (1 - lam) * onehot(y_b)``, shape ``(B, num_classes)``.

    ``lam`` a number or a ``(B,)`` tensor; the result has ``lam``'s floating
    dtype (float32 for a number).  These are MIX-KD's ``targets_shuffle``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    lam_t = lam if isinstance(lam, Tensor) else torch.tensor(float(lam))
    if not lam_t.is_floating_point():
        lam_t = lam_t.float()
    if lam_t.ndim == 0:
        lam_t = lam_t.expand(y_a.shape[0])
    if lam_t.shape != y_a.shape or y_b.shape != y_a.shape:
        raise ValueError(
            f"y_a, y_b and lam must all have shape (B,), got {tuple(y_a.shape)}, {tuple(y_b.shape)} and "
            f"{tuple(lam_t.shape)}"
        )
    lam_t = lam_t.to(y_a.device)[:, None]
    one_a = F.one_hot(y_a.long(), num_classes).to(lam_t.dtype)
    one_b = F.one_hot(y_b.long(), num_classes).to(lam_t.dtype)
    return lam_t * one_a + (1 - lam_t) * one_b


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
