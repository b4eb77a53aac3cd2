"""Persistence diagrams of topokd cross-checked against independent references.

References: ``gudhi.CubicalComplex(top_dimensional_cells=...)`` (1-D and 2-D
sublevel persistence, double precision) and the ripser "lower star time
series" recipe (H0 of a sparse distance matrix whose diagonal holds the vertex
values).  ripser stores filtration values as float32, so every input fed to it
here is exactly representable in float32; then all three agree bit for bit and
diagrams are compared with ``atol=0, rtol=0``.

Diagrams are compared as multisets: finite pairs, zero-persistence pairs
removed, sorted lexicographically.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import topokd
from topokd.tda.diagrams import path_pairs

import gudhi
import ripser
import scipy.sparse as sparse

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------
def _multiset(pairs) -> np.ndarray:
    arr = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    return arr[np.lexsort((arr[:, 1], arr[:, 0]))]


def _assert_same(actual, expected, what=""):
    a, e = _multiset(actual), _multiset(expected)
    assert a.shape == e.shape, f"{what}: {len(a)} pairs vs reference {len(e)}\n{a}\n{e}"
    np.testing.assert_allclose(a, e, rtol=0, atol=0, err_msg=what)


def gudhi_diagram(arr, dim, min_persistence=None, keep_infinite=False):
    """Finite pairs of gudhi's cubical sublevel persistence in dimension ``dim``.

    ``min_persistence=None``: compute everything and drop zero-persistence
    pairs here; otherwise let gudhi filter (``death - birth > m``).
    """
    cc = gudhi.CubicalComplex(top_dimensional_cells=np.asarray(arr, dtype=np.float64))
    cc.compute_persistence(homology_coeff_field=2,
                           min_persistence=-1.0 if min_persistence is None else float(min_persistence))
    iv = np.asarray(cc.persistence_intervals_in_dimension(dim), dtype=np.float64).reshape(-1, 2)
    if not keep_infinite:
        iv = iv[np.isfinite(iv[:, 1])]
    if min_persistence is None:
        iv = iv[iv[:, 1] - iv[:, 0] > 0]
    return iv


def ripser_lower_star(x):
    """H0 of the lower-star filtration via ripser (ripser docs recipe)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    idx = np.arange(n)
    rows = np.r_[idx, idx[:-1]]
    cols = np.r_[idx, idx[1:]]
    vals = np.r_[x, np.maximum(x[:-1], x[1:])]
    dm = sparse.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    dgm = ripser.ripser(dm, maxdim=0, distance_matrix=True)["dgms"][0]
    dgm = dgm[np.isfinite(dgm[:, 1])]
    return dgm[dgm[:, 1] - dgm[:, 0] > 0]


def _assert_sorted_by_birth_then_death(d):
    assert d.dtype == np.float64 and d.ndim == 2 and d.shape[1] == 2
    np.testing.assert_array_equal(d, _multiset(d), err_msg="output not sorted by birth then death")


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------
F32 = st.floats(-1024.0, 1024.0, allow_nan=False, allow_infinity=False, width=32)
NEG32 = st.floats(-1024.0, -0.0009765625, allow_nan=False, allow_infinity=False, width=32)
TIED = st.integers(-3, 3).map(float)


@st.composite
def plateau_signals(draw):
    runs = draw(st.lists(st.tuples(st.one_of(TIED, F32), st.integers(1, 12)), min_size=1, max_size=40))
    x = [v for v, r in runs for _ in range(r)][:200]
    if len(x) < 2:
        x = x + x + [draw(TIED)]
    return x


SIGNALS_F32 = st.one_of(
    st.lists(F32, min_size=2, max_size=200),
    st.lists(TIED, min_size=2, max_size=200),
    st.lists(NEG32, min_size=2, max_size=200),
    plateau_signals(),
).map(lambda v: np.asarray(v, dtype=np.float64))

# Full double precision (gudhi only; ripser would round to float32).
SIGNALS_F64 = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=2, max_size=200
).map(lambda v: np.asarray(v, dtype=np.float64))

IMAGES = st.one_of(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)),
               elements=st.floats(-10, 10, allow_nan=False, allow_infinity=False)),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)),
               elements=st.integers(0, 3).map(float)),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)),
               elements=st.integers(-1, 1).map(float)),
)


