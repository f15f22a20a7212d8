"""Retention of the landing zone: batches older than ``retention_days`` that are loaded go.

Only batches the warehouse has loaded (``load_meta.batches``) are purged: a batch that was
never loaded — rejected by validation, or waiting for recovery — stays until someone looks at
it. Every purge is logged by batch id.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil

from samverkan.config import SOURCES, Paths
from samverkan.landing import list_batches
from samverkan.locks import connect_warehouse
from samverkan.warehouse import warehouse_lock

log = logging.getLogger(__name__)
DEFAULT_RETENTION_DAYS = 30


def purge_landing(p: Paths, retention_days: int = DEFAULT_RETENTION_DAYS,
                  now: dt.datetime | None = None) -> list[str]:
    """Delete loaded landing batches extracted more than ``retention_days`` ago; returns their ids.
    Waits (bounded) for the restricted warehouse when another process holds it, then raises
    :class:`samverkan.warehouse.WarehouseBusy`."""
    if retention_days < 0:
        raise ValueError("retention_days must be zero or more")
    if not p.restricted_db.exists():
        return []
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    with warehouse_lock(p):
        conn = connect_warehouse(p.restricted_db, read_only=True)
        try:
            loaded = {r[0] for r in conn.execute("select batch_id from load_meta.batches").fetchall()}
        finally:
            conn.close()
    purged: list[str] = []
    for source in SOURCES:
        for batch in list_batches(p.landing, source):
            extracted = dt.datetime.fromisoformat(batch.extracted_at)
            if batch.batch_id in loaded and extracted < cutoff and batch.directory is not None:
                shutil.rmtree(batch.directory)
                purged.append(batch.batch_id)
                log.info("retention: purged landing batch %s (%s, extracted %s, older than %d days)",
                         batch.batch_id, source, batch.extracted_at, retention_days)
    return purged
