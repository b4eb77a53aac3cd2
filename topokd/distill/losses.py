"""Knowledge-distillation losses (one ``nn.Module`` per method, mdistiller style).

Logit losses
    :class:`KDLoss` (Hinton et al. 2015, optional logit standardisation of
    Sun et al. 2024), :class:`KDCrossEntropy` / :func:`kd_objective`,
    :class:`MultiTeacherKD`, :func:`standardize_logits`.
Feature losses
    :class:`AttentionTransfer` (Zagoruyko & Komodakis 2017), :class:`AMDLoss`
    (Jeon et al. 2023), :class:`SimilarityPreserving` and
    :class:`FusedSimilarityPreserving` (Tung & Mori 2019),
    :class:`FactorTransfer` with :class:`Paraphraser` / :class:`Translator`
    (Kim et al. 2018).
Self-distillation
    :class:`DDGSDLoss` (Xu & Liu 2019).
Mixup
    :func:`mixup`, :func:`partial_mixup`, :func:`mixup_criterion`.

Conventions shared by every loss here:

* Arguments are ``(student, teacher)`` in that order.  Teacher tensors are
  detached inside the loss, so gradients reach only the student (and the
  loss's own trainable modules, e.g. the FT translator).
* Feature maps are ``(B, C, L)`` (1-D, e.g. sensor signals) or
  ``(B, C, H, W)`` (2-D, e.g. persistence images).  Teacher and student
  widths (channel counts) may differ: AT and AMD sum the channels away, SP
  compares ``B x B`` Gram matrices, FT maps both sides to a common factor
  space with its own modules.
* Where spatial/temporal sizes differ (AT, AMD, FT), the *student* map is
  resized to the teacher's size by linear (1-D) or bilinear (2-D)
  interpolation, ``align_corners=False`` (:func:`torch.nn.functional.interpolate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_nonnegative as _nonnegative
from .._validation import check_positive as _positive

__all__ = [
    "AMDLoss",
    "AttentionTransfer",
    "DDGSDLoss",
    "FactorTransfer",
    "FusedSimilarityPreserving",
    "KDCrossEntropy",
    "KDLoss",
    "MultiTeacherKD",
    "Paraphraser",
    "SimilarityPreserving",
    "Translator",
    "kd_objective",
    "mixup",
    "mixup_criterion",
    "partial_mixup",
    "standardize_logits",
]


# --------------------------------------------------------------------------- checks


def _unit_interval(value, name: str) -> float:
    v = _nonnegative(value, name)
    if v > 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def _weights(weights, name: str = "weights") -> tuple[float, ...]:
    try:
        ws = tuple(float(w) for w in weights)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of numbers, got {weights!r}") from None
    if not ws:
        raise ValueError(f"{name} must hold at least one weight, got {weights!r}")
    if not all(math.isfinite(w) and w >= 0 for w in ws):
        raise ValueError(f"{name} must be finite and >= 0, got {weights!r}")
    if sum(ws) <= 0:
        raise ValueError(f"{name} must not all be zero, got {weights!r}")
    return ws


def _tensor(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; cast it with .float()")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    return x


def _logits_pair(student: Tensor, teacher: Tensor, s_name="student_logits", t_name="teacher_logits") -> None:
    _tensor(student, s_name)
    _tensor(teacher, t_name)
    if student.ndim != 2:
        raise ValueError(f"{s_name} must have shape (B, num_classes), got {tuple(student.shape)}")
    if student.shape != teacher.shape:
        raise ValueError(
            f"{s_name} and {t_name} must have the same shape (B, num_classes), got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )


def _feature_pair(student: Tensor, teacher: Tensor, s_name="student_features", t_name="teacher_features") -> None:
    """Two feature maps, both (B, C, L) or both (B, C, H, W), same batch size."""
    _tensor(student, s_name)
    _tensor(teacher, t_name)
    for x, name in ((student, s_name), (teacher, t_name)):
        if x.ndim not in (3, 4):
            raise ValueError(f"{name} must be a (B, C, L) or (B, C, H, W) feature map, got shape {tuple(x.shape)}")
    if student.ndim != teacher.ndim:
        raise ValueError(
            f"{s_name} and {t_name} must both be 1-D (B, C, L) or both 2-D (B, C, H, W) maps, got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    _batch_pair(student, teacher, s_name, t_name)


def _pairs(student, teacher, s_name="student_features", t_name="teacher_features") -> list[tuple[Tensor, Tensor]]:
    """A single (student, teacher) pair or two equally long sequences of them."""
    if isinstance(student, Tensor) and isinstance(teacher, Tensor):
        return [(student, teacher)]
    if isinstance(student, Tensor) or isinstance(teacher, Tensor):
        raise TypeError(f"{s_name} and {t_name} must both be tensors or both be sequences of tensors")
    student, teacher = list(student), list(teacher)
    if not student:
        raise ValueError(f"{s_name} is an empty sequence")
    if len(student) != len(teacher):
        raise ValueError(f"got {len(student)} student and {len(teacher)} teacher feature maps; pass them in pairs")
    return list(zip(student, teacher))


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """Resize a (B, C, *spatial) map to ``size`` by (bi)linear interpolation (align_corners=False)."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[2:]) == size:
        return x
    mode = "linear" if x.ndim == 3 else "bilinear"
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


