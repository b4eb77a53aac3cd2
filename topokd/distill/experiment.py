"""Stages of a config: train the teachers, then distil the student.

Output layout under ``config.output``::

    teachers/<name>/epochs/epoch-XXX.safetensors   every epoch (ESKD picks one)
    teachers/<name>/{best,last}.safetensors, metrics.csv/json, summary.json
    student/...                                    the same for the student
"""

from __future__ import annotations

import dataclasses
import json

import torch
from torch import nn
from torch.nn import functional as F

from ..checkpoint import CheckpointError, load_checkpoint
from .augment import get_augmentation
from .config import ExperimentConfig, StudentSpec, TeacherSpec
from .data import Splits, load_splits
from ..engine import copy_frozen, distributed
from ..models import build_model
from ..tda.pipeline import SignalPersistenceImages
from .distiller import Distiller, Teacher
from .losses.registry import loss_entry
from .trainer import Batch, OnlinePIs, TrainSettings, batches, fit, model_input


def prepare_data(cfg: ExperimentConfig) -> Splits:
    """The splits of the config's data (a built-in set or the user's files)."""
    return load_splits(cfg.data, seed=cfg.seed)


def teacher_description(spec: TeacherSpec, splits: Splits) -> dict:
    """The model description of teacher ``spec`` (stored in its checkpoints;
    :func:`topokd.models.build_model` rebuilds the model from it)."""
    channels = splits.train.signals.shape[2]
    pi_channels = splits.train.pis.shape[1] if splits.train.pis is not None else channels
    return {"name": spec.name, "model": spec.model, "inputs": spec.inputs, "pi_model": spec.pi_model,
            "num_classes": len(splits.classes), "in_channels": channels, "pi_channels": pi_channels}


def build_teacher(spec: TeacherSpec, splits: Splits) -> tuple[nn.Module, dict]:
    """A fresh teacher for ``spec`` and the description stored in its checkpoints."""
    desc = teacher_description(spec, splits)
    return build_model(desc), desc


def student_description(spec: StudentSpec, classes: int, channels: int) -> dict:
    """The model description of the student (see :func:`teacher_description`)."""
    return {"model": spec.model, "inputs": "signal", "num_classes": classes, "in_channels": channels,
            "pinet": spec.pinet, "pi_model": spec.pi_model}


def build_student(spec: StudentSpec, classes: int, channels: int) -> nn.Module:
    """The student: a 1-D model on the raw signal, or, with ``pinet``, a
    :class:`~topokd.models.PIAugmentedStudent` that computes PIs with a frozen PI-Net."""
    return build_model(student_description(spec, classes, channels))


def online_pis(cfg: ExperimentConfig) -> OnlinePIs:
    """PIs computed in the batch pipeline with the data's PI preset and parameters."""
    return OnlinePIs(SignalPersistenceImages(cfg.data.pi_preset, **(cfg.data.pi_params or {})))


def _augmenter(settings: TrainSettings):
    return get_augmentation(settings.augment) if settings.augment else None


def prepare_run_dir(path, *, resume: bool = False, force: bool = False) -> None:
    """Refuse to train into a folder that already holds a run, unless
    ``resume`` (continue it from its training state) or ``force`` (delete it
    and start clean, so no stale file of the earlier run survives)."""
    import shutil

    if resume and force:
        raise ValueError("--resume continues a run and --force deletes it: choose one")
    if not path.exists() or not any(path.iterdir()):
        return
    if force:
        shutil.rmtree(path)
    elif not resume:
        raise FileExistsError(f"{path} already holds a run; pass --resume to continue it or --force to delete it "
                              "and start again")


def _stage_dirs(cfg: ExperimentConfig, teachers=None, student: bool = True) -> list:
    dirs = [cfg.output / "teachers" / name for name in (cfg.teachers if teachers is None else teachers)]
    if student and cfg.student is not None:
        dirs.append(cfg.output / "student")
        if cfg.student.scratch:
            dirs.append(cfg.output / "scratch")
    return dirs


def check_run_dirs(cfg: ExperimentConfig, teachers=None, student: bool = True, *, resume: bool = False,
                   force: bool = False) -> None:
    """:func:`prepare_run_dir`'s refusal for every stage folder, before any training starts."""
    if resume and force:
        raise ValueError("--resume continues a run and --force deletes it: choose one")
    if resume or force:
        return
    for path in _stage_dirs(cfg, teachers, student):
        prepare_run_dir(path)


