"""FitNet hints (Romero et al., ICLR 2015): a trainable regressor from the
student's hint layer to the teacher's, and the MSE between them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import _feature_pair, _pairs

__all__ = ["FitNetLoss"]


def _positive_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _size(value, name: str, dims: int) -> tuple[int, ...] | None:
    """None, an int (every axis) or one positive int per spatial axis."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (value,) * dims
    try:
        size = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be None, an int or {dims} ints, got {value!r}") from None
    if len(size) != dims:
        raise ValueError(f"{name} must give {dims} spatial size(s) for dims={dims}, got {value!r}")
    return tuple(_positive_int(s, name) for s in size)


def _regressor_conv(s_ch: int, t_ch: int, dims: int, s_size, t_size) -> nn.Module:
    """The convolution of the reference ``ConvReg``, chosen from the spatial sizes.

    Rules, in the reference's order, applied to every axis alike: the
    student twice the teacher -> kernel 3, stride 2, padding 1; half the
    teacher -> transposed conv, kernel 4, stride 2, padding 1; at least the
    teacher -> a "valid" conv of kernel ``1 + s - t`` per axis (``1`` when
    the sizes agree, the 1x1 conv of the hint regressor).
    """
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    if s_size is None or t_size is None or s_size == t_size:
        return conv(s_ch, t_ch, kernel_size=1)
    pairs = list(zip(s_size, t_size))
    if all(s == 2 * t for s, t in pairs):
        return conv(s_ch, t_ch, kernel_size=3, stride=2, padding=1)
    if all(2 * s == t for s, t in pairs):
        transpose = nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d
        return transpose(s_ch, t_ch, kernel_size=4, stride=2, padding=1)
    if all(s >= t for s, t in pairs):
        return conv(s_ch, t_ch, kernel_size=tuple(1 + s - t for s, t in pairs))
    raise ValueError(
        f"FitNetLoss cannot map a student map of size {s_size} onto a teacher map of size {t_size}: the "
        "reference regressor handles a student twice or half the teacher's size on every axis, or at least as "
        "large on every axis"
    )


