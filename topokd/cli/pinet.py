"""``topokd pinet train|predict|evaluate``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

BUILTIN = {
    "basic-motions": "aeon's BasicMotions smartwatch recordings (6 channels, T=100); add :train, :test or :all",
    "hapt": "UCI HAPT smartphone windows (6 channels, T=128, 6 activities; train users 1-21, test 22-30); "
            "add :train, :test or :all",
    "hapt-12": "UCI HAPT with the 6 postural transitions (12 classes); add :train, :test or :all",
    "synthetic": "topokd.data.wearable_windows(1024, 100, 3, seed=0)",
}

EPILOG = """examples:
  topokd pinet train --data basic-motions:train -o bm.safetensors --optimizer adamw --epochs 300
  topokd pinet evaluate bm.safetensors --data basic-motions:test
  topokd pinet predict bm.safetensors windows.npy -o pis.npz
  topokd pinet train --kind image --data cifar.npy --channels-last --preset pinet-image -o img.safetensors
"""


def add_parser(sub) -> None:
    from . import HelpFormatter, RawHelpFormatter

    pinet = sub.add_parser("pinet", help="train, evaluate and serve PI-Net surrogates",
                           description="PI-Net (Som et al., 2020): CNNs that regress persistence images "
                                       "from raw signals or images in one forward pass.",
                           epilog=EPILOG, formatter_class=RawHelpFormatter)
    verbs = pinet.add_subparsers(dest="pinet_command", metavar="VERB")
    fmt = HelpFormatter

    train = verbs.add_parser("train", help="fit a PI-Net to exact PIs (or given targets)", formatter_class=fmt,
                             description="Train a PI-Net on signals or images; the targets are the exact "
                                         "persistence images of the preset (or --targets). Writes the model "
                                         "(safetensors) atomically.")
    _data_args(train, required=True)
    train.add_argument("--kind", choices=("signal", "image"), default="signal",
                       help="signals (N, T, C) or images (N, C, H, W) in the preset's value range (uint8 is "
                            "scaled to [0, 1])")
    train.add_argument("--targets", help=".npy/.npz with (N, C, R, R) target PIs (default: computed exactly)")
    train.add_argument("--preset", help="topokd preset of the target PIs (default: the kind's default)")
    train.add_argument("--resolution", type=int, help="override the preset's resolution")
    train.add_argument("--widths", default="128,256,512,1024", help="filters of the four conv blocks")
    train.add_argument("--head", choices=("relu", "sigmoid"), default="relu", help="output activation")
    train.add_argument("--head-type", choices=("dense", "conv", "lowrank"), default="dense",
                       help="features -> PIs: dense (the reference layer, 15.4 M parameters for 6 channels), conv "
                            "(small convolutional decoder, 3.2 M) or lowrank (rank --head-rank)")
    train.add_argument("--head-rank", type=int, default=64, help="rank of the lowrank head")
    train.add_argument("--optimizer", choices=("reference", "adamw"), default="reference",
                       help="reference: the authors' script (Keras Adam(0.99, eps 0.1), stages of 30/30/40 %% "
                            "of the epochs at lr, lr/10, lr/100 with a fresh optimizer each, raw targets, last "
                            "epoch kept, Keras pooling and Glorot init); adamw: AdamW with cosine decay, best "
                            "validation epoch kept")
    train.add_argument("--epochs", type=int, default=100, help="training epochs")
    train.add_argument("--batch-size", type=int, default=128, help="samples per batch")
    train.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    train.add_argument("--pearson-weight", type=float, default=0.0,
                       help="add this weight x (1 - mean per-image Pearson correlation) to the MSE (default 0: "
                            "MSE only, as the authors)")
    train.add_argument("--val-fraction", type=float, default=0.1,
                       help="held-out share for validation and early stopping")
    train.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    train.add_argument("--augment", metavar="NAME",
                       help="signals: train on augmented windows and their exact PIs computed on the fly, with "
                            f"this label-free augmentation ({', '.join(AUGMENT_NAMES)}; 'surrogate' is made for "
                            "this); default: the PIs of the windows as given")
    train.add_argument("--channel-groups", metavar="GROUPS",
                       help="with --augment: also permute the axes within each group of alike channels, e.g. "
                            "0,1,2/3,4,5 for a tri-axial accelerometer and gyroscope")
    train.add_argument("--samples-per-epoch", type=int,
                       help="training windows per epoch, drawn as repeated seeded permutations (default: one pass)")
    train.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and batches")
    train.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    train.add_argument("--cache-dir", help="cache computed target PIs here")
    train.add_argument("--checkpoint", help="training state written every epoch (for --resume)")
    train.add_argument("--resume", action="store_true", help="continue from --checkpoint (required with it)")
    train.add_argument("-o", "--output", required=True, help="final model (.safetensors)")
    train.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    predict = verbs.add_parser("predict", help="PIs of new data from a trained PI-Net", formatter_class=fmt,
                               description="Persistence images of new data from a trained PI-Net, written "
                                           "atomically to an .npz (arrays 'pis' and 'meta').")
    predict.add_argument("model", help="trained model (.safetensors)")
    _data_args(predict, required=False, positional=True)
    predict.add_argument("-o", "--output", required=True, help="output .npz (arrays 'pis' and 'meta')")
    predict.add_argument("--batch-size", type=int, default=256, help="samples per forward pass")
    predict.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    predict.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = verbs.add_parser("evaluate", help="MSE / Pearson / max-abs error against exact PIs",
                                formatter_class=fmt,
                                description="Compare a trained PI-Net's PIs with the exact ones (computed, or "
                                            "--targets): MSE, mean Pearson correlation, max abs error, as JSON.")
    evaluate.add_argument("model", help="trained model (.safetensors)")
    _data_args(evaluate, required=False, positional=True)
    evaluate.add_argument("--targets", help="(N, C, R, R) exact PIs (default: computed)")
    evaluate.add_argument("--batch-size", type=int, default=256, help="samples per forward pass")
    evaluate.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    evaluate.add_argument("--json", help="also write the scores to this JSON file (atomically)")
    evaluate.add_argument("--force", action="store_true", help="overwrite the --json file if it exists")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")


def _data_args(parser, *, required: bool, positional: bool = False) -> None:
    if positional:
        parser.add_argument("input", nargs="?", help=".npy/.npz input (or use --data)")
    parser.add_argument("--data", required=required and not positional,
                        help=f"input .npy/.npz (signals (N, T, C)) or a built-in data set: {', '.join(BUILTIN)} "
                             "(add :train, :test or :all, e.g. hapt:test; default :train)")
    parser.add_argument("--key", help="array inside an .npz input (required when it holds several)")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--channels-first", action="store_true", help="signals stored (N, C, T)")
    layout.add_argument("--channels-last", action="store_true", help="images stored (N, H, W, C)")


def load_data(spec: str, key: str | None, channels_first: bool = False, channels_last: bool = False) -> np.ndarray:
    """A whole data set as topokd's layout: signals (N, T, C), images (N, C, H, W).

    ``spec`` is a file (``.npy``, or ``.npz`` with ``key``) or a built-in
    set ``NAME[:SPLIT]`` (see ``BUILTIN``; ``SPLIT`` train | test | all,
    default train).
    """
    name, sep, split = spec.partition(":")
    if name in BUILTIN and sep and name != "synthetic" and split not in ("train", "test", "all"):
        raise ValueError(f"--data {spec}: the split after ':' must be train, test or all, got {split!r}")
    if name == "basic-motions":
        from ..data import load_basic_motions

        X, _, _ = load_basic_motions(split or "train")
        return X
    if name in ("hapt", "hapt-12"):
        from ..data import load_hapt

        return load_hapt(split or "train", 12 if name == "hapt-12" else 6).X
    if name == "synthetic":
        from ..data import wearable_windows

        return wearable_windows(1024, 100, 3, seed=0)[0]
    from ..io import open_array

    source = open_array(spec, key)
    try:
        X = np.array(source[0:source.shape[0]])
    finally:
        source.close()
    if channels_first:
        X = np.swapaxes(X, 1, 2)
    elif channels_last:
        X = np.moveaxis(X, -1, 1)
    return X


def _check_output(path, force: bool, option: str, suffix: str) -> None:
    """Refuse an output before any work: not a ``suffix`` file, it exists
    (without --force) or its folder is missing."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise ValueError(f"{option} {path}: must end in {suffix} (e.g. {path.with_suffix(suffix).name})")
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{option} {path}: the folder {path.parent} does not exist; create it first")


