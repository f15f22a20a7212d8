"""The landing zone: immutable extract batches exactly as received.

A batch is a directory ``landing/<source>/<batch_id>/`` holding one Parquet file per entity
and a ``manifest.json`` (batch id, source, extracted-at, watermark range per entity, row
counts, file and content checksums). It is written to a temporary directory and renamed into
place, so a batch either exists whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
PARQUET_COMPRESSION = "zstd"
# A pull's private directory in landing/<source>/ (SourceState.spool): removed when the pull
# ends, and, like a half-written batch, by the next run when a killed run left it.
SPOOL_PREFIX = ".tmp-pull-"


@dataclass(frozen=True)
class SpooledTable:
    """A table a pull has already written, as the Parquet file a landing batch holds, into its
    spool directory (``SourceState.spool``): landing moves the file into the batch."""

    path: Path
    rows: int


def parquet_writer(where: Path | pa.NativeFile, schema: pa.Schema) -> pq.ParquetWriter:
    """A writer of a landing Parquet file (each ``write_batch`` a row group)."""
    return pq.ParquetWriter(where, schema, compression=PARQUET_COMPRESSION)


# Row groups of a spooled table (TableSpool): pieces that arrive smaller (an SS 12000 page) are
# gathered up to this many rows or bytes before they are written, so memory holds at most one
# row group, and the file few and reasonably large ones.
SPOOL_ROW_GROUP_ROWS = 65_536
SPOOL_ROW_GROUP_BYTES = 64 << 20


class TableSpool:
    """A table a pull writes as it reads it: record batches appended are written as row groups
    of its landing Parquet file ``<spool>/<name>.parquet`` (``SourceState.spool``), and
    :meth:`finish` returns the :class:`SpooledTable`. Without a spool directory (a pull outside
    ``run_extract``) the file is written in memory and :meth:`finish` returns it as a table.

    At most ``row_group_rows`` rows (or ``row_group_bytes``) are held before they are written;
    :meth:`close` (also on an error) closes the file whatever happened."""

    def __init__(self, spool: Path | None, name: str, schema: pa.Schema, *,
                 row_group_rows: int = SPOOL_ROW_GROUP_ROWS,
                 row_group_bytes: int = SPOOL_ROW_GROUP_BYTES) -> None:
        self.path = spool / f"{name}.parquet" if spool is not None else None
        self.schema = schema
        self.rows = 0  # rows appended so far (written or pending)
        self._sink: Path | pa.BufferOutputStream = self.path or pa.BufferOutputStream()
        with self._named():
            self._writer: pq.ParquetWriter | None = parquet_writer(self._sink, schema)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._row_group_rows = max(1, row_group_rows)
        self._row_group_bytes = max(1, row_group_bytes)

    def append(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        self.rows += batch.num_rows
        if self._pending_rows >= self._row_group_rows or self._pending_bytes >= self._row_group_bytes:
            self.flush()

    def flush(self) -> None:
        """Write what is pending as one row group."""
        if not self._pending or self._writer is None:
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        with self._named():
            self._writer.write_table(table, row_group_size=table.num_rows)

    def finish(self) -> pa.Table | SpooledTable:
        """The whole table: the spooled file, or (without a spool directory) the table read back."""
        self.flush()
        self.close()
        if self.path is not None:
            return SpooledTable(self.path, self.rows)
        assert isinstance(self._sink, pa.BufferOutputStream)
        return pq.read_table(pa.BufferReader(self._sink.getvalue()))

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            with self._named():
                writer.close()

    @contextmanager
    def _named(self) -> Iterator[None]:
        """A failed write (a full disk) as an OSError naming the spool directory."""
        try:
            yield
        except OSError as exc:
            if self.path is None:
                raise
            raise _naming(exc, self.path.parent) from exc

    def __enter__(self) -> TableSpool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        with suppress(OSError):  # the pull failed: the file goes with the spool; keep its error
            self.close()


# What a pull's scans and external sorts of its spooled files (spool_connection) may hold:
# DuckDB's memory; beyond it, sorted runs go to the pull's spool directory (restricted zone).
SPOOL_MEMORY_LIMIT = "256MB"


@contextmanager
def spool_connection(temp_directory: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection for reading a pull's spooled files: at most
    :data:`SPOOL_MEMORY_LIMIT`, spilling into ``temp_directory`` (the spool directory), so
    memory does not grow with the pull."""
    conn = duckdb.connect(config={"memory_limit": SPOOL_MEMORY_LIMIT,
                                  "temp_directory": str(temp_directory),
                                  "preserve_insertion_order": False})
    try:
        yield conn
    finally:
        conn.close()


