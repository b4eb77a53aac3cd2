"""Sublevel-set persistence diagrams of 1-D signals and image channels.

1-D signals
    H0 of the lower-star filtration of the path graph: vertex ``i`` enters at
    ``x[i]``, edge ``(i, i+1)`` at ``max(x[i], x[i+1])``.  This equals
    ``gudhi.CubicalComplex(top_dimensional_cells=x)`` and the ripser
    "lower star time series" recipe.
Images, ``cubical``
    T-construction (pixels are top cells and enter at their value, lower faces
    at the minimum of their cofaces), the construction of
    ``gudhi.CubicalComplex(top_dimensional_cells=img)``.  Diagonal neighbours
    share a vertex, so H0 is 8-connected.  H1 is computed through Alexander
    duality (holes are the bounded 4-connected components of the
    superlevel complement).
Images, ``flatten``
    The channel flattened to a 1-D signal (row-major as in the PI-Net
    reference; column-major is also offered), then the 1-D H0 above.

By default the one infinite H0 bar is dropped, as in the reference pipelines;
``keep_essential=True`` keeps it with death equal to the maximum value.  Pairs
with ``death - birth <= min_persistence`` are dropped (``min_persistence=0``
drops exactly the zero-persistence pairs, like gudhi's ``min_persistence``).
"""

from __future__ import annotations

import numpy as np

from .._validation import as_float_array, check_choice, check_finite, check_nonnegative
from . import _diagram_kernels as K


def _sorted_pairs(pairs: np.ndarray) -> np.ndarray:
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return np.ascontiguousarray(pairs[order])


def path_pairs(signals: np.ndarray, min_persistence: float = 0.0, keep_essential: bool = False):
    """Batched 1-D H0 on the rows of a C-contiguous float64 (S, T) array.

    Returns ``(pairs, counts)``: pairs ``(S, K, 2)`` in (birth, death), of
    which the first ``counts[s]`` rows of ``pairs[s]`` are valid.
    """
    s, t = signals.shape
    cap = (t + 1) // 2 + 1
    pairs = np.empty((s, cap, 2), np.float64)
    counts = np.empty(s, np.int64)
    K.path_h0_batch(signals, float(min_persistence), bool(keep_essential), pairs, counts)
    return pairs, counts


def grid_pairs(images: np.ndarray, min_persistence: float = 0.0, keep_essential: bool = False):
    """Batched cubical H0 and H1 on a C-contiguous float64 (S, H, W) array.

    Returns ``(h0, h0_counts, h1, h1_counts)`` in the padded layout of
    :func:`path_pairs`.
    """
    s, h, w = images.shape
    cap = (h * w + 1) // 2 + 1
    h0 = np.empty((s, cap, 2), np.float64)
    h1 = np.empty((s, cap, 2), np.float64)
    c0 = np.empty(s, np.int64)
    c1 = np.empty(s, np.int64)
    K.grid_batch(images, float(min_persistence), bool(keep_essential), h0, c0, h1, c1)
    return h0, c0, h1, c1


def sublevel_diagrams(x, *, min_persistence: float = 0.0, keep_essential: bool = False) -> np.ndarray:
    """H0 sublevel-set persistence diagram of a 1-D signal.

    Parameters
    ----------
    x : array-like, shape (T,), T >= 2
        Real values; integers are cast to float64.
    min_persistence : float, default 0
        Keep only pairs with ``death - birth > min_persistence``.
    keep_essential : bool, default False
        Keep the infinite bar as (min(x), max(x)).

    Returns
    -------
    ndarray, shape (k, 2), float64
        Finite (birth, death) pairs sorted by birth then death.
    """
    arr = _signal_1d(x)
    mp = check_nonnegative(min_persistence, "min_persistence")
    pairs, counts = path_pairs(arr[None, :], mp, keep_essential)
    return _sorted_pairs(pairs[0, : counts[0]])


