"""Finding Parquet and CSV files, telling their format, and listing the units a `FileDataFeeder` reads.

`resolve_files` turns paths, directories and glob patterns into a sorted list of files of one
format; `open_dataset` opens them as a `pyarrow.dataset`; `list_fragments` lists what is read (and
shuffled) as a unit: the non-empty Parquet row groups, or the CSV files.
"""

from __future__ import annotations

import glob
import os
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds

__all__ = ["EXTENSIONS", "list_fragments", "open_dataset", "resolve_files"]

EXTENSIONS = {"parquet": (".parquet", ".pq"), "csv": (".csv",)}


def resolve_files(path: Any, format: str | None) -> tuple[list[str], str]:
    """The files `path` names, and their format.

    Args:
        path: a file, a directory (searched recursively, skipping names that start with "." or
            "_"), a glob pattern, or a list of these.
        format: "parquet", "csv", or None to tell it from the extensions.

    Returns:
        The files (directories' contents sorted) and the format.

    Raises:
        FileNotFoundError: a path or pattern that matches nothing.
        ValueError: a directory without such files, mixed formats, or an unknown extension.
    """
    entries = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not entries or not all(isinstance(e, (str, os.PathLike)) for e in entries):
        raise ValueError(
            f"Invalid value for argument `path`. Received: path={path!r}. Expected a file, a directory, a glob "
            "pattern or a non-empty list of them."
        )
    extensions = EXTENSIONS[format] if format else tuple(e for exts in EXTENSIONS.values() for e in exts)
    files: list[str] = []
    for entry in map(os.fspath, entries):
        if os.path.exists(entry):
            matches = [entry]
        elif any(c in entry for c in "*?["):
            matches = sorted(glob.glob(entry, recursive=True))
            if not matches:
                raise FileNotFoundError(f"No file matches the pattern {entry!r}.")
        else:
            raise FileNotFoundError(f"No such file or directory: {entry!r}.")
        for match in matches:
            if os.path.isdir(match):
                found = _list_directory(match, extensions)
                if not found:
                    raise ValueError(f"Found no {' or '.join(extensions)} files in the directory {match!r}.")
                files.extend(found)
            else:
                files.append(match)
    if format is None:
        kinds = {_format_of(f) for f in files}
        if len(kinds) > 1:
            raise ValueError(f"The files mix formats {sorted(kinds)}; pass files of one format.")
        format = kinds.pop()
    return files, format


def _list_directory(directory: str, extensions: tuple[str, ...]) -> list[str]:
    found = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        found.extend(
            os.path.join(root, n) for n in names if not n.startswith((".", "_")) and n.lower().endswith(extensions)
        )
    return sorted(found)


def _format_of(file: str) -> str:
    for kind, extensions in EXTENSIONS.items():
        if file.lower().endswith(extensions):
            return kind
    raise ValueError(f"Cannot tell the format of {file!r} from its extension; pass format='parquet' or format='csv'.")


def open_dataset(files: list[str], format: str) -> ds.FileSystemDataset:
    """The files as one `pyarrow.dataset` (schema unified); a `ValueError` naming them when they cannot be read."""
    try:
        return ds.dataset(files, format=format)
    except (pa.ArrowInvalid, OSError) as exc:
        where = repr(files[0]) if len(files) == 1 else f"{len(files)} files starting with {files[0]!r}"
        raise ValueError(f"Cannot read {where} as {format}: {exc}") from None


def list_fragments(dataset: ds.FileSystemDataset) -> tuple[list[Any], int | None]:
    """The units read in shuffled order (Parquet row groups, CSV files) and the number of rows (None for CSV)."""
    try:
        if isinstance(dataset.format, ds.ParquetFileFormat):
            groups = [group for fragment in dataset.get_fragments() for group in fragment.split_by_row_group()]
            fragments = [group for group in groups if group.row_groups[0].num_rows]
            n_samples: int | None = sum(group.row_groups[0].num_rows for group in fragments)
        else:
            fragments, n_samples = list(dataset.get_fragments()), None
            if not any(_csv_has_rows(fragment) for fragment in fragments):
                n_samples = 0
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"Cannot read the data: {exc}") from None
    if n_samples == 0:
        where = dataset.files if len(dataset.files) < 4 else f"{len(dataset.files)} files"
        raise ValueError(f"Found 0 rows in {where}, while a minimum of 1 is required.")
    return fragments, n_samples


def _csv_has_rows(fragment: ds.Fragment) -> bool:
    with fragment.filesystem.open_input_stream(fragment.path) as stream:
        return any(batch.num_rows for batch in pa_csv.open_csv(stream))
