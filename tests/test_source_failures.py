"""Sources that cannot be read fail fast, say why, and say it everywhere a run reports.

Real components only: loopback ports nothing listens on, ``nonexistent.invalid``, the
simulator's SS 12000 server, a loopback HTTPS server with a self-signed certificate, a loopback
server that drops every connection, real SQLite files, the real PostgreSQL and MariaDB servers.
For each failure both the probe (``samverkan check``) and a real extract
(``steps.extract(load_settings(), source)``) are run; the time each takes is printed
(``TIMING …``, see ``pytest -s``), not asserted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import (
    MARIADB_ADMIN_URL,
    POSTGRES_ADMIN_URL,
    http_server,
    require_server,
    self_signed_certificate,
)
from conftest import write_config as write_municipality_config

from samverkan import steps
from samverkan.config import CaseSystemConfig, PoliceConfig, SS12000Config, load_settings
from samverkan.config.check import CheckResult
from samverkan.simulator.ss12000_server import SS12000Data, serve
from samverkan.sources import case_system, police, ss12000
from samverkan.sources.case_system import VIEWS, CaseSystemError
from samverkan.sources.failures import failure_cause
from samverkan.sources.police import PoliceFileError
from samverkan.sources.ss12000 import (
    SS12000AuthError,
    SS12000ConnectionError,
    SS12000Error,
    SS12000UnavailableError,
)

TOKEN = "failfast-token-5b2e"  # noqa: S105 - a test credential
WRONG_TOKEN = "wrong-token-77aa"  # noqa: S105
ORG_NUMBER = "212000-0142"
TOKEN_ENV = "SAMVERKAN_FAILFAST_TOKEN"  # noqa: S105 - the name of a variable

TIMINGS: dict[str, float] = {}


@contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[label] = elapsed = time.monotonic() - started
        # to the process's stderr: a test that captures its output (capsys) must not swallow it
        sys.__stderr__.write(f"TIMING {label}: {elapsed:.2f} s\n")


def probe_timed(label: str, probe: Callable[[], CheckResult]) -> CheckResult:
    with timed(f"probe {label}"):
        return probe()


def extract_error(label: str, source: str) -> BaseException:
    """Run the real extract of ``source`` (settings from the test's samverkan.toml) and return
    what it raised."""
    with timed(f"extract {label}"), pytest.raises(Exception) as info:  # noqa: B017
        steps.extract(load_settings(), source)
    return info.value


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(home: Path, **sections: dict[str, Any]) -> None:
    """The demo municipality's samverkan.toml and reference files, with ``sections``."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
    write_municipality_config(home, "\n".join(lines) + "\n")


def assert_fails_fast(exc: BaseException, kind: type[BaseException], *words: str) -> str:
    """The extract raised ``kind``, its message names ``words``, and it is not retried."""
    assert isinstance(exc, kind), repr(exc)
    message = str(exc)
    for word in words:
        assert word in message, (word, message)
    assert not steps.is_transient(exc), message
    return message


# --- SS 12000 ---------------------------------------------------------------------------------

ORGANISATIONS = [
    {"id": "0a000000-0000-4000-8000-000000000001", "displayName": "Stockholms stad",
     "organisationType": "Huvudman", "organisationNumber": ORG_NUMBER,
     "meta": {"created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z"}},
    {"id": "0b000000-0000-4000-8000-000000000011", "displayName": "Bredängsskolan",
     "organisationType": "Skolenhet", "schoolUnitCode": "29384011",
     "parentOrganisation": {"id": "0a000000-0000-4000-8000-000000000001"},
     "meta": {"created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z"}},
]


@pytest.fixture
def served() -> Iterator[Any]:
    with serve(SS12000Data.from_records({"organisations": ORGANISATIONS}), TOKEN,
               client_id="failfast", client_secret="failfast-secret-91") as server:  # noqa: S106
        yield server


def ss12000_config(base_url: str, **kwargs: Any) -> SS12000Config:
    return SS12000Config(base_url=base_url, **{"token": TOKEN, **kwargs})


def use_ss12000(home: Path, monkeypatch: pytest.MonkeyPatch, base_url: str, token: str = TOKEN) -> None:
    monkeypatch.setenv(TOKEN_ENV, token)
    write_config(home, ss12000={"base_url": base_url, "token_env": TOKEN_ENV})


def test_ss12000_probe_passes_and_checks_the_municipality(served):
    result = probe_timed("ss12000 ok", lambda: ss12000.probe(ss12000_config(served.base_url), ORG_NUMBER))
    assert isinstance(result, CheckResult) and result.name == "ss12000" and result.ok, result
    assert f"127.0.0.1:{served.port}" in result.detail and "bearer token" in result.detail
    # digits only are compared
    assert ss12000.probe(ss12000_config(served.base_url), "2120000142").ok
    # OAuth2 client credentials
    oauth = SS12000Config(base_url=served.base_url, token_url=served.token_url, client_id="failfast",
                          client_secret="failfast-secret-91")  # noqa: S106
    assert ss12000.probe(oauth, ORG_NUMBER).ok
    wrong = SS12000Config(base_url=served.base_url, token_url=served.token_url, client_id="failfast",
                          client_secret="not-the-secret")  # noqa: S106
    refused = ss12000.probe(wrong, ORG_NUMBER)
    assert not refused.ok and "token endpoint" in refused.detail and "401" in refused.detail
    assert "not-the-secret" not in refused.detail and "failfast-secret-91" not in refused.detail
    # another municipality's organisation number: named as the problem, not echoed
    other = ss12000.probe(ss12000_config(served.base_url), "212000-0001")
    assert not other.ok and "organisation number is not among the organisations" in other.detail
    assert "212000" not in other.detail


def test_ss12000_refused_connection(samverkan_home, monkeypatch):
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v2"
    result = probe_timed("ss12000 refused", lambda: ss12000.probe(ss12000_config(base_url), ORG_NUMBER))
    assert not result.ok and f"127.0.0.1:{port}" in result.detail
    assert "connection refused" in result.detail and TOKEN not in result.detail

    use_ss12000(samverkan_home, monkeypatch, base_url)
    exc = extract_error("ss12000 refused", "ss12000")
    message = assert_fails_fast(exc, SS12000ConnectionError, f"127.0.0.1:{port}", "connection refused",
                                "GET /organisations")
    assert "attempts" not in message  # not retried by the client either
    cause = failure_cause(exc)
    assert f"127.0.0.1:{port}" in cause and "connection refused" in cause


def test_ss12000_unknown_host(samverkan_home, monkeypatch):
    base_url = "https://nonexistent.invalid/ss12000/v2"
    result = probe_timed("ss12000 unknown host",
                         lambda: ss12000.probe(ss12000_config(base_url), ORG_NUMBER))
    assert not result.ok and "nonexistent.invalid" in result.detail and "unknown host" in result.detail

    use_ss12000(samverkan_home, monkeypatch, base_url)
    exc = extract_error("ss12000 unknown host", "ss12000")
    assert_fails_fast(exc, SS12000ConnectionError, "nonexistent.invalid", "unknown host")

    # the OAuth2 token endpoint is classified the same way
    token_url = "https://nonexistent.invalid/oauth/token"  # noqa: S105 - a URL
    oauth = SS12000Config(base_url=base_url, token_url=token_url, client_id="x",
                          client_secret="y")  # noqa: S106
    result = ss12000.probe(oauth, ORG_NUMBER)
    assert not result.ok and "token endpoint nonexistent.invalid" in result.detail
    assert "unknown host" in result.detail


def test_ss12000_wrong_token_401_forever(served, samverkan_home, monkeypatch):
    before = len(served.requests)
    result = probe_timed("ss12000 401", lambda: ss12000.probe(
        ss12000_config(served.base_url, token=WRONG_TOKEN), ORG_NUMBER))
    assert not result.ok and "HTTP 401" in result.detail and f"127.0.0.1:{served.port}" in result.detail
    assert WRONG_TOKEN not in result.detail and TOKEN not in result.detail
    assert len(served.requests) - before == 1

    use_ss12000(samverkan_home, monkeypatch, served.base_url, token=WRONG_TOKEN)
    before = len(served.requests)
    exc = extract_error("ss12000 401", "ss12000")
    message = assert_fails_fast(exc, SS12000AuthError, "HTTP 401", f"127.0.0.1:{served.port}")
    assert WRONG_TOKEN not in message
    assert len(served.requests) - before == 1  # one request: no retries


def _empty_page(request: BaseHTTPRequestHandler) -> None:
    body = b'{"data": [], "pageToken": null}'
    request.send_response(200)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


@pytest.fixture
def tls_server(tmp_path) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate (no CA trusts it)."""
    with http_server(_empty_page, certificate=self_signed_certificate(tmp_path)) as httpd:
        yield f"https://127.0.0.1:{httpd.server_address[1]}"


def test_ss12000_certificate_failure(tls_server, samverkan_home, monkeypatch):
    result = probe_timed("ss12000 certificate", lambda: ss12000.probe(ss12000_config(tls_server),
                                                                      ORG_NUMBER))
    assert not result.ok and "certificate" in result.detail and tls_server[8:] in result.detail

    use_ss12000(samverkan_home, monkeypatch, tls_server)
    exc = extract_error("ss12000 certificate", "ss12000")
    assert_fails_fast(exc, SS12000ConnectionError, "certificate", tls_server[8:])


@pytest.fixture
def dropping_server() -> Iterator[str]:
    """A loopback server that accepts every connection and closes it without an answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.recv(65536)  # the request, then close without an answer
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_ss12000_dropped_connections_and_time_outs_stay_transient(dropping_server, served):
    """The other side of the rules: a dropped connection and a time-out are retried by the
    client and, when they outlast its attempts, by Prefect."""
    client = ss12000.SS12000Client(ss12000_config(dropping_server), max_attempts=3,
                                   backoff_seconds=0.01)
    with client, pytest.raises(SS12000UnavailableError) as info:
        next(client.pages("organisations"))
    assert "connection dropped" in str(info.value) and "3 attempts" in str(info.value)
    assert client.requests_made == 3 and steps.is_transient(info.value)

    served.stall_next(7.0)  # past the probe's 5 s time-out, though the configuration says 30 s
    result = probe_timed("ss12000 stalled server", lambda: ss12000.probe(
        ss12000_config(served.base_url, timeout_seconds=30), ORG_NUMBER))
    assert not result.ok and "timed out" in result.detail
    assert TIMINGS["probe ss12000 stalled server"] < 7.0


# --- case system ------------------------------------------------------------------------------

SA_TYPES = {"int": sa.BigInteger, "bool": sa.Boolean, "str": lambda: sa.String(100),
            "date": sa.Date, "ts": sa.DateTime}


def build_views(url: str, *, without: tuple[str, ...] = (),
                lacking: dict[str, tuple[str, ...]] | None = None) -> None:
    """Base tables t_<view> and the contract views (empty), except the views ``without`` and
    the columns ``lacking[view]``."""
    lacking = lacking or {}
    engine = sa.create_engine(url)
    md = sa.MetaData()
    for spec in VIEWS:
        sa.Table(f"t_{spec.name}", md, *[sa.Column(c, SA_TYPES[kind]()) for c, kind in spec.columns])
    try:
        with engine.begin() as conn:
            for spec in VIEWS:
                conn.execute(sa.text(f"drop view if exists {spec.name}"))
            md.create_all(conn)
            for spec in VIEWS:
                if spec.name in without:
                    continue
                columns = [c for c in spec.column_names if c not in lacking.get(spec.name, ())]
                conn.execute(sa.text(f"create view {spec.name} as select {', '.join(columns)} "
                                     f"from t_{spec.name}"))
    finally:
        engine.dispose()


def with_login(url: str, user: str | None, password: str | None) -> str:
    """``url`` with another user and/or password."""
    parsed = sa.engine.make_url(url)
    return parsed.set(username=user or parsed.username, password=password or parsed.password
                      ).render_as_string(hide_password=False)


def use_case_system(home: Path, url: str) -> None:
    write_config(home, case_system={"url": url})


def test_case_system_probe_passes_on_the_contract_views(tmp_path):
    url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    build_views(url)
    result = probe_timed("case_system ok", lambda: case_system.probe(CaseSystemConfig(url=url)))
    assert result.ok and result.name == "case_system", result
    assert all(spec.name in result.detail for spec in VIEWS)


def test_case_system_sqlite_file_that_does_not_exist(tmp_path, samverkan_home):
    missing = tmp_path / "typo" / "case_sytsem.sqlite"
    also_missing = tmp_path / "case_sytsem.sqlite"
    for path in (missing, also_missing):
        url = f"sqlite:///{path}"
        result = probe_timed(f"case_system sqlite missing ({path.parent.name})",
                             lambda url=url: case_system.probe(CaseSystemConfig(url=url)))
        assert not result.ok and str(path) in result.detail and "does not exist" in result.detail
        use_case_system(samverkan_home, url)
        exc = extract_error(f"case_system sqlite missing ({path.parent.name})", "case_system")
        assert_fails_fast(exc, CaseSystemError, str(path), "does not exist")
        assert not path.exists()
    # SQLite's URI form (the read-only way to open): a missing file is not created either
    uri = f"sqlite:///file:{also_missing}?mode=ro&uri=true"
    assert "does not exist" in case_system.probe(CaseSystemConfig(url=uri)).detail
    assert not any(p.name.startswith("case_sytsem") for p in tmp_path.iterdir())


def test_case_system_sqlite_missing_view_and_column(tmp_path, samverkan_home):
    url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    build_views(url, without=("insats",))
    result = probe_timed("case_system sqlite missing view",
                         lambda: case_system.probe(CaseSystemConfig(url=url)))
    assert not result.ok and "view insats: the view does not exist" in result.detail
    assert str(tmp_path / "cases.sqlite") in result.detail
    use_case_system(samverkan_home, url)
    exc = extract_error("case_system sqlite missing view", "case_system")
    assert_fails_fast(exc, CaseSystemError, "view insats", "does not exist", str(tmp_path / "cases.sqlite"))

    build_views(url, lacking={"utredning": ("resultat", "andrad_tid")})
    result = probe_timed("case_system sqlite missing column",
                         lambda: case_system.probe(CaseSystemConfig(url=url)))
    assert not result.ok
    assert "view utredning: the view lacks the contract column(s) resultat, andrad_tid" in result.detail
    exc = extract_error("case_system sqlite missing column", "case_system")
    assert_fails_fast(exc, CaseSystemError, "view utredning", "resultat, andrad_tid")


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_case_system_server_missing_view_and_column(backend, request, samverkan_home):
    fixture = "postgres_schema_url" if backend == "postgresql" else "mariadb_database_url"
    url = request.getfixturevalue(fixture)
    build_views(url, without=("insats",), lacking={"utredning": ("aktualisering_id",)})
    result = probe_timed(f"case_system {backend} missing view+column",
                         lambda: case_system.probe(CaseSystemConfig(url=url)))
    assert not result.ok
    assert "view insats: the view does not exist" in result.detail
    assert "view utredning: the view lacks the contract column(s) aktualisering_id" in result.detail
    assert "127.0.0.1" in result.detail
    use_case_system(samverkan_home, url)
    exc = extract_error(f"case_system {backend} missing column", "case_system")
    assert_fails_fast(exc, CaseSystemError, "view utredning", "aktualisering_id", "127.0.0.1")

    build_views(url, without=("insats",))
    exc = extract_error(f"case_system {backend} missing view", "case_system")
    assert_fails_fast(exc, CaseSystemError, "view insats", "does not exist")


def test_case_system_probe_tries_the_extractors_select(postgres_schema_url):
    """A view the user may not read is found by the probe (the catalogue alone would pass it)."""
    build_views(postgres_schema_url)
    schema = sa.engine.make_url(postgres_schema_url).query["options"].split("=", 1)[1]
    role = f"ff_reader_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"create role {role} login"))
            conn.execute(sa.text(f"grant usage on schema {schema} to {role}"))
            for spec in VIEWS:
                if spec.name != "gallring":
                    conn.execute(sa.text(f"grant select on {schema}.{spec.name} to {role}"))
        url = with_login(postgres_schema_url, role, None)
        result = probe_timed("case_system postgresql no privilege",
                             lambda: case_system.probe(CaseSystemConfig(url=url)))
        assert not result.ok and "view gallring: cannot be read" in result.detail, result
        assert "InsufficientPrivilege" in result.detail
        assert "view klient" not in result.detail
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"drop owned by {role}"))
            conn.execute(sa.text(f"drop role {role}"))
        admin.dispose()


