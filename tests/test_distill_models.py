"""Distillation models: WRN / ResNet / CNN backbones, feature hooks, PI-augmented models.

The models live in topokd.models; topokd.distill.models re-exports them (this
file imports from there on purpose, to keep that path working).  Registry
tests: tests/test_registry.py.  Every random tensor is seeded (``seeded``)."""

import numpy as np
import pytest
import torch

from topokd.distill.models import (
    ConvNet,
    FeatureExtractor,
    FrozenPINet,
    FusionTeacher,
    PIAugmentedStudent,
    PITeacher,
    ResNet,
    WideResNet,
    create_model,
    signals_to_tensor,
)
from topokd.pinet import PINet, SignalPINet
from topokd.tda.pipeline import scale_rows

SMALL_PINET = (8, 16, 16, 32)


@pytest.fixture(autouse=True)
def seeded():
    """Seed torch's global RNG (weight init and random inputs) before every test."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """These models are tiny: one thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_wrn16_1_parameter_count_by_hand():
    # WRN-16-1 on CIFAR (3 input channels, 10 classes): n = 2 blocks per stage, widths 16, 16, 32, 64.
    conv3 = lambda cin, cout: 9 * cin * cout  # noqa: E731  (3x3, no bias)
    bn = lambda c: 2 * c  # noqa: E731
    block = lambda cin, cout: bn(cin) + conv3(cin, cout) + bn(cout) + conv3(cout, cout) + (  # noqa: E731
        cin * cout if cin != cout else 0)  # 1x1 shortcut when the width changes
    stem = conv3(3, 16)  # 432
    stage1 = block(16, 16) + block(16, 16)  # 2 x 4,672
    stage2 = block(16, 32) + block(32, 32)  # 14,432 + 18,560
    stage3 = block(32, 64) + block(64, 64)  # 57,536 + 73,984
    head = bn(64) + 64 * 10 + 10
    expected = stem + stage1 + stage2 + stage3 + head
    assert expected == 175_066  # the paper's "0.175M"
    assert n_params(WideResNet(16, 1, num_classes=10, in_channels=3, dims=2)) == expected
    assert n_params(create_model("wrn16-1_2d", num_classes=10, in_channels=3)) == expected


def test_resnet20_option_a_parameter_count_by_hand():
    # He et al. CIFAR ResNet-20 with zero-padding shortcuts: the paper's 0.27M.
    block = lambda cin, cout: 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout  # noqa: E731
    expected = (9 * 3 * 16 + 32 + 3 * block(16, 16) + block(16, 32) + 2 * block(32, 32)
                + block(32, 64) + 2 * block(64, 64) + 64 * 10 + 10)
    assert expected == 269_722
    assert n_params(ResNet(20, 10, 3, 2, shortcut="pad")) == expected
    # projection shortcuts add a 1x1 conv + BN in the two downsampling blocks
    assert n_params(ResNet(20, 10, 3, 2)) == expected + (16 * 32 + 64) + (32 * 64 + 128)


MODELS_UNDER_TEST = ["wrn16-1", "wrn28-3", "resnet8", "resnet20", "cnn"]


@pytest.mark.parametrize("name", MODELS_UNDER_TEST)
def test_output_shapes_1d_and_2d(name):
    torch.manual_seed(0)
    signal_model = create_model(f"{name}_1d", num_classes=6, in_channels=3).eval()
    for length in (1, 37, 100):
        assert signal_model(torch.randn(2, 3, length)).shape == (2, 6)
    image_model = create_model(name, dims=2, num_classes=10, in_channels=3).eval()
    for size in ((32, 32), (17, 9)):
        assert image_model(torch.randn(2, 3, *size)).shape == (2, 10)
    features = create_model(f"{name}_1d", num_classes=0, in_channels=3).eval()
    x = torch.randn(2, 3, 37)
    assert features(x).shape == (2, features.num_features)
    torch.testing.assert_close(features(x), features.embed(x))


def test_wrn_widths_and_depths_in_feature_shapes():
    x = torch.randn(2, 4, 37)
    model = WideResNet(28, 3, num_classes=5, in_channels=4, dims=1).eval()
    assert [len(getattr(model, f"stage{i}")) for i in (1, 2, 3)] == [4, 4, 4]  # (28 - 4) / 6
    with FeatureExtractor(model) as fx:
        logits, feats = fx(x)
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "stage1": (2, 48, 37), "stage2": (2, 96, 19), "stage3": (2, 192, 10)}
    # the recorded stage3 output is the one the classifier head consumed
    torch.testing.assert_close(model.fc(model.pool(model.final(feats["stage3"]))), logits)


