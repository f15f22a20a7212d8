"""The bad-input corpus, part 1: every fault `samverkan run` must refuse in its preflight check,
before Prefect starts (configuration, pseudonym key, data directory, reference files,
environment and the three sources), through the real `samverkan` command in a subprocess.

Each case is one row of :data:`CASES`: what breaks, the command, and the needles the one console
line that reports it must hold (the check, the file, key, host or path, and the cause). One
parametrized test runs them all on a fresh installation of the small Malmö (tests/hostile.py)
and asserts, for every case: exit code 1; no traceback on the console; that one line; no
personnummer, key, token or password on the console; and that the run stopped before Prefect
("Checks passed" absent, nothing in landing, nothing published).

The sources are real: the simulator's SS 12000 server on 127.0.0.1 (and, for the faults of a
platform, an HTTPS server with a self-signed certificate, an HTML page, a closed port, a host
under .invalid), a SQLite case system on disk (a copy per case that breaks it; a second process
holding it locked), the PostgreSQL and MariaDB servers, and the police inbox on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    MARIADB_ADMIN_URL,
    POSTGRES_ADMIN_URL,
    http_server,
    require_server,
    self_signed_certificate,
)
from hostile import (
    KEY,
    ROOT,
    TOKEN_ENV,
    Installation,
    assert_clean_failure,
    cli,
    console,
    copy_sources,
    install,
    publication_fingerprint,
    ss12000_data,
    write_sources,
)

TOKEN = "corpus-preflight-token-4f1b9c"  # noqa: S105 - the simulator's test token
WRONG_TOKEN = "corpus-preflight-wrong-token-77d2"  # noqa: S105 - a test credential
PASSWORD = "pw-Corpus-Secret-51"  # noqa: S105 - a test credential, never to be echoed
SECRETS = (KEY, TOKEN, WRONG_TOKEN, PASSWORD)
RUN = ("run",)
# What a personnummer or samordningsnummer looks like on the console: ten or twelve digits
# (a separator before the last four allowed) whose date part is a date (day + 60 for a
# samordningsnummer). An organisation number (month 20 or more) is not one.
IDENTIFIER = re.compile(r"(?<!\d)(?:(?:19|20)?(\d{2})(\d{2})(\d{2}))[-+]?\d{4}(?!\d)")


def _looks_like_personnummer(text: str) -> list[str]:
    found = []
    for match in IDENTIFIER.finditer(text):
        month, day = int(match.group(2)), int(match.group(3))
        if 1 <= month <= 12 and (1 <= day <= 31 or 61 <= day <= 91):
            found.append(match.group(0))
    return found


# --- what a case can break ---------------------------------------------------------------------

@dataclass
class World:
    """One case's installation and what it may break; ``values`` fill the needles' {names}."""

    inst: Installation
    tmp: Path
    platform: Any
    https_url: str
    html_url: str
    closed_port: int
    stack: contextlib.ExitStack
    values: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return self.inst.env

    def private_sources(self) -> None:
        """A copy of the case system and the police inbox this case may break (once)."""
        if self.inst.case_db.parent == self.tmp / "sources":
            return
        sqlite, inbox = copy_sources(self.inst.case_db, self.inst.inbox, self.tmp / "sources")
        self.inst.edit_config(str(self.inst.case_db), str(sqlite))
        self.inst.edit_config(str(self.inst.inbox), str(inbox))
        self.inst.case_db, self.inst.inbox = sqlite, inbox
        self.values.update(case_db=str(sqlite), inbox=str(inbox))


Setup = Callable[[World], None]


def toml(old: str, new: str) -> Setup:
    """Replace ``old`` by ``new`` in samverkan.toml."""
    return lambda w: w.inst.edit_config(old, new)


def toml_bytes(old: bytes, new: bytes) -> Setup:
    def setup(w: World) -> None:
        data = w.inst.config.read_bytes()
        assert old in data
        w.inst.config.write_bytes(data.replace(old, new, 1))
    return setup


def env_set(name: str, value: str) -> Setup:
    return lambda w: w.env.__setitem__(name, value)


def env_del(name: str) -> Setup:
    return lambda w: w.env.pop(name)


def ref_bytes(name: str, data: bytes) -> Setup:
    """The reference file ``name`` holds exactly ``data``."""
    return lambda w: (w.inst.home / "reference" / name).write_bytes(data)


def ref_edit(name: str, old: str, new: str) -> Setup:
    def setup(w: World) -> None:
        path = w.inst.home / "reference" / name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} is not in {path}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return setup


def ref_delete(name: str) -> Setup:
    return lambda w: (w.inst.home / "reference" / name).unlink()


def no_reference_folder(w: World) -> None:
    shutil.rmtree(w.inst.home / "reference")


def no_config_file(w: World) -> None:
    w.inst.config.unlink()


def config_names_a_missing_file(w: World) -> None:
    missing = w.tmp / "etc" / "samverkan.toml"
    w.env["SAMVERKAN_CONFIG"] = str(missing)
    w.values["missing"] = str(missing)


def key_file(mode: int, text: str = KEY) -> Setup:
    def setup(w: World) -> None:
        path = w.tmp / "secrets" / "pseudonym.key"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        path.chmod(mode)
        del w.env["SAMVERKAN_PSEUDONYM_KEY"]
        w.env["SAMVERKAN_PSEUDONYM_KEY_FILE"] = str(path)
        w.values["key_file"] = str(path)
    return setup


def key_file_missing(w: World) -> None:
    path = w.tmp / "secrets" / "pseudonym.key"
    del w.env["SAMVERKAN_PSEUDONYM_KEY"]
    w.env["SAMVERKAN_PSEUDONYM_KEY_FILE"] = str(path)
    w.values["key_file"] = str(path)


def data_directory_cannot_be_written(w: World) -> None:
    """The data directory cannot be created or written: a path below a regular file (root
    writes into a read-only directory anyway), or, for another user, a read-only directory. The
    configuration is named by SAMVERKAN_CONFIG, so it is the data directory that fails."""
    w.env["SAMVERKAN_CONFIG"] = str(w.inst.config)
    if os.geteuid() == 0:
        blocker = w.tmp / "not-a-directory"
        blocker.write_text("x", encoding="utf-8")
        home = blocker / "data"
        w.env["SAMVERKAN_HOME"] = str(home)
    else:
        home = w.inst.home
        home.chmod(0o500)
        w.stack.callback(home.chmod, 0o700)
    w.values["data_home"] = str(home)


LOCK_HOLDER = """
import json, sys
from pathlib import Path
from samverkan.config import Paths
from samverkan.locks import run_lock
with run_lock(Paths(Path(sys.argv[1])), "samverkan run") as holder:
    print(json.dumps(holder), flush=True)
    sys.stdin.read()
