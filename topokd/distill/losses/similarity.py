"""Similarity-preserving KD (Tung & Mori 2019), single and fused teachers."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import _batch_pair, _pairs, _tensor, _weights

__all__ = ["FusedSimilarityPreservingLoss", "SimilarityPreservingLoss"]


def _sp_gram(feat: Tensor) -> Tensor:
    f = feat.reshape(feat.shape[0], -1)
    return F.normalize(f @ f.t(), dim=1)


def _sp_distance(g_s: Tensor, g_t: Tensor) -> Tensor:
    b = g_s.shape[0]
    return (g_s - g_t).pow(2).sum() / (b * b)


class SimilarityPreservingLoss(nn.Module):
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


class FusedSimilarityPreservingLoss(nn.Module):
    r"""Similarity preserving against a fusion of several teachers' similarity maps
    (here: a persistence-image teacher and a raw-signal teacher).

    .. math::
        \tilde G_{fused} = \sum_k \bar w_k \tilde G_{t_k}, \qquad
        \bar w_k = w_k / \textstyle\sum_j w_j, \qquad
        L = \frac{1}{B^2} \| \tilde G_s - \tilde G_{fused} \|_F^2

    with ``G~`` the row-normalised Gram matrices of :class:`SimilarityPreservingLoss`.
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
