"""Reliability figures (docs/reliability.md): kills, malformed input, a tracking-server outage.

1. ``kills``: seeded random SIGKILLs of a training process, each followed by a resume.
   - Estimator kills: a subprocess fits ``Estimator(mlp_fn)`` on iris to ``max_steps=TARGET`` with a
     checkpoint every 25 steps; it is SIGKILLed at a time drawn from ``random.Random(seed)`` after its
     first checkpoint appears (uniform over the first half of the rest of the fit, as long as one
     calibration run took). Then: the latest
     checkpoint must load (every tensor read), a new Estimator resumes with ``fit(max_steps=TARGET)``
     and must end at exactly TARGET, its predictions finite.
   - Pipeline kills: ``skflow run`` (a subprocess, the real CLI: Prefect's local server, MLflow on
     SQLite) on a canned ``DNNClassifier`` config, SIGKILLed a seeded random time after its
     model_dir's first checkpoint appears. The resume is the pipeline's own (what a retried fit task
     runs: ``flows.training.build_estimator`` + ``train_to_step`` on the killed run's model_dir,
     the data split again from the same source and seed); same three checks.
2. ``corpus``: the 50 malformed inputs and configs of ``tests/reliability/malformed_corpus.py``
   through the public entry points; each outcome classified (clear error, TF frames, changed dirs).
3. ``outage``: a real ``mlflow server`` stopped for 30 s in the middle of a fit tracked by
   ``MlflowMonitor`` (once SIGKILLed and restarted, once frozen with SIGSTOP and resumed with
   SIGCONT); afterwards every metric point of the fit (loss, steps_per_sec, examples_per_sec every
   20 steps, a ValidationMonitor's metrics every 100) is counted in MLflow.

Results go to ``benchmarks/results/reliability.json``. Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/reliability.py            # all three (~12 min here)
    PYTHONPATH=. .venv/bin/python benchmarks/reliability.py kills --estimator-kills 2 --pipeline-kills 1
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"

ESTIMATOR_TARGET = 6000
PIPELINE_STEPS = 4000

_CHILD = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {root!r})
from sklearn.datasets import load_iris
import numpy as np
from estimators import Estimator, RunConfig
from tests.helpers import mlp_fn
x, y = load_iris(return_X_y=True)
config = RunConfig(tf_random_seed=0, save_checkpoints_steps=25, log_step_count_steps=0, verbose=0)
est = Estimator(mlp_fn, model_dir={model_dir!r}, config=config, params={{"n_classes": 3}})
print("READY", flush=True)
est.fit(x.astype(np.float32), y.astype(np.int32), max_steps={target})
print("DONE", flush=True)
"""


def _estimator(model_dir: str):
    from estimators import Estimator, RunConfig
    from tests.helpers import mlp_fn

    config = RunConfig(tf_random_seed=0, save_checkpoints_steps=25, log_step_count_steps=0, verbose=0)
    return Estimator(mlp_fn, model_dir=model_dir, config=config, params={"n_classes": 3})


def _iris():
    import numpy as np
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int32)