def test_case_system_postgresql_login_refused(samverkan_home):
    """The server trusts every password of an existing role, so a role that does not exist
    stands in for a wrong password: the login is refused, which no retry fixes."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    role, password = f"nosuchrole_{uuid.uuid4().hex[:8]}", "pw-Secret-42"  # noqa: S105
    url = with_login(POSTGRES_ADMIN_URL, role, password)
    result = probe_timed("case_system postgresql role", lambda: case_system.probe(CaseSystemConfig(url=url)))
    assert not result.ok and "authentication failed" in result.detail and "role" in result.detail
    assert "127.0.0.1:5432" in result.detail and password not in result.detail
    use_case_system(samverkan_home, url)
    exc = extract_error("case_system postgresql role", "case_system")
    message = assert_fails_fast(exc, CaseSystemError, "authentication failed", "role", "127.0.0.1:5432")
    assert password not in message


def test_case_system_mariadb_wrong_password(samverkan_home):
    require_server("MariaDB", "127.0.0.1", 3306)
    password = "pw-Secret-43"  # noqa: S105 - a test credential
    url = with_login(MARIADB_ADMIN_URL, None, password)
    result = probe_timed("case_system mariadb password", lambda: case_system.probe(CaseSystemConfig(url=url)))
    assert not result.ok and "authentication failed" in result.detail and "1045" in result.detail
    assert password not in result.detail
    use_case_system(samverkan_home, url)
    exc = extract_error("case_system mariadb password", "case_system")
    message = assert_fails_fast(exc, CaseSystemError, "authentication failed", "127.0.0.1:3306")
    assert password not in message


@pytest.mark.parametrize("where", ["refused", "unknown host"])
def test_case_system_server_unreachable(where, samverkan_home):
    host = f"127.0.0.1:{free_port()}" if where == "refused" else "nonexistent.invalid:5432"
    url = f"postgresql+psycopg://samverkan:pw-Secret-44@{host}/cases"
    result = probe_timed(f"case_system postgresql {where}",
                         lambda: case_system.probe(CaseSystemConfig(url=url)))
    word = "connection refused" if where == "refused" else "unknown host"
    assert not result.ok and host in result.detail and word in result.detail
    assert "pw-Secret-44" not in result.detail
    use_case_system(samverkan_home, url)
    exc = extract_error(f"case_system postgresql {where}", "case_system")
    assert_fails_fast(exc, CaseSystemError, host, word)


# --- police -----------------------------------------------------------------------------------

def test_police_inbox_missing_or_not_a_directory(tmp_path, samverkan_home):
    inbox = tmp_path / "polis" / "inkorg"
    result = probe_timed("police missing inbox", lambda: police.probe(PoliceConfig(inbox=inbox)))
    assert not result.ok and str(inbox) in result.detail and "does not exist" in result.detail
    write_config(samverkan_home, police={"inbox": str(inbox)})
    exc = extract_error("police missing inbox", "police")
    assert_fails_fast(exc, PoliceFileError, str(inbox), "does not exist")
    assert not inbox.exists()

    inbox.parent.mkdir(parents=True)
    inbox.write_text("not a directory", encoding="utf-8")
    result = police.probe(PoliceConfig(inbox=inbox))
    assert not result.ok and "is not a directory" in result.detail
    inbox.unlink()
    inbox.mkdir()
    (inbox / "polis_20260601.csv").write_bytes(b"")
    (inbox / "readme.txt").write_bytes(b"")
    result = police.probe(PoliceConfig(inbox=inbox))
    assert result.ok and "1 polis_*.csv file" in result.detail, result


# --- the cause reaches the gate, the summary and the Prefect artifacts -------------------------

def test_causes_are_scrubbed_of_data_values():
    """A driver's message may quote a value: the cause keeps the class and the gist, not it."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    engine = sa.create_engine(POSTGRES_ADMIN_URL)
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.DataError) as info:
            conn.execute(sa.text("select cast('20130101-2397' as integer)"))
    finally:
        engine.dispose()
    cause = failure_cause(info.value)
    assert cause.startswith("InvalidTextRepresentation: invalid input syntax for type integer")
    assert "2397" not in cause and "[SQL" not in cause
    assert "2397" not in failure_cause(ValueError("bad civicNo 201301012397 in row"))
    assert "2397" not in failure_cause(ValueError("bad civicNo 130101-2397 in row"))
    assert "2397" not in failure_cause(SS12000Error("GET /persons: civicNo 20130101-2397 rejected"))