def cubical_diagrams(img, *, min_persistence: float = 0.0, keep_essential: bool = False):
    """H0 and H1 sublevel-set diagrams of a 2-D array (T-construction).

    Matches ``gudhi.CubicalComplex(top_dimensional_cells=img)``: H0 with
    8-connected pixels, H1 by duality.  Returns ``(h0, h1)``, each a
    ``(k, 2)`` float64 array of finite pairs sorted by birth then death.
    """
    arr = as_float_array(img, "img", 2, "(H, W)", "For a multichannel image pass one channel at a time.")
    check_finite(arr, "img", ("row", "column"))
    mp = check_nonnegative(min_persistence, "min_persistence")
    h0, c0, h1, c1 = grid_pairs(np.ascontiguousarray(arr)[None], mp, keep_essential)
    return _sorted_pairs(h0[0, : c0[0]]), _sorted_pairs(h1[0, : c1[0]])


def signal_diagrams(X, *, min_persistence: float = 0.0, keep_essential: bool = False) -> list[list[np.ndarray]]:
    """H0 diagrams of every channel of ``(N, T, C)`` windows, batched.

    Returns ``diagrams[n][c]``, each a ``(k, 2)`` array as from
    :func:`sublevel_diagrams`.  No scaling is applied.
    """
    arr = as_float_array(X, "X", 3, "(N, T, C)", "For a single channel use X[..., None].")
    check_finite(arr, "X", ("sample", "time step", "channel"))
    n, t, c = arr.shape
    if t < 2:
        raise ValueError(f"signals need at least 2 time steps, got T={t}")
    mp = check_nonnegative(min_persistence, "min_persistence")
    rows = np.ascontiguousarray(arr.transpose(0, 2, 1)).reshape(n * c, t)
    pairs, counts = path_pairs(rows, mp, keep_essential)
    flat = [_sorted_pairs(pairs[i, : counts[i]]) for i in range(n * c)]
    return [flat[i * c:(i + 1) * c] for i in range(n)]


def image_diagrams(X, mode: str = "cubical", *, order: str = "row", min_persistence: float = 0.0,
                   keep_essential: bool = False) -> list[list]:
    """Diagrams of every channel of ``(N, C, H, W)`` images, batched.

    ``mode="cubical"``: ``diagrams[n][c] = (h0, h1)``; ``mode="flatten"``:
    ``diagrams[n][c] = h0`` of the channel flattened in ``order``.
    """
    check_choice(mode, "mode", ("flatten", "cubical"))
    check_choice(order, "order", ("row", "column"))
    arr = as_float_array(X, "X", 4, "(N, C, H, W)", "For one image use X[None].")
    check_finite(arr, "X", ("sample", "channel", "row", "column"))
    n, c, h, w = arr.shape
    mp = check_nonnegative(min_persistence, "min_persistence")
    if mode == "flatten":
        if order == "column":
            arr = arr.transpose(0, 1, 3, 2)
        pairs, counts = path_pairs(np.ascontiguousarray(arr).reshape(n * c, h * w), mp, keep_essential)
        flat = [_sorted_pairs(pairs[i, : counts[i]]) for i in range(n * c)]
    else:
        h0, c0, h1, c1 = grid_pairs(np.ascontiguousarray(arr).reshape(n * c, h, w), mp, keep_essential)
        flat = [(_sorted_pairs(h0[i, : c0[i]]), _sorted_pairs(h1[i, : c1[i]])) for i in range(n * c)]
    return [flat[i * c:(i + 1) * c] for i in range(n)]


def flatten_image(img, order: str = "row") -> np.ndarray:
    """Flatten a 2-D channel to the 1-D signal used by ``mode="flatten"``.

    ``order="row"`` (C order, the PI-Net recipe) or ``"column"`` (Fortran order).
    """
    check_choice(order, "order", ("row", "column"))
    arr = np.asarray(img)
    return arr.reshape(-1, order="C" if order == "row" else "F")


def _signal_1d(x) -> np.ndarray:
    arr = as_float_array(x, "x", 1, "(T,)", "For batches use topokd.signal_pis or path_pairs.")
    check_finite(arr, "x", ("sample",))
    if arr.shape[0] < 2:
        raise ValueError(
            f"x has only {arr.shape[0]} sample; a signal needs at least 2 samples to have any topology"
        )
    return np.ascontiguousarray(arr)
