"""Data sources that work offline: synthetic generators and local loaders."""

from .synthetic import ACTIVITIES, wearable_windows

__all__ = ["ACTIVITIES", "wearable_windows"]
