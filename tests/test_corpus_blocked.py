"""The bad-input corpus, part 2: nights the gate must block.

Each case is a fault that passes the preflight (`samverkan check`, run at the start of every
`samverkan run`) and breaks the night inside the Prefect run: the run ends with exit code 1,
no traceback on the console (it goes to the log file), one console line naming the source,
the host or path and the cause, the cause in the gate report of that run (`gate.json`'s
`failed_extracts` and `gate.html`), and the previous publication byte-identical and current.

One small Malmö serves every case (module scope): the simulator's SS 12000 server behind a
front (`Platform`) that passes requests through until a case gives it a fault for the data
endpoints (every endpoint but /organisations, which the preflight probe reads), a SQLite case
system and a police inbox of its own, a data directory (on a small tmpfs when the tests run as
root, so a case can fill the disk) and a first `samverkan run` that publishes. A case injects
its fault, runs the night and repairs the fault, so the next case starts clean.

Not here: an SS 12000 answer that trickles past `[ss12000] deadline_minutes`. The shortest
deadline the configuration accepts is one minute, too long for this file; the client's
deadline is tested directly in tests/test_ss12000_hostile.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import http.client
import json
import os
import random
import re
import secrets
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import POSTGRES_ADMIN_URL, http_server, require, require_server
from hostile import (
    SEED,
    Installation,
    assert_clean_failure,
    assert_no_traceback,
    cli,
    console,
    install,
    population,
    publication_fingerprint,
    ss12000_data,
    write_sources,
)

RUN_TIMEOUT = 300
DATA_FS_BYTES = 384 << 20  # the tmpfs of the data directory

Fault = Callable[[BaseHTTPRequestHandler], None]


# --- the school platform, with a front that can break it --------------------------------------

class Platform:
    """A front on loopback for the simulated SS 12000 server: passes every request through,
    except that while ``fault`` is set it answers the data endpoints (all but /organisations)
    itself. ``hits`` counts the requests the fault answered."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.fault: Fault | None = None
        self.hits = 0

    def __call__(self, request: BaseHTTPRequestHandler) -> None:
        fault = self.fault
        if fault is not None and not urlsplit(request.path).path.endswith("/organisations"):
            self.hits += 1
            fault(request)
            return
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            connection.request("GET", request.path, headers={
                k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept")})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        answer(request, response.status, body, {k: v for k, v in response.getheaders()
                                                if k.lower() in ("content-type", "date", "retry-after")})


def answer(request: BaseHTTPRequestHandler, status: int, body: bytes,
           headers: dict[str, str] | None = None) -> None:
    request.send_response(status)
    headers = {"Content-Type": "application/json", **(headers or {})}
    for name, value in headers.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def status(code: int, **headers: str) -> Fault:
    body = json.dumps({"code": "injected", "message": f"HTTP {code} from the corpus"}).encode()
    return lambda request: answer(request, code, body, headers)


def ok_body(body: bytes) -> Fault:
    return lambda request: answer(request, 200, body)


def empty_pages(request: BaseHTTPRequestHandler) -> None:
    """A page without records and a fresh pageToken, every time."""
    answer(request, 200, json.dumps({"data": [], "pageToken": uuid.uuid4().hex}).encode())


def pages_of_one(request: BaseHTTPRequestHandler) -> None:
    """A page with one (valid) record and a fresh pageToken, every time."""
    record = {"id": str(uuid.uuid4()), "meta": {"created": "2026-01-01T00:00:00+01:00",
                                                "modified": "2026-01-01T00:00:00+01:00"}}
    answer(request, 200, json.dumps({"data": [record], "pageToken": uuid.uuid4().hex}).encode())


def records(n: int) -> Fault:
    """A last page of ``n`` minimal records."""
    items = [{"id": str(uuid.UUID(int=i + 1)),
              "meta": {"created": "2026-01-01T00:00:00+01:00", "modified": "2026-01-01T00:00:00+01:00"}}
             for i in range(n)]
    return ok_body(json.dumps({"data": items, "pageToken": None}).encode())


def redirect_to(host: str) -> Fault:
    def fault(request: BaseHTTPRequestHandler) -> None:
        port = request.server.server_address[1]
        answer(request, 302, b"", {"Location": f"http://{host}:{port}{request.path}"})
    return fault


