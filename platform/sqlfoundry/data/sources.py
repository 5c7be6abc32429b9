"""Read raw text-to-SQL rows from the Hub, a local file or folder, or the synthetic generator."""

from __future__ import annotations

from pathlib import Path

from sqlfoundry.config.schema import ColumnMapping, DataConfig

SYNTHETIC_SCHEME = "synthetic://"
_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}


class DataError(ValueError):
    """A data source that cannot be read, with what to change in the message."""


def _local_files(path: Path) -> tuple[str, list[str]]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in _BUILDERS)
    if not files:
        raise DataError(f"data.source {path}: no .json, .jsonl or .parquet files found")
    builders = {_BUILDERS.get(f.suffix) for f in files}
    if None in builders:
        raise DataError(f"data.source {path}: unsupported file type (use .json, .jsonl or .parquet)")
    if len(builders) > 1:
        raise DataError(f"data.source {path}: mixes JSON and Parquet files; point it at one kind")
    return builders.pop(), [str(f) for f in files]


def _load_dataset(source: str, hub_split: str):
    import datasets  # heavy import, only when data is actually read

    path = Path(source).expanduser()
    if path.exists():
        builder, files = _local_files(path)
        return datasets.load_dataset(builder, data_files=files, split="train")
    if source.startswith(("/", ".", "~")) or Path(source).suffix in _BUILDERS:
        raise DataError(f"data.source {source}: no such file or folder")
    try:  # anything else is a dataset id on the Hugging Face Hub
        return datasets.load_dataset(source, split=hub_split)
    except Exception as err:  # datasets raises many types: network, missing repo, bad split
        raise DataError(
            f"data.source {source!r}: could not load it from the Hugging Face Hub "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            "Point data.source at a local .json/.jsonl/.parquet copy when the Hub is unreachable."
        ) from None


def _rename(records: list[dict], columns: ColumnMapping, source: str, available: list[str]) -> list[dict]:
    mapping = columns.model_dump()
    missing = {field: name for field, name in mapping.items() if name not in available}
    if missing:
        wanted = ", ".join(f"data.columns.{field}={name!r}" for field, name in missing.items())
        raise DataError(
            f"data.source {source}: column(s) not found ({wanted}); the data has {available}. "
            "Map them with data.columns.question/context/answer."
        )
    return [{field: record.get(name) for field, name in mapping.items()} for record in records]


def load_raw_rows(data: DataConfig, source: str | None = None) -> list[dict]:
    """Rows as dicts with keys question/context/answer (values may be bad: validation comes next)."""
    source = source or data.source
    if source.startswith(SYNTHETIC_SCHEME):
        from sqlfoundry.data.synth import generate_rows

        count = source[len(SYNTHETIC_SCHEME):]
        if not count.isdigit() or int(count) == 0:
            raise DataError(f"data.source {source!r}: expected synthetic://N with N a positive row count")
        return generate_rows(int(count), seed=data.seed)
    if source.startswith("s3://"):
        return _load_from_s3(source, data)
    dataset = _load_dataset(source, data.hub_split)
    return _rename(dataset.to_list(), data.columns, source, list(dataset.column_names))


def _load_from_s3(source: str, data: DataConfig) -> list[dict]:
    """Download an s3:// file (or every data file under an s3:// prefix) and read it as a local copy."""
    import tempfile

    from sqlfoundry.storage.backends import S3Store, StorageError

    bucket_root, _, key = source[len("s3://"):].partition("/")
    store = S3Store(f"s3://{bucket_root}")
    try:
        store.check()
        keys = [k for k in store.list(key) if Path(k).suffix in _BUILDERS and (k == key or k.startswith(key.rstrip("/") + "/"))]
    except StorageError as err:
        raise DataError(f"data.source {source}: {err}") from None
    if not keys:
        raise DataError(f"data.source {source}: no .json, .jsonl or .parquet objects there")
    with tempfile.TemporaryDirectory() as scratch:
        for item in keys:
            store.get_file(item, Path(scratch) / item)
        local = Path(scratch) / key if len(keys) == 1 and keys[0] == key else Path(scratch)
        dataset = _load_dataset(str(local), data.hub_split)
        return _rename(dataset.to_list(), data.columns, source, list(dataset.column_names))
