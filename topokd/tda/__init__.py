"""Topological data analysis: diagrams, persistence images, presets, pipelines."""

from .diagrams import cubical_diagrams, flatten_image, image_diagrams, signal_diagrams, sublevel_diagrams
from .distributed import ZarrWrite, open_pis_zarr, write_pis_zarr
from .images import InvalidParameterError, PersistenceImage
from .pipeline import ImagePersistenceImages, SignalPersistenceImages, image_pis, signal_pis
from .presets import PRESET, PRESETS, get_preset, list_presets

__all__ = [
    "PRESET",
    "PRESETS",
    "ImagePersistenceImages",
    "InvalidParameterError",
    "PersistenceImage",
    "SignalPersistenceImages",
    "ZarrWrite",
    "cubical_diagrams",
    "flatten_image",
    "get_preset",
    "image_diagrams",
    "image_pis",
    "list_presets",
    "open_pis_zarr",
    "signal_diagrams",
    "signal_pis",
    "sublevel_diagrams",
    "write_pis_zarr",
]
