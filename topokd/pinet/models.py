"""PI-Net architectures: re-exported from :mod:`topokd.models.pinet`, where
they live and are registered (``signal-pinet``, ``image-pinet``) in topokd's
one model registry.  ``create_model`` / ``MODELS`` here are that registry's
(:mod:`topokd.models.registry`), so ``create_model("signal-pinet",
in_channels=6)`` works as before and can build any other topokd model too.
"""

from ..models.pinet import HEADS, ImagePINet, PINetModule, SignalPINet, scale_channels
from ..models.registry import MODELS, create_model, list_models

__all__ = ["HEADS", "MODELS", "ImagePINet", "PINetModule", "SignalPINet", "create_model", "list_models", "scale_channels"]
