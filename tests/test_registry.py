"""The one model registry (topokd.models): registration forms, names and
errors, the composite models, and build_model round trips for every model
description topokd checkpoints carry."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import topokd.models as models
from topokd.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from topokd.models import (
    MODELS,
    ConvNet,
    FusionTeacher,
    ImagePINet,
    PIAugmentedStudent,
    PITeacher,
    SignalPINet,
    WideResNet,
    build_model,
    create_model,
    list_models,
    model_entry,
    register_model,
)

SMALL_PINET = (4, 8, 8, 8)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture
def scratch():
    """Names registered by a test are removed afterwards."""
    before = set(MODELS)
    yield
    for name in set(MODELS) - before:
        MODELS.pop(name)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------
def test_list_models_holds_every_kind_of_model():
    names = list_models()
    for name in ("wrn16-1", "wrn28-10", "resnet8", "resnet110", "cnn", "signal-pinet", "image-pinet",
                 "pi-teacher", "fusion-teacher", "pi-augmented-student"):
        assert name in names
    assert len(names) == len(MODELS) == 14 + 7 + 1 + 2 + 3
    assert not any(n.endswith(("_1d", "_2d")) for n in names)  # one name per model
    # natural order, shell patterns, dims filter
    assert list_models("wrn16-*") == ["wrn16-1", "wrn16-2", "wrn16-3", "wrn16-4", "wrn16-8"]
    assert list_models("resnet*") == ["resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56",
                                      "resnet110"]
    assert list_models("*pinet") == ["image-pinet", "signal-pinet"]
    assert list_models("*-teacher") == ["fusion-teacher", "pi-teacher"]
    assert list_models(dims=2) == list_models(dims=1) == [n for n in names if model_entry(n).dims == (1, 2)]
    assert "signal-pinet" not in list_models(dims=1) and len(list_models(dims=1)) == 22
    assert list_models("nothing*") == []
    with pytest.raises(ValueError, match="dims must be None, 1 or 2"):
        list_models(dims=3)


def test_create_model_spellings_and_dims():
    a = create_model("wrn16-3", dims=1, num_classes=6, in_channels=3, dropout=0.3)
    b = create_model("wrn16-3_1d", num_classes=6, in_channels=3)
    assert isinstance(a, WideResNet) and (a.depth, a.widen_factor, a.dims, a.num_features) == (16, 3, 1, 192)
    assert a.dropout == 0.3 and shapes(a) == shapes(b)
    assert create_model("wrn16-3_2d", dims=2, num_classes=6, in_channels=3).dims == 2  # agreeing dims is fine
    assert model_entry("wrn16-3_2d") is model_entry("wrn16-3")
    pinet = create_model("signal-pinet", in_channels=2, resolution=5, widths=SMALL_PINET)
    assert isinstance(pinet, SignalPINet) and pinet(torch.randn(3, 2, 11)).shape == (3, 2, 5, 5)
    assert isinstance(create_model("image-pinet", in_channels=1, resolution=4, widths=SMALL_PINET), ImagePINet)


def test_create_model_errors_are_one_clear_line():
    with pytest.raises(ValueError, match="needs dims=1") as err:
        create_model("wrn16-3", num_classes=6, in_channels=3)
    assert "'wrn16-3_1d'" in str(err.value)
    with pytest.raises(ValueError, match="1-D model but dims=2"):
        create_model("wrn16-3_1d", dims=2, num_classes=6, in_channels=3)
    with pytest.raises(ValueError, match=r"built with dims in \[1, 2\], got dims=3"):
        create_model("wrn16-3", dims=3, num_classes=6, in_channels=3)
    with pytest.raises(ValueError, match="takes no dims"):
        create_model("signal-pinet", dims=1, in_channels=2)
    with pytest.raises(ValueError) as err:
        create_model("wrn16-5_1d", num_classes=6, in_channels=3)
    message = str(err.value)
    assert re.match(r"unknown model 'wrn16-5_1d'; did you mean ('wrn16-\d_1d'(, )?){3}\? \(", message), message
    assert "list_models()" in message and "\n" not in message
    with pytest.raises(ValueError, match="did you mean 'signal-pinet'"):
        create_model("signal_pinet", in_channels=2)
    with pytest.raises(ValueError, match=r"^unknown model 'xyz' \(topokd.models.list_models\(\) lists the 27 "):
        create_model("xyz")
    with pytest.raises(ValueError, match="unknown model 'signal-pinet_1d'"):  # no suffix for non-families
        create_model("signal-pinet_1d", in_channels=2)


# ---------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------
def test_register_model_forms(scratch):
    @register_model
    def tiny_cnn(dims, num_classes, in_channels):
        """A one-stage CNN."""
        return ConvNet(num_classes, in_channels, dims, widths=(4,))

    @register_model("tiny-mlp")
    def make_mlp(in_features=3, out_features=2):
        return torch.nn.Linear(in_features, out_features)

    def wide(dims, **kwargs):
        return WideResNet(10, 2, dims=dims, **kwargs)

    assert register_model("tiny-wrn", wide) is wide  # the call form returns the factory
    assert tiny_cnn.__name__ == "tiny_cnn"  # decorating leaves the function as it is
    assert model_entry("tiny-cnn").dims == (1, 2) and model_entry("tiny-cnn").summary == "A one-stage CNN."
    assert model_entry("tiny-mlp").dims is None and model_entry("tiny-wrn").dims == (1, 2)
    assert list_models("tiny-*") == ["tiny-cnn", "tiny-mlp", "tiny-wrn"]
    model = create_model("tiny-cnn_1d", num_classes=2, in_channels=1)
    assert model.feature_layers == ("stage1",) and n_params(model) == 5 * 1 * 4 + 2 * 4 + 4 * 2 + 2
    assert create_model("tiny-mlp", in_features=5).weight.shape == (2, 5)
    assert create_model("tiny-wrn", dims=2, num_classes=3, in_channels=2).widen_factor == 2

    # explicit dims: a 2-D-only family
    register_model("tiny-2d", lambda dims, **kw: ConvNet(dims=dims, widths=(2,), **kw), dims=(2,))
    assert create_model("tiny-2d_2d", num_classes=2, in_channels=1).dims == 2
    with pytest.raises(ValueError, match="unknown model 'tiny-2d_1d'"):
        create_model("tiny-2d_1d", num_classes=2, in_channels=1)
    # a factory taking **kwargs only has no dims unless told
    register_model("kw-only", lambda **kw: ConvNet(widths=(2,), **kw))
    assert model_entry("kw-only").dims is None


def test_register_model_refuses_duplicates_and_bad_names(scratch):
    register_model("dup", ConvNet)
    with pytest.raises(ValueError, match=r"'dup' is already registered \(register_model\(\.\.\., overwrite=True\)"):
        register_model("dup", WideResNet)
    with pytest.raises(ValueError, match="already registered"):
        register_model("wrn16-1", ConvNet)  # built-ins too
    register_model("dup", WideResNet, overwrite=True)
    assert MODELS["dup"] is WideResNet
    with pytest.raises(ValueError, match="reserved"):
        register_model("tiny_1d", ConvNet)
    with pytest.raises(ValueError, match="without spaces"):
        register_model("two words", ConvNet)
    with pytest.raises(ValueError, match="cannot derive a model name"):
        register_model(lambda dims: ConvNet(2, 1, dims))
    with pytest.raises(TypeError, match="must be callable"):
        register_model("not-callable", 3)
    with pytest.raises(ValueError, match="must hold 1 and/or 2"):
        register_model("bad-dims", ConvNet, dims=(3,))
    # the registry is a mapping: item assignment registers, pop unregisters
    MODELS["by-item"] = ConvNet
    assert model_entry("by-item").dims == (1, 2) and "by-item" in list_models()
    MODELS.pop("by-item")
    assert "by-item" not in list_models()


def test_pinet_and_distill_registries_are_this_one():
    import topokd.distill
    import topokd.pinet
    import topokd.pinet.models as pinet_models

    assert topokd.pinet.create_model is create_model and topokd.pinet.MODELS is MODELS
    assert pinet_models.create_model is create_model and topokd.distill.MODELS is MODELS
    assert pinet_models.SignalPINet is SignalPINet and topokd.pinet.ImagePINet is ImagePINet
    assert topokd.distill.PITeacher is PITeacher and topokd.distill.models.FusionTeacher is FusionTeacher
    teacher = topokd.pinet.create_model("pi-teacher", backbone="resnet8", num_classes=2, in_channels=1)
    assert isinstance(teacher, PITeacher) and teacher.backbone.fc.weight.shape == (2, 64)


# ---------------------------------------------------------------------------
# composite models from plain keywords
# ---------------------------------------------------------------------------
def test_composites_from_keywords():
    teacher = create_model("pi-teacher", backbone="resnet8", num_classes=5, in_channels=4).eval()
    assert isinstance(teacher, PITeacher) and teacher.backbone.dims == 2 and teacher.backbone.in_channels == 4
    assert teacher(torch.rand(2, 4, 10, 10)).shape == (2, 5)
    assert n_params(teacher) == n_params(create_model("resnet8_2d", num_classes=5, in_channels=4))

    fusion = create_model("fusion-teacher", signal_backbone="cnn", pi_backbone="resnet8", num_classes=3,
                          in_channels=2, pi_channels=4).eval()
    assert isinstance(fusion, FusionTeacher)
    assert (fusion.signal_backbone.dims, fusion.signal_backbone.in_channels, fusion.signal_backbone.num_classes,
            fusion.pi_backbone.dims, fusion.pi_backbone.in_channels) == (1, 2, 0, 2, 4)
    assert fusion.num_features == 128 + 64 and fusion.classifier.weight.shape == (3, 192)
    assert fusion(torch.randn(2, 2, 30), torch.rand(2, 4, 8, 8)).shape == (2, 3)

    net = SignalPINet(2, 6, widths=SMALL_PINET)
    student = create_model("pi-augmented-student", signal_backbone="cnn", pi_backbone="resnet8", pinet=net,
                           num_classes=4).eval()
    assert isinstance(student, PIAugmentedStudent) and student.signal_backbone.in_channels == 2  # from the PI-Net
    assert student(torch.randn(3, 2, 25)).shape == (3, 4)
    with pytest.raises(ValueError, match="needs num_classes"):
        create_model("pi-teacher", backbone="resnet8", in_channels=4)
    with pytest.raises(ValueError, match="pi_backbone='resnet8' needs in_channels"):
        create_model("fusion-teacher", signal_backbone=create_model("cnn_1d", num_classes=0, in_channels=2),
                     pi_backbone="resnet8", num_classes=3)


# ---------------------------------------------------------------------------
# build_model: the model descriptions of topokd checkpoints
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pinet_checkpoint(tmp_path_factory):
    from topokd.data import wearable_windows
    from topokd.pinet import PINet

    X, _ = wearable_windows(24, 32, 3, seed=0)
    est = PINet("signal", pi_params={"resolution": 8}, widths=SMALL_PINET, epochs=1, optimizer="adamw",
                progress=False, device="cpu").fit(X)
    path = tmp_path_factory.mktemp("pinet") / "pinet.safetensors"
    est.save(path)
    return path


def splits_like(classes=4, channels=3, pi_channels=3, length=40, resolution=8):
    """What build_teacher reads from a Splits: the classes and the train arrays' shapes."""
    return SimpleNamespace(classes=list(range(classes)),
                           train=SimpleNamespace(signals=np.zeros((5, length, channels), np.float32),
                                                 pis=np.zeros((5, pi_channels, resolution, resolution), np.float32)))


