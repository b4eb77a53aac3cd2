"""Persistence images of topokd cross-checked against persim.

References: ``persim.PersistenceImager`` (layout "persim") and the deprecated
``persim.PersImage`` (layout "legacy", used by the PI-Net and TDA-KD
pipelines), fed with diagrams computed by gudhi / ripser.  Both persim classes
integrate the Gaussian exactly over each pixel, as topokd does, so images
agree to rounding (``atol=1e-9``).

Conventions: topokd's ``sigma`` is a standard deviation; persim's
``kernel_params={"sigma": v}`` is a variance, ``PersImage(spread=s)`` a
standard deviation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import topokd

import persim
import gudhi
import ripser
import scipy.sparse as sparse

ATOL = 1e-9
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (birth_range, pers_range) with equal widths; the pixel size (b1-b0)/R must
# give persim exactly R pixels per axis (asserted in `persim_imager`).
RANGES = [
    ((0.0, 1.0), (0.0, 1.0)),
    ((-1.0, 1.0), (0.0, 2.0)),
    ((-3.0, 3.0), (0.0, 6.0)),
    ((0.5, 2.5), (0.0, 2.0)),
    ((-2.0, 0.0), (0.5, 2.5)),
]
RESOLUTIONS = [1, 7, 20, 50]


def persim_imager(birth_range, pers_range, resolution, sigma, **kw):
    b0, b1 = birth_range
    pimgr = persim.PersistenceImager(birth_range=birth_range, pers_range=pers_range,
                                     pixel_size=(b1 - b0) / resolution,
                                     kernel_params={"sigma": sigma**2}, **kw)
    assert pimgr.resolution == (resolution, resolution), (birth_range, pers_range, resolution)
    return pimgr


def pers_image(dgm, **kw):
    """persim.PersImage(...).transform(dgm), warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.asarray(persim.PersImage(verbose=False, **kw).transform(np.array(dgm, dtype=np.float64)))


def ripser_lower_star(x):
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    idx = np.arange(n)
    dm = sparse.coo_matrix((np.r_[x, np.maximum(x[:-1], x[1:])], (np.r_[idx, idx[:-1]], np.r_[idx, idx[1:]])),
                           shape=(n, n)).tocsr()
    dgm = ripser.ripser(dm, maxdim=0, distance_matrix=True)["dgms"][0]
    return dgm[np.isfinite(dgm[:, 1])]


def gudhi_cubical(img, dim):
    cc = gudhi.CubicalComplex(top_dimensional_cells=np.asarray(img, dtype=np.float64))
    cc.compute_persistence(homology_coeff_field=2, min_persistence=-1.0)
    iv = np.asarray(cc.persistence_intervals_in_dimension(dim), dtype=np.float64).reshape(-1, 2)
    iv = iv[np.isfinite(iv[:, 1])]
    return iv[iv[:, 1] - iv[:, 0] > 0]


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------
@st.composite
def diagrams(draw, birth_range=(-4.0, 4.0), max_pers=8.0, min_size=0, max_size=12, min_pers=0.0):
    """(k, 2) birth-death arrays; points inside and outside the image ranges."""
    k = draw(st.integers(min_size, max_size))
    b = draw(st.lists(st.floats(*birth_range, allow_nan=False), min_size=k, max_size=k))
    p = draw(st.lists(st.floats(min_pers, max_pers, allow_nan=False), min_size=k, max_size=k))
    b = np.asarray(b, dtype=np.float64)
    return np.column_stack([b, b + np.asarray(p, dtype=np.float64)]).reshape(-1, 2)


SIGMAS = st.sampled_from([0.01, 0.05, 0.1, 0.3, 1.0]) | st.floats(0.005, 2.0)


