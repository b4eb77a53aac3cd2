"""The ``topokd compress`` config: a typed schema built with :mod:`topokd.config`.

Schema (defaults in brackets)::

    data: basic-motions            # or a mapping, as in the experiment configs (topokd.data.spec.DataSpec):
                                   #   {name: hapt} or {path: windows.npz} or {X: x.npy, y: y.npy}, val_fraction, ...
    seed: 0                        # [0] data split, fine-tuning order
    eval_split: test               # [test] accuracy is measured on this split: train | val | test
    calibration_split: train       # [train] static quantisation calibrates on this split
    teacher: PATH                  # [null] KD during fine-tuning; relative to the config file
    output: PATH                   # [null: <checkpoint stem>-compressed beside the checkpoint]
    latency: {batch_sizes: [1, 32], repeats: 50, warmup: 10, threads: null}
    steps:                         # required, applied in order
      - prune: {method: structured, amount: 0.5}   # PruneStep
      - finetune: {epochs: 5, lr: 0.001}            # FinetuneStep (CE, + KD with the teacher)
      - quantize: {method: static}                  # QuantizeStep

Steps (each a one-key mapping; a bare ``- finetune:`` takes the defaults):

``prune`` (:class:`PruneStep`)
    ``amount`` (required, in (0, 1): the fraction removed), ``method``
    unstructured | global | structured [structured], ``steps`` [1] (> 1:
    iterative pruning with ``finetune_epochs`` [1] of fine-tuning between
    rounds), ``schedule`` linear | geometric [linear].
``finetune`` (:class:`FinetuneStep`)
    ``epochs`` [3], ``lr`` [0.001], ``batch_size`` [32], ``optimizer`` adam
    | adamw | sgd [adam], ``weight_decay`` [0.0], ``kd_weight`` [0.9] and
    ``temperature`` [4.0] (used with a ``teacher``).
``quantize`` (:class:`QuantizeStep`)
    ``method`` dynamic | static | qat (required), ``reduce_range``
    [null: 7-bit activations on CPUs without VNNI], ``batch_size`` [32]
    and ``calibration_batches`` [null: all] (static), ``epochs`` [3],
    ``lr`` [0.0001], ``kd_weight`` [0.9], ``temperature`` [4.0] (qat).

Rules: a model is pruned once (one ``prune`` step; use ``prune.steps`` for
iterative pruning), and nothing follows ``quantize`` (the int8 model is
final).  Unknown keys and wrong types are :class:`topokd.config.ConfigError`
naming the key (``steps[1].prune.amount must be a number, got 'half'``).

This module itself imports no torch (importing it runs the
:mod:`topokd.compress` package, which does).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union

from ..config import ConfigError, apply_overrides, from_dict
from ..data.spec import DataSpec

Split = Literal["train", "val", "test"]
#: Output files of a run (any existing one is refused without ``force``).
OUTPUT_NAMES = ("model.safetensors", "model.pt2", "report.md", "report.json")


def _check_fraction(value: float, name: str) -> None:
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must be in (0, 1) (the fraction to remove), got {value!r}")


def _check_training(step) -> None:
    from ..engine.settings import check_training_length

    check_training_length(step.epochs, step.batch_size, step.lr)
    if not 0.0 <= step.kd_weight <= 1.0:
        raise ValueError(f"kd_weight must be in [0, 1], got {step.kd_weight!r}")
    if not step.temperature > 0:
        raise ValueError(f"temperature must be > 0, got {step.temperature!r}")


#: The data set: the same schema as the experiment configs' ``data:``
#: (:class:`topokd.data.spec.DataSpec`: a built-in name or your .npz / .npy
#: windows), so a config's data section can be copied here unchanged; the
#: PI options (``pi_preset``, ``pi_params``) are accepted and unused.
DataConfig = DataSpec


@dataclass
class LatencyConfig:
    """How latency is measured (:func:`topokd.compress.profile`)."""

    batch_sizes: tuple[int, ...] = (1, 32)
    repeats: int = 50
    warmup: int = 10
    threads: int | None = None

    def __post_init__(self):
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch_sizes must be a non-empty list of integers >= 1, got {list(self.batch_sizes)}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 (or null: torch's current setting), got {self.threads!r}")


@dataclass
class PruneStep:
    """``- prune: {...}``: see :func:`topokd.compress.iterative_prune`."""

    __config_tag__ = "prune"
    kind = "prune"

    amount: float = field(metadata={"help": "the fraction to remove, in (0, 1)"})
    method: Literal["unstructured", "global", "structured"] = "structured"
    steps: int = 1
    schedule: Literal["linear", "geometric"] = "linear"
    finetune_epochs: int = 1

    def __post_init__(self):
        _check_fraction(self.amount, "amount")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1 (rounds of pruning), got {self.steps!r}")
        if self.finetune_epochs < 1:
            raise ValueError(f"finetune_epochs must be >= 1, got {self.finetune_epochs!r}")


@dataclass
class FinetuneStep:
    """``- finetune: {...}``: see :func:`topokd.compress.kd_finetune` (same defaults)."""

    __config_tag__ = "finetune"
    kind = "finetune"

    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 32
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 0.0
    kd_weight: float = 0.9
    temperature: float = 4.0

    def __post_init__(self):
        _check_training(self)
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")

    def train_kwargs(self) -> dict:
        """Keyword arguments of :func:`topokd.compress.kd_finetune`."""
        return {"epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size, "optimizer": self.optimizer,
                "weight_decay": self.weight_decay, "kd_weight": self.kd_weight, "temperature": self.temperature}


@dataclass
class QuantizeStep:
    """``- quantize: {...}``: int8 with :mod:`topokd.compress.quantize`."""

    __config_tag__ = "quantize"
    kind = "quantize"

    method: Literal["dynamic", "static", "qat"]
    reduce_range: bool | None = None
    batch_size: int = 32
    calibration_batches: int | None = None
    epochs: int = 3
    lr: float = 1e-4
    kd_weight: float = 0.9
    temperature: float = 4.0

    def __post_init__(self):
        _check_training(self)
        if self.calibration_batches is not None and self.calibration_batches < 1:
            raise ValueError(f"calibration_batches must be >= 1 (or null: all), got {self.calibration_batches!r}")

    def train_kwargs(self) -> dict:
        """QAT's :func:`topokd.compress.kd_finetune` keyword arguments."""
        return {"epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size, "kd_weight": self.kd_weight,
                "temperature": self.temperature}