# --- the world every case starts from ---------------------------------------------------------

@dataclass
class World:
    install: Installation
    platform: Platform
    platform_host: str  # host:port of the front, as messages name it
    sqlite: Path
    inbox: Path
    config_text: str
    tmpfs: bool
    repairs: list[Callable[[], None]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return self.install.env

    def repair(self) -> None:
        """Undo what a case broke: the platform's fault, the configuration, then the case's own
        repairs (last first)."""
        self.platform.fault = None
        self.install.config.write_text(self.config_text, encoding="utf-8")
        while self.repairs:
            self.repairs.pop()()

    def set_ss12000(self, **values: Any) -> None:
        """Set keys of the [ss12000] section for this case."""
        lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        self.install.edit_config("[ss12000]\n", "[ss12000]\n" + lines)


@contextlib.contextmanager
def data_filesystem(root: Path) -> Iterator[bool]:
    """A small tmpfs at ``root`` when the tests run as root (so a case can fill it); a plain
    directory otherwise. Yields whether it is a tmpfs."""
    root.mkdir(parents=True)
    if os.geteuid() != 0:
        yield False
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DATA_FS_BYTES},mode=0750", "tmpfs", str(root)],
                   check=True, capture_output=True)
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False, capture_output=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Iterator[World]:
    from samverkan.simulator.ss12000_server import serve

    root = tmp_path_factory.mktemp("corpus-blocked")
    sqlite, inbox = write_sources(root / "systems")
    token = secrets.token_urlsafe(16)
    with serve(ss12000_data(), token) as simulator, \
            data_filesystem(root / "fs") as tmpfs:
        platform = Platform(simulator.base_url)
        with http_server(platform) as front:
            port = front.server_address[1]
            inst = install(root / "fs" / "data", f"http://127.0.0.1:{port}", token, sqlite, inbox,
                           prefect_api_url)
            # a source that stays down fails the night after the client's own retries, not
            # after Prefect's (30 s and 120 s later)
            inst.edit_config("[general]\n", "[general]\nextract_retries = 0\n")
            first = cli(inst.env, "run", timeout=900)
            assert first.returncode == 0, console(first)[-4000:]
            assert inst.paths.current_publication.exists()
            yield World(inst, platform, f"127.0.0.1:{port}", sqlite, inbox,
                        inst.config.read_text(encoding="utf-8"), tmpfs)


# --- the faults that need more than a fault answer --------------------------------------------

PNR_TABLE = "t_klient_text"


def view_cast_fails(world: World) -> None:
    """The case system moves to PostgreSQL, where the klient view casts a text column to
    bigint and a row after the first holds a personnummer there."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    import sqlalchemy as sa

    from samverkan.simulator.case_system_db import write_case_system

    schema = f"corpus_{uuid.uuid4().hex[:8]}"
    write_case_system(population(), POSTGRES_ADMIN_URL, schema=schema)
    engine = sa.create_engine(POSTGRES_ADMIN_URL)

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        engine.dispose()

    world.repairs.append(drop)
    with engine.begin() as conn:
        conn.execute(sa.text(f"create table {schema}.{PNR_TABLE} as select cast(klient_id as varchar(40)) "
                             f"as klient_id, personnummer, fornamn, efternamn, skyddad_identitet, "
                             f"andrad_tid from {schema}.t_klient"))
        good, bad = conn.execute(sa.text(
            f"select klient_id, personnummer from {schema}.{PNR_TABLE} "
            r"where personnummer ~ '^\d{8}-\d{4}$' order by klient_id limit 2")).fetchall()
        # both newer than anything loaded, the personnummer's row last
        conn.execute(sa.text(
            f"update {schema}.{PNR_TABLE} set andrad_tid = (select max(andrad_tid) from "
            f"{schema}.t_klient) + interval '1 day' + (case when klient_id = :bad then interval "
            f"'1 minute' else interval '0 minutes' end), klient_id = (case when klient_id = :bad "
            "then personnummer else klient_id end) where klient_id in (:good, :bad)"),
            {"good": good[0], "bad": bad[0]})
        conn.execute(sa.text(f"drop view {schema}.klient"))
        conn.execute(sa.text(
            f"create view {schema}.klient as select cast(klient_id as bigint) as klient_id, "
            "personnummer, fornamn, efternamn, skyddad_identitet, andrad_tid "
            f"from {schema}.{PNR_TABLE}"))
    world.install.edit_config(f'url = "sqlite:///{world.sqlite}"',
                              f'url = "{POSTGRES_ADMIN_URL}"\nschema = "{schema}"')
    world.install.extra["personnummer"] = bad[1]


POLICE_DATE = "20260611"


def police_missing_column(world: World) -> None:
    """The night's only new police file lacks the Stadsdel column."""
    last = sorted(world.inbox.glob("polis_*.csv"))[-1]
    rows = [line.split(";") for line in last.read_text(encoding="utf-8-sig").splitlines()]
    drop = rows[0].index("Stadsdel")
    new = world.inbox / f"polis_{POLICE_DATE}.csv"
    new.write_text("\n".join(";".join(r[:drop] + r[drop + 1:]) for r in rows) + "\n", encoding="utf-8")

    def release() -> None:
        new.unlink(missing_ok=True)
        for refused in (world.inbox / "quarantine").glob(f"polis_{POLICE_DATE}*"):
            refused.unlink()

    world.repairs.append(release)