def _checkpoint_loads(model_dir: str) -> tuple[int, bool]:
    """(step of the latest checkpoint, whether every tensor of it reads back)."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(model_dir)
    if latest is None:
        return 0, True  # killed before the first save: nothing to corrupt, training restarts at 0
    try:
        reader = tf.train.load_checkpoint(latest)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception:  # noqa: BLE001 - a corrupt checkpoint is the figure
        return int(latest.rsplit("-", 1)[1]), False
    return int(latest.rsplit("-", 1)[1]), True


def _start_child(model_dir: str) -> tuple[subprocess.Popen, float]:
    """Start the fit; return once its first checkpoint is on disk (training runs: its first 25 steps
    are done), with that time."""
    code = _CHILD.format(root=str(ROOT), model_dir=model_dir, target=ESTIMATOR_TARGET)
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout.readline().strip() == "READY"
    deadline = time.monotonic() + 300
    while not os.path.exists(os.path.join(model_dir, "checkpoint")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return process, time.monotonic()


def estimator_kills(count: int, rng: random.Random, work: Path) -> list[dict]:
    """`count` seeded kills of an Estimator fit, each resumed in this process."""
    calibration = work / "calibration"
    process, ready = _start_child(str(calibration))
    assert process.stdout.readline().strip() == "DONE"
    duration = time.monotonic() - ready  # the fit alone (the interpreter's exit takes seconds more)
    process.wait(timeout=600)
    print(f"estimator fit of {ESTIMATOR_TARGET} steps: {duration:.1f} s after its first checkpoint", flush=True)
    x, y = _iris()
    results: list[dict] = []
    index = 0
    while sum(not r["finished_before_kill"] for r in results) < count:  # a draw past the fit's end is no kill
        index += 1
        model_dir = str(work / f"estimator_{index}")
        delay = rng.uniform(0.0, 0.5) * duration  # the first half: the load here varies the pace 2-3x
        process, ready = _start_child(model_dir)
        time.sleep(max(0.0, ready + delay - time.monotonic()))
        process.send_signal(signal.SIGKILL)
        process.wait()
        step_at_kill, loads = _checkpoint_loads(model_dir)
        started = time.monotonic()
        est = _estimator(model_dir).fit(x, y, max_steps=ESTIMATOR_TARGET)
        final = int(est.get_variable_value("global_step"))
        finite = _finite(est.predict(x))
        result = {
            "kind": "estimator",
            "kill_after_first_checkpoint_s": round(delay, 2),
            "finished_before_kill": step_at_kill >= ESTIMATOR_TARGET,
            "checkpoint_step_at_kill": step_at_kill,
            "checkpoint_loads": loads,
            "final_step": final,
            "exact": final == ESTIMATOR_TARGET,
            "predictions_finite": finite,
            "resume_s": round(time.monotonic() - started, 1),
        }
        print(result, flush=True)
        results.append(result)
    return results


def _finite(predictions) -> bool:
    """Every number of `predictions` (an array or a dict of arrays) is finite."""
    import numpy as np

    values = predictions.values() if isinstance(predictions, dict) else [predictions]
    return all(bool(np.isfinite(np.asarray(v, dtype=np.float64)).all()) for v in values)


def _pipeline_config(work: Path) -> Path:
    import yaml

    config = {
        "experiment": "kills",
        "source": "sklearn:iris",
        "target": "target",
        "estimator": {
            "name": "DNNClassifier",
            "params": {"hidden_units": [16], "learning_rate": 0.05},
            "config": {"save_checkpoints_steps": 25, "tf_random_seed": 0},
        },
        "fit": {"steps": PIPELINE_STEPS, "batch_size": 16},
        "tracking": {"log_every_n_steps": 50, "log_model": False, "uri": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"},
        "model_root": str(work / "models"),
    }
    path = work / "kills.yaml"
    path.write_text(yaml.safe_dump(config))
    (work / "mlruns").mkdir(exist_ok=True)
    return path


def _resume_pipeline(config_path: Path, model_dir: Path, scratch: Path) -> tuple[int, bool]:
    """The pipeline's resume on a killed run's model_dir: (final step, predictions finite)."""
    from flows.config import load_config
    from flows.data import ingest, split, validate
    from flows.training import build_estimator, load_training_data, total_steps, train_to_step

    config = load_config(str(config_path))
    dataset = ingest(config.source, str(scratch))
    features = validate(dataset, config)
    splits = split(dataset, config, features, str(scratch))
    data = load_training_data(splits, config)
    target = total_steps(config.fit, data.train_rows)
    estimator = build_estimator(config, str(model_dir), target)
    step = train_to_step(estimator, data, target, [], config.fit.batch_size, config.fit.impute)
    return step, _finite(estimator.predict_proba(data.x_eval))


def pipeline_kills(count: int, rng: random.Random, work: Path) -> list[dict]:
    """`count` seeded kills of `skflow run`, each resumed the pipeline's way in this process."""
    config_path = _pipeline_config(work)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env = {k: v for k, v in env.items() if not k.startswith(("MLFLOW_TRACKING_", "PREFECT_API_"))}
    results = []
    for index in range(count):
        delay = rng.uniform(0.0, 4.0)
        before = set((work / "models" / "kills").glob("*")) if (work / "models" / "kills").exists() else set()
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run", str(config_path)], cwd=work, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        model_dir = None
        while time.monotonic() < deadline and process.poll() is None:
            new = set((work / "models" / "kills").glob("*")) - before if (work / "models" / "kills").exists() else set()
            if new and (next(iter(new)) / "checkpoint").exists():
                model_dir = next(iter(new))
                break
            time.sleep(0.05)
        time.sleep(delay)
        finished_first = process.poll() is not None
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the command and its local Prefect server
        except ProcessLookupError:
            pass
        process.wait()
        if model_dir is None:
            results.append({"kind": "pipeline", "error": "no checkpoint appeared"})
            continue
        step_at_kill, loads = _checkpoint_loads(str(model_dir))
        started = time.monotonic()
        final, finite = _resume_pipeline(config_path, model_dir, work / f"scratch_{index}")
        result = {
            "kind": "pipeline",
            "kill_after_first_checkpoint_s": round(delay, 2),
            "finished_before_kill": finished_first or step_at_kill >= PIPELINE_STEPS,
            "checkpoint_step_at_kill": step_at_kill,
            "checkpoint_loads": loads,
            "final_step": final,
            "exact": final == PIPELINE_STEPS,
            "predictions_finite": finite,
            "resume_s": round(time.monotonic() - started, 1),
        }
        print(result, flush=True)
        results.append(result)
    return results


