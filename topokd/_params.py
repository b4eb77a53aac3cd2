"""scikit-learn's parameter protocol without depending on scikit-learn.

:class:`ParamsMixin` gives ``get_params`` / ``set_params`` / ``repr`` with
scikit-learn's semantics to classes whose parameters are the arguments of
``__init__`` (no ``*args`` or ``**kwargs``), each stored unchanged as an
attribute of the same name, so ``sklearn.base.clone``, ``Pipeline`` and
``GridSearchCV`` work on them.
"""

from __future__ import annotations

import inspect
from collections import defaultdict

import numpy as np

_PARAM_NAMES: dict[type, tuple[str, ...]] = {}


class ParamsMixin:
    """``get_params`` / ``set_params`` / ``repr`` with scikit-learn's semantics
    (see the module docstring); validation belongs in ``fit``."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """Names of the ``__init__`` arguments, in signature order."""
        names = _PARAM_NAMES.get(cls)
        if names is None:
            names = []
            for p in inspect.signature(cls.__init__).parameters.values():
                if p.name == "self":
                    continue
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    raise RuntimeError(f"{cls.__name__}.__init__ must not take *args or **kwargs")
                names.append(p.name)
            names = _PARAM_NAMES[cls] = tuple(names)
        return list(names)

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters, ``{name: value}`` (``deep``: also
        ``name__sub`` for parameters that have ``get_params`` themselves)."""
        out = {}
        for key in self._get_param_names():
            value = getattr(self, key)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def set_params(self, **params):
        """Set parameters (``name=value``, or ``name__sub=value`` for a nested
        estimator); they take effect on the next ``fit`` / ``transform``,
        which validate them.  Returns ``self``."""
        valid = self.get_params(deep=True)
        nested = defaultdict(dict)
        for full, value in params.items():
            key, delim, sub = full.partition("__")
            if key not in valid:
                raise ValueError(
                    f"invalid parameter {key!r} for {type(self).__name__}; "
                    f"valid parameters are {self._get_param_names()}"
                )
            if delim:
                nested[key][sub] = value
            else:
                setattr(self, key, value)
                valid[key] = value
        for key, sub in nested.items():
            valid[key].set_params(**sub)
        return self

    def __repr__(self) -> str:
        """Class name and the parameters that differ from the defaults."""
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
                         if not _same(v, defaults.get(k, inspect.Parameter.empty)))
        return f"{type(self).__name__}({args})"


def _same(a, b) -> bool:
    if a is b:
        return True
    if type(a) is not type(b) or isinstance(a, np.ndarray):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - e.g. elementwise comparison
        return False
