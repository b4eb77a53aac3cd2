"""PI-Net models, training, checkpoints and transfer learning."""

import numpy as np
import pytest
import torch

import topokd
from topokd.checkpoint import CheckpointError, save_checkpoint
from topokd.data import wearable_windows
from topokd.pinet import ImagePINet, PINet, SignalPINet, create_model, pi_agreement

SMALL = (8, 16, 16, 32)
# A small task with smooth targets: 16x16 images, wide kernel.
TASK = dict(resolution=16, sigma=0.4)


@pytest.fixture(scope="module")
def windows():
    X, y = wearable_windows(260, 64, 2, seed=3)
    return X, y


def small_estimator(**kw):
    defaults = dict(pi_params=TASK, widths=SMALL, epochs=3, batch_size=32, optimizer="adamw",
                    progress=False, seed=0)
    defaults.update(kw)
    return PINet("signal", **defaults)


@pytest.mark.parametrize("channels, length", [(1, 1), (3, 7), (6, 100)])
def test_signal_pinet_shapes(channels, length):
    model = SignalPINet(channels, resolution=12, widths=SMALL).eval()
    assert model(torch.randn(2, channels, length)).shape == (2, channels, 12, 12)
    last = SignalPINet(channels, resolution=12, widths=SMALL, channels_last=True).eval()
    last.load_state_dict(model.state_dict())
    x = torch.randn(2, channels, length)
    torch.testing.assert_close(last(x.transpose(1, 2)), model(x))
    with pytest.raises(ValueError, match=f"expected {channels} channels"):
        model(torch.randn(2, channels + 1, length))


@pytest.mark.parametrize("channels, h, w", [(1, 1, 1), (3, 5, 9), (3, 32, 32)])
def test_image_pinet_shapes_and_heads(channels, h, w):
    model = ImagePINet(channels, resolution=10, widths=SMALL, head="sigmoid").eval()
    out = model(torch.randn(2, channels, h, w))
    assert out.shape == (2, channels, 10, 10) and out.min() >= 0 and out.max() <= 1
    assert create_model("image-pinet", in_channels=channels, resolution=10, widths=SMALL) is not None
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet")
    with pytest.raises(ValueError, match="head must be one of"):
        ImagePINet(3, head="tanh")


def test_reference_parameter_count():
    # Hand count for the published Signal PI-Net with n = 6 channels, R = 50:
    # convs 6*128*3+128, 128*256*3+256, 256*512*3+512, 512*1024*3+1024; BN 2 per channel;
    # dense 1024*6*2500 + 6*2500.
    convs = (6 * 128 * 3 + 128) + (128 * 256 * 3 + 256) + (256 * 512 * 3 + 512) + (512 * 1024 * 3 + 1024)
    bn = 2 * (128 + 256 + 512 + 1024)
    dense = 1024 * 15000 + 15000
    model = SignalPINet(6)
    assert sum(p.numel() for p in model.parameters()) == convs + bn + dense


def test_image_decoder_is_tensorflow_same_aligned():
    """A delta kernel at the centre index (R-1)//2 of the transposed conv must
    copy the R x R map unshifted, as Keras' Conv2DTranspose(padding='same')."""
    model = ImagePINet(1, resolution=6, widths=SMALL).eval()
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.weight[0, 0, 2, 2] = 1.0  # (6 - 1) // 2 = 2
        model.decoder.bias.zero_()
        model.decoder_bn.running_mean.zero_()
        model.decoder_bn.running_var.fill_(1.0 - 1e-3)  # (x - 0) / sqrt(var + eps) = x
    x = torch.randn(1, 1, 8, 8)
    z = torch.relu(model.fc(model.features(x).mean(dim=(-2, -1)))).view(1, 1, 6, 6)
    torch.testing.assert_close(model(x), torch.relu(z))


@pytest.mark.parametrize("resolution", [1, 6, 7, 50])
def test_image_decoder_equals_the_cropped_transposed_convolution(resolution):
    """The FFT convolution of ImagePINet._decode is torch's ConvTranspose2d
    cropped to its 'same' centre (TensorFlow's split), values and gradients."""
    # float64, seeded: the two computations agree to rounding (float32 sums of a 50x50 transposed
    # convolution differ by ~1e-5 between the FFT and direct paths, which made a float32 check flaky)
    torch.manual_seed(resolution)
    model = ImagePINet(3, resolution=resolution, widths=SMALL).double()
    z = torch.randn(4, 1, resolution, resolution, dtype=torch.float64, requires_grad=True)
    start = (resolution - 1) // 2
    expected = model.decoder(z)[..., start:start + resolution, start:start + resolution]
    got = model._decode(z)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(got.square().sum(), [z, model.decoder.weight])
    ref_grads = torch.autograd.grad(expected.square().sum(), [z, model.decoder.weight])
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


