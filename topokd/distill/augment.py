"""Time-series augmentation for wearable-sensor windows.

The transformations studied for knowledge distillation on wearable data by
Jeon et al. ("Role of Data Augmentation Strategies in Knowledge Distillation
for Wearable Sensor Data", IEEE IoT Journal 2021, and their later TDA-KD
papers): removal of a segment, additive Gaussian noise, time shift, and the
mixes ``Mix1 = Removal + Shift`` and ``Mix2 = Removal + Noise + Shift``;
and label-free ones for training PI-Net surrogates on recomputed targets
(:class:`AmplitudeScale`, :class:`TimeWarp`, :class:`WindowMix`,
:class:`ChannelPermutation`, their mix :class:`SurrogateMix`).

All work on torch batches ``(B, C, T)`` (channel-major, as the models of
:mod:`topokd.distill.models` take them), on any device:

* every sample of the batch gets its own random segment / shift / noise; all
  channels of a sample share the segment and the shift (one sensor window);
* randomness comes from the ``generator`` argument (a ``torch.Generator``,
  CPU or on the batch's device) or, without one, from torch's global RNG:
  the same generator seed gives the same output;
* the input is never modified; the output has its shape, dtype and device.

Each transformation is a small object with ``__call__(x, generator=None)``,
and, to make the randomness inspectable, ``sample(x, generator)`` (the
random parameters, one entry per sample) and ``apply(x, params)``:
``t(x, g) == t.apply(x, t.sample(x, g))``.  In a training loop::

    augment = get_augmentation("mix2")
    gen = torch.Generator().manual_seed(0)
    for xb, yb in loader:
        loss = criterion(model(augment(xb, generator=gen)), yb)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

REMOVAL_ACTIONS = ("zero", "drop")
SHIFT_BOUNDARIES = ("circular", "pad")


def _renamed_mode(mode, value, new: str, cls: str):
    """``mode=`` of an augmentation, renamed (``mode`` names the image PI mode in topokd)."""
    if mode is None:
        return value
    import warnings

    warnings.warn(f"{cls}(mode=...) is renamed {cls}({new}=...); mode will be removed", DeprecationWarning,
                  stacklevel=3)
    return mode
_EPS = 1e-9  # so that e.g. 0.29 * 100 counts as 29 samples, not 28


def _check_batch(x, name: str = "x") -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch tensor (B, C, T), got {type(x).__name__}; topokd windows "
                        "(N, T, C) become one with torch.from_numpy(X).transpose(1, 2)")
    if x.dim() != 3 or x.shape[-1] < 1:
        raise ValueError(f"{name} must be a (B, C, T) batch with T >= 1, got shape {tuple(x.shape)}")


def _check_fraction(value, name: str, *, allow_zero: bool) -> float:
    value = float(value)
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok and value <= 1):
        raise ValueError(f"{name} must be in {'[0' if allow_zero else '(0'}, 1], got {value}")
    return value


def _uniform(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` float64 uniforms in [0, 1), drawn on the generator's device, returned on ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=where, dtype=torch.float64).to(device)


def _randint(low: torch.Tensor | int, high: torch.Tensor | int, u: torch.Tensor) -> torch.Tensor:
    """Integers uniform in ``[low, high]`` (inclusive, per sample) from uniforms ``u``."""
    low = torch.as_tensor(low, device=u.device, dtype=torch.float64)
    high = torch.as_tensor(high, device=u.device, dtype=torch.float64)
    return torch.minimum(low + torch.floor(u * (high - low + 1)), high).long()


def _gather_time(x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``out[b, c, t] = x[b, c, source[b, t]]``."""
    return x.gather(2, source[:, None, :].expand(-1, x.shape[1], -1))


class Augmentation:
    """Base class: subclasses define :meth:`sample` and :meth:`apply`."""

    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        raise NotImplementedError

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(x)
        return self.apply(x, self.sample(x, generator))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Identity(Augmentation):
    """No augmentation (a copy of the input); what ``get_augmentation(None)`` returns."""

    def sample(self, x, generator=None) -> dict:
        return {}

    def apply(self, x, params) -> torch.Tensor:
        return x.clone()