def disk_full(world: World) -> None:
    """The data directory's file system fills up: only a filler file's worth is left free."""
    require(world.tmpfs, "filling the data directory's disk needs a tmpfs (the tests run as root in CI)")
    filler = world.install.home / "filler.bin"
    world.repairs.append(lambda: filler.unlink(missing_ok=True))
    with filler.open("wb") as out:
        chunk = b"\0" * (1 << 20)
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
                out.flush()
    with contextlib.suppress(OSError), filler.open("ab") as out:  # the last partial chunk
        while True:
            out.write(b"\0" * 4096)
            out.flush()


def disk_fills_during_the_run(world: World) -> None:
    """A big new police file (200 000 rows) and a data directory with 256 KiB left: the run
    gets past the preflight and fills the disk while it lands the file."""
    require(world.tmpfs, "filling the data directory's disk needs a tmpfs (the tests run as root in CI)")
    last = sorted(world.inbox.glob("polis_*.csv"))[-1]
    lines = last.read_text(encoding="utf-8-sig").splitlines()
    header, row = lines[0], lines[1].split(";")
    new = world.inbox / f"polis_{POLICE_DATE}.csv"
    world.repairs.append(lambda: new.unlink(missing_ok=True))
    draw = random.Random(SEED)
    with new.open("w", encoding="utf-8") as out:
        out.write(header + "\n")
        for _ in range(200_000):
            row[0] = f"5000-K{draw.randrange(10**6):06d}-26"
            out.write(";".join(row) + "\n")
    filler = world.install.home / "filler.bin"
    world.repairs.append(lambda: filler.unlink(missing_ok=True))
    free = shutil.disk_usage(world.install.home).free
    with filler.open("wb") as out:
        os.posix_fallocate(out.fileno(), 0, free - (256 << 10))


# --- the corpus -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    inject: Callable[[World], None]
    source: str  # the source whose cause the gate report names
    needles: tuple[str, ...]  # of the cause line; {platform} is the front's host:port
    gate: bool = True  # the cause is in gate.json and gate.html (a full disk cannot write them)
    preflight: bool = True  # the night gets past the preflight (a full disk stops it before)
    hits: int | None = None  # requests the platform's fault answers
    raised: bool = True  # an exception ended the extract: its traceback is in the log file


def _fault(fault: Fault, **ss12000: Any) -> Callable[[World], None]:
    def inject(world: World) -> None:
        if ss12000:
            world.set_ss12000(**ss12000)
        world.platform.fault = fault
    return inject


