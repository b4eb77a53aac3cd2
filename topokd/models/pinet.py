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

Options that make a network match the reference exactly, or not (all stored
in a checkpoint's model description, so :func:`topokd.models.build_model`
rebuilds the same network; descriptions without them get the defaults, which
are topokd's original behaviour):

* ``pool_padding="keras"``: Keras ``MaxPooling1D/2D(pool_size=3, strides=2,
  padding="same")`` (``Signal PI-Net/pi_net.py`` lines 111-114, ``Image
  PI-Net/pi_net.py`` lines 29-32): ``ceil(L / 2)`` outputs, total padding
  ``max((ceil(L/2) - 1) * 2 + 3 - L, 0)`` split ``total // 2`` before and the
  rest after -- ``(0, 1)`` on even ``L``, ``(1, 1)`` on odd ``L`` -- padded
  cells never win the max.  ``"symmetric"`` (default): torch's
  ``MaxPool(3, 2, padding=1)``, the same output sizes, equal on odd lengths,
  but on even lengths every window is shifted one step left, so about half
  the outputs differ.
* ``init="glorot"``: Keras' defaults for ``Conv1D/Conv2D/Dense/
  Conv2DTranspose`` (the reference sets no initialiser): Glorot-uniform
  kernels, ``U(-b, b)`` with ``b = sqrt(6 / (fan_in + fan_out))`` (for a
  convolution ``fan = channels * kernel size``), zero biases.  ``"torch"``
  (default): PyTorch's layer defaults (Kaiming-uniform with ``a = sqrt(5)``,
  i.e. ``b = 1 / sqrt(fan_in)``, and uniform biases).  BatchNorm starts at
  ``gamma = 1, beta = 0`` in both.
* ``head_type`` replaces the dense layer ``Linear(F -> P)`` (``F =
  widths[-1]``; ``P = n*R*R`` outputs of the Signal PI-Net, ``R*R`` of the
  Image PI-Net; it holds 15.4 M of the 17.4 M parameters of the 6-channel
  Signal PI-Net):

  - ``"dense"`` (default): the reference layer, ``F*P + P`` parameters;
  - ``"conv"`` (:class:`ConvDecoder`, the recommended slim head): ``Linear(F
    -> 64 * s * s)`` with ``s = ceil(R/8)``, ReLU, then three steps of
    bilinear upsampling (to ``ceil(R/4)``, ``ceil(R/2)``, ``R``) each
    followed by a 3x3 convolution and ReLU (64 -> 32 -> 16 -> 16 channels),
    and a 3x3 convolution to the ``n`` (Image PI-Net: 1) output maps;
    ``F*64*s^2 + 64*s^2`` plus ~26 k convolution parameters (3.24 M for
    ``F = 1024, R = 50``, against 15.4 M dense for 6 channels).  A PI is a
    sum of Gaussian bumps placed on a grid; convolutions place and shape
    bumps anywhere with few weights, and the map is nonlinear, so it has no
    rank cap.  Sizes are computed for any ``R`` (50 is not a power of two);
  - ``"lowrank"`` with ``head_rank=r``: ``Linear(F -> r, no bias)`` then
    ``Linear(r -> P)``, exactly a dense layer of rank ``<= r``, ``r*(F + P)
    + P`` parameters.  Kept as an option, not recommended at small ``r``:
    projecting exact HAPT PIs (default ``standard-signal`` preset, 2,000
    training windows, 500 held out) on their top-``r`` principal components
    plus the mean -- the best any rank-``r`` head can do -- gives a mean
    Pearson correlation of 0.68 at ``r = 64``, 0.85 at 256, 0.92 at 512 and
    0.97 at 1024 (the mean PI alone: 0.46): the sharp (``sigma = 0.15``)
    PIs are far from low rank.

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

