"""The one training engine: loop, monitor, checkpoints, exact resume, NaN stop."""

import json
import math

import pytest
import torch
from torch import nn

from topokd.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from topokd.engine import Checkpoints, Monitor, build_optimizer, fit, schedule_lr, tensor_batches
from topokd.engine import loop


def toy_data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, 10, generator=g)
    y = (X.mean(dim=(1, 2)) > 0).long()
    return X, y


def toy_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                         nn.Dropout(0.3), nn.Linear(4, 2))


def run(tmp, *, epochs=5, resume=False, on_epoch_end=None, patience=None, restore="best", seed=0):
    X, y = toy_data()
    model = toy_model()
    opt = build_optimizer(model.parameters(), "sgd", lr=0.1, weight_decay=1e-4)

    def step(batch, generator):
        xb, yb = batch
        noise = 0.01 * torch.randn(xb.shape, generator=generator)  # uses the engine's generator
        logits = model(xb + noise)
        return {"ce": nn.functional.cross_entropy(logits, yb)}, {"acc": (logits.argmax(1) == yb).float().mean()}

    def validate(m):
        m.eval()
        with torch.no_grad():
            logits = m(X[:16])
        return {"val_loss": nn.functional.cross_entropy(logits, y[:16]).item(),
                "val_acc": (logits.argmax(1) == y[:16]).float().mean().item()}

    result = fit(model, step, tensor_batches(X, y, batch_size=10), epochs=epochs, optimizer=opt,
                 lr_schedule=lambda e: schedule_lr(e, "cosine", 0.1, epochs), seed=seed, validate=validate,
                 monitor=Monitor("val_acc", better="max", tie_break="val_loss"), patience=patience,
                 checkpoints=Checkpoints(tmp, best=True, last=True, epochs=[2], metadata={"model": "toy"}),
                 resume=resume, restore=restore, on_epoch_end=on_epoch_end)
    return model, result


def test_records_metrics_files_and_checkpoints(tmp_path):
    model, result = run(tmp_path)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5]
    first = result.history[0]
    assert first["lr"] == pytest.approx(0.1)
    assert result.history[2]["lr"] == pytest.approx(0.05 * (1 + math.cos(math.pi * 2 / 5)))
    assert {"train_loss", "train_ce", "train_acc", "val_loss", "val_acc", "seconds"} <= set(first)
    assert first["train_loss"] == pytest.approx(first["train_ce"])
    assert 0 < first["train_acc"] < 1  # averaged over samples, not trained on
    assert json.loads((tmp_path / "metrics.json").read_text()) == result.history
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "epoch" and "val_acc" in header
    assert sorted(p.name for p in (tmp_path / "epochs").iterdir()) == ["epoch-002.safetensors"]
    best, meta = load_checkpoint(tmp_path / "best.safetensors")
    assert meta["epoch"] == result.best_epoch and meta["model"] == "toy"
    # restore="best": the model holds the best epoch's weights
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, best[k])
    last, meta = load_checkpoint(tmp_path / "last.safetensors")
    assert meta["epoch"] == 5


def test_resume_after_a_crash_is_exact(tmp_path):
    whole_model, whole = run(tmp_path / "whole")

    def crash(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crash", on_epoch_end=crash)
    model, resumed = run(tmp_path / "crash", resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4, 5]
    for a, b in zip(whole.history, resumed.history):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    for k, v in whole_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    assert resumed.best_epoch == whole.best_epoch


def test_resume_refuses_another_model(tmp_path):
    run(tmp_path, epochs=1)
    X, y = toy_data()
    model = toy_model()
    with pytest.raises(CheckpointError, match="cannot resume .* its model is 'toy'|cannot resume"):
        fit(model, lambda b, g: nn.functional.cross_entropy(model(b[0]), b[1]), tensor_batches(X, y, batch_size=8),
            epochs=2, optimizer=build_optimizer(model.parameters(), "adam", lr=1e-3),
            checkpoints=Checkpoints(tmp_path, metadata={"model": "other"}), resume=True)


def test_newer_state_version_is_refused(tmp_path):
    run(tmp_path, epochs=1)
    tensors, meta = load_checkpoint(tmp_path / "train-state.safetensors")
    meta["engine"]["state_version"] = 99
    save_checkpoint(tmp_path / "train-state.safetensors", tensors, meta)
    with pytest.raises(CheckpointError, match="newer topokd"):
        run(tmp_path, resume=True)


def test_non_finite_loss_names_epoch_and_step():
    X, y = toy_data()
    model = toy_model()
    calls = {"n": 0}

    def step(batch, generator):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(model(batch[0]), batch[1])
        return {"ce": loss, "kd": loss * (math.inf if calls["n"] == 7 else 0.0)}

    with pytest.raises(FloatingPointError, match=r"at epoch 2, step 2 \(ce [0-9.]+, kd inf\); lower the learning"):
        fit(model, step, tensor_batches(X, y, batch_size=10), epochs=3,
            optimizer=build_optimizer(model.parameters(), "sgd", lr=0.01))


def test_patience_stops_and_restore_last_keeps_the_last_epoch(tmp_path):
    X, y = toy_data()
    model = toy_model()
    scores = iter([0.5, 0.7, 0.6, 0.6, 0.9, 1.0])
    result = fit(model, lambda b, g: nn.functional.cross_entropy(model(b[0]), b[1]),
                 tensor_batches(X, y, batch_size=16), epochs=6,
                 optimizer=build_optimizer(model.parameters(), "sgd", lr=0.01),
                 validate=lambda m: {"val_acc": next(scores)}, monitor=Monitor("val_acc", better="max"), patience=2,
                 restore="last")
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4] and result.stopped_early
    assert result.best_epoch == 2 and result.best_record["val_acc"] == 0.7
    final = {k: v.clone() for k, v in model.state_dict().items()}
    assert any(not torch.equal(final[k], result.best_state[k]) for k in final)