"""


def _holding_process(w: World, script: str, *args: str) -> str:
    """A second, real process running ``script``; returns the first line it prints (once it
    holds what it holds); it ends when the case ends."""
    process = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=ROOT, env=w.env)

    def end() -> None:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    w.stack.callback(end)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the holding process ended before it held anything"
    return line


def run_in_progress(w: World) -> None:
    holder = json.loads(_holding_process(w, LOCK_HOLDER, str(w.inst.home)))
    w.values.update(pid=str(holder["pid"]), started=holder["started"])


SQLITE_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("begin exclusive")
print("locked", flush=True)
sys.stdin.read()
conn.execute("rollback")
"""


def sqlite_locked(w: World) -> None:
    w.private_sources()
    _holding_process(w, SQLITE_LOCKER, str(w.inst.case_db))


def case_url(url: str) -> Setup:
    def setup(w: World) -> None:
        old = f'url = "sqlite:///{w.inst.case_db}"'
        w.inst.edit_config(old, f'url = "{url.format(**w.values)}"')
    return setup


def sqlite_missing(w: World) -> None:
    path = w.tmp / "typo" / "rapprot.sqlite"
    case_url(f"sqlite:///{path}")(w)
    w.values["missing"] = str(path)
    w.stack.callback(lambda: _assert_not_created(path))


def _assert_not_created(path: Path) -> None:
    assert not path.exists() and not path.parent.exists(), f"{path} was created"