class Removal(Augmentation):
    """Remove one random contiguous segment of each window.

    Per sample: a length ``L`` uniform in ``{1, ..., floor(max_fraction * T)}``
    and a start ``s`` uniform in ``{0, ..., T - L}``; the same segment
    ``[s, s + L)`` in every channel.

    * ``action="zero"`` (default): the segment is set to 0 (a sensor drop-out).
    * ``action="drop"``: the segment is cut out, the rest moves left to close
      the gap (sampling rate unchanged, no resampling), and the last ``L``
      samples repeat the last kept value:
      ``out = concat(x[:s], x[s+L:], [x_last] * L)``; ``L <= T - 1`` here so
      that something is kept.

    When the bound is below 1 (short windows) nothing is removed (``L = 0``).
    ``sample`` returns ``{"start": (B,), "length": (B,)}`` int64 tensors.
    """

    def __init__(self, max_fraction: float = 0.2, action: str = "zero", *, mode: str | None = None):
        self.max_fraction = _check_fraction(max_fraction, "max_fraction", allow_zero=False)
        action = _renamed_mode(mode, action, "action", "Removal")
        if action not in REMOVAL_ACTIONS:
            raise ValueError(f"action must be one of {list(REMOVAL_ACTIONS)}, got {action!r}")
        self.action = action

    def max_length(self, length: int) -> int:
        """Longest segment removed from a window of ``length`` samples."""
        bound = int(math.floor(self.max_fraction * length + _EPS))
        return min(bound, length - 1) if self.action == "drop" else bound

    def sample(self, x, generator=None) -> dict:
        _check_batch(x)
        batch, length = x.shape[0], x.shape[-1]
        longest = self.max_length(length)
        u_len, u_start = _uniform(batch, generator, x.device), _uniform(batch, generator, x.device)
        if longest < 1:
            zeros = torch.zeros(batch, dtype=torch.long, device=x.device)
            return {"start": zeros, "length": zeros.clone()}
        seg = _randint(1, longest, u_len)
        return {"start": _randint(torch.zeros_like(seg), length - seg, u_start), "length": seg}

    def apply(self, x, params) -> torch.Tensor:
        _check_batch(x)
        start, seg = params["start"][:, None], params["length"][:, None]
        t = torch.arange(x.shape[-1], device=x.device)[None, :]
        if self.action == "zero":
            inside = (t >= start) & (t < start + seg)
            return x.masked_fill(inside[:, None, :], 0)
        # output position j reads x[j] before the gap, x[j + L] after it; the
        # tail (j >= T - L) repeats output position T - L - 1
        j = torch.minimum(t, x.shape[-1] - seg - 1)
        return _gather_time(x, torch.where(j < start, j, j + seg))


class GaussianNoise(Augmentation):
    """Add Gaussian noise: ``out = x + sigma * z``, ``z ~ N(0, 1)`` i.i.d.

    ``relative=True`` (default): ``sigma = std * std_t(x[b, c])``, the
    population standard deviation of each sample's channel over time (so a
    constant channel gets no noise); ``relative=False``: ``sigma = std``.
    Default ``std=0.05``.  Needs a floating-point batch.
    ``sample`` returns ``{"noise": z}`` of the batch's shape.
    """

    def __init__(self, std: float = 0.05, relative: bool = True):
        std = float(std)
        if not (math.isfinite(std) and std >= 0):
            raise ValueError(f"std must be a finite number >= 0, got {std}")
        self.std, self.relative = std, bool(relative)

    def sample(self, x, generator=None) -> dict:
        _check_batch(x)
        if not x.is_floating_point():
            raise TypeError(f"GaussianNoise needs a floating-point batch, got {x.dtype}")
        where = generator.device if generator is not None else x.device
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        z = torch.randn(tuple(x.shape), generator=generator, device=where, dtype=dtype)
        return {"noise": z.to(device=x.device, dtype=x.dtype)}

    def apply(self, x, params) -> torch.Tensor:
        _check_batch(x)
        sigma = self.std
        if self.relative:
            sigma = self.std * x.std(dim=-1, keepdim=True, unbiased=False)
        return x + sigma * params["noise"]


