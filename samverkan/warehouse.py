"""The restricted warehouse (DuckDB): connection discipline, load metadata, quarantine.

DuckDB allows one writing process at a time. Every write goes through
:func:`restricted_connection`, which holds an exclusive file lock for its duration, so
concurrent extract flows (threads or processes) queue instead of failing, and nothing keeps
the file open between steps.

Every connection to a warehouse file is opened by
:func:`samverkan.locks.connect_warehouse`, which waits (bounded) while another process holds
the file and then says which one.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from samverkan.config import SQL_DIR, Paths
from samverkan.landing import BatchManifest
from samverkan.locks import connect_warehouse


class AccountingError(Exception):
    """Rows received did not equal rows loaded plus rows quarantined."""


@dataclass(frozen=True)
class EntityCounts:
    received: int
    loaded: int
    quarantined: int

    def check(self, batch_id: str, entity: str) -> None:
        if self.received != self.loaded + self.quarantined:
            raise AccountingError(
                f"batch {batch_id}, {entity}: received {self.received} rows but loaded "
                f"{self.loaded} and quarantined {self.quarantined}"
            )


@contextmanager
def warehouse_lock(p: Paths) -> Iterator[None]:
    p.warehouse.mkdir(parents=True, exist_ok=True)
    with open(p.warehouse / ".restricted.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def restricted_schema_sql() -> str:
    return (SQL_DIR / "restricted_schema.sql").read_text(encoding="utf-8")


def ensure_restricted_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(restricted_schema_sql())


@contextmanager
def restricted_connection(p: Paths) -> Iterator[duckdb.DuckDBPyConnection]:
    """An exclusive read-write connection to the restricted warehouse, schema ensured."""
    with warehouse_lock(p):
        conn = connect_warehouse(p.restricted_db)
        try:
            ensure_restricted_schema(conn)
            yield conn
        finally:
            conn.close()


def get_watermarks(conn: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    rows = conn.execute(
        "select entity, watermark from load_meta.watermarks where source = ?", [source]
    ).fetchall()
    return dict(rows)


def set_watermark(conn: duckdb.DuckDBPyConnection, source: str, entity: str, value: str) -> None:
    conn.execute(
        """
        insert into load_meta.watermarks (source, entity, watermark, updated_at)
        values (?, ?, ?, now())
        on conflict (source, entity) do update set watermark = excluded.watermark,
            updated_at = excluded.updated_at
        """,
        [source, entity, value],
    )


def batch_loaded(conn: duckdb.DuckDBPyConnection, batch_id: str) -> bool:
    return conn.execute(
        "select count(*) from load_meta.batches where batch_id = ?", [batch_id]
    ).fetchone()[0] > 0


QUARANTINE_SCHEMA = pa.schema([
    ("row_number", pa.int64()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("raw_row", pa.string()),
])


def quarantine(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest, entity: str,
               rows: pa.Table) -> int:
    """Store rejected rows (columns of QUARANTINE_SCHEMA) for a batch; returns how many."""
    if rows.num_rows == 0:
        return 0
    rows = rows.select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA)
    conn.register("_quarantine_rows", rows)
    try:
        conn.execute(
            """
            insert into load_meta.quarantine
                (batch_id, source, entity, row_number, reason, detail, raw_row)
            select ?, ?, ?, row_number, reason, detail, raw_row from _quarantine_rows
            """,
            [manifest.batch_id, manifest.source, entity],
        )
    finally:
        conn.unregister("_quarantine_rows")
    return rows.num_rows


def record_load(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest,
                counts: dict[str, EntityCounts], manifest_path: Path) -> None:
    """Record a loaded batch and move the watermarks, inside the caller's transaction."""
    for entity, c in counts.items():
        c.check(manifest.batch_id, entity)
        conn.execute(
            "insert into load_meta.batch_entities values (?, ?, ?, ?, ?)",
            [manifest.batch_id, entity, c.received, c.loaded, c.quarantined],
        )
    total = EntityCounts(
        received=sum(c.received for c in counts.values()),
        loaded=sum(c.loaded for c in counts.values()),
        quarantined=sum(c.quarantined for c in counts.values()),
    )
    total.check(manifest.batch_id, "all entities")
    wm_from = {k: v for k, v in manifest.watermark_from.items() if v is not None}
    wm_to = {k: v for k, v in manifest.watermark_to.items() if v is not None}
    conn.execute(
        "insert into load_meta.batches values (?, ?, ?, now(), ?, ?, ?, ?, ?, ?)",
        [
            manifest.batch_id,
            manifest.source,
            dt.datetime.fromisoformat(manifest.extracted_at),
            _json(wm_from),
            _json(wm_to),
            total.received,
            total.loaded,
            total.quarantined,
            str(manifest_path),
        ],
    )
    for entity, value in wm_to.items():
        set_watermark(conn, manifest.source, entity, value)


def _json(value: dict[str, str]) -> str | None:
    return json.dumps(value, sort_keys=True) if value else None
