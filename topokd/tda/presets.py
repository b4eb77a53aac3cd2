"""Named parameter sets that reproduce published persistence-image pipelines.

A preset fixes the scaling of the input, the diagram options and the
:class:`~topokd.PersistenceImage` parameters; keyword arguments given to
:func:`topokd.signal_pis` / :func:`topokd.image_pis` override any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Default of every overridable parameter of the transformers
#: (:class:`~topokd.SignalPersistenceImages`, :class:`~topokd.ImagePersistenceImages`):
#: "take the preset's value".  A string, so it survives ``copy``, ``clone``
#: and JSON; no parameter accepts it as a real value.
PRESET = "preset"


def is_preset(value) -> bool:
    """Whether ``value`` is the :data:`PRESET` sentinel."""
    return isinstance(value, str) and value == PRESET


#: Keys a preset (or a keyword override) may set.
IMAGE_KEYS = ("resolution", "birth_range", "pers_range", "sigma", "weight", "normalize", "layout")
DIAGRAM_KEYS = ("min_persistence", "keep_essential")
INPUT_KEYS = ("scale", "order")
PARAM_KEYS = IMAGE_KEYS + DIAGRAM_KEYS + INPUT_KEYS

DEFAULTS = {
    "resolution": 50,
    "birth_range": (0.0, 1.0),
    "pers_range": (0.0, 1.0),
    "sigma": None,
    "weight": None,
    "normalize": None,
    "layout": "persim",
    "min_persistence": 0.0,
    "keep_essential": False,
    "scale": None,
    "order": "row",
}


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str  # "signal", "image" or "any"
    params: dict = field(default_factory=dict)
    source: str = ""

    def resolve(self, overrides: dict) -> dict:
        unknown = sorted(set(overrides) - set(PARAM_KEYS))
        if unknown:
            raise TypeError(
                f"unknown parameter(s) {unknown}; valid ones are {list(PARAM_KEYS)}"
            )
        return {**DEFAULTS, **self.params, **overrides}


PRESETS: dict[str, Preset] = {}


def _register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


#: One 8-bit intensity step is 1/255; this threshold sits halfway between one
#: and two steps, so rounding of the [0, 1] values cannot move a pair across it.
PINET_MIN_PERSISTENCE = 1.5 / 255

_register(Preset(
    "pinet-image", "image",
    dict(scale=None, order="row", min_persistence=PINET_MIN_PERSISTENCE, layout="legacy", resolution=50,
         birth_range=(0.0, 1.0), pers_range=None, sigma=0.05, normalize="max"),
    source=(
        "Som et al., 'PI-Net: A Deep Learning Approach to Extract Topological Persistence "
        "Images', CVPR Workshops 2020 (arXiv 1906.01769), CIFAR-10 ground truth: each channel "
        "(8-bit values scaled to [0, 1]) flattened row-major, H0 via ripser lower star, "
        "persim.PersImage(pixels=(50, 50), spread=0.05, specs={'minBD': 0, 'maxBD': 1}), "
        "each channel divided by its maximum.  Pairs whose persistence is at most one "
        "intensity step (1/255) are dropped: with this threshold the authors' published PIs "
        "are reproduced to 4e-7 (their float32 storage); the threshold 1e-3 quoted for the "
        "pipeline keeps those pairs and agrees only to a correlation of 0.99975 (pass "
        "min_persistence=1e-3 for that variant)."
    ),
))

_register(Preset(
    "tda-kd-signal", "signal",
    dict(scale=None, min_persistence=0.01, layout="legacy", resolution=64,
         birth_range=(-1.0, 1.0), pers_range=None, sigma=0.015, normalize="max"),
    source=(
        "Topological-persistence-guided knowledge distillation for wearable sensor data "
        "(Jeon et al.): per-channel H0 of windows scaled to [-1, 1], pairs with persistence "
        "<= 1e-3 and then lifetime <= 0.01 dropped (together: persistence <= 0.01), "
        "persim.PersImage(pixels=(64, 64), spread=0.015, specs={'minBD': -1, 'maxBD': 1}), "
        "max-normalised.  The input is not rescaled: pass windows already in [-1, 1] "
        "or add scale='minmax'."
    ),
))

_register(Preset(
    "standard-signal", "signal",
    dict(scale="standardize", min_persistence=0.0, layout="persim", resolution=50,
         birth_range=(-3.0, 3.0), pers_range=(0.0, 6.0), sigma=0.15, weight="linear",
         normalize=None),
    source=(
        "topokd's default for raw sensor windows: each (window, channel) standardised to "
        "zero mean and unit variance (constant channels become 0), H0 without the infinite "
        "bar, persim-layout 50x50 image over birth [-3, 3] x persistence [0, 6] "
        "(pixel 0.12), Gaussian standard deviation 0.15, weight = persistence, no "
        "normalisation so that image mass keeps comparing across windows."
    ),
))

_register(Preset(
    "standard-image", "image",
    dict(scale=None, order="row", min_persistence=0.0, layout="persim", resolution=50,
         birth_range=(0.0, 1.0), pers_range=(0.0, 1.0), sigma=0.02, weight="linear",
         normalize=None),
    source=(
        "topokd's default for image channels with values in [0, 1]: H0 (and H1 in cubical "
        "mode) without the infinite bar, persim-layout 50x50 image over [0, 1] x [0, 1] "
        "(pixel 0.02), Gaussian standard deviation 0.02, weight = persistence."
    ),
))

DEFAULT_PRESET = {"signal": "standard-signal", "image": "standard-image"}


def get_preset(name: str | None, kind: str) -> Preset:
    """The preset called ``name`` (``None``: the default for ``kind``)."""
    if name is None:
        name = DEFAULT_PRESET[kind]
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    preset = PRESETS[name]
    if preset.kind not in (kind, "any"):
        raise ValueError(
            f"preset {name!r} is for {preset.kind} inputs, not {kind} inputs; "
            f"use one of {[p for p, v in PRESETS.items() if v.kind in (kind, 'any')]}"
        )
    return preset


def list_presets() -> dict[str, str]:
    """Map each preset name to the description of where it comes from."""
    return {name: p.source for name, p in PRESETS.items()}
