"""YAML configs, teacher training, ESKD checkpoint selection, distillation runs."""

import copy
import json

import pytest
import torch

from topokd.checkpoint import CheckpointError, load_checkpoint
from topokd.cli import main
from topokd.config import ConfigError
from topokd.distill.config import load_config, parse_config
from topokd.distill.experiment import distill, load_teacher, prepare_data, train_teacher

TINY = {"epochs": 2, "batch_size": 32, "progress": False}


def tiny_config(tmp_path, **student):
    raw = {
        "output": str(tmp_path / "run"),
        "seed": 1,
        "data": {"name": "synthetic", "synthetic_windows": 100, "synthetic_length": 48, "val_fraction": 0.2,
                 "pi_params": {"resolution": 12}},
        "teachers": {
            "pi": {"model": "resnet8", "inputs": "pi", "train": TINY},
            "signal": {"model": "resnet8", "inputs": "signal", "train": {**TINY, "augment": "mix1"}},
        },
        "student": {
            "model": "resnet8",
            "teachers": [{"name": "pi", "weight": 0.7}, {"name": "signal", "weight": 0.3, "checkpoint": 1}],
            "losses": {"ce": 0.1, "kd": {"weight": 0.9, "temperature": 4}, "at": {"weight": 10.0, "teachers": ["signal"]},
                       "amd": {"weight": 1.0, "teachers": ["signal"]}, "sp": 1.0},
            "train": {**TINY, "augment": "mix1", "mixup_alpha": 0.4, "mixup_fraction": 0.5},
            **student,
        },
    }
    return copy.deepcopy(raw)  # TINY is shared: mutations must not leak between tests


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distill")
    cfg = parse_config(tiny_config(tmp))
    splits = prepare_data(cfg)
    teachers = {name: train_teacher(cfg, name, splits) for name in cfg.teachers}
    return cfg, splits, teachers


def test_teacher_runs_keep_the_needed_epochs_and_metrics(trained):
    cfg, splits, teachers = trained
    run = cfg.output / "teachers" / "pi"
    # checkpoints: needed (default): best and last, plus the epochs the student names (signal: epoch 1; pi: none)
    assert not (run / "epochs").exists() and (run / "best.safetensors").exists() and (run / "last.safetensors").exists()
    signal_epochs = cfg.output / "teachers" / "signal" / "epochs"
    assert sorted(p.name for p in signal_epochs.iterdir()) == ["epoch-001.safetensors"]
    history = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and {"train_ce", "val_acc", "lr"} <= set(history[0])
    assert (run / "metrics.csv").read_text().startswith("epoch,")
    assert 0.0 <= teachers["pi"]["test_acc"] <= 1.0
    assert splits.train.pis.shape[1:] == (3, 12, 12)


def test_eskd_loads_the_requested_epoch(trained):
    cfg, splits, _ = trained
    teacher = load_teacher(cfg, "signal", 1, splits)
    stored, meta = load_checkpoint(cfg.output / "teachers" / "signal" / "epochs" / "epoch-001.safetensors")
    assert meta["epoch"] == 1
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, stored[k])
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    best = load_teacher(cfg, "signal", "best", splits)
    assert best is not None
    with pytest.raises(CheckpointError, match="does not exist"):
        load_teacher(cfg, "signal", 7, splits)


def test_distillation_with_all_losses(trained):
    cfg, splits, _ = trained
    summary = distill(cfg, splits)
    history = json.loads((cfg.output / "student" / "metrics.json").read_text())
    assert {"train_ce", "train_kd", "train_at", "train_amd", "train_sp"} <= set(history[0])
    assert all(h["train_kd"] >= 0 for h in history)
    assert summary["best_epoch"] in (1, 2)
    _, meta = load_checkpoint(cfg.output / "student" / "best.safetensors")
    assert meta["teachers"][0] == {"name": "pi", "weight": 0.7, "checkpoint": "best"}


