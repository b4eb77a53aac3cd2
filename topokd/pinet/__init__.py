"""PI-Net surrogates: CNNs that regress persistence images from raw data."""

from .estimator import PINet, image_pearson, pi_agreement
from .models import MODELS, ImagePINet, SignalPINet, create_model

__all__ = ["MODELS", "ImagePINet", "PINet", "SignalPINet", "create_model", "image_pearson", "pi_agreement"]
