"""Helpers shared by the benchmark scripts in this directory.

* logging with the time since start (:func:`log`, :data:`T0`);
* the machine description every report carries (:func:`machine_info`: CPU
  model, cores, RAM, platform, package versions, git commit and whether the
  working tree is dirty);
* timing (:func:`timed`, :func:`best_of`, :func:`time_stats`);
* peak RSS of a subprocess (:func:`run_cli`: a fresh ``python -c`` child that
  runs ``topokd.cli.main`` and reads its own ``VmHWM``; :func:`run_measured`:
  any command, through a fresh small wrapper process that reads
  ``RUSAGE_CHILDREN``);
* Markdown tables (:func:`md_table`) and the results file pair
  ``results/<name>.md`` / ``results/<name>.json`` (:func:`write_results`).

The scripts import it as ``from _harness import ...`` after putting this
directory on ``sys.path``.  Importing it is cheap (standard library only);
:func:`machine_info` imports numba to read its thread count.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"

#: Start of the run (this module is imported first thing by every script).
T0 = time.perf_counter()

#: Packages whose versions every report lists (after Python); scripts add their own.
BASE_PACKAGES = ("topokd", "numpy", "numba", "torch")


# ---------------------------------------------------------------------------
# Logging, command line, dates
# ---------------------------------------------------------------------------
def log(msg: str) -> None:
    """``[  12.3 s] msg`` on stderr, the time counted from :data:`T0`."""
    print(f"[{time.perf_counter() - T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def short_path(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it."""
    try:
        rel = os.path.relpath(os.path.abspath(path))
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that started this run, e.g. ``.venv/bin/python benchmarks/bench_tda.py --quick``.

    ``argv`` are the script's arguments when ``main(argv)`` was called with
    explicit ones (default: ``sys.argv[1:]``).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    return shlex.join([short_path(sys.executable), short_path(sys.argv[0]), *args])


def now_iso(utc: bool = False) -> str:
    """The current time, ISO 8601 with seconds and the UTC offset."""
    now = _dt.datetime.now(_dt.timezone.utc) if utc else _dt.datetime.now().astimezone()
    return now.isoformat(timespec="seconds")


# ---------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc() -> int | None:
    """CPUs this process may run on (like ``nproc``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def package_versions(packages: Iterable[str]) -> dict:
    """Installed versions from the package metadata (imports nothing)."""
    out = {}
    for pkg in packages:
        try:
            out[pkg] = _md.version(pkg)
        except _md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_info() -> dict:
    """``{"commit": short hash, "dirty": tracked files modified}``, or ``{}`` outside git."""
    git = {}
    try:
        git["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        git["dirty"] = bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        pass
    return git


def machine_info(extra_packages: Iterable[str] = ()) -> dict:
    """nproc, CPU model, RAM, platform, numba threads, versions (Python, :data:`BASE_PACKAGES`,
    then ``extra_packages``) and git commit / dirty flag."""
    import numba

    versions = {"python": platform.python_version()}
    versions.update(package_versions(dict.fromkeys([*BASE_PACKAGES, *extra_packages])))
    return {"nproc": nproc(), "cpu_model": cpu_model(), "mem_total_gib": mem_total_gib(),
            "platform": platform.platform(), "numba_threads": numba.get_num_threads(),
            "versions": versions, "git": git_info()}


def torch_machine_info(device, extra_packages: Iterable[str] = ()) -> dict:
    """:func:`machine_info` plus torch's threads, the training device, CUDA
    and the load average at the start (for the scripts that train)."""
    import torch

    m = machine_info(extra_packages)
    m["torch_threads"] = torch.get_num_threads()
    m["device"] = str(device)
    m["cuda_available"] = bool(torch.cuda.is_available())
    m["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if loadavg() is not None:
        m["loadavg_start"] = loadavg()
    return m


def training_device(name: str | None = None):
    """``torch.device(name)``, or CUDA when available, else CPU."""
    import torch

    return torch.device(name) if name else torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fmt_loads(values) -> str:
    """A load-average triple for a report header (``n/a`` where unknown)."""
    return ", ".join(f"{x:.2f}" for x in values) if values else "n/a"


def report_header(title: str, res: dict, quick: bool = False) -> list[str]:
    """The first lines of a report: title, command, date and wall time, machine
    with its load averages, versions (``res`` from :func:`machine_info` and
    :func:`finish_run`)."""
    m = res["machine"]
    return [f"# {title}{' (quick smoke test)' if quick else ''}\n",
            f"- command: `{res['command']}`", f"- date: {res['date']}  (script wall time {res['wall_s']:.0f} s)",
            f"- machine: {m['nproc']} CPUs (nproc), {m['cpu_model']}, {m['mem_total_gib']} GiB RAM; {m['platform']}; "
            f"load average at start {fmt_loads(res.get('loadavg_start'))}, at end "
            f"{fmt_loads(res.get('loadavg_end'))} (shared machine)",
            versions_line(m)]


def limit_threads(threads: int | None) -> None:
    """torch's and topokd's numba kernels' threads to ``threads`` (``None`` / 0: leave them)."""
    if not threads:
        return
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def versions_line(machine: dict, dirty_label: str = "dirty") -> str:
    """``- versions: python 3.11.7, topokd 0.1.0, ...; topokd git abc1234 (dirty)``."""
    git = machine.get("git") or {}
    return ("- versions: " + ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
            + (f"; topokd git {git.get('commit')}{f' ({dirty_label})' if git.get('dirty') else ''}" if git else ""))


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
def timed(fn: Callable):
    """``(fn(), seconds)``."""
    t = time.perf_counter()
    res = fn()
    return res, time.perf_counter() - t


