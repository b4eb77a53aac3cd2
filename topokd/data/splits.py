"""Seeded held-out splits: stratified by class, or by group (subject).

Both return sorted index arrays ``(keep, held_out)`` that partition
``range(N)``; ``seed`` is anything :func:`numpy.random.default_rng`
accepts (an int, or a tuple of ints for independent streams).
"""

from __future__ import annotations

import numpy as np


def _check_fraction(fraction: float, name: str, allow_zero: bool = True) -> None:
    if not ((0.0 <= fraction if allow_zero else 0.0 < fraction) and fraction < 1.0):
        raise ValueError(f"{name} must be in {'[0, 1)' if allow_zero else '(0, 1)'}, got {fraction}")


def stratified_split(labels: np.ndarray, fraction: float, seed, *, name: str = "val_fraction"
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)`` holding out ``round(fraction * n_k)`` windows
    of every class ``k`` (at least one per class when ``fraction > 0``, but
    never a class's last window), so each class's share of the held-out part
    is within one window of ``fraction``."""
    _check_fraction(fraction, name)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n = int(round(fraction * len(idx)))
        n = min(max(n, 1 if fraction > 0 else 0), len(idx) - 1)
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def group_split(groups: np.ndarray, fraction: float, seed, *, name: str = "val_fraction"
                ) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)`` holding out whole groups: no group has
    windows on both sides.

    The groups are shuffled (seeded) and the first ``k`` are held out, ``k``
    (between 1 and all groups but one) chosen so the held-out windows are
    as close as possible to ``fraction`` of all.  Needs at least 2 groups.
    """
    _check_fraction(fraction, name, allow_zero=False)
    groups = np.asarray(groups)
    unique, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(unique) < 2:
        raise ValueError(f"a split by group needs at least 2 groups, got {len(unique)} "
                         f"({unique[0]!r} for every window)" if len(unique) else "a split by group needs windows")
    order = np.random.default_rng(seed).permutation(len(unique))
    cumulative = np.cumsum(counts[order])[:-1]                     # held-out sizes for k = 1 .. G-1
    k = int(np.argmin(np.abs(cumulative - fraction * len(groups)))) + 1
    held_out = np.zeros(len(unique), bool)
    held_out[order[:k]] = True
    mask = held_out[inverse.ravel()]
    return np.flatnonzero(~mask), np.flatnonzero(mask)


__all__ = ["group_split", "stratified_split"]
