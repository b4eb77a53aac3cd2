"""``topokd`` command line: persistence images from array files, presets, demo."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .. import __version__
from ..tda.pipeline import MODES, SCALES, ImagePersistenceImages, SignalPersistenceImages
from ..tda.presets import PRESETS, list_presets

EPILOG = """examples:
  topokd pi windows.npy -o pis.npz --kind signal
  topokd pi windows.npz --key X -o pis.npz --kind signal --preset tda-kd-signal
  topokd pi cifar.npy -o pis.npz --kind image --channels-last --preset pinet-image
  topokd pi cifar.npy -o pis.npz --kind image --channels-last --mode cubical --resolution 32
  topokd pi windows.npy -o pis.zarr --kind signal --scheduler local:2
  topokd pi windows.npy -o /shared/pis.zarr --kind signal --scheduler tcp://head:8786
  topokd presets
  topokd pinet train --data basic-motions:train -o bm.safetensors --optimizer adamw
  topokd compress runs/x/student/best.safetensors compress.yaml -o runs/x/compressed
"""


def _range(text: str):
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. 0,1), got {text!r}") from None
    return lo, hi


def _none_or(choices):
    def parse(text: str):
        if text.lower() == "none":
            return None
        if text not in choices:
            raise argparse.ArgumentTypeError(f"expected one of {[c for c in choices if c] + ['none']}, got {text!r}")
        return text
    return parse


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default once: appended as ``(default: X)`` unless
    the help text already says its default, and never for defaults that say
    nothing (``None``, ``False``, suppressed)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or "%(default)" in text:
            return text
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS or default == []
                or not action.option_strings or action.nargs == 0):
            return text
        return f"{text} (default: %(default)s)"


class RawHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """:class:`HelpFormatter` that keeps the description and epilog as written (examples)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="topokd",
        description="Exact sublevel-set persistence diagrams and persistence images, fast.",
        epilog=EPILOG,
        formatter_class=RawHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"topokd {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the Python traceback instead of one line (any position)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    pi = sub.add_parser(
        "pi", help="persistence images of signal windows or image channels",
        description=(
            "Compute per-channel persistence images of an array file and stream them to an .npz "
            "(array 'pis' plus JSON 'meta') or a chunked Zarr store (.zarr: array 'pis', parameters in "
            "its attributes, resumable).  Signals are (N, T, C), images (N, C, H, W); "
            "the input is read in chunks (memory-mapped .npy, or streamed .npz member), so "
            "inputs larger than memory work.  A .zarr output that a stopped run left incomplete is "
            "resumed by the same command (only the missing chunks are computed); --scheduler runs it "
            "on Dask (a LocalCluster or the workers of a dask.distributed scheduler)."
        ),
        formatter_class=HelpFormatter,
    )
    pi.add_argument("input", help="input .npy or .npz file")
    pi.add_argument("-o", "--output", required=True,
                    help="output .npz file, or .zarr store (chunked, resumable; needs the 'distributed' extra)")
    pi.add_argument("--kind", choices=("signal", "image"), required=True, help="what the input holds")
    pi.add_argument("--key", help="array to read from an .npz input (default: its only array)")
    pi.add_argument("--mode", choices=MODES, default="flatten",
                    help="image mode: H0 of the flattened channel, or cubical H0+H1")
    pi.add_argument("--preset", choices=sorted(PRESETS), help="parameter set (default: standard-signal / standard-image)")
    layout = pi.add_mutually_exclusive_group()
    layout.add_argument("--channels-first", action="store_true", help="signals are stored (N, C, T)")
    layout.add_argument("--channels-last", action="store_true", help="images are stored (N, H, W, C)")
    grp = pi.add_argument_group("overrides of the preset (omit to keep the preset's value)",
                                argument_default=argparse.SUPPRESS)
    grp.add_argument("--resolution", type=int, help="pixels per image axis")
    grp.add_argument("--birth-range", type=_range, metavar="LOW,HIGH",
                     help="birth axis of the image; without --scale, images must lie in it")
    grp.add_argument("--pers-range", type=_range, metavar="LOW,HIGH", help="persistence axis of the image")
    grp.add_argument("--sigma", type=float, help="Gaussian standard deviation (not persim's variance)")
    grp.add_argument("--weight", choices=("linear", "linear_max"),
                     help="weight of each pair: its persistence, or persistence / the diagram's largest")
    grp.add_argument("--normalize", type=_none_or(("max",)), metavar="{max,none}",
                     help="divide each image by its maximum, or not")
    grp.add_argument("--layout", choices=("persim", "legacy"),
                     help="image grid: persim's (birth x persistence) or the legacy PersImage one")
    grp.add_argument("--min-persistence", type=float, help="drop pairs with persistence at most this")
    grp.add_argument("--keep-essential", action="store_true", help="keep the infinite H0 bar as (min, max)")
    grp.add_argument("--scale", type=_none_or(SCALES), metavar="{standardize,minmax,unit,none}",
                     help="rescale each (sample, channel) first: z-score, to [-1, 1], to [0, 1], or not")
    grp.add_argument("--order", choices=("row", "column"), help="flatten order for images")
    run = pi.add_argument_group("run")
    run.add_argument("--chunk-size", type=int, default=512, help="samples per chunk")
    run.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="dtype of the output PIs")
    run.add_argument("--compress", action="store_true", help="deflate the output archive")
    run.add_argument("--force", action="store_true",
                     help="overwrite OUTPUT if it exists (a .zarr store made with the same parameters and input "
                          "is resumed without it; a complete or different one needs it)")
    run.add_argument("--scheduler", metavar="ADDRESS|local[:N]",
                     help="compute on Dask (.zarr output only): the workers of the dask.distributed scheduler "
                          "at ADDRESS (e.g. tcp://host:8786; INPUT and OUTPUT must be at the same paths on "
                          "every worker), or local[:N], a LocalCluster of N worker processes (default 2)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    sub.add_parser("presets", help="list the parameter presets and where they come from",
                   description="List topokd's named parameter presets, the publication or rule each follows "
                               "and its parameters.", formatter_class=HelpFormatter)

    # The sub-commands' parsers import no torch: their heavy modules load in run().
    from . import compress, demo, distill, pinet, plot

    pinet.add_parser(sub)
    distill.add_parsers(sub)
    compress.add_parser(sub)
    plot.add_parser(sub)
    demo.add_parser(sub)

    for command in sub.choices.values():  # one default per option, never "(default: None)"
        if command.formatter_class is argparse.ArgumentDefaultsHelpFormatter:
            command.formatter_class = HelpFormatter
    return parser


