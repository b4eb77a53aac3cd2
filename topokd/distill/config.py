"""YAML experiment configs for ``topokd train-teacher | distill | run``.

A config names the data, the teachers (each trained on raw signals, PIs, or
both), the student, the losses with their weights, and the training
settings.  It is built with :func:`topokd.config.from_dict`, so unknown
keys and wrong types are errors naming the full key
(``teachers.signal.train.epochs must be an integer, got 'three'``), raised
as :class:`topokd.config.ConfigError` before anything is trained or
written.  See ``configs/`` for complete examples.

Schema (defaults in brackets)::

    output: PATH                      # required; relative to the config file
    seed: INT                         # [0]; also the default train.seed
    device: STR | null                # [null: cuda if available]; also the default train.device
    data:                             # DataSpec (topokd.data.spec); or just the name: `data: hapt`
      name: basic-motions | synthetic | hapt | hapt-12   # [basic-motions unless files are given]
      path: FILE.npz                  # or your windows: arrays X (N, T, C), y, [groups, X_test, y_test, groups_test]
      X: FILE.npy                     #   or .npy files X, y [, groups, X_test, y_test, groups_test]
      channels_first: BOOL            # [false] files hold (N, C, T)
      val_fraction: FLOAT             # [0.2], in (0, 1); by group when groups are known (hapt: users)
      test_fraction: FLOAT            # [0.2] files without X_test only
      pi_preset: STR | null           # a topokd.tda preset [null: standard-signal]
      pi_params: {KEY: VALUE}         # PI parameter overrides [{}]
      synthetic_windows: INT          # [600]
      synthetic_length: INT           # [100]
    teachers:                         # {name: TeacherSpec} [{}]
      NAME:
        model: STR                    # required, e.g. wrn16-3
        inputs: signal | pi | fusion  # [signal]
        pi_model: STR | null          # the PI branch; required for fusion, only then
        train: TrainSettings          # see below
    student:                          # StudentSpec | null [null]
      model: STR                      # required
      teachers:                       # [TeacherUse] [[]]; an entry may be just the name
        - name: STR                   # required; a key of `teachers`
          weight: FLOAT               # [1.0], >= 0
          checkpoint: best | last | INT   # [best]; ESKD: an epoch number >= 1
          view: student | clean       # [student] the augmented batch the student sees, or the clean windows
      pinet: STR | null               # PI-augmented student: a signal PI-Net checkpoint
      pi_model: STR | null            #   and the 2-D model over its PIs (both or neither)
      losses: {NAME: W | {weight: W, teachers: [NAMES], stages: last | all, **params}}  # [{ce: 1.0}]
                                      # NAME: a registered loss (topokd.distill.losses.list_losses())
      train: TrainSettings
      scratch: BOOL                   # [false] also train the student from scratch (CE) as the baseline
    checkpoints: needed | all         # [needed]: best, last and the epochs student.teachers name; all: every epoch

``train`` (:class:`topokd.engine.settings.TrainSettings`): ``epochs`` [100],
``batch_size`` [32], ``optimizer`` sgd | adam | adamw [sgd], ``lr`` [0.05],
``momentum`` [0.9], ``weight_decay`` [5e-4], ``schedule`` cosine | step |
none [cosine], ``augment`` (a name of
:data:`topokd.distill.augment.AUGMENTATIONS`) [null], ``mixup_alpha``
[0.0], ``mixup_fraction`` [1.0], ``amp`` [true], ``device``, ``seed``,
``progress`` [true].

Cross-field rules (checked here, with the key in the message): a student's
teachers must be defined under ``teachers``; ``inputs: fusion`` needs
``pi_model``; losses that compare with a teacher need one; a same-modality
feature loss (AT, AMD, FitNet, FT) cannot use a persistence-image teacher
(use SP, fused SP, RKD or PKT); ``pinet`` and ``pi_model`` go together; a
teacher with ``view: clean`` cannot be combined with mixup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from ..config import ConfigError, apply_overrides, build_value, from_dict
from ..data.spec import DataName, DataSpec
from ..engine.settings import TrainSettings

#: ``data:`` is :class:`topokd.data.spec.DataSpec` (a built-in set or your own
#: .npz / .npy windows), the one schema shared with the compression configs;
#: DATA_SETS: the built-in names :func:`topokd.distill.data.load_splits` knows.
DATA_SETS = get_args(DataName)


@dataclass
class TeacherSpec:
    name: str
    model: str
    inputs: Literal["signal", "pi", "fusion"] = "signal"
    # For inputs="fusion": the PI branch (the raw branch is ``model``).
    pi_model: str | None = None
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self):
        if (self.inputs == "fusion") != (self.pi_model is not None):
            raise ValueError(f"pi_model is required for inputs 'fusion' and only then (inputs is {self.inputs!r}, "
                             f"pi_model is {self.pi_model!r})")


@dataclass
class TeacherUse:
    __config_shorthand__ = "name"

    name: str
    weight: float = 1.0
    # ESKD: "best" (best validation epoch), "last", or an epoch number.
    checkpoint: Literal["best", "last"] | int = "best"
    # What the teacher sees: "student" (the batch the student sees, after
    # augmentation, with the PIs of the augmented windows) or "clean" (the
    # un-augmented windows and their precomputed PIs, as Jeon et al.'s PI
    # teachers saw them); see topokd.distill.distiller.
    view: Literal["student", "clean"] = "student"

    def __post_init__(self):
        if not self.weight >= 0:
            raise ValueError(f"weight must be >= 0, got {self.weight!r}")
        if isinstance(self.checkpoint, int) and self.checkpoint < 1:
            raise ValueError(f"checkpoint must be 'best', 'last' or an epoch number >= 1, got {self.checkpoint!r}")


@dataclass
class StudentSpec:
    model: str
    teachers: list[TeacherUse] = field(default_factory=list)
    # PI-augmented student: a trained signal PI-Net checkpoint (frozen inside
    # the student) and the 2-D model over its PIs.
    pinet: str | None = None
    pi_model: str | None = None
    # {name: weight | {weight: w, teachers: [...], stages: ..., **params}}, checked by _check_losses.
    losses: dict = field(default_factory=lambda: {"ce": 1.0})
    train: TrainSettings = field(default_factory=TrainSettings)
    # Also train the student architecture from scratch (cross-entropy only,
    # the same train settings) as the baseline its gain is measured against.
    scratch: bool = False

    def __post_init__(self):
        if (self.pinet is None) != (self.pi_model is None):
            raise ValueError("a PI-augmented student needs both 'pinet' (checkpoint) and 'pi_model' (or neither)")


@dataclass
class ExperimentConfig:
    output: Path = field(metadata={"help": "the run directory, relative to the config file"})
    data: DataSpec = field(default_factory=DataSpec)
    teachers: dict[str, TeacherSpec] = field(default_factory=dict)
    student: StudentSpec | None = None
    seed: int = 0
    device: str | None = None
    # "needed": best, last and the epochs the student's teachers name (ESKD);
    # "all": every epoch's weights.
    checkpoints: Literal["all", "needed"] = "needed"


def _with_defaults(raw: dict) -> dict:
    """``raw`` with what the schema cannot say by itself: each teacher's
    ``name`` (its key) and the top-level ``seed`` / ``device`` as defaults
    of every ``train`` section."""
    seed = build_value(int, raw.get("seed", 0), "seed")
    device = build_value(str | None, raw.get("device"), "device")
    out = dict(raw)

    def train_defaults(section: dict) -> None:
        train = section.get("train")
        if train is None:
            train = {}
        if isinstance(train, dict):
            section["train"] = {"seed": seed, "device": device, **train}

    teachers = raw.get("teachers")
    if isinstance(teachers, dict):
        out["teachers"] = {}
        for name, spec in teachers.items():
            spec = {} if spec is None else spec
            if isinstance(spec, dict):
                spec = dict(spec)
                if "name" in spec and spec["name"] != name:
                    raise ConfigError(f"teachers.{name}.name is {spec['name']!r}: a teacher's name is its key "
                                      "under 'teachers'; remove 'name'")
                spec["name"] = name
                train_defaults(spec)
            out["teachers"][name] = spec
    student = raw.get("student")
    if isinstance(student, dict):
        student = dict(student)
        train_defaults(student)
        out["student"] = student
    return out


def parse_config(raw: dict, base_dir: Path | None = None, overrides=None) -> ExperimentConfig:
    """Validate a config mapping (as loaded from YAML) into an :class:`ExperimentConfig`.

    ``base_dir`` (the config file's folder) resolves a relative ``output``
    and ``student.pinet``.  ``overrides`` are ``"key=value"`` strings applied
    first (:func:`topokd.config.apply_overrides`).  Raises
    :class:`topokd.config.ConfigError`.
    """
    if overrides:
        raw = apply_overrides(raw, overrides)
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a YAML mapping (key: value lines), got {type(raw).__name__}")
    cfg = from_dict(ExperimentConfig, _with_defaults(raw), base_dir=base_dir)
    for name, teacher in cfg.teachers.items():
        _check_augment(teacher.train.augment, f"teachers.{name}.train.augment")
    student = cfg.student
    if student is not None:
        for i, use in enumerate(student.teachers):
            if use.name not in cfg.teachers:
                defined = ", ".join(cfg.teachers) or "none"
                raise ConfigError(f"student.teachers[{i}].name is {use.name!r}, which is not under 'teachers' "
                                  f"(defined: {defined})")
        _check_augment(student.train.augment, "student.train.augment")
        if student.pinet is not None and base_dir is not None and not Path(student.pinet).is_absolute():
            student.pinet = str(Path(base_dir) / student.pinet)
        _check_losses(student, cfg.teachers)
        _check_views(student)
    return cfg


def _check_views(student: "StudentSpec") -> None:
    """``view: clean`` shows a teacher the un-augmented window; on a mixed
    batch that window is not the one the student is trained on, so refuse it."""
    from .losses.registry import loss_entry

    clean = [u.name for u in student.teachers if u.view == "clean"]
    if not clean:
        return
    mixing = [n for n in student.losses if loss_entry(n).inputs == "batch"]
    if student.train.mixup_alpha > 0:
        mixing.append("train.mixup_alpha")
    if mixing:
        from .distiller import clean_view_refusal

        raise ConfigError(f"student.teachers: {clean_view_refusal(clean[0], mixing[0])}")


def _check_augment(name, where: str) -> None:
    if name is None:
        return
    from .augment import AUGMENTATIONS

    if str(name).lower() not in AUGMENTATIONS:
        import difflib

        close = difflib.get_close_matches(str(name).lower(), list(AUGMENTATIONS), n=1)
        raise ConfigError(f"{where} must be one of {', '.join(repr(a) for a in AUGMENTATIONS)} or null, got "
                          f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))


def _check_losses(student: "StudentSpec", teachers: dict) -> None:
    """Every ``student.losses`` entry against the loss registry, before anything runs:
    known name, weight, ``teachers`` / ``stages`` options, the loss's own
    parameters, a teacher where the loss needs one, and no same-modality
    feature loss (AT, AMD, FitNet, FT) from a persistence-image teacher."""
    import difflib

    from .losses.registry import list_losses, loss_entry

    losses = student.losses
    if not isinstance(losses, dict) or not losses:
        raise ConfigError("student.losses must be a non-empty mapping, e.g. {ce: 0.1, kd: {weight: 0.9}}")
    names = [u.name for u in student.teachers]
    known = list_losses()
    transforms = []
    for name, spec in losses.items():
        where = f"student.losses.{name}"
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            raise ConfigError(f"student.losses: unknown loss {name!r}" + (f" (did you mean {close[0]!r}?)" if close
                                                                          else "")
                              + f"; available: {', '.join(known)}")
        entry = loss_entry(name)
        spec = spec if isinstance(spec, dict) else {"weight": spec}
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ConfigError(f"{where}.weight must be a number >= 0 (the loss weight), got {weight!r}")
        sized = ("student_channels", "teacher_channels", "dims")
        valid = [p for p in entry.parameters if p not in sized]
        for key in spec:
            options = ["weight", "teachers", "stages"] + (["paraphraser_epochs"] if name == "ft" else [])
            if key in options or key in valid:
                continue
            close = difflib.get_close_matches(str(key), valid + options, n=1)
            raise ConfigError(f"{where}: unknown parameter {key!r}" + (f" (did you mean {close[0]!r}?)" if close
                                                                       else "")
                              + f"; {name} takes {', '.join(valid + options)}")
        if spec.get("stages", "last") not in ("last", "all"):
            raise ConfigError(f"{where}.stages must be 'last' or 'all', got {spec['stages']!r}")
        if entry.inputs == "batch":
            transforms.append(name)
            continue
        used = spec.get("teachers", names if entry.inputs not in ("labels", "views") else [])
        if not isinstance(used, list) or not all(isinstance(t, str) for t in used):
            raise ConfigError(f"{where}.teachers must be a list of teacher names, got {used!r}")
        for t in used:
            if t not in names:
                raise ConfigError(f"{where}.teachers names {t!r}, which is not one of student.teachers "
                                  f"({', '.join(names) or 'none'})")
        if weight > 0 and entry.inputs not in ("labels", "views") and not used:
            raise ConfigError(f"{where} needs at least one teacher under student.teachers")
        if weight > 0 and entry.same_modality:
            for t in used:
                if teachers[t].inputs == "pi":
                    raise ConfigError(
                        f"{where}: teacher {t!r} sees persistence images, whose 2-D maps have no correspondence "
                        f"with the student's time axis, so {name} cannot transfer them; use a relations loss "
                        f"({', '.join(list_losses('relations'))}) for it, or set {where}.teachers to the "
                        "signal or fusion teachers only")
        if weight > 0 and entry.inputs == "views" and student.train.augment is None:
            raise ConfigError(f"{where} compares two distorted views of each window: set student.train.augment "
                              "(e.g. mix1)")
    if len(transforms) > 1:
        raise ConfigError(f"student.losses: {transforms[0]!r} and {transforms[1]!r} both transform the batch; keep "
                          "one")
    if transforms and student.train.mixup_alpha > 0:
        raise ConfigError(f"student.losses.{transforms[0]} and student.train.mixup_alpha both mix the batch; keep "
                          "one")


def load_config(path: str | Path, overrides=None) -> ExperimentConfig:
    """Read and validate a YAML config; relative ``output`` (and
    ``student.pinet``) are relative to the file.  ``overrides``: ``"key=value"``
    strings (``topokd run CONFIG --set student.train.epochs=5``)."""
    from ..io import read_yaml

    return parse_config(read_yaml(path), base_dir=Path(path).parent, overrides=overrides)
