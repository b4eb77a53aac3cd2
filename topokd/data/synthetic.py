"""Synthetic wearable-sensor windows with known class structure.

Each window mimics a tri-axial accelerometer (in g) sampled at ``fs`` Hz:
a gravity offset per axis, a periodic body-motion component whose cadence,
harmonic content and amplitude depend on the activity, slow drift, and white
sensor noise.  Classes differ in the number and depth of oscillations per
window, i.e. in the H0 diagrams of the channels, which is what makes the data
useful for testing topological features.
"""

from __future__ import annotations

import numpy as np

#: (cadence Hz, amplitude g, harmonic ratio) per activity.
ACTIVITIES = {
    "rest": (0.3, 0.02, 0.0),
    "walk": (1.8, 0.35, 0.4),
    "run": (2.8, 0.9, 0.6),
    "stairs": (1.4, 0.5, 0.9),
}


def wearable_windows(
    n_windows: int = 256,
    length: int = 500,
    channels: int = 3,
    fs: float = 50.0,
    noise: float = 0.03,
    seed: int | None = 0,
):
    """Generate ``(X, y)``: ``X`` float64 ``(n_windows, length, channels)``,
    ``y`` int64 activity labels indexing ``list(ACTIVITIES)``.

    Deterministic for a given ``seed``.  ``noise`` is the standard deviation
    of the white sensor noise in g.
    """
    if n_windows < 1 or length < 2 or channels < 1:
        raise ValueError(
            f"need n_windows >= 1, length >= 2, channels >= 1; got {n_windows}, {length}, {channels}"
        )
    if not fs > 0 or not noise >= 0:
        raise ValueError(f"need fs > 0 and noise >= 0; got fs={fs}, noise={noise}")
    rng = np.random.default_rng(seed)
    names = list(ACTIVITIES)
    y = rng.integers(0, len(names), n_windows)
    t = np.arange(length) / fs
    params = np.array([ACTIVITIES[nm] for nm in names])
    cadence = params[y, 0][:, None, None] * rng.uniform(0.85, 1.15, (n_windows, 1, channels))
    amp = params[y, 1][:, None, None] * rng.uniform(0.6, 1.4, (n_windows, 1, channels))
    harm = params[y, 2][:, None, None]
    phase = rng.uniform(0, 2 * np.pi, (n_windows, 2, channels))
    tt = t[None, :, None]
    motion = amp * (np.sin(2 * np.pi * cadence * tt + phase[:, :1])
                    + harm * np.sin(4 * np.pi * cadence * tt + phase[:, 1:]))
    gravity = rng.normal(0, 0.3, (n_windows, 1, channels))
    gravity[:, :, -1] += 1.0
    drift = rng.normal(0, 0.05, (n_windows, 1, channels)) * tt / max(t[-1], 1e-12)
    X = gravity + motion + drift + rng.normal(0, noise, (n_windows, length, channels))
    return X, y.astype(np.int64)