# --------------------------------------------------------------------------- logits


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


def kd_objective(ce: Tensor, kd: Tensor, lam: float) -> Tensor:
    """The usual distillation objective ``(1 - lam) * ce + lam * kd``, ``lam`` in [0, 1]."""
    lam = _unit_interval(lam, "lam")
    return (1.0 - lam) * ce + lam * kd


class KDCrossEntropy(nn.Module):
    r"""Hard-label cross-entropy plus KD (Hinton et al. 2015):

    .. math:: L = (1 - \lambda)\,\mathrm{CE}(z_s, y) + \lambda\, \mathrm{KD}_\tau(z_s, z_t)

    with ``CE`` averaged over the batch and ``KD`` as in :class:`KDLoss`.

    Args:
        temperature: KD temperature (default 4.0).
        lam: weight of the KD term, in [0, 1] (default 0.5).
        standardize: logit standardisation in the KD term (default False).

    ``forward(student_logits, teacher_logits, labels)``; ``labels`` are
    ``(B,)`` class indices.
    """

    def __init__(self, temperature: float = 4.0, lam: float = 0.5, standardize: bool = False):
        super().__init__()
        self.kd = KDLoss(temperature, standardize=standardize)
        self.lam = _unit_interval(lam, "lam")

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, labels: Tensor) -> Tensor:
        _logits_pair(student_logits, teacher_logits)
        _check_labels(labels, student_logits)
        ce = F.cross_entropy(student_logits, labels)
        return kd_objective(ce, self.kd(student_logits, teacher_logits), self.lam)

    def extra_repr(self) -> str:
        return f"lam={self.lam}"


def _check_labels(labels, logits: Tensor, name: str = "labels") -> None:
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(
            f"{name} must have shape (B,) matching the logits {tuple(logits.shape)}, got {tuple(labels.shape)}"
        )


class MultiTeacherKD(nn.Module):
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


# --------------------------------------------------------------------------- attention maps


def _channel_map(feat: Tensor, p: float, reduce: str) -> Tensor:
    """(B, C, *S) -> (B, 1, *S): mean or sum over channels of |feat|^p."""
    a = feat.abs().pow(p)
    return a.mean(dim=1, keepdim=True) if reduce == "mean" else a.sum(dim=1, keepdim=True)


def _attention_pair(student: Tensor, teacher: Tensor, p: float, reduce: str) -> tuple[Tensor, Tensor]:
    """Channel-aggregated (B, 1, *S_t) maps, the student's resized to the teacher's size (not normalised)."""
    a_t = _channel_map(teacher.detach(), p, reduce)
    a_s = _resize(_channel_map(student, p, reduce), a_t.shape[2:])
    return a_s, a_t


