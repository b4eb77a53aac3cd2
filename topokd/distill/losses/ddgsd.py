"""Data-distortion guided self-distillation (Xu & Liu, AAAI 2019)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import _batch_pair, _check_labels, _logits_pair, _nonnegative, _positive
from .kd import _kd

__all__ = ["DDGSDLoss"]


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
