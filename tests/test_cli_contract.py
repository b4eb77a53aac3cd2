"""The CLI contract, command by command, with bad inputs, as a user meets it.

Every failure of every command is exactly one line ``topokd: error: ...`` on
stderr (after ``topokd: notice:`` lines only where documented), a non-zero
exit, no traceback, and nothing new in the output folder (no partial or
temporary file).  Ctrl-C is ``topokd: interrupted``, exit 130, nothing left
behind.  Each command runs as its own process (``python -m topokd.cli``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import topokd

CLI = [sys.executable, "-m", "topokd.cli"]
ERROR, NOTICE = "topokd: error: ", "topokd: notice: "
#: A PI-Net that trains in about a second on CPU.
TINY_PINET = ["--widths", "4,8,8,8", "--epochs", "1", "--batch-size", "8", "--resolution", "8", "--device", "cpu",
              "--quiet"]
#: One epoch, CPU: the teacher and the student of the experiment configs below.
TINY_TRAIN = {"epochs": 1, "batch_size": 16, "progress": False, "device": "cpu"}
SYNTHETIC = {"name": "synthetic", "synthetic_windows": 40, "synthetic_length": 32}


def topokd_cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def listing(folder: Path) -> dict:
    """Everything under ``folder`` (hidden temporary files included), with each file's size and mtime."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.stat()
        out[str(path.relative_to(folder))] = None if path.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


def skip_if_cuda(argv) -> None:
    """The ``--device cuda`` refusals need a torch without a usable GPU."""
    if any("cuda" in str(a) for a in argv):
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here: --device cuda is not refused")


def assert_refused(result, folder: Path, before: dict, match: str | None = None, notices: int = 0) -> str:
    """The contract of a failure; returns the error line."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == notices + 1, result.stderr
    assert all(line.startswith(NOTICE) for line in lines[:notices]), result.stderr
    error = lines[-1]
    assert error.startswith(ERROR) and error[len(ERROR):].strip(), result.stderr
    if match is not None:
        assert match in error, error
    assert listing(folder) == before, "the failed command left files behind"
    return error


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Good and bad input files, shared read-only by every test (outputs go to each test's tmp_path)."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    signals = rng.normal(size=(8, 40, 2))
    np.save(d / "sig.npy", signals)
    np.save(d / "sig2d.npy", signals[:, :, 0])
    nan = signals.copy()
    nan[3, 5, 1] = np.nan
    np.save(d / "nan.npy", nan)
    np.save(d / "empty.npy", signals[:0])
    np.save(d / "str.npy", signals.astype(str))
    np.save(d / "complex.npy", signals.astype(complex))
    np.save(d / "object.npy", np.empty((2, 5, 1), dtype=object), allow_pickle=True)
    np.savez(d / "two.npz", X=signals, y=np.arange(8))
    (d / "garbage.npy").write_bytes(rng.bytes(600))
    (d / "garbage.safetensors").write_bytes(rng.bytes(600))
    images = rng.integers(0, 256, size=(6, 2, 12, 12), dtype=np.uint8)
    images[0, 0, 0, 0], images[-1, -1, -1, -1] = 0, 255
    np.save(d / "img_u8.npy", images)
    np.save(d / "img_01.npy", images.astype(np.float64) / 255)
    np.save(d / "img_255.npy", images.astype(np.float32))  # 8-bit values, float dtype: refused
    np.save(d / "targets_bad.npy", np.zeros((5, 2, 8, 8)))
    # windows files for the experiment configs
    labels = np.arange(40) % 2
    windows = rng.normal(size=(40, 32, 2))
    bad = windows.copy()
    bad[5, 3, 1] = np.nan
    np.savez(d / "win_nan.npz", X=bad, y=labels)
    np.savez(d / "win_2d.npz", X=windows[:, :, 0], y=labels)
    np.savez(d / "win_empty.npz", X=windows[:0], y=labels[:0])
    return d


@pytest.fixture(scope="module")
def signal_model(data) -> Path:
    """A trained (tiny) signal PI-Net."""
    from topokd.pinet import PINet

    est = PINet("signal", pi_params={"resolution": 8}, widths=(4, 8, 8, 8), epochs=1, batch_size=8, device="cpu",
                progress=False).fit(np.load(data / "sig.npy"))
    est.save(data / "signal.safetensors")
    return data / "signal.safetensors"


@pytest.fixture(scope="module")
def student(data) -> Path:
    """An (untrained) student checkpoint with the metadata topokd's training loop writes."""
    import torch

    from topokd.checkpoint import save_checkpoint
    from topokd.distill.models import create_model

    torch.manual_seed(0)
    model = create_model("wrn10-1_1d", num_classes=4, in_channels=3)
    meta = {"role": "student", "epoch": 1, "val_acc": 0.5,
            "model": {"model": "wrn10-1", "inputs": "signal", "num_classes": 4, "in_channels": 3}}
    return save_checkpoint(data / "student.safetensors", model.state_dict(), meta)