class Shift(Augmentation):
    """Shift each window along time by ``k`` samples, ``k`` uniform in
    ``{-K, ..., K}`` with ``K = min(floor(max_shift * T), T - 1)``; positive
    ``k`` moves the content later (``out[t] = x[t - k]``).

    * ``boundary="circular"`` (default): wrap around, exactly ``torch.roll(x, k, -1)``.
    * ``boundary="pad"``: no wrap; the vacated samples repeat the edge value
      (``out[t] = x[clamp(t - k, 0, T - 1)]``).

    Default ``max_shift=0.1``.  ``sample`` returns ``{"shift": (B,)}`` int64.
    """

    def __init__(self, max_shift: float = 0.1, boundary: str = "circular", *, mode: str | None = None):
        self.max_shift = _check_fraction(max_shift, "max_shift", allow_zero=True)
        boundary = _renamed_mode(mode, boundary, "boundary", "Shift")
        if boundary not in SHIFT_BOUNDARIES:
            raise ValueError(f"boundary must be one of {list(SHIFT_BOUNDARIES)}, got {boundary!r}")
        self.boundary = boundary

    def max_samples(self, length: int) -> int:
        """Largest shift (in samples) for a window of ``length`` samples."""
        return min(int(math.floor(self.max_shift * length + _EPS)), length - 1)

    def sample(self, x, generator=None) -> dict:
        _check_batch(x)
        most = self.max_samples(x.shape[-1])
        return {"shift": _randint(-most, most, _uniform(x.shape[0], generator, x.device))}

    def apply(self, x, params) -> torch.Tensor:
        _check_batch(x)
        length = x.shape[-1]
        source = torch.arange(length, device=x.device)[None, :] - params["shift"][:, None]
        source = source % length if self.boundary == "circular" else source.clamp(0, length - 1)
        return _gather_time(x, source)


