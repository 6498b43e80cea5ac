"""Benchmark: skflow feeders (numpy, pandas, streaming, Parquet, sparse) against plain tf.data (issue 2/4).

  numpy      1M x 28 float32 + int32 labels, shuffled batches of 256: ``DataFeeder(x, y, 256, shuffle=True,
             seed=0).dataset()`` against ``from_tensor_slices((x, y)).shuffle(B).batch(256).prefetch(AUTOTUNE)``,
             B = n (a full shuffle: the reference) and B = 10_000; consumed in a ``tf.function`` loop
             (``next(it)`` k times, as the Estimator consumes it; the ratio that counts) and in a Python loop.
  pandas     1M rows, 20 float + 5 string categorical columns (10-50 categories): ``PandasFeeder`` against
             ``DataFeeder`` on the same content pre-encoded ({"numeric": (n, 20) float32, "c0".."c4": int64}).
  streaming  a generator function yielding a pre-built list of (256, 28) batches, through
             ``StreamingDataFeeder(gen_fn, epochs=None)``, against the numpy feeder; secondary: the same with
             ``shuffle=True, seed=0`` (rows shuffled in a 1,024-row buffer, as ``fit`` feeds a stream).
  parquet    3M x 28 float32 + int64 label in 6 files; shuffled epochs through ``FileDataFeeder`` in a
             subprocess: rows/s and peak RSS growth (VmHWM, reset through /proc/self/clear_refs first).
  sparse     CSR 200,000 x 50,000 at 0.1 % density; a linear model, ``Estimator.fit(x_csr, y, steps=500,
             batch_size=256)`` x 4 (the first is the warm-up) in a subprocess: examples/s, peak RSS growth.
Method: one process; each dataset is built once (a second, warm construction is timed and reported
apart); every round makes a fresh iterator (``iter()`` reported apart) and times n // 256 batches, so each
round is one epoch (a full shuffle buffer refills inside it). One untimed warm-up round each, then ABBA
rounds; medians of batches/s. JSON: ``benchmarks/results/feeders.json``.

Usage::

    .venv/bin/python benchmarks/bench_feeders.py             # 5 rounds, ~6 min on 2 cores (7 rounds: ~8 min)
    .venv/bin/python benchmarks/bench_feeders.py --quick     # smoke run: 50k rows, 1 round
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_estimator import ROOT, machine_info, summary  # noqa: E402  (also puts the repo on sys.path)

from feeders import DataFeeder, PandasFeeder, StreamingDataFeeder  # noqa: E402

BATCH = 256
TARGETS = {"numpy_vs_tf_data": 1.0, "pandas_vs_numpy": 0.8, "streaming_vs_numpy": 0.8}

PARQUET_SCRIPT = """
import json, os, re, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
status = lambda k: int(re.search(k + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
from feeders.file_feeder import FileDataFeeder
count = lambda ds: int(ds.reduce(tf.constant(0, tf.int64), lambda a, e: a + tf.shape(e[0], tf.int64)[0]))
count(tf.data.Dataset.from_tensors((tf.zeros([1, 1]), tf.zeros([1]))))
open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM, ru_maxrss) to the current RSS
before = status("VmRSS")
out = {"epochs": []}
for epoch, shuffle in enumerate([True, True, True, False]):
    t0 = time.perf_counter()
    feeder = FileDataFeeder(sys.argv[1], "label", batch_size=256, shuffle=shuffle, epochs=1, seed=epoch)
    ds = feeder.dataset()
    t1 = time.perf_counter()
    rows = count(ds)
    s = time.perf_counter() - t1
    out["epochs"].append({"shuffle": shuffle, "rows": rows, "construct_s": t1 - t0, "s": s, "hwm_growth_mb": status("VmHWM") - before})
out["plan_estimated_mb"] = feeder.read_plan.estimated_mb
out["rss_before_mb"], out["rss_peak_mb"] = before, status("VmHWM")
out["rss_growth_mb"] = out["rss_peak_mb"] - before
print(json.dumps(out))
"""

SPARSE_SCRIPT = """
import json, os, re, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, scipy.sparse as sp, tensorflow as tf
status = lambda k: int(re.search(k + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
from estimators import Estimator, RunConfig, optimize_loss
from feeders import SparseDataFeeder
x = sp.load_npz(sys.argv[1]); y = np.load(sys.argv[2]); steps = int(sys.argv[3])
def model_fn(features, targets, mode, params):
    w = tf.Variable(tf.zeros([x.shape[1], 1]), name="w")
    logits = tf.squeeze(tf.sparse.sparse_dense_matmul(features, w), -1)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(targets, tf.float32), logits))
    return tf.cast(logits > 0, tf.int64), loss, optimize_loss(loss, "Adam", 0.01)
open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM, ru_maxrss) to the current RSS
before = status("VmRSS")
est = Estimator(model_fn, model_dir=sys.argv[4], config=RunConfig(tf_random_seed=0, log_step_count_steps=0))
out = {"fit_s": []}
for i in range(4):  # the first fit is the warm-up (tracing)
    t0 = time.perf_counter(); est.fit(x, y, steps=steps, batch_size=256); out["fit_s"].append(time.perf_counter() - t0)
    out.setdefault("hwm_growth_mb_per_fit", []).append(status("VmHWM") - before)