def test_training_beats_the_mean_baseline(windows):
    X, _ = windows
    est = small_estimator(epochs=60, widths=(16, 32, 64, 64))
    est.fit(X[:200])
    Y_test, Y_train = est.targets(X[200:]), est.targets(X[:200])
    baseline = float(((Y_test - Y_train.mean(0)) ** 2).mean())
    scores = est.evaluate(X[200:])
    assert scores["mse"] < 0.6 * baseline, (scores, baseline)
    assert scores["pearson"] > 0.8
    assert est.history_[-1]["train_mse"] < est.history_[0]["train_mse"]


def test_cpu_training_is_reproducible(windows):
    X, _ = windows
    a = small_estimator().fit(X[:80]).predict(X[200:])
    b = small_estimator().fit(X[:80]).predict(X[200:])
    np.testing.assert_array_equal(a, b)
    c = small_estimator(seed=1).fit(X[:80]).predict(X[200:])
    assert not np.array_equal(a, c)


def test_checkpoint_round_trip_is_bit_identical(windows, tmp_path):
    X, _ = windows
    est = small_estimator().fit(X[:80])
    path = est.save(tmp_path / "pinet.safetensors")
    loaded = PINet.load(path, progress=False)
    np.testing.assert_array_equal(loaded.predict(X[200:]), est.predict(X[200:]))
    assert loaded.history_ == est.history_ and loaded.target_scale_ == est.target_scale_
    assert (loaded.optimizer, loaded.epochs, loaded.batch_size, loaded.seed) == ("adamw", 3, 32, 0)
    with pytest.raises(FileExistsError, match="already exists"):
        est.save(path)
    with pytest.raises(CheckpointError, match="in_channels=2, you asked for 3"):
        PINet.load(path, in_channels=3)
    with pytest.raises(CheckpointError, match="kind='signal', you asked for 'image'"):
        PINet.load(path, kind="image")
    with pytest.raises(ValueError, match="built for 2 channels, X has 3"):
        loaded.predict(np.zeros((2, 64, 3)))