def test_teacher_description_must_match(trained, tmp_path):
    cfg, splits, _ = trained
    raw = tiny_config(tmp_path)
    raw["output"] = str(cfg.output)
    raw["teachers"]["pi"]["model"] = "resnet20"
    with pytest.raises(CheckpointError, match="config now describes"):
        load_teacher(parse_config(raw), "pi", "best", splits)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("output"), "the config needs 'output' (the run directory, relative to the config file)"),
    (lambda r: r.update(epochs=3), "unknown top-level key 'epochs'; allowed: checkpoints, data, device, output, "
                                   "seed, student, teachers"),
    (lambda r: r["student"]["losses"].update(kdd=1.0), "student.losses: unknown loss 'kdd' (did you mean 'kd'?)"),
    (lambda r: r["student"]["losses"].update(at=1.0),
     "student.losses.at: teacher 'pi' sees persistence images, whose 2-D maps have no correspondence with the "
     "student's time axis, so at cannot transfer them; use a relations loss (fused_sp, pkt, rkd, sp)"),
    (lambda r: r["student"]["losses"].update(kd={"weight": 1.0, "temprature": 2}),
     "student.losses.kd: unknown parameter 'temprature' (did you mean 'temperature'?)"),
    (lambda r: r["student"]["losses"].update(sp={"teachers": ["ghost"]}),
     "student.losses.sp.teachers names 'ghost', which is not one of student.teachers (pi, signal)"),
    (lambda r: r["student"]["teachers"].append({"name": "ghost"}),
     "student.teachers[2].name is 'ghost', which is not under 'teachers' (defined: pi, signal)"),
    (lambda r: r["teachers"]["pi"].update(inputs="fusion"), "teachers.pi.pi_model is required for inputs 'fusion'"),
    (lambda r: r["teachers"]["pi"]["train"].update(lr=-1), "teachers.pi.train.lr must be > 0, got -1.0"),
    (lambda r: r["teachers"]["pi"]["train"].update(optimiser="sgd"),
     "teachers.pi.train: unknown key 'optimiser' (did you mean 'optimizer'?)"),
    (lambda r: r["student"].update(teachers=[]), "student.losses.kd needs at least one teacher"),
    (lambda r: r["student"]["teachers"][0].update(weight=-0.5), "student.teachers[0].weight must be >= 0"),
    (lambda r: r["student"]["train"].update(epochs="three"), "student.train.epochs must be an integer, got 'three'"),
])
def test_config_errors(tmp_path, mutate, message):
    raw = tiny_config(tmp_path)
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert str(info.value).startswith(message)