def experiment(folder: Path, data_spec=None, **top) -> Path:
    """A one-teacher experiment config in ``folder`` (output ``run`` beside it).  The
    teacher and the student share one ``train`` mapping, so the YAML holds an alias."""
    train = dict(TINY_TRAIN)
    raw = {"output": "run", "seed": 0, "data": data_spec or SYNTHETIC,
           "teachers": {"signal": {"model": "resnet8", "inputs": "signal", "train": train}},
           "student": {"model": "resnet8", "teachers": ["signal"], "losses": {"ce": 0.5, "kd": 0.5}, "train": train},
           **top}
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def compression(folder: Path, data_spec=None, **top) -> Path:
    raw = {"data": data_spec or SYNTHETIC, "latency": {"batch_sizes": [1], "repeats": 1, "warmup": 0},
           "steps": [{"prune": {"method": "global", "amount": 0.5}}], **top}
    path = folder / "compress.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# --------------------------------------------------------------------------- array inputs
PI = ["-o", "out.npz", "--kind", "signal", "--quiet"]

INPUT_CASES = [
    # topokd pi: every bad input
    ("pi", "nope.npy", PI, "does not exist"),
    ("pi", "sig2d.npy", PI, "needs 3 dimensions"),
    ("pi", "nan.npy", PI, "sample 3, time step 5, channel 1"),
    ("pi", "empty.npy", PI, "is empty"),
    ("pi", "str.npy", PI, "must hold real numbers, got dtype <U"),
    ("pi", "complex.npy", PI, "must hold real numbers, got dtype complex128"),
    ("pi", "object.npy", PI, "never unpickles"),
    ("pi", "garbage.npy", PI, "cannot read"),
    ("pi", "img_255.npy", ["-o", "out.npz", "--kind", "image", "--quiet"],
     "values in [0, 255], outside [0, 1]"),
    ("pi", "sig.npy", PI + ["--key", "X"], "drop --key"),
    ("pi", "two.npz", PI, "choose one with --key"),
    ("pi", "sig.npy", ["-o", "out.txt", "--kind", "signal"], "must end in .npz"),
    ("pi", "sig.npy", ["-o", "no/such/out.npz", "--kind", "signal"], "does not exist"),
    # topokd pinet: the loader of pi (open_array) plus the PI-Net's own checks, a sample per verb
    ("pinet train --data", "sig2d.npy", ["-o", "m.safetensors", *TINY_PINET], "(N, T, C)"),
    ("pinet train --data", "nan.npy", ["-o", "m.safetensors", *TINY_PINET], "non-finite"),
    ("pinet train --data", "img_255.npy", ["--kind", "image", "-o", "m.safetensors", *TINY_PINET],
     "values in [0, 255], outside [0, 1]"),
    ("pinet train --data", "sig.npy", ["--targets", "{d}/targets_bad.npy", "-o", "m.safetensors", *TINY_PINET],
     "targets must have shape"),
    ("pinet predict {m}", "empty.npy", ["-o", "out.npz", "--quiet"], "non-empty"),
    ("pinet evaluate {m}", "nan.npy", ["--json", "scores.json", "--quiet"], "non-finite"),
]


@pytest.mark.parametrize("command, name, extra, match", INPUT_CASES,
                         ids=["-".join(c.split()[:2] + [n.split(".")[0], str(i)])
                              for i, (c, n, _, _) in enumerate(INPUT_CASES)])
def test_bad_array_inputs(data, signal_model, tmp_path, command, name, extra, match):
    fill = {"d": data, "m": signal_model}
    argv = [*command.format(**fill).split(), str(data / name), *(e.format(**fill) for e in extra)]
    before = listing(tmp_path)
    assert_refused(topokd_cli(*argv, cwd=tmp_path), tmp_path, before, match)


