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
        arr = arr[~np.isnan(arr).any(axis=1)]
        if not np.isfinite(arr[:, 0]).all() or np.isneginf(arr[:, 1]).any():
            raise ValueError(f"H{dim} diagram has an infinite birth or a death of -inf; only deaths may be "
                             f"infinite (+inf: an essential class)")
        out.append(arr)
    return out


@styled
def plot_diagram(diagram, ax=None, *, title=None, labels: Sequence[str] | None = None):
    """Scatter of a persistence diagram: birth (x) against death (y).

    Parameters
    ----------
    diagram : (k, 2) array or sequence of (k, 2) arrays
        One array of (birth, death) pairs (drawn as H0), or ``[h0, h1, ...]``
        (what :func:`topokd.cubical_diagrams` returns).  Each homology
        dimension gets its own colour (H0 blue, H1 vermillion, H2 green) and
        marker, and a legend entry with its number of points.  Rows holding
        NaN are left out (padding); ``-inf`` is refused.
    ax : matplotlib Axes, optional
        Draw into these axes; default: a new 4.4 x 4.2 inch figure.
    title : str, optional
        Default ``"persistence diagram"``.
    labels : sequence of str, optional
        Legend names of the dimensions; default ``"H0", "H1", ...``.

    The diagonal ``death = birth`` is drawn (black line) and both axes
    share one range, so the diagram is square.  Points with an infinite
    death (essential classes) are drawn as larger triangles on a dashed
    line above every finite point, whose y tick reads ``∞``.
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
                       edgecolors="black", linewidths=0.6, zorder=4, label=f"{name}, death ∞ ({len(essential)})")
    ax.set_xlim(limits)
    ax.set_ylim(limits)
    if has_essential:
        ax.axhline(top, color=S.GREY, lw=0.8, ls="--", zorder=1)
        # the essential row is labelled on the death axis itself; finite ticks too close to it are dropped
        from matplotlib.ticker import MaxNLocator

        ticks = [t for t in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi) if limits[0] <= t <= top - 1.2 * pad]
        ax.set_yticks([*ticks, top], [_tick_text(t) for t in ticks] + ["∞"])
    ax.set_aspect("equal")
    ax.set_xlabel("birth")
    ax.set_ylabel("death")
    # below the diagonal nothing can lie: the lower right corner is free
    ax.legend(loc="lower right", frameon=True, framealpha=0.9, handletextpad=0.3, borderaxespad=0.3)
    ax.set_title(title if title is not None else "persistence diagram")
    return fig


def _tick_text(value: float) -> str:
    text = f"{value:.6g}"
    return "0" if text in ("-0", "0") else text.replace("-", "\u2212")


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


def _check_finite_image(arr: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(arr[idx]) else "infinite"
        raise ValueError(f"{name} holds {int(bad.sum())} non-finite value(s) (first: {kind} at index {idx}); "
                         f"a persistence image must be finite")


@styled
def plot_pi(pi, ax=None, *, config=None, title=None, colorbar=True, vmin=None, vmax=None, cmap=None,
            xlabel: bool = True, ylabel: bool = True):
    """Heatmap of one persistence image: birth on x (increasing to the
    right), persistence on y (increasing upwards).

    Parameters
    ----------
    pi : (R, R) or (Rb, Rp) array
        One image as topokd stores it (index one sample and channel of a
        ``(N, C, R, R)`` batch).  Must be finite.
    ax : matplotlib Axes, optional
        Draw into these axes; default: a new 4.6 x 3.8 inch figure
        (4.0 x 3.8 without colour bar).
    config : dict or transformer, optional
        The image parameters: a dict with ``birth_range``, ``pers_range``,
        ``layout`` (and ``resolution``, checked against the image's shape)
        -- a transformer's ``config_``, a preset's ``params``, the
        ``params`` of a ``topokd pi`` file -- or the transformer itself.
        ``layout="persim"`` images are indexed ``[birth_bin,
        persistence_bin]`` and span exactly ``birth_range`` x
        ``pers_range``; ``"legacy"`` ones ``[R - 1 - persistence_bin,
        birth_bin]`` (see :func:`pi_extent` for their extent).  Default
        ``None``: the image is taken as persim-layout and the axes count
        pixels.
    title : str, optional
        Axes title (default: none).
    colorbar : bool, default True
        Add a colour bar labelled "PI intensity".
    vmin, vmax : float, optional
        Colour scale limits; default: the image's range.
    cmap : str, optional
        Colour map; default ``"viridis"``.
    xlabel, ylabel : bool, default True
        Label the axes (grids turn them off on inner panels).

    Returns the Figure.
    """
    arr = np.asarray(pi, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"plot_pi draws one (R, R) image, got shape {arr.shape}; index one sample and channel")
    if 0 in arr.shape:
        raise ValueError(f"plot_pi got an empty image of shape {arr.shape}")
    _check_finite_image(arr, "the PI")
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
    if cfg is None:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
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
    if arr.ndim != 3:
        raise ValueError(f"{name} must be (R, R) or (n, R, R), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    _check_finite_image(arr, name)
    return arr


@styled
def plot_pi_grid(pis, *, config=None, titles: Sequence[str] | None = None, ncols: int = 4, title=None,
                 shared_scale: bool = True):
    """A grid of persistence images, each drawn as :func:`plot_pi` does.

    Parameters
    ----------
    pis : (n, R, R) or (R, R) array
        The images, drawn row by row.
    config : dict or transformer, optional
        The image parameters, as for :func:`plot_pi` (one for all images).
    titles : sequence of str, optional
        One per image; default ``"#0"``, ``"#1"``, ...
    ncols : int, default 4
        Images per row (fewer when there are fewer images).
    title : str, optional
        Figure title (default: none).
    shared_scale : bool, default True
        One colour scale and one colour bar for all images (so they compare
        by colour); ``False``: each image its own scale and colour bar.

    Axis labels and tick labels are kept on the outer panels only.
    Returns the Figure.
    """
    arr = _pi_stack(pis, "pis")
    n = len(arr)
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    if titles is not None and len(titles) < n:
        raise ValueError(f"titles has {len(titles)} entries for {n} images")
    cell = 2.1  # inches of one image; width and height both follow it, so no space is left over
    aspect = arr.shape[2] / arr.shape[1] if config is None or (_as_config(config) or {}).get(
        "layout", "persim") == "persim" else arr.shape[1] / arr.shape[2]
    width = ncols * (cell + (0.95 if not shared_scale else 0.1)) + 0.6 + (0.6 if shared_scale else 0.0)
    height = nrows * (cell * aspect + 0.5) + 0.45 + (0.35 if title is not None else 0.0)
    fig = S.new_figure(width, height, layout="compressed")
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
        # pad is a fraction of the whole grid's width: keep it near 0.2 inch
        fig.colorbar(axes.flat[0].images[0], ax=axes, label="PI intensity", shrink=0.8 if nrows > 1 else 0.95,
                     aspect=20 * max(1, nrows) ** 0.5, pad=min(0.05, 0.2 / (ncols * cell)))
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

    One row per image (the first ``max_rows``), three columns: the exact
    PI | the PI-Net prediction | the signed error ``predicted - exact``.
    The first two share one colour scale (viridis) and colour bar per row;
    the error has a diverging colour map (blue: PI-Net too low, red: too
    high) centred on 0 and symmetric (``±max|error|`` of the row).  Column
    titles give the row's Pearson correlation ``r`` and maximum absolute
    error.

    Parameters
    ----------
    exact, predicted : array
        Images of the same shape, ``(R, R)``, ``(n, R, R)`` or
        ``(n, C, R, R)`` (flattened to sample-channel pairs), finite.
    config : dict or transformer, optional
        The image parameters, as for :func:`plot_pi`.
    titles : sequence of str, optional
        A label per row; default ``"sample i"`` (or ``"sample i, channel
        c"`` for 4-D input).
    max_rows : int, default 4
        Draw at most this many images (the figure title says when some
        were left out).

    Returns the Figure.
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
        err = p - e
        bound = float(np.abs(err).max())
        lo, hi = min(e.min(), p.min()), max(e.max(), p.max())
        last = r == rows - 1
        label = titles[r] if r < len(titles) else f"sample {r}"
        corr = _pearson(e, p)
        corr_text = "n/a" if math.isnan(corr) else f"{corr:.3f}".replace("-", "\u2212")
        plot_pi(e, axes[r, 0], config=config, colorbar=False, vmin=lo, vmax=hi, title=f"{label}: exact",
                xlabel=last)
        plot_pi(p, axes[r, 1], config=config, colorbar=False, vmin=lo, vmax=hi,
                title=f"PI-Net (r = {corr_text})", xlabel=last, ylabel=False)
        fig.colorbar(axes[r, 1].images[0], ax=axes[r, :2], label="PI intensity", shrink=0.9, pad=0.02)
        plot_pi(err, axes[r, 2], config=config, colorbar=False, vmin=-bound if bound > 0 else -1.0,
                vmax=bound if bound > 0 else 1.0, cmap=S.ERROR_CMAP,
                title=f"error (max |error| {bound:.3g})", xlabel=last, ylabel=False)
        fig.colorbar(axes[r, 2].images[0], ax=axes[r, 2], label="PI-Net − exact", shrink=0.9, pad=0.02)
    if len(ex) > rows:
        fig.suptitle(f"exact vs PI-Net persistence images (first {rows} of {len(ex)})")
    else:
        fig.suptitle("exact vs PI-Net persistence images")
    return fig


@styled
def plot_signal_pis(window, pis, *, config=None, channel_names: Sequence[str] | None = None,
                    sample_rate: float | None = None, title=None):
    """A signal window, one line plot per channel, each beside its persistence image.

    Parameters
    ----------
    window : (T, C) or (T,) array
        The window as given to the PI transformer (one line per channel,
        drawn unscaled).
    pis : (C, R, R) array
        The channels' persistence images, in the same order.
    config : dict or transformer, optional
        The image parameters, as for :func:`plot_pi`; its ``scale`` (if
        any) is named above the images, which are of the scaled channel.
    channel_names : sequence of str, optional
        Row labels; default ``"channel 0"``, ...
    sample_rate : float, optional
        In Hz: the time axis is in seconds; default: time step index.
    title : str, optional
        Figure title (default: none).

    The lines share the time axis; the images share one colour scale and
    colour bar.  Returns the Figure.
    """
    x = np.asarray(window, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    images = _pi_stack(pis, "pis")
    if x.ndim != 2:
        raise ValueError(f"window must be (T, C), got shape {x.shape}")
    if len(x) < 2 or not np.isfinite(x).all():
        raise ValueError(f"window must hold at least 2 finite time steps, got shape {x.shape}"
                         + ("" if np.isfinite(x).all() else " with non-finite values"))
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
    line_axes[-1].set_xlabel("time (s)" if sample_rate else "time step")
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
            try:
                records = json.loads(path.read_text())
            except ValueError as err:
                raise ValueError(f"{path} is not valid JSON ({err})") from None
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
        raise ValueError(f"{source} holds no epoch (no per-epoch record to plot)")
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

    Parameters
    ----------
    metrics : path or list of dict
        A run folder, its ``metrics.json`` / ``metrics.csv`` (what
        :mod:`topokd.engine.loop` writes), or the list of per-epoch dicts
        (``"epoch"`` optional: default 1, 2, ...).
    keys : sequence of str, optional
        Only these record keys; default: every numeric one except
        ``epoch`` and ``seconds``.
    title : str, optional
        Default ``"training curves"``.
    best_epoch : int, optional
        Marked with a dotted grey line on every panel; default: the
        folder's ``summary.json`` ``best_epoch``, when there is one.

    Panels, sharing the epoch axis: the loss terms (``train_*`` except
    accuracies, ``*loss*``, ``*mse*``, ``*mae*``; validation dashed; log
    scale when they span more than two decades), the accuracies / other
    metrics (accuracies in % when they are fractions), and the learning
    rate when it changes.  A series equal to one already drawn (e.g.
    ``train_loss`` of a single-term loss) is drawn once, with both names
    in the legend.  Raises ``ValueError`` when the metrics hold no epoch
    or nothing numeric to draw.  Returns the Figure.
    """
    records, best_from_file = load_metrics(metrics)
    best = best_epoch if best_epoch is not None else best_from_file
    epochs = np.array([float(r.get("epoch", i + 1)) for i, r in enumerate(records)])
    numeric = [k for k in dict.fromkeys(k for r in records for k in r)
               if all(isinstance(r.get(k, 0.0), (int, float)) and not isinstance(r.get(k, 0.0), bool)
                      for r in records)]
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
    if not losses and not others and lr is None:
        raise ValueError(f"the metrics hold no numeric column to plot (columns: {sorted({k for r in records for k in r})})")
    panels = [("loss", losses)] if losses else []
    if others:
        panels.append(("metric", others))
    if show_lr or not panels:
        panels.append(("lr", ["lr"]))
    heights = [3.0 if kind == "loss" else 2.3 if kind == "metric" else 1.3 for kind, _ in panels]
    fig = S.new_figure(7.5, sum(heights) + 0.6)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    marker = "o" if len(records) <= 30 else None
    for ax, (kind, names) in zip(axes, panels):
        if kind == "lr":
            ax.plot(epochs, lr, color="black", marker=marker, ms=3)
            ax.set_ylabel("learning rate")
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            continue
        percent = kind == "metric" and all(_is_accuracy(k) for k in names) and all(
            np.nanmax(series(k)) <= 1.0 for k in names)
        drawn: list[tuple[np.ndarray, object, list[str]]] = []
        for key in names:
            values = series(key) * (100 if percent else 1)
            twin = next((d for d in drawn if d[0].shape == values.shape
                         and np.allclose(d[0], values, rtol=1e-9, atol=0, equal_nan=True)), None)
            if twin is not None:  # identical curve: one line, both names
                twin[2].append(_pretty(key))
                twin[1].set_label(" = ".join(twin[2]))
                continue
            colour = S.PALETTE[len(drawn) % len(S.PALETTE)]
            (line,) = ax.plot(epochs, values, color=colour, ls="--" if key.startswith("val_") else "-",
                              marker=marker, ms=3, label=_pretty(key))
            drawn.append((values, line, [_pretty(key)]))
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
            ax.axvline(best, color=S.GREY, ls=":", lw=1.5, zorder=0, label=f"best epoch ({best})" if i == 0 else None)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    from matplotlib.ticker import MaxNLocator

    if len(np.unique(epochs)) <= 10 and np.all(epochs == np.round(epochs)):
        axes[-1].set_xticks(np.unique(epochs))  # few epochs: one tick each (no 0.5 steps)
    else:
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("epoch")
    if len(np.unique(epochs)) == 1:
        axes[-1].set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    axes[0].set_title(title if title is not None else "training curves")
    return fig


# ---------------------------------------------------------------------------
# distillation comparison
# ---------------------------------------------------------------------------
@styled
def plot_kd_comparison(results: Mapping[str, Sequence[float] | float], *, baseline: str | None = "scratch",
                       title=None, ylabel: str = "test accuracy (%)", percent: bool | None = None):
    """Bars of each method's mean score over seeds, with the spread.

    Parameters
    ----------
    results : mapping of str to list of float (or float)
        Method name -> per-seed values (one number for one seed), drawn
        left to right in the given order.  Values must be finite.
    baseline : str or None, default "scratch"
        This method (if present) is drawn grey, its mean as a dashed line
        across the chart, and every other bar is annotated with its
        difference from it (``Δ``).
    title : str, optional
        Default ``"<ylabel without unit> by method (<n> seeds)"``.
    ylabel : str, default "test accuracy (%)"
    percent : bool, optional
        Multiply by 100; default: when ``ylabel`` has a "%" and every value
        lies in [0, 1] (fractions, as topokd's results hold them).

    Bar height: the mean over seeds.  Error bars: the sample standard
    deviation over seeds (``numpy.std(ddof=1)``; none for a method with
    one seed).  Black dots: the individual seeds.  Each bar is annotated
    with ``mean ± std``.  Bars start at 0.  Returns the Figure.
    """
    if not results:
        raise ValueError("results is empty: nothing to compare")
    names = list(results)
    values = [np.atleast_1d(np.asarray(results[n], dtype=np.float64)) for n in names]
    for name, v in zip(names, values):
        if v.size == 0:
            raise ValueError(f"method {name!r} has no value")
        if v.ndim != 1:
            raise ValueError(f"method {name!r} must give a list of per-seed numbers, got shape {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError(f"method {name!r} has a non-finite value: {v.tolist()}")
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
    others = iter(S.PALETTE * (len(names) // len(S.PALETTE) + 1))
    colours = [S.GREY if n == baseline else next(others) for n in names]
    ax.bar(x, means, width=0.62, color=colours, alpha=0.85, zorder=2)
    has_spread = any(v.size > 1 for v in values)
    if has_spread:
        ax.errorbar(x, means, yerr=np.where([v.size > 1 for v in values], stds, np.nan), fmt="none",
                    ecolor="black", elinewidth=1.2, capsize=5, zorder=3, label="± 1 std over seeds")
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
    bottom = min(0.0, float(min(np.min(v) for v in values)), float(np.min(means - stds)))
    ax.set_ylim(bottom * 1.1, top * 1.22 if top > 0 else 0.1 * abs(bottom) or 1.0)
    import textwrap

    ax.set_xticks(x, [textwrap.fill(n, 14, break_long_words=False) for n in names])  # wrapped, not rotated
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
    """One dict per metric both sides have: label, before/after values, formatters, change text."""

    def get(d, *path):
        for key in path:
            if not isinstance(d, Mapping) or key not in d:
                return None
            d = d[key]
        return d

    panels = []

    def add(label, path, fmt, kind="smaller", err_path=None, axis_fmt=None):
        b, a = get(before, *path), get(after, *path)
        if b is None or a is None:
            return
        try:
            b, a = float(b), float(a)
        except (TypeError, ValueError):
            raise ValueError(f"compression metric {'/'.join(path)} must be a number, got {b!r} / {a!r}") from None
        if not (math.isfinite(b) and math.isfinite(a)):
            raise ValueError(f"compression metric {'/'.join(path)} is not finite: before {b}, after {a}")
        if kind == "accuracy":
            ratio = f"{(a - b) * 100:+.1f} points".replace("-", "\u2212")
        elif a > 0 and b > 0:
            r = b / a
            if abs(r - 1) < 0.005:
                ratio = "unchanged"
            elif kind == "faster":
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
                       "kind": kind, "axis_fmt": axis_fmt})

    add("accuracy (%)", ("accuracy",), lambda v: f"{v * 100:.1f} %", "accuracy", axis_fmt=lambda v: f"{v:g}")
    add("parameters", ("params", "total"), S.human)
    add("non-zero parameters", ("params", "nonzero"), S.human)
    add("file size", ("size_bytes",), S.human_bytes, axis_fmt=_bytes_tick)
    add("MACs (batch 1)", ("macs",), S.human)
    latency_b, latency_a = get(before, "latency") or {}, get(after, "latency") or {}
    for bs in sorted(latency_b, key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0, str(k))):
        if bs in latency_a:
            add(f"latency, batch {bs} (ms)", ("latency", bs, "median_ms"), lambda v: f"{v:.3g} ms", "faster",
                err_path=("latency", bs, "iqr_ms"), axis_fmt=lambda v: f"{v:g}")
    mem_batch = get(before, "memory", "batch_size")
    add(f"peak forward memory (batch {mem_batch})" if mem_batch is not None else "peak forward memory",
        ("memory", "peak_bytes"), S.human_bytes, axis_fmt=_bytes_tick)
    return panels


def _bytes_tick(v: float) -> str:
    return "0" if v == 0 else S.human_bytes(v).replace(".0 ", " ")


@styled
def plot_compression(before: Mapping, after: Mapping, *, title=None, ncols: int = 4):
    """Before / after bars of a compression run, one small panel per metric.

    Parameters
    ----------
    before, after : mapping
        The metric dicts of a compression report (``report.json``'s
        ``"before"`` / ``"after"``, i.e. :func:`topokd.compress.profile`
        results plus ``"accuracy"`` as a fraction).
    title : str, optional
        Default ``"compression: before vs after"``.
    ncols : int, default 4
        Panels per row.

    Panels, for each metric both sides have (others are left out):
    accuracy (%), parameters, non-zero parameters, file size, MACs at
    batch 1, median latency per batch size, peak forward memory.  Bar
    heights are the values as stored (accuracy times 100).  The latency
    error bars span the interquartile range (``iqr_ms``, 75th - 25th
    percentile of the timed repeats), drawn centred on the median (the
    report keeps only its width).  Each bar is annotated with its value;
    each panel's title gives the change (``before / after`` as "×
    smaller" / "× faster", "unchanged" within 0.5 %, accuracy in points).
    Raises ``ValueError`` when the two share no metric.  Returns the Figure.
    """
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        raise ValueError("before and after must be the metric dicts of a compression report")
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
        half = [e / 2 for e in errs] if errs else None
        ax.bar([0, 1], values, width=0.6, color=colours, zorder=2,
               yerr=half, capsize=4 if errs else 0, error_kw={"elinewidth": 1.0})
        for i, v in enumerate(panel["values"]):
            ax.annotate(panel["fmt"](v), xy=(i, values[i] + (half[i] if half else 0)), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8.5)
        ax.set_xticks([0, 1], ["before", "after"])
        ax.set_ylim(0, max(values.max() + (max(half) if half else 0), 1e-12) * 1.25)
        ax.set_title(f"{panel['label']}\n{panel['ratio']}" if panel["ratio"] else panel["label"], fontsize=9.5)
        ax.tick_params(axis="y", labelsize=8)
        ax.yaxis.set_major_formatter(_short_formatter(panel["axis_fmt"]))
        ax.yaxis.grid(True, color="#DDDDDD", lw=0.6, zorder=0)
        ax.set_axisbelow(True)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    fig.suptitle(title if title is not None else "compression: before vs after")
    return fig


def _short_formatter(fmt=None):
    from matplotlib.ticker import FuncFormatter

    if fmt is not None:
        return FuncFormatter(lambda v, _pos: fmt(v))
    return FuncFormatter(lambda v, _pos: S.human(v) if abs(v) >= 1000 else f"{v:g}")