def assert_same_architecture(rebuilt, built):
    assert type(rebuilt) is type(built)
    assert shapes(rebuilt) == shapes(built)
    rebuilt.load_state_dict(built.state_dict())  # strict: every key fits


@pytest.mark.parametrize("inputs, model, pi_model", [("signal", "resnet8", None), ("pi", "wrn10-1", None),
                                                     ("fusion", "cnn", "resnet8")])
def test_build_model_rebuilds_the_experiment_teachers(inputs, model, pi_model):
    from topokd.distill.config import TeacherSpec
    from topokd.distill.experiment import build_teacher

    built, desc = build_teacher(TeacherSpec(name="t", model=model, inputs=inputs, pi_model=pi_model),
                                splits_like(pi_channels=5))
    assert desc["inputs"] == inputs and desc["name"] == "t"
    rebuilt = build_model(desc)
    assert_same_architecture(rebuilt, built)
    built.eval(), rebuilt.eval()
    signal, pis = torch.randn(2, 3, 40), torch.rand(2, 5, 8, 8)
    args = {"signal": (signal,), "pi": (pis,), "fusion": (signal, pis)}[inputs]
    torch.testing.assert_close(rebuilt(*args), built(*args), rtol=0, atol=0)


def test_build_model_rebuilds_plain_and_pi_augmented_students(pinet_checkpoint):
    from topokd.distill.config import StudentSpec
    from topokd.distill.experiment import build_student

    plain = build_student(StudentSpec(model="wrn10-1"), 4, 3)
    desc = {"model": "wrn10-1", "inputs": "signal", "num_classes": 4, "in_channels": 3, "pinet": None,
            "pi_model": None}
    assert_same_architecture(build_model(desc), plain)

    spec = StudentSpec(model="cnn", pinet=str(pinet_checkpoint), pi_model="resnet8")
    augmented = build_student(spec, 4, 3)
    desc = {"model": "cnn", "inputs": "signal", "num_classes": 4, "in_channels": 3, "pinet": str(pinet_checkpoint),
            "pi_model": "resnet8"}
    rebuilt = build_model(desc)
    assert isinstance(rebuilt, PIAugmentedStudent)
    assert_same_architecture(rebuilt, augmented)
    assert any(k.startswith("pinet.net.") for k in rebuilt.state_dict())


