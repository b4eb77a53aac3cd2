"""``plot_run``: every figure a run folder supports, found by what it holds.

What is recognised (anywhere under the folder; ``epochs/``, hidden folders
and the output folder are skipped):

* ``metrics.json`` / ``metrics.csv`` (the training engine, i.e. every
  teacher / student / scratch / PI-Net run): training curves, with the best
  epoch of a ``summary.json`` beside them;
* ``results.json`` of ``topokd run`` (``teachers`` / ``student`` /
  ``scratch`` with ``test_acc``): the accuracy comparison; when several
  such files differ only in their seed, also one comparison over them with
  error bars;
* a compression ``report.json`` (``before`` / ``after``): the before/after chart;
* ``.npz`` files with ``pis`` and ``meta`` (``topokd pi`` / ``topokd demo``):
  a grid of the first samples' PIs (and, when the signal input file named in
  the metadata is still there, the first window beside its PIs); a
  ``topokd pinet predict`` output next to an exact PI file of the same shape:
  the exact vs PI-Net comparison;
* PI-Net model files (``.safetensors`` whose metadata holds a training
  ``history``) without a metrics file beside them: their training curves.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import figures as F
from .save import FORMATS, check_free, figure_paths, save_figure

LOOKED_FOR = ("metrics.json/metrics.csv (training curves), results.json (distillation comparison), "
              "report.json with before/after (compression), .npz files with 'pis' and 'meta' (persistence "
              "images), PI-Net .safetensors with a training history")
_SKIP_DIRS = {"epochs", "__pycache__", "figures"}
_ENGINE_FILES = {"best.safetensors", "last.safetensors", "train-state.safetensors"}
#: PIs drawn from a PI file: at most this many samples, channels.
MAX_SAMPLES, MAX_CHANNELS = 3, 6


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _safetensors_metadata(path: Path) -> dict | None:
    """The topokd JSON in a safetensors header, read without torch (``None`` if there is none)."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 100_000_000:
                return None
            header = json.loads(fh.read(size))
        return json.loads(header.get("__metadata__", {}).get("topokd", "null"))
    except (OSError, ValueError, struct.error, AttributeError):
        return None


def _npz_pis(path: Path):
    """``(shape, meta, read(k) -> first k samples)`` of a PI archive, or ``None``."""
    from ..io import open_array

    try:
        import zipfile

        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
        if not {"pis.npy", "meta.npy"} <= names:
            return None
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
        stream = open_array(path, "pis")
        shape = tuple(stream.shape)
        stream.close()
    except (OSError, ValueError, KeyError):
        return None
    if not isinstance(meta, dict) or len(shape) not in (3, 4, 5):
        return None

    def read(k: int) -> np.ndarray:
        s = open_array(path, "pis")
        try:
            return np.asarray(s[0:min(k, shape[0])], dtype=np.float64)
        finally:
            s.close()

    return shape, meta, read


def _name(rel: Path, what: str) -> str:
    return "-".join((*rel.parts, what)) if rel.parts else what


def _label(rel: Path, root: Path) -> str:
    return str(rel) if rel.parts else root.name


# ---------------------------------------------------------------------------
def _results_methods(results) -> dict[str, float] | None:
    """``{"teacher pi": acc, ..., "student": acc, "scratch": acc}`` of a ``topokd run`` results.json."""
    if not isinstance(results, dict):
        return None
    out = {}
    for name, r in (results.get("teachers") or {}).items():
        if isinstance(r, dict) and "test_acc" in r:
            out[f"teacher {name}"] = float(r["test_acc"])
    for key in ("student", "scratch"):
        r = results.get(key)
        if isinstance(r, dict) and "test_acc" in r:
            out[key] = float(r["test_acc"])
    return out or None


def _seedless(results: dict) -> str:
    """The results' student/scratch settings without their seed (replicates share it)."""
    def strip(r):
        settings = dict((r or {}).get("settings") or {})
        settings.pop("seed", None)
        return settings

    return json.dumps({k: strip(results.get(k)) for k in ("student", "scratch")}, sort_keys=True)


def _pi_titles(shape, samples: int, channels: int, meta: dict) -> list[str]:
    names = meta.get("channel_names") or meta.get("channels")
    titles = []
    for i in range(samples):
        for c in range(channels):
            ch = names[c] if isinstance(names, list) and c < len(names) else f"channel {c}"
            if len(shape) == 5:
                titles += [f"sample {i}, {ch}, H0", f"sample {i}, {ch}, H1"]
            else:
                titles.append(f"sample {i}, {ch}")
    return titles