def test_cli_runs_a_yaml_config(tmp_path, capsys):
    import yaml

    raw = tiny_config(tmp_path)
    raw["teachers"] = {"signal": raw["teachers"]["signal"]}
    raw["student"]["teachers"] = [{"name": "signal"}]
    raw["student"]["losses"] = {"ce": 0.5, "kd": 0.5}
    raw["student"]["scratch"] = True
    raw["output"] = "run"  # relative to the config file
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    for row in ("teacher signal", "student", "scratch"):
        acc = results["teachers"]["signal"] if row == "teacher signal" else results[row]
        assert f"| {row} | {acc['best_epoch']} | {acc['best_val_acc']:.4f} | {acc['test_acc']:.4f} |" in out
    gain = 100 * (results["student"]["test_acc"] - results["scratch"]["test_acc"])
    assert f"student vs scratch: {gain:+.2f} points" in out
    # an existing run is refused (nothing trained, nothing touched) unless --resume or --force
    before = (tmp_path / "run" / "student" / "best.safetensors").read_bytes()
    assert main(["run", str(path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "already holds a run; pass --resume to continue it or --force" in err and len(err.splitlines()) == 1
    assert (tmp_path / "run" / "student" / "best.safetensors").read_bytes() == before
    assert main(["run", str(path), "--quiet", "--resume"]) == 0  # everything finished: nothing to redo
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == results
    (tmp_path / "run" / "teachers" / "signal" / "stale.txt").write_text("from an earlier run")
    assert main(["run", str(path), "--quiet", "--force"]) == 0
    assert not (tmp_path / "run" / "teachers" / "signal" / "stale.txt").exists()
    capsys.readouterr()
    assert load_config(path).output == tmp_path / "run"
    assert main(["distill", str(tmp_path / "missing.yaml")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_teacher_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    from topokd.engine import loop

    def config(out):
        raw = tiny_config(tmp_path)
        raw["output"] = str(out)
        raw["teachers"]["signal"]["train"]["epochs"] = 3
        return parse_config(raw)

    whole_cfg, crash_cfg = config(tmp_path / "whole"), config(tmp_path / "crash")
    splits = prepare_data(whole_cfg)
    whole = train_teacher(whole_cfg, "signal", splits)
    save_state = loop._save_state

    def crash_after_epoch_2(ckpt, model, optimizer, generator, epoch, *args):
        save_state(ckpt, model, optimizer, generator, epoch, *args)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_save_state", crash_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(crash_cfg, "signal", splits)
    monkeypatch.setattr(loop, "_save_state", save_state)
    resumed = train_teacher(crash_cfg, "signal", splits, resume=True)
    a = json.loads((tmp_path / "whole" / "teachers" / "signal" / "metrics.json").read_text())
    b = json.loads((tmp_path / "crash" / "teachers" / "signal" / "metrics.json").read_text())
    assert [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        assert ra["train_loss"] == rb["train_loss"] and ra["val_acc"] == rb["val_acc"]
    assert resumed["test_acc"] == whole["test_acc"]


def test_best_epoch_ties_go_to_the_lower_validation_loss(trained, tmp_path, monkeypatch):
    from topokd.distill import trainer

    cfg, splits, _ = trained
    scores = iter([{"acc": 0.5, "loss": 1.0}, {"acc": 0.5, "loss": 0.8}, {"acc": 0.5, "loss": 0.9},
                   {"acc": 0.25, "loss": 0.1}])
    real = trainer.evaluate
    monkeypatch.setattr(trainer, "evaluate", lambda model, inputs, split, device, **kw:
                        next(scores) if split is splits.val else real(model, inputs, split, device, **kw))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(len(splits.classes)))
    model(torch.zeros(1, *splits.train.signals.shape[1:]))

    def step(batch, gen):
        return {"ce": torch.nn.functional.cross_entropy(model(batch.signal), batch.y)}

    settings = trainer.TrainSettings(epochs=4, progress=False)
    summary = trainer.fit(model, step, splits, settings, tmp_path / "tie", inputs="signal", metadata={"model": "x"})
    assert summary["best_epoch"] == 2


def test_pi_augmented_student_from_a_pinet_checkpoint(trained, tmp_path):
    from topokd.pinet import PINet

    cfg, splits, _ = trained
    X = splits.train.signals.astype(float)
    pinet = PINet("signal", pi_params={"resolution": 12}, widths=(4, 8, 8, 8), epochs=1, optimizer="adamw",
                  progress=False).fit(X)
    pinet.save(tmp_path / "pinet.safetensors")
    raw = tiny_config(tmp_path, pinet=str(tmp_path / "pinet.safetensors"), pi_model="resnet8")
    raw["output"] = str(cfg.output)
    raw["student"]["losses"] = {"ce": 0.5, "kd": 0.5, "at": {"weight": 1.0, "teachers": ["signal"]}}
    summary = distill(parse_config(raw), splits, force=True)
    from topokd.distill.trainer import evaluate
    from topokd.models import build_model

    weights, stored = load_checkpoint(cfg.output / "student" / "best.safetensors")
    rebuilt = build_model(stored["model"])
    rebuilt.load_state_dict(weights)
    assert evaluate(rebuilt, "signal", splits.test, "cpu")["acc"] == summary["test_acc"]
    tensors, meta = load_checkpoint(cfg.output / "student" / "best.safetensors")
    assert meta["model"]["pinet"].endswith("pinet.safetensors")
    assert any(k.startswith("pinet.") for k in tensors)  # the frozen PI-Net ships inside the student
    # topokd compress rebuilds it, PI-Net branch included, from the checkpoint's model description
    from topokd.compress.checkpoints import load_student
    from topokd.distill.trainer import evaluate

    student, _ = load_student(cfg.output / "student" / "best.safetensors")
    assert student.state_dict().keys() == tensors.keys()
    for k, v in student.state_dict().items():
        torch.testing.assert_close(v, tensors[k])
    assert evaluate(student, "signal", splits.test, "cpu")["acc"] == summary["test_acc"]
    with pytest.raises(ConfigError, match="^student: a PI-augmented student needs both 'pinet'"):
        parse_config(tiny_config(tmp_path, pi_model="resnet8"))


def test_shipped_configs_are_valid():
    from pathlib import Path

    import yaml

    from topokd.compress.config import parse_config as parse_compress_config

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(configs) >= 2
    for path in configs:
        raw = yaml.safe_load(path.read_text())
        if "steps" in raw:  # a `topokd compress` config
            cfg = parse_compress_config(raw, base_dir=path.parent)
            assert cfg.steps and str(cfg.teacher).endswith("best.safetensors")
        else:
            cfg = load_config(path)
            assert cfg.student is not None and cfg.teachers
