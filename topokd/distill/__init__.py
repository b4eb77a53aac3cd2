"""Topology-guided knowledge distillation: losses, models, training."""

from .augment import (
    AUGMENTATIONS,
    Augmentation,
    Compose,
    GaussianNoise,
    Identity,
    Mix1,
    Mix2,
    Removal,
    Shift,
    get_augmentation,
)
from .config import ExperimentConfig, load_config, parse_config
from .experiment import distill, prepare_data, train_teacher
from .experiment import run as run_experiment
from .losses import (
    AMDLoss,
    AttentionTransferLoss,
    DDGSDLoss,
    FactorTransferLoss,
    FusedSimilarityPreservingLoss,
    KDCrossEntropyLoss,
    KDLoss,
    MultiTeacherKDLoss,
    Paraphraser,
    SimilarityPreservingLoss,
    Translator,
    kd_objective,
    mixup,
    mixup_criterion,
    partial_mixup,
    standardize_logits,
)
from .models import (
    MODELS,
    ConvNet,
    FeatureExtractor,
    FrozenPINet,
    FusionTeacher,
    PIAugmentedStudent,
    PITeacher,
    ResNet,
    WideResNet,
    build_model,
    create_model,
    list_models,
    register_model,
    signals_to_tensor,
)

__all__ = [
    "ExperimentConfig",
    "distill",
    "load_config",
    "parse_config",
    "prepare_data",
    "run_experiment",
    "train_teacher",
    "AMDLoss",
    "AUGMENTATIONS",
    "AttentionTransferLoss",
    "Augmentation",
    "Compose",
    "ConvNet",
    "DDGSDLoss",
    "FactorTransferLoss",
    "FeatureExtractor",
    "FrozenPINet",
    "FusedSimilarityPreservingLoss",
    "FusionTeacher",
    "GaussianNoise",
    "Identity",
    "KDCrossEntropyLoss",
    "KDLoss",
    "MODELS",
    "Mix1",
    "Mix2",
    "MultiTeacherKDLoss",
    "PIAugmentedStudent",
    "PITeacher",
    "Paraphraser",
    "Removal",
    "ResNet",
    "Shift",
    "SimilarityPreservingLoss",
    "Translator",
    "WideResNet",
    "build_model",
    "create_model",
    "get_augmentation",
    "kd_objective",
    "list_models",
    "mixup",
    "mixup_criterion",
    "partial_mixup",
    "register_model",
    "signals_to_tensor",
    "standardize_logits",
]


def __getattr__(name: str):
    # The loss classes' earlier names (AttentionTransfer, ...): same classes, with a DeprecationWarning.
    from . import losses

    if name in losses.RENAMED:
        return losses.deprecated_name(name, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
