"""Similarity-preserving KD (Tung & Mori 2019), single and fused teachers."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import _batch_pair, _choice, _pairs, _tensor, _weights

__all__ = ["FusedSimilarityPreservingLoss", "SimilarityPreservingLoss"]


def _sp_gram(feat: Tensor) -> Tensor:
    f = feat.reshape(feat.shape[0], -1)
    return F.normalize(f @ f.t(), dim=1)


def _sp_distance(g_s: Tensor, g_t: Tensor) -> Tensor:
    b = g_s.shape[0]
    return (g_s - g_t).pow(2).sum() / (b * b)


class SimilarityPreservingLoss(nn.Module):
    r"""Similarity-preserving KD (Tung & Mori, ICCV 2019; the reference code is
    RepDistiller's ``distiller_zoo/SP.py``, ``Similarity``).

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
    r"""Similarity preserving against a fusion of several teachers' similarity
    maps, as in TGD (Jeon et al., "Leveraging Topological Guidance for Improved
    Knowledge Distillation", GRaM workshop @ ICML 2024; code jeunsom/TGD
    ``main_train.py``, ``TrainManager.train`` with ``SP2``): a raw-image
    teacher and a persistence-image teacher.

    With ``G = F F^T`` the raw ``B x B`` Gram matrix of a stage's features
    flattened to ``(B, D)`` and ``n(.)`` row-wise L2 normalisation:

    .. math::
        G_{fused} = n\Big(\sum_k \bar w_k G_{t_k}\Big), \qquad
        \bar w_k = w_k / \textstyle\sum_j w_j, \qquad
        L = \frac{1}{S} \sum_{s=1}^{S} \frac{1}{B^2}
            \big\| n(G_{student,s}) - G_{fused,s} \big\|_F^2

    over the ``S`` stages given (TGD: all three WRN stages, ``sp_losst / 3``).

    * ``fuse="raw"`` (default, TGD): the *raw* Gram matrices are fused, then
      row-normalised.  A teacher with larger activations therefore weighs more
      than its ``w_k``; that is TGD's formula, so it is the default.
    * ``fuse="normalized"`` (topokd before this option): the convex
      combination ``sum_k w_k n(G_{t_k})`` of row-normalised maps, each
      teacher counting exactly by its weight (the fused rows are then not of
      unit norm).

    TGD weights the teachers ``(alpha, 1 - alpha)`` (``--alpha``, 0.99 in its
    argument parser and sample command) and multiplies the loss by 3000; both
    are left to the caller (default weights ``(0.5, 0.5)``).  The weights are
    normalised to sum to one (which changes nothing for ``fuse="raw"``).
    With a single teacher (or one non-zero weight) this is plain SP
    (:class:`SimilarityPreservingLoss`) averaged over the stages.

    Args:
        weights: one non-negative weight per teacher, not all zero
            (default ``(0.5, 0.5)``).
        fuse: ``"raw"`` (default) or ``"normalized"``.
        stage_reduction: ``"mean"`` over the stages (default, TGD) or ``"sum"``.

    ``forward(student_features, teacher_features)``, either for one stage:
    ``student_features`` a tensor and ``teacher_features`` a sequence of
    ``len(weights)`` tensors (one per teacher); or for ``S`` stages:
    ``student_features`` a sequence of ``S`` tensors and ``teacher_features``
    a sequence of ``len(weights)`` sequences of ``S`` tensors
    (``teacher_features[k][s]``: teacher ``k``, stage ``s``).  Every tensor of
    a stage has the student's batch size (other dimensions free); teachers are
    detached.
    """

    def __init__(self, weights: Sequence[float] = (0.5, 0.5), fuse: str = "raw", stage_reduction: str = "mean"):
        super().__init__()
        ws = _weights(weights)
        total = sum(ws)
        self.weights = tuple(w / total for w in ws)
        self.fuse = _choice(fuse, ("raw", "normalized"), "fuse")
        self.stage_reduction = _choice(stage_reduction, ("mean", "sum"), "stage_reduction")

    def _per_teacher(self, teacher_features) -> list:
        if isinstance(teacher_features, Tensor) or not isinstance(teacher_features, Sequence):
            raise TypeError("teacher_features must be a list or tuple with one entry per teacher")
        if len(teacher_features) != len(self.weights):
            raise ValueError(
                f"got {len(teacher_features)} teacher feature entries but {len(self.weights)} weights; "
                "pass one weight per teacher"
            )
        return list(teacher_features)

    def fused_gram(self, teacher_features: Sequence[Tensor]) -> Tensor:
        """Fused ``B x B`` teacher map of one stage from one feature tensor per teacher."""
        teacher_features = self._per_teacher(teacher_features)
        for k, t in enumerate(teacher_features):
            if not isinstance(t, Tensor):
                raise TypeError(f"teacher_features[{k}] must be a torch.Tensor for one stage, got {type(t).__name__}")
            _batch_pair(teacher_features[0], t, "teacher_features[0]", f"teacher_features[{k}]")
        if self.fuse == "normalized":
            return sum(w * _sp_gram(t.detach()) for w, t in zip(self.weights, teacher_features))
        grams = [(f := t.detach().reshape(t.shape[0], -1)) @ f.t() for t in teacher_features]
        return F.normalize(sum(w * g for w, g in zip(self.weights, grams)), dim=1)

    def forward(self, student_features, teacher_features) -> Tensor:
        teachers = self._per_teacher(teacher_features)
        if isinstance(student_features, Tensor):
            stages = [(student_features, teachers)]
        else:
            students = list(student_features)
            if not students:
                raise ValueError("student_features is an empty sequence")
            for k, t in enumerate(teachers):
                if isinstance(t, Tensor) or not isinstance(t, Sequence) or len(t) != len(students):
                    raise ValueError(
                        f"with {len(students)} student stages, teacher_features[{k}] must be a sequence of "
                        f"{len(students)} tensors (one per stage)"
                    )
            stages = [(s, [t[i] for t in teachers]) for i, s in enumerate(students)]
        losses = []
        for i, (s, ts) in enumerate(stages):
            g_t = self.fused_gram(ts)
            _batch_pair(s, ts[0], f"student_features[{i}]" if len(stages) > 1 else "student_features",
                        "teacher_features[0]")
            losses.append(_sp_distance(_sp_gram(s), g_t))
        total = sum(losses)
        return total / len(losses) if self.stage_reduction == "mean" else total

    def extra_repr(self) -> str:
        return f"weights={self.weights}, fuse={self.fuse!r}, stage_reduction={self.stage_reduction!r}"