def best_of(fn: Callable, repeats: int):
    """``(min seconds, [seconds of each run])`` over ``max(1, repeats)`` calls of ``fn``."""
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), times


def time_stats(values: Sequence[float]) -> dict:
    """n, min, median, mean, max and inter-quartile range of ``values``."""
    v = sorted(values)
    if len(v) >= 2:
        q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    else:
        q1 = q3 = v[0]
    return {"n": len(v), "min": v[0], "median": statistics.median(v), "mean": statistics.fmean(v),
            "max": v[-1], "iqr": q3 - q1}


# ---------------------------------------------------------------------------
# Peak memory of subprocesses
# ---------------------------------------------------------------------------
# Peak RSS from VmHWM, which belongs to the new process image: ru_maxrss keeps
# the high-water mark across fork+exec, i.e. it would report the (large)
# benchmark process's RSS at the moment of the fork.
CLI_WRAPPER = (
    "import json, resource, sys, time\n"
    "t0 = time.perf_counter()\n"
    "from topokd.cli import main\n"
    "t = time.perf_counter()\n"
    "try:\n"
    "    rc = main(sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)\n"
    "el = time.perf_counter() - t\n"
    "sys.stdout.flush()\n"
    "hwm = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
    "kib = hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print('BENCH_RESULT ' + json.dumps({'rc': rc, 'seconds': el, 'import_s': t - t0, 'maxrss_kib': kib,\n"
    "      'torch_imported': 'torch' in sys.modules, 'numba_imported': 'numba' in sys.modules,\n"
    "      'modules': len(sys.modules)}))\n"
)


