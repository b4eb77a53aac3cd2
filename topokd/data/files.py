"""Your own windows from .npz / .npy files, checked, with labels encoded.

:func:`read_windows` reads what a :class:`~topokd.data.spec.DataSpec`
points at (``path: windows.npz`` or ``X: x.npy, y: y.npy, ...``):

* ``X`` ``(N, T, C)`` real numbers (``(N, C, T)`` with ``channels_first``),
  all finite; ``y`` ``(N,)`` integer or string labels (integral floats are
  taken as integers); optional ``groups`` ``(N,)`` (ints or strings: the
  subject of each window); optional predefined test split ``X_test``,
  ``y_test`` and ``groups_test`` with the same ``T`` and ``C``.
* Files are read with ``allow_pickle=False``: object arrays are refused.
* Every problem is one :class:`ValueError` line naming the file, the array
  and what is wrong (a missing file is :class:`FileNotFoundError`).

Labels are mapped to ``0..K-1`` in the sorted order of the distinct values
of ``y`` and ``y_test``; those values are the class names.
"""

from __future__ import annotations

import difflib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .spec import ARRAYS, DataSpec


@dataclass
class WindowFiles:
    """The checked arrays of :func:`read_windows` (``*_test`` are None without a predefined test split)."""

    X: np.ndarray                 # (N, T, C) float32
    y: np.ndarray                 # (N,) int64 in 0..K-1
    groups: np.ndarray | None     # (N,)
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    groups_test: np.ndarray | None
    classes: list                 # K class names (ints or strs), sorted
    source: str                   # the file(s), for descriptions


def _where(spec: DataSpec, name: str) -> str:
    if spec.path is not None:
        return f"{spec.path}: array {name!r}"
    return f"{getattr(spec, name)} ({name})"


def _load_npy(path: Path, name: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} (data.{name}) does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ValueError(f"{path} ({name}) holds Python objects (a pickled object array), which are not loaded; "
                             "save numbers or fixed-width strings, e.g. np.save(f, np.asarray(y, dtype=str))") from None
        raise ValueError(f"cannot read {path} ({name}) as an .npy array: {err}") from None
    except (OSError, EOFError) as err:
        raise ValueError(f"cannot read {path} ({name}) as an .npy array: {err}") from None


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} (data.path) does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read {path} as an .npz archive: {err}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an .npz archive; give it as X: (and y: for the labels)")
    with archive:
        unknown = [k for k in archive.files if k not in ARRAYS]
        if unknown:
            close = difflib.get_close_matches(unknown[0], ARRAYS, n=1)
            raise ValueError(f"{path}: unknown array {unknown[0]!r}" + (f" (did you mean {close[0]!r}?)" if close
                                                                       else "")
                             + f"; an .npz holds X, y and optionally groups, X_test, y_test, groups_test "
                               f"(it has {', '.join(archive.files)})")
        for required in ("X", "y"):
            if required not in archive.files:
                what = "the windows (N, T, C)" if required == "X" else "the labels, one per window"
                have = ", ".join(archive.files) or "none"
                raise ValueError(f"{path} has no array {required!r} ({what}); it has {have}")
        if ("X_test" in archive.files) != ("y_test" in archive.files):
            missing = "y_test" if "X_test" in archive.files else "X_test"
            raise ValueError(f"{path} has no array {missing!r}: a predefined test split needs both X_test and y_test")
        if "groups_test" in archive.files and "X_test" not in archive.files:
            raise ValueError(f"{path} has groups_test but no X_test / y_test")
        out = {}
        for key in archive.files:
            try:
                out[key] = archive[key]
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise ValueError(f"{path}: array {key!r} holds Python objects (a pickled object array), which "
                                     "are not loaded; save numbers or fixed-width strings, e.g. "
                                     "np.asarray(y, dtype=str)") from None
                raise ValueError(f"cannot read {path}: array {key!r}: {err}") from None
            except (OSError, EOFError, zipfile.BadZipFile) as err:
                raise ValueError(f"cannot read {path}: array {key!r}: {err}") from None
        return out


