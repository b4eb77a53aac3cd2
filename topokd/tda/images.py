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

import operator
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from .._params import ParamsMixin
from .._validation import check_choice, check_pair, check_positive, check_range, check_resolution
from . import _image_kernels as K

WEIGHTS = ("linear", "linear_max")
LAYOUTS = ("persim", "legacy")
NORMALIZE = (None, "max")


class InvalidParameterError(ValueError, TypeError):
    """A parameter of a topokd transformer has an invalid value.

    Raised by ``fit`` / ``transform`` (never by ``__init__`` or
    ``set_params``, which store values unchecked).  Like scikit-learn's
    error of the same name it is both a ``ValueError`` and a ``TypeError``.
    """


class StatelessParamsMixin(ParamsMixin):
    """:class:`topokd._params.ParamsMixin` for stateless transformers:
    ``fit`` only validates, an estimator never fit transforms as well, and
    values derived from the parameters are cached until one changes.
    """

    def __getstate__(self) -> dict:
        # Derived caches are rebuilt from the parameters on demand.
        return {k: v for k, v in self.__dict__.items() if k != "_cache"}

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless: fit only validates

    def __sklearn_tags__(self):
        # Only scikit-learn (>= 1.6) calls this, so it may import it.
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=[]),
                    input_tags=InputTags(two_d_array=False, three_d_array=True), requires_fit=False)

    def _cached(self, build):
        """``build()``, recomputed only when a parameter changed since the last call
        (by assignment, ``set_params`` or in place, e.g. a list or an array)."""
        values = [getattr(self, k) for k in self._get_param_names()]
        cached = self.__dict__.get("_cache")
        if cached is not None:
            old_values, immutable, key, result = cached
            # Fast path: the very same immutable objects as last time.
            if immutable and all(map(operator.is_, values, old_values)):
                return result
            if _freeze(values) == key:
                return result
        result = build()
        self._cache = (values, all(map(_immutable, values)), _freeze(values), result)
        return result


_SCALARS = frozenset({int, float, str, bool, type(None), np.float64, np.float32, np.int64, np.int32, np.bool_})


def _immutable(value) -> bool:
    """Whether ``value`` cannot change in place (callables count: compared by identity)."""
    t = type(value)
    if t in _SCALARS:
        return True
    if t is tuple:
        return all(map(_immutable, value))
    return callable(value) and not isinstance(value, np.ndarray)


def _freeze(value):
    """A comparable snapshot of a parameter value (arrays by content,
    callables by identity, types kept so that 1, 1.0 and True differ)."""
    t = type(value)
    if t in _SCALARS:
        return t, value
    if t is tuple or t is list:
        return t, *map(_freeze, value)
    if isinstance(value, np.ndarray):
        return "ndarray", value.dtype.str, value.shape, value.tobytes()
    if callable(value):
        return "callable", id(value), value
    return t, value


