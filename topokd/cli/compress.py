"""``topokd compress CHECKPOINT CONFIG``: prune / fine-tune / quantise a
student checkpoint and report before/after.

A thin layer over :func:`topokd.compress.pipeline.compress_checkpoint`
(config schema: :mod:`topokd.compress.config`).  Importing this module
loads neither torch nor :mod:`topokd.compress`: they load in :func:`run`.
"""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    from . import HelpFormatter

    p = sub.add_parser(
        "compress", help="prune / fine-tune / quantise a student checkpoint, with a before/after report",
        description="Apply the config's steps (prune, finetune, quantize) to a student checkpoint and write "
                    "the compressed model plus a Markdown/JSON before/after table (accuracy, parameters, "
                    "non-zeros, size, MACs, latency). The config is checked completely before anything runs.",
        formatter_class=HelpFormatter)
    p.add_argument("checkpoint", help="student checkpoint (best.safetensors of a distill/train run)")
    p.add_argument("config", help="YAML compression config (steps, data)")
    p.add_argument("-o", "--output", help="output directory (default: config 'output' or <checkpoint>-compressed)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value (YAML syntax; repeatable), e.g. --set steps[0].prune.amount=0.3 "
                        "--set latency.repeats=10")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args) -> int:
    from ..compress.config import load_config

    cfg = load_config(args.config, overrides=args.overrides)  # every config error before any work
    from ..compress.pipeline import compress_checkpoint
    from ..compress.report import markdown_table

    def say(text: str) -> None:
        print(text, flush=True)

    report = compress_checkpoint(args.checkpoint, cfg, args.output, force=args.force,
                                 log=None if args.quiet else say, config_source=str(args.config))
    if not args.quiet:
        print(markdown_table(report["before"], report["after"], report["eval_split"]))
    print(json.dumps({"output": report["output_dir"], "model": report["output_model"]}))
    return 0
