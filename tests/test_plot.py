"""topokd.plot: every figure is checked against facts independent of the
plotting code (the input data, what topokd.tda documents about its image
layouts, numpy statistics, the files a real tiny run writes), never against
an earlier rendering.  Figures are made directly (no pyplot); nothing here
needs a display."""

import json
import os
import shutil
import stat
import xml.etree.ElementTree as ET

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")

from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from topokd import PersistenceImage, SignalPersistenceImages, sublevel_diagrams  # noqa: E402
from topokd.cli import main  # noqa: E402
from topokd.data import load_basic_motions  # noqa: E402
from topokd.plot import (load_metrics, pi_extent, plot_compression, plot_diagram, plot_kd_comparison,  # noqa: E402
                         plot_pi, plot_pi_comparison, plot_pi_grid, plot_run, plot_signal_pis,
                         plot_training_curves, save_figure)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def motions():
    """Six real BasicMotions windows (100 steps, 6 channels, 10 Hz) and their standard-signal PIs."""
    X, _, _ = load_basic_motions("train")
    tr = SignalPersistenceImages()
    return X[:3], tr.fit_transform(X[:3]), tr


def scatter_by_label(ax) -> dict:
    return {c.get_label(): c for c in ax.collections if isinstance(c, PathCollection)}


def bar_container(ax) -> BarContainer:
    return next(c for c in ax.containers if isinstance(c, BarContainer))


def image_data(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array(), dtype=np.float64)


def peak_position(ax) -> tuple[float, float]:
    """Data coordinates of the centre of the brightest drawn pixel (origin lower)."""
    im = ax.images[0]
    assert im.origin == "lower"
    data = image_data(ax)
    row, col = np.unravel_index(np.argmax(data), data.shape)
    x0, x1, y0, y1 = im.get_extent()
    return x0 + (col + 0.5) * (x1 - x0) / data.shape[1], y0 + (row + 0.5) * (y1 - y0) / data.shape[0]


# --------------------------------------------------------------------------- persistence diagrams
def test_diagram_draws_the_given_points_with_a_colour_per_dimension():
    h0 = np.array([[0.0, 0.4], [0.1, 0.9], [0.3, 0.35]])
    h1 = np.array([[0.5, 0.8], [0.6, 0.95]])
    fig = plot_diagram([h0, h1])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    points = scatter_by_label(ax)
    assert set(points) == {"H0 (3)", "H1 (2)"}
    np.testing.assert_array_equal(points["H0 (3)"].get_offsets(), h0)
    np.testing.assert_array_equal(points["H1 (2)"].get_offsets(), h1)
    assert not np.allclose(points["H0 (3)"].get_facecolor()[0], points["H1 (2)"].get_facecolor()[0])
    # the diagonal death = birth spans the whole (square) plotting range
    diag = [ln for ln in ax.get_lines() if np.array_equal(ln.get_xdata(), ln.get_ydata())]
    assert len(diag) == 1
    assert ax.get_xlim() == ax.get_ylim()
    lo, hi = ax.get_xlim()
    assert min(diag[0].get_xdata()) <= lo and max(diag[0].get_xdata()) >= hi
    assert lo < 0.0 and hi > 0.95  # every point inside
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("birth", "death")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "H0 (3)" in labels and "H1 (2)" in labels


def test_diagram_of_a_real_signal():
    X, _, _ = load_basic_motions("train")
    d = sublevel_diagrams(X[0, :, 0])
    ax = plot_diagram(d, title="accelerometer x").axes[0]
    (points,) = scatter_by_label(ax).values()
    np.testing.assert_array_equal(points.get_offsets(), d)
    assert ax.get_title() == "accelerometer x"
    # sublevel H0: death >= birth, so every point lies on or above the drawn diagonal
    assert (points.get_offsets()[:, 1] >= points.get_offsets()[:, 0]).all()


