"""``topokd demo``: the whole pipeline on real wearable data, with a report
(:func:`topokd.demo.run_demo`)."""

from __future__ import annotations


def add_parser(sub) -> None:
    from . import HelpFormatter

    demo = sub.add_parser(
        "demo", help="the whole pipeline on real wearable data: PIs, PI-Net, teachers, students, compression",
        formatter_class=HelpFormatter,
        description="Run every layer of topokd on a real data set that ships in a package (offline): exact "
                    "persistence images (checked against gudhi), a small PI-Net, a signal teacher and a PI "
                    "teacher, students from scratch / KD / topological KD over seeds, compression of the "
                    "topological student. Writes report.md (numbers, figures, the command reproducing each "
                    "step), the configs, run folders and figures into OUTPUT. BasicMotions (default) is small "
                    "and saturates at 100 %; --data hapt has headroom. --quick takes about a minute on 2 cores "
                    "with BasicMotions.")
    demo.add_argument("--data", choices=("basic-motions", "hapt"), default="basic-motions",
                      help="aeon's BasicMotions (80 windows) or UCI HAPT (~10,000 windows, 30 subjects)")
    demo.add_argument("--quick", action="store_true", help="fewer epochs and one seed")
    demo.add_argument("-o", "--output", help="output folder (default: topokd-demo-DATA, with -quick for --quick)")
    demo.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    demo.add_argument("--force", action="store_true", help="replace OUTPUT if it holds an earlier demo")
    demo.add_argument("--quiet", action="store_true", help="no progress bars or step lines")


def run(args) -> int:
    from ..demo import run_demo

    output = args.output or f"topokd-demo-{args.data}{'-quick' if args.quick else ''}"
    run_demo(output, data=args.data, quick=args.quick, force=args.force, device=args.device,
             progress=not args.quiet, log=None if args.quiet else print)
    return 0
