"""The persistence-image transformers follow scikit-learn's estimator contract.

Checked with real scikit-learn (``clone``, ``Pipeline``, ``GridSearchCV`` and
some of its parameter checks), although topokd does not depend on it: the
transformers implement ``get_params`` / ``set_params`` themselves.  A changed
parameter must reach the next ``transform``; the outputs are compared with a
freshly built transformer and, for the image grid, with ``persim``.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

import topokd
from topokd.data import wearable_windows
from topokd.tda import PRESET, InvalidParameterError

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402
from sklearn.utils import estimator_checks  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

persim = pytest.importorskip("persim")


def _square(b, p):
    return p**2 + 0.0 * b


# Non-default parameters for every estimator (callable weight included).
CONFIGURED = [
    topokd.PersistenceImage(resolution=(6, 5), birth_range=(-1.0, 1.0), pers_range=(0.0, 2.0), sigma=(0.1, 0.2),
                            weight=_square, normalize="max"),
    topokd.PersistenceImage(resolution=8, birth_range=(0.0, 1.0), pers_range=None, layout="legacy"),
    topokd.SignalPersistenceImages("tda-kd-signal", resolution=12, sigma=0.05, scale="minmax", normalize=None),
    topokd.ImagePersistenceImages("cubical", "pinet-image", resolution=7, min_persistence=0.0, keep_essential=True),
    topokd.ImagePersistenceImages(order="column", resolution=(9, 4), weight="linear_max"),
]
CLASSES = [topokd.PersistenceImage, topokd.SignalPersistenceImages, topokd.ImagePersistenceImages]


def _diagrams(rng, n=4):
    out = []
    for k in range(n):
        b = rng.uniform(-0.5, 1.0, 3 + 2 * k)
        out.append(np.c_[b, b + rng.uniform(0.0, 1.0, len(b))])
    return out


def _inputs(est, rng):
    if isinstance(est, topokd.PersistenceImage):
        return _diagrams(rng)
    if isinstance(est, topokd.SignalPersistenceImages):
        return rng.normal(size=(3, 40, 2))
    return rng.uniform(size=(2, 2, 6, 7))


def _transform(est, X):
    if isinstance(est, topokd.PersistenceImage):
        return est.transform(X)
    return est.transform(X, dtype=np.float64)


def _persim(resolution, birth_range, pers_range, sigma):
    b0, b1 = birth_range
    pimgr = persim.PersistenceImager(birth_range=birth_range, pers_range=pers_range,
                                     pixel_size=(b1 - b0) / resolution, kernel_params={"sigma": sigma**2})
    assert pimgr.resolution == (resolution, resolution)
    return pimgr


# ---------------------------------------------------------------------------
# get_params / clone
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
def test_params_are_the_init_arguments_stored_unchanged(cls):
    est = cls()
    names = cls._get_param_names()
    assert set(est.get_params(deep=False)) == set(names) == set(est.get_params(deep=True))
    assert set(vars(est)) == set(names)  # __init__ sets the parameters and nothing else
    value = (0.25, 0.5)  # any object: stored as is, validated later
    est.set_params(sigma=value)
    assert est.sigma is value and est.get_params()["sigma"] is value


def test_pipeline_defaults_are_the_preset_sentinel():
    assert PRESET == "preset"
    sig = topokd.SignalPersistenceImages()
    assert sig.preset is None
    assert {k: v for k, v in sig.get_params().items() if k != "preset"} == dict.fromkeys(
        ("resolution", "birth_range", "pers_range", "sigma", "weight", "normalize", "layout", "min_persistence",
         "keep_essential", "scale"), PRESET)
    img = topokd.ImagePersistenceImages()
    assert img.mode == "flatten" and img.order == PRESET
    # Positional (preset) / (mode, preset) as before.
    assert topokd.SignalPersistenceImages("tda-kd-signal").preset == "tda-kd-signal"
    assert topokd.ImagePersistenceImages("cubical", "pinet-image").get_params(deep=False)["preset"] == "pinet-image"


@pytest.mark.parametrize("est", CONFIGURED, ids=repr)
def test_clone_preserves_every_parameter_and_output(est, rng):
    X = _inputs(est, rng)
    expected = _transform(est.fit(X), X)  # fitted: clone must not care
    twin = clone(est)
    assert twin is not est and type(twin) is type(est)
    assert twin.get_params(deep=True) == est.get_params(deep=True)
    assert set(vars(twin)) == set(type(est)._get_param_names())  # no fitted / cached state carried over
    np.testing.assert_array_equal(_transform(twin, X), expected)  # never fit: works as well
    np.testing.assert_array_equal(_transform(copy.deepcopy(est), X), expected)


@pytest.mark.parametrize("est", CONFIGURED, ids=repr)
def test_pickle_round_trip_drops_caches(est, rng):
    est = clone(est)
    X = _inputs(est, rng)
    expected = _transform(est, X)
    assert "_cache" in vars(est)
    back = pickle.loads(pickle.dumps(est))
    assert "_cache" not in vars(back)
    np.testing.assert_array_equal(_transform(back, X), expected)


def test_repr_shows_the_parameters_that_differ_from_the_defaults():
    assert repr(topokd.PersistenceImage()) == "PersistenceImage()"
    assert repr(topokd.PersistenceImage(sigma=0.1, layout="persim")) == "PersistenceImage(sigma=0.1)"
    assert repr(topokd.SignalPersistenceImages("tda-kd-signal", sigma=0.5)) == \
        "SignalPersistenceImages(preset='tda-kd-signal', sigma=0.5)"
    assert repr(topokd.ImagePersistenceImages("cubical", scale=None)) == \
        "ImagePersistenceImages(mode='cubical', scale=None)"


@pytest.mark.parametrize("cls", CLASSES)
def test_sklearn_parameter_checks(cls):
    name = cls.__name__
    estimator_checks.check_parameters_default_constructible(name, cls())
    estimator_checks.check_no_attributes_set_in_init(name, cls())
    estimator_checks.check_get_params_invariance(name, cls())
    estimator_checks.check_set_params(name, cls())


@pytest.mark.parametrize("cls", CLASSES)
def test_stateless_transformers_count_as_fitted(cls):
    est = cls()
    check_is_fitted(est)  # nothing to learn: a never-fit estimator is usable
    assert est.fit() is est and est.fit(np.zeros((2, 3, 4)), np.zeros(2)) is est


# ---------------------------------------------------------------------------
# set_params / attribute assignment take effect
# ---------------------------------------------------------------------------
def test_persistence_image_parameter_changes_reach_transform(rng):
    dgms = _diagrams(rng)
    pi = topokd.PersistenceImage(resolution=10, birth_range=(-1.0, 1.0), pers_range=(0.0, 2.0), sigma=0.1)
    first = pi.transform(dgms)
    np.testing.assert_allclose(first[2], _persim(10, (-1, 1), (0, 2), 0.1).transform(dgms[2], skew=True), atol=1e-9)

    pi.set_params(sigma=0.3)
    got = pi.transform(dgms)
    np.testing.assert_array_equal(
        got, topokd.PersistenceImage(resolution=10, birth_range=(-1.0, 1.0), pers_range=(0.0, 2.0),
                                     sigma=0.3).transform(dgms))
    np.testing.assert_allclose(got[2], _persim(10, (-1, 1), (0, 2), 0.3).transform(dgms[2], skew=True), atol=1e-9)
    assert not np.allclose(got, first)

    pi.resolution = 20  # attribute assignment
    pi.birth_range, pi.pers_range = (-2.0, 2.0), (0.0, 4.0)
    got = pi.transform(dgms)
    assert got.shape == (4, 20, 20) == (len(dgms), *pi.shape)
    np.testing.assert_allclose(got[1], _persim(20, (-2, 2), (0, 4), 0.3).transform(dgms[1], skew=True), atol=1e-9)
    lo, hi = pi.birth_edges
    np.testing.assert_allclose(lo, np.linspace(-2, 2, 21)[:-1], atol=1e-12)
    np.testing.assert_allclose(hi, np.linspace(-2, 2, 21)[1:], atol=1e-12)

    # A list parameter changed in place counts as changed too.
    pi = topokd.PersistenceImage(resolution=5, birth_range=[0.0, 1.0], sigma=0.1)
    pi.transform(dgms)
    pi.birth_range[1] = 2.0
    np.testing.assert_array_equal(
        pi.transform(dgms), topokd.PersistenceImage(resolution=5, birth_range=(0.0, 2.0), sigma=0.1).transform(dgms))

    pi.set_params(normalize="max", weight=_square)
    np.testing.assert_array_equal(
        pi.transform(dgms), topokd.PersistenceImage(resolution=5, birth_range=(0.0, 2.0), sigma=0.1,
                                                    normalize="max", weight=_square).transform(dgms))
    assert pi.spec().normalize == "max" and pi.spec().weight is _square


def test_signal_parameter_changes_reach_transform(rng):
    X = rng.normal(size=(3, 60, 2))
    est = topokd.SignalPersistenceImages(resolution=10)
    before = est.transform(X, dtype=np.float64)
    est.sigma = 0.3
    got = est.transform(X, dtype=np.float64)
    np.testing.assert_array_equal(got, topokd.SignalPersistenceImages(resolution=10, sigma=0.3)
                                  .transform(X, dtype=np.float64))
    assert not np.allclose(got, before)
    # Independent reference: standardise, H0 by gudhi, image by persim (standard-signal grid).
    gudhi = pytest.importorskip("gudhi")
    x = X[1, :, 0]
    z = (x - x.mean()) / x.std()
    cc = gudhi.CubicalComplex(top_dimensional_cells=z)
    cc.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
    dgm = np.asarray(cc.persistence_intervals_in_dimension(0)).reshape(-1, 2)
    dgm = dgm[np.isfinite(dgm[:, 1]) & (dgm[:, 1] > dgm[:, 0])]
    np.testing.assert_allclose(got[1, 0], _persim(10, (-3, 3), (0, 6), 0.3).transform(dgm, skew=True), atol=1e-9)

    est.set_params(resolution=16, preset="tda-kd-signal")
    assert est.image_shape == (16, 16) and est.config_["layout"] == "legacy" and est.config_["sigma"] == 0.3
    np.testing.assert_array_equal(
        est.transform(X, dtype=np.float64),
        topokd.SignalPersistenceImages("tda-kd-signal", resolution=16, sigma=0.3).transform(X, dtype=np.float64))
    est.set_params(sigma=PRESET)  # back to the preset's value
    assert est.config_["sigma"] == topokd.get_preset("tda-kd-signal", "signal").params["sigma"]
    est.set_params(scale=None, normalize=None)  # None overrides the preset, it is not "unset"
    assert est.config_["scale"] is None and est.config_["normalize"] is None
    est.set_params(scale="minmax")
    assert est.config_["scale"] == "minmax"
    np.testing.assert_array_equal(est.fit_transform(X), est.transform(X))


def test_image_parameter_changes_reach_transform(rng):
    X = rng.uniform(size=(2, 2, 6, 7))
    est = topokd.ImagePersistenceImages(resolution=8)
    assert est.transform(X).shape == (2, 2, 8, 8)
    est.set_params(mode="cubical")
    assert est.transform(X).shape == (2, 2, 2, 8, 8)
    est.set_params(mode="flatten", order="column", sigma=0.05)
    np.testing.assert_array_equal(
        est.transform(X, dtype=np.float64),
        topokd.ImagePersistenceImages("flatten", order="column", resolution=8, sigma=0.05).transform(X, dtype=np.float64))
    imager = est.imager_
    assert isinstance(imager, topokd.PersistenceImage) and imager.sigma == 0.05 and imager.shape == (8, 8)


# ---------------------------------------------------------------------------
# invalid parameters
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("make, params, message", [
    (topokd.PersistenceImage, dict(sigma=-1.0), r"PersistenceImage: sigma must be a finite number > 0"),
    (topokd.PersistenceImage, dict(resolution=2.5), r"PersistenceImage: resolution must be an int"),
    (topokd.SignalPersistenceImages, dict(sigma=0.0), r"SignalPersistenceImages: sigma must be"),
    (topokd.SignalPersistenceImages, dict(birth_range=(1.0, 0.0)), r"birth_range .* swap the two values"),
    (topokd.SignalPersistenceImages, dict(scale="zscore"), r"scale must be one of \[None, 'standardize'"),
    (topokd.SignalPersistenceImages, dict(keep_essential="yes"), "keep_essential must be True or False"),
    (topokd.SignalPersistenceImages, dict(preset="nope"), "unknown preset 'nope'; available"),
    (topokd.SignalPersistenceImages, dict(preset="pinet-image"), "for image inputs"),
    (topokd.ImagePersistenceImages, dict(mode="voxel"), r"ImagePersistenceImages: mode must be one of"),
    (topokd.ImagePersistenceImages, dict(order="diagonal"), r"order must be one of \['row', 'column'\]"),
    (topokd.ImagePersistenceImages, dict(min_persistence=-1), "min_persistence must be a finite number >= 0"),
])
def test_invalid_parameters_fail_at_fit_and_transform(make, params, message, rng):
    est = make().set_params(**params)  # accepted unchecked
    X = _inputs(est, rng)
    for call in (est.fit, lambda: est.transform(X), lambda: est.fit_transform(X)):
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert isinstance(info.value, InvalidParameterError)
        assert "\n" not in str(info.value)
    est.set_params(**make().get_params(deep=False))  # repaired: works again
    _transform(est, X)


@pytest.mark.parametrize("cls", CLASSES)
def test_unknown_parameter_names_are_refused_by_set_params(cls):
    with pytest.raises(ValueError, match=r"invalid parameter 'bandwidth' for .*valid parameters are \[.*'sigma'"):
        cls().set_params(bandwidth=1.0)
    with pytest.raises(ValueError, match="invalid parameter 'sigmaa'"):
        cls().set_params(sigmaa=1.0)


# ---------------------------------------------------------------------------
# inside scikit-learn
# ---------------------------------------------------------------------------
def _flatten(z):
    return z.reshape(len(z), -1)


def _wearable(n=48):
    X, y = wearable_windows(n, 120, 3, seed=3)
    return X, y


def _model(**pi):
    return Pipeline([
        ("pi", topokd.SignalPersistenceImages(**pi)),
        ("flat", FunctionTransformer(_flatten)),
        ("clf", LogisticRegression(max_iter=2000)),
    ])


def test_pipeline_fits_and_predicts_on_wearable_windows():
    X, y = _wearable()
    model = _model(resolution=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    pred = model.predict(X)
    assert pred.shape == y.shape and set(pred) <= set(y)
    assert np.mean(pred == y) > 0.5  # four classes; the PIs separate them
    model.set_params(pi__sigma=0.3)
    assert model.named_steps["pi"].sigma == 0.3
    feats = model[:-1].transform(X[:2])
    np.testing.assert_array_equal(
        feats, _flatten(topokd.SignalPersistenceImages(resolution=10, sigma=0.3).transform(X[:2])))


def test_grid_search_over_pi_parameters():
    X, y = _wearable(40)
    grid = {"pi__sigma": [0.1, 0.4], "pi__resolution": [6, 10]}
    search = GridSearchCV(_model(), grid, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert search.best_params_["pi__sigma"] in grid["pi__sigma"]
    assert search.best_params_["pi__resolution"] in grid["pi__resolution"]
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_.named_steps["pi"]
    assert best.image_shape == (search.best_params_["pi__resolution"],) * 2
    # The template estimator in the search is left untouched.
    assert search.estimator.named_steps["pi"].sigma == PRESET


# ---------------------------------------------------------------------------
# the PI-Net estimator
# ---------------------------------------------------------------------------
def _pinet(**kw):
    from topokd.pinet import PINet

    params = dict(pi_params={"resolution": 8, "sigma": 0.4}, widths=(4, 8, 8, 8), epochs=2, batch_size=16,
                  optimizer="adamw", progress=False, device="cpu")
    params.update(kw)
    return PINet("signal", **params)


def test_pinet_clone_get_and_set_params():
    est = _pinet(lr=3e-3)
    copy = clone(est)
    assert copy is not est and copy.get_params() == est.get_params()
    assert copy.get_params(deep=True)["lr"] == 3e-3
    X, _ = _wearable(24)
    fitted = clone(est).fit(X)
    assert hasattr(fitted, "model_") and not hasattr(clone(fitted), "model_")  # clone never carries the network
    est.set_params(epochs=1, pi_params={"resolution": 6, "sigma": 0.4})
    est.fit(X)
    assert len(est.history_) == 1 and est.predict(X[:2]).shape == (2, 3, 6, 6)  # takes effect at the next fit
    with pytest.raises(ValueError, match="invalid parameter 'epoch' for PINet"):
        est.set_params(epoch=3)


def test_pinet_in_a_pipeline_and_a_grid_search():
    X, y = _wearable(48)
    model = Pipeline([("pinet", _pinet()), ("flat", FunctionTransformer(_flatten)),
                      ("clf", LogisticRegression(max_iter=2000))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)  # the labels reach PINet.fit and are ignored: it learns the exact PIs
    assert model.predict(X).shape == y.shape
    np.testing.assert_array_equal(model[:-1].transform(X[:3]),
                                  _flatten(model.named_steps["pinet"].predict(X[:3])))
    # GridSearchCV scores a bare PINet by its mean Pearson correlation with the exact PIs
    search = GridSearchCV(_pinet(), {"lr": [1e-3, 1e-2]}, cv=2)
    search.fit(X)
    assert search.best_params_["lr"] in (1e-3, 1e-2) and len(search.cv_results_["params"]) == 2
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all(scores <= 1)
