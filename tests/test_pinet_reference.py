"""The reference mode of PINet (the authors' Keras training script), its
Keras-semantics Adam, Keras 'same' pooling, Glorot initialisation, and the
low-rank head."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from topokd.checkpoint import CheckpointError, load_checkpoint, optimizer_tensors, restore_optimizer, save_checkpoint
from topokd.data import wearable_windows
from topokd.engine import KerasAdam, build_optimizer
from topokd.models import build_model
from topokd.models.pinet import (ConvDecoder, ImagePINet, KerasSameMaxPool, LowRankLinear, SignalPINet,
                                 keras_same_padding)
from topokd.pinet import PINet
from topokd.pinet.estimator import reference_lr, reference_stages

SMALL = (8, 16, 16, 32)
TASK = dict(resolution=16, sigma=0.4)


@pytest.fixture(scope="module")
def windows():
    X, _ = wearable_windows(70, 64, 2, seed=3)
    return X


def estimator(**kw):
    defaults = dict(pi_params=TASK, widths=SMALL, epochs=10, batch_size=16, optimizer="reference",
                    progress=False, seed=0)
    defaults.update(kw)
    return PINet("signal", **defaults)


# -- KerasAdam ----------------------------------------------------------------
def _numpy_keras_adam(w, A, b, steps, lr, beta1, beta2, eps):
    """Keras 2.x Adam written out by hand on loss = mean((A w - b)^2)."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    out = []
    for t in range(1, steps + 1):
        g = 2.0 * A.T @ (A @ w - b) / len(b)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        lr_t = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        w = w - lr_t * m / (np.sqrt(v) + eps)
        out.append(w.copy())
    return out


def _torch_run(make, w0, A, b, steps, eps_schedule=None):
    w = nn.Parameter(torch.from_numpy(w0.copy()))
    opt = make([w])
    At, bt = torch.from_numpy(A), torch.from_numpy(b)
    out = []
    for t in range(1, steps + 1):
        if eps_schedule is not None:
            opt.param_groups[0]["eps"] = eps_schedule(t)
        opt.zero_grad()
        ((At @ w - bt) ** 2).mean().backward()
        opt.step()
        out.append(w.detach().numpy().copy())
    return out


def test_keras_adam_equals_the_hand_written_keras_update():
    rng = np.random.default_rng(0)
    A, b, w0 = rng.normal(size=(20, 5)), rng.normal(size=20), rng.normal(size=5)
    lr, (b1, b2), eps, steps = 0.05, (0.99, 0.999), 0.1, 8
    want = _numpy_keras_adam(w0, A, b, steps, lr, b1, b2, eps)
    got = _torch_run(lambda p: build_optimizer(p, "keras-adam", lr=lr, betas=(b1, b2), eps=eps), w0, A, b, steps)
    assert isinstance(build_optimizer([nn.Parameter(torch.zeros(1))], "keras-adam", lr=lr), KerasAdam)
    for a, c in zip(got, want):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)
    # torch's Adam with the same eps is another optimizer (eps inside the bias correction) ...
    torch_adam = _torch_run(lambda p: torch.optim.Adam(p, lr=lr, betas=(b1, b2), eps=eps), w0, A, b, steps)
    assert np.abs(torch_adam[-1] - want[-1]).max() > 1e-3
    # ... and equals it with eps_t = eps / sqrt(1 - beta2^t) (the documented equivalence)
    same = _torch_run(lambda p: torch.optim.Adam(p, lr=lr, betas=(b1, b2), eps=eps), w0, A, b, steps,
                      eps_schedule=lambda t: eps / math.sqrt(1 - b2 ** t))
    for a, c in zip(same, want):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="no weight decay"):
        build_optimizer([nn.Parameter(torch.zeros(1))], "keras-adam", lr=lr, weight_decay=1e-4)


