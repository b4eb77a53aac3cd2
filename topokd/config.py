"""Typed configs: YAML mappings -> nested dataclasses, with errors that name the key.

Every topokd config (the experiment configs of :mod:`topokd.distill.config`
and the compression configs of :mod:`topokd.compress.config`) is a
dataclass schema built by :func:`from_dict` from the mapping YAML gives.
The schema is the dataclass's type annotations, read with
:func:`typing.get_type_hints`; supported types:

=====================================  ==================================================
annotation                             accepted YAML values
=====================================  ==================================================
``int``                                an integer (``true`` / ``false`` are not integers)
``float``                              an integer or a float (stored as ``float``); also
                                       ``1e-3``, which YAML 1.1 reads as a string
``bool``                               ``true`` / ``false`` only (not 0 / 1, not the string "true")
``str``                                a string
``Path``                               a string; relative paths are resolved against
                                       ``base_dir`` when one is given
``None`` / ``X | None``                ``null`` (or an ``X``)
``Literal["a", "b"]``                  one of the listed values
``list[X]`` / ``tuple[X, ...]``        a list of ``X`` (``tuple[X, Y]``: exactly two)
``dict[str, X]``                       a mapping with string keys and ``X`` values
``dict`` / ``list`` / ``Any``          anything of that shape, unchecked inside
``X | Y``                              an ``X`` or a ``Y`` (the first that fits)
a dataclass                            a mapping of its fields (``null`` -> all defaults)
=====================================  ==================================================

Rules:

* Unknown keys are errors (a typo must not silently fall back to a
  default), with a "did you mean" and the allowed keys.
* A required field (one without a default) that is missing is an error; a
  field's ``metadata={"help": ...}`` is shown in that message.
* Errors are :class:`ConfigError` (a ``ValueError``) with a one-line
  message naming the full dotted path, e.g. ``teachers.signal.train.epochs
  must be an integer, got 'three'`` or ``steps[1].prune.amount must be a
  number, got 'half'``.
* A ``ValueError`` / ``TypeError`` raised by a dataclass's
  ``__post_init__`` is re-raised as a :class:`ConfigError` prefixed with the
  dataclass's path (``student.train.lr must be > 0, got -1`` when the
  message starts with a field name, ``student: <message>`` otherwise).

Two optional class attributes (not fields) refine a dataclass:

``__config_shorthand__ = "name"``
    a scalar value ``v`` (string, number, bool) stands for ``{"name": v}``
    (``data: basic-motions`` for ``data: {name: basic-motions}``).
``__config_tag__ = "prune"``
    in a union of such dataclasses (``list[PruneStep | QuantizeStep]``)
    each value is a one-key mapping ``{tag: {fields...}}`` whose key picks
    the dataclass (``- prune: {amount: 0.5}``; ``- finetune:`` with no
    body takes the defaults).

:func:`apply_overrides` sets dotted keys (``student.train.epochs=5``) in a
raw mapping before it is built, so command-line overrides go through the
same checks as the file.

This module imports neither torch nor any other part of topokd.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import os
import re
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

__all__ = ["ConfigError", "apply_overrides", "build_value", "describe", "from_dict"]


class ConfigError(ValueError):
    """An invalid config: one line naming the key, what is wrong and what is expected."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))


# ---------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------
def from_dict(cls, raw, path: str = "", *, base_dir: str | os.PathLike | None = None):
    """Build dataclass ``cls`` from the mapping ``raw`` (as YAML loaded it).

    ``path`` is where ``raw`` sits in the whole config (``"teachers.pi"``;
    ``""`` for the top level) and prefixes every error message.  Nested
    dataclasses, lists, mappings and unions are built recursively (see the
    module docstring for the accepted types).  ``base_dir`` resolves
    relative ``Path`` fields (the config file's folder).  Raises
    :class:`ConfigError`.
    """
    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        raise TypeError(f"from_dict needs a dataclass type, got {cls!r}")
    return _convert(cls, raw, path, Path(base_dir) if base_dir is not None else None)


