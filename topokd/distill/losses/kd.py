"""Logit distillation: Hinton KD (with the logit standardisation of Sun et
al. 2024), the CE + KD objective, and weighted multi-teacher KD.

The weight of the KD term is called ``kd_weight`` throughout topokd
(:func:`kd_objective`, :class:`KDCrossEntropyLoss`,
:func:`topokd.compress.prune.kd_finetune`); ``lam`` is its deprecated name.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import _check_labels, _logits_pair, _nonnegative, _positive, _tensor, _unit_interval, _weights

__all__ = ["KDCrossEntropyLoss", "KDLoss", "MultiTeacherKDLoss", "kd_objective", "standardize_logits"]


def _renamed_kd_weight(kd_weight, lam, where: str):
    """``lam`` is the deprecated name of ``kd_weight``."""
    if lam is None:
        return kd_weight
    warnings.warn(f"{where}(lam=...) is deprecated: the KD weight is called kd_weight", DeprecationWarning,
                  stacklevel=3)
    return lam


def standardize_logits(z: Tensor, eps: float = 1e-7, unbiased: bool = False) -> Tensor:
    """Per-sample logit standardisation (Sun et al., CVPR 2024, Eq. 6).

    ``z_std = (z - mean(z)) / (std(z) + eps)`` over the class axis (last
    axis).  ``std`` is the population standard deviation
    ``sqrt(mean((z - mean)^2))`` as in the paper; ``unbiased=True`` uses the
    Bessel-corrected ``torch.std`` of the authors' code (a factor
    ``sqrt((K - 1) / K)`` on the result for ``K`` classes).
    """
    _tensor(z, "z")
    _nonnegative(eps, "eps")
    if unbiased and z.shape[-1] < 2:
        raise ValueError(f"unbiased standard deviation needs >= 2 classes, got shape {tuple(z.shape)}")
    mean = z.mean(dim=-1, keepdim=True)
    std = z.std(dim=-1, keepdim=True, correction=1 if unbiased else 0)
    return (z - mean) / (std + eps)


def _kd(student: Tensor, teacher: Tensor, tau: float, standardize: bool, eps: float) -> Tensor:
    if standardize:
        student, teacher = standardize_logits(student, eps), standardize_logits(teacher, eps)
    log_p_s = F.log_softmax(student / tau, dim=1)
    log_p_t = F.log_softmax(teacher / tau, dim=1)
    # KL(p_t || p_s) summed over classes, averaged over the batch ("batchmean")
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1).mean()
    return kl * tau**2


class KDLoss(nn.Module):
    r"""Vanilla knowledge distillation (Hinton, Vinyals & Dean, "Distilling the
    Knowledge in a Neural Network", NIPS DL workshop 2015).

    .. math::
        L = \tau^2 \, \frac{1}{B} \sum_b \mathrm{KL}\big(\mathrm{softmax}(z_t/\tau)
            \,\|\, \mathrm{softmax}(z_s/\tau)\big)

    (``batchmean`` reduction: KL summed over classes, averaged over the batch).
    The ``tau^2`` factor keeps gradient magnitudes comparable across
    temperatures.

    With ``standardize=True`` both logit vectors are first standardised per
    sample, ``z -> (z - mean) / (std + eps)`` (Sun et al., "Logit
    Standardization in Knowledge Distillation", CVPR 2024; population std as
    in the paper, see :func:`standardize_logits`), *then* divided by
    ``temperature``, which plays the role of the paper's base temperature;
    the ``tau^2`` factor is kept, as in the authors' code.  The loss is then
    invariant to per-sample shifts and positive rescalings of either logit
    vector.

    Args:
        temperature: ``tau > 0`` (default 4.0).
        standardize: apply logit standardisation (default False).
        eps: added to the std when standardising (default 1e-7).

    ``forward(student_logits, teacher_logits)`` with both ``(B, num_classes)``;
    teacher logits are detached.  Returns a scalar.
    """

    def __init__(self, temperature: float = 4.0, standardize: bool = False, eps: float = 1e-7):
        super().__init__()
        self.temperature = _positive(temperature, "temperature")
        self.standardize = bool(standardize)
        self.eps = _nonnegative(eps, "eps")

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        _logits_pair(student_logits, teacher_logits)
        return _kd(student_logits, teacher_logits.detach(), self.temperature, self.standardize, self.eps)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, standardize={self.standardize}"


def kd_objective(ce: Tensor, kd: Tensor, kd_weight: float | None = None, *, lam: float | None = None) -> Tensor:
    """The usual distillation objective ``(1 - kd_weight) * ce + kd_weight * kd``, ``kd_weight`` in [0, 1].

    ``lam=`` is the deprecated name of ``kd_weight``.
    """
    if kd_weight is not None and lam is not None:
        raise TypeError("kd_objective: pass kd_weight only (lam is its deprecated name)")
    kd_weight = _renamed_kd_weight(kd_weight, lam, "kd_objective")
    if kd_weight is None:
        raise TypeError("kd_objective() missing the KD weight: kd_objective(ce, kd, kd_weight)")
    kd_weight = _unit_interval(kd_weight, "kd_weight")
    return (1.0 - kd_weight) * ce + kd_weight * kd


class KDCrossEntropyLoss(nn.Module):
    r"""Hard-label cross-entropy plus KD (Hinton et al. 2015):

    .. math:: L = (1 - w)\,\mathrm{CE}(z_s, y) + w\, \mathrm{KD}_\tau(z_s, z_t)

    with ``CE`` averaged over the batch, ``KD`` as in :class:`KDLoss` and
    ``w = kd_weight``.

    Args:
        temperature: KD temperature (default 4.0).
        kd_weight: weight of the KD term, in [0, 1] (default 0.5; ``lam`` is
            its deprecated name).
        standardize: logit standardisation in the KD term (default False).

    ``forward(student_logits, teacher_logits, labels)``; ``labels`` are
    ``(B,)`` class indices.
    """

    def __init__(self, temperature: float = 4.0, kd_weight: float = 0.5, standardize: bool = False, *,
                 lam: float | None = None):
        super().__init__()
        if lam is not None and kd_weight != 0.5:
            raise TypeError("KDCrossEntropyLoss: pass kd_weight only (lam is its deprecated name)")
        kd_weight = _renamed_kd_weight(kd_weight, lam, "KDCrossEntropyLoss")
        self.kd = KDLoss(temperature, standardize=standardize)
        self.kd_weight = _unit_interval(kd_weight, "kd_weight")

    @property
    def lam(self) -> float:
        """Deprecated name of :attr:`kd_weight`."""
        warnings.warn("KDCrossEntropyLoss.lam is deprecated: use .kd_weight", DeprecationWarning, stacklevel=2)
        return self.kd_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, labels: Tensor) -> Tensor:
        _logits_pair(student_logits, teacher_logits)
        _check_labels(labels, student_logits)
        ce = F.cross_entropy(student_logits, labels)
        return kd_objective(ce, self.kd(student_logits, teacher_logits), self.kd_weight)

    def extra_repr(self) -> str:
        return f"kd_weight={self.kd_weight}"


class MultiTeacherKDLoss(nn.Module):
    r"""Weighted multi-teacher KD, as in topological KD for wearable sensor data
    (Jeon et al.: a persistence-image teacher and a raw-signal teacher, weights
    0.7 and 0.3):

    .. math:: L = \sum_k w_k \, \mathrm{KD}_\tau(z_s, z_{t_k})

    Each term is :class:`KDLoss`.  The weights are used as given (not
    renormalised); the defaults sum to one.

    Args:
        weights: one non-negative weight per teacher, not all zero
            (default ``(0.7, 0.3)``).
        temperature: KD temperature (default 4.0).
        standardize: logit standardisation in every term (default False).

    ``forward(student_logits, teacher_logits)`` where ``teacher_logits`` is a
    sequence with exactly ``len(weights)`` tensors, each shaped like the
    student logits; all are detached.
    """

    def __init__(self, weights: Sequence[float] = (0.7, 0.3), temperature: float = 4.0, standardize: bool = False):
        super().__init__()
        self.weights = _weights(weights)
        self.kd = KDLoss(temperature, standardize=standardize)

    def forward(self, student_logits: Tensor, teacher_logits: Sequence[Tensor]) -> Tensor:
        if isinstance(teacher_logits, Tensor) or not isinstance(teacher_logits, Sequence):
            raise TypeError("teacher_logits must be a list or tuple with one logit tensor per teacher")
        if len(teacher_logits) != len(self.weights):
            raise ValueError(
                f"got {len(teacher_logits)} teacher logit tensors but {len(self.weights)} weights "
                f"{self.weights}; pass one weight per teacher"
            )
        total = 0.0
        for k, (w, t) in enumerate(zip(self.weights, teacher_logits)):
            _logits_pair(student_logits, t, t_name=f"teacher_logits[{k}]")
            total = total + w * self.kd(student_logits, t)
        return total

    def extra_repr(self) -> str:
        return f"weights={self.weights}"