def test_keras_adam_state_survives_the_training_state_format():
    rng = np.random.default_rng(1)
    A, b, w0 = rng.normal(size=(20, 5)), rng.normal(size=20), rng.normal(size=5)
    want = _numpy_keras_adam(w0, A, b, 6, 0.05, 0.99, 0.999, 0.1)
    w = nn.Parameter(torch.from_numpy(w0.copy()))
    opt = KerasAdam([w], lr=0.05, betas=(0.99, 0.999), eps=0.1)
    At, bt = torch.from_numpy(A), torch.from_numpy(b)

    def step(o):
        o.zero_grad()
        ((At @ w - bt) ** 2).mean().backward()
        o.step()

    for _ in range(3):
        step(opt)
    tensors, meta = optimizer_tensors(opt)
    fresh = KerasAdam([w], lr=1.0)
    restore_optimizer(fresh, tensors, meta)
    assert fresh.state[w]["step"] == 3 and fresh.param_groups[0]["betas"] == (0.99, 0.999)
    for _ in range(3):
        step(fresh)
    np.testing.assert_allclose(w.detach().numpy(), want[-1], rtol=1e-12, atol=1e-14)


# -- Keras 'same' pooling -----------------------------------------------------
def _keras_same_pool_1d(x, left):
    """By hand: out[i] = max over x[2i - left : 2i - left + 3] inside the signal, ceil(L/2) outputs."""
    L = len(x)
    return np.array([x[max(0, 2 * i - left):min(L, 2 * i - left + 3)].max() for i in range(-(-L // 2))])


def test_keras_same_padding_by_hand():
    assert keras_same_padding(6) == (0, 1) and keras_same_padding(100) == (0, 1)
    assert keras_same_padding(7) == (1, 1) and keras_same_padding(1) == (1, 1)
    assert keras_same_padding(2) == (0, 1)


@pytest.mark.parametrize("length", [1, 2, 5, 6, 7, 8, 13, 64])
def test_keras_pooling_1d_matches_hand_computation(length):
    x = torch.randn(2, 3, length, dtype=torch.float64)
    got = KerasSameMaxPool(1)(x)
    left = 0 if length % 2 == 0 else 1
    want = np.stack([[_keras_same_pool_1d(row, left) for row in sample] for sample in x.numpy()])
    np.testing.assert_array_equal(got.numpy(), want)
    symmetric = nn.MaxPool1d(3, stride=2, padding=1)(x)
    assert symmetric.shape == got.shape
    if length % 2:
        torch.testing.assert_close(symmetric, got, rtol=0, atol=0)
    elif length >= 4:
        assert (symmetric != got).any()


@pytest.mark.parametrize("h, w", [(6, 7), (7, 6), (8, 8), (5, 9), (1, 4)])
def test_keras_pooling_2d_matches_hand_computation(h, w):
    x = torch.randn(1, 2, h, w, dtype=torch.float64)
    got = KerasSameMaxPool(2)(x).numpy()
    lh, lw = (0 if h % 2 == 0 else 1), (0 if w % 2 == 0 else 1)
    want = np.empty((1, 2, -(-h // 2), -(-w // 2)))
    for c in range(2):
        for i in range(want.shape[2]):
            for j in range(want.shape[3]):
                rows = slice(max(0, 2 * i - lh), min(h, 2 * i - lh + 3))
                cols = slice(max(0, 2 * j - lw), min(w, 2 * j - lw + 3))
                want[0, c, i, j] = x.numpy()[0, c, rows, cols].max()
    np.testing.assert_array_equal(got, want)
    symmetric = nn.MaxPool2d(3, stride=2, padding=1)(x).numpy()
    if h % 2 and w % 2:
        np.testing.assert_array_equal(symmetric, got)


def test_pooling_is_a_model_option_with_the_same_weights():
    keras = SignalPINet(2, resolution=6, widths=SMALL, pool_padding="keras")
    sym = SignalPINet(2, resolution=6, widths=SMALL)
    assert sum(isinstance(m, KerasSameMaxPool) for m in keras.modules()) == 3
    assert not any(isinstance(m, KerasSameMaxPool) for m in sym.modules())
    sym.load_state_dict(keras.state_dict())
    keras.eval(), sym.eval()
    odd = torch.randn(2, 2, 1)  # lengths 1, 1, 1 at every pooling: equal
    torch.testing.assert_close(keras(odd), sym(odd), rtol=0, atol=0)
    assert not torch.equal(keras(torch.randn(2, 2, 64)), sym(torch.randn(2, 2, 64)))
    image = ImagePINet(1, resolution=4, widths=SMALL, pool_padding="keras").eval()
    assert image(torch.randn(2, 1, 6, 8)).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="pool_padding must be one of"):
        SignalPINet(2, pool_padding="same")


# -- Glorot initialisation ----------------------------------------------------
def test_glorot_init_has_the_glorot_bound():
    torch.manual_seed(0)
    net = ImagePINet(3, resolution=12, widths=(32, 64, 64, 128), init="glorot")
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    assert len(layers) == 6
    for layer in layers:
        w = layer.weight.detach()
        if isinstance(layer, nn.Linear):
            fans = layer.in_features + layer.out_features
        else:  # conv: fan = channels * kernel size (transposed: in/out swapped, same sum)
            fans = (layer.in_channels + layer.out_channels) * math.prod(layer.kernel_size)
        bound = math.sqrt(6.0 / fans)
        assert float(w.abs().max()) <= bound
        if w.numel() >= 2000:  # uniform on [-b, b]: std b / sqrt(3), extremes near b
            assert float(w.abs().max()) > 0.98 * bound
            assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.05 * bound
        assert torch.count_nonzero(layer.bias) == 0
    signal = SignalPINet(2, resolution=8, widths=SMALL, init="glorot", head_type="lowrank", head_rank=4)
    assert torch.count_nonzero(signal.fc.up.bias) == 0
    torch_default = SignalPINet(2, resolution=8, widths=SMALL)
    assert torch.count_nonzero(torch_default.features[0].bias) > 0  # torch's layers: uniform biases
    with pytest.raises(ValueError, match="init must be one of"):
        SignalPINet(2, init="he")


# -- the reference mode -------------------------------------------------------
def test_reference_stages_and_lrs():
    assert reference_stages(1000) == (0, 300, 600)
    assert reference_stages(10) == (0, 3, 6)
    assert reference_stages(1) == (0, 1, 1)
    lrs = [reference_lr(e, 1e-3, 1000) for e in (0, 299, 300, 599, 600, 999)]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], rel=1e-12)


def test_reference_schedule_restarts_the_optimizer_each_stage(windows, monkeypatch):
    from topokd.engine import optim

    steps = []
    update = optim.keras_adam_update

    def spy(param, grad, exp_avg, exp_avg_sq, step, **kw):
        if param.dim() == 3 and param.shape[1] == 2:  # the first convolution's weight: one record per batch
            steps.append((step, kw["lr"], float(exp_avg.abs().sum())))
        update(param, grad, exp_avg, exp_avg_sq, step, **kw)

    monkeypatch.setattr(optim, "keras_adam_update", spy)
    est = estimator(epochs=10, val_fraction=0.0).fit(windows[:64])  # 64 windows, batch 16: 4 steps an epoch
    assert [h["lr"] for h in est.history_] == pytest.approx([1e-3] * 3 + [1e-4] * 3 + [1e-5] * 4, rel=1e-12)
    assert len(steps) == 40
    counts = [s for s, _, _ in steps]
    assert counts == list(range(1, 13)) + list(range(1, 13)) + list(range(1, 17))
    lrs = [lr for _, lr, _ in steps]
    assert lrs == pytest.approx([1e-3] * 12 + [1e-4] * 12 + [1e-5] * 16, rel=1e-12)
    assert isinstance(est.model_.features[3], KerasSameMaxPool)
    assert est.model_config_["pool_padding"] == "keras" and est.model_config_["init"] == "glorot"


def test_reference_mode_keeps_the_last_epoch_and_raw_targets(windows):
    X, Xv = windows[:54], windows[54:]
    est = estimator(epochs=6).fit(X, X_val=Xv)
    assert est.target_scale_ == 1.0
    Yv = est.targets(Xv)
    mse = est.evaluate(Xv, Yv)["mse"]
    assert mse == pytest.approx(est.history_[-1]["val_mse"], rel=1e-5)  # raw units, last epoch's weights
    assert est.best_score_ == min(h["val_mse"] for h in est.history_)
    adamw = estimator(epochs=6, optimizer="adamw").fit(X, X_val=Xv)
    rms = float(np.sqrt(np.mean(np.square(est.targets(X), dtype=np.float64))))
    assert adamw.target_scale_ == pytest.approx(rms) and adamw.target_scale_ != 1.0
    assert adamw.model_config_["pool_padding"] == "symmetric" and adamw.model_config_["init"] == "torch"
    chosen = estimator(epochs=1, optimizer="adamw", pool_padding="keras", init="glorot").fit(X)
    assert chosen.model_config_["pool_padding"] == "keras" and chosen.model_config_["init"] == "glorot"


def test_reference_resume_is_exact_across_a_stage_start(windows, tmp_path, monkeypatch):
    from topokd.engine import loop

    X = windows[:60]
    ckpt = tmp_path / "state.safetensors"
    whole = estimator(epochs=10).fit(X)
    save = loop._save_state

    def save_then_crash(ckpt, model, optimizer, generator, epoch, *args):  # stage 2 starts at epoch 4
        save(ckpt, model, optimizer, generator, epoch, *args)
        if epoch == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_save_state", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        estimator(epochs=10, checkpoint=ckpt).fit(X)
    monkeypatch.setattr(loop, "_save_state", save)
    resumed = estimator(epochs=10, checkpoint=ckpt).fit(X, resume=True)
    assert [h["epoch"] for h in resumed.history_] == list(range(1, 11))
    for a, b in zip(resumed.history_, whole.history_):
        assert a["train_mse"] == b["train_mse"] and a["val_mse"] == b["val_mse"]
    for k, v in whole.model_.state_dict().items():
        assert torch.equal(v, resumed.model_.state_dict()[k]), k
    with pytest.raises(CheckpointError, match="cannot resume .*'optimizer': 'reference'"):
        estimator(epochs=10, checkpoint=ckpt, optimizer="adamw").fit(X, resume=True)


def test_reference_model_round_trips_bit_for_bit(windows, tmp_path):
    est = estimator(epochs=2).fit(windows[:40])
    path = est.save(tmp_path / "ref.safetensors")
    loaded = PINet.load(path, progress=False)
    assert loaded.model_config_ == est.model_config_
    assert (loaded.pool_padding, loaded.init, loaded.optimizer) == ("keras", "glorot", "reference")
    assert isinstance(loaded.model_.features[3], KerasSameMaxPool)
    for k, v in est.model_.state_dict().items():
        assert torch.equal(v, loaded.model_.state_dict()[k]), k
    np.testing.assert_array_equal(loaded.predict(windows[40:]), est.predict(windows[40:]))
    net = build_model(est.model_config_)
    assert isinstance(net.features[7], KerasSameMaxPool)


def test_old_checkpoints_without_the_new_keys_load_as_before(windows, tmp_path):
    est = estimator(epochs=1, optimizer="adamw").fit(windows[:40])
    path = est.save(tmp_path / "new.safetensors")
    tensors, meta = load_checkpoint(path)
    for key in ("pool_padding", "init", "head_type", "head_rank"):
        meta["model"].pop(key, None)
    meta["training"].pop("schedule")
    old = save_checkpoint(tmp_path / "old.safetensors", tensors, meta)
    loaded = PINet.load(old, progress=False)
    assert isinstance(loaded.model_.features[3], nn.MaxPool1d) and isinstance(loaded.model_.fc, nn.Linear)
    assert (loaded.pool_padding, loaded.init) == ("symmetric", "torch")
    np.testing.assert_array_equal(loaded.predict(windows[40:]), est.predict(windows[40:]))


# -- slim heads -----------------------------------------------------------------
def _convs_bn(n, widths):
    counts, prev = 0, n
    for w in widths:
        counts += prev * w * 3 + w + 2 * w  # conv + BatchNorm (gamma, beta)
        prev = w
    return counts


@pytest.mark.parametrize("n, r", [(6, 50), (2, 7)])
def test_head_parameter_counts_by_hand(n, r):
    widths, F, P = (128, 256, 512, 1024), 1024, n * r * r
    enc = _convs_bn(n, widths)
    count = {h: sum(p.numel() for p in SignalPINet(n, r, head_type=h, head_rank=32).parameters())
             for h in ("dense", "conv", "lowrank")}
    assert count["dense"] == enc + F * P + P
    assert count["lowrank"] == enc + 32 * (F + P) + P
    s = -(-r // 8)  # conv: Linear(F -> 64 s^2), 3x3 convs 64->32->16->16, 16->n
    conv = F * 64 * s * s + 64 * s * s + (64 * 32 + 32 * 16 + 16 * 16) * 9 + 32 + 16 + 16 + 16 * n * 9 + n
    assert count["conv"] == enc + conv
    if (n, r) == (6, 50):
        assert (count["dense"], count["conv"], count["lowrank"]) == (17_447_448, 5_313_126, 2_600_216)


@pytest.mark.parametrize("head_type", ["conv", "lowrank"])
def test_slim_heads_shapes(head_type):
    net = SignalPINet(3, resolution=9, widths=SMALL, head_type=head_type, head_rank=5, channels_last=True).eval()
    assert isinstance(net.fc, ConvDecoder if head_type == "conv" else LowRankLinear)
    assert net(torch.randn(4, 11, 3)).shape == (4, 3, 9, 9)
    image = ImagePINet(2, resolution=13, widths=SMALL, head_type=head_type, head_rank=5, head="sigmoid").eval()
    out = image(torch.randn(3, 2, 8, 8)).detach()
    assert out.shape == (3, 2, 13, 13) and 0 <= float(out.min()) and float(out.max()) <= 1
    with pytest.raises(ValueError, match="head_type must be one of"):
        SignalPINet(2, head_type="mlp")
    with pytest.raises(ValueError, match="head_rank must be an integer >= 1"):
        SignalPINet(2, head_type="lowrank", head_rank=0)


@pytest.mark.parametrize("head_type", ["conv", "lowrank"])
def test_slim_head_round_trips_bit_for_bit(windows, tmp_path, head_type):
    est = estimator(epochs=2, optimizer="adamw", head_type=head_type, head_rank=6).fit(windows[:40])
    assert est.model_config_["head_type"] == head_type
    assert ("head_rank" in est.model_config_) == (head_type == "lowrank")
    path = est.save(tmp_path / "slim.safetensors")
    loaded = PINet.load(path, progress=False)
    assert (loaded.head_type, loaded.model_config_) == (head_type, est.model_config_)
    for k, v in est.model_.state_dict().items():
        assert torch.equal(v, loaded.model_.state_dict()[k]), k
    np.testing.assert_array_equal(loaded.predict(windows[40:]), est.predict(windows[40:]))


def test_cli_trains_a_slim_head(windows, tmp_path, capsys):
    from topokd.cli import main

    np.save(tmp_path / "x.npy", windows[:30])
    out = tmp_path / "m.safetensors"
    assert main(["pinet", "train", "--data", str(tmp_path / "x.npy"), "-o", str(out), "--epochs", "1",
                 "--widths", "4,4,4,8", "--resolution", "8", "--head-type", "conv", "--quiet"]) == 0
    assert "last val MSE" in capsys.readouterr().out  # the reference mode keeps the last epoch
    assert PINet.load(out, progress=False).model_config_["head_type"] == "conv"
    bad = ["pinet", "train", "--data", str(tmp_path / "x.npy"), "-o", str(tmp_path / "n.safetensors")]
    assert main(bad + ["--head-rank", "0"]) == 1 and "--head-rank 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses an unknown choice
        main(bad + ["--head-type", "mlp"])
