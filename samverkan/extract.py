"""The extract procedure every source shares: recover, pull, land, validate, load.

A source supplies an :class:`Extractor` (how to pull new rows since its watermarks, and how to
load a landed batch into its raw tables). This module owns the order of events, which is what
makes a run safe to kill and re-run:

1. batches landed by an earlier, interrupted run are validated and loaded first;
2. new rows are pulled since the stored watermarks and written as one immutable batch;
3. the batch is validated (Great Expectations suite of the source);
4. a valid batch is loaded into the restricted warehouse in one transaction together with
   its load records and the new watermarks. A batch that fails validation is not loaded
   and the watermark does not move, so nothing is skipped.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from samverkan.config import Paths
from samverkan.config.settings import OWNER_ONLY_DIR, wal_file
from samverkan.landing import (
    SPOOL_PREFIX,
    BatchManifest,
    SpooledTable,
    list_batches,
    remove_stale_temporaries,
    write_batch,
)
from samverkan.progress import progress
from samverkan.warehouse import (
    EntityCounts,
    batch_loaded,
    get_watermarks,
    record_load,
    restricted_connection,
)

log = logging.getLogger(__name__)

PAUSE_AT_ENV = "SAMVERKAN_PAUSE_AT"
PAUSE_FILE_ENV = "SAMVERKAN_PAUSE_FILE"


def pause_point(name: str) -> None:
    """A named point where a recovery test can kill the process; a no-op in normal runs.

    When the environment variable ``SAMVERKAN_PAUSE_AT`` equals ``name``, write the file named
    by ``SAMVERKAN_PAUSE_FILE`` (to say the process got here) and sleep until killed. Points:
    ``after_pull``, ``after_land``, ``after_validate``, ``before_commit`` (rows, load records
    and watermarks written inside the open warehouse transaction), ``after_commit``, and
    ``ss12000_after_first_page`` (in the SS 12000 page loop).
    """
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    pause_file = os.environ.get(PAUSE_FILE_ENV)
    if pause_file:
        tmp = f"{pause_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(f"{name} {os.getpid()}\n")
        os.replace(tmp, pause_file)
    while True:
        time.sleep(3600)


@dataclass
class Pull:
    """What one pull from a source returned.

    A table may be a ``pa.RecordBatchReader`` that produces its rows while the batch is landed
    (see :func:`samverkan.landing.write_batch`), or a :class:`~samverkan.landing.SpooledTable`
    the pull wrote into its spool directory as it read (landing moves the file in). ``refused``
    names inputs the source set aside whole (say a delivered file it cannot read as its
    contract says), each with the cause (names escaped, never a data value): each becomes a
    failed result of the run, so the gate and the load report say which and why, while the rest
    of the pull lands and loads."""

    tables: dict[str, pa.Table | pa.RecordBatchReader | SpooledTable]
    # entity -> (watermark the pull started from (exclusive), highest value seen (inclusive))
    watermarks: dict[str, tuple[str | None, str | None]]
    content_checksums: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def row_count(self) -> int:
        """Rows of the in-memory and spooled tables (a streaming table is counted once landed)."""
        return sum(t.num_rows if isinstance(t, pa.Table) else t.rows
                   for t in self.tables.values() if isinstance(t, pa.Table | SpooledTable))

    @property
    def has_news(self) -> bool:
        """Rows, or new deliveries without rows (an empty file is recorded as received)."""
        return self.row_count > 0 or bool(self.extra.get("files"))


@dataclass(frozen=True)
class SourceState:
    """What the warehouse knows about a source before a pull."""

    watermarks: dict[str, str]  # entity -> highest value loaded (exclusive lower bound next time)
    seen_files: frozenset[tuple[str, str]] = frozenset()  # (file name, sha256) already loaded
    # A bounded pull (backfill) stops at this data date: only changes made on or before it
    # (local, Europe/Stockholm) are pulled; None pulls everything new.
    until: dt.date | None = None
    # What the extractor read from the warehouse before the pull (its optional
    # ``pull_context(conn, watermarks)``), e.g. the rows already loaded near the watermarks.
    context: Any = None
    # A private directory in the landing zone (restricted) where the pull may write what it
    # reads as it reads it (SpooledTable); removed when the pull has landed. None: keep it in
    # memory.
    spool: Path | None = None


class Extractor(Protocol):
    source: str

    def pull(self, state: SourceState) -> Pull:
        """Rows changed since ``state``; no side effects on the warehouse."""

    def load(self, conn: duckdb.DuckDBPyConnection, manifest: BatchManifest) -> dict[str, EntityCounts]:
        """Insert a landed batch into the raw tables (and quarantine) inside the caller's
        transaction; returns per-entity counts with received = loaded + quarantined."""


@dataclass(frozen=True)
class ValidationOutcome:
    success: bool
    failed_checks: tuple[str, ...] = ()
    report_path: str | None = None
    # A validator may stage the typed rows it checked in a DuckDB file with the restricted
    # schema; the load then copies exactly those rows (see _load_staged).
    staged_path: str | None = None
    staged_counts: dict[str, EntityCounts] | None = None


Validator = Callable[[BatchManifest], ValidationOutcome]


@dataclass
class BatchResult:
    batch_id: str
    source: str
    received: int
    loaded: int
    quarantined: int
    valid: bool
    failed_checks: tuple[str, ...] = ()
    report_path: str | None = None
    recovered: bool = False
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    # Why the extract failed before a batch was landed (source, host or path, and cause; never a
    # data value): set on the placeholder batch of an extract that raised (steps.failed_extract).
    cause: str | None = None


@dataclass
class ExtractResult:
    source: str
    batches: list[BatchResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(b.valid for b in self.batches)

    @property
    def batch_ids(self) -> list[str]:
        return [b.batch_id for b in self.batches]

    def totals(self) -> dict[str, int]:
        return {
            "received": sum(b.received for b in self.batches),
            "loaded": sum(b.loaded for b in self.batches),
            "quarantined": sum(b.quarantined for b in self.batches),
        }


@contextmanager
def source_lock(p: Paths, source: str) -> Iterator[None]:
    """One extract per source at a time (a second one waits)."""
    p.run_state.mkdir(parents=True, exist_ok=True)
    with open(p.run_state / f"extract-{source}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _rejected_batches(conn: duckdb.DuckDBPyConnection, source: str) -> set[str]:
    rows = conn.execute(
        """
        select batch_id from load_meta.batch_validations
        where source = ? and not success
          and batch_id not in (select batch_id from load_meta.batch_validations where success)
        """,
        [source],
    ).fetchall()
    return {r[0] for r in rows}


def _record_validation(conn: duckdb.DuckDBPyConnection, manifest: BatchManifest,
                       outcome: ValidationOutcome) -> None:
    conn.execute(
        "insert into load_meta.batch_validations values (?, ?, ?, ?, ?, ?)",
        [
            manifest.batch_id,
            manifest.source,
            dt.datetime.now(dt.UTC),
            outcome.success,
            ", ".join(outcome.failed_checks) or None,
            outcome.report_path,
        ],
    )


def _quarantine_by_reason(conn: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, int]:
    rows = conn.execute(
        "select reason, count(*) from load_meta.quarantine where batch_id = ? group by reason",
        [batch_id],
    ).fetchall()
    return {reason: n for reason, n in rows}


# Tables a load writes; the bookkeeping tables are written by record_load, not copied.
_NOT_COPIED = {("load_meta", "batches"), ("load_meta", "batch_entities"),
               ("load_meta", "watermarks"), ("load_meta", "batch_validations")}


@contextmanager
def _attached(conn: duckdb.DuckDBPyConnection, staged_path: str | None) -> Iterator[None]:
    """Attach the staging file (outside any transaction: DuckDB cannot detach inside one)."""
    if not staged_path:
        yield
        return
    quoted = staged_path.replace("'", "''")
    conn.execute(f"attach '{quoted}' as staged (read_only)")
    try:
        yield
    finally:
        conn.execute("detach staged")


def _load_staged(conn: duckdb.DuckDBPyConnection) -> None:
    """Copy the validated rows from the attached staging file (same schema) into the warehouse."""
    tables = conn.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = 'staged'"
    ).fetchall()
    for schema, table in tables:
        if (schema, table) in _NOT_COPIED:
            continue
        conn.execute(f'insert into "{schema}"."{table}" select * from staged."{schema}"."{table}"')


def _discard(staged_path: str | None) -> None:
    if staged_path:
        for path in (Path(staged_path), wal_file(Path(staged_path))):
            path.unlink(missing_ok=True)


def _validate_and_load(p: Paths, extractor: Extractor, manifest: BatchManifest,
                       validate: Validator | None, recovered: bool) -> BatchResult:
    outcome = validate(manifest) if validate else ValidationOutcome(success=True)
    pause_point("after_validate")
    try:
        return _load_validated(p, extractor, manifest, outcome, recovered)
    finally:
        _discard(outcome.staged_path)


def _load_validated(p: Paths, extractor: Extractor, manifest: BatchManifest,
                    outcome: ValidationOutcome, recovered: bool) -> BatchResult:
    staged = outcome.staged_path if outcome.success else None
    with restricted_connection(p) as conn, _attached(conn, staged):
        if batch_loaded(conn, manifest.batch_id):
            # Loaded by the interrupted run after all: report what was recorded.
            received, loaded, quarantined = conn.execute(
                "select rows_received, rows_loaded, rows_quarantined from load_meta.batches "
                "where batch_id = ?", [manifest.batch_id]).fetchone()
            return BatchResult(manifest.batch_id, manifest.source, received, loaded, quarantined,
                               True, recovered=recovered,
                               quarantined_by_reason=_quarantine_by_reason(conn, manifest.batch_id))
        conn.execute("begin transaction")
        try:
            _record_validation(conn, manifest, outcome)
            if not outcome.success:
                conn.execute("commit")
                log.warning("batch %s (%s) failed validation: %s; not loaded",
                            manifest.batch_id, manifest.source, ", ".join(outcome.failed_checks))
                return BatchResult(manifest.batch_id, manifest.source, manifest.row_count, 0, 0,
                                   False, outcome.failed_checks, outcome.report_path, recovered)
            if outcome.staged_path and outcome.staged_counts is not None:
                counts = outcome.staged_counts
                _load_staged(conn)
            else:
                counts = extractor.load(conn, manifest)
            assert manifest.directory is not None
            record_load(conn, manifest, counts, manifest.directory / "manifest.json")
            pause_point("before_commit")
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
        pause_point("after_commit")
        by_reason = _quarantine_by_reason(conn, manifest.batch_id)
    result = BatchResult(
        manifest.batch_id,
        manifest.source,
        received=sum(c.received for c in counts.values()),
        loaded=sum(c.loaded for c in counts.values()),
        quarantined=sum(c.quarantined for c in counts.values()),
        valid=True,
        report_path=outcome.report_path,
        recovered=recovered,
        quarantined_by_reason=by_reason,
    )
    progress("%s: batch %s loaded (%s received, %s loaded, %s quarantined)", result.source,
             result.batch_id, f"{result.received:,}", f"{result.loaded:,}", f"{result.quarantined:,}")
    log.info("batch %s (%s) loaded: %d received, %d loaded, %d quarantined", result.batch_id,
             result.source, result.received, result.loaded, result.quarantined)
    return result


def _pull_and_land(p: Paths, extractor: Extractor, result: ExtractResult, until: dt.date | None,
                   spool: Path) -> BatchManifest | None:
    """Pull what is new and land it as one batch; None when there is nothing new."""
    source = extractor.source
    with restricted_connection(p) as conn:
        watermarks = get_watermarks(conn, source)
        pull_context = getattr(extractor, "pull_context", None)
        state = SourceState(
            watermarks=watermarks,
            seen_files=frozenset(conn.execute(
                "select file_name, sha256 from load_meta.source_files where source = ?", [source]
            ).fetchall()),
            until=until,
            context=pull_context(conn, watermarks) if pull_context else None,
            spool=spool,
        )
    progress("%s: pulling changes%s …", source, f" up to {until}" if until else "")
    pull = extractor.pull(state)
    pause_point("after_pull")
    for n, cause in enumerate(pull.refused.values(), start=1):
        log.warning("%s: input refused: %s", source, cause)
        result.batches.append(BatchResult(f"{source}-refused-{n}", source, 0, 0, 0, False,
                                          ("input refused",), cause=cause))
    if not pull.has_news:
        log.info("%s: nothing new since the last extract", source)
        progress("%s: nothing new", source)
        return None
    if all(isinstance(t, pa.Table | SpooledTable) for t in pull.tables.values()):
        progress("%s: %s rows pulled; landing, validating and loading …", source, f"{pull.row_count:,}")
    else:  # streamed into landing: counted once landed
        progress("%s: new deliveries; landing, validating and loading …", source)
    manifest = write_batch(
        p.landing, source, pull.tables, watermarks=pull.watermarks,
        content_checksums=pull.content_checksums, extra=pull.extra,
    )
    log.info("%s: landed batch %s with %d rows", source, manifest.batch_id, manifest.row_count)
    pause_point("after_land")
    return manifest


def run_extract(p: Paths, extractor: Extractor, validate: Validator | None = None,
                until: dt.date | None = None) -> ExtractResult:
    """Recover unfinished batches, pull what is new (up to the data date ``until`` when given),
    land it, validate it, load it."""
    source = extractor.source
    result = ExtractResult(source)
    with source_lock(p, source):
        remove_stale_temporaries(p.landing, source)
        with restricted_connection(p) as conn:
            rejected = _rejected_batches(conn, source)
            pending = [b for b in list_batches(p.landing, source)
                       if not batch_loaded(conn, b.batch_id) and b.batch_id not in rejected]
        for manifest in pending:
            log.info("recovering landed batch %s (%s)", manifest.batch_id, source)
            result.batches.append(_validate_and_load(p, extractor, manifest, validate, True))
        if not result.ok:
            return result  # the watermark did not move; do not pull past unloaded data
        spool = p.landing / source / f"{SPOOL_PREFIX}{secrets.token_hex(6)}"
        spool.mkdir(mode=OWNER_ONLY_DIR, parents=True)
        try:
            manifest = _pull_and_land(p, extractor, result, until, spool)
        finally:
            shutil.rmtree(spool, ignore_errors=True)
        if manifest is None:
            return result
        result.batches.append(_validate_and_load(p, extractor, manifest, validate, False))
    return result
