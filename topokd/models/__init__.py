"""Every topokd network, and the one model registry.

* :mod:`~topokd.models.backbones` -- WRN / ResNet / CNN classifiers, 1-D and 2-D;
* :mod:`~topokd.models.pinet` -- the PI-Net regressors (signal and image);
* :mod:`~topokd.models.composite` -- PI teacher, fusion teacher, PI-augmented student;
* :mod:`~topokd.models.hooks` -- :class:`FeatureExtractor` (forward hooks);
* :mod:`~topokd.models.registry` -- :func:`register_model`, :func:`create_model`,
  :func:`list_models`, :func:`build_model`, :data:`MODELS`.

Naming rule: one lowercase, hyphenated name per model.  A family that exists
in 1-D and 2-D (``wrn16-1``, ``resnet8``, ``cnn``) takes ``dims=1|2``;
``wrn16-1_1d`` / ``wrn16-1_2d`` are accepted spellings with ``dims`` fixed.
All other models (``signal-pinet``, ``image-pinet``, ``pi-teacher``,
``fusion-teacher``, ``pi-augmented-student``) take no ``dims``::

    from topokd.models import build_model, create_model, list_models

    student = create_model("wrn16-1", dims=1, num_classes=6, in_channels=3)
    pinet = create_model("signal-pinet", in_channels=3, resolution=50)
    list_models("wrn16-*")            # ['wrn16-1', 'wrn16-2', 'wrn16-3', 'wrn16-4', 'wrn16-8']
    model = build_model(meta["model"])  # from a topokd checkpoint's metadata

Importing any part of this package registers every model (this module
imports them all).  It does not import :mod:`topokd.pinet` or
:mod:`topokd.distill` (those import from here).
"""

from . import registry
from .registry import (
    DIMS,
    MODELS,
    ModelEntry,
    ModelRegistry,
    build_model,
    create_model,
    list_models,
    model_entry,
    register_model,
)

from . import backbones, pinet  # noqa: E402  (order: the registry first, then the models that register)
from .backbones import (  # noqa: E402
    SHORTCUTS,
    ConvNet,
    GlobalAvgPool,
    ResNet,
    ResNetBasicBlock,
    WideBasicBlock,
    WideResNet,
    signals_to_tensor,
)
from .pinet import HEADS, ImagePINet, SignalPINet  # noqa: E402
from .hooks import FeatureExtractor  # noqa: E402
from . import composite  # noqa: E402
from .composite import FrozenPINet, FusionTeacher, PIAugmentedStudent, PITeacher  # noqa: E402

__all__ = [
    "DIMS",
    "HEADS",
    "MODELS",
    "SHORTCUTS",
    "ConvNet",
    "FeatureExtractor",
    "FrozenPINet",
    "FusionTeacher",
    "GlobalAvgPool",
    "ImagePINet",
    "ModelEntry",
    "ModelRegistry",
    "PIAugmentedStudent",
    "PITeacher",
    "ResNet",
    "ResNetBasicBlock",
    "SignalPINet",
    "WideBasicBlock",
    "WideResNet",
    "build_model",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
    "signals_to_tensor",
]
