"""The resilient logger and its spool, against stores that are unreachable, hung, or back."""

from __future__ import annotations

import json
import socket
import time

import pytest
from mlflow import MlflowClient

from flows.tracking import ResilientLogger, create_run, sync_spool
from flows.tracking.logger import now_ms
from flows.tracking.ops import metrics_op, op
from flows.tracking.spool import append_ops, read_ops


def _closed_port_uri() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_submitting_never_waits_for_an_unreachable_store_and_close_spools_in_order(tmp_path):
    uri, spool = _closed_port_uri(), str(tmp_path / "spool.jsonl")
    log = ResilientLogger(spool, interval_s=0.0).start()
    started = time.perf_counter()
    for step in range(1, 1001):
        log.submit(metrics_op(uri, "r1", {"loss": 1.0 / step}, step, now_ms()))
    assert time.perf_counter() - started < 0.5
    pending = log.close(timeout=1.0)
    assert len(pending) == 1000
    assert [o["metrics"][0][3] for o in read_ops(spool)] == list(range(1, 1001))


def test_each_request_to_a_hung_server_is_bounded(tmp_path):
    with socket.socket() as hung:  # listens, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        uri = f"http://127.0.0.1:{hung.getsockname()[1]}"
        log = ResilientLogger(str(tmp_path / "spool.jsonl"), interval_s=0.0, request_timeout_s=1).start()
        log.submit(metrics_op(uri, "r1", {"loss": 0.5}, 1, now_ms()))
        started = time.monotonic()
        assert len(log.close(timeout=2.0)) == 1
        assert time.monotonic() - started < 2.0 + 1 + 2.5  # flush + one request in flight + slack


def test_a_spool_line_cut_short_by_a_crash_loses_only_itself(tmp_path, caplog):
    path = str(tmp_path / "spool.jsonl")
    append_ops(path, [op("tags", "u", "r", tags=[["a", "1"]])])
    with open(path, "a") as f:
        f.write('{"op": "tags", "uri": "u", "run_id": "r", "tags": [["b"')  # the crash
    append_ops(path, [op("tags", "u", "r", tags=[["c", "3"]])])
    assert [o["tags"][0][0] for o in read_ops(path)] == ["a", "c"]
    assert "Skipped 1 unreadable line" in caplog.text


def test_sync_spool_delivers_in_order_ends_the_run_and_removes_the_spool(tracking_uri, tmp_path):
    run = create_run("spool")
    ops = [metrics_op(run.tracking_uri, run.run_id, {"loss": 10.0 - s}, s, now_ms() + s) for s in range(1, 6)]
    ops.append(op("status", run.tracking_uri, run.run_id, status="FINISHED", time=now_ms()))
    append_ops(str(tmp_path / "mlflow_spool.jsonl"), ops)
    result = sync_spool(tmp_path, timeout=30)
    assert (result.delivered, result.remaining) == (6, 0)
    client = MlflowClient()
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "loss")] == [
        (s, 10.0 - s) for s in range(1, 6)
    ]
    assert client.get_run(run.run_id).info.status == "FINISHED"
    assert not (tmp_path / "mlflow_spool.jsonl").exists()
    assert sync_spool(tmp_path).remaining == 0  # nothing left: a no-op


def test_a_spool_that_cannot_be_delivered_stays_whole(tmp_path):
    path = tmp_path / "mlflow_spool.jsonl"
    ops = [metrics_op(_closed_port_uri(), "r1", {"loss": 1.0}, s, now_ms()) for s in range(3)]
    append_ops(str(path), ops)
    before = path.read_text()
    assert sync_spool(tmp_path, timeout=0.5).remaining == 3
    assert path.read_text() == before


def test_data_mlflow_refuses_is_dropped_with_an_error_and_the_rest_delivered(tracking_uri, tmp_path, caplog):
    run = create_run("refused")
    log = ResilientLogger(str(tmp_path / "spool.jsonl"), interval_s=0.0).start()
    log.submit(op("params", run.tracking_uri, run.run_id, params=[["lr", "0.1"]]))
    log.submit(op("params", run.tracking_uri, run.run_id, params=[["lr", "0.2"]]))  # a changed param
    log.submit(metrics_op(run.tracking_uri, run.run_id, {"loss": 0.5}, 7, now_ms()))
    assert log.close(timeout=30) == []
    assert len(log.dropped) == 1 and "lr" in json.dumps(log.dropped[0][0])
    assert "MLflow refused a params operation" in caplog.text
    assert [m.step for m in MlflowClient().get_metric_history(run.run_id, "loss")] == [7]


@pytest.mark.parametrize("n", [2500])
def test_more_metrics_than_one_request_holds_are_split(tracking_uri, tmp_path, n):
    run = create_run("split")
    log = ResilientLogger(str(tmp_path / "spool.jsonl"), interval_s=0.0).start()
    for step in range(n):
        log.submit(metrics_op(run.tracking_uri, run.run_id, {"loss": float(step)}, step, now_ms()))
    assert log.close(timeout=60) == []
    assert len(MlflowClient().get_metric_history(run.run_id, "loss")) == n
