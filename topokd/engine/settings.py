"""Training settings shared by every user of the training engine, and the
one optimizer / learning-rate schedule factory."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch


def check_training_length(epochs: int, batch_size: int, lr: float) -> None:
    """``epochs`` and ``batch_size`` >= 1, ``lr`` a finite number > 0 (one-line errors naming the field)."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be > 0, got {lr!r}")


@dataclass
class TrainSettings:
    """Optimisation settings shared by teachers and students.

    Defaults: SGD (momentum 0.9, Nesterov), lr 0.05, weight decay 5e-4,
    cosine decay, 100 epochs, batch 32 (WRN training recipe scaled to the
    small wearable data sets).
    """

    epochs: int = 100
    batch_size: int = 32
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "step", "none"] = "cosine"
    augment: str | None = None
    mixup_alpha: float = 0.0
    mixup_fraction: float = 1.0
    amp: bool = True
    device: str | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        # Each message starts with the field's name: topokd.config prefixes it
        # with the config path (``student.train.lr must be > 0, got -1``).
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer must be one of 'sgd', 'adam', 'adamw', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "step", "none"):
            raise ValueError(f"schedule must be one of 'cosine', 'step', 'none', got {self.schedule!r}")
        check_training_length(self.epochs, self.batch_size, self.lr)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not self.mixup_alpha >= 0:
            raise ValueError(f"mixup_alpha must be >= 0 (0 turns mixup off), got {self.mixup_alpha!r}")
        if not 0.0 < self.mixup_fraction <= 1.0:
            raise ValueError(f"mixup_fraction must be in (0, 1] (the mixed share of a batch), "
                             f"got {self.mixup_fraction!r}")

    @property
    def torch_device(self) -> torch.device:
        from .._validation import check_device

        return check_device(self.device or None)


OPTIMIZERS = ("sgd", "adam", "adamw", "keras-adam")
SCHEDULES = ("cosine", "step", "none")


def build_optimizer(params, name: str, *, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                    nesterov: bool = True, betas: tuple[float, float] = (0.9, 0.999),
                    eps: float = 1e-8) -> torch.optim.Optimizer:
    """The one optimizer factory: ``"sgd"`` (``momentum``, ``nesterov``),
    ``"adam"`` (L2 ``weight_decay`` in the gradient, ``betas``, ``eps``) or
    ``"adamw"`` (decoupled ``weight_decay``) or ``"keras-adam"``
    (:class:`topokd.engine.optim.KerasAdam`: Keras' placement of ``eps``;
    ``betas``, ``eps``, no weight decay), over the parameters that require
    gradients."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("there are no trainable parameters (all have requires_grad=False)")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=nesterov and momentum > 0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "keras-adam":
        from .optim import KerasAdam

        if weight_decay:
            raise ValueError("optimizer 'keras-adam' has no weight decay (Keras 2.x Adam); pass weight_decay=0")
        return KerasAdam(params, lr=lr, betas=betas, eps=eps)
    raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")


def schedule_lr(epoch: int, name: str, lr: float, epochs: int) -> float:
    """Learning rate of 0-based ``epoch`` of ``epochs``: ``"cosine"``
    (``lr * (1 + cos(pi * epoch / epochs)) / 2``), ``"step"`` (``lr``, then
    /10 from 50 % and /100 from 75 % of the epochs) or ``"none"``."""
    if name == "cosine":
        return 0.5 * lr * (1.0 + math.cos(math.pi * epoch / epochs))
    if name == "step":
        return lr * (0.1 ** ((epoch >= 0.5 * epochs) + (epoch >= 0.75 * epochs)))
    if name == "none":
        return lr
    raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {name!r}")


def make_optimizer(params, s: TrainSettings) -> torch.optim.Optimizer:
    """:func:`build_optimizer` with a :class:`TrainSettings`' choices."""
    return build_optimizer(params, s.optimizer, lr=s.lr, weight_decay=s.weight_decay, momentum=s.momentum)


def lr_at(epoch: int, s: TrainSettings) -> float:
    """:func:`schedule_lr` with a :class:`TrainSettings`' choices."""
    return schedule_lr(epoch, s.schedule, s.lr, s.epochs)
