"""Factor Transfer (Kim, Park & Kwak, NeurIPS 2018): paraphraser, translator, loss."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import _feature_pair, _positive, _resize, _tensor

__all__ = ["FactorTransferLoss", "Paraphraser", "Translator"]


def _conv_stack(in_ch: int, channels: Sequence[int], dims: int, bn: bool, transpose: bool) -> nn.Sequential:
    if transpose:
        conv = nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d
    else:
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
    norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    layers: list[nn.Module] = []
    prev = in_ch
    for ch in channels:
        layers.append(conv(prev, ch, 3, stride=1, padding=1))
        if bn:
            layers.append(norm(ch))
        layers.append(nn.LeakyReLU(0.1))
        prev = ch
    return nn.Sequential(*layers)


def _check_dims(dims) -> int:
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 (for (B, C, L) maps) or 2 (for (B, C, H, W) maps), got {dims!r}")
    return int(dims)


def _check_channels(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_map(x: Tensor, name: str, dims: int, channels: int) -> None:
    _tensor(x, name)
    axes = "(B, C, L)" if dims == 1 else "(B, C, H, W)"
    if x.ndim != dims + 2:
        raise ValueError(f"{name} must be a {axes} map for dims={dims}, got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(x.shape)}")


class Paraphraser(nn.Module):
    """Factor Transfer paraphraser (Kim, Park & Kwak, "Paraphrasing Complex
    Network: Network Compression via Factor Transfer", NeurIPS 2018).

    Convolutional autoencoder on *teacher* features, trained first with
    :meth:`reconstruction_loss` and then frozen; its encoder output is the
    teacher factor.  Layout (as the authors' code, Jangho-Kim/Factor-Transfer-pytorch
    ``Models/FeatureProjection.py``): encoder ``conv(C -> C), conv(C -> k),
    conv(k -> k)``, decoder ``convT(k -> k), convT(k -> C), convT(C -> C)``,
    all kernel 3, stride 1, padding 1, with bias (size preserved for any even
    or odd length), each followed by optional BatchNorm and LeakyReLU(0.1).
    The factor width is ``k = max(1, round(C * rate))`` with Python's
    ``round`` (half to even), as the authors' ``int(round(64 * RATE))`` in
    ``train_Paraphraser.py`` / ``train_student.py``.

    Args:
        in_channels: teacher channels ``C``.
        rate: paraphrase rate (default 0.5).
        dims: 1 for ``(B, C, L)``, 2 for ``(B, C, H, W)`` (default 2).
        use_bn: BatchNorm after each conv (default False; the authors' BatchNorm
            layers are commented out).
    """

    def __init__(self, in_channels: int, rate: float = 0.5, dims: int = 2, use_bn: bool = False):
        super().__init__()
        self.in_channels = _check_channels(in_channels, "in_channels")
        self.rate = _positive(rate, "rate")
        self.dims = _check_dims(dims)
        self.factor_channels = max(1, round(self.in_channels * self.rate))
        c, k = self.in_channels, self.factor_channels
        self.encoder = _conv_stack(c, (c, k, k), self.dims, use_bn, transpose=False)
        self.decoder = _conv_stack(k, (k, c, c), self.dims, use_bn, transpose=True)

    def encode(self, x: Tensor) -> Tensor:
        _check_map(x, "teacher_features", self.dims, self.in_channels)
        return self.encoder(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(factor, reconstruction)``."""
        factor = self.encode(x)
        return factor, self.decoder(factor)

    def reconstruction_loss(self, teacher_features: Tensor, p: int = 1) -> Tensor:
        """The paraphraser's training loss on (detached) teacher features.

        ``p=1`` (default): mean absolute reconstruction error, the authors'
        ``nn.L1Loss()`` (``train_Paraphraser.py``); ``p=2``: mean squared error.
        """
        if p not in (1, 2):
            raise ValueError(f"p must be 1 or 2, got {p!r}")
        x = teacher_features.detach() if isinstance(teacher_features, Tensor) else teacher_features
        _, rec = self(x)
        return F.l1_loss(rec, x) if p == 1 else F.mse_loss(rec, x)


class Translator(nn.Module):
    """Factor Transfer translator (Kim et al. 2018): maps *student* features to
    the factor space, ``conv(C_s -> C_s), conv(C_s -> k), conv(k -> k)``
    (kernel 3, padding 1, with bias, optional BatchNorm, LeakyReLU(0.1)).

    Args:
        in_channels: student channels ``C_s``.
        factor_channels: the paraphraser's ``k``.
        dims: 1 or 2 (default 2).
        use_bn: default False, as the authors' ``Translator``
            (Jangho-Kim/Factor-Transfer-pytorch ``Models/FeatureProjection.py``,
            BatchNorm commented out).
    """

    def __init__(self, in_channels: int, factor_channels: int, dims: int = 2, use_bn: bool = False):
        super().__init__()
        self.in_channels = _check_channels(in_channels, "in_channels")
        self.factor_channels = _check_channels(factor_channels, "factor_channels")
        self.dims = _check_dims(dims)
        c, k = self.in_channels, self.factor_channels
        self.encoder = _conv_stack(c, (c, k, k), self.dims, use_bn, transpose=False)

    def forward(self, x: Tensor) -> Tensor:
        _check_map(x, "student_features", self.dims, self.in_channels)
        return self.encoder(x)


class FactorTransferLoss(nn.Module):
    r"""Factor Transfer loss (Kim et al., NeurIPS 2018).

    .. math::
        L = \frac{1}{B\,D} \sum_b \Big\| \frac{F_S^{(b)}}{\|F_S^{(b)}\|_2}
            - \frac{F_T^{(b)}}{\|F_T^{(b)}\|_2} \Big\|_p^p

    with ``F_T = paraphraser.encode(teacher)`` and ``F_S = translator(student)``
    flattened to ``(B, D)``; ``p = 1`` (the paper's choice, default) or 2.
    The reduction is the element mean of the authors' code
    (Jangho-Kim/Factor-Transfer-pytorch ``train_student.py``:
    ``nn.L1Loss()(FT(factor_s), FT(factor_t.detach()))`` with ``FT`` =
    ``F.normalize`` of the flattened factor; the paper's per-sample norm
    averaged over the batch is ``D`` times this for p=1).  The authors weight
    it by ``beta = 500``; weights are left to the caller.

    The teacher factor is computed under ``torch.no_grad()`` from detached
    teacher features: the paraphraser is trained beforehand with
    :meth:`reconstruction_loss` and is frozen during transfer (call
    ``ft.paraphraser.eval()`` to freeze its BatchNorm statistics too).  The
    translator is trainable and receives the gradient of this loss.
    Student and teacher channels are independent; if their sizes differ, the
    student factor is resized to the teacher factor's size (linear /
    bilinear, ``align_corners=False``).

    Args:
        student_channels, teacher_channels: feature widths.
        rate: paraphrase rate (default 0.5; ``k = round(C_t * rate)``).
        dims: 1 or 2 (default 2).
        p: 1 or 2 (default 1).
        paraphraser_bn / translator_bn: BatchNorm (defaults False / False, as
            in the authors' code).
    """

    def __init__(self, student_channels: int, teacher_channels: int, rate: float = 0.5, dims: int = 2, p: int = 1,
                 paraphraser_bn: bool = False, translator_bn: bool = False):
        super().__init__()
        if p not in (1, 2):
            raise ValueError(f"p must be 1 or 2, got {p!r}")
        self.p = int(p)
        self.dims = _check_dims(dims)
        self.paraphraser = Paraphraser(teacher_channels, rate, dims, use_bn=paraphraser_bn)
        self.translator = Translator(student_channels, self.paraphraser.factor_channels, dims, use_bn=translator_bn)

    def reconstruction_loss(self, teacher_features: Tensor, p: int = 1) -> Tensor:
        """Paraphraser training loss (stage 1): L1 (default, as the authors) or ``p=2`` for MSE."""
        return self.paraphraser.reconstruction_loss(teacher_features, p)

    @staticmethod
    def factor_loss(factor_s: Tensor, factor_t: Tensor, p: int = 1) -> Tensor:
        """Distance between L2-normalised flattened factors (shapes must match)."""
        if factor_s.shape != factor_t.shape:
            raise ValueError(
                f"student and teacher factors must have the same shape, got {tuple(factor_s.shape)} and "
                f"{tuple(factor_t.shape)}"
            )
        d = F.normalize(factor_s.flatten(1), dim=1) - F.normalize(factor_t.flatten(1), dim=1)
        return d.abs().mean() if p == 1 else d.pow(2).mean()

    def forward(self, student_features: Tensor, teacher_features: Tensor) -> Tensor:
        _feature_pair(student_features, teacher_features)
        with torch.no_grad():
            factor_t = self.paraphraser.encode(teacher_features.detach())
        factor_s = _resize(self.translator(student_features), factor_t.shape[2:])
        return self.factor_loss(factor_s, factor_t, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