SORT_RUN_ROWS = 100_000  # texts sorted in memory at a time by sorted_texts (one run)
RUN_GROUP_ROWS = 2_048  # a run's row group: what the merge holds of each run


def _row_group_texts(path: Path, column: str) -> Iterator[pa.Array]:
    """The column of a Parquet file, one row group at a time (pyarrow's ``iter_batches`` reads
    ahead: about 0.8 GiB for 2.4 M texts of 700 bytes, against 0.15 GiB this way)."""
    source = pq.ParquetFile(path, pre_buffer=False)
    for group in range(source.num_row_groups):
        texts = source.read_row_group(group, columns=[column], use_threads=False).column(0)
        if texts.null_count:
            raise ValueError("sorted_texts: null text")
        yield texts.combine_chunks()


def sorted_texts(conn: duckdb.DuckDBPyConnection, path: Path, column: str,
                 batch_rows: int = 8192) -> Iterator[pa.Array]:
    """The text column ``column`` of the Parquet file ``path`` sorted by its UTF-8 bytes (the
    order of Arrow's and Python's sort), in arrays of at most ``batch_rows``.

    An external merge sort in bounded memory: runs of about :data:`SORT_RUN_ROWS` texts are
    sorted by Arrow and written to Parquet in ``conn``'s temp directory (a
    :func:`spool_connection`'s spool directory), then merged, a row group of each run at a
    time. DuckDB's own ``order by`` does not spill long texts well: a Stockholm-sized first
    SS 12000 pull ran out of the spool connection's memory in it."""
    import heapq

    temp = conn.execute("select current_setting('temp_directory')").fetchone()[0] or path.parent
    runs_dir = Path(tempfile.mkdtemp(prefix="sort-", dir=temp))
    try:
        runs: list[Path] = []
        pending: list[pa.Array] = []

        def write_run() -> None:
            texts = pa.concat_arrays(pending)
            run = runs_dir / f"run-{len(runs):05d}.parquet"
            pq.write_table(pa.table({"t": texts.take(pc.sort_indices(texts))}), run,
                           row_group_size=RUN_GROUP_ROWS)
            runs.append(run)
            pending.clear()

        for texts in _row_group_texts(path, column):
            pending.append(texts)
            if sum(len(t) for t in pending) >= SORT_RUN_ROWS:
                write_run()
        if pending:
            write_run()

        def values(run: Path) -> Iterator[str]:
            for texts in _row_group_texts(run, "t"):
                yield from texts.to_pylist()

        chunk: list[str] = []
        for text in heapq.merge(*(values(run) for run in runs)):
            chunk.append(text)
            if len(chunk) == batch_rows:
                yield pa.array(chunk, pa.large_string())
                chunk = []
        if chunk:
            yield pa.array(chunk, pa.large_string())
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)


@dataclass(frozen=True)
class EntityStats:
    file: str
    rows: int
    file_sha256: str
    content_checksum: str | None
    watermark_from: str | None
    watermark_to: str | None