def _normal(shape: tuple, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normals (float64) drawn on the generator's device, returned on ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where, dtype=torch.float64).to(device)


class AmplitudeScale(Augmentation):
    """Multiply each window by a random gain: ``out = g * x``, ``g = exp(sigma * z)``.

    ``per_channel=False`` (default): one gain per sample, shared by its
    channels (the sensor's sensitivity); ``True``: one per (sample, channel).
    Default ``sigma=0.1`` (gains mostly within x0.8 .. x1.2).  Note that PIs
    of a preset with ``scale="standardize"`` (e.g. ``standard-signal``) do
    not change under a per-channel gain: use it for presets without
    standardisation.  ``sample`` returns ``{"gain": (B, C or 1, 1)}``.
    """

    def __init__(self, sigma: float = 0.1, per_channel: bool = False):
        sigma = float(sigma)
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
        self.sigma, self.per_channel = sigma, bool(per_channel)

    def sample(self, x, generator=None) -> dict:
        _check_batch(x)
        shape = (x.shape[0], x.shape[1] if self.per_channel else 1, 1)
        return {"gain": torch.exp(self.sigma * _normal(shape, generator, x.device))}

    def apply(self, x, params) -> torch.Tensor:
        _check_batch(x)
        return (x * params["gain"]).to(x.dtype)


class TimeWarp(Augmentation):
    """Smoothly speed up and slow down each window (all channels alike).

    Per sample, ``knots`` log-normal speeds ``exp(sigma * z_k)`` are linearly
    interpolated over the ``T`` samples; their cumulative sum, rescaled to
    ``[0, T - 1]``, is the warped time ``tau(t)`` (increasing, ends fixed),
    and ``out[t] = x(tau(t))`` by linear interpolation between samples.  The
    window keeps its length and its first and last sample.  Defaults
    ``sigma=0.2``, ``knots=4`` (after Um et al. 2017, "Data augmentation of
    wearable sensor data", whose warp uses a cubic spline of the speeds; ours
    is piecewise linear).  ``sample`` returns ``{"tau": (B, T)}`` float64.
    """

    def __init__(self, sigma: float = 0.2, knots: int = 4):
        sigma = float(sigma)
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
        if int(knots) < 1:
            raise ValueError(f"knots must be >= 1, got {knots}")
        self.sigma, self.knots = sigma, int(knots)

    def sample(self, x, generator=None) -> dict:
        _check_batch(x)
        batch, length = x.shape[0], x.shape[-1]
        speeds = torch.exp(self.sigma * _normal((batch, self.knots + 1), generator, x.device))
        if length == 1:
            return {"tau": torch.zeros(batch, 1, dtype=torch.float64, device=x.device)}
        per_sample = torch.nn.functional.interpolate(speeds[:, None, :], size=length - 1, mode="linear",
                                                     align_corners=True)[:, 0]
        tau = torch.cat([torch.zeros(batch, 1, dtype=torch.float64, device=x.device), per_sample.cumsum(1)], 1)
        return {"tau": tau * ((length - 1) / tau[:, -1:])}

    def apply(self, x, params) -> torch.Tensor:
        _check_batch(x)
        length = x.shape[-1]
        tau = params["tau"].clamp(0, length - 1)
        if length == 1:
            return x.clone()
        left = tau.floor().long().clamp(max=length - 2)
        w = (tau - left).to(x.dtype)[:, None, :]
        return _gather_time(x, left) * (1 - w) + _gather_time(x, left + 1) * w


class WindowMix(Augmentation):
    """Blend each window with another window of the batch:
    ``out[b] = lam_b * x[b] + (1 - lam_b) * x[p(b)]``.

    ``p`` is a random permutation of the batch and ``lam_b`` uniform in
    ``[min_weight, 1]`` per sample (default 0.8, so each window stays
    dominant).  Label-free (no targets are mixed): for surrogate targets such
    as PI-Net's, whose target is recomputed from the mixed window.
    ``sample`` returns ``{"partner": (B,), "weight": (B, 1, 1)}``.
    """

    def __init__(self, min_weight: float = 0.8):
        self.min_weight = _check_fraction(min_weight, "min_weight", allow_zero=True)

    def sample(self, x, generator=None) -> dict:
        _check_batch(x)
        batch = x.shape[0]
        u = _uniform(batch, generator, x.device)
        order = torch.argsort(_uniform(batch, generator, x.device))
        return {"partner": order, "weight": (self.min_weight + (1 - self.min_weight) * u)[:, None, None]}

    def apply(self, x, params) -> torch.Tensor:
        _check_batch(x)
        w = params["weight"].to(x.dtype)
        return w * x + (1 - w) * x[params["partner"]]


class ChannelPermutation(Augmentation):
    """Permute channels within groups of alike channels, per sample.

    ``groups``: channel indices that measure the same quantity on different
    axes, e.g. ``((0, 1, 2), (3, 4, 5))`` for the accelerometer and
    gyroscope axes of UCI HAPT and BasicMotions — a permutation of a
    tri-axial sensor's axes is the window a differently oriented device would
    record (up to signs).  Channels outside every group stay in place.  There
    is no default: which channels are alike depends on the data set.
    ``sample`` returns ``{"source": (B, C)}`` (output channel ``c`` reads
    input channel ``source[b, c]``).
    """

    def __init__(self, groups: Sequence[Sequence[int]]):
        groups = [tuple(int(c) for c in g) for g in groups]
        flat = [c for g in groups for c in g]
        if not groups or any(len(g) < 2 for g in groups) or len(set(flat)) != len(flat) or min(flat) < 0:
            raise ValueError(f"groups must be disjoint groups of >= 2 non-negative channel indices, got {groups}")
        self.groups = groups

    def sample(self, x, generator=None) -> dict:
        _check_batch(x)
        batch, channels = x.shape[0], x.shape[1]
        if max(c for g in self.groups for c in g) >= channels:
            raise ValueError(f"groups {self.groups} name a channel the batch does not have ({channels} channels)")
        source = torch.arange(channels, device=x.device).repeat(batch, 1)
        for g in self.groups:
            idx = torch.tensor(g, device=x.device)
            order = torch.argsort(_uniform(batch * len(g), generator, x.device).view(batch, len(g)), dim=1)
            source[:, idx] = idx[order]
        return {"source": source}

    def apply(self, x, params) -> torch.Tensor:
        _check_batch(x)
        return x.gather(1, params["source"][:, :, None].expand(-1, -1, x.shape[-1]))


class Compose(Augmentation):
    """Apply ``transforms`` in order, sharing one generator.

    Any callable ``t(x, generator=None)`` may be a member; :meth:`sample` and
    :meth:`apply` (lists of the members' parameters) need every member to be
    an :class:`Augmentation`.
    """

    def __init__(self, transforms: Sequence[Callable]):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose members must be callables t(x, generator=None), got {t!r}")
        self.transforms = transforms

    def __call__(self, x, generator=None) -> torch.Tensor:
        _check_batch(x)
        out = x
        for t in self.transforms:
            out = t(out, generator=generator)
        return out.clone() if out is x else out

    def _members(self) -> list[Augmentation]:
        bad = [t for t in self.transforms if not isinstance(t, Augmentation)]
        if bad:
            raise TypeError(f"sample/apply need Augmentation members, got {bad}")
        return self.transforms

    def sample(self, x, generator=None) -> list:
        # shapes do not change along the chain, so every member can sample up front
        return [t.sample(x, generator) for t in self._members()]

    def apply(self, x, params) -> torch.Tensor:
        members = self._members()
        if len(params) != len(members):
            raise ValueError(f"expected {len(members)} parameter sets, got {len(params)}")
        out = x
        for t, p in zip(members, params):
            out = t.apply(out, p)
        return out.clone() if out is x else out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transforms!r})"