@pytest.mark.parametrize("name, size, widths, spatial", [
    ("wrn16-2_2d", (32, 32), (32, 64, 128), [(32, 32), (16, 16), (8, 8)]),
    ("resnet8_2d", (32, 32), (16, 32, 64), [(32, 32), (16, 16), (8, 8)]),
    ("cnn_2d", (32, 32), (32, 64, 128), [(16, 16), (8, 8), (4, 4)]),
    ("resnet20_1d", (100,), (16, 32, 64), [(100,), (50,), (25,)]),
    ("cnn_1d", (100,), (32, 64, 128), [(50,), (25,), (13,)]),
])
def test_feature_extractor_records_stages_and_removes_hooks(name, size, widths, spatial):
    model = create_model(name, num_classes=4, in_channels=3)
    x = torch.randn(2, 3, *size)
    assert model.feature_layers == ("stage1", "stage2", "stage3")
    fx = FeatureExtractor(model)
    logits, feats = fx(x)
    assert list(feats) == ["stage1", "stage2", "stage3"]
    assert [tuple(f.shape) for f in feats.values()] == [(2, w, *s) for w, s in zip(widths, spatial)]
    # features stay in the graph: a feature loss trains the layers below
    feats["stage2"].pow(2).mean().backward()
    assert all(p.grad is not None for p in model.stage1.parameters())
    assert all(p.grad is None for p in model.stage3.parameters())
    recorded = fx.features["stage1"]
    fx.remove()
    assert not fx.active
    assert all(not m._forward_hooks for m in model.modules())
    model(x)
    assert fx.features["stage1"] is recorded  # nothing recorded after removal
    with pytest.raises(RuntimeError, match="removed"):
        fx(x)


def test_feature_extractor_options_and_errors():
    model = create_model("resnet8_1d", num_classes=3, in_channels=2)
    x = torch.randn(2, 2, 20)
    with FeatureExtractor(model, ["stage3.0.conv2", "pool"], detach=True) as fx:
        model(x)
        assert fx.features["pool"].shape == (2, 64) and not fx.features["pool"].requires_grad
        assert fx.features["stage3.0.conv2"].shape == (2, 64, 5)
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="no submodule 'stage4'.*did you mean"):
        FeatureExtractor(model, ["stage4"])
    with pytest.raises(ValueError, match="feature_layers"):
        FeatureExtractor(torch.nn.Linear(2, 2))


def test_parameter_count_of_a_small_cnn_by_hand():
    # ConvNet(widths=(4, 8), kernel 5) on 3 channels, 2 classes: conv (no bias) + BN per stage, then the head
    expected = (5 * 3 * 4 + 2 * 4) + (5 * 4 * 8 + 2 * 8) + (8 * 2 + 2)
    assert expected == 262
    model = create_model("cnn_1d", num_classes=2, in_channels=3, widths=(4, 8))
    assert n_params(model) == expected
    assert n_params(create_model("cnn", dims=2, num_classes=2, in_channels=3, widths=(4, 8))) == (
        (25 * 3 * 4 + 8) + (25 * 4 * 8 + 16) + 18)  # 5 x 5 kernels in 2-D
    assert n_params(create_model("cnn_1d", num_classes=0, in_channels=3, widths=(4, 8))) == expected - 18


def test_distill_registry_functions_are_the_one_registry():
    import topokd.distill as distill
    import topokd.models as models
    from topokd.distill import models as distill_models

    assert distill.create_model is models.create_model and distill.MODELS is models.MODELS
    assert distill_models.create_model is models.create_model and distill_models.MODELS is models.MODELS
    # the old list_models convention (suffixed names, families only) still works, with a warning
    with pytest.warns(DeprecationWarning, match=r"topokd.models.list_models\(pattern, dims=1\|2\)"):
        assert distill.list_models("wrn16-*_2d") == ["wrn16-1_2d", "wrn16-2_2d", "wrn16-3_2d", "wrn16-4_2d",
                                                     "wrn16-8_2d"]
    with pytest.warns(DeprecationWarning):
        assert "signal-pinet" not in distill.list_models() and "resnet8_1d" in distill.list_models()
    # the old register_model: a family whose factory takes dims (even through **kwargs)
    with pytest.warns(DeprecationWarning, match=r"topokd.models.register_model"):
        distill.register_model("tiny-cnn", lambda **kw: ConvNet(widths=(4,), **kw))
    try:
        assert models.model_entry("tiny-cnn").dims == (1, 2)
        model = create_model("tiny-cnn_2d", num_classes=2, in_channels=1)
        assert (model.dims, model.widths, n_params(model)) == (2, (4,), 25 * 4 + 8 + 4 * 2 + 2)
    finally:
        models.MODELS.pop("tiny-cnn")
    assert "tiny-cnn" not in models.list_models()


