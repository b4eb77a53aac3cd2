"""``topokd train-teacher | distill | run CONFIG``."""

from __future__ import annotations

import json


def add_parsers(sub) -> None:
    from . import HelpFormatter

    fmt = HelpFormatter
    for name, help_text in (("train-teacher", "train the teachers of a YAML config"),
                            ("distill", "distil the config's student from its trained teachers"),
                            ("run", "train the teachers, then distil the student")):
        p = sub.add_parser(name, help=help_text, formatter_class=fmt,
                           description=f"{help_text[0].upper()}{help_text[1:]}. See configs/ for examples; "
                                       "outputs go under the config's 'output' directory.")
        p.add_argument("config", help="YAML experiment config")
        if name == "train-teacher":
            p.add_argument("--teacher", action="append", help="train only this teacher (repeatable)")
        runs = p.add_mutually_exclusive_group()
        runs.add_argument("--resume", action="store_true", help="continue an existing run from its training state")
        runs.add_argument("--force", action="store_true",
                          help="delete an existing run of the same stages and start again")
        p.add_argument("--device", help="override the config's device (cuda, cpu; checked before any work)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="override a config value (YAML syntax; repeatable), e.g. --set student.train.epochs=5")
        p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from ..distill.config import load_config
    from ..distill.experiment import (check_run_dirs, distill, prepare_data, results_table, run as run_all,
                                      train_scratch, train_teacher)

    from .._validation import check_device

    if args.device is not None:
        check_device(args.device, "--device")  # one line now, not torch's AssertionError later
    cfg = load_config(args.config, overrides=args.overrides)
    trained = set(getattr(args, "teacher", None) or cfg.teachers) if args.command != "distill" else set()
    stages = [(f"teachers.{n}.train", t.train, n in trained) for n, t in cfg.teachers.items()]
    stages += [("student.train", cfg.student.train, args.command != "train-teacher")] if cfg.student else []
    for where, settings, used in stages:
        if args.device:
            settings.device = args.device
        elif used and settings.device:  # the config's device of a stage that runs, also checked before any work
            try:
                check_device(settings.device, f"{where}.device")
            except ValueError as err:
                raise ValueError(f"{args.config}: {err}") from None
        if args.quiet:
            settings.progress = False
    runs = dict(resume=args.resume, force=args.force)
    if args.command == "train-teacher":
        names = args.teacher or list(cfg.teachers)
        if not names:
            raise ValueError(f"{args.config} defines no teachers")
        unknown = sorted(set(names) - set(cfg.teachers))
        if unknown:
            raise ValueError(f"--teacher {unknown[0]!r} is not a teacher of {args.config}; it has {sorted(cfg.teachers)}")
        check_run_dirs(cfg, names, student=False, **runs)
        splits = prepare_data(cfg)
        results = {"teachers": {n: train_teacher(cfg, n, splits, **runs) for n in names}}
    elif args.command == "distill":
        check_run_dirs(cfg, [], **runs)
        splits = prepare_data(cfg)
        results = {"student": distill(cfg, splits, **runs)}
        if cfg.student is not None and cfg.student.scratch:
            results["scratch"] = train_scratch(cfg, splits, **runs)
    else:
        results = run_all(cfg, **runs)
    from ..engine.distributed import is_main

    if is_main():  # under torchrun: one report, from rank 0
        print(results_table(results))
        print(json.dumps({"output": str(cfg.output)}))
    return 0