def _input(args) -> np.ndarray:
    spec = getattr(args, "input", None) or args.data
    if not spec:
        raise ValueError("give an input file or --data")
    return load_data(spec, args.key, args.channels_first, args.channels_last)


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 4 or min(widths) < 1:
        raise ValueError(f"--widths {text}: expected four positive integers, the filters of the conv blocks "
                         "(e.g. 128,256,512,1024)")
    return widths


def run(args) -> int:
    if args.pinet_command is None:
        raise ValueError("choose a verb: topokd pinet train|predict|evaluate (see --help)")
    spec = getattr(args, "input", None) or args.data
    if args.key is not None and spec and spec.partition(":")[0] in BUILTIN:
        raise ValueError(f"--key applies to .npz inputs, not the built-in data set {spec}; drop --key")
    # Misuse and unwritable outputs are refused before any work (and before torch loads).
    report = Path(args.json) if args.pinet_command == "evaluate" and args.json else None
    if args.pinet_command == "train":
        _check_output(args.output, args.force, "--output", ".safetensors")
        if args.resume and not args.checkpoint:
            raise ValueError("--resume continues from a training state: give it with --checkpoint PATH")
        if args.checkpoint:
            _check_output(args.checkpoint, True, "--checkpoint", ".safetensors")  # rewritten every epoch
        widths = _widths(args.widths)
        if args.head_rank < 1:
            raise ValueError(f"--head-rank {args.head_rank}: the rank of the lowrank head must be >= 1")
        if args.samples_per_epoch is not None and args.samples_per_epoch < 1:
            raise ValueError(f"--samples-per-epoch {args.samples_per_epoch}: must be >= 1")
        groups = _augment_args(args)
    elif args.pinet_command == "predict":
        _check_output(args.output, args.force, "--output", ".npz")
    if report is not None:
        _check_output(report, args.force, "--json", ".json")
    if args.device is not None:
        from .._validation import check_device

        check_device(args.device, "--device")  # one line now, not torch's AssertionError later
    from ..pinet import PINet

    if args.pinet_command == "train":
        out = Path(args.output)
        X = _input(args)
        if groups and max(c for g in groups for c in g) >= X.shape[-1]:
            raise ValueError(f"--channel-groups {args.channel_groups!r} names a channel the data does not have "
                             f"({X.shape[-1]} channels, shape {X.shape})")
        Y = load_data(args.targets, None) if args.targets else None
        pi_params = {"resolution": args.resolution} if args.resolution else {}
        est = PINet(args.kind, preset=args.preset, pi_params=pi_params, widths=widths, head=args.head,
                    head_type=args.head_type, head_rank=args.head_rank, augment=_augmentation(args, groups),
                    samples_per_epoch=args.samples_per_epoch,
                    optimizer=args.optimizer, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    pearson_weight=args.pearson_weight, val_fraction=args.val_fraction, patience=args.patience,
                    device=args.device, seed=args.seed,
                    cache_dir=args.cache_dir, checkpoint=args.checkpoint, progress=not args.quiet)
        started = time.perf_counter()
        est.fit(X, Y, resume=args.resume)
        from ..engine.distributed import is_main, on_main

        on_main(est.save, out, overwrite=args.force)  # under torchrun: rank 0 saves, the others wait
        if not is_main():
            return 0
        last = est.history_[-1] if est.history_ else {}
        split = "val" if "val_mse" in last else "train"
        if args.optimizer == "reference":  # the last epoch is kept
            kept = f"last {split} MSE {last.get('val_mse', last.get('train_mse', float('nan'))):.4g}"
        else:
            best = est.best_record_
            kept = f"best {split} MSE {best.get(f'{split}_mse', float('nan')) * est.target_scale_ ** 2:.4g}"
            if "val_pearson" in best:
                kept += f", Pearson {best['val_pearson']:.3f}"
        print(f"trained {est.model_config_['name']} on {X.shape} in {time.perf_counter() - started:.1f} s "
              f"({len(est.history_)} epochs, {kept}) -> {out}")
        return 0
    est = PINet.load(args.model, device=args.device, progress=not args.quiet)
    X = _input(args)
    if args.pinet_command == "predict":
        from .. import __version__
        from ..io import NpzChunkWriter

        pis = est.predict(X, batch_size=args.batch_size)
        with NpzChunkWriter(args.output, "pis", pis.shape, pis.dtype, overwrite=args.force) as writer:
            writer.write(pis)
            writer.commit({"topokd_version": __version__, "model": str(args.model), "input_shape": list(X.shape)})
        print(f"wrote {args.output}: pis {pis.shape}")
        return 0
    Y = load_data(args.targets, None) if args.targets else None
    scores = est.evaluate(X, Y, batch_size=args.batch_size)
    print(json.dumps(scores, indent=2))
    if report is not None:
        from ..io import write_atomic

        write_atomic(report, json.dumps(scores, indent=2) + "\n", overwrite=args.force)
    return 0