def _kept_epochs(cfg: ExperimentConfig, teacher: str):
    """The epoch checkpoints a teacher keeps: all, or those the student names (ESKD)."""
    if cfg.checkpoints == "all":
        return True
    uses = cfg.student.teachers if cfg.student is not None else []
    return sorted({u.checkpoint for u in uses if u.name == teacher and isinstance(u.checkpoint, int)})


def train_teacher(cfg: ExperimentConfig, name: str, splits: Splits | None = None, *, resume: bool = False,
                  force: bool = False) -> dict:
    """Train teacher ``name`` of ``cfg`` with cross-entropy; returns its summary.

    An existing teacher folder is refused unless ``resume`` or ``force``
    (:func:`prepare_run_dir`)."""
    if name not in cfg.teachers:
        raise ValueError(f"no teacher {name!r} in the config; it has {sorted(cfg.teachers)}")
    spec = cfg.teachers[name]
    run_dir = cfg.output / "teachers" / name
    distributed.on_main(prepare_run_dir, run_dir, resume=resume, force=force)  # under torchrun: rank 0 only
    splits = splits or prepare_data(cfg)
    torch.manual_seed(spec.train.seed)  # the initial weights follow the seed
    model, desc = build_teacher(spec, splits)
    augment = _augmenter(spec.train)

    online = online_pis(cfg) if augment is not None and spec.inputs != "signal" else None

    def step(batch: Batch, gen):
        if augment is not None:
            batch.signal = augment(batch.signal, generator=gen)
            if online is not None:  # the PIs of the augmented window, not of the clean one
                batch.pi = online(batch.signal)
        return {"ce": F.cross_entropy(model_input(model, spec.inputs, batch), batch.y)}

    meta = {"role": f"teacher {name}", "model": desc, "data": splits.description, "classes": splits.classes}
    return fit(model, step, splits, spec.train, run_dir, inputs=spec.inputs, metadata=meta, resume=resume,
               keep_epochs=_kept_epochs(cfg, name))


def load_teacher(cfg: ExperimentConfig, name: str, which, splits: Splits) -> nn.Module:
    """Teacher ``name`` from its run directory: ``which`` is "best", "last" or an epoch (ESKD)."""
    run = cfg.output / "teachers" / name
    if which in ("best", "last"):
        path = run / f"{which}.safetensors"
    else:
        try:
            path = run / "epochs" / f"epoch-{int(which):03d}.safetensors"
        except ValueError:
            raise ValueError(f"teacher checkpoint must be 'best', 'last' or an epoch number, got {which!r}") from None
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: train the teacher first (topokd train-teacher CONFIG)")
    tensors, meta = load_checkpoint(path)
    model, desc = build_teacher(cfg.teachers[name], splits)
    if meta.get("model") != desc:
        raise CheckpointError(f"{path} holds {meta.get('model')}, but the config now describes {desc}")
    model.load_state_dict(tensors)
    return copy_frozen(model)


