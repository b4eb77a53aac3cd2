"""The one training engine of topokd: PI-Net training, teacher and student
training and compression fine-tuning all run :func:`fit` (see
:mod:`topokd.engine.loop`), with one optimizer / schedule factory and one
resume state format."""

from .loop import Checkpoints, MetricsLog, Monitor, TrainResult, batch_len, copy_frozen, fit, tensor_batches, train_mode
from .optim import KerasAdam, keras_adam_update
from .settings import OPTIMIZERS, SCHEDULES, TrainSettings, build_optimizer, lr_at, make_optimizer, schedule_lr

__all__ = [
    "Checkpoints",
    "KerasAdam",
    "MetricsLog",
    "Monitor",
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainResult",
    "TrainSettings",
    "batch_len",
    "build_optimizer",
    "copy_frozen",
    "fit",
    "keras_adam_update",
    "lr_at",
    "make_optimizer",
    "schedule_lr",
    "tensor_batches",
    "train_mode",
]