# ---------------------------------------------------------------------------
# 1-D sublevel diagrams
# ---------------------------------------------------------------------------
@SETTINGS
@given(SIGNALS_F32)
def test_sublevel_matches_gudhi_and_ripser(x):
    d = topokd.sublevel_diagrams(x)
    _assert_sorted_by_birth_then_death(d)
    _assert_same(d, gudhi_diagram(x, 0), f"gudhi, x={x.tolist()}")
    _assert_same(d, ripser_lower_star(x), f"ripser, x={x.tolist()}")


@SETTINGS
@given(SIGNALS_F64)
def test_sublevel_matches_gudhi_double_precision(x):
    _assert_same(topokd.sublevel_diagrams(x), gudhi_diagram(x, 0), f"x={x.tolist()}")


@SETTINGS
@given(st.one_of(SIGNALS_F32, SIGNALS_F64))
def test_keep_essential_adds_min_max_pair(x):
    ref = gudhi_diagram(x, 0, keep_infinite=True)
    ess = ref[~np.isfinite(ref[:, 1])]
    assert len(ess) == 1 and ess[0, 0] == x.min()  # the reference itself: one infinite bar at min
    expected = list(ref[np.isfinite(ref[:, 1])])
    if x.max() > x.min():
        expected.append([x.min(), x.max()])
    d = topokd.sublevel_diagrams(x, keep_essential=True)
    _assert_sorted_by_birth_then_death(d)
    _assert_same(d, expected, f"x={x.tolist()}")


@SETTINGS
@given(SIGNALS_F32, st.data())
def test_min_persistence_matches_gudhi_filter(x, data):
    base = gudhi_diagram(x, 0)
    # Thresholds on the boundary (an exact persistence of the diagram) are the
    # interesting ones: gudhi keeps strictly greater.
    lifetimes = (base[:, 1] - base[:, 0]).tolist()
    m = data.draw(st.one_of(st.sampled_from(lifetimes), st.floats(0, 500)) if lifetimes else st.floats(0, 500),
                  label="min_persistence")
    expected = gudhi_diagram(x, 0, min_persistence=m)
    _assert_same(topokd.sublevel_diagrams(x, min_persistence=m), expected, f"m={m!r}, x={x.tolist()}")
    # Independent of gudhi as well: exactly the pairs with lifetime > m.
    _assert_same(topokd.sublevel_diagrams(x, min_persistence=m), base[base[:, 1] - base[:, 0] > m])


@pytest.mark.parametrize("x", [[3, 1, 4, 1, 5, 9, 2, 6], np.array([3, 1, 4, 1, 5, 9, 2, 6], np.int64)])
def test_hand_computed_pi_digits(x):
    # Vertices enter in value order (index: value):
    #   1 (i1), 1 (i3)  -> two components, both born at 1
    #   2 (i6)          -> new component born at 2
    #   3 (i0)          -> joins i1 (no pair)
    #   4 (i2)          -> merges {i0,i1} (born 1) with {i3} (born 1): pair (1, 4)
    #   5 (i4)          -> joins i3's component
    #   6 (i7)          -> joins i6's component (born 2)
    #   9 (i5)          -> merges component born 1 with component born 2: pair (2, 9)
    # The component born at 1 never dies: essential bar (1, inf) -> (1, max=9).
    d = topokd.sublevel_diagrams(x)
    np.testing.assert_array_equal(d, [[1.0, 4.0], [2.0, 9.0]])
    np.testing.assert_array_equal(topokd.sublevel_diagrams(x, keep_essential=True),
                                  [[1.0, 4.0], [1.0, 9.0], [2.0, 9.0]])
    np.testing.assert_array_equal(topokd.sublevel_diagrams(x, min_persistence=3.0), [[2.0, 9.0]])
    np.testing.assert_array_equal(topokd.sublevel_diagrams(x, min_persistence=7.0), np.empty((0, 2)))
    _assert_same(d, gudhi_diagram(np.asarray(x, float), 0))


