"""Input checks shared by the public APIs: fail early, say what and how to fix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def check_layout(arr, name: str, ndim: int, axes: str, hint: str = "") -> None:
    """Check dtype, number of dimensions and emptiness without reading data.

    Works on anything with ``dtype``, ``ndim``, ``shape`` and ``size``
    (arrays, memory maps, :class:`topokd.io.NpyStream`).  Integer and boolean
    dtypes are accepted (cast later); complex, object and string are refused.
    """
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers, got dtype {arr.dtype}; convert it with "
            f"np.asarray({name}, dtype=float) first"
        )
    if arr.ndim != ndim:
        extra = f" {hint}" if hint else ""
        raise ValueError(
            f"{name} must have {ndim} dimensions {axes}, got shape {tuple(arr.shape)}.{extra}"
        )
    if arr.size == 0:
        raise ValueError(
            f"{name} is empty (shape {tuple(arr.shape)}); every axis of {axes} needs length >= 1"
        )


def as_float_array(x, name: str, ndim: int, axes: str, hint: str = "") -> np.ndarray:
    """:func:`check_layout`, then ``x`` as a float64 ndarray.

    Non-finite values are not checked here (see :func:`check_finite`).
    """
    arr = np.asarray(x)
    check_layout(arr, name, ndim, axes, hint)
    return np.asarray(arr, dtype=np.float64)


def check_finite(arr: np.ndarray, name: str, axis_names: Sequence[str]) -> None:
    """Raise ValueError naming the first non-finite entry by its axis names."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    idx = np.argwhere(bad)
    first = idx[0]
    where = ", ".join(f"{a} {int(i)}" for a, i in zip(axis_names, first) if a)
    raise ValueError(
        f"{name} contains {len(idx)} non-finite value(s) (NaN or inf); the first is at "
        f"{where} (value {arr[tuple(first)]}). Impute or drop these samples before "
        "computing persistence."
    )


def check_range(value, name: str) -> tuple[float, float]:
    """A (low, high) pair of finite floats with low < high."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (low, high) of numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if not lo < hi:
        raise ValueError(
            f"{name} must satisfy low < high, got {value!r}"
            + ("; it looks reversed, swap the two values" if lo > hi else "")
        )
    return lo, hi


def _check_number(value, name: str, *, allow_zero: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and (v >= 0 if allow_zero else v > 0)):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return v


def check_positive(value, name: str) -> float:
    return _check_number(value, name, allow_zero=False)


def check_nonnegative(value, name: str) -> float:
    return _check_number(value, name, allow_zero=True)


def check_pair(value, name: str, check) -> tuple:
    """Accept a scalar (used for both axes) or a pair, each checked by ``check``."""
    if np.ndim(value) == 0:
        v = check(value, name)
        return v, v
    if len(value) != 2:
        raise ValueError(f"{name} must be a scalar or a pair, got {value!r}")
    return check(value[0], name), check(value[1], name)


def check_resolution(value) -> tuple[int, int]:
    def one(v, name):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
        return int(v)

    return check_pair(value, "resolution", one)


def check_choice(value, name: str, choices: Sequence) -> object:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_device(device, name: str = "device"):
    """``device`` as a ``torch.device`` that this torch build can use.

    ``None``: CUDA when available, else CPU.  The one device check of topokd
    (PI-Net, the training engine and its settings, torch persistence images,
    the CLI's ``--device``): a CUDA request on a torch without CUDA (or
    without a visible GPU, or with too few) is a one-line ``ValueError``
    saying so, instead of torch's ``AssertionError: Torch not compiled with
    CUDA enabled`` at first use.  ``name`` names the option in the message
    (``"--device"`` for the command line).
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cli = name.startswith("--")
    label = f"{name} {device}" if cli else f"{name} {str(device)!r}"
    cpu = "--device cpu" if cli else f"{name}='cpu'"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{label}: not a device; use e.g. {cpu} or "
                         f"{'--device cuda' if cli else repr('cuda')}") from None
    if dev.type == "cuda":
        if torch.version.cuda is None:
            raise ValueError(f"{label}: this torch build has no CUDA (torch {torch.__version__}); use {cpu} "
                             "or install a CUDA build")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{label}: no CUDA device is visible (torch {torch.__version__}, CUDA "
                             f"{torch.version.cuda}); use {cpu} or check the driver / CUDA_VISIBLE_DEVICES")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{label}: there are only {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
    elif dev.type not in ("cpu", "mps", "xpu", "meta"):
        raise ValueError(f"{label}: unsupported device type {dev.type!r}; use {cpu} or a CUDA device")
    return dev
