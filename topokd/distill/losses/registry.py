"""Registry of the distillation losses, by the names a config uses
(``losses: {ce: 0.1, dkd: {weight: 1.0, beta: 6}}``), torchdistill style.

API
---
:func:`register_loss` (``register_loss("name", Cls, inputs=...)`` or the
decorator ``@register_loss("name", inputs=...)``), :func:`create_loss`
(``create_loss("rkd", angle_weight=0)``), :func:`list_losses` (optionally
of one input kind), :func:`loss_entry` (a :class:`LossEntry`: class,
input kind, call convention, parameters), :func:`check_pairing` (refuses
a same-modality loss between a 1-D and a 2-D network) and :data:`LOSSES`
(a read-only ``name -> LossEntry`` mapping).

Unknown names raise ``ValueError``, unknown or missing parameters
``TypeError``, each in one line naming the valid choices.  The weight of
each loss in the objective is the trainer's business: no entry takes a
``weight`` parameter (only losses whose reference defines inner weights,
RKD's and DKD's, have them).

Input kinds and call conventions
--------------------------------
Every entry records what it consumes (``entry.inputs``), so a trainer can
feed each loss generically:

``"labels"`` -- ``loss(student_logits, labels)``
    ``(B, K)`` logits, ``(B,)`` class indices (``ce``).
``"logits"`` -- ``loss(student_logits, teacher_logits)``
    both ``(B, K)``, any modality (``kd``, ``dist``).
``"logits+labels"`` -- ``loss(student_logits, teacher_logits, labels)``
    (``dkd``; it also takes ``epoch=`` and has ``set_epoch``).
``"features"`` -- ``loss(student_features, teacher_features)``
    per-stage feature maps of the *same modality*: both ``(B, C, L)`` or
    both ``(B, C, H, W)``, one pair of tensors or two equally long lists
    of them.  ``at`` and ``amd`` sum over the pairs (channel counts and
    sizes may differ; each class says how it matches the sizes);
    ``fitnet`` uses the pair at its ``hint_layer`` (default the last) and
    needs the channels it was built with; ``ft`` takes one pair of tensors
    only, of the ``dims`` and channels it was built with.  A 2-D PI
    teacher and a 1-D student cannot be paired this way:
    :func:`check_pairing` refuses it.
``"relations"`` -- ``loss(student_features, teacher_features)``
    batch-level relations, any modality (only the batch sizes must
    match).  ``sp``: tensors of any shape, each flattened to ``(B, -1)``,
    or two equally long lists (summed); ``rkd``, ``pkt``: ``(B, D)``
    embeddings or ``(B, C, *S)`` maps global-average-pooled to ``(B, C)``,
    or two equally long lists (summed); ``fused_sp``:
    ``loss(student_features, [teacher_1_features, ..., teacher_n_features])``,
    one entry per *teacher* (fused with its ``weights``; see the class for
    several stages at once).  ``rkd`` and ``pkt`` raise ``ValueError``
    below their ``min_batch`` class attribute (3 and 2; ``dist`` has one
    too, 2): a trainer may skip such batches.
``"views"`` -- ``loss(logits1, logits2, features1, features2, labels)``
    two distorted views of one student, no teacher (``ddgsd``).
``"batch"`` -- batch transforms, not losses: ``create_loss`` returns
    ``fn(x, y, **rest)`` with the given parameters bound, giving
    ``(x_mix, y_a, y_b, lam)``; train with
    :func:`~topokd.distill.losses.mixup.mixup_criterion` (``mixup``,
    ``partial_mixup``).

``entry.call`` holds each entry's own convention in one line.

Teacher inputs are detached inside every loss, so only the student (and
the loss's own modules) get gradients.  Losses with trainable parameters
(``fitnet``'s regressor, ``ft``'s translator) own them as submodules: the
trainer adds ``loss.parameters()`` to the student's optimizer, moves the
loss to the device and calls ``loss.train()`` / ``loss.eval()`` with the
student.  (``ft``'s paraphraser is trained first with
``loss.reconstruction_loss(teacher_features)``; afterwards no gradient
reaches it through the transfer loss, so the optimizer leaves it as it is,
or freeze it with ``loss.paraphraser.requires_grad_(False)``.)  Losses with a
``set_epoch`` method (``dkd``) get ``loss.set_epoch(epoch)`` at the start
of every epoch, counting from 1.

Registered names
----------------
================= ============= ==================================================
name              inputs        class / function
================= ============= ==================================================
``ce``            labels        :class:`CELoss`
``kd``            logits        :class:`~topokd.distill.losses.kd.KDLoss`
``dist``          logits        :class:`~topokd.distill.losses.dist.DISTLoss`
``dkd``           logits+labels :class:`~topokd.distill.losses.dkd.DKDLoss`
``at``            features      :class:`~topokd.distill.losses.attention.AttentionTransferLoss`
``amd``           features      :class:`~topokd.distill.losses.attention.AMDLoss`
``fitnet``        features      :class:`~topokd.distill.losses.hints.FitNetLoss`
``ft``            features      :class:`~topokd.distill.losses.factor.FactorTransferLoss`
``sp``            relations     :class:`~topokd.distill.losses.similarity.SimilarityPreservingLoss`
``fused_sp``      relations     :class:`~topokd.distill.losses.similarity.FusedSimilarityPreservingLoss`
``rkd``           relations     :class:`~topokd.distill.losses.relational.RKDLoss`
``pkt``           relations     :class:`~topokd.distill.losses.relational.PKTLoss`
``ddgsd``         views         :class:`~topokd.distill.losses.ddgsd.DDGSDLoss`
``mixup``         batch         :func:`~topokd.distill.losses.mixup.mixup`
``partial_mixup`` batch         :func:`~topokd.distill.losses.mixup.partial_mixup`
================= ============= ==================================================
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import _check_labels, _tensor, _unit_interval
from .attention import AMDLoss, AttentionTransferLoss
from .ddgsd import DDGSDLoss
from .dist import DISTLoss
from .dkd import DKDLoss
from .factor import FactorTransferLoss
from .hints import FitNetLoss
from .kd import KDLoss
from .mixup import mixup, partial_mixup
from .relational import PKTLoss, RKDLoss
from .similarity import FusedSimilarityPreservingLoss, SimilarityPreservingLoss

__all__ = [
    "INPUT_KINDS",
    "LOSSES",
    "CELoss",
    "LossEntry",
    "check_pairing",
    "create_loss",
    "list_losses",
    "loss_entry",
    "register_loss",
]

#: What a loss consumes -> its call convention (see the module docstring).
INPUT_KINDS: dict[str, str] = {
    "labels": "loss(student_logits, labels)",
    "logits": "loss(student_logits, teacher_logits)",
    "logits+labels": "loss(student_logits, teacher_logits, labels)",
    "features": "loss(student_features, teacher_features): same-modality maps, one pair or two equally long lists",
    "relations": "loss(student_features, teacher_features): batch-level, any modality",
    "views": "loss(logits1, logits2, features1, features2, labels): two views of the student",
    "batch": "create_loss(...) returns fn(x, y) -> (x_mix, y_a, y_b, lam)",
}
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_BATCH_DATA_ARGS = 2  # a batch transform's first two parameters are the data (x, y)


@dataclass(frozen=True)
class LossEntry:
    """One registered loss: its ``name``, ``factory`` (an ``nn.Module``
    subclass, or for ``inputs="batch"`` a function), ``inputs`` kind and
    ``call`` convention."""

    name: str
    factory: Callable
    inputs: str
    call: str

    @property
    def summary(self) -> str:
        """First paragraph of the factory's docstring, on one line."""
        doc = inspect.getdoc(self.factory) or ""
        return " ".join(doc.split("\n\n")[0].split())

    @property
    def same_modality(self) -> bool:
        """Whether student and teacher inputs must be maps of the same dimensionality (``"features"``)."""
        return self.inputs == "features"

    def signature(self) -> inspect.Signature | None:
        """The parameters ``create_loss`` accepts (None when they cannot be read)."""
        try:
            sig = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return None
        if self.inputs == "batch":
            params = list(sig.parameters.values())[_BATCH_DATA_ARGS:]
            sig = sig.replace(parameters=params)
        return sig

    @property
    def parameters(self) -> tuple[str, ...]:
        """Names of the parameters ``create_loss`` accepts."""
        sig = self.signature()
        if sig is None:
            return ()
        return tuple(p.name for p in sig.parameters.values()
                     if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


_REGISTRY: dict[str, LossEntry] = {}
#: Read-only view of the registry: ``name -> LossEntry``.
LOSSES = types.MappingProxyType(_REGISTRY)


def _check_name(name, inputs) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"a loss name must be lowercase letters, digits and '_', starting with a letter (a "
                         f"config key such as 'fused_sp'), got {name!r}")
    if inputs not in INPUT_KINDS:
        close = difflib.get_close_matches(str(inputs), list(INPUT_KINDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"inputs of loss {name!r} must be one of {', '.join(INPUT_KINDS)}; got {inputs!r}{hint}")


def _add(name, factory, inputs, call, overwrite) -> None:
    _check_name(name, inputs)
    if inputs == "batch":
        if not callable(factory) or isinstance(factory, type):
            raise TypeError(f"batch transform {name!r} must be a function fn(x, y, ...), got {factory!r}")
    elif not (isinstance(factory, type) and issubclass(factory, nn.Module)):
        raise TypeError(f"loss {name!r} must be an nn.Module subclass, got {factory!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"loss {name!r} is already registered ({_REGISTRY[name].factory.__name__}); pass "
                         "overwrite=True to replace it")
    if call is not None and not isinstance(call, str):
        raise TypeError(f"call must be a one-line description (str), got {type(call).__name__}")
    _REGISTRY[name] = LossEntry(name, factory, inputs, call or INPUT_KINDS[inputs])


def register_loss(name: str, cls: Callable | None = None, *, inputs: str, call: str | None = None,
                  overwrite: bool = False):
    """Register a loss class (an ``nn.Module`` subclass) or, with
    ``inputs="batch"``, a batch-transform function, under ``name``.

    Forms::

        register_loss("rkd", RKDLoss, inputs="relations")     # returns RKDLoss

        @register_loss("my_kd", inputs="logits")              # decorator
        class MyKDLoss(nn.Module): ...

    ``inputs``: one of :data:`INPUT_KINDS` (what the loss consumes, see the
    module docstring).  ``call``: a one-line call convention when it
    differs from the kind's usual one.  A taken name raises ``ValueError``
    unless ``overwrite=True``.  Returns ``cls`` unchanged.
    """
    if cls is not None:
        _add(name, cls, inputs, call, overwrite)
        return cls

    def decorator(factory):
        _add(name, factory, inputs, call, overwrite)
        return factory

    _check_name(name, inputs)  # now, not only when the decorator is applied
    return decorator


def _unknown_message(name) -> str:
    names = sorted(_REGISTRY)
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown loss {name!r}{hint} (registered: {', '.join(names)})"


def loss_entry(name: str) -> LossEntry:
    """The :class:`LossEntry` of a registered name."""
    if not isinstance(name, str):
        raise TypeError(f"a loss name must be a string, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(_unknown_message(name)) from None


def _check_params(entry: LossEntry, params: dict) -> None:
    sig = entry.signature()
    if sig is None:
        return
    values = sig.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in values):
        return
    valid = entry.parameters
    listing = ", ".join(valid) if valid else "none"
    what = f"{entry.name!r} ({entry.factory.__name__})"
    for key in params:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"loss {what} has no parameter {key!r}{hint}; its parameters: {listing}")
    missing = [p.name for p in values if p.default is p.empty and p.name not in params
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise TypeError(f"loss {what} needs {', '.join(missing)}; its parameters: {listing}")


def create_loss(name: str, **params):
    """Build a registered loss: ``create_loss(name, **params)``.

    ``params`` go to the class (``create_loss("dkd", beta=6.0)``,
    ``create_loss("fitnet", student_channels=32, teacher_channels=64)``);
    for a batch transform they are bound to the function
    (``create_loss("mixup", alpha=0.4)(x, y)``).  An unknown name raises
    ``ValueError`` with the closest names and the list of all; an unknown
    or missing parameter raises ``TypeError`` naming the valid ones (read
    from the class's signature, so new options of a class are accepted as
    soon as it has them).  Invalid values raise the class's own errors.
    """
    entry = loss_entry(name)
    _check_params(entry, params)
    if entry.inputs == "batch":
        return functools.partial(entry.factory, **params)
    return entry.factory(**params)


def list_losses(inputs: str | None = None) -> list[str]:
    """Registered names, sorted; only those of one input kind if ``inputs`` is given."""
    if inputs is not None and inputs not in INPUT_KINDS:
        raise ValueError(f"inputs must be None or one of {', '.join(INPUT_KINDS)}, got {inputs!r}")
    return sorted(n for n, e in _REGISTRY.items() if inputs is None or e.inputs == inputs)


def check_pairing(name: str, student_dims: int, teacher_dims: int) -> None:
    """Refuse a ``"features"`` loss between feature maps of different
    dimensionality: ``student_dims`` / ``teacher_dims`` are the numbers of
    spatial axes (1 for ``(B, C, L)`` signals, 2 for ``(B, C, H, W)``
    persistence images).  Every other kind accepts any pairing."""
    entry = loss_entry(name)
    if entry.same_modality and student_dims != teacher_dims:
        raise ValueError(
            f"loss {name!r} compares feature maps of the same modality, but the student's are {student_dims}-D "
            f"and the teacher's {teacher_dims}-D (e.g. a persistence-image teacher and a signal student); use a "
            f"relations loss ({', '.join(list_losses('relations'))}) or a logits loss "
            f"({', '.join(list_losses('logits') + list_losses('logits+labels'))}) for this pair"
        )


class CELoss(nn.Module):
    r"""Cross-entropy with the hard labels, ``F.cross_entropy(z_s, y)``:

    .. math:: L = -\frac{1}{B} \sum_b \log \mathrm{softmax}(z_s^{(b)})_{y_b}

    (with ``label_smoothing`` and ``reduction`` passed to
    :func:`torch.nn.functional.cross_entropy`; ``reduction="none"`` gives
    the per-sample losses that
    :func:`~topokd.distill.losses.mixup.mixup_criterion` needs with
    partial mixup).

    Args:
        label_smoothing: in [0, 1] (default 0.0).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    ``forward(student_logits, labels)``: ``(B, K)`` logits, ``(B,)`` class indices.
    """

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__()
        self.label_smoothing = _unit_interval(label_smoothing, "label_smoothing")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, student_logits: Tensor, labels: Tensor) -> Tensor:
        _tensor(student_logits, "student_logits")
        if student_logits.ndim != 2:
            raise ValueError(f"student_logits must have shape (B, num_classes), got {tuple(student_logits.shape)}")
        _check_labels(labels, student_logits)
        return F.cross_entropy(student_logits, labels.long(), label_smoothing=self.label_smoothing,
                               reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}, reduction={self.reduction!r}"


