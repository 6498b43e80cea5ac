"""Batch prediction, streamed: rows in chunks from a source, predictions out to Parquet or CSV.

`predict_to_file` reads the source a chunk at a time (Parquet/CSV files in record batches, a SQL
query with a server-side cursor, bundled tables sliced), predicts each chunk and appends it to the
output, so memory holds one chunk whatever the size of the source. The id column is copied next to
the predictions. Predictors:

- `model_predictor(model)`: an MLflow pyfunc model (`flows.tracking.load_model`); each chunk's
  columns are the model signature's inputs, cast to the signature's types (MLflow refuses float64
  for a float32 input).
- `estimator_predictor(estimator)`: an estimator in memory (a pipeline with `tracking.log_model:
  false`), its outputs named as the logged model would name them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from flows.config import SqlSource
from flows.sources import IngestError, describe, read_source
from flows.tracking.model import resolve_model_uri

__all__ = [
    "PredictionResult",
    "estimator_predictor",
    "iter_chunks",
    "load_logged_model",
    "model_predictor",
    "predict_to_file",
    "resolve_model_uri",
]

logger = logging.getLogger("skflow")

CHUNK_ROWS = 65_536
_TYPES = {"float": "float32", "double": "float64", "integer": "int32", "long": "int64", "boolean": "bool"}


@dataclass(frozen=True)
class PredictionResult:
    """Where predictions went. Attributes: output (path), rows, seconds, columns (of the output)."""

    output: str
    rows: int
    seconds: float
    columns: list[str]


def iter_chunks(source: str | SqlSource, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """DataFrames of at most `rows` rows of `source`, in order."""
    if isinstance(source, SqlSource):
        import sqlalchemy as sa

        engine = sa.create_engine(source.url)
        try:
            with engine.connect().execution_options(stream_results=True) as connection:
                yield from pd.read_sql_query(sa.text(source.sql), connection, chunksize=rows)
        except sa.exc.SQLAlchemyError as exc:
            raise IngestError(f"SQL query failed on {describe(source)}: {str(exc).splitlines()[0]}") from None
        finally:
            engine.dispose()
        return
    if source.startswith(("sklearn:", "demo:")) and not os.path.exists(source):
        frame = read_source(source)
        for start in range(0, len(frame), rows):
            yield frame.iloc[start : start + rows].reset_index(drop=True)
        return
    from flows.streaming import iter_batches

    for batch in iter_batches(source, rows=rows):
        yield batch.to_pandas()


def load_logged_model(model_uri: str, tracking_uri: str | None = None) -> Any:
    """`flows.tracking.load_model`: the model a URI names, looked up in `tracking_uri`'s store."""
    from flows.tracking import load_model

    return load_model(model_uri, tracking_uri=tracking_uri)


def model_predictor(model: Any) -> tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str] | None]:
    """A chunk -> predictions function for an MLflow pyfunc model, and its input columns."""
    from flows.tracking import serving_frame

    schema = model.metadata.get_input_schema()
    if schema is None:
        return lambda chunk: model.predict(serving_frame(chunk)), None
    types = {spec.name: _TYPES.get(spec.type.name) for spec in schema.inputs}

    def predict(chunk: pd.DataFrame) -> pd.DataFrame:
        chunk = serving_frame(chunk)
        cast = {c: t for c, t in types.items() if t is not None and str(chunk[c].dtype) != t}
        return model.predict(chunk.astype(cast) if cast else chunk)

    return predict, list(types)


def estimator_predictor(
    estimator: Any, features: list[str]
) -> tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]:
    """A chunk -> predictions function for an estimator in memory (a pipeline that logs no model),
    with the columns the logged model would give, and its input columns."""
    from estimators import Estimator
    from flows.tracking.pyfunc_model import frame_from_outputs

    def predict(chunk: pd.DataFrame) -> pd.DataFrame:
        if isinstance(estimator, Estimator):
            out = estimator.predict(chunk)
            return frame_from_outputs(out if isinstance(out, dict) else {"predictions": out})
        if hasattr(estimator, "predict_proba"):
            probabilities = estimator.predict_proba(chunk)
            ids = probabilities.argmax(axis=1)
            classes = estimator.classes_[ids]
            return frame_from_outputs({"classes": classes, "class_ids": ids, "probabilities": probabilities})
        return frame_from_outputs({"predictions": estimator.predict(chunk)})

    return predict, list(features)


def predict_to_file(
    predict: Callable[[pd.DataFrame], pd.DataFrame],
    source: str | SqlSource,
    output: str,
    columns: list[str] | None = None,
    id_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> PredictionResult:
    """Predict every row of `source` and write `id_column` (when given) and the predictions to
    `output` (.parquet or .csv), one chunk at a time.

    Args:
        predict: chunk DataFrame -> predictions DataFrame (same number of rows).
        source: the rows (same forms as a pipeline's `source`).
        output: a .parquet or .csv path (its directory is created); written to a temporary file
            beside it and renamed when complete, so a failed prediction leaves no partial output.
        columns: the model's input columns (None: every column but the id column).
        id_column: a column of the source copied next to the predictions.
        chunk_rows: rows per chunk. default=65536.

    Raises:
        ValueError: the output is neither .parquet nor .csv, or the source lacks a column.
    """
    kind = os.path.splitext(output)[1].lower()
    if kind not in (".parquet", ".csv"):
        raise ValueError(f"output {output!r} must end in .parquet or .csv")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    partial = f"{output}.partial"
    started, rows, writer, written = time.perf_counter(), 0, None, []
    try:
        for chunk in iter_chunks(source, chunk_rows):
            wanted = columns if columns is not None else [c for c in chunk.columns if c != id_column]
            missing = [c for c in [*wanted, *([id_column] if id_column else [])] if c not in chunk.columns]
            if missing:
                raise ValueError(
                    f"source {describe(source)!r} lacks columns {missing} the model needs; it has {list(chunk.columns)}"
                )
            predictions = predict(chunk[wanted]).reset_index(drop=True)
            if id_column:
                predictions.insert(0, id_column, chunk[id_column].reset_index(drop=True))
            writer = _write(predictions, partial, kind, writer)
            written = list(predictions.columns)
            rows += len(predictions)
        if writer is not None and kind == ".parquet":
            writer.close()
            writer = None
        if not rows:
            raise ValueError(f"source {describe(source)!r} holds no rows to predict")
        os.replace(partial, output)
    finally:
        if writer is not None and kind == ".parquet":
            writer.close()
        if os.path.exists(partial):
            os.remove(partial)
    seconds = time.perf_counter() - started
    logger.info("Predicted %d rows of %s into %s in %.1f s.", rows, describe(source), output, seconds)
    return PredictionResult(os.path.abspath(output), rows, seconds, written)


def _write(frame: pd.DataFrame, path: str, kind: str, writer: Any) -> Any:
    """Append `frame` to `path`; returns the Parquet writer to reuse (a marker for CSV)."""
    if kind == ".csv":
        frame.to_csv(path, mode="a" if writer else "w", header=not writer, index=False)
        return True
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table.cast(writer.schema) if table.schema != writer.schema else table)
    return writer
