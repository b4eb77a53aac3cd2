"""topokd.data.load_image_patches: seeded patches of the bundled sample photographs.

Checked against independent computations: the pyramid levels are rebuilt with
``skimage.transform.downscale_local_mean`` from the images as
``skimage.data`` / ``sklearn.datasets`` return them, and patches are searched
for there by brute force (both orientations, every level).
"""

import numpy as np
import pytest

skdata = pytest.importorskip("skimage.data", reason="scikit-image is not installed (pip install 'topokd[data]')")
sktransform = pytest.importorskip("skimage.transform", reason="scikit-image is not installed")

from topokd.data import IMAGE_SOURCES, load_image_patches  # noqa: E402
from topokd.data.images import image_source_names  # noqa: E402

RGB_TRAIN = {"astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "china"}
RGB_VAL = {"chelsea", "flower"}
GRAY_TRAIN = {"coins", "grass", "gravel", "brick", "cell", "text", "clock"}
GRAY_VAL = {"camera"}


def _has_sklearn():
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        return False
    return True


needs_sklearn = pytest.mark.skipif(not _has_sklearn(), reason="scikit-learn is not installed")


def _raw(name):
    """The source image as its package returns it, uint8 (H, W, 3)."""
    if IMAGE_SOURCES[name].package == "sklearn":
        from sklearn.datasets import load_sample_image

        img = np.asarray(load_sample_image(f"{name}.jpg"))
    else:
        img = np.asarray(getattr(skdata, name)())
    assert img.dtype == np.uint8
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3]