def _check_windows(X: np.ndarray, where: str, channels_first: bool) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{where} must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 3:
        hint = ("; cut one long recording into windows with topokd.data.sliding_windows" if X.ndim == 2 else "")
        layout = "(N, C, T) (channels_first)" if channels_first else "(N, T, C)"
        raise ValueError(f"{where} must be 3-D {layout} windows, got shape {X.shape}{hint}")
    if channels_first:
        X = X.transpose(0, 2, 1)
    if X.shape[0] == 0:
        raise ValueError(f"{where} holds no windows (shape {X.shape})")
    if X.shape[1] < 2:
        raise ValueError(f"{where} has windows of {X.shape[1]} time step(s), need at least 2 (shape {X.shape}"
                         + (" after channels_first)" if channels_first else "; stored (N, C, T)? set "
                            "channels_first: true)"))
    X = np.ascontiguousarray(X, dtype=np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        i, t, c = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(X[i, t, c]) else "inf"
        raise ValueError(f"{where} has {int(bad.sum())} non-finite value(s); the first is {kind} at (sample {i}, "
                         f"time {t}, channel {c}); impute or drop those windows")
    return X


def _check_vector(values: np.ndarray, where: str, n: int, what: str, x_where: str) -> np.ndarray:
    if values.ndim != 1:
        raise ValueError(f"{where} must be 1-D ({what}, one per window), got shape {values.shape}")
    if len(values) != n:
        raise ValueError(f"{where} has {len(values)} entries but {x_where} has {n} windows; give one per window")
    if values.dtype.kind in "US":
        return values.astype(str)
    if values.dtype.kind == "b":
        return values.astype(np.int64)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            i = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(f"{where} has a non-finite value at index {i}; {what} must be integers or strings")
        if not (values == np.round(values)).all():
            i = int(np.flatnonzero(values != np.round(values))[0])
            raise ValueError(f"{where} has the non-integer value {values[i].item()!r} at index {i}; {what} must be "
                             "integers or strings")
        return values.astype(np.int64)
    raise ValueError(f"{where} must hold integers or strings ({what}), got dtype {values.dtype}")


def _shown(values) -> str:
    values = list(values)
    text = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:5])
    return f"[{text}{', ...' if len(values) > 5 else ''}]"


def read_windows(spec: DataSpec) -> WindowFiles:
    """Read and check the windows ``spec`` points at (see the module docstring)."""
    if not spec.is_file:
        raise ValueError(f"data {spec.label!r} is a built-in set, not files")
    if spec.path is not None:
        arrays = _load_npz(spec.path)
        source = str(spec.path)
    else:
        arrays = {k: _load_npy(getattr(spec, k), k) for k in ARRAYS if getattr(spec, k) is not None}
        source = ", ".join(str(getattr(spec, k)) for k in ARRAYS if getattr(spec, k) is not None)

    def where(name):
        return _where(spec, name)

    X = _check_windows(arrays["X"], where("X"), spec.channels_first)
    y = _check_vector(arrays["y"], where("y"), len(X), "labels", where("X"))
    groups = (_check_vector(arrays["groups"], where("groups"), len(X), "groups", where("X"))
              if "groups" in arrays else None)
    X_test = y_test = groups_test = None
    if "X_test" in arrays:
        if spec.test_fraction is not None:
            raise ValueError(f"test_fraction is set but {source} has a predefined test split (X_test); remove "
                             "test_fraction")
        X_test = _check_windows(arrays["X_test"], where("X_test"), spec.channels_first)
        if X_test.shape[1:] != X.shape[1:]:
            raise ValueError(f"{where('X_test')} has windows of shape {X_test.shape[1:]} (T, C) but {where('X')} has "
                             f"{X.shape[1:]}; train and test windows must have the same length and channels")
        y_test = _check_vector(arrays["y_test"], where("y_test"), len(X_test), "labels", where("X_test"))
        if "groups_test" in arrays:
            groups_test = _check_vector(arrays["groups_test"], where("groups_test"), len(X_test), "groups",
                                        where("X_test"))
        if (y.dtype.kind == "U") != (y_test.dtype.kind == "U"):
            raise ValueError(f"{where('y')} and {where('y_test')} must both be integers or both strings, got "
                             f"{arrays['y'].dtype} and {arrays['y_test'].dtype}")
        unseen = np.setdiff1d(y_test, y)
        if len(unseen):
            raise ValueError(f"{where('y_test')} has class(es) {_shown(unseen)} absent from training ({where('y')}); "
                             "every test class must have training windows")
        if groups is not None and groups_test is not None:
            if (groups.dtype.kind == "U") == (groups_test.dtype.kind == "U"):
                shared = np.intersect1d(groups, groups_test)
                if len(shared):
                    raise ValueError(f"group(s) {_shown(shared)} are in both X and X_test ({where('groups')}, "
                                     f"{where('groups_test')}); a subject must be in one split only")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"{where('y')} has only 1 class ({_shown(classes)[1:-1]}); classification needs at "
                         "least 2")
    encode = lambda labels: np.searchsorted(classes, labels).astype(np.int64)  # noqa: E731
    return WindowFiles(X, encode(y), groups, X_test, None if y_test is None else encode(y_test), groups_test,
                       [c.item() if hasattr(c, "item") else c for c in classes], source)


__all__ = ["WindowFiles", "read_windows"]
