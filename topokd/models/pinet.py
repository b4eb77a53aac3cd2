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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .registry import register_model

__all__ = ["HEADS", "ImagePINet", "SignalPINet"]

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
