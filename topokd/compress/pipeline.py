"""Compress a student checkpoint: load -> steps -> measure -> save.

:func:`compress_checkpoint` is what ``topokd compress CHECKPOINT CONFIG``
runs, callable without the command line::

    from topokd.compress.pipeline import compress_checkpoint
    report = compress_checkpoint("runs/x/student/best.safetensors", "configs/compress-student.yaml",
                                 "runs/x/compressed", log=print)
    report["after"]["accuracy"], report["output_model"]

The config is a :class:`~topokd.compress.config.CompressionConfig`, a YAML
path or a mapping (see :mod:`topokd.compress.config` for the schema).
Outputs, in ``output_dir`` (default: the config's ``output``, else
``<checkpoint stem>-compressed`` beside the checkpoint):

* ``model.safetensors`` (float result) or ``model.pt2`` (int8 result), see
  :mod:`topokd.compress.checkpoints`;
* ``report.json`` -- the returned report: accuracy, parameters, non-zeros,
  size, MACs, latency and peak memory before and after, the accuracy after
  each step, the resolved config;
* ``report.md`` -- the same as a Markdown table
  (:func:`topokd.compress.report.markdown_report`).

Everything that can be checked without computing is checked first: the
config, the output folder (existing outputs are refused unless ``force``),
the checkpoint and teacher files, the optional packages the steps need
(torch-pruning for structured pruning, torchao for int8); the folder is
created only once the compressed model exists.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from ..io import write_atomic
from .checkpoints import load_student, save_compressed
from .config import OUTPUT_NAMES, CompressionConfig, FinetuneStep, PruneStep, QuantizeStep, load_config, parse_config
from .profile import profile
from .prune import finalize, iterative_prune, kd_finetune, make_fine_tune, pruned_tensors
from .quantize import QuantizedModel, convert_qat, prepare_qat, quantize_dynamic, quantize_static
from .report import markdown_report

__all__ = ["compress_checkpoint", "default_output_dir", "step_options"]


def default_output_dir(checkpoint, config: CompressionConfig) -> Path:
    """The config's ``output``, else ``<checkpoint stem>-compressed`` beside the checkpoint."""
    checkpoint = Path(checkpoint)
    return config.output if config.output is not None else checkpoint.parent / f"{checkpoint.stem}-compressed"


def _check_output_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"the output {out_dir} is a file, not a folder; choose another output folder")
    existing = [out_dir / n for n in OUTPUT_NAMES if (out_dir / n).exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} already exists; pass --force (force=True) to overwrite the outputs "
                              f"in {out_dir}")


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _require_extras(cfg: CompressionConfig) -> None:
    """The optional packages the steps need (``topokd[compress]``), checked before any work."""
    needs = {}
    for i, step in enumerate(cfg.steps):
        if isinstance(step, PruneStep) and step.method == "structured":
            needs.setdefault("torch_pruning", (f"steps[{i}] (structured pruning)", "torch-pruning"))
        if isinstance(step, QuantizeStep):
            needs.setdefault("torchao", (f"steps[{i}] (int8 quantisation)", "torchao"))
    for module, (where, package) in needs.items():
        if not _has_module(module):
            raise ImportError(f"{where} needs {package}, which is not installed: pip install 'topokd[compress]'")


def step_options(step) -> dict:
    """The options of a step that apply to it (what the report lists)."""
    if isinstance(step, PruneStep):
        keys = ["method", "amount"] + (["steps", "schedule", "finetune_epochs"] if step.steps > 1 else [])
    elif isinstance(step, QuantizeStep):
        keys = ["method", "reduce_range"] + {"dynamic": [], "static": ["batch_size", "calibration_batches"],
                                             "qat": ["epochs", "lr", "batch_size", "kd_weight",
                                                     "temperature"]}[step.method]
    else:
        keys = [f.name for f in dataclasses.fields(step)]
    return {k: getattr(step, k) for k in keys}


def _as_config(config) -> tuple[CompressionConfig, str | None]:
    if isinstance(config, CompressionConfig):
        return config, None
    if isinstance(config, (str, os.PathLike)):
        return load_config(config), str(config)
    if isinstance(config, Mapping):
        return parse_config(dict(config)), None
    raise TypeError(f"config must be a CompressionConfig, a YAML path or a mapping, got {type(config).__name__}")


