"""Shared fixtures: real database servers (fail, never skip, under CI=true), isolated homes."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from samverkan.simulator.population import DEFAULT_PUPILS, DEFAULT_SEED

# The report's browser fixtures (chromium, recorder): test_report_browser.py, e2e_report_browser.py.
pytest_plugins = ["browser_tools"]

TEST_KEY = "samverkan-test-key-0123456789-abcdefghij"
POSTGRES_ADMIN_URL = os.environ.get("SAMVERKAN_TEST_POSTGRES_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("SAMVERKAN_TEST_MARIADB_URL",
                                   "mysql+pymysql://root@127.0.0.1:3306/test")

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

# The suite runs on three workers (pytest-xdist, see samverkan/bootstrap.py). Each worker gets its
# own Prefect home, so the workers' Prefect servers never share one SQLite database.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    _base = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect"))
    os.environ["PREFECT_HOME"] = str(_base.parent / f"{_base.name}-{_WORKER}")

# Prefect stops its temporary (ephemeral) server at interpreter exit and logs that line to a
# console stream pytest has already closed; do not print a logging traceback for it.
logging.raiseExceptions = False


# The files that build whole worlds, longest first. pytest-xdist (`--dist loadfile`) hands whole
# files to the workers in collection order, so starting the long ones first keeps the workers'
# finishing times close (the short files fill the gaps at the end).
LONGEST_FIRST = ("test_end_to_end.py", "test_corpus_blocked.py", "test_incremental_nightly.py",
                 "test_source_changes.py", "test_zones.py", "test_operations.py",
                 "test_corpus_quarantine.py", "test_any_municipality.py", "test_dbt_parsing.py",
                 "test_prefect_server.py", "test_dbt_project.py", "test_corpus_preflight.py",
                 "test_recovery.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file


Handler = Callable[[BaseHTTPRequestHandler], None]


@contextlib.contextmanager
def http_server(handle: Handler, host: str = "127.0.0.1",
                certificate: tuple[Path, Path] | None = None) -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on ``host`` whose every GET and POST is answered by ``handle``; HTTPS
    with ``certificate`` (the certificate and key files, e.g. :func:`self_signed_certificate`)."""

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                handle(self)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), _Handler)
    server.daemon_threads = True
    if certificate is not None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.requests = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no one trusts (and its key), as PEM files in ``directory``:
    a TLS server nobody's trust store knows."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require(available: bool, message: str) -> None:
    """Skip locally when something a test needs is missing; under CI that is a failure."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " (CI=true: tests must not skip)")
    pytest.skip(message)


def require_server(name: str, host: str, port: int) -> None:
    require(_reachable(host, port), f"{name} is not reachable on {host}:{port}")


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema on the real server; the URL selects it via search_path."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(POSTGRES_ADMIN_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        engine.dispose()


@pytest.fixture
def mariadb_database_url() -> Iterator[str]:
    """A fresh MariaDB database on the real server."""
    require_server("MariaDB", "127.0.0.1", 3306)
    import sqlalchemy as sa

    database = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(MARIADB_ADMIN_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"create database {database} character set utf8mb4"))
    try:
        yield MARIADB_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}?charset=utf8mb4"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop database {database}"))
        engine.dispose()


# The demo municipality (Stockholm): its identity and reference files, for tests that build or
# configure an installation without running the demo.
STOCKHOLM_REFERENCE = Path(ROOT_DIR := os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) \
    / "samverkan" / "simulator" / "municipalities" / "stockholm"
MUNICIPALITY_TOML = ('[municipality]\ncode = "0180"\nname = "Stockholm"\n'
                     'organisation_number = "212000-0142"\n\n')
MUNICIPALITY_VARS = {"municipality_code": "0180", "municipality_name": "Stockholm",
                     "municipality_organisation_number": "212000-0142"}


def write_reference(home: Path) -> Path:
    """Stockholm's reference files in ``home/reference`` (what the demo writes)."""
    import shutil

    target = home / "reference"
    target.mkdir(parents=True, exist_ok=True)
    for source in STOCKHOLM_REFERENCE.glob("ref_*.csv"):
        shutil.copyfile(source, target / source.name)
    return target


def write_config(home: Path, body: str = "") -> Path:
    """``home/samverkan.toml``: the demo municipality's [municipality] section, then ``body``;
    and its reference files."""
    write_reference(home)
    path = home / "samverkan.toml"
    path.write_text(MUNICIPALITY_TOML + body, encoding="utf-8")
    return path