def _sqlite(w: World, *statements: str) -> None:
    w.private_sources()
    with contextlib.closing(sqlite3.connect(w.inst.case_db)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


def view_missing(w: World) -> None:
    _sqlite(w, "drop view insats")


def column_missing(w: World) -> None:
    w.private_sources()
    with contextlib.closing(sqlite3.connect(w.inst.case_db)) as conn:
        sql = conn.execute("select sql from sqlite_master where name = 'utredning'").fetchone()[0]
    assert " resultat, " in sql, sql
    _sqlite(w, "drop view utredning", sql.replace(" resultat, ", " "))


def postgres_role_refused(w: World) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    import sqlalchemy as sa

    role = f"nosuchrole_{uuid.uuid4().hex[:8]}"
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(username=role, password=PASSWORD)
    case_url(url.render_as_string(hide_password=False))(w)
    w.values["role"] = role


def mariadb_wrong_password(w: World) -> None:
    require_server("MariaDB", "127.0.0.1", 3306)
    import sqlalchemy as sa

    url = sa.engine.make_url(MARIADB_ADMIN_URL).set(password=PASSWORD)
    case_url(url.render_as_string(hide_password=False))(w)


def case_server_not_listening(w: World) -> None:
    case_url(f"postgresql+psycopg://reader:{PASSWORD}@127.0.0.1:{w.closed_port}/rapport")(w)


def base_url(url: str) -> Setup:
    def setup(w: World) -> None:
        w.inst.edit_config(f'base_url = "{w.inst.base_url}"', f'base_url = "{url.format(**w.values)}"')
    return setup


def inbox_missing(w: World) -> None:
    inbox = w.tmp / "polis" / "inkorg"
    w.inst.edit_config(str(w.inst.inbox), str(inbox))
    w.values["missing"] = str(inbox)
    w.stack.callback(lambda: _assert_not_created(inbox))


def inbox_is_a_file(w: World) -> None:
    path = w.tmp / "inkorg.csv"
    path.write_text("Diarienummer;Brottskod\n", encoding="utf-8")
    w.inst.edit_config(str(w.inst.inbox), str(path))
    w.values["file"] = str(path)


# --- the corpus --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    breaks: str          # what is wrong, as an operator would say it
    setup: Setup
    needles: tuple[str, ...]  # what the one console line must hold ({names} from World.values)
    file: str | None = None   # the file the user fixes, named on that line
    command: tuple[str, ...] = RUN


ORGS = "212000-1124"
CASES: tuple[Case, ...] = (
    # configuration
    Case("config-file-missing", "there is no samverkan.toml in the data directory",
         no_config_file, ("FAIL", "configuration", "no configuration file", "{config}",
                          "samverkan init"), "samverkan.toml"),
    Case("config-env-names-missing-file", "SAMVERKAN_CONFIG names a file that does not exist",
         config_names_a_missing_file, ("FAIL", "configuration", "SAMVERKAN_CONFIG", "{missing}",
                                       "does not exist"), "samverkan.toml"),
    Case("config-toml-syntax-error", "a quote is missing in samverkan.toml (line 3)",
         toml('name = "Malmö"', 'name = "Malmö'),
         ("FAIL", "configuration", "{config}", "not valid TOML", "line 3"), "samverkan.toml"),
    Case("config-not-utf8", "samverkan.toml is saved as Latin-1 (Malmö on line 3)",
         toml_bytes("Malmö".encode(), "Malmö".encode("latin-1")),
         ("FAIL", "configuration", "{config}", "UTF-8", "line 3"), "samverkan.toml"),
    Case("config-unknown-key", "a key is misspelt (retention_dayz)",
         toml("[general]\n", "[general]\nretention_dayz = 30\n"),
         ("FAIL", "configuration", "{config}", "unknown key 'retention_dayz' in [general]",
          "did you mean 'retention_days'?"), "samverkan.toml"),
    Case("config-unknown-section", "a section is misspelt ([generl])",
         toml("[general]", "[generl]"),
         ("FAIL", "configuration", "{config}", "unknown section [generl]",
          "did you mean 'general'?"), "samverkan.toml"),
    Case("config-wrong-type", 'retention_days = "thirty"',
         toml("[general]\n", '[general]\nretention_days = "thirty"\n'),
         ("FAIL", "configuration", "{config}", "[general] retention_days",
          "expected a whole number", '"thirty"'), "samverkan.toml"),
    Case("config-value-out-of-range", "min_cell = 1 (disclosure control below its floor)",
         toml("[general]\n", "[disclosure]\nmin_cell = 1\n\n[general]\n"),
         ("FAIL", "configuration", "{config}", "[disclosure] min_cell", "at least 3"),
         "samverkan.toml"),
    Case("config-impossible-date", 'reference_date = "2026-13-45"',
         toml('reference_date = "2026-06-12"', 'reference_date = "2026-13-45"'),
         ("FAIL", "configuration", "{config}", "[general] reference_date", "not a valid date",
          "2026-13-45"), "samverkan.toml"),
    Case("config-impossible-toml-date", "reference_date = 2026-13-45 (a TOML date, unquoted)",
         toml('reference_date = "2026-06-12"', "reference_date = 2026-13-45"),
         ("FAIL", "configuration", "{config}", "not valid TOML", "line 7", "key reference_date",
          "YYYY-MM-DD"), "samverkan.toml"),
    Case("config-municipality-code-missing", "[municipality] has no code",
         toml('code = "1280"\n', ""),
         ("FAIL", "configuration", "{config}", "[municipality] code is required"), "samverkan.toml"),
    Case("config-municipality-code-malformed", "the municipality code is not four digits",
         toml('code = "1280"', 'code = "128"'),
         ("FAIL", "configuration", "{config}", "[municipality] code", "four digits"),
         "samverkan.toml"),
    Case("config-token-variable-not-set", "the environment variable named by token_env is not set",
         env_del(TOKEN_ENV),
         ("FAIL", "ss12000", "{config}", "token_env", TOKEN_ENV, "is not set"), "samverkan.toml"),
    Case("config-oauth-half-configured", "token_url without client_id and client_secret_env",
         toml(f'token_env = "{TOKEN_ENV}"', 'token_url = "https://idp.example.se/token"'),
         ("FAIL", "ss12000", "{config}", "OAuth2 needs", "client_id, client_secret_env"),
         "samverkan.toml"),
    # the pseudonym key
    Case("key-missing", "neither SAMVERKAN_PSEUDONYM_KEY nor a key file",
         env_del("SAMVERKAN_PSEUDONYM_KEY"),
         ("FAIL", "pseudonym key", "no pseudonym key", "SAMVERKAN_PSEUDONYM_KEY_FILE")),
    Case("key-too-short", "the key has 9 characters", env_set("SAMVERKAN_PSEUDONYM_KEY", "too-short"),
         ("FAIL", "pseudonym key", "too short", "9 characters", "at least 32")),
    Case("key-file-readable-by-others", "the key file has mode 0644", key_file(0o644),
         ("FAIL", "pseudonym key", "{key_file}", "can be read by others", "0644", "chmod 600"),
         "pseudonym.key"),
    Case("key-file-missing", "SAMVERKAN_PSEUDONYM_KEY_FILE names a file that does not exist",
         key_file_missing, ("FAIL", "pseudonym key", "{key_file}", "does not exist"), "pseudonym.key"),
    Case("key-file-too-short", "the key file's first line is too short", key_file(0o600, "short"),
         ("FAIL", "pseudonym key", "{key_file}", "too short", "5 characters"), "pseudonym.key"),
    # reference data
    Case("reference-folder-missing", "the reference folder does not exist", no_reference_folder,
         ("FAIL", "reference", "{reference}", "does not exist", "samverkan init")),
    Case("reference-file-missing", "ref_sspf_omraden.csv is missing", ref_delete("ref_sspf_omraden.csv"),
         ("FAIL", "reference", "{reference}/ref_sspf_omraden.csv", "missing"), "ref_sspf_omraden.csv"),
    Case("reference-column-missing", "ref_skolenheter.csv has no sspf_omrade_code column",
         ref_bytes("ref_skolenheter.csv", b"school_unit_code,school_unit_name,huvudman\n"
                   b"61827011,Hyllieskolan,kommunal\n"),
         ("FAIL", "reference", "ref_skolenheter.csv:1", "column 'sspf_omrade_code' is missing"),
         "ref_skolenheter.csv"),
    Case("reference-duplicate-code", "a stadsdelsområde is listed twice",
         ref_edit("ref_stadsdelsomraden.csv", "OST,Öster", "OST,Öster\nSOR,Söder igen"),
         ("FAIL", "reference", "ref_stadsdelsomraden.csv:4", "SOR is listed twice", "line 2"),
         "ref_stadsdelsomraden.csv"),
    Case("reference-unknown-code", "a school unit names an SSPF area that does not exist",
         ref_edit("ref_skolenheter.csv", "61827011,Hyllieskolan,kommunal,SOR-HY",
                  "61827011,Hyllieskolan,kommunal,SOR-XX"),
         ("FAIL", "reference", "ref_skolenheter.csv:2", "sspf_omrade_code 'SOR-XX'",
          "is not in ref_sspf_omraden.csv"), "ref_skolenheter.csv"),
    Case("reference-latin1", "ref_stadsdelsomraden.csv saved as Latin-1 (Söder on line 2)",
         ref_bytes("ref_stadsdelsomraden.csv",
                   "stadsdelsomrade_code,stadsdelsomrade_name\nSOR,Söder\nOST,Öster\n".encode("latin-1")),
         ("FAIL", "reference", "ref_stadsdelsomraden.csv:2", "not UTF-8"), "ref_stadsdelsomraden.csv"),
    Case("reference-binary-garbage", "ref_stadsdelar.csv is binary garbage (an image saved over it)",
         ref_bytes("ref_stadsdelar.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\xf4\xff\xd8"),
         ("FAIL", "reference", "ref_stadsdelar.csv:1", "not UTF-8"), "ref_stadsdelar.csv"),
    Case("reference-nul-bytes", "ref_stadsdelar.csv holds NUL bytes (UTF-8, but not text)",
         ref_bytes("ref_stadsdelar.csv", b"stadsdel_name,stadsdelsomrade_code,sspf_omrade_code\n"
                   b"Hyllie,SOR,SOR-HY\nHol\x00ma,SOR,SOR-HY\n"),
         ("FAIL", "reference", "ref_stadsdelar.csv:3", "NUL"), "ref_stadsdelar.csv"),
    # environment
    Case("data-directory-not-writable", "the data directory cannot be written",
         data_directory_cannot_be_written,
         ("FAIL", "data directory", "{data_home}", "cannot be written")),
    Case("prefect-api-down", "PREFECT_API_URL names a Prefect server that is not running",
         lambda w: w.env.__setitem__("PREFECT_API_URL", f"http://127.0.0.1:{w.closed_port}/api"),
         ("FAIL", "prefect", "127.0.0.1:{closed_port}/api", "does not answer", "prefect server start")),
    Case("prefect-api-not-http", "PREFECT_API_URL is not an http(s) URL",
         env_set("PREFECT_API_URL", "127.0.0.1:4200/api"),
         ("FAIL", "prefect", "PREFECT_API_URL", "is not an http(s) URL")),
    Case("run-in-progress", "another run holds the data directory's run lock",
         run_in_progress, ("cannot start", "a run is in progress", "{home}", "pid {pid}",
                           "`samverkan run`", "started {started}")),
    # the case system
    Case("case-url-unparsable", "the case system's URL has a port that is not a number",
         case_url(f"postgresql+psycopg://reader:{PASSWORD}@casedb:port/rapport"),
         ("FAIL", "configuration", "{config}", "[case_system] url", "not a valid URL",
          "port after the host is not a number"), "samverkan.toml"),
    Case("case-sqlite-missing", "the SQLite file does not exist (and must not be created)",
         sqlite_missing, ("FAIL", "case_system", "{missing}", "does not exist", "no file was created")),
    Case("case-sqlite-locked", "another process holds the SQLite database (BEGIN EXCLUSIVE)",
         sqlite_locked, ("FAIL", "case_system", "{case_db}", "the database is locked",
                         "another process holds a write transaction")),
    Case("case-sqlite-path-is-a-directory", "the SQLite path names a directory",
         case_url("sqlite:///{reference}"), ("FAIL", "case_system", "{reference}", "is not a file")),
    Case("case-view-missing", "the view insats does not exist", view_missing,
         ("FAIL", "case_system", "{case_db}", "view insats", "does not exist")),
    Case("case-column-missing", "the view utredning lacks the column resultat", column_missing,
         ("FAIL", "case_system", "{case_db}", "view utredning", "lacks the contract column(s) resultat")),
    Case("case-postgresql-login-refused", "PostgreSQL refuses the login (the role does not exist)",
         postgres_role_refused, ("FAIL", "case_system", "{role}:***@127.0.0.1:5432",
                                 "authentication failed", "role")),
    Case("case-mariadb-wrong-password", "MariaDB refuses the password", mariadb_wrong_password,
         ("FAIL", "case_system", "127.0.0.1:3306", "authentication failed", "1045")),
    Case("case-server-not-listening", "nothing listens on the database server's port",
         case_server_not_listening, ("FAIL", "case_system", "127.0.0.1:{closed_port}",
                                     "connection refused")),
    # SS 12000
    Case("ss12000-connection-refused", "nothing listens on the platform's port",
         base_url("http://127.0.0.1:{closed_port}/v2.0"),
         ("FAIL", "ss12000", "127.0.0.1:{closed_port}", "connection refused")),
    Case("ss12000-unknown-host", "the platform's host name does not resolve",
         base_url("https://skolplattform.invalid/v2.0"),
         ("FAIL", "ss12000", "skolplattform.invalid", "unknown host")),
    Case("ss12000-wrong-token", "the platform refuses the token (HTTP 401)", env_set(TOKEN_ENV, WRONG_TOKEN),
         ("FAIL", "ss12000", "{platform_host}", "HTTP 401")),
    Case("ss12000-tls-certificate", "the platform's certificate is self-signed",
         base_url("{https_url}/v2.0"), ("FAIL", "ss12000", "{https_host}", "certificate",
                                        "not accepted")),
    Case("ss12000-url-without-scheme", "the base URL has no scheme",
         base_url("skolplattform.example.se/v2.0"),
         ("FAIL", "configuration", "{config}", "[ss12000] base_url", "not a URL"), "samverkan.toml"),
    Case("ss12000-url-unparsable", "the base URL's port is not a number",
         base_url("https://skolplattform.example.se:port/v2.0"),
         ("FAIL", "configuration", "{config}", "[ss12000] base_url", "not a valid URL",
          "Port could not be cast"), "samverkan.toml"),
    Case("ss12000-url-wrong-scheme", "the base URL is an FTP address",
         base_url("ftp://skolplattform.example.se/v2.0"),
         ("FAIL", "configuration", "{config}", "[ss12000] base_url", "scheme must be http or https"),
         "samverkan.toml"),
    Case("ss12000-html-page", "the base URL answers 200 with an HTML page (a portal, not SS 12000)",
         base_url("{html_url}"), ("FAIL", "ss12000", "{html_host}", "GET /organisations",
                                  "an HTML page", "not an SS 12000 API", "[ss12000] base_url")),
    Case("ss12000-organisation-not-listed",
         "the platform does not list the municipality's organisation number",
         toml(f'organisation_number = "{ORGS}"', 'organisation_number = "212000-0142"'),
         ("FAIL", "ss12000", "{platform_host}", "organisation number is not among",
          "[municipality] organisation_number"), "samverkan.toml"),
    # police
    Case("police-inbox-missing", "the police inbox does not exist", inbox_missing,
         ("FAIL", "police", "{missing}", "does not exist")),
    Case("police-inbox-is-a-file", "the police inbox is a file, not a directory", inbox_is_a_file,
         ("FAIL", "police", "{file}", "not a directory")),
    # the other commands that run the same checks first
    Case("backfill-source-refused", "`samverkan backfill` with nothing listening on the platform's port",
         base_url("http://127.0.0.1:{closed_port}/v2.0"),
         ("FAIL", "ss12000", "127.0.0.1:{closed_port}", "connection refused"),
         command=("backfill", "--from", "2026-06-01", "--to", "2026-06-12")),
    Case("lagesbild-key-too-short", "`samverkan lagesbild` with a key that is too short",
         env_set("SAMVERKAN_PSEUDONYM_KEY", "too-short"),
         ("FAIL", "pseudonym key", "too short"), command=("lagesbild",)),
)


# --- the servers and sources every case shares -------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_sources(tmp_path_factory.mktemp("corpus-preflight-sources"))


@pytest.fixture(scope="module")
def platform() -> Iterator[Any]:
    from samverkan.simulator.ss12000_server import serve

    with serve(ss12000_data(), TOKEN) as server:
        yield server


def _organisations(request: BaseHTTPRequestHandler) -> None:
    """An SS 12000 answer: what a platform behind a certificate no one trusts would serve."""
    body = json.dumps({"data": [{"id": "org-1", "organisationType": "Huvudman",
                                 "organisationNumber": ORGS}]}).encode()
    request.send_response(200)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


@pytest.fixture(scope="module")
def https_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate (no CA trusts it)."""
    certificate = self_signed_certificate(tmp_path_factory.mktemp("corpus-preflight-tls"))
    with http_server(_organisations, certificate=certificate) as httpd:
        yield f"https://127.0.0.1:{httpd.server_address[1]}"


PORTAL = (b"<!DOCTYPE html>\n<html><head><title>Skolplattformen - logga in</title></head>"
          b"<body><form action=\"/login\"><input name=\"user\"></form></body></html>\n")


def _portal(request: BaseHTTPRequestHandler) -> None:
    """Every path answers 200 with a login page, as a web portal at the wrong URL would."""
    request.send_response(200)
    request.send_header("Content-Type", "text/html; charset=utf-8")
    request.send_header("Content-Length", str(len(PORTAL)))
    request.end_headers()
    request.wfile.write(PORTAL)


@pytest.fixture(scope="module")
def html_platform() -> Iterator[str]:
    with http_server(_portal) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2.0"


# --- the test ----------------------------------------------------------------------------------

def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if not p.is_dir()] if path.is_dir() else []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_preflight_refuses(case: Case, tmp_path: Path, sources: tuple[Path, Path], platform: Any,
                           https_platform: str, html_platform: str, prefect_api_url: str) -> None:
    sqlite, inbox = sources
    closed_port = _closed_port()
    # the test worker's real Prefect server (the checks ask it for its health)
    inst = install(tmp_path / "data", platform.base_url, TOKEN, sqlite, inbox, prefect_api_url)
    with contextlib.ExitStack() as stack:
        world = World(inst, tmp_path, platform, https_platform, html_platform, closed_port, stack)
        world.values.update(
            home=str(inst.home), config=str(inst.config), reference=str(inst.home / "reference"),
            case_db=str(sqlite), inbox=str(inbox), closed_port=str(closed_port),
            platform_host=f"127.0.0.1:{platform.port}", https_url=https_platform,
            https_host=https_platform.removeprefix("https://"), html_url=html_platform,
            html_host=html_platform.removeprefix("http://").split("/")[0])
        case.setup(world)
        started = time.monotonic()
        result = cli(world.env, *case.command, timeout=120)
        seconds = time.monotonic() - started
        needles = [n.format(**world.values) for n in case.needles]
        line = assert_clean_failure(result, *needles)
    text = console(result)
    if case.file:
        assert case.file in line, f"the line does not name {case.file}: {line}"
    assert "samverkan: cannot start" in text, text  # refused, not failed on the way
    assert "Checks passed" not in text, text
    assert not _files_under(Path(world.env["SAMVERKAN_HOME"]) / "landing"), "something was landed"
    assert not publication_fingerprint(inst.paths), "something was published"
    assert not _looks_like_personnummer(text), text
    for secret in SECRETS:
        assert secret not in text, f"a secret reached the console:\n{text}"
    assert seconds < 60, f"{case.id}: the check took {seconds:.0f} s"


def test_a_byte_order_mark_before_samverkan_toml_is_no_error(tmp_path: Path, sources: tuple[Path, Path],
                                                             platform: Any) -> None:
    """Notepad and Excel save UTF-8 with a byte-order mark; the configuration reads it as it
    reads the reference files (the corpus above shows what a file that is not UTF-8 gives)."""
    from samverkan.config import load_settings

    sqlite, inbox = sources
    inst = install(tmp_path / "data", platform.base_url, TOKEN, sqlite, inbox, "http://127.0.0.1:9/api")
    inst.config.write_bytes(b"\xef\xbb\xbf" + inst.config.read_bytes())
    settings = load_settings(inst.env)
    assert (settings.municipality.code, settings.municipality.name) == ("1280", "Malmö")
