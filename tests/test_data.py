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


# --------------------------------------------------------------------------- your own windows (.npz / .npy)
from topokd.config import ConfigError  # noqa: E402
from topokd.data import DataSpec, group_split, stratified_split  # noqa: E402
from topokd.distill.data import load_splits  # noqa: E402


def user_windows(n=120, T=16, C=3, classes=("jog", "rest", "walk"), subjects=12, seed=0):
    """Windows whose X[i, 0, 0] is i (so a split's rows name their source rows)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, C))
    X[:, 0, 0] = np.arange(n)
    y = np.array(classes)[np.arange(n) % len(classes)]
    groups = np.arange(n) * subjects // n + 1                           # consecutive runs: every class
    return X, y, groups


def rows(split):
    return split.signals[:, 0, 0].astype(int)


def test_npz_without_groups_is_split_stratified(tmp_path):
    X, y, _ = user_windows(n=150)
    np.savez(tmp_path / "w.npz", X=X, y=y)
    s = load_splits(DataSpec(path=tmp_path / "w.npz"), seed=4, with_pis=False)
    parts = [rows(s.train), rows(s.val), rows(s.test)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(150))     # a partition
    assert s.classes == ["jog", "rest", "walk"] and s.train.groups is None
    for p, split in zip(parts, (s.train, s.val, s.test)):
        np.testing.assert_array_equal(np.array(s.classes)[split.labels], y[p])   # labels follow their windows
        np.testing.assert_array_equal(split.signals, X[p].astype(np.float32))
    # 20 % test of each class, then 20 % of the rest as validation: within one window per class
    for k in range(3):
        total = 50
        assert abs(int((s.test.labels == k).sum()) - 0.2 * total) <= 1
        rest = total - int((s.test.labels == k).sum())
        assert abs(int((s.val.labels == k).sum()) - 0.2 * rest) <= 1
    again = load_splits(DataSpec(path=tmp_path / "w.npz"), seed=4, with_pis=False)
    np.testing.assert_array_equal(rows(again.val), parts[1])              # seeded
    other = load_splits(DataSpec(path=tmp_path / "w.npz"), seed=5, with_pis=False)
    assert rows(other.val).tolist() != parts[1].tolist()


def test_stratified_split_keeps_class_proportions(rng):
    labels = rng.integers(0, 5, 997)
    for fraction in (0.1, 0.25, 0.5):
        keep, held = stratified_split(labels, fraction, seed=1)
        assert sorted(np.concatenate([keep, held]).tolist()) == list(range(997))
        for k in range(5):
            n = int((labels == k).sum())
            assert abs(int((labels[held] == k).sum()) - fraction * n) <= 1


def test_group_split_holds_out_whole_groups(rng):
    groups = rng.integers(0, 17, 500)
    for seed in range(5):
        keep, held = group_split(groups, 0.3, seed)
        assert sorted(np.concatenate([keep, held]).tolist()) == list(range(500))
        assert not set(groups[keep]) & set(groups[held])
        assert 0.15 < len(held) / 500 < 0.45
    with pytest.raises(ValueError, match="at least 2 groups, got 1"):
        group_split(np.zeros(10), 0.2, 0)


def test_npz_with_groups_is_split_by_group(tmp_path):
    X, y, groups = user_windows(n=240, subjects=12)
    np.savez(tmp_path / "w.npz", X=X, y=y, groups=groups)
    for seed in range(3):
        s = load_splits(DataSpec(path=tmp_path / "w.npz", val_fraction=0.25, test_fraction=0.25), seed=seed,
                        with_pis=False)
        index = [rows(p) for p in (s.train, s.val, s.test)]
        assert sorted(np.concatenate(index).tolist()) == list(range(240))
        subjects = [set(groups[i].tolist()) for i in index]
        assert not subjects[0] & subjects[1] and not subjects[0] & subjects[2] and not subjects[1] & subjects[2]
        for i, p in zip(index, (s.train, s.val, s.test)):
            np.testing.assert_array_equal(p.groups, groups[i])           # groups travel with the windows
        assert len(s.test) == 60 and 30 <= len(s.val) <= 60              # whole subjects of 20 windows
        assert "with groups" in s.description and "by group" in s.description


def test_npz_with_a_predefined_test_split(tmp_path):
    X, y, groups = user_windows(n=120, subjects=6)
    Xt, yt, gt = user_windows(n=30, subjects=3, seed=1)
    np.savez(tmp_path / "w.npz", X=X, y=y, groups=groups, X_test=Xt, y_test=yt, groups_test=gt + 100)
    s = load_splits(DataSpec(path=tmp_path / "w.npz"), seed=0, with_pis=False)
    np.testing.assert_array_equal(s.test.signals, Xt.astype(np.float32))
    np.testing.assert_array_equal(np.array(s.classes)[s.test.labels], yt)
    np.testing.assert_array_equal(s.test.groups, gt + 100)
    assert len(s.train) + len(s.val) == 120
    assert not set(s.train.groups.tolist()) & set(s.val.groups.tolist())
    with pytest.raises(ValueError, match="test_fraction is set but .*w.npz has a predefined test split"):
        load_splits(DataSpec(path=tmp_path / "w.npz", test_fraction=0.3), with_pis=False)


def test_npy_files_through_a_config_with_relative_paths(tmp_path):
    from topokd.distill.config import parse_config

    X, y, groups = user_windows(n=90, C=2, subjects=9)
    labels = np.arange(90) % 3 + 10                                      # integer labels 10, 11, 12
    np.save(tmp_path / "x.npy", X.transpose(0, 2, 1))                  # stored (N, C, T)
    np.save(tmp_path / "y.npy", labels)
    np.save(tmp_path / "g.npy", groups.astype(str))                    # string groups work too
    cfg = parse_config({"output": "run", "data": {"X": "x.npy", "y": "y.npy", "groups": "g.npy",
                                                  "channels_first": True}}, base_dir=tmp_path)
    assert cfg.data.X == tmp_path / "x.npy" and cfg.data.name is None
    s = load_splits(cfg.data, seed=0, with_pis=False)
    assert s.classes == [10, 11, 12] and s.train.signals.shape[1:] == (16, 2)
    idx = rows(s.test)
    np.testing.assert_array_equal(s.test.signals, X[idx].astype(np.float32))
    np.testing.assert_array_equal(s.test.labels, labels[idx] - 10)
    assert not set(s.train.groups.tolist()) & set(s.test.groups.tolist())


def test_pis_are_computed_for_user_windows(tmp_path):
    X, y, _ = user_windows(n=30, T=24)
    np.savez(tmp_path / "w.npz", X=X, y=y)
    s = load_splits(str(tmp_path / "w.npz"), seed=0, pi_params={"resolution": 8})
    assert s.train.pis.shape == (len(s.train), 3, 8, 8) and s.test.pis.shape == (len(s.test), 3, 8, 8)


def _save(tmp_path, name="w.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _nan_at(X, i, t, c):
    X = X.copy()
    X[i, t, c] = np.nan
    return X


X0, Y0, G0 = user_windows(n=30, T=8, C=2, subjects=6)


@pytest.mark.parametrize("arrays, message", [
    (dict(X=X0), r"w.npz has no array 'y' \(the labels, one per window\); it has X"),
    (dict(y=Y0), r"w.npz has no array 'X' \(the windows \(N, T, C\)\)"),
    (dict(X=X0, y=Y0[:-1]), r"w.npz: array 'y' has 29 entries but .*w.npz: array 'X' has 30 windows"),
    (dict(X=X0, y=Y0, groups=G0[:5]), r"array 'groups' has 5 entries but .* has 30 windows"),
    (dict(X=X0[:, :, 0], y=Y0), r"array 'X' must be 3-D \(N, T, C\) windows, got shape \(30, 8\); cut one long"),
    (dict(X=_nan_at(X0, 3, 5, 1), y=Y0), r"array 'X' has 1 non-finite value\(s\); the first is NaN at \(sample 3, "
                                        r"time 5, channel 1\)"),
    (dict(X=X0, y=Y0, groups=G0, X_test=X0[:4], y_test=Y0[:4], groups_test=G0[:4]),
     r"group\(s\) \[1\] are in both X and X_test"),
    (dict(X=X0, y=np.full(30, "walk")), r"array 'y' has only 1 class \('walk'\); classification needs at least 2"),
    (dict(X=X0, y=Y0, X_test=X0[:2], y_test=np.array(["swim", "jog"])),
     r"array 'y_test' has class\(es\) \['swim'\] absent from training"),
    (dict(X=X0, y=Y0, group=G0), r"unknown array 'group' \(did you mean 'groups'\?\)"),
    (dict(X=X0, y=Y0, X_test=X0[:2]), r"w.npz has no array 'y_test'"),
    (dict(X=X0, y=Y0, X_test=X0[:2, :4], y_test=Y0[:2]), r"'X_test' has windows of shape \(4, 2\) .* has \(8, 2\)"),
    (dict(X=X0, y=np.arange(30) * 0.5), r"array 'y' has the non-integer value 0.5 at index 1"),
    (dict(X=X0.astype(complex), y=Y0), r"array 'X' must hold real numbers, got dtype complex128"),
], ids=["no-y", "no-X", "y-length", "groups-length", "X-2d", "nan", "group-in-both", "one-class",
        "class-not-in-train", "unknown-array", "no-y_test", "test-shape", "float-labels", "complex"])
def test_user_data_errors_name_file_array_and_problem(tmp_path, arrays, message):
    path = _save(tmp_path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        load_splits(DataSpec(path=path), with_pis=False)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_class_absent_from_training_after_the_split(tmp_path):
    # each class lives in one subject: holding out any subject loses a class
    y = np.array(["a", "b", "c"])[np.arange(30) % 3]
    path = _save(tmp_path, X=X0, y=y, groups=np.arange(30) % 3)
    with pytest.raises(ValueError, match=r"w.npz: class\(es\) \[.*\] have no training window left after holding "
                                         r"out the test and validation groups; use a smaller test_fraction"):
        load_splits(DataSpec(path=path), with_pis=False)


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data file .*none.npz \(data.path\) does not exist"):
        load_splits(DataSpec(path=tmp_path / "none.npz"), with_pis=False)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read .*bad.npz as an .npz archive"):
        load_splits(DataSpec(path=tmp_path / "bad.npz"), with_pis=False)
    np.save(tmp_path / "x.npy", X0)
    np.save(tmp_path / "y.npy", np.array([{"label": 1}] * 30, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"y.npy \(y\) holds Python objects .*not loaded"):
        load_splits(DataSpec(X=tmp_path / "x.npy", y=tmp_path / "y.npy"), with_pis=False)
    np.save(tmp_path / "y.npy", Y0[:10])
    with pytest.raises(ValueError, match=r"y.npy \(y\) has 10 entries but .*x.npy \(X\) has 30 windows"):
        load_splits(DataSpec(X=tmp_path / "x.npy", y=tmp_path / "y.npy"), with_pis=False)


@pytest.mark.parametrize("data, message", [
    ({"name": "hapt", "path": "w.npz"}, "data.name ('hapt') and path are both given"),
    ({"path": "w.npy"}, "data.path must be an .npz file (arrays X, y, ...), got "),
    ({"X": "x.npy"}, "data.y is missing: with X give y, the labels .npy"),
    ({"y": "y.npy"}, "data.y is given without X"),
    ({"path": "w.npz", "X": "x.npy"}, "data.path and X are both given"),
    ({"X": "x.npz", "y": "y.npy"}, "data.X must be an .npy file, got "),
    ({"X": "x.npy", "y": "y.npy", "X_test": "xt.npy"}, "data.y_test is missing: a predefined test split needs both"),
    ({"name": "hapt", "test_fraction": 0.3}, "data.test_fraction: hapt has a predefined test split"),
    ({"X": "x.npy", "y": "y.npy", "X_test": "a.npy", "y_test": "b.npy", "test_fraction": 0.3},
     "data.test_fraction: "),
    ({"name": "basic-motions", "channels_first": True}, "data.channels_first applies to your files"),
    ({"path": "w.npz", "test_fraction": 1.5}, "data.test_fraction must be in (0, 1), got 1.5"),
    ({"path": "w.npz", "val_fraction": 0}, "data.val_fraction must be in (0, 1), got 0.0"),
])
def test_data_config_errors(data, message):
    from topokd.distill.config import parse_config

    with pytest.raises(ConfigError) as info:
        parse_config({"output": "run", "data": data})
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_compress_config_takes_the_same_data_mapping(tmp_path):
    from topokd.compress.config import parse_config as parse_compress
    from topokd.distill.config import parse_config as parse_experiment

    data = {"path": "w.npz", "val_fraction": 0.3, "pi_preset": "standard-signal"}
    steps = [{"finetune": {"epochs": 1}}]
    compress = parse_compress({"data": data, "steps": steps}, base_dir=tmp_path)
    experiment = parse_experiment({"output": "run", "data": data}, base_dir=tmp_path)
    assert compress.data == experiment.data and compress.data.path == tmp_path / "w.npz"
    import yaml

    again = parse_compress(yaml.safe_load(yaml.safe_dump(compress.to_dict())))
    assert again == compress


def test_default_data_is_basic_motions_and_old_calls_work():
    spec = DataSpec()
    assert spec.name == "basic-motions" and not spec.is_file
    s = load_splits("synthetic", val_fraction=0.25, seed=2, with_pis=False, synthetic_windows=40,
                    synthetic_length=20)
    t = load_splits(DataSpec(name="synthetic", val_fraction=0.25, synthetic_windows=40, synthetic_length=20), seed=2,
                    with_pis=False)
    for a, b in zip((s.train, s.val, s.test), (t.train, t.val, t.test)):
        np.testing.assert_array_equal(a.signals, b.signals)
    assert len(s.test) == 8 and s.train.groups is None
    with pytest.raises(ValueError, match="unknown data set 'hapt2'"):
        load_splits("hapt2")


def test_run_a_config_on_user_windows(tmp_path, capsys):
    import json

    import yaml

    from topokd.cli import main

    X, y, groups = user_windows(n=48, T=32, C=3, subjects=8)
    np.savez(tmp_path / "windows.npz", X=X, y=y, groups=groups)
    config = {"output": "run", "seed": 0, "data": {"path": "windows.npz"},
              "teachers": {"t": {"model": "cnn", "inputs": "signal",
                                 "train": {"epochs": 1, "batch_size": 16, "progress": False}}}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "exp.yaml"), "--quiet"]) == 0
    assert "teacher t" in capsys.readouterr().out
    summary = json.loads((tmp_path / "run" / "teachers" / "t" / "summary.json").read_text())
    assert summary["best_epoch"] == 1
    # a broken file fails before training, with one line naming it
    X[2, 3, 1] = np.nan
    np.savez(tmp_path / "windows.npz", X=X, y=y, groups=groups)
    assert main(["run", str(tmp_path / "exp.yaml"), "--quiet", "--set", "output=run2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("topokd: error: ") and "windows.npz: array 'X'" in err
    assert "NaN at (sample 2, time 3, channel 1)" in err
    assert err.count("\n") == 1
