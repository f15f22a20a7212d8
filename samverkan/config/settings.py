"""Where things live and how the platform reaches its sources.

Everything is derived from one data directory, ``SAMVERKAN_HOME`` (default ``./data``).
The municipality, its sources and its parameters come from ``samverkan.toml`` in that
directory (or the file named by ``SAMVERKAN_CONFIG``); ``samverkan init`` writes a commented
one, the demo writes one that points at the simulator. Every key is declared once, in
:data:`SCHEMA`, with its type, its default and its help text: the loader, ``samverkan init``
and ``samverkan check`` read the same declaration. The defaults of the indicators'
thresholds and windows are the dbt project's vars (``dbt_project/dbt_project.yml``), so they
too have one source.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from samverkan.database import WarehouseSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
SQL_DIR = PROJECT_ROOT / "samverkan" / "sql"
SOURCES = ("ss12000", "case_system", "police")
CONFIG_ENV = "SAMVERKAN_CONFIG"
HOME_ENV = "SAMVERKAN_HOME"
CONFIG_FILE_NAME = "samverkan.toml"
# Modes of the zones (README, "Zones"): personal data and secrets owner-only; what is handed on
# (the published zone to management and partners, the analysts' zone) readable by the group at
# most, never by other users.
PROCESS_UMASK = 0o077
OWNER_ONLY_DIR, OWNER_ONLY_FILE = 0o700, 0o600
GROUP_READ_DIR, GROUP_READ_FILE = 0o750, 0o640


class ConfigError(Exception):
    """A configuration problem the operator must fix; each problem names the file and key."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Paths:
    """The zones of one installation, all below ``home``."""

    home: Path

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def restricted_db(self) -> Path:
        return self.warehouse / "restricted.duckdb"

    @property
    def analytics_db(self) -> Path:
        return self.warehouse / "analytics.duckdb"

    @property
    def spill(self) -> Path:
        """The default folder for DuckDB's spill files (person-level data), ``[warehouse]
        temp_directory``."""
        return self.warehouse / "spill"

    @property
    def published(self) -> Path:
        return self.home / "published"

    @property
    def current_publication(self) -> Path:
        return self.published / "current"

    @property
    def validation(self) -> Path:
        return self.home / "validation"

    @property
    def simulator(self) -> Path:
        return self.home / "simulator"

    @property
    def keys(self) -> Path:
        return self.home / "keys"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run_state(self) -> Path:
        return self.home / "run"

    @property
    def reference(self) -> Path:
        """The municipality's reference data (areas, school units, targets): CSV files, see
        :mod:`samverkan.config.reference`."""
        return self.home / "reference"

    @property
    def dbt_target(self) -> Path:
        """dbt's target directory (manifest, compiled SQL, docs) for this data directory, so
        two data directories (a demo and the tests, two test workers) never share one."""
        return self.run_state / "dbt-target"

    @property
    def scratch(self) -> Path:
        """Scratch DuckDB files holding a batch while it is validated (personnummer)."""
        return self.validation / "scratch"

    @property
    def analysts(self) -> Path:
        """The analysts' zone: ``versions/<version>/`` (the read-only snapshot of the analytics
        warehouse and the dbt docs) behind a ``current`` link. Person-level (pseudonymised):
        never inside the published zone."""
        return self.home / "analytics"

    @property
    def run_lock(self) -> Path:
        """The lock a run holds on this data directory (see :mod:`samverkan.locks`)."""
        return self.run_state / "samverkan.lock"

    def zone_modes(self) -> dict[Path, int]:
        """Each zone directory and its mode. Owner only (0700) where personal data or secrets
        live; the published and analysts' zones readable by the group at most (0750)."""
        return {
            self.landing: OWNER_ONLY_DIR, self.warehouse: OWNER_ONLY_DIR, self.spill: OWNER_ONLY_DIR,
            self.validation: OWNER_ONLY_DIR, self.scratch: OWNER_ONLY_DIR,
            self.keys: OWNER_ONLY_DIR, self.logs: OWNER_ONLY_DIR, self.run_state: OWNER_ONLY_DIR,
            self.published: GROUP_READ_DIR, self.analysts: GROUP_READ_DIR,
        }

    def ensure(self) -> Paths:
        """Create the zones with their modes (an existing installation's zones are set to
        them too), and make files this process creates owner-only (umask 077): a file written
        into the published or analysts' zone is given its group-readable mode explicitly."""
        os.umask(PROCESS_UMASK)
        # the groups reach the published and analysts' zones through the data directory (one
        # this process creates; an operator's own directory keeps the mode it was given)
        if not self.home.exists():
            self.home.mkdir(parents=True)
            self.home.chmod(GROUP_READ_DIR)
        for directory, mode in self.zone_modes().items():
            directory.mkdir(mode=mode, parents=True, exist_ok=True)
            if directory.stat().st_mode & 0o777 != mode:
                directory.chmod(mode)
        for database in (self.restricted_db, self.analytics_db):
            for path in (database, wal_file(database)):
                if path.exists() and path.stat().st_mode & 0o777 != OWNER_ONLY_FILE:
                    path.chmod(OWNER_ONLY_FILE)
        return self


