"""One small style for every topokd figure: fonts, palette, a fresh Figure.

Figures are :class:`matplotlib.figure.Figure` objects made directly (no
pyplot, no display, no global figure registry).  The style is applied with
:func:`matplotlib.rc_context` only while a figure is being drawn, so the
caller's rcParams are left as they were.
"""

from __future__ import annotations

import functools

try:
    import matplotlib
    from matplotlib.figure import Figure
except ImportError as err:  # pragma: no cover - exercised only without matplotlib
    raise ImportError('topokd.plot needs matplotlib; install it with: pip install "topokd[plot]"') from err

#: Okabe & Ito's colour-blind-safe palette (black left out: it is used for text and reference lines).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
BLUE, VERMILLION, GREEN, PURPLE, ORANGE, SKY, YELLOW = PALETTE
GREY = "#7F7F7F"
#: Homology dimension -> colour (H0 blue, H1 vermillion, H2 green).
HOMOLOGY_COLOURS = (BLUE, VERMILLION, GREEN)
#: Perceptually uniform, colour-blind-safe colour maps.
IMAGE_CMAP = "viridis"
#: Diverging map for signed errors (drawn symmetric about 0).
ERROR_CMAP = "RdBu_r"

STYLE = {
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
    "lines.linewidth": 1.6,
    "image.cmap": IMAGE_CMAP,
    "svg.fonttype": "none",  # text stays text in SVG (searchable, editable)
    "savefig.dpi": 150,
}


def styled(func):
    """Run ``func`` with :data:`STYLE` applied (restored afterwards)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float, layout: str = "constrained") -> Figure:
    """A blank Figure of ``width`` x ``height`` inches with constrained layout
    (``layout="compressed"``: the same, with the space between fixed-aspect
    axes such as image grids removed)."""
    return Figure(figsize=(width, height), layout=layout)


def figure_and_axes(ax, width: float, height: float):
    """``(figure, axes)``: ``ax`` and its figure when given, else a fresh one-axes figure."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(width, height)
    return fig, fig.add_subplot()


def human(value: float, unit: str = "") -> str:
    """``value`` with a k / M / G suffix (``1234567`` -> ``"1.23 M"``)."""
    value = float(value)
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {suffix}{unit}".rstrip()
    if value == int(value):
        return f"{int(value)} {unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip()


def human_bytes(value: float) -> str:
    """Bytes in kB / MB / GB (decimal, as file managers show them)."""
    value = float(value)
    for factor, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {suffix}"
    return f"{int(value)} B"