class Mix1(Compose):
    """``Compose([Removal(), Shift()])`` (Jeon et al.'s Mix1); pass configured members to change them."""

    def __init__(self, removal: Removal | None = None, shift: Shift | None = None):
        super().__init__([removal or Removal(), shift or Shift()])


class Mix2(Compose):
    """``Compose([Removal(), GaussianNoise(), Shift()])`` (Jeon et al.'s Mix2)."""

    def __init__(self, removal: Removal | None = None, noise: GaussianNoise | None = None,
                 shift: Shift | None = None):
        super().__init__([removal or Removal(), noise or GaussianNoise(), shift or Shift()])


class SurrogateMix(Compose):
    """Label-free augmentation for training PI-Net surrogates on on-the-fly
    targets: ``Compose([TimeWarp(0.2), WindowMix(0.8), GaussianNoise(0.02),
    Shift(0.1)])``.  Each changes the window's sublevel-set diagram (so the
    recomputed target PI differs) while keeping it a plausible sensor
    window; amplitude gains are left out because the default
    ``standard-signal`` preset standardises each channel (add
    :class:`AmplitudeScale` for presets that do not), and channel
    permutations because which channels are alike depends on the data
    (add :class:`ChannelPermutation` with its groups)."""

    def __init__(self, warp: TimeWarp | None = None, mix: WindowMix | None = None,
                 noise: GaussianNoise | None = None, shift: Shift | None = None):
        super().__init__([warp or TimeWarp(), mix or WindowMix(), noise or GaussianNoise(0.02), shift or Shift()])


#: Named augmentations for configs and the command line.
AUGMENTATIONS: dict[str, Callable[..., Augmentation]] = {
    "none": Identity,
    "removal": Removal,
    "noise": GaussianNoise,
    "shift": Shift,
    "scale": AmplitudeScale,
    "warp": TimeWarp,
    "window-mix": WindowMix,
    "channel-permutation": ChannelPermutation,
    "mix1": Mix1,
    "mix2": Mix2,
    "surrogate": SurrogateMix,
}


def get_augmentation(name: str | None, **kwargs) -> Augmentation:
    """The augmentation called ``name`` (see :data:`AUGMENTATIONS`), built with
    ``kwargs`` (e.g. ``get_augmentation("shift", boundary="pad")``).  ``None`` or
    ``"none"`` gives :class:`Identity`, so training loops can always call it."""
    key = "none" if name is None else str(name).lower()
    if key not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {sorted(AUGMENTATIONS)} or None")
    return AUGMENTATIONS[key](**kwargs)
