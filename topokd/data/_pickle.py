"""Restricted unpickling: rebuild data from a pickle without running its code.

A pickle names the callables that rebuild its objects (``module.name``
globals) and the unpickler imports and calls them; a hostile file can name
``os.system`` or ``builtins.eval``.  :class:`RestrictedUnpickler` resolves a
global only when ``(module, name)`` is in the subclass's ``ALLOWED`` map,
which gives, for each allowed global, a zero-argument function returning
the object to use in its place (the real callable, or an inert stand-in).
Anything else raises :class:`pickle.UnpicklingError` naming the global,
before it is imported or called.  The C unpickler routes every global
through ``find_class`` (``GLOBAL``, ``STACK_GLOBAL``, ``INST``, ``OBJ`` and
the extension-registry opcodes ``EXT1/2/4``), and persistent ids are refused
because no ``persistent_load`` is defined.

Two users: :mod:`topokd.data.loaders` (CIFAR-10 batches: numpy arrays only)
and :mod:`topokd.data.hapt` (an old-pandas DataFrame pickle, rebuilt from
numpy arrays into stand-ins, without pandas).
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Callable


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # numpy < 2 without the numpy._core alias
        from numpy.core.multiarray import _reconstruct as fn
    return fn


def _numpy(name: str) -> Callable[[], object]:
    def get():
        import numpy as np

        return getattr(np, name)
    return get


#: The globals numpy needs to rebuild arrays pickled with protocols 0 to 4:
#: ``ndarray.__reduce__`` names ``_reconstruct`` (under ``numpy.core`` when
#: written by numpy 1.x, ``numpy._core`` by 2.x), ``ndarray`` and ``dtype``;
#: Python 3 writes ``bytes`` with protocol < 3 as ``_codecs.encode(str,
#: "latin1")``.  Object arrays rebuild their elements from the same stream,
#: so those are restricted too.
NUMPY_ARRAY_GLOBALS: dict[tuple[str, str], Callable[[], object]] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _numpy("ndarray"),
    ("numpy", "dtype"): _numpy("dtype"),
    ("_codecs", "encode"): lambda: codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals listed in ``ALLOWED``.

    Subclasses set ``ALLOWED`` (``{(module, name): factory}``, e.g.
    :data:`NUMPY_ARRAY_GLOBALS` plus their own) and may override
    :meth:`refusal` for a message that says what the file should contain.
    Note that ``(module, name)`` is matched as written in the file: a
    pickle written by Python 2 or with protocol < 3 names ``copy_reg`` and
    ``__builtin__`` (the standard ``find_class`` would map them to
    ``copyreg`` / ``builtins``; list the spelling the file uses).
    """

    ALLOWED: dict[tuple[str, str], Callable[[], object]] = {}

    def refusal(self, module: str, name: str) -> str:
        return (f"refused to load global {module}.{name}: it is not one of the {len(self.ALLOWED)} "
                "globals this file format needs, and unpickling it could run code")

    def find_class(self, module, name):
        factory = self.ALLOWED.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(self.refusal(module, name))
        return factory()