def build_value(tp, value, path: str = "", *, base_dir: str | os.PathLike | None = None):
    """Check and convert one value against the annotation ``tp`` (``int``,
    ``str | None``, ``list[float]``, a dataclass, ...): what :func:`from_dict`
    does for each field.  Raises :class:`ConfigError`."""
    return _convert(tp, value, path, Path(base_dir) if base_dir is not None else None)


def _where(path: str) -> str:
    return path or "the config"


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join_or(items: list[str]) -> str:
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _is_union(tp) -> bool:
    return get_origin(tp) is Union or isinstance(tp, types.UnionType)


def describe(tp) -> str:
    """A phrase for what annotation ``tp`` accepts ("an integer", "a string
    or null", "one of 'sgd', 'adam'")."""
    if tp is Any or tp is object:
        return "any value"
    if tp is type(None) or tp is None:
        return "null"
    if tp is bool:
        return "a boolean (true/false)"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if isinstance(tp, type) and issubclass(tp, os.PathLike) or tp is Path:
        return "a path"
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(c) for c in get_args(tp))
    if _is_union(tp):
        tagged = _tagged_members(tp)
        if tagged:
            return "a one-key mapping " + _join_or([f"{{{t}: ...}}" for t in tagged])
        return _join_or([describe(m) for m in get_args(tp)])
    if tp in (list, tuple) or origin in (list, tuple):
        return "a list"
    if tp is dict or origin in (dict, Mapping) or tp is Mapping:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        short = getattr(tp, "__config_shorthand__", None)
        return "a mapping" + (f" (or just its {short})" if short else "")
    return getattr(tp, "__name__", str(tp))


#: ``1e-3``: YAML 1.1 (PyYAML) reads exponents without a dot as strings.
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _accepts(tp, value) -> bool:
    """Whether ``value`` has the outer shape of ``tp`` (used to pick a union member)."""
    if tp is Any or tp is object:
        return True
    if tp is type(None) or tp is None:
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)) or \
            (isinstance(value, str) and _EXPONENT.fullmatch(value.strip()) is not None)
    if tp is str:
        return isinstance(value, str)
    if tp is Path:
        return isinstance(value, (str, os.PathLike))
    origin = get_origin(tp)
    if origin is Literal:
        return any(value == c and type(value) is type(c) for c in get_args(tp))
    if _is_union(tp):
        return any(_accepts(m, value) for m in get_args(tp))
    if tp in (list, tuple) or origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if tp is dict or origin in (dict, Mapping) or tp is Mapping:
        return isinstance(value, Mapping)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, Mapping):
            return True
        return getattr(tp, "__config_shorthand__", None) is not None and isinstance(value, (str, int, float, bool))
    return isinstance(value, tp) if isinstance(tp, type) else False


def _type_error(tp, value, path: str) -> ConfigError:
    message = f"{_where(path)} must be {describe(tp)}, got {_short(value)}"
    if isinstance(value, str):
        choices = [str(c) for m in (get_args(tp) if _is_union(tp) else (tp,)) if get_origin(m) is Literal
                   for c in get_args(m)]
        close = difflib.get_close_matches(value, choices, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    return ConfigError(message)


def _convert(tp, value, path: str, base_dir: Path | None):
    if tp is Any or tp is object:
        return value
    if tp is type(None) or tp is None:
        if value is not None:
            raise _type_error(tp, value, path)
        return None
    if tp in (bool, int, float, str):
        if not _accepts(tp, value):
            raise _type_error(tp, value, path)
        return float(value) if tp is float else value
    if tp is Path:
        if not _accepts(tp, value) or str(value) == "":
            raise _type_error(tp, value, path)
        p = Path(value)
        return base_dir / p if base_dir is not None and not p.is_absolute() else p
    origin = get_origin(tp)
    if origin is Literal:
        if not _accepts(tp, value):
            raise _type_error(tp, value, path)
        return value
    if _is_union(tp):
        return _convert_union(tp, value, path, base_dir)
    if tp in (list, tuple) or origin in (list, tuple):
        return _convert_sequence(tp, value, path, base_dir)
    if tp is dict or origin in (dict, Mapping) or tp is Mapping:
        return _convert_mapping(tp, value, path, base_dir)
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path, base_dir)
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise _type_error(tp, value, path)
        return value
    raise TypeError(f"topokd.config cannot check the annotation {tp!r} (at {_where(path)})")