def run_kills(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="skflow_kills_"))
    try:
        rows = pipeline_kills(args.pipeline_kills, rng, work) + estimator_kills(args.estimator_kills, rng, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kills = [r for r in rows if not r.get("finished_before_kill")]
    good = [r for r in kills if r.get("exact") and r.get("checkpoint_loads") and r.get("predictions_finite")]
    return {
        "seed": args.seed,
        "kills": len(kills),
        "exact_resumes": len(good),
        "corrupt_checkpoints": sum(not r.get("checkpoint_loads", True) for r in kills),
        "draws_past_the_end_of_the_fit": len(rows) - len(kills),
        "runs": rows,
    }


def run_corpus(args: argparse.Namespace) -> dict:
    from tests.reliability.malformed_corpus import build_context
    from tests.reliability.malformed_corpus import run_corpus as corpus

    work = Path(tempfile.mkdtemp(prefix="skflow_corpus_"))
    try:
        started = time.monotonic()
        context = build_context(work)
        outcomes = corpus(context)
        seconds = time.monotonic() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [o.as_dict() for o in outcomes]
    return {
        "cases": len(rows),
        "clear_errors": sum(o.clear for o in outcomes),
        "tf_traces": sum(o.tf_trace for o in outcomes),
        "changed_dirs": sum(o.changed for o in outcomes),
        "seconds": round(seconds, 1),
        "by_entry": {e: sum(o.entry == e for o in outcomes) for e in sorted({o.entry for o in outcomes})},
        "outcomes": rows,
    }


def _outage(server, mode: str, down_s: float, work: Path) -> dict:
    from mlflow import MlflowClient

    from estimators.monitors import BaseMonitor, ValidationMonitor
    from flows.tracking import MlflowMonitor

    x, y = _iris()
    max_steps, every, validate_every = 2000, 20, 100
    outage: dict[str, float] = {}

    def stop_then_start() -> None:
        outage["down"] = time.monotonic()
        if mode == "kill":
            server.kill()
        else:
            os.killpg(server.process.pid, signal.SIGSTOP)
        time.sleep(down_s)
        if mode == "kill":
            server.start()
        else:
            os.killpg(server.process.pid, signal.SIGCONT)
        outage["back"] = time.monotonic()

    class Paced(BaseMonitor):
        def __init__(self):
            super().__init__()
            self.times: list[float] = []

        def step_end(self, step, outputs):
            self.times.append(time.monotonic())
            if step == 100:
                outage["thread"] = threading.Thread(target=stop_then_start, daemon=True)
                outage["thread"].start()
            time.sleep(0.02)
            return False

    model_dir = str(work / f"outage_{mode}")
    monitor = MlflowMonitor(
        tracking_uri=server.url, experiment_name=f"outage-{mode}", every_n_steps=every, interval_s=0.5,
        flush_timeout_s=180,
    )  # fmt: skip
    validation = ValidationMonitor(x, y, every_n_steps=validate_every, metrics=["accuracy"])
    paced = Paced()
    started = time.monotonic()
    _estimator(model_dir).fit(x, y, max_steps=max_steps, monitors=[validation, monitor, paced])
    ended = time.monotonic()
    outage["thread"].join(timeout=300)
    undelivered = monitor.close(timeout=120)
    client = MlflowClient(server.url)
    run = client.get_run(monitor.run.run_id)
    steps = list(range(every, max_steps + 1, every))
    val_steps = list(range(validate_every, max_steps + 1, validate_every))
    expected = {"loss": steps, "steps_per_sec": steps, "examples_per_sec": steps}
    expected.update({k: val_steps for k in run.data.metrics if k.startswith("val_")})
    counts, missing, duplicated = {}, 0, 0
    for key, wanted in expected.items():
        got = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        counts[key] = len(got)
        missing += len(set(wanted) - set(got))
        duplicated += len(got) - len(set(got))
    gaps = [b - a for a, b in zip(paced.times, paced.times[1:])]
    longest = max(range(len(gaps)), key=gaps.__getitem__)  # the gap after step longest + 1
    slow = [i + 2 for i, g in enumerate(gaps) if g > 1.0]  # steps that ended > 1 s after the previous one
    return {
        "mode": "SIGKILL, then restarted" if mode == "kill" else "SIGSTOP, then SIGCONT",
        "server_down_s": round(outage["back"] - outage["down"], 1),
        "fit_s": round(ended - started, 1),
        "training_s": round(paced.times[-1] - paced.times[0], 1),
        "flush_after_training_s": round(ended - paced.times[-1], 1),
        "longest_step_s": round(max(gaps), 2),
        "longest_step": longest + 2,
        "longest_step_during_outage": outage["down"] <= paced.times[longest + 1] <= outage["back"],
        "steps_over_1s": slow,
        "validation_steps": val_steps[:3] + ["..."],
        "metric_keys": sorted(expected),
        "points_expected": sum(len(v) for v in expected.values()),
        "points_in_mlflow": sum(counts.values()),
        "missing": missing,
        "duplicated": duplicated,
        "undelivered_at_close": undelivered,
        "run_status": run.info.status,
        "val_keys_seen": sorted(k for k in run.data.metrics if k.startswith("val_")),
    }


def run_outage(args: argparse.Namespace) -> dict:
    from mlflow import MlflowClient

    from tests.flows.conftest import MlflowServer

    work = Path(tempfile.mkdtemp(prefix="skflow_outage_"))
    template = work / "template.db"
    MlflowClient(f"sqlite:///{template}").search_experiments()
    server = MlflowServer(work, template)
    try:
        server.start()
        results = [_outage(server, mode, args.down_s, work) for mode in ("kill", "stop")]
    finally:
        if server.process is not None:
            try:
                os.killpg(server.process.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        server.kill()
        server.log.close()
        shutil.rmtree(work, ignore_errors=True)
    for result in results:
        print(result, flush=True)
    return {"runs": results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="?", default="all", choices=["all", "kills", "corpus", "outage"])
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--estimator-kills", type=int, default=15)
    parser.add_argument("--pipeline-kills", type=int, default=5)
    parser.add_argument("--down-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    for name, run in (("corpus", run_corpus), ("kills", run_kills), ("outage", run_outage)):
        if args.what in ("all", name):
            started = time.monotonic()
            result = run(args)
            result["wall_s"] = round(time.monotonic() - started, 1)
            result["load_average_before"] = [round(v, 2) for v in load]
            result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
            results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}  # another part may have run
            results[name] = result
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
            summary = {k: v for k, v in results[name].items() if k not in ("runs", "outcomes")}
            print(name, json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
