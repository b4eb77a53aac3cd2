"""YAML experiment configs for ``topokd train-teacher | distill | run``.

A config names the data, the teachers (each trained on raw signals, PIs, or
both), the student, the losses with their weights, and the training
settings.  Unknown keys are errors (a typo must not silently fall back to a
default).  See ``configs/`` for complete examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from .trainer import INPUTS, TrainSettings

LOSSES = ("ce", "kd", "at", "amd", "sp")


@dataclass
class DataSpec:
    name: str = "basic-motions"
    val_fraction: float = 0.2
    pi_preset: str | None = None
    pi_params: dict = field(default_factory=dict)
    synthetic_windows: int = 600
    synthetic_length: int = 100


@dataclass
class TeacherSpec:
    name: str
    model: str
    inputs: str = "signal"
    # For inputs="fusion": the PI branch (the raw branch is ``model``).
    pi_model: str | None = None
    train: TrainSettings = field(default_factory=TrainSettings)


@dataclass
class TeacherUse:
    name: str
    weight: float = 1.0
    # ESKD: "best" (best validation epoch), "last", or an epoch number.
    checkpoint: str | int = "best"


@dataclass
class StudentSpec:
    model: str
    teachers: list[TeacherUse] = field(default_factory=list)
    # PI-augmented student: a trained signal PI-Net checkpoint (frozen inside
    # the student) and the 2-D model over its PIs.
    pinet: str | None = None
    pi_model: str | None = None
    losses: dict = field(default_factory=lambda: {"ce": 1.0})
    train: TrainSettings = field(default_factory=TrainSettings)


@dataclass
class ExperimentConfig:
    output: Path
    data: DataSpec = field(default_factory=DataSpec)
    teachers: dict[str, TeacherSpec] = field(default_factory=dict)
    student: StudentSpec | None = None
    seed: int = 0
    device: str | None = None


def _build(cls, raw, where: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping, got {type(raw).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(names)}")
    try:
        return cls(**raw)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def _settings(raw, where: str, seed: int, device) -> TrainSettings:
    raw = dict(raw or {})
    raw.setdefault("seed", seed)
    raw.setdefault("device", device)
    return _build(TrainSettings, raw, where)


def parse_config(raw: dict, base_dir: Path | None = None) -> ExperimentConfig:
    """Validate a config mapping (as loaded from YAML)."""
    if not isinstance(raw, dict):
        raise ValueError("the config must be a YAML mapping")
    allowed = {"output", "data", "teachers", "student", "seed", "device"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"unknown top-level key(s) {unknown}; allowed: {sorted(allowed)}")
    if "output" not in raw:
        raise ValueError("the config needs an 'output' directory")
    seed, device = int(raw.get("seed", 0)), raw.get("device")
    output = Path(raw["output"])
    if base_dir is not None and not output.is_absolute():
        output = base_dir / output
    data = _build(DataSpec, raw.get("data"), "data")
    teachers = {}
    for name, spec in (raw.get("teachers") or {}).items():
        spec = dict(spec or {})
        train = _settings(spec.pop("train", None), f"teachers.{name}.train", seed, device)
        teacher = _build(TeacherSpec, {"name": name, **spec, "train": train}, f"teachers.{name}")
        if teacher.inputs not in INPUTS:
            raise ValueError(f"teachers.{name}.inputs must be one of {list(INPUTS)}, got {teacher.inputs!r}")
        if (teacher.inputs == "fusion") != (teacher.pi_model is not None):
            raise ValueError(f"teachers.{name}: pi_model is required for inputs 'fusion' and only then")
        teachers[name] = teacher
    student = None
    if raw.get("student") is not None:
        spec = dict(raw["student"])
        train = _settings(spec.pop("train", None), "student.train", seed, device)
        uses = [_build(TeacherUse, u if isinstance(u, dict) else {"name": u}, "student.teachers[]")
                for u in spec.pop("teachers", []) or []]
        for use in uses:
            if use.name not in teachers:
                raise ValueError(f"student.teachers names {use.name!r}, which is not under 'teachers'")
            if use.weight < 0:
                raise ValueError(f"student.teachers: weight of {use.name!r} must be >= 0")
        student = _build(StudentSpec, {**spec, "teachers": uses, "train": train}, "student")
        if (student.pinet is None) != (student.pi_model is None):
            raise ValueError("student: a PI-augmented student needs both 'pinet' (checkpoint) and 'pi_model'")
        if student.pinet is not None and base_dir is not None and not Path(student.pinet).is_absolute():
            student.pinet = str(base_dir / student.pinet)
        _check_losses(student.losses, bool(uses))
    return ExperimentConfig(output=output, data=data, teachers=teachers, student=student, seed=seed, device=device)


def _check_losses(losses: dict, has_teachers: bool) -> None:
    if not isinstance(losses, dict) or not losses:
        raise ValueError("student.losses must be a non-empty mapping, e.g. {ce: 0.1, kd: {weight: 0.9}}")
    unknown = sorted(set(losses) - set(LOSSES))
    if unknown:
        raise ValueError(f"unknown loss(es) {unknown}; available: {list(LOSSES)}")
    for name, spec in losses.items():
        weight = spec if not isinstance(spec, dict) else spec.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"student.losses.{name}: weight must be a number >= 0, got {weight!r}")
        if name != "ce" and not has_teachers and weight > 0:
            raise ValueError(f"student.losses.{name} needs at least one teacher under student.teachers")


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML config; relative ``output`` is relative to the file."""
    from ..io import read_yaml

    return parse_config(read_yaml(path), base_dir=Path(path).parent)
