"""Array files that stream: read ``.npy``/``.npz`` in row chunks, write ``.npz``
chunk by chunk, atomically; the one atomic-write helper (:func:`atomic_path`,
:func:`write_atomic`) every output of topokd goes through.

Nothing here unpickles: object arrays are refused on read, and metadata is
stored as a JSON string in a plain unicode array.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1


def current_umask() -> int:
    """The process's umask (read without changing it where Linux allows)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - not Linux: set and restore
    os.umask(mask)
    return mask


def new_temp(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """An empty temporary file beside ``path`` (same directory, so the final
    ``os.replace`` is atomic), named ``.<name>.<random><suffix>``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def publish(tmp: str | os.PathLike, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Give ``tmp`` the permissions a new file gets (``0o666 & ~umask``,
    like the CSV/JSON written beside it; ``mkstemp`` creates 0600) and
    rename it over ``path`` atomically.  With ``overwrite=False`` a ``path``
    that appeared meanwhile (another process) is not replaced: the file is
    hard-linked into place, which fails atomically if ``path`` exists
    (:class:`FileExistsError`; ``tmp`` is left for the caller to remove)."""
    os.chmod(tmp, 0o666 & ~current_umask())
    if overwrite:
        os.replace(tmp, path)
        return Path(path)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists (written meanwhile by another process); pass --force "
                              "(overwrite=True) to replace it") from None
    except OSError:  # a file system without hard links: the check-then-rename fallback
        if os.path.lexists(path):
            raise FileExistsError(f"{path} already exists; pass --force (overwrite=True) to replace it") from None
        os.replace(tmp, path)
        return Path(path)
    os.unlink(tmp)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True, suffix: str = ".tmp") -> Iterator[Path]:
    """Write ``path`` atomically: yields a temporary path beside it to write;
    on a normal exit it gets the umask's permissions and replaces ``path``,
    on any exception (``KeyboardInterrupt`` included) it is removed, so
    ``path`` is never half-written.  An existing ``path`` is refused unless
    ``overwrite``; a missing directory is an error.  ``suffix`` ends the
    temporary name (writers that insist on an extension, e.g. ``.pt2``)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --force (overwrite=True) to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory {path.parent} does not exist")
    tmp = new_temp(path, suffix)
    try:
        yield tmp
        publish(tmp, path, overwrite=overwrite)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)


class NpyStream:
    """Sequential row reader for a ``.npy`` file or one member of an ``.npz``.

    Supports ``shape``, ``dtype``, ``ndim``, ``size`` and slicing ``[lo:hi]``
    along axis 0 with contiguous, consecutive slices (what chunked pipelines
    do).  Rows are read with plain file reads (compressed ``.npz`` members are
    decompressed on the fly), so memory stays at one chunk; a memory map would
    instead keep every page it touched resident.
    """

    def __init__(self, path: str | os.PathLike, key: str | None = None):
        label = f"{path}:{key}" if key else str(path)
        self.key = key
        self._zip = zipfile.ZipFile(path) if key is not None else None
        self._fh = self._zip.open(key + ".npy") if key is not None else open(path, "rb")
        try:
            self._read_header(label)
        except Exception:
            self.close()
            raise

    def _read_header(self, label: str) -> None:
        try:
            version = np.lib.format.read_magic(self._fh)
        except ValueError as err:
            raise ValueError(f"cannot read {label} as a .npy array: {err}") from None
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(self._fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(self._fh)
        if dtype.hasobject:
            raise TypeError(f"{label} holds Python objects; topokd never unpickles, save a numeric array")
        if fortran and len(shape) > 1:
            raise ValueError(f"{label} is Fortran-ordered; re-save it with np.ascontiguousarray")
        self.shape = tuple(shape)
        self.dtype = dtype
        self.ndim = len(shape)
        self.size = int(np.prod(shape))
        self._row_bytes = int(np.prod(shape[1:])) * dtype.itemsize if shape else dtype.itemsize
        self._pos = 0

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item):
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("NpyStream supports only contiguous row slices [lo:hi]")
        lo, hi, _ = item.indices(self.shape[0])
        if lo != self._pos:
            raise ValueError(f"NpyStream reads sequentially: next row is {self._pos}, asked for {lo}")
        n = max(hi - lo, 0)
        buf = self._fh.read(n * self._row_bytes)
        if len(buf) != n * self._row_bytes:
            raise ValueError("the array data ended early: the file is truncated or corrupt")
        self._pos = hi
        return np.frombuffer(buf, dtype=self.dtype).reshape((n, *self.shape[1:]))

    def close(self) -> None:
        self._fh.close()
        if self._zip is not None:
            self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_array(path: str | os.PathLike, key: str | None = None):
    """Open ``path`` for chunked, sequential reading without loading it.

    Returns an :class:`NpyStream` on a ``.npy`` file or on member ``key`` of
    an ``.npz`` (default: its only member).  Never unpickles.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if key is not None:
            raise ValueError(f"--key {key} (key={key!r}) names an array inside an .npz, but {path} is a .npy "
                             "file holding one array; drop --key")
        return NpyStream(path)
    if suffix == ".npz":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        except zipfile.BadZipFile:
            raise ValueError(f"{path} is not a valid .npz archive") from None
        if key is None:
            if len(names) != 1:
                raise ValueError(f"{path} holds {len(names)} arrays {names}; choose one with --key")
            key = names[0]
        elif key not in names:
            raise ValueError(f"{path} has no array {key!r}; it holds {names}")
        return NpyStream(path, key)
    raise ValueError(f"unsupported input {path}: expected a .npy or .npz file")


