"""Real image patches from sample images that ship inside packages (nothing is downloaded).

:func:`load_image_patches` cuts seeded random ``size x size`` RGB patches
(default 32 x 32, the Image PI-Net's CIFAR-10 input) out of the sample
photographs bundled in the scikit-image and scikit-learn wheels, at several
scales, for training and checking the Image PI-Net on real images.

Sources
    Only images whose files are inside the installed wheels are used.
    Several ``skimage.data`` functions (``eagle``, ``skin``, ``kidney``,
    ``lily``, ``cells3d``, ...) download their file through ``pooch`` on first
    use; none of them is listed here, and every loader below reads a file of
    the package itself.  The licences are those stated by the packages (the
    functions' docstrings for scikit-image, ``sklearn/datasets/images/README.txt``
    for scikit-learn).

    RGB photographs (``sources="rgb"``, the default):

    ============================  =====  ==========================================================
    name (loader)                 split  licence as stated by the package
    ============================  =====  ==========================================================
    ``astronaut`` (skimage)       train  public domain (NASA; "no known copyright restrictions")
    ``coffee`` (skimage)          train  CC0 (photographer Rachel Michetti)
    ``rocket`` (skimage)          train  public domain (SpaceX photos)
    ``hubble_deep_field`` (sk.)   train  public domain (NASA)
    ``immunohistochemistry`` (sk) train  "no known copyright restrictions" (CMMI)
    ``retina`` (skimage)          train  CC0 1.0 (Mikael Häggström, Wikimedia Commons)
    ``china`` (sklearn)           train  CC BY 2.0, attribution: danielbuechele (Flickr)
    ``chelsea`` (skimage)         val    CC0 (photographer Stefan van der Walt)
    ``flower`` (sklearn)          val    CC BY 2.0, attribution: vultilion (Flickr; the README's
                                         attribution line repeats "danielbuechele", its link
                                         is vultilion's photostream)
    ============================  =====  ==========================================================

    Grayscale photographs, replicated to three equal channels (added by
    ``sources="all"``):

    ============================  =====  ==========================================================
    ``coins`` (skimage)           train  "no known copyright restrictions" (Brooklyn Museum)
    ``grass`` (skimage)           train  CC0 (DeviantArt, linolafett)
    ``gravel`` (skimage)          train  CC0 (CC0Textures)
    ``brick`` (skimage)           train  CC0 (CC0Textures)
    ``cell`` (skimage)            train  CC0 (quantitative phase image, P. Müller et al.)
    ``text`` (skimage)            train  public domain (Wikipedia)
    ``clock`` (skimage)           train  public domain (photographer Stefan van der Walt)
    ``camera`` (skimage)          val    CC0 (photographer Lav Varshney)
    ============================  =====  ==========================================================

    Opt-in only, by name in ``sources``: ``lfw_subset`` (skimage; 200
    grayscale 25 x 25 crops of Labeled Faces in the Wild, 100 faces and 100
    background crops; scikit-image states no licence for them, LFW's images
    are news photographs gathered from the web and distributed for research,
    hence not in any default set).  Each crop is resized to ``size`` (bilinear)
    and replicated to three channels; all 200 count as one source (train),
    since the background crops come from the same photographs as the faces.

    Left out on purpose: ``moon``, ``page`` (no licence stated),
    ``stereo_motorcycle`` (Middlebury 2014; no licence stated), ``logo``,
    ``colorwheel``, ``horse``, ``chessboard``, ``microaneurysms`` (synthetic,
    binary or too small for the coarser scales).

Patches
    Each source image is reduced to a pyramid: area averages over ``s x s``
    blocks for each ``s`` in ``scales`` (default 1, 2, 4, 8), rounded back to
    8-bit.  CIFAR-10 images are whole objects shrunk to 32 x 32, far
    coarser than a 32-pixel crop of a 512-pixel photograph; the coarser
    levels give patches with that amount of detail, and the rounding keeps
    the values multiples of 1/255, as in CIFAR-10 (the ``pinet-image``
    preset's persistence threshold sits between one and two such steps).
    A patch: a source image drawn uniformly among the selected ones, a level
    drawn uniformly among those at least ``size`` pixels in both directions,
    a uniform position, then (``flip=True``) a horizontal flip with
    probability 1/2.  Patches whose three channels all have a standard
    deviation below ``min_std`` (flat sky, the retina's black border) are
    drawn again.  Everything comes from ``numpy.random.default_rng(seed)``,
    so a seed gives the same patches on every machine.

Split
    By source image, fixed (the ``split`` column above): ``"val"`` patches
    come only from ``chelsea``, ``flower`` (and ``camera`` with
    ``sources="all"``), ``"train"`` patches only from the others, so no image
    contributes to both; ``"all"`` uses every selected source.
    :data:`IMAGE_SOURCES` holds the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["IMAGE_SOURCES", "ImageSource", "image_source_names", "load_image_patches"]

_HINT = "install it with `pip install 'topokd[data]'` (or `pip install scikit-image scikit-learn`)"


@dataclass(frozen=True)
class ImageSource:
    """One bundled sample image: where it comes from, its split and licence."""

    name: str
    package: str  # "skimage" or "sklearn"
    color: str  # "rgb", "gray" or "lfw"
    split: str  # "train" or "val"
    licence: str


IMAGE_SOURCES: dict[str, ImageSource] = {s.name: s for s in (
    ImageSource("astronaut", "skimage", "rgb", "train", "public domain (NASA)"),
    ImageSource("coffee", "skimage", "rgb", "train", "CC0 (Rachel Michetti)"),
    ImageSource("rocket", "skimage", "rgb", "train", "public domain (SpaceX)"),
    ImageSource("hubble_deep_field", "skimage", "rgb", "train", "public domain (NASA)"),
    ImageSource("immunohistochemistry", "skimage", "rgb", "train", "no known copyright restrictions (CMMI)"),
    ImageSource("retina", "skimage", "rgb", "train", "CC0 1.0 (Mikael Häggström)"),
    ImageSource("china", "sklearn", "rgb", "train", "CC BY 2.0 (danielbuechele, Flickr)"),
    ImageSource("chelsea", "skimage", "rgb", "val", "CC0 (Stefan van der Walt)"),
    ImageSource("flower", "sklearn", "rgb", "val", "CC BY 2.0 (vultilion, Flickr)"),
    ImageSource("coins", "skimage", "gray", "train", "no known copyright restrictions (Brooklyn Museum)"),
    ImageSource("grass", "skimage", "gray", "train", "CC0 (linolafett, DeviantArt)"),
    ImageSource("gravel", "skimage", "gray", "train", "CC0 (CC0Textures)"),
    ImageSource("brick", "skimage", "gray", "train", "CC0 (CC0Textures)"),
    ImageSource("cell", "skimage", "gray", "train", "CC0 (P. Müller et al.)"),
    ImageSource("text", "skimage", "gray", "train", "public domain (Wikipedia)"),
    ImageSource("clock", "skimage", "gray", "train", "public domain (Stefan van der Walt)"),
    ImageSource("camera", "skimage", "gray", "val", "CC0 (Lav Varshney)"),
    ImageSource("lfw_subset", "skimage", "lfw", "train",
                "not stated by scikit-image (LFW: news photographs, distributed for research)"),
)}

SPLITS = ("train", "val", "all")


def image_source_names(sources: str | Iterable[str] = "rgb", split: str = "all") -> list[str]:
    """The source images ``load_image_patches(sources=..., split=...)`` draws from, in table order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if isinstance(sources, str):
        if sources == "rgb":
            names = [n for n, s in IMAGE_SOURCES.items() if s.color == "rgb"]
        elif sources == "all":
            names = [n for n, s in IMAGE_SOURCES.items() if s.color in ("rgb", "gray")]
        elif sources in IMAGE_SOURCES:
            names = [sources]
        else:
            raise ValueError(f"sources must be 'rgb', 'all' or names from {list(IMAGE_SOURCES)}, got {sources!r}")
    else:
        names = list(dict.fromkeys(sources))
        unknown = [n for n in names if n not in IMAGE_SOURCES]
        if unknown or not names:
            raise ValueError(f"unknown image sources {unknown or names!r}; known: {list(IMAGE_SOURCES)}")
        names = [n for n in IMAGE_SOURCES if n in names]
    return [n for n in names if split == "all" or IMAGE_SOURCES[n].split == split]