@dataclass(frozen=True)
class BatchManifest:
    batch_id: str
    source: str
    extracted_at: str
    row_count: int
    checksum: str
    entities: dict[str, EntityStats]
    extra: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None

    @property
    def watermark_from(self) -> dict[str, str | None]:
        return {name: e.watermark_from for name, e in self.entities.items()}

    @property
    def watermark_to(self) -> dict[str, str | None]:
        return {name: e.watermark_to for name, e in self.entities.items()}

    def entity_path(self, entity: str) -> Path:
        assert self.directory is not None
        return self.directory / self.entities[entity].file

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("directory")
        doc["watermark_range"] = {
            name: {"from": e.watermark_from, "to": e.watermark_to} for name, e in self.entities.items()
        }
        return doc

    @classmethod
    def read(cls, directory: Path) -> BatchManifest:
        doc = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        doc.pop("watermark_range", None)
        entities = {name: EntityStats(**e) for name, e in doc.pop("entities").items()}
        return cls(entities=entities, directory=directory, **doc)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def new_batch_id(source: str, at: dt.datetime) -> str:
    return f"{source}-{at.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def write_batch(
    landing_root: Path,
    source: str,
    tables: dict[str, pa.Table | pa.RecordBatchReader | SpooledTable],
    *,
    watermarks: dict[str, tuple[str | None, str | None]],
    content_checksums: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    extracted_at: dt.datetime | None = None,
) -> BatchManifest:
    """Write one immutable batch; ``watermarks[entity] = (from_exclusive, to_inclusive)``.

    A table may be a ``pa.RecordBatchReader``: it is streamed into its Parquet file batch by
    batch (memory stays flat); or a :class:`SpooledTable`, whose file is moved in.
    ``content_checksums`` and ``extra`` are read after every table has been written, so a
    streaming source may fill them in while its reader is consumed."""
    at = extracted_at or dt.datetime.now(dt.UTC)
    batch_id = new_batch_id(source, at)
    source_dir = landing_root / source
    source_dir.mkdir(parents=True, exist_ok=True)
    tmp = source_dir / f".tmp-{batch_id}"
    tmp.mkdir()
    try:
        entities: dict[str, EntityStats] = {}
        for name, table in tables.items():
            file_name = f"{name}.parquet"
            rows = _write_parquet(table, tmp / file_name)
            wm_from, wm_to = watermarks.get(name, (None, None))
            entities[name] = EntityStats(
                file=file_name,
                rows=rows,
                file_sha256=file_sha256(tmp / file_name),
                content_checksum=(content_checksums or {}).get(name),
                watermark_from=wm_from,
                watermark_to=wm_to,
            )
        overall = hashlib.sha256(
            "\n".join(f"{n}:{e.file_sha256}" for n, e in sorted(entities.items())).encode()
        ).hexdigest()
        manifest = BatchManifest(
            batch_id=batch_id,
            source=source,
            extracted_at=at.isoformat(),
            row_count=sum(e.rows for e in entities.values()),
            checksum=overall,
            entities=entities,
            extra=extra or {},
        )
        manifest_path = tmp / MANIFEST
        manifest_path.write_text(json.dumps(manifest.to_json(), indent=2, ensure_ascii=False),
                                 encoding="utf-8")
        for path in tmp.iterdir():
            _fsync(path)
        final = source_dir / batch_id
        os.rename(tmp, final)
        _fsync(source_dir)
    except OSError as exc:  # a full disk, a file system gone read-only: name the directory
        shutil.rmtree(tmp, ignore_errors=True)
        raise _naming(exc, source_dir) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BatchManifest(**{**manifest.__dict__, "directory": final})


def _naming(exc: OSError, where: Path) -> OSError:
    """``exc`` as an OSError that names ``where`` and its cause: pyarrow's write errors carry
    neither a file name nor an errno ("Error writing bytes to file. Detail: [errno 28] …")."""
    code = exc.errno
    if code is None and (found := re.search(r"\[errno (\d+)\]", str(exc))):
        code = int(found.group(1))
    lines = str(exc).strip().splitlines()
    cause = os.strerror(code) if code else exc.strerror or (lines[0] if lines else type(exc).__name__)
    return OSError(code, cause, str(where))


def _write_parquet(table: pa.Table | pa.RecordBatchReader | SpooledTable, path: Path) -> int:
    """Write a table or stream of record batches to one Parquet file (or move a spooled one
    there); returns the row count."""
    if isinstance(table, SpooledTable):
        shutil.move(table.path, path)  # a rename: the spool is in the same landing directory
        return table.rows
    if isinstance(table, pa.Table):
        pq.write_table(table, path, compression=PARQUET_COMPRESSION)
        return table.num_rows
    rows = 0
    with parquet_writer(path, table.schema) as writer:
        for batch in table:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_batches(landing_root: Path, source: str) -> list[BatchManifest]:
    """Complete batches of a source, oldest first (half-written temporary dirs are ignored)."""
    source_dir = landing_root / source
    if not source_dir.exists():
        return []
    batches = [
        BatchManifest.read(d)
        for d in source_dir.iterdir()
        if d.is_dir() and not d.name.startswith(".") and (d / MANIFEST).exists()
    ]
    return sorted(batches, key=lambda b: (b.extracted_at, b.batch_id))


def remove_stale_temporaries(landing_root: Path, source: str) -> int:
    """Delete temporary directories left by a killed run; returns how many."""
    source_dir = landing_root / source
    if not source_dir.exists():
        return 0
    stale = [d for d in source_dir.iterdir() if d.is_dir() and d.name.startswith(".tmp-")]
    for d in stale:
        shutil.rmtree(d, ignore_errors=True)
    return len(stale)