def test_bad_parameters_and_inputs():
    with pytest.raises(ValueError, match="6n \\+ 4"):
        WideResNet(15, 1, 10, 3, 2)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        ResNet(18, 10, 3, 2)
    with pytest.raises(ValueError, match="dims must be 1"):
        WideResNet(16, 1, 10, 3, 3)
    with pytest.raises(ValueError, match="dropout"):
        WideResNet(16, 1, 10, 3, 1, dropout=1.0)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ConvNet(10, 3, 1, kernel_size=4)
    model = create_model("cnn_1d", num_classes=4, in_channels=3)
    with pytest.raises(ValueError, match=r"3 channels.*\(N, T, C\)"):
        model(torch.randn(2, 50, 3))
    with pytest.raises(ValueError, match=r"expects a \(B, C, T\)"):
        model(torch.randn(3, 50))


def test_dropout_is_active_only_in_training():
    model = WideResNet(16, 1, 4, 2, 1, dropout=0.5)
    x = torch.randn(4, 2, 30)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_signals_to_tensor():
    X = np.arange(24, dtype=np.float64).reshape(2, 4, 3)  # (N, T, C)
    t = signals_to_tensor(X)
    assert t.shape == (2, 3, 4) and t.dtype == torch.float32 and t.is_contiguous()
    assert t[1, 2, 3] == X[1, 3, 2]


# ---------------------------------------------------------------------------
# PI-augmented models
# ---------------------------------------------------------------------------
def signal_branch(channels=3):
    return create_model("cnn_1d", num_classes=0, in_channels=channels, widths=(8, 16, 16))


def pi_branch(channels=3):
    return create_model("resnet8_2d", num_classes=0, in_channels=channels)


def test_pi_teacher():
    teacher = PITeacher(create_model("wrn16-1_2d", num_classes=5, in_channels=3)).eval()
    pis = torch.rand(2, 3, 20, 20)
    assert teacher(pis).shape == (2, 5)
    assert teacher.feature_layers == ("backbone.stage1", "backbone.stage2", "backbone.stage3")
    with FeatureExtractor(teacher) as fx:
        _, feats = fx(pis)
    assert feats["backbone.stage3"].shape == (2, 64, 5, 5)
    with pytest.raises(ValueError, match=r"\(B, C, R, R\)"):
        teacher(torch.rand(2, 3, 20))
    with pytest.raises(ValueError, match="must be a 2-D network"):
        PITeacher(signal_branch())


def test_fusion_teacher_concatenates_both_branches():
    torch.manual_seed(0)
    teacher = FusionTeacher(signal_branch(), pi_branch(), num_classes=4).eval()
    signal, pis = torch.randn(2, 3, 37), torch.rand(2, 3, 16, 16)
    logits = teacher(signal, pis)
    both = torch.cat([teacher.signal_backbone.embed(signal), teacher.pi_backbone.embed(pis)], dim=1)
    assert both.shape == (2, 16 + 64) and teacher.num_features == 80
    torch.testing.assert_close(logits, teacher.classifier(both))
    layers = list(teacher.feature_layers) + ["signal_backbone.pool", "pi_backbone.pool"]
    assert teacher.feature_layers[0] == "signal_backbone.stage1" and teacher.feature_layers[-1] == "pi_backbone.stage3"
    with FeatureExtractor(teacher, layers) as fx:
        _, feats = fx(signal, pis)
    assert feats["signal_backbone.stage3"].shape == (2, 16, 5) and feats["pi_backbone.stage3"].shape == (2, 64, 4, 4)
    torch.testing.assert_close(torch.cat([feats["signal_backbone.pool"], feats["pi_backbone.pool"]], 1), both)
    with pytest.raises(ValueError, match="same batch size"):
        teacher(signal, pis[:1])
    with pytest.raises(ValueError, match="signal_backbone_1d must be a 1-D network"):
        FusionTeacher(pi_branch(), signal_branch(), 4)


def frozen_pinet(channels=3, resolution=8, channels_last=False, seed=0):
    torch.manual_seed(seed)
    net = SignalPINet(channels, resolution, widths=SMALL_PINET, channels_last=channels_last)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so train/eval mode matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net


