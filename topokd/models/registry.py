"""The one model registry of topokd (timm-style), and :func:`build_model`.

Naming rule
-----------
Every model is registered once, under one lowercase, hyphenated name:

* a backbone *family* that exists in 1-D (signals ``(B, C, T)``) and 2-D
  (images / PI stacks ``(B, C, H, W)``) is one entry, e.g. ``wrn16-1``,
  ``resnet8``, ``cnn``; its factory takes ``dims=1|2``::

      create_model("wrn16-1", dims=1, num_classes=6, in_channels=3)

  ``"wrn16-1_1d"`` / ``"wrn16-1_2d"`` are accepted as spellings of the same
  entry with ``dims`` fixed (so the ``_1d`` / ``_2d`` suffix is reserved and
  cannot be part of a registered name);
* every other model has no ``dims``: ``signal-pinet``, ``image-pinet``,
  ``pi-teacher``, ``fusion-teacher``, ``pi-augmented-student``.

Configs (``model: wrn16-3``), checkpoint descriptions (``"model":
"wrn16-3"``) and :func:`list_models` use the registered names; the input
kind of the config decides ``dims``.

API
---
:func:`register_model` (decorator ``@register_model`` /
``@register_model("name")``, or the call ``register_model("name",
factory)``), :func:`create_model`, :func:`list_models` (shell-style
pattern, optional ``dims`` filter), :func:`model_entry`, :data:`MODELS` (the
registry itself, a mutable mapping ``name -> factory``) and
:func:`build_model`, which rebuilds any model from the ``"model"``
description a topokd checkpoint stores.

This module imports no model code: the modules that define models register
them (``topokd.models`` imports them all, so the registry is complete as
soon as any part of ``topokd.models`` is imported).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import os
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass

DIMS = (1, 2)
_SUFFIXES = {f"_{d}d": d for d in DIMS}
_INFER = object()  # register_model(dims=...) default: look for a `dims` parameter


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its ``name``, ``factory`` and the ``dims`` the
    factory accepts as a keyword (``None``: it takes no ``dims``)."""

    name: str
    factory: Callable
    dims: tuple[int, ...] | None = None

    @property
    def summary(self) -> str:
        """First line of the factory's docstring."""
        doc = inspect.getdoc(self.factory) or ""
        return doc.splitlines()[0] if doc else ""


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class ModelRegistry(MutableMapping):
    """``name -> factory`` for every registered model (:data:`MODELS`).

    Reading gives the factory; ``registry[name] = factory`` registers (or
    replaces) with ``dims`` inferred as in :func:`register_model`;
    ``del registry[name]`` / ``registry.pop(name)`` unregisters.
    """

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}

    def __getitem__(self, name: str) -> Callable:
        return self._entries[name].factory

    def __setitem__(self, name: str, factory: Callable) -> None:
        self.add(name, factory, overwrite=True)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries, key=_natural))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ModelRegistry({len(self)} models: {', '.join(self)})"

    def entry(self, name: str) -> ModelEntry:
        """The :class:`ModelEntry` of a registered name (no ``_1d``/``_2d`` suffix)."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(_unknown_message(name, self)) from None

    def add(self, name: str, factory: Callable, *, dims=_INFER, overwrite: bool = False) -> ModelEntry:
        if not isinstance(name, str) or not name or name != name.strip() or any(c.isspace() for c in name):
            raise ValueError(f"a model name must be a non-empty string without spaces, got {name!r}")
        if name.endswith(tuple(_SUFFIXES)):
            raise ValueError(f"register {name[:-3]!r} (with dims=(1, 2)), not {name!r}: the _1d/_2d suffix is "
                             "reserved for choosing dims of a 1-D/2-D family")
        if not callable(factory):
            raise TypeError(f"the factory of model {name!r} must be callable, got {type(factory).__name__}")
        if name in self._entries and not overwrite:
            raise ValueError(f"model {name!r} is already registered (register_model(..., overwrite=True) "
                             "replaces it)")
        entry = ModelEntry(name, factory, _entry_dims(name, factory, dims))
        self._entries[name] = entry
        return entry


def _entry_dims(name: str, factory: Callable, dims) -> tuple[int, ...] | None:
    if dims is _INFER:
        try:
            takes_dims = "dims" in inspect.signature(factory).parameters
        except (TypeError, ValueError):  # builtins without a signature
            takes_dims = False
        return DIMS if takes_dims else None
    if dims is None or dims == ():
        return None
    if isinstance(dims, int) and not isinstance(dims, bool):
        dims = (dims,)
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"dims of model {name!r} must be None or a tuple such as (1, 2), got {dims!r}") from None
    if not dims or any(d not in DIMS or isinstance(d, bool) for d in dims):
        raise ValueError(f"dims of model {name!r} must hold 1 and/or 2, got {dims!r}")
    return tuple(sorted(set(dims)))


#: The registry: every model topokd knows, by name.
MODELS = ModelRegistry()


def _spellings(registry: ModelRegistry) -> list[str]:
    names = []
    for entry in registry._entries.values():
        names.append(entry.name)
        names += [f"{entry.name}_{d}d" for d in entry.dims or ()]
    return names


def _unknown_message(name, registry: ModelRegistry) -> str:
    close = difflib.get_close_matches(str(name), _spellings(registry), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (f"unknown model {name!r}{hint} (topokd.models.list_models() lists the {len(registry)} "
            "registered models)")


def _derived_name(factory: Callable) -> str:
    name = getattr(factory, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        raise ValueError("cannot derive a model name from this factory: use register_model('name', factory)")
    return name.lower().replace("_", "-")


def register_model(name=None, factory: Callable | None = None, *, dims=_INFER, overwrite: bool = False):
    """Register a model factory (a class or a function returning an ``nn.Module``).

    Forms::

        @register_model                       # name from the factory: lowercased, '_' -> '-'
        def tiny_cnn(dims, num_classes, in_channels): ...        # -> "tiny-cnn"

        @register_model("tiny-cnn")           # explicit name
        def make(dims, **kw): ...

        register_model("tiny-cnn", make)      # plain call (returns make)

    ``dims``: the dimensionalities the factory accepts as its ``dims``
    keyword, ``(1, 2)`` for a 1-D/2-D family (then ``name_1d`` / ``name_2d``
    also reach it); ``None`` for a model without ``dims``.  By default it is
    inferred: ``(1, 2)`` when the factory's signature has a ``dims``
    parameter, else ``None``.  A name that is taken raises ``ValueError``
    unless ``overwrite=True``.  Returns the factory (so decorating leaves it
    unchanged).
    """
    if callable(name) and not isinstance(name, str):
        if factory is not None:
            raise TypeError("register_model(factory) takes no second factory; use register_model('name', factory)")
        MODELS.add(_derived_name(name), name, dims=dims, overwrite=overwrite)
        return name
    if name is not None and not isinstance(name, str):
        raise TypeError(f"register_model takes a name (str) and/or a factory, got {type(name).__name__}")
    if factory is not None:
        MODELS.add(name, factory, dims=dims, overwrite=overwrite)
        return factory

    def decorator(fn: Callable) -> Callable:
        MODELS.add(_derived_name(fn) if name is None else name, fn, dims=dims, overwrite=overwrite)
        return fn

    return decorator


def _resolve(name, dims) -> tuple[ModelEntry, int | None]:
    if not isinstance(name, str):
        raise TypeError(f"a model name must be a string, got {type(name).__name__}")
    entry, fixed = MODELS._entries.get(name), None
    if entry is None:
        for suffix, d in _SUFFIXES.items():
            base = MODELS._entries.get(name[: -len(suffix)]) if name.endswith(suffix) else None
            if base is not None and base.dims is not None and d in base.dims:
                entry, fixed = base, d
    if entry is None:
        raise ValueError(_unknown_message(name, MODELS))
    if entry.dims is None:
        if dims is not None:
            raise ValueError(f"model {name!r} takes no dims (only 1-D/2-D families such as 'wrn16-1' do), "
                             f"got dims={dims!r}")
        return entry, None
    if fixed is not None:
        if dims is not None and dims != fixed:
            raise ValueError(f"{name!r} is a {fixed}-D model but dims={dims!r} was passed")
        return entry, fixed
    if dims is None:
        raise ValueError(f"{name!r} needs dims=1 (signals (B, C, T)) or dims=2 (images/PIs (B, C, H, W)), "
                         f"or use '{name}_1d' / '{name}_2d'")
    if isinstance(dims, bool) or dims not in entry.dims:
        raise ValueError(f"model {name!r} is built with dims in {list(entry.dims)}, got dims={dims!r}")
    return entry, int(dims)


def model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` that ``create_model(name, ...)`` uses (``_1d``/``_2d`` spellings resolved)."""
    if isinstance(name, str) and name in MODELS._entries:
        return MODELS._entries[name]
    return _resolve(name, None)[0]


