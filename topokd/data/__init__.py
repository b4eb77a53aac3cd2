"""Data sources that work offline: synthetic generators and local loaders."""

from .loaders import BASIC_MOTIONS_CLASSES, load_basic_motions, load_cifar10_batches, sliding_windows
from .synthetic import ACTIVITIES, wearable_windows

__all__ = [
    "ACTIVITIES",
    "BASIC_MOTIONS_CLASSES",
    "load_basic_motions",
    "load_cifar10_batches",
    "sliding_windows",
    "wearable_windows",
]