def test_hand_computed_plateaus():
    # Minima: plateau {0,0} at i0-1 and plateau {-1,-1,-1} at i4-6; the
    # plateau of 2s between them is the saddle: pair (0, 2).  The trailing 5
    # only extends the older component.
    x = [0, 0, 2, 2, -1, -1, -1, 5]
    np.testing.assert_array_equal(topokd.sublevel_diagrams(x), [[0.0, 2.0]])
    _assert_same(topokd.sublevel_diagrams(x), ripser_lower_star(x))


@pytest.mark.parametrize("value", [0.0, -2.5, 7.0])
@pytest.mark.parametrize("n", [2, 3, 50])
def test_constant_signal_is_empty(value, n):
    x = np.full(n, value)
    assert topokd.sublevel_diagrams(x).shape == (0, 2)
    assert gudhi_diagram(x, 0).shape == (0, 2)
    # the essential bar has zero length and is dropped too
    assert topokd.sublevel_diagrams(x, keep_essential=True).shape == (0, 2)


def test_monotone_signal_has_only_the_essential_bar():
    x = np.linspace(-1, 1, 17)
    assert topokd.sublevel_diagrams(x).shape == (0, 2)
    np.testing.assert_array_equal(topokd.sublevel_diagrams(x, keep_essential=True), [[-1.0, 1.0]])


# ---------------------------------------------------------------------------
# batched path kernel (used by signal_pis)
# ---------------------------------------------------------------------------
@SETTINGS
@given(st.one_of(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(2, 120)),
               elements=st.floats(-50, 50, allow_nan=False, allow_infinity=False)),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(2, 120)),
               elements=st.integers(-3, 3).map(float)),
))
def test_path_pairs_batch_matches_per_row_gudhi(signals):
    signals = np.ascontiguousarray(signals)
    pairs, counts = path_pairs(signals)
    assert counts.shape == (signals.shape[0],)
    for s, row in enumerate(signals):
        _assert_same(pairs[s, : counts[s]], gudhi_diagram(row, 0), f"row {s}: {row.tolist()}")


@pytest.mark.parametrize("length", [60, 3000, 9000])
def test_both_sorts_of_argsort_values_match_gudhi(length):
    """Short windows sort their extrema with numba's quicksort, long ones
    (>= RADIX_MIN_LENGTH extrema) with the radix sort: both against gudhi,
    with heavy ties, and the order itself against a sorted check."""
    from topokd.tda._diagram_kernels import RADIX_MIN_LENGTH, argsort_values

    rng = np.random.default_rng(length)
    noisy = rng.standard_normal(length)
    tied = np.round(noisy * 2) / 2
    for row in (noisy, tied, -np.abs(noisy)):
        order = argsort_values(row)
        assert sorted(order.tolist()) == list(range(length)) and np.all(np.diff(row[order]) >= 0)
        pairs, counts = path_pairs(np.ascontiguousarray(row[None]))
        _assert_same(pairs[0, : counts[0]], gudhi_diagram(row, 0), f"length {length}")
    assert (length < RADIX_MIN_LENGTH) == (length == 60)  # argsort_values(row) took each path once


def test_path_pairs_random_batch_matches_gudhi_and_ripser():
    rng = np.random.default_rng(1234)
    signals = rng.standard_normal((64, 200)).astype(np.float32).astype(np.float64)
    signals[::4] = np.round(signals[::4] * 2)  # heavy ties in every fourth row
    pairs, counts = path_pairs(np.ascontiguousarray(signals))
    for s, row in enumerate(signals):
        _assert_same(pairs[s, : counts[s]], gudhi_diagram(row, 0), f"row {s}")
        _assert_same(pairs[s, : counts[s]], ripser_lower_star(row), f"row {s}")


# ---------------------------------------------------------------------------
# cubical (2-D) diagrams
# ---------------------------------------------------------------------------
@SETTINGS
@given(IMAGES)
def test_cubical_matches_gudhi(img):
    h0, h1 = topokd.cubical_diagrams(img)
    _assert_sorted_by_birth_then_death(h0)
    _assert_sorted_by_birth_then_death(h1)
    _assert_same(h0, gudhi_diagram(img, 0), f"H0, img={img.tolist()}")
    _assert_same(h1, gudhi_diagram(img, 1), f"H1, img={img.tolist()}")


