"""A trained PI-Net as a plain ``nn.Module``: input scaling, network, output scale.

:func:`scale_channels` is the one torch implementation of the input scaling
that topokd's TDA engine applies per window and channel
(:func:`topokd.tda.pipeline.scale_rows` is the NumPy one the engine itself
uses; tests check that the two agree).  :class:`PINetModule` is what
:meth:`topokd.PINet.as_module` returns and what the PINet estimator itself
predicts with, so a PI-Net inside another model (a PI-augmented student)
computes exactly ``PINet.predict``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCALES = (None, "standardize", "minmax", "unit")


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
