"""Persistence images on Dask, and a resumable chunked Zarr store of them.

Dask arrays
    :func:`topokd.signal_pis` / :func:`topokd.image_pis` and the
    ``transform`` of :class:`~topokd.SignalPersistenceImages` /
    :class:`~topokd.ImagePersistenceImages` accept a ``dask.array.Array`` and
    return one (:func:`dask_pis`): ``map_blocks`` over the sample axis (the
    other axes are rechunked to one chunk), each block computed by the same
    numba engine as a NumPy array, so the result equals the NumPy path bit
    for bit.  ``compute()`` runs on dask's default scheduler: the workers of
    an active ``dask.distributed.Client``, else dask's threads.

Zarr
    :func:`write_pis_zarr` writes the PIs of a NumPy or dask array into a
    chunked Zarr store (array ``pis``) with the resolved parameters, the
    input's shape, dtype and SHA-256 and a format version in its attributes.
    Each chunk is recorded in the array ``chunk_crc32`` (the CRC-32 of the
    chunk's values) only after it is written, so a job that stopped (kill,
    crash, Ctrl-C) resumes: recorded chunks whose CRC still matches are kept,
    the rest are computed.  :func:`open_pis_zarr` reads a complete store.

Nothing here is imported for NumPy input: dask and zarr (the
``distributed`` extra, ``pip install 'topokd[distributed]'``) load only
when a dask array or a Zarr store is used.  Zarr 2.18+ and 3.x both work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: ``attrs["format"]`` of a topokd PI store.
ZARR_FORMAT = "topokd-pis"
#: Bumped when the layout of the store changes; other versions are refused.
ZARR_FORMAT_VERSION = 1
#: Fill value of ``chunk_crc32``: the chunk is not (yet) written.
MISSING = -1

_EXTRA = "pip install 'topokd[distributed]'"


def _import(name: str):
    try:
        import importlib

        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"{name} is needed for this ({err}); install the 'distributed' extra: {_EXTRA}") from None


# --------------------------------------------------------------------------- dask arrays


def _pis_block(block, cls, params, dtype, factor, starts, index_offset, block_id=None):
    """PIs of one sample block, by the NumPy path (runs on a dask worker)."""
    lo = starts[block_id[0]] if block_id is not None else 0
    block = np.asarray(block)
    if factor is not None:  # uint8 images: the division the NumPy path does, bit for bit
        block = np.asarray(block, dtype=np.float64) / factor
    return cls(**params).transform(block, dtype=dtype, index_offset=lo + index_offset)


def _sample_chunks(X, chunk_size: int | None):
    """``X`` rechunked to ``chunk_size`` samples (default: its own) and one chunk on the other axes."""
    if any(np.isnan(n) for c in X.chunks for n in c):
        raise ValueError("X (a dask array) has unknown chunk sizes; call X.compute_chunk_sizes() first")
    spec = {i: -1 for i in range(1, X.ndim)}
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        spec[0] = int(chunk_size)
    return X.rechunk(spec)


def dask_pis(transformer, X, tail: tuple[int, ...], *, out=None, chunk_size: int | None = None, dtype=np.float32,
             progress=False, on_chunk=None, index_offset: int = 0, factor: float | None = None):
    """The lazy PIs of a dask array ``X`` (called by ``transform``; ``tail``
    is the output shape after the sample axis).  ``chunk_size``: samples per
    dask chunk (default: ``X``'s chunks along axis 0); ``factor``: the uint8
    divisor of images (already warned about).  ``out``, ``progress`` and
    ``on_chunk`` are refused: nothing is computed here."""
    if out is not None:
        raise ValueError("out= does not apply to a dask array X (the result is a lazy dask array); store it with "
                         "dask.array.store / .to_zarr, or use topokd.tda.write_pis_zarr")
    if progress or on_chunk is not None:
        raise ValueError("progress / on_chunk do not apply to a dask array X (nothing is computed until "
                         ".compute()); use dask.diagnostics.ProgressBar or the dashboard of a distributed Client")
    dtype = np.dtype(dtype)
    X = _sample_chunks(X, chunk_size)
    starts = tuple(int(s) for s in np.cumsum((0, *X.chunks[0][:-1])))
    cls = type(transformer)
    params = transformer.get_params()
    new_axis = list(range(X.ndim, 1 + len(tail))) or None
    from dask.base import tokenize

    # The key prefix must name this computation: with one fixed name, two PI arrays of the same
    # chunk grid share task keys, and a distributed scheduler that still holds the first one's
    # results hands them out for the second (seen: 28 samples of another array for 30).
    name = f"topokd-pis-{tokenize(X, cls.__name__, params, dtype.str, factor, int(index_offset), tail)}"
    return X.map_blocks(_pis_block, cls, params, dtype, factor, starts, int(index_offset),
                        chunks=(X.chunks[0], *((n,) for n in tail)), new_axis=new_axis, dtype=dtype,
                        meta=np.empty((0,) * (1 + len(tail)), dtype=dtype), name=name)


# --------------------------------------------------------------------------- Zarr store


class ZarrWrite(NamedTuple):
    """What :func:`write_pis_zarr` did."""

    path: Path
    n_chunks: int
    computed: int  # chunks computed and written by this call
    kept: int  # chunks found written and verified (not recomputed)
    shape: tuple


def _jsonable(value):
    """``value`` as plain JSON (tuples -> lists, numpy scalars -> Python)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else repr(v)))