def test_resume_continues_exactly(windows, tmp_path, monkeypatch):
    from topokd.engine import loop

    X, _ = windows
    ckpt = tmp_path / "train.safetensors"
    whole = small_estimator(epochs=6).fit(X[:80])
    crashing = small_estimator(epochs=6, checkpoint=ckpt)
    save = loop._save_state

    def save_then_crash(ckpt, model, optimizer, generator, epoch, *args):  # dies right after epoch 3 is saved
        save(ckpt, model, optimizer, generator, epoch, *args)
        if epoch == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_save_state", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        crashing.fit(X[:80])
    monkeypatch.setattr(loop, "_save_state", save)
    resumed = small_estimator(epochs=6, checkpoint=ckpt).fit(X[:80], resume=True)
    assert [h["epoch"] for h in resumed.history_] == list(range(1, 7))
    for a, b in zip(resumed.history_, whole.history_):
        assert a["train_mse"] == b["train_mse"] and a["val_mse"] == b["val_mse"]
    np.testing.assert_array_equal(resumed.predict(X[200:]), whole.predict(X[200:]))
    with pytest.raises(CheckpointError, match="cannot resume"):
        small_estimator(epochs=6, checkpoint=ckpt, widths=(8, 8, 8, 8)).fit(X[:80], resume=True)
    with pytest.raises(CheckpointError, match="'pearson_weight': 0.0.*'pearson_weight': 0.5"):
        small_estimator(epochs=6, checkpoint=ckpt, pearson_weight=0.5).fit(X[:80], resume=True)


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        PINet.load(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt"):
        PINet.load(junk)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a topokd checkpoint"):
        PINet.load(tmp_path / "plain.safetensors")
    save_checkpoint(tmp_path / "other.safetensors", {"w": torch.zeros(2)}, {"kind": "signal"})
    with pytest.raises(CheckpointError, match="does not describe a PI-Net"):
        PINet.load(tmp_path / "other.safetensors")


def test_truncated_checkpoint(windows, tmp_path):
    X, _ = windows
    path = small_estimator(epochs=1).fit(X[:40]).save(tmp_path / "p.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        PINet.load(path)


def test_targets_are_cached_by_data_and_parameters(windows, tmp_path):
    X, _ = windows
    est = small_estimator(cache_dir=tmp_path)
    first = est.targets(X[:20])
    assert len(list(tmp_path.iterdir())) == 1
    with pytest.MonkeyPatch.context() as mp:  # a cache hit must not recompute
        mp.setattr(type(est._transformer()), "transform", None)
        np.testing.assert_array_equal(est.targets(X[:20]), first)
    np.testing.assert_array_equal(first, topokd.signal_pis(X[:20], **TASK))
    small_estimator(cache_dir=tmp_path, pi_params=dict(TASK, sigma=0.5)).targets(X[:20])
    small_estimator(cache_dir=tmp_path).targets(X[1:21])
    assert len(list(tmp_path.iterdir())) == 3


def test_target_and_input_validation(windows):
    X, _ = windows
    est = small_estimator()
    with pytest.raises(ValueError, match=r"targets must have shape \(10, 2, 16, 16\)"):
        est.fit(X[:10], np.zeros((10, 2, 8, 8)))
    with pytest.raises(ValueError, match="non-empty numeric"):
        est.fit(X[:, :, 0])
    bad = X[:10].copy()
    bad[3, 5, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite value at index \(3, 5, 1\)"):
        est.fit(bad)
    with pytest.raises(RuntimeError, match="no trained model"):
        est.predict(X[:2])
    with pytest.raises(ValueError, match="only mode='flatten'"):
        PINet("image", pi_params={"mode": "cubical"}).fit(np.zeros((4, 1, 8, 8)))
    # parameters are stored as given and checked by fit, one line each
    for params, message in (({"epochs": "three"}, "epochs must be an integer >= 1, got 'three'"),
                            ({"epochs": 1.5}, "epochs must be an integer >= 1, got 1.5"),
                            ({"lr": -1.0}, "lr must be a finite number > 0, got -1.0"),
                            ({"widths": (8, 8)}, r"widths must be four positive integers, got \(8, 8\)"),
                            ({"optimizer": "sgd"}, "optimizer must be one of"),
                            ({"val_fraction": 1.0}, r"val_fraction must be a number in \[0, 1\), got 1.0")):
        unchecked = small_estimator(**params)
        assert unchecked.get_params()[next(iter(params))] == next(iter(params.values()))
        with pytest.raises(ValueError, match=message):
            unchecked.fit(X[:10])


def test_fine_tuning_modes(windows):
    X, _ = windows
    est = small_estimator(epochs=2).fit(X[:60])
    frozen = {k: v.clone() for k, v in est.model_.features.state_dict().items()}
    fc = est.model_.fc.weight.detach().clone()
    est.fine_tune(X[100:160], strategy="FS", fraction=0.5, freeze="encoder", epochs=2)
    for k, v in est.model_.features.state_dict().items():
        torch.testing.assert_close(v, frozen[k])  # weights and BN statistics untouched
    assert not torch.equal(est.model_.fc.weight, fc)
    assert all(p.requires_grad for p in est.model_.parameters())
    est.fine_tune(X[100:160], strategy="FA", epochs=1)
    assert not torch.equal(est.model_.features[0].weight, frozen["0.weight"])
    with pytest.raises(ValueError, match="fraction must be in"):
        est.fine_tune(X[:10], strategy="FS", fraction=0.0)


def test_image_pinet_estimator_end_to_end():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(24, 3, 8, 8))
    est = PINet("image", preset="pinet-image", pi_params=dict(resolution=10), widths=SMALL, epochs=2,
                batch_size=8, optimizer="adamw", progress=False)
    est.fit(images)
    pred = est.predict(images[:4])
    assert pred.shape == (4, 3, 10, 10) and pred.dtype == np.float32
    assert set(est.evaluate(images[:4])) >= {"mse", "pearson", "max_abs"}


def test_pi_agreement_by_hand():
    exact = np.zeros((1, 1, 2, 2))
    exact[0, 0] = [[0.0, 1.0], [2.0, 3.0]]
    pred = exact * 2 + 1  # perfectly correlated, errors 1, 2, 3, 4
    scores = pi_agreement(pred, exact)
    assert scores["mse"] == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert scores["pearson"] == pytest.approx(1.0) and scores["max_abs"] == 4.0
    flat = pi_agreement(np.ones((1, 1, 2, 2)), exact)
    assert flat["constant_images"] == 1 and np.isnan(flat["pearson"])


def test_image_pearson_equals_numpy_corrcoef_and_its_gradient_is_right():
    from topokd.pinet.estimator import image_pearson

    rng = np.random.default_rng(0)
    exact = rng.random((3, 2, 5, 5))
    exact[1, 0] = 0.25  # constant exact image: no correlation, left out
    pred = rng.random((3, 2, 5, 5))
    pred[2, 1] = 7.0  # constant prediction: r = 0
    r, valid = image_pearson(torch.from_numpy(pred), torch.from_numpy(exact))
    a, b = pred.reshape(6, 25), exact.reshape(6, 25)
    for i in range(6):
        if i == 2:
            assert not valid[i] and r[i] == 0
        elif i == 5:
            assert valid[i] and r[i] == 0
        else:
            assert valid[i] and float(r[i]) == pytest.approx(np.corrcoef(a[i], b[i])[0, 1], rel=1e-12)
    x = torch.from_numpy(rng.random((2, 1, 4, 4))).requires_grad_(True)
    y = torch.from_numpy(rng.random((2, 1, 4, 4)))
    assert torch.autograd.gradcheck(lambda t: image_pearson(t, y)[0], (x,))
    # a constant prediction (e.g. a saturated sigmoid head): r = 0 and finite gradients, no NaN
    flat = torch.full((2, 1, 4, 4), 0.3, dtype=torch.float64, requires_grad=True)
    r, _ = image_pearson(flat, y)
    r.sum().backward()
    assert torch.equal(r, torch.zeros(2, dtype=torch.float64)) and torch.isfinite(flat.grad).all()
    with pytest.raises(ValueError, match="one shape"):
        image_pearson(torch.zeros(2, 1, 4, 4), torch.zeros(1, 2, 4, 4))


def test_pearson_weight_adds_the_term_monitors_it_and_round_trips(windows, tmp_path):
    X, _ = windows
    with pytest.raises(ValueError, match="pearson_weight must be a finite number >= 0"):
        small_estimator(pearson_weight=-1.0).fit(X[:40])
    plain = small_estimator(epochs=2).fit(X[:80], X_val=X[200:], Y_val=None)
    est = small_estimator(epochs=2, pearson_weight=0.5).fit(X[:80], X_val=X[200:])
    assert "val_pearson" not in plain.history_[-1]
    last = est.history_[-1]
    assert last["train_mse"] != plain.history_[-1]["train_mse"]  # the term changes the training
    assert "train_pearson_loss" in last and "train_pearson_loss" not in plain.history_[-1]
    assert last["val_objective"] == pytest.approx(last["val_mse"] + 0.5 * (1 - last["val_pearson"]))
    # the epoch kept is the one of the best objective, and val_pearson is pi_agreement's mean on it
    best = min(est.history_, key=lambda record: record["val_objective"])
    assert est.best_score_ == best["val_objective"] and est.best_record_ == best
    assert best["val_pearson"] == pytest.approx(pi_agreement(est.predict(X[200:]), est.targets(X[200:]))["pearson"],
                                                rel=1e-5)
    loaded = PINet.load(est.save(tmp_path / "p.safetensors"), progress=False)
    assert loaded.pearson_weight == 0.5


def test_fit_on_a_dataset_of_pairs(windows):
    X, _ = windows
    Y = topokd.signal_pis(X[:40], **TASK)

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return torch.from_numpy(X[i]), torch.from_numpy(Y[i])

    from_pairs = small_estimator(epochs=2).fit(Pairs()).predict(X[200:])
    from_arrays = small_estimator(epochs=2).fit(X[:40], Y).predict(X[200:])
    np.testing.assert_array_equal(from_pairs, from_arrays)


@pytest.mark.parametrize("scale", [None, "standardize", "minmax", "unit"])
def test_module_scaling_equals_the_tda_engine(scale, rng):
    """One torch implementation of the input scaling (PINetModule) against
    the NumPy one of the TDA engine, constant rows included."""
    from topokd.pinet.models import scale_channels
    from topokd.tda.pipeline import scale_rows

    x = rng.normal(size=(4, 3, 37)) * 5 + 9.81
    x[1, 2] = 3.0  # a constant row -> zeros, never NaN
    expected = scale_rows(x.reshape(-1, 37).copy(), scale).reshape(x.shape)
    np.testing.assert_allclose(scale_channels(torch.from_numpy(x), scale).numpy(), expected, rtol=0, atol=1e-12)
    images = rng.uniform(size=(2, 3, 5, 6))
    flat = scale_rows(images.reshape(-1, 30).copy(), scale).reshape(images.shape)
    np.testing.assert_allclose(scale_channels(torch.from_numpy(images), scale, dims=2).numpy(), flat, atol=1e-12)


def test_as_module_is_predict_and_frozen(windows):
    X, _ = windows
    est = small_estimator(epochs=1).fit(X[:40])
    module = est.as_module()
    with torch.no_grad():
        out = module(torch.from_numpy(X[200:205]).float().transpose(1, 2)).numpy()
    np.testing.assert_allclose(out, est.predict(X[200:205]), rtol=1e-6, atol=1e-7)
    module.train()
    assert not module.training and not any(p.requires_grad for p in module.parameters())
    assert module.net is not est.model_  # a copy: the estimator keeps training its own network
    raw = est.as_module(scaled=False, frozen=False)
    assert float(raw.pi_scale) == 1.0 and all(p.requires_grad for p in raw.parameters())
