"""Compression of a student checkpoint: config, model loading, outputs and report
(used by ``topokd compress CHECKPOINT CONFIG``, :mod:`topokd.cli.compress`).

The checkpoint is a student (or signal teacher) written by
:func:`topokd.distill.trainer.fit` (``best.safetensors``: metadata
``{"model": {"model": name, "inputs": "signal", "num_classes",
"in_channels"}}``).  The YAML config::

    data: basic-motions          # or a mapping like the experiment configs' data section
    seed: 0
    eval_split: test             # accuracy is measured on this split (train | val | test)
    teacher: runs/x/teachers/signal/best.safetensors   # optional: KD during fine-tuning
    latency: {batch_sizes: [1, 32], repeats: 50, warmup: 10, threads: 1}
    steps:
      - prune: {method: structured, amount: 0.5}         # unstructured | global | structured
                                                         # (steps: 3, finetune_epochs: 1 -> iterative)
      - finetune: {epochs: 5, lr: 0.001}                 # CE (+ KD with the teacher)
      - quantize: {method: static}                       # dynamic | static | qat

Outputs (in ``--output``, default ``<checkpoint stem>-compressed`` beside
the checkpoint; existing files are refused without ``--force``):

* ``model.safetensors`` -- float results (pruned / fine-tuned), a topokd
  checkpoint whose metadata holds the source model description, the
  compression history and the layer shapes, so
  :func:`load_compressed` rebuilds structurally pruned models;
* ``model.pt2`` -- quantised results: ``torch.export`` archive (not
  safetensors: the int8 graph with its activation scales is part of the
  model, see :mod:`topokd.compress.quantize`); load with
  :func:`load_compressed` or :func:`topokd.compress.load_quantized`;
* ``report.md`` and ``report.json`` -- accuracy, parameters, non-zeros,
  size, MACs, latency and peak memory before and after (and the accuracy
  after each step).
"""

from __future__ import annotations

import json
from pathlib import Path

STEP_KEYS = {
    "prune": {"method", "amount", "steps", "schedule", "finetune_epochs"},
    "finetune": {"epochs", "lr", "batch_size", "optimizer", "weight_decay", "kd_weight", "temperature"},
    "quantize": {"method", "epochs", "lr", "batch_size", "calibration_batches", "reduce_range", "kd_weight",
                 "temperature"},
}
TOP_KEYS = {"data", "seed", "eval_split", "calibration_split", "teacher", "latency", "steps", "output"}
OUTPUT_NAMES = ("model.safetensors", "model.pt2", "report.md", "report.json")


# ---------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------
def load_config(path) -> dict:
    from ..io import read_yaml

    return parse_config(read_yaml(path), base_dir=Path(path).parent)


def parse_config(raw, base_dir: Path | None = None) -> dict:
    """Validate a compression config mapping; returns it with defaults."""
    if not isinstance(raw, dict):
        raise ValueError("the compression config must be a YAML mapping")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ValueError(f"unknown top-level key(s) {unknown}; allowed: {sorted(TOP_KEYS)}")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ValueError("the config needs 'steps': a list like [{prune: {method: structured, amount: 0.5}}, "
                         "{finetune: {epochs: 5}}, {quantize: {method: static}}]")
    parsed, pruned, quantized = [], False, False
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or len(step) != 1:
            raise ValueError(f"steps[{i}] must be a one-key mapping (prune, finetune or quantize), got {step!r}")
        (kind, args), = step.items()
        if kind not in STEP_KEYS:
            raise ValueError(f"steps[{i}]: unknown step {kind!r}; available: {sorted(STEP_KEYS)}")
        args = dict(args or {})
        bad = sorted(set(args) - STEP_KEYS[kind])
        if bad:
            raise ValueError(f"steps[{i}].{kind}: unknown key(s) {bad}; allowed: {sorted(STEP_KEYS[kind])}")
        if quantized:
            raise ValueError(f"steps[{i}]: nothing can follow a quantize step (the int8 model is final)")
        if kind == "prune":
            if pruned:
                raise ValueError(f"steps[{i}]: the model is already pruned by an earlier step; a model is pruned "
                                 "once (use prune.steps for iterative pruning)")
            pruned = True
            if args.get("method", "structured") not in ("unstructured", "global", "structured"):
                raise ValueError(f"steps[{i}].prune.method must be unstructured, global or structured, "
                                 f"got {args.get('method')!r}")
            if "amount" not in args:
                raise ValueError(f"steps[{i}].prune needs 'amount' in (0, 1)")
            from ._common import check_amount

            check_amount(args["amount"], f"steps[{i}].prune.amount")
        if kind == "quantize":
            quantized = True
            if args.get("method") not in ("dynamic", "static", "qat"):
                raise ValueError(f"steps[{i}].quantize.method must be dynamic, static or qat, "
                                 f"got {args.get('method')!r}")
        parsed.append((kind, args))
    data = raw.get("data", "basic-motions")
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError("data must be a data set name or a mapping with 'name'")
    allowed_data = {"name", "val_fraction", "synthetic_windows", "synthetic_length"}
    bad = sorted(set(data) - allowed_data)
    if bad:
        raise ValueError(f"unknown data key(s) {bad}; allowed: {sorted(allowed_data)}")
    splits = ("train", "val", "test")
    for key, default in (("eval_split", "test"), ("calibration_split", "train")):
        if raw.get(key, default) not in splits:
            raise ValueError(f"{key} must be one of {list(splits)}, got {raw.get(key)!r}")
    latency = dict(raw.get("latency") or {})
    bad = sorted(set(latency) - {"batch_sizes", "repeats", "warmup", "threads"})
    if bad:
        raise ValueError(f"unknown latency key(s) {bad}; allowed: batch_sizes, repeats, warmup, threads")
    teacher = raw.get("teacher")
    if teacher is not None:
        teacher = Path(teacher)
        if base_dir is not None and not teacher.is_absolute():
            teacher = base_dir / teacher
    output = raw.get("output")
    if output is not None:
        output = Path(output)
        if base_dir is not None and not output.is_absolute():
            output = base_dir / output
    return {"data": {k: v for k, v in data.items() if k in allowed_data}, "seed": int(raw.get("seed", 0)),
            "eval_split": raw.get("eval_split", "test"), "calibration_split": raw.get("calibration_split", "train"),
            "teacher": teacher, "output": output, "steps": parsed,
            "latency": {"batch_sizes": tuple(latency.get("batch_sizes", (1, 32))),
                        "repeats": int(latency.get("repeats", 50)), "warmup": int(latency.get("warmup", 10)),
                        "threads": latency.get("threads")}}


