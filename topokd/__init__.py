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

__all__ = [
    "PRESETS",
    "ImagePersistenceImages",
    "PersistenceImage",
    "SignalPersistenceImages",
    "__version__",
    "data",
    "cubical_diagrams",
    "flatten_image",
    "get_preset",
    "image_diagrams",
    "image_pis",
    "list_presets",
    "signal_diagrams",
    "signal_pis",
    "sublevel_diagrams",
]