def _convert_union(tp, value, path, base_dir):
    tagged = _tagged_members(tp)
    if tagged:
        return _convert_tagged(tagged, value, path, base_dir)
    members = get_args(tp)
    if value is None and type(None) in members:
        return None
    candidates = [m for m in members if _accepts(m, value)]
    if not candidates:
        raise _type_error(tp, value, path)
    first_error = None
    for member in candidates:
        try:
            return _convert(member, value, path, base_dir)
        except ConfigError as err:
            first_error = first_error or err
    raise first_error


def _tagged_members(tp) -> dict[str, type]:
    members = [m for m in get_args(tp) if m is not type(None)]
    tags = {getattr(m, "__config_tag__", None): m for m in members if dataclasses.is_dataclass(m)}
    if None in tags or len(tags) != len(members) or not tags:
        return {}
    return tags


def _convert_tagged(tags: dict[str, type], value, path, base_dir):
    names = ", ".join(tags)
    if not isinstance(value, Mapping) or len(value) != 1:
        first = next(iter(tags))
        raise ConfigError(f"{_where(path)} must be a one-key mapping like {{{first}: {{...}}}} ({names}), "
                          f"got {_short(value)}")
    (key, body), = value.items()
    if key not in tags:
        raise ConfigError(f"{_where(path)}: {_unknown([key], list(tags))}")
    return _convert_dataclass(tags[key], {} if body is None else body, f"{path}.{key}" if path else key,
                              base_dir)


def _convert_sequence(tp, value, path, base_dir):
    if not isinstance(value, (list, tuple)):
        raise _type_error(tp, value, path)
    origin = get_origin(tp) or tp
    args = get_args(tp)
    if not args:
        return origin(value)
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise ConfigError(f"{_where(path)} must be a list of {len(args)} values, got {_short(value)}")
        return tuple(_convert(a, v, f"{path}[{i}]", base_dir) for i, (a, v) in enumerate(zip(args, value)))
    item = args[0]
    return origin(_convert(item, v, f"{path}[{i}]", base_dir) for i, v in enumerate(value))


def _convert_mapping(tp, value, path, base_dir):
    if not isinstance(value, Mapping):
        raise _type_error(tp, value, path)
    args = get_args(tp)
    if not args:
        return dict(value)
    key_tp, value_tp = args
    out = {}
    for k, v in value.items():
        if not _accepts(key_tp, k):
            raise ConfigError(f"{_where(path)}: key {_short(k)} must be {describe(key_tp)}")
        out[k] = _convert(value_tp, v, f"{path}.{k}" if path else str(k), base_dir)
    return out


@functools.lru_cache(maxsize=None)
def _schema(cls) -> tuple[tuple[dataclasses.Field, Any], ...]:
    hints = get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls) if f.init)


def _unknown(keys, allowed: list[str]) -> str:
    parts = []
    for key in keys:
        close = difflib.get_close_matches(str(key), allowed, n=1)
        parts.append(repr(key) + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"unknown key{'s' if len(parts) > 1 else ''} {', '.join(parts)}; "
            f"allowed: {', '.join(sorted(allowed))}")


