"""Start-up of the command line stays free of PyTorch.

``import topokd``, building the ``topokd`` parser, ``topokd --help``,
``--version``, ``presets`` and ``topokd pi`` on a tiny input must not import
torch (it would add seconds and hundreds of MiB to every call; see
benchmarks/bench_cli.py).  Each case runs in a fresh interpreter, because
this test process has long imported torch through other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
{body}
heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not heavy, f"torch was imported: {{heavy[:5]}}"
print("NO-TORCH-OK")
"""

MAIN = """
from topokd.cli import main
try:
    rc = main({argv!r})
except SystemExit as exit_:
    rc = exit_.code
assert rc in (0, None), f"exit status {{rc}}"
"""


def run_fresh(body: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # Test this checkout's sources, whatever the installed copy.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-c", CHECK.format(body=body)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_no_torch(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0 and "NO-TORCH-OK" in proc.stdout, \
        f"rc {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"


@pytest.mark.parametrize("body", [
    "import topokd",
    "import topokd.cli\ntopokd.cli.build_parser()",
], ids=["import-topokd", "build-parser"])
def test_import_and_parser_import_no_torch(body, tmp_path):
    assert_no_torch(run_fresh(body, tmp_path))


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["presets"]], ids=["help", "version", "presets"])
def test_light_commands_import_no_torch(argv, tmp_path):
    proc = run_fresh(MAIN.format(argv=argv), tmp_path)
    assert_no_torch(proc)
    assert proc.stdout.strip() != "NO-TORCH-OK", "the command printed nothing"


def test_pi_on_a_tiny_input_imports_no_torch(tmp_path):
    np.save(tmp_path / "tiny.npy", np.random.default_rng(0).normal(size=(4, 100, 3)).astype(np.float32))
    argv = ["pi", "tiny.npy", "-o", "pis.npz", "--kind", "signal", "--quiet"]
    assert_no_torch(run_fresh(MAIN.format(argv=argv), tmp_path))
    with np.load(tmp_path / "pis.npz") as out:
        assert out["pis"].shape[:2] == (4, 3)


def test_the_public_api_still_loads_on_demand(tmp_path):
    # Keeping torch out must not cost the public names: the TDA API is there
    # after `import topokd` (the torch-based parts load on first access).
    body = ("import topokd\n"
            "assert callable(topokd.signal_pis) and callable(topokd.image_pis)\n"
            "assert 'standard-signal' in topokd.PRESETS and callable(topokd.data.wearable_windows)")
    assert_no_torch(run_fresh(body, tmp_path))
