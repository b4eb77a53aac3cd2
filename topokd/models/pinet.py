"""PI-Net architectures (Som et al., "PI-Net: A Deep Learning Approach to
Extract Topological Persistence Images", CVPR Workshops 2020, arXiv 1906.01769).

Both networks regress persistence images directly from raw data, in the
channel-major ``(B, C, R, R)`` layout of :func:`topokd.signal_pis` /
:func:`topokd.image_pis`.  They follow the authors' Keras reference code:

* four blocks ``conv (k=3, 'same') -> BatchNorm -> ReLU`` with 128, 256, 512,
  1024 filters, max pooling (size 3, stride 2, 'same') after the first three;
* global average pooling, then a dense layer with ReLU.

BatchNorm uses Keras' defaults (momentum 0.99, i.e. PyTorch ``momentum=0.01``,
``eps=1e-3``), as in the reference.  ``widths`` scales the network (tests use
small widths); the published model is the default.

Registered as ``signal-pinet`` and ``image-pinet`` (:mod:`topokd.models.registry`);
:mod:`topokd.pinet.models` re-exports them for the PINet estimator.

:class:`PINetModule` is a trained PI-Net as one module: input scaling,
network, output scale.  Its :func:`scale_channels` is the one torch
implementation of the per-window, per-channel scaling of topokd's TDA engine
(:func:`topokd.tda.pipeline.scale_rows` is the NumPy one the engine uses;
tests check that they agree).  :meth:`topokd.PINet.as_module` returns one,
the estimator predicts through one, and a PI-augmented student holds one,
so a PI-Net inside another model computes exactly ``PINet.predict``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..tda.pipeline import SCALES
from .registry import register_model

__all__ = ["HEADS", "ImagePINet", "PINetModule", "SignalPINet", "scale_channels"]

HEADS = ("relu", "sigmoid")
_BN = dict(momentum=0.01, eps=1e-3)  # Keras BatchNormalization defaults


def _head(name: str) -> nn.Module:
    if name not in HEADS:
        raise ValueError(f"head must be one of {list(HEADS)}, got {name!r}")
    return nn.ReLU() if name == "relu" else nn.Sigmoid()


def _check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    widths = tuple(int(w) for w in widths)
    if len(widths) != 4 or min(widths) < 1:
        raise ValueError(f"widths must be four positive ints (the reference uses 128, 256, 512, 1024), got {widths}")
    return widths


def _encoder(conv, bn, pool, in_channels: int, widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = in_channels
    for i, width in enumerate(widths):
        layers += [conv(prev, width, 3, padding=1), bn(width, **_BN), nn.ReLU(inplace=True)]
        if i < 3:
            # 'same' pooling: ceil(L / 2) outputs, as Keras MaxPooling(3, 2, padding="same")
            layers.append(pool(3, stride=2, padding=1))
        prev = width
    return nn.Sequential(*layers)


class SignalPINet(nn.Module):
    """Signal PI-Net: ``(B, n, T)`` multichannel signal -> ``(B, n, R, R)`` PIs.

    Conv1d encoder (see module doc), global average pooling,
    ``Linear(widths[-1] -> n*R*R)`` and the output ``head`` (``"relu"`` as in
    the reference code, ``"sigmoid"`` for targets in [0, 1]), reshaped
    channel-major.  Any ``T >= 1``.

    ``channels_last=True`` takes ``(B, T, n)`` (topokd's ``signal_pis``
    layout) instead; the layout is never guessed.
    """

    def __init__(self, in_channels: int, resolution: int = 50, *, widths: Sequence[int] = (128, 256, 512, 1024),
                 head: str = "relu", channels_last: bool = False):
        super().__init__()
        if int(in_channels) < 1 or int(resolution) < 1:
            raise ValueError(f"in_channels and resolution must be >= 1, got {in_channels}, {resolution}")
        self.in_channels, self.resolution = int(in_channels), int(resolution)
        self.channels_last = bool(channels_last)
        self.widths = _check_widths(widths)
        self.head_name = head
        self.features = _encoder(nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, self.in_channels, self.widths)
        self.fc = nn.Linear(self.widths[-1], self.in_channels * self.resolution ** 2)
        self.head = _head(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected a (B, {'T, n' if self.channels_last else 'n, T'}) batch, got shape {tuple(x.shape)}")
        if self.channels_last:
            x = x.transpose(1, 2)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected {self.in_channels} channels on axis {2 if self.channels_last else 1}, "
                f"got shape {tuple(x.shape if not self.channels_last else x.transpose(1, 2).shape)}"
            )
        z = self.features(x).mean(dim=-1)
        out = self.head(self.fc(z))
        return out.view(-1, self.in_channels, self.resolution, self.resolution)


class ImagePINet(nn.Module):
    """Image PI-Net: ``(B, c, H, W)`` image -> ``(B, c, R, R)`` PIs.

    Conv2d encoder (see module doc), global average pooling,
    ``Linear(widths[-1] -> R*R)`` with ReLU, reshaped to one ``R x R`` map,
    then the decoder of the reference code: a transposed convolution with an
    ``R x R`` kernel and 'same' output size (TensorFlow's split of the
    padding: ``(R-1)//2`` before, the rest after) to ``c`` maps, BatchNorm and
    the output ``head`` (``"relu"`` as in the reference code; the paper text
    says sigmoid).  Any ``H, W >= 1``.
    """

    def __init__(self, in_channels: int, resolution: int = 50, *, widths: Sequence[int] = (128, 256, 512, 1024),
                 head: str = "relu"):
        super().__init__()
        if int(in_channels) < 1 or int(resolution) < 1:
            raise ValueError(f"in_channels and resolution must be >= 1, got {in_channels}, {resolution}")
        self.in_channels, self.resolution = int(in_channels), int(resolution)
        self.widths = _check_widths(widths)
        self.head_name = head
        self.features = _encoder(nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, self.in_channels, self.widths)
        self.fc = nn.Linear(self.widths[-1], self.resolution ** 2)
        self.decoder = nn.ConvTranspose2d(1, self.in_channels, self.resolution)
        self.decoder_bn = nn.BatchNorm2d(self.in_channels, **_BN)
        self.head = _head(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected a (B, {self.in_channels}, H, W) batch, got shape {tuple(x.shape)}")
        r = self.resolution
        z = torch.relu(self.fc(self.features(x).mean(dim=(-2, -1)))).view(-1, 1, r, r)
        full = self.decoder(z)  # (B, c, 2R-1, 2R-1)
        start = (r - 1) // 2
        same = full[..., start:start + r, start:start + r]
        return self.head(self.decoder_bn(same))


register_model("signal-pinet", SignalPINet, dims=None)
register_model("image-pinet", ImagePINet, dims=None)


def scale_channels(x: torch.Tensor, scale: str | None, dims: int = 1) -> torch.Tensor:
    """Scale each (sample, channel) of ``x`` over its last ``dims`` axes.

    ``"standardize"``: ``(x - mean) / std`` (population std);
    ``"minmax"``: to ``[-1, 1]``; ``"unit"``: to ``[0, 1]``; ``None``:
    unchanged.  Constant rows become zeros, never NaN (as the TDA engine).
    Computed in float64, returned in ``x``'s dtype.
    """
    if scale is None:
        return x
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}, got {scale!r}")
    return _scaled(x.double(), scale, tuple(range(-dims, 0))).to(x.dtype)


def _scaled(x: torch.Tensor, scale: str, axes: tuple[int, ...]) -> torch.Tensor:
    if scale == "standardize":
        centred = x - x.mean(dim=axes, keepdim=True)
        spread = centred.square().mean(dim=axes, keepdim=True).sqrt()
        return centred / torch.where(spread > 0, spread, torch.ones_like(spread))
    lo = x.amin(dim=axes, keepdim=True)
    span = x.amax(dim=axes, keepdim=True) - lo
    unit = (x - lo) / torch.where(span > 0, span, torch.ones_like(span))
    if scale == "unit":
        return unit
    return 2.0 * unit - (span > 0).to(x.dtype)


class PINetModule(nn.Module):
    """``x -> net(scale_channels(x)) * pi_scale``: a PI-Net with its input
    scaling and output scale, as one module.

    ``kind="signal"``: ``x`` is ``(B, C, T)`` (channel-major, like every
    topokd 1-D model; transposed for a network built ``channels_last``);
    ``kind="image"``: ``(B, C, H, W)``.  Output ``(B, C, R, R)``.

    ``frozen=True`` (the default) turns off gradients of the network's
    parameters and keeps it in eval mode whatever ``train()`` asks (its
    BatchNorm statistics never move), so it can sit inside a model that
    trains.  Attributes: ``net``, ``kind``, ``input_scale``, ``in_channels``,
    ``resolution``; buffer ``pi_scale``.
    """

    def __init__(self, net: nn.Module, *, kind: str = "signal", input_scale: str | None = None,
                 pi_scale: float = 1.0, frozen: bool = True):
        super().__init__()
        if kind not in ("signal", "image"):
            raise ValueError(f"kind must be 'signal' or 'image', got {kind!r}")
        if input_scale not in SCALES:
            raise ValueError(f"input_scale must be one of {list(SCALES)}, got {input_scale!r}")
        pi_scale = float(pi_scale)
        if not (math.isfinite(pi_scale) and pi_scale > 0):
            raise ValueError(f"pi_scale must be a finite number > 0, got {pi_scale}")
        self.net, self.kind, self.input_scale, self.frozen = net, kind, input_scale, bool(frozen)
        self.in_channels, self.resolution = net.in_channels, net.resolution
        self.register_buffer("pi_scale", torch.tensor(pi_scale))
        if self.frozen:
            for p in self.net.parameters():
                p.requires_grad_(False)
            super().train(False)

    def train(self, mode: bool = True) -> "PINetModule":
        """A frozen module stays in eval mode whatever ``mode``."""
        return super().train(False if self.frozen else mode)

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the network takes it: scaled, in its layout."""
        x = scale_channels(x, self.input_scale, 1 if self.kind == "signal" else 2)
        if self.kind == "signal" and getattr(self.net, "channels_last", False):
            x = x.transpose(1, 2)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        want = 3 if self.kind == "signal" else 4
        layout = "(B, C, T)" if self.kind == "signal" else "(B, C, H, W)"
        if x.dim() != want or x.shape[1] != self.in_channels:
            raise ValueError(f"the PI-Net takes {layout} with C={self.in_channels}, got shape {tuple(x.shape)}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.net(self.network_input(x)) * self.pi_scale
