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
_LAZY = {"pinet": ("pinet", None), "PINet": ("pinet", "PINet"), "SignalPINet": ("pinet", "SignalPINet"),
         "ImagePINet": ("pinet", "ImagePINet"), "distill": ("distill", None), "compress": ("compress", None),
         "models": ("models", None), "engine": ("engine", None)}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(f".{module_name}", __name__)
        return module if attr is None else getattr(module, attr)
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
    "compress",
    "data",
    "distill",
    "engine",
    "models",
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