def run_cli(args: Sequence[str], *, cwd=None, env=None, check: bool = True) -> dict:
    """Run ``topokd.cli.main(args)`` in a fresh ``python -c`` subprocess that reports itself.

    Returns ``rc`` (main's return value or SystemExit code), ``seconds`` (main),
    ``import_s`` (``from topokd.cli import main``), ``maxrss_kib`` (the child's
    own VmHWM), ``torch_imported`` / ``numba_imported``, ``modules``
    (``len(sys.modules)`` at the end), ``wall_s`` (the whole subprocess, seen
    from here), ``rusage_children_maxrss_kib`` (this process's running
    maximum over all its children, for the record) and ``stdout`` / ``stderr``.
    With ``check``, a failed run (no report, or ``rc`` not 0) raises RuntimeError.
    """
    cmd = [sys.executable, "-c", CLI_WRAPPER, *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    wall = time.perf_counter() - t
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"topokd {shlex.join(args)} failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    res = json.loads(line[-1][len("BENCH_RESULT "):])
    if check and res["rc"] != 0:
        raise RuntimeError(f"topokd {shlex.join(args)} returned {res['rc']}:\n{proc.stdout}\n{proc.stderr}")
    res.update({"wall_s": wall, "rusage_children_maxrss_kib": children,
                "stdout": proc.stdout, "stderr": proc.stderr})
    return res


# A fresh, small process (~10 MiB) per measurement: its only child is the
# command, so RUSAGE_CHILDREN is that command's peak RSS (the high-water mark
# a forked child inherits is this wrapper's, far below any command's).  The
# wall time is taken here, around the fork/exec and wait, so the wrapper's own
# start-up is not counted.
RUSAGE_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "argv = json.loads(sys.argv[1])\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
    "el = time.perf_counter() - t\n"
    "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "sys.stdout.write(json.dumps({'rc': p.returncode, 'wall_s': el, 'maxrss_kib': ru.ru_maxrss,\n"
    "    'user_s': ru.ru_utime, 'sys_s': ru.ru_stime, 'wrapper_maxrss_kib': me,\n"
    "    'stdout': p.stdout.decode(errors='replace')[-4000:], 'stderr': p.stderr.decode(errors='replace')[-4000:]}))\n"
)


def run_measured(argv: Sequence[str], *, cwd=None, env=None, check: bool = True) -> dict:
    """Run ``argv`` (an executable and its arguments) through a fresh wrapper process.

    Returns ``rc``, ``wall_s`` (fork + exec + run + exit, timed in the wrapper),
    ``maxrss_kib`` (the command's peak RSS, ``RUSAGE_CHILDREN`` of the
    wrapper), ``user_s`` / ``sys_s`` (its CPU time), ``wrapper_maxrss_kib``
    (the floor below which ``maxrss_kib`` cannot go) and the tails of its
    ``stdout`` / ``stderr``.  With ``check``, a non-zero exit raises RuntimeError.
    """
    proc = subprocess.run([sys.executable, "-c", RUSAGE_WRAPPER, json.dumps(list(argv))],
                          capture_output=True, text=True, cwd=cwd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {shlex.join(argv)} failed (rc {proc.returncode}):\n{proc.stderr}")
    res = json.loads(proc.stdout)
    if check and res["rc"] != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with {res['rc']}:\n{res['stdout']}\n{res['stderr']}")
    return res


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------
_ALIGN = {"l": "---", "r": "---:", "c": ":---:"}


def md_bullets(title: str, items: Iterable[str]) -> list[str]:
    """``## title``, one ``- item`` line each, then a blank line (nothing when ``items`` is empty)."""
    items = list(items or ())
    return [f"## {title}\n", *[f"- {item}" for item in items], ""] if items else []


def md_table(headers: Sequence[str], rows: Iterable[Sequence], align: str | Sequence[str] | None = None) -> list[str]:
    """A Markdown table as a list of lines: ``| a | b |``, ``|---|---:|``, one line per row.

    ``align`` has one letter per column: ``l`` (default), ``r`` or ``c``.
    Cells are written with ``str``; format numbers before.
    """
    align = list(align or "l" * len(headers))
    if len(align) != len(headers):
        raise ValueError(f"{len(headers)} headers but {len(align)} alignments")
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(_ALIGN[a] for a in align) + "|"]
    for row in rows:
        row = list(row)
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells, expected {len(headers)}")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return lines


def fmt_rate(x: float) -> str:
    """A rate for a table: thousands separators from 100 up, one decimal below."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def fmt_ratio(x: float) -> str:
    """A speed ratio: ``437x``, ``2.5x``, ``0.42x`` or ``1/153``."""
    if x >= 100:
        return f"{x:,.0f}x"
    if x >= 1:
        return f"{x:.1f}x"
    return f"{x:.2f}x" if x >= 0.1 else f"1/{1 / x:,.0f}"


def finish_run(res: dict) -> dict:
    """Stamp ``res`` with the load average at the end, the script's wall time
    (since :data:`T0`) and this process's CPU time."""
    if loadavg() is not None:
        res["loadavg_end"] = loadavg()
    res["wall_s"] = time.perf_counter() - T0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res["process_cpu_s"] = ru.ru_utime + ru.ru_stime
    return res


def publish(out: Path, name: str, res: dict, markdown: str) -> tuple[Path, Path]:
    """:func:`write_results`, then the report on stdout and where it went on stderr."""
    md_path, json_path = write_results(out, name, res, markdown)
    print(markdown)
    log(f"wrote {md_path} and {json_path}")
    return md_path, json_path


def write_results(out: Path, name: str, res: dict, markdown: str, *, indent: int = 2, default=None) -> tuple[Path, Path]:
    """Write ``out/<name>.md`` and ``out/<name>.json``; returns both paths.

    ``res`` must name the command line (``res["command"]``); the commit is in
    ``res["machine"]["git"]`` (see :func:`machine_info`), added here if
    missing.
    """
    if "command" not in res:
        raise ValueError("results must record the command line (res['command'])")
    if "machine" in res and isinstance(res["machine"], dict) and "git" not in res["machine"]:
        res["machine"]["git"] = git_info()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out / f"{name}.md", out / f"{name}.json"
    md_path.write_text(markdown)
    json_path.write_text(json.dumps(res, indent=indent, default=default) + "\n")
    return md_path, json_path
