"""Training batches whose targets are computed on the fly: windows drawn
from the training split, augmented, and labelled with the exact PIs of the
augmented window by topokd's engine.

The exact engine computes PIs thousands of times faster than a PI-Net
trains, so a surrogate never needs to see the same (window, PI) pair twice:
each epoch draws ``samples_per_epoch`` windows (a fresh seeded permutation
of the training windows, repeated as needed), applies a label-free
augmentation (:mod:`topokd.distill.augment`, e.g. ``"surrogate"``) and
computes the targets of exactly those windows
(:class:`topokd.distill.trainer.OnlinePIs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..engine.loop import draw_order, epoch_batches  # noqa: F401  (draw_order: re-exported)


class AugmentedTargets:
    """``batches(generator)`` for :func:`topokd.engine.fit`: ``(inputs, targets)``
    pairs of augmented windows and their exact PIs.

    ``windows``: float32 ``(N, C, T)`` tensor (channel-major, as the
    augmentations take it); ``augment``: a callable ``augment(x,
    generator=...)``; ``pis``: an :class:`~topokd.distill.trainer.OnlinePIs`
    of the estimator's preset; ``network_input``: the module's input scaling
    and layout; ``target_scale``: targets are divided by it (the estimator's
    training units).  ``samples_per_epoch`` windows per epoch (default
    ``N``); batches smaller than ``min_batch`` are skipped.
    """

    def __init__(self, windows: torch.Tensor, augment: Callable, pis, *, batch_size: int,
                 network_input: Callable[[torch.Tensor], torch.Tensor], target_scale: float = 1.0,
                 samples_per_epoch: int | None = None, device=None, min_batch: int = 2):
        self.windows, self.augment, self.pis = windows, augment, pis
        self.batch_size, self.network_input = int(batch_size), network_input
        self.target_scale = float(target_scale)
        self.samples_per_epoch = int(samples_per_epoch) if samples_per_epoch else len(windows)
        self.device, self.min_batch = device, int(min_batch)

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented windows ``(B, C, T)`` of ``index`` and their exact PIs ``(B, C, R, R)``."""
        signal = self.augment(self.windows[index], generator=generator).to(torch.float32)
        return signal, self.pis(signal)

    def __call__(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in epoch_batches(len(self.windows), self.samples_per_epoch, self.batch_size, generator,
                                   self.min_batch):
            signal, targets = self.batch(index, generator)
            targets = targets / np.float32(self.target_scale) if self.target_scale != 1.0 else targets
            yield self.network_input(signal).to(self.device), targets.to(self.device)


__all__ = ["AugmentedTargets", "draw_order", "epoch_batches"]