# ---------------------------------------------------------------------------
# models from checkpoints
# ---------------------------------------------------------------------------
def _model_from_meta(meta: dict, path) -> "object":
    from ..checkpoint import CheckpointError
    from ..distill.models import create_model

    desc = meta.get("model")
    if not isinstance(desc, dict) or "model" not in desc:
        raise CheckpointError(f"{path} has no model description ({{'model': {{'model': name, ...}}}}) in its "
                              "metadata; it was not written by topokd's training loop")
    if desc.get("inputs", "signal") != "signal":
        raise ValueError(f"{path} holds a {desc.get('inputs')!r}-input model; topokd compress handles raw-signal "
                         "models (students and signal teachers)")
    try:
        return create_model(desc["model"], dims=1, num_classes=int(desc["num_classes"]),
                            in_channels=int(desc["in_channels"])), desc
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: incomplete model description {desc} ({err})") from None


def _reshape_to(model, tensors: dict) -> None:
    """Resize Conv/Linear/BatchNorm modules to the shapes stored in ``tensors``
    (structurally pruned checkpoints)."""
    import torch
    from torch import nn

    from .prune import _sync_attributes

    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        w = tensors.get(prefix + "weight")
        if w is None:
            continue
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            if tuple(module.weight.shape) == tuple(w.shape):
                continue
            module.out_channels, module.in_channels = int(w.shape[0]), int(w.shape[1]) * module.groups
            module.weight = nn.Parameter(torch.empty_like(w))
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(w.shape[0]))
        elif isinstance(module, nn.Linear):
            if tuple(module.weight.shape) == tuple(w.shape):
                continue
            module.out_features, module.in_features = int(w.shape[0]), int(w.shape[1])
            module.weight = nn.Parameter(torch.empty_like(w))
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(w.shape[0]))
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = int(w.shape[0])
            if n == module.num_features:
                continue
            module.num_features = n
            module.weight = nn.Parameter(torch.empty(n))
            module.bias = nn.Parameter(torch.empty(n))
            module.running_mean = torch.zeros(n)
            module.running_var = torch.ones(n)
    _sync_attributes(model)


def load_student(path):
    """``(model, metadata)`` of a float topokd checkpoint: a training run's
    ``best.safetensors`` or a ``model.safetensors`` written by ``topokd
    compress`` (structurally pruned layers are resized to the stored shapes)."""
    from ..checkpoint import load_checkpoint
    from ._common import add_history

    tensors, meta = load_checkpoint(path)
    model, _ = _model_from_meta(meta, path)
    _reshape_to(model, tensors)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit {meta['model']['model']} ({str(err).splitlines()[0]})") \
            from None
    for record in meta.get("compression", []) or []:
        add_history(model, record)
    return model.eval(), meta


