"""Batch-level relational distillation: RKD (Park et al., CVPR 2019) and PKT
(Passalis & Tefas, ECCV 2018).

Both compare relations *between the samples of a batch* (``B x B``
distances, ``B x B x B`` angles, ``B x B`` cosine similarities), so the
student and teacher embeddings may have different widths and come from
different modalities: a 2-D persistence-image teacher and a 1-D signal
student are compared through their ``(B, C)`` embeddings.

Inputs (:func:`embedding`): a ``(B, D)`` embedding is used as it is; a
feature map ``(B, C, *S)`` of any number of spatial/temporal axes (``(B, C,
L)``, ``(B, C, H, W)``) is global-average-pooled over those axes to ``(B,
C)`` -- the penultimate, pooled feature that RepDistiller (``feat[-1]``) and
mdistiller (``pooled_feat``) feed to these losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import _batch_pair, _nonnegative, _pairs, _positive, _tensor

__all__ = ["PKTLoss", "RKDLoss", "embedding"]


def embedding(features: Tensor, name: str = "features") -> Tensor:
    """``(B, D)`` as it is; ``(B, C, *S)`` global-average-pooled over ``*S`` to ``(B, C)``."""
    _tensor(features, name)
    if features.ndim < 2:
        raise ValueError(f"{name} must be a batched (B, D) embedding or (B, C, ...) map, got shape "
                         f"{tuple(features.shape)}")
    if features.ndim == 2:
        return features
    return features.mean(dim=tuple(range(2, features.ndim)))


def _embedding_pairs(student, teacher, loss: str, min_batch: int) -> list[tuple[Tensor, Tensor]]:
    out = []
    pairs = _pairs(student, teacher)
    single = isinstance(student, Tensor)
    for i, (s, t) in enumerate(pairs):
        s_name, t_name = ("student_features", "teacher_features") if single else \
            (f"student_features[{i}]", f"teacher_features[{i}]")
        _batch_pair(s, t, s_name, t_name)
        if s.shape[0] < min_batch:
            raise ValueError(f"{loss} needs a batch of at least {min_batch} samples (it distils relations between "
                             f"samples), got {s_name} of shape {tuple(s.shape)}")
        out.append((embedding(s, s_name), embedding(t.detach(), t_name)))
    return out


def pairwise_distances(e: Tensor, squared: bool = False, eps: float = 1e-12) -> Tensor:
    """``B x B`` Euclidean distances of the rows of ``e``, the reference's way:
    ``||e_i||^2 + ||e_j||^2 - 2 e_i.e_j`` clamped below at ``eps``, square-rooted
    unless ``squared``, with a zero diagonal."""
    sq = e.pow(2).sum(dim=1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (e @ e.t())).clamp(min=eps)
    if not squared:
        d = d.sqrt()
    eye = torch.eye(e.shape[0], dtype=torch.bool, device=e.device)
    return d.masked_fill(eye, 0.0)


def _normalised_distances(e: Tensor, squared: bool, eps: float) -> Tensor:
    d = pairwise_distances(e, squared, eps)
    return d / d[d > 0].mean()


def _angles(e: Tensor) -> Tensor:
    """``a[i, j, k] = <unit(e_j - e_i), unit(e_k - e_i)>`` for all triplets, flattened (``B^3``)."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)


