"""1-D and 2-D classifier backbones for topology-guided knowledge distillation.

Each backbone comes in a 1-D variant for signals ``(B, C, T)`` and a 2-D
variant for images or persistence-image stacks ``(B, C, H, W)``, chosen by
``dims``:

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
outputs feature losses usually compare (record them with
:class:`topokd.models.FeatureExtractor`).  ``num_classes=0`` builds a
feature extractor whose ``fc`` is the identity (``forward`` then returns
``embed``); use it for the branches of the fusion models
(:mod:`topokd.models.composite`).

Layout: topokd's signals are ``(N, T, C)`` numpy arrays, every model here
takes channel-major torch tensors ``(B, C, T)``; :func:`signals_to_tensor`
converts.

Registered families (:mod:`topokd.models.registry`; each takes ``dims=1|2``
and is also reachable as ``<name>_1d`` / ``<name>_2d``): ``wrn{depth}-{k}``
for the depths and widths below, ``resnet{8,14,20,32,44,56,110}``, ``cnn``::

    create_model("wrn16-1", dims=1, num_classes=6, in_channels=3)
    create_model("wrn16-1_2d", num_classes=10, in_channels=3)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .registry import DIMS, register_model

__all__ = [
    "ConvNet", "GlobalAvgPool", "ResNet", "ResNetBasicBlock", "SHORTCUTS", "WideBasicBlock", "WideResNet",
    "signals_to_tensor",
]


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
# registry
# ---------------------------------------------------------------------------
#: (depth, widen_factor) of the registered ``wrn{depth}-{k}`` families.
WRN_CONFIGS = ((10, 1), (16, 1), (16, 2), (16, 3), (16, 4), (16, 8), (22, 1), (28, 1), (28, 2), (28, 3),
               (28, 10), (40, 1), (40, 2), (40, 4))
#: Depths of the registered ``resnet{depth}`` families.
RESNET_DEPTHS = (8, 14, 20, 32, 44, 56, 110)

for _depth, _k in WRN_CONFIGS:
    register_model(f"wrn{_depth}-{_k}", partial(WideResNet, _depth, _k), dims=DIMS)
for _depth in RESNET_DEPTHS:
    register_model(f"resnet{_depth}", partial(ResNet, _depth), dims=DIMS)
register_model("cnn", ConvNet, dims=DIMS)
del _depth, _k