def _pi_grid_job(path: Path, shape, meta, read, title: str) -> Callable:
    def make():
        samples, channels = min(shape[0], MAX_SAMPLES), min(shape[1], MAX_CHANNELS)
        pis = read(samples)[:, :channels]
        ncols = channels * (2 if len(shape) == 5 else 1)
        images = pis.reshape(-1, *shape[-2:])
        return F.plot_pi_grid(images, config=meta.get("params"), ncols=ncols,
                              titles=_pi_titles(shape, samples, channels, meta), title=title)

    return make


def _signal_window(path: Path, meta: dict, shape) -> np.ndarray | None:
    """Window 0 of the signal input a PI file was computed from, as (T, C), if it is still readable."""
    source = meta.get("input")
    if meta.get("kind") != "signal" or not isinstance(source, str):
        return None
    from ..io import open_array

    for candidate in (Path(source), path.parent / source):
        if not candidate.is_file():
            continue
        try:
            stream = open_array(candidate)
            try:
                if tuple(stream.shape) != tuple(meta.get("input_shape") or ()):
                    return None
                window = np.asarray(stream[0:1][0], dtype=np.float64)
            finally:
                stream.close()
        except (OSError, ValueError):
            return None
        c = shape[1]
        if window.shape[1] == c:
            return window
        if window.shape[0] == c:
            return window.T
        return None
    return None


def _discover(root: Path, out_dir: Path) -> list[tuple[str, Callable]]:
    jobs: list[tuple[str, Callable]] = []
    all_results: list[tuple[Path, dict]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS
                             and (here / d).resolve() != out_dir.resolve())
        files = set(filenames)
        rel = here.relative_to(root)
        label = _label(rel, root)
        has_metrics = bool({"metrics.json", "metrics.csv"} & files)
        if has_metrics:
            source = here / ("metrics.json" if "metrics.json" in files else "metrics.csv")
            jobs.append((_name(rel, "training"),
                         lambda s=source, t=label: F.plot_training_curves(s, title=f"training curves: {t}")))
        if "results.json" in files:
            results = _read_json(here / "results.json")
            methods = _results_methods(results)
            if methods:
                all_results.append((rel, results))
                jobs.append((_name(rel, "kd-comparison"),
                             lambda m=methods, t=label: F.plot_kd_comparison(
                                 {k: [v] for k, v in m.items()}, title=f"test accuracy: {t}")))
        if "report.json" in files:
            report = _read_json(here / "report.json")
            if isinstance(report, dict) and isinstance(report.get("before"), dict) \
                    and isinstance(report.get("after"), dict):
                model = (report.get("model") or {}).get("model") if isinstance(report.get("model"), dict) else None
                title = f"compression of {model}: {label}" if model else f"compression: {label}"
                jobs.append((_name(rel, "compression"),
                             lambda r=report, t=title: F.plot_compression(r["before"], r["after"], title=t)))
        jobs += _pi_jobs(here, rel, sorted(f for f in files if f.endswith(".npz")))
        if not has_metrics:
            for name in sorted(f for f in files if f.endswith(".safetensors") and f not in _ENGINE_FILES):
                meta = _safetensors_metadata(here / name)
                history = (meta or {}).get("history")
                if isinstance(history, list) and history and all(isinstance(h, dict) for h in history):
                    stem = name[: -len(".safetensors")]
                    jobs.append((_name(rel, f"{stem}-training"),
                                 lambda h=history, t=f"{label}/{name}": F.plot_training_curves(
                                     h, title=f"training curves: {t}")))
    jobs += _seed_comparison(all_results)
    return jobs


