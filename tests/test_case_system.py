"""Case-system extractor against real SQLite, PostgreSQL and MariaDB databases.

Every backend gets the same hand-written views (base tables ``t_<view>`` plus views with the
contract names) in its own schema/database ``ext_test``. Backend differences live in
:class:`Backend` only; the test bodies are shared.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from conftest import require

from samverkan.config import CaseSystemConfig, Paths
from samverkan.extract import SourceState, run_extract
from samverkan.landing import BatchManifest
from samverkan.sources.case_system import (
    VIEW_BY_NAME,
    VIEWS,
    CaseSystemError,
    CaseSystemExtractor,
    rows_checksum,
)

SCHEMA = "ext_test"
PG_URL = os.environ.get("SAMVERKAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("SAMVERKAN_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

D = dt.date
T = dt.datetime

# --- fixture rows (fictional people; Skatteverket test numbers and other Luhn-valid numbers) ----
KLIENT = [
    dict(klient_id=1, personnummer="20130101-2397", fornamn="Åsa", efternamn="Öberg",
         skyddad_identitet=False, andrad_tid=T(2025, 1, 10, 9, 0, 0)),
    dict(klient_id=2, personnummer=" 120517-1232", fornamn="Märta", efternamn="Ärlemyr",
         skyddad_identitet=True, andrad_tid=T(2025, 1, 11, 14, 30, 5)),
    dict(klient_id=3, personnummer="201006634560", fornamn="Örjan", efternamn="Lindqvist",
         skyddad_identitet=False, andrad_tid=T(2025, 2, 1, 8, 0, 0)),
    dict(klient_id=4, personnummer=None, fornamn="Okänd", efternamn="Okändsson",
         skyddad_identitet=False, andrad_tid=T(2025, 2, 2, 8, 0, 0)),
]
AKTUALISERING = [
    dict(aktualisering_id=1, klient_id=1, inkom_datum=D(2025, 3, 3), typ="Anmälan",
         anmalare_kategori="Skola", skyddsbedomning_datum=D(2025, 3, 3), forhandsbedomning_datum=None,
         beslut=None, stadsdel="Enskede-Årsta-Vantör", andrad_tid=T(2025, 3, 3, 10, 0, 0)),
    dict(aktualisering_id=2, klient_id=2, inkom_datum=D(2025, 3, 4), typ="Ansökan",
         anmalare_kategori="Hälso- och sjukvård", skyddsbedomning_datum=None,
         forhandsbedomning_datum=D(2025, 3, 10), beslut="Överförd", stadsdel="Skärholmen",
         andrad_tid=T(2025, 3, 10, 16, 45, 0)),
    dict(aktualisering_id=3, klient_id=3, inkom_datum=D(2024, 12, 30), typ="Övrigt",
         anmalare_kategori="Anonym", skyddsbedomning_datum=None, forhandsbedomning_datum=D(2025, 1, 8),
         beslut="Inte inleda utredning", stadsdel="Rinkeby-Kista", andrad_tid=T(2025, 1, 8, 11, 0, 0)),
]
UTREDNING = [
    dict(utredning_id=10, klient_id=1, aktualisering_id=1, startdatum=D(2025, 3, 20), avslutsdatum=None,
         resultat=None, andrad_tid=T(2025, 3, 20, 9, 0, 0)),
    dict(utredning_id=11, klient_id=3, aktualisering_id=None, startdatum=D(2024, 9, 1),
         avslutsdatum=D(2024, 12, 15), resultat="Insats beviljad", andrad_tid=T(2024, 12, 15, 13, 0, 0)),
]
INSATS = [
    dict(insats_id=100, klient_id=3, insatstyp="PLAC_HVB", startdatum=D(2024, 12, 20),
         slutdatum=D(2025, 2, 28), planerat_slutdatum=D(2025, 6, 30),
         avslutsorsak="Återförening med vårdnadshavare", andrad_tid=T(2025, 2, 28, 15, 0, 0)),
    dict(insats_id=101, klient_id=1, insatstyp="SST", startdatum=D(2025, 4, 1), slutdatum=None,
         planerat_slutdatum=None, avslutsorsak=None, andrad_tid=T(2025, 4, 1, 8, 15, 0)),
]
GALLRING = [
    dict(tabell="insats", rad_id=99, gallrad_tid=T(2025, 1, 31, 23, 0, 0)),
]
FIXTURE = {"klient": KLIENT, "aktualisering": AKTUALISERING, "utredning": UTREDNING,
           "insats": INSATS, "gallring": GALLRING}
NAMES = [n for k in KLIENT for n in (k["fornamn"], k["efternamn"])]

SA_TYPES = {"int": sa.BigInteger, "bool": sa.Boolean, "str": lambda: sa.String(100),
            "date": sa.Date, "ts": sa.DateTime}


def _metadata(schema: str | None) -> sa.MetaData:
    md = sa.MetaData(schema=schema)
    for spec in VIEWS:
        sa.Table(f"t_{spec.name}", md, *[sa.Column(c, SA_TYPES[kind]()) for c, kind in spec.columns])
    return md


@dataclass
class Backend:
    """Everything that differs between the three databases."""

    name: str
    url: str
    schema: str | None
    engine: sa.Engine

    @property
    def prefix(self) -> str:
        return f"{self.schema}." if self.schema else ""

    @property
    def config(self) -> CaseSystemConfig:
        return CaseSystemConfig(url=self.url, schema=self.schema)

    def create_schema(self) -> None:
        with self.engine.begin() as c:
            if self.name == "postgresql":
                c.execute(sa.text(f"drop schema if exists {SCHEMA} cascade"))
                c.execute(sa.text(f"create schema {SCHEMA}"))
            elif self.name == "mariadb":
                c.execute(sa.text(f"drop database if exists {SCHEMA}"))
                c.execute(sa.text(f"create database {SCHEMA} character set utf8mb4 collate utf8mb4_bin"))

    def drop_schema(self) -> None:
        with self.engine.begin() as c:
            if self.name == "postgresql":
                c.execute(sa.text(f"drop schema if exists {SCHEMA} cascade"))
            elif self.name == "mariadb":
                c.execute(sa.text(f"drop database if exists {SCHEMA}"))

    def reset(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        """(Re)create base tables and contract views, and insert ``rows``."""
        md = _metadata(self.schema)
        with self.engine.begin() as c:
            for spec in VIEWS:
                c.execute(sa.text(f"drop view if exists {self.prefix}{spec.name}"))
            md.drop_all(c)
            md.create_all(c)
            for spec in VIEWS:
                c.execute(sa.text(
                    f"create view {self.prefix}{spec.name} as select {', '.join(spec.column_names)} "
                    f"from {self.prefix}t_{spec.name}"))
                if rows.get(spec.name):
                    c.execute(md.tables[f"{self.prefix}t_{spec.name}"].insert(), rows[spec.name])

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text(sql.replace("{p}", self.prefix)), params or {})

    def source_rows(self, view: str) -> list[tuple[Any, ...]]:
        """The contract columns of a view straight from the DB-API driver (no SQLAlchemy typing)."""
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(f"select {', '.join(VIEW_BY_NAME[view].column_names)} from {self.prefix}{view}")
            rows = [tuple(r) for r in cur.fetchall()]
            cur.close()
        finally:
            raw.close()
        return rows


def _server_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError:
        engine.dispose()
        require(False, f"database server for {engine.url.get_backend_name()} is unreachable")
    return engine


@pytest.fixture(scope="module")
def backend_factory() -> Iterator[dict[str, Backend]]:
    made: dict[str, Backend] = {}
    yield made
    for b in made.values():
        b.drop_schema()
        b.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest, backend_factory: dict[str, Backend],
            tmp_path_factory: pytest.TempPathFactory) -> Backend:
    name = request.param
    if name not in backend_factory:
        if name == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('case_system') / 'case_system.sqlite'}"
            b = Backend(name, url, None, sa.create_engine(url))
        elif name == "postgresql":
            b = Backend(name, PG_URL, SCHEMA, _server_engine(PG_URL))
        else:
            b = Backend(name, MARIADB_URL, SCHEMA, _server_engine(MARIADB_URL))
        b.create_schema()  # once per module: drop and recreate ext_test
        backend_factory[name] = b
    return backend_factory[name]


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    b = Backend("sqlite", url, None, sa.create_engine(url))
    yield b
    b.engine.dispose()


# --- helpers ---------------------------------------------------------------------------------

def _manifest(p: Paths, batch_id: str) -> BatchManifest:
    return BatchManifest.read(p.landing / "case_system" / batch_id)


def _warehouse(p: Paths) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(p.restricted_db), read_only=True)


def _all_text_in_warehouse(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every column name and every varchar value of every table in the restricted database."""
    out: list[str] = []
    tables = conn.execute(
        "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
    ).fetchall()
    for schema, table in tables:
        cols = conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ?", [schema, table]).fetchall()
        out.extend(c for c, _ in cols)
        for col, dtype in cols:
            if dtype == "VARCHAR":
                out.extend(v for (v,) in conn.execute(
                    f'select "{col}" from "{schema}"."{table}" where "{col}" is not null').fetchall())
    return out


