"""Train, evaluate, save and serve PI-Net surrogates.

:class:`PINet` wraps :class:`~topokd.pinet.SignalPINet` /
:class:`~topokd.pinet.ImagePINet` in a scikit-learn style estimator:
parameters in ``__init__``, ``fit`` / ``predict`` / ``evaluate``, checkpoints
with ``save`` / ``load``.  Targets are the exact PIs of topokd's engine for
the chosen preset (computed on the fly, or cached on disk keyed by the data
and every parameter), or arrays you pass.

Training defaults follow the reference code: MSE loss, Adam with
``beta1=0.99, eps=0.1``, batch 128, learning rate 1e-3 -> 1e-4 -> 1e-5 in
stages (at 50 % and 75 % of the epochs; the reference changed it by hand, the
boundaries are ours).  ``optimizer="adamw"`` uses AdamW with cosine decay
instead.  Early stopping on a validation split keeps the best epoch.
On CUDA training uses mixed precision; on CPU it is float32, seeded and
reproducible.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from .._validation import check_choice
from ..checkpoint import (
    CheckpointError,
    load_checkpoint,
    optimizer_tensors,
    restore_optimizer,
    save_checkpoint,
)
from ..tda.pipeline import ImagePersistenceImages, SignalPersistenceImages, scale_rows
from .models import create_model

OPTIMIZERS = ("reference", "adamw")
KINDS = ("signal", "image")
REFERENCE_STAGES = ((0.0, 1e-3), (0.5, 1e-4), (0.75, 1e-5))
TARGET_CACHE_VERSION = 1


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class PINet:
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
    optimizer : "reference" or "adamw"
    epochs, batch_size, lr : training length, batch (default 128) and the
        initial learning rate (default 1e-3).
    val_fraction : float, default 0.1
        Held-out share of the training data for validation and early
        stopping (ignored when ``fit`` gets validation data).
    patience : int, optional
        Stop after this many epochs without a better validation MSE.
    device : str, optional
        Default CUDA when available, else CPU.
    amp : bool, default True
        Mixed precision on CUDA (ignored on CPU).
    seed : int, default 0
    cache_dir : path, optional
        Where computed target PIs are cached (safetensors + JSON key).
    checkpoint : path, optional
        Saved after every epoch (atomically); ``fit(resume=True)`` resumes.
    progress : bool, default True
    """

    def __init__(self, kind: str = "signal", *, preset: str | None = None, pi_params: dict | None = None,
                 widths=(128, 256, 512, 1024), head: str = "relu", optimizer: str = "reference",
                 epochs: int = 100, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 1e-4,
                 val_fraction: float = 0.1, patience: int | None = None, device: str | None = None,
                 amp: bool = True, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                 checkpoint: str | os.PathLike | None = None, progress: bool = True):
        check_choice(kind, "kind", KINDS)
        check_choice(optimizer, "optimizer", OPTIMIZERS)
        if int(epochs) < 1 or int(batch_size) < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr}")
        self.kind, self.preset = kind, preset
        self.pi_params = dict(pi_params or {})
        self.widths, self.head, self.optimizer = tuple(widths), head, optimizer
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.weight_decay, self.val_fraction, self.patience = float(weight_decay), float(val_fraction), patience
        self.device = torch.device(device) if device else default_device()
        self.amp, self.seed = bool(amp), int(seed)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.progress = progress
        self.engine_ = self._engine()
        self.model_: nn.Module | None = None
        self.history_: list[dict] = []
        self.target_scale_ = 1.0

    # -- targets ------------------------------------------------------------
    def _engine(self):
        if self.kind == "signal":
            return SignalPersistenceImages(self.preset, **self.pi_params)
        if self.pi_params.get("mode", "flatten") != "flatten":
            raise ValueError("ImagePINet predicts one PI per channel: only mode='flatten' targets are supported")
        params = {k: v for k, v in self.pi_params.items() if k != "mode"}
        return ImagePersistenceImages("flatten", self.preset, **params)

    @property
    def resolution(self) -> int:
        shape = self.engine_.image_shape
        if shape[0] != shape[1]:
            raise ValueError(f"PI-Net needs square images, the preset gives {shape}")
        return shape[0]

    def targets(self, X) -> np.ndarray:
        """Exact PIs of ``X`` for this estimator's preset (cached if ``cache_dir``)."""
        X = self._check_input(X)
        if self.cache_dir is None:
            return self.engine_.transform(X)
        key = self._target_key(X)
        path = self.cache_dir / f"pis-{key[:24]}.safetensors"
        if path.exists():
            tensors, meta = load_checkpoint(path)
            if meta.get("key") == key:
                return tensors["pis"].numpy()
        pis = self.engine_.transform(X)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, {"pis": torch.from_numpy(np.ascontiguousarray(pis))},
                        {"key": key, "params": _jsonable(self.engine_.config_), "kind": self.kind,
                         "shape": list(X.shape)})
        return pis

    def _target_key(self, X: np.ndarray) -> str:
        h = hashlib.sha256()
        h.update(json.dumps({"v": TARGET_CACHE_VERSION, "kind": self.kind, "shape": list(X.shape),
                             "params": _jsonable(self.engine_.config_)}, sort_keys=True).encode())
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
        if self.model_ is not None:
            channels = X.shape[2] if self.kind == "signal" else X.shape[1]
            if channels != self.model_.in_channels:
                raise ValueError(f"this PI-Net was built for {self.model_.in_channels} channels, X has {channels} "
                                 f"(shape {X.shape}, layout {axes})")
        return X

    def _network_input(self, X: np.ndarray) -> torch.Tensor:
        """The input as the engine sees it (its ``scale`` applied per window/channel)."""
        X = np.array(X, dtype=np.float32)
        scale = self.engine_.config_["scale"]
        if scale is not None:
            if self.kind == "signal":
                rows = np.ascontiguousarray(X.transpose(0, 2, 1), dtype=np.float64)
                X = scale_rows(rows.reshape(-1, X.shape[1]), scale).reshape(rows.shape).transpose(0, 2, 1)
            else:
                X = scale_rows(X.reshape(-1, X.shape[2] * X.shape[3]).astype(np.float64), scale).reshape(X.shape)
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))

    def _build(self, channels: int) -> nn.Module:
        name = "signal-pinet" if self.kind == "signal" else "image-pinet"
        kwargs = dict(in_channels=channels, resolution=self.resolution, widths=self.widths, head=self.head)
        if self.kind == "signal":
            kwargs["channels_last"] = True
        self.model_config_ = {"name": name, **kwargs, "widths": list(self.widths)}
        return create_model(name, **kwargs).to(self.device)

    # -- training -----------------------------------------------------------
    def fit(self, X, Y=None, *, X_val=None, Y_val=None, resume: bool = False):
        """Train on ``X`` (targets ``Y`` or the engine's exact PIs).

        ``X`` may also be a dataset (anything with ``len`` and indexing, e.g.
        a ``torch.utils.data.Dataset``) yielding ``(input, PI)`` pairs; it is
        read once into memory.  Validation: ``(X_val, Y_val)`` if given, else
        a seeded ``val_fraction`` split of ``X``.  Returns ``self``.
        """
        if Y is None and _is_pair_dataset(X):
            X, Y = _materialize(X)
        if Y_val is None and X_val is not None and _is_pair_dataset(X_val):
            X_val, Y_val = _materialize(X_val)
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
        if self.model_ is None or not resume:
            self.history_ = []
            self.model_ = self._build(channels)
            # Train on targets of unit RMS (PIs are often ~1e-2): predictions
            # are scaled back, and the scale is stored with the model.
            rms = float(np.sqrt(np.mean(np.square(Y, dtype=np.float64))))
            self.target_scale_ = rms if rms > 0 else 1.0
        self._train(self.model_.parameters(), X, Y, X_val, Y_val, self.epochs, resume=resume)
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

    def _make_optimizer(self, params, lr: float):
        params = [p for p in params if p.requires_grad]
        if self.optimizer == "reference":
            return torch.optim.Adam(params, lr=lr, betas=(0.99, 0.999), eps=0.1)
        return torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)

    def _lr_at(self, epoch: int, epochs: int, lr: float) -> float:
        if self.optimizer == "reference":
            current = lr
            for start, rate in REFERENCE_STAGES:
                if epoch >= start * epochs:
                    current = rate * lr / REFERENCE_STAGES[0][1]
            return current
        return 0.5 * lr * (1.0 + math.cos(math.pi * epoch / epochs))

    def _train(self, params, X, Y, X_val, Y_val, epochs: int, *, resume: bool = False, lr: float | None = None):
        from tqdm.auto import tqdm

        lr = self.lr if lr is None else lr
        model, device = self.model_, self.device
        optimizer = self._make_optimizer(params, lr)
        start_epoch, best, best_state, stale = 0, math.inf, None, 0
        if resume and self.checkpoint is not None and self.checkpoint.exists():
            start_epoch, best, stale, best_state = self._resume(optimizer)
        use_amp = self.amp and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        inputs, targets = self._network_input(X), self._scaled(Y)
        val_inputs = self._network_input(X_val) if X_val is not None else None
        val_targets = self._scaled(Y_val) if X_val is not None else None
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(start_epoch):  # keep the shuffling stream identical on resume
            torch.randperm(len(inputs), generator=gen)
        bar = tqdm(range(start_epoch, epochs), disable=not self.progress, desc="PI-Net", unit="epoch")
        for epoch in bar:
            started = time.perf_counter()
            rate = self._lr_at(epoch, epochs, lr)
            for group in optimizer.param_groups:
                group["lr"] = rate
            _train_mode(model)
            total, seen = 0.0, 0
            for idx in torch.randperm(len(inputs), generator=gen).split(self.batch_size):
                xb, yb = inputs[idx].to(device), targets[idx].to(device)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, enabled=use_amp):
                    loss = nn.functional.mse_loss(model(xb), yb)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training diverged at epoch {epoch + 1} (loss {loss.item()}); "
                                             "lower lr or use optimizer='reference'")
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total += loss.item() * len(idx)
                seen += len(idx)
            record = {"epoch": epoch + 1, "lr": rate, "train_mse": total / seen}
            if val_inputs is not None:
                record["val_mse"] = self._mse(val_inputs, val_targets)
            record["seconds"] = round(time.perf_counter() - started, 4)
            self.history_.append(record)
            score = record.get("val_mse", record["train_mse"])
            if score < best:
                best, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
            bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k.endswith("mse")})
            if self.checkpoint is not None:
                self._save(self.checkpoint, optimizer=optimizer, epoch=epoch + 1, best=best, stale=stale,
                           best_state=best_state)
            if self.patience is not None and stale >= self.patience:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        self.best_score_ = best
        return self

    def _scaled(self, Y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(Y / self.target_scale_, dtype=np.float32))

    @torch.no_grad()
    def _mse(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        pred = self._forward(inputs)
        return float(((pred - targets) ** 2).mean())

    @torch.no_grad()
    def _forward(self, inputs: torch.Tensor, batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
        from tqdm.auto import tqdm

        model = self._require_model()
        model.eval()
        use_amp = self.amp and self.device.type == "cuda"
        chunks = inputs.split(batch_size or self.batch_size)
        out = []
        for xb in tqdm(chunks, disable=not progress, desc="PI-Net predict", unit="batch"):
            with torch.autocast(self.device.type, enabled=use_amp):
                out.append(model(xb.to(self.device)).float().cpu())
        return torch.cat(out)

    # -- serving ------------------------------------------------------------
    def predict(self, X, *, batch_size: int | None = None) -> np.ndarray:
        """PIs of ``X``: float32 ``(N, C, R, R)``, computed in batches."""
        self._require_model()
        X = self._check_input(X)
        out = self._forward(self._network_input(X), batch_size, progress=self.progress).numpy()
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

    def _require_model(self) -> nn.Module:
        if self.model_ is None:
            raise RuntimeError("this PINet has no trained model yet: call fit() or PINet.load()")
        return self.model_

    # -- transfer learning (PI-Net paper, section 4) ---------------------
    def fine_tune(self, X, Y=None, *, mode: str = "FA", fraction: float = 1.0, freeze: str | None = None,
                  epochs: int | None = None, lr: float | None = None, X_val=None, Y_val=None):
        """Fine-tune a trained PI-Net on a target data set.

        ``mode="FA"``: on all of ``X``; ``mode="FS"``: on a seeded random
        subset holding ``fraction`` of it.  ``freeze="encoder"`` keeps the
        convolution blocks (and their BatchNorm statistics) fixed and trains
        only the dense layer and decoder; ``None`` trains everything.
        """
        check_choice(mode, "mode", ("FA", "FS"))
        check_choice(freeze, "freeze", (None, "encoder"))
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        model = self._require_model()
        X = self._check_input(X)
        Y = self._check_targets(X, Y)
        if mode == "FS":
            keep = np.random.default_rng(self.seed).permutation(len(X))[: max(1, int(round(fraction * len(X))))]
            X, Y = X[np.sort(keep)], Y[np.sort(keep)]
        for p in model.features.parameters():
            p.requires_grad_(freeze != "encoder")
        if X_val is not None:
            X_val = self._check_input(X_val)
            Y_val = self._check_targets(X_val, Y_val)
        try:
            self._train(model.parameters(), X, Y, X_val, Y_val, epochs or self.epochs, lr=lr or self.lr * 0.1)
        finally:
            for p in model.parameters():
                p.requires_grad_(True)
        return self

    # -- checkpoints ----------------------------------------------------------
    def _metadata(self) -> dict:
        return {
            "topokd_version": __version__,
            "kind": self.kind,
            "model": self.model_config_,
            "preset": self.preset,
            "pi_params": _jsonable(self.engine_.config_),
            "training": {"optimizer": self.optimizer, "epochs": self.epochs, "batch_size": self.batch_size,
                         "lr": self.lr, "weight_decay": self.weight_decay, "seed": self.seed,
                         "val_fraction": self.val_fraction, "patience": self.patience},
            "target_scale": self.target_scale_,
            "history": self.history_,
        }

    def _save(self, path, *, optimizer=None, epoch=None, best=None, stale=None, best_state=None,
              overwrite=True) -> Path:
        tensors = {f"model.{k}": v for k, v in self._require_model().state_dict().items()}
        meta = self._metadata()
        if optimizer is not None:
            # A training checkpoint: enough to resume exactly (optimizer state,
            # epoch, and the best weights so far, which early stopping restores).
            opt_tensors, opt_meta = optimizer_tensors(optimizer)
            tensors.update(opt_tensors)
            tensors.update({f"best.{k}": v for k, v in (best_state or {}).items()})
            meta["resume"] = {"epoch": epoch, "best": best, "stale": stale, "optimizer": opt_meta}
        return save_checkpoint(path, tensors, meta, overwrite=overwrite)

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write the trained model (safetensors + JSON metadata), atomically."""
        return self._save(path, overwrite=overwrite)

    def _resume(self, optimizer) -> tuple[int, float, int, dict | None]:
        tensors, meta = load_checkpoint(self.checkpoint)
        if meta.get("model") != self.model_config_:
            raise CheckpointError(f"cannot resume from {self.checkpoint}: it holds {meta.get('model')}, "
                                  f"this run builds {self.model_config_}")
        if meta.get("pi_params") != _jsonable(self.engine_.config_):
            raise CheckpointError(f"cannot resume from {self.checkpoint}: it was trained on other PI parameters")
        _load_weights(self.model_, tensors, self.checkpoint)
        state = meta.get("resume")
        if not state:
            raise CheckpointError(f"{self.checkpoint} is a final model, not a training checkpoint; cannot resume")
        restore_optimizer(optimizer, tensors, state["optimizer"])
        self.history_ = list(meta.get("history", []))
        self.target_scale_ = float(meta.get("target_scale", 1.0))
        best = state["best"] if state["best"] is not None else math.inf
        best_state = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")} or None
        return int(state["epoch"]), float(best), int(state["stale"] or 0), best_state

    @classmethod
    def load(cls, path, *, device: str | None = None, kind: str | None = None, in_channels: int | None = None,
             resolution: int | None = None, progress: bool = True) -> "PINet":
        """A PINet from a checkpoint; ``kind``/``in_channels``/``resolution``,
        when given, must match it (else :class:`CheckpointError`)."""
        tensors, meta = load_checkpoint(path)
        model_cfg = meta.get("model")
        if not isinstance(model_cfg, dict) or "name" not in model_cfg:
            raise CheckpointError(f"{path} does not describe a PI-Net model")
        for name, want, got in (("kind", kind, meta.get("kind")), ("in_channels", in_channels,
                                model_cfg.get("in_channels")), ("resolution", resolution, model_cfg.get("resolution"))):
            if want is not None and want != got:
                raise CheckpointError(f"{path} holds a PI-Net with {name}={got!r}, you asked for {want!r}")
        training = meta.get("training", {})
        keep = ("optimizer", "epochs", "batch_size", "lr", "weight_decay", "val_fraction", "patience", "seed")
        est = cls(meta["kind"], preset=meta.get("preset"), pi_params=_pi_overrides(meta["pi_params"]),
                  widths=model_cfg["widths"], head=model_cfg["head"], device=device, progress=progress,
                  **{k: training[k] for k in keep if k in training})
        channels = model_cfg["in_channels"]
        est.model_ = est._build(channels)
        if est.model_config_ != model_cfg:
            raise CheckpointError(f"{path}: model description {model_cfg} cannot be rebuilt ({est.model_config_})")
        _load_weights(est.model_, tensors, path)
        est.history_ = list(meta.get("history", []))
        est.target_scale_ = float(meta.get("target_scale", 1.0))
        return est


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


def _train_mode(model: nn.Module) -> None:
    """``model.train()``, except BatchNorm layers whose parameters are frozen:
    they stay in eval mode so fine-tuning does not move their statistics."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()


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


def _pi_overrides(config: dict) -> dict:
    """A stored engine configuration as keyword overrides (tuples restored)."""
    out = {}
    for k, v in config.items():
        out[k] = tuple(v) if isinstance(v, list) else v
    return out


def _jsonable(config: dict) -> dict:
    out = {}
    for k, v in config.items():
        if callable(v):
            raise ValueError(f"PI parameter {k} is a callable; PI-Net checkpoints need named parameters")
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


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
