#!/usr/bin/env python
"""Start-up cost of the ``topokd`` command line.

For ``topokd --help``, ``topokd --version``, ``topokd presets`` and
``topokd pi`` on a tiny input (a (4, 100, 3) float32 ``.npy`` signal, output to
a temporary directory, ``--quiet --force``), run the console script that
users run (``.venv/bin/topokd``, the entry point next to this Python) in
``--runs`` fresh subprocesses and report:

* wall time (median, min, max), taken around fork + exec + exit by a small
  wrapper process, so the wrapper's own start-up is not counted;
* peak RSS (``RUSAGE_CHILDREN`` of that fresh wrapper, whose only child is
  the command; the high-water mark a forked child inherits is the wrapper's
  ~10 MiB, far below any command's);
* whether torch (and numba) got imported, from a separate run of
  ``topokd.cli.main`` in a ``python -c`` child that checks ``sys.modules`` at
  the end and reads its own ``VmHWM`` (a cross-check of the peak RSS), and
  that times ``from topokd.cli import main`` and ``main()`` separately;
* where the import time goes (one ``python -X importtime`` run per command).

Reference rows give the floors: ``python -c pass``, ``import numpy``,
``import numba``.  Targets (issue "One house"): ``topokd --help`` and the
fixed cost of ``topokd pi`` each <= 0.5 s and <= 200 MiB; the report marks
each as met or not met (on the median).  Writes ``results/cli.md`` and
``results/cli.json`` (``--quick``: ``cli-quick.*``, 3 runs).  See README.md.

Usage::

    .venv/bin/python benchmarks/bench_cli.py            # about 1 minute
    .venv/bin/python benchmarks/bench_cli.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import RESULTS, T0, command_line, log, loadavg, machine_info, md_bullets, md_table, now_iso  # noqa: E402
from _harness import publish, run_cli, run_measured, short_path, time_stats, versions_line  # noqa: E402

#: Modules whose cumulative import time the report lists (first occurrence in ``-X importtime``).
IMPORT_MODULES = ("topokd.cli", "topokd", "topokd.data", "topokd.tda", "numpy", "numba", "llvmlite.binding", "scipy",
                  "scipy.linalg", "numba.np.arraymath", "yaml", "tqdm", "topokd.io", "torch")

# One probe: what `import numba` alone keeps resident, and how much of it is libllvmlite.so.
NUMBA_PROBE = (
    "import json, re, numba\n"
    "rss, cur = {}, None\n"
    "for line in open('/proc/self/smaps'):\n"
    "    if re.match(r'^[0-9a-f]+-[0-9a-f]+ ', line):\n"
    "        parts = line.split(); cur = parts[5] if len(parts) > 5 else '[anon]'\n"
    "    elif line.startswith('Rss:'):\n"
    "        rss[cur] = rss.get(cur, 0) + int(line.split()[1])\n"
    "llvm = sum(v for k, v in rss.items() if 'libllvmlite' in k)\n"
    "print(json.dumps({'total_rss_kib': sum(rss.values()), 'libllvmlite_rss_kib': llvm}))\n"
)


def parse_importtime(stderr: str) -> dict:
    """``{module: cumulative seconds}`` (first occurrence) from ``python -X importtime`` output."""
    out = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and m.group(4) not in out:
            out[m.group(4)] = int(m.group(2)) / 1e6
    return out


def default_script() -> Path:
    return Path(sys.executable).parent / "topokd"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\nUsage")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 runs per command (a few seconds); writes cli-quick.md/json")
    p.add_argument("--runs", type=int, help="fresh subprocess runs per command (default 20; quick 3)")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory for the results files (default: benchmarks/results)")
    p.add_argument("--name", help="results file stem (default: cli, or cli-quick with --quick)")
    p.add_argument("--script", type=Path, default=default_script(),
                   help="the topokd console script to measure (default: the one next to this Python)")
    p.add_argument("--shape", default="4,100,3", help="shape of the tiny float32 signal for `topokd pi` (default 4,100,3)")
    p.add_argument("--max-seconds", type=float, default=0.5, help="wall-time target (default 0.5)")
    p.add_argument("--max-mib", type=float, default=200.0, help="peak-RSS target in MiB (default 200)")
    p.add_argument("--no-references", action="store_true", help="skip the python / numpy / numba floor rows")
    p.add_argument("--seed", type=int, default=0, help="seed of the tiny input (default 0)")
    args = p.parse_args(argv)
    if args.runs is None:
        args.runs = 3 if args.quick else 20
    if args.runs < 1:
        p.error("--runs must be >= 1")
    args.name = args.name or ("cli-quick" if args.quick else "cli")
    args.shape = tuple(int(v) for v in args.shape.split(","))
    if len(args.shape) != 3:
        p.error("--shape must be N,T,C")
    return args


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.0f}"


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render_markdown(res: dict) -> str:
    m = res["machine"]
    L = [f"# topokd command-line start-up benchmark{' (quick smoke test)' if res['quick'] else ''}\n"]
    L.append(f"- command: `{res['command']}`")
    L.append(f"- date: {res['date']}  (script wall time {res['wall_s']:.0f} s)")
    load = lambda v: ", ".join(f"{x:.2f}" for x in v) if v else "n/a"  # noqa: E731
    L.append(f"- machine: {m['nproc']} CPUs (nproc), {m['cpu_model']}, {m['mem_total_gib']} GiB RAM; numba threads "
             f"{m['numba_threads']}; {m['platform']}; load average at start {load(res['loadavg_start'])}, at end "
             f"{load(res['loadavg_end'])}")
    L.append(versions_line(m))
    L.append(f"- measured: the console script `{short_path(res['script'])}` (what `topokd ...` runs in the venv), "
             f"{res['runs']} fresh subprocesses per command, commands interleaved round by round, after one "
             "untimed warm-up run each (the numba cache of the kernels already on disk)")
    L.append(f"- tiny input of `pi`: {res['tiny_input']}\n")

    L.append("## Start-up cost\n")
    L.append(f"Targets (issue): `topokd --help` and the fixed cost of `topokd pi` <= {res['max_seconds']:g} s and "
             f"<= {res['max_mib']:g} MiB peak RSS, judged on the median. `--version` and `presets` are held to "
             "the same budget for information.\n")
    rows = []
    for r in res["commands"]:
        w, k = r["wall_s"], r["maxrss_kib"]
        kind = "issue target" if r["target"] else "informational"
        rows.append([f"`{r['display']}`", w["n"], f"{w['median']:.3f}", f"{w['min']:.3f}", f"{w['max']:.3f}",
                     fmt_mib(k["median"]), fmt_mib(k["max"]), fmt_mib(r["self_report"]["vmhwm_kib"]),
                     "**yes**" if r["self_report"]["torch_imported"] else "no",
                     "yes" if r["self_report"]["numba_imported"] else "no", kind,
                     met(r["wall_ok"]), met(r["rss_ok"])])
    L += md_table(["command", "runs", "median s", "min s", "max s", "peak RSS MiB (median)", "peak RSS MiB (max)",
                   "VmHWM MiB (self)", "torch imported", "numba imported", "target", f"<= {res['max_seconds']:g} s",
                   f"<= {res['max_mib']:g} MiB"], rows, "lrrrrrrrlllll")
    L.append("")
    L.append("- **median s / min s / max s**: wall time of one `topokd ...` process from fork to exit, timed with "
             "`time.perf_counter` by a fresh wrapper process around `subprocess.run`.")
    L.append("- **peak RSS**: `ru_maxrss` of that command (`RUSAGE_CHILDREN` of the fresh wrapper, whose only "
             "child it is). **VmHWM (self)**: the peak RSS that `topokd.cli.main`, run in a `python -c` child, "
             "reads from its own `/proc/self/status` at the end (median of "
             f"{res['self_report_runs']} runs): the same quantity measured from inside.")
    L.append("- **torch imported** / **numba imported**: `'torch' in sys.modules` / `'numba' in sys.modules` in "
             "that child after `main()` returned (or exited, for `--help` / `--version`).\n")

    L.append("## Where the time goes\n")
    rows = [[f"`{r['display']}`", f"{r['self_report']['import_s']:.3f}", f"{r['self_report']['main_s']:.3f}",
             r["self_report"]["modules"]] for r in res["commands"]]
    L += md_table(["command", "`from topokd.cli import main` s", "`main()` s", "modules loaded"], rows, "lrrr")
    L.append("")
    L.append(f"Median of {res['self_report_runs']} `python -c` runs; the wall time above adds interpreter "
             "start-up and exit.\n")
    it = res["importtime"]
    cols = [r["display"] for r in res["commands"] if r["display"] in it]
    rows = []
    for mod in IMPORT_MODULES:
        vals = [it[c].get(mod) for c in cols]
        if any(v is not None for v in vals):
            rows.append([f"`{mod}`", *("–" if v is None else f"{1e3 * v:.0f}" for v in vals)])
    L.append("Cumulative import time in ms, from one `python -X importtime <script> ...` run per command "
             "(importtime itself slows imports down; `–`: not imported):\n")
    L += md_table(["module", *(f"`{c}`" for c in cols)], rows, "l" + "r" * len(cols))
    L.append("")

    if res.get("references"):
        L.append("## Floors and comparison\n")
        rows = [[f"`{r['display']}`", r["wall_s"]["n"], f"{r['wall_s']['median']:.3f}", f"{r['wall_s']['min']:.3f}",
                 fmt_mib(r["maxrss_kib"]["median"])] for r in res["references"]]
        L += md_table(["command", "runs", "median s", "min s", "peak RSS MiB (median)"], rows, "lrrrr")
        L.append("")
        pr = res.get("numba_probe")
        if pr:
            L.append(f"After `import numba` alone, {pr['libllvmlite_rss_kib'] / 1024:.0f} MiB of the "
                     f"{pr['total_rss_kib'] / 1024:.0f} MiB resident are pages of `libllvmlite.so` (LLVM, "
                     "mapped from disk, counted in RSS), from `/proc/self/smaps`.\n")

    L.append("## Targets\n")
    for t in res["targets"]:
        L.append(f"- {'met' if t['pass'] else '**not met**'}: {t['what']} ({t['value']})")
    L.append("")
    L += md_bullets("Findings", res.get("findings")) + md_bullets("Notes", res.get("notes"))
    return "\n".join(L)


def findings(res: dict) -> list[str]:
    """Plain-language reading of the numbers: which targets are missed, and what sets the floor."""
    out = []
    by = {r["key"]: r for r in res["commands"]}
    refs = {r["key"]: r for r in res.get("references", [])}
    torch_cmds = [r["display"] for r in res["commands"] if r["self_report"]["torch_imported"]]
    out.append("No measured command imports torch." if not torch_cmds
               else f"torch is imported by: {', '.join(torch_cmds)}.")
    numba_ref = refs.get("numba")
    numpy_ref = refs.get("numpy")
    for key in ("help", "pi"):
        r = by.get(key)
        if r is None:
            continue
        w, k = r["wall_s"]["median"], r["maxrss_kib"]["median"] / 1024
        line = (f"`{r['display']}`: median {w:.3f} s, {k:.0f} MiB: time {met(r['wall_ok'])}, memory "
                f"{met(r['rss_ok'])}.")
        if r["self_report"]["numba_imported"] and numba_ref:
            line += (f" It loads numba (every `topokd` command does: `topokd.cli` imports `topokd.tda`, whose "
                     f"kernels are numba functions); `python -c 'import numba'` alone takes "
                     f"{numba_ref['wall_s']['median']:.3f} s and {numba_ref['maxrss_kib']['median'] / 1024:.0f} MiB"
                     + (f", against {numpy_ref['wall_s']['median']:.3f} s and "
                        f"{numpy_ref['maxrss_kib']['median'] / 1024:.0f} MiB for numpy" if numpy_ref else "")
                     + ".")
        out.append(line)
    pi, help_ = by.get("pi"), by.get("help")
    nofreeze = refs.get("pi-nofreeze")
    if pi and nofreeze:
        out.append(f"Freezing the garbage collector before exit (`topokd.cli.main` does when run as the program) "
                   f"saves {nofreeze['wall_s']['median'] - pi['wall_s']['median']:.3f} s of the median `pi` "
                   f"({nofreeze['wall_s']['median']:.3f} s without it, measured in the same rounds): the "
                   "interpreter's shutdown no longer walks numba's object graphs.")
    if pi and help_:
        out.append(f"`pi` costs {pi['wall_s']['median'] - help_['wall_s']['median']:+.3f} s and "
                   f"{(pi['maxrss_kib']['median'] - help_['maxrss_kib']['median']) / 1024:+.0f} MiB over `--help` "
                   f"(its `main()` takes {pi['self_report']['main_s']:.3f} s): numba's first call of a cached kernel "
                   "builds its CPU target (importing `numba.np.arraymath`, whose BLAS check imports `scipy.linalg`) "
                   "and loads the compiled kernels from the cache; computing the 4 windows themselves takes about a "
                   "millisecond once the kernels are loaded.")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    command = command_line(argv)
    log(command)
    script = args.script.resolve() if args.script.exists() else args.script
    if not Path(script).exists():
        raise SystemExit(f"console script {script} not found (install topokd into this environment, or pass --script)")
    res = {"quick": args.quick, "command": command, "date": now_iso(), "loadavg_start": loadavg()}
    res["machine"] = machine_info(("scipy", "tqdm", "llvmlite"))

    with tempfile.TemporaryDirectory(prefix="topokd-bench-cli-") as tmp:
        tmp = Path(tmp)
        tiny = tmp / "tiny.npy"
        np.save(tiny, np.random.default_rng(args.seed).normal(size=args.shape).astype(np.float32))
        out = tmp / "pis.npz"
        pi_args = ["pi", str(tiny), "-o", str(out), "--kind", "signal", "--quiet", "--force"]
        commands = [
            {"key": "help", "display": "topokd --help", "args": ["--help"], "target": True},
            {"key": "version", "display": "topokd --version", "args": ["--version"], "target": False},
            {"key": "presets", "display": "topokd presets", "args": ["presets"], "target": False},
            {"key": "pi", "display": "topokd pi (tiny input)", "args": pi_args, "target": True,
             "full_command": shlex.join(["topokd", "pi", tiny.name, "-o", out.name, *pi_args[4:]])},
        ]
        references = [] if args.no_references else [
            {"key": "python", "display": "python -c pass", "argv": [sys.executable, "-c", "pass"]},
            {"key": "numpy", "display": "python -c 'import numpy'", "argv": [sys.executable, "-c", "import numpy"]},
            {"key": "numba", "display": "python -c 'import numba'", "argv": [sys.executable, "-c", "import numba"]},
            # The same `pi` run through main(explicit argv), which skips the exit-time gc.freeze()
            # that topokd.cli.main does when run as the program: what that saves.
            {"key": "pi-nofreeze", "display": "topokd pi (tiny input) via main(sys.argv[1:]), no exit-time gc.freeze",
             "argv": [sys.executable, "-c", "import sys; from topokd.cli import main; sys.exit(main(sys.argv[1:]))",
                      *pi_args]},
        ]
        for c in commands:
            c["argv"] = [str(script), *c["args"]]
        jobs = commands + references

        log("warm-up: one untimed run of each command")
        for j in jobs:
            first = run_measured(j["argv"], cwd=tmp)
            j["warmup_wall_s"] = first["wall_s"]
        log(f"timing: {args.runs} rounds of {len(jobs)} commands")
        for j in jobs:
            j["runs"] = []
        for i in range(args.runs):
            for j in jobs:
                r = run_measured(j["argv"], cwd=tmp)
                j["runs"].append({k: r[k] for k in ("wall_s", "maxrss_kib", "user_s", "sys_s", "wrapper_maxrss_kib")})
        for j in jobs:
            j["wall_s"] = time_stats([r["wall_s"] for r in j["runs"]])
            j["maxrss_kib"] = time_stats([r["maxrss_kib"] for r in j["runs"]])

        n_self = 3 if not args.quick else 1
        log(f"self-reports: {n_self} `python -c` run(s) of topokd.cli.main per command, and one -X importtime run")
        importtime = {}
        for c in commands:
            reps = [run_cli(c["args"], cwd=tmp) for _ in range(n_self)]
            c["self_report"] = {
                "vmhwm_kib": statistics.median(r["maxrss_kib"] for r in reps),
                "import_s": statistics.median(r["import_s"] for r in reps),
                "main_s": statistics.median(r["seconds"] for r in reps),
                "torch_imported": any(r["torch_imported"] for r in reps),
                "numba_imported": any(r["numba_imported"] for r in reps),
                "modules": max(r["modules"] for r in reps),
                "rc": [r["rc"] for r in reps],
            }
            proc = subprocess.run([sys.executable, "-X", "importtime", str(script), *c["args"]], cwd=tmp,
                                  capture_output=True, text=True)
            times = parse_importtime(proc.stderr)
            # Keep the listed modules and the 25 slowest, not all ~500-700 entries.
            keep = set(IMPORT_MODULES) | set(sorted(times, key=times.get, reverse=True)[:25])
            importtime[c["display"]] = {k: v for k, v in times.items() if k in keep}
        probe = None
        if not args.no_references:
            proc = subprocess.run([sys.executable, "-c", NUMBA_PROBE], capture_output=True, text=True, check=True)
            probe = json.loads(proc.stdout)

    for c in commands:
        c["wall_ok"] = bool(c["wall_s"]["median"] <= args.max_seconds)
        c["rss_ok"] = bool(c["maxrss_kib"]["median"] / 1024 <= args.max_mib)
    targets = []
    for c in commands:
        if not c["target"]:
            continue
        targets.append({"what": f"`{c['display']}` median wall time <= {args.max_seconds:g} s",
                        "value": f"{c['wall_s']['median']:.3f} s", "pass": c["wall_ok"]})
        targets.append({"what": f"`{c['display']}` median peak RSS <= {args.max_mib:g} MiB",
                        "value": f"{c['maxrss_kib']['median'] / 1024:.0f} MiB", "pass": c["rss_ok"]})
    targets.append({"what": "no measured command imports torch",
                    "value": ", ".join(f"{c['key']}: {'yes' if c['self_report']['torch_imported'] else 'no'}"
                                       for c in commands),
                    "pass": not any(c["self_report"]["torch_imported"] for c in commands)})

    res.update({
        "script": str(Path(script)), "runs": args.runs, "self_report_runs": n_self,
        "tiny_input": f"np.random.default_rng({args.seed}).normal(size={args.shape}).astype(np.float32) saved as "
                      f".npy; `{commands[-1]['full_command']}` in a temporary directory",
        "max_seconds": args.max_seconds, "max_mib": args.max_mib,
        "commands": [{k: v for k, v in c.items()} for c in commands],
        "references": references, "importtime": importtime, "numba_probe": probe, "targets": targets,
        "loadavg_end": loadavg(),
        "notes": [
            "RSS counts every resident page of the process, including pages of shared libraries mapped from "
            "disk (numpy's and LLVM's); two topokd processes share those pages, so the memory a second one "
            "adds is smaller than its RSS.",
            "The machine may be shared: compare the load averages in the header. The minimum is the least "
            "disturbed run; the targets are judged on the median.",
            "The warm-up run also fills numba's on-disk cache if it was empty (the first `topokd pi` after an "
            "install or a kernel change compiles the kernels, which takes seconds); the timed runs load "
            "them from the cache.",
        ],
    })
    res["findings"] = findings(res)
    if args.quick:
        res["notes"].append("--quick: 3 runs per command; the numbers are a smoke test, not a measurement.")
    res["wall_s"] = time.perf_counter() - T0
    publish(args.out, args.name, res, render_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