#: Augmentations ``--augment`` takes: those of topokd.distill.augment.AUGMENTATIONS
#: that need no parameters (channel permutations come with --channel-groups);
#: listed here so that a bad name is refused before torch loads.
AUGMENT_NAMES = ("surrogate", "warp", "window-mix", "noise", "shift", "scale", "removal", "mix1", "mix2")


def _augment_args(args) -> list[tuple[int, ...]] | None:
    """Check --augment / --channel-groups; the channel groups, if any."""
    if args.augment is not None and args.augment.lower() not in AUGMENT_NAMES:
        raise ValueError(f"--augment {args.augment!r}: choose one of {', '.join(AUGMENT_NAMES)}")
    if args.augment is not None and args.kind != "signal":
        raise ValueError("--augment applies to signals (--kind signal); for images train on more patches")
    if args.channel_groups is None:
        return None
    if args.augment is None:
        raise ValueError("--channel-groups adds channel permutations to an augmentation: give --augment NAME too")
    try:
        groups = [tuple(int(c) for c in part.split(",")) for part in args.channel_groups.split("/")]
    except ValueError:
        raise ValueError(f"--channel-groups {args.channel_groups!r}: write channel indices as 0,1,2/3,4,5") from None
    flat = [c for g in groups for c in g]
    if any(len(g) < 2 for g in groups) or len(set(flat)) != len(flat) or min(flat) < 0:
        raise ValueError(f"--channel-groups {args.channel_groups!r}: groups must be disjoint, of >= 2 "
                         "non-negative channel indices each")
    return groups


def _augmentation(args, groups):
    """The PINet's ``augment``: the name, or the augmentation composed with channel permutations."""
    if args.augment is None or groups is None:
        return args.augment
    from ..distill.augment import ChannelPermutation, Compose, get_augmentation

    return Compose([get_augmentation(args.augment), ChannelPermutation(groups)])