def distill(cfg: ExperimentConfig, splits: Splits | None = None, *, resume: bool = False, force: bool = False,
            run_dir=None, role: str = "student") -> dict:
    """Train the student of ``cfg`` with its losses against its (frozen)
    teachers, in ``run_dir`` (default ``output/student``; an existing run is
    refused unless ``resume`` or ``force``)."""
    if cfg.student is None:
        raise ValueError("the config has no 'student' section")
    spec: StudentSpec = cfg.student
    run_dir = cfg.output / "student" if run_dir is None else run_dir
    distributed.on_main(prepare_run_dir, run_dir, resume=resume, force=force)  # under torchrun: rank 0 only
    splits = splits or prepare_data(cfg)
    classes, channels = len(splits.classes), splits.train.signals.shape[2]
    torch.manual_seed(spec.train.seed)
    student = build_student(spec, classes, channels)
    teachers = [Teacher(use.name, load_teacher(cfg, use.name, use.checkpoint, splits), cfg.teachers[use.name].inputs,
                        use.weight, use.view) for use in spec.teachers]
    settings = spec.train
    device = settings.torch_device
    for t in teachers:
        t.model.to(device)
    example = next(batches(splits.train, 2, "cpu", shuffle=False))
    augment = _augmenter(settings)
    losses = dict(spec.losses)
    if settings.mixup_alpha > 0 and not any(loss_entry(n).inputs == "batch" for n in losses):
        # train.mixup_alpha / mixup_fraction: partial mixup of the student's batch
        losses["partial_mixup"] = {"alpha": settings.mixup_alpha, "fraction": settings.mixup_fraction}
    online = online_pis(cfg) if any(t.inputs != "signal" and t.view == "student" for t in teachers) else None
    distiller = Distiller(student.to(device), teachers, losses, example=example.to(device), augment=augment,
                          online_pis=online)
    if any(term.name == "ft" for term in distiller.terms):
        distiller.pretrain_paraphrasers(lambda g: batches(splits.train, settings.batch_size, device, shuffle=True,
                                                          generator=g, min_batch=2), seed=settings.seed)
    meta = {"role": role, "model": student_description(spec, classes, channels),
            "teachers": [{"name": u.name, "weight": u.weight, "checkpoint": u.checkpoint} for u in spec.teachers],
            "losses": spec.losses, "data": splits.description, "classes": splits.classes}
    try:
        summary = fit(student, distiller.forward_train, splits, settings, run_dir, inputs="signal", metadata=meta,
                      resume=resume, keep_epochs=cfg.checkpoints == "all", params=distiller.parameters_to_train(),
                      companions=distiller.loss_modules if len(distiller.loss_modules) else None,
                      on_epoch_start=distiller.set_epoch, min_batch=distiller.min_batch)
    finally:
        distiller.remove_hooks()
    if online is not None:
        summary["online_pi_seconds"] = distributed.main_value(round, online.seconds, 3)  # torchrun: rank 0's
        distributed.on_main(_write_json, run_dir / "summary.json", summary)
    return summary


def train_scratch(cfg: ExperimentConfig, splits: Splits | None = None, *, resume: bool = False,
                  force: bool = False) -> dict:
    """The student architecture trained from scratch (cross-entropy only, the
    student's train settings) under ``output/scratch``: the baseline of the
    student's gain."""
    if cfg.student is None:
        raise ValueError("the config has no 'student' section")
    scratch = dataclasses.replace(cfg.student, teachers=[], losses={"ce": 1.0}, scratch=False)
    return distill(dataclasses.replace(cfg, student=scratch), splits, resume=resume, force=force,
                   run_dir=cfg.output / "scratch", role="scratch")


def _write_json(path, value) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n")


def run(cfg: ExperimentConfig, *, resume: bool = False, force: bool = False) -> dict:
    """All stages: every teacher, then the student (if configured) and its
    scratch baseline (``student.scratch``).  Every stage folder is checked
    before anything trains (:func:`prepare_run_dir`).  Under ``torchrun``
    every stage trains data-parallel and only rank 0 writes
    (:mod:`topokd.engine.distributed`)."""
    check_run_dirs(cfg, resume=resume, force=force)
    splits = prepare_data(cfg)
    out = {"teachers": {name: train_teacher(cfg, name, splits, resume=resume, force=force)
                        for name in cfg.teachers}}
    if cfg.student is not None:
        out["student"] = distill(cfg, splits, resume=resume, force=force)
        if cfg.student.scratch:
            out["scratch"] = train_scratch(cfg, splits, resume=resume, force=force)

    def write():
        cfg.output.mkdir(parents=True, exist_ok=True)
        (cfg.output / "results.json").write_text(json.dumps(out, indent=1, default=str) + "\n")

    distributed.on_main(write)  # under torchrun: rank 0 writes, the others wait
    return out


def results_table(results: dict) -> str:
    """One Markdown table of every model's test accuracy, and the student's
    gain over its scratch baseline when the run has one."""
    rows = [(f"teacher {k}", v) for k, v in results.get("teachers", {}).items()]
    rows += [(k, results[k]) for k in ("student", "scratch") if k in results]
    lines = ["| model | best epoch | val acc | test acc |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {r['best_epoch']} | {r['best_val_acc']:.4f} | {r['test_acc']:.4f} |" for name, r in rows]
    if "student" in results and "scratch" in results:
        gain = 100 * (results["student"]["test_acc"] - results["scratch"]["test_acc"])
        lines.append(f"\nstudent vs scratch: {gain:+.2f} points of test accuracy")
    return "\n".join(lines)