@SETTINGS
@given(IMAGES, st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]))
def test_cubical_min_persistence_matches_gudhi(img, m):
    h0, h1 = topokd.cubical_diagrams(img, min_persistence=m)
    _assert_same(h0, gudhi_diagram(img, 0, min_persistence=m), f"H0, m={m}, img={img.tolist()}")
    _assert_same(h1, gudhi_diagram(img, 1, min_persistence=m), f"H1, m={m}, img={img.tolist()}")


def test_cubical_ring_around_a_peak():
    # Eight 0-pixels form a closed loop at level 0 around the centre pixel,
    # whose interior only fills in at 5: one H1 pair (0, 5).  The corner
    # vertices of the centre pixel are shared with the ring, so no new H0
    # component appears: H0 has only the essential bar (0, 5).
    img = np.zeros((3, 3))
    img[1, 1] = 5.0
    h0, h1 = topokd.cubical_diagrams(img)
    assert h0.shape == (0, 2)
    np.testing.assert_array_equal(h1, [[0.0, 5.0]])
    np.testing.assert_array_equal(topokd.cubical_diagrams(img, keep_essential=True)[0], [[0.0, 5.0]])
    _assert_same(h1, gudhi_diagram(img, 1))


def test_cubical_two_basins_and_a_bridge():
    # Left and right columns of 0s are two components at level 0 (they share
    # no vertex).  At 1 the centre pixel enters; it shares an edge with both
    # columns and merges them: H0 pair (0, 1).  The 3s then fill the top and
    # bottom middle; each has an edge on the outer boundary, so no loop ever
    # encloses anything: no H1 pair.
    img = np.array([[0, 3, 0],
                    [0, 1, 0],
                    [0, 3, 0]], dtype=float)
    h0, h1 = topokd.cubical_diagrams(img)
    np.testing.assert_array_equal(h0, [[0.0, 1.0]])
    assert h1.shape == (0, 2)
    _assert_same(h0, gudhi_diagram(img, 0))
    _assert_same(h1, gudhi_diagram(img, 1))


@pytest.mark.parametrize("n", [4, 5, 6])
@pytest.mark.parametrize("phase", [0, 1])
def test_cubical_checkerboard(n, phase):
    # 0/1 checkerboard.  The 0-pixels touch diagonally, i.e. share a vertex, so
    # at level 0 they form ONE component (8-connectivity): no finite H0 pair
    # (with 4-connectivity there would be many).  Every 1-pixel whose four
    # edge-neighbours are 0 has its whole boundary at level 0: a loop filled
    # at 1, one H1 pair (0, 1) each.  1-pixels on the border have an edge on
    # the outer boundary that only enters at 1, so they enclose nothing.
    img = ((np.add.outer(np.arange(n), np.arange(n)) + phase) % 2).astype(float)
    interior_ones = int(img[1:-1, 1:-1].sum())
    h0, h1 = topokd.cubical_diagrams(img)
    assert h0.shape == (0, 2)
    np.testing.assert_array_equal(h1, np.tile([0.0, 1.0], (interior_ones, 1)))
    _assert_same(h1, gudhi_diagram(img, 1))
    _assert_same(h0, gudhi_diagram(img, 0))


def test_cubical_constant_image_is_empty():
    h0, h1 = topokd.cubical_diagrams(np.full((5, 7), 0.25))
    assert h0.shape == (0, 2) and h1.shape == (0, 2)


# ---------------------------------------------------------------------------
# flatten_image
# ---------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 9), st.integers(1, 9)),
                  elements=st.floats(-5, 5, allow_nan=False)))
def test_flatten_image_orders(img):
    np.testing.assert_array_equal(topokd.flatten_image(img, order="row"), img.ravel(order="C"))
    np.testing.assert_array_equal(topokd.flatten_image(img, order="column"), img.ravel(order="F"))
    np.testing.assert_array_equal(topokd.flatten_image(img), img.ravel(order="C"))


def test_flatten_image_orders_differ_on_a_known_example():
    img = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(topokd.flatten_image(img, order="row"), [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(topokd.flatten_image(img, order="column"), [0, 3, 1, 4, 2, 5])
