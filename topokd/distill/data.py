"""Data sets for teacher/student training: raw windows, their PIs, labels.

Every split holds the raw windows in topokd's ``(N, T, C)`` layout (models
get ``(B, C, T)`` tensors), the exact persistence images ``(N, C, R, R)`` of
a topokd preset (for PI teachers), and integer labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tda.pipeline import SignalPersistenceImages

DATASETS = ("basic-motions", "synthetic")


@dataclass
class Split:
    signals: np.ndarray  # (N, T, C) float32
    pis: np.ndarray | None  # (N, C, R, R) float32
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "Split":
        return Split(self.signals[index], None if self.pis is None else self.pis[index], self.labels[index])


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    classes: list
    description: str


def load_splits(name: str = "basic-motions", *, val_fraction: float = 0.2, seed: int = 0,
                pi_preset: str | None = None, pi_params: dict | None = None, with_pis: bool = True,
                synthetic_windows: int = 600, synthetic_length: int = 100) -> Splits:
    """Train / validation / test splits of a built-in data set.

    ``basic-motions``: aeon's BasicMotions (40 train, 40 test); validation is
    a stratified ``val_fraction`` of the train split.  ``synthetic``:
    :func:`topokd.data.wearable_windows` (classes differ in cadence, hence in
    the number and depth of minima: in topology), split 60/20/20.
    The PIs use ``pi_preset`` (default ``standard-signal``) and ``pi_params``.
    """
    if name == "basic-motions":
        from ..data import load_basic_motions

        X, y, classes = load_basic_motions("train")
        X_test, y_test, _ = load_basic_motions("test")
        desc = "aeon BasicMotions (smartwatch acc+gyro, 6 ch, T=100): official 40/40 train/test"
    elif name == "synthetic":
        from ..data import ACTIVITIES, wearable_windows

        X_all, y_all = wearable_windows(synthetic_windows, synthetic_length, 3, seed=1000 + seed)
        n_test = len(X_all) // 5
        X, y, X_test, y_test = X_all[n_test:], y_all[n_test:], X_all[:n_test], y_all[:n_test]
        classes = list(ACTIVITIES)
        desc = f"topokd.data.wearable_windows({synthetic_windows}, {synthetic_length}, 3, seed={1000 + seed})"
    else:
        raise ValueError(f"unknown data set {name!r}; built-in: {list(DATASETS)}")
    train_idx, val_idx = stratified_split(y, val_fraction, seed)
    engine = SignalPersistenceImages(pi_preset, **(pi_params or {})) if with_pis else None

    def split(signals, labels):
        pis = engine.transform(signals) if engine is not None else None
        return Split(np.ascontiguousarray(signals, dtype=np.float32), pis, np.asarray(labels, dtype=np.int64))

    train_all = split(X, y)
    return Splits(train_all.subset(train_idx), train_all.subset(val_idx), split(X_test, y_test), list(classes), desc)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) holding out ``fraction`` of every class (at least one
    per class when ``fraction > 0``)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n = int(round(fraction * len(idx)))
        n = min(max(n, 1 if fraction > 0 else 0), len(idx) - 1)
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))
