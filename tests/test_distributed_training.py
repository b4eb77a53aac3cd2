"""Data-parallel training under torchrun through the one engine (issue 12, part 2).

Two CPU processes (gloo) are started with ``python -m torch.distributed.run
--nproc-per-node 2`` on tests/distributed_worker.py and compared with the
same training run as one process in this test (the independent reference):

* the engine on a small MLP without BatchNorm: equal to the single-process
  run within float rounding (weights within 1e-6; the gradient of a batch is
  the (n_r / n)-weighted sum of the ranks' gradients, exact up to the order
  of float additions), on batches of 11 split 6 + 5 (unequal parts); a run
  stopped after 2 epochs and resumed under torchrun ends bit for bit equal
  to the uninterrupted one;
* the PI-Net estimator and ``topokd run`` (teacher + distillation): their
  networks have BatchNorm, which normalises with the statistics of each
  rank's half batch (as DDP without SyncBatchNorm), so the runs agree only
  within a tolerance: training losses within 1 % (PI-Net) / 5 %
  (distillation, 16-sample halves), validation losses within 1 %;
  measured: 1e-3 / 2e-2 and 3e-5 / 1e-3;
* every rank ends with the same weights and the same history, and only
  rank 0 opened, created, renamed or removed anything in the run folders
  (an audit hook in each process records those operations).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import topokd.engine.distributed as D

HERE = Path(__file__).resolve().parent
WORKER = HERE / "distributed_worker.py"

needs_gloo = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available in this torch build")


def _worker_module():
    spec = importlib.util.spec_from_file_location("distributed_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(HERE.parent))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr",
           "127.0.0.1", "--master-port", str(_free_port()), str(WORKER), *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"torchrun failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _ranks(out: Path, n: int = 2) -> list[dict]:
    return [torch.load(out / "ranks" / f"rank-{r}.pt") for r in range(n)]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def _assert_only_rank0_wrote(ranks: list[dict]) -> None:
    assert ranks[0]["writes"], "the audit hook saw no write of rank 0: it does not work"
    for r in ranks[1:]:
        assert r["writes"] == [], f"rank {r['rank']} wrote into the run folders: {r['writes'][:5]}"


def _no_partial_files(root: Path) -> None:
    hidden = [p for p in root.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert hidden == [], f"temporary files left behind: {hidden}"


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- helpers, in-process -------------------------------------------------------
def test_parts_cover_a_batch_once_in_order():
    for n in (1, 2, 5, 11, 16):
        for size in (1, 2, 3, 4):
            parts = [D.part(n, r, size) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1
    assert [D.part(11, r, 2) for r in range(2)] == [(0, 6), (6, 11)]


def test_shard_batch_splits_every_kind_of_batch():
    from topokd.distill.trainer import Batch

    x, y = torch.arange(10.0).reshape(5, 2), torch.arange(5)
    assert torch.equal(D.shard_batch(x, 1, 3, 5), x[1:3])
    a, b = D.shard_batch((x, y), 3, 5, 5)
    assert torch.equal(a, x[3:]) and torch.equal(b, y[3:])
    assert torch.equal(D.shard_batch({"x": x}, 0, 2, 5)["x"], x[:2])
    pair = namedtuple("pair", "x y")
    part = D.shard_batch(pair(x, y), 0, 1, 5)
    assert isinstance(part, pair) and torch.equal(part.y, y[:1])
    batch = D.shard_batch(Batch(x.unsqueeze(1), None, y), 2, 4, 5)
    assert isinstance(batch, Batch) and batch.pi is None and torch.equal(batch.y, y[2:4])

    @dataclass
    class Scaled:
        x: torch.Tensor
        scale: float

    assert D.shard_batch(Scaled(x, 2.0), 0, 2, 5).scale == 2.0  # non-tensor fields kept
    with pytest.raises(TypeError, match="cannot split a batch of type set"):
        D.shard_batch({1, 2}, 0, 1, 2)


def test_world_from_the_environment(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert D.world() == D.World(0, 1, 0) and not D.world().active and D.is_main()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    w = D.world()
    assert w.active and not w.is_main and (w.rank, w.size) == (2, 4)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4 and WORLD_SIZE=4 do not describe"):
        D.world()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two' must be a whole number"):
        D.world()
    assert D.rank_seed(0, 1, 0) != D.rank_seed(0, 1, 1) != D.rank_seed(0, 2, 1)


def test_one_process_never_touches_torch_distributed(monkeypatch, tmp_path):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError("torch.distributed was used by a single-process run")

    for name in ("init_process_group", "all_reduce", "broadcast", "broadcast_object_list", "barrier"):
        monkeypatch.setattr(torch.distributed, name, refuse)
    weights, history = _worker_module().engine_run(tmp_path / "run", 2)
    assert len(history) == 2 and (tmp_path / "run" / "train-state.safetensors").exists()
    assert not torch.distributed.is_initialized()


def test_cli_refuses_commands_that_do_not_train_data_parallel(monkeypatch, capsys):
    from topokd.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["presets"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "topokd presets does not run under torchrun (WORLD_SIZE=2)" in err[0]
    assert "pinet train" in err[0]


# -- two processes under torchrun ----------------------------------------------------
@needs_gloo
def test_engine_and_pinet_on_two_processes_match_one(tmp_path):
    (tmp_path / "run").mkdir()
    torchrun("engine+pinet", tmp_path)
    ranks = _ranks(tmp_path)
    worker = _worker_module()

    # every rank holds the same weights and history
    for key in ("weights", "resumed_weights", "pinet_weights"):
        assert _same_state(ranks[0][key], ranks[1][key]), key
    assert ranks[0]["history"] == ranks[1]["history"] and ranks[0]["pinet_history"] == ranks[1]["pinet_history"]

    # the engine without BatchNorm: the single-process run within float rounding
    ref_weights, ref_history = worker.engine_run(tmp_path / "reference", 3)
    for k, v in ref_weights.items():
        assert torch.allclose(ranks[0]["weights"][k], v, rtol=0, atol=1e-6), k
    assert not _same_state(ranks[0]["weights"], worker.engine_run(None, 2)[0])  # 3 epochs differ from 2
    for got, want in zip(ranks[0]["history"], ref_history, strict=True):
        assert got["epoch"] == want["epoch"] and got["lr"] == want["lr"]
        assert _rel(got["train_loss"], want["train_loss"]) < 1e-5
        assert _rel(got["val_mse"], want["val_mse"]) < 1e-5
    # stopped after 2 epochs and resumed under torchrun: bit for bit the uninterrupted run
    assert _same_state(ranks[0]["resumed_weights"], ranks[0]["weights"])
    untimed = [[{k: v for k, v in h.items() if k != "seconds"} for h in ranks[0][key]]
               for key in ("history", "resumed_history")]
    assert untimed[0] == untimed[1] and len(untimed[1]) == 3

    # PI-Net (BatchNorm per rank): within the stated tolerance of one process, same global batch
    _, ref_pinet = worker.pinet_run(None)
    for got, want in zip(ranks[0]["pinet_history"], ref_pinet, strict=True):
        assert _rel(got["train_loss"], want["train_loss"]) < 1e-2
        assert _rel(got["val_mse"], want["val_mse"]) < 1e-2

    # only rank 0 wrote, one set of files, nothing partial
    _assert_only_rank0_wrote(ranks)
    engine_files = sorted(p.relative_to(tmp_path / "run").as_posix() for p in (tmp_path / "run").rglob("*"))
    assert engine_files == ["engine", "engine/best.safetensors", "engine/epochs",
                            *(f"engine/epochs/epoch-00{e}.safetensors" for e in (1, 2, 3)), "engine/last.safetensors",
                            "engine/metrics.csv", "engine/metrics.json", "engine/train-state.safetensors",
                            "pinet-state.safetensors"]
    metrics = json.loads((tmp_path / "run" / "engine" / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [1, 2, 3] and metrics == ranks[0]["history"]
    _no_partial_files(tmp_path)


@needs_gloo
def test_topokd_run_distills_on_two_processes(tmp_path):
    import yaml

    from topokd.cli import main

    config = {
        "seed": 1,
        "data": {"name": "synthetic", "synthetic_windows": 100, "synthetic_length": 48, "val_fraction": 0.2,
                 "pi_params": {"resolution": 8}},
        "teachers": {"sig": {"model": "resnet8", "inputs": "signal",
                             "train": {"epochs": 2, "batch_size": 32, "device": "cpu"}}},
        "student": {"model": "resnet8", "teachers": [{"name": "sig", "weight": 1.0}],
                    "losses": {"ce": 0.5, "kd": {"weight": 0.5, "temperature": 4}},
                    "train": {"epochs": 2, "batch_size": 32, "device": "cpu"}},
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({**config, "output": "run"}))
    (tmp_path / "ref.yaml").write_text(yaml.safe_dump({**config, "output": "reference"}))
    done = torchrun("cli", tmp_path, "run", tmp_path / "exp.yaml", "--quiet")
    assert done.stdout.count("| teacher sig |") == 1  # one report, from rank 0
    ranks = _ranks(tmp_path)
    assert [r["status"] for r in ranks] == [0, 0]
    _assert_only_rank0_wrote(ranks)
    run = tmp_path / "run"
    expected = {"results.json"} | {f"{stage}/{name}" for stage in ("teachers/sig", "student")
                                   for name in ("best.safetensors", "last.safetensors", "metrics.csv",
                                                "metrics.json", "summary.json", "train-state.safetensors")}
    assert {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()} == expected
    _no_partial_files(tmp_path)

    assert main(["run", str(tmp_path / "ref.yaml"), "--quiet"]) == 0  # the single-process reference
    for stage in ("teachers/sig", "student"):
        got = json.loads((run / stage / "metrics.json").read_text())
        want = json.loads((tmp_path / "reference" / stage / "metrics.json").read_text())
        assert [g["epoch"] for g in got] == [w["epoch"] for w in want] == [1, 2]
        for g, w in zip(got, want):
            assert _rel(g["train_loss"], w["train_loss"]) < 5e-2, (stage, g, w)
            assert _rel(g["val_loss"], w["val_loss"]) < 1e-2, (stage, g, w)
    summary = json.loads((run / "student" / "summary.json").read_text())
    assert summary["epochs"] == 2 and 0.0 <= summary["test_acc"] <= 1.0