# ---------------------------------------------------------------------------
# persim layout vs PersistenceImager
# ---------------------------------------------------------------------------
@SETTINGS
@given(st.sampled_from(RANGES), st.sampled_from(RESOLUTIONS), SIGMAS, diagrams())
def test_persistence_image_matches_persistence_imager(ranges, resolution, sigma, dgm):
    birth_range, pers_range = ranges
    pi = topokd.PersistenceImage(resolution=resolution, birth_range=birth_range, pers_range=pers_range,
                                 sigma=sigma)
    got = pi.transform(dgm)
    ref = persim_imager(birth_range, pers_range, resolution, sigma).transform(dgm, skew=True)
    assert got.shape == (resolution, resolution) == pi.shape
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL, err_msg=f"dgm={dgm.tolist()}")


@SETTINGS
@given(st.sampled_from(RANGES), st.sampled_from(RESOLUTIONS), SIGMAS,
       st.lists(diagrams(max_size=6), min_size=1, max_size=5))
def test_list_of_diagrams_matches_per_diagram_imager(ranges, resolution, sigma, dgms):
    birth_range, pers_range = ranges
    got = topokd.PersistenceImage(resolution=resolution, birth_range=birth_range, pers_range=pers_range,
                                  sigma=sigma).transform(dgms)
    assert got.shape == (len(dgms), resolution, resolution)
    pimgr = persim_imager(birth_range, pers_range, resolution, sigma)
    for i, d in enumerate(dgms):
        np.testing.assert_allclose(got[i], pimgr.transform(d, skew=True), rtol=0, atol=ATOL,
                                   err_msg=f"diagram {i}: {d.tolist()}")


@SETTINGS
@given(st.sampled_from(RANGES), st.sampled_from(RESOLUTIONS), SIGMAS, diagrams())
# Found by hypothesis: a subnormal persistence gives a subnormal image peak.
@example(ranges=RANGES[0], resolution=1, sigma=0.01, dgm=np.array([[0.0, 2.22507386e-313]]))
def test_normalize_max_matches_imager_over_its_max(ranges, resolution, sigma, dgm):
    birth_range, pers_range = ranges
    got = topokd.PersistenceImage(resolution=resolution, birth_range=birth_range, pers_range=pers_range,
                                  sigma=sigma, normalize="max").transform(dgm)
    ref = persim_imager(birth_range, pers_range, resolution, sigma).transform(dgm, skew=True)
    assert np.all(np.isfinite(got))
    peak = ref.max()
    if peak > 1e-6:
        np.testing.assert_allclose(got, ref / peak, rtol=0, atol=ATOL)
        assert got.max() == pytest.approx(1.0, abs=1e-12)
    elif peak == 0:
        np.testing.assert_array_equal(got, 0.0)
    # (tiny but nonzero peaks: the ratio amplifies rounding; not compared)


@SETTINGS
@given(st.sampled_from(RANGES), st.sampled_from(RESOLUTIONS), SIGMAS, diagrams())
def test_weight_callable_matches_persistence_power(ranges, resolution, sigma, dgm):
    birth_range, pers_range = ranges
    got = topokd.PersistenceImage(resolution=resolution, birth_range=birth_range, pers_range=pers_range,
                                  sigma=sigma, weight=lambda b, p: p**2).transform(dgm)
    ref = persim_imager(birth_range, pers_range, resolution, sigma,
                        weight="persistence", weight_params={"n": 2}).transform(dgm, skew=True)
    np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_empty_diagram_gives_zeros(resolution):
    pi = topokd.PersistenceImage(resolution=resolution, birth_range=(-1, 1), pers_range=(0, 2), sigma=0.1)
    for empty in (np.empty((0, 2)), np.zeros((0, 2), np.float32)):
        got = pi.transform(empty)
        assert got.shape == (resolution, resolution)
        np.testing.assert_array_equal(got, 0.0)
        np.testing.assert_array_equal(got, persim_imager((-1, 1), (0, 2), resolution, 0.1).transform(empty))
    batch = pi.transform([np.empty((0, 2)), np.array([[0.0, 0.5]]), np.empty((0, 2))])
    np.testing.assert_array_equal(batch[[0, 2]], 0.0)
    assert batch[1].max() > 0