def test_a_trained_pi_augmented_student_checkpoint_loads_into_build_model(pinet_checkpoint, tmp_path):
    """The checkpoint of a PI-augmented student (as the distillation trainer
    writes it) rebuilds with build_model, and its trained weights load."""
    from topokd.distill.config import StudentSpec
    from topokd.distill.experiment import build_student

    student = build_student(StudentSpec(model="wrn10-1", pinet=str(pinet_checkpoint), pi_model="resnet8"), 3, 3)
    signal, y = torch.randn(8, 3, 32), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):  # "train": the weights and BatchNorm statistics move away from the initial ones
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(student(signal), y).backward()
        optimizer.step()
    desc = {"model": "wrn10-1", "inputs": "signal", "num_classes": 3, "in_channels": 3,
            "pinet": str(pinet_checkpoint), "pi_model": "resnet8"}
    path = save_checkpoint(tmp_path / "student.safetensors", student.state_dict(), {"role": "student", "model": desc})

    tensors, meta = load_checkpoint(path)
    rebuilt = build_model(meta["model"])
    rebuilt.load_state_dict(tensors)  # strict
    student.eval(), rebuilt.eval()
    torch.testing.assert_close(rebuilt(signal), student(signal), rtol=0, atol=0)
    # the same student from a self-contained description (the PI-Net's own description instead of its path)
    pinet_desc = {**load_checkpoint(pinet_checkpoint)[1]["model"], "input_scale": student.pinet.input_scale}
    selfcontained = build_model({**desc, "pinet": pinet_desc})
    selfcontained.load_state_dict(tensors)
    torch.testing.assert_close(selfcontained.eval()(signal), student(signal), rtol=0, atol=0)
    # what the compress loader did before (only desc["model"], ignoring pinet / pi_model) cannot hold them
    with pytest.raises(RuntimeError, match="Unexpected key"):
        create_model(desc["model"], dims=1, num_classes=3, in_channels=3).load_state_dict(tensors)