def test_diagram_infinite_deaths_sit_on_a_row_labelled_infinity():
    h0 = np.array([[0.0, np.inf], [0.1, 0.5], [0.2, 0.3]])
    h1 = np.array([[0.4, 0.8], [0.5, np.inf]])
    ax = plot_diagram([h0, h1]).axes[0]
    points = scatter_by_label(ax)
    np.testing.assert_array_equal(points["H0 (2)"].get_offsets(), h0[1:])
    ess0, ess1 = points["H0, death ∞ (1)"].get_offsets(), points["H1, death ∞ (1)"].get_offsets()
    assert ess0[0, 0] == 0.0 and ess1[0, 0] == 0.5  # births kept
    top = ess0[0, 1]
    assert ess1[0, 1] == top and np.isfinite(top) and 0.8 < top < ax.get_ylim()[1]
    ticks = dict(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels())))
    assert ticks[top] == "∞"
    assert all(t < top for t, text in ticks.items() if text != "∞")
    # empty dimensions and NaN padding rows are fine
    ax = plot_diagram([np.zeros((0, 2)), np.array([[0.1, 0.2], [np.nan, np.nan]])]).axes[0]
    assert len(scatter_by_label(ax)["H1 (1)"].get_offsets()) == 1


def test_diagram_refuses_bad_input():
    with pytest.raises(ValueError, match=r"H0 diagram must be a \(k, 2\) array.*shape \(3, 3\)"):
        plot_diagram(np.ones((3, 3)))
    with pytest.raises(ValueError, match="H1 diagram has an infinite birth"):
        plot_diagram([np.zeros((1, 2)), np.array([[-np.inf, 1.0]])])


# --------------------------------------------------------------------------- persistence images
def test_pi_axes_span_the_configured_ranges(motions):
    _, pis, tr = motions
    cfg = tr.config_
    assert cfg["layout"] == "persim"
    fig = plot_pi(pis[0, 0], config=cfg, title="acc x")
    ax = fig.axes[0]
    b0, b1 = cfg["birth_range"]
    p0, p1 = cfg["pers_range"]
    assert ax.images[0].get_extent() == [b0, b1, p0, p1]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("birth", "persistence")
    # persim layout is documented as [birth_bin, persistence_bin]: drawn transposed, persistence upwards
    np.testing.assert_array_equal(image_data(ax), pis[0, 0].T)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "PI intensity"  # the colour bar
    # the transformer itself works as the config
    assert plot_pi(pis[0, 0], config=tr).axes[0].images[0].get_extent() == [b0, b1, p0, p1]


@pytest.mark.parametrize("layout", ["persim", "legacy"])
def test_pi_orientation_puts_a_point_where_it_is(layout):
    """One diagram point (birth 0.3, death 0.9) -> the image's peak must be drawn
    at birth 0.3 (x) and persistence 0.6 (y); a non-square grid catches transposes."""
    kwargs = dict(birth_range=(0.0, 1.0), pers_range=(0.0, 1.0)) if layout == "persim" else \
        dict(birth_range=(0.0, 1.0))
    imager = PersistenceImage(resolution=(25, 10), sigma=0.02, layout=layout, **kwargs)
    pi = imager.transform(np.array([[0.3, 0.9]]))
    assert pi.shape == ((25, 10) if layout == "persim" else (10, 25))
    ax = plot_pi(pi, config=imager).axes[0]
    data = image_data(ax)
    assert data.shape == (10, 25)  # rows = persistence bins, columns = birth bins
    if layout == "legacy":  # documented: [ny - 1 - persistence_bin, birth_bin], highest persistence on top
        np.testing.assert_array_equal(data, pi[::-1])
    x, y = peak_position(ax)
    x0, x1, y0, y1 = ax.images[0].get_extent()
    assert abs(x - 0.3) <= (x1 - x0) / 25 and abs(y - 0.6) <= (y1 - y0) / 10
    if layout == "legacy":  # extent per pi_extent's doc: pixel i starts at linspace(minBD, maxBD, n)[i]
        assert (x0, x1, y0, y1) == pytest.approx((0.0, 25 / 24, 0.0, 10 / 9))
        assert pi_extent(imager, data.shape) == pytest.approx((0.0, 25 / 24, 0.0, 10 / 9))


