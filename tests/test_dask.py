"""Persistence images on Dask and the resumable Zarr store, against the
single-process NumPy path bit for bit (``np.array_equal``).

A module-scoped ``dask.distributed.LocalCluster`` of 2 worker processes (1
thread each) runs the distributed cases; dask's threaded scheduler the
others.  The resume tests stop a job halfway (an interruption after k
chunks; a ``topokd pi --scheduler tcp://...`` process killed with SIGKILL)
and check that the next run computes only the missing chunks (the chunk
record and the chunk files' modification times) and ends identical.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

import topokd  # noqa: E402
from topokd import ImagePersistenceImages, SignalPersistenceImages  # noqa: E402
from topokd.tda.distributed import MISSING, open_pis_zarr, store_attrs, write_pis_zarr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "topokd.cli"]
RNG = np.random.default_rng(12)
SIGNALS = RNG.normal(size=(90, 48, 3))
IMAGES_U8 = RNG.integers(0, 256, size=(30, 2, 10, 9), dtype=np.uint8)
IMAGES = RNG.uniform(size=(30, 2, 10, 9))


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"NUMBA_NUM_THREADS": "1"}) as cluster:
        yield cluster


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as client:
        yield client


def env() -> dict:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [out.get("PYTHONPATH")])])
    return out


def cli(*args, cwd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=300, **kw)


def computed_on_workers(client, run) -> set:
    """The workers that ran the ``topokd-pis`` tasks while ``run()`` computed."""
    with distributed.get_task_stream(client) as stream:
        result = run()
    return result, {t["worker"] for t in stream.data if "topokd-pis" in str(t["key"])}


# --------------------------------------------------------------------------- dask arrays == NumPy


def test_signals_on_the_cluster_equal_numpy(client, cluster):
    ref = topokd.signal_pis(SIGNALS, sigma=0.1, resolution=20)
    lazy = topokd.signal_pis(da.from_array(SIGNALS, chunks=(17, 20, 2)), sigma=0.1, resolution=20)
    assert isinstance(lazy, da.Array) and lazy.dtype == ref.dtype == np.float32
    assert lazy.chunks == ((17, 17, 17, 17, 17, 5), (3,), (20,), (20,))
    result, workers = computed_on_workers(client, lazy.compute)
    assert np.array_equal(result, ref)
    assert workers and workers <= set(cluster.scheduler_info["workers"])
    # the transformer class, float64, and chunk_size re-chunking the sample axis
    est = SignalPersistenceImages("tda-kd-signal", resolution=16)
    lazy = est.transform(da.from_array(SIGNALS, chunks=40), dtype=np.float64, chunk_size=13)
    assert lazy.chunks[0] == (13,) * 6 + (12,) and lazy.dtype == np.float64
    assert np.array_equal(lazy.compute(), est.transform(SIGNALS, dtype=np.float64))


@pytest.mark.parametrize("mode", ["flatten", "cubical"])
def test_images_on_the_cluster_equal_numpy(client, mode):
    ref = topokd.image_pis(IMAGES, mode=mode, resolution=12, order="column")
    lazy = topokd.image_pis(da.from_array(IMAGES, chunks=(7, 1, 10, 9)), mode=mode, resolution=12,
                            order="column")
    extra = (2,) if mode == "cubical" else ()
    assert lazy.shape == ref.shape == (30, 2, *extra, 12, 12)
    assert lazy.chunks[1:] == ((2,), *((n,) for n in extra), (12,), (12,))
    assert np.array_equal(lazy.compute(), ref)
    # uint8 images: scaled by 1/255 (one warning, when the graph is built), as in the NumPy path
    with pytest.warns(UserWarning, match="uint8"):
        ref = ImagePersistenceImages(mode, "pinet-image", resolution=12).transform(IMAGES_U8)
    with pytest.warns(UserWarning, match="uint8"):
        lazy = ImagePersistenceImages(mode, "pinet-image", resolution=12).transform(da.from_array(IMAGES_U8,
                                                                                                  chunks=8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(lazy.compute(), ref)


def test_pi_arrays_of_one_chunk_grid_have_their_own_task_keys(client):
    """A fixed key prefix let the scheduler hand one array's cached chunks to another (CI: 28 samples of
    the previous array for 30); each lazy PI array is named after its input and parameters."""
    a = topokd.signal_pis(da.from_array(SIGNALS, chunks=30), resolution=8)
    b = topokd.signal_pis(da.from_array(SIGNALS[::-1].copy(), chunks=30), resolution=8)
    c = topokd.signal_pis(da.from_array(SIGNALS, chunks=30), resolution=9)
    assert len({a.name, b.name, c.name}) == 3 and a.name.startswith("topokd-pis-")
    assert topokd.signal_pis(da.from_array(SIGNALS, chunks=30), resolution=8).name == a.name  # deterministic
    first = client.persist(a)  # a's chunks held by the cluster while b is computed
    assert np.array_equal(b.compute(), topokd.signal_pis(SIGNALS[::-1].copy(), resolution=8))
    assert np.array_equal(first.compute(), topokd.signal_pis(SIGNALS, resolution=8))


@pytest.mark.parametrize("case", ["signal", "flatten", "cubical"])
def test_threaded_scheduler_without_a_client_equals_numpy(case):
    from topokd.tda.distributed import _active_client

    assert _active_client() is None  # dask's own threads, no distributed Client
    with dask.config.set(scheduler="threads"):
        if case == "signal":
            ref = topokd.signal_pis(SIGNALS, scale="standardize")
            got = topokd.signal_pis(da.from_array(SIGNALS, chunks=11), scale="standardize").compute()
        else:
            ref = topokd.image_pis(IMAGES_U8.astype(np.float32) / 255, mode=case, normalize=None)
            got = topokd.image_pis(da.from_array(IMAGES_U8.astype(np.float32) / 255, chunks=4), mode=case,
                                   normalize=None).compute()
    assert np.array_equal(got, ref)


def test_validation_happens_at_compute_time_with_the_numpy_error(client):
    bad = SIGNALS.copy()
    bad[61, 7, 2] = np.inf
    with pytest.raises(ValueError) as numpy_error:
        topokd.signal_pis(bad)
    lazy = topokd.signal_pis(da.from_array(bad, chunks=20))  # nothing read yet: no error
    with pytest.raises(ValueError) as dask_error:
        lazy.compute()
    assert str(dask_error.value) == str(numpy_error.value)
    assert "sample 61, time step 7, channel 2" in str(dask_error.value) and "\n" not in str(dask_error.value)
    with dask.config.set(scheduler="threads"), pytest.raises(ValueError) as threaded:
        lazy.compute(scheduler="threads")
    assert str(threaded.value) == str(numpy_error.value)
    # images outside the value range: the same refusal
    bright = IMAGES.copy()
    bright[24, 1] *= 3
    with pytest.raises(ValueError) as numpy_error:
        topokd.image_pis(bright, chunk_size=10)  # the error names the range of the chunk it is in
    with pytest.raises(ValueError) as dask_error:
        topokd.image_pis(da.from_array(bright, chunks=10)).compute()
    assert str(dask_error.value) == str(numpy_error.value)
    # shapes at once
    with pytest.raises(ValueError, match="3 dimensions"):
        topokd.signal_pis(da.from_array(SIGNALS[:, :, 0]))
    with pytest.raises(ValueError, match="out= does not apply"):
        topokd.signal_pis(da.from_array(SIGNALS), out=np.empty((90, 3, 50, 50), np.float32))
    with pytest.raises(ValueError, match="progress"):
        topokd.signal_pis(da.from_array(SIGNALS), progress=True)


def test_numpy_input_never_imports_dask(tmp_path):
    body = """