def test_normalize_max_all_zero_stays_zero():
    pi = topokd.PersistenceImage(resolution=7, birth_range=(0, 1), pers_range=(0, 1), sigma=0.1, normalize="max")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning
        out = pi.transform([np.empty((0, 2)), np.array([[0.3, 0.3]]), np.array([[0.2, 0.7]])])
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[0], 0.0)  # empty
    np.testing.assert_array_equal(out[1], 0.0)  # zero persistence -> zero weight
    assert out[2].max() == pytest.approx(1.0)


@pytest.mark.parametrize("resolution", [1, 7, 50])
def test_normalize_max_subnormal_peak_stays_finite(resolution):
    # A point with a subnormal persistence (weight ~2e-313) gives an image
    # whose maximum is subnormal; 1/max overflows to inf.  The reference
    # (persim image divided by its max) is finite with maximum 1.
    dgm = np.array([[0.0, 2.22507386e-313]])
    got = topokd.PersistenceImage(resolution=resolution, sigma=0.01, normalize="max").transform(dgm)
    ref = persim_imager((0.0, 1.0), (0.0, 1.0), resolution, 0.01).transform(dgm, skew=True)
    assert 0 < ref.max() < 1e-300
    ref = ref / ref.max()
    assert np.all(np.isfinite(ref)) and ref.max() == 1.0
    assert np.all(np.isfinite(got)), f"non-finite normalised image: {got}"
    assert got.max() == pytest.approx(1.0)
    assert np.all((got >= 0) & (got <= 1 + 1e-12))


def test_orientation_birth_first_axis():
    # One point at birth 0.15, persistence 0.75 on a 10x10 grid over [0,1]^2:
    # the brightest pixel is [birth_bin 1, pers_bin 7] (persim's indexing).
    dgm = np.array([[0.15, 0.9]])
    got = topokd.PersistenceImage(resolution=10, sigma=0.02).transform(dgm)
    assert np.unravel_index(np.argmax(got), got.shape) == (1, 7)
    ref = persim_imager((0.0, 1.0), (0.0, 1.0), 10, 0.02).transform(dgm, skew=True)
    np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL)


# ---------------------------------------------------------------------------
# legacy layout vs persim.PersImage
# ---------------------------------------------------------------------------
LEGACY_RES = st.tuples(st.sampled_from([1, 2, 5, 20, 64]), st.sampled_from([1, 3, 5, 20, 64]))
LEGACY_BD = st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (-2.5, 0.5), (0.0, 3.0), (-0.5, 2.0)])


@SETTINGS
@given(LEGACY_RES, LEGACY_BD, st.none() | st.sampled_from([0.015, 0.05, 0.2]) | st.floats(0.005, 1.0),
       diagrams(birth_range=(-3.0, 3.0), max_pers=4.0, min_size=1, min_pers=1e-3))
def test_legacy_layout_matches_persimage(res, bd, spread, dgm):
    nx, ny = res
    min_bd, max_bd = bd
    got = topokd.PersistenceImage(resolution=(nx, ny), birth_range=(min_bd, max_bd), pers_range=None,
                                  sigma=spread, layout="legacy").transform(dgm)
    ref = pers_image(dgm, pixels=(nx, ny), spread=spread, specs={"minBD": min_bd, "maxBD": max_bd})
    assert ref.shape == (ny, nx)
    assert got.shape == (ny, nx)
    np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL, err_msg=f"dgm={dgm.tolist()}")


@SETTINGS
@given(LEGACY_RES, LEGACY_BD, st.lists(diagrams(birth_range=(-3.0, 3.0), max_pers=4.0, min_size=1,
                                                max_size=6, min_pers=1e-3), min_size=1, max_size=4))