class RKDLoss(nn.Module):
    r"""Relational knowledge distillation (Park, Kim, Lu & Cho, "Relational
    Knowledge Distillation", CVPR 2019): distance-wise plus angle-wise.

    With ``s_i``, ``t_i`` the student / teacher embeddings of the batch
    (see :func:`embedding`):

    .. math::
        \psi_D(x_i, x_j) = \frac{\|x_i - x_j\|_2}{\mu}, \qquad
        \mu = \operatorname{mean}\{\|x_i - x_j\|_2 > 0\}

        \psi_A(x_i, x_j, x_k) = \Big\langle \frac{x_j - x_i}{\|x_j - x_i\|_2},
            \frac{x_k - x_i}{\|x_k - x_i\|_2} \Big\rangle

        L = w_D \operatorname{mean}_{i,j} \ell_\delta\big(\psi_D(s), \psi_D(t)\big)
          + w_A \operatorname{mean}_{i,j,k} \ell_\delta\big(\psi_A(s), \psi_A(t)\big)

    with :math:`\ell_\delta` the Huber loss ``F.smooth_l1_loss`` (``beta=1``,
    mean over all ``B^2`` distance and ``B^3`` angle entries, degenerate ones
    included).  Exactly the ``RKDLoss`` of RepDistiller
    (``distiller_zoo/RKD.py``) and ``rkd_loss`` of mdistiller
    (``mdistiller/distillers/RKD.py``): distances computed as
    ``||a||^2 + ||b||^2 - 2 a.b`` clamped at ``eps`` (so coincident samples
    get distance ``sqrt(eps)``, and count in the mean ``mu``), a zero
    diagonal excluded from ``mu``, unit vectors by ``F.normalize``.
    The same formula as the authors' metric-learning code (lenscloth/RKD,
    ``metric/loss.py``, ``RkdDistance`` + ``RKdAngle``).  Defaults
    ``w_D = 25``, ``w_A = 50``, the classification defaults of RepDistiller
    and mdistiller (``engine/cfg.py``); the authors' metric-learning
    scripts use 1 and 2.

    Batch size: the angles need triplets, and with 2 samples every
    normalised distance is 1 and every angle is the same for any embedding
    (the reference returns exactly 0; with 1 sample its ``mu`` is a mean of
    nothing, NaN), so batches of fewer than :attr:`min_batch` = 3 samples
    raise ``ValueError``.  Constant embeddings give a finite loss and
    finite gradients.

    Teacher embeddings are detached (the references compute them under
    ``torch.no_grad``): gradients reach the student only.

    Args:
        distance_weight: ``w_D`` (default 25.0).
        angle_weight: ``w_A`` (default 50.0).
        squared: use squared distances in ``psi_D`` (default False).
        eps: distance clamp (default 1e-12).

    ``forward(student_features, teacher_features)``: two tensors (``(B, D)``
    embeddings or ``(B, C, *S)`` maps, pooled to ``(B, C)``; widths and
    dimensionalities may differ), or two equally long sequences of them
    (summed).  :meth:`terms` returns the two parts.
    """

    #: Smallest batch the relations are defined for.
    min_batch = 3

    def __init__(self, distance_weight: float = 25.0, angle_weight: float = 50.0, squared: bool = False,
                 eps: float = 1e-12):
        super().__init__()
        self.distance_weight = _nonnegative(distance_weight, "distance_weight")
        self.angle_weight = _nonnegative(angle_weight, "angle_weight")
        if self.distance_weight + self.angle_weight == 0:
            raise ValueError("distance_weight and angle_weight must not both be zero")
        self.squared = bool(squared)
        self.eps = _positive(eps, "eps")

    def _pair_terms(self, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        zero = s.new_zeros(())
        dist = angle = zero
        if self.distance_weight > 0:
            dist = F.smooth_l1_loss(_normalised_distances(s, self.squared, self.eps),
                                    _normalised_distances(t, self.squared, self.eps))
        if self.angle_weight > 0:
            angle = F.smooth_l1_loss(_angles(s), _angles(t))
        return dist, angle

    def terms(self, student_features, teacher_features) -> dict[str, Tensor]:
        """``{"distance", "angle", "total"}``: the unweighted parts (summed over pairs) and the loss."""
        dist = angle = 0.0
        for s, t in _embedding_pairs(student_features, teacher_features, "RKDLoss", self.min_batch):
            d, a = self._pair_terms(s, t)
            dist, angle = dist + d, angle + a
        return {"distance": dist, "angle": angle,
                "total": self.distance_weight * dist + self.angle_weight * angle}

    def forward(self, student_features, teacher_features) -> Tensor:
        return self.terms(student_features, teacher_features)["total"]

    def extra_repr(self) -> str:
        return f"distance_weight={self.distance_weight}, angle_weight={self.angle_weight}, squared={self.squared}"


def _unit_rows(x: Tensor, eps: float) -> Tensor:
    """``x / (||x||_2 + eps)`` per row, NaN -> 0 (as the reference)."""
    # vector_norm has a zero subgradient at 0, where sqrt(sum(x^2)) of the reference has a NaN one
    y = x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + eps)
    return torch.where(torch.isnan(y), torch.zeros_like(y), y)


def _similarity_distribution(x: Tensor, eps: float) -> Tensor:
    u = _unit_rows(x, eps)
    sim = (u @ u.t() + 1.0) / 2.0
    return sim / sim.sum(dim=1, keepdim=True)


class PKTLoss(nn.Module):
    r"""Probabilistic knowledge transfer (Passalis & Tefas, "Learning Deep
    Representations with Probabilistic Knowledge Transfer", ECCV 2018).

    With ``u_i = x_i / (||x_i||_2 + eps)`` (NaN entries set to 0), the cosine
    similarities are mapped to ``[0, 1]`` and each row is normalised to a
    distribution over the batch:

    .. math::
        K_{ij} = \frac{u_i^\top u_j + 1}{2}, \qquad
        P_{ij} = \frac{K_{ij}}{\sum_k K_{ik}}

        L = \frac{1}{B^2} \sum_{i,j} P^t_{ij}
            \log\frac{P^t_{ij} + \epsilon}{P^s_{ij} + \epsilon}

    (``j = i`` included; the element mean of the reference, i.e. ``1/B``
    times the batch-mean KL of the rows, up to the ``eps`` in the log).
    Exactly the ``PKT.cosine_similarity_loss`` of RepDistiller
    (``distiller_zoo/PKT.py``, from the authors' code) and ``pkt_loss`` of
    mdistiller (``mdistiller/distillers/PKT.py``), ``eps = 1e-7``, with one
    difference off its domain: the norm is ``torch.linalg.vector_norm``,
    whose gradient at an all-zero row is 0 where the reference's
    ``sqrt(sum(x^2))`` gives NaN (same values everywhere, same gradients
    wherever the reference's are finite).  No weight is applied here
    (mdistiller's ``FEAT_WEIGHT`` default for PKT is 30000: the trainer
    applies the configured weight).

    Batch size: a batch of one sample has ``P = [[1]]`` on both sides (the
    reference returns exactly 0), so batches smaller than
    :attr:`min_batch` = 2 raise ``ValueError``.

    Teacher embeddings are detached: gradients reach the student only.

    Args:
        eps: default 1e-7.

    ``forward(student_features, teacher_features)``: two tensors (``(B, D)``
    embeddings or ``(B, C, *S)`` maps pooled to ``(B, C)``, see
    :func:`embedding`), or two equally long sequences of them (summed).
    """

    #: Smallest batch the relations are defined for.
    min_batch = 2

    def __init__(self, eps: float = 1e-7):
        super().__init__()
        self.eps = _positive(eps, "eps")

    def forward(self, student_features, teacher_features) -> Tensor:
        total = 0.0
        for s, t in _embedding_pairs(student_features, teacher_features, "PKTLoss", self.min_batch):
            p_s, p_t = _similarity_distribution(s, self.eps), _similarity_distribution(t, self.eps)
            total = total + (p_t * torch.log((p_t + self.eps) / (p_s + self.eps))).mean()
        return total

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
