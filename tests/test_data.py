"""Offline data loaders: BasicMotions (via aeon), sliding windows, CIFAR-10 batches."""

import os
import pickle
import sys

import numpy as np
import pytest

from topokd.data import (
    BASIC_MOTIONS_CLASSES,
    load_basic_motions,
    load_cifar10_batches,
    sliding_windows,
)

# --------------------------------------------------------------------------- BasicMotions


@pytest.fixture(scope="module")
def basic_motions():
    return {split: load_basic_motions(split) for split in ("train", "test", "all")}


@pytest.mark.parametrize("split, n", [("train", 40), ("test", 40), ("all", 80)])
def test_basic_motions_shapes_and_labels(basic_motions, split, n):
    X, y, classes = basic_motions[split]
    assert X.shape == (n, 100, 6) and X.dtype == np.float64 and X.flags.c_contiguous
    assert np.isfinite(X).all()
    assert y.shape == (n,) and y.dtype == np.int64
    assert list(classes) == sorted(classes) == list(BASIC_MOTIONS_CLASSES)
    assert np.bincount(y, minlength=4).tolist() == [n // 4] * 4


def test_basic_motions_matches_aeon_transposed(basic_motions):
    from aeon.datasets import load_basic_motions as aeon_load

    for split in ("train", "test"):
        Xa, ya = aeon_load(split=split)
        X, y, classes = basic_motions[split]
        np.testing.assert_array_equal(X, Xa.transpose(0, 2, 1))
        np.testing.assert_array_equal(classes[y], ya)


def test_basic_motions_all_is_train_then_test(basic_motions):
    Xtr, ytr, _ = basic_motions["train"]
    Xte, yte, _ = basic_motions["test"]
    Xall, yall, _ = basic_motions["all"]
    np.testing.assert_array_equal(Xall, np.concatenate([Xtr, Xte]))
    np.testing.assert_array_equal(yall, np.concatenate([ytr, yte]))


def test_basic_motions_bad_split():
    with pytest.raises(ValueError, match="split must be one of"):
        load_basic_motions("validation")


def test_basic_motions_without_aeon_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon", None)
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(ImportError, match=r"pip install topokd\[data\]"):
        load_basic_motions()


# --------------------------------------------------------------------------- sliding windows


def loop_windows(rec, window, step):
    return np.stack([rec[s:s + window] for s in range(0, len(rec) - window + 1, step)])


@pytest.mark.parametrize("L, window, step", [
    (100, 10, None),   # adjacent
    (100, 10, 3),      # overlapping, tail left out
    (100, 10, 10),
    (101, 10, 10),     # one sample left out
    (50, 7, 12),       # gaps between windows
    (20, 20, 5),       # a single window
    (20, 2, 1),
])
def test_sliding_windows_match_loop(rng, L, window, step):
    rec = rng.normal(size=(L, 3))
    out = sliding_windows(rec, window, step)
    expected = loop_windows(rec, window, window if step is None else step)
    assert out.shape == expected.shape and out.dtype == np.float64
    np.testing.assert_array_equal(out, expected)


def test_sliding_windows_is_read_only_view_unless_copied(rng):
    rec = rng.normal(size=(60, 2))
    out = sliding_windows(rec, 10, 5)
    assert np.shares_memory(out, rec) and not out.flags.writeable
    with pytest.raises(ValueError):
        out[0, 0, 0] = 1.0
    rec[5, 1] = 42.0                       # changes show through the view
    assert out[0, 5, 1] == 42.0 and out[1, 0, 1] == 42.0

    own = sliding_windows(rec, 10, 5, copy=True)
    assert own.flags.writeable and not np.shares_memory(own, rec)
    own[0, 0, 0] = -1.0
    assert rec[0, 0] != -1.0
    np.testing.assert_array_equal(own[1:], out[1:])


def test_sliding_windows_drop_last_false_adds_end_aligned_window(rng):
    rec = rng.normal(size=(23, 2))
    kept = sliding_windows(rec, 10, 5)                      # starts 0, 5, 10
    full = sliding_windows(rec, 10, 5, drop_last=False)     # ... plus start 13
    assert kept.shape == (3, 10, 2) and full.shape == (4, 10, 2)
    np.testing.assert_array_equal(full[:3], kept)
    np.testing.assert_array_equal(full[3], rec[13:])
    assert full.flags.writeable and not np.shares_memory(full, rec)
    # nothing left over: drop_last makes no difference and the view is kept
    exact = sliding_windows(rec[:20], 10, 5, drop_last=False)
    np.testing.assert_array_equal(exact, loop_windows(rec[:20], 10, 5))
    assert np.shares_memory(exact, rec)


def test_sliding_windows_1d_int_and_nonfinite_input():
    out = sliding_windows(np.arange(10), 4, 2)
    assert out.shape == (4, 4, 1) and out.dtype == np.float64
    np.testing.assert_array_equal(out[:, :, 0], [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]])
    rec = np.ones((8, 2))
    rec[3, 1] = np.nan
    rec[6, 0] = np.inf
    out = sliding_windows(rec, 4)           # passed through, reported later by the TDA engine
    assert np.isnan(out[0, 3, 1]) and np.isinf(out[1, 2, 0])


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(window=1), ValueError, "window must be >= 2"),
    (dict(window=0), ValueError, "window must be >= 2"),
    (dict(window=2.5), TypeError, "window must be an int"),
    (dict(window=True), TypeError, "window must be an int"),
    (dict(window=4, step=0), ValueError, "step must be >= 1"),
    (dict(window=4, step=1.0), TypeError, "step must be an int"),
    (dict(window=31), ValueError, r"window \(31\).*L = 30"),
])
def test_sliding_windows_bad_parameters(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        sliding_windows(np.zeros((30, 2)), **kwargs)


@pytest.mark.parametrize("rec, exc, msg", [
    (np.zeros((3, 30, 2)), ValueError, r"2 dimensions \(L, C\)"),
    (np.zeros((0, 2)), ValueError, "empty"),
    (np.array(["a", "b", "c"]), TypeError, "real numbers"),
])
def test_sliding_windows_bad_recording(rec, exc, msg):
    with pytest.raises(exc, match=msg):
        sliding_windows(rec, 2)


# --------------------------------------------------------------------------- CIFAR-10


def make_batch(n, first_label=0, seed=0):
    """n random images; image 0 gets a known pattern in each plane."""
    data = np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)
    r = (np.arange(32)[:, None] * 4 + np.arange(32)[None, :] // 8).astype(np.uint8)  # row-dependent
    g = np.tile(np.arange(32, dtype=np.uint8), (32, 1))                                # column index
    b = np.full((32, 32), 200, np.uint8)
    data[0] = np.concatenate([r.ravel(), g.ravel(), b.ravel()])
    labels = [(first_label + i) % 10 for i in range(n)]
    return data, labels, (r, g, b)


def write_pickle(path, obj, protocol=2):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


def test_cifar_single_file_reconstructs_planes(tmp_path):
    data, labels, (r, g, b) = make_batch(5)
    f = write_pickle(tmp_path / "data_batch_1", {b"batch_label": b"training batch 1 of 5",
                                                 b"data": data, b"labels": labels,
                                                 b"filenames": [b"x.png"] * 5})
    X, y = load_cifar10_batches(f)
    assert X.shape == (5, 3, 32, 32) and X.dtype == np.uint8
    assert y.dtype == np.int64 and y.tolist() == labels
    np.testing.assert_array_equal(X[0, 0], r)
    np.testing.assert_array_equal(X[0, 1], g)
    np.testing.assert_array_equal(X[0, 2], b)
    assert X[0, 0, 1, 0] == 4 and X[0, 1, 0, 7] == 7         # rows then columns
    np.testing.assert_array_equal(X.reshape(5, -1), data)


def test_cifar_str_keys_and_numpy1_globals(tmp_path):
    data, labels, (r, _, _) = make_batch(3)
    f1 = write_pickle(tmp_path / "a", {"data": data, "labels": np.array(labels)}, protocol=4)
    X, y = load_cifar10_batches([f1])
    np.testing.assert_array_equal(X[0, 0], r)
    assert y.tolist() == labels
    # files pickled by numpy 1.x (like the official ones) name numpy.core.multiarray
    raw = pickle.dumps({b"data": data, b"labels": labels}, protocol=2)
    assert b"numpy._core.multiarray" in raw
    f2 = tmp_path / "b"
    f2.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    X2, y2 = load_cifar10_batches([f2])
    np.testing.assert_array_equal(X2, X)


def test_cifar_directory_order(tmp_path):
    # data_batch_<k> in numeric k order (10 after 2), then test_batch; others ignored
    order = ["data_batch_1", "data_batch_2", "data_batch_10", "test_batch"]
    for i, name in enumerate(reversed(order)):
        data, _, _ = make_batch(2, seed=i)
        write_pickle(tmp_path / name, {b"data": data, b"labels": [order.index(name)] * 2})
    write_pickle(tmp_path / "batches.meta", {b"label_names": [b"airplane"]})
    (tmp_path / "readme.html").write_text("<html></html>")
    X, y = load_cifar10_batches(tmp_path)
    assert X.shape == (8, 3, 32, 32)
    assert y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    # a list is read in the order given
    X2, y2 = load_cifar10_batches([str(tmp_path / "test_batch"), tmp_path / "data_batch_1"])
    assert y2.tolist() == [3, 3, 0, 0]
    np.testing.assert_array_equal(X2[2:], X[:2])


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("alone", [False, True])
def test_cifar_malicious_pickle_is_refused_and_not_run(tmp_path, protocol, alone):
    marker = tmp_path / "pwned"
    data, labels, _ = make_batch(2)
    payload = Evil(marker) if alone else {b"x": Evil(marker), b"data": data, b"labels": labels}
    write_pickle(tmp_path / "data_batch_1", payload, protocol)
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load global \w+\.system") as info:
        load_cifar10_batches(tmp_path)
    assert "data_batch_1" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("payload, protocol, refused", [
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [np.int64(1)]}, 2, "scalar"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [1]}, 5, "_frombuffer"),
])
def test_cifar_refuses_globals_outside_the_allow_list(tmp_path, payload, protocol, refused):
    # numpy scalars and protocol-5 arrays need helpers the official files never use
    f = write_pickle(tmp_path / "t", payload, protocol)
    with pytest.raises(pickle.UnpicklingError, match=refused):
        load_cifar10_batches([f])


