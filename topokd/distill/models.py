"""Distillation models: re-exported from :mod:`topokd.models`, their home.

Backbones live in :mod:`topokd.models.backbones`, the PI / fusion /
PI-augmented models in :mod:`topokd.models.composite`,
:class:`FeatureExtractor` in :mod:`topokd.models.hooks`, and the one model
registry in :mod:`topokd.models.registry`.  Every name this module had is
still importable from here.

``create_model`` and ``MODELS`` are the registry's own (same call
convention: ``create_model("wrn16-1", dims=1, ...)`` or
``create_model("wrn16-1_1d", ...)``).  ``list_models`` and
``register_model`` keep their old behaviour (names with ``_1d``/``_2d``
suffixes; factories that always take ``dims``) and warn: call
:func:`topokd.models.list_models` / :func:`topokd.models.register_model`.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable

from torch import nn

from ..models import registry as _registry
from ..models.backbones import (
    SHORTCUTS,
    ConvNet,
    GlobalAvgPool,
    ResNet,
    ResNetBasicBlock,
    WideBasicBlock,
    WideResNet,
    signals_to_tensor,
)
from ..models.composite import FrozenPINet, FusionTeacher, PIAugmentedStudent, PITeacher
from ..models.hooks import FeatureExtractor
from ..models.pinet import SignalPINet
from ..models.registry import DIMS, MODELS, build_model, create_model
from ..tda.pipeline import SCALES

__all__ = [
    "DIMS",
    "MODELS",
    "SCALES",
    "SHORTCUTS",
    "ConvNet",
    "FeatureExtractor",
    "FrozenPINet",
    "FusionTeacher",
    "GlobalAvgPool",
    "PIAugmentedStudent",
    "PITeacher",
    "ResNet",
    "ResNetBasicBlock",
    "SignalPINet",
    "WideBasicBlock",
    "WideResNet",
    "build_model",
    "create_model",
    "list_models",
    "register_model",
    "signals_to_tensor",
]


def list_models(pattern: str | None = None) -> list[str]:
    """Deprecated: the 1-D/2-D families as ``"wrn16-1_1d"``, ``"wrn16-1_2d"``, ...
    filtered by ``pattern`` (e.g. ``"wrn*_2d"``).  Use
    :func:`topokd.models.list_models` (``list_models("wrn*", dims=2)``)."""
    warnings.warn("topokd.distill.list_models is deprecated: call topokd.models.list_models(pattern, dims=1|2), "
                  "which lists the registered names without the _1d/_2d suffix (create_model accepts both)",
                  DeprecationWarning, stacklevel=2)
    names = [f"{name}_{d}d" for name in _registry.MODELS for d in (_registry.MODELS.entry(name).dims or ())]
    return [n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern)]


def register_model(name: str, factory: Callable[..., nn.Module], *, overwrite: bool = False) -> Callable:
    """Deprecated: register a 1-D/2-D family whose ``factory`` takes ``dims=``.
    Use :func:`topokd.models.register_model` (``register_model(name, factory,
    dims=(1, 2))``, or as a decorator)."""
    warnings.warn("topokd.distill.register_model is deprecated: call topokd.models.register_model(name, factory, "
                  "dims=(1, 2)) (or use it as a decorator)", DeprecationWarning, stacklevel=2)
    return _registry.register_model(name, factory, dims=DIMS, overwrite=overwrite)
