"""Data sets for teacher/student training: raw windows, their PIs, labels, groups.

Every split holds the raw windows in topokd's ``(N, T, C)`` layout (models
get ``(B, C, T)`` tensors), the exact persistence images ``(N, C, R, R)`` of
a topokd preset (for PI teachers), integer labels, and, where the data have
them, the group (subject) of each window.  :func:`load_splits` builds them
from a :class:`~topokd.data.spec.DataSpec` (the ``data:`` of a config) or a
built-in name.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from ..data.spec import BUILTIN_DATA, DataSpec
from ..data.splits import group_split, stratified_split

#: The built-in data sets (the config schema's ``data.name`` choices).
DATASETS = BUILTIN_DATA


@dataclass
class Split:
    signals: np.ndarray  # (N, T, C) float32
    pis: np.ndarray | None  # (N, C, R, R) float32
    labels: np.ndarray  # (N,) int64
    groups: np.ndarray | None = None  # (N,) the subject of each window, when known

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "Split":
        return Split(self.signals[index], None if self.pis is None else self.pis[index], self.labels[index],
                     None if self.groups is None else self.groups[index])


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    classes: list
    description: str


def _as_spec(data, options: dict) -> DataSpec:
    if isinstance(data, DataSpec):
        return dataclasses.replace(data, **options) if options else data
    if isinstance(data, (str, os.PathLike)) and str(data).lower().endswith(".npz"):
        return DataSpec(path=data, **options)
    if isinstance(data, str):
        if data not in DATASETS:
            raise ValueError(f"unknown data set {data!r}; built-in: {list(DATASETS)} (or an .npz file)")
        return DataSpec(name=data, **options)
    if data is None:  # DataSpec.name of file data, from a caller that passes only the name
        raise TypeError("load_splits got data=None (the name of a DataSpec for your files?): pass the DataSpec "
                        "itself, load_splits(cfg.data, seed=cfg.seed)")
    raise TypeError(f"data must be a DataSpec, a built-in name or an .npz path, got {type(data).__name__}")


def load_splits(data: DataSpec | str = "basic-motions", *, seed: int = 0, with_pis: bool = True,
                **options) -> Splits:
    """Train / validation / test splits of a built-in data set or of your files.

    ``data`` is a :class:`~topokd.data.spec.DataSpec` (a config's ``data``),
    a built-in name, or an ``.npz`` path; ``options`` are
    :class:`~topokd.data.spec.DataSpec` fields (``val_fraction``,
    ``pi_preset``, ``pi_params``, ``synthetic_windows``, ...) that override
    the spec's, so ``load_splits("synthetic", val_fraction=0.2, seed=0)``
    still works.  PIs use ``pi_preset`` (default ``standard-signal``) and
    ``pi_params``; ``with_pis=False`` skips them.

    * ``basic-motions``: aeon's BasicMotions, official 40/40 train/test;
      validation: a stratified ``val_fraction`` of the training part.
    * ``synthetic``: :func:`topokd.data.wearable_windows` (classes differ
      in cadence, hence in the number and depth of minima), 20 % test,
      stratified validation.
    * ``hapt`` / ``hapt-12``: UCI HAPT (:func:`topokd.data.load_hapt`, 6 or
      12 classes): test = users 22-30; validation = whole training users
      (about ``val_fraction`` of the training windows), so no subject is in
      two splits.  ``groups`` = the user.
    * files (``path`` / ``X``): :func:`topokd.data.files.read_windows`.
      Without a predefined ``X_test``, ``test_fraction`` (default 0.2) of
      all windows is held out first, then ``val_fraction`` of the rest.
      With ``groups`` both are whole groups (:func:`~topokd.data.splits.group_split`),
      otherwise stratified by class (:func:`~topokd.data.splits.stratified_split`).

    Every split is seeded by ``seed``.  Raises :class:`ValueError` (one line,
    naming the file and array) for unusable data, or when a class has no
    training window left after the held-out splits.
    """
    spec = _as_spec(data, options)
    groups = groups_test = None
    held_out = "validation"
    if spec.is_file:
        from ..data.files import read_windows

        w = read_windows(spec)
        classes = w.classes
        if w.X_test is not None:
            X, y, groups, X_test, y_test, groups_test = w.X, w.y, w.groups, w.X_test, w.y_test, w.groups_test
            test_desc = "predefined test split"
            held_out = "validation"
        else:
            fraction = 0.2 if spec.test_fraction is None else spec.test_fraction
            split_by = group_split if w.groups is not None else stratified_split
            keep, held = split_by(w.groups if w.groups is not None else w.y, fraction, (seed, 1),
                                  name="test_fraction")
            X, y, X_test, y_test = w.X[keep], w.y[keep], w.X[held], w.y[held]
            if w.groups is not None:
                groups, groups_test = w.groups[keep], w.groups[held]
            test_desc = f"{fraction:g} held out as test {'by group' if w.groups is not None else 'stratified'}"
            held_out = "test and validation"
        desc = (f"{w.source}: {len(w.X) + (0 if w.X_test is None else len(w.X_test))} windows, T={X.shape[1]}, "
                f"C={X.shape[2]}, {len(classes)} classes{', with groups' if groups is not None else ''}; {test_desc}")
        by_group = groups is not None
    elif spec.name == "basic-motions":
        from ..data import load_basic_motions

        X, y, classes = load_basic_motions("train")
        X_test, y_test, _ = load_basic_motions("test")
        desc = "aeon BasicMotions (smartwatch acc+gyro, 6 ch, T=100): official 40/40 train/test"
        by_group = False
    elif spec.name == "synthetic":
        from ..data import ACTIVITIES, wearable_windows

        n, length = spec.synthetic_windows, spec.synthetic_length
        X_all, y_all = wearable_windows(n, length, 3, seed=1000 + seed)
        n_test = len(X_all) // 5
        X, y, X_test, y_test = X_all[n_test:], y_all[n_test:], X_all[:n_test], y_all[:n_test]
        classes = list(ACTIVITIES)
        desc = f"topokd.data.wearable_windows({n}, {length}, 3, seed={1000 + seed})"
        by_group = False
    else:  # hapt, hapt-12
        from ..data.hapt import load_hapt

        k = 12 if spec.name == "hapt-12" else 6
        X, y, groups, names = load_hapt("train", k)
        X_test, y_test, groups_test, _ = load_hapt("test", k)
        classes = names.tolist()
        desc = (f"UCI HAPT (smartphone acc+gyro, 6 ch, 50 Hz, T=128 step 64, {k} classes): users 1-21 train "
                "(validation: held-out users), 22-30 test")
        by_group = True

    if by_group:
        train_idx, val_idx = group_split(groups, spec.val_fraction, seed)
    else:
        train_idx, val_idx = stratified_split(y, spec.val_fraction, seed)
    absent = np.setdiff1d(np.arange(len(classes)), y[train_idx])
    if len(absent):
        raise ValueError(f"{spec.label}: class(es) {[classes[i] for i in absent]} have no training window left "
                         f"after holding out the {held_out} {'groups' if by_group else 'windows'}; use a smaller "
                         f"{'val_fraction' if held_out == 'validation' else 'test_fraction or val_fraction'} or "
                         "another seed")

    if with_pis:
        from ..tda.pipeline import SignalPersistenceImages

        engine = SignalPersistenceImages(spec.pi_preset, **(spec.pi_params or {}))
    else:
        engine = None

    def split(signals, labels, subjects):
        signals = np.ascontiguousarray(signals, dtype=np.float32)
        # PIs of the float32 windows the models see, so PIs computed on the fly
        # from a batch (topokd.distill.trainer.OnlinePIs) equal these exactly.
        pis = engine.transform(signals) if engine is not None else None
        return Split(signals, pis, np.asarray(labels, dtype=np.int64),
                     None if subjects is None else np.asarray(subjects))

    train_all = split(X, y, groups)
    return Splits(train_all.subset(train_idx), train_all.subset(val_idx), split(X_test, y_test, groups_test),
                  list(classes), desc)


__all__ = ["DATASETS", "Split", "Splits", "group_split", "load_splits", "stratified_split"]
