"""A pipeline's data: CSV/Parquet files (one, a directory or a glob), a SQL query, scikit-learn's
bundled data sets and a generated demo table.

`source_columns` reads a source's columns from its schema alone (a file's header or Parquet
metadata, a query with no rows), so that a config naming a missing column fails before any work.
`read_source` reads the rows; `source_fingerprint` hashes their content (the bytes of files, the
rows of a query), so that the same data gives the same fingerprint wherever it comes from. Every
failure is an `IngestError` naming the source, what is wrong and the fix.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flows.config import SKLEARN_DATASETS, ConfigError, PipelineConfig, SqlSource

__all__ = [
    "IngestError",
    "check_columns",
    "demo_churn",
    "list_files",
    "read_source",
    "source_columns",
    "source_fingerprint",
    "write_demo_churn",
]

_EXTENSIONS = (".csv", ".parquet", ".pq")


class IngestError(ValueError):
    """A source that cannot be read: missing, empty, malformed, or a failing query."""


def describe(source: str | SqlSource) -> str:
    """A short human-readable name of a source, for messages and run records."""
    if isinstance(source, SqlSource):
        return f"SQL on {_redact(source.url)}: {source.sql[:80]}"
    return source


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]+@", r"//\1:***@", url)


# ---------------------------------------------------------------------------------------- files
def list_files(source: str) -> list[str]:
    """The CSV/Parquet files of a path, a directory (recursively, hidden files skipped) or a glob.

    Raises:
        IngestError: nothing there, or no CSV/Parquet file in it.
    """
    if any(ch in source for ch in "*?["):
        files = sorted(f for f in glob.glob(source, recursive=True) if os.path.isfile(f))
        if not files:
            raise IngestError(f"source {source!r}: the pattern matches no file")
    elif os.path.isdir(source):
        files = sorted(
            os.path.join(root, name)
            for root, dirs, names in os.walk(source)
            for name in names
            if not name.startswith((".", "_")) and not any(d.startswith(".") for d in root.split(os.sep))
        )
        if not files:
            raise IngestError(f"source {source!r}: the directory holds no file")
    elif os.path.isfile(source):
        files = [source]
    else:
        raise IngestError(f"source {source!r}: no such file or directory (relative paths are from {os.getcwd()})")
    data = [f for f in files if f.lower().endswith(_EXTENSIONS)]
    if not data:
        raise IngestError(f"source {source!r}: no .csv or .parquet file among {files[:5]}")
    return data


def _is_parquet(path: str) -> bool:
    return path.lower().endswith((".parquet", ".pq"))


def _file_columns(path: str) -> dict[str, str]:
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
            return {name: str(schema.field(name).type) for name in schema.names}
        frame = pd.read_csv(path, nrows=200)
    except Exception as exc:  # noqa: BLE001 - turned into a message naming the file
        raise _file_error(path, exc) from None
    return {str(c): str(t) for c, t in frame.dtypes.items()}


def _read_file(path: str, columns: list[str] | None) -> pd.DataFrame:
    try:
        if _is_parquet(path):
            return pd.read_parquet(path, columns=columns)
        return pd.read_csv(path, usecols=columns)
    except Exception as exc:  # noqa: BLE001
        raise _file_error(path, exc) from None


def _file_error(path: str, exc: Exception) -> IngestError:
    text = str(exc)
    if os.path.exists(path) and os.path.getsize(path) == 0:
        return IngestError(f"{path} is empty: no header and no rows. Remove it or write the data again.")
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if match:
        expected, line, saw = match.groups()
        return IngestError(
            f"{path}: line {line} has {saw} fields where the header has {expected}. Fix or remove that row "
            "(an unquoted comma inside a value is the usual cause)."
        )
    if isinstance(exc, pd.errors.EmptyDataError):
        return IngestError(f"{path} holds no data (no columns to read).")
    kind = "Parquet" if _is_parquet(path) else "CSV"
    return IngestError(f"{path} cannot be read as {kind}: {type(exc).__name__}: {text[:300]}")


# ---------------------------------------------------------------------------------------- sources
def source_columns(source: str | SqlSource) -> dict[str, str]:
    """Column name -> dtype of a source, from its schema alone (no rows read, but for a CSV's first
    200 rows and a query's first row).

    Raises:
        IngestError: the source cannot be read.
    """
    if isinstance(source, SqlSource):
        frame = _query(source, limit=1)
        return {str(c): str(t) for c, t in frame.dtypes.items()}
    scheme, _, name = source.partition(":")
    if scheme in ("sklearn", "demo") and not os.path.exists(source):
        frame = read_source(source)
        return {str(c): str(t) for c, t in frame.dtypes.items()}
    files = list_files(source)
    columns = _file_columns(files[0])
    for other in files[1:]:
        theirs = _file_columns(other)
        if set(theirs) != set(columns):
            missing, extra = sorted(set(columns) - set(theirs)), sorted(set(theirs) - set(columns))
            raise IngestError(
                f"{other} does not have the columns of {files[0]} (missing {missing}, extra {extra}): every file of "
                f"source {source!r} must have the same columns."
            )
    return columns


def read_source(source: str | SqlSource, columns: list[str] | None = None) -> pd.DataFrame:
    """All rows of a source as one DataFrame (files concatenated in name order).

    Raises:
        IngestError: the source cannot be read or holds no rows.
    """
    if isinstance(source, SqlSource):
        frame = _query(source)
    else:
        scheme, _, name = source.partition(":")
        if scheme == "sklearn" and not os.path.exists(source):
            frame = _sklearn(name)
        elif scheme == "demo" and not os.path.exists(source):
            frame = demo_churn(**_options(name))
        else:
            frames = [_read_file(f, columns) for f in list_files(source)]
            frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if columns is not None:
        frame = frame[columns]
    if len(frame) == 0:
        raise IngestError(f"source {describe(source)!r} holds no rows.")
    return frame


def source_fingerprint(source: str | SqlSource, frame: pd.DataFrame | None = None) -> str:
    """A SHA-256 of the source's content: the bytes of its files (names included), else the rows."""
    from feeders import fingerprint

    if isinstance(source, str) and not source.startswith(("sklearn:", "demo:")):
        digest = hashlib.sha256()
        for path in list_files(source):
            digest.update(os.path.basename(path).encode() + b"\0")
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()
    return fingerprint(frame if frame is not None else read_source(source))


def _query(source: SqlSource, limit: int | None = None) -> pd.DataFrame:
    import sqlalchemy as sa

    sql = source.sql if limit is None else f"SELECT * FROM ({source.sql.rstrip().rstrip(';')}) AS q LIMIT {limit}"
    try:
        engine = sa.create_engine(source.url)
    except Exception as exc:  # noqa: BLE001
        raise IngestError(f"SQL source URL {_redact(source.url)!r} is not usable: {exc}") from None
    try:
        with engine.connect() as connection:
            return pd.read_sql_query(sa.text(sql), connection)
    except Exception as exc:  # noqa: BLE001
        cause = exc.__cause__ or exc  # pandas wraps the driver's error in "Execution failed on sql ..."
        first = str(getattr(cause, "orig", cause)).splitlines()[0]
        raise IngestError(
            f"SQL query failed on {_redact(source.url)}: {first}. The query: {source.sql[:200]}"
        ) from None
    finally:
        engine.dispose()


def _sklearn(name: str) -> pd.DataFrame:
    import sklearn.datasets

    if name not in SKLEARN_DATASETS:
        raise IngestError(f"source 'sklearn:{name}': scikit-learn bundles {list(SKLEARN_DATASETS)}")
    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [re.sub(r"\W+", "_", str(c)).strip("_") for c in frame.columns]
    return frame


def _options(name: str) -> dict[str, Any]:
    table, _, query = name.partition("?")
    options = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
    return {k: int(v) for k, v in options.items()}


# ---------------------------------------------------------------------------------------- demo data
def demo_churn(rows: int = 4000, seed: int = 0, days: int = 120) -> pd.DataFrame:
    """A customer table with the columns a tabular pipeline meets: an id, a signup date, numbers on
    very different scales (`age` 18-90, `income` ~20,000 lognormal), a categorical (`city`), a string
    (`plan`), a bool (`autopay`), and the target `churn` ("yes"/"no": churn when the city is Oslo or
    the customer is over 70, with 3 % noise).

    Args:
        rows: number of customers. default=4000.
        seed: random seed. default=0.
        days: signups spread over this many days, ending 2026-11-30 (for time splits). default=120.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 91, rows)
    city = rng.choice(["oslo", "paris", "berlin", "madrid", "rome"], rows, p=[0.2, 0.25, 0.25, 0.15, 0.15])
    churn = (city == "oslo") | (age > 70)
    churn ^= rng.random(rows) < 0.03
    end = np.datetime64("2026-11-30")
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, rows + 1),
            "signup_date": end - rng.integers(0, days, rows).astype("timedelta64[D]"),
            "age": age,
            "income": np.round(rng.lognormal(np.log(20_000), 0.6, rows), 2),
            "city": pd.Categorical(city),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "autopay": rng.random(rows) < 0.6,
            "churn": np.where(churn, "yes", "no"),
        }
    )


def write_demo_churn(directory: str, rows: int = 4000, seed: int = 0, parts: int = 4) -> list[str]:
    """Write `demo_churn(rows, seed)` as `parts` Parquet files (by signup month order) into `directory`."""
    frame = demo_churn(rows, seed).sort_values("signup_date", kind="stable").reset_index(drop=True)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, part in enumerate(np.array_split(np.arange(len(frame)), parts)):
        path = os.path.join(directory, f"part-{i:03d}.parquet")
        frame.iloc[part].to_parquet(path, index=False)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------- checks
def check_columns(config: PipelineConfig, columns: Mapping[str, str] | None = None) -> dict[str, str]:
    """Check that the columns the config names exist in its source (and its eval and predict
    sources), from their schemas; returns the source's columns.

    Raises:
        ConfigError: a named column is missing (naming it, the field that names it and the columns
            there are), a source cannot be read, or a file source holds no rows.
    """
    try:
        columns = dict(columns) if columns is not None else source_columns(config.source)
    except IngestError as exc:
        raise ConfigError(str(exc)) from None
    named = {"target": [config.target], "features": config.features or [], "id_column": _maybe(config.id_column)}
    if config.split.kind == "time":
        named["split.column"] = [config.split.column]
    problems = [
        f"{field}: column {name!r} is not in source {describe(config.source)!r}"
        for field, names in named.items()
        for name in names
        if name not in columns
    ]
    if problems:
        raise ConfigError("\n".join(problems) + f"\nIts columns are: {sorted(columns)}")
    if _is_file_source(config.source) and not _any_rows(config.source):
        raise ConfigError(
            f"source {describe(config.source)!r} holds no rows (a header and nothing else): write the data "
            "again, or point `source` at the data."
        )
    if config.split.kind == "source":
        _check_also(config.split.eval_source, [config.target, *(config.features or [])], "split.eval_source")
    if config.predict is not None:
        wanted = [*(config.features or []), *_maybe(config.predict.id_column or config.id_column)]
        _check_also(config.predict.source, wanted, "predict.source")
    return columns


def _is_file_source(source: str | SqlSource) -> bool:
    return isinstance(source, str) and (source.partition(":")[0] not in ("sklearn", "demo") or os.path.exists(source))


def _any_rows(source: str) -> bool:
    """Whether a file source holds at least one row (Parquet: its metadata; CSV: its first row),
    looking at its files until one does."""
    for path in list_files(source):
        try:
            if _is_parquet(path):
                import pyarrow.parquet as pq

                rows = pq.ParquetFile(path).metadata.num_rows
            else:
                rows = len(pd.read_csv(path, nrows=1))
        except Exception as exc:  # noqa: BLE001 - turned into a message naming the file
            raise ConfigError(str(_file_error(path, exc))) from None
        if rows:
            return True
    return False


def _check_also(source: str | SqlSource, names: list[str], field: str) -> None:
    if isinstance(source, str) and not source.startswith(("sklearn:", "demo:")) and not os.path.exists(source):
        if not any(ch in source for ch in "*?["):
            return  # written later in the pipeline (or by another job): checked when it is read
    try:
        columns = source_columns(source)
    except IngestError as exc:
        raise ConfigError(f"{field}: {exc}") from None
    missing = [n for n in names if n not in columns]
    if missing:
        raise ConfigError(
            f"{field}: columns {missing} are not in {describe(source)!r}; its columns are {sorted(columns)}"
        )


def _maybe(name: str | None) -> list[str]:
    return [name] if name else []
