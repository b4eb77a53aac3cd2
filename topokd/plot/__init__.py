"""Figures of topokd's data and runs (matplotlib, no display needed).

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure`
(made directly, not through pyplot); :func:`save_figure` writes it as PNG
and SVG, atomically; :func:`plot_run` draws every figure a run folder
supports (``topokd plot RUN_DIR``).  Needs matplotlib:
``pip install "topokd[plot]"``.
"""

from __future__ import annotations

from ._style import PALETTE  # raises ImportError with the install hint without matplotlib
from .figures import (load_metrics, pi_extent, plot_compression, plot_diagram, plot_kd_comparison, plot_pi,
                      plot_pi_comparison, plot_pi_grid, plot_signal_pis, plot_training_curves)
from .run import plot_run
from .save import save_figure

__all__ = ["PALETTE", "load_metrics", "pi_extent", "plot_compression", "plot_diagram", "plot_kd_comparison",
           "plot_pi", "plot_pi_comparison", "plot_pi_grid", "plot_run", "plot_signal_pis",
           "plot_training_curves", "save_figure"]
