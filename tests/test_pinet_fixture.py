"""Conformance with the PI-Net authors' published CIFAR-10 ground truth.

``pinet_cifar10_sample.mat`` holds 20 CIFAR-10 test images (``imgs``,
20x32x32x3 in [0, 1]) and the authors' PIs (``PIs``, 20x7500 = 3 channels x
50 x 50, channel-major).  The reference ripser + persim pipeline reaches a
mean Pearson correlation of 0.99975 and a median per-channel max-abs error of
0.0069 against them (the authors' PIs were stored at lower precision).
"""

import numpy as np
import pytest

import topokd
from conftest import SHARED

FIXTURE = SHARED / "pinet_cifar10_sample.mat"


@pytest.fixture(scope="module")
def fixture():
    if not FIXTURE.exists():
        pytest.skip(f"PI-Net fixture not found at {FIXTURE} (it ships in ../shared/fixtures)")
    from scipy.io import loadmat

    data = loadmat(FIXTURE)
    return data["imgs"], data["PIs"]


def test_pinet_image_preset_matches_published_pis(fixture):
    imgs, ref = fixture
    pis = topokd.image_pis(imgs.transpose(0, 3, 1, 2), preset="pinet-image")
    assert pis.shape == (20, 3, 50, 50) and pis.dtype == np.float32
    ref = ref.reshape(20, 3, 50, 50)
    corr = [np.corrcoef(pis[i, c].ravel(), ref[i, c].ravel())[0, 1] for i in range(20) for c in range(3)]
    max_abs = [np.abs(pis[i, c] - ref[i, c]).max() for i in range(20) for c in range(3)]
    assert np.mean(corr) >= 0.9997, np.mean(corr)
    assert np.median(max_abs) <= 0.01, np.median(max_abs)


def test_pinet_orientation_is_the_published_one(fixture):
    """A transposed or flipped layout correlates far worse: the match is not luck."""
    imgs, ref = fixture
    pis = topokd.image_pis(imgs[:4].transpose(0, 3, 1, 2), preset="pinet-image")
    ref = ref[:4].reshape(4, 3, 50, 50)
    for wrong in (lambda a: a.T, lambda a: a[::-1], lambda a: a[:, ::-1]):
        corr = np.mean([np.corrcoef(wrong(pis[i, c]).ravel(), ref[i, c].ravel())[0, 1]
                        for i in range(4) for c in range(3)])
        assert corr < 0.9
