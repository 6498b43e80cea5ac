"""`make demo` (`python -m flows.demo`, `skflow demo`): the pipeline on embedded defaults.

Prefect's local server and MLflow on a SQLite file in the current directory (`mlruns/`): two
`train_flow` runs of a DNNClassifier on scikit-learn's digits with different hyper-parameters,
then the better model batch-predicts a Parquet file of new images with `batch_predict_flow`. Each
run registers its model as a version of `digits-demo` (the experiment's name; the first version
ever becomes `champion`, later ones `challenger`); the demo then points `champion` at the better
of the pair. It prints both runs side by side, where the
predictions went and the command that opens the MLflow UI. Running it again adds two runs and a
model version; the alias moves to the better of the new pair.

It also writes `data/churn/` (Parquet files of the demo churn table) so that
`skflow run configs/churn.yaml` works next.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

__all__ = ["main"]

REGISTERED_MODEL = "digits-demo"
BASE = {
    "experiment": "digits-demo",
    "source": "sklearn:digits",
    "target": "target",
    "split": {"kind": "random", "test_size": 0.25, "seed": 0},
    "estimator": {"name": "DNNClassifier", "params": {}},
    "fit": {"batch_size": 64, "validation_every_n_steps": 50},
    "metrics": ["accuracy", "f1_macro"],
    "tracking": {"log_every_n_steps": 20, "registered_model": REGISTERED_MODEL},
}
CANDIDATES = {
    "small": {"hidden_units": [16], "learning_rate": 0.003},
    "wide": {"hidden_units": [128, 64], "learning_rate": 0.01},
}


def _config(name: str, params: dict[str, Any], epochs: int) -> Any:
    from flows.config import load_config

    data = {**BASE, "estimator": {"name": "DNNClassifier", "params": params}}
    data["fit"] = {**BASE["fit"], "epochs": epochs}
    return load_config(data)


def _write_inputs(directory: str) -> str:
    """New "images" to predict: the digits as a Parquet file with an `image_id` column."""
    from flows.sources import read_source, write_demo_churn

    write_demo_churn(os.path.join(directory, "churn"))
    frame = read_source("sklearn:digits").drop(columns=["target"])
    frame.insert(0, "image_id", [f"img-{i:05d}" for i in range(len(frame))])
    path = os.path.join(directory, "digits", "new_images.parquet")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def main(argv: list[str] | None = None) -> list[Any]:
    """Run the demo; returns the two `TrainResult`s and the `PredictResult`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of each training run (default 8)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from flows.foreground import start_local_server
    from flows.server import use_server_environment

    use_server_environment()
    server = start_local_server()  # boots while TensorFlow imports
    from flows.pipelines import batch_predict_flow, train_flow
    from flows.reports import compare_runs
    from flows.tracking import set_alias

    started = time.perf_counter()
    images = _write_inputs("data")
    if server is not None:
        server.wait()
    results = [train_flow(_config(name, params, args.epochs)) for name, params in CANDIDATES.items()]
    best = max(results, key=lambda r: r.metrics["eval_accuracy"])
    version = best.model_version  # every train_flow registered its model as a new version
    set_alias(REGISTERED_MODEL, "champion", version, tracking_uri=best.tracking_uri)
    model_uri = f"models:/{REGISTERED_MODEL}@champion"
    predicted = batch_predict_flow(
        model_uri, images, os.path.join("predictions", "digits-demo.parquet"), id_column="image_id"
    )
    print()
    compare_runs(results, titles=list(CANDIDATES))
    better = list(CANDIDATES)[results.index(best)]
    print(
        f"\nBetter run: {better} ({best.run_id}), eval_accuracy {best.metrics['eval_accuracy']:.4f}: "
        f"registered as {REGISTERED_MODEL} version {version}, alias @champion."
    )
    print(f"Predictions: {predicted.rows} rows by {model_uri} -> {predicted.output}")
    print(f"Demo done in {time.perf_counter() - started:.0f} s. Runs and models: {os.path.abspath('mlruns')}")
    print(
        "\nOpen the MLflow UI on them:  .venv/bin/skflow ui   (or: python -m flows.cli ui), then http://127.0.0.1:5000"
    )
    print(
        "More: skflow runs digits-demo | skflow run configs/churn.yaml | skflow predict "
        f"{model_uri} {images} predictions/again.csv --id-column image_id"
    )
    return [*results, predicted]


if __name__ == "__main__":
    from flows.foreground import exit_now

    main()
    exit_now(0)
