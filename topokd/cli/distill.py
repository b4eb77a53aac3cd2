"""``topokd train-teacher | distill | run CONFIG``."""

from __future__ import annotations

import argparse
import json


def add_parsers(sub) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    for name, help_text in (("train-teacher", "train the teachers of a YAML config"),
                            ("distill", "distil the config's student from its trained teachers"),
                            ("run", "train the teachers, then distil the student")):
        p = sub.add_parser(name, help=help_text, formatter_class=fmt,
                           description=f"{help_text[0].upper()}{help_text[1:]}. See configs/ for examples; "
                                       "outputs go under the config's 'output' directory.")
        p.add_argument("config", help="YAML experiment config")
        if name == "train-teacher":
            p.add_argument("--teacher", action="append", help="train only this teacher (repeatable)")
        p.add_argument("--resume", action="store_true", help="continue from train-state.safetensors")
        p.add_argument("--device", help="override the config's device (cuda, cpu)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="override a config value (YAML syntax; repeatable), e.g. --set student.train.epochs=5")
        p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from ..distill.config import load_config
    from ..distill.experiment import distill, prepare_data, run as run_all, train_teacher

    cfg = load_config(args.config, overrides=args.overrides)
    for settings in [t.train for t in cfg.teachers.values()] + ([cfg.student.train] if cfg.student else []):
        if args.device:
            settings.device = args.device
        if args.quiet:
            settings.progress = False
    if args.command == "train-teacher":
        names = args.teacher or list(cfg.teachers)
        if not names:
            raise ValueError(f"{args.config} defines no teachers")
        splits = prepare_data(cfg)
        results = {n: train_teacher(cfg, n, splits, resume=args.resume) for n in names}
    elif args.command == "distill":
        results = {"student": distill(cfg, resume=args.resume)}
    else:
        results = run_all(cfg, resume=args.resume)
    flat = {}
    for key, value in results.items():
        if key == "teachers":
            flat.update({f"teacher {k}": v for k, v in value.items()})
        else:
            flat[key if key == "student" else f"teacher {key}"] = value
    for key, summary in flat.items():
        print(f"{key}: best epoch {summary['best_epoch']}, val acc {summary['best_val_acc']:.3f}, "
              f"test acc {summary['test_acc']:.3f}")
    print(json.dumps({"output": str(cfg.output)}))
    return 0