# --------------------------------------------------------------------------- misuse, checkpoints, devices
MISUSE_CASES = [
    (["pinet", "train", "--data", "{d}/sig.npy", "-o", "m.safetensors", "--resume", *TINY_PINET],
     "give it with --checkpoint"),
    (["pinet", "train", "--data", "{d}/sig.npy", "-o", "no/m.safetensors", *TINY_PINET], "create it first"),
    (["pinet", "train", "--data", "{d}/sig.npy", "-o", "m.safetensors", *TINY_PINET, "--widths", "4,x"],
     "--widths 4,x: expected four positive integers"),
    (["pinet", "train", "--data", "synthetic", "--key", "X", "-o", "m.safetensors", *TINY_PINET], "drop --key"),
    (["pinet", "train", "--data", "{d}/sig.npy", "-o", "m.safetensors", *TINY_PINET, "--device", "cuda"],
     "--device cuda: "),
    (["pinet", "train", "--data", "{d}/sig.npy", "-o", "model.txt", *TINY_PINET],
     "--output model.txt: must end in .safetensors (e.g. model.safetensors)"),
    (["pinet", "train", "--data", "{d}/sig.npy", "-o", "m.safetensors", "--checkpoint", "state.pt", *TINY_PINET],
     "--checkpoint state.pt: must end in .safetensors"),
    (["pinet", "predict", "{m}", "{d}/sig.npy", "-o", "pis.npy"], "--output pis.npy: must end in .npz"),
    (["pinet", "evaluate", "{m}", "{d}/sig.npy", "--json", "scores.txt"], "--json scores.txt: must end in .json"),
    (["pinet", "train", "--data", "{d}/sig.npy", "-o", "m.safetensors", *TINY_PINET, "--augment", "jiter"],
     "--augment 'jiter': choose one of surrogate"),
    (["pinet", "train", "--data", "{d}/sig.npy", "-o", "m.safetensors", *TINY_PINET, "--channel-groups", "0,1"],
     "give --augment NAME too"),
    (["pinet", "train", "--data", "{d}/sig.npy", "-o", "m.safetensors", *TINY_PINET, "--augment", "surrogate",
      "--channel-groups", "0,1/1,2"], "groups must be disjoint"),
    (["pinet", "train", "--data", "{d}/sig.npy", "-o", "m.safetensors", *TINY_PINET, "--augment", "surrogate",
      "--channel-groups", "0,1,2/3,40"], "names a channel the data does not have"),
    (["pinet", "predict", "{d}/garbage.safetensors", "{d}/sig.npy", "-o", "out.npz"],
     "is not a readable safetensors checkpoint"),
    (["pinet", "predict", "{m}", "{d}/sig.npy", "-o", "no/out.npz"], "create it first"),
    (["compress", "{d}/garbage.safetensors", "{compress}", "-o", "out"], "is not a readable safetensors checkpoint"),
    (["compress", "{m}", "{compress}", "-o", "out"], "has no model description"),  # a PI-Net is no student
    (["plot", "no-such-run"], "does not exist"),
    (["plot", "empty-run"], "nothing to plot"),
    (["demo", "-o", "taken.npz"], "taken.npz"),
    (["demo", "-o", "demo-out", "--device", "cuda"], "--device cuda: "),
]


@pytest.mark.parametrize("argv, match", MISUSE_CASES, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(MISUSE_CASES)])
def test_misuse_checkpoints_and_devices(data, signal_model, tmp_path, argv, match):
    (tmp_path / "empty-run").mkdir()
    (tmp_path / "taken.npz").write_bytes(b"precious")
    skip_if_cuda(argv)
    fill = {"d": data, "m": signal_model, "compress": compression(tmp_path)}
    before = listing(tmp_path)
    assert_refused(topokd_cli(*(a.format(**fill) for a in argv), cwd=tmp_path), tmp_path, before, match)