def wal_file(database: Path) -> Path:
    """DuckDB's write-ahead log of a database file: changes not yet checkpointed into it."""
    return database.with_name(database.name + ".wal")


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(HOME_ENV, "data")).resolve()


def paths(environ: Mapping[str, str] | None = None) -> Paths:
    return Paths(home_dir(environ))


# ---------------------------------------------------------------------------------------------
# The declared configuration
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """One key of ``samverkan.toml``.

    ``kind``: ``text``, ``url``, ``path``, ``env`` (the name of an environment variable),
    ``int``, ``number``, ``share`` (0 < x ≤ 1), ``date`` or ``size`` (a DuckDB size, "4GiB").
    ``example`` is what ``samverkan init`` writes for a required key (commented out where the
    key is optional)."""

    kind: str
    help: str
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    pattern_help: str = ""
    example: Any = None
    schemes: tuple[str, ...] = ()  # a URL's allowed schemes (empty: any)


_MUNICIPALITY = {
    "code": Option("text", "the municipality's four-digit code (kommunkod), e.g. 0180", required=True,
                   pattern=r"\d{4}", pattern_help="four digits, e.g. \"0180\"", example="0180"),
    "name": Option("text", "the municipality's name as the report shows it (the city level)",
                   required=True, example="Stockholm"),
    "organisation_number": Option(
        "text", "the municipality's organisation number: school units whose huvudman has it are "
        "'kommunal', all others 'fristående'", required=True, pattern=r"\d{6}-?\d{4}",
        pattern_help="ten digits, e.g. \"212000-0142\"", example="212000-0142"),
}

_GENERAL = {
    "reference_date": Option("date", "the data date (YYYY-MM-DD); default today", example="2026-06-12"),
    "retention_days": Option("int", "loaded landing batches older than this many days are purged",
                             default=30, minimum=1),
    "extract_retries": Option("int", "how many times an extract that failed on something retrying can "
                              "fix (time-outs, HTTP 429 and 5xx, dropped connections) is run again "
                              "as a whole, after 30 s, then 120 s", default=2, minimum=0, maximum=10),
}

_SS12000 = {
    "base_url": Option("url", "the SS 12000 API's base URL (ends before /organisations)",
                       required=True, example="https://skolplattform.example.se/v2.0",
                       schemes=("http", "https")),
    "token_env": Option("env", "environment variable that holds a static bearer token",
                        example="SS12000_TOKEN"),
    "token_url": Option("url", "OAuth2 token endpoint (client credentials), instead of token_env",
                        example="https://idp.example.se/oauth/token", schemes=("http", "https")),
    "client_id": Option("text", "OAuth2 client id (with token_url)", example="samverkan"),
    "client_secret_env": Option("env", "environment variable that holds the OAuth2 client secret",
                                example="SS12000_CLIENT_SECRET"),
    "page_size": Option("int", "records asked for per page", default=5000, minimum=1, maximum=100_000),
    "timeout_seconds": Option("number", "time-out of one request, in seconds", default=30.0,
                              minimum=0.1, maximum=600),
    "deadline_minutes": Option("number", "the longest a whole pull may take (every request, retry "
                               "and page), in minutes; a server that keeps it going longer (endless "
                               "pages, a trickling answer) fails the pull", default=120.0,
                               minimum=1, maximum=24 * 60),
    "max_records": Option("int", "the most records one endpoint can hold in a pull; with page_size it "
                          "bounds the pages a pull follows (max_records / page_size + 1)",
                          default=200_000_000, minimum=1),
}