def test_pi_without_config_counts_pixels_with_integer_ticks():
    ax = plot_pi(np.arange(12.0).reshape(3, 4)).axes[0]
    assert ax.images[0].get_extent() == [-0.5, 2.5, -0.5, 3.5]
    assert "pixel" in ax.get_xlabel() and "pixel" in ax.get_ylabel()
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_pi_refuses_bad_input(motions):
    _, pis, tr = motions
    bad = pis[0, 0].astype(np.float64)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"NaN at index \(3, 4\)"):
        plot_pi(bad, config=tr.config_)
    with pytest.raises(ValueError, match=r"one \(R, R\) image, got shape \(6, 50, 50\)"):
        plot_pi(pis[0], config=tr.config_)
    with pytest.raises(ValueError, match=r"shape \(40, 40\).*resolution 50"):
        plot_pi(np.zeros((40, 40)), config=tr.config_)
    with pytest.raises(ValueError, match="non-finite"):
        plot_pi_grid(np.full((2, 4, 4), np.inf))


def test_pi_grid_shares_one_colour_scale(motions):
    _, pis, tr = motions
    images = pis[:2].reshape(-1, 50, 50)
    titles = [f"window {i}, channel {c}" for i in range(2) for c in range(6)]
    fig = plot_pi_grid(images, config=tr.config_, ncols=6, titles=titles, title="BasicMotions")
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 12
    assert [ax.get_title() for ax in image_axes] == titles
    for ax, img in zip(image_axes, images):
        np.testing.assert_array_equal(image_data(ax), img.T)
        assert ax.images[0].get_clim() == (images.min(), images.max())
    colourbars = [ax for ax in fig.axes if ax.get_ylabel() == "PI intensity"]
    assert len(colourbars) == 1
    assert fig.get_suptitle() == "BasicMotions"
    # outer panels only carry axis labels
    assert [bool(ax.get_ylabel()) for ax in image_axes[:6]] == [True] + [False] * 5
    assert all(ax.get_xlabel() == "birth" for ax in image_axes[6:]) and not image_axes[0].get_xlabel()
    separate = plot_pi_grid(images[:3], config=tr.config_, shared_scale=False)
    assert len([ax for ax in separate.axes if ax.get_ylabel() == "PI intensity"]) == 3


def test_pi_comparison_error_panel_is_predicted_minus_exact(motions):
    _, pis, tr = motions
    exact = pis[:3, 0].astype(np.float64)
    predicted = exact + np.random.default_rng(0).normal(0, 0.02, exact.shape)
    fig = plot_pi_comparison(exact, predicted, config=tr.config_)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 9
    for r in range(3):
        ex_ax, pr_ax, err_ax = image_axes[3 * r: 3 * r + 3]
        np.testing.assert_array_equal(image_data(ex_ax), exact[r].T)
        np.testing.assert_array_equal(image_data(pr_ax), predicted[r].T)
        np.testing.assert_allclose(image_data(err_ax), (predicted[r] - exact[r]).T, rtol=0, atol=1e-15)
        bound = np.abs(predicted[r] - exact[r]).max()
        assert err_ax.images[0].get_clim() == pytest.approx((-bound, bound))  # symmetric about 0
        assert ex_ax.images[0].get_clim() == pr_ax.images[0].get_clim()
        r_text = f"{np.corrcoef(exact[r].ravel(), predicted[r].ravel())[0, 1]:.3f}"
        assert pr_ax.get_title() == f"PI-Net (r = {r_text})"
        assert f"{bound:.3g}" in err_ax.get_title()
    assert any(ax.get_ylabel() == "PI-Net − exact" for ax in fig.axes)
    # (n, C, R, R) input is flattened to sample-channel rows, at most max_rows of them
    four_d = plot_pi_comparison(pis[:2, :3], pis[:2, :3], config=tr.config_, max_rows=4)
    assert [ax.get_title() for ax in four_d.axes if ax.images][::3] == [
        "sample 0, channel 0: exact", "sample 0, channel 1: exact", "sample 0, channel 2: exact",
        "sample 1, channel 0: exact"]
    assert "first 4 of 6" in four_d.get_suptitle()
    with pytest.raises(ValueError, match=r"same shape, got \(3, 50, 50\) and \(2, 50, 50\)"):
        plot_pi_comparison(exact, predicted[:2], config=tr.config_)


