"""Reading a pipeline's sources, each failure a clear message naming the source and the fix."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from flows.config import ConfigError, SqlSource, load_config
from flows.sources import (
    IngestError,
    check_columns,
    demo_churn,
    read_source,
    source_columns,
    source_fingerprint,
    write_demo_churn,
)


def test_bundled_and_demo_sources_read_as_frames():
    digits = read_source("sklearn:digits")
    assert digits.shape == (1797, 65) and "target" in digits
    churn = read_source("demo:churn?rows=300&seed=1")
    assert len(churn) == 300 and set(churn["churn"]) == {"yes", "no"}
    assert churn.equals(demo_churn(rows=300, seed=1))
    assert str(churn["city"].dtype) == "category" and churn["income"].mean() > 10_000


def test_a_directory_of_parquet_files_reads_as_one_table_and_its_schema_reads_without_rows(tmp_path):
    write_demo_churn(str(tmp_path / "churn"), rows=200, parts=3)
    frame = read_source(str(tmp_path / "churn"))
    assert len(frame) == 200
    assert list(source_columns(str(tmp_path / "churn"))) == list(frame.columns)
    assert len(read_source(str(tmp_path / "churn" / "part-*.parquet"))) == 200


def test_fingerprints_follow_the_content(tmp_path):
    write_demo_churn(str(tmp_path / "a"), rows=100, parts=2)
    write_demo_churn(str(tmp_path / "b"), rows=100, parts=2)
    assert source_fingerprint(str(tmp_path / "a")) == source_fingerprint(str(tmp_path / "b"))
    write_demo_churn(str(tmp_path / "b"), rows=100, seed=5, parts=2)
    assert source_fingerprint(str(tmp_path / "a")) != source_fingerprint(str(tmp_path / "b"))
    assert source_fingerprint("sklearn:iris") == source_fingerprint("sklearn:iris")


def test_sql_sources_read_rows_and_a_failing_query_says_why(tmp_path):
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as connection:
        pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}).to_sql("t", connection, index=False)
    source = SqlSource(sql="SELECT x, y FROM t", url=f"sqlite:///{db}")
    assert read_source(source)["y"].tolist() == [0, 1, 0]
    assert list(source_columns(source)) == ["x", "y"]
    with pytest.raises(IngestError, match=r"SQL query failed on sqlite:///.*no such table: missing"):
        read_source(SqlSource(sql="SELECT * FROM missing", url=f"sqlite:///{db}"))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"data.csv": ""}, r"data.csv is empty: no header and no rows"),
        ({"data.csv": "a,b\n1,2\n3,4,5\n"}, r"data.csv: line 3 has 3 fields where the header has 2"),
        ({"data.csv": "a,b\n"}, r"holds no rows"),
        ({"notes.txt": "hello"}, r"no .csv or .parquet file"),
        ({"data.parquet": b"PAR1 truncated"}, r"data.parquet cannot be read as Parquet"),
        ({}, r"the directory holds no file"),
    ],
)
def test_bad_files_get_clear_errors(tmp_path, files, message):
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(IngestError, match=message):
        read_source(str(tmp_path))


def test_a_missing_path_says_where_relative_paths_start():
    with pytest.raises(IngestError, match=r"source 'no/such/dir': no such file or directory \(relative paths are from"):
        read_source("no/such/dir")


def test_check_columns_names_the_missing_column_and_the_field_that_names_it():
    config = load_config(
        {
            "experiment": "e",
            "source": "demo:churn?rows=50",
            "target": "churned",
            "features": ["age", "incme"],
            "estimator": {"name": "LinearClassifier"},
        }
    )
    with pytest.raises(ConfigError, match=r"target: column 'churned' is not in source[\s\S]*features: column 'incme'"):
        check_columns(config)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_source_with_a_header_and_no_rows_is_refused_before_anything_starts(tmp_path, suffix):
    path = tmp_path / f"empty.{suffix}"
    frame = pd.DataFrame({"x": pd.Series([], dtype="float64"), "y": pd.Series([], dtype="int64")})
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path, index=False)
    config = load_config(
        {"experiment": "e", "source": str(path), "target": "y", "estimator": {"name": "LinearClassifier"}}
    )
    with pytest.raises(ConfigError, match=r"empty\.\w+' holds no rows \(a header and nothing else\)"):
        check_columns(config)
    frame.loc[0] = [1.0, 1]
    more = tmp_path / f"more.{suffix}"
    frame.to_csv(more, index=False) if suffix == "csv" else frame.to_parquet(more, index=False)
    config = load_config({**config.model_dump(), "source": str(tmp_path)})  # one file of two holds rows: fine
    assert set(check_columns(config)) == {"x", "y"}
