"""Knowledge-distillation losses (one ``nn.Module`` per method, mdistiller style),
one module per method family:

:mod:`~topokd.distill.losses.kd` -- logit losses
    :class:`KDLoss` (Hinton et al. 2015, optional logit standardisation of
    Sun et al. 2024), :class:`KDCrossEntropyLoss` / :func:`kd_objective`,
    :class:`MultiTeacherKDLoss`, :func:`standardize_logits`.
:mod:`~topokd.distill.losses.attention` -- attention maps
    :class:`AttentionTransferLoss` (Zagoruyko & Komodakis 2017),
    :class:`AMDLoss` (Jeon et al. 2023).
:mod:`~topokd.distill.losses.similarity` -- similarity preserving
    :class:`SimilarityPreservingLoss` and :class:`FusedSimilarityPreservingLoss`
    (Tung & Mori 2019).
:mod:`~topokd.distill.losses.factor` -- factor transfer
    :class:`FactorTransferLoss` with :class:`Paraphraser` / :class:`Translator`
    (Kim et al. 2018).
:mod:`~topokd.distill.losses.ddgsd` -- self-distillation
    :class:`DDGSDLoss` (Xu & Liu 2019).
:mod:`~topokd.distill.losses.mixup` -- mixup
    :func:`mixup`, :func:`partial_mixup`, :func:`mixup_criterion`.
:mod:`~topokd.distill.losses.hints` -- FitNet hints
    :class:`FitNetLoss` (Romero et al. 2015), with its trainable regressor.
:mod:`~topokd.distill.losses.relational` -- batch-level relations
    :class:`RKDLoss` (Park et al. 2019), :class:`PKTLoss` (Passalis & Tefas
    2018), :func:`embedding`.
:mod:`~topokd.distill.losses.dkd` -- decoupled KD
    :class:`DKDLoss` (Zhao et al. 2022), with the warm-up.
:mod:`~topokd.distill.losses.dist` -- relations of the predictions
    :class:`DISTLoss` (Huang et al. 2022).
:mod:`~topokd.distill.losses.registry` -- the losses by config name
    :func:`register_loss`, :func:`create_loss`, :func:`list_losses`,
    :func:`loss_entry` (a :class:`~topokd.distill.losses.registry.LossEntry`),
    :func:`check_pairing`, :data:`LOSSES`, :data:`INPUT_KINDS`, and
    :class:`CELoss` (``ce``).  Its docstring gives each input kind's call
    convention.

Names: every loss module ends in ``Loss``; the earlier names
(``AttentionTransfer``, ``KDCrossEntropy``, ``MultiTeacherKD``,
``SimilarityPreserving``, ``FusedSimilarityPreserving``, ``FactorTransfer``)
still resolve to the same classes, with a ``DeprecationWarning`` (once per
name).  The weight of the KD term is ``kd_weight`` everywhere (``lam`` is
deprecated).

Conventions shared by every loss here:

* Arguments are ``(student, teacher)`` in that order.  Teacher tensors are
  detached inside the loss, so gradients reach only the student (and the
  loss's own trainable modules, e.g. the FT translator).
* Feature maps are ``(B, C, L)`` (1-D, e.g. sensor signals) or
  ``(B, C, H, W)`` (2-D, e.g. persistence images).  Teacher and student
  widths (channel counts) may differ: AT and AMD sum the channels away, SP
  compares ``B x B`` Gram matrices (RKD and PKT ``B x B`` relations too), FT
  maps both sides to a common factor space with its own modules, FitNet
  regresses the student's channels onto the teacher's with its own conv.
* Where spatial/temporal sizes differ, AT, AMD and FT match them as each
  class documents (pooling to the common size, or resizing the student's
  map to the teacher's by linear / bilinear interpolation,
  ``align_corners=False``).  FitNet does not interpolate: its regressor's
  convolution maps the sizes, as the reference ``ConvReg``.
* RKD and PKT take ``(B, D)`` embeddings; feature maps of any
  dimensionality are global-average-pooled to ``(B, C)`` first, so a 2-D
  PI teacher and a 1-D student can be related.  Batch-level relations
  need a minimum batch (the ``min_batch`` attribute of RKD, PKT, DIST);
  smaller batches raise ``ValueError``.
"""

from __future__ import annotations

import sys
import warnings

from .attention import AMDLoss, AttentionTransferLoss
from .ddgsd import DDGSDLoss
from .dist import DISTLoss
from .dkd import DKDLoss
from .factor import FactorTransferLoss, Paraphraser, Translator
from .hints import FitNetLoss
from .kd import KDCrossEntropyLoss, KDLoss, MixSTDLoss, MultiTeacherKDLoss, kd_objective, standardize_logits
from .mixup import mixkd_partial_mixup, mixup, mixup_criterion, mixup_targets, partial_mixup
from .registry import (
    INPUT_KINDS,
    LOSSES,
    CELoss,
    check_pairing,
    create_loss,
    list_losses,
    loss_entry,
    register_loss,
)
from .relational import PKTLoss, RKDLoss, embedding
from .similarity import FusedSimilarityPreservingLoss, SimilarityPreservingLoss

__all__ = [
    "INPUT_KINDS",
    "LOSSES",
    "AMDLoss",
    "AttentionTransferLoss",
    "CELoss",
    "DDGSDLoss",
    "DISTLoss",
    "DKDLoss",
    "FactorTransferLoss",
    "FitNetLoss",
    "FusedSimilarityPreservingLoss",
    "KDCrossEntropyLoss",
    "KDLoss",
    "MixSTDLoss",
    "MultiTeacherKDLoss",
    "PKTLoss",
    "Paraphraser",
    "RKDLoss",
    "SimilarityPreservingLoss",
    "Translator",
    "check_pairing",
    "create_loss",
    "embedding",
    "kd_objective",
    "list_losses",
    "loss_entry",
    "mixkd_partial_mixup",
    "mixup",
    "mixup_criterion",
    "mixup_targets",
    "partial_mixup",
    "register_loss",
    "standardize_logits",
]

#: Deprecated loss names -> their current names (same classes).
RENAMED = {
    "AttentionTransfer": "AttentionTransferLoss",
    "FactorTransfer": "FactorTransferLoss",
    "FusedSimilarityPreserving": "FusedSimilarityPreservingLoss",
    "KDCrossEntropy": "KDCrossEntropyLoss",
    "MultiTeacherKD": "MultiTeacherKDLoss",
    "SimilarityPreserving": "SimilarityPreservingLoss",
}
_WARNED: set[str] = set()


def deprecated_name(name: str, module: str = __name__):
    """The class behind a deprecated loss name, warning the first time it is used
    (outside topokd: topokd's own modules are moving to the new names and
    must not warn their users)."""
    new = RENAMED[name]
    caller = sys._getframe(2).f_globals.get("__name__", "")
    internal = caller == "topokd" or caller.startswith("topokd.")
    if name not in _WARNED and not internal:
        _WARNED.add(name)
        warnings.warn(f"{module}.{name} is deprecated: use {new} (the same class, renamed)", DeprecationWarning,
                      stacklevel=3)
    return globals()[new]


def __getattr__(name: str):
    if name in RENAMED:
        return deprecated_name(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