def load_compressed(path):
    """A model written by ``topokd compress``: ``model.safetensors`` (float)
    or ``model.pt2`` (int8 :class:`~topokd.compress.quantize.QuantizedModel`)."""
    path = Path(path)
    if path.suffix == ".pt2":
        from .quantize import load_quantized

        return load_quantized(path)
    return load_student(path)[0]


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
def _ft_kwargs(opts: dict, skip=()) -> dict:
    keys = ("epochs", "lr", "batch_size", "optimizer", "weight_decay", "kd_weight", "temperature")
    return {k: v for k, v in opts.items() if k in keys and k not in skip}


def _save(model, out_dir: Path, meta: dict, ckpt: Path, cfg: dict) -> Path:
    from .. import __version__
    from ..checkpoint import save_checkpoint
    from ._common import history
    from .quantize import QuantizedModel

    record = {"role": "compressed", "model": meta["model"], "source": str(ckpt), "topokd_version": __version__,
              "classes": meta.get("classes"), "data": meta.get("data")}
    if isinstance(model, QuantizedModel):
        path = out_dir / "model.pt2"
        model.save(path, metadata={**record, "compression": model.info.get("history", [])
                                   + [{"op": "quantize", "method": model.info["method"]}]})
        return path
    path = out_dir / "model.safetensors"
    save_checkpoint(path, dict(model.state_dict()), {**record, "compression": _jsonable(history(model))})
    return path


def _jsonable(records):
    return json.loads(json.dumps(records, default=str))


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------
def _ratio(a, b, smaller_is_better: bool = True) -> str:
    if not a or not b:
        return ""
    r = a / b if smaller_is_better else b / a
    return f"{r:.2f}x"


def markdown_table(before: dict, after: dict, split: str = "test") -> str:
    rows = [("| | before | after | before / after |"), "|---|---:|---:|---:|"]
    d = (after["accuracy"] - before["accuracy"]) * 100
    rows.append(f"| accuracy ({split}) | {before['accuracy']:.4f} | {after['accuracy']:.4f} | {d:+.2f} points |")
    for label, key in (("parameters", "total"), ("non-zero parameters", "nonzero")):
        a, b = before["params"][key], after["params"][key]
        rows.append(f"| {label} | {a:,} | {b:,} | {_ratio(a, b)} |")
    rows.append(f"| size (bytes) | {before['size_bytes']:,} | {after['size_bytes']:,} | "
                f"{_ratio(before['size_bytes'], after['size_bytes'])} |")
    rows.append(f"| tensor bytes | {before['tensor_bytes']:,} | {after['tensor_bytes']:,} | "
                f"{_ratio(before['tensor_bytes'], after['tensor_bytes'])} |")
    rows.append(f"| MACs (batch 1) | {before['macs']:,} | {after['macs']:,} | "
                f"{_ratio(before['macs'], after['macs'])} |")
    for bs, lb in before["latency"].items():
        la = after["latency"].get(bs)
        if la is None:
            continue
        rows.append(f"| latency batch {bs} (ms, median ± IQR) | {lb['median_ms']:.3f} ± {lb['iqr_ms']:.3f} | "
                    f"{la['median_ms']:.3f} ± {la['iqr_ms']:.3f} | {_ratio(lb['median_ms'], la['median_ms'])} |")
    mb, ma = before.get("memory", {}).get("peak_bytes"), after.get("memory", {}).get("peak_bytes")
    if mb is not None and ma is not None:
        rows.append(f"| peak forward memory (bytes, batch {before['memory']['batch_size']}) | {mb:,} | {ma:,} | "
                    f"{_ratio(mb, ma)} |")
    return "\n".join(rows) + "\n"


def markdown_report(report: dict) -> str:
    b, a = report["before"], report["after"]
    lines = [f"# topokd compress: {report['model'].get('model')}", "",
             f"- checkpoint: `{report['checkpoint']}`", f"- config: `{report['config']}`",
             f"- data: {report['data']} (accuracy on the {report['eval_split']} split)",
             f"- output: `{report['output_model']}` ({report['output_bytes']:,} bytes with its metadata; "
             f"{report['output_format']})",
             f"- before: {b['format']}", "", "## Steps", ""]
    for i, step in enumerate(report["steps"], 1):
        opts = ", ".join(f"{k}={v}" for k, v in step.items() if k not in ("step", "accuracy"))
        lines.append(f"{i}. {step['step']} ({opts}): accuracy {step['accuracy']:.4f}")
    threads = next(iter(b["latency"].values()))["threads"]
    lines += ["", "## Before / after", "", markdown_table(b, a, report["eval_split"]),
              f"Latency: CPU, {threads} thread(s), median and interquartile range of "
              f"{next(iter(b['latency'].values()))['repeats']} forwards after warm-up. MACs: FlopCounterMode "
              "(conv/linear, 1 multiply-add = 2 FLOPs). Size: the serialized file (safetensors for float, "
              "torch.export .pt2 for int8); tensor bytes: the tensor data in it.", ""]
    return "\n".join(lines)