t0 = time.perf_counter(); SparseDataFeeder(x, y, batch_size=256, seed=0).dataset(); out["feeder_s"] = time.perf_counter() - t0
pred = est.predict(x[:20000])
out["train_accuracy_20k"] = float(np.mean(np.asarray(pred).ravel() == y[:20000]))
out["rss_before_mb"], out["rss_peak_mb"] = before, status("VmHWM")
out["rss_growth_mb"] = out["rss_peak_mb"] - before
import gc; out["rss_now_mb"] = status("VmRSS") - before; gc.collect(); out["rss_after_gc_mb"] = status("VmRSS") - before
print(json.dumps(out))
"""


@tf.function
def drain(iterator, k):
    """Consume k elements in-graph, summing the labels (cheap) so that nothing is optimised away."""
    acc = tf.constant(0, tf.int64)
    for _ in tf.range(k):
        acc += tf.cast(tf.reduce_sum(next(iterator)[1]), tf.int64)
    return acc


def make_variant(ds: tf.data.Dataset, k: int, loop: str, iter_s: list[float]):
    def run() -> float:
        t0 = time.perf_counter()
        it = iter(ds)
        t1 = time.perf_counter()
        if loop == "tf":
            int(drain(it, tf.constant(k, tf.int64)))
        else:
            for _ in range(k):
                next(it)
        iter_s.append(t1 - t0)
        return time.perf_counter() - t1

    return run


def abba_self_timed(variants: dict, units: int, rounds: int) -> dict[str, list[float]]:
    """Per-round rates (units/s) of self-timing variants, ABBA order, after one untimed warm-up each."""
    names, out = list(variants), {k: [] for k in variants}
    for name in names:
        variants[name]()
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            out[name].append(units / variants[name]())
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {out[k][-1]:,.0f}" for k in names), flush=True)
    return out


def make_frame(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    numeric = rng.standard_normal((n, 20), dtype=np.float32)
    encoded, cols = {"numeric": numeric}, {f"f{j}": numeric[:, j] for j in range(20)}
    for i, card in enumerate([10, 20, 30, 40, 50]):
        codes = rng.integers(0, card, n)
        vocab = np.array([f"c{i}_v{v:02d}" for v in range(card)], dtype=object)  # sorted == code order
        cols[f"c{i}"], encoded[f"c{i}"] = vocab[codes], codes.astype(np.int64)
    return pd.DataFrame(cols), encoded


def run_sub(script: str, *args: str, timeout: int = 600) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_parquet(path: str, n: int, rng: np.random.Generator) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq

    per_file = n // 6
    for f in range(6):
        x = rng.standard_normal((per_file, 28), dtype=np.float32)
        cols = {f"f{j}": x[:, j] for j in range(28)} | {"label": (x[:, 0] > 0).astype(np.int64)}
        pq.write_table(pa.table(cols), os.path.join(path, f"part-{f}.parquet"), row_group_size=per_file // 4)
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed ABBA rounds (one epoch per variant); default 5")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50k rows, 1 round, small files")
    parser.add_argument("--out", help="JSON path; default benchmarks/results/feeders[-quick].json")
    args = parser.parse_args()
    n, rounds = (50_000, 1) if args.quick else (1_000_000, args.rounds)
    n_parquet, sparse_rows, sparse_steps = (300_000, 20_000, 50) if args.quick else (3_000_000, 200_000, 500)
    info = machine_info()
    print(f"machine: {info['cpu_count']} CPUs, TF {info['tensorflow']}, load {info['loadavg_start'][0]:.2f}")
    rng = np.random.default_rng(0)
    x, y, k = rng.standard_normal((n, 28), dtype=np.float32), rng.integers(0, 2, n).astype(np.int32), n // BATCH
    construct, iter_s, ds = {}, {}, {}

    def build(name: str, fn) -> None:  # the second construction is timed: the first also pays TF's start-up
        fn()
        t0 = time.perf_counter()
        ds[name], construct[name] = fn(), time.perf_counter() - t0

    build("feeder", lambda: DataFeeder(x, y, batch_size=BATCH, shuffle=True, seed=0).dataset())
    for name, buf in (("tf_data_full", n), ("tf_data_10k", 10_000)):
        build(name, lambda b=buf: tf.data.Dataset.from_tensor_slices((x, y)).shuffle(b).batch(BATCH).prefetch(-1))
    df, encoded = make_frame(n, rng)
    build("pandas_feeder", lambda: PandasFeeder(df, y, batch_size=BATCH, shuffle=True, seed=0).dataset())
    build("dict_feeder", lambda: DataFeeder(encoded, y, batch_size=BATCH, shuffle=True, seed=0).dataset())
    batches = [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, k * BATCH, BATCH)]

    def gen_fn():
        for b in batches:  # noqa: UP028 (an explicit loop, as a user's generator would be)
            yield b

    build("streaming", lambda: StreamingDataFeeder(gen_fn, epochs=None).dataset())
    build("streaming_shuffled", lambda: StreamingDataFeeder(gen_fn, epochs=None, shuffle=True, seed=0).dataset())
    variants = {}
    for name in ds:
        for loop in ("tf", "py") if name in ("feeder", "tf_data_full", "tf_data_10k") else ("tf",):
            key = f"{name}/{loop}"
            variants[key] = make_variant(ds[name], k, loop, iter_s.setdefault(key, []))
    print(f"in-memory feeders: warm-up, then {rounds} ABBA rounds of {k} batches x {BATCH} rows (batches/s)")
    rates = summary(abba_self_timed(variants, k, rounds))
    iter_med = {key: statistics.median(v) for key, v in iter_s.items()}
    ds.clear(), variants.clear()  # free the datasets, frame and batches before the subprocess parts
    df = batches = None

    with tempfile.TemporaryDirectory(prefix="bench_feed_") as tmp:
        print(f"parquet: writing {n_parquet:,} x 28 float32 + label ...", flush=True)
        t0, mb = time.perf_counter(), write_parquet(tmp, n_parquet, rng)
        parquet = {"n_rows": n_parquet, "disk_mb": mb, "write_s": time.perf_counter() - t0}
        parquet |= run_sub(PARQUET_SCRIPT, tmp)
    with tempfile.TemporaryDirectory(prefix="bench_sparse_") as tmp:
        import scipy.sparse as sp

        print(f"sparse: CSR {sparse_rows:,} x 50,000 at 0.1 % density, fit(steps={sparse_steps}) x 4 ...", flush=True)
        nnz = sparse_rows * 50  # 0.1 % of 50,000 columns; duplicates summed
        coords = (rng.integers(0, sparse_rows, nnz), rng.integers(0, 50_000, nnz))
        xs = sp.csr_matrix((rng.random(nnz, dtype=np.float32), coords), shape=(sparse_rows, 50_000))
        ys = (xs @ rng.standard_normal(50_000).astype(np.float32) > 0).astype(np.int64)
        sp.save_npz(f"{tmp}/x.npz", xs, compressed=False), np.save(f"{tmp}/y.npy", ys)
        sparse = run_sub(SPARSE_SCRIPT, f"{tmp}/x.npz", f"{tmp}/y.npy", str(sparse_steps), f"{tmp}/model")
        sparse |= {"shape": list(xs.shape), "nnz": int(xs.nnz), "csr_mb": (xs.data.nbytes + xs.indices.nbytes) / 2**20}
        sparse["dense_gb"] = sparse_rows * 50_000 * 4 / 1e9
        sparse["examples_per_s"] = statistics.median(sparse_steps * BATCH / s for s in sparse["fit_s"][1:])

    med = {key: v["median"] for key, v in rates.items()}
    ratios = {"numpy_vs_tf_data": med["feeder/tf"] / med["tf_data_full/tf"],
              "pandas_vs_numpy": med["pandas_feeder/tf"] / med["dict_feeder/tf"],
              "streaming_vs_numpy": med["streaming/tf"] / med["feeder/tf"]}  # fmt: skip
    extra = {"numpy_vs_tf_data_10k": med["feeder/tf"] / med["tf_data_10k/tf"],
             "numpy_vs_tf_data_python_loop": med["feeder/py"] / med["tf_data_full/py"],
             "numpy_vs_tf_data_10k_python_loop": med["feeder/py"] / med["tf_data_10k/py"],
             "streaming_shuffled_vs_numpy": med["streaming_shuffled/tf"] / med["feeder/tf"]}  # fmt: skip
    print(f"\n{'variant/loop':<22}{'batches/s':>11}{'rows/s':>12}{'best':>9}{'iter() ms':>11}{'build s':>9}")
    for key, v in rates.items():
        print(f"{key:<22}{v['median']:>11,.0f}{v['median'] * BATCH:>12,.0f}{v['best']:>9,.0f}"
              f"{iter_med[key] * 1e3:>11.1f}{construct[key.split('/')[0]]:>9.2f}")  # fmt: skip
    parquet["rows_per_s"] = statistics.median(e["rows"] / e["s"] for e in parquet["epochs"] if e["shuffle"])
    parquet["rows_per_s_unshuffled"] = parquet["epochs"][-1]["rows"] / parquet["epochs"][-1]["s"]
    print(
        f"\nparquet: {parquet['n_rows']:,} rows, {parquet['disk_mb']:.0f} MB on disk; shuffled epoch "
        f"{parquet['rows_per_s']:,.0f} rows/s (unshuffled {parquet['rows_per_s_unshuffled']:,.0f}); "
        f"peak RSS growth {parquet['rss_growth_mb']:.0f} MB (plan estimate {parquet['plan_estimated_mb']} MB)"
    )
    print(
        f"sparse: {sparse['nnz']:,} non-zeros ({sparse['csr_mb']:.0f} MB CSR, {sparse['dense_gb']:.0f} GB dense); "
        f"fit {sparse['examples_per_s']:,.0f} examples/s (fit s: {', '.join(f'{s:.2f}' for s in sparse['fit_s'])}; "
        f"feeder build {sparse['feeder_s']:.2f} s); peak RSS growth {sparse['rss_growth_mb']:.0f} MB "
        f"(after the fits {sparse['rss_now_mb']:.0f} MB, after gc.collect() {sparse['rss_after_gc_mb']:.0f} MB); "
        f"train accuracy {sparse['train_accuracy_20k']:.3f}"
    )
    met = {key: r >= TARGETS[key] for key, r in ratios.items()}
    for key, r in (ratios | extra).items():
        verdict = f"{'met   ' if met[key] else 'MISSED'}  (target >= {TARGETS[key]})" if key in met else "(secondary)"
        print(f"{chr(10) * (key == 'numpy_vs_tf_data')}{key:<34}{r:>7.3f}  {verdict}")
    result = {
        "workload": {"n_rows": n, "batch_size": BATCH, "batches_per_round": k},
        "method": {"rounds": rounds, "order": "ABBA", "statistic": "median", "warmup": "one untimed round each"},
        "machine": info | {"loadavg_end": os.getloadavg()}, "targets": TARGETS, "batches_per_s": rates,
        "iter_s_median": iter_med, "construct_s": construct, "ratios": ratios, "secondary_ratios": extra,
        "parquet": parquet, "sparse": sparse, "met": met,
    }  # fmt: skip
    out = args.out or ROOT / "benchmarks" / "results" / ("feeders-quick.json" if args.quick else "feeders.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    open(out, "w").write(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
