"""Logit distillation: Hinton KD (with the logit standardisation of Sun et
al. 2024), the CE + KD objective, weighted multi-teacher KD, and MIX-KD's
standardised-logit objective.

The weight of the KD term is called ``kd_weight`` throughout topokd
(:func:`kd_objective`, :class:`KDCrossEntropyLoss`,
:func:`topokd.compress.prune.kd_finetune`); ``lam`` is its deprecated name.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import (
    _check_labels,
    _choice,
    _logits_pair,
    _nonnegative,
    _positive,
    _tensor,
    _unit_interval,
    _weights,
)

__all__ = ["KDCrossEntropyLoss", "KDLoss", "MixSTDLoss", "MultiTeacherKDLoss", "kd_objective", "standardize_logits"]


def _renamed_kd_weight(kd_weight, lam, where: str):
    """``lam`` is the deprecated name of ``kd_weight``."""
    if lam is None:
        return kd_weight
    warnings.warn(f"{where}(lam=...) is deprecated: the KD weight is called kd_weight", DeprecationWarning,
                  stacklevel=3)
    return lam


def standardize_logits(z: Tensor, eps: float = 1e-7, unbiased: bool = True) -> Tensor:
    """Per-sample logit standardisation (Sun et al., "Logit Standardization in
    Knowledge Distillation", CVPR 2024).

    ``z_std = (z - mean(z)) / (std(z) + eps)`` over the class axis (last
    axis).  ``std`` is the Bessel-corrected standard deviation
    ``sqrt(sum((z - mean)^2) / (K - 1))`` by default (``unbiased=True``), as
    ``torch.std`` in the authors' ``normalize(logit)``
    (sunshangquan/logit-standardization-KD, ``mdistiller/distillers/KD.py``),
    with the same ``eps = 1e-7`` added to the std.  ``unbiased=False`` uses
    the population std ``sqrt(mean((z - mean)^2))``, which makes ``z_std``
    larger by ``sqrt(K / (K - 1))`` for ``K`` classes (15 % at ``K = 4``).
    """
    _tensor(z, "z")
    _nonnegative(eps, "eps")
    if unbiased and z.shape[-1] < 2:
        raise ValueError(f"unbiased standard deviation needs >= 2 classes, got shape {tuple(z.shape)}")
    mean = z.mean(dim=-1, keepdim=True)
    std = z.std(dim=-1, keepdim=True, correction=1 if unbiased else 0)
    return (z - mean) / (std + eps)


_REDUCTIONS = ("batchmean", "mean")


def _kd(student: Tensor, teacher: Tensor, tau: float, *, standardize: bool = False, eps: float = 1e-7,
        unbiased: bool = True, reduction: str = "batchmean", scale: float | None = None) -> Tensor:
    """``scale * sum_{b,c} p_t (log p_t - log p_s) / N`` with ``N = B`` (batchmean) or ``B * K`` (mean)."""
    if standardize:
        student = standardize_logits(student, eps, unbiased)
        teacher = standardize_logits(teacher, eps, unbiased)
    log_p_s = F.log_softmax(student / tau, dim=1)
    log_p_t = F.log_softmax(teacher / tau, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum()
    kl = kl / (student.shape[0] if reduction == "batchmean" else student.numel())
    return kl * (tau**2 if scale is None else scale)


def _scale(scale) -> float | None:
    return None if scale is None else _nonnegative(scale, "scale")


class KDLoss(nn.Module):
    r"""Vanilla knowledge distillation (Hinton, Vinyals & Dean, "Distilling the
    Knowledge in a Neural Network", NIPS DL workshop 2015).

    .. math::
        L = s \, \frac{1}{N} \sum_{b=1}^{B} \sum_{c=1}^{K} p_t^{(b,c)}
            \big(\log p_t^{(b,c)} - \log p_s^{(b,c)}\big), \qquad
        p = \mathrm{softmax}(z / \tau)

    with ``s = tau^2`` (default; ``scale=`` overrides it) and

    * ``reduction="batchmean"`` (default): ``N = B``, the KL divergence of each
      sample summed over classes and averaged over the batch -- the KL of
      Hinton et al. and of RepDistiller / mdistiller.
    * ``reduction="mean"``: ``N = B * K``, the default reduction of
      ``nn.KLDivLoss()``, which Jeon et al. use (jeunsom/TDA_KD ``train_ad.py``
      and jeunsom/TGD ``main_train.py``, ``TrainManager.train``): their KD term
      is ``T * T * nn.KLDivLoss()(log_softmax(z_s / T), softmax(z_t / T))``,
      so ``reduction="mean"`` reproduces it exactly, ``1 / K`` of the Hinton
      value.  We keep ``batchmean`` as the default because it is the KL
      divergence the method is defined with; ``"mean"`` silently shrinks the
      KD weight with the number of classes.

    The ``tau^2`` factor keeps gradient magnitudes comparable across
    temperatures.  Jeon et al. put it outside the KL (``lambda * T * T *
    KL``), which is the same as ``scale`` here.  In TDA_KD the factor and
    the softmax temperature differ: the softmax there is of
    ``2 * z / std(z)`` (Bessel std, no epsilon), i.e. temperature 1/2 on
    standardised logits, while the factor is ``T * T = 16``; reproduce it with
    ``KDLoss(0.5, standardize=True, eps=0.0, reduction="mean", scale=16.0)``
    (subtracting the mean changes nothing under the softmax).

    With ``standardize=True`` both logit vectors are first standardised per
    sample, ``z -> (z - mean) / (std + eps)`` (Sun et al., "Logit
    Standardization in Knowledge Distillation", CVPR 2024, code
    sunshangquan/logit-standardization-KD ``mdistiller/distillers/KD.py``:
    teacher and student alike, Bessel-corrected ``torch.std``, ``eps = 1e-7``;
    see :func:`standardize_logits`), *then* divided by ``temperature``, the
    paper's base temperature (the authors run it with ``--base-temp 2`` and
    KD weight 9); the ``tau^2`` factor is kept, as in their code.  The loss is
    then invariant to per-sample shifts and positive rescalings of either
    logit vector.  ``unbiased=False`` uses the population std instead.

    Args:
        temperature: ``tau > 0`` (default 4.0).
        standardize: apply logit standardisation (default False).
        eps: added to the std when standardising (default 1e-7).
        unbiased: Bessel-corrected std when standardising (default True).
        reduction: ``"batchmean"`` (default) or ``"mean"``.
        scale: factor on the KL, ``>= 0`` (default None: ``tau^2``).

    ``forward(student_logits, teacher_logits)`` with both ``(B, num_classes)``;
    teacher logits are detached.  Returns a scalar.
    """

    def __init__(self, temperature: float = 4.0, standardize: bool = False, eps: float = 1e-7, *,
                 unbiased: bool = True, reduction: str = "batchmean", scale: float | None = None):
        super().__init__()
        self.temperature = _positive(temperature, "temperature")
        self.standardize = bool(standardize)
        self.eps = _nonnegative(eps, "eps")
        self.unbiased = bool(unbiased)
        self.reduction = _choice(reduction, _REDUCTIONS, "reduction")
        self.scale = _scale(scale)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        _logits_pair(student_logits, teacher_logits)
        return _kd(student_logits, teacher_logits.detach(), self.temperature, standardize=self.standardize,
                   eps=self.eps, unbiased=self.unbiased, reduction=self.reduction, scale=self.scale)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, standardize={self.standardize}, reduction={self.reduction!r}"
                + (f", unbiased={self.unbiased}" if self.standardize else "")
                + (f", scale={self.scale}" if self.scale is not None else ""))


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
        eps, unbiased, reduction, scale: passed to :class:`KDLoss` (keyword
            only; defaults 1e-7, True, ``"batchmean"``, ``tau^2``).

    ``forward(student_logits, teacher_logits, labels)``; ``labels`` are
    ``(B,)`` class indices.
    """

    def __init__(self, temperature: float = 4.0, kd_weight: float = 0.5, standardize: bool = False, *,
                 lam: float | None = None, eps: float = 1e-7, unbiased: bool = True, reduction: str = "batchmean",
                 scale: float | None = None):
        super().__init__()
        if lam is not None and kd_weight != 0.5:
            raise TypeError("KDCrossEntropyLoss: pass kd_weight only (lam is its deprecated name)")
        kd_weight = _renamed_kd_weight(kd_weight, lam, "KDCrossEntropyLoss")
        self.kd = KDLoss(temperature, standardize=standardize, eps=eps, unbiased=unbiased, reduction=reduction,
                         scale=scale)
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

    Each term is :class:`KDLoss` with the options below.  The weights are used
    as given (not renormalised); the defaults sum to one.

    Jeon et al.'s code: jeunsom/TGD ``main_train.py`` computes
    ``lambda * T * T * (alpha * KL_1 + (1 - alpha) * KL_2)`` with
    ``nn.KLDivLoss()`` (reduction ``"mean"``, ``÷ B K``) at ``T = 4``, which is
    ``MultiTeacherKDLoss((alpha, 1 - alpha), 4.0, reduction="mean")`` times
    ``lambda``; jeunsom/TDA_KD ``train_ad.py`` computes
    ``0.7 * T * T * KL_1 + 0.3 * T * T * KL_2`` on ``2 z / std(z)``, which is
    ``MultiTeacherKDLoss((0.7, 0.3), 0.5, standardize=True, eps=0.0,
    reduction="mean", scale=16.0)`` (see :class:`KDLoss`).  The default
    reduction is ``"batchmean"``, the KL divergence itself.

    Args:
        weights: one non-negative weight per teacher, not all zero
            (default ``(0.7, 0.3)``).
        temperature: KD temperature (default 4.0).
        standardize: logit standardisation in every term (default False).
        eps, unbiased, reduction, scale: as in :class:`KDLoss` (keyword only;
            defaults 1e-7, True, ``"batchmean"``, ``tau^2``).

    ``forward(student_logits, teacher_logits)`` where ``teacher_logits`` is a
    sequence with exactly ``len(weights)`` tensors, each shaped like the
    student logits; all are detached.
    """

    def __init__(self, weights: Sequence[float] = (0.7, 0.3), temperature: float = 4.0, standardize: bool = False,
                 *, eps: float = 1e-7, unbiased: bool = True, reduction: str = "batchmean",
                 scale: float | None = None):
        super().__init__()
        self.weights = _weights(weights)
        self.kd = KDLoss(temperature, standardize=standardize, eps=eps, unbiased=unbiased, reduction=reduction,
                         scale=scale)

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
        return f"weights={self.weights}, reduction={self.kd.reduction!r}"


class MixSTDLoss(nn.Module):
    r"""The standardised-logit KD objective that MIX-KD trains with on mixed
    batches (Choi, Jeon, Shukla & Turaga, "Understanding the Role of Mixup in
    Knowledge Distillation: An Empirical Study", WACV 2023; code hchoi71/MIX-KD,
    ``distiller_zoo/MIXSTD.py``, ``MIXSTDLoss``):

    .. math::
        L = \gamma \, \frac1B \sum_b \sum_c -q^{(b,c)} \log \hat p_s^{(b,c)}
            + \alpha \, \frac1B \sum_b \mathrm{KL}\big(\hat p_t^{(b)} \,\|\, \hat p_s^{(b)}\big),
        \qquad \hat p = \mathrm{softmax}\Big(\frac{z}{\mathrm{std}(z) + \epsilon}\Big)

    ``std`` is the per-sample Bessel-corrected std over the classes (their
    ``torch.std``), applied to student and teacher alike; there is no
    temperature and no ``T^2`` factor, and the KL uses ``batchmean``.  ``q``
    are the (soft) targets: the mixed one-hot labels of a mixup batch
    (:func:`~topokd.distill.losses.mixup.mixup_targets`) or plain labels.
    Subtracting the mean (as :func:`standardize_logits` does) changes nothing
    under the softmax, so the KD term equals
    ``KDLoss(1.0, standardize=True, eps=eps)``.

    MIX-KD adds no epsilon (``eps=0.0`` reproduces it, up to floating-point
    rounding of the mean subtraction); the default
    ``eps = 1e-7`` (Sun et al.) keeps the loss finite for a constant logit row
    (e.g. a zero-initialised classifier), where MIX-KD's code divides by zero.

    Args:
        ce_weight: ``gamma`` (default 0.1, MIX-KD's ``-r/--gamma``).
        kd_weight: ``alpha`` (default 0.9, MIX-KD's ``-a/--alpha``).
        eps: added to the std (default 1e-7).
        unbiased: Bessel-corrected std (default True, as MIX-KD).

    ``forward(student_logits, teacher_logits, targets)``: ``targets`` are
    ``(B,)`` class indices or ``(B, num_classes)`` target probabilities;
    teacher logits are detached.  :meth:`terms` returns ``{"ce", "kd",
    "total"}`` (``ce`` and ``kd`` already weighted, as MIX-KD returns them).
    """

    def __init__(self, ce_weight: float = 0.1, kd_weight: float = 0.9, eps: float = 1e-7, unbiased: bool = True):
        super().__init__()
        self.ce_weight = _nonnegative(ce_weight, "ce_weight")
        self.kd_weight = _nonnegative(kd_weight, "kd_weight")
        self.eps = _nonnegative(eps, "eps")
        self.unbiased = bool(unbiased)

    def terms(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor) -> dict[str, Tensor]:
        _logits_pair(student_logits, teacher_logits)
        if isinstance(targets, Tensor) and targets.is_floating_point():
            if targets.shape != student_logits.shape:
                raise ValueError(
                    f"soft targets must have the logits' shape {tuple(student_logits.shape)}, got "
                    f"{tuple(targets.shape)}"
                )
        else:
            _check_labels(targets, student_logits, "targets")
            targets = F.one_hot(targets.long(), student_logits.shape[1]).to(student_logits.dtype)
        z_s = standardize_logits(student_logits, self.eps, self.unbiased)
        z_t = standardize_logits(teacher_logits.detach(), self.eps, self.unbiased)
        log_p_s = F.log_softmax(z_s, dim=1)
        ce = -(targets * log_p_s).sum() / student_logits.shape[0]
        log_p_t = F.log_softmax(z_t, dim=1)
        kd = (log_p_t.exp() * (log_p_t - log_p_s)).sum() / student_logits.shape[0]
        ce, kd = self.ce_weight * ce, self.kd_weight * kd
        return {"ce": ce, "kd": kd, "total": ce + kd}

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, targets: Tensor) -> Tensor:
        return self.terms(student_logits, teacher_logits, targets)["total"]

    def extra_repr(self) -> str:
        return f"ce_weight={self.ce_weight}, kd_weight={self.kd_weight}, eps={self.eps}"