def _transformer(kind: str, mode: str, preset, params: dict):
    from .pipeline import ImagePersistenceImages, SignalPersistenceImages

    if kind == "signal":
        if mode != "flatten":
            raise ValueError(f"mode={mode!r} applies to images only (kind='image')")
        return SignalPersistenceImages(preset, **params).fit()
    if kind == "image":
        return ImagePersistenceImages(mode, preset, **params).fit()
    raise ValueError(f"kind must be 'signal' or 'image', got {kind!r}")


def _digest(block) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(block).tobytes()).digest()


def input_sha256(X, chunk_size: int) -> str:
    """The fingerprint of an input array stored with a PI store: SHA-256
    over its dtype, shape and the SHA-256 of each ``chunk_size``-sample
    block's C-order bytes.  The same for a NumPy array, a row reader and a
    dask array of the same values (whatever its chunks); a dask array's
    blocks are hashed on dask's scheduler."""
    n = int(X.shape[0])
    head = json.dumps([np.dtype(X.dtype).str, [int(s) for s in X.shape], int(chunk_size)]).encode()
    if _is_dask(X):
        dask = _import("dask")
        blocks = _sample_chunks(X, chunk_size).to_delayed().ravel()
        digests = dask.compute(*[dask.delayed(_digest)(b) for b in blocks])
    else:
        digests = [_digest(X[lo:min(lo + chunk_size, n)]) for lo in range(0, n, chunk_size)]
    return hashlib.sha256(head + b"".join(digests)).hexdigest()


def _is_dask(X) -> bool:
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(X, module.Array)


def _crc(values: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(values).tobytes())


def _open_group(path, mode: str):
    zarr = _import("zarr")
    return zarr.open_group(store=str(path), mode=mode)


def _create_array(group, name: str, shape, chunks, dtype, fill_value):
    create = getattr(group, "create_array", None)  # zarr 3
    if create is None:  # zarr 2
        create = group.create_dataset
    return create(name, shape=tuple(shape), chunks=tuple(chunks), dtype=dtype, fill_value=fill_value)


def _read_attrs(path: Path, refuse_other: bool) -> dict:
    """The attributes of the Zarr group at ``path`` (``{}`` if it is none);
    with ``refuse_other`` a ``ValueError`` unless it is a topokd PI store."""
    try:
        attrs = dict(_open_group(path, "r").attrs)
    except ImportError:
        raise
    except Exception:  # not a Zarr group (or not readable as one)
        attrs = {}
    if refuse_other and attrs.get("format") != ZARR_FORMAT:
        raise ValueError(f"{path} exists and is not a topokd persistence-image Zarr store; choose another output "
                         "(it is never replaced or deleted)")
    return attrs


def store_attrs(path) -> dict | None:
    """The attributes of the topokd PI store at ``path``; ``None`` when
    ``path`` does not exist.  A path that exists but is not a topokd PI
    store is a ``ValueError``."""
    path = Path(path)
    if not path.exists():
        return None
    attrs = _read_attrs(path, refuse_other=True)
    if attrs.get("format_version") != ZARR_FORMAT_VERSION:
        raise ValueError(f"{path} is a topokd PI store of format version {attrs.get('format_version')}; this "
                         f"topokd writes version {ZARR_FORMAT_VERSION}: pass --force (overwrite=True) to replace it")
    return attrs


def open_pis_zarr(path, *, allow_incomplete: bool = False):
    """The ``pis`` array of the PI store at ``path`` (a zarr array: slice it,
    or ``dask.array.from_zarr``) and its attributes: ``(array, attrs)``.

    An incomplete store (a job that stopped; unwritten samples are NaN) is
    refused unless ``allow_incomplete``."""
    attrs = store_attrs(path)
    if attrs is None:
        raise FileNotFoundError(f"{path} does not exist")
    if not attrs.get("complete") and not allow_incomplete:
        raise ValueError(f"{path} is incomplete (a job stopped before the end); rerun the same command to "
                         "finish it, or pass allow_incomplete=True to read what is there")
    return _open_group(path, "r")["pis"], attrs


