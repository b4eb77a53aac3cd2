"""Attention-map distillation: AT (Zagoruyko & Komodakis 2017) and AMD
(Jeon et al. 2023)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import (
    _choice,
    _feature_pair,
    _nonnegative,
    _pairs,
    _pool,
    _positive,
    _resize,
    _tensor,
)

__all__ = ["AMDLoss", "AttentionTransferLoss"]


def _channel_map(feat: Tensor, p: float, reduce: str) -> Tensor:
    """(B, C, *S) -> (B, 1, *S): mean or sum over channels of |feat|^p."""
    a = feat.abs().pow(p)
    return a.mean(dim=1, keepdim=True) if reduce == "mean" else a.sum(dim=1, keepdim=True)


def _attention_pair(student: Tensor, teacher: Tensor, p: float, reduce: str) -> tuple[Tensor, Tensor]:
    """Channel-aggregated (B, 1, *S_t) maps, the student's resized to the teacher's size (not normalised)."""
    a_t = _channel_map(teacher.detach(), p, reduce)
    a_s = _resize(_channel_map(student, p, reduce), a_t.shape[2:])
    return a_s, a_t


class AttentionTransferLoss(nn.Module):
    r"""Activation-based attention transfer (Zagoruyko & Komodakis, "Paying More
    Attention to Attention", ICLR 2017).

    Attention map of a ``(B, C, *S)`` feature map ``A``: ``Q = vec(mean_c
    |A_c|^p)``, flattened over positions and L2-normalised per sample
    (``F.normalize``, eps 1e-12).  Using the channel mean or sum gives the same
    ``Q`` after normalisation; the mean follows the reference code
    (HobbitLong/RepDistiller ``distiller_zoo/AT.py``, ``Attention``).

    .. math:: L = \frac{1}{B\,N} \sum_b \| Q_s^{(b)} - Q_t^{(b)} \|_2^2

    for ``reduction="mean"`` (default; ``(Q_s - Q_t).pow(2).mean()`` of the
    reference code, ``N`` = number of positions), or
    ``(1/B) sum_b ||Q_s - Q_t||^2`` for ``reduction="batchmean"``.  The
    paper's ``beta / 2`` factor is left to the caller.

    Channel counts may differ between student and teacher.  Spatial sizes may
    differ too:

    * ``resize="pool"`` (default, as RepDistiller's ``at_loss``): the *feature
      map* with the larger size is average-pooled down to the smaller one,
      ``adaptive_avg_pool2d`` (``adaptive_avg_pool1d`` for 1-D maps), before
      the attention map is taken.  RepDistiller compares the heights only and
      pools to a square ``(h, h)``; here every axis is pooled to the smaller
      of the two sizes, which is the same for square maps.
    * ``resize="interpolate"`` (topokd before this option): the student's
      channel-aggregated map is resized to the teacher's positions by linear
      (1-D) / bilinear (2-D) interpolation, ``align_corners=False``.

    Pooling is the default because it is the reference behaviour and
    compares both maps at the coarser resolution that both really have.

    Args:
        p: exponent (default 2).  RepDistiller uses ``f.pow(p)`` without the
            absolute value; that is the same for even ``p`` and we keep the
            paper's ``|A|^p`` for the others.
        reduction: ``"mean"`` or ``"batchmean"``.
        resize: ``"pool"`` or ``"interpolate"``.

    ``forward(student_features, teacher_features)``: two ``(B, C, L)`` or
    ``(B, C, H, W)`` tensors, or two equally long sequences of them (loss
    summed over the pairs, as in the reference code).
    """

    def __init__(self, p: float = 2.0, reduction: str = "mean", resize: str = "pool"):
        super().__init__()
        self.p = _positive(p, "p")
        self.reduction = _choice(reduction, ("mean", "batchmean"), "reduction")
        self.resize = _choice(resize, ("pool", "interpolate"), "resize")

    def attention_map(self, feat: Tensor, size: Sequence[int] | None = None) -> Tensor:
        """``(B, N)`` normalised attention map.

        With ``size``, the map is taken at that size first: the features are
        average-pooled to it (``resize="pool"``, adaptive pooling) or the
        channel-aggregated map is interpolated to it (``resize="interpolate"``).
        """
        _tensor(feat, "features")
        if feat.ndim not in (3, 4):
            raise ValueError(f"features must be (B, C, L) or (B, C, H, W), got shape {tuple(feat.shape)}")
        if size is not None and self.resize == "pool":
            feat = _pool(feat, size)
        a = _channel_map(feat, self.p, "mean")
        if size is not None and self.resize == "interpolate":
            a = _resize(a, size)
        return F.normalize(a.flatten(1), dim=1)

    def _maps(self, student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
        teacher = teacher.detach()
        if self.resize == "interpolate":
            return _attention_pair(student, teacher, self.p, "mean")
        size = [min(a, b) for a, b in zip(student.shape[2:], teacher.shape[2:])]
        return (_channel_map(_pool(student, size), self.p, "mean"),
                _channel_map(_pool(teacher, size), self.p, "mean"))

    def forward(self, student_features, teacher_features) -> Tensor:
        total = 0.0
        for i, (s, t) in enumerate(_pairs(student_features, teacher_features)):
            _feature_pair(s, t, f"student_features[{i}]", f"teacher_features[{i}]")
            a_s, a_t = self._maps(s, t)
            q_s, q_t = F.normalize(a_s.flatten(1), dim=1), F.normalize(a_t.flatten(1), dim=1)
            sq = (q_s - q_t).pow(2)
            total = total + (sq.mean() if self.reduction == "mean" else sq.sum() / sq.shape[0])
        return total

    def extra_repr(self) -> str:
        return f"p={self.p}, reduction={self.reduction!r}, resize={self.resize!r}"


class AMDLoss(nn.Module):
    r"""Angular margin-based distillation (Jeon, Choi, Shukla & Turaga,
    "Leveraging angular distributions for improved knowledge distillation",
    Neurocomputing 518, 2023; code jeunsom/AMD_loss ``distiller_zoo/AMD.py``,
    ``AngularPenaltyLoss`` (global) and ``AngularPenaltyLoss4b`` (global +
    four local parts)).

    For each feature map: ``Q = vec(sum_c A_c^2) / (||vec(sum_c A_c^2)||_2 +
    norm_eps)`` (the reference's ``attention_map``, ``norm_eps = 1e-6``;
    ``norm_eps=None`` uses ``F.normalize`` instead), so ``Q`` in [0, 1] is the
    cosine to the "all-attention" direction, then

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
    default ``0.8 : 0.2`` (the reference's ``AngularPenaltyLoss4b``).

    Local parts, as in the reference, are slices of the *globally*
    normalised ``Q`` (not re-normalised).  2-D maps are cut into 2 x 2
    quadrants at row ``H // 2`` and column ``W // 2`` (the reference's
    ``int(H / 2)``, ``int(W / 2)``), so for an odd size the *later* part takes
    the extra row/column: ``H = 5`` splits 2 + 3.  1-D maps (a topokd
    extension; the reference is 2-D only) are cut into 4 consecutive segments
    at ``floor(k L / 4)``, ``k = 1, 2, 3``, the same rule per axis: a length-7
    signal splits 1 + 2 + 2 + 2.  Every position belongs to exactly one part.
    Parts that get no positions (an axis of length 1, or ``L < 4``) are
    dropped and the local term averages over the rest (the reference would
    produce NaN there).  ``local_weight=0`` gives the global-only AMD.

    (The published ``AngularPenaltyLoss4b`` uses a variable ``excl`` before
    assigning it and, for the global term, the last quadrant's ``1 - Q``; the
    formula above is the evident intent and the one of the global
    ``AngularPenaltyLoss`` and the paper.)

    Channel counts may differ.  If sizes differ (the reference requires equal
    sizes), the student's ``sum_c A_c^2`` map is resized to the teacher's size
    (linear / bilinear, ``align_corners=False``) before normalisation.

    Args:
        s: scale (default 64.0).  m: angular margin (default 1.35).
        local_weight, global_weight: default 0.2 and 0.8.
        eps: acos clamp margin (default 1e-7).
        norm_eps: added to the map's norm (default 1e-6, as the reference;
            ``None``: ``F.normalize``, exact unit norm).

    ``forward(student_features, teacher_features)``: two maps or two equally
    long sequences of them (summed).
    """

    def __init__(self, s: float = 64.0, m: float = 1.35, local_weight: float = 0.2, global_weight: float = 0.8,
                 eps: float = 1e-7, norm_eps: float | None = 1e-6):
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
        self.norm_eps = None if norm_eps is None else _nonnegative(norm_eps, "norm_eps")

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
            n = q.shape[2]
            cuts = [k * n // 4 for k in range(5)]
            pieces = [q[:, :, cuts[k]:cuts[k + 1]] for k in range(4)]
        else:
            h, w = q.shape[2] // 2, q.shape[3] // 2
            pieces = [q[:, :, :h, :w], q[:, :, :h, w:], q[:, :, h:, :w], q[:, :, h:, w:]]
        return [p.flatten(1) for p in pieces if p[0].numel() > 0]

    def _normalise(self, a: Tensor) -> Tensor:
        flat = a.flatten(1)
        if self.norm_eps is None:
            return F.normalize(flat, dim=1).view_as(a)
        return (flat / (flat.norm(dim=1, keepdim=True) + self.norm_eps)).view_as(a)

    def _pair_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        a_s, a_t = _attention_pair(student, teacher, 2.0, "sum")
        b = a_s.shape[0]
        q_s, q_t = self._normalise(a_s), self._normalise(a_t)
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
        return (f"s={self.s}, m={self.m}, local_weight={self.local_weight}, global_weight={self.global_weight}, "
                f"norm_eps={self.norm_eps}")
