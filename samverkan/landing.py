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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
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