CASES = [
    Case("ss12000-403-rights-lost-mid-run", _fault(status(403)), "ss12000",
         ("{platform}", "GET /persons", "HTTP 403 Forbidden")),
    Case("ss12000-500-forever", _fault(status(500, **{"Retry-After": "0"})), "ss12000",
         ("{platform}", "GET /persons", "HTTP 500", "5 attempts"), hits=5),
    Case("ss12000-200-not-json", _fault(ok_body(b"<html><body>Service window</body></html>")),
         "ss12000", ("{platform}", "GET /persons page 1", "not valid JSON")),
    Case("ss12000-200-truncated-json", _fault(ok_body(b'{"data": [{"id": "a1", "meta": {"modi')),
         "ss12000", ("{platform}", "GET /persons page 1", "not valid JSON")),
    Case("ss12000-endless-empty-pages", _fault(empty_pages), "ss12000",
         ("{platform}", "GET /persons page 50", "50 pages in a row without a record")),
    Case("ss12000-page-over-the-limit", _fault(records(5001)), "ss12000",
         ("{platform}", "GET /persons page 1", "holds 5,001 records, more than the limit of 5,000")),
    Case("ss12000-more-pages-than-max-records", _fault(pages_of_one, max_records=5000),
         "ss12000", ("{platform}", "GET /persons page 3", "more than 2 pages", "max_records")),
    Case("ss12000-redirect-to-another-host", _fault(redirect_to("127.0.0.2")), "ss12000",
         ("{platform}", "127.0.0.2", "redirects", "another server"), hits=1),
    Case("case-system-view-cast-fails-on-a-personnummer", view_cast_fails, "case_system",
         ("case system", "127.0.0.1:5432", "cannot read view", "klient", "invalid input syntax")),
    Case("police-only-new-file-misses-a-column", police_missing_column, "police",
         (f"polis_{POLICE_DATE}.csv", "Stadsdel", "quarantine"), raised=False),
    Case("data-directory-disk-fills-during-the-run", disk_fills_during_the_run, "police",
         ("{home}/landing/police", "No space left on device")),
    # the log file cannot be written either: the console says so, in one line
    Case("data-directory-disk-full-at-the-start", disk_full, "",
         ("cannot use {home}/", "No space left on device"), gate=False, preflight=False, raised=False),
]


def _gate_dir(result: subprocess.CompletedProcess) -> Path:
    match = re.search(r"see the gate report (\S+)", console(result))
    assert match, f"the summary names no gate report:\n{console(result)[-3000:]}"
    return Path(match.group(1)).parent


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_night_the_gate_must_block(world: World, case: Case) -> None:
    paths = world.install.paths
    before = publication_fingerprint(paths)
    current = paths.current_publication.resolve()
    started = dt.datetime.now(dt.UTC)
    world.platform.hits = 0
    log_file = paths.logs / "samverkan.log"
    log_start = log_file.stat().st_size
    try:
        case.inject(world)
        result = cli(world.env, "run", timeout=RUN_TIMEOUT)
    finally:
        world.repair()
    needles = tuple(n.format(platform=world.platform_host, home=world.install.home)
                    for n in case.needles)
    line = assert_clean_failure(result, *((case.source,) if case.source else ()), *needles)
    assert publication_fingerprint(paths) == before, line
    assert paths.current_publication.resolve() == current
    if case.preflight:  # it broke inside the run, after the preflight
        assert "Checks passed" in console(result), console(result)[-3000:]
    if case.raised:
        with log_file.open("rb") as log:  # the details are kept, in the log file
            log.seek(log_start)
            assert b"Traceback (most recent call last)" in log.read()
    if case.hits is not None:
        assert world.platform.hits == case.hits, world.platform.hits
    if case.gate:
        gate = _gate_dir(result)
        doc = json.loads((gate / "gate.json").read_text(encoding="utf-8"))
        causes = [f["cause"] for f in doc.get("failed_extracts", []) if f["source"] == case.source]
        assert any(all(n in c for n in needles) for c in causes), (needles, doc.get("failed_extracts"))
        page = html.unescape((gate / "gate.html").read_text(encoding="utf-8"))
        assert any(c in page for c in causes), causes
        artifacts = "\n".join(prefect_records(started)["artifacts"])
        assert any(c in artifacts for c in causes), (causes, artifacts[-3000:])
    if "personnummer" in world.install.extra:
        assert_nowhere(world.install.extra.pop("personnummer"), world, result, started)


# --- a personnummer in a driver's message goes nowhere -----------------------------------------

def _forms(pnr: str) -> list[str]:
    digits = re.sub(r"\D", "", pnr)
    return [pnr, digits, digits[-10:], f"{digits[-10:-4]}-{digits[-4:]}"]