def test_debug_shows_the_traceback(tmp_path):
    result = topokd_cli("--debug", "pi", "nope.npy", "-o", "out.npz", "--kind", "signal", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr and "FileNotFoundError" in result.stderr


# --------------------------------------------------------------------------- YAML configs
def _syntax_error(folder: Path) -> Path:
    path = folder / "exp.yaml"
    path.write_text("output: run\nteachers: {signal: [unclosed\n  model: resnet8\n")
    return path


CONFIG_CASES = [
    # (command, writes the config, extra arguments, error)
    ("run", lambda f, d: f / "missing.yaml", [], "missing.yaml does not exist"),
    ("run", lambda f, d: _syntax_error(f), [], "exp.yaml is not valid YAML at line 3, column 8"),
    ("train-teacher", lambda f, d: experiment(f, bogus=1), [], "unknown top-level key 'bogus'"),
    ("distill", lambda f, d: experiment(f), ["--set", "teachers.signal.train.optimiser=sgd"],
     "teachers.signal.train: unknown key 'optimiser' (did you mean 'optimizer'?)"),
    ("train-teacher", lambda f, d: experiment(f), ["--set", "student.train.epochs=[1"], "cannot read '[1'"),
    ("run", lambda f, d: experiment(f, {"path": str(d / "win_nan.npz")}), [],
     "non-finite value(s); the first is NaN at (sample 5, time 3, channel 1)"),
    ("train-teacher", lambda f, d: experiment(f, {"path": str(d / "win_2d.npz")}), [], "must be 3-D (N, T, C)"),
    ("run", lambda f, d: experiment(f, {"path": str(d / "win_empty.npz")}), [], "holds no windows"),
    ("run", lambda f, d: experiment(f), ["--device", "cuda"], "--device cuda: "),
    # the teacher and the student share one aliased train mapping: the override changes the student only
    ("run", lambda f, d: experiment(f), ["--set", "student.train.device=cuda"], "student.train.device 'cuda': "),
    ("distill", lambda f, d: experiment(f), [], "train the teacher first"),
    ("compress {s}", lambda f, d: compression(f, bogus=1), ["-o", "out"], "unknown top-level key 'bogus'"),
    ("compress {s}", lambda f, d: compression(f, {"path": str(d / "win_nan.npz")}), ["-o", "out"], "non-finite"),
]


@pytest.mark.parametrize("command, write, extra, match", CONFIG_CASES,
                         ids=[f"{c.split()[0]}-{i}" for i, (c, _, _, _) in enumerate(CONFIG_CASES)])
def test_bad_configs(data, student, tmp_path, command, write, extra, match):
    skip_if_cuda(extra)
    config = write(tmp_path, data)
    before = listing(tmp_path)
    argv = [*command.format(s=student).split(), config, "--quiet", *extra]
    assert_refused(topokd_cli(*argv, cwd=tmp_path), tmp_path, before, match)


# --------------------------------------------------------------------------- existing outputs
def test_existing_outputs_are_refused_without_force(data, signal_model, student, tmp_path):
    (tmp_path / "pis.npz").write_bytes(b"precious")
    (tmp_path / "m.safetensors").write_bytes(b"precious")
    (tmp_path / "scores.json").write_text("{}")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.json").write_text("{}")
    config = experiment(tmp_path)
    (tmp_path / "run" / "teachers" / "signal").mkdir(parents=True)
    (tmp_path / "run" / "teachers" / "signal" / "metrics.json").write_text("[]")
    runs = [
        (["pi", data / "sig.npy", "-o", "pis.npz", "--kind", "signal"], "pis.npz already exists; pass --force"),
        (["pinet", "train", "--data", data / "sig.npy", "-o", "m.safetensors", *TINY_PINET],
         "m.safetensors already exists; pass --force"),
        (["pinet", "predict", signal_model, data / "sig.npy", "-o", "pis.npz"], "pis.npz already exists"),
        (["pinet", "evaluate", signal_model, data / "sig.npy", "--json", "scores.json"], "scores.json already exists"),
        (["run", config, "--quiet"], "already holds a run; pass --resume to continue it or --force"),
        (["compress", student, compression(tmp_path), "-o", "out", "--quiet"], "report.json already exists"),
    ]
    before = listing(tmp_path)
    for argv, match in runs:
        assert_refused(topokd_cli(*argv, cwd=tmp_path), tmp_path, before, match)
    assert (tmp_path / "pis.npz").read_bytes() == b"precious"


# --------------------------------------------------------------------------- uint8 and 0..255 images
def test_pi_scales_uint8_images_with_one_notice(data, tmp_path):
    result = topokd_cli("pi", data / "img_u8.npy", "-o", "pis.npz", "--kind", "image", "--chunk-size", "2",
                        "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()  # one notice, not one per chunk
    assert len(lines) == 1 and lines[0].startswith(NOTICE) and "uint8" in lines[0] and "1/255" in lines[0]
    pis = np.load(tmp_path / "pis.npz")["pis"]
    np.testing.assert_array_equal(pis, topokd.image_pis(np.load(data / "img_01.npy")))
    assert (pis.reshape(len(pis) * 2, -1).max(axis=1) > 0).all()  # never silently zeros


def test_pinet_trains_and_evaluates_uint8_images_as_float_over_255(data, tmp_path):
    from topokd.pinet import PINet

    train = topokd_cli("pinet", "train", "--kind", "image", "--data", data / "img_u8.npy", "-o", "img.safetensors",
                       *TINY_PINET, cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    notices = train.stderr.splitlines()
    assert len(notices) == 1 and notices[0].startswith(NOTICE) and "uint8" in notices[0], train.stderr
    result = topokd_cli("pinet", "evaluate", "img.safetensors", data / "img_u8.npy", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(NOTICE), result.stderr
    scores = json.loads(result.stdout)
    expected = PINet.load(tmp_path / "img.safetensors", device="cpu", progress=False).evaluate(
        np.load(data / "img_01.npy"))
    assert scores == pytest.approx(expected, rel=1e-6)
    assert scores["constant_images"] == 0  # the exact PIs of the scaled images are not all zeros


# --------------------------------------------------------------------------- Ctrl-C
def _interrupt(argv, cwd: Path, working) -> subprocess.CompletedProcess:
    """Start ``argv``, wait until ``working()`` says it is at work, send SIGINT, collect it."""
    proc = subprocess.Popen([*CLI, *map(str, argv)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not working():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never started working"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


needs_posix = pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")


@needs_posix
def test_ctrl_c_during_pi_leaves_nothing(tmp_path):
    window = np.random.default_rng(1).normal(size=(1, 100, 3)).astype(np.float32)
    np.savez_compressed(tmp_path / "many.npz", X=np.tile(window, (100_000, 1, 1)))  # ~20 s of work, 0.6 MB
    before = listing(tmp_path)
    result = _interrupt(["pi", "many.npz", "-o", "pis.npz", "--kind", "signal", "--compress", "--quiet"], tmp_path,
                        working=lambda: any(p.name.startswith(".pis.npz.") for p in tmp_path.iterdir()))
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines() == ["topokd: interrupted"] and "Traceback" not in result.stderr
    assert listing(tmp_path) == before


@needs_posix
def test_ctrl_c_during_pinet_training_keeps_only_the_complete_training_state(data, tmp_path):
    from safetensors import safe_open

    result = _interrupt(["pinet", "train", "--data", data / "sig.npy", "-o", "m.safetensors",
                         "--checkpoint", "state.safetensors", *TINY_PINET, "--epochs", "100000"], tmp_path,
                        working=lambda: (tmp_path / "state.safetensors").exists())
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines()[-1] == "topokd: interrupted" and "Traceback" not in result.stderr
    assert sorted(listing(tmp_path)) == ["state.safetensors"]  # no model, no temporary file
    with safe_open(tmp_path / "state.safetensors", "pt") as fh:  # written atomically: complete
        assert list(fh.keys())


# --------------------------------------------------------------------------- no spurious notices
def test_unused_padding_of_diagram_buffers_never_warns():
    """The batch pipelines pad diagrams in ``np.empty`` buffers; inf - inf in the padding
    raised a RuntimeWarning that the CLI showed as a stray ``topokd: notice: invalid value
    encountered in subtract`` on runs that computed persistence images."""
    import warnings

    pi = topokd.PersistenceImage(resolution=5).fit()
    pairs = np.full((2, 3, 2), np.inf)  # rows past counts are garbage
    pairs[0, 0] = (0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images = pi.transform_pairs(pairs, np.array([1, 0]))
    np.testing.assert_array_equal(images, pi.transform([np.array([[0.0, 1.0]]), np.zeros((0, 2))]))


def test_pinet_train_on_augmented_windows(data, tmp_path):
    result = topokd_cli("pinet", "train", "--data", data / "sig.npy", "-o", "m.safetensors", *TINY_PINET,
                        "--augment", "surrogate", "--channel-groups", "0,1", "--samples-per-epoch", "16",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    from topokd.checkpoint import read_metadata

    training = read_metadata(tmp_path / "m.safetensors")["training"]
    assert training["samples_per_epoch"] == 16
    assert "SurrogateMix" in training["augment"] and "ChannelPermutation" in training["augment"]
