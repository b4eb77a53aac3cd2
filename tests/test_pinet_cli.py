"""``topokd pinet train|predict|evaluate`` end to end."""

import json

import numpy as np

from topokd.cli import main
from topokd.data import wearable_windows
from topokd.pinet import PINet


def test_train_predict_evaluate(tmp_path, capsys):
    X, _ = wearable_windows(48, 40, 2, seed=1)
    np.save(tmp_path / "x.npy", np.swapaxes(X, 1, 2))  # stored (N, C, T)
    model = tmp_path / "m.safetensors"
    train = ["pinet", "train", "--data", str(tmp_path / "x.npy"), "--channels-first", "-o", str(model),
             "--widths", "4,8,8,8", "--epochs", "2", "--batch-size", "16", "--optimizer", "adamw",
             "--resolution", "12", "--quiet"]
    assert main(train) == 0
    assert "trained signal-pinet on (48, 40, 2)" in capsys.readouterr().out
    assert main(train) == 1 and "already exists" in capsys.readouterr().err

    out = tmp_path / "pis.npz"
    assert main(["pinet", "predict", str(model), str(tmp_path / "x.npy"), "--channels-first", "-o", str(out),
                 "--quiet"]) == 0
    pis = np.load(out)["pis"]
    expected = PINet.load(model, progress=False).predict(X)
    np.testing.assert_array_equal(pis, expected)

    scores = tmp_path / "scores.json"
    assert main(["pinet", "evaluate", str(model), str(tmp_path / "x.npy"), "--channels-first", "--json",
                 str(scores), "--quiet"]) == 0
    assert set(json.loads(scores.read_text())) >= {"mse", "pearson", "max_abs"}


def test_errors(tmp_path, capsys):
    assert main(["pinet", "evaluate", str(tmp_path / "none.safetensors"), "--data", "synthetic"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["pinet"]) == 1 and "choose a verb" in capsys.readouterr().err