# --- tests -----------------------------------------------------------------------------------

def test_extract_lands_loads_and_increments(backend: Backend, tmp_path: Path) -> None:
    backend.reset(FIXTURE)
    p = Paths(tmp_path / "home").ensure()
    extractor = CaseSystemExtractor(backend.config, chunk_rows=2)  # several fetch chunks per view

    # First run: exactly the source rows.
    first = run_extract(p, extractor)
    assert len(first.batches) == 1 and first.ok
    batch = first.batches[0]
    total = sum(len(v) for v in FIXTURE.values())
    assert (batch.received, batch.loaded, batch.quarantined) == (total, total, 0)
    manifest = _manifest(p, batch.batch_id)
    for view, rows in FIXTURE.items():
        stats = manifest.entities[view]
        assert stats.rows == len(rows), view
        assert stats.content_checksum == rows_checksum(backend.source_rows(view)), view
        wm_col = VIEW_BY_NAME[view].watermark_column
        assert stats.watermark_from is None
        assert dt.datetime.fromisoformat(stats.watermark_to) == max(r[wm_col] for r in rows), view

    # Landing keeps the names (restricted landing zone), typed to the contract.
    landed = pq.read_table(manifest.entity_path("klient")).to_pylist()
    assert {(r["fornamn"], r["efternamn"]) for r in landed} == {
        (k["fornamn"], k["efternamn"]) for k in KLIENT}
    assert {r["klient_id"]: r["skyddad_identitet"] for r in landed} == {1: False, 2: True, 3: False, 4: False}
    landed_akt = {r["aktualisering_id"]: r for r in pq.read_table(manifest.entity_path("aktualisering"))
                  .to_pylist()}
    assert landed_akt[3]["inkom_datum"] == D(2024, 12, 30)
    assert landed_akt[2]["andrad_tid"] == T(2025, 3, 10, 16, 45, 0)

    with _warehouse(p) as wh:
        # Values round-trip, typed, å/ä/ö intact, personnummer exactly as written.
        klient = wh.execute("select klient_id, personnummer, skyddad_identitet, andrad_tid "
                            "from raw_case_system.klient order by klient_id").fetchall()
        assert klient == [(k["klient_id"], k["personnummer"], k["skyddad_identitet"], k["andrad_tid"])
                          for k in KLIENT]
        cols = [c for c in VIEW_BY_NAME["aktualisering"].column_names]
        akt = wh.execute(f"select {', '.join(cols)} from raw_case_system.aktualisering "
                         "order by aktualisering_id").fetchall()
        assert akt == [tuple(r[c] for c in cols) for r in AKTUALISERING]
        for view in ("utredning", "insats", "gallring"):
            cols = VIEW_BY_NAME[view].column_names
            got = wh.execute(f"select {', '.join(cols)} from raw_case_system.{view} "
                             f"order by {cols[0]}, {cols[1]}").fetchall()
            assert got == sorted(tuple(r[c] for c in cols) for r in FIXTURE[view]), view
        # Names never reach the restricted warehouse, neither as columns nor as values.
        texts = _all_text_in_warehouse(wh)
        assert not {"fornamn", "efternamn"} & set(texts)
        assert not [t for t in texts if any(n in t for n in NAMES)]
        counts = dict(wh.execute(
            "select entity, rows_loaded from load_meta.batch_entities where batch_id = ?",
            [batch.batch_id]).fetchall())
        assert counts == {v: len(r) for v, r in FIXTURE.items()}

    # Second run: nothing new.
    assert run_extract(p, extractor).batches == []

    # A decision arrives: exactly that row comes in the next batch.
    backend.execute(
        "update {p}t_aktualisering set beslut = :beslut, forhandsbedomning_datum = :fb, "
        "andrad_tid = :t where aktualisering_id = 1",
        {"beslut": "Inleda utredning", "fb": D(2025, 3, 12), "t": T(2025, 4, 2, 7, 30, 0)},
    )
    third = run_extract(p, extractor)
    assert len(third.batches) == 1
    m3 = _manifest(p, third.batches[0].batch_id)
    assert {v: e.rows for v, e in m3.entities.items()} == {
        "klient": 0, "aktualisering": 1, "utredning": 0, "insats": 0, "gallring": 0}
    assert dt.datetime.fromisoformat(m3.entities["aktualisering"].watermark_from) == T(2025, 3, 10, 16, 45)
    assert dt.datetime.fromisoformat(m3.entities["aktualisering"].watermark_to) == T(2025, 4, 2, 7, 30)
    with _warehouse(p) as wh:
        versions = wh.execute(
            "select beslut, forhandsbedomning_datum, andrad_tid from raw_case_system.aktualisering "
            "where aktualisering_id = 1 order by andrad_tid").fetchall()
        assert versions == [(None, None, T(2025, 3, 3, 10, 0)),
                            ("Inleda utredning", D(2025, 3, 12), T(2025, 4, 2, 7, 30))]
        assert wh.execute("select count(*) from raw_case_system.aktualisering").fetchone()[0] == 4
    assert run_extract(p, extractor).batches == []