def create_model(name: str, **kwargs):
    """Build a registered model: ``create_model(name, **kwargs)``.

    A 1-D/2-D family needs ``dims=1`` or ``2`` (or the ``_1d`` / ``_2d``
    spelling of its name, with which ``dims`` may be omitted or must
    agree); the other keywords go to the factory (``num_classes``,
    ``in_channels``, ``dropout``, ``resolution``, ...)::

        create_model("wrn16-3", dims=1, num_classes=6, in_channels=3)
        create_model("resnet8_2d", num_classes=0, in_channels=6)
        create_model("signal-pinet", in_channels=6, resolution=50)
        create_model("pi-teacher", backbone="wrn16-3", num_classes=4, in_channels=6)

    Unknown names raise ``ValueError`` with the closest registered names.
    """
    entry, dims = _resolve(name, kwargs.pop("dims", None))
    if dims is not None:
        kwargs["dims"] = dims
    return entry.factory(**kwargs)


def list_models(pattern: str | None = None, *, dims: int | None = None) -> list[str]:
    """Registered names (naturally sorted: ``wrn10-1`` before ``wrn16-1``),
    optionally filtered by a shell-style ``pattern`` (``"wrn16-*"``,
    :func:`fnmatch.fnmatchcase`) and by ``dims`` (1 or 2: only the families
    built in that dimensionality)."""
    if dims is not None and (isinstance(dims, bool) or dims not in DIMS):
        raise ValueError(f"dims must be None, 1 or 2, got {dims!r}")
    names = []
    for name in MODELS:
        entry = MODELS._entries[name]
        if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
            continue
        if dims is not None and (entry.dims is None or dims not in entry.dims):
            continue
        names.append(name)
    return names