class AttentionTransfer(nn.Module):
    r"""Activation-based attention transfer (Zagoruyko & Komodakis, "Paying More
    Attention to Attention", ICLR 2017).

    Attention map of a ``(B, C, *S)`` feature map ``A``: ``Q = vec(mean_c
    |A_c|^p)``, flattened over positions and L2-normalised per sample
    (``F.normalize``, eps 1e-12).  Using the channel mean or sum gives the same
    ``Q`` after normalisation; the mean follows the reference code.

    .. math:: L = \frac{1}{B\,N} \sum_b \| Q_s^{(b)} - Q_t^{(b)} \|_2^2

    for ``reduction="mean"`` (default; ``(Q_s - Q_t).pow(2).mean()`` of the
    reference code, ``N`` = number of teacher positions), or
    ``(1/B) sum_b ||Q_s - Q_t||^2`` for ``reduction="batchmean"``.  The
    paper's ``beta / 2`` factor is left to the caller.

    Channel counts may differ between student and teacher.  Sizes may
    differ too: the student's channel-aggregated map is resized to the
    teacher's positions by linear (1-D) / bilinear (2-D) interpolation,
    ``align_corners=False``, before normalisation.

    Args:
        p: exponent (default 2).
        reduction: ``"mean"`` or ``"batchmean"``.

    ``forward(student_features, teacher_features)``: two ``(B, C, L)`` or
    ``(B, C, H, W)`` tensors, or two equally long sequences of them (loss
    summed over the pairs, as in the reference code).
    """

    def __init__(self, p: float = 2.0, reduction: str = "mean"):
        super().__init__()
        self.p = _positive(p, "p")
        if reduction not in ("mean", "batchmean"):
            raise ValueError(f"reduction must be 'mean' or 'batchmean', got {reduction!r}")
        self.reduction = reduction

    def attention_map(self, feat: Tensor, size: Sequence[int] | None = None) -> Tensor:
        """``(B, N)`` normalised attention map, optionally resized to ``size`` first."""
        _tensor(feat, "features")
        if feat.ndim not in (3, 4):
            raise ValueError(f"features must be (B, C, L) or (B, C, H, W), got shape {tuple(feat.shape)}")
        a = _channel_map(feat, self.p, "mean")
        if size is not None:
            a = _resize(a, size)
        return F.normalize(a.flatten(1), dim=1)

    def forward(self, student_features, teacher_features) -> Tensor:
        total = 0.0
        for i, (s, t) in enumerate(_pairs(student_features, teacher_features)):
            _feature_pair(s, t, f"student_features[{i}]", f"teacher_features[{i}]")
            a_s, a_t = _attention_pair(s, t, self.p, "mean")
            q_s, q_t = F.normalize(a_s.flatten(1), dim=1), F.normalize(a_t.flatten(1), dim=1)
            sq = (q_s - q_t).pow(2)
            total = total + (sq.mean() if self.reduction == "mean" else sq.sum() / sq.shape[0])
        return total

    def extra_repr(self) -> str:
        return f"p={self.p}, reduction={self.reduction!r}"


