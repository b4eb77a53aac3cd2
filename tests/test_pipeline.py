"""Shapes, presets and invariances of the batch pipelines."""

import numpy as np
import pytest

import topokd
from topokd.tda.pipeline import scale_rows


def test_signal_shapes_and_dtype(rng):
    X = rng.normal(size=(5, 64, 3))
    pis = topokd.signal_pis(X)
    assert pis.shape == (5, 3, 50, 50) and pis.dtype == np.float32
    assert topokd.signal_pis(X, preset="tda-kd-signal").shape == (5, 3, 64, 64)
    assert topokd.signal_pis(X, resolution=(20, 10)).shape == (5, 3, 20, 10)
    assert topokd.signal_pis(X, dtype=np.float64).dtype == np.float64


def test_each_channel_is_its_own_signal(rng):
    X = rng.normal(size=(4, 50, 3))
    pis = topokd.signal_pis(X, dtype=np.float64)
    imager = topokd.PersistenceImage(resolution=50, birth_range=(-3, 3), pers_range=(0, 6), sigma=0.15)
    for i in range(4):
        for c in range(3):
            x = X[i, :, c]
            expected = imager.transform(topokd.sublevel_diagrams((x - x.mean()) / x.std()))
            np.testing.assert_allclose(pis[i, c], expected, atol=1e-12)


def test_chunking_does_not_change_the_result(rng):
    X = rng.normal(size=(11, 40, 2))
    whole = topokd.signal_pis(X, dtype=np.float64)
    for chunk in (1, 3, 100):
        np.testing.assert_array_equal(topokd.signal_pis(X, chunk_size=chunk, dtype=np.float64), whole)
    images = rng.uniform(size=(5, 2, 6, 7))
    for mode in ("flatten", "cubical"):
        np.testing.assert_array_equal(topokd.image_pis(images, mode=mode, chunk_size=2),
                                      topokd.image_pis(images, mode=mode))


def test_out_on_chunk_and_progress(rng, tmp_path, capsys):
    X = rng.normal(size=(7, 30, 2))
    out = np.lib.format.open_memmap(tmp_path / "o.npy", mode="w+", dtype=np.float32, shape=(7, 2, 50, 50))
    seen = []
    result = topokd.signal_pis(X, out=out, chunk_size=3, on_chunk=seen.append)
    assert result is out and seen == [3, 3, 1]
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), topokd.signal_pis(X))
    capsys.readouterr()
    np.testing.assert_array_equal(topokd.signal_pis(X, chunk_size=3, progress=True), result)
    assert "7/7" in capsys.readouterr().err  # progress=True: a bar on stderr, as everywhere in topokd
    with pytest.warns(DeprecationWarning, match="renamed on_chunk"):
        old = []
        topokd.signal_pis(X, chunk_size=3, progress=old.append)
    assert old == [3, 3, 1]


def test_image_modes(rng):
    X = rng.uniform(size=(3, 2, 8, 9))
    flat = topokd.image_pis(X)
    assert flat.shape == (3, 2, 50, 50)
    cub = topokd.image_pis(X, mode="cubical")
    assert cub.shape == (3, 2, 2, 50, 50)
    col = topokd.image_pis(X, order="column", dtype=np.float64)
    imager = topokd.PersistenceImage(sigma=0.02)
    expected = imager.transform(topokd.sublevel_diagrams(X[1, 0].ravel(order="F")))
    np.testing.assert_allclose(col[1, 0], expected, atol=1e-12)
    h0, h1 = topokd.cubical_diagrams(X[2, 1])
    np.testing.assert_allclose(cub[2, 1, 0], imager.transform(h0), atol=1e-6)
    np.testing.assert_allclose(cub[2, 1, 1], imager.transform(h1), atol=1e-6)


def test_scaling_by_hand():
    rows = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    np.testing.assert_allclose(scale_rows(rows.copy(), "standardize"),
                               [[-np.sqrt(1.5), 0.0, np.sqrt(1.5)], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(scale_rows(rows.copy(), "minmax"), [[-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(scale_rows(rows.copy(), "unit"), [[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]])


def test_standardised_preset_is_scale_and_offset_invariant(rng):
    X = rng.normal(size=(3, 80, 2))
    np.testing.assert_allclose(topokd.signal_pis(X * 7.5 - 3.0), topokd.signal_pis(X), atol=1e-5)


def test_keep_essential_and_min_persistence():
    x = np.array([0.0, 2.0, 1.0, 1.5, -1.0, 3.0])
    assert topokd.sublevel_diagrams(x).tolist() == [[0.0, 2.0], [1.0, 1.5]]
    assert topokd.sublevel_diagrams(x, keep_essential=True).tolist() == [[-1.0, 3.0], [0.0, 2.0], [1.0, 1.5]]
    assert topokd.sublevel_diagrams(x, min_persistence=0.5).tolist() == [[0.0, 2.0]]


def test_presets_are_documented():
    presets = topokd.list_presets()
    assert {"pinet-image", "tda-kd-signal", "standard-signal", "standard-image"} <= set(presets)
    assert all(len(text) > 80 for text in presets.values())
    assert topokd.get_preset(None, "signal").name == "standard-signal"


@pytest.mark.parametrize("preset, scale", [("tda-kd-signal", None), ("tda-kd-signal", "minmax")])
def test_override_beats_preset(preset, scale, rng):
    t = topokd.SignalPersistenceImages(preset, scale=scale, resolution=32)
    assert t.config_["scale"] == scale and t.image_shape == (32, 32)
    assert t.config_["layout"] == "legacy"


def test_inputs_are_never_modified(rng, tmp_path):
    X = rng.normal(size=(3, 30, 1))
    before = X.copy()
    topokd.signal_pis(X)  # one channel: the (N, C, T) view needs no copy
    np.testing.assert_array_equal(X, before)
    images = rng.uniform(size=(2, 1, 5, 5))
    before = images.copy()
    for mode in ("flatten", "cubical"):
        topokd.image_pis(images, mode=mode, scale="standardize")
    np.testing.assert_array_equal(images, before)
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(topokd.signal_pis(mapped), topokd.signal_pis(X))


def test_batched_diagrams_equal_single_calls(rng):
    X = rng.normal(size=(3, 40, 2))
    dg = topokd.signal_diagrams(X, min_persistence=0.1)
    for i in range(3):
        for c in range(2):
            np.testing.assert_array_equal(dg[i][c], topokd.sublevel_diagrams(X[i, :, c], min_persistence=0.1))
    images = rng.integers(0, 4, (2, 2, 5, 6)).astype(float)
    cub = topokd.image_diagrams(images)
    flat = topokd.image_diagrams(images, mode="flatten", order="column")
    for i in range(2):
        for c in range(2):
            h0, h1 = topokd.cubical_diagrams(images[i, c])
            np.testing.assert_array_equal(cub[i][c][0], h0)
            np.testing.assert_array_equal(cub[i][c][1], h1)
            np.testing.assert_array_equal(flat[i][c], topokd.sublevel_diagrams(images[i, c].ravel(order="F")))
