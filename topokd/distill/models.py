"""Teacher and student networks for topology-guided knowledge distillation.

Backbones (each in a 1-D variant for signals ``(B, C, T)`` and a 2-D variant
for images or persistence-image stacks ``(B, C, H, W)``, chosen by ``dims``):

* :class:`WideResNet` -- WRN-d-k of Zagoruyko & Komodakis, "Wide Residual
  Networks", BMVC 2016 (the usual teacher/student family of the TDA-KD papers
  of Jeon et al.);
* :class:`ResNet` -- the CIFAR ResNets of He et al., "Deep Residual Learning
  for Image Recognition", CVPR 2016 (ResNet-8, -20, ...);
* :class:`ConvNet` -- a plain CNN student (conv-BN-ReLU-pool blocks).

Every backbone maps its input to logits with ``forward(x)`` and shares one
structure, so that distillation code can treat them alike:

``stem -> stage1 -> stage2 -> stage3 -> final -> pool -> fc``

``embed(x)`` gives the pooled penultimate features ``(B, num_features)``
(the input of ``fc``), ``feature_layers`` names the stage modules whose
outputs feature losses usually compare, and :class:`FeatureExtractor` records
the outputs of any named submodules with forward hooks, without touching the
model.  ``num_classes=0`` builds a feature extractor whose ``fc`` is the
identity (``forward`` then returns ``embed``); use it for the branches of the
fusion models.

Topology-augmented models (Jeon et al., TDA-KD for wearable sensor data):

* :class:`PITeacher` -- a 2-D backbone over the ``C``-channel PI stack;
* :class:`FusionTeacher` -- late fusion of a signal backbone and a PI backbone;
* :class:`PIAugmentedStudent` -- the same fusion, but its PIs come from a
  frozen PI-Net inside the model (:class:`FrozenPINet`), so at inference it
  needs only the raw signal.

Layout: topokd's signals are ``(N, T, C)`` numpy arrays, every model here
takes channel-major torch tensors ``(B, C, T)``; :func:`signals_to_tensor`
converts.  PIs are ``(B, C, R, R)`` as :func:`topokd.signal_pis` gives them.

Registry (timm-style, separate from the PI-Net registry of
:mod:`topokd.pinet.models`, which holds PI *regressors* built from
``in_channels``/``resolution``; these are *classifiers* built from
``num_classes``/``in_channels``/``dims``)::

    create_model("wrn16-1_1d", num_classes=6, in_channels=3)
    create_model("wrn16-1", dims=2, num_classes=10, in_channels=3)
    list_models("wrn*_2d")
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import math
from collections.abc import Callable, Iterable, Sequence
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..pinet.models import SignalPINet
from ..tda.pipeline import SCALES

DIMS = (1, 2)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _check_dims(dims) -> int:
    if dims not in DIMS or isinstance(dims, bool):
        raise ValueError(f"dims must be 1 (signals (B, C, T)) or 2 (images/PIs (B, C, H, W)), got {dims!r}")
    return int(dims)


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _conv(dims: int):
    return nn.Conv1d if dims == 1 else nn.Conv2d


def _bn(dims: int):
    return nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d


def _check_input(x: torch.Tensor, dims: int, in_channels: int, what: str) -> None:
    axes = "(B, C, T)" if dims == 1 else "(B, C, H, W)"
    if not torch.is_tensor(x) or x.dim() != dims + 2:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        hint = ""
        if dims == 1 and torch.is_tensor(x) and x.dim() == 2:
            hint = " (a single window? add the batch axis with x[None])"
        raise ValueError(f"{what} expects a {axes} tensor, got {shape}{hint}")
    if x.shape[1] != in_channels:
        hint = ""
        if dims == 1 and x.shape[-1] == in_channels:
            hint = "; topokd windows are (N, T, C): transpose with x.transpose(1, 2) or use signals_to_tensor"
        raise ValueError(f"{what} was built for {in_channels} channels on axis 1 of {axes}, "
                         f"got shape {tuple(x.shape)}{hint}")


def _init_weights(model: nn.Module) -> None:
    """He initialisation as in the reference WRN/ResNet code: convolutions
    ``kaiming_normal_(fan_out, relu)``, BatchNorm ``(1, 0)``, linear bias 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def signals_to_tensor(X, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """topokd windows ``(N, T, C)`` (numpy or torch) -> contiguous ``(N, C, T)`` tensor."""
    t = torch.as_tensor(np.asarray(X) if not torch.is_tensor(X) else X)
    if t.dim() != 3:
        raise ValueError(f"expected (N, T, C) windows, got shape {tuple(t.shape)}")
    return t.transpose(1, 2).to(dtype).contiguous()


class GlobalAvgPool(nn.Module):
    """Mean over all spatial/time axes: ``(B, C, *S) -> (B, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(-1)


class _Backbone(nn.Module):
    """Shared forward: ``stem -> stage1..stageN -> final -> pool -> fc``."""

    #: Default layers for feature losses (:class:`FeatureExtractor`).
    feature_layers: tuple[str, ...] = ("stage1", "stage2", "stage3")
    #: The stages, in order (the forward runs them; independent of ``feature_layers``).
    stage_names: tuple[str, ...] = ("stage1", "stage2", "stage3")
    dims: int
    in_channels: int
    num_classes: int
    num_features: int

    def _finish(self, num_features: int, num_classes: int) -> None:
        self.num_features = num_features
        self.num_classes = num_classes
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()
        _init_weights(self)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features ``(B, num_features)`` (the input of ``fc``)."""
        _check_input(x, self.dims, self.in_channels, type(self).__name__)
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.pool(self.final(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` (``(B, num_features)`` if ``num_classes=0``)."""
        return self.fc(self.embed(x))


# ---------------------------------------------------------------------------
# Wide ResNet
# ---------------------------------------------------------------------------
class WideBasicBlock(nn.Module):
    """Pre-activation basic block of WRN:
    ``BN-ReLU-conv3x3(stride)-BN-ReLU-dropout-conv3x3``, plus the shortcut.

    As in the reference code, the shortcut is the identity when the shape is
    kept, else a 1x1 convolution (with the block's stride) of the
    *pre-activated* input ``relu(bn1(x))``.  Convolutions have no bias.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float, dims: int):
        super().__init__()
        conv, bn = _conv(dims), _bn(dims)
        self.bn1 = bn(in_channels)
        self.conv1 = conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = bn(out_channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if in_channels != out_channels or stride != 1:
            self.shortcut = conv(in_channels, out_channels, 1, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(self.dropout(F.relu(self.bn2(self.conv1(pre)))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(_Backbone):
    """WRN-d-k (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016).

    Architecture (reference implementation)::

        conv3x3(in_channels -> 16)
        stage1: n blocks, 16k  channels, stride 1
        stage2: n blocks, 32k  channels, stride 2
        stage3: n blocks, 64k  channels, stride 2
        final:  BN-ReLU;  pool: global average;  fc: Linear(64k -> num_classes)

    with ``n = (depth - 4) / 6`` pre-activation :class:`WideBasicBlock` s per
    stage (so ``depth`` must be 6n + 4: 10, 16, 22, 28, 40, ...) and
    ``k = widen_factor``.  Stride-2 convolutions (kernel 3, padding 1) give
    ``ceil(L / 2)`` outputs, so any length ``>= 1`` works.  WRN-16-1 for CIFAR
    (``dims=2, in_channels=3, num_classes=10``) has 175,066 parameters
    (the paper's 0.175M).

    Parameters
    ----------
    depth, widen_factor : int
        ``d`` and ``k`` of WRN-d-k.
    num_classes : int
        Size of the classifier; 0 for no classifier (``forward`` = ``embed``).
    in_channels : int
        Input channels (sensor axes for signals, PI channels, image colours).
    dims : 1 or 2
        Conv1d over ``(B, C, T)`` signals or Conv2d over ``(B, C, H, W)``.
    dropout : float, default 0.0
        Dropout between the two convolutions of each block (paper: 0.3 on
        CIFAR for some runs; off by default).
    """

    def __init__(self, depth: int, widen_factor: int, num_classes: int, in_channels: int, dims: int,
                 dropout: float = 0.0):
        super().__init__()
        depth = _check_int(depth, "depth", 10)
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4 (10, 16, 22, 28, 40, ...), got {depth}")
        self.depth, self.widen_factor = depth, _check_int(widen_factor, "widen_factor", 1)
        self.dims = _check_dims(dims)
        self.in_channels = _check_int(in_channels, "in_channels", 1)
        num_classes = _check_int(num_classes, "num_classes", 0)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        n = (depth - 4) // 6
        k = self.widen_factor
        widths = (16, 16 * k, 32 * k, 64 * k)
        self.stem = _conv(dims)(self.in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        prev = widths[0]
        for i, (width, stride) in enumerate(zip(widths[1:], (1, 2, 2)), start=1):
            blocks = [WideBasicBlock(prev if j == 0 else width, width, stride if j == 0 else 1, self.dropout, dims)
                      for j in range(n)]
            setattr(self, f"stage{i}", nn.Sequential(*blocks))
            prev = width
        self.final = nn.Sequential(_bn(dims)(prev), nn.ReLU(inplace=True))
        self._finish(prev, num_classes)


# ---------------------------------------------------------------------------
# CIFAR ResNet
# ---------------------------------------------------------------------------
SHORTCUTS = ("projection", "pad")


class ResNetBasicBlock(nn.Module):
    """Post-activation basic block of He et al. (2016):
    ``conv3x3(stride)-BN-ReLU-conv3x3-BN``, ``+ shortcut``, ReLU.

    Shortcut when the shape changes: ``"projection"`` (option B: 1x1 conv with
    the stride + BN, as in the CRD / torchdistill KD code bases) or ``"pad"``
    (option A of the paper's CIFAR experiments: subsample by the stride and
    zero-pad the new channels; no parameters).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dims: int, shortcut: str):
        super().__init__()
        conv, bn = _conv(dims), _bn(dims)
        self.conv1 = conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = bn(out_channels)
        self.stride, self.extra_channels = stride, out_channels - in_channels
        self.shortcut_kind = shortcut
        self.shortcut = None
        if (in_channels != out_channels or stride != 1) and shortcut == "projection":
            self.shortcut = nn.Sequential(conv(in_channels, out_channels, 1, stride=stride, bias=False),
                                          bn(out_channels))

    def _identity(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is not None:
            return self.shortcut(x)
        if self.stride != 1:
            x = x[(Ellipsis,) + (slice(None, None, self.stride),) * (x.dim() - 2)]
        if self.extra_channels:
            before = self.extra_channels // 2
            pad = [0, 0] * (x.dim() - 2) + [before, self.extra_channels - before]
            x = F.pad(x, pad)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self._identity(x))


class ResNet(_Backbone):
    """CIFAR ResNet-d of He et al., "Deep Residual Learning for Image
    Recognition", CVPR 2016, section 4.2.

    Architecture::

        stem:   conv3x3(in_channels -> 16)-BN-ReLU
        stage1: n blocks, 16 channels, stride 1
        stage2: n blocks, 32 channels, stride 2
        stage3: n blocks, 64 channels, stride 2
        final:  identity (blocks end with ReLU); pool: global average;
        fc:     Linear(64 -> num_classes)

    with ``n = (depth - 2) / 6`` :class:`ResNetBasicBlock` s per stage:
    ResNet-8 (n=1), -14, -20 (n=3), -32, -44, -56, -110.  With
    ``shortcut="pad"`` (option A) ResNet-20 for CIFAR has 269,722 parameters
    (the paper's 0.27M); the default ``"projection"`` adds the 1x1
    convolutions of the two downsampling blocks.
    """

    def __init__(self, depth: int, num_classes: int, in_channels: int, dims: int, shortcut: str = "projection"):
        super().__init__()
        depth = _check_int(depth, "depth", 8)
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...), got {depth}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {list(SHORTCUTS)}, got {shortcut!r}")
        self.depth, self.shortcut = depth, shortcut
        self.dims = _check_dims(dims)
        self.in_channels = _check_int(in_channels, "in_channels", 1)
        num_classes = _check_int(num_classes, "num_classes", 0)
        n = (depth - 2) // 6
        self.stem = nn.Sequential(_conv(dims)(self.in_channels, 16, 3, padding=1, bias=False), _bn(dims)(16),
                                  nn.ReLU(inplace=True))
        prev = 16
        for i, (width, stride) in enumerate(zip((16, 32, 64), (1, 2, 2)), start=1):
            blocks = [ResNetBasicBlock(prev if j == 0 else width, width, stride if j == 0 else 1, dims, shortcut)
                      for j in range(n)]
            setattr(self, f"stage{i}", nn.Sequential(*blocks))
            prev = width
        self.final = nn.Identity()
        self._finish(prev, num_classes)


# ---------------------------------------------------------------------------
# plain CNN
# ---------------------------------------------------------------------------
class ConvNet(_Backbone):
    """A plain CNN student: per width ``w`` one stage
    ``conv(k, 'same', w)-BN-ReLU-maxpool(2, ceil)``, then global average
    pooling and ``Linear(widths[-1] -> num_classes)``.

    Defaults: ``widths=(32, 64, 128)`` (stages ``stage1..stage3``),
    ``kernel_size=5``.  Pooling rounds up (``ceil_mode``), so any length
    ``>= 1`` works.  ``stem`` and ``final`` are identities.
    """

    def __init__(self, num_classes: int, in_channels: int, dims: int, widths: Sequence[int] = (32, 64, 128),
                 kernel_size: int = 5):
        super().__init__()
        self.dims = _check_dims(dims)
        self.in_channels = _check_int(in_channels, "in_channels", 1)
        num_classes = _check_int(num_classes, "num_classes", 0)
        widths = tuple(widths)
        if not widths:
            raise ValueError("widths must hold at least one positive int")
        self.widths = tuple(_check_int(w, "every width", 1) for w in widths)
        kernel_size = _check_int(kernel_size, "kernel_size", 1)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        self.kernel_size = kernel_size
        conv, bn = _conv(dims), _bn(dims)
        pool = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
        self.stem = nn.Identity()
        prev = self.in_channels
        for i, width in enumerate(self.widths, start=1):
            setattr(self, f"stage{i}", nn.Sequential(conv(prev, width, kernel_size, padding=kernel_size // 2,
                                                          bias=False),
                                                     bn(width), nn.ReLU(inplace=True), pool(2, ceil_mode=True)))
            prev = width
        self.stage_names = self.feature_layers = tuple(f"stage{i}" for i in range(1, len(self.widths) + 1))
        self.final = nn.Identity()
        self._finish(prev, num_classes)


# ---------------------------------------------------------------------------
# feature extraction (torchdistill-style forward hooks)
# ---------------------------------------------------------------------------
class FeatureExtractor:
    """Record the outputs of named submodules during ``model``'s forward.

    Forward hooks are registered on ``model.get_submodule(name)`` for each name
    in ``layers`` (default: ``model.feature_layers``); the model itself is not
    changed.  After a forward, :attr:`features` maps each layer name to its
    latest output (kept in the autograd graph unless ``detach=True``, so
    feature losses can back-propagate through it).  Use as a context manager
    (hooks are removed on exit) or call :meth:`remove`::

        with FeatureExtractor(student, ["stage1", "stage3"]) as fx:
            logits, feats = fx(x)          # or: logits = student(x); fx.features
    """

    def __init__(self, model: nn.Module, layers: Iterable[str] | None = None, *, detach: bool = False):
        if layers is None:
            layers = getattr(model, "feature_layers", None)
            if layers is None:
                raise ValueError(f"{type(model).__name__} declares no feature_layers: pass layers=[...names...]")
        if isinstance(layers, str):
            layers = [layers]
        self.layers = tuple(layers)
        if not self.layers:
            raise ValueError("layers must name at least one submodule")
        modules = dict(model.named_modules())
        for name in self.layers:
            if name not in modules or name == "":
                close = difflib.get_close_matches(name, [n for n in modules if n], n=5)
                raise ValueError(f"{type(model).__name__} has no submodule {name!r}"
                                 + (f"; did you mean {close}?" if close else "")
                                 + " (names as in model.named_modules())")
        self.model, self.detach = model, bool(detach)
        self.features: dict[str, object] = {}
        self._handles = [modules[name].register_forward_hook(self._recorder(name)) for name in self.layers]

    def _recorder(self, name: str):
        def hook(module, inputs, output):
            if self.detach:
                output = output.detach() if torch.is_tensor(output) else output
            self.features[name] = output

        return hook

    @property
    def active(self) -> bool:
        """Whether the hooks are still registered."""
        return bool(self._handles)

    def __call__(self, *args, **kwargs) -> tuple[object, dict[str, object]]:
        """Run the model; return ``(output, {layer: feature})`` in ``layers`` order."""
        if not self.active:
            raise RuntimeError("this FeatureExtractor's hooks were removed; create a new one")
        self.features.clear()
        output = self.model(*args, **kwargs)
        missing = [n for n in self.layers if n not in self.features]
        if missing:
            raise RuntimeError(f"layers {missing} did not run during {type(self.model).__name__}.forward")
        return output, {n: self.features[n] for n in self.layers}

    def clear(self) -> None:
        self.features.clear()

    def remove(self) -> None:
        """Remove the hooks (idempotent); recorded features are kept."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "FeatureExtractor":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


# ---------------------------------------------------------------------------
# PI-augmented models
# ---------------------------------------------------------------------------
def _require_backbone(module: nn.Module, name: str, dims: int) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
    if not callable(getattr(module, "embed", None)) or not isinstance(getattr(module, "num_features", None), int):
        raise TypeError(f"{name} ({type(module).__name__}) must provide embed(x) -> (B, num_features) and "
                        "num_features, like the backbones of topokd.distill.models")
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


def _scale_time(x: torch.Tensor, scale: str | None) -> torch.Tensor:
    """:func:`topokd.tda.pipeline.scale_rows` on each (sample, channel) of a
    ``(B, C, T)`` batch, in torch: constant rows become zeros, never NaN."""
    if scale is None:
        return x
    if scale == "standardize":
        spread = x.std(dim=-1, keepdim=True, unbiased=False)
        return (x - x.mean(dim=-1, keepdim=True)) / torch.where(spread > 0, spread, torch.ones_like(spread))
    lo = x.amin(dim=-1, keepdim=True)
    span = x.amax(dim=-1, keepdim=True) - lo
    unit = (x - lo) / torch.where(span > 0, span, torch.ones_like(span))
    if scale == "unit":
        return unit
    return 2.0 * unit - (span > 0).to(x.dtype)


class FrozenPINet(nn.Module):
    """A frozen Signal PI-Net as a layer: ``(B, C, T)`` signal -> ``(B, C, R, R)`` PIs.

    ``pinet`` is a :class:`topokd.pinet.SignalPINet` (frozen in place: its
    parameters get ``requires_grad=False``) or a trained
    :class:`topokd.pinet.PINet` estimator (its network is copied, and its
    preset's input ``scale`` and its target scale are applied, so the output
    equals ``PINet.predict`` on the same windows).  For a bare module,
    ``input_scale`` (one of ``None, "standardize", "minmax", "unit"``, per
    window and channel as topokd's engine does) and ``pi_scale`` (output
    multiplier) default to ``None`` and 1.

    The input is always channel-major ``(B, C, T)``; it is transposed when the
    network was built ``channels_last``.  The network always runs in eval
    mode (``train()`` cannot switch it) and without gradient tracking.
    """

    def __init__(self, pinet, *, input_scale: str | None = None, pi_scale: float | None = None):
        super().__init__()
        from ..pinet.estimator import PINet  # the estimator module imports the TDA engine

        if isinstance(pinet, PINet):
            if pinet.kind != "signal":
                raise TypeError(f"PIAugmentedStudent needs a signal PI-Net, got a {pinet.kind!r} PINet")
            if pinet.model_ is None:
                raise ValueError("this PINet has no trained model: fit() it or use PINet.load()")
            if input_scale is not None or pi_scale is not None:
                raise ValueError("input_scale / pi_scale come from the PINet estimator; pass them only with a "
                                 "bare SignalPINet module")
            input_scale = pinet.engine_.config_["scale"]
            pi_scale = pinet.target_scale_
            net = copy.deepcopy(pinet.model_)
        elif isinstance(pinet, SignalPINet):
            net = pinet
        else:
            raise TypeError(f"pinet must be a topokd.pinet.SignalPINet or a signal PINet estimator, "
                            f"got {type(pinet).__name__}")
        if input_scale not in SCALES:
            raise ValueError(f"input_scale must be one of {list(SCALES)}, got {input_scale!r}")
        pi_scale = 1.0 if pi_scale is None else float(pi_scale)
        if not (math.isfinite(pi_scale) and pi_scale > 0):
            raise ValueError(f"pi_scale must be a finite number > 0, got {pi_scale}")
        self.net = net
        self.input_scale = input_scale
        self.in_channels, self.resolution = net.in_channels, net.resolution
        self.register_buffer("pi_scale", torch.tensor(pi_scale))
        for p in self.net.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenPINet":
        """Stays in eval mode whatever ``mode`` (frozen BatchNorm statistics)."""
        return super().train(False)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        _check_input(signal, 1, self.in_channels, "the PI-Net")
        with torch.no_grad():
            x = _scale_time(signal, self.input_scale)
            if self.net.channels_last:
                x = x.transpose(1, 2)
            return self.net(x) * self.pi_scale


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
# registry
# ---------------------------------------------------------------------------
#: Model families: bare name -> constructor taking ``dims`` and keywords
#: (``num_classes``, ``in_channels``, ...).  ``create_model`` also accepts
#: the names with a ``_1d`` / ``_2d`` suffix, which fix ``dims``.
MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, factory: Callable[..., nn.Module], *, overwrite: bool = False) -> None:
    """Add a family ``name`` (no ``_1d``/``_2d`` suffix) whose ``factory`` takes ``dims=``."""
    if not isinstance(name, str) or not name or name.endswith(("_1d", "_2d")):
        raise ValueError(f"register the bare family name without _1d/_2d, got {name!r}")
    if name in MODELS and not overwrite:
        raise ValueError(f"model {name!r} is already registered (overwrite=True replaces it)")
    MODELS[name] = factory


for _depth, _k in ((10, 1), (16, 1), (16, 2), (16, 3), (16, 4), (16, 8), (22, 1), (28, 1), (28, 2), (28, 3),
                   (28, 10), (40, 1), (40, 2), (40, 4)):
    register_model(f"wrn{_depth}-{_k}", partial(WideResNet, _depth, _k))
for _depth in (8, 14, 20, 32, 44, 56, 110):
    register_model(f"resnet{_depth}", partial(ResNet, _depth))
register_model("cnn", ConvNet)


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names with their dims suffix (``"wrn16-1_1d"``, ...),
    optionally filtered by a shell-style ``pattern`` such as ``"wrn*_2d"``."""
    names = sorted(f"{base}_{d}d" for base in MODELS for d in DIMS)
    return [n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern)]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model: ``create_model("wrn16-3_1d", num_classes=6, in_channels=3)``.

    A bare family name (``"wrn16-3"``) needs ``dims=1`` or ``2``; with a suffix,
    ``dims`` may be omitted (or must agree).  Other keywords go to the
    constructor (``num_classes``, ``in_channels``, ``dropout``, ...).
    """
    base, dims = name, kwargs.pop("dims", None)
    for d in DIMS:
        if isinstance(name, str) and name.endswith(f"_{d}d"):
            base = name[: -len(f"_{d}d")]
            if dims is not None and dims != d:
                raise ValueError(f"{name!r} is a {d}-D model but dims={dims!r} was passed")
            dims = d
    if base not in MODELS:
        close = difflib.get_close_matches(str(name), list_models() + list(MODELS), n=4)
        raise ValueError(f"unknown model {name!r}" + (f"; did you mean {close}?" if close else "")
                         + " (see list_models())")
    if dims is None:
        raise ValueError(f"{name!r} needs dims=1 (signals) or dims=2 (images/PIs), or use "
                         f"'{name}_1d' / '{name}_2d'")
    return MODELS[base](dims=_check_dims(dims), **kwargs)
