"""``topokd compress CHECKPOINT CONFIG``: prune / fine-tune / quantise a
student checkpoint and report before/after (see :mod:`topokd.compress.cli`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compress", help="prune / fine-tune / quantise a student checkpoint, with a before/after report",
        description="Apply the config's steps (prune, finetune, quantize) to a student checkpoint and write "
                    "the compressed model plus a Markdown/JSON before/after table (accuracy, parameters, "
                    "non-zeros, size, MACs, latency).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", help="student checkpoint (best.safetensors of a distill/train run)")
    p.add_argument("config", help="YAML compression config (steps, data)")
    p.add_argument("-o", "--output", help="output directory (default: config 'output' or <checkpoint>-compressed)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress messages")


def _say(args, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def run(args) -> int:
    import torch

    from ..compress.cli import OUTPUT_NAMES, _ft_kwargs, _save, load_config, load_student, markdown_report, markdown_table

    from ..distill.data import load_splits
    from ..distill.models import signals_to_tensor
    from ..distill.trainer import evaluate
    from ..compress.profile import profile
    from ..compress.prune import finalize, iterative_prune, kd_finetune, make_fine_tune, pruned_tensors
    from ..compress.quantize import QuantizedModel, convert_qat, prepare_qat, quantize_dynamic, quantize_static

    cfg = load_config(args.config)
    ckpt = Path(args.checkpoint)
    out_dir = Path(args.output) if args.output else (cfg["output"] or ckpt.parent / f"{ckpt.stem}-compressed")
    existing = [out_dir / n for n in OUTPUT_NAMES if (out_dir / n).exists()]
    if existing and not args.force:
        raise FileExistsError(f"{existing[0]} already exists; pass --force to overwrite the outputs in {out_dir}")
    model, meta = load_student(ckpt)
    teacher = load_student(cfg["teacher"])[0] if cfg["teacher"] is not None else None
    torch.manual_seed(cfg["seed"])
    _say(args, f"loading data {cfg['data']['name']} ...")
    splits = load_splits(cfg["data"]["name"], seed=cfg["seed"], with_pis=False,
                         **{k: v for k, v in cfg["data"].items() if k != "name"})
    if splits.train.signals.shape[2] != model.in_channels:
        raise ValueError(f"the checkpoint's model takes {model.in_channels} channels but {cfg['data']['name']} "
                         f"has {splits.train.signals.shape[2]}")
    X = signals_to_tensor(splits.train.signals)
    y = torch.from_numpy(splits.train.labels)
    calib = signals_to_tensor(getattr(splits, cfg["calibration_split"]).signals)
    eval_split = getattr(splits, cfg["eval_split"])
    example = X[:1]
    lat = cfg["latency"]

    def acc(m) -> float:
        return float(evaluate(m, "signal", eval_split, "cpu")["acc"])

    def measure(m) -> dict:
        return profile(m, example, batch_sizes=lat["batch_sizes"], repeats=lat["repeats"], warmup=lat["warmup"],
                       threads=lat["threads"])

    _say(args, f"measuring the original {meta['model']['model']} ...")
    before = {"accuracy": acc(model), **measure(model)}
    current, log = model, []
    for kind, opts in cfg["steps"]:
        if kind == "prune":
            method, amount = opts.get("method", "structured"), float(opts["amount"])
            _say(args, f"prune: {method} {amount:.0%}")
            rounds = int(opts.get("steps", 1))
            between = make_fine_tune(X, y, teacher=teacher, seed=cfg["seed"],
                                     epochs=int(opts.get("finetune_epochs", 1))) if rounds > 1 else None
            current = iterative_prune(current, amount, method=method, steps=rounds, fine_tune=between,
                                      schedule=opts.get("schedule", "linear"), example_input=X[:2])
        elif kind == "finetune":
            _say(args, f"finetune: {opts.get('epochs', 3)} epochs" + (" with KD" if teacher is not None else ""))
            kd_finetune(current, X, y, teacher=teacher, seed=cfg["seed"], **_ft_kwargs(opts))
        else:
            method = opts["method"]
            _say(args, f"quantize: {method} int8")
            if pruned_tensors(current):
                current = finalize(current)
            if method == "dynamic":
                current = quantize_dynamic(current, example, reduce_range=opts.get("reduce_range"))
            elif method == "static":
                current = quantize_static(current, calib, example, num_batches=opts.get("calibration_batches"),
                                          batch_size=int(opts.get("batch_size", 32)),
                                          reduce_range=opts.get("reduce_range"))
            else:
                prepared = prepare_qat(current, X[:2], reduce_range=opts.get("reduce_range"))
                kd_finetune(prepared, X, y, teacher=teacher, seed=cfg["seed"],
                            **_ft_kwargs({"epochs": 3, "lr": 1e-4, **opts}, skip=("method", "reduce_range",
                                                                                  "calibration_batches")))
                current = convert_qat(prepared)
        log.append({"step": kind, **opts, "accuracy": acc(current)})
    if not isinstance(current, QuantizedModel) and pruned_tensors(current):
        current = finalize(current)
    _say(args, "measuring the compressed model ...")
    after = {"accuracy": acc(current), **measure(current)}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_NAMES:  # no stale model file of the other kind
        if (out_dir / name).exists():
            (out_dir / name).unlink()
    model_path = _save(current, out_dir, meta, ckpt, cfg)
    report = {"checkpoint": str(ckpt), "config": str(args.config), "model": meta["model"],
              "data": splits.description, "eval_split": cfg["eval_split"], "steps": log,
              "output_model": str(model_path), "output_bytes": model_path.stat().st_size,
              "output_format": after["format"],
              "before": before, "after": after, "torch": torch.__version__}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out_dir / "report.md").write_text(markdown_report(report))
    _say(args, markdown_table(before, after, cfg["eval_split"]))
    print(json.dumps({"output": str(out_dir), "model": str(model_path)}))
    return 0