def _differences(old: dict, new: dict) -> list[str]:
    keys = ("kind", "mode", "params", "dtype", "shape", "chunk_size", "input_shape", "input_dtype", "input_sha256")
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if key == "params" and isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}: {a.get(k)!r} in the store, {b.get(k)!r} now" for k in sorted(set(a) | set(b))
                    if a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{key}: {a!r} in the store, {b!r} now" if key != "input_sha256"
                       else "the input's contents differ (SHA-256)")
    return out


def _create_store(path: Path, attrs: dict, shape, chunk_size: int, dtype, n_chunks: int) -> None:
    """A new empty store at ``path``, built in a temporary directory beside
    it and renamed into place, so ``path`` never holds a half-made store."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        group = _open_group(tmp, "w")
        _create_array(group, "pis", shape, (chunk_size, *shape[1:]), dtype, np.nan)
        _create_array(group, "chunk_crc32", (n_chunks,), (1,), np.int64, MISSING)
        group.attrs.update(attrs)
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    from ..io import current_umask

    return current_umask()


def _remove_store(path: Path) -> None:
    """Delete an existing topokd PI store (checked by :func:`store_attrs`
    first): renamed aside, then removed."""
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, trash / "store")
    shutil.rmtree(trash, ignore_errors=True)


def _write_chunk(block, path: str, i: int, lo: int, cls, params: dict, dtype, factor, index_offset: int) -> int:
    """Compute chunk ``i`` (samples ``lo:lo+len(block)``), write it, then record
    its CRC: the record exists only for a chunk fully written.  Runs on a dask
    worker for dask input (the store must be reachable there at ``path``)."""
    pis = _pis_block(block, cls, params, dtype, factor, (lo,), index_offset, block_id=(0,))
    group = _open_group(path, "r+")
    group["pis"][lo:lo + len(pis)] = pis
    group["chunk_crc32"][i] = _crc(pis)
    return i


def _verified(group, chunk_size: int, n: int, dtype) -> np.ndarray:
    """Which chunks are recorded and still hold the values their CRC says."""
    record = np.asarray(group["chunk_crc32"][:])
    pis = group["pis"]
    ok = np.zeros(len(record), dtype=bool)
    for i in np.flatnonzero(record != MISSING):
        lo = int(i) * chunk_size
        ok[i] = _crc(np.asarray(pis[lo:min(lo + chunk_size, n)], dtype=dtype)) == int(record[i])
    return ok


def _active_client():
    """The default ``dask.distributed.Client``, if one is active."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def write_pis_zarr(X, path, kind: str = "signal", *, mode: str = "flatten", preset: str | None = None,
                   chunk_size: int = 512, dtype="float32", overwrite: bool = False, verify: bool = True,
                   index_offset: int = 0, on_chunk: Callable[[int], None] | None = None,
                   extra_attrs: dict | None = None, **params) -> ZarrWrite:
    """Write the PIs of ``X`` into a resumable chunked Zarr store at ``path``.

    ``X``: signals ``(N, T, C)`` (``kind="signal"``) or images ``(N, C, H, W)``
    (``kind="image"``, ``mode`` ``"flatten"`` or ``"cubical"``), as a NumPy
    array (or anything sliceable by rows: memory maps,
    :class:`topokd.io.ArrayRows`) or a dask array.  ``preset`` and ``params``
    are those of :func:`topokd.signal_pis` / :func:`topokd.image_pis`.

    The store holds ``pis`` ``(N, C, [2,] R, R)`` of ``dtype`` (default
    float32) in chunks of ``chunk_size`` samples (default 512; NaN until
    written), ``chunk_crc32`` (one entry per chunk, -1 until that chunk is
    fully written) and attributes: ``format`` (``"topokd-pis"``),
    ``format_version``, ``kind``, ``mode``, ``preset``, ``params`` (the
    resolved parameters), ``dtype``, ``shape``, ``chunk_size``,
    ``input_shape``, ``input_dtype``, ``input_sha256`` (:func:`input_sha256`),
    ``complete`` (true once every chunk is written) and ``extra_attrs``.

    An existing store made with the same parameters and input resumes:
    recorded chunks are kept (with ``verify`` (default True) only when their
    values still match their CRC), the others computed; a complete one is
    left as it is (``computed == 0``).  A store with other parameters or
    input is refused (``ValueError`` naming the differences) unless
    ``overwrite`` (default False), which replaces it; a path that is not a
    topokd PI store is never replaced.

    NumPy input is computed in this process, chunk by chunk.  A dask array
    is computed chunk by chunk on dask's scheduler: on the workers of an
    active ``dask.distributed.Client`` (each worker writes its chunks, so
    ``path`` must be on a file system they share, at the same path), else on
    dask's threads.  Its values are validated as they are computed (the
    errors of :func:`topokd.signal_pis`); the chunks done before an error
    stay recorded.  The input is read twice: once for its SHA-256, once for
    the PIs.  ``on_chunk(samples)`` is called in this process after each
    chunk is recorded.  Returns a :class:`ZarrWrite`.
    """
    path = Path(path)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a float dtype, got {dtype}")
    transformer = _transformer(kind, mode, preset, params)
    if not _is_dask(X) and not all(hasattr(X, a) for a in ("shape", "dtype", "ndim", "size", "__getitem__")):
        X = np.asarray(X)
    shape = transformer.output_shape(X)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory {path.parent} does not exist")
    existing = None
    if path.exists():
        if overwrite:
            _read_attrs(path, refuse_other=True)  # only a topokd PI store is ever replaced
        else:
            existing = store_attrs(path)
    factor = None
    if kind == "image":
        from .pipeline import _preset_label, _uint8_factor, image_value_range

        factor = _uint8_factor(X.dtype, image_value_range(transformer.config_), _preset_label(preset), "X",
                               stacklevel=2)
    n = shape[0]
    n_chunks = -(-n // chunk_size)
    attrs = {
        "format": ZARR_FORMAT, "format_version": ZARR_FORMAT_VERSION, "topokd_version": _version(),
        "kind": kind, "mode": mode if kind == "image" else None, "preset": preset,
        "params": _jsonable(transformer.config_), "dtype": dtype.name, "shape": list(shape),
        "chunk_size": chunk_size, "n_chunks": n_chunks, "input_shape": [int(s) for s in X.shape],
        "input_dtype": np.dtype(X.dtype).str, "input_sha256": input_sha256(X, chunk_size),
        "layout": "(N, C, 2, R, R)" if len(shape) == 5 else "(N, C, R, R)", "complete": False,
        **_jsonable(extra_attrs or {}),
    }
    if existing is not None:
        diff = _differences(existing, attrs)
        if diff:
            raise ValueError(f"{path} was made with other parameters or input ({'; '.join(diff)}); pass "
                             "--force (overwrite=True) to replace it, or write to another path")
    elif path.exists():  # overwrite
        _remove_store(path)
    if existing is None:
        _create_store(path, attrs, shape, chunk_size, dtype, n_chunks)
    group = _open_group(path, "r+")
    if verify:
        done = _verified(group, chunk_size, n, dtype)
    else:
        done = np.asarray(group["chunk_crc32"][:]) != MISSING
    todo = [int(i) for i in np.flatnonzero(~done)]
    kept = n_chunks - len(todo)
    cls, run_params = type(transformer), transformer.get_params()
    spec = (cls, run_params, dtype, factor, int(index_offset))

    def report(i: int) -> None:
        if on_chunk is not None:
            on_chunk(min(chunk_size, n - i * chunk_size))

    if todo and _is_dask(X):
        _run_dask(X, path, todo, chunk_size, spec, report)
    else:
        for i in todo:
            lo = i * chunk_size
            _write_chunk(X[lo:min(lo + chunk_size, n)], str(path), i, lo, *spec)
            report(i)
    if not np.all(np.asarray(group["chunk_crc32"][:]) != MISSING):  # pragma: no cover - a lost write
        raise RuntimeError(f"{path}: some chunks were not recorded; rerun to finish the store")
    group.attrs.update({"complete": True})
    return ZarrWrite(path, n_chunks, len(todo), kept, tuple(shape))


def _version() -> str:
    from .. import __version__

    return __version__


def _run_dask(X, path: Path, todo: list[int], chunk_size: int, spec, report) -> None:
    """The missing chunks as dask tasks: on the active distributed Client's
    workers as they complete (cancelled on an error or Ctrl-C), else on
    dask's default scheduler in waves."""
    dask = _import("dask")
    blocks = _sample_chunks(X, chunk_size).to_delayed().ravel()
    task = dask.delayed(_write_chunk, pure=False)
    where = os.path.abspath(path)  # the workers may run in other directories
    tasks = [task(blocks[i], where, i, i * chunk_size, *spec) for i in todo]
    client = _active_client()
    if client is not None:
        from distributed import as_completed

        futures = client.compute(tasks)
        try:
            for future in as_completed(futures):
                report(future.result())
        except BaseException:
            client.cancel(futures)
            raise
        return
    wave = max(2, 2 * (os.cpu_count() or 1))
    for start in range(0, len(tasks), wave):
        for i in dask.compute(*tasks[start:start + wave]):
            report(i)
