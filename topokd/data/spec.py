"""The ``data`` section of topokd's configs: a built-in data set or your own files.

:class:`DataSpec` is the one schema of ``data:`` in the experiment configs
(:mod:`topokd.distill.config`) and the compression configs
(:mod:`topokd.compress.config`), built by :func:`topokd.config.from_dict`
(paths relative to the config file, unknown keys and wrong types refused
with the key's path); :func:`topokd.distill.data.load_splits` turns it into
train / validation / test splits.  This module imports only the standard
library.

Schema (defaults in brackets)::

    data: hapt                         # shorthand for {name: hapt}
    data:
      name: basic-motions | synthetic | hapt | hapt-12   # [basic-motions when no files are given]
      # -- or your own windows (instead of name) --
      path: windows.npz                # arrays X (N, T, C), y (N,) and optionally groups (N,),
                                       #   X_test, y_test, groups_test (a predefined test split)
      X: x.npy                         # ... or one .npy per array: X and y required,
      y: y.npy                         #   groups, X_test, y_test, groups_test optional
      channels_first: false            # [false] the files hold (N, C, T)
      test_fraction: 0.2               # [0.2] held out as test when the files have no X_test
      # -- for every source --
      val_fraction: 0.2                # [0.2] of the training part, held out for validation
      pi_preset: STR | null            # PIs of PI teachers [null: standard-signal] (ignored by compress)
      pi_params: {KEY: VALUE}          # [{}]
      synthetic_windows: 600           # [600] synthetic only
      synthetic_length: 100            # [100] synthetic only

Labels (``y``) may be integers or strings; they are mapped to ``0..K-1`` in
sorted order and the sorted values are kept as the class names.  ``groups``
(the subject, session or recording of each window, ints or strings) makes
every split group-wise: no group is in two of train / validation / test.
Without groups the held-out splits are stratified by class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

#: The built-in data sets (:func:`topokd.distill.data.load_splits` knows each).
DataName = Literal["basic-motions", "synthetic", "hapt", "hapt-12"]
BUILTIN_DATA = get_args(DataName)
#: The arrays of a user's windows: the keys of an .npz, and the .npy fields of DataSpec.
ARRAYS = ("X", "y", "groups", "X_test", "y_test", "groups_test")


@dataclass
class DataSpec:
    """Where the windows come from and how they are split (see the module docstring)."""

    __config_shorthand__ = "name"

    name: DataName | None = None
    path: Path | None = None
    X: Path | None = None
    y: Path | None = None
    groups: Path | None = None
    X_test: Path | None = None
    y_test: Path | None = None
    groups_test: Path | None = None
    channels_first: bool = False
    val_fraction: float = 0.2
    test_fraction: float | None = None
    pi_preset: str | None = None
    pi_params: dict = field(default_factory=dict)
    synthetic_windows: int = 600
    synthetic_length: int = 100

    def __post_init__(self):
        for key in ("path", *ARRAYS):
            value = getattr(self, key)
            if value is not None and not isinstance(value, Path):
                setattr(self, key, Path(value))
        npy = [k for k in ARRAYS if getattr(self, k) is not None]
        if self.name is not None and (self.path is not None or npy):
            given = "path" if self.path is not None else npy[0]
            raise ValueError(f"name ({self.name!r}) and {given} are both given: data is either a built-in set "
                             "(name) or your files (path, or X and y), not both")
        if self.path is not None and npy:
            raise ValueError(f"path and {npy[0]} are both given: use path for one .npz holding the arrays, or X, y "
                             "(, groups, X_test, y_test, groups_test) for .npy files, not both")
        if self.path is not None and self.path.suffix.lower() != ".npz":
            raise ValueError(f"path must be an .npz file (arrays X, y, ...), got {str(self.path)!r}; for .npy files "
                             "give X: and y: instead")
        for key in npy:
            if getattr(self, key).suffix.lower() != ".npy":
                raise ValueError(f"{key} must be an .npy file, got {str(getattr(self, key))!r}; for an .npz give "
                                 "path: instead (its arrays are read by name)")
        if npy and self.X is None:
            raise ValueError(f"{npy[0]} is given without X: give X (the windows .npy) and y (the labels .npy)")
        if self.X is not None and self.y is None:
            raise ValueError("y is missing: with X give y, the labels .npy (one label per window)")
        if (self.X_test is None) != (self.y_test is None):
            raise ValueError(f"{'y_test' if self.y_test is None else 'X_test'} is missing: a predefined test split "
                             "needs both X_test and y_test")
        if self.groups_test is not None and self.X_test is None:
            raise ValueError("groups_test is given without X_test and y_test")
        if self.name is None and not self.is_file:
            self.name = "basic-motions"
        if not (math.isfinite(self.val_fraction) and 0.0 < self.val_fraction < 1.0):
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.test_fraction is not None:
            if not (math.isfinite(self.test_fraction) and 0.0 < self.test_fraction < 1.0):
                raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}")
            if not self.is_file or self.X_test is not None:
                raise ValueError(f"test_fraction: {self.label} has a predefined test split; test_fraction applies "
                                 "only to your files without X_test")
        if self.channels_first and not self.is_file:
            raise ValueError(f"channels_first applies to your files (path or X), not to the built-in {self.name}")
        if self.pi_preset is not None:
            from ..tda.presets import PRESETS

            if self.pi_preset not in PRESETS:
                raise ValueError(f"pi_preset must be one of {', '.join(sorted(PRESETS))} (or null), "
                                 f"got {self.pi_preset!r}")
        if self.synthetic_windows < 1:
            raise ValueError(f"synthetic_windows must be >= 1, got {self.synthetic_windows!r}")
        if self.synthetic_length < 1:
            raise ValueError(f"synthetic_length must be >= 1, got {self.synthetic_length!r}")

    @property
    def is_file(self) -> bool:
        """Whether the windows come from the user's files (``path`` or ``X``)."""
        return self.path is not None or self.X is not None

    @property
    def label(self) -> str:
        """The built-in name, or the file the windows are read from (for messages)."""
        if self.name is not None:
            return self.name
        return str(self.path if self.path is not None else self.X)

    def to_dict(self) -> dict:
        """The fields as plain YAML values (paths as strings; ``None`` fields left out)."""
        import dataclasses

        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


__all__ = ["ARRAYS", "BUILTIN_DATA", "DataName", "DataSpec"]
