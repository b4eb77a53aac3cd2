"""topokd.compress: counts by hand, pruning, int8 quantisation, DPF/DCIL, PSG, CLI, refusals."""

import copy
import importlib.util
import json
import re

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from topokd.checkpoint import save_checkpoint
from topokd.cli import main
from topokd.compress import (
    PSG,
    CompressionError,
    DynamicPruning,
    QuantizedModel,
    accuracy,
    count_flops,
    count_parameters,
    finalize,
    iterative_prune,
    kd_finetune,
    load_compressed,
    make_fine_tune,
    nearest_grid_point,
    profile,
    prune_structured,
    prune_unstructured,
    quantize_dynamic,
    quantize_qat,
    quantize_static,
    sparsity,
)
from topokd.distill.models import create_model

#: Largest accuracy drop (absolute) allowed for an int8 model on the easy task.
MAX_INT8_DROP = 0.05

_EXTRA = "needs topokd[compress]: pip install 'topokd[compress]'"
#: structured pruning (torch-pruning) and int8 quantisation (torchao) are the compress extra
needs_torch_pruning = pytest.mark.skipif(importlib.util.find_spec("torch_pruning") is None,
                                         reason=f"{_EXTRA} (torch-pruning is missing)")
needs_torchao = pytest.mark.skipif(importlib.util.find_spec("torchao") is None,
                                   reason=f"{_EXTRA} (torchao is missing)")


def same_state(a: nn.Module, b: dict) -> bool:
    sa = a.state_dict()
    return sa.keys() == b.keys() and all(torch.equal(sa[k], b[k]) for k in sa)


