"""Argument checks shared by the distillation losses (private)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..._validation import check_nonnegative as _nonnegative
from ..._validation import check_positive as _positive  # noqa: F401  (re-exported to the loss modules)

__all__: list[str] = []


def _unit_interval(value, name: str) -> float:
    v = _nonnegative(value, name)
    if v > 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def _weights(weights, name: str = "weights") -> tuple[float, ...]:
    try:
        ws = tuple(float(w) for w in weights)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of numbers, got {weights!r}") from None
    if not ws:
        raise ValueError(f"{name} must hold at least one weight, got {weights!r}")
    if not all(math.isfinite(w) and w >= 0 for w in ws):
        raise ValueError(f"{name} must be finite and >= 0, got {weights!r}")
    if sum(ws) <= 0:
        raise ValueError(f"{name} must not all be zero, got {weights!r}")
    return ws


def _tensor(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; cast it with .float()")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    return x


def _logits_pair(student: Tensor, teacher: Tensor, s_name="student_logits", t_name="teacher_logits") -> None:
    _tensor(student, s_name)
    _tensor(teacher, t_name)
    if student.ndim != 2:
        raise ValueError(f"{s_name} must have shape (B, num_classes), got {tuple(student.shape)}")
    if student.shape != teacher.shape:
        raise ValueError(
            f"{s_name} and {t_name} must have the same shape (B, num_classes), got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )


def _feature_pair(student: Tensor, teacher: Tensor, s_name="student_features", t_name="teacher_features") -> None:
    """Two feature maps, both (B, C, L) or both (B, C, H, W), same batch size."""
    _tensor(student, s_name)
    _tensor(teacher, t_name)
    for x, name in ((student, s_name), (teacher, t_name)):
        if x.ndim not in (3, 4):
            raise ValueError(f"{name} must be a (B, C, L) or (B, C, H, W) feature map, got shape {tuple(x.shape)}")
    if student.ndim != teacher.ndim:
        raise ValueError(
            f"{s_name} and {t_name} must both be 1-D (B, C, L) or both 2-D (B, C, H, W) maps, got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    _batch_pair(student, teacher, s_name, t_name)


def _pairs(student, teacher, s_name="student_features", t_name="teacher_features") -> list[tuple[Tensor, Tensor]]:
    """A single (student, teacher) pair or two equally long sequences of them."""
    if isinstance(student, Tensor) and isinstance(teacher, Tensor):
        return [(student, teacher)]
    if isinstance(student, Tensor) or isinstance(teacher, Tensor):
        raise TypeError(f"{s_name} and {t_name} must both be tensors or both be sequences of tensors")
    student, teacher = list(student), list(teacher)
    if not student:
        raise ValueError(f"{s_name} is an empty sequence")
    if len(student) != len(teacher):
        raise ValueError(f"got {len(student)} student and {len(teacher)} teacher feature maps; pass them in pairs")
    return list(zip(student, teacher))


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """Resize a (B, C, *spatial) map to ``size`` by (bi)linear interpolation (align_corners=False)."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[2:]) == size:
        return x
    mode = "linear" if x.ndim == 3 else "bilinear"
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def _pool(x: Tensor, size: Sequence[int]) -> Tensor:
    """Adaptive average pooling of a (B, C, *spatial) map to ``size`` (identity when it already has that size)."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[2:]) == size:
        return x
    return F.adaptive_avg_pool1d(x, size) if x.ndim == 3 else F.adaptive_avg_pool2d(x, size)


def _choice(value, options: Sequence[str], name: str) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(repr(o) for o in options)}; got {value!r}")
    return value


def _check_labels(labels, logits: Tensor, name: str = "labels") -> None:
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(
            f"{name} must have shape (B,) matching the logits {tuple(logits.shape)}, got {tuple(labels.shape)}"
        )


def _batch_pair(student: Tensor, teacher: Tensor, s_name: str, t_name: str) -> None:
    _tensor(student, s_name)
    _tensor(teacher, t_name)
    if student.ndim < 2 or teacher.ndim < 2:
        raise ValueError(
            f"{s_name} and {t_name} must be batched (B, ...) tensors with at least 2 dimensions, got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"{s_name} and {t_name} must have the same batch size, got shapes "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