_CASE_SYSTEM = {
    "url": Option("url", "SQLAlchemy URL of the reporting database with the five views "
                  "(sqlite:///…, postgresql+psycopg://…, mysql+pymysql://…)", required=True,
                  example="postgresql+psycopg://reader@casedb.example.se/rapport"),
    "schema": Option("text", "database schema of the views, if not the default one"),
    "overlap_minutes": Option("int", "minutes each incremental pull reaches back before the last "
                              "watermark, so rows committed late with an older andrad_tid are "
                              "read; rows already loaded are skipped", default=60, minimum=0),
}

_WAREHOUSE = {
    "memory_limit": Option("size", "the most memory DuckDB may use (a DuckDB size: \"4GiB\", "
                           "\"8GB\"); beyond it a build spills to temp_directory (slower, not "
                           "failing). Default: half the machine's memory, at most 4 GiB", example="8GiB"),
    "load_memory_limit": Option("size", "the most memory DuckDB may use in an extract (validating "
                                "and loading what was pulled: it streams, so a first load of a "
                                "whole term fits); default: 512 MiB, or memory_limit when lower",
                                example="1GiB"),
    "threads": Option("int", "threads DuckDB may use; default: the CPUs this process may run on",
                      minimum=1, maximum=1024, example=4),
    "temp_directory": Option("path", "folder for DuckDB's spill files (they hold person-level "
                             "data: keep it owner-only, on a local disk with room to spare); "
                             "default: warehouse/spill/ in the data directory",
                             example="/srv/samverkan/spill"),
}

_POLICE = {
    "inbox": Option("path", "folder where polis_YYYYMMDD.csv files arrive", required=True,
                    example="/srv/sftp/polis/inbox"),
}

# int vars that may be 0 (the others start at 1): no reporting lag.
_ZERO_ALLOWED = {"reporting_lag_school_days": 0}

# dbt vars that are not the municipality's parameters: the run sets them.
_RUN_VARS = ("reference_date", "data_version", "municipality_code", "municipality_name",
             "municipality_organisation_number", "min_cell")