def snapshot(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- profile
class Hand(nn.Module):
    """Conv1d(2 -> 3, k=3) on T=8 (valid: 6 outputs), then Linear(18 -> 4)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 3)
        self.fc = nn.Linear(18, 4)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))


def test_counts_of_a_hand_sized_model():
    model = Hand()
    with torch.no_grad():
        model.fc.weight[0, :5] = 0.0
    x = torch.randn(5, 2, 8)
    # conv: 3*2*3 weights + 3 biases = 21; fc: 18*4 + 4 = 76
    assert count_parameters(model) == {"total": 97, "trainable": 97, "nonzero": 92}
    # conv: 3 channels x 6 positions x (2 in x 3 taps) = 108 MACs; fc: 18 x 4 = 72 MACs
    flops = count_flops(model, x)
    assert flops["macs"] == 180 and flops["flops"] == 360
    assert flops["by_op"] == {"convolution": 216, "addmm": 144}
    p = profile(model, x, batch_sizes=(1, 4), repeats=5, warmup=1)
    assert p["macs"] == 180 and p["tensor_bytes"] == 97 * 4 and p["size_bytes"] > 97 * 4
    assert p["format"].startswith("safetensors")
    assert set(p["latency"]) == {"1", "4"}
    lat = p["latency"]["4"]
    assert lat["median_ms"] > 0 and lat["repeats"] == 5 and lat["warmup"] == 1 and lat["batch_size"] == 4
    assert lat["threads"] == torch.get_num_threads()  # threads=None: the current setting, recorded
    # batch 4: the conv output (4 x 3 x 6 float32 = 288 bytes) and its ReLU are alive together
    peak = p["memory"]["peak_bytes"]
    assert p["memory"]["batch_size"] == 4 and 2 * 288 <= peak < 1 << 16


# --------------------------------------------------------------------------- pruning
def test_unstructured_pruning_hits_the_sparsity_exactly():
    torch.manual_seed(0)
    model = create_model("cnn_1d", num_classes=3, in_channels=2, widths=(8, 16))
    before = snapshot(model)
    layer = prune_unstructured(model, 0.3)
    for name, m in layer.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            assert int((m.weight == 0).sum()) == round(0.3 * m.weight.numel()), name
    glob = prune_unstructured(model, 0.7, scope="global")
    weights = [m.weight for m in glob.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    total = sum(w.numel() for w in weights)
    assert sum(int((w == 0).sum()) for w in weights) == round(0.7 * total)
    per_layer = [float((w == 0).float().mean()) for w in weights]
    assert max(per_layer) - min(per_layer) > 0.05  # global: layers differ
    # the smallest magnitudes went: every kept weight >= every pruned one (globally)
    kept = torch.cat([m.weight_orig[m.weight_mask.bool()].abs() for m in glob.modules() if hasattr(m, "weight_mask")])
    gone = torch.cat([m.weight_orig[~m.weight_mask.bool()].abs() for m in glob.modules() if hasattr(m, "weight_mask")])
    assert kept.min() >= gone.max()
    assert same_state(model, before)  # the original is untouched

    x = torch.randn(4, 2, 20)
    layer.eval()
    with torch.no_grad():
        expected = layer(x)
    final = finalize(layer)
    keys = list(final.state_dict())
    assert not any(k.endswith(("_orig", "_mask")) for k in keys) and "stage1.0.weight" in keys
    assert sparsity(final) == pytest.approx(sparsity(layer))
    with torch.no_grad():
        torch.testing.assert_close(final.eval()(x), expected)
    assert count_parameters(final)["nonzero"] == count_parameters(layer)["nonzero"]


@needs_torch_pruning
def test_structured_pruning_removes_channels_and_still_runs():
    torch.manual_seed(0)
    model = create_model("wrn16-1_1d", num_classes=3, in_channels=2).eval()
    before = snapshot(model)
    x = torch.randn(4, 2, 30)
    small = prune_structured(model, 0.5, x)
    assert small.stem.weight.shape == (8, 2, 3)  # 16 -> 8 filters, input channels kept
    assert small.stage3[1].conv2.weight.shape == (32, 32, 3)
    assert small.fc.weight.shape == (3, 32) and small.num_features == 32
    assert small.final[0].num_features == 32
    with torch.no_grad():
        assert small.eval()(x).shape == (4, 3)
    assert count_parameters(small)["total"] < 0.3 * count_parameters(model)["total"]
    assert count_flops(small, x)["macs"] < 0.3 * count_flops(model, x)["macs"]
    assert same_state(model, before)
    # iterative: two rounds with a fine-tune callback in between
    calls = []
    it = iterative_prune(model, 0.5, method="structured", steps=2, example_input=x,
                         fine_tune=lambda m: calls.append(m.stem.weight.shape[0]))
    assert calls == [12, 8] and it.stem.weight.shape[0] == 8


def test_iterative_unstructured_with_kd_fine_tune():
    torch.manual_seed(0)
    teacher = create_model("cnn_1d", num_classes=3, in_channels=2, widths=(8, 16)).eval()
    student = create_model("cnn_1d", num_classes=3, in_channels=2, widths=(4, 8))
    X, y = torch.randn(24, 2, 16), torch.randint(0, 3, (24,))
    tune = make_fine_tune(X, y, teacher=teacher, epochs=1, batch_size=8)
    pruned = iterative_prune(student, 0.6, method="unstructured", steps=3, fine_tune=tune, schedule="geometric")
    for m in pruned.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            assert int((m.weight == 0).sum()) == round(0.6 * m.weight.numel())  # masks survive fine-tuning
    assert "stage1.0.weight_mask" in pruned.state_dict()
    assert not any(k.endswith("_mask") for k in finalize(pruned).state_dict())


# --------------------------------------------------------------------------- quantisation
class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(2, 8, 5, padding=2)
        self.conv2 = nn.Conv1d(8, 16, 5, padding=2, stride=2)
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(x.mean(-1))


def easy_task(n, seed):
    """Two classes: slow vs fast sinusoids (random phase) plus noise, 2 channels, T=32."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    t = torch.arange(32).float()
    freq = torch.where(y == 1, 0.25, 0.06)[:, None, None]
    phase = torch.rand(n, 2, 1, generator=g) * 6.28
    x = torch.sin(freq * t * 6.28 / 4 + phase) + 0.3 * torch.randn(n, 2, 32, generator=g)
    return x, y


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    X, y = easy_task(256, 0)
    Xt, yt = easy_task(200, 1)
    model = Tiny()
    kd_finetune(model, X, y, epochs=12, batch_size=32, lr=1e-2)
    acc = accuracy(model, Xt, yt)
    assert acc >= 0.9
    return model, X, y, Xt, yt, acc


@needs_torchao
def test_static_and_dynamic_int8_run_and_keep_accuracy(trained):
    model, X, y, Xt, yt, acc = trained
    before = snapshot(model)
    static = quantize_static(model, X, num_batches=4)
    assert isinstance(static, QuantizedModel) and static.lowered
    assert static.info["lowered_int8_ops"].get("onednn.qconv_pointwise.default") == 2
    assert static(Xt[:3]).shape == (3, 2) and static(Xt[:1]).shape == (1, 2)
    assert accuracy(static, Xt, yt) >= acc - MAX_INT8_DROP
    dynamic = quantize_dynamic(model, X[:4])
    assert accuracy(dynamic, Xt, yt) >= acc - MAX_INT8_DROP
    counts = count_parameters(static)
    assert counts["total"] == count_parameters(model)["total"] and counts["int8"] == 8 * 2 * 5 + 16 * 8 * 5 + 32
    assert count_flops(static, X)["macs"] == count_flops(model, X)["macs"]
    p = profile(static, X[:1], batch_sizes=(1,), repeats=3, warmup=1, memory=False)
    assert p["format"].startswith("torch.export") and p["tensor_bytes"] < p["size_bytes"]
    assert same_state(model, before)


@needs_torchao
def test_int8_of_a_preactivation_residual_network_stays_close():
    # WRN: the stem's output feeds both bn1 and the identity shortcut; folding that
    # BatchNorm into the stem (as torchao's prepare_pt2e does) would corrupt the shortcut
    torch.manual_seed(0)
    model = create_model("wrn10-1_1d", num_classes=4, in_channels=3).eval()
    with torch.no_grad():
        for bn in [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]:
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_(0.0, 0.5)
            bn.running_mean.normal_(0.0, 1.0)
            bn.running_var.uniform_(0.5, 3.0)
    x = torch.randn(64, 3, 24) * 2 + 1
    q = quantize_static(model, x)
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert float((out - ref).norm() / ref.norm()) < 0.1
    assert float((out.argmax(1) == ref.argmax(1)).float().mean()) >= 0.9


@needs_torchao
def test_qat_runs_and_keeps_accuracy(trained):
    model, X, y, Xt, yt, acc = trained
    qat = quantize_qat(model, X[:8], make_fine_tune(X, y, epochs=1, batch_size=64, lr=1e-3))
    assert qat.info["method"] == "qat" and qat.lowered
    assert accuracy(qat, Xt, yt) >= acc - MAX_INT8_DROP


# --------------------------------------------------------------------------- DPF / DCIL
def tiny_linear():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -0.2, 0.5, 0.15]]))
    return layer


