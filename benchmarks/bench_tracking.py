"""Benchmark: what MLflow tracking costs a fit, against SQLite and against a real `mlflow server`.

Workload: the Estimator benchmark's (bench_estimator.py): ``make_classification(200_000,
n_features=28)``, MLP 28->256->256->2, Adam(1e-3), batch 256, 781 steps per fit.

Variants, each an `Estimator` of its own, each round one ``fit(X, y, steps=781, batch_size=256)``
(``--epochs-per-fit 4``: steps=3124), so every round also pays a fit's fixed costs (the data
fingerprint and the run's params at the start; the last metrics, checkpoint, event files and status,
which the end of a fit waits for):
  none     no tracking
  sqlite   ``MlflowMonitor(every_n_steps=100)`` on a SQLite store (the embedded default)
  http     the same against ``mlflow server --workers 1`` on 127.0.0.1 (started here, same 2 cores)
and, with ``--no-artifacts``, the two tracked variants with ``log_artifacts=False`` as well.
Method: one process, one untimed warm-up fit each, then rounds in ABBA order; medians of
examples/s, ratio tracked / none. Then the time of `log_model` (export + pyfunc logging, and the
logging alone from an existing export), median of 3, on both stores.

Usage::

    .venv/bin/python benchmarks/bench_tracking.py               # 9 rounds of one-epoch fits (~3 min)
    .venv/bin/python benchmarks/bench_tracking.py --epochs-per-fit 4 --rounds 5
    .venv/bin/python benchmarks/bench_tracking.py --quick       # smoke run: 20k rows, 1 round
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.bench_estimator import BATCH, abba, machine_info, model_fn, summary  # noqa: E402
from estimators import Estimator, RunConfig  # noqa: E402
from flows.tracking import MlflowMonitor, create_run, log_model  # noqa: E402

TARGETS = {"overhead": 0.03, "log_model_s": 2.0}


def start_server(root: Path, template: Path) -> tuple[subprocess.Popen, str]:
    """`mlflow server --workers 1` on a free 127.0.0.1 port, its own process group; waits for /health."""
    shutil.copy(template, root / "server.db")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(root / "server.log", "wb")  # noqa: SIM115 (the server writes it until killed)
    process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url, started = f"http://127.0.0.1:{port}", time.monotonic()
    while time.monotonic() - started < 120:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                print(f"mlflow server healthy after {time.monotonic() - started:.1f} s at {url}")
                return process, url
        except OSError:
            time.sleep(0.25)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"mlflow server not healthy after 120 s; see {root / 'server.log'}")


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of process group `pgid`."""
    total, tick = 0, os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # after the command: state, ppid, pgrp, ...; utime, stime at 11, 12
            total += int(fields[11]) + int(fields[12])
    return total / tick


