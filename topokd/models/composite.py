"""Topology-augmented models (Jeon et al., TDA-KD for wearable sensor data).

* :class:`PITeacher` -- a 2-D backbone over the ``C``-channel PI stack
  (registered as ``pi-teacher``);
* :class:`FusionTeacher` -- late fusion of a signal backbone and a PI
  backbone (``fusion-teacher``);
* :class:`PIAugmentedStudent` -- the same fusion, but its PIs come from a
  frozen PI-Net inside the model (:class:`FrozenPINet`), so at inference it
  needs only the raw signal (``pi-augmented-student``).

The classes take built modules; the registered factories
(:func:`pi_teacher`, :func:`fusion_teacher`, :func:`pi_augmented_student`)
take plain keywords (backbone names or modules, ``num_classes``,
``in_channels``, ...), so :func:`topokd.models.build_model` can rebuild them
from checkpoint metadata.  PIs are ``(B, C, R, R)`` as
:func:`topokd.signal_pis` gives them; signals are channel-major ``(B, C, T)``.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .backbones import _check_input, _check_int
from .pinet import PINetModule, SignalPINet
from .registry import create_model, register_model

__all__ = [
    "FrozenPINet",
    "FusionTeacher",
    "PIAugmentedStudent",
    "PITeacher",
    "fusion_teacher",
    "pi_augmented_student",
    "pi_teacher",
]


def _require_backbone(module: nn.Module, name: str, dims: int) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
    if not callable(getattr(module, "embed", None)) or not isinstance(getattr(module, "num_features", None), int):
        raise TypeError(f"{name} ({type(module).__name__}) must provide embed(x) -> (B, num_features) and "
                        "num_features, like the backbones of topokd.models")
    got = getattr(module, "dims", dims)
    if got != dims:
        raise ValueError(f"{name} must be a {dims}-D network, got a {got}-D {type(module).__name__}")


def _prefixed(prefix: str, module: nn.Module) -> tuple[str, ...]:
    return tuple(f"{prefix}.{n}" for n in getattr(module, "feature_layers", ()))


class PITeacher(nn.Module):
    """A classifier over the ``C``-channel persistence-image stack
    ``(B, C, R, R)``: a 2-D backbone (e.g. ``create_model("wrn16-3_2d",
    in_channels=C, num_classes=K)``) behind an input check.

    ``feature_layers`` are the backbone's, prefixed ``"backbone."``.
    """

    def __init__(self, backbone_2d: nn.Module):
        super().__init__()
        _require_backbone(backbone_2d, "backbone_2d", 2)
        self.backbone = backbone_2d
        self.in_channels = getattr(backbone_2d, "in_channels", None)
        self.num_classes = getattr(backbone_2d, "num_classes", None)
        self.num_features = backbone_2d.num_features
        self.feature_layers = _prefixed("backbone", backbone_2d)

    def _check(self, pis: torch.Tensor) -> None:
        if not torch.is_tensor(pis) or pis.dim() != 4:
            raise ValueError(f"PITeacher expects a (B, C, R, R) PI stack, got "
                             f"{tuple(pis.shape) if torch.is_tensor(pis) else type(pis).__name__}")

    def embed(self, pis: torch.Tensor) -> torch.Tensor:
        self._check(pis)
        return self.backbone.embed(pis)

    def forward(self, pis: torch.Tensor) -> torch.Tensor:
        self._check(pis)
        return self.backbone(pis)


class _LateFusion(nn.Module):
    """``classifier(concat(signal_backbone.embed(signal), pi_backbone.embed(pis)))``."""

    def _build_fusion(self, signal_backbone: nn.Module, pi_backbone: nn.Module, num_classes: int) -> None:
        _require_backbone(signal_backbone, "signal_backbone_1d", 1)
        _require_backbone(pi_backbone, "pi_backbone_2d", 2)
        self.num_classes = _check_int(num_classes, "num_classes", 1)
        self.signal_backbone, self.pi_backbone = signal_backbone, pi_backbone
        self.num_features = signal_backbone.num_features + pi_backbone.num_features
        self.classifier = nn.Linear(self.num_features, self.num_classes)
        nn.init.zeros_(self.classifier.bias)
        self.feature_layers = _prefixed("signal_backbone", signal_backbone) + _prefixed("pi_backbone", pi_backbone)

    def _fuse(self, signal: torch.Tensor, pis: torch.Tensor) -> torch.Tensor:
        if not (torch.is_tensor(signal) and torch.is_tensor(pis)) or signal.shape[0] != pis.shape[0]:
            raise ValueError(f"signal and PIs must be tensors with the same batch size, got "
                             f"{tuple(getattr(signal, 'shape', ()))} and {tuple(getattr(pis, 'shape', ()))}")
        return torch.cat([self.signal_backbone.embed(signal), self.pi_backbone.embed(pis)], dim=1)


class FusionTeacher(_LateFusion):
    """Late fusion of a raw-signal branch and a PI branch.

    ``forward(signal (B, C, T), pis (B, C', R, R))`` ->
    ``Linear(F_s + F_p -> num_classes)(concat(embed_s(signal), embed_p(pis)))``
    where ``embed`` are the backbones' pooled penultimate features (their own
    ``fc`` is not used: build them with ``num_classes=0``).

    Features: ``feature_layers`` lists both branches' stages
    (``"signal_backbone.stage1"``, ..., ``"pi_backbone.stage3"``); the pooled
    branch features are ``"signal_backbone.pool"`` and ``"pi_backbone.pool"``
    for :class:`FeatureExtractor`, and ``embed(signal, pis)`` returns their
    concatenation.
    """

    def __init__(self, signal_backbone_1d: nn.Module, pi_backbone_2d: nn.Module, num_classes: int):
        super().__init__()
        self._build_fusion(signal_backbone_1d, pi_backbone_2d, num_classes)

    def embed(self, signal: torch.Tensor, pis: torch.Tensor) -> torch.Tensor:
        return self._fuse(signal, pis)

    def forward(self, signal: torch.Tensor, pis: torch.Tensor) -> torch.Tensor:
        return self.classifier(self._fuse(signal, pis))


class FrozenPINet(PINetModule):
    """A frozen Signal PI-Net as a layer: ``(B, C, T)`` signal -> ``(B, C, R, R)`` PIs.

    A :class:`topokd.models.pinet.PINetModule` (input scaling, network,
    output scale; no gradients, always in eval mode) built from ``pinet``:

    * a trained signal :class:`topokd.pinet.PINet` estimator: its
      :meth:`~topokd.pinet.PINet.as_module` (a copy of its network, its
      preset's input ``scale`` and its target scale), so the output equals
      ``PINet.predict`` on the same windows;
    * a bare :class:`topokd.pinet.SignalPINet` (frozen in place):
      ``input_scale`` (one of ``None, "standardize", "minmax", "unit"``, per
      window and channel as topokd's engine does) and ``pi_scale`` (output
      multiplier) default to ``None`` and 1.

    The input is always channel-major ``(B, C, T)``; it is transposed when the
    network was built ``channels_last``.
    """

    def __init__(self, pinet, *, input_scale: str | None = None, pi_scale: float | None = None):
        from ..pinet.estimator import PINet  # the estimator module imports the TDA engine

        if isinstance(pinet, PINet):
            if pinet.kind != "signal":
                raise TypeError(f"PIAugmentedStudent needs a signal PI-Net, got a {pinet.kind!r} PINet")
            if getattr(pinet, "model_", None) is None:
                raise ValueError("this PINet has no trained model: fit() it or use PINet.load()")
            if input_scale is not None or pi_scale is not None:
                raise ValueError("input_scale / pi_scale come from the PINet estimator; pass them only with a "
                                 "bare SignalPINet module")
            module = pinet.as_module(frozen=True)
            net, input_scale, pi_scale = module.net, module.input_scale, float(module.pi_scale)
        elif isinstance(pinet, SignalPINet):
            net = pinet
        else:
            raise TypeError(f"pinet must be a topokd.pinet.SignalPINet or a signal PINet estimator, "
                            f"got {type(pinet).__name__}")
        super().__init__(net, kind="signal", input_scale=input_scale,
                         pi_scale=1.0 if pi_scale is None else pi_scale, frozen=True)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        _check_input(signal, 1, self.in_channels, "the PI-Net")
        return super().forward(signal)


class PIAugmentedStudent(_LateFusion):
    """A signal student that brings its own topology: late fusion of
    ``student_1d`` on the raw signal and ``pi_backbone_2d`` on PIs computed
    by a frozen PI-Net inside the model.

    ``forward(signal (B, C, T))`` ->
    ``Linear(F_s + F_p -> num_classes)(concat(embed_s(signal), embed_p(pinet(signal))))``.
    Only the raw signal is needed at inference.  ``pinet`` is wrapped in
    :class:`FrozenPINet` (a ``SignalPINet``, channels_last or not, or a
    signal ``PINet`` estimator); it stays in eval mode after ``.train()``,
    gets no gradients and is not updated by optimisers built from
    ``p for p in model.parameters() if p.requires_grad``.

    Submodules: ``signal_backbone`` (the student), ``pinet``, ``pi_backbone``,
    ``classifier``.  ``feature_layers`` as in :class:`FusionTeacher` (same
    names, so student and fusion-teacher features pair up); the generated
    PIs are recorded by ``FeatureExtractor(model, ["pinet"])``.
    """

    def __init__(self, student_1d: nn.Module, pinet, pi_backbone_2d: nn.Module, num_classes: int, *,
                 input_scale: str | None = None, pi_scale: float | None = None):
        super().__init__()
        frozen = FrozenPINet(pinet, input_scale=input_scale, pi_scale=pi_scale)
        self._build_fusion(student_1d, pi_backbone_2d, num_classes)
        self.pinet = frozen
        for name, module in (("student_1d", student_1d), ("pi_backbone_2d", pi_backbone_2d)):
            channels = getattr(module, "in_channels", frozen.in_channels)
            if channels != frozen.in_channels:
                raise ValueError(f"{name} takes {channels} channels but the PI-Net is built for "
                                 f"{frozen.in_channels} (it makes one PI per signal channel)")

    def embed(self, signal: torch.Tensor) -> torch.Tensor:
        return self._fuse(signal, self.pinet(signal))

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(signal))


# ---------------------------------------------------------------------------
# registered factories: plain keywords in, model out
# ---------------------------------------------------------------------------
def _branch(spec, dims: int, num_classes: int, in_channels, what: str) -> nn.Module:
    """A registered family name built with ``dims`` / ``num_classes`` / ``in_channels``, or a module as is."""
    if isinstance(spec, nn.Module):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"{what} must be a registered model name or an nn.Module, got {type(spec).__name__}")
    if in_channels is None:
        raise ValueError(f"{what}={spec!r} needs in_channels")
    return create_model(spec, dims=dims, num_classes=num_classes, in_channels=in_channels)


def _signal_pinet(pinet, in_channels):
    """A PI-Net checkpoint path -> the loaded signal ``PINet`` (checked against ``in_channels``)."""
    if isinstance(pinet, (str, os.PathLike)):
        from ..pinet import PINet  # the estimator imports the TDA engine: only when needed

        return PINet.load(pinet, kind="signal", in_channels=in_channels, progress=False)
    return pinet


@register_model("pi-teacher")
def pi_teacher(backbone, num_classes: int | None = None, in_channels: int | None = None) -> PITeacher:
    """PI teacher: a 2-D ``backbone`` (name, built with ``num_classes`` and ``in_channels`` = PI channels, or a module)."""
    if isinstance(backbone, nn.Module) and (num_classes is not None or in_channels is not None):
        raise ValueError("pass num_classes / in_channels with a backbone name, not with a built backbone")
    if isinstance(backbone, str) and num_classes is None:
        raise ValueError(f"backbone={backbone!r} needs num_classes")
    return PITeacher(_branch(backbone, 2, num_classes, in_channels, "backbone"))


@register_model("fusion-teacher")
def fusion_teacher(signal_backbone, pi_backbone, num_classes: int, in_channels: int | None = None,
                   pi_channels: int | None = None) -> FusionTeacher:
    """Fusion teacher: 1-D ``signal_backbone`` on ``in_channels`` signals + 2-D ``pi_backbone`` on ``pi_channels`` PIs.

    Backbones given by name are built as feature extractors (``num_classes=0``);
    ``pi_channels`` defaults to ``in_channels`` (one PI per signal channel).
    """
    pi_channels = in_channels if pi_channels is None else pi_channels
    return FusionTeacher(_branch(signal_backbone, 1, 0, in_channels, "signal_backbone"),
                         _branch(pi_backbone, 2, 0, pi_channels, "pi_backbone"), num_classes)


@register_model("pi-augmented-student")
def pi_augmented_student(signal_backbone, pi_backbone, pinet, num_classes: int, in_channels: int | None = None, *,
                         input_scale: str | None = None, pi_scale: float | None = None) -> PIAugmentedStudent:
    """PI-augmented student: 1-D ``signal_backbone`` + 2-D ``pi_backbone`` on the PIs of a frozen ``pinet``.

    ``pinet``: a PI-Net checkpoint path (loaded with
    ``PINet.load(path, kind="signal", in_channels=in_channels)``), a signal
    ``PINet`` estimator or a ``SignalPINet``.  Backbones given by name are
    built as feature extractors (``num_classes=0``) on ``in_channels``
    (default: the PI-Net's channels).
    """
    pinet = _signal_pinet(pinet, in_channels)
    if in_channels is None:
        net = getattr(pinet, "model_", pinet)
        in_channels = getattr(net, "in_channels", None)
    return PIAugmentedStudent(_branch(signal_backbone, 1, 0, in_channels, "signal_backbone"), pinet,
                              _branch(pi_backbone, 2, 0, in_channels, "pi_backbone"), num_classes,
                              input_scale=input_scale, pi_scale=pi_scale)