def test_signal_pis_draws_each_channel_beside_its_image(motions):
    X, pis, tr = motions
    names = ["acc x", "acc y", "acc z", "gyr x", "gyr y", "gyr z"]
    fig = plot_signal_pis(X[0], pis[0], config=tr.config_, channel_names=names, sample_rate=10.0)
    line_axes = [ax for ax in fig.axes if ax.get_lines() and not ax.images]
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(line_axes) == len(image_axes) == 6
    for c, ax in enumerate(line_axes):
        (line,) = ax.get_lines()
        np.testing.assert_array_equal(line.get_ydata(), X[0, :, c])
        np.testing.assert_allclose(line.get_xdata(), np.arange(100) / 10.0)
        assert ax.get_ylabel() == names[c]
        np.testing.assert_array_equal(image_data(image_axes[c]), pis[0, c].T)
    assert line_axes[-1].get_xlabel() == "time (s)"
    assert "standardize" in image_axes[0].get_title()
    assert plot_signal_pis(X[0], pis[0], config=tr).axes[0].get_xlabel() == ""  # shared axis: bottom only
    with pytest.raises(ValueError, match=r"6 channels but there are 5 PIs"):
        plot_signal_pis(X[0], pis[0, :5], config=tr.config_)
    with pytest.raises(ValueError, match=r"is the window \(C, T\)\? pass window.T"):
        plot_signal_pis(X[0].T, pis[0], config=tr.config_)