class FitNetLoss(nn.Module):
    r"""FitNet hint loss (Romero, Ballas, Kahou, Chassang, Gatta & Bengio,
    "FitNets: Hints for Thin Deep Nets", ICLR 2015).

    .. math:: L = \frac{1}{B\,C_t\,N_t} \sum \big(r(F_s) - F_t\big)^2

    the element mean (``F.mse_loss``) between the regressed student hint
    ``r(F_s)`` and the teacher hint ``F_t`` (``C_t`` teacher channels,
    ``N_t`` teacher positions).  The regressor ``r`` is the ``ConvReg`` of
    RepDistiller (``models/util.py``, with ``distiller_zoo/FitNet.py``'s
    ``HintLoss`` = ``nn.MSELoss``) and mdistiller
    (``mdistiller/distillers/_common.py`` + ``FitNet.py``): a convolution from
    ``C_s`` to ``C_t`` channels, then BatchNorm, then ReLU (``use_bn`` /
    ``use_relu`` drop them: ``use_bn=False, use_relu=False`` is the bare
    linear conv regressor).  ``Conv1d`` / ``BatchNorm1d`` for 1-D
    ``(B, C, L)`` hints, ``Conv2d`` / ``BatchNorm2d`` for 2-D
    ``(B, C, H, W)`` ones; PyTorch's default initialisation, with bias, as
    in the references.  The ReLU assumes post-activation teacher hints (as
    the references take them); use ``use_relu=False`` for pre-activation
    hints, which can be negative.

    Spatial sizes, as the reference ``ConvReg`` does (it reads them from
    the two networks' feature shapes; here pass ``student_size`` /
    ``teacher_size``, each an int or one int per axis):

    * equal sizes, or sizes not given: 1x1 conv (kernel 1);
    * student twice the teacher: kernel 3, stride 2, padding 1;
    * student half the teacher: transposed conv, kernel 4, stride 2, padding 1;
    * student larger otherwise: kernel ``1 + s - t`` per axis, no padding;
    * anything else (e.g. a smaller student, not half): ``ValueError``
      (the reference fails there too).

    The rule applies to every spatial axis alike (the reference decides on
    the height alone; a 2-D map whose axes fall under different rules is
    refused here rather than giving a mis-shaped result).  Nothing is
    interpolated.  If the regressed student map does not have the teacher
    map's shape, ``forward`` raises ``ValueError``.

    **Trainable parameters.** The regressor is the submodule
    :attr:`regressor` and is trained with the student: the trainer must
    add ``loss.parameters()`` to the student's optimizer, move the loss
    to the student's device, and switch it with ``loss.train()`` /
    ``loss.eval()`` (its BatchNorm uses batch statistics in training; with
    BatchNorm a training batch needs more than one value per channel).  No
    weight is applied here: mdistiller's ``FEAT_WEIGHT`` default is 100
    (RepDistiller's ``-b`` flag); the trainer applies the configured
    weight.

    Teacher hints are detached; gradients reach the student features and
    the regressor only.

    Args:
        student_channels, teacher_channels: hint-layer widths ``C_s``, ``C_t``.
        dims: 1 for ``(B, C, L)`` hints (default), 2 for ``(B, C, H, W)``.
        student_size, teacher_size: spatial sizes (see above; default None:
            equal sizes expected).
        use_bn, use_relu: BatchNorm and ReLU after the conv (default True,
            as the references).
        hint_layer: which pair to use when ``forward`` gets sequences of
            maps (default -1, the last given; the references' default hint
            is the middle stage, ``feats[2]`` of the five feature outputs).

    ``forward(student_features, teacher_features)``: two maps of the same
    ``dims`` (the hint pair itself), or two equally long sequences of them
    (then only the pair at ``hint_layer`` is used: there is one
    regressor).  Returns a scalar.
    """

    def __init__(self, student_channels: int, teacher_channels: int, dims: int = 1,
                 student_size: int | Sequence[int] | None = None, teacher_size: int | Sequence[int] | None = None,
                 use_bn: bool = True, use_relu: bool = True, hint_layer: int = -1):
        super().__init__()
        if dims not in (1, 2) or isinstance(dims, bool):
            raise ValueError(f"dims must be 1 (for (B, C, L) hints) or 2 (for (B, C, H, W) hints), got {dims!r}")
        if isinstance(hint_layer, bool) or not isinstance(hint_layer, (int, np.integer)):
            raise TypeError(f"hint_layer must be an int index, got {hint_layer!r}")
        self.dims = int(dims)
        self.student_channels = _positive_int(student_channels, "student_channels")
        self.teacher_channels = _positive_int(teacher_channels, "teacher_channels")
        self.student_size = _size(student_size, "student_size", self.dims)
        self.teacher_size = _size(teacher_size, "teacher_size", self.dims)
        if (self.student_size is None) != (self.teacher_size is None):
            raise ValueError("pass both student_size and teacher_size, or neither (equal sizes)")
        self.use_bn, self.use_relu = bool(use_bn), bool(use_relu)
        self.hint_layer = int(hint_layer)
        layers = [_regressor_conv(self.student_channels, self.teacher_channels, self.dims, self.student_size,
                                  self.teacher_size)]
        if self.use_bn:
            layers.append((nn.BatchNorm1d if self.dims == 1 else nn.BatchNorm2d)(self.teacher_channels))
        if self.use_relu:
            layers.append(nn.ReLU())
        self.regressor = nn.Sequential(*layers)

    def _check(self, student: Tensor, teacher: Tensor, s_name: str, t_name: str) -> None:
        _feature_pair(student, teacher, s_name, t_name)
        axes = "(B, C, L)" if self.dims == 1 else "(B, C, H, W)"
        if student.ndim != self.dims + 2:
            raise ValueError(f"FitNetLoss was built with dims={self.dims}: {s_name} and {t_name} must be {axes} "
                             f"maps, got {tuple(student.shape)} and {tuple(teacher.shape)}")
        for x, name, ch in ((student, s_name, self.student_channels), (teacher, t_name, self.teacher_channels)):
            if x.shape[1] != ch:
                raise ValueError(f"{name} must have {ch} channels (FitNetLoss({self.student_channels}, "
                                 f"{self.teacher_channels})), got shape {tuple(x.shape)}")
        if tuple(student.shape[2:]) != tuple(teacher.shape[2:]) and self.student_size is None:
            raise ValueError(
                f"{s_name} {tuple(student.shape)} and {t_name} {tuple(teacher.shape)} differ in size: build "
                f"FitNetLoss with student_size={tuple(student.shape[2:])} and "
                f"teacher_size={tuple(teacher.shape[2:])} to get the reference's strided / transposed / valid conv"
            )
        if self.use_bn and self.training and student.shape[0] * np.prod(student.shape[2:]) == 1:
            raise ValueError(f"FitNetLoss's BatchNorm needs more than one value per channel in training, got "
                             f"{s_name} of shape {tuple(student.shape)}: use a larger batch or use_bn=False")

    def forward(self, student_features, teacher_features) -> Tensor:
        pairs = _pairs(student_features, teacher_features)
        if isinstance(student_features, Tensor):  # one pair: the hint itself
            (student, teacher), s_name, t_name = pairs[0], "student_features", "teacher_features"
        else:
            try:
                index = range(len(pairs))[self.hint_layer]
            except IndexError:
                raise ValueError(f"hint_layer={self.hint_layer} is out of range for {len(pairs)} feature map "
                                 "pair(s)") from None
            (student, teacher), s_name, t_name = pairs[index], f"student_features[{index}]", \
                f"teacher_features[{index}]"
        self._check(student, teacher, s_name, t_name)
        regressed = self.regressor(student)
        if regressed.shape != teacher.shape:
            raise ValueError(f"the regressed {s_name} has shape {tuple(regressed.shape)} but {t_name} has "
                             f"{tuple(teacher.shape)}; check student_size / teacher_size")
        return F.mse_loss(regressed, teacher.detach())

    def extra_repr(self) -> str:
        return (f"student_channels={self.student_channels}, teacher_channels={self.teacher_channels}, "
                f"dims={self.dims}, hint_layer={self.hint_layer}")