Step = Union[PruneStep, FinetuneStep, QuantizeStep]
STEP_TYPES = {cls.__config_tag__: cls for cls in (PruneStep, FinetuneStep, QuantizeStep)}


@dataclass
class CompressionConfig:
    """A whole ``topokd compress`` config (see the module docstring)."""

    steps: list[Step] = field(metadata={"help": "a list of steps like [{prune: {method: structured, amount: 0.5}}, "
                                                "{finetune: {epochs: 5}}, {quantize: {method: static}}]"})
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    eval_split: Split = "test"
    calibration_split: Split = "train"
    teacher: Path | None = None
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    output: Path | None = None

    def __post_init__(self):
        if not self.steps:
            raise ValueError("steps is empty: list at least one step, e.g. [{prune: {method: structured, "
                             "amount: 0.5}}, {finetune: {epochs: 5}}, {quantize: {method: static}}]")
        pruned = quantized = None
        for i, step in enumerate(self.steps):
            if quantized is not None:
                raise ValueError(f"steps[{i}]: nothing can follow the quantize step steps[{quantized}] "
                                 "(the int8 model is final); move it last")
            if step.kind == "prune":
                if pruned is not None:
                    raise ValueError(f"steps[{i}]: the model is already pruned by steps[{pruned}]; a model is "
                                     "pruned once (use prune.steps for iterative pruning)")
                pruned = i
            elif step.kind == "quantize":
                quantized = i

    def to_dict(self) -> dict:
        """The config as a plain mapping (paths as strings, steps as ``{kind:
        {...}}``) that :func:`parse_config` reads back to an equal config."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "steps":
                value = [{step.kind: dataclasses.asdict(step)} for step in value]
            elif isinstance(value, DataSpec):
                value = value.to_dict()
            elif dataclasses.is_dataclass(value):
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(value).items()}
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


def parse_config(raw, base_dir: str | Path | None = None, overrides=None) -> CompressionConfig:
    """Validate a compression config mapping (as loaded from YAML).

    ``base_dir`` (the config file's folder) resolves relative ``teacher``
    and ``output`` paths; ``overrides`` are ``"key=value"`` strings applied
    first (:func:`topokd.config.apply_overrides`, e.g.
    ``steps[0].prune.amount=0.3``).  Raises :class:`topokd.config.ConfigError`.
    """
    if overrides:
        raw = apply_overrides(raw, overrides)
    if not isinstance(raw, dict):
        raise ConfigError("the compression config must be a YAML mapping with 'steps' (and data, latency, ...), "
                          f"got {type(raw).__name__}")
    return from_dict(CompressionConfig, raw, base_dir=base_dir)


def load_config(path: str | Path, overrides=None) -> CompressionConfig:
    """Read and validate a YAML compression config (paths relative to the file)."""
    from ..io import read_yaml

    return parse_config(read_yaml(path), base_dir=Path(path).parent, overrides=overrides)


__all__ = ["CompressionConfig", "DataConfig", "FinetuneStep", "LatencyConfig", "OUTPUT_NAMES", "PruneStep",
           "QuantizeStep", "STEP_TYPES", "Step", "load_config", "parse_config"]