class ImageSpec(NamedTuple):
    """Resolved, validated parameters of a :class:`PersistenceImage`.

    Pixel edges are in kernel order (birth axis first, legacy images not yet
    transposed or flipped); ``sigma`` is the (birth, persistence) standard
    deviation pair; ``weight`` is ``"linear"``, ``"linear_max"`` or the
    callable.  Arrays are read-only.
    """

    birth_lower: np.ndarray
    birth_upper: np.ndarray
    pers_lower: np.ndarray
    pers_upper: np.ndarray
    sigma: tuple[float, float]
    weight: str | Callable
    normalize: str | None
    layout: str

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one output image (legacy: ``(ny, nx)``)."""
        shape = (len(self.birth_lower), len(self.pers_lower))
        return shape if self.layout == "persim" else shape[::-1]


class _Grid(NamedTuple):
    spec: ImageSpec
    kernel_shape: tuple[int, int]
    b_axis: tuple
    p_axis: tuple


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, np.float64)
    arr.flags.writeable = False
    return arr


def _build_grid(resolution, birth_range, pers_range, sigma, weight, normalize, layout) -> _Grid:
    """Validate the parameters and lay out the pixel grid (raises ValueError / TypeError)."""
    check_choice(layout, "layout", LAYOUTS)
    check_choice(normalize, "normalize", NORMALIZE)
    nb, npers = check_resolution(resolution)
    b0, b1 = check_range(birth_range, "birth_range")
    if layout == "persim":
        if pers_range is None:
            raise ValueError("pers_range is required with layout='persim'; pass pers_range=(low, high)")
        p0, p1 = check_range(pers_range, "pers_range")
        wb, wp = (b1 - b0) / nb, (p1 - p0) / npers
        # Same arithmetic as persim.PersistenceImager._create_mesh.
        be = np.linspace(b0, b1 + wb, nb + 1, endpoint=False, dtype=np.float64)
        pe = np.linspace(p0, p1 + wp, npers + 1, endpoint=False, dtype=np.float64)
        b_lower, b_upper, p_lower, p_upper = be[:nb], be[1:], pe[:npers], pe[1:]
        # Shared grids pass all R + 1 edges as "lower" (see the kernel).
        b_kernel, p_kernel = (be, None), (pe, None)
    else:
        if b0 > 0:
            raise ValueError(
                f"layout='legacy' starts the birth axis at min(minBD, 0) like persim.PersImage; "
                f"got birth_range={birth_range!r}: use birth_range=(0, {b1!r}) or layout='persim'"
            )
        if b1 <= 0:
            raise ValueError(f"layout='legacy' needs maxBD = birth_range[1] > 0, got {b1!r}")
        if pers_range is not None and tuple(map(float, pers_range)) != (0.0, b1):
            raise ValueError(
                f"layout='legacy' always spans persistence (0, maxBD) = (0, {b1!r}); "
                f"leave pers_range=None (got {pers_range!r})"
            )
        wb = wp = b1 / npers
        b_lower = np.linspace(b0, b1, nb)
        b_upper = np.linspace(b0, b1, nb) + wb
        p_lower = np.linspace(0, b1, npers)
        p_upper = np.linspace(0, b1, npers) + wp
        b_kernel, p_kernel = (b_lower, b_upper), (p_lower, p_upper)
    sigmas = (wb, wp) if sigma is None else check_pair(sigma, "sigma", check_positive)
    if weight is None:
        weight = "linear" if layout == "persim" else "linear_max"
    if not callable(weight):
        check_choice(weight, "weight", WEIGHTS)
    spec = ImageSpec(_readonly(b_lower), _readonly(b_upper), _readonly(p_lower), _readonly(p_upper),
                     (float(sigmas[0]), float(sigmas[1])), weight, normalize, layout)
    return _Grid(spec, (nb, npers), K.axis_spec(*b_kernel, spec.sigma[0]), K.axis_spec(*p_kernel, spec.sigma[1]))


class PersistenceImage(StatelessParamsMixin):
    """Diagram -> persistence image transformer (scikit-learn compatible).

    Parameters
    ----------
    resolution : int or (int, int), default 50
        Number of pixels along the birth and persistence axes.
    birth_range, pers_range : (float, float), default (0, 1)
        Extent of the image in birth and in persistence (death - birth).
        With ``layout="legacy"`` ``birth_range`` is ``(minBD, maxBD)`` and
        ``pers_range`` must be ``None`` (it is always ``(0, maxBD)``).
    sigma : float or (float, float) or None, default None
        Standard deviation of the Gaussian along (birth, persistence).
        ``None``: one pixel width (``maxBD/ny`` for legacy, as ``PersImage``).
    weight : "linear", "linear_max", callable or None, default None
        ``"linear"``: ``w = p``; ``"linear_max"``: ``w = p / max(p)`` within
        each diagram (``PersImage``'s weighting); a callable gets
        ``(birth, persistence)`` arrays and returns weights.  ``None``:
        ``"linear"`` (``"linear_max"`` for the legacy layout).
    normalize : None or "max", default None
        ``"max"`` divides each image by its maximum; all-zero images stay zero.
    layout : "persim" or "legacy", default "persim"
        See the module docstring.

    The parameters are stored as given and checked by :meth:`fit` /
    :meth:`transform` (:class:`InvalidParameterError`); changing one (by
    assignment or :meth:`set_params`) takes effect on the next call.
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

    # -- resolved grid ------------------------------------------------------
    def _grid(self, owner: str | None = None) -> _Grid:
        """The validated grid of the current parameters (cached until one changes)."""
        def build():
            try:
                return _build_grid(self.resolution, self.birth_range, self.pers_range, self.sigma,
                                   self.weight, self.normalize, self.layout)
            except (TypeError, ValueError) as exc:
                raise InvalidParameterError(f"{owner or type(self).__name__}: {exc}") from None

        return self._cached(build)

    def spec(self) -> ImageSpec:
        """The resolved parameters as plain numbers and arrays (:class:`ImageSpec`):
        pixel edges, sigma pair, weight, normalize, layout."""
        return self._grid().spec

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one output image (legacy: ``(ny, nx)``)."""
        return self._grid().spec.shape

    @property
    def birth_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) birth edges of the pixels, in kernel (un-flipped) order."""
        spec = self._grid().spec
        return spec.birth_lower.copy(), spec.birth_upper.copy()

    @property
    def pers_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) persistence edges of the pixels, in kernel order."""
        spec = self._grid().spec
        return spec.pers_lower.copy(), spec.pers_upper.copy()

    # -- scikit-learn API ---------------------------------------------------
    def fit(self, X=None, y=None):
        """Validate the parameters (the grid is fixed by them); returns ``self``."""
        self._grid()
        return self

    def transform(self, diagrams):
        """Persistence image(s) of one diagram or a list of diagrams.

        ``diagrams``: a ``(k, 2)`` array of finite (birth, death) pairs ->
        image of :attr:`shape`, or a sequence of such arrays -> ``(n, *shape)``.
        Returns float64.
        """
        grid = self._grid()
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
        out = _images(grid, pairs, counts, None)
        return out[0] if single else out

    def fit_transform(self, diagrams, y=None):
        return self.fit().transform(diagrams)

    def transform_pairs(self, pairs: np.ndarray, counts: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Images of diagrams in the padded layout ``pairs[s, :counts[s]]``.

        ``pairs`` holds (birth, death) and is converted in place to
        (birth, persistence).  The fast path used by the batch pipelines.
        """
        return _images(self._grid(), pairs, counts, out)

    def to_torch(self, device=None):
        """The same transform as a differentiable ``torch.nn.Module``
        (a snapshot of the current parameters)."""
        from .torch_images import TorchPersistenceImage  # torch loads only here

        return TorchPersistenceImage(self, device=device)