_OVERRIDES = ("resolution", "birth_range", "pers_range", "sigma", "weight", "normalize", "layout",
              "min_persistence", "keep_essential", "scale", "order")


def _overrides(args) -> dict:
    # Override options default to SUPPRESS: present in ``args`` only when given,
    # so an explicit "none" (None) still overrides the preset.
    return {k: v for k, v in vars(args).items() if k in _OVERRIDES}


def _run_pi(args) -> int:
    from ..io import NpzChunkWriter, open_array

    params = _overrides(args)
    if args.kind == "signal":
        if "order" in vars(args):
            raise ValueError("--order applies to images only")
        transformer = SignalPersistenceImages(args.preset, **params).fit()  # validate before reading input
    else:
        if args.channels_first:
            raise ValueError("--channels-first applies to signals; images are (N, C, H, W) or use --channels-last")
        transformer = ImagePersistenceImages(args.mode, args.preset, **params).fit()
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be >= 1, got {args.chunk_size}")

    out = Path(args.output)
    if out.suffix.lower() == ".zarr":
        return _run_pi_zarr(args, transformer, out)
    if args.scheduler is not None:
        raise ValueError("--scheduler needs a .zarr output (a chunked store the workers write and a stopped run "
                         "resumes); use -o OUT.zarr, or drop --scheduler for an .npz")
    if out.exists() and not args.force:  # before reading anything
        raise FileExistsError(f"{out} already exists; pass --force to replace it")
    source = open_array(args.input, args.key)
    try:
        shape = _check_pi_input(source, args)
        if args.kind == "signal":
            n, c = shape[0], (shape[1] if args.channels_first else shape[2])
            out_shape = (n, c, *transformer.image_shape)
        else:
            n, c = shape[0], (shape[3] if args.channels_last else shape[1])
            extra = (2,) if args.mode == "cubical" else ()
            out_shape = (n, c, *extra, *transformer.image_shape)
        from tqdm import tqdm

        started = time.perf_counter()
        with NpzChunkWriter(args.output, "pis", out_shape, args.dtype, overwrite=args.force,
                            compress=args.compress) as writer, \
                tqdm(total=n, unit="sample", disable=args.quiet, file=sys.stderr) as bar:
            for lo in range(0, n, args.chunk_size):
                hi = min(lo + args.chunk_size, n)
                block = source[lo:hi]
                if args.channels_first:
                    block = np.swapaxes(block, 1, 2)
                elif args.channels_last:
                    block = np.moveaxis(block, 3, 1)
                writer.write(transformer.transform(block, dtype=args.dtype, index_offset=lo))
                bar.update(hi - lo)
            elapsed = time.perf_counter() - started
            meta = {
                "topokd_version": __version__,
                "kind": args.kind,
                "mode": args.mode if args.kind == "image" else None,
                "preset": args.preset,
                "params": _jsonable(transformer.config_),
                "input": str(args.input),
                "input_shape": list(shape),
                "layout": "(N, C, 2, R, R)" if out_shape[2:3] == (2,) and len(out_shape) == 5 else "(N, C, R, R)",
                "seconds": round(elapsed, 3),
            }
            path = writer.commit(meta)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    print(f"wrote {path}: pis {out_shape} {args.dtype} in {elapsed:.2f} s ({n / max(elapsed, 1e-9):.0f} samples/s)")
    return 0