def test_cifar_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar10_batches([tmp_path / "nope"])
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 batch files"):
        load_cifar10_batches(tmp_path)
    with pytest.raises(ValueError, match="empty list"):
        load_cifar10_batches([])
    with pytest.raises(ValueError, match="extract it first"):
        load_cifar10_batches(write_pickle(tmp_path / "cifar-10-python.tar.gz", {}))

    good, labels, _ = make_batch(2)
    cases = {
        "list": ([good, labels], "pickled list, expected a dict"),
        "nolabels": ({b"data": good}, r"lacks key\(s\) \['labels'\]"),
        "shape": ({b"data": good[:, :100], b"labels": labels}, r"\(N, 3072\).*shape \(2, 100\)"),
        "float": ({b"data": good.astype(float), b"labels": labels}, "dtype float64"),
        "nlabels": ({b"data": good, b"labels": [1, 2, 3]}, "must be 2 integers"),
        "range": ({b"data": good, b"labels": [0, 10]}, r"0\.\.9"),
        "dup": ({b"data": good, "data": good, b"labels": labels}, "ambiguous"),
    }
    for name, (payload, msg) in cases.items():
        f = write_pickle(tmp_path / name, payload)
        with pytest.raises(ValueError, match=msg) as info:
            load_cifar10_batches([f])
        assert name in str(info.value)
    (tmp_path / "text").write_text("not a pickle")
    with pytest.raises(pickle.UnpicklingError, match="text"):
        load_cifar10_batches([tmp_path / "text"])
    (tmp_path / "trunc").write_bytes(pickle.dumps({b"data": good, b"labels": labels}, 2)[:-40])
    with pytest.raises(ValueError, match="cannot read .*trunc"):
        load_cifar10_batches([tmp_path / "trunc"])
