"""Bad input gets a clear error that says what was wrong; nothing leaks NaN."""

import numpy as np
import pytest

import topokd


@pytest.mark.parametrize("bad, where", [
    (np.nan, "sample 1, time step 7, channel 2"),
    (np.inf, "sample 1, time step 7, channel 2"),
])
def test_signal_nonfinite_names_sample_and_channel(bad, where):
    X = np.zeros((3, 10, 3))
    X[1, 7, 2] = bad
    with pytest.raises(ValueError, match=where):
        topokd.signal_pis(X)


def test_nonfinite_in_a_later_chunk_reports_the_global_index():
    X = np.random.default_rng(0).normal(size=(10, 20, 2))
    X[8, 3, 1] = np.nan
    with pytest.raises(ValueError, match="sample 8, time step 3, channel 1"):
        topokd.signal_pis(X, chunk_size=3)


def test_image_nonfinite_names_sample_and_channel():
    X = np.zeros((2, 3, 4, 4))
    X[1, 2, 0, 3] = np.nan
    with pytest.raises(ValueError, match="sample 1, channel 2, row 0, column 3"):
        topokd.image_pis(X)
    with pytest.raises(ValueError, match="row 0, column 1"):
        topokd.cubical_diagrams(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="sample 2"):
        topokd.sublevel_diagrams([0.0, 1.0, np.inf])


@pytest.mark.parametrize("shape, message", [
    ((10, 3), r"3 dimensions \(N, T, C\).*X\[\.\.\., None\]"),
    ((2, 10, 3, 1), r"3 dimensions"),
    ((0, 10, 3), "empty"),
    ((2, 0, 3), "empty"),
])
def test_signal_wrong_dimensions_or_empty(shape, message):
    with pytest.raises(ValueError, match=message):
        topokd.signal_pis(np.zeros(shape))


def test_length_one_signals_are_refused():
    with pytest.raises(ValueError, match="at least 2 time steps"):
        topokd.signal_pis(np.zeros((4, 1, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        topokd.sublevel_diagrams([1.0])


def test_image_wrong_dimensions():
    with pytest.raises(ValueError, match=r"4 dimensions \(N, C, H, W\).*transpose"):
        topokd.image_pis(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="at least 2 pixels"):
        topokd.image_pis(np.zeros((2, 3, 1, 1)))


@pytest.mark.parametrize("X", [
    np.array([[["a", "b"], ["c", "d"]]]),
    np.zeros((2, 5, 1), dtype=complex),
    np.empty((2, 5, 1), dtype=object),
])
def test_non_numeric_dtypes(X):
    with pytest.raises(TypeError, match="real numbers"):
        topokd.signal_pis(X)


def test_integer_and_bool_inputs_are_cast():
    X = np.random.default_rng(0).integers(-5, 5, (3, 40, 2))
    assert np.array_equal(topokd.signal_pis(X), topokd.signal_pis(X.astype(float)))
    assert topokd.signal_pis(X.astype(np.int8)).dtype == np.float32
    assert topokd.sublevel_diagrams(np.array([True, False, True])).tolist() == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(birth_range=(1.0, 0.0)), "reversed"),
    (dict(pers_range=(0.5, 0.5)), "low < high"),
    (dict(birth_range=(0.0, np.inf)), "finite"),
    (dict(sigma=0.0), "sigma must be a finite number > 0"),
    (dict(sigma=-1.0), "sigma"),
    (dict(sigma=np.nan), "sigma"),
    (dict(resolution=0), "resolution must be >= 1"),
    (dict(resolution=2.5), "resolution must be an int"),
    (dict(weight="cubic"), "weight must be one of"),
    (dict(normalize="sum"), "normalize must be one of"),
    (dict(layout="gudhi"), "layout must be one of"),
    (dict(layout="legacy", birth_range=(0.2, 1.0), pers_range=None), r"min\(minBD, 0\)"),
    (dict(layout="legacy", birth_range=(0.0, 1.0), pers_range=(0.0, 2.0)), "pers_range=None"),
])
def test_persistence_image_parameters(kwargs, message):
    pi = topokd.PersistenceImage(**kwargs)  # stored unchecked (scikit-learn's contract) ...
    with pytest.raises(topokd.tda.InvalidParameterError, match=message):
        pi.fit()  # ... and refused by fit
    with pytest.raises(ValueError, match=f"PersistenceImage: .*{message}"):
        pi.transform(np.array([[0.0, 0.5]]))  # ... and by transform


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_persistence=-0.1), "min_persistence must be a finite number >= 0"),
    (dict(scale="zscore"), "scale must be one of"),
    (dict(keep_essential="yes"), "keep_essential must be True or False"),
    (dict(bandwidth=1.0), r"unknown parameter\(s\) \['bandwidth'\]"),
    (dict(preset="pinet-image"), "for image inputs"),
    (dict(preset="nope"), "unknown preset 'nope'"),
])
def test_pipeline_parameters(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        topokd.signal_pis(np.zeros((1, 10, 1)), **kwargs)


def test_bad_diagrams():
    pi = topokd.PersistenceImage()
    with pytest.raises(ValueError, match="non-finite pair at row 1"):
        pi.transform(np.array([[0.0, 1.0], [0.1, np.inf]]))
    with pytest.raises(ValueError, match="death < birth at row 0"):
        pi.transform(np.array([[0.5, 0.1]]))
    with pytest.raises(ValueError, match=r"shape \(k, 2\)"):
        pi.transform([np.zeros((3, 3))])
    with pytest.raises(ValueError, match="one finite weight per point"):
        topokd.PersistenceImage(weight=lambda b, p: np.ones(1)).transform(np.array([[0.0, 1.0], [0.1, 0.5]]))


def test_constant_signals_and_images_give_zero_images_not_nan():
    for preset in ("standard-signal", "tda-kd-signal"):
        pis = topokd.signal_pis(np.full((2, 30, 2), 3.0), preset=preset)
        assert np.all(pis == 0) and np.isfinite(pis).all()
    for mode in ("flatten", "cubical"):
        pis = topokd.image_pis(np.full((2, 3, 8, 8), 0.5), mode=mode, preset="pinet-image")
        assert np.all(pis == 0) and np.isfinite(pis).all()
    assert topokd.sublevel_diagrams(np.full(10, -2.0)).shape == (0, 2)


def test_out_must_match():
    with pytest.raises(ValueError, match="out has shape"):
        topokd.signal_pis(np.zeros((2, 10, 1)), out=np.empty((2, 1, 49, 50), np.float32))