def load_image_patches(n: int = 1000, *, split: str = "train", sources: str | Iterable[str] = "rgb",
                       size: int = 32, scales: Sequence[int] = (1, 2, 4, 8), flip: bool = True,
                       min_std: float = 0.02, seed: int = 0, return_sources: bool = False):
    """``n`` seeded random RGB patches of bundled sample photographs, float32 ``(n, 3, size, size)`` in [0, 1].

    Parameters
    ----------
    n : int
        Number of patches.
    split : "train", "val" or "all"
        Which source images (split by image, see the module docstring:
        validation images are ``chelsea``, ``flower`` and, with
        ``sources="all"``, ``camera``; no image is in both splits).
    sources : "rgb", "all", a source name or a list of names
        ``"rgb"``: the nine colour photographs; ``"all"``: also the eight
        grayscale ones (three equal channels); names from
        :data:`IMAGE_SOURCES` (``"lfw_subset"`` only this way).
    size : int
        Patch side (32: CIFAR-10, the Image PI-Net's input).
    scales : ints >= 1
        Block-average factors of the image pyramid the patches are cut from.
    flip : bool
        Flip each patch horizontally with probability 1/2.
    min_std : float
        Patches with every channel's standard deviation below this are
        drawn again (0 keeps flat patches).
    seed : int
        Seed of :func:`numpy.random.default_rng`; the patches depend only on it
        and the other arguments.
    return_sources : bool
        Also return the name of each patch's source image (an array of str).

    Returns
    -------
    patches : float32 ndarray ``(n, 3, size, size)``
        Values are multiples of 1/255 in [0, 1] (8-bit, as CIFAR-10).
    names : ndarray of str ``(n,)``
        Only with ``return_sources=True``.

    Raises
    ------
    ImportError
        If scikit-image (or, for ``china`` / ``flower``, scikit-learn) is not
        installed (``pip install 'topokd[data]'``).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be an integer >= 1, got {size!r}")
    if not isinstance(scales, Iterable) or isinstance(scales, (str, bytes)):
        raise ValueError(f"scales must be a sequence of integers >= 1, e.g. (1, 2, 4, 8), got {scales!r}")
    scales = tuple(scales)
    if not scales or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in scales):
        raise ValueError(f"scales must be integers >= 1, got {scales!r}")
    if not (isinstance(min_std, (int, float)) and 0 <= min_std < 0.5):
        raise ValueError(f"min_std must be a number in [0, 0.5), got {min_std!r}")
    names = image_source_names(sources, split)
    if not names:
        raise ValueError(f"no {split!r} source image among {sources!r} (see topokd.data.IMAGE_SOURCES)")
    size, scales = int(size), tuple(sorted({int(s) for s in scales}))
    # levels[name]: list of uint8 (k, H, W, 3) stacks (k = 1 except lfw_subset)
    levels = {name: _levels(name, size, scales) for name in names}
    empty = [name for name, lv in levels.items() if not lv]
    if empty:
        raise ValueError(f"source images {empty} are smaller than {size} pixels at every scale {scales}")
    rng = np.random.default_rng(seed)
    out = np.empty((int(n), size, size, 3), dtype=np.uint8)
    which = np.empty(int(n), dtype=object)
    threshold = float(min_std) * 255.0
    attempts, limit = 0, 100 * int(n) + 1000
    i = 0
    while i < n:
        attempts += 1
        if attempts > limit:
            raise RuntimeError(f"could not find {n} patches with a channel std >= {min_std}; lower min_std")
        name = names[rng.integers(len(names))]
        stack = levels[name][rng.integers(len(levels[name]))]
        k = rng.integers(stack.shape[0])
        y = rng.integers(stack.shape[1] - size + 1)
        x = rng.integers(stack.shape[2] - size + 1)
        patch = stack[k, y:y + size, x:x + size]
        if flip and rng.random() < 0.5:
            patch = patch[:, ::-1]
        if threshold > 0 and patch.reshape(-1, 3).std(axis=0).max() < threshold:
            continue
        out[i], which[i] = patch, name
        i += 1
    patches = (out.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0))
    patches = np.ascontiguousarray(patches)
    return (patches, which.astype(str)) if return_sources else patches


# ---------------------------------------------------------------------------
# Source images and pyramids (cached per process; callers get read-only views)
# ---------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _levels(name: str, size: int, scales: tuple[int, ...]) -> list[np.ndarray]:
    """The pyramid levels of ``name`` at least ``size`` pixels high and wide, uint8 ``(k, H, W, 3)``."""
    img = _source_image(name)
    if IMAGE_SOURCES[name].color == "lfw":
        return [_resized_stack(img, size)]
    out = []
    for s in scales:
        h, w = img.shape[1] // s, img.shape[2] // s
        if h < size or w < size:
            continue
        block = img[:, :h * s, :w * s].reshape(img.shape[0], h, s, w, s, 3).mean(axis=(2, 4), dtype=np.float64)
        level = np.clip(np.rint(block), 0, 255).astype(np.uint8)
        level.setflags(write=False)
        out.append(level)
    return out


@lru_cache(maxsize=None)
def _source_image(name: str) -> np.ndarray:
    """uint8 ``(k, H, W, 3)``: the bundled image (k = 1), or the 200 LFW crops."""
    source = IMAGE_SOURCES[name]
    if source.package == "sklearn":
        try:
            from sklearn.datasets import load_sample_image
        except ImportError as err:
            raise ImportError(f"the {name!r} sample image comes from scikit-learn, which could not be imported "
                              f"({err}); {_HINT}") from err
        img = np.asarray(load_sample_image(f"{name}.jpg"))
    else:
        try:
            import skimage.data as skdata
        except ImportError as err:
            raise ImportError(f"the {name!r} sample image comes from scikit-image, which could not be imported "
                              f"({err}); {_HINT}") from err
        img = np.asarray(getattr(skdata, name)())
    if source.color == "lfw":
        # float in [0, 1], (200, 25, 25)
        img = np.clip(np.rint(np.asarray(img, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
        img = np.repeat(img[..., None], 3, axis=-1)
    else:
        if img.dtype != np.uint8:
            raise ValueError(f"sample image {name!r} is {img.dtype}, expected uint8")
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        img = img[None, ..., :3]
    img = np.ascontiguousarray(img)
    img.setflags(write=False)
    return img


def _resized_stack(stack: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(k, h, w, 3)`` -> ``(k, size, size, 3)``, bilinear, rounded to 8 bits."""
    from skimage.transform import resize

    k = stack.shape[0]
    if stack.shape[1:3] == (size, size):
        return stack
    out = resize(stack.astype(np.float64) / 255.0, (k, size, size, 3), order=1, mode="edge", anti_aliasing=True)
    out = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out