def test_monitor_ties_and_modes():
    best = {"val_acc": 0.5, "val_loss": 0.8}
    acc = Monitor("val_acc", better="max", tie_break="val_loss")
    assert acc.improves({"val_acc": 0.5, "val_loss": 0.7}, best)
    assert not acc.improves({"val_acc": 0.5, "val_loss": 0.9}, best)
    assert not acc.improves({"val_acc": 0.25, "val_loss": 0.1}, best)
    assert Monitor("val_loss", better="min").improves({"val_loss": 0.7}, best)
    assert not Monitor("val_acc", better="max").improves({"val_acc": 0.5}, best)  # ties keep the earlier epoch
    with pytest.raises(ValueError, match="better must be 'min' or 'max'"):
        Monitor("val_acc", better="up")


def test_optimizer_factory_and_schedules():
    params = [nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(params, "sgd", lr=0.1, momentum=0.9, weight_decay=5e-4)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 5e-4
    adam = build_optimizer(params, "adam", lr=1e-3, betas=(0.99, 0.999), eps=0.1)
    assert adam.defaults["betas"] == (0.99, 0.999) and adam.defaults["eps"] == 0.1
    assert isinstance(build_optimizer(params, "adamw", lr=1e-3), torch.optim.AdamW)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer(params, "rmsprop", lr=1e-3)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([nn.Parameter(torch.zeros(1), requires_grad=False)], "sgd", lr=0.1)
    # by hand: cosine lr (1 + cos(pi e / E)) / 2; step /10 at 50 %, /100 at 75 %
    assert schedule_lr(0, "cosine", 0.2, 4) == pytest.approx(0.2)
    assert schedule_lr(2, "cosine", 0.2, 4) == pytest.approx(0.1)
    assert [schedule_lr(e, "step", 1.0, 8) for e in range(8)] == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    assert schedule_lr(5, "none", 0.3, 8) == 0.3


def test_frozen_batchnorm_stays_in_eval_mode():
    model = toy_model()
    for p in model[1].parameters():
        p.requires_grad_(False)
    loop.train_mode(model)
    assert model.training and not model[1].training and model[0].training


def test_kd_finetune_resumes_exactly(tmp_path):
    from topokd.compress import kd_finetune

    X, y = toy_data(40)
    teacher = toy_model(seed=5).eval()

    def tune(state, resume=False):
        model = toy_model(seed=1)
        log = kd_finetune(model, X, y, teacher=teacher, epochs=4, batch_size=8, lr=1e-2, seed=3, state=state,
                          resume=resume)
        return model, log

    whole, whole_log = tune(None)
    save = loop._save_state

    def crash_after_2(ckpt, model, optimizer, generator, epoch, *args):
        save(ckpt, model, optimizer, generator, epoch, *args)
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "_save_state", crash_after_2)
        with pytest.raises(KeyboardInterrupt):
            tune(tmp_path / "ft-state.safetensors")
    resumed, log = tune(tmp_path / "ft-state.safetensors", resume=True)
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    assert [r["loss"] for r in log] == [r["loss"] for r in whole_log]
    assert all(0 < r["acc"] <= 1 for r in log)
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0)