def test_legacy_list_matches_persimage_per_diagram(res, bd, dgms):
    nx, ny = res
    got = topokd.PersistenceImage(resolution=res, birth_range=bd, pers_range=None, layout="legacy",
                                  sigma=0.1).transform(dgms)
    assert got.shape == (len(dgms), ny, nx)
    for i, d in enumerate(dgms):
        ref = pers_image(d, pixels=res, spread=0.1, specs={"minBD": bd[0], "maxBD": bd[1]})
        np.testing.assert_allclose(got[i], ref, rtol=0, atol=ATOL)


def test_legacy_orientation_highest_persistence_on_top():
    # A high-persistence point lands in the top rows ([ny-1-pers_bin, birth_bin]).
    dgm = np.array([[0.05, 0.95]])
    got = topokd.PersistenceImage(resolution=(10, 10), birth_range=(0, 1), pers_range=None,
                                  sigma=0.02, layout="legacy").transform(dgm)
    row, col = np.unravel_index(np.argmax(got), got.shape)
    assert row <= 1 and col <= 1
    np.testing.assert_allclose(got, pers_image(dgm, pixels=(10, 10), spread=0.02,
                                               specs={"minBD": 0, "maxBD": 1}), rtol=0, atol=ATOL)


# ---------------------------------------------------------------------------
# whole pipelines vs references
# ---------------------------------------------------------------------------
def _minmax_pm1(x):
    lo, hi = x.min(), x.max()
    return 2.0 * (x - lo) / (hi - lo) - 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_signal_pis_tda_kd_preset_matches_ripser_persimage(seed):
    rng = np.random.default_rng(seed)
    n, t, c = 3, 60, 2
    X = rng.standard_normal((n, t, c)).cumsum(axis=1)
    X[0, :, 1] = np.round(X[0, :, 1])  # ties and plateaus
    for i in range(n):
        for j in range(c):
            X[i, :, j] = _minmax_pm1(X[i, :, j])
    # float32-exact values, so ripser (float32 internally) returns them exactly
    X = np.clip(X.astype(np.float32).astype(np.float64), -1.0, 1.0)

    got = topokd.signal_pis(X, preset="tda-kd-signal", dtype=np.float64)
    assert got.shape == (n, c, 64, 64) and got.dtype == np.float64

    for i in range(n):
        for j in range(c):
            dgm = ripser_lower_star(X[i, :, j])
            dgm = dgm[dgm[:, 1] - dgm[:, 0] > 0.01]
            ref = pers_image(dgm, pixels=(64, 64), spread=0.015, specs={"minBD": -1, "maxBD": 1})
            peak = ref.max()
            if peak > 0:
                ref = ref / peak
            assert len(dgm) > 0
            np.testing.assert_allclose(got[i, j], ref, rtol=0, atol=ATOL, err_msg=f"sample {i}, channel {j}")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("hw", [(8, 8), (6, 11)])
def test_image_pis_cubical_default_preset_matches_gudhi_imager(seed, hw):
    rng = np.random.default_rng(seed)
    n, c = 2, 3
    X = rng.random((n, c, *hw))
    X[0, 1] = np.round(X[0, 1] * 4) / 4  # ties
    got = topokd.image_pis(X, mode="cubical", preset=None, dtype=np.float64)
    assert got.shape == (n, c, 2, 50, 50) and got.dtype == np.float64

    pimgr = persim.PersistenceImager(birth_range=(0, 1), pers_range=(0, 1), pixel_size=0.02,
                                     kernel_params={"sigma": 0.0004})
    assert pimgr.resolution == (50, 50)
    for i in range(n):
        for j in range(c):
            for dim in (0, 1):
                dgm = gudhi_cubical(X[i, j], dim)
                ref = pimgr.transform(dgm, skew=True) if len(dgm) else np.zeros((50, 50))
                np.testing.assert_allclose(got[i, j, dim], ref, rtol=0, atol=ATOL,
                                           err_msg=f"sample {i}, channel {j}, H{dim}")
    assert got[:, :, 1].max() > 0  # H1 is actually exercised