def _level(img, s):
    """Block mean over s x s (whole blocks only), rounded to 8 bits, via skimage."""
    h, w = (img.shape[0] // s) * s, (img.shape[1] // s) * s
    block = sktransform.downscale_local_mean(img[:h, :w].astype(np.float64), (s, s, 1))
    return np.clip(np.rint(block), 0, 255).astype(np.uint8)


def _occurs(patch, level):
    """Top-left positions where ``patch`` (uint8 (k, k, 3)) occurs exactly in ``level``."""
    k = patch.shape[0]
    if level.shape[0] < k or level.shape[1] < k:
        return []
    ys, xs = np.nonzero(np.all(level == patch[0, 0], axis=-1))
    return [(y, x) for y, x in zip(ys, xs)
            if y + k <= level.shape[0] and x + k <= level.shape[1]
            and np.array_equal(level[y:y + k, x:x + k], patch)]


def _to_uint8_hwc(patches):
    """float (n, 3, k, k) multiples of 1/255 -> uint8 (n, k, k, 3)."""
    return np.rint(patches.transpose(0, 2, 3, 1) * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------
# Output format, determinism
# ---------------------------------------------------------------------------
def test_shape_dtype_range_and_8bit_values():
    x = load_image_patches(64, seed=1)
    assert x.shape == (64, 3, 32, 32) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_allclose(x * 255.0, np.rint(x * 255.0), atol=1e-4)
    assert x.max() > 0.5 and x.min() < 0.5  # not a constant or degenerate output
    y = load_image_patches(5, size=16, scales=(2,), seed=1)
    assert y.shape == (5, 3, 16, 16)
    assert load_image_patches(0).shape == (0, 3, 32, 32)


def test_same_seed_identical_different_seed_different():
    a, sa = load_image_patches(40, seed=7, return_sources=True)
    b, sb = load_image_patches(40, seed=7, return_sources=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    c = load_image_patches(40, seed=8)
    assert not np.array_equal(a, c)
    # no patch of seed 8 is a patch of seed 7 (positions are continuous enough)
    assert sum(any(np.array_equal(p, q) for q in a) for p in c) <= 2
    # the cache of other calls does not change the draw
    load_image_patches(10, sources="all", split="all", seed=3)
    np.testing.assert_array_equal(load_image_patches(40, seed=7), a)
    # a prefix: the first patches do not depend on n
    np.testing.assert_array_equal(load_image_patches(10, seed=7), a[:10])


def test_return_sources_array_of_str():
    x, names = load_image_patches(30, seed=2, return_sources=True)
    assert names.shape == (30,) and names.dtype.kind == "U"
    assert set(names) <= RGB_TRAIN


# ---------------------------------------------------------------------------
# Split by source image
# ---------------------------------------------------------------------------
@needs_sklearn
def test_train_and_val_sources_are_disjoint():
    _, tr = load_image_patches(1500, split="train", seed=0, return_sources=True)
    _, va = load_image_patches(300, split="val", seed=0, return_sources=True)
    assert set(tr) == RGB_TRAIN  # every train photograph is drawn from
    assert set(va) == RGB_VAL
    assert not set(tr) & set(va)
    _, va_all = load_image_patches(400, split="val", sources="all", seed=0, return_sources=True)
    assert set(va_all) == RGB_VAL | GRAY_VAL
    _, tr_all = load_image_patches(3000, split="train", sources="all", seed=0, return_sources=True)
    assert set(tr_all) == RGB_TRAIN | GRAY_TRAIN
    assert not set(tr_all) & set(va_all)
    _, every = load_image_patches(600, split="all", seed=0, return_sources=True)
    assert set(every) == RGB_TRAIN | RGB_VAL


def test_source_table_matches_split():
    assert set(image_source_names("rgb", "train")) == RGB_TRAIN
    assert set(image_source_names("rgb", "val")) == RGB_VAL
    assert set(image_source_names("all", "all")) == RGB_TRAIN | RGB_VAL | GRAY_TRAIN | GRAY_VAL
    assert image_source_names(["chelsea", "astronaut"], "train") == ["astronaut"]
    for name, src in IMAGE_SOURCES.items():
        assert src.split in ("train", "val") and src.licence


def test_val_split_patches_come_from_val_images():
    """Searched in every pyramid level of chelsea: the val patches really are chelsea's."""
    x, names = load_image_patches(6, split="val", sources=["chelsea", "astronaut"], seed=5, return_sources=True)
    assert set(names) == {"chelsea"}
    img = _raw("chelsea")
    levels = [_level(img, s) for s in (1, 2, 4, 8)]
    for p in _to_uint8_hwc(x):
        assert any(_occurs(p, lv) or _occurs(p[:, ::-1], lv) for lv in levels)


# ---------------------------------------------------------------------------
# Each patch occurs in its source's pyramid (independent computation)
# ---------------------------------------------------------------------------
def test_patches_occur_in_astronaut_pyramid():
    img = _raw("astronaut")
    scales = (1, 2, 4, 8)
    levels = {s: _level(img, s) for s in scales}
    x = load_image_patches(16, sources="astronaut", seed=11)
    found_scales, flipped, straight = set(), 0, 0
    for p in _to_uint8_hwc(x):
        hits = [(s, f) for s in scales for f in (False, True)
                if _occurs(p[:, ::-1] if f else p, levels[s])]
        assert hits, "patch not found in any pyramid level of astronaut (either orientation)"
        found_scales.update(s for s, _ in hits)
        straight += any(not f for _, f in hits)
        flipped += any(f for _, f in hits)
    assert len(found_scales) >= 3  # the levels are drawn among, not just one
    assert straight and flipped  # flip=True flips about half of them


def test_single_scale_and_no_flip():
    img = _raw("coffee")
    lv4 = _level(img, 4)
    x = load_image_patches(6, sources="coffee", scales=(4,), flip=False, seed=3)
    for p in _to_uint8_hwc(x):
        assert _occurs(p, lv4)
    # scale 1 patches are not found in the coarse level (sanity of the search)
    x1 = load_image_patches(3, sources="coffee", scales=(1,), flip=False, seed=3)
    for p in _to_uint8_hwc(x1):
        assert _occurs(p, _level(img, 1)) and not _occurs(p, lv4)


def test_positions_spread_over_the_image():
    """Positions are uniform over the level: found positions reach all four quarters."""
    img = _raw("astronaut")
    lv = _level(img, 2)  # 256 x 256, 225 positions per axis
    x = load_image_patches(24, sources="astronaut", scales=(2,), flip=False, min_std=0.0, seed=21)
    ys, xs = [], []
    for p in _to_uint8_hwc(x):
        hits = _occurs(p, lv)
        assert hits
        ys.append(hits[0][0])
        xs.append(hits[0][1])
    n = lv.shape[0] - 32 + 1
    for v in (np.array(ys), np.array(xs)):
        assert v.min() < n / 4 and v.max() >= 3 * n / 4
        assert 0.25 * n < v.mean() < 0.75 * n


@needs_sklearn
def test_patches_occur_in_their_named_sources():
    x, names = load_image_patches(10, split="train", seed=4, return_sources=True)
    cache = {}
    for p, name in zip(_to_uint8_hwc(x), names):
        if name not in cache:
            img = _raw(name)
            cache[name] = [_level(img, s) for s in (1, 2, 4, 8) if min(img.shape[:2]) // s >= 32]
        assert any(_occurs(p, lv) or _occurs(p[:, ::-1], lv) for lv in cache[name]), name


# ---------------------------------------------------------------------------
# min_std, grayscale sources, lfw_subset
# ---------------------------------------------------------------------------
def test_min_std_is_honoured():
    for min_std in (0.02, 0.1):
        x = load_image_patches(80, sources=["retina", "hubble_deep_field"], min_std=min_std, seed=0)
        std = x.reshape(len(x), 3, -1).astype(np.float64).std(axis=2).max(axis=1)
        assert std.min() >= min_std - 1e-6
    # without the filter, these two images (black border, dark sky) give flatter patches
    x0 = load_image_patches(200, sources=["retina", "hubble_deep_field"], min_std=0.0, seed=0)
    std0 = x0.reshape(len(x0), 3, -1).astype(np.float64).std(axis=2).max(axis=1)
    assert std0.min() < 0.02


def test_min_std_too_high_fails_cleanly():
    with pytest.raises(RuntimeError, match="min_std"):
        load_image_patches(3, sources="text", min_std=0.49, seed=0)


@needs_sklearn
def test_all_sources_include_grayscale_with_equal_channels():
    x, names = load_image_patches(600, split="all", sources="all", seed=9, return_sources=True)
    gray = np.isin(names, sorted(GRAY_TRAIN | GRAY_VAL))
    assert gray.any() and (~gray).any()
    assert "lfw_subset" not in set(names)
    xg = x[gray]
    np.testing.assert_array_equal(xg[:, 0], xg[:, 1])
    np.testing.assert_array_equal(xg[:, 0], xg[:, 2])
    xc = x[~gray]
    equal = np.all(xc[:, 0] == xc[:, 1], axis=(1, 2)) & np.all(xc[:, 0] == xc[:, 2], axis=(1, 2))
    assert equal.mean() < 0.1  # the photographs are in colour


def test_lfw_subset_only_when_named():
    assert "lfw_subset" not in image_source_names("all", "all")
    assert "lfw_subset" not in image_source_names("rgb", "all")
    assert image_source_names("lfw_subset") == ["lfw_subset"]
    x, names = load_image_patches(20, sources=["lfw_subset"], flip=False, min_std=0.0, seed=0,
                                  return_sources=True)
    assert set(names) == {"lfw_subset"} and x.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(x[:, 0], x[:, 1])
    np.testing.assert_array_equal(x[:, 0], x[:, 2])
    # each patch is one of the 200 crops, 8-bit, resized bilinearly to 32 x 32
    crops = np.rint(np.asarray(skdata.lfw_subset(), dtype=np.float64) * 255.0) / 255.0
    ref = np.stack([sktransform.resize(c, (32, 32), order=1, mode="edge", anti_aliasing=False) for c in crops])
    ref = np.rint(ref * 255.0)
    for p in np.rint(x[:, 0] * 255.0):
        assert np.abs(ref - p).max(axis=(1, 2)).min() <= 1.0
    with pytest.raises(ValueError, match="lfw_subset"):
        load_image_patches(5, sources="lfw_subset", split="val")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(n=-1), "n must be"),
    (dict(n=2.5), "n must be"),
    (dict(n=True), "n must be"),
    (dict(size=0), "size must be"),
    (dict(size=8.0), "size must be"),
    (dict(scales=()), "scales must be"),
    (dict(scales=(0,)), "scales must be"),
    (dict(scales=(1.5,)), "scales must be"),
    (dict(scales=4), "scales must be"),
    (dict(split="test"), "split must be"),
    (dict(sources="gray"), "sources must be"),
    (dict(sources=["astronaut", "nope"]), "unknown image sources"),
    (dict(sources=[]), "unknown image sources"),
    (dict(min_std=-0.1), "min_std"),
    (dict(min_std=0.5), "min_std"),
    (dict(size=2000), "smaller than 2000"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_image_patches(**{"n": 2, **kwargs})
