"""The one training engine of topokd (PI-Net, teachers, students, compression fine-tuning)."""

from .settings import TrainSettings, lr_at, make_optimizer

__all__ = ["TrainSettings", "lr_at", "make_optimizer"]