X4 = torch.tensor([[1.0, 2.0, 3.0, 4.0]])


def loss_of(layer):
    return 0.5 * (layer(X4) ** 2).sum()  # dL/dw = y * x


def test_dpf_updates_dense_weights_with_the_masked_gradient():
    layer = tiny_linear()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)  # created before: same Parameter object
    dp = DynamicPruning(layer, 0.5, update_every=1, mode="dpf")
    assert dp.masks[""].tolist() == [[True, False, True, False]]
    with torch.no_grad():
        assert layer(X4).item() == pytest.approx(1.0 * 1 + 0.5 * 3)  # forward uses W * M = 2.5
    loss = dp.step(opt, lambda: loss_of(layer))
    assert loss.item() == pytest.approx(0.5 * 2.5**2)
    dense = layer.parametrizations.weight.original.detach()
    # W <- W - lr * y_masked * x: the pruned entries move too (feedback)
    torch.testing.assert_close(dense, torch.tensor([[1.0, -0.2, 0.5, 0.15]]) - 0.1 * 2.5 * X4)
    dp.before_step()  # k = 1: masks recomputed from |W| = [0.75, 0.7, 0.25, 0.85]
    assert dp.masks[""].tolist() == [[True, False, False, True]]
    final = dp.finalize()
    assert list(final.state_dict()) == ["weight"]
    torch.testing.assert_close(final.weight.detach(), torch.tensor([[0.75, 0.0, 0.0, -0.85]]))