def test_the_cause_reaches_the_gate_report(samverkan_home, monkeypatch, tmp_path):
    port = free_port()
    missing = tmp_path / "nope.sqlite"
    inbox = tmp_path / "no-inbox"
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    write_config(samverkan_home, ss12000={"base_url": f"http://127.0.0.1:{port}", "token_env": TOKEN_ENV},
                 case_system={"url": f"sqlite:///{missing}"}, police={"inbox": str(inbox)})
    settings = load_settings()
    results = []
    for source in steps.SOURCES:
        try:
            steps.extract(settings, source)
        except Exception as exc:  # noqa: BLE001 - the pipeline does the same with a failed flow
            results.append(steps.failed_extract(source, exc))
    publication = steps.publish(settings, "29990101T000000Z", dt.date(2026, 6, 12), results,
                                dbt_success=False, dbt_detail="not run")
    assert not publication.published
    gate = json.loads((Path(publication.gate_report).parent / "gate.json").read_text(encoding="utf-8"))
    check = next(c for c in gate["checks"] if c["name"] == "extract_batches")
    assert not check["success"]
    for needle in (f"ss12000:ss12000-failed (server 127.0.0.1:{port}", "connection refused",
                   f"case_system:case_system-failed (case system: the SQLite database {missing} does "
                   "not exist", f"police:police-failed (police inbox {inbox} does not exist"):
        assert needle in check["detail"], (needle, check["detail"])
    failed = {f["source"]: f["cause"] for f in gate["failed_extracts"]}
    assert set(failed) == {"ss12000", "case_system", "police"}
    assert "connection refused" in failed["ss12000"] and str(missing) in failed["case_system"]
    html_text = Path(publication.gate_report).read_text(encoding="utf-8")
    assert "connection refused" in html_text and "Misslyckade uttag" in html_text
    report = steps.load_report(results)
    assert "connection refused" in report["ss12000"]["failure_causes"]["ss12000-failed"]