@pytest.fixture
def samverkan_home(tmp_path, monkeypatch):
    """An isolated data directory and a test key for code that reads the environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SAMVERKAN_HOME", str(home))
    monkeypatch.setenv("SAMVERKAN_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.delenv("SAMVERKAN_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.delenv("SAMVERKAN_CONFIG", raising=False)
    return home


# --- the demo world, shared by the end-to-end and lägesbild tests ------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The demo's default municipality (seed, about 5 000 pupils, every report of concern and
# suspicion), with half the default attendance volume: two recorded lessons a pupil and day
# instead of four. The attendance feed's size is not what these tests are about, and it is most
# of the demo's time (the README's demo runs the full feed).
DEMO_LESSONS_PER_DAY = 2


@dataclass
class DemoWorld:
    home: Path
    paths: Any
    stdout: str
    stderr: str
    returncode: int
    prefect_api_url: str
    seed: int = DEFAULT_SEED
    pupils: int = DEFAULT_PUPILS
    lessons_per_day: int = DEMO_LESSONS_PER_DAY

    def env(self) -> dict[str, str]:
        """The environment of a command run on this world (its own key file, its config, the
        test worker's Prefect server)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("SAMVERKAN_PSEUDONYM_KEY", "SAMVERKAN_PSEUDONYM_KEY_FILE", "SAMVERKAN_CONFIG")}
        env["SAMVERKAN_HOME"] = str(self.home)
        env["PREFECT_API_URL"] = self.prefect_api_url
        return env


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """One Prefect server (temporary database) per test worker, for the flows the tests run
    in-process and the `samverkan` commands they start as subprocesses: each of those would
    otherwise start its own temporary server (10-15 s each)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory, prefect_api_url: str) -> DemoWorld:
    """`samverkan demo` (the default municipality, DEMO_LESSONS_PER_DAY) in a fresh data
    directory, no key configured."""
    from samverkan.config import Paths

    home = tmp_path_factory.mktemp("e2e") / "data"
    world = DemoWorld(home, Paths(home), "", "", -1, prefect_api_url)
    result = subprocess.run([sys.executable, "-m", "samverkan.cli", "demo", "--seed", str(world.seed),
                             "--pupils", str(world.pupils), "--lessons-per-day", str(world.lessons_per_day)],
                            capture_output=True, text=True, env=world.env(), timeout=1200, cwd=ROOT)
    world.stdout, world.stderr, world.returncode = result.stdout, result.stderr, result.returncode
    return world


class SnapshotReader(threading.Thread):
    """An analyst: opens the analysts' snapshot (analytics/current/analytics.duckdb) read-only
    and queries it, again and again, until stopped; records every error."""

    def __init__(self, snapshot: Path) -> None:
        super().__init__(daemon=True)
        self.snapshot = snapshot
        self.stop = threading.Event()
        self.reads = 0
        self.errors: list[str] = []

    def run(self) -> None:
        import duckdb

        while not self.stop.is_set():
            try:
                conn = duckdb.connect(str(self.snapshot), read_only=True)
                try:
                    cells = conn.execute("select count(*) from marts.published_indicators").fetchone()[0]
                    pupils = conn.execute(
                        "select count(distinct person_pseudonym) from marts.fct_pupil_periods").fetchone()[0]
                finally:
                    conn.close()
                if not (cells > 0 and pupils > 0):
                    self.errors.append("empty snapshot tables")
                self.reads += 1
            except Exception as exc:  # noqa: BLE001 - recorded and asserted on by the tests
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(0.3)


@dataclass
class LagesbildRun:
    process: subprocess.CompletedProcess
    snapshot: Path
    reader: SnapshotReader
    indicator_version: str


@pytest.fixture(scope="session")
def lagesbild_run(demo_world: DemoWorld) -> LagesbildRun:
    """`samverkan lagesbild` on the demo world, as the Monday schedule starts it: in its own
    process it rebuilds the lägesbild models in the analytics warehouse and publishes, while an
    analyst reads the read-only snapshot of that warehouse in the analysts' folder."""
    assert demo_world.returncode == 0, demo_world.stdout[-2000:] + demo_world.stderr[-3000:]
    current = demo_world.paths.current_publication.resolve()
    snapshot = (demo_world.paths.analysts / "current").resolve() / "analytics.duckdb"
    reader = SnapshotReader(snapshot)
    reader.start()
    try:
        process = subprocess.run([sys.executable, "-m", "samverkan.cli", "lagesbild"],
                                 capture_output=True, text=True, env=demo_world.env(), timeout=900,
                                 cwd=ROOT)
    finally:
        reader.stop.set()
        reader.join(timeout=60)
    return LagesbildRun(process, snapshot, reader, current.name)