def compress_checkpoint(checkpoint, config, output_dir=None, *, force: bool = False,
                        log: Callable[[str], object] | None = None, config_source: str | None = None) -> dict:
    """Apply ``config``'s steps to the student in ``checkpoint`` and write the
    compressed model and its report (see the module docstring).

    ``log`` receives one line per stage (``print`` for progress; ``None``:
    silent).  ``config_source`` names the config in the report (default: the
    path when ``config`` is one).  Returns the report dict (also written to
    ``report.json``), with ``output_dir`` and ``output_model`` added.
    Raises ``FileExistsError`` before any work when outputs exist and
    ``force`` is false, ``FileNotFoundError`` for a missing checkpoint or
    teacher, :class:`topokd.config.ConfigError` for an invalid config.
    """
    from ..distill.data import load_splits
    from ..distill.models import signals_to_tensor
    from ..distill.trainer import evaluate

    cfg, source = _as_config(config)
    say = log if log is not None else (lambda text: None)
    ckpt = Path(checkpoint)
    out_dir = Path(output_dir) if output_dir is not None else default_output_dir(ckpt, cfg)
    _check_output_dir(out_dir, force)
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt} does not exist")
    if cfg.teacher is not None and not cfg.teacher.is_file():
        raise FileNotFoundError(f"teacher checkpoint {cfg.teacher} (config 'teacher') does not exist")
    _require_extras(cfg)

    model, meta = load_student(ckpt)
    teacher = load_student(cfg.teacher)[0] if cfg.teacher is not None else None
    torch.manual_seed(cfg.seed)
    say(f"loading data {cfg.data.label} ...")
    splits = load_splits(cfg.data, seed=cfg.seed, with_pis=False)
    channels = int(meta["model"]["in_channels"])
    if splits.train.signals.shape[2] != channels:
        raise ValueError(f"the checkpoint's model takes {channels} channels but {cfg.data.label} has "
                         f"{splits.train.signals.shape[2]}; set the config's data to the set it was trained on")
    X = signals_to_tensor(splits.train.signals)
    y = torch.from_numpy(splits.train.labels)
    calib = signals_to_tensor(getattr(splits, cfg.calibration_split).signals)
    eval_split = getattr(splits, cfg.eval_split)
    example = X[:1]
    lat = cfg.latency

    def acc(m) -> float:
        return float(evaluate(m, "signal", eval_split, "cpu")["acc"])

    def measure(m) -> dict:
        return profile(m, example, batch_sizes=lat.batch_sizes, repeats=lat.repeats, warmup=lat.warmup,
                       threads=lat.threads)

    say(f"measuring the original {meta['model']['model']} ...")
    before = {"accuracy": acc(model), **measure(model)}
    current, steps_log = model, []
    for step in cfg.steps:
        if isinstance(step, PruneStep):
            say(f"prune: {step.method} {step.amount:.0%}" + (f" in {step.steps} rounds" if step.steps > 1 else ""))
            between = (make_fine_tune(X, y, teacher=teacher, seed=cfg.seed, epochs=step.finetune_epochs)
                       if step.steps > 1 else None)
            current = iterative_prune(current, step.amount, method=step.method, steps=step.steps, fine_tune=between,
                                      schedule=step.schedule, example_input=X[:2])
        elif isinstance(step, FinetuneStep):
            say(f"finetune: {step.epochs} epochs" + (" with KD" if teacher is not None else ""))
            kd_finetune(current, X, y, teacher=teacher, seed=cfg.seed, **step.train_kwargs())
        else:
            say(f"quantize: {step.method} int8")
            if pruned_tensors(current):
                current = finalize(current)
            if step.method == "dynamic":
                current = quantize_dynamic(current, example, reduce_range=step.reduce_range)
            elif step.method == "static":
                current = quantize_static(current, calib, example, num_batches=step.calibration_batches,
                                          batch_size=step.batch_size, reduce_range=step.reduce_range)
            else:
                prepared = prepare_qat(current, X[:2], reduce_range=step.reduce_range)
                kd_finetune(prepared, X, y, teacher=teacher, seed=cfg.seed, **step.train_kwargs())
                current = convert_qat(prepared)
        steps_log.append({"step": step.kind, **step_options(step), "accuracy": acc(current)})
    if not isinstance(current, QuantizedModel) and pruned_tensors(current):
        current = finalize(current)
    say("measuring the compressed model ...")
    after = {"accuracy": acc(current), **measure(current)}

    _check_output_dir(out_dir, force)  # nothing appeared meanwhile
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for name in OUTPUT_NAMES:  # no stale model file of the other kind
            (out_dir / name).unlink(missing_ok=True)
        model_path = save_compressed(current, out_dir, meta, ckpt)
        written.append(model_path)
        report = {"checkpoint": str(ckpt), "config": config_source or source, "model": meta["model"],
                  "data": splits.description, "eval_split": cfg.eval_split, "steps": steps_log,
                  "output_dir": str(out_dir), "output_model": str(model_path),
                  "output_bytes": model_path.stat().st_size, "output_format": after["format"],
                  "before": before, "after": after, "torch": torch.__version__,
                  "resolved_config": cfg.to_dict()}
        written.append(write_atomic(out_dir / "report.json", json.dumps(report, indent=1, default=str) + "\n"))
        written.append(write_atomic(out_dir / "report.md", markdown_report(report)))
    except BaseException:
        # Nothing partial (Ctrl-C included): a model without its report is
        # removed, and so is an output directory this run created.
        for path in written:
            path.unlink(missing_ok=True)
        if created:
            try:
                out_dir.rmdir()
            except OSError:
                pass
        raise
    say(f"wrote {model_path}, report.md and report.json")
    return report