def test_a_pipeline_run_reports_why_each_source_failed(served, samverkan_home, monkeypatch, tmp_path,
                                                        prefect_api_url, capsys):
    """`samverkan run` with three failing sources: nothing is retried, and the cause of each
    failure is in the printed summary, gate.json, gate.html and the run's Prefect artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    from samverkan.cli import run_pipeline
    from samverkan.config import Paths

    missing = tmp_path / "typo.sqlite"
    inbox = tmp_path / "no-inbox"
    monkeypatch.setenv(TOKEN_ENV, WRONG_TOKEN)
    write_config(samverkan_home, ss12000={"base_url": served.base_url, "token_env": TOKEN_ENV},
                 case_system={"url": f"sqlite:///{missing}"}, police={"inbox": str(inbox)})
    before = len(served.requests)
    with timed("pipeline run with three failing sources"):
        # the sources fail after `samverkan check` passed (run refuses to start otherwise)
        code = run_pipeline(Paths(samverkan_home).ensure(), "2026-06-12", check=False)
    out = capsys.readouterr().out
    assert code == 1
    assert len(served.requests) - before == 1  # the 401 was neither retried by the client nor by Prefect
    assert not missing.exists()
    causes = ("HTTP 401", f"127.0.0.1:{served.port}", f"{missing} does not exist",
              f"police inbox {inbox} does not exist")
    assert "What could not be loaded (a source that failed, a file refused):" in out
    for cause in causes:
        assert cause in out, (cause, out)
    assert WRONG_TOKEN not in out

    gates = sorted(Paths(samverkan_home).validation.glob("gate-*/gate.json"))
    gate = json.loads(gates[-1].read_text(encoding="utf-8"))
    assert {f["source"] for f in gate["failed_extracts"]} == {"ss12000", "case_system", "police"}
    gate_html = gates[-1].with_name("gate.html").read_text(encoding="utf-8")
    for cause in causes:
        assert cause in json.dumps(gate, ensure_ascii=False) and cause in gate_html, cause

    with get_client(sync_client=True) as client:
        # the pipeline leaves the run's load report and gate artifacts
        (run,) = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["pipeline"])),
                                       sort=FlowRunSort.START_TIME_DESC, limit=1)
        artifacts = {a.key: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))}
    gate_artifact = str(artifacts["publication-gate"].data)
    load_data = artifacts["load-report"].data
    load_artifact = load_data if isinstance(load_data, str) else json.dumps(load_data, ensure_ascii=False)
    for cause in causes:
        assert cause in gate_artifact and cause in load_artifact, cause
    assert WRONG_TOKEN not in gate_artifact + load_artifact


def test_prefect_does_not_retry_an_extract_that_cannot_succeed(samverkan_home, monkeypatch, prefect_api_url):
    """The extract task retries transient failures only: a refused connection and a refused
    database login end after one attempt, even with retries configured and no delay."""
    from prefect import flow
    from prefect.client.orchestration import get_client

    from flows._extract import extract_task

    require_server("PostgreSQL", "127.0.0.1", 5432)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    write_config(samverkan_home,
                 ss12000={"base_url": f"http://127.0.0.1:{free_port()}", "token_env": TOKEN_ENV},
                 case_system={"url": with_login(POSTGRES_ADMIN_URL, "nosuchrole_ff", None)})

    @flow(name="extract-that-cannot-succeed")
    def extracts() -> dict[str, Any]:
        quick = extract_task.with_options(retries=2, retry_delay_seconds=0)
        futures = {source: quick.submit(source) for source in ("ss12000", "case_system")}
        for future in futures.values():
            future.wait()
        return {source: str(f.task_run_id) for source, f in futures.items()}

    with timed("prefect extract tasks (refused, login refused)"):
        task_runs = extracts()
    with get_client(sync_client=True) as client:
        for source, task_run_id in task_runs.items():
            run = client.read_task_run(uuid.UUID(task_run_id))
            assert run.state.is_failed(), (source, run.state)
            assert run.run_count == 1, (source, run.run_count)
