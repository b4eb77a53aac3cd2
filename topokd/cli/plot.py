"""``topokd plot RUN_DIR``: draw every figure a run folder supports.

The parser imports neither matplotlib nor torch; :func:`run` loads
:mod:`topokd.plot`.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plot", help="draw every figure a run folder supports (PNG and SVG)",
        description="Draw the figures a run folder supports: training curves of every trained model, "
                    "the accuracy comparison of a distillation run, the before/after chart of a "
                    "compression run, persistence images of a PI output file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", help="a run folder (topokd run / train-teacher / distill / compress / demo output)")
    p.add_argument("-o", "--output", help="folder for the figures (default: RUN_DIR/figures)")
    p.add_argument("--format", action="append", choices=("png", "svg"), dest="formats",
                   help="image format (repeatable; default: png and svg)")
    p.add_argument("--force", action="store_true", help="overwrite existing figures")


def run(args) -> int:
    from ..plot import plot_run

    paths = plot_run(args.run_dir, args.output, formats=tuple(args.formats or ("png", "svg")), overwrite=args.force)
    for path in paths:
        print(path)
    return 0