def _convert_dataclass(cls, value, path, base_dir):
    shorthand = getattr(cls, "__config_shorthand__", None)
    if value is None:
        value = {}
    elif shorthand is not None and isinstance(value, (str, int, float, bool)):
        value = {shorthand: value}
    if not isinstance(value, Mapping):
        if not path:
            raise ConfigError(f"the config must be a YAML mapping (key: value lines), got {_short(value)}")
        raise _type_error(cls, value, path)
    schema = _schema(cls)
    allowed = [f.name for f, _ in schema]
    unknown = [k for k in value if k not in allowed]
    if unknown:
        message = _unknown(unknown, allowed)
        raise ConfigError(f"{path}: {message}" if path else message.replace("unknown key", "unknown top-level key", 1))
    kwargs = {}
    for f, tp in schema:
        sub = f"{path}.{f.name}" if path else f.name
        if f.name in value:
            kwargs[f.name] = _convert(tp, value[f.name], sub, base_dir)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            hint = f.metadata.get("help") if f.metadata else None
            raise ConfigError(f"{_where(path)} needs {f.name!r} ({hint or describe(tp)})")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(_prefixed(path, str(err), allowed)) from None


def _prefixed(path: str, message: str, fields: list[str]) -> str:
    if not path:
        return message
    head = re.split(r"[\s:.\[]", message, maxsplit=1)[0]
    return f"{path}.{message}" if head in fields else f"{path}: {message}"


# ---------------------------------------------------------------------------
# overrides
# ---------------------------------------------------------------------------
_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def _split_key(key: str) -> list:
    """``"steps[1].prune.amount"`` -> ``["steps", 1, "prune", "amount"]``."""
    parts: list = []
    for piece in key.split("."):
        m = _SEGMENT.fullmatch(piece)
        if m is None:
            raise ConfigError(f"cannot read the key {key!r}: write dotted names with optional [index], "
                              "e.g. student.train.epochs or steps[1].prune.amount")
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return parts


def apply_overrides(raw, overrides: Iterable[str] | None) -> dict:
    """A copy of the config mapping ``raw`` with each ``"KEY=VALUE"`` of
    ``overrides`` applied, in order.

    ``KEY`` is dotted (``student.train.epochs``), with ``[i]`` for list
    entries (``steps[1].prune.amount``); missing mappings on the way are
    created.  ``VALUE`` is read as YAML (``5`` -> int, ``0.5`` -> float,
    ``true`` -> bool, ``null`` -> None, ``[1, 32]`` -> list, ``adam`` ->
    string).  Nothing is validated here beyond the key's shape: build the
    result with :func:`from_dict` (unknown keys and wrong types are caught
    there, as in the file).  Raises :class:`ConfigError`.
    """
    import yaml

    out = _unshared_copy(raw) if raw is not None else {}
    if not isinstance(out, dict):
        raise ConfigError(f"the config must be a YAML mapping to apply overrides to, got {_short(raw)}")
    for item in overrides or ():
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"an override must be KEY=VALUE (e.g. student.train.epochs=5), got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"an override must be KEY=VALUE (e.g. student.train.epochs=5), got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"override {key}: cannot read {text!r} as a YAML value ({first})") from None
        _set(out, _split_key(key), value, key)
    return out


def _unshared_copy(value):
    """A deep copy of nested mappings and lists in which no node is shared:
    a YAML alias (``train: *defaults``) loads as the same object in two
    places, and ``copy.deepcopy`` keeps that, so an override of one place
    (``student.train.epochs=5``) would silently change the other too."""
    if isinstance(value, dict):
        return {k: _unshared_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared_copy(v) for v in value]
    return copy.deepcopy(value)


def _label(parts: list) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "the config"


def _set(root: dict, parts: list, value, key: str) -> None:
    node = root
    for i, part in enumerate(parts):
        label = _label(parts[:i])
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ConfigError(f"override {key}: {label} is not a list, so it has no entry [{part}]")
            if part >= len(node):
                raise ConfigError(f"override {key}: {label} has {len(node)} entries, so there is no [{part}]")
        elif not isinstance(node, dict):
            raise ConfigError(f"override {key}: {label} is {_short(node)}, not a mapping, so it has no key {part!r}")
        if i == len(parts) - 1:
            node[part] = value
            return
        nxt = node[part] if isinstance(part, int) else node.get(part)
        if nxt is None:
            nxt = [] if isinstance(parts[i + 1], int) else {}
            node[part] = nxt
        node = nxt