import sys, numpy as np, topokd, topokd.tda.distributed
from topokd.cli import main
x = np.random.default_rng(0).normal(size=(6, 30, 2))
topokd.signal_pis(x); topokd.image_pis(np.random.default_rng(0).uniform(size=(3, 1, 6, 6)), mode="cubical")
np.save("x.npy", x)
assert main(["pi", "x.npy", "-o", "x.npz", "--kind", "signal", "--quiet"]) == 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed", "zarr"))
assert not loaded, loaded
print("NO-DASK-OK")
"""
    proc = subprocess.run([sys.executable, "-c", body], cwd=tmp_path, env=env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "NO-DASK-OK" in proc.stdout, proc.stderr[-3000:]


# --------------------------------------------------------------------------- the Zarr store


def chunk_files(store: Path) -> dict:
    """Every file of the ``pis`` array with its modification time (layout-independent)."""
    return {str(p.relative_to(store)): p.stat().st_mtime_ns for p in (store / "pis").rglob("*") if p.is_file()}


def record(store: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(store=str(store), mode="r")["chunk_crc32"][:])


def test_interrupted_store_resumes_on_the_cluster_with_only_the_missing_chunks(client, tmp_path):
    store = tmp_path / "pis.zarr"
    ref = topokd.image_pis(IMAGES, mode="cubical", resolution=10)
    seen = []

    def stop_after_three(samples):
        seen.append(samples)
        if len(seen) == 3:
            raise KeyboardInterrupt  # Ctrl-C after the third chunk is recorded

    with pytest.raises(KeyboardInterrupt):
        write_pis_zarr(IMAGES, store, "image", mode="cubical", chunk_size=4, resolution=10,
                       on_chunk=stop_after_three)
    before = record(store)
    assert (before != MISSING).sum() == 3 and store_attrs(store)["complete"] is False
    files = chunk_files(store)
    with pytest.raises(ValueError, match="incomplete"):
        open_pis_zarr(store)
    # resume from a dask array on the cluster's workers (same values: same input SHA-256)
    result = write_pis_zarr(da.from_array(IMAGES, chunks=9), store, "image", mode="cubical", chunk_size=4,
                            resolution=10)
    assert (result.n_chunks, result.computed, result.kept) == (8, 5, 3)
    after_files = chunk_files(store)
    assert {k: after_files[k] for k in files} == files  # the recorded chunks were not rewritten
    assert np.array_equal(record(store)[before != MISSING], before[before != MISSING])
    pis, attrs = open_pis_zarr(store)
    assert np.array_equal(pis[:], ref) and pis.dtype == np.float32 and pis.chunks == (4, 2, 2, 10, 10)
    assert attrs["complete"] is True and attrs["params"]["resolution"] == 10 and attrs["mode"] == "cubical"
    assert attrs["input_shape"] == [30, 2, 10, 9] and attrs["format_version"] == 1
    # complete: nothing to do
    assert write_pis_zarr(IMAGES, store, "image", mode="cubical", chunk_size=4, resolution=10).computed == 0


def test_a_recorded_chunk_whose_values_changed_is_recomputed(tmp_path):
    store = tmp_path / "s.zarr"
    write_pis_zarr(SIGNALS, store, chunk_size=20)
    zarr.open_group(store=str(store), mode="r+")["pis"][40:41] = 0.0  # damage chunk 2 behind the record's back
    result = write_pis_zarr(SIGNALS, store, chunk_size=20)
    assert (result.computed, result.kept) == (1, 4)
    assert np.array_equal(open_pis_zarr(store)[0][:], topokd.signal_pis(SIGNALS))


def test_mismatched_store_is_refused_unless_overwrite(tmp_path):
    store = tmp_path / "s.zarr"
    write_pis_zarr(SIGNALS[:40], store, chunk_size=16, sigma=0.2)
    for kwargs, match in [({"sigma": 0.3}, "sigma: 0.2 in the store, 0.3 now"),
                          ({"sigma": 0.2, "chunk_size": 8}, "chunk_size: 16 in the store, 8 now"),
                          ({"sigma": 0.2, "dtype": "float64"}, "dtype")]:
        with pytest.raises(ValueError, match=match):
            write_pis_zarr(SIGNALS[:40], store, **{"chunk_size": 16, **kwargs})
    changed = SIGNALS[:40].copy()
    changed[3, 3, 0] += 1e-9
    with pytest.raises(ValueError, match="input's contents differ"):
        write_pis_zarr(changed, store, chunk_size=16, sigma=0.2)
    result = write_pis_zarr(changed, store, chunk_size=16, sigma=0.3, overwrite=True)
    assert result.computed == 3 and np.array_equal(open_pis_zarr(store)[0][:], topokd.signal_pis(changed, sigma=0.3))
    other = tmp_path / "not-a-store"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a topokd persistence-image Zarr store"):
        write_pis_zarr(SIGNALS[:40], other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-store", "s.zarr"]  # no temporary leftovers


# --------------------------------------------------------------------------- the command line


def test_cli_scheduler_local_end_to_end(tmp_path):
    windows = RNG.normal(size=(70, 3, 40))  # (N, C, T) on disk
    np.save(tmp_path / "w.npy", windows)
    ref = topokd.signal_pis(np.swapaxes(windows, 1, 2), resolution=16)
    proc = cli("pi", "w.npy", "-o", "w.zarr", "--kind", "signal", "--channels-first", "--resolution", 16,
               "--chunk-size", 16, "--scheduler", "local:2", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "5 of 5 chunks computed" in proc.stdout
    pis, attrs = open_pis_zarr(tmp_path / "w.zarr")
    assert np.array_equal(pis[:], ref) and attrs["input"] == "w.npy"
    # complete, other parameters, .npz with --scheduler: one line each, nothing changed
    for argv, match in [((), "already complete; pass --force"),
                        (("--chunk-size", 16, "--scheduler", "local:x"), "local:N needs a whole number")]:
        proc = cli("pi", "w.npy", "-o", "w.zarr", "--kind", "signal", "--channels-first", "--resolution", 16,
                   *argv, "--quiet", cwd=tmp_path)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and match in proc.stderr, proc.stderr
    proc = cli("pi", "w.npy", "-o", "w.npz", "--kind", "signal", "--scheduler", "local", cwd=tmp_path)
    assert proc.returncode == 1 and "--scheduler needs a .zarr output" in proc.stderr
    proc = cli("pi", "w.npy", "-o", "w.zarr", "--kind", "signal", "--channels-first", "--resolution", 20,
               "--chunk-size", 16, "--force", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(open_pis_zarr(tmp_path / "w.zarr")[0][:],
                          topokd.signal_pis(np.swapaxes(windows, 1, 2), resolution=20))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npy", "w.zarr"]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_cli_killed_halfway_on_the_cluster_resumes_only_the_missing_chunks(client, cluster, tmp_path):
    windows = RNG.normal(size=(2400, 96, 3)).astype(np.float32)
    np.savez(tmp_path / "w.npz", X=windows)
    argv = ["pi", "w.npz", "-o", "w.zarr", "--kind", "signal", "--chunk-size", 60, "--quiet",
            "--scheduler", cluster.scheduler_address]
    proc = subprocess.Popen([*CLI, *map(str, argv)], cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    crc_dir = tmp_path / "w.zarr" / "chunk_crc32"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if crc_dir.is_dir() and sum(p.is_file() for p in crc_dir.rglob("*")) >= 4:  # >= 3 chunks recorded
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the job ended before it was killed: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    # tasks already running on the workers still finish (a running function cannot be stopped):
    # wait until the scheduler holds no task and no worker executes one, then until the record is steady
    def busy() -> bool:
        tasks = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
        running = client.run(lambda dask_worker: dask_worker.state.executing_count)
        return tasks > 0 or any(running.values())

    deadline = time.monotonic() + 60
    before = None
    while time.monotonic() < deadline:
        now = None if busy() else record(tmp_path / "w.zarr")
        if now is not None and before is not None and np.array_equal(now, before):
            break
        before = now
        time.sleep(0.5)
    before = record(tmp_path / "w.zarr")
    done = int((before != MISSING).sum())
    assert 3 <= done < 40, done
    files = chunk_files(tmp_path / "w.zarr")
    resumed = cli(*argv, cwd=tmp_path)
    assert resumed.returncode == 0 and resumed.stderr == "", resumed.stderr
    assert f"{40 - done} of 40 chunks computed, {done} kept from an earlier run" in resumed.stdout, resumed.stdout
    after = chunk_files(tmp_path / "w.zarr")
    assert {k: after[k] for k in files} == files
    assert np.array_equal(record(tmp_path / "w.zarr")[before != MISSING], before[before != MISSING])
    assert np.array_equal(open_pis_zarr(tmp_path / "w.zarr")[0][:], topokd.signal_pis(windows))