def template_db(root: Path) -> Path:
    from mlflow import MlflowClient

    path = root / "template.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # migrations, once
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed ABBA rounds; default 9")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k rows, 1 round")
    parser.add_argument("--no-artifacts", action="store_true", help="also time MlflowMonitor(log_artifacts=False)")
    parser.add_argument("--epochs-per-fit", type=int, default=1, help="epochs each timed fit trains; default 1")
    parser.add_argument("--out", type=Path, help="JSON path; default benchmarks/results/tracking[-quick].json")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    n_rows, rounds = (20_000, 1) if args.quick else (200_000, args.rounds)
    info = machine_info()
    print(f"machine: {info['cpu_count']} CPUs, git {info['git_commit']}, load {info['loadavg_start'][0]:.2f}")
    x, y = make_classification(n_rows, n_features=28, n_informative=20, random_state=0)
    x, y = x.astype(np.float32), y.astype(np.int32)
    steps = n_rows // BATCH * args.epochs_per_fit
    config = RunConfig(tf_random_seed=0, log_step_count_steps=0, verbose=0)

    with tempfile.TemporaryDirectory(prefix="bench_tracking_") as tmp:
        root = Path(tmp)
        template = template_db(root)
        (root / "server").mkdir()
        server, url = start_server(root / "server", template)
        try:
            shutil.copy(template, root / "local.db")
            stores = {"sqlite": f"sqlite:///{root / 'local.db'}", "http": url}
            variants, monitors, estimators, cpu = {}, {}, {}, {}

            def add(name: str, monitor: MlflowMonitor | None) -> None:
                est = estimators[name] = Estimator(model_fn, model_dir=str(root / name), config=config)
                monitors[name], cpu[name] = monitor, []

                def fit_once() -> None:  # CPU of this process and of the server, which shares the cores
                    c0, s0 = time.process_time(), group_cpu_s(server.pid)
                    est.fit(x, y, steps=steps, batch_size=BATCH, monitors=[monitor] if monitor else None)
                    cpu[name].append((time.process_time() - c0, group_cpu_s(server.pid) - s0))

                variants[name] = fit_once

            add("none", None)
            for store, uri in stores.items():
                add(store, MlflowMonitor(experiment_name="bench", tracking_uri=uri, every_n_steps=100))
                if args.no_artifacts:
                    add(f"{store}_no_artifacts", MlflowMonitor("bench", tracking_uri=uri, log_artifacts=False))
            print(f"training: warm-up, then {rounds} ABBA rounds of {steps} steps x {BATCH} rows (examples/s)")
            fit, warm = abba(variants, dict.fromkeys(variants, steps * BATCH), rounds)
            undelivered = {k: m.undelivered for k, m in monitors.items() if m}
            undelivered_at_close = {k: m.close() for k, m in monitors.items() if m}

            print("log_model: export + log, and log alone from an existing export (3 calls each, seconds)")
            est = estimators["none"]
            export = est.export_saved_model(str(root / "export"))
            model_s: dict[str, dict[str, list[float]]] = {}
            for store, uri in stores.items():
                run = create_run("bench-models", tracking_uri=uri)
                model_s[store] = {"export_and_log": [], "log_only": []}
                for _ in range(3):
                    t0 = time.perf_counter()
                    log_model(run, est, input_example=x[:5])
                    model_s[store]["export_and_log"].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    log_model(run, export_dir=export, input_example=x[:5])
                    model_s[store]["log_only"].append(time.perf_counter() - t0)
                print(f"  {store}: " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in model_s[store].items()))
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    fit_s = summary(fit)
    base = fit_s["none"]["median"]
    print("\nwarm-up s: " + ", ".join(f"{k} {v:.2f}" for k, v in warm.items()))
    print(f"\n{'variant':<22}{'examples/s':>12}{'vs none':>9}{'overhead':>10}{'best round':>12}")
    for k, v in fit_s.items():
        ratio = v["median"] / base
        print(f"{k:<22}{v['median']:>12,.0f}{ratio:>9.3f}{1 - ratio:>10.1%}{v['best']:>12,.0f}")
    per_round = {k: [a / b for a, b in zip(v, fit["none"])] for k, v in fit.items() if k != "none"}
    print("per-round ratio (tracked / none, same round): " + "; ".join(
        f"{k} median {statistics.median(v):.3f}" for k, v in per_round.items()
    ))  # fmt: skip
    cpu_s = {
        k: {"process": statistics.median(c for c, _ in v[1:]), "server": statistics.median(s for _, s in v[1:])}
        for k, v in cpu.items()
    }  # medians over the timed rounds (the first call is the warm-up)
    base_cpu = cpu_s["none"]["process"] + cpu_s["none"]["server"]
    print("CPU s per fit (this process + mlflow server), ratio to none: " + "; ".join(
        f"{k} {c['process']:.2f} + {c['server']:.2f} ({(c['process'] + c['server']) / base_cpu:.3f})"
        for k, c in cpu_s.items()
    ))  # fmt: skip
    result = {
        "workload": {"n_rows": n_rows, "batch_size": BATCH, "steps_per_fit": steps, "model": "MLP 28-256-256-2"},
        "epochs_per_fit": args.epochs_per_fit,
        "method": {"rounds": rounds, "order": "ABBA", "statistic": "median", "every_n_steps": 100},
        "machine": info | {"loadavg_end": os.getloadavg()},
        "targets": TARGETS,
        "fit_examples_per_s": fit_s | {"warmup_s": warm},
        "ratio_vs_none": {k: v["median"] / base for k, v in fit_s.items()},
        "per_round_ratio_median": {k: statistics.median(v) for k, v in per_round.items()},
        "cpu_s_per_fit": cpu_s,
        "undelivered_after_last_fit": undelivered,
        "undelivered_at_close": undelivered_at_close,
        "log_model_s": {
            s: {k: {"median": statistics.median(v), "calls": v} for k, v in d.items()} for s, d in model_s.items()
        },
    }
    name = "tracking-quick" if args.quick else f"tracking-{args.epochs_per_fit}epoch"
    out = args.out or ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