# --------------------------------------------------------------------------- the built-in losses
register_loss("ce", CELoss, inputs="labels")
register_loss("kd", KDLoss, inputs="logits")
register_loss("dist", DISTLoss, inputs="logits")
register_loss("dkd", DKDLoss, inputs="logits+labels",
              call="loss(student_logits, teacher_logits, labels, epoch=None); loss.set_epoch(epoch) each epoch")
register_loss("at", AttentionTransferLoss, inputs="features",
              call="loss(student_features, teacher_features): two same-dims maps or equally long lists (summed)")
register_loss("amd", AMDLoss, inputs="features",
              call="loss(student_features, teacher_features): two same-dims maps or equally long lists (summed)")
register_loss("fitnet", FitNetLoss, inputs="features",
              call="loss(student_features, teacher_features): two maps, or lists (the pair at hint_layer); "
                   "train loss.parameters() with the student")
register_loss("ft", FactorTransferLoss, inputs="features",
              call="loss(student_features, teacher_features): one pair of maps of the loss's dims; "
                   "reconstruction_loss(teacher_features) first; train the translator with the student")
register_loss("sp", SimilarityPreservingLoss, inputs="relations",
              call="loss(student_features, teacher_features): tensors (B, ...) flattened, or equally long lists "
                   "(summed)")
register_loss("fused_sp", FusedSimilarityPreservingLoss, inputs="relations",
              call="loss(student_features, [teacher_1, ..., teacher_n]): one entry per teacher (see the class "
                   "for several stages)")
register_loss("rkd", RKDLoss, inputs="relations",
              call="loss(student_features, teacher_features): (B, D) or maps pooled to (B, C), or equally long "
                   "lists (summed); B >= 3")
register_loss("pkt", PKTLoss, inputs="relations",
              call="loss(student_features, teacher_features): (B, D) or maps pooled to (B, C), or equally long "
                   "lists (summed); B >= 2")
register_loss("ddgsd", DDGSDLoss, inputs="views")
register_loss("mixup", mixup, inputs="batch",
              call="create_loss('mixup', alpha=...)(x, y, generator=None) -> (x_mix, y_a, y_b, lam: float)")
register_loss("partial_mixup", partial_mixup, inputs="batch",
              call="create_loss('partial_mixup', alpha=..., fraction=...)(x, y, generator=None) "
                   "-> (x_mix, y_a, y_b, lam: (B,) tensor)")
