"""The ``topokd`` command: streaming, atomic output, refusals."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

import topokd
from topokd.cli import main
from topokd.io import read_metadata


@pytest.fixture
def signals(rng, tmp_path):
    X = rng.normal(size=(9, 50, 3))
    path = tmp_path / "x.npy"
    np.save(path, X)
    return X, path


def test_signal_pis_to_npz(signals, tmp_path):
    X, path = signals
    out = tmp_path / "pis.npz"
    assert main(["pi", str(path), "-o", str(out), "--kind", "signal", "--chunk-size", "4", "--quiet"]) == 0
    with np.load(out, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["pis"], topokd.signal_pis(X))
    meta = read_metadata(out)
    assert meta["kind"] == "signal" and meta["params"]["scale"] == "standardize"
    assert meta["input_shape"] == [9, 50, 3] and meta["topokd_version"] == topokd.__version__


def test_refuses_to_overwrite_without_force(signals, tmp_path, capsys):
    _, path = signals
    out = tmp_path / "pis.npz"
    out.write_bytes(b"precious")
    assert main(["pi", str(path), "-o", str(out), "--kind", "signal", "--quiet"]) == 1
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert main(["pi", str(path), "-o", str(out), "--kind", "signal", "--quiet", "--force"]) == 0
    assert np.load(out)["pis"].shape == (9, 3, 50, 50)


def test_failure_midway_leaves_nothing_behind(rng, tmp_path, capsys):
    X = rng.normal(size=(10, 20, 2))
    X[7, 4, 1] = np.nan
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "pis.npz"
    assert main(["pi", str(tmp_path / "x.npy"), "-o", str(out), "--kind", "signal", "--chunk-size", "3", "--quiet"]) == 1
    assert "sample 7, time step 4, channel 1" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_streams_compressed_npz_member_and_channel_layouts(rng, tmp_path):
    X = rng.normal(size=(6, 40, 2))
    np.savez_compressed(tmp_path / "in.npz", X=np.swapaxes(X, 1, 2), y=np.arange(6))
    out = tmp_path / "o.npz"
    args = ["pi", str(tmp_path / "in.npz"), "-o", str(out), "--kind", "signal", "--quiet", "--chunk-size", "4"]
    assert main(args) == 1  # two arrays: --key is required
    assert main(args + ["--key", "X", "--channels-first", "--preset", "tda-kd-signal", "--scale", "minmax"]) == 0
    expected = topokd.signal_pis(X, preset="tda-kd-signal", scale="minmax")
    np.testing.assert_array_equal(np.load(out)["pis"], expected)


def test_images_channels_last_and_overrides(rng, tmp_path):
    imgs = rng.uniform(size=(4, 8, 8, 3))
    np.save(tmp_path / "im.npy", imgs)
    out = tmp_path / "o.npz"
    assert main(["pi", str(tmp_path / "im.npy"), "-o", str(out), "--kind", "image", "--channels-last",
                 "--mode", "cubical", "--preset", "pinet-image", "--normalize", "none", "--resolution", "20",
                 "--quiet"]) == 0
    expected = topokd.image_pis(imgs.transpose(0, 3, 1, 2), mode="cubical", preset="pinet-image",
                                normalize=None, resolution=20)
    np.testing.assert_array_equal(np.load(out)["pis"], expected)
    assert read_metadata(out)["params"]["normalize"] is None


@pytest.mark.parametrize("args, message", [
    (["--kind", "image"], "needs 4 dimensions"),
    (["--kind", "signal", "--sigma", "-1"], "sigma"),
    (["--kind", "signal", "--birth-range", "1,0"], "reversed"),
    (["--kind", "signal", "--order", "row"], "images only"),
])
def test_bad_arguments(signals, tmp_path, capsys, args, message):
    _, path = signals
    assert main(["pi", str(path), "-o", str(tmp_path / "o.npz"), "--quiet", *args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_missing_and_unsupported_inputs(tmp_path, capsys):
    assert main(["pi", str(tmp_path / "nope.npy"), "-o", str(tmp_path / "o.npz"), "--kind", "signal"]) == 1
    (tmp_path / "x.csv").write_text("1,2\n")
    assert main(["pi", str(tmp_path / "x.csv"), "-o", str(tmp_path / "o.npz"), "--kind", "signal"]) == 1
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["pi", str(tmp_path / "obj.npy"), "-o", str(tmp_path / "o.npz"), "--kind", "signal"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "expected a .npy or .npz" in err and "never unpickles" in err


def test_truncated_input_fails_cleanly(rng, tmp_path, capsys):
    np.save(tmp_path / "x.npy", rng.normal(size=(20, 30, 2)))
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) - 100])
    out = tmp_path / "o.npz"
    assert main(["pi", str(tmp_path / "cut.npy"), "-o", str(out), "--kind", "signal", "--quiet", "--chunk-size", "8"]) == 1
    assert "truncated" in capsys.readouterr().err and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.npy", "x.npy"]


def test_presets_command(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "pinet-image" in out and "arXiv 1906.01769" in out


def test_console_script_help(tmp_path):
    """The installed console script runs (the demo itself: tests/test_demo.py)."""
    exe = shutil.which("topokd") or str(
        __import__("pathlib").Path(sys.executable).with_name("topokd"))
    help_text = subprocess.run([exe, "pi", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--preset" in help_text and "--force" in help_text
    demo_help = subprocess.run([exe, "demo", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--quick" in demo_help and "--data" in demo_help and "%%" not in demo_help


def test_atomic_path_does_not_replace_a_file_written_meanwhile(tmp_path):
    from topokd.io import atomic_path, current_umask, write_atomic

    target = tmp_path / "out.json"
    with pytest.raises(FileExistsError, match="written meanwhile by another process"):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_text("ours")
            target.write_text("theirs")  # another process, after the existence check
    assert target.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary left
    with pytest.raises(FileExistsError, match="pass --force"):
        write_atomic(target, "again", overwrite=False)
    write_atomic(target, "forced")
    assert target.read_text() == "forced"
    fresh = write_atomic(tmp_path / "new.json", "x", overwrite=False)
    assert fresh.read_text() == "x" and oct(fresh.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
