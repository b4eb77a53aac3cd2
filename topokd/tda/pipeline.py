"""Raw arrays -> persistence images, batched and chunked.

``signal_pis``: ``(N, T, C)`` windows -> ``(N, C, R, R)``.
``image_pis``: ``(N, C, H, W)`` images -> ``(N, C, R, R)`` (flatten) or
``(N, C, 2, R, R)`` (cubical; index 0 is H0, 1 is H1).

Work is done ``chunk_size`` samples at a time, so memory stays bounded and
``out`` may be a memory map that streams to disk.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .._validation import check_choice, check_layout, check_nonnegative
from .diagrams import grid_pairs, path_pairs
from .images import InvalidParameterError, PersistenceImage, StatelessParamsMixin, _Grid, _images
from .presets import IMAGE_KEYS, PARAM_KEYS, PRESET, get_preset, is_preset

SCALES = (None, "standardize", "minmax", "unit")
MODES = ("flatten", "cubical")
ORDERS = ("row", "column")

# Target size of the per-chunk diagram buffers; keeps peak memory ~ a few
# hundred MB whatever N is.
_CHUNK_BYTES = 64 * 2**20


def scale_rows(rows: np.ndarray, scale: str | None) -> np.ndarray:
    """Scale each row of a (S, L) array in place.

    ``"standardize"``: ``(x - mean) / std``; ``"minmax"``: to ``[-1, 1]``;
    ``"unit"``: to ``[0, 1]``.  Constant rows become all zeros, never NaN.
    """
    if scale is None:
        return rows
    if scale == "standardize":
        centre = rows.mean(axis=1, keepdims=True)
        spread = rows.std(axis=1, keepdims=True)
        rows -= centre
        rows /= np.where(spread > 0, spread, 1.0)
        return rows
    lo = rows.min(axis=1, keepdims=True)
    span = rows.max(axis=1, keepdims=True) - lo
    rows -= lo
    rows /= np.where(span > 0, span, 1.0)
    if scale == "minmax":
        rows *= 2.0
        rows -= np.where(span > 0, 1.0, 0.0)
    return rows


#: 8-bit images: their values 0..255 are divided by this to [0, 1]
#: (a division, so the result equals ``X / 255`` bit for bit).
UINT8_MAX = 255.0


def image_value_range(config: dict) -> tuple[float, float] | None:
    """The values images must lie in for ``config`` (resolved preset plus
    overrides): its ``birth_range`` when the input is not rescaled
    (``scale=None``, what the image presets do: they expect [0, 1]);
    ``None`` (anything goes) when ``scale`` rescales each channel."""
    if config.get("scale") is not None:
        return None
    lo, hi = config["birth_range"]
    return float(lo), float(hi)


def _uint8_factor(dtype, value_range, label: str, name: str, stacklevel: int) -> float | None:
    """255 (the divisor, with a ``UserWarning``) for uint8 images whose 0..255 do not
    fit ``value_range``; ``None`` otherwise."""
    if value_range is None or np.dtype(dtype) != np.uint8 or value_range[1] >= 255:
        return None
    import warnings

    warnings.warn(f"{name} is uint8: its values 0..255 were scaled by 1/255 to [0, 1] for the value range "
                  f"[{value_range[0]:g}, {value_range[1]:g}] of {label}; pass float images in that range to "
                  "skip this", UserWarning, stacklevel=stacklevel + 1)
    return UINT8_MAX


def _check_image_values(block: np.ndarray, value_range, label: str, name: str) -> None:
    """Refuse values outside ``value_range``: they would silently fall off
    the persistence image (all-zero PIs for 0..255 data and a [0, 1] preset)."""
    if value_range is None or block.size == 0:
        return
    lo, hi = value_range
    tol = 1e-9 * (hi - lo)
    mn, mx = float(block.min()), float(block.max())
    if mn >= lo - tol and mx <= hi + tol:
        return
    hint = " (8-bit data: divide by 255)" if mx > 1.5 and hi <= 1.0 else ""
    raise ValueError(
        f"{name} has values in [{mn:.6g}, {mx:.6g}], outside [{lo:g}, {hi:g}], the image value range of "
        f"{label}; values outside it fall off the persistence images. Scale the images into "
        f"[{lo:g}, {hi:g}] first{hint}, or rescale each channel with scale='unit' (CLI: --scale unit), or "
        "set a birth_range (--birth-range) that covers the data"
    )


def check_image_values(X, config: dict, *, preset: str | None = None, name: str = "X", stacklevel: int = 2):
    """Whole image arrays for ``config``: uint8 scaled by 1/255 (with a
    ``UserWarning``) when the value range is [0, 1]-like, then values
    outside :func:`image_value_range` refused (``ValueError`` naming the
    range found and what to do).  Returns ``X`` as float64 when scaled,
    else unchanged."""
    value_range = image_value_range(config)
    label = _preset_label(preset)
    factor = _uint8_factor(X.dtype, value_range, label, name, stacklevel + 1)
    if factor is not None:
        X = np.asarray(X, dtype=np.float64) / factor
    if value_range is not None and X.size and np.isfinite(X).all():
        _check_image_values(np.asarray(X), value_range, label, name)
    return X


def _preset_label(preset: str | None) -> str:
    return f"preset {preset or 'standard-image'!r}"


class _Resolved(NamedTuple):
    config: dict
    grid: _Grid


class _PersistenceImagesBase(StatelessParamsMixin):
    kind = ""

    def _resolve(self) -> _Resolved:
        """Preset plus overrides, validated (cached until a parameter changes)."""
        return self._cached(self._build)

    def _build(self) -> _Resolved:
        owner = type(self).__name__
        overrides = {k: getattr(self, k) for k in self._get_param_names()
                     if k in PARAM_KEYS and not is_preset(getattr(self, k))}
        try:
            if "mode" in self._get_param_names():
                check_choice(self.mode, "mode", MODES)
            config = get_preset(self.preset, self.kind).resolve(overrides)
            check_choice(config["scale"], "scale", SCALES)
            check_choice(config["order"], "order", ORDERS)
            config["min_persistence"] = check_nonnegative(config["min_persistence"], "min_persistence")
            if not isinstance(config["keep_essential"], (bool, np.bool_)):
                raise TypeError(f"keep_essential must be True or False, got {config['keep_essential']!r}")
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"{owner}: {exc}") from None
        grid = PersistenceImage(**{k: config[k] for k in IMAGE_KEYS})._grid(owner=owner)
        return _Resolved(config, grid)

    def fit(self, X=None, y=None):
        """Validate the parameters; returns ``self`` (nothing is learnt from ``X``)."""
        self._resolve()
        return self

    def fit_transform(self, X, y=None, **kwargs):
        return self.fit().transform(X, **kwargs)

    @property
    def config_(self) -> dict:
        """The resolved parameters (preset plus overrides), a fresh dict."""
        return dict(self._resolve().config)

    @property
    def imager_(self) -> PersistenceImage:
        """A :class:`~topokd.PersistenceImage` with the resolved image parameters."""
        config = self._resolve().config
        return PersistenceImage(**{k: config[k] for k in IMAGE_KEYS})

    @property
    def image_shape(self) -> tuple[int, int]:
        """Shape of one persistence image (from the current parameters)."""
        return self._resolve().grid.spec.shape

    def _chunks(self, n: int, per_sample_bytes: int, chunk_size: int | None):
        """Sample ranges of ``chunk_size`` (default: ~``_CHUNK_BYTES`` of
        per-chunk buffers, estimated from ``per_sample_bytes``)."""
        if chunk_size is None:
            chunk_size = max(1, _CHUNK_BYTES // max(per_sample_bytes, 1))
        elif int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        step = int(chunk_size)
        return [(i, min(i + step, n)) for i in range(0, n, step)]


def _image_bytes(res: _Resolved) -> int:
    """float64 working buffer of one image (the kernel's output)."""
    return int(np.prod(res.grid.spec.shape)) * 8


def _diagram_options(res: _Resolved):
    return res.config["min_persistence"], res.config["keep_essential"]


def _path_images(res: _Resolved, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    rows = scale_rows(rows, res.config["scale"])
    pairs, counts = path_pairs(rows, *_diagram_options(res))
    return _images(res.grid, pairs, counts, out)


def _prepare_out(out, shape, dtype):
    if out is None:
        return np.empty(shape, dtype)
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(shape)}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous array (e.g. np.empty or np.lib.format.open_memmap)")
    return out


class SignalPersistenceImages(_PersistenceImagesBase):
    """Per-channel H0 persistence images of multichannel signal windows.

    ``SignalPersistenceImages(preset, **overrides).transform(X)`` with ``X``
    of shape ``(N, T, C)`` returns ``(N, C, *image_shape)`` (float32 by
    default).  Each (window, channel) is scaled (``scale``), its sublevel H0
    diagram computed, and the diagram imaged by a
    :class:`~topokd.PersistenceImage`.

    Parameters
    ----------
    preset : str or None, default None
        Parameter set (:func:`topokd.list_presets`); ``None``:
        ``"standard-signal"``.
    resolution, birth_range, pers_range, sigma, weight, normalize, layout
        The :class:`~topokd.PersistenceImage` parameters (``sigma`` is a
        standard deviation, not persim's variance).
    min_persistence : float >= 0
        Keep only pairs with ``death - birth > min_persistence``.
    keep_essential : bool
        Keep the infinite H0 bar as ``(min, max)`` of the scaled row.
    scale : None, "standardize", "minmax" or "unit"
        Per-(window, channel) scaling of the input (:func:`scale_rows`).

    Every parameter after ``preset`` is keyword-only and defaults to
    :data:`~topokd.tda.presets.PRESET` (the string ``"preset"``): take the
    preset's value.  Any other value overrides the preset, ``None``
    included (``normalize=None``, ``scale=None``, ``sigma=None`` mean what
    they mean for :class:`~topokd.PersistenceImage` / :func:`scale_rows`).

    scikit-learn's estimator contract: parameters are stored as given,
    ``get_params`` / ``set_params`` / ``sklearn.base.clone`` work, and
    ``fit`` / ``transform`` validate them (raising
    :class:`~topokd.tda.images.InvalidParameterError`, a ``ValueError``).
    A changed parameter takes effect on the next call.  ``fit`` learns
    nothing, so an estimator that was never fit transforms as well.

    Attributes
    ----------
    config_ : dict
        The resolved parameters (preset plus overrides), computed from the
        current parameters on access.  It also holds ``order`` (the
        preset's; it has no effect on signals).
    image_shape : (int, int)
        Shape of one image.
    """

    kind = "signal"

    def output_shape(self, X) -> tuple[int, ...]:
        """The shape of ``transform(X)``, ``(N, C, *image_shape)``, after the
        checks of ``X``'s layout that need no data (dtype, dimensions, empty
        axes, ``T >= 2``); raises the ``TypeError`` / ``ValueError`` that
        :meth:`transform` would."""
        arr = _array_like(X)
        hint = "For a single channel use X[..., None]; for one window use X[None]." if arr.ndim == 2 else ""
        check_layout(arr, "X", 3, "(N, T, C)", hint)
        n, t, c = arr.shape
        if t < 2:
            raise ValueError(
                f"signals need at least 2 time steps, got T={t} (X has shape {arr.shape}); "
                "check that X is laid out (N, T, C)"
            )
        return (int(n), int(c), *self.image_shape)

    def __init__(self, preset: str | None = None, *, resolution=PRESET, birth_range=PRESET, pers_range=PRESET,
                 sigma=PRESET, weight=PRESET, normalize=PRESET, layout=PRESET, min_persistence=PRESET,
                 keep_essential=PRESET, scale=PRESET):
        self.preset = preset
        self.resolution = resolution
        self.birth_range = birth_range
        self.pers_range = pers_range
        self.sigma = sigma
        self.weight = weight
        self.normalize = normalize
        self.layout = layout
        self.min_persistence = min_persistence
        self.keep_essential = keep_essential
        self.scale = scale

    def transform(self, X, *, out=None, chunk_size: int | None = None, dtype=np.float32, progress: bool = False,
                  on_chunk: Callable[[int], None] | None = None, index_offset: int = 0):
        """PIs of ``X`` ``(N, T, C)`` -> ``(N, C, *image_shape)`` of ``dtype``.

        ``out``: a C-contiguous array (or memory map) to write into;
        ``chunk_size``: samples per chunk (default: ~64 MB of buffers);
        ``progress``: show a progress bar (samples);
        ``on_chunk``: called with the number of samples done per chunk;
        ``index_offset``: added to the sample index in error messages.

        A dask array ``X`` gives a lazy dask array of the same PIs (bit for
        bit), computed chunk by chunk by this numba engine on dask's
        scheduler (the workers of an active ``dask.distributed.Client``);
        ``chunk_size`` then sets its sample chunks (default: ``X``'s), and
        ``out``, ``progress`` and ``on_chunk`` are refused.  Shapes are
        checked at once, the values (non-finite entries) at compute time,
        with the same error.  See :mod:`topokd.tda.distributed`.
        """
        res = self._resolve()
        arr = _array_like(X)
        self.output_shape(arr)
        n, t, c = arr.shape
        if _is_dask(arr):
            from .distributed import dask_pis

            return dask_pis(self, arr, (c, *res.grid.spec.shape), out=out, chunk_size=chunk_size, dtype=dtype,
                            progress=progress, on_chunk=on_chunk, index_offset=index_offset)
        result = _prepare_out(out, (n, c, *res.grid.spec.shape), dtype)
        per_sample = c * (((t + 1) // 2 + 1) * 16 * 2 + t * 8 + _image_bytes(res))
        report = _reporter(progress, on_chunk, n)
        for lo, hi in self._chunks(n, per_sample, chunk_size):
            block = np.asarray(arr[lo:hi], dtype=np.float64)
            _check_block(block, lo + index_offset, ("sample", "time step", "channel"))
            rows = _private(block.transpose(0, 2, 1), (hi - lo) * c, t)
            _path_images(res, rows, _flat_view(result, lo, hi, (hi - lo) * c))
            report(hi - lo)
        report(None)
        return result


class ImagePersistenceImages(_PersistenceImagesBase):
    """Per-channel persistence images of image batches ``(N, C, H, W)``.

    Parameters
    ----------
    mode : "flatten" or "cubical", default "flatten"
        ``"flatten"``: H0 of each channel flattened (``order``) ->
        ``(N, C, *image_shape)``.  ``"cubical"``: H0 and H1 of the pixel
        grid (T-construction) -> ``(N, C, 2, *image_shape)``.
    preset : str or None, default None
        Parameter set (:func:`topokd.list_presets`); ``None``:
        ``"standard-image"``.
    resolution, birth_range, pers_range, sigma, weight, normalize, layout
        The :class:`~topokd.PersistenceImage` parameters.
    min_persistence, keep_essential, scale
        As for :class:`SignalPersistenceImages` (``scale`` per (image,
        channel)).
    order : "row" or "column"
        Flattening order of the ``"flatten"`` mode.

    Every parameter after ``preset`` is keyword-only and defaults to
    :data:`~topokd.tda.presets.PRESET` (``"preset"``): take the preset's
    value; any other value, ``None`` included, overrides it.  Same
    scikit-learn contract and attributes (``config_``, ``image_shape``) as
    :class:`SignalPersistenceImages`.
    """

    kind = "image"

    def output_shape(self, X) -> tuple[int, ...]:
        """The shape of ``transform(X)``: ``(N, C, *image_shape)`` (flatten)
        or ``(N, C, 2, *image_shape)`` (cubical), after the checks of
        ``X``'s layout that need no data (as in :meth:`transform`)."""
        self._resolve()
        arr = _array_like(X)
        hint = "For one image use X[None]; for one channel X[:, None]; channel-last data: X.transpose(0, 3, 1, 2)."
        check_layout(arr, "X", 4, "(N, C, H, W)", hint)
        n, c, h, w = arr.shape
        if h * w < 2:
            raise ValueError(f"images need at least 2 pixels, got H={h}, W={w}")
        extra = (2,) if self.mode == "cubical" else ()
        return (int(n), int(c), *extra, *self.image_shape)

    def __init__(self, mode: str = "flatten", preset: str | None = None, *, resolution=PRESET,
                 birth_range=PRESET, pers_range=PRESET, sigma=PRESET, weight=PRESET, normalize=PRESET,
                 layout=PRESET, min_persistence=PRESET, keep_essential=PRESET, scale=PRESET, order=PRESET):
        self.mode = mode
        self.preset = preset
        self.resolution = resolution
        self.birth_range = birth_range
        self.pers_range = pers_range
        self.sigma = sigma
        self.weight = weight
        self.normalize = normalize
        self.layout = layout
        self.min_persistence = min_persistence
        self.keep_essential = keep_essential
        self.scale = scale
        self.order = order

    def transform(self, X, *, out=None, chunk_size: int | None = None, dtype=np.float32, progress: bool = False,
                  on_chunk: Callable[[int], None] | None = None, index_offset: int = 0):
        """PIs of ``X`` ``(N, C, H, W)`` -> ``(N, C, *image_shape)`` (flatten)
        or ``(N, C, 2, *image_shape)`` (cubical).  Same keywords as
        :meth:`SignalPersistenceImages.transform`.

        Without ``scale`` the image values must lie in ``birth_range``
        ([0, 1] for the image presets): uint8 images are scaled by 1/255
        with a ``UserWarning``, other values outside it are refused with a
        ``ValueError`` (they would give all-zero PIs).  With ``scale`` each
        channel is rescaled first and any values are accepted.

        Dask arrays as for :meth:`SignalPersistenceImages.transform`: a lazy
        dask array back (the uint8 warning is given at once, the value
        checks happen at compute time)."""
        res = self._resolve()
        arr = _array_like(X)
        self.output_shape(arr)
        n, c, h, w = arr.shape
        cubical = self.mode == "cubical"
        extra = (2,) if cubical else ()
        if _is_dask(arr):
            from .distributed import dask_pis

            factor = _uint8_factor(arr.dtype, image_value_range(res.config), _preset_label(self.preset), "X",
                                   stacklevel=2)
            return dask_pis(self, arr, (c, *extra, *res.grid.spec.shape), out=out, chunk_size=chunk_size,
                            dtype=dtype, progress=progress, on_chunk=on_chunk, index_offset=index_offset,
                            factor=factor)
        result = _prepare_out(out, (n, c, *extra, *res.grid.spec.shape), dtype)
        per_sample = c * (((h * w + 1) // 2 + 1) * 16 * (4 if cubical else 2) + h * w * 8
                          + _image_bytes(res) * (2 if cubical else 1))
        value_range = image_value_range(res.config)
        label = _preset_label(self.preset)
        factor = _uint8_factor(arr.dtype, value_range, label, "X", stacklevel=2)
        report = _reporter(progress, on_chunk, n)
        for lo, hi in self._chunks(n, per_sample, chunk_size):
            block = np.asarray(arr[lo:hi], dtype=np.float64)
            _check_block(block, lo + index_offset, ("sample", "channel", "row", "column"))
            if factor is not None:
                block = block / factor  # a new array: never scale the caller's data in place
            _check_image_values(block, value_range, label, "X")
            m = (hi - lo) * c
            if cubical:
                grids = scale_rows(_private(block, m, h * w), res.config["scale"]).reshape(m, h, w)
                h0, c0, h1, c1 = grid_pairs(grids, *_diagram_options(res))
                _images(res.grid, h0, c0, _flat_view(result, lo, hi, m, dim=0))
                _images(res.grid, h1, c1, _flat_view(result, lo, hi, m, dim=1))
            else:
                if res.config["order"] == "column":
                    block = block.transpose(0, 1, 3, 2)
                _path_images(res, _private(block, m, h * w), _flat_view(result, lo, hi, m))
            report(hi - lo)
        report(None)
        return result


def _reporter(progress, on_chunk, total: int) -> Callable[[int | None], None]:
    """``report(done)`` after each chunk, ``report(None)`` at the end: feeds
    ``on_chunk`` and, with ``progress=True``, a tqdm bar on stderr."""
    if callable(progress):  # before 0.2 ``progress`` was the per-chunk callback
        import warnings

        warnings.warn("transform(progress=callable) is renamed on_chunk=callable; progress=True shows a bar",
                      DeprecationWarning, stacklevel=3)
        progress, on_chunk = False, progress
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="sample", desc="persistence images")

    def report(done: int | None) -> None:
        if done is None:
            if bar is not None:
                bar.close()
            return
        if on_chunk is not None:
            on_chunk(done)
        if bar is not None:
            bar.update(done)

    return report


def _private(block: np.ndarray, *shape: int) -> np.ndarray:
    """``block`` as a C-contiguous float64 array of ``shape`` that we own:
    scaling works in place and must never touch the caller's data (or a
    read-only memory map)."""
    rows = np.ascontiguousarray(block, dtype=np.float64)
    if np.shares_memory(rows, block) or not rows.flags.writeable:
        rows = rows.copy()
    return rows.reshape(shape)


def _is_dask(X) -> bool:
    """Whether ``X`` is a dask array, without importing dask (no dask array
    can exist unless ``dask.array`` was imported)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(X, module.Array)


def _array_like(X):
    """Arrays, memory maps and chunked readers pass through unread; the rest
    goes through ``np.asarray``."""
    if all(hasattr(X, a) for a in ("shape", "dtype", "ndim", "size", "__getitem__")):
        return X
    return np.asarray(X)


def _flat_view(result: np.ndarray, lo: int, hi: int, m: int, dim: int | None = None) -> np.ndarray:
    """``result[lo:hi]`` (its homology dimension ``dim`` for cubical output)
    seen as ``(m, *image_shape)`` without a copy, so kernels write in place."""
    block = result[lo:hi] if dim is None else result[lo:hi, :, dim]
    view = block.reshape(m, *block.shape[-2:])
    if not np.shares_memory(view, block):  # pragma: no cover - reshape had to copy
        raise ValueError("out must be C-contiguous")
    return view


def _check_block(block: np.ndarray, offset: int, axes) -> None:
    if not np.isfinite(block).all():
        bad = np.argwhere(~np.isfinite(block))[0]
        bad[0] += offset
        where = ", ".join(f"{a} {int(i)}" for a, i in zip(axes, bad))
        raise ValueError(
            f"X contains a non-finite value (NaN or inf) at {where}; impute or drop "
            "that sample before computing persistence"
        )


_RUN_KEYS = ("out", "chunk_size", "dtype", "progress", "on_chunk", "index_offset")


def _split_params(cls, params: dict) -> dict:
    """Pop the run keywords out of ``params``; refuse unknown parameter names."""
    run = {k: params.pop(k) for k in _RUN_KEYS if k in params}
    valid = [k for k in cls._get_param_names() if k in PARAM_KEYS]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise InvalidParameterError(f"unknown parameter(s) {unknown}; valid ones are {valid}")
    return run


def signal_pis(X, preset: str | None = None, **params) -> np.ndarray:
    """Persistence images of signal windows: ``(N, T, C)`` -> ``(N, C, R, R)`` float32.

    ``preset`` names a parameter set (default ``"standard-signal"``);
    ``params`` override it: ``resolution``, ``birth_range``, ``pers_range``,
    ``sigma`` (a standard deviation), ``weight``, ``normalize``, ``layout``,
    ``min_persistence``, ``keep_essential``, ``scale``.  Also accepted:
    ``out``, ``chunk_size``, ``dtype``, ``progress``, ``on_chunk``, ``index_offset`` (see
    :meth:`SignalPersistenceImages.transform`).

    A dask array ``X`` returns a lazy dask array of the same images, computed
    chunk by chunk on dask's scheduler; its values are validated when it is
    computed (same errors).
    """
    run = _split_params(SignalPersistenceImages, params)
    return SignalPersistenceImages(preset, **params).transform(X, **run)


def image_pis(X, mode: str = "flatten", preset: str | None = None, **params) -> np.ndarray:
    """Persistence images of image channels: ``(N, C, H, W)`` -> ``(N, C, R, R)``
    (``mode="flatten"``) or ``(N, C, 2, R, R)`` (``mode="cubical"``: H0, H1).

    Same ``params`` as :func:`signal_pis`, plus ``order`` ("row" or "column")
    for the flatten mode.  Default preset ``"standard-image"``.  Images are
    expected in the preset's value range ([0, 1]): uint8 images are scaled
    by 1/255 with a ``UserWarning``, other values outside it are refused
    (see :meth:`ImagePersistenceImages.transform`).  Dask arrays as for
    :func:`signal_pis` (lazy result, values validated at compute time).
    """
    run = _split_params(ImagePersistenceImages, params)
    return ImagePersistenceImages(mode, preset, **params).transform(X, **run)