def _pi_jobs(here: Path, rel: Path, names: list[str]) -> list[tuple[str, Callable]]:
    jobs = []
    found = {}
    for name in names:
        info = _npz_pis(here / name)
        if info is not None:
            found[name] = info
    exact = {n: v for n, v in found.items() if isinstance(v[1].get("params"), dict)}
    for name, (shape, meta, read) in found.items():
        stem = name[:-4]
        label = str(rel / name) if rel.parts else name
        if name in exact:
            jobs.append((_name(rel, f"{stem}-pis"),
                         _pi_grid_job(here / name, shape, meta, read, f"persistence images: {label}")))
            window = _signal_window(here / name, meta, shape)
            if window is not None and len(shape) == 4:
                jobs.append((_name(rel, f"{stem}-signal-pis"),
                             lambda w=window, r=read, m=meta, t=label: F.plot_signal_pis(
                                 w, r(1)[0], config=m["params"], title=f"window 0 and its PIs: {t}")))
            continue
        # a PI-Net prediction: compare with an exact file of the same shape, if any
        partner = next((n for n, v in exact.items() if v[0] == shape), None)
        if partner is not None:
            p_shape, p_meta, p_read = exact[partner]
            jobs.append((_name(rel, f"{stem}-vs-{partner[:-4]}"),
                         _comparison_job(p_read, read, shape, p_meta["params"])))
        else:
            config = _model_pi_params(here, meta)
            jobs.append((_name(rel, f"{stem}-pis"),
                         _pi_grid_job(here / name, shape, {**meta, "params": config}, read,
                                      f"persistence images: {label}")))
    return jobs


def _comparison_job(exact_read, predicted_read, shape, config) -> Callable:
    """Exact vs PI-Net of channel 0 (and H0, for H0+H1 files) of the first 4 samples."""

    def make():
        k = min(shape[0], 4)
        index = (slice(None), 0) if len(shape) == 4 else (slice(None), 0, 0) if len(shape) == 5 else (slice(None),)
        suffix = ", channel 0" + (", H0" if len(shape) == 5 else "") if len(shape) > 3 else ""
        return F.plot_pi_comparison(exact_read(k)[index], predicted_read(k)[index], config=config,
                                    titles=[f"sample {i}{suffix}" for i in range(k)])

    return make


def _model_pi_params(here: Path, meta: dict) -> dict | None:
    """The PI parameters of the PI-Net model a prediction file names, if its file is readable."""
    model = meta.get("model")
    if not isinstance(model, str):
        return None
    for candidate in (Path(model), here / model):
        if candidate.is_file():
            params = (_safetensors_metadata(candidate) or {}).get("pi_params")
            return params if isinstance(params, dict) else None
    return None


def _seed_comparison(all_results: list[tuple[Path, dict]]) -> list[tuple[str, Callable]]:
    """One comparison over replicate runs (results.json files that differ only in the seed)."""
    if len(all_results) < 2:
        return []
    keys = {_seedless(r) for _, r in all_results}
    methods = [_results_methods(r) for _, r in all_results]
    if len(keys) != 1 or len({tuple(m) for m in methods}) != 1:
        return []
    merged = {k: [m[k] for m in methods] for k in methods[0]}
    n = len(all_results)
    return [("kd-comparison-over-seeds",
             lambda: F.plot_kd_comparison(merged, title=f"test accuracy over {n} runs (seeds)"))]


def plot_run(run_dir, output_dir=None, *, formats=FORMATS, overwrite: bool = False) -> list:
    """Draw every figure ``run_dir`` supports and save each as PNG and SVG.

    ``run_dir``: a run folder of ``topokd run`` / ``train-teacher`` /
    ``distill`` / ``compress`` / ``pi`` / ``demo`` / ``pinet`` (or any folder
    above them); what is drawn is decided by the files found (see the module
    docstring).  ``output_dir``: where the figures go (default
    ``run_dir/figures``), named after the sub-folder they come from (e.g.
    ``teachers-pi-training.png``, ``kd-comparison.svg``,
    ``compressed-compression.png``).  ``formats``: any of ``"png"``,
    ``"svg"``.  Existing figures are refused (``FileExistsError``, before
    anything is drawn) unless ``overwrite``.  A folder with nothing to draw
    raises ``ValueError``.  Returns the paths written, in order.
    """
    root = Path(run_dir)
    if not root.exists():
        raise FileNotFoundError(f"run folder {root} does not exist")
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; topokd plot takes a run folder")
    out_dir = Path(output_dir) if output_dir is not None else root / "figures"
    jobs = _discover(root, out_dir)
    if not jobs:
        raise ValueError(f"nothing to plot in {root}: looked for {LOOKED_FOR}")
    names = [name for name, _ in jobs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:  # pragma: no cover - names come from distinct paths
        raise ValueError(f"two figures of {root} would both be called {duplicate}")
    check_free([p for name in names for p in figure_paths(out_dir / name, formats)], overwrite)
    written = []
    for name, make in jobs:
        fig = make()
        written += save_figure(fig, out_dir / name, formats, overwrite=True)
    return written
