"""Persistence images (Adams et al., JMLR 18, 2017) with exact pixel integrals.

A diagram ``{(b_k, d_k)}`` is mapped to birth-persistence coordinates
``(b_k, p_k = d_k - b_k)`` and each point contributes a Gaussian of standard
deviation ``sigma`` integrated exactly over every pixel::

    PI[i, j] = sum_k w(b_k, p_k) * (Phi((bu_i - b_k)/sb) - Phi((bl_i - b_k)/sb))
                                 * (Phi((pu_j - p_k)/sp) - Phi((pl_j - p_k)/sp))

where ``[bl_i, bu_i]`` and ``[pl_j, pu_j]`` are the pixel edges along the
birth and persistence axes.

Two layouts
-----------
``layout="persim"`` (default)
    The grid of ``persim.PersistenceImager``: ``resolution`` equal bins tiling
    ``birth_range`` and ``pers_range``; output indexed ``[birth_bin,
    persistence_bin]``.  Note: ``sigma`` here is a *standard deviation*,
    while persim's ``kernel_params={"sigma": s}`` is a *variance*
    (covariance matrix); ``sigma=0.1`` here equals persim's ``sigma=0.01``.
``layout="legacy"``
    The deprecated ``persim.PersImage`` used by the published PI-Net and
    TDA-KD pipelines, reproduced exactly, quirks included: with
    ``birth_range=(minBD, maxBD)`` and ``resolution=(nx, ny)``, bin width
    ``dx = maxBD / ny`` on both axes, birth bins start at
    ``linspace(minBD, maxBD, nx)`` (so they overlap or leave gaps when
    ``(maxBD - minBD)/(nx - 1) != dx``), persistence bins start at
    ``linspace(0, maxBD, ny)``; the default weight is ``p / max(p)`` over the
    diagram; the output is transposed and flipped, indexed
    ``[ny - 1 - persistence_bin, birth_bin]`` (highest persistence on top).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .._validation import check_choice, check_pair, check_positive, check_range, check_resolution
from . import _image_kernels as K

WEIGHTS = ("linear", "linear_max")
LAYOUTS = ("persim", "legacy")
NORMALIZE = (None, "max")


class PersistenceImage:
    """Diagram -> persistence image transformer (scikit-learn style).

    Parameters
    ----------
    resolution : int or (int, int), default 50
        Number of pixels along the birth and persistence axes.
    birth_range, pers_range : (float, float), default (0, 1)
        Extent of the image in birth and in persistence (death - birth).
        With ``layout="legacy"`` ``birth_range`` is ``(minBD, maxBD)`` and
        ``pers_range`` must be left ``None`` (it is always ``(0, maxBD)``).
    sigma : float or (float, float), optional
        Standard deviation of the Gaussian along (birth, persistence).
        Default: one pixel width (``maxBD/ny`` for legacy, as ``PersImage``).
    weight : "linear", "linear_max" or callable, optional
        ``"linear"``: ``w = p``; ``"linear_max"``: ``w = p / max(p)`` within
        each diagram (``PersImage``'s weighting); a callable gets
        ``(birth, persistence)`` arrays and returns weights.  Default
        ``"linear"`` (``"linear_max"`` for the legacy layout).
    normalize : None or "max", default None
        ``"max"`` divides each image by its maximum; all-zero images stay zero.
    layout : "persim" or "legacy", default "persim"
        See the module docstring.
    """

    def __init__(
        self,
        resolution: int | tuple[int, int] = 50,
        birth_range: tuple[float, float] = (0.0, 1.0),
        pers_range: tuple[float, float] | None = (0.0, 1.0),
        sigma: float | tuple[float, float] | None = None,
        weight: str | Callable | None = None,
        normalize: str | None = None,
        layout: str = "persim",
    ):
        self.resolution = resolution
        self.birth_range = birth_range
        self.pers_range = pers_range
        self.sigma = sigma
        self.weight = weight
        self.normalize = normalize
        self.layout = layout
        self._setup()

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in
                ("resolution", "birth_range", "pers_range", "sigma", "weight", "normalize", "layout")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"PersistenceImage({args})"

    # -- set-up -------------------------------------------------------------
    def _setup(self) -> None:
        check_choice(self.layout, "layout", LAYOUTS)
        check_choice(self.normalize, "normalize", NORMALIZE)
        nb, npers = check_resolution(self.resolution)
        b0, b1 = check_range(self.birth_range, "birth_range")
        if self.layout == "persim":
            if self.pers_range is None:
                raise ValueError("pers_range is required with layout='persim'")
            p0, p1 = check_range(self.pers_range, "pers_range")
            wb, wp = (b1 - b0) / nb, (p1 - p0) / npers
            # Same arithmetic as persim.PersistenceImager._create_mesh.
            be = np.linspace(b0, b1 + wb, nb + 1, endpoint=False, dtype=np.float64)
            pe = np.linspace(p0, p1 + wp, npers + 1, endpoint=False, dtype=np.float64)
            # Shared grids pass all R + 1 edges as "lower" (see the kernel).
            self._b_lower, self._b_upper = be, be[1:].copy()
            self._p_lower, self._p_upper = pe, pe[1:].copy()
            self._shared = True
        else:
            if b0 > 0:
                raise ValueError(
                    f"layout='legacy' starts the birth axis at min(minBD, 0) like persim.PersImage; "
                    f"got birth_range={self.birth_range!r}: use birth_range=(0, {b1!r}) or layout='persim'"
                )
            if b1 <= 0:
                raise ValueError(f"layout='legacy' needs maxBD = birth_range[1] > 0, got {b1!r}")
            if self.pers_range is not None and tuple(map(float, self.pers_range)) != (0.0, b1):
                raise ValueError(
                    f"layout='legacy' always spans persistence (0, maxBD) = (0, {b1!r}); "
                    f"leave pers_range=None (got {self.pers_range!r})"
                )
            wb = wp = b1 / npers
            self._b_lower = np.linspace(b0, b1, nb)
            self._b_upper = np.linspace(b0, b1, nb) + wb
            self._p_lower = np.linspace(0, b1, npers)
            self._p_upper = np.linspace(0, b1, npers) + wp
            self._shared = False
        if self.sigma is None:
            self._sigma = (wb, wp)
        else:
            self._sigma = check_pair(self.sigma, "sigma", check_positive)
        self._b_axis = K.axis_spec(self._b_lower, None if self._shared else self._b_upper, self._sigma[0])
        self._p_axis = K.axis_spec(self._p_lower, None if self._shared else self._p_upper, self._sigma[1])
        weight = self.weight
        if weight is None:
            weight = "linear" if self.layout == "persim" else "linear_max"
        if not callable(weight):
            check_choice(weight, "weight", WEIGHTS)
        self._weight = weight
        self._shape = (nb, npers)

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one output image (legacy: ``(ny, nx)``)."""
        return self._shape if self.layout == "persim" else self._shape[::-1]

    @property
    def birth_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) birth edges of the pixels, in kernel (un-flipped) order."""
        return self._b_lower[: self._shape[0]].copy(), self._b_upper.copy()

    @property
    def pers_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) persistence edges of the pixels, in kernel order."""
        return self._p_lower[: self._shape[1]].copy(), self._p_upper.copy()

    # -- scikit-learn API ---------------------------------------------------
    def fit(self, X=None, y=None):
        """No-op (the grid is fixed by the parameters); returns ``self``."""
        return self

    def transform(self, diagrams):
        """Persistence image(s) of one diagram or a list of diagrams.

        ``diagrams``: a ``(k, 2)`` array of finite (birth, death) pairs ->
        image of :attr:`shape`, or a sequence of such arrays -> ``(n, *shape)``.
        Returns float64.
        """
        single = isinstance(diagrams, np.ndarray) and diagrams.ndim == 2
        if single:
            diagrams = [diagrams]
        elif isinstance(diagrams, np.ndarray) and diagrams.ndim != 3:
            raise ValueError(
                f"diagrams must be a (k, 2) array or a list of them, got an array of shape {diagrams.shape}"
            )
        checked = [_check_diagram(d, i) for i, d in enumerate(diagrams)]
        k = max([len(d) for d in checked] + [1])
        pairs = np.zeros((len(checked), k, 2), np.float64)
        counts = np.zeros(len(checked), np.int64)
        for i, d in enumerate(checked):
            pairs[i, : len(d)] = d
            counts[i] = len(d)
        out = self.transform_pairs(pairs, counts)
        return out[0] if single else out

    def fit_transform(self, diagrams, y=None):
        return self.transform(diagrams)

    def transform_pairs(self, pairs: np.ndarray, counts: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Images of diagrams in the padded layout ``pairs[s, :counts[s]]``.

        ``pairs`` holds (birth, death) and is converted in place to
        (birth, persistence).  The fast path used by the batch pipelines.
        """
        pairs[..., 1] -= pairs[..., 0]
        weights = self._weights(pairs, counts)
        raw = np.empty((pairs.shape[0], *self._shape), np.float64)
        K.persistence_images(pairs, weights, counts, *self._b_axis, *self._p_axis, raw)
        # One pass from the kernel's buffer to ``out``: orientation, scaling
        # and dtype cast together (these arrays are hundreds of MB).
        view = raw.transpose(0, 2, 1)[:, ::-1, :] if self.layout == "legacy" else raw
        if out is None:
            out = np.empty(view.shape, np.float64)
        elif out.shape != view.shape:
            raise ValueError(f"out has shape {out.shape}, expected {view.shape}")
        if self.normalize == "max":
            # Divide, never multiply by 1/peak: a subnormal peak would overflow.
            peak = raw.max(axis=(1, 2))
            np.divide(view, np.where(peak > 0, peak, 1.0)[:, None, None], out=out)
        else:
            np.copyto(out, view, casting="same_kind")
        return out

    def _weights(self, bp: np.ndarray, counts: np.ndarray) -> np.ndarray:
        valid = np.arange(bp.shape[1])[None, :] < counts[:, None]
        pers = np.where(valid, bp[..., 1], 0.0)
        if self._weight == "linear":
            return pers
        if self._weight == "linear_max":
            peak = pers.max(axis=1, keepdims=True) if pers.shape[1] else np.ones((len(pers), 1))
            return pers / np.where(peak > 0, peak, 1.0)
        w = np.asarray(self._weight(bp[..., 0][valid], bp[..., 1][valid]), dtype=np.float64)
        if w.shape != (int(valid.sum()),) or not np.all(np.isfinite(w)):
            raise ValueError(
                "the weight callable must return one finite weight per point "
                f"(expected shape {(int(valid.sum()),)}, got {w.shape})"
            )
        full = np.zeros(pers.shape)
        full[valid] = w
        return full

    def to_torch(self, device=None):
        """The same transform as a differentiable ``torch.nn.Module``."""
        from .torch_images import TorchPersistenceImage

        return TorchPersistenceImage(self, device=device)


def _check_diagram(d, index: int) -> np.ndarray:
    arr = np.asarray(d)
    name = f"diagram {index}"
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        return np.empty((0, 2), np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (k, 2) of (birth, death) pairs, got {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        row = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise ValueError(
            f"{name} has a non-finite pair at row {row} ({arr[row].tolist()}); drop infinite bars "
            "(the default of topokd's diagram functions) or cap them, e.g. keep_essential=True"
        )
    if np.any(arr[:, 1] < arr[:, 0]):
        row = int(np.argmax(arr[:, 1] < arr[:, 0]))
        raise ValueError(f"{name} has death < birth at row {row} ({arr[row].tolist()}); expected sublevel pairs")
    return arr


def stack_diagrams(diagrams: Sequence[np.ndarray]):
    """Pack a list of (k, 2) diagrams into the padded ``(pairs, counts)`` layout."""
    k = max([len(d) for d in diagrams] + [1])
    pairs = np.zeros((len(diagrams), k, 2))
    counts = np.array([len(d) for d in diagrams], np.int64)
    for i, d in enumerate(diagrams):
        pairs[i, : len(d)] = d
    return pairs, counts