# ---------------------------------------------------------------------------
# checkpoint descriptions
# ---------------------------------------------------------------------------
#: The ``"inputs"`` of a distillation model description.
INPUTS = ("signal", "pi", "fusion")


def _fail(desc, why: str):
    from ..checkpoint import CheckpointError

    raise CheckpointError(f"cannot rebuild a model from the description {dict(desc)!r}: {why}")


def _need(desc: Mapping, *keys: str) -> None:
    missing = [k for k in keys if desc.get(k) is None]
    if missing:
        _fail(desc, f"it lacks {', '.join(repr(k) for k in missing)}")


def _int(desc: Mapping, key: str) -> int:
    value = desc[key]
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(desc, f"{key!r} must be an int, got {value!r}")
    return value


def _build_distill(desc: Mapping):
    """Teacher / student descriptions of the distillation trainer."""
    inputs = desc.get("inputs", "signal")
    if inputs not in INPUTS:
        _fail(desc, f"'inputs' must be one of {list(INPUTS)}, got {inputs!r}")
    _need(desc, "model", "num_classes", "in_channels")
    classes, channels = _int(desc, "num_classes"), _int(desc, "in_channels")
    if inputs == "signal" and desc.get("pinet") is not None:  # a PI-augmented student
        _need(desc, "pi_model")
        pinet, scale = desc["pinet"], {}
        if isinstance(pinet, Mapping):  # the PI-Net's own description, plus its input scaling
            pinet = dict(pinet)
            scale = {"input_scale": pinet.pop("input_scale", None)}
            pinet = build_model(pinet)
        elif isinstance(pinet, (str, os.PathLike)):
            from ..pinet import PINet  # the estimator imports the TDA engine: only when needed

            pinet = PINet.load(pinet, kind="signal", in_channels=channels, progress=False)
        else:
            _fail(desc, f"'pinet' must be the path of a PI-Net checkpoint or a PI-Net description, got {pinet!r}")
        return create_model("pi-augmented-student", signal_backbone=desc["model"], pi_backbone=desc["pi_model"],
                            pinet=pinet, num_classes=classes, in_channels=channels, **scale)
    if inputs == "signal":
        return create_model(desc["model"], dims=1, num_classes=classes, in_channels=channels)
    _need(desc, "pi_channels")
    pi_channels = _int(desc, "pi_channels")
    if inputs == "pi":
        return create_model("pi-teacher", backbone=desc["model"], num_classes=classes, in_channels=pi_channels)
    _need(desc, "pi_model")
    return create_model("fusion-teacher", signal_backbone=desc["model"], pi_backbone=desc["pi_model"],
                        num_classes=classes, in_channels=channels, pi_channels=pi_channels)