def _check_pi_input(source, args) -> tuple[int, ...]:
    """The input's shape, after the checks of ``topokd pi`` that need no data:
    the number of dimensions for ``--kind``, then dtype and emptiness up
    front (an empty input never reaches the transformer, which refuses it,
    so it would give an empty output)."""
    from .._validation import check_layout

    shape = tuple(source.shape)
    expected = 3 if args.kind == "signal" else 4
    if len(shape) != expected:
        raise ValueError(f"{args.input} holds an array of shape {shape}; --kind {args.kind} needs {expected} dimensions")
    axes = "(N, T, C)" if args.kind == "signal" else "(N, C, H, W)"
    try:
        check_layout(source, "X", expected, axes)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{args.input}: {err}") from None
    return shape


def _parse_scheduler(text: str) -> tuple[str, int | str]:
    """``("local", N)`` for ``local`` / ``local:N``, else ``("address", text)``."""
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2] or "2"
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--scheduler local:N needs a whole number of workers N >= 1, got {text!r}")
        return "local", int(count)
    if not text.strip():
        raise ValueError("--scheduler needs an address (e.g. tcp://host:8786) or local[:N]")
    return "address", text


def _dask_client(spec: tuple[str, int | str]):
    """A ``dask.distributed.Client`` (a context manager) for ``spec``: a new
    LocalCluster of worker processes, one thread each (numba's threads split
    the cores between them), or the scheduler at an address."""
    import contextlib
    import logging
    import os

    try:
        import distributed
    except ImportError:
        raise ImportError("--scheduler needs dask.distributed: pip install 'topokd[distributed]'") from None
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # no log lines: errors are one line
    kind, value = spec
    stack = contextlib.ExitStack()
    if kind == "local":
        threads = max(1, (os.cpu_count() or 1) // int(value))
        cluster = stack.enter_context(distributed.LocalCluster(
            n_workers=int(value), threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.CRITICAL, env={"NUMBA_NUM_THREADS": str(threads)}))
        stack.enter_context(distributed.Client(cluster))
        return stack
    try:
        client = distributed.Client(value, timeout="10s")
    except (OSError, TimeoutError) as err:
        stack.close()
        raise OSError(f"cannot reach the dask scheduler at {value}: {one_line(err)}") from None
    stack.enter_context(client)
    return stack


class _MovedAxes:
    """Rows of ``source`` with their channel axis moved into topokd's layout
    ((N, C, T) -> (N, T, C), or (N, H, W, C) -> (N, C, H, W)), block by block."""

    def __init__(self, source, channels_first: bool):
        self.source, self.channels_first = source, channels_first
        s = tuple(source.shape)
        self.shape = (s[0], s[2], s[1]) if channels_first else (s[0], s[3], s[1], s[2])
        self.dtype, self.ndim, self.size = source.dtype, source.ndim, source.size

    def __getitem__(self, item):
        block = self.source[item]
        return np.ascontiguousarray(np.swapaxes(block, 1, 2) if self.channels_first else np.moveaxis(block, 3, 1))


def _run_pi_zarr(args, transformer, out: Path) -> int:
    """``topokd pi ... -o OUT.zarr``: a resumable chunked store (see
    :func:`topokd.tda.distributed.write_pis_zarr`), on Dask with --scheduler."""
    from ..io import ArrayRows
    from ..tda import distributed as dz

    spec = _parse_scheduler(args.scheduler) if args.scheduler is not None else None
    attrs = None if args.force else dz.store_attrs(out)  # before reading anything
    if attrs is not None and attrs.get("complete"):
        raise FileExistsError(f"{out} is already complete; pass --force to compute it again")
    source = ArrayRows(args.input, args.key)
    try:
        shape = _check_pi_input(source, args)
        X = _MovedAxes(source, args.channels_first) if (args.channels_first or args.channels_last) else source
        transformer.output_shape(X)  # layout errors before any work
        from tqdm import tqdm

        params = {k: v for k, v in transformer.get_params().items() if k not in ("preset", "mode")}
        kwargs = dict(kind=args.kind, mode=args.mode, preset=args.preset, chunk_size=args.chunk_size,
                      dtype=args.dtype, overwrite=args.force,
                      extra_attrs={"input": str(args.input), "key": source.key}, **params)
        computed = [0]
        started = time.perf_counter()
        with tqdm(total=shape[0], unit="sample", disable=args.quiet, file=sys.stderr) as bar:
            def tick(samples: int) -> None:
                computed[0] += samples
                bar.update(samples)

            kwargs["on_chunk"] = tick
            if spec is None:
                result = dz.write_pis_zarr(X, out, **kwargs)
            else:
                with _dask_client(spec):
                    import dask.array as da

                    lazy = da.from_array(source, chunks=(args.chunk_size, *shape[1:]), lock=False,
                                         meta=np.empty((0,) * len(shape), source.dtype))
                    if args.channels_first:
                        lazy = da.swapaxes(lazy, 1, 2)
                    elif args.channels_last:
                        lazy = da.moveaxis(lazy, 3, 1)
                    result = dz.write_pis_zarr(lazy, out, **kwargs)
        elapsed = time.perf_counter() - started
    finally:
        source.close()
    kept = f", {result.kept} kept from an earlier run" if result.kept else ""
    print(f"wrote {out}: pis {result.shape} {args.dtype}, {result.computed} of {result.n_chunks} chunks computed"
          f"{kept} in {elapsed:.2f} s ({computed[0] / max(elapsed, 1e-9):.0f} samples/s)")
    return 0


def _jsonable(config: dict) -> dict:
    return {k: (v if not callable(v) else getattr(v, "__name__", repr(v))) for k, v in config.items()}


#: Exceptions whose message is the whole story (bad input, files, config,
#: missing extras): printed as ``topokd: error: <message>``.  Anything else
#: also names its type and points to ``--debug``.
EXPECTED_ERRORS = (ValueError, TypeError, OSError, ImportError, LookupError, FloatingPointError)

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def one_line(text: str) -> str:
    """A message on one line: its non-blank lines joined by ``; ``."""
    lines = [line.strip() for line in str(text).splitlines()]
    return "; ".join(line for line in lines if line and set(line) != {"^"})


def error_line(err: BaseException) -> str:
    """``topokd: error: ...`` for ``err`` (see :data:`EXPECTED_ERRORS`)."""
    message = one_line(err) or type(err).__name__
    if isinstance(err, EXPECTED_ERRORS):
        if isinstance(err, OSError) and err.filename is not None and err.strerror:
            message = f"{err.filename}: {err.strerror}"  # not "[Errno 2] ..."
        return f"topokd: error: {message}"
    return f"topokd: error: {type(err).__name__}: {message} (run with --debug for the traceback)"


def _split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``--debug`` is global: accepted anywhere before a ``--``."""
    head, sep, tail = (argv[:argv.index("--")], ["--"], argv[argv.index("--") + 1:]) if "--" in argv \
        else (argv, [], [])
    debug = "--debug" in head
    return [a for a in head if a != "--debug"] + sep + tail, debug


class _Notices:
    """Warnings during a command: topokd's own as one ``topokd: notice: ...``
    line each (repeats dropped), third-party ones hidden (no noise on the
    terminal); with ``--debug`` everything in Python's usual format."""

    def __init__(self, debug: bool):
        self.debug = debug
        self.seen: set[str] = set()

    def __call__(self, message, category, filename, lineno, file=None, line=None):
        if self.debug:
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
            return
        if not str(filename).startswith(_PACKAGE_DIR):
            return
        text = one_line(message)
        if text not in self.seen:
            self.seen.add(text)
            print(f"topokd: notice: {text}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    """Run ``topokd`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    The contract of every command: success is 0; any failure is one line
    ``topokd: error: ...`` on stderr and exit 1 (no traceback unless
    ``--debug``); Ctrl-C is ``topokd: interrupted`` and exit 130, with no
    partial output (every file is written to a temporary file and renamed
    when complete); command-line usage errors are argparse's, exit 2.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    args_list, debug = _split_debug(args_list)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _Notices(debug)
            return _main(args_list)
    except KeyboardInterrupt:
        if debug:
            raise
        _flush_quietly()
        print("topokd: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        _flush_quietly()
        print(error_line(err), file=sys.stderr)
        return 1
    finally:
        if argv is None:
            # Run as the program itself (the ``topokd`` console script, ``python -m
            # topokd.cli``): the process exits next.  Freezing what is alive lets the
            # interpreter's shutdown skip its garbage collections over numba's large
            # object graphs (~0.13 s of exit after ``topokd pi``, measured by
            # benchmarks/bench_cli.py).  Not done for an explicit ``argv`` (tests,
            # callers that keep running).
            gc.freeze()


#: Commands that train through the engine and run under ``torchrun`` (docs/scale-out.md).
TORCHRUN_COMMANDS = ("train-teacher", "distill", "run", "pinet train")


def _check_torchrun(args) -> None:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1), refuse the commands that do
    not train data-parallel: each process would do all the work and write
    the same outputs."""
    import os

    if os.environ.get("WORLD_SIZE", "1") in ("", "1"):
        return
    command = args.command + (f" {args.pinet_command}" if args.command == "pinet" else "")
    if command not in TORCHRUN_COMMANDS:
        raise ValueError(f"topokd {command} does not run under torchrun (WORLD_SIZE="
                         f"{os.environ['WORLD_SIZE']}); only {', '.join(TORCHRUN_COMMANDS)} train data-parallel "
                         "-- run it as one process")


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def _main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _check_torchrun(args)
    if args.command == "pi":
        return _run_pi(args)
    if args.command in ("demo", "plot"):
        import importlib

        return importlib.import_module(f".{args.command}", __name__).run(args)
    if args.command in ("train-teacher", "distill", "run"):
        from .distill import run as run_distill

        return run_distill(args)
    if args.command == "compress":
        from .compress import run as run_compress

        return run_compress(args)
    if args.command == "pinet":
        from .pinet import run as run_pinet

        return run_pinet(args)
    if args.command == "presets":
        for name, source in list_presets().items():
            print(f"{name}\n    {source}\n    parameters: {json.dumps(_jsonable(PRESETS[name].params))}\n")
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