def test_untypeable_and_keyless_rows_are_quarantined(sqlite_backend: Backend, tmp_path: Path) -> None:
    """SQLite stores whatever it is given: bad dates, a non-boolean flag and a missing key."""
    b = sqlite_backend
    b.reset(FIXTURE)
    b.execute("insert into t_aktualisering (aktualisering_id, klient_id, inkom_datum, typ, stadsdel, "
              "andrad_tid) values (4, 1, '2025-02-30', 'Anmälan', 'Skärholmen', '2025-03-05 08:00:00')")
    b.execute("insert into t_aktualisering (aktualisering_id, klient_id, inkom_datum, typ, andrad_tid) "
              "values (5, 1, 'igår', 'Anmälan', '2025-03-05 08:00:01')")
    b.execute("insert into t_aktualisering (aktualisering_id, klient_id, inkom_datum, typ, andrad_tid) "
              "values (null, 2, '2025-03-06', 'Anmälan', '2025-03-06 08:00:00')")
    b.execute("insert into t_klient (klient_id, personnummer, fornamn, efternamn, skyddad_identitet, "
              "andrad_tid) values (5, '189001019802', 'Ölvir', 'Åkesson', 'kanske', '2025-03-01 12:00:00')")
    b.execute("insert into t_utredning (utredning_id, klient_id, startdatum, andrad_tid) "
              "values (12, 1, '2025-03-01', 'strax')")
    p = Paths(tmp_path / "home").ensure()
    result = run_extract(p, CaseSystemExtractor(b.config))
    assert len(result.batches) == 1
    batch = result.batches[0]
    assert batch.quarantined == 5
    assert batch.quarantined_by_reason == {"bad_date": 3, "missing_key": 1, "bad_type": 1}
    assert batch.received == batch.loaded + batch.quarantined == sum(len(v) for v in FIXTURE.values()) + 5
    with _warehouse(p) as wh:
        per_entity = {e: (r, lo, q) for e, r, lo, q in wh.execute(
            "select entity, rows_received, rows_loaded, rows_quarantined from load_meta.batch_entities "
            "where batch_id = ?", [batch.batch_id]).fetchall()}
        assert per_entity["aktualisering"] == (6, 3, 3)
        assert per_entity["klient"] == (5, 4, 1)
        assert per_entity["utredning"] == (3, 2, 1)
        for r, lo, q in per_entity.values():
            assert r == lo + q
        q = wh.execute("select entity, row_number, reason, detail, raw_row from load_meta.quarantine "
                       "order by entity, row_number").fetchall()
        by_detail: dict[tuple[str, str, str], list[str]] = {}
        for e, _, reason, detail, raw in q:
            by_detail.setdefault((e, reason, detail), []).append(raw)
        bad_inkom = by_detail[("aktualisering", "bad_date", "bad_date:inkom_datum")]
        assert len(bad_inkom) == 2
        assert '"inkom_datum": "2025-02-30"' in bad_inkom[0] and '"inkom_datum": "igår"' in bad_inkom[1]
        assert len(by_detail[("aktualisering", "missing_key", "missing aktualisering_id")]) == 1
        assert len(by_detail[("utredning", "bad_date", "bad_date:andrad_tid")]) == 1
        (bad_flag,) = by_detail[("klient", "bad_type", "bad_type:skyddad_identitet")]
        assert '"skyddad_identitet": "kanske"' in bad_flag and "189001019802" in bad_flag
        texts = _all_text_in_warehouse(wh)
        assert not [t for t in texts if any(n in t for n in [*NAMES, "Ölvir", "Åkesson"])]
        assert wh.execute("select count(*) from raw_case_system.aktualisering "
                          "where aktualisering_id in (4, 5)").fetchone()[0] == 0


