"""Figures of persistence diagrams, persistence images, training runs,
distillation comparisons and compression reports.

Every function draws on a :class:`matplotlib.figure.Figure` made directly
(no pyplot: nothing global, no display needed) and returns it; save it with
:func:`topokd.plot.save_figure` (PNG and SVG).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from . import _style as S
from ._style import styled

__all__ = ["plot_diagram", "plot_pi", "plot_pi_grid", "plot_pi_comparison", "plot_signal_pis",
           "plot_training_curves", "plot_kd_comparison", "plot_compression", "pi_extent", "load_metrics"]


# ---------------------------------------------------------------------------
# persistence diagrams
# ---------------------------------------------------------------------------
def _diagram_list(diagram) -> list[np.ndarray]:
    """``[H0, H1, ...]`` as float (k, 2) arrays from one array or a sequence of them."""
    if isinstance(diagram, np.ndarray) and diagram.ndim == 2:
        parts = [diagram]
    elif isinstance(diagram, np.ndarray) and diagram.size == 0:
        parts = [diagram.reshape(0, 2)]
    elif isinstance(diagram, Sequence) and not isinstance(diagram, str) and (
            len(diagram) == 0 or all(np.ndim(d) == 2 or np.size(d) == 0 for d in diagram)):
        parts = list(diagram)
    else:
        parts = [np.asarray(diagram)]
    out = []
    for dim, d in enumerate(parts):
        arr = np.asarray(d, dtype=np.float64)
        if arr.size == 0:
            arr = arr.reshape(0, 2)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"H{dim} diagram must be a (k, 2) array of (birth, death) pairs, got shape {arr.shape}")
        out.append(arr[~np.isnan(arr).any(axis=1)])
    return out


@styled
def plot_diagram(diagram, ax=None, *, title=None, labels: Sequence[str] | None = None):
    """Scatter of a persistence diagram: birth (x) against death (y).

    ``diagram``: a ``(k, 2)`` array of (birth, death) pairs (taken as H0) or
    a sequence ``[h0, h1, ...]`` of such arrays; each homology dimension has
    its own colour and marker and a legend entry with its number of points.
    The diagonal ``death = birth`` is drawn; points with an infinite death
    (essential classes) are drawn as triangles on a dashed line at the top
    edge labelled ``death = ∞``.  ``ax``: draw into these axes (default: a
    new 4.2 x 4.2 inch figure); ``labels`` override ``"H0", "H1", ...``.
    Returns the Figure.
    """
    parts = _diagram_list(diagram)
    fig, ax = S.figure_and_axes(ax, 4.4, 4.2)
    finite_values = np.concatenate([d[np.isfinite(d)] for d in parts] + [np.zeros(0)])
    if finite_values.size:
        lo, hi = float(finite_values.min()), float(finite_values.max())
    else:
        lo, hi = 0.0, 1.0
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    pad = 0.06 * span
    has_essential = any(np.isinf(d[:, 1]).any() for d in parts)
    top = hi + (2.5 * pad if has_essential else pad)  # the row of essential points
    limits = (lo - pad, top + (pad if has_essential else 0.0))
    ax.plot(limits, limits, color="black", lw=0.9, zorder=1, label="death = birth")
    markers = ("o", "s", "D")
    for dim, d in enumerate(parts):
        name = labels[dim] if labels is not None and dim < len(labels) else f"H{dim}"
        colour = S.HOMOLOGY_COLOURS[dim % len(S.HOMOLOGY_COLOURS)]
        finite = d[np.isfinite(d[:, 1])]
        essential = d[np.isinf(d[:, 1])]
        ax.scatter(finite[:, 0], finite[:, 1], s=22, color=colour, marker=markers[dim % 3], alpha=0.8,
                   edgecolors="white", linewidths=0.4, zorder=3, label=f"{name} ({len(finite)})")
        if len(essential):
            ax.scatter(essential[:, 0], np.full(len(essential), top), s=55, marker="^", color=colour,
                       edgecolors="black", linewidths=0.6, zorder=4,
                       label=f"{name} essential, death = ∞ ({len(essential)})")
    if has_essential:
        ax.axhline(top, color=S.GREY, lw=0.8, ls="--", zorder=1)
        ax.annotate("death = ∞", xy=(0.02, top), xycoords=("axes fraction", "data"), xytext=(0, 3),
                    textcoords="offset points", va="bottom", ha="left", fontsize=8, color=S.GREY)
    ax.set_xlim(limits)
    ax.set_ylim(limits)
    ax.set_aspect("equal")
    ax.set_xlabel("birth")
    ax.set_ylabel("death")
    ax.legend(loc="lower right", frameon=True, framealpha=0.9)
    ax.set_title(title if title is not None else "persistence diagram")
    return fig


# ---------------------------------------------------------------------------
# persistence images
# ---------------------------------------------------------------------------
def _as_config(config) -> dict | None:
    """A plain dict of image parameters from a dict, a transformer (``config_``)
    or a :class:`~topokd.PersistenceImage` (``get_params()``)."""
    if config is None:
        return None
    if hasattr(config, "config_"):
        return dict(config.config_)
    if not isinstance(config, Mapping) and hasattr(config, "get_params"):
        return dict(config.get_params())
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"config must be a dict of PI parameters (birth_range, pers_range, layout), "
                    f"got {type(config).__name__}")


def pi_extent(config, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """``(birth_low, birth_high, pers_low, pers_high)`` that an image of
    ``shape`` covers when drawn with birth on x and persistence on y.

    ``persim`` layout: exactly ``birth_range`` x ``pers_range``.  ``legacy``
    layout (``persim.PersImage``): pixel ``i`` starts at
    ``linspace(minBD, maxBD, n)[i]``, so the drawn extent runs from
    ``minBD`` to ``minBD + n * (maxBD - minBD) / (n - 1)`` (a little past
    ``maxBD``; likewise in persistence from 0) -- each drawn pixel starts
    where the computed one does.
    """
    cfg = _as_config(config) or {}
    layout = cfg.get("layout", "persim")
    b0, b1 = (float(v) for v in cfg.get("birth_range", (0.0, 1.0)))
    if layout == "persim":
        p0, p1 = (float(v) for v in (cfg.get("pers_range") or (0.0, 1.0)))
        return b0, b1, p0, p1
    if layout != "legacy":
        raise ValueError(f"unknown PI layout {layout!r}; expected 'persim' or 'legacy'")
    n_pers, n_birth = shape
    step_b = (b1 - b0) / (n_birth - 1) if n_birth > 1 else b1 / n_pers
    step_p = b1 / (n_pers - 1) if n_pers > 1 else b1
    return b0, b0 + n_birth * step_b, 0.0, n_pers * step_p


def _expected_shape(cfg: dict) -> tuple[int, int] | None:
    res = cfg.get("resolution")
    if res is None:
        return None
    nb, npers = (int(res), int(res)) if np.ndim(res) == 0 else (int(res[0]), int(res[1]))
    return (nb, npers) if cfg.get("layout", "persim") == "persim" else (npers, nb)


def _display_image(pi: np.ndarray, cfg: dict | None) -> np.ndarray:
    """The stored PI as rows = persistence bins (bottom to top), columns = birth bins."""
    layout = (cfg or {}).get("layout", "persim")
    if layout == "legacy":
        return pi[::-1, :]  # stored [n_pers - 1 - persistence_bin, birth_bin]
    return pi.T  # stored [birth_bin, persistence_bin]


@styled
def plot_pi(pi, ax=None, *, config=None, title=None, colorbar=True, vmin=None, vmax=None, cmap=None,
            xlabel: bool = True, ylabel: bool = True):
    """Heatmap of one persistence image with birth on x and persistence on y.

    ``pi``: an ``(R, R)`` (or ``(Rb, Rp)``) image as topokd stores it.
    ``config``: the image parameters -- a dict with ``birth_range``,
    ``pers_range`` and ``layout`` (a transformer's ``config_``, a preset's
    ``params``, the ``params`` of a ``topokd pi`` file), or the transformer
    itself.  ``layout="persim"`` images are indexed ``[birth_bin,
    persistence_bin]``, ``"legacy"`` ones ``[R - 1 - persistence_bin,
    birth_bin]``; either way the axes show birth (x) and persistence (y)
    over their real ranges (see :func:`pi_extent`), low persistence at the
    bottom.  Without ``config`` the image is taken as persim-layout and the
    axes count pixels.  ``colorbar``: add one labelled "PI intensity";
    ``vmin`` / ``vmax`` / ``cmap``: the colour scale (default: the image's
    range, viridis); ``xlabel`` / ``ylabel``: label the axes.
    Returns the Figure.
    """
    arr = np.asarray(pi, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"plot_pi draws one (R, R) image, got shape {arr.shape}; index one sample and channel")
    cfg = _as_config(config)
    fig, ax = S.figure_and_axes(ax, 4.6 if colorbar else 4.0, 3.8)
    if cfg is not None:
        expected = _expected_shape(cfg)
        if expected is not None and expected != arr.shape:
            raise ValueError(f"the PI has shape {arr.shape} but its config (resolution {cfg.get('resolution')}, "
                             f"layout {cfg.get('layout', 'persim')!r}) gives {expected}")
        image = _display_image(arr, cfg)
        extent = pi_extent(cfg, image.shape)
        labels = ("birth", "persistence")
    else:
        image = _display_image(arr, None)
        extent = (-0.5, image.shape[1] - 0.5, -0.5, image.shape[0] - 0.5)
        labels = ("birth bin (pixel)", "persistence bin (pixel)")
    im = ax.imshow(image, origin="lower", extent=extent, aspect="auto", interpolation="nearest",
                   cmap=cmap or S.IMAGE_CMAP, vmin=vmin, vmax=vmax)
    ax.set_box_aspect(image.shape[0] / image.shape[1])
    if xlabel:
        ax.set_xlabel(labels[0])
    if ylabel:
        ax.set_ylabel(labels[1])
    if title is not None:
        ax.set_title(title)
    if colorbar:
        fig.colorbar(im, ax=ax, label="PI intensity", shrink=0.85)
    return fig


def _pi_stack(pis, name: str) -> np.ndarray:
    arr = np.asarray(pis, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim < 3:
        raise ValueError(f"{name} must be (R, R) or (n, R, R), got shape {arr.shape}")
    return arr


@styled
def plot_pi_grid(pis, *, config=None, titles: Sequence[str] | None = None, ncols: int = 4, title=None,
                 shared_scale: bool = True):
    """A grid of persistence images (``(n, R, R)``, or ``(R, R)``), each
    drawn as :func:`plot_pi` does, ``ncols`` per row, with one colour scale
    and colour bar for all (``shared_scale=False``: one per image).
    ``titles``: one per image (default ``"#0"``, ``"#1"``, ...).
    Returns the Figure."""
    arr = _pi_stack(pis, "pis")
    n = len(arr)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = S.new_figure(2.3 * ncols + (1.0 if shared_scale else 0.7 * ncols), 2.35 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    vmin, vmax = (float(arr.min()), float(arr.max())) if shared_scale else (None, None)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        bottom, left = i + ncols >= n, i % ncols == 0
        plot_pi(arr[i], ax, config=config, colorbar=not shared_scale, vmin=vmin, vmax=vmax,
                title=titles[i] if titles is not None else f"#{i}", xlabel=bottom, ylabel=left)
        ax.tick_params(labelbottom=bottom, labelleft=left)
    if shared_scale:
        fig.colorbar(axes.flat[0].images[0], ax=axes, label="PI intensity", shrink=0.8)
    if title is not None:
        fig.suptitle(title)
    return fig


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else float("nan")


@styled
def plot_pi_comparison(exact, predicted, *, config=None, titles: Sequence[str] | None = None, max_rows: int = 4):
    """Exact persistence images beside PI-Net predictions and their error.

    ``exact`` / ``predicted``: images of the same shape, ``(R, R)``,
    ``(n, R, R)`` or ``(n, C, R, R)`` (flattened to sample-channel pairs).
    One row per image (the first ``max_rows``), three columns: exact |
    PI-Net | absolute error.  The first two share one colour scale per row;
    the error has its own (magma).  Column titles give the row's Pearson
    correlation ``r`` and maximum absolute error.  ``config``: the image
    parameters, as for :func:`plot_pi`; ``titles``: a label per row (default
    ``"sample i"`` or ``"sample i, channel c"``).  Returns the Figure.
    """
    ex, pr = np.asarray(exact, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    if ex.shape != pr.shape:
        raise ValueError(f"exact and predicted PIs must have the same shape, got {ex.shape} and {pr.shape}")
    default_titles = None
    if ex.ndim == 4:
        n, c = ex.shape[:2]
        default_titles = [f"sample {i}, channel {j}" for i in range(n) for j in range(c)]
        ex, pr = ex.reshape(-1, *ex.shape[2:]), pr.reshape(-1, *pr.shape[2:])
    ex, pr = _pi_stack(ex, "exact"), _pi_stack(pr, "predicted")
    rows = min(len(ex), max(1, int(max_rows)))
    if titles is None:
        titles = default_titles or [f"sample {i}" for i in range(len(ex))]
    fig = S.new_figure(11.0, 3.0 * rows + 0.4)
    axes = fig.subplots(rows, 3, squeeze=False)
    for r in range(rows):
        e, p = ex[r], pr[r]
        err = np.abs(p - e)
        lo, hi = min(e.min(), p.min()), max(e.max(), p.max())
        last = r == rows - 1
        label = titles[r] if r < len(titles) else f"sample {r}"
        corr = _pearson(e, p)
        corr_text = "n/a" if math.isnan(corr) else f"{corr:.3f}"
        plot_pi(e, axes[r, 0], config=config, colorbar=False, vmin=lo, vmax=hi, title=f"{label}: exact",
                xlabel=last)
        plot_pi(p, axes[r, 1], config=config, colorbar=False, vmin=lo, vmax=hi,
                title=f"PI-Net (r = {corr_text})", xlabel=last, ylabel=False)
        fig.colorbar(axes[r, 1].images[0], ax=axes[r, :2], label="PI intensity", shrink=0.9, pad=0.02)
        plot_pi(err, axes[r, 2], config=config, colorbar=False, vmin=0.0, cmap=S.ERROR_CMAP,
                title=f"|error| (max {err.max():.3g})", xlabel=last, ylabel=False)
        fig.colorbar(axes[r, 2].images[0], ax=axes[r, 2], label="|PI-Net − exact|", shrink=0.9, pad=0.02)
    if len(ex) > rows:
        fig.suptitle(f"exact vs PI-Net persistence images (first {rows} of {len(ex)})")
    else:
        fig.suptitle("exact vs PI-Net persistence images")
    return fig


@styled
def plot_signal_pis(window, pis, *, config=None, channel_names: Sequence[str] | None = None,
                    sample_rate: float | None = None, title=None):
    """A signal window, one line plot per channel, each beside its persistence image.

    ``window``: ``(T, C)`` (or ``(T,)`` for one channel); ``pis``:
    ``(C, R, R)``, the channel's images in the same order.  The lines share
    the time axis (seconds with ``sample_rate`` in Hz, else sample index);
    the images share one colour scale and colour bar, axes as in
    :func:`plot_pi` with ``config``.  ``channel_names`` label the rows
    (default ``"channel 0"``, ...).  Returns the Figure.
    """
    x = np.asarray(window, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    images = _pi_stack(pis, "pis")
    if x.ndim != 2:
        raise ValueError(f"window must be (T, C), got shape {x.shape}")
    c = x.shape[1]
    if len(images) != c:
        hint = " (is the window (C, T)? pass window.T)" if x.shape[0] == len(images) else ""
        raise ValueError(f"the window has {c} channels but there are {len(images)} PIs{hint}")
    names = list(channel_names) if channel_names is not None else [f"channel {i}" for i in range(c)]
    if len(names) != c:
        raise ValueError(f"channel_names has {len(names)} names for {c} channels")
    t = np.arange(len(x)) / sample_rate if sample_rate else np.arange(len(x))
    fig = S.new_figure(9.0, 1.65 * c + 0.9)
    grid = fig.add_gridspec(c, 2, width_ratios=(2.6, 1.0))
    scale = (_as_config(config) or {}).get("scale")
    vmin, vmax = float(images.min()), float(images.max())
    line_axes, pi_axes = [], []
    for i in range(c):
        lax = fig.add_subplot(grid[i, 0], sharex=line_axes[0] if line_axes else None)
        colour = S.PALETTE[i % len(S.PALETTE)]
        lax.plot(t, x[:, i], color=colour, lw=1.2)
        lax.set_ylabel(names[i])
        lax.margins(x=0)
        if i < c - 1:
            lax.tick_params(labelbottom=False)
        line_axes.append(lax)
        pax = fig.add_subplot(grid[i, 1])
        plot_pi(images[i], pax, config=config, colorbar=False, vmin=vmin, vmax=vmax, xlabel=i == c - 1)
        pax.tick_params(labelbottom=i == c - 1)
        pi_axes.append(pax)
    line_axes[-1].set_xlabel("time (s)" if sample_rate else "sample")
    line_axes[0].set_title("signal window (as given)")
    pi_axes[0].set_title("persistence image per channel" + (f"\n(of the channel after scale={scale!r})"
                                                           if scale else ""), fontsize=9.5)
    fig.colorbar(pi_axes[0].images[0], ax=pi_axes, label="PI intensity", shrink=0.6)
    if title is not None:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------
# training curves
# ---------------------------------------------------------------------------
def load_metrics(metrics) -> tuple[list[dict], int | None]:
    """``(records, best_epoch)`` from a run folder, its ``metrics.json`` /
    ``metrics.csv``, or a list of per-epoch dicts.  ``best_epoch`` comes from
    the folder's ``summary.json`` when there is one (else ``None``)."""
    if isinstance(metrics, (str, os.PathLike)):
        path = Path(metrics)
        folder = path if path.is_dir() else path.parent
        if path.is_dir():
            path = next((folder / n for n in ("metrics.json", "metrics.csv") if (folder / n).is_file()), None)
            if path is None:
                raise ValueError(f"{folder} holds no metrics.json or metrics.csv")
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        if path.suffix == ".csv":
            with open(path, newline="") as f:
                records = [{k: _number(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
        else:
            records = json.loads(path.read_text())
        best = None
        summary = folder / "summary.json"
        if summary.is_file():
            try:
                best = json.loads(summary.read_text()).get("best_epoch")
            except (json.JSONDecodeError, AttributeError):
                best = None
        return _check_records(records, str(path)), best
    return _check_records(list(metrics), "metrics"), None


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _check_records(records, source: str) -> list[dict]:
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise ValueError(f"{source} must hold a list of per-epoch records (dicts)")
    if not records:
        raise ValueError(f"{source} holds no epoch")
    return [dict(r) for r in records]


_SKIP = {"epoch", "lr", "seconds"}


def _is_accuracy(key: str) -> bool:
    return "acc" in key


def _is_loss(key: str) -> bool:
    return (key.startswith("train_") and not _is_accuracy(key)) or any(
        s in key for s in ("loss", "mse", "mae", "rmse"))


def _pretty(key: str) -> str:
    if key.startswith("train_"):
        return f"train {key[6:]}"
    if key.startswith("val_"):
        return f"val {key[4:]}"
    return key.replace("_", " ")


@styled
def plot_training_curves(metrics, *, keys: Sequence[str] | None = None, title=None, best_epoch: int | None = None):
    """Training curves of one run, per epoch.

    ``metrics``: a run folder, its ``metrics.json`` / ``metrics.csv`` (what
    :mod:`topokd.engine.loop` writes), or the list of per-epoch dicts.
    Panels, sharing the epoch axis: the loss terms (``train_*``,
    ``*loss*``, ``*mse*``; validation dashed; log scale when they span more
    than two decades), the accuracies / other metrics (accuracies in %),
    and the learning rate when it changes.  ``keys``: only these record
    keys (default: every numeric one).  ``best_epoch``: marked with a
    dotted line on every panel (default: the folder's ``summary.json``
    ``best_epoch``, when there is one).  Returns the Figure.
    """
    records, best_from_file = load_metrics(metrics)
    best = best_epoch if best_epoch is not None else best_from_file
    epochs = np.array([float(r.get("epoch", i + 1)) for i, r in enumerate(records)])
    numeric = [k for k in dict.fromkeys(k for r in records for k in r)
               if all(isinstance(r.get(k, 0.0), (int, float)) for r in records)]
    if keys is not None:
        missing = [k for k in keys if k not in numeric]
        if missing:
            raise ValueError(f"no numeric column {missing[0]!r} in the metrics; they have {sorted(numeric)}")
        chosen = list(keys)
    else:
        chosen = [k for k in numeric if k not in _SKIP]

    def series(key):
        return np.array([float(r.get(key, np.nan)) for r in records])

    losses = [k for k in chosen if _is_loss(k)]
    others = [k for k in chosen if k not in losses and k not in _SKIP]
    lr = series("lr") if "lr" in numeric and (keys is None or "lr" in keys) else None
    show_lr = lr is not None and np.nanmax(lr) > np.nanmin(lr)
    panels = [("loss", losses)] if losses else []
    if others:
        panels.append(("metric", others))
    if show_lr or not panels:
        panels.append(("lr", ["lr"] if lr is not None else []))
    heights = [3.0 if kind == "loss" else 2.3 if kind == "metric" else 1.3 for kind, _ in panels]
    fig = S.new_figure(7.5, sum(heights) + 0.6)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    marker = "o" if len(records) <= 30 else None
    for ax, (kind, names) in zip(axes, panels):
        if kind == "lr":
            if lr is not None:
                ax.plot(epochs, lr, color="black", marker=marker, ms=3)
            ax.set_ylabel("learning rate")
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            continue
        percent = kind == "metric" and all(_is_accuracy(k) for k in names) and all(
            np.nanmax(series(k)) <= 1.0 for k in names)
        for i, key in enumerate(names):
            values = series(key) * (100 if percent else 1)
            ax.plot(epochs, values, color=S.PALETTE[i % len(S.PALETTE)], ls="--" if key.startswith("val_") else "-",
                    marker=marker, ms=3, label=_pretty(key))
        if kind == "loss":
            stacked = np.concatenate([series(k) for k in names])
            positive = stacked[np.isfinite(stacked)]
            if positive.size and positive.min() > 0 and positive.max() / positive.min() > 100:
                ax.set_yscale("log")
            ax.set_ylabel("loss")
        else:
            ax.set_ylabel("accuracy (%)" if percent else "value")
    if best is not None:
        for i, ax in enumerate(axes):
            ax.axvline(best, color=S.GREY, ls=":", lw=1.4, zorder=0, label=f"best epoch ({best})" if i == 0 else None)
    for ax, (kind, _names) in zip(axes, panels):
        if kind != "lr":
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    from matplotlib.ticker import MaxNLocator

    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("epoch")
    if len(epochs) == 1:
        axes[-1].set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    axes[0].set_title(title if title is not None else "training curves")
    return fig


# ---------------------------------------------------------------------------
# distillation comparison
# ---------------------------------------------------------------------------
@styled
def plot_kd_comparison(results: Mapping[str, Sequence[float] | float], *, baseline: str | None = "scratch",
                       title=None, ylabel: str = "test accuracy (%)", percent: bool | None = None):
    """Bars of each method's mean score over seeds.

    ``results``: method name -> per-seed values (a list, or one number for
    one seed), drawn in the given order.  Bars show the mean, error bars the
    standard deviation over seeds (ddof=1; none with one seed), dots each
    seed.  The ``baseline`` method (if present) is grey and its mean a
    dashed line across the chart; every bar is annotated with its mean
    (± std) and, besides the baseline, its difference from it.
    ``percent``: multiply by 100 (default: when ``ylabel`` has a "%" and
    every value lies in [0, 1], i.e. the values are fractions).
    Returns the Figure.
    """
    if not results:
        raise ValueError("results is empty: nothing to compare")
    names = list(results)
    values = [np.atleast_1d(np.asarray(results[n], dtype=np.float64)) for n in names]
    for name, v in zip(names, values):
        if v.size == 0:
            raise ValueError(f"method {name!r} has no value")
    if percent is None:
        percent = "%" in ylabel and all(((v >= 0) & (v <= 1)).all() for v in values)
    if percent:
        values = [v * 100 for v in values]
    means = np.array([v.mean() for v in values])
    stds = np.array([v.std(ddof=1) if v.size > 1 else 0.0 for v in values])
    n_seeds = sorted({v.size for v in values})
    fig = S.new_figure(max(5.0, 1.25 * len(names) + 2.0), 4.3)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    colours = [S.GREY if n == baseline else S.PALETTE[i % len(S.PALETTE)] for i, n in enumerate(names)]
    ax.bar(x, means, width=0.62, color=colours, alpha=0.85, zorder=2)
    has_spread = any(v.size > 1 for v in values)
    if has_spread:
        ax.errorbar(x, means, yerr=np.where([v.size > 1 for v in values], stds, np.nan), fmt="none",
                    ecolor="black", elinewidth=1.2, capsize=5, zorder=3, label="± std over seeds")
    rng = np.random.default_rng(0)
    for i, v in enumerate(values):
        jitter = rng.uniform(-0.13, 0.13, v.size) if v.size > 1 else np.zeros(1)
        ax.scatter(i + jitter, v, s=16, color="black", zorder=4, alpha=0.7,
                   label="one seed" if i == 0 else None)
    base = names.index(baseline) if baseline in names else None
    if base is not None:
        ax.axhline(means[base], color="black", ls="--", lw=1.0, zorder=1, label=f"{baseline} mean")
    top = float(max(np.max(v) for v in values))
    top = max(top, float(np.max(means + stds)))
    fmt = ".1f" if percent or top > 10 else ".3f"
    for i, (m, s) in enumerate(zip(means, stds)):
        text = f"{m:{fmt}}" + (f" ± {s:{fmt}}" if values[i].size > 1 else "")
        if base is not None and i != base:
            text += f"\nΔ {m - means[base]:+{fmt}}"
        text = text.replace("-", "\u2212")
        ax.annotate(text, xy=(i, max(m + s, np.max(values[i]))), xytext=(0, 4), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8.5)
    ax.set_ylim(0, top * 1.22 if top > 0 else 1)
    ax.set_xticks(x, names, rotation=20 if max(len(n) for n in names) > 10 else 0,
                  ha="right" if max(len(n) for n in names) > 10 else "center")
    ax.set_ylabel(ylabel)
    seeds = f"{n_seeds[0]} seed{'s' if n_seeds[0] > 1 else ''}" if len(n_seeds) == 1 else \
        f"{n_seeds[0]}–{n_seeds[-1]} seeds"
    ax.set_title(title if title is not None else f"{ylabel.split(' (')[0]} by method ({seeds})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.yaxis.grid(True, color="#DDDDDD", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    return fig


# ---------------------------------------------------------------------------
# compression before / after
# ---------------------------------------------------------------------------
def _compression_panels(before: Mapping, after: Mapping) -> list[dict]:
    """One dict per metric both sides have: label, before/after values, formatter, ratio text."""

    def get(d, *path):
        for key in path:
            if not isinstance(d, Mapping) or key not in d:
                return None
            d = d[key]
        return d

    panels = []

    def add(label, path, fmt, kind="smaller", err_path=None):
        b, a = get(before, *path), get(after, *path)
        if b is None or a is None:
            return
        b, a = float(b), float(a)
        if kind == "accuracy":
            ratio = f"{(a - b) * 100:+.1f} points"
        elif a > 0 and b > 0:
            r = b / a
            if kind == "faster":
                ratio = f"{r:.2f}× faster" if r >= 1 else f"{1 / r:.2f}× slower"
            else:
                ratio = f"{r:.2f}× smaller" if r >= 1 else f"{1 / r:.2f}× larger"
        else:
            ratio = ""
        errs = None
        if err_path is not None:
            eb, ea = get(before, *err_path), get(after, *err_path)
            if eb is not None and ea is not None:
                errs = (float(eb), float(ea))
        panels.append({"label": label, "values": (b, a), "fmt": fmt, "ratio": ratio, "errors": errs,
                       "kind": kind})

    add("accuracy (%)", ("accuracy",), lambda v: f"{v * 100:.1f} %", "accuracy")
    add("parameters", ("params", "total"), S.human)
    add("non-zero parameters", ("params", "nonzero"), S.human)
    add("file size", ("size_bytes",), S.human_bytes)
    add("MACs (batch 1)", ("macs",), S.human)
    latency_b, latency_a = get(before, "latency") or {}, get(after, "latency") or {}
    for bs in latency_b:
        if bs in latency_a:
            add(f"latency, batch {bs} (ms)", ("latency", bs, "median_ms"), lambda v: f"{v:.3g} ms", "faster",
                err_path=("latency", bs, "iqr_ms"))
    add("peak forward memory", ("memory", "peak_bytes"), S.human_bytes)
    return panels


@styled
def plot_compression(before: Mapping, after: Mapping, *, title=None, ncols: int = 4):
    """Before / after bars of a compression run, one small panel per metric.

    ``before`` / ``after``: the metric dicts of a compression report
    (``report.json``'s ``"before"`` / ``"after"``, i.e.
    :func:`topokd.compress.profile` results plus ``"accuracy"``).  Panels,
    for each metric both sides have: accuracy, parameters, non-zero
    parameters, file size, MACs, median latency per batch size (error bars:
    interquartile range) and peak forward memory.  Each bar is annotated
    with its value; each panel's title gives the change (``before / after``
    as "× smaller" / "× faster", accuracy as points).  Returns the Figure.
    """
    panels = _compression_panels(before, after)
    if not panels:
        raise ValueError("before/after share no metric to draw (expected keys such as accuracy, params, "
                         "size_bytes, macs, latency)")
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    fig = S.new_figure(2.6 * ncols, 2.7 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    colours = (S.GREY, S.BLUE)
    for ax, panel in zip(axes.flat, panels):
        values = np.array(panel["values"]) * (100 if panel["kind"] == "accuracy" else 1)
        errs = panel["errors"]
        ax.bar([0, 1], values, width=0.6, color=colours, zorder=2,
               yerr=errs, capsize=4 if errs else 0, error_kw={"elinewidth": 1.0})
        for i, v in enumerate(panel["values"]):
            ax.annotate(panel["fmt"](v), xy=(i, values[i] + (errs[i] if errs else 0)), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8.5)
        ax.set_xticks([0, 1], ["before", "after"])
        ax.set_ylim(0, max(values.max() + (max(errs) if errs else 0), 1e-12) * 1.25)
        ax.set_title(f"{panel['label']}\n{panel['ratio']}" if panel["ratio"] else panel["label"], fontsize=9.5)
        ax.tick_params(axis="y", labelsize=8)
        ax.yaxis.set_major_formatter(_short_formatter())
        ax.yaxis.grid(True, color="#DDDDDD", lw=0.6, zorder=0)
        ax.set_axisbelow(True)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    fig.suptitle(title if title is not None else "compression: before vs after")
    return fig


def _short_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: S.human(v) if abs(v) >= 1000 else f"{v:g}")