# --------------------------------------------------------------------------- a tiny real run
@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A real (tiny) folder: a distillation run with its scratch baseline, a compression
    of its student, a `topokd pi` file of signal windows and a PI-Net prediction."""
    root = tmp_path_factory.mktemp("plot") / "runs"
    root.mkdir()
    import yaml

    cfg = {"output": str(root / "kd"), "seed": 1,
           "data": {"name": "synthetic", "synthetic_windows": 60, "synthetic_length": 32, "val_fraction": 0.2,
                    "pi_params": {"resolution": 8}},
           "teachers": {"pi": {"model": "resnet8", "inputs": "pi",
                               "train": {"epochs": 2, "batch_size": 32, "progress": False}}},
           "student": {"model": "resnet8", "teachers": [{"name": "pi", "weight": 1.0}],
                       "losses": {"ce": 0.5, "kd": {"weight": 0.5, "temperature": 4}},
                       "train": {"epochs": 2, "batch_size": 32, "progress": False}, "scratch": True}}
    (root.parent / "kd.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(root.parent / "kd.yaml"), "--quiet"]) == 0
    compress_cfg = {"data": {"name": "synthetic", "synthetic_windows": 60, "synthetic_length": 32},
                    "latency": {"batch_sizes": [1, 4], "repeats": 3, "warmup": 1},
                    "steps": [{"prune": {"method": "global", "amount": 0.5}}]}
    (root.parent / "c.yaml").write_text(yaml.safe_dump(compress_cfg))
    assert main(["compress", str(root / "kd" / "student" / "best.safetensors"), str(root.parent / "c.yaml"),
                 "-o", str(root / "compressed"), "--quiet"]) == 0
    pis = root / "pis"
    pis.mkdir()
    X, _, _ = load_basic_motions("train")
    np.save(pis / "windows.npy", X[:5].astype(np.float32))
    assert main(["pi", str(pis / "windows.npy"), "-o", str(pis / "pis.npz"), "--kind", "signal",
                 "--resolution", "12", "--quiet"]) == 0
    assert main(["pinet", "train", "--data", str(pis / "windows.npy"), "--resolution", "12", "--epochs", "2",
                 "--widths", "4,4,4,4", "-o", str(pis / "pinet.safetensors"), "--quiet"]) == 0
    assert main(["pinet", "predict", str(pis / "pinet.safetensors"), str(pis / "windows.npy"),
                 "-o", str(pis / "pred.npz"), "--quiet"]) == 0
    return root


EXPECTED_FIGURES = {"kd-kd-comparison", "kd-teachers-pi-training", "kd-student-training", "kd-scratch-training",
                    "compressed-compression", "pis-pis-pis", "pis-pis-signal-pis", "pis-pred-vs-pis",
                    "pis-pinet-training"}


def test_training_curves_of_a_real_run(run_folder):
    run = run_folder / "kd" / "student"
    history = json.loads((run / "metrics.json").read_text())
    best = json.loads((run / "summary.json").read_text())["best_epoch"]
    fig = plot_training_curves(run)
    epochs = [h["epoch"] for h in history]
    drawn = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            label = line.get_label()
            if line.get_linestyle() == ":":  # the best-epoch marker, checked below
                continue
            if label.startswith("_"):  # the unlabelled learning-rate line
                assert ax.get_ylabel() == "learning rate"
                label = "lr"
            for name in label.split(" = "):
                drawn[name.replace(" ", "_", 1)] = (line, ax)
    numeric = {k for h in history for k in h} - {"epoch", "seconds"}
    assert set(drawn) == numeric  # every metric the engine logged, and nothing else
    for key, (line, ax) in drawn.items():
        scale = 100 if ax.get_ylabel() == "accuracy (%)" else 1
        np.testing.assert_allclose(line.get_xdata(), epochs)
        np.testing.assert_allclose(line.get_ydata(), [h[key] * scale for h in history])
        assert line.get_linestyle() == ("--" if key.startswith("val_") else "-")
    assert drawn["val_acc"][1].get_ylabel() == "accuracy (%)"
    assert drawn["train_loss"][1].get_ylabel() == "loss"
    for ax in fig.axes:  # the summary's best epoch on every panel
        assert [list(ln.get_xdata()) for ln in ax.get_lines() if ln.get_linestyle() == ":"] == [[best, best]]
    assert fig.axes[-1].get_xlabel() == "epoch"
    assert list(fig.axes[-1].get_xticks()) == epochs  # one tick per epoch, no 1.5
    # metrics.csv holds the same numbers
    records, best_csv = load_metrics(run / "metrics.csv")
    assert best_csv == best and len(records) == len(history)
    for rec, h in zip(records, history):
        assert rec == pytest.approx({k: float(v) for k, v in h.items()})


def test_training_curves_by_hand(tmp_path):
    records = [{"epoch": e, "train_loss": 10.0 ** (1 - e), "val_acc": 0.2 * e, "lr": 0.1} for e in range(1, 5)]
    fig = plot_training_curves(records, best_epoch=3, title="by hand")
    assert len(fig.axes) == 2  # constant learning rate: no panel of its own
    assert fig.axes[0].get_yscale() == "log"  # losses spanning three decades
    assert fig.axes[0].get_title() == "by hand"
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), [20, 40, 60, 80])
    only = plot_training_curves(records, keys=["val_acc"])
    assert len(only.axes) == 1 and [ln.get_label() for ln in only.axes[0].get_lines()] == ["val acc"]
    # the same curve under two names is drawn once, both named
    same = plot_training_curves([{"train_loss": v, "train_mse": v} for v in (3.0, 2.0, 1.0)])
    (line,) = same.axes[0].get_lines()
    assert line.get_label() == "train loss = train mse"
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])


def test_training_curves_refuse_empty_or_broken_metrics(tmp_path):
    with pytest.raises(ValueError, match="metrics holds no epoch"):
        plot_training_curves([])
    with pytest.raises(ValueError, match="no numeric column to plot"):
        plot_training_curves([{"epoch": 1, "note": "x"}])
    with pytest.raises(ValueError, match="no numeric column 'val_f1'"):
        plot_training_curves([{"epoch": 1, "val_acc": 0.5}], keys=["val_f1"])
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n")
    with pytest.raises(ValueError, match="metrics.csv holds no epoch"):
        plot_training_curves(tmp_path / "metrics.csv")
    (tmp_path / "metrics.json").write_text("[{")
    with pytest.raises(ValueError, match="metrics.json is not valid JSON"):
        plot_training_curves(tmp_path)
    (tmp_path / "metrics.json").write_text('{"epoch": 1}')
    with pytest.raises(ValueError, match="list of per-epoch records"):
        plot_training_curves(tmp_path / "metrics.json")
    with pytest.raises(FileNotFoundError):
        plot_training_curves(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="holds no metrics.json or metrics.csv"):
        plot_training_curves(tmp_path / "..")


# --------------------------------------------------------------------------- distillation comparison
def test_kd_comparison_bars_are_seed_means_with_sample_std():
    results = {"scratch": [0.80, 0.83, 0.81], "KD": [0.85, 0.86, 0.84, 0.88], "topological KD": [0.9]}
    fig = plot_kd_comparison(results)
    ax = fig.axes[0]
    bars = bar_container(ax)
    heights = [b.get_height() for b in bars]
    np.testing.assert_allclose(heights, [100 * np.mean(v) for v in results.values()])
    errors = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    segments = [seg for seg in errors.lines[2][0].get_segments() if len(seg) == 2 and np.isfinite(seg).all()]
    # sample standard deviation (ddof=1), centred on the mean; the single-seed method has no error bar
    assert [seg[0][0] for seg in segments] == [0, 1]
    np.testing.assert_allclose([(seg[1][1] - seg[0][1]) / 2 for seg in segments],
                               [100 * np.std(results["scratch"], ddof=1), 100 * np.std(results["KD"], ddof=1)])
    np.testing.assert_allclose([(seg[1][1] + seg[0][1]) / 2 for seg in segments], heights[:2])
    assert 100 * np.std(results["KD"], ddof=1) != pytest.approx(100 * np.std(results["KD"], ddof=0))
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(np.sort(np.concatenate([d.get_offsets()[:, 1] for d in dots])),
                               np.sort(100 * np.concatenate([np.atleast_1d(v) for v in results.values()])))
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == f"{100 * np.mean(results['scratch']):.1f} ± {100 * np.std(results['scratch'], ddof=1):.1f}"
    delta = 100 * (np.mean(results["KD"]) - np.mean(results["scratch"]))
    assert texts[1].endswith(f"Δ +{delta:.1f}")
    baseline = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert baseline[0].get_ydata()[0] == pytest.approx(100 * np.mean(results["scratch"]))
    assert bars[0].get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb("#7F7F7F"))  # grey baseline
    assert ax.get_ylabel() == "test accuracy (%)" and ax.get_ylim()[0] == 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["scratch", "KD", "topological KD"]
    raw = plot_kd_comparison({"a": 1.5, "b": [2.0, 3.0]}, baseline=None, ylabel="loss")
    np.testing.assert_allclose([b.get_height() for b in bar_container(raw.axes[0])], [1.5, 2.5])


def test_kd_comparison_refuses_bad_results():
    with pytest.raises(ValueError, match="results is empty"):
        plot_kd_comparison({})
    with pytest.raises(ValueError, match="method 'KD' has no value"):
        plot_kd_comparison({"KD": []})
    with pytest.raises(ValueError, match="method 'KD' has a non-finite value"):
        plot_kd_comparison({"scratch": [0.5], "KD": [0.6, float("nan")]})


# --------------------------------------------------------------------------- compression
def test_compression_bars_of_a_real_report(run_folder):
    report = json.loads((run_folder / "compressed" / "report.json").read_text())
    before, after = report["before"], report["after"]
    fig = plot_compression(before, after)
    panels = {ax.get_title().split("\n")[0]: ax for ax in fig.axes if ax.patches}
    expected = {"accuracy (%)": (100 * before["accuracy"], 100 * after["accuracy"]),
                "parameters": (before["params"]["total"], after["params"]["total"]),
                "non-zero parameters": (before["params"]["nonzero"], after["params"]["nonzero"]),
                "file size": (before["size_bytes"], after["size_bytes"]),
                "MACs (batch 1)": (before["macs"], after["macs"]),
                "latency, batch 1 (ms)": (before["latency"]["1"]["median_ms"], after["latency"]["1"]["median_ms"]),
                "latency, batch 4 (ms)": (before["latency"]["4"]["median_ms"], after["latency"]["4"]["median_ms"]),
                f"peak forward memory (batch {before['memory']['batch_size']})":
                    (before["memory"]["peak_bytes"], after["memory"]["peak_bytes"])}
    assert set(panels) == set(expected)
    for name, values in expected.items():
        np.testing.assert_allclose([p.get_height() for p in panels[name].patches], values)
    # global pruning to 50 %: the non-zero count halves, the dense count does not change
    b, a = before["params"]["nonzero"], after["params"]["nonzero"]
    assert panels["non-zero parameters"].get_title().split("\n")[1] == f"{b / a:.2f}× smaller"
    assert panels["parameters"].get_title().split("\n")[1] == "unchanged"
    points = 100 * (after["accuracy"] - before["accuracy"])
    assert panels["accuracy (%)"].get_title().split("\n")[1] == f"{points:+.1f} points".replace("-", "−")
    # latency error bars: the interquartile range, centred on the median
    lat = panels["latency, batch 4 (ms)"]
    segments = bar_container(lat).errorbar.lines[2][0].get_segments()
    np.testing.assert_allclose([s[1][1] - s[0][1] for s in segments],
                               [before["latency"]["4"]["iqr_ms"], after["latency"]["4"]["iqr_ms"]])
    np.testing.assert_allclose([(s[1][1] + s[0][1]) / 2 for s in segments], expected["latency, batch 4 (ms)"])
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    size_ticks = [t.get_text() for t in panels["file size"].get_yticklabels() if t.get_text() not in ("", "0")]
    assert size_ticks and all(t.endswith("B") for t in size_ticks)  # bytes are labelled as bytes


def test_compression_refuses_reports_without_shared_metrics():
    with pytest.raises(ValueError, match="share no metric"):
        plot_compression({"accuracy": 0.5}, {"macs": 3})
    with pytest.raises(ValueError, match="size_bytes is not finite"):
        plot_compression({"size_bytes": 10}, {"size_bytes": float("inf")})


# --------------------------------------------------------------------------- saving
def small_figure():
    return plot_kd_comparison({"scratch": [0.5, 0.6], "KD": [0.7, 0.72]})


def test_save_figure_writes_readable_png_and_svg(tmp_path):
    from PIL import Image

    paths = save_figure(small_figure(), tmp_path / "sub" / "kd.png")
    assert paths == [tmp_path / "sub" / "kd.png", tmp_path / "sub" / "kd.svg"]
    png = paths[0].read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 5000
    with Image.open(paths[0]) as im:
        im.verify()
    with Image.open(paths[0]) as im:
        assert im.width > 300 and im.height > 200
    assert matplotlib.image.imread(paths[0]).std() > 0  # not a blank canvas
    root = ET.parse(paths[1]).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "scratch" in paths[1].read_text()  # text stays text (svg.fonttype none)
    assert save_figure(small_figure(), tmp_path / "only", "svg") == [tmp_path / "only.svg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["only.svg", "sub"]
    with pytest.raises(ValueError, match="unsupported figure format 'jpg'"):
        save_figure(small_figure(), tmp_path / "x", ["png", "jpg"])


def test_save_figure_refuses_to_overwrite(tmp_path):
    save_figure(small_figure(), tmp_path / "fig", "png")
    before = (tmp_path / "fig.png").read_bytes()
    with pytest.raises(FileExistsError, match="fig.png already exists"):
        save_figure(plot_diagram(np.array([[0.0, 1.0]])), tmp_path / "fig")
    assert (tmp_path / "fig.png").read_bytes() == before and not (tmp_path / "fig.svg").exists()
    save_figure(plot_diagram(np.array([[0.0, 1.0]])), tmp_path / "fig", overwrite=True)
    assert (tmp_path / "fig.png").read_bytes() != before and (tmp_path / "fig.svg").exists()


def test_save_figure_leaves_no_temporary_file_on_failure(tmp_path):
    fig = small_figure()

    def broken(fh, **kwargs):
        fh.write(b"half a figure")
        raise RuntimeError("disk full")

    fig.savefig = broken
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, tmp_path / "fig")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_save_figure_permissions_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        paths = save_figure(small_figure(), tmp_path / "fig")
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask


# --------------------------------------------------------------------------- plot_run and the CLI
def test_plot_run_draws_every_figure_the_folder_supports(run_folder, tmp_path):
    out = tmp_path / "figures"
    paths = plot_run(run_folder, out, formats=("png",))
    assert {p.stem for p in paths} == EXPECTED_FIGURES and all(p.suffix == ".png" for p in paths)
    for p in paths:
        assert p.parent == out and p.read_bytes()[:8] == PNG_MAGIC
    # refuses to overwrite before drawing anything, then --force semantics
    stamp = {p: p.stat().st_mtime_ns for p in paths}
    with pytest.raises(FileExistsError, match="already exists"):
        plot_run(run_folder, out, formats=("png",))
    assert {p: p.stat().st_mtime_ns for p in paths} == stamp


def test_plot_run_compares_replicate_seeds(tmp_path):
    """results.json files that differ only in the seed: one comparison over them (mean ± std, ddof=1)."""
    accs = {"student": [0.70, 0.74, 0.75], "scratch": [0.60, 0.66, 0.65]}
    for i, seed in enumerate((1, 2, 3)):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        results = {"teachers": {}, **{k: {"test_acc": v[i], "settings": {"seed": seed, "epochs": 5}}
                                      for k, v in accs.items()}}
        (folder / "results.json").write_text(json.dumps(results))
    paths = plot_run(tmp_path, formats="png")
    assert sorted(p.name for p in paths) == ["kd-comparison-over-seeds.png", "seed1-kd-comparison.png",
                                             "seed2-kd-comparison.png", "seed3-kd-comparison.png"]
    assert all(p.parent == tmp_path / "figures" for p in paths)
    # drawing the same way plot_run does: bars = means
    fig = plot_kd_comparison(accs)
    np.testing.assert_allclose([b.get_height() for b in bar_container(fig.axes[0])],
                               [100 * np.mean(v) for v in accs.values()])
    # a second run skips the figures folder, so it finds the same four
    assert len(plot_run(tmp_path, formats="png", overwrite=True)) == 4


def test_cli_plot(run_folder, tmp_path, capsys):
    src = run_folder / "kd" / "teachers"
    shutil.copytree(src, tmp_path / "teachers", ignore=shutil.ignore_patterns("*.safetensors"))
    assert main(["plot", str(tmp_path / "teachers"), "--format", "svg"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "teachers" / "figures" / "pi-training.svg")]
    ET.parse(printed[0])
    assert main(["plot", str(tmp_path / "teachers"), "--format", "svg"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("topokd: error: ") and err.count("\n") == 1 and "--force" in err
    assert main(["plot", str(tmp_path / "teachers"), "--format", "svg", "--force"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("case", ["missing", "empty", "file"])
def test_cli_plot_errors_are_one_line(tmp_path, capsys, case):
    target = tmp_path / "run"
    if case == "empty":
        target.mkdir()
    elif case == "file":
        target.write_text("x")
    assert main(["plot", str(target)]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("topokd: error: ") and captured.err.count("\n") == 1
    assert {"missing": "does not exist", "empty": "nothing to plot", "file": "is not a folder"}[case] in captured.err
    assert not (tmp_path / "run" / "figures").exists()