def test_missing_view_or_column_names_it(backend: Backend) -> None:
    b = backend
    b.reset(FIXTURE)
    b.execute("drop view {p}insats")
    with pytest.raises(CaseSystemError, match=rf"view {b.prefix}insats \({b.engine.dialect.name}\): "
                       r"the view does not exist") as err:
        CaseSystemExtractor(b.config).pull(SourceState(watermarks={}))
    assert "Traceback" not in str(err.value) and "[SQL" not in str(err.value)
    b.execute("drop view {p}utredning")
    b.execute("create view {p}utredning as select utredning_id, klient_id from {p}t_utredning")
    with pytest.raises(CaseSystemError, match=r"view .*utredning .*: the view lacks the contract column\(s\) "
                       r"aktualisering_id, startdatum, avslutsdatum, resultat, andrad_tid$"):
        CaseSystemExtractor(b.config).pull(SourceState(watermarks={}))


def test_connection_error_hides_the_password() -> None:
    url = "postgresql+psycopg://samverkan:S3cret-pw@127.0.0.1:1/cases"
    with pytest.raises(CaseSystemError, match="cannot connect") as err:
        CaseSystemExtractor(CaseSystemConfig(url=url, schema="dbo")).pull(SourceState(watermarks={}))
    assert "S3cret-pw" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