class NpzChunkWriter:
    """Write one large array into an ``.npz`` chunk by chunk, plus JSON metadata.

    The archive is written to a temporary file beside ``path`` and renamed
    over it only by :meth:`commit` (with the umask's permissions); on error,
    ``KeyboardInterrupt`` included (or without commit), the temporary file is
    removed, so ``path`` is never left half-written.  An existing
    ``path`` is refused unless ``overwrite``.
    """

    def __init__(self, path: str | os.PathLike, key: str, shape, dtype, *, overwrite: bool = False,
                 compress: bool = False):
        self.path = Path(path)
        if self.path.suffix.lower() != ".npz":
            raise ValueError(f"output must end in .npz, got {self.path}")
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} already exists; pass --force (overwrite=True) to replace it")
        if not self.path.parent.exists():
            raise FileNotFoundError(f"output directory {self.path.parent} does not exist")
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self._tmp = new_temp(self.path)
        self._done = False
        try:
            mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            self._zip = zipfile.ZipFile(self._tmp, "w", compression=mode, allowZip64=True)
            self._fh = self._zip.open(key + ".npy", "w", force_zip64=True)
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                      "shape": self.shape}
            np.lib.format.write_array_header_2_0(self._fh, header)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._rows = 0
        self._done = False

    def write(self, chunk: np.ndarray) -> None:
        chunk = np.ascontiguousarray(chunk, dtype=self.dtype)
        if chunk.shape[1:] != self.shape[1:] or self._rows + len(chunk) > self.shape[0]:
            raise ValueError(f"chunk of shape {chunk.shape} does not fit the declared shape {self.shape}")
        self._fh.write(chunk.tobytes())
        self._rows += len(chunk)

    def commit(self, metadata: dict | None = None) -> Path:
        if self._rows != self.shape[0]:
            raise ValueError(f"only {self._rows} of {self.shape[0]} rows were written")
        self._fh.close()
        meta = {"format_version": FORMAT_VERSION, **(metadata or {})}
        with self._zip.open("meta.npy", "w") as fh:
            np.lib.format.write_array(fh, np.array(json.dumps(meta, sort_keys=True)), allow_pickle=False)
        self._zip.close()
        publish(self._tmp, self.path)
        self._done = True
        return self.path

    def abort(self) -> None:
        if self._done:
            return
        try:
            self._fh.close()
            self._zip.close()
        except Exception:
            pass  # the archive is being thrown away
        finally:
            self._tmp.unlink(missing_ok=True)
            self._done = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or not self._done:
            self.abort()


def read_yaml(path: str | os.PathLike):
    """A YAML config file, parsed safely (no object construction)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        # "line L, column C: <problem>", not PyYAML's multi-line report
        # (which names the file "<unicode string>")
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ValueError(f"{path} is not valid YAML{where}: {problem}; fix the file's syntax") from None


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata stored by :class:`NpzChunkWriter`."""
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["meta"]))


class ArrayRows:
    """Random-access row reader of a ``.npy`` file or an ``.npz`` member that
    can be sent to other processes (it pickles as its path and key only).

    ``rows[lo:hi]`` (or ``rows[lo:hi, ...]`` with full slices on the other
    axes, what ``dask.array.from_array`` asks for) returns a new array of
    those rows.  ``.npy`` rows are read with one seek and one read; an
    ``.npz`` member is read forward from the last position (the stream is
    kept open between calls in one process), so reading a compressed member
    out of order decompresses it again from the start.  Never unpickles.
    """

    def __init__(self, path: str | os.PathLike, key: str | None = None):
        self.path = os.path.abspath(path)  # absolute: workers in other directories read it too
        self.key = key
        self._stream = None
        with open_array(path, key) as stream:  # validates the file, the key and the dtype
            self.key = stream.key  # None for a .npy file
            self.shape, self.dtype, self.ndim, self.size = stream.shape, stream.dtype, stream.ndim, stream.size
            self._data_offset = stream._fh.tell() if self.key is None else None
        self._row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        st = os.stat(self.path)
        self._identity = (self.path, self.key, st.st_size, st.st_mtime_ns)

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_stream"] = None
        return state

    def __dask_tokenize__(self):
        return ("topokd.io.ArrayRows", *self._identity)

    def __getitem__(self, item):
        rest = ()
        if isinstance(item, tuple):
            item, rest = item[0], item[1:]
            if any(not (isinstance(s, slice) and s == slice(None)) and
                   not (isinstance(s, slice) and s.indices(n) == (0, n, 1))
                   for s, n in zip(rest, self.shape[1:])):
                raise TypeError("ArrayRows supports only row slices [lo:hi] (full slices on the other axes)")
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("ArrayRows supports only contiguous row slices [lo:hi]")
        lo, hi, _ = item.indices(self.shape[0])
        n = max(hi - lo, 0)
        if self.key is None:
            with open(self.path, "rb") as fh:
                fh.seek(self._data_offset + lo * self._row_bytes)
                buf = fh.read(n * self._row_bytes)
            if len(buf) != n * self._row_bytes:
                raise ValueError(f"{self.path}: the array data ended early: the file is truncated or corrupt")
            return np.frombuffer(buf, dtype=self.dtype).reshape((n, *self.shape[1:])).copy()
        if self._stream is None or self._stream._pos > lo:
            self.close()
            self._stream = NpyStream(self.path, self.key)
        while self._stream._pos < lo:  # read forward to lo (member streams cannot seek), a bounded piece at a time
            pos = self._stream._pos
            self._stream[pos:min(lo, pos + max(1, (64 << 20) // max(self._row_bytes, 1)))]
        return self._stream[lo:hi].copy()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