def test_pi_augmented_student_keeps_the_pinet_frozen():
    pinet = frozen_pinet()
    reference = {k: v.clone() for k, v in pinet.state_dict().items()}
    student = PIAugmentedStudent(signal_branch(), pinet, pi_branch(), num_classes=4)
    student.train()
    assert student.signal_backbone.training and student.pi_backbone.training
    assert not any(m.training for m in student.pinet.modules())
    assert not any(p.requires_grad for p in student.pinet.parameters())
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.1)
    signal = torch.randn(4, 3, 37)
    loss = torch.nn.functional.cross_entropy(student(signal), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None for p in student.signal_backbone.parameters())
    assert all(p.grad is not None for p in student.pi_backbone.parameters())
    assert student.classifier.weight.grad is not None
    assert all(p.grad is None for p in student.pinet.parameters())
    optimizer.step()
    for k, v in student.pinet.net.state_dict().items():  # weights and BatchNorm statistics untouched
        assert torch.equal(v, reference[k]), k
    # the PIs are those of the PI-Net in eval mode, and they are recorded under "pinet"
    with FeatureExtractor(student, ["pinet"]) as fx:
        _, feats = fx(signal)
    torch.testing.assert_close(feats["pinet"], pinet.eval()(signal))
    assert feats["pinet"].shape == (4, 3, 8, 8)
    assert student.feature_layers[0] == "signal_backbone.stage1"


def test_pi_augmented_student_handles_channels_last_pinets():
    channel_major = frozen_pinet(channels_last=False)
    channels_last = frozen_pinet(channels_last=True)
    channels_last.load_state_dict(channel_major.state_dict())
    torch.manual_seed(1)
    a = PIAugmentedStudent(signal_branch(), channel_major, pi_branch(), 4).eval()
    b = PIAugmentedStudent(signal_branch(), channels_last, pi_branch(), 4).eval()
    b.load_state_dict(a.state_dict())
    signal = torch.randn(2, 3, 41)
    torch.testing.assert_close(b(signal), a(signal))
    torch.testing.assert_close(b.pinet(signal), channel_major(signal))


def test_frozen_pinet_from_an_estimator_matches_predict():
    est = PINet("signal", pi_params=dict(resolution=8), widths=SMALL_PINET, progress=False, device="cpu")
    config = est.pi_config if hasattr(type(est), "pi_config") else est.engine_.config_
    assert config["scale"] == "standardize"  # the default signal preset
    est.model_ = frozen_pinet(channels_last=True)
    est.target_scale_ = 0.37
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(5, 40, 3)) * [1.0, 5.0, 0.1] + 2.0).astype(np.float32)  # (N, T, C)
    frozen = FrozenPINet(est)
    assert frozen.input_scale == "standardize" and float(frozen.pi_scale) == pytest.approx(0.37)
    np.testing.assert_allclose(frozen(signals_to_tensor(X)).numpy(), est.predict(X), rtol=1e-4, atol=1e-5)
    assert frozen.net is not est.model_  # the estimator keeps its own network
    student = PIAugmentedStudent(signal_branch(), est, pi_branch(), 4)
    assert student(signals_to_tensor(X)).shape == (5, 4)
    with pytest.raises(ValueError, match="come from the PINet estimator"):
        FrozenPINet(est, pi_scale=2.0)


def test_frozen_pinet_input_scaling_matches_the_engine():
    net = frozen_pinet(channels=2)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3, 2, 30)).astype(np.float32)
    X[1, 0] = 4.0  # a constant channel: scaled to zeros, never NaN
    for scale in ("minmax", "unit", "standardize"):
        frozen = FrozenPINet(net, input_scale=scale, pi_scale=2.0)
        rows = scale_rows(X.reshape(-1, 30).astype(np.float64), scale).reshape(X.shape)
        expected = 2.0 * net.eval()(torch.from_numpy(rows.astype(np.float32)))
        torch.testing.assert_close(frozen(torch.from_numpy(X)), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="input_scale"):
        FrozenPINet(net, input_scale="zscore")


def test_pi_augmented_student_checks_its_parts():
    pinet = frozen_pinet(channels=3)
    with pytest.raises(ValueError, match="built for 3"):
        PIAugmentedStudent(signal_branch(2), pinet, pi_branch(), 4)
    with pytest.raises(ValueError, match="built for 3"):
        PIAugmentedStudent(signal_branch(), pinet, pi_branch(2), 4)
    with pytest.raises(TypeError, match="SignalPINet"):
        PIAugmentedStudent(signal_branch(), torch.nn.Linear(3, 3), pi_branch(), 4)
    with pytest.raises(ValueError, match="num_classes"):
        PIAugmentedStudent(signal_branch(), pinet, pi_branch(), 0)
    student = PIAugmentedStudent(signal_branch(), pinet, pi_branch(), 4)
    with pytest.raises(ValueError, match=r"\(N, T, C\)"):
        student(torch.randn(2, 37, 3))
