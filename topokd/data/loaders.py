"""Loaders for real data that work offline: nothing here downloads anything.

* :func:`load_basic_motions` -- the UEA BasicMotions wearable data set, read
  from the copy shipped inside the optional dependency ``aeon``.
* :func:`sliding_windows` -- cut a long multichannel recording into windows in
  topokd's signal layout ``(N, T, C)``.
* :func:`load_cifar10_batches` -- CIFAR-10 images from local batch files in
  the *python* format, unpickled with a restricted unpickler that can only
  rebuild numpy arrays.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np

from .._validation import check_choice, check_layout
from ._pickle import NUMPY_ARRAY_GLOBALS, RestrictedUnpickler

#: Class names of BasicMotions, sorted; ``y`` from :func:`load_basic_motions`
#: indexes this tuple.
BASIC_MOTIONS_CLASSES = ("badminton", "running", "standing", "walking")

_DATA_EXTRA_HINT = "install it with `pip install topokd[data]` (or `pip install aeon`)"


# --------------------------------------------------------------------------- BasicMotions
def load_basic_motions(split: str = "train"):
    """The UEA BasicMotions data set as ``(X, y, classes)``.

    Four students wore a smartwatch while performing four activities
    (standing, walking, running, playing badminton); each recording holds the
    3-axis accelerometer and 3-axis gyroscope (6 channels), sampled at 10 Hz
    for 10 s (100 samples).  There are 40 training and 40 test recordings,
    10 per class in each split.  The data come from the UEA multivariate time
    series classification archive (timeseriesclassification.com) and are read
    from the copy shipped inside ``aeon``, so no network access is needed.

    Parameters
    ----------
    split : {"train", "test", "all"}, default "train"
        ``"all"`` returns the training recordings followed by the test ones.

    Returns
    -------
    X : float64 ndarray, shape ``(N, 100, 6)``
        Recordings in topokd's signal layout ``(N, T, C)`` (aeon stores
        ``(N, C, T)``; this is its transpose, C-contiguous).  Channels are
        accelerometer x, y, z then gyroscope x, y, z.  ``N`` is 40 for
        ``"train"``/``"test"`` and 80 for ``"all"``.
    y : int64 ndarray, shape ``(N,)``
        Class indices into ``classes``.
    classes : str ndarray, shape ``(4,)``
        ``BASIC_MOTIONS_CLASSES``: the sorted label strings
        ``["badminton", "running", "standing", "walking"]``; identical for
        every split, so ``y`` of train and test share one encoding.

    Raises
    ------
    ImportError
        If ``aeon`` is not installed (``pip install topokd[data]``).
    ValueError
        If ``split`` is not one of the three choices.
    """
    check_choice(split, "split", ("train", "test", "all"))
    try:
        from aeon.datasets import load_basic_motions as _aeon_load
    except ImportError as err:
        raise ImportError(
            f"load_basic_motions reads the copy of BasicMotions shipped inside the optional "
            f"dependency aeon, which could not be imported ({err}); {_DATA_EXTRA_HINT}"
        ) from err

    parts = ("train", "test") if split == "all" else (split,)
    Xs, labels = [], []
    for part in parts:
        Xp, yp = _aeon_load(split=part)
        Xp = np.asarray(Xp, dtype=np.float64)
        if Xp.ndim != 3:
            raise ValueError(
                f"aeon returned BasicMotions {part} data of shape {Xp.shape}, expected (N, C, T); "
                "your aeon version may be incompatible, try `pip install -U aeon`"
            )
        Xs.append(Xp)
        labels.append(np.asarray(yp).astype(str))
    X = np.ascontiguousarray(np.concatenate(Xs).transpose(0, 2, 1))
    lab = np.concatenate(labels)

    classes = np.array(BASIC_MOTIONS_CLASSES)
    unknown = sorted(set(lab.tolist()) - set(BASIC_MOTIONS_CLASSES))
    if unknown:
        raise ValueError(
            f"aeon returned BasicMotions labels {unknown} outside the expected classes "
            f"{list(BASIC_MOTIONS_CLASSES)}; your aeon version may ship a different data set"
        )
    y = np.searchsorted(classes, lab).astype(np.int64)
    return X, y, classes


# --------------------------------------------------------------------------- windows
def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def sliding_windows(recording, window: int, step: int | None = None, *, drop_last: bool = True,
                    copy: bool = False) -> np.ndarray:
    """Cut one long recording into windows ``(N, window, C)``.

    Parameters
    ----------
    recording : array_like, shape ``(L, C)`` or ``(L,)``
        A multichannel recording, samples along axis 0.  A 1-D recording is
        treated as one channel, ``(L, 1)``.  Converted to float64 (no copy
        when it already is float64).  Non-finite values (NaN, inf) are passed
        through unchanged; the persistence functions report them later, with
        the window and channel they fall in.
    window : int
        Samples per window, ``2 <= window <= L``.
    step : int, optional
        Samples between the starts of consecutive windows, ``>= 1``.  Defaults
        to ``window`` (adjacent, non-overlapping windows); ``step < window``
        overlaps them, ``step > window`` skips samples between them.
    drop_last : bool, default True
        Window ``i`` starts at sample ``i * step``.  With ``drop_last=True``
        only these full windows are returned, so up to ``step - 1`` trailing
        samples may be left out (``N = (L - window) // step + 1``).  With
        ``drop_last=False``, if samples remain uncovered, one more window is
        appended that ends at the last sample (it starts at ``L - window`` and
        so overlaps its predecessor by more than usual); no padding is ever
        added.
    copy : bool, default False
        Return an independent, writable array instead of a view.

    Returns
    -------
    windows : float64 ndarray, shape ``(N, window, C)``
        ``windows[i] == recording[start_i : start_i + window]``.  When possible
        (always with ``drop_last=True``) this is a **read-only view** sharing
        memory with ``recording``: no data is copied, writing to it raises
        ``ValueError``, and later changes to ``recording`` show through.  Pass
        ``copy=True`` (or call ``.copy()``) for a writable array you own.  When
        ``drop_last=False`` appends an end-aligned window the result cannot be
        a view and is a new writable array.
    """
    arr = np.asarray(recording)
    if arr.ndim == 1:
        arr = arr[:, None]
    check_layout(arr, "recording", 2, "(L, C)",
                 "Pass one recording, samples along axis 0; for a batch of recordings call "
                 "sliding_windows on each.")
    arr = np.asarray(arr, dtype=np.float64)
    window = _check_int(window, "window", 2)
    step = window if step is None else _check_int(step, "step", 1)
    L = arr.shape[0]
    if window > L:
        raise ValueError(
            f"window ({window}) is longer than the recording (L = {L} samples); "
            f"use window <= {L}"
        )
    view = np.lib.stride_tricks.sliding_window_view(arr, window, axis=0)  # (L-w+1, C, w)
    out = view[::step].transpose(0, 2, 1)                                 # (N, w, C), read-only
    last_start = (out.shape[0] - 1) * step
    if not drop_last and last_start + window < L:
        out = np.concatenate([out, arr[None, L - window:]], axis=0)
        return out
    return out.copy() if copy else out


# --------------------------------------------------------------------------- CIFAR-10
class _ArrayOnlyUnpickler(RestrictedUnpickler):
    """Unpickler that can build dicts, lists, strings, numbers and numpy
    arrays, and nothing else: any other global (a function or class the
    pickle asks to import) is refused, so a hostile file cannot run code."""

    ALLOWED = NUMPY_ARRAY_GLOBALS

    def refusal(self, module, name):
        return (f"refused to load global {module}.{name}: a CIFAR-10 batch needs only numpy's "
                "array reconstruction helpers, and unpickling anything else could run code. "
                "This is not a plain CIFAR-10 python batch; do not load it with pickle either")


_TRAIN_RE = re.compile(r"data_batch_(\d+)")


def _batch_files(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        if p.is_dir():
            train = sorted((int(m.group(1)), f) for f in p.iterdir()
                           if (m := _TRAIN_RE.fullmatch(f.name)) and f.is_file())
            files = [f for _, f in train]
            if (p / "test_batch").is_file():
                files.append(p / "test_batch")
            if not files:
                sub = p / "cifar-10-batches-py"
                hint = (f"; the batches seem to be in {sub}, pass that folder" if sub.is_dir()
                        else "; binary-format files (*.bin) are not supported, use the python "
                             "version (cifar-10-python.tar.gz)"
                        if any(p.glob("*.bin")) else
                        "; extract cifar-10-python.tar.gz and pass its cifar-10-batches-py folder")
                raise FileNotFoundError(
                    f"no CIFAR-10 batch files (data_batch_<k>, test_batch) in directory {p}{hint}"
                )
            return files
        files = [p]
    else:
        try:
            files = [Path(f) for f in paths]
        except TypeError:
            raise TypeError(
                f"paths must be a directory, a batch file, or a list of batch files, got {paths!r}"
            ) from None
        if not files:
            raise ValueError("paths is an empty list; give at least one CIFAR-10 batch file")
    for f in files:
        if f.name.endswith((".tar.gz", ".tgz")):
            raise ValueError(f"{f} is the compressed archive; extract it first (tar -xzf {f.name}) "
                             "and pass the cifar-10-batches-py folder it contains")
        if f.is_dir():
            raise ValueError(f"{f} is a directory; inside a list, give batch files only")
        if not f.is_file():
            raise FileNotFoundError(f"CIFAR-10 batch file {f} does not exist")
    return files


def _read_batch(path: Path):
    try:
        with open(path, "rb") as fh:
            payload = _ArrayOnlyUnpickler(fh, encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(f"{path}: {err}") from None
    except Exception as err:
        raise ValueError(
            f"cannot read {path} as a CIFAR-10 python batch ({type(err).__name__}: {err}); "
            "expected a pickled dict from cifar-10-python.tar.gz"
        ) from err
    if not isinstance(payload, dict):
        raise ValueError(
            f"{path} holds a pickled {type(payload).__name__}, expected a dict with keys "
            "'data' and 'labels' (the CIFAR-10 python format)"
        )
    fields = {}
    for key, value in payload.items():
        name = key.decode("latin1") if isinstance(key, bytes) else key
        if name in fields:
            raise ValueError(f"{path} has key {name!r} both as str and as bytes; which one to use is ambiguous")
        fields[name] = value
    missing = [k for k in ("data", "labels") if k not in fields]
    if missing:
        raise ValueError(
            f"{path} lacks key(s) {missing}; it has {sorted(map(str, fields))}. A CIFAR-10 batch "
            "needs 'data' (N, 3072) uint8 and 'labels' (N,)"
        )

    data = np.asarray(fields["data"])
    if data.dtype.kind not in "ui" or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{path}: 'data' must be an (N, 3072) array of uint8 pixels (R, G, B planes of "
            f"32x32, row-major), got dtype {data.dtype} and shape {data.shape}"
        )
    if data.dtype != np.uint8 and data.size and (data.min() < 0 or data.max() > 255):
        raise ValueError(f"{path}: 'data' values must lie in 0..255, got {data.min()}..{data.max()}")
    labels = np.asarray(fields["labels"])
    if labels.dtype.kind not in "ui" or labels.shape != (data.shape[0],):
        raise ValueError(
            f"{path}: 'labels' must be {data.shape[0]} integers (one per row of 'data'), got "
            f"dtype {labels.dtype} and shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: CIFAR-10 labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    X = data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32)
    return X, labels.astype(np.int64)


def load_cifar10_batches(paths):
    """CIFAR-10 images from local batch files in the *python* format.

    Parameters
    ----------
    paths : str, PathLike, or list of them
        Either a directory (e.g. ``cifar-10-batches-py`` extracted from
        ``cifar-10-python.tar.gz``), from which ``data_batch_<k>`` files are
        read in increasing numeric ``k`` (``data_batch_1`` ... ``data_batch_5``)
        followed by ``test_batch`` when present, other files (``batches.meta``,
        ``readme.html``) being ignored; or one batch file; or a list of batch
        files, read in the order given.  Each file is a pickled dict with
        ``data``, an ``(n, 3072)`` uint8 array whose rows hold the R, G and B
        planes of a 32x32 image, each row-major, and ``labels``, ``n`` ints in
        0..9.  Keys may be ``bytes`` (as in the official files) or ``str``.

    Returns
    -------
    X : uint8 ndarray, shape ``(N, 3, 32, 32)``
        Images, channels first (R, G, B), in file order; ``N`` sums ``n``.
    y : int64 ndarray, shape ``(N,)``
        Class indices 0..9.

    Security
    --------
    Unpickling can execute arbitrary code, so the files are read with a
    restricted unpickler (``encoding="bytes"``) that only lets through the
    globals numpy needs to rebuild arrays (``numpy.core.multiarray._reconstruct``
    or ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``,
    ``numpy.dtype``, ``_codecs.encode``); any other global raises
    :class:`pickle.UnpicklingError` naming it, before it is called.  The
    official files (and files re-pickled with protocols 0 to 4) load; arrays
    pickled with protocol 5 use ``numpy._core.numeric._frombuffer`` and numpy
    scalars use ``..multiarray.scalar``, which are refused: re-save such files
    with ``protocol=4`` or lower, plain int labels and uint8 ``data`` arrays.

    Raises
    ------
    FileNotFoundError
        A listed file does not exist, or a directory holds no batch files.
    pickle.UnpicklingError
        A file asks for a global outside the allowed set, or is not a pickle.
    ValueError
        A payload is not a dict, lacks ``data``/``labels``, or has wrong
        shapes, dtypes or value ranges; the message names the file.
    """
    Xs, ys = [], []
    for f in _batch_files(paths):
        Xb, yb = _read_batch(f)
        Xs.append(Xb)
        ys.append(yb)
    if len(Xs) == 1:
        return Xs[0], ys[0]
    return np.concatenate(Xs), np.concatenate(ys)
