"""Benchmark (not a test): pull + land + validate + load one case-system view of ~2 M rows.

Builds a SQLite case system (the five contract views as tables, text timestamps as the contract
asks of SQLite) with ``--rows`` rows in ``aktualisering`` and a few in the others, runs the real
extract (``run_extract`` with the Great Expectations batch validator, as ``samverkan run`` does;
``--no-validate`` skips it) and prints the wall time, the peak RSS of this process and what the
landing file holds (row groups). ``--land-only`` stops after landing (the pull and the landing
batch, without the load into the warehouse), which is what the chunked writing bounds: the
pull writes each chunk of the cursor into the landing file as it arrives, so its memory stays
bounded by the chunk size (``--chunk-rows``).

    PREFECT_HOME=/tmp/prefect-bench python tests/benchmarks/case_system_large_view.py [--rows N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from samverkan.config import Paths
    from samverkan.sources.case_system import CaseSystemExtractor

TYPES = ("Anmälan", "Ansökan", "Övrigt")
REPORTERS = ("Skola", "Förskola", "Polis", "Hälso- och sjukvård", "Socialtjänst", "Anhörig", "Annan",
             "Anonym")
DECISIONS = ("Inleda utredning", "Inte inleda utredning", "Överförd", None)
DISTRICTS = ("Bredäng", "Skärholmen", "Enskede-Årsta-Vantör", "Rinkeby", "Tensta")

SCHEMA = """
create table klient (klient_id integer, personnummer text, fornamn text, efternamn text,
                     skyddad_identitet integer, andrad_tid text);
create table aktualisering (aktualisering_id integer, klient_id integer, inkom_datum text, typ text,
                            anmalare_kategori text, skyddsbedomning_datum text,
                            forhandsbedomning_datum text, beslut text, stadsdel text,
                            andrad_tid text);
create table utredning (utredning_id integer, klient_id integer, aktualisering_id integer,
                        startdatum text, avslutsdatum text, resultat text, andrad_tid text);
create table insats (insats_id integer, klient_id integer, insatstyp text, startdatum text,
                     slutdatum text, planerat_slutdatum text, avslutsorsak text, andrad_tid text);
create table gallring (tabell text, rad_id integer, gallrad_tid text);
"""


def _aktualiseringar(rows: int, clients: int) -> Iterator[tuple]:
    today = dt.date.today()
    for i in range(rows):
        inkom = today - dt.timedelta(days=1 + i % 2000)
        changed = dt.datetime.combine(inkom, dt.time(8)) + dt.timedelta(seconds=i % 36_000)
        decision = DECISIONS[i % 4]
        yield (i + 1, 1 + i % clients, inkom.isoformat(), TYPES[i % 3], REPORTERS[i % 8],
               inkom.isoformat() if i % 5 == 0 else None,
               (inkom + dt.timedelta(days=i % 14)).isoformat() if decision else None, decision,
               DISTRICTS[i % 5], changed.isoformat(sep=" "))


def build_case_system(path: Path, rows: int, clients: int = 10_000) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SCHEMA)
        conn.executemany("insert into klient values (?, ?, ?, ?, ?, ?)", (
            (k, f"2013{1 + k % 12:02d}{1 + k % 28:02d}-{k % 10000:04d}", "Förnamn", "Efternamn",
             int(k % 50 == 0), "2024-01-01 08:00:00") for k in range(1, clients + 1)))
        conn.executemany("insert into aktualisering values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         _aktualiseringar(rows, clients))
        conn.commit()
    finally:
        conn.close()


def land_only(p: Paths, extractor: CaseSystemExtractor) -> None:
    """The pull and its landing batch, as run_extract does them (with a spool directory when
    the code has one), without validation and load."""
    import dataclasses
    import secrets
    import shutil

    import pyarrow.parquet as pq

    from samverkan.extract import SourceState
    from samverkan.landing import write_batch

    spool = p.landing / "case_system" / f".tmp-pull-{secrets.token_hex(6)}"
    spool.mkdir(parents=True)
    spooling = "spool" in {f.name for f in dataclasses.fields(SourceState)}
    state = SourceState({}, spool=spool) if spooling else SourceState({})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    pull = extractor.pull(state)
    manifest = write_batch(p.landing, "case_system", pull.tables, watermarks=pull.watermarks,
                           content_checksums=pull.content_checksums, extra=pull.extra)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shutil.rmtree(spool, ignore_errors=True)
    meta = pq.ParquetFile(manifest.entity_path("aktualisering")).metadata
    print(f"pull and land only (chunk rows {extractor.chunk_rows:,}; spooled: {spooling}): "
          f"{manifest.row_count:,} rows")
    print(f"landing aktualisering.parquet: {meta.num_rows:,} rows in {meta.num_row_groups} row groups; "
          f"content checksum {manifest.entities['aktualisering'].content_checksum[:16]}…")
    print(f"wall time: {seconds:.1f} s")
    print(f"peak RSS: {peak_kib / 1024:.0f} MiB (before the pull: {before / 1024:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-rows", type=int, default=None)
    parser.add_argument("--no-validate", action="store_true")
    parser.add_argument("--land-only", action="store_true",
                        help="pull and land only (no validation, no load)")
    args = parser.parse_args()

    import pyarrow.parquet as pq
    from _extract_measure import accounting, measure_extract  # beside this script

    from samverkan.config import CaseSystemConfig, Paths
    from samverkan.sources.case_system import DEFAULT_CHUNK_ROWS, CaseSystemExtractor

    with tempfile.TemporaryDirectory(prefix="case-system-bench-") as tmp:
        root = Path(tmp)
        database = root / "case_system.db"
        started = time.perf_counter()
        build_case_system(database, args.rows)
        print(f"built {database.stat().st_size / 1e6:.0f} MB SQLite case system "
              f"({args.rows:,} rows in aktualisering) in {time.perf_counter() - started:.0f} s")
        p = Paths(root / "home").ensure()
        extractor = CaseSystemExtractor(CaseSystemConfig(url=f"sqlite:///{database}"),
                                        chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS)
        if args.land_only:
            land_only(p, extractor)
            return
        m = measure_extract(p, extractor, validate=not args.no_validate)
        landed = next((p.landing / "case_system").glob("*/aktualisering.parquet"))
        meta = pq.ParquetFile(landed).metadata
        print(f"chunk rows: {extractor.chunk_rows:,}; validated: {not args.no_validate}")
        print(accounting(m))
        print(f"landing aktualisering.parquet: {meta.num_rows:,} rows in {meta.num_row_groups} "
              f"row groups, {landed.stat().st_size / 1e6:.0f} MB")
        print(f"wall time: {m.seconds:.1f} s")
        print(f"peak RSS: {m.peak_kib / 1024:.0f} MiB (before the extract: {m.before_kib / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