def _images(grid: _Grid, pairs: np.ndarray, counts: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """:meth:`PersistenceImage.transform_pairs` for an already resolved grid."""
    spec = grid.spec
    # Rows past counts[s] are unused padding (np.empty: any bits, NaN and inf
    # included); subtracting them is harmless but must not warn.
    with np.errstate(invalid="ignore", over="ignore"):
        pairs[..., 1] -= pairs[..., 0]
    weights = _weights(spec.weight, pairs, counts)
    raw = np.empty((pairs.shape[0], *grid.kernel_shape), np.float64)
    K.persistence_images(pairs, weights, counts, *grid.b_axis, *grid.p_axis, raw)
    # One pass from the kernel's buffer to ``out``: orientation, scaling
    # and dtype cast together (these arrays are hundreds of MB).
    view = raw.transpose(0, 2, 1)[:, ::-1, :] if spec.layout == "legacy" else raw
    if out is None:
        out = np.empty(view.shape, np.float64)
    elif out.shape != view.shape:
        raise ValueError(f"out has shape {out.shape}, expected {view.shape}")
    if spec.normalize == "max":
        # Divide, never multiply by 1/peak: a subnormal peak would overflow.
        peak = raw.max(axis=(1, 2))
        np.divide(view, np.where(peak > 0, peak, 1.0)[:, None, None], out=out)
    else:
        np.copyto(out, view, casting="same_kind")
    return out


def _weights(weight, bp: np.ndarray, counts: np.ndarray) -> np.ndarray:
    valid = np.arange(bp.shape[1])[None, :] < counts[:, None]
    pers = np.where(valid, bp[..., 1], 0.0)
    if weight == "linear":
        return pers
    if weight == "linear_max":
        peak = pers.max(axis=1, keepdims=True) if pers.shape[1] else np.ones((len(pers), 1))
        return pers / np.where(peak > 0, peak, 1.0)
    w = np.asarray(weight(bp[..., 0][valid], bp[..., 1][valid]), dtype=np.float64)
    if w.shape != (int(valid.sum()),) or not np.all(np.isfinite(w)):
        raise ValueError(
            "the weight callable must return one finite weight per point "
            f"(expected shape {(int(valid.sum()),)}, got {w.shape})"
        )
    full = np.zeros(pers.shape)
    full[valid] = w
    return full


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
