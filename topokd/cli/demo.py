"""``topokd demo``: the whole pipeline on real wearable data, with a report."""

from __future__ import annotations

import argparse
import time

import numpy as np

from .. import __version__


def add_parser(sub) -> None:
    demo = sub.add_parser(
        "demo", help="persistence images of a built-in synthetic wearable data set",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("-o", "--output", default="demo_pis.npz", help="where to save the images")
    demo.add_argument("--windows", type=int, default=512)
    demo.add_argument("--length", type=int, default=500)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")


def run(args) -> int:
    from ..data import ACTIVITIES, wearable_windows
    from ..io import NpzChunkWriter
    from ..tda import SignalPersistenceImages, sublevel_diagrams
    from . import _jsonable

    X, y = wearable_windows(args.windows, args.length, 3, seed=args.seed)
    transformer = SignalPersistenceImages()  # the "standard-signal" preset
    transformer.transform(X[:2])  # compile the kernels before timing
    started = time.perf_counter()
    pis = transformer.transform(X)
    elapsed = time.perf_counter() - started
    names = list(ACTIVITIES)
    print(f"topokd {__version__} demo: {len(X)} synthetic accelerometer windows, {args.length} samples x 3 axes")
    print(f"preset standard-signal -> persistence images {pis.shape} float32 in {elapsed:.3f} s "
          f"({len(X) * 3 / max(elapsed, 1e-9):.0f} channel-windows/s)")
    print(f"{'activity':<10}{'windows':>8}{'H0 pairs/axis':>15}{'PI mass':>10}")
    for label, name in enumerate(names):
        sel = np.flatnonzero(y == label)
        if len(sel) == 0:
            continue
        pairs = np.mean([len(sublevel_diagrams((X[i, :, 0] - X[i, :, 0].mean()) / X[i, :, 0].std()))
                         for i in sel[:20]])
        print(f"{name:<10}{len(sel):>8}{pairs:>15.1f}{pis[sel].sum(axis=(2, 3)).mean():>10.2f}")
    meta = {"topokd_version": __version__, "preset": "standard-signal", "params": _jsonable(transformer.config_),
            "source": f"topokd.data.wearable_windows({args.windows}, {args.length}, 3, seed={args.seed})",
            "activities": names}
    with NpzChunkWriter(args.output, "pis", pis.shape, pis.dtype, overwrite=args.force) as writer:
        writer.write(pis)
        path = writer.commit(meta)
    print(f"saved {path} (arrays 'pis' and 'meta'; load with np.load)")
    return 0


