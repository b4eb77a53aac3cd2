"""The loss registry: every config name, its input kind and call convention
(each loss is built by name and called the documented way), the one-line
errors for unknown names and parameters, registration, and the refusal of a
same-modality loss between a 2-D teacher and a 1-D student."""

import functools
import warnings

import pytest
import torch
from torch import nn

import topokd.distill.losses as L
from topokd.distill.losses import (
    INPUT_KINDS,
    LOSSES,
    AMDLoss,
    AttentionTransferLoss,
    CELoss,
    DDGSDLoss,
    DISTLoss,
    DKDLoss,
    FactorTransferLoss,
    FitNetLoss,
    FusedSimilarityPreservingLoss,
    KDLoss,
    PKTLoss,
    RKDLoss,
    SimilarityPreservingLoss,
    check_pairing,
    create_loss,
    list_losses,
    loss_entry,
    mixup,
    partial_mixup,
    register_loss,
)
from topokd.distill.losses import registry as registry_module

EXPECTED = {
    "ce": (CELoss, "labels"),
    "kd": (KDLoss, "logits"),
    "dist": (DISTLoss, "logits"),
    "dkd": (DKDLoss, "logits+labels"),
    "at": (AttentionTransferLoss, "features"),
    "amd": (AMDLoss, "features"),
    "fitnet": (FitNetLoss, "features"),
    "ft": (FactorTransferLoss, "features"),
    "sp": (SimilarityPreservingLoss, "relations"),
    "fused_sp": (FusedSimilarityPreservingLoss, "relations"),
    "rkd": (RKDLoss, "relations"),
    "pkt": (PKTLoss, "relations"),
    "ddgsd": (DDGSDLoss, "views"),
    "mixup": (mixup, "batch"),
    "partial_mixup": (partial_mixup, "batch"),
}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture
def scratch():
    """Names registered by a test are removed afterwards."""
    before = set(LOSSES)
    yield
    for name in set(LOSSES) - before:
        del registry_module._REGISTRY[name]


def test_every_issue_name_is_registered_with_its_kind():
    assert list_losses() == sorted(EXPECTED)
    for name, (factory, inputs) in EXPECTED.items():
        entry = loss_entry(name)
        assert entry.factory is factory and entry.inputs == inputs, name
        assert entry.call and entry.summary, name
        assert entry.same_modality == (inputs == "features")
    assert list_losses("relations") == ["fused_sp", "pkt", "rkd", "sp"]
    assert list_losses("features") == ["amd", "at", "fitnet", "ft"]
    assert set(INPUT_KINDS) == {e.inputs for e in LOSSES.values()}
    with pytest.raises(ValueError, match="inputs must be None or one of"):
        list_losses("feature")


def test_each_loss_is_built_by_name_and_called_as_documented():
    """One call per registered name, with the convention its entry documents."""
    b, k = 4, 3
    zs, zt, y = torch.randn(b, k), torch.randn(b, k), torch.tensor([0, 1, 2, 1])
    s1, t1 = torch.randn(b, 4, 12), torch.randn(b, 6, 12)  # 1-D student / 1-D teacher stage maps
    t2 = torch.randn(b, 5, 8, 8)  # a 2-D (PI) teacher map
    values = {
        "ce": create_loss("ce")(zs, y),
        "kd": create_loss("kd", temperature=2.0)(zs, zt),
        "dist": create_loss("dist")(zs, zt),
        "at": create_loss("at")([s1, s1], [t1, t1]),
        "amd": create_loss("amd")(s1, t1),
        "fitnet": create_loss("fitnet", student_channels=4, teacher_channels=6)(s1, t1),
        "ft": create_loss("ft", student_channels=4, teacher_channels=6, dims=1)(s1, t1),
        "sp": create_loss("sp")(s1, t2),
        "fused_sp": create_loss("fused_sp")(s1, [t1, t2]),
        "rkd": create_loss("rkd")(s1, t2),
        "pkt": create_loss("pkt")([s1], [t2]),
        "ddgsd": create_loss("ddgsd")(zs, zt, s1, s1 + 0.1, y),
    }
    dkd = create_loss("dkd", beta=6.0)
    dkd.set_epoch(1)
    values["dkd"] = dkd(zs, zt, y)
    for name, value in values.items():
        assert isinstance(value, torch.Tensor) and value.ndim == 0 and torch.isfinite(value), name
    x_mix, _, y_b, lam = create_loss("mixup", alpha=0.4)(s1, y, generator=torch.Generator().manual_seed(3))
    ref = mixup(s1, y, 0.4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x_mix, ref[0]) and torch.equal(y_b, ref[2]) and lam == ref[3]
    fn = create_loss("partial_mixup", alpha=1.0, fraction=0.5)
    assert isinstance(fn, functools.partial)
    assert fn(s1, y)[3].shape == (b,)
    assert set(values) | {"mixup", "partial_mixup"} == set(list_losses())