def _strings(value: Any) -> Iterator[str]:
    """Every string in ``value``, JSON texts decoded (an artifact's table is a JSON text)."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            yield value
            return
        if isinstance(decoded, str):
            yield decoded
        else:
            yield from _strings(decoded)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


def prefect_records(since: dt.datetime) -> dict[str, list[str]]:
    """What Prefect's own database holds of the runs started since ``since``: the flow and
    task runs with every state (message and data), their logs and their artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterStartTime,
        LogFilter,
        LogFilterFlowRunId,
    )

    found: dict[str, list[str]] = {"runs": [], "logs": [], "artifacts": []}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            start_time=FlowRunFilterStartTime(after_=since - dt.timedelta(seconds=5))))
        assert runs, "no Prefect flow run of the night"
        ids = [r.id for r in runs]
        for run in runs:
            found["runs"].append(run.model_dump_json())
            found["runs"] += [s.model_dump_json() for s in client.read_flow_run_states(run.id)]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        for task_run in tasks:
            found["runs"].append(task_run.model_dump_json())
            found["runs"] += [s.model_dump_json() for s in client.read_task_run_states(task_run.id)]
        offset = 0
        while batch := client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)),
                                        limit=200, offset=offset):
            found["logs"] += [log.message for log in batch]
            offset += len(batch)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
        for artifact in artifacts:
            found["artifacts"] += [*_strings(artifact.data), artifact.description or ""]
    assert found["logs"], "no Prefect logs of the night"
    assert found["artifacts"], "no Prefect artifacts of the night"
    return found


def assert_nowhere(pnr: str, world: World, result: subprocess.CompletedProcess,
                   since: dt.datetime) -> None:
    paths = world.install.paths
    gate = _gate_dir(result)
    places = {
        "console": console(result),
        "log file": (paths.logs / "samverkan.log").read_text(encoding="utf-8", errors="replace"),
        "gate.json": (gate / "gate.json").read_text(encoding="utf-8"),
        "gate.html": (gate / "gate.html").read_text(encoding="utf-8"),
        **{f"Prefect's database ({kind})": "\n".join(texts)
           for kind, texts in prefect_records(since).items()},
    }
    for place, text in places.items():
        for form in _forms(pnr):
            assert form not in text, f"the personnummer is in the {place}"


# --- anomalies: a case system that suddenly delivers nothing -----------------------------------

def test_a_case_system_that_empties_blocks_until_confirmed(world: World) -> None:
    """All views emptied: the anomaly blocks (source_volumes); --confirm-anomalies lets it
    pass once and makes the new volumes the baseline, so the next night needs no confirmation.
    Last in the file: it leaves the case system empty."""
    paths = world.install.paths
    before = publication_fingerprint(paths)
    backup = world.sqlite.with_suffix(".full")
    shutil.copyfile(world.sqlite, backup)
    with sqlite3.connect(world.sqlite) as conn:
        for (table,) in conn.execute("select name from sqlite_master where type = 'table'").fetchall():
            conn.execute(f'delete from "{table}"')  # noqa: S608 - the simulator's own table names
    second = cli(world.env, "run", timeout=RUN_TIMEOUT)
    line = assert_clean_failure(second, "source_volumes")
    assert "FAIL" in line and "view klient has 0 rows; it had" in line and "--confirm-anomalies" in line
    assert publication_fingerprint(paths) == before  # the old figures stand, and the run says so
    confirmed = cli(world.env, "run", "--confirm-anomalies", timeout=RUN_TIMEOUT)
    assert confirmed.returncode == 0, console(confirmed)[-4000:]
    assert_no_traceback(confirmed)
    line = next(x for x in console(confirmed).splitlines() if "source_volumes" in x)
    assert "[ok  ] source_volumes: confirmed by the operator" in line and "view klient has 0 rows" in line
    # the warehouse keeps what was loaded: nothing new to publish, and the confirmed volumes
    # are the new baseline
    assert publication_fingerprint(paths) == before
    again = cli(world.env, "run", timeout=RUN_TIMEOUT)
    assert again.returncode == 0, console(again)[-4000:]
    assert_no_traceback(again)
    assert publication_fingerprint(paths) == before
    shutil.copyfile(backup, world.sqlite)