def test_build_model_rebuilds_pinet_descriptions(pinet_checkpoint):
    tensors, meta = load_checkpoint(pinet_checkpoint)
    desc = meta["model"]
    assert desc["name"] == "signal-pinet" and desc["channels_last"] is True
    net = build_model(desc)
    assert isinstance(net, SignalPINet) and net.channels_last and net.widths == SMALL_PINET
    net.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    image = build_model({"name": "image-pinet", "in_channels": 2, "resolution": 6, "widths": [4, 8, 8, 8],
                         "head": "sigmoid"})
    assert isinstance(image, ImagePINet) and image.head_name == "sigmoid"
    assert shapes(image) == shapes(ImagePINet(2, 6, widths=SMALL_PINET, head="sigmoid"))
    # any registered model with its keywords
    teacher = build_model({"name": "pi-teacher", "backbone": "resnet8", "num_classes": 2, "in_channels": 3})
    assert isinstance(teacher, PITeacher)


@pytest.mark.parametrize("desc, match", [
    ({"model": "resnet8", "inputs": "signal", "num_classes": 3}, r"lacks 'in_channels'"),
    ({"model": "resnet8", "inputs": "audio", "num_classes": 3, "in_channels": 2}, r"'inputs' must be one of"),
    ({"model": "resnet9", "inputs": "signal", "num_classes": 3, "in_channels": 2},
     r"unknown model 'resnet9'; did you mean 'resnet8'"),
    ({"model": "resnet8", "inputs": "pi", "num_classes": 3, "in_channels": 2}, r"lacks 'pi_channels'"),
    ({"model": "resnet8", "inputs": "fusion", "num_classes": 3, "in_channels": 2, "pi_channels": 2,
      "pi_model": None}, r"lacks 'pi_model'"),
    ({"model": "resnet8", "inputs": "signal", "num_classes": 3, "in_channels": 2, "pinet": "x.safetensors",
      "pi_model": None}, r"lacks 'pi_model'"),
    ({"model": "resnet8", "inputs": "signal", "num_classes": "3", "in_channels": 2}, r"'num_classes' must be an int"),
    ({"name": "signal-pinet", "resolution": 8}, r"in_channels"),
    ({"name": "no-such-net", "in_channels": 2}, r"unknown model 'no-such-net'"),
    ({"weights": "x"}, r"names no model"),
    ({"model": "cnn", "inputs": "signal", "num_classes": 3, "in_channels": 2, "pinet": 7, "pi_model": "resnet8"},
     r"'pinet' must be the path of a PI-Net checkpoint"),
    ({"model": "cnn", "inputs": "signal", "num_classes": 3, "in_channels": 2, "pi_model": "resnet8",
      "pinet": {"name": "image-pinet", "in_channels": 2, "resolution": 4}}, r"pinet must be a topokd.pinet.SignalPINet"),
])
def test_build_model_errors(desc, match):
    with pytest.raises(CheckpointError, match=match) as err:
        build_model(desc)
    assert "\n" not in str(err.value) and str(err.value).startswith("cannot rebuild a model from the description")


def test_build_model_missing_pinet_checkpoint_and_non_dict(tmp_path):
    desc = {"model": "cnn", "inputs": "signal", "num_classes": 3, "in_channels": 2,
            "pinet": str(tmp_path / "missing.safetensors"), "pi_model": "resnet8"}
    with pytest.raises(CheckpointError, match="does not exist"):
        build_model(desc)
    with pytest.raises(CheckpointError, match="must be a dict"):
        build_model("wrn16-1")


def test_models_package_imports_neither_pinet_nor_distill():
    import subprocess
    import sys

    code = ("import sys, topokd.models; "
            "print(sorted(m for m in sys.modules if m.startswith(('topokd.pinet', 'topokd.distill'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert models.__name__ == "topokd.models"
