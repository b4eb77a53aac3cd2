"""Label-free augmentations (topokd.distill.augment) and on-the-fly PI-Net
targets (topokd.pinet.targets), checked against hand computations and the
exact engine (topokd.signal_pis) of the augmented windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import topokd
from topokd.distill.augment import (AmplitudeScale, ChannelPermutation, GaussianNoise, Shift, SurrogateMix,
                                    TimeWarp, WindowMix, get_augmentation)
from topokd.distill.trainer import OnlinePIs
from topokd.pinet.targets import AugmentedTargets, draw_order
from topokd.tda.pipeline import SignalPersistenceImages


def _batch(b=5, c=6, t=64, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(b, c, t)).astype(np.float32))


@pytest.mark.parametrize("aug", [AmplitudeScale(), AmplitudeScale(per_channel=True), TimeWarp(), WindowMix(),
                                 ChannelPermutation([(0, 1, 2), (3, 4, 5)]), SurrogateMix()])
def test_call_is_apply_of_sample(aug):
    x = _batch()
    out = aug(x, generator=torch.Generator().manual_seed(3))
    again = aug.apply(x, aug.sample(x, torch.Generator().manual_seed(3)))
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)


def test_amplitude_scale_is_one_gain_per_sample():
    x = _batch()
    params = AmplitudeScale(0.3).sample(x, torch.Generator().manual_seed(0))
    out = AmplitudeScale(0.3).apply(x, params)
    ratio = out / x
    assert torch.allclose(ratio, ratio[:, :1, :1].expand_as(ratio), rtol=1e-5)
    assert len(set(ratio[:, 0, 0].tolist())) == len(x)


def test_standardised_pis_ignore_channel_gains():
    """Why SurrogateMix leaves gains out: standard-signal standardises each channel."""
    x = _batch(t=100)
    scaled = AmplitudeScale(0.5, per_channel=True)(x, generator=torch.Generator().manual_seed(1))
    a = topokd.signal_pis(x.transpose(1, 2).double().numpy())
    b = topokd.signal_pis(scaled.transpose(1, 2).double().numpy())
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_time_warp_by_hand():
    x = _batch(b=3, t=50)
    warp = TimeWarp(0.5, knots=3)
    tau = warp.sample(x, torch.Generator().manual_seed(2))["tau"]
    assert torch.all(tau[:, 1:] > tau[:, :-1])
    torch.testing.assert_close(tau[:, [0, -1]], torch.tensor([[0.0, 49.0]] * 3, dtype=torch.float64))
    out = warp.apply(x, {"tau": tau})
    grid = np.arange(50)
    for b in range(3):
        for c in range(x.shape[1]):
            expected = np.interp(tau[b].numpy(), grid, x[b, c].double().numpy())
            np.testing.assert_allclose(out[b, c].numpy(), expected, atol=1e-5)
    torch.testing.assert_close(TimeWarp(0.0)(x, generator=torch.Generator().manual_seed(0)), x)


def test_window_mix_by_hand():
    x = _batch()
    mix = WindowMix(0.6)
    p = mix.sample(x, torch.Generator().manual_seed(4))
    assert sorted(p["partner"].tolist()) == list(range(len(x)))
    w = p["weight"].flatten()
    assert torch.all((w >= 0.6) & (w <= 1.0))
    out = mix.apply(x, p)
    for b in range(len(x)):
        torch.testing.assert_close(out[b], w[b].float() * x[b] + (1 - w[b].float()) * x[p["partner"][b]])
    torch.testing.assert_close(WindowMix(1.0)(x, generator=torch.Generator().manual_seed(0)), x)


def test_channel_permutation_stays_in_groups():
    x = _batch(b=40, c=7)
    perm = ChannelPermutation([(0, 1, 2), (4, 5, 6)])
    source = perm.sample(x, torch.Generator().manual_seed(5))["source"]
    out = perm.apply(x, {"source": source})
    for b in range(len(x)):
        assert sorted(source[b, :3].tolist()) == [0, 1, 2] and sorted(source[b, 4:].tolist()) == [4, 5, 6]
        assert source[b, 3] == 3
        for c in range(7):
            torch.testing.assert_close(out[b, c], x[b, source[b, c]])
    assert len({tuple(s[:3].tolist()) for s in source}) > 1
    with pytest.raises(ValueError, match="disjoint"):
        ChannelPermutation([(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="does not have"):
        perm(_batch(c=4))


def test_named():
    assert isinstance(get_augmentation("surrogate"), SurrogateMix)
    assert isinstance(get_augmentation("warp", sigma=0.1), TimeWarp)
    kinds = [type(t) for t in SurrogateMix().transforms]
    assert kinds == [TimeWarp, WindowMix, GaussianNoise, Shift]


def test_draw_order_balanced():
    order = draw_order(7, 30, torch.Generator().manual_seed(0))
    counts = np.bincount(order.numpy(), minlength=7)
    assert len(order) == 30 and counts.max() - counts.min() <= 1
    assert sorted(order[:7].tolist()) == list(range(7))


def test_on_the_fly_targets_are_the_exact_pis_of_the_augmented_windows():
    X = np.random.default_rng(1).normal(size=(23, 80, 3)).astype(np.float32)
    windows = torch.from_numpy(X).transpose(1, 2).contiguous()
    engine = SignalPersistenceImages(resolution=12)
    augment = SurrogateMix()
    source = AugmentedTargets(windows, augment, OnlinePIs(engine), batch_size=8,
                              network_input=lambda s: s * 2.0, target_scale=0.5, samples_per_epoch=30)
    batches = list(source(torch.Generator().manual_seed(9)))
    assert [len(b[0]) for b in batches] == [8, 8, 8, 6]

    replay = torch.Generator().manual_seed(9)  # the same draws, by hand
    order = draw_order(len(X), 30, replay)
    for (inputs, targets), index in zip(batches, order.split(8)):
        signal = augment(windows[index], generator=replay)
        exact = topokd.signal_pis(signal.transpose(1, 2).numpy(), resolution=12)
        np.testing.assert_array_equal(targets.numpy(), exact / np.float32(0.5))
        torch.testing.assert_close(inputs, signal * 2.0, rtol=0, atol=0)
        assert not np.allclose(exact, topokd.signal_pis(X[index.numpy()], resolution=12))


# -- PINet(augment=..., samples_per_epoch=...) ------------------------------
TINY = dict(widths=(4, 4, 4, 4), pi_params={"resolution": 8}, batch_size=8, progress=False, device="cpu")


def _windows(n=24, t=64, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=(n, t, c)), axis=1).astype(np.float32)


def test_pinet_batches_are_augmented_windows_and_their_exact_pis():
    from topokd.pinet import PINet

    X = _windows()
    est = PINet(augment="surrogate", samples_per_epoch=20, optimizer="adamw", **TINY)
    est._check_params()
    est.model_ = est._build(X.shape[2])
    est.target_scale_ = 2.0
    module = est._module()
    batches = list(est._batches(module, X, None, est._augmentation(), torch.device("cpu"))(
        torch.Generator().manual_seed(5)))
    assert [len(b[0]) for b in batches] == [8, 8, 4]  # 20 samples per epoch
    # replay the same draws by hand: a permutation, then one augmentation per batch
    g = torch.Generator().manual_seed(5)
    order = torch.randperm(len(X), generator=g)[:20]
    windows = torch.from_numpy(X).transpose(1, 2)
    for (inputs, targets), index in zip(batches, order.split(8)):
        augmented = SurrogateMix()(windows[index], generator=g)
        assert not torch.equal(augmented, windows[index])
        expected = topokd.signal_pis(augmented.transpose(1, 2).numpy(), preset="standard-signal", resolution=8)
        np.testing.assert_allclose(targets.numpy() * 2.0, expected, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(inputs, module.network_input(augmented), rtol=0, atol=0)


def test_pinet_fit_with_augment_validates_on_clean_pis_and_round_trips(tmp_path):
    from topokd.pinet import PINet

    X = _windows()
    est = PINet(augment="surrogate", samples_per_epoch=40, epochs=2, optimizer="adamw", **TINY).fit(X)
    assert len(est.history_) == 2 and all(np.isfinite(r["val_mse"]) for r in est.history_)
    assert np.isfinite(est.predict(X[:3])).all()
    est.save(tmp_path / "m.safetensors")
    again = PINet.load(tmp_path / "m.safetensors", progress=False)
    assert again.augment == "surrogate" and again.samples_per_epoch == 40
    np.testing.assert_array_equal(again.predict(X[:3]), est.predict(X[:3]))


def test_pinet_samples_per_epoch_without_augment_uses_the_precomputed_pis():
    from topokd.pinet import PINet
    from topokd.engine import tensor_batches

    inputs, targets = torch.arange(10.0)[:, None], torch.arange(10.0)[:, None] * 3
    batches = list(tensor_batches(inputs, targets, batch_size=4, samples_per_epoch=25, min_batch=2)(torch.Generator()))
    assert [len(b[0]) for b in batches] == [4] * 6  # the last batch of one sample is skipped
    seen = torch.cat([b[0] for b in batches]).flatten()
    assert torch.equal(torch.cat([b[1] for b in batches]).flatten(), seen * 3)  # pairs stay aligned
    counts = torch.bincount(seen.long(), minlength=10)
    assert counts.max() - counts.min() <= 1  # whole permutations
    est = PINet(samples_per_epoch=30, epochs=1, optimizer="adamw", **TINY).fit(_windows())
    assert len(est.history_) == 1


def test_pinet_augment_errors():
    from topokd.pinet import PINet

    X = _windows(n=8)
    with pytest.raises(ValueError, match="pass Y=None"):
        PINet(augment="surrogate", **TINY).fit(X, np.zeros((8, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="unknown augmentation 'jiter'"):
        PINet(augment="jiter", **TINY).fit(X)
    with pytest.raises(ValueError, match="augment applies to signal PI-Nets"):
        PINet("image", augment="surrogate", **TINY).fit(np.zeros((4, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="samples_per_epoch must be"):
        PINet(samples_per_epoch=0, **TINY).fit(X)
    with pytest.raises(ValueError, match="augment must be an augmentation name"):
        PINet(augment=3, **TINY).fit(X)


def test_cli_augment_names_are_registered_augmentations():
    from topokd.cli.pinet import AUGMENT_NAMES
    from topokd.distill.augment import AUGMENTATIONS

    assert set(AUGMENT_NAMES) == set(AUGMENTATIONS) - {"none", "channel-permutation"}
