"""Training settings shared by every user of the training engine, and the
one optimizer / learning-rate schedule factory."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class TrainSettings:
    """Optimisation settings shared by teachers and students.

    Defaults: SGD (momentum 0.9, Nesterov), lr 0.05, weight decay 5e-4,
    cosine decay, 100 epochs, batch 32 (WRN training recipe scaled to the
    small wearable data sets).
    """

    epochs: int = 100
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: str | None = None
    mixup_alpha: float = 0.0
    mixup_fraction: float = 1.0
    amp: bool = True
    device: str | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer must be sgd, adam or adamw, got {self.optimizer!r}")
        if self.schedule not in ("cosine", "step", "none"):
            raise ValueError(f"schedule must be cosine, step or none, got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {self.epochs}, {self.batch_size}, {self.lr}")
        if not 0.0 < self.mixup_fraction <= 1.0 or self.mixup_alpha < 0:
            raise ValueError("mixup_alpha must be >= 0 and mixup_fraction in (0, 1]")

    @property
    def torch_device(self) -> torch.device:
        if self.device:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(params, s: TrainSettings) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay, nesterov=True)
    if s.optimizer == "adam":
        return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)


def lr_at(epoch: int, s: TrainSettings) -> float:
    if s.schedule == "cosine":
        return 0.5 * s.lr * (1.0 + math.cos(math.pi * epoch / s.epochs))
    if s.schedule == "step":  # /10 at 50 % and 75 %
        return s.lr * (0.1 ** ((epoch >= 0.5 * s.epochs) + (epoch >= 0.75 * s.epochs)))
    return s.lr