def test_dcil_mixes_sparse_and_dense_gradients_by_the_mask():
    layer = tiny_linear()
    dp = DynamicPruning(layer, 0.5, update_every=10, mode="dcil")
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    dp.step(opt, lambda: loss_of(layer))
    y_sparse, y_dense = 2.5, 1.0 - 0.4 + 1.5 + 0.6
    grad = torch.tensor([[y_sparse * 1, y_dense * 2, y_sparse * 3, y_dense * 4]])  # M*g_s + (1-M)*g_d
    torch.testing.assert_close(layer.parametrizations.weight.original.detach(),
                               torch.tensor([[1.0, -0.2, 0.5, 0.15]]) - 0.1 * grad)
    with torch.no_grad():  # the forward still uses the masked weights
        w = torch.tensor([[1.0, -0.2, 0.5, 0.15]]) - 0.1 * grad
        assert layer(X4).item() == pytest.approx(float(w[0, 0] * 1 + w[0, 2] * 3))
    with pytest.raises(ValueError, match="closure"):
        dp.after_step()


# --------------------------------------------------------------------------- PSG
def test_psg_scales_gradients_by_the_distance_to_the_grid():
    w0 = torch.tensor([[0.9, -0.25], [0.5, 0.1]])
    # 3 bits: levels 3, delta = 0.9 / 3 = 0.3 -> Q = [0.9, -0.3, 0.6, 0.0]
    torch.testing.assert_close(nearest_grid_point(w0, 3), torch.tensor([[0.9, -0.3], [0.6, 0.0]]))
    p = nn.Parameter(w0.clone())
    bias = nn.Parameter(torch.tensor([0.123]))
    opt = PSG(torch.optim.SGD([p, bias], lr=1.0), bits=3, lambda_s=10.0, eps=0.01)
    p.grad = torch.ones_like(p)
    bias.grad = torch.ones_like(bias)
    opt.step()
    scale = 10.0 * torch.tensor([[0.0, 0.05], [0.1, 0.1]]) + 0.01  # lambda * |w - Q(w)| + eps
    torch.testing.assert_close(p.detach(), w0 - scale)
    torch.testing.assert_close(bias.detach(), torch.tensor([0.123 - 1.0]))  # 1-D tensors are not scaled
    with pytest.raises(ValueError, match="bits"):
        PSG(torch.optim.SGD([p], lr=1.0), bits=1)


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("amount", [0, 1, 1.5, -0.1, float("nan")])
def test_amount_outside_the_open_unit_interval(amount):
    model = Hand()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"amount must be in \(0, 1\)"):
        prune_unstructured(model, amount)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        prune_structured(model, amount, torch.randn(2, 2, 8))
    with pytest.raises(TypeError, match="amount"):
        prune_unstructured(model, "half")
    assert same_state(model, before)


class WithLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3)
        self.rnn = nn.LSTM(4, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        h, _ = self.rnn(self.conv(x).transpose(1, 2))
        return self.fc(h[:, -1])


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return self.fc(x.flatten(1))
        return -self.fc(x.flatten(1))


def test_unsupported_layers_are_named():
    model = WithLSTM()
    x = torch.randn(2, 2, 8)
    with pytest.raises(CompressionError, match=r"rnn \(LSTM\)"):
        prune_structured(model, 0.5, x)
    with pytest.raises(CompressionError, match=r"rnn \(LSTM\)"):
        quantize_dynamic(model, x)
    with pytest.raises(CompressionError, match="layer 'rnn' is a LSTM"):
        prune_unstructured(model, 0.5, layers=["rnn"])
    with pytest.raises(CompressionError, match="no layer 'convv'.*'conv'"):
        prune_unstructured(model, 0.5, layers=["convv"])
    pad = create_model("resnet8_1d", num_classes=2, in_channels=2, shortcut="pad")
    with pytest.raises(CompressionError, match="stage2.0.*zero-padding shortcut"):
        prune_structured(pad, 0.5, torch.randn(2, 2, 16))


@needs_torch_pruning
def test_pruning_twice_is_refused():
    model = Hand()
    once = prune_unstructured(model, 0.5)
    with pytest.raises(CompressionError, match="layer 'conv' has weight_mask"):
        prune_unstructured(once, 0.5)
    with pytest.raises(CompressionError, match="already pruned"):
        prune_unstructured(finalize(once), 0.5)
    wrn = create_model("wrn10-1_1d", num_classes=2, in_channels=2)
    x = torch.randn(2, 2, 8)
    twice = prune_structured(wrn, 0.25, x)
    with pytest.raises(CompressionError, match=r"already pruned \(structured, amount 0.25\)"):
        prune_structured(twice, 0.25, x)
    with pytest.raises(CompressionError, match="layer 'conv' is already pruned"):
        DynamicPruning(once, 0.5)


@needs_torchao
def test_quantising_what_cannot_be_quantised():
    model = Untraceable()
    before = snapshot(model)
    with pytest.raises(CompressionError, match="cannot quantise Untraceable: torch.export could not trace it") as err:
        quantize_dynamic(model, torch.randn(2, 1, 8))
    assert "in forward: `if x.sum() > 0:" in str(err.value)
    assert same_state(model, before)
    with pytest.raises(CompressionError, match="finalize"):
        quantize_dynamic(prune_unstructured(Hand(), 0.5), torch.randn(2, 2, 8))
    with pytest.raises(CompressionError, match="calibration data is empty"):
        quantize_static(Hand(), [])


# --------------------------------------------------------------------------- CLI and pipeline
DATA = {"name": "synthetic", "synthetic_windows": 60, "synthetic_length": 32}


@pytest.fixture(scope="module")
def student_checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compress")
    torch.manual_seed(0)
    model = create_model("wrn10-1_1d", num_classes=4, in_channels=3)
    meta = {"role": "student", "model": {"model": "wrn10-1", "inputs": "signal", "num_classes": 4, "in_channels": 3},
            "epoch": 1, "val_acc": 0.5}
    path = save_checkpoint(tmp / "best.safetensors", model.state_dict(), meta)
    return tmp, path, model.eval()


@pytest.fixture(scope="module")
def held_out():
    """The test split the configs below evaluate on, as tensors."""
    from topokd.distill.data import load_splits
    from topokd.distill.models import signals_to_tensor

    split = load_splits(DATA["name"], seed=0, with_pis=False, synthetic_windows=DATA["synthetic_windows"],
                        synthetic_length=DATA["synthetic_length"]).test
    return signals_to_tensor(split.signals), torch.from_numpy(split.labels)


def write_config(path, steps):
    cfg = {"data": DATA, "latency": {"batch_sizes": [1, 8], "repeats": 3, "warmup": 1}, "steps": steps}
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    return path


@needs_torch_pruning
@needs_torchao
def test_cli_end_to_end(student_checkpoint, held_out, capsys):
    from topokd.compress.config import load_config, parse_config

    tmp, ckpt, original = student_checkpoint
    Xt, yt = held_out
    cfg = write_config(tmp / "c.yaml", [{"prune": {"method": "structured", "amount": 0.5}},
                                        {"finetune": {"epochs": 1, "batch_size": 16}},
                                        {"quantize": {"method": "dynamic"}}])
    out = tmp / "out"
    assert main(["compress", str(ckpt), str(cfg), "-o", str(out), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {"output": str(out), "model": str(out / "model.pt2")}
    report = json.loads((out / "report.json").read_text())
    assert [s["step"] for s in report["steps"]] == ["prune", "finetune", "quantize"]
    assert report["steps"][0] == {"step": "prune", "method": "structured", "amount": 0.5,
                                  "accuracy": report["steps"][0]["accuracy"]}
    assert report["steps"][1]["epochs"] == 1 and report["steps"][1]["batch_size"] == 16
    b, a = report["before"], report["after"]
    assert b["accuracy"] == accuracy(original, Xt, yt)  # measured on the configured split
    assert report["steps"][-1]["accuracy"] == a["accuracy"]
    assert a["params"]["total"] < 0.4 * b["params"]["total"] and a["macs"] < 0.4 * b["macs"]
    assert a["size_bytes"] < b["size_bytes"] and a["params"]["int8"] > 0
    assert set(a["latency"]) == {"1", "8"} and a["format"].startswith("torch.export")
    assert parse_config(report["resolved_config"]) == load_config(cfg)
    md = (out / "report.md").read_text()
    assert "| accuracy (test)" in md and "| MACs (batch 1)" in md and "latency batch 8" in md
    assert "3. quantize (method=dynamic, reduce_range=None)" in md
    loaded = load_compressed(out / "model.pt2")
    assert isinstance(loaded, QuantizedModel) and accuracy(loaded, Xt, yt) == a["accuracy"]
    # refuses to overwrite (and leaves the outputs alone), then --force
    written = (out / "report.json").read_bytes()
    assert main(["compress", str(ckpt), str(cfg), "-o", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err == (f"topokd: error: {out / 'model.pt2'} already exists; pass --force "
                                       f"(force=True) to overwrite the outputs in {out}\n")
    assert (out / "report.json").read_bytes() == written
    cfg2 = write_config(tmp / "c2.yaml", [{"prune": {"method": "global", "amount": 0.5}}])
    assert main(["compress", str(ckpt), str(cfg2), "-o", str(out), "--quiet", "--force"]) == 0
    assert not (out / "model.pt2").exists()
    pruned = load_compressed(out / "model.safetensors")
    assert sparsity(pruned) == pytest.approx(0.5, abs=1e-3)
    assert accuracy(pruned, Xt, yt) == json.loads((out / "report.json").read_text())["after"]["accuracy"]


@needs_torch_pruning
def test_cli_reloads_structurally_pruned_float_models(student_checkpoint):
    tmp, ckpt, _ = student_checkpoint
    cfg = write_config(tmp / "s.yaml", [{"prune": {"method": "structured", "amount": 0.25}}])
    out = tmp / "structured"
    assert main(["compress", str(ckpt), str(cfg), "-o", str(out), "--quiet",
                 "--set", "steps[0].prune.amount=0.5", "--set", "eval_split=val"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["steps"][0]["amount"] == 0.5 and report["eval_split"] == "val"  # the overrides applied
    model = load_compressed(out / "model.safetensors")
    assert model.stem.weight.shape == (8, 3, 3) and model(torch.randn(2, 3, 32)).shape == (2, 4)
    assert count_parameters(model)["total"] == report["after"]["params"]["total"]
    with pytest.raises(CompressionError, match="already pruned"):
        prune_structured(model, 0.5, torch.randn(2, 3, 32))


def test_compress_checkpoint_as_a_library(student_checkpoint, held_out, tmp_path):
    """No CLI: a mapping config, unstructured pruning and fine-tuning (no optional packages)."""
    from topokd.compress.pipeline import compress_checkpoint

    _, ckpt, original = student_checkpoint
    Xt, yt = held_out
    lines = []
    report = compress_checkpoint(ckpt, {"data": DATA, "latency": {"batch_sizes": [2], "repeats": 2, "warmup": 0},
                                        "steps": [{"prune": {"method": "unstructured", "amount": 0.3}},
                                                  {"finetune": {"epochs": 1}}]},
                                 tmp_path / "lib", log=lines.append)
    assert lines[0] == "loading data synthetic ..." and lines[-1].startswith("wrote ")
    assert "prune: unstructured 30%" in lines and "finetune: 1 epochs" in lines
    assert report["output_model"] == str(tmp_path / "lib" / "model.safetensors") and report["config"] is None
    assert sorted(p.name for p in (tmp_path / "lib").iterdir()) == ["model.safetensors", "report.json", "report.md"]
    model = load_compressed(report["output_model"])
    assert sparsity(model) == pytest.approx(0.3, abs=1e-3)
    assert accuracy(model, Xt, yt) == report["after"]["accuracy"]
    assert report["before"]["accuracy"] == accuracy(original, Xt, yt)
    assert report["after"]["params"]["nonzero"] < report["before"]["params"]["nonzero"]
    assert "config: (passed in memory)" in (tmp_path / "lib" / "report.md").read_text()


def test_compress_checkpoint_checks_everything_before_any_work(student_checkpoint, tmp_path, monkeypatch):
    from topokd.compress import pipeline

    _, ckpt, _ = student_checkpoint
    steps = {"steps": [{"prune": {"method": "structured", "amount": 0.5}}, {"quantize": {"method": "static"}}]}
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("old")
    missing = tmp_path / "missing.safetensors"
    # the existing output is found first (no need to read the checkpoint for that)
    with pytest.raises(FileExistsError, match="report.md already exists; pass --force"):
        pipeline.compress_checkpoint(missing, steps, out)
    with pytest.raises(FileNotFoundError, match="missing.safetensors does not exist"):
        pipeline.compress_checkpoint(missing, steps, out, force=True)
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        pipeline.compress_checkpoint(ckpt, steps, out / "report.md")
    with pytest.raises(FileNotFoundError, match=r"teacher checkpoint .*nope.safetensors \(config 'teacher'\)"):
        pipeline.compress_checkpoint(ckpt, {**steps, "teacher": str(tmp_path / "nope.safetensors")}, tmp_path / "o")
    # a missing optional package is reported before any data is loaded
    monkeypatch.setattr(pipeline, "_has_module", lambda name: name != "torchao")
    monkeypatch.setattr(pipeline, "load_student", lambda *a: pytest.fail("loaded the model before the checks"))
    with pytest.raises(ImportError, match=r"^steps\[1\] \(int8 quantisation\) needs torchao, which is not "
                                          r"installed: pip install 'topokd\[compress\]'$"):
        pipeline.compress_checkpoint(ckpt, steps, tmp_path / "o")
    assert not (tmp_path / "o").exists() and (out / "report.md").read_text() == "old"


def test_load_student_rebuilds_through_the_model_registry(student_checkpoint, tmp_path):
    from topokd.checkpoint import CheckpointError
    from topokd.compress.checkpoints import load_student

    _, ckpt, original = student_checkpoint
    model, meta = load_student(ckpt)
    assert meta["model"]["model"] == "wrn10-1"
    for k, v in original.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)
    bad = save_checkpoint(tmp_path / "bad.safetensors", original.state_dict(), {"role": "student"})
    with pytest.raises(CheckpointError, match="has no model description"):
        load_student(bad)
    wrong = save_checkpoint(tmp_path / "wrong.safetensors", original.state_dict(),
                            {"model": {"model": "wrn16-1", "inputs": "signal", "num_classes": 4, "in_channels": 3}})
    with pytest.raises(ValueError, match="the weights do not fit wrn16-1"):
        load_student(wrong)
    pi = save_checkpoint(tmp_path / "pi.safetensors", original.state_dict(),
                         {"model": {"model": "wrn10-1", "inputs": "pi", "num_classes": 4, "in_channels": 3}})
    with pytest.raises(ValueError, match="holds a 'pi'-input model"):
        load_student(pi)


@pytest.mark.parametrize("steps, message", [
    ([{"prune": {"method": "structured", "amount": 1.5}}],
     r"steps\[0\]\.prune\.amount must be in \(0, 1\) \(the fraction to remove\), got 1\.5"),
    ([{"prune": {"method": "magic", "amount": 0.5}}],
     r"steps\[0\]\.prune\.method must be one of 'unstructured', 'global', 'structured', got 'magic'"),
    ([{"shrink": {}}], r"steps\[0\]: unknown key 'shrink'; allowed: finetune, prune, quantize"),
    ([{"quantize": {"method": "static"}}, {"finetune": {}}],
     r"steps\[1\]: nothing can follow the quantize step steps\[0\]"),
    ([{"prune": {"amount": 0.5}}, {"prune": {"amount": 0.5}}], r"steps\[1\]: the model is already pruned by steps\[0\]"),
])
def test_cli_rejects_bad_configs(student_checkpoint, capsys, steps, message):
    tmp, ckpt, _ = student_checkpoint
    cfg = write_config(tmp / "bad.yaml", steps)
    assert main(["compress", str(ckpt), str(cfg), "-o", str(tmp / "never"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(f"topokd: error: {message}.*\n", err), err
    assert not (tmp / "never").exists()


@needs_torchao
def test_deepcopy_and_train_of_a_quantized_model(trained):
    model, X, *_ = trained
    q = quantize_dynamic(model, X[:2])
    q.train()
    assert not q.training
    clone = copy.deepcopy(q)
    torch.testing.assert_close(clone(X[:4]), q(X[:4]))
