"""topokd: topological features (persistence diagrams and images) and
topology-guided knowledge distillation."""

from . import data
from .tda import (
    PRESETS,
    ImagePersistenceImages,
    PersistenceImage,
    SignalPersistenceImages,
    cubical_diagrams,
    flatten_image,
    get_preset,
    image_diagrams,
    image_pis,
    list_presets,
    signal_diagrams,
    signal_pis,
    sublevel_diagrams,
)

__version__ = "0.1.0"

# PyTorch-based parts load on first use, so `import topokd` stays light.
_LAZY = {"pinet": None, "PINet": "pinet", "SignalPINet": "pinet", "ImagePINet": "pinet"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(".pinet", __name__)
        return module if _LAZY[name] is None else getattr(module, name)
    raise AttributeError(f"module 'topokd' has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "ImagePINet",
    "ImagePersistenceImages",
    "PINet",
    "PersistenceImage",
    "SignalPINet",
    "SignalPersistenceImages",
    "__version__",
    "data",
    "cubical_diagrams",
    "flatten_image",
    "get_preset",
    "image_diagrams",
    "image_pis",
    "list_presets",
    "pinet",
    "signal_diagrams",
    "signal_pis",
    "sublevel_diagrams",
]