class AMDLoss(nn.Module):
    r"""Angular margin-based distillation (Jeon, Choi, Shukla & Turaga,
    "Leveraging angular distributions for improved knowledge distillation",
    Neurocomputing 518, 2023).

    For each feature map: ``Q = vec(sum_c A_c^2)``, L2-normalised over positions
    (so ``Q`` in [0, 1] is the cosine to the "all-attention" direction), then

    * positive feature ``P = s * cos(m * acos(clamp(Q, -1 + eps, 1 - eps)))``,
    * negative feature ``N = s * (1 - Q)``,
    * angular distribution ``A = P - log(exp(P) + exp(N))`` (computed with
      ``torch.logaddexp``; the reference's ``log(exp(P))`` is ``P`` itself),

    each of ``A``, ``P``, ``N`` L2-normalised per sample over the positions
    of the region, and

    .. math:: \ell = \tfrac13\big[\mathrm{MSE}(A_s, A_t) + \mathrm{MSE}(P_s, P_t)
              + \mathrm{MSE}(N_s, N_t)\big]

    (``MSE`` = mean over batch and positions).  The loss is
    ``global_weight * l(whole map) + local_weight * mean_parts l(part)``,
    default ``0.8 : 0.2`` (the reference's global + local "4p" variant).

    Local parts, as in the reference, are slices of the *globally*
    normalised ``Q`` (not re-normalised): 2-D maps are cut into 2 x 2
    quadrants, 1-D maps into 4 consecutive segments along time (same number
    of parts as the 2-D case).  Cuts follow :func:`torch.tensor_split`, so
    every position belongs to exactly one part for any even or odd size
    (earlier parts take the extra row/column/sample: an axis of length 5
    splits 3 + 2, a length-7 signal 2 + 2 + 2 + 1).  Parts that get no
    positions (an axis of length 1, or ``L < 4``) are dropped and the local
    term averages over the rest.  ``local_weight=0`` gives the global-only
    AMD.

    Channel counts may differ.  If sizes differ, the student's ``sum_c A_c^2``
    map is resized to the teacher's size (linear / bilinear,
    ``align_corners=False``) before normalisation.

    Args:
        s: scale (default 64.0).  m: angular margin (default 1.35).
        local_weight, global_weight: default 0.2 and 0.8.
        eps: acos clamp margin (default 1e-7).

    ``forward(student_features, teacher_features)``: two maps or two equally
    long sequences of them (summed).
    """

    def __init__(self, s: float = 64.0, m: float = 1.35, local_weight: float = 0.2, global_weight: float = 0.8,
                 eps: float = 1e-7):
        super().__init__()
        self.s = _positive(s, "s")
        self.m = _positive(m, "m")
        self.local_weight = _nonnegative(local_weight, "local_weight")
        self.global_weight = _nonnegative(global_weight, "global_weight")
        if self.local_weight + self.global_weight == 0:
            raise ValueError("local_weight and global_weight must not both be zero")
        self.eps = _positive(eps, "eps")
        if self.eps >= 1:
            raise ValueError(f"eps must be < 1, got {eps!r}")

    def _distributions(self, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        pos = self.s * torch.cos(self.m * torch.acos(q.clamp(-1 + self.eps, 1 - self.eps)))
        neg = self.s * (1 - q)
        ang = pos - torch.logaddexp(pos, neg)
        return tuple(F.normalize(v, dim=1) for v in (ang, pos, neg))

    def _region_loss(self, q_s: Tensor, q_t: Tensor) -> Tensor:
        terms = [F.mse_loss(a, b) for a, b in zip(self._distributions(q_s), self._distributions(q_t))]
        return sum(terms) / 3.0

    @staticmethod
    def parts(q: Tensor) -> list[Tensor]:
        """Split a (B, 1, *S) map into the local parts (see class doc), each flattened to (B, n)."""
        if q.ndim == 3:
            pieces = torch.tensor_split(q, 4, dim=2)
        else:
            pieces = [c for r in torch.tensor_split(q, 2, dim=2) for c in torch.tensor_split(r, 2, dim=3)]
        return [p.flatten(1) for p in pieces if p[0].numel() > 0]

    def _pair_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        a_s, a_t = _attention_pair(student, teacher, 2.0, "sum")
        b = a_s.shape[0]
        q_s = F.normalize(a_s.flatten(1), dim=1).view_as(a_s)
        q_t = F.normalize(a_t.flatten(1), dim=1).view_as(a_t)
        loss = self.global_weight * self._region_loss(q_s.reshape(b, -1), q_t.reshape(b, -1))
        if self.local_weight > 0:
            parts = list(zip(self.parts(q_s), self.parts(q_t)))
            local = sum(self._region_loss(ps, pt) for ps, pt in parts) / len(parts)
            loss = loss + self.local_weight * local
        return loss

    def forward(self, student_features, teacher_features) -> Tensor:
        total = 0.0
        for i, (s, t) in enumerate(_pairs(student_features, teacher_features)):
            _feature_pair(s, t, f"student_features[{i}]", f"teacher_features[{i}]")
            total = total + self._pair_loss(s, t)
        return total

    def extra_repr(self) -> str:
        return f"s={self.s}, m={self.m}, local_weight={self.local_weight}, global_weight={self.global_weight}"


# --------------------------------------------------------------------------- similarity preserving


def _sp_gram(feat: Tensor) -> Tensor:
    f = feat.reshape(feat.shape[0], -1)
    return F.normalize(f @ f.t(), dim=1)


def _sp_distance(g_s: Tensor, g_t: Tensor) -> Tensor:
    b = g_s.shape[0]
    return (g_s - g_t).pow(2).sum() / (b * b)


def _batch_pair(student: Tensor, teacher: Tensor, s_name: str, t_name: str) -> None:
    _tensor(student, s_name)
    _tensor(teacher, t_name)
    if student.ndim < 2 or teacher.ndim < 2:
        raise ValueError(
            f"{s_name} and {t_name} must be batched (B, ...) tensors with at least 2 dimensions, got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"{s_name} and {t_name} must have the same batch size, got shapes "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )


class SimilarityPreserving(nn.Module):
    r"""Similarity-preserving KD (Tung & Mori, ICCV 2019).

    With ``F`` the features flattened to ``(B, D)``: ``G = F F^T`` (``B x B``),
    each row L2-normalised, ``G~[i] = G[i] / ||G[i]||_2``, and

    .. math:: L = \frac{1}{B^2} \| \tilde G_s - \tilde G_t \|_F^2 .

    Only batch sizes must match: features may have any shape and width
    (``D_s != D_t`` is fine), e.g. a 1-D student against a 2-D PI teacher.

    ``forward(student_features, teacher_features)``: two tensors or two
    equally long sequences of them (summed, as in the reference code).
    """

    @staticmethod
    def gram(features: Tensor) -> Tensor:
        """Row-normalised ``B x B`` similarity matrix of ``features`` (B, ...)."""
        _tensor(features, "features")
        if features.ndim < 2:
            raise ValueError(f"features must be batched (B, ...), got shape {tuple(features.shape)}")
        return _sp_gram(features)

    def forward(self, student_features, teacher_features) -> Tensor:
        total = 0.0
        for i, (s, t) in enumerate(_pairs(student_features, teacher_features)):
            _batch_pair(s, t, f"student_features[{i}]", f"teacher_features[{i}]")
            total = total + _sp_distance(_sp_gram(s), _sp_gram(t.detach()))
        return total


class FusedSimilarityPreserving(nn.Module):
    r"""Similarity preserving against a fusion of several teachers' similarity maps
    (here: a persistence-image teacher and a raw-signal teacher).

    .. math::
        \tilde G_{fused} = \sum_k \bar w_k \tilde G_{t_k}, \qquad
        \bar w_k = w_k / \textstyle\sum_j w_j, \qquad
        L = \frac{1}{B^2} \| \tilde G_s - \tilde G_{fused} \|_F^2

    with ``G~`` the row-normalised Gram matrices of :class:`SimilarityPreserving`.
    The weights are normalised to sum to one so that the fused map is a
    convex combination of row-normalised maps (same scale as the student's).
    With a single teacher (or one non-zero weight) this is plain SP.

    Args:
        weights: one non-negative weight per teacher, not all zero
            (default ``(0.5, 0.5)``).

    ``forward(student_features, teacher_features)`` where
    ``teacher_features`` is a sequence of ``len(weights)`` tensors, each
    with the student's batch size (other dimensions free); all detached.
    """

    def __init__(self, weights: Sequence[float] = (0.5, 0.5)):
        super().__init__()
        ws = _weights(weights)
        total = sum(ws)
        self.weights = tuple(w / total for w in ws)

    def fused_gram(self, teacher_features: Sequence[Tensor]) -> Tensor:
        if isinstance(teacher_features, Tensor) or not isinstance(teacher_features, Sequence):
            raise TypeError("teacher_features must be a list or tuple with one feature tensor per teacher")
        if len(teacher_features) != len(self.weights):
            raise ValueError(
                f"got {len(teacher_features)} teacher feature tensors but {len(self.weights)} weights; "
                "pass one weight per teacher"
            )
        for k, t in enumerate(teacher_features):
            _batch_pair(teacher_features[0], t, "teacher_features[0]", f"teacher_features[{k}]")
        return sum(w * _sp_gram(t.detach()) for w, t in zip(self.weights, teacher_features))

    def forward(self, student_features: Tensor, teacher_features: Sequence[Tensor]) -> Tensor:
        g_t = self.fused_gram(teacher_features)
        _batch_pair(student_features, teacher_features[0], "student_features", "teacher_features[0]")
        return _sp_distance(_sp_gram(student_features), g_t)

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


# --------------------------------------------------------------------------- factor transfer


def _conv_stack(in_ch: int, channels: Sequence[int], dims: int, bn: bool, transpose: bool) -> nn.Sequential:
    if transpose:
        conv = nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d
    else:
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
    norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    layers: list[nn.Module] = []
    prev = in_ch
    for ch in channels:
        layers.append(conv(prev, ch, 3, stride=1, padding=1))
        if bn:
            layers.append(norm(ch))
        layers.append(nn.LeakyReLU(0.1))
        prev = ch
    return nn.Sequential(*layers)


def _check_dims(dims) -> int:
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 (for (B, C, L) maps) or 2 (for (B, C, H, W) maps), got {dims!r}")
    return int(dims)


def _check_channels(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_map(x: Tensor, name: str, dims: int, channels: int) -> None:
    _tensor(x, name)
    axes = "(B, C, L)" if dims == 1 else "(B, C, H, W)"
    if x.ndim != dims + 2:
        raise ValueError(f"{name} must be a {axes} map for dims={dims}, got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(x.shape)}")


class Paraphraser(nn.Module):
    """Factor Transfer paraphraser (Kim, Park & Kwak, "Paraphrasing Complex
    Network: Network Compression via Factor Transfer", NeurIPS 2018).

    Convolutional autoencoder on *teacher* features, trained first with
    :meth:`reconstruction_loss` and then frozen; its encoder output is the
    teacher factor.  Layout (as the reference code): encoder
    ``conv(C -> C), conv(C -> k), conv(k -> k)``, decoder
    ``convT(k -> k), convT(k -> C), convT(C -> C)``, all kernel 3, stride 1,
    padding 1 (size preserved for any even or odd length), each followed by
    optional BatchNorm and LeakyReLU(0.1); ``k = max(1, int(C * rate))``.

    Args:
        in_channels: teacher channels ``C``.
        rate: paraphrase rate (default 0.5).
        dims: 1 for ``(B, C, L)``, 2 for ``(B, C, H, W)`` (default 2).
        use_bn: BatchNorm after each conv (default False).
    """

    def __init__(self, in_channels: int, rate: float = 0.5, dims: int = 2, use_bn: bool = False):
        super().__init__()
        self.in_channels = _check_channels(in_channels, "in_channels")
        self.rate = _positive(rate, "rate")
        self.dims = _check_dims(dims)
        self.factor_channels = max(1, int(self.in_channels * self.rate))
        c, k = self.in_channels, self.factor_channels
        self.encoder = _conv_stack(c, (c, k, k), self.dims, use_bn, transpose=False)
        self.decoder = _conv_stack(k, (k, c, c), self.dims, use_bn, transpose=True)

    def encode(self, x: Tensor) -> Tensor:
        _check_map(x, "teacher_features", self.dims, self.in_channels)
        return self.encoder(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(factor, reconstruction)``."""
        factor = self.encode(x)
        return factor, self.decoder(factor)

    def reconstruction_loss(self, teacher_features: Tensor) -> Tensor:
        """Mean squared reconstruction error on (detached) teacher features: the paraphraser's training loss."""
        x = teacher_features.detach() if isinstance(teacher_features, Tensor) else teacher_features
        _, rec = self(x)
        return F.mse_loss(rec, x)


class Translator(nn.Module):
    """Factor Transfer translator (Kim et al. 2018): maps *student* features to
    the factor space, ``conv(C_s -> C_s), conv(C_s -> k), conv(k -> k)``
    (kernel 3, padding 1, optional BatchNorm, LeakyReLU(0.1)).

    Args:
        in_channels: student channels ``C_s``.
        factor_channels: the paraphraser's ``k``.
        dims: 1 or 2 (default 2).  use_bn: default True (reference code).
    """

    def __init__(self, in_channels: int, factor_channels: int, dims: int = 2, use_bn: bool = True):
        super().__init__()
        self.in_channels = _check_channels(in_channels, "in_channels")
        self.factor_channels = _check_channels(factor_channels, "factor_channels")
        self.dims = _check_dims(dims)
        c, k = self.in_channels, self.factor_channels
        self.encoder = _conv_stack(c, (c, k, k), self.dims, use_bn, transpose=False)

    def forward(self, x: Tensor) -> Tensor:
        _check_map(x, "student_features", self.dims, self.in_channels)
        return self.encoder(x)


class FactorTransfer(nn.Module):
    r"""Factor Transfer loss (Kim et al., NeurIPS 2018).

    .. math::
        L = \frac{1}{B\,D} \sum_b \Big\| \frac{F_S^{(b)}}{\|F_S^{(b)}\|_2}
            - \frac{F_T^{(b)}}{\|F_T^{(b)}\|_2} \Big\|_p^p

    with ``F_T = paraphraser.encode(teacher)`` and ``F_S = translator(student)``
    flattened to ``(B, D)``; ``p = 1`` (the paper's choice, default) or 2.
    The reduction is the element mean of the reference code (the paper's
    per-sample norm averaged over the batch is ``D`` times this for p=1).

    The teacher factor is computed under ``torch.no_grad()`` from detached
    teacher features: the paraphraser is trained beforehand with
    :meth:`reconstruction_loss` and is frozen during transfer (call
    ``ft.paraphraser.eval()`` to freeze its BatchNorm statistics too).  The
    translator is trainable and receives the gradient of this loss.
    Student and teacher channels are independent; if their sizes differ, the
    student factor is resized to the teacher factor's size (linear /
    bilinear, ``align_corners=False``).

    Args:
        student_channels, teacher_channels: feature widths.
        rate: paraphrase rate (default 0.5).  dims: 1 or 2 (default 2).
        p: 1 or 2 (default 1).
        paraphraser_bn / translator_bn: BatchNorm (defaults False / True, as
            in the reference code).
    """

    def __init__(self, student_channels: int, teacher_channels: int, rate: float = 0.5, dims: int = 2, p: int = 1,
                 paraphraser_bn: bool = False, translator_bn: bool = True):
        super().__init__()
        if p not in (1, 2):
            raise ValueError(f"p must be 1 or 2, got {p!r}")
        self.p = int(p)
        self.dims = _check_dims(dims)
        self.paraphraser = Paraphraser(teacher_channels, rate, dims, use_bn=paraphraser_bn)
        self.translator = Translator(student_channels, self.paraphraser.factor_channels, dims, use_bn=translator_bn)

    def reconstruction_loss(self, teacher_features: Tensor) -> Tensor:
        """Paraphraser training loss (stage 1)."""
        return self.paraphraser.reconstruction_loss(teacher_features)

    @staticmethod
    def factor_loss(factor_s: Tensor, factor_t: Tensor, p: int = 1) -> Tensor:
        """Distance between L2-normalised flattened factors (shapes must match)."""
        if factor_s.shape != factor_t.shape:
            raise ValueError(
                f"student and teacher factors must have the same shape, got {tuple(factor_s.shape)} and "
                f"{tuple(factor_t.shape)}"
            )
        d = F.normalize(factor_s.flatten(1), dim=1) - F.normalize(factor_t.flatten(1), dim=1)
        return d.abs().mean() if p == 1 else d.pow(2).mean()

    def forward(self, student_features: Tensor, teacher_features: Tensor) -> Tensor:
        _feature_pair(student_features, teacher_features)
        with torch.no_grad():
            factor_t = self.paraphraser.encode(teacher_features.detach())
        factor_s = _resize(self.translator(student_features), factor_t.shape[2:])
        return self.factor_loss(factor_s, factor_t, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# --------------------------------------------------------------------------- self-distillation


class DDGSDLoss(nn.Module):
    r"""Data-distortion guided self-distillation (Xu & Liu, AAAI 2019).

    One network sees two distorted views of each sample and gives logits
    ``z1, z2`` and features ``f1, f2``:

    .. math::
        L = \tfrac12\big[\mathrm{CE}(z_1, y) + \mathrm{CE}(z_2, y)\big]
            + \lambda_{KL}\,\tau^2 \big[\mathrm{KL}(p_2 \| p_1) + \mathrm{KL}(p_1 \| p_2)\big]
            + \lambda_{MMD}\, \Big\| \frac1B\sum_b f_1^{(b)} - \frac1B\sum_b f_2^{(b)} \Big\|_2^2

    with ``p_i = softmax(z_i / tau)``, KL with ``batchmean`` reduction, and the
    linear-kernel MMD^2 between the two views' feature distributions
    (features flattened to ``(B, D)``).  The CE is averaged over the two views
    and the MMD weight defaults to 5e-4, as in the public implementation.
    With ``detach_targets=True`` (default, as in that implementation) each KL
    direction treats its target distribution as a constant, so ``z1`` is
    pulled towards ``p2`` and ``z2`` towards ``p1``; with False the gradient
    flows through both sides of both terms (same value).  Both views belong to
    the student, so nothing else is detached.  The loss is symmetric in the
    two views.

    Args:
        temperature: ``tau`` (default 4.0).
        mmd_weight: ``lambda_MMD`` (default 5e-4).
        kl_weight: ``lambda_KL`` (default 1.0).
        detach_targets: see above (default True).

    ``forward(logits1, logits2, features1, features2, labels)``; :meth:`terms`
    returns the parts.
    """

    def __init__(self, temperature: float = 4.0, mmd_weight: float = 5e-4, kl_weight: float = 1.0,
                 detach_targets: bool = True):
        super().__init__()
        self.temperature = _positive(temperature, "temperature")
        self.mmd_weight = _nonnegative(mmd_weight, "mmd_weight")
        self.kl_weight = _nonnegative(kl_weight, "kl_weight")
        self.detach_targets = bool(detach_targets)

    @staticmethod
    def mmd(features1: Tensor, features2: Tensor) -> Tensor:
        """Linear-kernel MMD^2 ``||mean(f1) - mean(f2)||^2`` over the batch."""
        _batch_pair(features1, features2, "features1", "features2")
        if features1.shape != features2.shape:
            raise ValueError(
                f"features1 and features2 must have the same shape, got {tuple(features1.shape)} and "
                f"{tuple(features2.shape)}"
            )
        f1, f2 = features1.flatten(1), features2.flatten(1)
        return (f1.mean(dim=0) - f2.mean(dim=0)).pow(2).sum()

    def terms(self, logits1: Tensor, logits2: Tensor, features1: Tensor, features2: Tensor,
              labels: Tensor) -> dict[str, Tensor]:
        _logits_pair(logits1, logits2, "logits1", "logits2")
        _check_labels(labels, logits1)
        tau = self.temperature
        ce = 0.5 * (F.cross_entropy(logits1, labels) + F.cross_entropy(logits2, labels))
        t1, t2 = (logits1.detach(), logits2.detach()) if self.detach_targets else (logits1, logits2)
        kl = _kd(logits1, t2, tau, False, 0.0) + _kd(logits2, t1, tau, False, 0.0)
        mmd = self.mmd(features1, features2)
        total = ce + self.kl_weight * kl + self.mmd_weight * mmd
        return {"ce": ce, "kl": kl, "mmd": mmd, "total": total}

    def forward(self, logits1: Tensor, logits2: Tensor, features1: Tensor, features2: Tensor,
                labels: Tensor) -> Tensor:
        return self.terms(logits1, logits2, features1, features2, labels)["total"]

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, kl_weight={self.kl_weight}, mmd_weight={self.mmd_weight}"


# --------------------------------------------------------------------------- mixup


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