def test_losses_with_parameters_expose_them_for_the_optimizer():
    fitnet = create_loss("fitnet", student_channels=4, teacher_channels=6)
    assert any(p.requires_grad for p in fitnet.parameters())
    assert isinstance(fitnet.regressor, nn.Module)
    for name in ("ce", "kd", "dist", "rkd", "pkt"):
        assert not list(create_loss(name).parameters()), name


def test_unknown_name_is_one_line_with_did_you_mean_and_the_names():
    with pytest.raises(ValueError) as err:
        create_loss("rdk")
    msg = str(err.value)
    assert "\n" not in msg and "unknown loss 'rdk'" in msg and "did you mean 'rkd'" in msg
    assert all(name in msg for name in EXPECTED)
    with pytest.raises(ValueError, match="did you mean 'fused_sp'"):
        loss_entry("fusedsp")
    with pytest.raises(TypeError, match="must be a string"):
        loss_entry(3)


def test_unknown_and_missing_parameters_are_one_line_naming_the_valid_ones():
    with pytest.raises(TypeError) as err:
        create_loss("rkd", dist_weight=1.0)
    msg = str(err.value)
    assert "\n" not in msg and "'dist_weight'" in msg and "did you mean 'distance_weight'" in msg
    assert "distance_weight, angle_weight, squared, eps" in msg
    with pytest.raises(TypeError) as err:
        create_loss("fitnet", student_channels=4)
    assert "needs teacher_channels" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(TypeError, match="its parameters: alpha, generator"):
        create_loss("mixup", fraction=0.5)
    with pytest.raises(TypeError, match="'weight'.*its parameters"):
        create_loss("dkd", weight=1.0)  # the weight in the objective is the trainer's, not the loss's
    # parameters are read from the class signature: whatever KDLoss takes is accepted
    for param in loss_entry("kd").parameters:
        assert param in KDLoss.__init__.__code__.co_varnames
    assert loss_entry("dkd").parameters == ("alpha", "beta", "temperature", "warmup")
    # invalid values raise the class's own errors
    with pytest.raises(ValueError, match="temperature"):
        create_loss("dkd", temperature=0.0)


def test_register_loss_forms_and_checks(scratch):
    class MyLoss(nn.Module):
        """A test loss."""

        def __init__(self, scale: float = 1.0):
            super().__init__()
            self.scale = scale

        def forward(self, s, t):
            return self.scale * (s - t).pow(2).mean()

    assert register_loss("my_loss", MyLoss, inputs="logits") is MyLoss

    @register_loss("my_decorated", inputs="relations", call="loss(a, b)")
    class Decorated(MyLoss):
        pass

    assert loss_entry("my_decorated").factory is Decorated and loss_entry("my_decorated").call == "loss(a, b)"
    assert loss_entry("my_loss").call == INPUT_KINDS["logits"]
    assert create_loss("my_loss", scale=2.0).scale == 2.0
    assert loss_entry("my_loss").summary == "A test loss."
    with pytest.raises(ValueError, match="already registered"):
        register_loss("my_loss", MyLoss, inputs="logits")
    register_loss("my_loss", Decorated, inputs="logits", overwrite=True)
    assert loss_entry("my_loss").factory is Decorated
    with pytest.raises(ValueError, match="did you mean 'relations'"):
        register_loss("other", MyLoss, inputs="relation")
    with pytest.raises(ValueError, match="did you mean 'features'"):
        register_loss("other", inputs="feature")  # checked at decoration time already
    with pytest.raises(ValueError, match="lowercase"):
        register_loss("My Loss", MyLoss, inputs="logits")
    with pytest.raises(TypeError, match="nn.Module subclass"):
        register_loss("other", lambda: None, inputs="logits")
    with pytest.raises(TypeError, match="batch transform"):
        register_loss("other", MyLoss, inputs="batch")
    assert "other" not in LOSSES
    with pytest.raises(TypeError):
        LOSSES["x"] = None  # read-only view


def test_check_pairing_refuses_cross_modal_feature_losses():
    for name in ("at", "amd", "fitnet", "ft"):
        with pytest.raises(ValueError) as err:
            check_pairing(name, student_dims=1, teacher_dims=2)
        msg = str(err.value)
        assert "same modality" in msg and "rkd" in msg and "sp" in msg and "\n" not in msg
        check_pairing(name, 1, 1)
        check_pairing(name, 2, 2)
    for name in ("sp", "fused_sp", "rkd", "pkt", "kd", "dist", "dkd", "ce"):
        check_pairing(name, 1, 2)
    with pytest.raises(ValueError, match="unknown loss"):
        check_pairing("att", 1, 1)


def test_package_exports():
    for name in L.__all__:
        assert getattr(L, name) is not None, name
    for name in ("FitNetLoss", "RKDLoss", "PKTLoss", "DKDLoss", "DISTLoss", "CELoss", "register_loss",
                 "create_loss", "list_losses", "loss_entry", "check_pairing", "LOSSES", "INPUT_KINDS"):
        assert name in L.__all__, name
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert L.AttentionTransfer is AttentionTransferLoss  # the deprecated aliases still resolve
