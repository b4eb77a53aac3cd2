"""Decoupled knowledge distillation (Zhao, Cui, Song, Qiu & Liang, CVPR 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import _check_labels, _logits_pair, _nonnegative, _positive

__all__ = ["DKDLoss"]


def _binary(p: Tensor, gt: Tensor) -> Tensor:
    """``(B, K)`` probabilities -> ``(B, 2)``: the target-class mass and the rest."""
    return torch.stack([(p * gt).sum(dim=1), (p * ~gt).sum(dim=1)], dim=1)


class DKDLoss(nn.Module):
    r"""Decoupled knowledge distillation (Zhao, Cui, Song, Qiu & Liang,
    "Decoupled Knowledge Distillation", CVPR 2022).

    With ``p = softmax(z / T)``, the target-class mask ``g`` (one-hot of the
    label) and ``b = [sum(p * g), sum(p * (1 - g))]`` (target vs non-target
    mass):

    .. math::
        \mathrm{TCKD} = \frac{T^2}{B} \sum_b \mathrm{KL}\big(b^t \,\|\, b^s\big)

        \mathrm{NCKD} = \frac{T^2}{B} \sum_b \mathrm{KL}\big(\hat p^t \,\|\, \hat p^s\big),
        \qquad \hat p = \mathrm{softmax}(z / T - 1000\, g)

        L = \min(\text{epoch} / \text{warmup},\, 1)\,
            \big(\alpha\, \mathrm{TCKD} + \beta\, \mathrm{NCKD}\big)

    ``hat p`` is the distribution over the non-target classes (the target
    logit pushed down by 1000 before the softmax).  This is ``dkd_loss`` of
    mdistiller (``mdistiller/distillers/DKD.py``) exactly: the student's
    ``log b^s`` is ``torch.log`` of the summed probabilities, its ``log hat
    p^s`` a ``log_softmax``, both KL terms are ``F.kl_div`` summed over
    batch and classes and divided by the batch size, times ``T^2``; and the
    warm-up factor of mdistiller's ``DKD.forward_train``.  Defaults
    ``alpha = 1``, ``beta = 8``, ``T = 4``, ``warmup = 20`` (mdistiller's
    ``CFG.DKD``; its CIFAR-100 configs lower ``beta`` to 2 or 6 for some
    teacher-student pairs, its ImageNet ones use ``beta`` 0.5 or 2, ``T =
    1``, ``warmup = 1``).  The CE term of the DKD objective is not part of
    this loss (register ``ce`` beside it).

    **Warm-up.** The factor needs the current epoch, counted as mdistiller
    does: 1 for the first epoch (so the first epoch trains with
    ``1 / warmup`` of the loss, full weight from epoch ``warmup`` on).
    Either call :meth:`set_epoch` at the start of every epoch (the trainer
    calls ``set_epoch`` on every loss that has one), or pass
    ``forward(..., epoch=e)``, which takes precedence.  Without either the
    loss raises ``ValueError`` (rather than silently skipping the warm-up);
    ``warmup=0`` turns the warm-up off and needs no epoch.

    Teacher logits are detached (mdistiller computes them under
    ``torch.no_grad``): gradients reach the student only.

    Args:
        alpha: TCKD weight (default 1.0).  beta: NCKD weight (default 8.0).
        temperature: ``T > 0`` (default 4.0).
        warmup: warm-up length in epochs, ``>= 0`` (default 20).

    ``forward(student_logits, teacher_logits, labels, epoch=None)``: logits
    ``(B, K)`` with ``K >= 2``, labels ``(B,)`` class indices.  Returns a
    scalar; :meth:`terms` returns the parts.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0, warmup: float = 20):
        super().__init__()
        self.alpha = _nonnegative(alpha, "alpha")
        self.beta = _nonnegative(beta, "beta")
        self.temperature = _positive(temperature, "temperature")
        self.warmup = _nonnegative(warmup, "warmup")
        self.epoch: float | None = None

    def set_epoch(self, epoch: float) -> None:
        """Set the epoch of the warm-up factor (1 for the first epoch, as mdistiller)."""
        self.epoch = _nonnegative(epoch, "epoch")

    def warmup_factor(self, epoch: float | None = None) -> float:
        """``min(epoch / warmup, 1)`` for ``epoch`` (default: the one from :meth:`set_epoch`)."""
        if self.warmup == 0:
            return 1.0
        epoch = self.epoch if epoch is None else _nonnegative(epoch, "epoch")
        if epoch is None:
            raise ValueError(
                f"DKDLoss needs the epoch for its warm-up (warmup={self.warmup:g} epochs): call "
                "loss.set_epoch(epoch) each epoch (1 for the first, as mdistiller counts), pass "
                "loss(..., epoch=epoch), or build it with warmup=0"
            )
        return min(epoch / self.warmup, 1.0)

    def terms(self, student_logits: Tensor, teacher_logits: Tensor, labels: Tensor,
              epoch: float | None = None) -> dict:
        """``{"tckd", "nckd", "warmup", "total"}``: TCKD and NCKD unweighted (with ``T^2``), the warm-up
        factor (a float) and the loss."""
        _logits_pair(student_logits, teacher_logits)
        _check_labels(labels, student_logits)
        k = student_logits.shape[1]
        if k < 2:
            raise ValueError(f"DKDLoss needs at least 2 classes, got logits of shape {tuple(student_logits.shape)}")
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"labels must be class indices in [0, {k}), got values in "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        factor = self.warmup_factor(epoch)
        teacher_logits = teacher_logits.detach()
        t, b = self.temperature, student_logits.shape[0]
        gt = F.one_hot(labels.long(), k).bool()
        b_s = _binary(F.softmax(student_logits / t, dim=1), gt)
        b_t = _binary(F.softmax(teacher_logits / t, dim=1), gt)
        tckd = F.kl_div(torch.log(b_s), b_t, reduction="sum") * t**2 / b
        masked = 1000.0 * gt.to(student_logits.dtype)
        log_nt_s = F.log_softmax(student_logits / t - masked, dim=1)
        nt_t = F.softmax(teacher_logits / t - masked, dim=1)
        nckd = F.kl_div(log_nt_s, nt_t, reduction="sum") * t**2 / b
        total = factor * (self.alpha * tckd + self.beta * nckd)
        return {"tckd": tckd, "nckd": nckd, "warmup": factor, "total": total}

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, labels: Tensor,
                epoch: float | None = None) -> Tensor:
        return self.terms(student_logits, teacher_logits, labels, epoch)["total"]

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}, warmup={self.warmup:g}"