@functools.cache
def indicator_parameters() -> dict[str, Option]:
    """The indicators' thresholds and windows: the dbt project's vars with their defaults and
    the comment beside each as its help (``dbt_project/dbt_project.yml``)."""
    import yaml

    text = (DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8")
    declared = yaml.safe_load(text).get("vars", {})
    comments = dict(re.findall(r"^  (\w+):[^#\n]*#\s*(.+)$", text, flags=re.MULTILINE))
    options: dict[str, Option] = {}
    for name, default in declared.items():
        if name in _RUN_VARS:
            continue
        if isinstance(default, float):
            options[name] = Option("share", comments.get(name, ""), default=default)
        else:
            options[name] = Option("int", comments.get(name, ""), default=int(default),
                                   minimum=_ZERO_ALLOWED.get(name, 1))
    return options


@functools.cache
def _min_cell_default() -> int:
    import yaml

    doc = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    return int(doc["vars"]["min_cell"])


def schema() -> dict[str, dict[str, Option]]:
    """Every section and key of ``samverkan.toml``."""
    return {
        "municipality": _MUNICIPALITY,
        "general": _GENERAL,
        "ss12000": _SS12000,
        "case_system": _CASE_SYSTEM,
        "police": _POLICE,
        "indicators": indicator_parameters(),
        "disclosure": {
            "min_cell": Option("int", "smallest count (or denominator) that is published; smaller "
                               "cells are suppressed", default=_min_cell_default(), minimum=3),
        },
        "warehouse": _WAREHOUSE,
    }


SECTION_HELP = {
    "municipality": "Who the municipality is (required).",
    "general": "Run settings.",
    "ss12000": "The school platform's SS 12000 API.",
    "case_system": "The social services' case system (its reporting views).",
    "police": "The police file drop.",
    "indicators": "The indicators' thresholds and windows (optional; the catalogue's defaults).",
    "disclosure": "Disclosure control.",
    "warehouse": "How DuckDB may use this machine (optional; the defaults fit a machine that runs "
                 "nothing else).",
}


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Municipality:
    code: str
    name: str
    organisation_number: str


@dataclass(frozen=True)
class SS12000Config:
    base_url: str
    token: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    page_size: int = 5000
    timeout_seconds: float = 30.0
    deadline_minutes: float = 120.0
    max_records: int = 200_000_000


@dataclass(frozen=True)
class CaseSystemConfig:
    url: str
    schema: str | None = None
    overlap_minutes: int = 60


@dataclass(frozen=True)
class PoliceConfig:
    inbox: Path


@dataclass(frozen=True)
class Settings:
    paths: Paths
    municipality: Municipality
    ss12000: SS12000Config | None = None
    case_system: CaseSystemConfig | None = None
    police: PoliceConfig | None = None
    reference_date: dt.date | None = None  # None means today
    retention_days: int = 30
    extract_retries: int = 2  # Prefect's retries of a whole extract after a transient failure
    min_cell: int = 5
    indicator_parameters: dict[str, Any] = field(default_factory=dict)  # every one, resolved
    config_file: Path | None = None
    # memory limit, threads and spill folder of every DuckDB connection (None: the defaults)
    warehouse: WarehouseSettings | None = None
    # Problems that only stop the source they belong to (e.g. the SS 12000 token's environment
    # variable is not set where the weekly lägesbild runs, which reads no source).
    source_problems: dict[str, list[str]] = field(default_factory=dict)


def config_file(p: Paths, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env[CONFIG_ENV]).resolve() if env.get(CONFIG_ENV) else p.home / CONFIG_FILE_NAME


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "…"
        return f'the text "{shown}"'
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return f"the TOML date/time {value.isoformat()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _convert(option: Option, value: Any) -> tuple[Any, str | None]:
    """(the value as the program uses it, None) or (None, what is wrong)."""
    kind = option.kind
    if kind == "date":
        if isinstance(value, dt.datetime):
            return None, f"expected a date (YYYY-MM-DD), got {_describe(value)}"
        if isinstance(value, dt.date):
            return value, None
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip()), None
            except ValueError:
                return None, f"not a valid date (YYYY-MM-DD): {_describe(value)}"
        return None, f"expected a date (YYYY-MM-DD), got {_describe(value)}"
    if kind in ("int", "number", "share"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            what = {"int": "a whole number", "number": "a number", "share": "a share between 0 and 1"}[kind]
            hint = " (write it without quotes)" if isinstance(value, str) and _numeric(value) else ""
            return None, f"expected {what}, got {_describe(value)}{hint}"
        if kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
            return None, f"expected a whole number, got {_describe(value)}"
        number = int(value) if kind == "int" else float(value)
        if kind == "share" and not 0 < number <= 1:
            return None, f"must be a share with 0 < value ≤ 1, got {number:g}"
        if option.minimum is not None and number < option.minimum:
            return None, f"must be at least {option.minimum:g}, got {number:g}"
        if option.maximum is not None and number > option.maximum:
            return None, f"must be at most {option.maximum:g}, got {number:g}"
        return number, None
    if kind == "size":
        from samverkan.database import MIN_MEMORY_BYTES, format_size, parse_size

        if not isinstance(value, str):
            return None, f"expected a size in quotes such as \"4GiB\", got {_describe(value)}"
        size = parse_size(value)
        if size is None:
            return None, (f"not a size (a number and a unit: B, KB, MB, GB, TB, KiB, MiB, GiB or "
                          f"TiB, e.g. \"4GiB\"): {_describe(value)}")
        if size < MIN_MEMORY_BYTES:
            return None, f"must be at least {format_size(MIN_MEMORY_BYTES)}, got {_describe(value)}"
        return value.strip(), None
    # text-like
    if not isinstance(value, str):
        what = {"path": "a path in quotes", "url": "a URL in quotes",
                "env": "the name of an environment variable in quotes"}.get(kind, "text in quotes")
        return None, f"expected {what}, got {_describe(value)}"
    text = value.strip()
    if not text:
        return None, "is empty"
    if option.pattern and not re.fullmatch(option.pattern, text):
        return None, f"must be {option.pattern_help}, got {_describe(value)}"
    if kind == "url":
        problem = _url_problem(text, option.schemes)
        if problem:
            return None, f"{problem}: {_describe(_without_password(value))}"
    if kind == "env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        return None, f"not the name of an environment variable: {_describe(value)}"
    if kind == "path":
        return Path(text).expanduser(), None
    return text, None


# A database URL as SQLAlchemy's make_url reads it (sqlalchemy/engine/url.py, _parse_url):
# matched here so that the configuration check needs no SQLAlchemy import.
_DATABASE_URL = re.compile(r"""
    (?P<name>[\w+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?""", re.VERBOSE)


def _url_problem(text: str, schemes: tuple[str, ...]) -> str | None:
    """What is wrong with a URL, as far as can be told without connecting: a web address
    (``schemes`` given) by its scheme, host and port; a database URL (no ``schemes``) as
    SQLAlchemy parses it. None when nothing is."""
    import urllib.parse

    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        return "not a URL (scheme://…)"
    if not schemes:
        match = _DATABASE_URL.match(text)
        if match is None:
            return "not a database URL (dialect+driver://user:password@host:port/database)"
        port = match["port"]
        if port and not port.isdigit():
            return ("not a valid URL (the port after the host is not a number; a password with "
                    "@, : or / must be %-encoded)")
        return None
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0..65535
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme.lower() not in schemes:
        return f"not a valid URL (the scheme must be {' or '.join(schemes)}, not {parts.scheme})"
    if not parts.hostname:
        return "not a valid URL (no host name)"
    return None


def _without_password(text: str) -> str:
    """A URL for a message: the password of ``user:password@`` replaced by ***."""
    return re.sub(r"^((?:[A-Za-z][A-Za-z0-9+.-]*://)?[^:/@]*:)[^@/]*@", r"\1***@", text)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _read_document(cfg: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    if not cfg.exists():
        if environ.get(CONFIG_ENV):
            raise ConfigError(f"{CONFIG_ENV} names {cfg}, which does not exist")
        raise ConfigError(
            f"no configuration file: looked for {cfg} (in {HOME_ENV}, "
            f"{environ.get(HOME_ENV, 'default ./data')}). Create one with `samverkan init`, "
            f"or name another file with {CONFIG_ENV}.")
    try:
        data = cfg.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{cfg}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")  # a byte-order mark is no error
    except UnicodeDecodeError as exc:
        data = data.removeprefix(b"\xef\xbb\xbf")
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{cfg}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                          "save the file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg}: not valid TOML ({exc}){_toml_hint(text, str(exc))}") from None


def _toml_hint(text: str, message: str) -> str:
    """Which key (or section) the line of a TOML error holds, never its value; and, for a
    value that looks like a date, how a date is written."""
    match = re.search(r"at line (\d+)", message)
    lines = text.splitlines()
    if not match or not 0 < int(match[1]) <= len(lines):
        return ""
    line = lines[int(match[1]) - 1]
    key = re.match(r"\s*([A-Za-z0-9_.\-\"' ]+?)\s*=\s*(.*)$", line)
    if not key:
        section = re.match(r"\s*\[+([^\]]*)", line)
        return f"; the line of section [{section[1].strip()}]" if section else ""
    hint = f"; the line of the key {key[1].strip()}"
    if re.match(r"\d{4}-\d{1,2}-\d{1,2}", key[2]):
        hint += " (a date is written YYYY-MM-DD, and must exist)"
    return hint


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check ``samverkan.toml``: every problem (missing file, unknown section or key
    with the nearest valid one, wrong type or value, a required key missing, an environment
    variable it names that is not set) is collected and raised as one :class:`ConfigError`."""
    env = os.environ if environ is None else environ
    p = paths(env)
    cfg = config_file(p, env)
    doc = _read_document(cfg, env)
    declared = schema()
    problems: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    for section, content in doc.items():
        if section not in declared:
            problems.append(f"{cfg}: unknown section [{section}]{_suggest(section, list(declared))}")
            continue
        if not isinstance(content, dict):
            problems.append(f"{cfg}: {section} must be a section ([{section}]), got {_describe(content)}")
            continue
        options = declared[section]
        values[section] = {}
        for key, raw in content.items():
            if key not in options:
                problems.append(f"{cfg}: unknown key '{key}' in [{section}]"
                                f"{_suggest(key, list(options))}")
                continue
            value, problem = _convert(options[key], raw)
            if problem:
                problems.append(f"{cfg}: [{section}] {key}: {problem}")
            else:
                values[section][key] = value
    if "municipality" not in doc:
        problems.append(f"{cfg}: no [municipality] section: the municipality's code, name and "
                        "organisation_number are required")
    for section in values:  # a required key given with a wrong value is reported above
        problems += [f"{cfg}: [{section}] {key} is required ({option.help})"
                     for key, option in declared[section].items()
                     if option.required and key not in doc[section]]
    source_problems: dict[str, list[str]] = {}
    ss12000 = (_ss12000(values["ss12000"], env, cfg, source_problems.setdefault("ss12000", []))
               if "ss12000" in values else None)
    source_problems = {source: found for source, found in source_problems.items() if found}
    if problems:
        raise ConfigError(problems)

    def get(section: str, key: str) -> Any:
        return values.get(section, {}).get(key, declared[section][key].default)

    municipality = Municipality(**{k: values["municipality"][k] for k in _MUNICIPALITY})
    return Settings(
        paths=p,
        municipality=municipality,
        ss12000=ss12000,
        case_system=CaseSystemConfig(**values["case_system"]) if "case_system" in values else None,
        police=PoliceConfig(**values["police"]) if "police" in values else None,
        reference_date=get("general", "reference_date"),
        retention_days=get("general", "retention_days"),
        extract_retries=get("general", "extract_retries"),
        min_cell=get("disclosure", "min_cell"),
        indicator_parameters={k: get("indicators", k) for k in declared["indicators"]},
        config_file=cfg,
        warehouse=_warehouse(values.get("warehouse", {}), p),
        source_problems=source_problems,
    )


def _warehouse(values: Mapping[str, Any], p: Paths) -> WarehouseSettings:
    from samverkan.database import WarehouseSettings, default_load_memory_limit

    defaults = WarehouseSettings.defaults(p)
    memory_limit = values.get("memory_limit", defaults.memory_limit)
    return WarehouseSettings(
        memory_limit=memory_limit,
        threads=values.get("threads", defaults.threads),
        # a relative folder is relative to the data directory
        temp_directory=p.home / values.get("temp_directory", defaults.temp_directory),
        load_memory_limit=values.get("load_memory_limit", default_load_memory_limit(memory_limit)),
    )


def warehouse_settings(p: Paths, environ: Mapping[str, str] | None = None) -> WarehouseSettings:
    """The ``[warehouse]`` section of the configuration of ``p`` with the defaults filled in.
    Read on every DuckDB connection, so it reads that section only: a missing or unreadable
    file gives the defaults (the run's configuration check reports the file); a wrong value
    in the section raises :class:`ConfigError` naming the key."""
    env = os.environ if environ is None else environ
    cfg = config_file(p, env)
    try:
        stat = cfg.stat()
    except OSError:
        return _warehouse({}, p)
    return _cached_warehouse(p, cfg, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _cached_warehouse(p: Paths, cfg: Path, mtime_ns: int, size: int) -> WarehouseSettings:
    try:
        section = tomllib.loads(cfg.read_text(encoding="utf-8")).get("warehouse", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        section = {}
    if not isinstance(section, dict):
        section = {}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, raw in section.items():
        if key not in _WAREHOUSE:
            continue  # reported by the configuration check
        value, problem = _convert(_WAREHOUSE[key], raw)
        if problem:
            problems.append(f"{cfg}: [warehouse] {key}: {problem}")
        else:
            values[key] = value
    if problems:
        raise ConfigError(problems)
    return _warehouse(values, p)


def _ss12000(values: dict[str, Any], env: Mapping[str, str], cfg: Path,
             problems: list[str]) -> SS12000Config | None:
    """The SS 12000 section with its secrets read from the environment variables it names;
    what is wrong with its credentials goes to ``problems``."""
    section = dict(values)
    oauth = [k for k in ("token_url", "client_id", "client_secret_env") if k in section]
    if "token_env" in section and oauth:
        problems.append(f"{cfg}: [ss12000] give either token_env (a static token) or token_url, "
                        "client_id and client_secret_env (OAuth2), not both")
    elif oauth and len(oauth) < 3:
        missing = ", ".join(k for k in ("token_url", "client_id", "client_secret_env") if k not in oauth)
        problems.append(f"{cfg}: [ss12000] OAuth2 needs token_url, client_id and client_secret_env; "
                        f"missing: {missing}")
    elif "token_env" not in section and not oauth:
        problems.append(f"{cfg}: [ss12000] no credentials: give token_env (a static bearer token) or "
                        "token_url, client_id and client_secret_env (OAuth2)")
    for key, target in (("token_env", "token"), ("client_secret_env", "client_secret")):
        name = section.pop(key, None)
        if name is None:
            continue
        if not env.get(name):
            problems.append(f"{cfg}: [ss12000] {key}: the environment variable {name} is not set")
        section[target] = env.get(name)
    if "base_url" not in section:
        return None
    return SS12000Config(**section)