def build_model(desc: Mapping):
    """Rebuild the (untrained) model a topokd checkpoint describes.

    ``desc`` is the ``"model"`` entry of a checkpoint's metadata, in one of
    the formats topokd writes:

    * distillation teachers: ``{"name": <teacher>, "model": <family>,
      "inputs": "signal" | "pi" | "fusion", "pi_model", "num_classes",
      "in_channels", "pi_channels"}`` -> a 1-D ``model``, a ``pi-teacher``
      over ``pi_channels`` PIs, or a ``fusion-teacher`` of ``model`` (1-D)
      and ``pi_model`` (2-D);
    * distillation students: ``{"model", "inputs": "signal", "num_classes",
      "in_channels", "pinet": <PI-Net checkpoint path> | None, "pi_model"}``
      -> the 1-D ``model``, or with a ``pinet`` a ``pi-augmented-student``
      whose PI-Net is loaded from that checkpoint
      (``PINet.load(path, kind="signal", in_channels=...)``).  ``pinet``
      may instead be the PI-Net's own description (``{"name":
      "signal-pinet", ..., "input_scale": ...}``), which needs no file: the
      PI-Net's weights and output scale are in the student's state_dict;
    * PI-Net checkpoints and any registered model: ``{"name":
      "signal-pinet" | "image-pinet" | <registered name>, **keywords}`` ->
      ``create_model(name, **keywords)``.

    A ``"model"`` key selects the distillation formats (there ``"name"`` is
    the teacher's name in the config, not a model).  The result's
    ``state_dict`` has the keys and shapes of the checkpoint's weights.
    Incomplete or unknown descriptions raise
    :class:`topokd.checkpoint.CheckpointError` (one line).
    """
    from ..checkpoint import CheckpointError

    if not isinstance(desc, Mapping):
        raise CheckpointError(f"a model description must be a dict, got {type(desc).__name__}: {desc!r}")
    try:
        if "model" in desc:
            return _build_distill(desc)
        if "name" in desc:
            kwargs = dict(desc)
            return create_model(kwargs.pop("name"), **kwargs)
    except CheckpointError:
        raise
    except (TypeError, ValueError) as err:
        _fail(desc, str(err).splitlines()[0] if str(err) else type(err).__name__)
    _fail(desc, "it names no model (a 'model' family or a registered 'name')")
