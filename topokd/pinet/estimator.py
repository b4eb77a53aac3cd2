"""Train, evaluate, save and serve PI-Net surrogates.

:class:`PINet` wraps :class:`~topokd.pinet.SignalPINet` /
:class:`~topokd.pinet.ImagePINet` in a scikit-learn style estimator:
parameters in ``__init__``, ``fit`` / ``predict`` / ``evaluate``, checkpoints
with ``save`` / ``load``.  Targets are the exact PIs of topokd's engine for
the chosen preset (computed on the fly, or cached on disk keyed by the data
and every parameter), or arrays you pass.

Training runs on topokd's training engine (:func:`topokd.engine.fit`), in
one of two modes.

``optimizer="reference"`` reproduces the authors' training script
(github.com/anirudhsom/PI-Net, ``Signal PI-Net/train.py``, TensorFlow/Keras
2.10 per ``requirements.txt``):

* MSE loss (line 49), batch 128 (line 16), reshuffled every epoch
  (``model.fit`` shuffles by default, line 51);
* Keras Adam, ``beta_1=0.99, epsilon=0.1`` (line 47), with Keras' update
  ``param -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + eps)``
  -- ``eps`` on the *uncorrected* ``sqrt(v)``, i.e. torch's ``Adam`` with
  ``eps / sqrt(1 - beta2**t)`` (:class:`topokd.engine.KerasAdam`, built as
  ``build_optimizer(..., "keras-adam")``);
* three stages of 300 / 300 / 400 epochs at 1e-3 / 1e-4 / 1e-5 (lines 17-18),
  each with a new optimizer (lines 44-49: ``Adam`` is created and compiled
  anew per stage, so its moments and step count restart): here the stages
  are 30 % / 30 % / 40 % of ``epochs`` (:func:`reference_stages`) at ``lr``,
  ``lr/10``, ``lr/100``, and the optimizer state is cleared at the start of
  each stage (equivalent to a new one, and resumable);
* raw targets (``target_scale_ = 1.0``; the script fits the PIs as loaded);
* the last epoch is kept: the checkpoint callback (lines 37-38) has no
  ``save_best_only``, so it holds the final weights;
* the network is the authors' (``pool_padding="keras"``, ``init="glorot"``,
  see :mod:`topokd.models.pinet`).

Where it still differs: the script validates on the *test* set
(``validation_data=(x_test, y_test)``, line 51; it only reports, nothing is
selected on it) -- topokd validates on a held-out part of the training data
(``val_fraction``) or ``X_val``, which also leaves that part out of training;
float rounding of TensorFlow kernels and the random streams (shuffling,
initial weights) are not reproduced; the stage lengths scale with
``epochs`` (the script's ``nb_epochs=[300, 300, 400]`` is ``epochs=1000``).

``optimizer="adamw"`` (recommended) uses AdamW (decoupled ``weight_decay``)
with cosine decay to 0, targets divided by their RMS (PIs are often ~1e-2;
predictions are scaled back), and keeps the best epoch by validation MSE
(with ``pearson_weight``, MSE plus that weight times 1 - mean Pearson).
Its network keeps topokd's original layers (``pool_padding="symmetric"``,
``init="torch"``) unless ``pool_padding`` / ``init`` say otherwise: the
recommended mode's published numbers were measured with them, and we have
no measurement yet that the Keras choices train better.

Targets on the fly (signals): with ``augment`` (e.g. ``"surrogate"``, see
:mod:`topokd.distill.augment`), every epoch draws ``samples_per_epoch``
training windows, augments them and trains on the exact PIs of the
augmented windows, computed by the engine inside the batch pipeline
(:class:`topokd.pinet.targets.AugmentedTargets`), so the network does not
fit a fixed set of (window, PI) pairs.  Validation stays on the clean held-out
windows and their exact PIs.

In both modes ``patience`` stops early.  On CUDA training uses mixed
precision; on CPU it is float32, seeded and reproducible.

The estimator follows scikit-learn's conventions: ``__init__`` stores its
parameters as given, ``fit`` validates them, ``get_params`` /
``set_params`` work, so ``sklearn.base.clone``, ``Pipeline`` and
``GridSearchCV`` accept it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from .._params import ParamsMixin
from .._validation import check_choice, check_device
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..engine import Checkpoints, Monitor, build_optimizer, distributed, schedule_lr, tensor_batches
from ..engine import fit as engine_fit
from ..tda.pipeline import ImagePersistenceImages, SignalPersistenceImages, check_image_values
from ..models import build_model
from ..models.pinet import HEAD_TYPES, INITS, POOL_PADDINGS
from .models import HEADS, PINetModule, create_model

OPTIMIZERS = ("reference", "adamw")
KINDS = ("signal", "image")
#: "reference": Keras Adam(beta_1=0.99, epsilon=0.1) (``Signal PI-Net/train.py`` line 47).
REFERENCE_ADAM = dict(betas=(0.99, 0.999), eps=0.1)
#: "reference": the stages' share of the epochs and lr factors (``train.py`` lines 17-18: 300/300/400, 1e-3/1e-4/1e-5).
REFERENCE_STAGES = ((0.3, 1.0), (0.3, 0.1), (0.4, 0.01))
#: The network each mode builds unless ``pool_padding`` / ``init`` are given.
MODE_NETWORK = {"reference": dict(pool_padding="keras", init="glorot"),
                "adamw": dict(pool_padding="symmetric", init="torch")}
#: ``training["schedule"]`` in a checkpoint's metadata: what the mode ran (resume refuses another).
MODE_SCHEDULE = {"reference": "keras-stages-30-30-40", "adamw": "cosine"}
TARGET_CACHE_VERSION = 1


def reference_stages(epochs: int) -> tuple[int, int, int]:
    """0-based first epochs of the reference mode's three stages for a run of
    ``epochs``: ``(0, round(0.3 * epochs), round(0.6 * epochs))`` (rounded
    half up, exactly ``(0, 300, 600)`` for 1000 epochs), the first stage at
    least one epoch long.  A later stage is empty when two starts coincide
    (``epochs < 4``)."""
    epochs = int(epochs)
    first = max(1, min(epochs, (3 * epochs + 5) // 10))
    second = max(first, (6 * epochs + 5) // 10)
    return 0, first, second


def reference_lr(epoch: int, lr: float, epochs: int) -> float:
    """The reference mode's learning rate of 0-based ``epoch``: ``lr``,
    ``lr/10`` and ``lr/100`` in the stages of :func:`reference_stages`."""
    stage = sum(epoch >= start for start in reference_stages(epochs)) - 1
    return lr * REFERENCE_STAGES[stage][1]


def default_device() -> torch.device:
    return check_device(None)


class PINet(ParamsMixin):
    """A PI-Net surrogate: raw data in, persistence images out.

    Parameters
    ----------
    kind : "signal" or "image"
        Signals are ``(N, T, C)`` windows, images ``(N, C, H, W)``.
    preset : str, optional
        topokd preset that defines the target PIs (default: the kind's
        default preset).  ``pi_params`` overrides its parameters.  The
        preset's ``scale`` is applied to the network input too, so the
        network sees the data exactly as the TDA engine does.
    widths : four ints, default (128, 256, 512, 1024)
        Filters of the four convolution blocks (the reference network).
    head : "relu" or "sigmoid", default "relu"
    head_type : "dense", "conv" or "lowrank", default "dense"
        The layer from the pooled features to the PIs (see
        :mod:`topokd.models.pinet`): the reference's dense layer (15.4 M of
        the 17.4 M parameters of the 6-channel Signal PI-Net), a small
        convolutional decoder (3.2 M) or a rank-``head_rank`` factorisation.
    head_rank : int, default 64
        Rank of the ``"lowrank"`` head (ignored otherwise).
    pool_padding : "keras", "symmetric" or None
        The max-pooling padding (see :mod:`topokd.models.pinet`).  ``None``
        (default): the mode's, ``"keras"`` for ``optimizer="reference"``,
        ``"symmetric"`` (topokd's original) for ``"adamw"``.
    init : "glorot", "torch" or None
        The initialisation (``None``: ``"glorot"``, Keras' default, for the
        reference mode; ``"torch"`` for ``"adamw"``).
    optimizer : "reference" or "adamw"
        The training mode (see the module docstring): ``"reference"`` as the
        authors' script (Keras Adam, three stages with a fresh optimizer,
        raw targets, last epoch kept); ``"adamw"`` (recommended): AdamW,
        cosine decay, targets of unit RMS, best validation epoch kept.
    epochs : int, default 100
        Training epochs (passes over the training windows); the reference
        mode splits them 30 % / 30 % / 40 % into its stages.
    batch_size : int, default 128
    lr : float, default 1e-3
        The initial learning rate (the reference mode's stages use ``lr``,
        ``lr/10``, ``lr/100``).
    weight_decay : float, default 1e-4
        AdamW's decoupled weight decay (the reference optimizer has none).
    pearson_weight : float, default 0.0
        Adds ``pearson_weight * (1 - r)`` to the MSE, where ``r`` is the mean
        over the batch's (window, channel) images of the Pearson correlation
        between predicted and exact PI (:func:`image_pearson`: images whose
        exact PI is constant are left out; a constant prediction counts as
        ``r = 0``, where :func:`pi_agreement` leaves it out).  The MSE weighs
        heavy images (many long bars) most, the mean Pearson weighs every
        image alike; this term trains for the latter.  The MSE is in training
        units (targets of unit RMS with ``"adamw"``, raw PIs of ~1e-2 with
        ``"reference"``, where a weight near 1 dwarfs it).  With it, early
        stopping, ``best_score_`` and the ``"adamw"`` best epoch use the
        validation MSE + ``pearson_weight * (1 - r)`` (``val_objective`` in
        ``history_``, with ``val_pearson``).  ``fine_tune`` trains with the
        same weight (a loaded model keeps the stored one).  Not in the
        authors' script (MSE only): 0 reproduces it.
    val_fraction : float, default 0.1
        Held-out share of the training data for validation and early
        stopping (ignored when ``fit`` gets validation data).
    augment : str, callable or None
        Signals only: a label-free augmentation (a name from
        :data:`topokd.distill.augment.AUGMENTATIONS`, e.g. ``"surrogate"``,
        or a callable ``augment(x, generator=...)`` on ``(B, C, T)``
        batches, e.g. ``Compose([SurrogateMix(), ChannelPermutation(...)])``)
        applied to each training batch, whose targets are then the exact PIs
        of the augmented windows, computed on the fly.  ``None`` (default):
        the precomputed PIs of the training windows.
    samples_per_epoch : int, optional
        Training windows per epoch, drawn as seeded permutations of the
        training split repeated as needed (default: one pass).  With
        ``augment`` an epoch of more samples than windows sees new
        augmentations, not repeats.
    patience : int, optional
        Stop after this many epochs without a better validation MSE (the
        objective with ``pearson_weight``; in the reference mode the last
        epoch run is still the one kept).
    device : str, optional
        Default CUDA when available, else CPU.
    amp : bool, default True
        Mixed precision on CUDA (ignored on CPU).
    seed : int, default 0
    cache_dir : path, optional
        Where computed target PIs are cached (safetensors + JSON key).
    checkpoint : path, optional
        The training state, saved after every epoch (atomically);
        ``fit(resume=True)`` resumes from it (and refuses a state written by
        the other mode, or by a topokd whose network description differs).
    progress : bool, default True
        Progress bars for training and prediction.


    Attributes
    ----------
    model_ : torch.nn.Module
        The trained network (after ``fit`` or ``load``).
    model_config_ : dict
        Its registry description (:func:`topokd.models.build_model`).
    history_ : list of dict
        One record per epoch.
    target_scale_ : float
        The RMS the targets were divided by in training (1.0 in the
        reference mode: raw targets).
    best_score_ : float
        Best monitored validation MSE, in those scaled units, or the
        objective with ``pearson_weight`` (the reference mode keeps the last
        epoch; this is still the best one seen).
    best_record_ : dict
        That epoch's record of ``history_``.
    """

    def __init__(self, kind: str = "signal", *, preset: str | None = None, pi_params: dict | None = None,
                 widths=(128, 256, 512, 1024), head: str = "relu", head_type: str = "dense", head_rank: int = 64,
                 pool_padding: str | None = None,
                 init: str | None = None, optimizer: str = "reference",
                 epochs: int = 100, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 1e-4,
                 pearson_weight: float = 0.0, val_fraction: float = 0.1, augment=None,
                 samples_per_epoch: int | None = None,
                 patience: int | None = None, device: str | None = None,
                 amp: bool = True, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                 checkpoint: str | os.PathLike | None = None, progress: bool = True):
        self.kind = kind
        self.preset = preset
        self.pi_params = pi_params
        self.widths = widths
        self.head = head
        self.head_type = head_type
        self.head_rank = head_rank
        self.pool_padding = pool_padding
        self.init = init
        self.optimizer = optimizer
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.pearson_weight = pearson_weight
        self.val_fraction = val_fraction
        self.augment = augment
        self.samples_per_epoch = samples_per_epoch
        self.patience = patience
        self.device = device
        self.amp = amp
        self.seed = seed
        self.cache_dir = cache_dir
        self.checkpoint = checkpoint
        self.progress = progress

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "model_", None) is not None

    def __sklearn_tags__(self):
        # Only scikit-learn (>= 1.6) calls this, so it may import it.
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float32"]),
                    input_tags=InputTags(two_d_array=False, three_d_array=True), requires_fit=True)

    def _check_params(self) -> None:
        check_choice(self.kind, "kind", KINDS)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_choice(self.head, "head", HEADS)
        check_choice(self.head_type, "head_type", HEAD_TYPES)
        _check_int(self.head_rank, "head_rank", 1)
        check_choice(self.pool_padding, "pool_padding", (None, *POOL_PADDINGS))
        check_choice(self.init, "init", (None, *INITS))
        for name in ("epochs", "batch_size"):
            _check_int(getattr(self, name), name, 1)
        if self.patience is not None:
            _check_int(self.patience, "patience", 1)
        if self.samples_per_epoch is not None:
            _check_int(self.samples_per_epoch, "samples_per_epoch", 1)
        self._augmentation()
        _check_int(self.seed, "seed", 0)
        if not _is_number(self.val_fraction) or not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be a number in [0, 1), got {self.val_fraction!r}")
        if not _is_number(self.lr) or not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not _is_number(self.weight_decay) or not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if not _is_number(self.pearson_weight) or not (math.isfinite(self.pearson_weight) and self.pearson_weight >= 0):
            raise ValueError(f"pearson_weight must be a finite number >= 0, got {self.pearson_weight!r}")
        widths = tuple(self.widths) if isinstance(self.widths, (list, tuple)) else ()
        if len(widths) != 4 or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
            raise ValueError(f"widths must be four positive integers, got {self.widths!r}")
        if self.pi_params is not None and not isinstance(self.pi_params, dict):
            raise ValueError(f"pi_params must be a dict of preset overrides, got {type(self.pi_params).__name__}")
        self._device()
        self._transformer()

    def _device(self) -> torch.device:
        return check_device(self.device)

    def _augmentation(self):
        """The training augmentation (a callable), or ``None`` for precomputed targets."""
        if self.augment is None or (isinstance(self.augment, str) and self.augment.lower() == "none"):
            return None
        if self.kind != "signal":
            raise ValueError("augment applies to signal PI-Nets (the augmentations are 1-D); for images train on "
                             "more patches instead (topokd.data.load_image_patches)")
        if isinstance(self.augment, str):
            from ..distill.augment import get_augmentation

            return get_augmentation(self.augment)
        if not callable(self.augment):
            raise ValueError(f"augment must be an augmentation name, a callable augment(x, generator=...) or None, "
                             f"got {type(self.augment).__name__}")
        return self.augment

    # -- targets ------------------------------------------------------------
    def _transformer(self):
        """The exact PI transformer that defines the targets (from the current parameters)."""
        params = dict(self.pi_params or {})
        if self.kind == "signal":
            return SignalPersistenceImages(self.preset, **params)
        if params.pop("mode", "flatten") != "flatten":
            raise ValueError("ImagePINet predicts one PI per channel: only mode='flatten' targets are supported")
        return ImagePersistenceImages("flatten", self.preset, **params)

    @property
    def pi_config(self) -> dict:
        """The resolved parameters of the target PIs (preset plus overrides)."""
        return self._transformer().config_

    @property
    def resolution(self) -> int:
        shape = self._transformer().image_shape
        if shape[0] != shape[1]:
            raise ValueError(f"PI-Net needs square images, the preset gives {shape}")
        return shape[0]

    def targets(self, X) -> np.ndarray:
        """Exact PIs of ``X`` for this estimator's preset (cached if ``cache_dir``)."""
        X = self._check_input(X)
        transformer = self._transformer()
        if self.cache_dir is None:
            return transformer.transform(X)
        cache_dir = Path(self.cache_dir)
        key = self._target_key(X, transformer)
        path = cache_dir / f"pis-{key[:24]}.safetensors"
        if path.exists():
            tensors, meta = load_checkpoint(path)
            if meta.get("key") == key:
                return tensors["pis"].numpy()
        pis = transformer.transform(X)
        if not distributed.is_main():
            return pis  # under torchrun only rank 0 writes the cache (every rank computes the same PIs)
        cache_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, {"pis": torch.from_numpy(np.ascontiguousarray(pis))},
                        {"key": key, "params": _jsonable(transformer.config_), "kind": self.kind,
                         "shape": list(X.shape)})
        return pis

    def _target_key(self, X: np.ndarray, transformer) -> str:
        h = hashlib.sha256()
        h.update(json.dumps({"v": TARGET_CACHE_VERSION, "kind": self.kind, "shape": list(X.shape),
                             "params": _jsonable(transformer.config_)}, sort_keys=True).encode())
        h.update(np.ascontiguousarray(X, dtype=np.float64).tobytes())
        return h.hexdigest()

    # -- inputs -------------------------------------------------------------
    def _check_input(self, X) -> np.ndarray:
        X = np.asarray(X)
        want = 3 if self.kind == "signal" else 4
        axes = "(N, T, C)" if self.kind == "signal" else "(N, C, H, W)"
        if X.dtype.kind not in "biuf" or X.ndim != want or X.size == 0:
            raise ValueError(f"{self.kind} PI-Net input must be a non-empty numeric {axes} array, got "
                             f"{X.dtype} {X.shape}")
        if not np.isfinite(X).all():
            bad = np.argwhere(~np.isfinite(X))[0]
            raise ValueError(f"X has a non-finite value at index {tuple(int(i) for i in bad)}; clean it first")
        if self.kind == "image":
            # The exact targets and the network see the same values: uint8
            # scaled to [0, 1] (with a notice), out-of-range values refused.
            X = check_image_values(X, self.pi_config, preset=self.preset, stacklevel=3)
        model = getattr(self, "model_", None)
        if model is not None:
            channels = X.shape[2] if self.kind == "signal" else X.shape[1]
            if channels != model.in_channels:
                raise ValueError(f"this PI-Net was built for {model.in_channels} channels, X has {channels} "
                                 f"(shape {X.shape}, layout {axes})")
        return X

    def _channel_major(self, X: np.ndarray) -> torch.Tensor:
        """``X`` as a float32 tensor in the module's layout ((N, C, T) or (N, C, H, W))."""
        t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        return t.transpose(1, 2) if self.kind == "signal" else t

    def _build(self, channels: int) -> nn.Module:
        name = "signal-pinet" if self.kind == "signal" else "image-pinet"
        widths = tuple(int(w) for w in self.widths)
        kwargs = dict(in_channels=channels, resolution=self.resolution, widths=widths, head=self.head,
                      head_type=self.head_type, **self._network_options())
        if self.head_type == "lowrank":
            kwargs["head_rank"] = int(self.head_rank)
        if self.kind == "signal":
            kwargs["channels_last"] = True
        self.model_config_ = {"name": name, **kwargs, "widths": list(widths)}
        return create_model(name, **kwargs).to(self._device())

    def _network_options(self) -> dict:
        """``pool_padding`` and ``init`` of the network to build (the mode's unless given)."""
        options = dict(MODE_NETWORK[self.optimizer])
        for name in ("pool_padding", "init"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        return options

    def as_module(self, *, frozen: bool = True, scaled: bool = True) -> PINetModule:
        """The trained network as an ``nn.Module`` that takes channel-major
        input (signals ``(B, C, T)``, images ``(B, C, H, W)``), applies the
        preset's input scaling and returns PIs in the units of the exact
        engine (``scaled=False``: in the training units, divided by
        ``target_scale_``).  ``frozen``: no gradients, always eval mode (to
        sit inside a student).  The module holds a copy of the network."""
        import copy

        model = self._require_model()
        return PINetModule(copy.deepcopy(model), kind=self.kind, input_scale=self.pi_config["scale"],
                           pi_scale=self.target_scale_ if scaled else 1.0, frozen=frozen)

    def _module(self) -> PINetModule:
        """The network with its scaling, sharing the live weights (training units)."""
        return PINetModule(self._require_model(), kind=self.kind, input_scale=self.pi_config["scale"],
                           frozen=False)

    # -- training -----------------------------------------------------------
    def fit(self, X, Y=None, *, X_val=None, Y_val=None, resume: bool = False):
        """Train on ``X`` (targets ``Y`` or the engine's exact PIs).

        ``Y``: target PIs ``(N, C, R, R)``, or ``None`` for the exact PIs of
        the preset; a 1-D ``Y`` of ``N`` class labels (what a scikit-learn
        ``Pipeline`` passes to every step) is ignored, as transformers do.
        ``X`` may also be a dataset (anything with ``len`` and indexing, e.g.
        a ``torch.utils.data.Dataset``) yielding ``(input, PI)`` pairs; it is
        read once into memory.  Validation: ``(X_val, Y_val)`` if given, else
        a seeded ``val_fraction`` split of ``X``.  ``resume=True`` continues
        from ``checkpoint`` when it exists.  Returns ``self``.
        """
        self._check_params()
        if Y is not None and np.ndim(Y) == 1 and len(Y) == len(X):
            Y = None  # class labels from a Pipeline: the targets are the exact PIs
        if Y is None and _is_pair_dataset(X):
            X, Y = _materialize(X)
        if Y_val is None and X_val is not None and _is_pair_dataset(X_val):
            X_val, Y_val = _materialize(X_val)
        self.model_ = None  # a new network (resume loads its state): no channel check against an old one
        augment = self._augmentation()
        if augment is not None and Y is not None:
            raise ValueError("with augment the targets are the exact PIs of each augmented window: pass Y=None, "
                             "or augment=None to train on your own targets")
        X = self._check_input(X)
        Y = self._check_targets(X, Y)
        if X_val is None and self.val_fraction > 0 and len(X) >= 2:
            perm = np.random.default_rng(self.seed).permutation(len(X))
            n_val = max(1, int(round(self.val_fraction * len(X))))
            val, train = perm[:n_val], perm[n_val:]
            X, Y, X_val, Y_val = X[train], Y[train], X[val], Y[val]
        elif X_val is not None:
            X_val = self._check_input(X_val)
            Y_val = self._check_targets(X_val, Y_val)
        channels = X.shape[2] if self.kind == "signal" else X.shape[1]
        torch.manual_seed(self.seed)
        self.model_ = self._build(channels)
        # "adamw": train on targets of unit RMS (PIs are often ~1e-2):
        # predictions are scaled back, and the scale is stored with the
        # model.  "reference": raw targets, as the authors' script.
        rms = float(np.sqrt(np.mean(np.square(Y, dtype=np.float64))))
        self.target_scale_ = 1.0 if self.optimizer == "reference" or not rms > 0 else rms
        result = self._train(X, Y, X_val, Y_val, self.epochs, lr=float(self.lr), resume=resume, augment=augment)
        self.history_ = result.history
        return self

    def _check_targets(self, X, Y) -> np.ndarray:
        if Y is None:
            return self.targets(X)
        Y = np.asarray(Y, dtype=np.float32)
        channels = X.shape[2] if self.kind == "signal" else X.shape[1]
        expected = (len(X), channels, self.resolution, self.resolution)
        if Y.shape != expected:
            raise ValueError(f"targets must have shape {expected} (N, C, R, R), got {Y.shape}")
        if not np.isfinite(Y).all():
            raise ValueError("targets contain NaN or inf")
        return Y

    def _train(self, X, Y, X_val, Y_val, epochs: int, *, lr: float, resume: bool = False, augment=None):
        """One run of the training engine on ``(X, Y)``; returns its :class:`TrainResult`.

        ``"reference"``: Keras Adam, the stages of :func:`reference_stages`
        (lr, lr/10, lr/100), the optimizer state cleared when a stage
        starts (a fresh Keras optimizer: zero moments, step count 0), the
        last epoch kept.  ``"adamw"``: AdamW, cosine decay, best epoch kept.
        ``augment``: train on augmented windows and their exact PIs (``Y``
        unused).
        """
        model, device, epochs = self.model_, self._device(), int(epochs)
        if resume:
            self._check_resumable()
        on_epoch_start = None
        if self.optimizer == "reference":
            optimizer = build_optimizer(model.parameters(), "keras-adam", lr=lr, **REFERENCE_ADAM)
            starts = set(reference_stages(epochs)[1:])

            def lr_schedule(epoch):
                return reference_lr(epoch, lr, epochs)

            def on_epoch_start(epoch):  # 1-based
                if epoch - 1 in starts:
                    optimizer.state.clear()

            restore = "last"
        else:
            optimizer = build_optimizer(model.parameters(), "adamw", lr=lr, weight_decay=float(self.weight_decay))

            def lr_schedule(epoch):
                return schedule_lr(epoch, "cosine", lr, epochs)

            restore = "best"
        module = self._module()
        batches = self._batches(module, X, Y, augment, device)

        pearson_weight = float(self.pearson_weight)

        def step(batch, generator):
            xb, yb = batch
            pred = model(xb)
            losses = {"mse": nn.functional.mse_loss(pred, yb)}
            if pearson_weight > 0:  # every batch logs the term (no host sync, the same terms on every rank)
                losses["pearson_loss"] = pearson_weight * (1.0 - _mean_pearson(pred.float(), yb.float()))
            return losses

        validate, monitor = None, Monitor("train_loss", better="min")
        if X_val is not None:
            val_inputs = module.network_input(self._channel_major(X_val))
            val_targets = self._scaled(Y_val)

            def validate(_):
                pred = self._forward(self.model_, val_inputs)
                record = {"val_mse": float(((pred - val_targets) ** 2).mean())}
                if pearson_weight > 0:
                    record["val_pearson"] = float(_mean_pearson(pred.double(), val_targets.double()))
                    record["val_objective"] = record["val_mse"] + pearson_weight * (1.0 - record["val_pearson"])
                return record

            monitor = Monitor("val_objective" if pearson_weight > 0 else "val_mse", better="min")
        checkpoints = Checkpoints(state=self.checkpoint, metadata=self._metadata()) if self.checkpoint else None
        result = engine_fit(
            model, step, batches,
            epochs=epochs, optimizer=optimizer, lr_schedule=lr_schedule, on_epoch_start=on_epoch_start,
            device=device, amp=bool(self.amp), seed=int(self.seed), validate=validate, monitor=monitor,
            patience=self.patience, checkpoints=checkpoints, resume=resume, restore=restore,
            progress=bool(self.progress), desc="PI-Net", postfix=self._progress_units,
            nan_hint="lower lr or use optimizer='reference'")
        self.best_score_ = result.best_record[monitor.key] if result.best_record else math.inf
        self.best_record_ = dict(result.best_record or {})
        return result

    def _batches(self, module, X, Y, augment, device):
        """The engine's ``batches(generator)``: augmented windows with their exact
        PIs (``augment``), or the precomputed pairs, ``samples_per_epoch`` per epoch."""
        from .targets import AugmentedTargets

        if augment is not None:
            from ..distill.trainer import OnlinePIs

            return AugmentedTargets(self._channel_major(X), augment, OnlinePIs(self._transformer()),
                                    batch_size=int(self.batch_size), network_input=module.network_input,
                                    target_scale=self.target_scale_, samples_per_epoch=self.samples_per_epoch,
                                    device=device)
        inputs, targets = module.network_input(self._channel_major(X)), self._scaled(Y)
        if self.samples_per_epoch is not None:  # epochs of samples seen, as with augment
            return tensor_batches(inputs, targets, batch_size=int(self.batch_size), device=device, min_batch=2,
                                  samples_per_epoch=int(self.samples_per_epoch))
        return tensor_batches(inputs, targets, batch_size=int(self.batch_size), device=device)

    def _check_resumable(self) -> None:
        """Refuse to resume a training state that another mode wrote (its
        optimizer state, schedule and target units would not fit)."""
        if not self.checkpoint or not Path(self.checkpoint).exists():
            return
        from ..checkpoint import read_metadata

        training = read_metadata(self.checkpoint).get("training") or {}
        want = {"optimizer": self.optimizer, "schedule": MODE_SCHEDULE[self.optimizer],
                "pearson_weight": float(self.pearson_weight)}
        got = {k: training.get(k) for k in want}
        got["pearson_weight"] = float(got["pearson_weight"] or 0.0)  # a state from before the option: MSE only
        if got != want:
            raise CheckpointError(f"cannot resume from {self.checkpoint}: it was trained with {got}, this run "
                                  f"uses {want} (a state from another mode or loss, or from a topokd whose "
                                  "reference mode differed); start without resume or use another checkpoint")

    def _progress_units(self, record: dict) -> dict:
        """The progress bar's MSEs in the units of the exact PIs (what the
        final ``topokd pinet train`` line reports), not the training units."""
        square = self.target_scale_ ** 2
        return {key: record[key] * square for key in ("train_mse", "val_mse") if key in record}

    def _scaled(self, Y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(Y / self.target_scale_, dtype=np.float32))

    @torch.no_grad()
    def _forward(self, module: nn.Module, inputs: torch.Tensor, batch_size: int | None = None,
                 progress: bool = False) -> torch.Tensor:
        from tqdm.auto import tqdm

        device = self._device()
        module.eval()
        use_amp = bool(self.amp) and device.type == "cuda"
        out = []
        for xb in tqdm(inputs.split(batch_size or int(self.batch_size)), disable=not progress,
                       desc="PI-Net predict", unit="batch"):
            with torch.autocast(device.type, enabled=use_amp):
                out.append(module(xb.to(device)).float().cpu())
        return torch.cat(out)

    # -- serving ------------------------------------------------------------
    def predict(self, X, *, batch_size: int | None = None) -> np.ndarray:
        """PIs of ``X``: float32 ``(N, C, R, R)``, computed in batches."""
        self._require_model()
        X = self._check_input(X)
        module = self._module()
        out = self._forward(module, self._channel_major(X), batch_size, progress=bool(self.progress)).numpy()
        return out * np.float32(self.target_scale_)

    transform = predict

    def evaluate(self, X, Y=None, *, batch_size: int | None = None) -> dict:
        """Agreement with exact PIs (``Y`` or computed): MSE, mean Pearson
        correlation over (sample, channel) images, and max abs error.

        Images where either side is constant have no correlation and are
        left out of the mean (their count is reported).
        """
        X = self._check_input(X)
        Y = self._check_targets(X, Y)
        pred = self.predict(X, batch_size=batch_size)
        return pi_agreement(pred, Y)

    def score(self, X, Y=None) -> float:
        """Mean Pearson correlation with the exact PIs (higher is better), so
        ``GridSearchCV`` can select PI-Net settings without a scorer."""
        return self.evaluate(X, Y)["pearson"]

    def _require_model(self) -> nn.Module:
        model = getattr(self, "model_", None)
        if model is None:
            raise RuntimeError("this PINet has no trained model yet: call fit() or PINet.load()")
        return model

    # -- transfer learning (PI-Net paper, section 4) ---------------------
    def fine_tune(self, X, Y=None, *, strategy: str = "FA", fraction: float = 1.0, freeze: str | None = None,
                  epochs: int | None = None, lr: float | None = None, X_val=None, Y_val=None,
                  mode: str | None = None):
        """Fine-tune a trained PI-Net on a target data set (the paper's transfer strategies).

        ``strategy="FA"``: on all of ``X``; ``strategy="FS"``: on a seeded
        random subset holding ``fraction`` of it (``mode=`` is the old name
        of ``strategy``, deprecated).  ``freeze="encoder"`` keeps the
        convolution blocks (and their BatchNorm statistics) fixed and trains
        only the dense layer and decoder; ``None`` trains everything.
        Default learning rate: a tenth of ``lr``.  The epochs are appended
        to ``history_``.
        """
        if mode is not None:
            import warnings

            warnings.warn("PINet.fine_tune(mode=...) is renamed strategy=...; mode will be removed",
                          DeprecationWarning, stacklevel=2)
            strategy = mode
        check_choice(strategy, "strategy", ("FA", "FS"))
        check_choice(freeze, "freeze", (None, "encoder"))
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self._check_params()
        model = self._require_model()
        augment = self._augmentation() if Y is None else None
        X = self._check_input(X)
        Y = self._check_targets(X, Y)
        if strategy == "FS":
            keep = np.random.default_rng(self.seed).permutation(len(X))[: max(1, int(round(fraction * len(X))))]
            X, Y = X[np.sort(keep)], Y[np.sort(keep)]
        for p in model.features.parameters():
            p.requires_grad_(freeze != "encoder")
        if X_val is not None:
            X_val = self._check_input(X_val)
            Y_val = self._check_targets(X_val, Y_val)
        try:
            result = self._train(X, Y, X_val, Y_val, epochs or int(self.epochs),
                                 lr=lr or float(self.lr) * 0.1, augment=augment)
        finally:
            for p in model.parameters():
                p.requires_grad_(True)
        self.history_ = list(getattr(self, "history_", [])) + result.history
        return self

    # -- checkpoints ----------------------------------------------------------
    def _metadata(self) -> dict:
        return {
            "topokd_version": __version__,
            "kind": self.kind,
            "model": self.model_config_,
            "preset": self.preset,
            "pi_params": _jsonable(self.pi_config),
            "training": {"optimizer": self.optimizer, "schedule": MODE_SCHEDULE[self.optimizer], "epochs": self.epochs, "batch_size": self.batch_size,
                         "lr": self.lr, "weight_decay": self.weight_decay,
                         "pearson_weight": self.pearson_weight, "seed": self.seed,
                         "val_fraction": self.val_fraction, "patience": self.patience, "head": self.head,
                         "amp": self.amp, "augment": _augment_name(self.augment),
                         "samples_per_epoch": self.samples_per_epoch},
            "target_scale": self.target_scale_,
            "history": getattr(self, "history_", []),
        }

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the trained model (safetensors + JSON metadata), atomically."""
        tensors = {f"model.{k}": v for k, v in self._require_model().state_dict().items()}
        return save_checkpoint(path, tensors, self._metadata(), overwrite=overwrite)

    @classmethod
    def load(cls, path, *, device: str | None = None, kind: str | None = None, in_channels: int | None = None,
             resolution: int | None = None, progress: bool = True) -> "PINet":
        """A PINet from a checkpoint (a saved model or a training state);
        ``kind``/``in_channels``/``resolution``, when given, must match it
        (else :class:`CheckpointError`)."""
        tensors, meta = load_checkpoint(path)
        model_cfg = meta.get("model")
        if not isinstance(model_cfg, dict) or "name" not in model_cfg:
            raise CheckpointError(f"{path} does not describe a PI-Net model")
        for name, want, got in (("kind", kind, meta.get("kind")), ("in_channels", in_channels,
                                model_cfg.get("in_channels")), ("resolution", resolution, model_cfg.get("resolution"))):
            if want is not None and want != got:
                raise CheckpointError(f"{path} holds a PI-Net with {name}={got!r}, you asked for {want!r}")
        training = meta.get("training", {})
        keep = ("optimizer", "epochs", "batch_size", "lr", "weight_decay", "pearson_weight", "val_fraction", "patience",
                "seed", "amp", "samples_per_epoch")
        # The network options as built (a checkpoint without them: topokd's original layers).
        options = {"pool_padding": model_cfg.get("pool_padding", "symmetric"), "init": model_cfg.get("init", "torch"),
                   "head_type": model_cfg.get("head_type", "dense"), "head_rank": int(model_cfg.get("head_rank", 64))}
        augment = training.get("augment")
        if isinstance(augment, str) and augment.startswith("<"):
            augment = None  # a custom callable: not stored; set est.augment to train further with it
        est = cls(meta["kind"], preset=meta.get("preset"), pi_params=_pi_overrides(meta["pi_params"], meta["kind"]),
                  augment=augment,
                  widths=tuple(model_cfg["widths"]), head=model_cfg["head"], device=device, progress=progress,
                  **options, **{k: training[k] for k in keep if k in training})
        est._check_params()
        est.target_scale_ = float(meta.get("target_scale", 1.0))
        if model_cfg.get("resolution") != est.resolution:
            raise CheckpointError(f"{path}: its PI-Net makes {model_cfg.get('resolution')}-pixel PIs, its PI "
                                  f"parameters {est.resolution}; the checkpoint is inconsistent")
        est.model_ = build_model(model_cfg).to(est._device())
        est.model_config_ = dict(model_cfg)
        _load_weights(est.model_, tensors, path)
        engine = meta.get("engine")
        est.history_ = list(engine["history"] if isinstance(engine, dict) else meta.get("history", []))
        return est


def _augment_name(augment) -> str | None:
    """``augment`` for the metadata: its name, or ``<repr>`` of a custom callable."""
    if augment is None or isinstance(augment, str):
        return augment
    return f"<{augment!r}>"


def _is_pair_dataset(data) -> bool:
    if isinstance(data, np.ndarray) or torch.is_tensor(data) or not hasattr(data, "__getitem__"):
        return False
    try:
        first = data[0]
    except Exception:
        return False
    return isinstance(first, (tuple, list)) and len(first) == 2 and np.ndim(first[0]) >= 2


def _materialize(dataset) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    as_np = [np.stack([v.numpy() if torch.is_tensor(v) else np.asarray(v) for v in part]) for part in (xs, ys)]
    return as_np[0], as_np[1]


def _check_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _load_weights(model: nn.Module, tensors: dict, path) -> None:
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"shape mismatch {[(k, tuple(state[k].shape), tuple(expected[k].shape)) for k in wrong[:3]]}"
        )
    model.load_state_dict(state)


def _pi_overrides(config: dict, kind: str) -> dict:
    """A stored PI configuration as keyword overrides of the kind's
    transformer (tuples restored; keys the transformer does not take, such
    as a signal preset's image ``order``, dropped)."""
    transformer = SignalPersistenceImages if kind == "signal" else ImagePersistenceImages
    accepted = set(inspect.signature(transformer.__init__).parameters) - {"self", "mode", "preset"}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in accepted}


def _jsonable(config: dict) -> dict:
    out = {}
    for k, v in config.items():
        if callable(v):
            raise ValueError(f"PI parameter {k} is a callable; PI-Net checkpoints need named parameters")
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def image_pearson(pred: torch.Tensor, exact: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pearson correlation of each (sample, channel) image of ``pred`` with
    the same image of ``exact`` (both ``(N, C, R, R)``), differentiable in
    ``pred``: ``r = <a - mean a, b - mean b> / (|a - mean a| |b - mean b|)``
    over the R x R pixels.  Returns ``(r, valid)`` of shape ``(N * C,)``:
    ``valid`` is False where the exact image is constant (no correlation;
    its ``r`` is 0).  A constant prediction gets ``r = 0`` and no gradient
    from ``r`` (its correlation is undefined; :func:`pi_agreement` leaves
    such images out of its mean instead)."""
    if pred.shape != exact.shape or pred.ndim < 2:
        raise ValueError(f"image_pearson needs two (..., R, R) tensors of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(exact.shape)}")
    a = pred.reshape(-1, pred.shape[-2] * pred.shape[-1])
    b = exact.reshape(a.shape)
    a0, b0 = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    a_ss, b_ss = a0.square().sum(1), b0.square().sum(1)
    valid, defined = b_ss > 0, (a_ss > 0) & (b_ss > 0)
    one = torch.ones_like(a_ss)
    # sqrt of 1 where undefined, so the branch torch.where drops has finite gradients (no 0/0 from sqrt at 0)
    den = torch.where(defined, a_ss, one).sqrt() * torch.where(defined, b_ss, one).sqrt()
    return torch.where(defined, (a0 * b0).sum(1) / den, torch.zeros_like(den)), valid


def _mean_pearson(pred: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """The mean of :func:`image_pearson` over the images with a non-constant
    exact PI (0 when there is none), as a tensor, without a host sync."""
    r, valid = image_pearson(pred, exact)
    return (r * valid).sum() / valid.sum().clamp_min(1)


def pi_agreement(pred: np.ndarray, exact: np.ndarray) -> dict:
    """MSE, mean per-image Pearson correlation and max abs error of PIs."""
    pred = np.asarray(pred, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    if pred.shape != exact.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {exact.shape}")
    a = pred.reshape(-1, pred.shape[-2] * pred.shape[-1])
    b = exact.reshape(a.shape)
    a0, b0 = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    den = np.sqrt((a0 ** 2).sum(1) * (b0 ** 2).sum(1))
    ok = den > 0
    corr = (a0 * b0).sum(1)[ok] / den[ok]
    return {
        "mse": float(((a - b) ** 2).mean()),
        "pearson": float(corr.mean()) if ok.any() else float("nan"),
        "max_abs": float(np.abs(a - b).max()),
        "images": int(len(a)),
        "constant_images": int((~ok).sum()),
    }