__all__ = ["HEADS", "HEAD_TYPES", "INITS", "POOL_PADDINGS", "ImagePINet", "ConvDecoder", "KerasSameMaxPool", "LowRankLinear",
           "PINetModule", "SignalPINet", "glorot_init_", "keras_same_padding", "scale_channels"]

HEADS = ("relu", "sigmoid")
POOL_PADDINGS = ("symmetric", "keras")
INITS = ("torch", "glorot")
HEAD_TYPES = ("dense", "conv", "lowrank")
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


def keras_same_padding(length: int, kernel: int = 3, stride: int = 2) -> tuple[int, int]:
    """``(before, after)`` padding of TensorFlow's ``padding="same"`` on an
    axis of ``length``: ``ceil(length / stride)`` outputs, total padding
    ``max((out - 1) * stride + kernel - length, 0)``, ``total // 2`` before and
    the rest after."""
    out = -(-int(length) // stride)
    total = max((out - 1) * stride + kernel - int(length), 0)
    return total // 2, total - total // 2


class KerasSameMaxPool(nn.Module):
    """Max pooling (``kernel``, ``stride``) with TensorFlow/Keras ``'same'``
    padding (:func:`keras_same_padding`) on the last ``dims`` axes; padded
    cells are ``-inf`` so they never win the max.  No parameters, so swapping
    it for torch's ``MaxPool`` keeps a network's ``state_dict`` keys."""

    def __init__(self, dims: int, kernel: int = 3, stride: int = 2):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {dims!r}")
        self.dims, self.kernel, self.stride = dims, int(kernel), int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad: list[int] = []
        for length in reversed(x.shape[-self.dims:]):  # F.pad lists the last axis first
            pad += keras_same_padding(length, self.kernel, self.stride)
        x = nn.functional.pad(x, pad, value=float("-inf"))
        pool = nn.functional.max_pool1d if self.dims == 1 else nn.functional.max_pool2d
        return pool(x, self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, kernel={self.kernel}, stride={self.stride}, padding='same' (Keras)"


class LowRankLinear(nn.Module):
    """``Linear(in -> out)`` of rank ``<= rank``: ``up(down(x))`` with
    ``down = Linear(in -> rank, bias=False)``, ``up = Linear(rank -> out)``;
    ``rank * (in + out) + out`` parameters."""

    def __init__(self, in_features: int, out_features: int, rank: int):
        super().__init__()
        self.in_features, self.out_features, self.rank = int(in_features), int(out_features), int(rank)
        self.down = nn.Linear(self.in_features, self.rank, bias=False)
        self.up = nn.Linear(self.rank, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


class ConvDecoder(nn.Module):
    """Features ``(B, F)`` -> maps ``(B, out_channels, R, R)``: ``Linear(F ->
    channels[0] * s * s)`` (``s = ceil(R/8)``), ReLU, then for each next
    width a bilinear upsampling (to ``ceil(R/4)``, ``ceil(R/2)``, ``R``), a
    3x3 convolution and ReLU, and a last 3x3 convolution to
    ``out_channels`` (no activation: the network's output head follows).
    ``forward`` returns ``(B, out_channels * R * R)`` flattened channel-major,
    so it replaces a ``Linear(F -> out_channels * R * R)``."""

    def __init__(self, in_features: int, out_channels: int, resolution: int,
                 channels: Sequence[int] = (64, 32, 16, 16)):
        super().__init__()
        r = int(resolution)
        self.in_features, self.out_channels, self.resolution = int(in_features), int(out_channels), r
        self.channels = tuple(int(c) for c in channels)
        self.sizes = tuple(-(-r // d) for d in (8, 4, 2, 1))  # ceil(R/8), ceil(R/4), ceil(R/2), R
        self.fc = nn.Linear(self.in_features, self.channels[0] * self.sizes[0] ** 2)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(self.channels, self.channels[1:]))
        self.out = nn.Conv2d(self.channels[-1], self.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.sizes[0]
        x = torch.relu(self.fc(z)).view(-1, self.channels[0], s, s)
        for conv, size in zip(self.convs, self.sizes[1:]):
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            x = torch.relu(conv(x))
        return self.out(x).flatten(1)


def _check_options(pool_padding: str, init: str, head_type: str, head_rank) -> int:
    for value, name, choices in ((pool_padding, "pool_padding", POOL_PADDINGS), (init, "init", INITS),
                                 (head_type, "head_type", HEAD_TYPES)):
        if value not in choices:
            raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    if isinstance(head_rank, bool) or not isinstance(head_rank, int) or head_rank < 1:
        raise ValueError(f"head_rank must be an integer >= 1, got {head_rank!r}")
    return int(head_rank)


def _dense(in_features: int, maps: int, resolution: int, head_type: str, rank: int) -> nn.Module:
    """The layer ``F -> maps * R * R`` of ``head_type`` (see the module doc)."""
    if head_type == "conv":
        return ConvDecoder(in_features, maps, resolution)
    if head_type == "lowrank":
        return LowRankLinear(in_features, maps * resolution ** 2, rank)
    return nn.Linear(in_features, maps * resolution ** 2)


def glorot_init_(model: nn.Module) -> nn.Module:
    """Keras' default initialisation, in place: Glorot-uniform weights
    (``U(-b, b)``, ``b = sqrt(6 / (fan_in + fan_out))``, with
    ``fan = channels * kernel size`` for convolutions, as Keras and
    :func:`torch.nn.init.xavier_uniform_` compute it) and zero biases for
    every convolution, transposed convolution and linear layer; BatchNorm
    keeps ``gamma = 1, beta = 0``.  (A transposed convolution's fan-in and
    fan-out are swapped between Keras and torch; their sum, hence the bound,
    is the same.)  Returns ``model``."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def _encoder(conv, bn, pool, in_channels: int, widths: Sequence[int], pool_padding: str = "symmetric") -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = in_channels
    dims = 1 if conv is nn.Conv1d else 2
    for i, width in enumerate(widths):
        layers += [conv(prev, width, 3, padding=1), bn(width, **_BN), nn.ReLU(inplace=True)]
        if i < 3:
            # 'same' pooling: ceil(L / 2) outputs, as Keras MaxPooling(3, 2, padding="same");
            # "symmetric" pads (1, 1) always, Keras (0, 1) on even lengths (see the module doc)
            layers.append(KerasSameMaxPool(dims) if pool_padding == "keras" else pool(3, stride=2, padding=1))
        prev = width
    return nn.Sequential(*layers)


class SignalPINet(nn.Module):
    """Signal PI-Net: ``(B, n, T)`` multichannel signal -> ``(B, n, R, R)`` PIs.

    Conv1d encoder (see module doc), global average pooling,
    ``Linear(widths[-1] -> n*R*R)`` and the output ``head`` (``"relu"`` as in
    the reference code, ``"sigmoid"`` for targets in [0, 1]), reshaped
    channel-major.  Any ``T >= 1``.

    ``channels_last=True`` takes ``(B, T, n)`` (topokd's ``signal_pis``
    layout) instead; the layout is never guessed.  ``pool_padding``,
    ``init``, ``head_type`` / ``head_rank``: see the module docstring
    (``"keras"``, ``"glorot"``, ``"dense"`` is the authors' network).
    Parameters: the convolutions and BatchNorm, plus ``F*P + P`` (dense),
    ``r*(F + P) + P`` (low rank) or :class:`ConvDecoder`'s (conv), ``F =
    widths[-1]``, ``P = n*R*R``.
    """

    def __init__(self, in_channels: int, resolution: int = 50, *, widths: Sequence[int] = (128, 256, 512, 1024),
                 head: str = "relu", channels_last: bool = False, pool_padding: str = "symmetric",
                 init: str = "torch", head_type: str = "dense", head_rank: int = 64):
        super().__init__()
        if int(in_channels) < 1 or int(resolution) < 1:
            raise ValueError(f"in_channels and resolution must be >= 1, got {in_channels}, {resolution}")
        self.in_channels, self.resolution = int(in_channels), int(resolution)
        self.channels_last = bool(channels_last)
        self.widths = _check_widths(widths)
        self.head_name = head
        self.head_rank = _check_options(pool_padding, init, head_type, head_rank)
        self.pool_padding, self.init, self.head_type = pool_padding, init, head_type
        self.features = _encoder(nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, self.in_channels, self.widths,
                                 pool_padding)
        self.fc = _dense(self.widths[-1], self.in_channels, self.resolution, head_type, self.head_rank)
        self.head = _head(head)
        if init == "glorot":
            glorot_init_(self)

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
    says sigmoid).  Any ``H, W >= 1``.  ``pool_padding``, ``init``,
    ``head_type`` / ``head_rank`` (the dense layer ``F -> R*R``): see the
    module docstring.
    """

    def __init__(self, in_channels: int, resolution: int = 50, *, widths: Sequence[int] = (128, 256, 512, 1024),
                 head: str = "relu", pool_padding: str = "symmetric", init: str = "torch",
                 head_type: str = "dense", head_rank: int = 64):
        super().__init__()
        if int(in_channels) < 1 or int(resolution) < 1:
            raise ValueError(f"in_channels and resolution must be >= 1, got {in_channels}, {resolution}")
        self.in_channels, self.resolution = int(in_channels), int(resolution)
        self.widths = _check_widths(widths)
        self.head_name = head
        self.head_rank = _check_options(pool_padding, init, head_type, head_rank)
        self.pool_padding, self.init, self.head_type = pool_padding, init, head_type
        self.features = _encoder(nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, self.in_channels, self.widths,
                                 pool_padding)
        self.fc = _dense(self.widths[-1], 1, self.resolution, head_type, self.head_rank)
        self.decoder = nn.ConvTranspose2d(1, self.in_channels, self.resolution)
        self.decoder_bn = nn.BatchNorm2d(self.in_channels, **_BN)
        self.head = _head(head)
        if init == "glorot":
            glorot_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected a (B, {self.in_channels}, H, W) batch, got shape {tuple(x.shape)}")
        r = self.resolution
        z = torch.relu(self.fc(self.features(x).mean(dim=(-2, -1)))).view(-1, 1, r, r)
        return self.head(self.decoder_bn(self._decode(z)))

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """``self.decoder(z)`` cropped to its 'same' ``R x R`` centre, computed by FFT.

        A transposed convolution with stride 1 is the full linear convolution
        of ``z`` with each ``R x R`` kernel, ``(2R - 1) x (2R - 1)``; with both
        zero-padded to that size the FFT product has no wrap-around, so
        ``irfft2(rfft2(z) * rfft2(w))`` is that convolution exactly, up to float
        rounding (~1e-6; checked against ``ConvTranspose2d`` in the tests,
        values and gradients).  Same weights and checkpoints; on CPU the
        decoder's forward + backward for a batch of 32 takes ~0.05 s instead
        of ~2.6 s (``ConvTranspose2d``) or ~1 s (direct convolution) — it was
        most of the network's training time.  Computed in float32 (cuFFT has no
        half precision for these sizes), also under autocast; float64 inputs
        stay float64.
        """
        r = self.resolution
        n, start = 2 * r - 1, (r - 1) // 2
        dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
        weight = self.decoder.weight.to(dtype)  # (1, c, R, R)
        spectrum = torch.fft.rfft2(z.to(dtype), s=(n, n)) * torch.fft.rfft2(weight, s=(n, n))  # (B, c, n, n//2+1)
        full = torch.fft.irfft2(spectrum, s=(n, n))
        return full[..., start:start + r, start:start + r] + self.decoder.bias.to(dtype).view(1, -1, 1, 1)


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
