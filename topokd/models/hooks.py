"""Feature extraction with forward hooks (torchdistill style): record the
outputs of named submodules during a model's forward, without changing the
model.  Feature losses (:mod:`topokd.distill.losses`) compare what it records.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["FeatureExtractor"]


class FeatureExtractor:
    """Record the outputs of named submodules during ``model``'s forward.

    Forward hooks are registered on ``model.get_submodule(name)`` for each name
    in ``layers`` (default: ``model.feature_layers``); the model itself is not
    changed.  After a forward, :attr:`features` maps each layer name to its
    latest output (kept in the autograd graph unless ``detach=True``, so
    feature losses can back-propagate through it).  Use as a context manager
    (hooks are removed on exit) or call :meth:`remove`::

        with FeatureExtractor(student, ["stage1", "stage3"]) as fx:
            logits, feats = fx(x)          # or: logits = student(x); fx.features
    """

    def __init__(self, model: nn.Module, layers: Iterable[str] | None = None, *, detach: bool = False):
        if layers is None:
            layers = getattr(model, "feature_layers", None)
            if layers is None:
                raise ValueError(f"{type(model).__name__} declares no feature_layers: pass layers=[...names...]")
        if isinstance(layers, str):
            layers = [layers]
        self.layers = tuple(layers)
        if not self.layers:
            raise ValueError("layers must name at least one submodule")
        modules = dict(model.named_modules())
        for name in self.layers:
            if name not in modules or name == "":
                close = difflib.get_close_matches(name, [n for n in modules if n], n=5)
                raise ValueError(f"{type(model).__name__} has no submodule {name!r}"
                                 + (f"; did you mean {close}?" if close else "")
                                 + " (names as in model.named_modules())")
        self.model, self.detach = model, bool(detach)
        self.features: dict[str, object] = {}
        self._handles = [modules[name].register_forward_hook(self._recorder(name)) for name in self.layers]

    def _recorder(self, name: str):
        def hook(module, inputs, output):
            if self.detach:
                output = output.detach() if torch.is_tensor(output) else output
            self.features[name] = output

        return hook

    @property
    def active(self) -> bool:
        """Whether the hooks are still registered."""
        return bool(self._handles)

    def __call__(self, *args, **kwargs) -> tuple[object, dict[str, object]]:
        """Run the model; return ``(output, {layer: feature})`` in ``layers`` order."""
        if not self.active:
            raise RuntimeError("this FeatureExtractor's hooks were removed; create a new one")
        self.features.clear()
        output = self.model(*args, **kwargs)
        missing = [n for n in self.layers if n not in self.features]
        if missing:
            raise RuntimeError(f"layers {missing} did not run during {type(self.model).__name__}.forward")
        return output, {n: self.features[n] for n in self.layers}

    def clear(self) -> None:
        self.features.clear()

    def remove(self) -> None:
        """Remove the hooks (idempotent); recorded features are kept."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "FeatureExtractor":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
