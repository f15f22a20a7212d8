"""Run the dbt project (``dbt_project/``) in-process with dbt's programmatic runner.

Plain functions, no orchestration: a flow calls :func:`dbt_build` after the loads and before
the publication gate. The restricted and analytics warehouse files come from
:class:`samverkan.config.Paths`; the pseudonym key stays in the process environment
(``SAMVERKAN_PSEUDONYM_KEY`` / ``SAMVERKAN_PSEUDONYM_KEY_FILE``) where
``samverkan.dbt_plugin`` reads it, so it never reaches dbt's profile, compiled SQL or logs.

Outcomes carry node names, statuses and counts only: messages are reduced so that no data
value (an identifier in a database error, a unit-test diff) leaves dbt through them.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import takewhile
from pathlib import Path
from typing import Any

from samverkan.config import DBT_PROJECT_DIR, SQL_DIR, Paths
from samverkan.config import paths as configured_paths
from samverkan.locks import WarehouseBusy, connect_warehouse, ensure_writable
from samverkan.progress import progress
from samverkan.pseudonymisation import PseudonymKeyError, load_key
from samverkan.run_parameters import RunParameterError, run_parameters_env, split_vars

log = logging.getLogger(__name__)

PROGRESS_EVERY_NODES = 100
MAX_REPORTED_FAILURES = 20
RESTRICTED_SCHEMA_SQL = SQL_DIR / "restricted_schema.sql"

# dbt's runner, its adapter registry and os.environ are process-wide: one invocation at a time.
_DBT_LOCK = threading.Lock()

_FAILED_STATUSES = {"error", "fail", "runtime error"}
_QUOTED = re.compile(r"'[^']*'")
_LONG_NUMBER = re.compile(r"\d{6,}")
_MAX_MESSAGE_LINES = 3
_MAX_MESSAGE_CHARS = 500

# dbt's parsed project in a target directory (partial parsing), and the shared cache of them
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
PARSE_PROJECT_FILE = "partial_parse.project"  # beside it: the project folder it was parsed from
PARSE_CACHE_ENV = "SAMVERKAN_DBT_PARSE_CACHE"
PARSE_CACHE_KEEP = 16
PROFILE_NAME = "samverkan"  # profiles.yml, dbt_project.yml
# What dbt parses: the project's files (dbt_project.yml names these paths) and the profile
_PARSED_PATHS = ("models", "macros", "tests", "analyses", "seeds", "snapshots")
_PARSED_FILES = ("dbt_project.yml", "profiles.yml")


@dataclass(frozen=True)
class DbtFailure:
    """One failed node (or the invocation itself): what failed and why, without data values."""

    node: str
    resource_type: str
    status: str
    message: str


@dataclass
class DbtOutcome:
    """The result of one dbt invocation."""

    command: str
    success: bool
    failures: list[DbtFailure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def summary(self) -> str:
        counts = ", ".join(f"{status}={n}" for status, n in sorted(self.counts.items()))
        state = "succeeded" if self.success else "failed"
        return f"dbt {self.command} {state} in {self.elapsed_seconds:.1f}s ({counts or 'no nodes'})"


def report_outcome(outcome: DbtOutcome) -> None:
    """Progress lines for a dbt invocation (dbt itself prints nothing on the console): the
    summary, then one line per failed node with its cleaned message (the first
    MAX_REPORTED_FAILURES; every node's line is in dbt's log)."""
    progress("%s", outcome.summary())
    for failure in outcome.failures[:MAX_REPORTED_FAILURES]:
        progress("dbt %s: %s %s %s: %s", outcome.command, failure.resource_type, failure.node,
                 failure.status, failure.message)
    if len(outcome.failures) > MAX_REPORTED_FAILURES:
        progress("dbt %s: %d more failed nodes, see logs/dbt/dbt.log", outcome.command,
                 len(outcome.failures) - MAX_REPORTED_FAILURES)


def dbt_log_dir(paths: Paths) -> Path:
    return paths.logs / "dbt"


def dbt_env(paths: Paths) -> dict[str, str]:
    """Environment variables a dbt invocation needs (never the pseudonym key): the warehouse
    paths and DuckDB's memory limit, threads and spill folder (``samverkan.dbt_plugin``)."""
    from samverkan.database import dbt_settings_env, warehouse_settings_for

    return {
        **dbt_settings_env(warehouse_settings_for(paths), spill=paths.home.is_dir()),
        "SAMVERKAN_RESTRICTED_DB": str(paths.restricted_db),
        "SAMVERKAN_ANALYTICS_DB": str(paths.analytics_db),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_LOG_PATH": str(dbt_log_dir(paths)),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        "DBT_USE_COLORS_FILE": "false",
    }


def ensure_raw_schema(paths: Paths) -> None:
    """Create the warehouse directories and the raw tables of the restricted warehouse (an
    empty warehouse then builds to empty indicator tables)."""
    paths.ensure()
    conn = connect_warehouse(paths.restricted_db)
    try:
        conn.execute(RESTRICTED_SCHEMA_SQL.read_text(encoding="utf-8"))
    finally:
        conn.close()


def load_reference_tables(paths: Paths) -> None:
    """Check the municipality's reference files (``paths.reference``) and load them into the
    analytics warehouse's ``reference`` schema, which the dbt project reads as a source.
    Raises :class:`samverkan.config.reference.ReferenceError` naming each problem."""
    from samverkan.config.reference import load_reference, read_reference

    data = read_reference(paths.reference)
    conn = connect_warehouse(paths.analytics_db)
    try:
        load_reference(conn, data)
    finally:
        conn.close()


def run_dbt(
    args: list[str],
    paths: Paths,
    vars: Mapping[str, Any] | None = None,
    target_path: Path | None = None,
) -> DbtOutcome:
    """Run one dbt command (e.g. ``["build"]``, ``["parse"]``) in-process.

    Adds ``--project-dir``, ``--profiles-dir``, ``--log-path`` (``paths.logs / 'dbt'``),
    ``--target-path`` (default ``paths.dbt_target``, per data directory) and ``--vars``. Leaves no DuckDB
    connection open: another process can open the warehouse files as soon as this returns.

    The per-run values in ``vars`` (``reference_date``, ``data_version``,
    ``attendance_logic_fingerprint``: :mod:`samverkan.run_parameters`) reach the models through
    the connection, not ``--vars``, so that dbt reuses its parsed project from one run to the
    next (partial parsing); a target directory without one is seeded from the parse cache
    (:func:`parse_cache_dir`) when the same project was parsed with the same vars before.
    """
    from dbt.cli.main import dbtRunner

    command = " ".join(takewhile(lambda a: not a.startswith("-"), args)) or "dbt"
    started = time.monotonic()
    cli_vars, run_parameters = split_vars(vars or {})
    try:
        parameters_env = run_parameters_env(run_parameters)
    except RunParameterError as exc:
        return DbtOutcome(command, False, [DbtFailure("run_parameters", "configuration", "error", str(exc))],
                          elapsed_seconds=time.monotonic() - started)
    if command != "parse":
        try:
            load_key()
        except PseudonymKeyError as exc:
            return DbtOutcome(
                command=command,
                success=False,
                failures=[DbtFailure("pseudonym_key", "configuration", "error", str(exc))],
                elapsed_seconds=time.monotonic() - started,
            )

    if command != "parse":
        paths.warehouse.mkdir(parents=True, exist_ok=True)  # ATTACH creates the analytics file
    log_dir = dbt_log_dir(paths)
    log_dir.mkdir(parents=True, exist_ok=True)
    cli_args = [
        *args,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--log-path", str(log_dir),
        # Nothing on stdout (the caller reports the outcome, its failures cleaned of data
        # values); every node's start, result and error in log_dir/dbt.log, and every statement
        # too when the samverkan logger logs debug (`samverkan -v`): writing the debug lines
        # cost about a tenth of every node's time. The file level must be named: it otherwise
        # follows --log-level.
        "--log-level", "none",
        "--log-level-file", "debug" if log.isEnabledFor(logging.DEBUG) else "info",
        "--target-path", str(target_path or paths.dbt_target),
    ]
    plain_vars = _plain_vars(cli_vars)
    if plain_vars:
        cli_args += ["--vars", json.dumps(plain_vars)]

    target = target_path or paths.dbt_target
    with _DBT_LOCK, _environment({**dbt_env(paths), **parameters_env}):
        seed = _ParseSeed(target, paths, plain_vars)
        try:
            result = dbtRunner(callbacks=[_NodeProgress(command)]).invoke(cli_args)
        finally:
            _close_connections()
            seed.keep()
    return _outcome(command, result, time.monotonic() - started)


def dbt_build(paths: Paths, vars: Mapping[str, Any] | None = None,
              target_path: Path | None = None,
              extra_args: Sequence[str] = ()) -> DbtOutcome:
    """``dbt build`` (models, data tests and unit tests) on the raw warehouse and the
    municipality's reference files; ``extra_args`` such as ``["--select", "..."]`` narrow it."""
    from samverkan.config.reference import ReferenceError

    try:
        ensure_raw_schema(paths)
        load_reference_tables(paths)
        ensure_writable(paths)  # dbt opens both files itself: wait here while another holds one
    except ReferenceError as exc:
        return DbtOutcome("build", False, [DbtFailure("reference", "configuration", "error", problem)
                                           for problem in exc.problems])
    except WarehouseBusy as exc:
        return _busy("build", exc)
    return run_dbt(["build", *extra_args], paths, vars, target_path)


def _busy(command: str, exc: WarehouseBusy) -> DbtOutcome:
    """A dbt command not started: a warehouse file stayed held by another process."""
    return DbtOutcome(command, False, [DbtFailure("warehouse", "lock", "error", str(exc))])


def dbt_parse(paths: Paths | None = None, target_path: Path | None = None) -> DbtOutcome:
    """``dbt parse``: checks the project without touching a warehouse."""
    return run_dbt(["parse"], paths or configured_paths(), None, target_path)


def dbt_docs_generate(paths: Paths, vars: Mapping[str, Any] | None = None,
                      target_path: Path | None = None, static: bool = False) -> DbtOutcome:
    """``dbt docs generate`` (manifest and catalog in the target directory; with ``static``
    also ``static_index.html``, one page that works without a server, and no recompilation:
    the publication documents the models the build just ran)."""
    try:
        ensure_raw_schema(paths)
        ensure_writable(paths)
    except WarehouseBusy as exc:
        return _busy("docs generate", exc)
    args = ["docs", "generate"]
    if static:
        args.append("--static")
        if ((target_path or paths.dbt_target) / "manifest.json").exists():
            args.append("--no-compile")  # the build just compiled every model into this target
    return run_dbt(args, paths, vars, target_path)


# ---------------------------------------------------------------------------------------------
# The parse cache: one parse per project version

def parse_cache_dir() -> Path | None:
    """Where parsed projects are kept for new target directories: ``$SAMVERKAN_DBT_PARSE_CACHE``,
    else ``samverkan/dbt-parse`` in the user's cache folder (``$XDG_CACHE_HOME``, ``~/.cache``).
    An empty ``SAMVERKAN_DBT_PARSE_CACHE`` turns the cache off (None)."""
    configured = os.environ.get(PARSE_CACHE_ENV)
    if configured is not None:
        return Path(configured) if configured.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "samverkan" / "dbt-parse"


def parse_key(cli_vars: Mapping[str, Any], paths: Paths) -> str:
    """What a parse of the project depends on: the project's files and location, the vars, the
    database names the profile gives (the warehouse files' names) and the dbt versions. Equal
    keys give the same parse, whatever the data directory."""
    from importlib import metadata

    digest = hashlib.sha256()
    digest.update(str(DBT_PROJECT_DIR.resolve()).encode())
    digest.update(json.dumps(cli_vars, sort_keys=True).encode())
    digest.update(f"{paths.restricted_db.name}|{paths.analytics_db.name}".encode())
    for package in ("dbt-core", "dbt-duckdb"):
        digest.update(f"{package}={metadata.version(package)}".encode())
    files = [DBT_PROJECT_DIR / name for name in _PARSED_FILES]
    for sub in _PARSED_PATHS:
        root = DBT_PROJECT_DIR / sub
        if root.is_dir():
            files += sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"")
        digest.update(b"\0")
    return digest.hexdigest()


class _ParseSeed:
    """dbt keeps its parsed project in the target directory (``partial_parse.msgpack``) and
    reuses it when the vars, the profile's connection settings, ``dbt_project.yml`` and the dbt
    version are unchanged, re-parsing only the files whose checksum changed. A new data
    directory has no parse yet: it gets the one the cache holds for the same key
    (:func:`parse_key`), and after the invocation a parse dbt wrote is kept in the cache for the
    next one. dbt checks a seeded parse like its own, file by file.

    The profile's connection settings differ between data directories in the warehouse paths
    alone (``profiles.yml``, part of the key, reads no other environment variable), which the
    parse does not read: the database names it does use are part of the key. So the seed is
    given this data directory's profile hash (:func:`_profile_hash`, computed by dbt's own
    profile code) in place of the one it was parsed with. Best effort: a cache that cannot be
    read or written, or a seed dbt does not accept, costs a full parse and nothing else.

    A parse is reused only by the project folder it was parsed from (``partial_parse.project``
    beside it): a data directory built from another checkout (an upgrade installed in a new
    folder, a second checkout) starts from the cache's parse of that project, or a full parse.
    An edit in the same folder is dbt's to see, file by file. dbt's partial parsing, given the parse of
    another checkout with other test configs, kept the old `where` of a data test (seen twice
    building one data directory from two checkouts in turn; not reproducible on demand)."""

    def __init__(self, target: Path, paths: Paths, cli_vars: Mapping[str, Any]) -> None:
        self.file = target / PARTIAL_PARSE_FILE
        self.project_file = target / PARSE_PROJECT_FILE
        self.project = str(DBT_PROJECT_DIR.resolve())
        self.cache: Path | None = None
        self.before: tuple[int, int] | None = None
        try:
            if self.file.exists() and _read_text(self.project_file) != self.project:
                self.file.unlink()
            cache = parse_cache_dir()  # Path.home() raises without a home directory
            if cache is None:
                return
            self.cache = cache / f"{parse_key(cli_vars, paths)}.msgpack"
            if not self.file.exists() and self.cache.is_file():
                seed = _with_profile_hash(self.cache.read_bytes(), _profile_hash())
                target.mkdir(parents=True, exist_ok=True)
                _write_atomically(self.file, seed)
            self.before = _signature(self.file)
        except Exception:  # noqa: BLE001 - best effort: dbt parses from scratch
            self.cache = None

    def keep(self) -> None:
        """Note the project folder the target's parse is of, and put the parse into the cache
        when dbt wrote a new one (it does not rewrite a parse it reused unchanged, nor write one
        when parsing failed)."""
        try:
            if self.file.exists() and _read_text(self.project_file) != self.project:
                _write_atomically(self.project_file, self.project.encode())
        except OSError:
            pass
        if self.cache is None:
            return
        try:
            after = _signature(self.file)
            if after is None or after == self.before:
                return
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(self.cache, self.file.read_bytes())
            _prune(self.cache.parent)
        except OSError:
            pass


def _profile_hash() -> str:
    """The profile hash dbt computes for its partial-parse check (``ManifestLoader.
    build_manifest_state_check``: the sorted connection settings) for the profile as the
    current environment renders it. dbt's own profile code renders it; the flags and the
    invocation context it needs are set again by the next dbt invocation."""
    import pprint
    from argparse import Namespace

    from dbt.artifacts.resources.base import FileHash
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt.flags import set_from_args
    from dbt_common.context import set_invocation_context

    set_invocation_context(os.environ)
    set_from_args(Namespace(profiles_dir=str(DBT_PROJECT_DIR), project_dir=str(DBT_PROJECT_DIR)), None)
    profile = Profile.from_raw_profiles(read_profile(str(DBT_PROJECT_DIR)), PROFILE_NAME,
                                        ProfileRenderer({}))
    connection = sorted(profile.credentials.connection_info())
    return FileHash.from_contents(pprint.pformat(connection)).checksum


def _with_profile_hash(parsed: bytes, profile_hash: str) -> bytes:
    """A parsed project (dbt's msgpack) with another profile hash in its state check."""
    import msgpack  # dbt's own serialisation (dbt-core requires mashumaro[msgpack])

    manifest = msgpack.unpackb(parsed, strict_map_key=False)
    manifest["state_check"]["profile_hash"]["checksum"] = profile_hash
    return msgpack.packb(manifest)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _write_atomically(destination: Path, data: bytes) -> None:
    """Write through a temporary file beside the destination, renamed in one step: a concurrent
    reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, destination)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def _prune(cache: Path) -> None:
    """Keep the PARSE_CACHE_KEEP newest parses."""
    entries = sorted(cache.glob("*.msgpack"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[PARSE_CACHE_KEEP:]:
        with suppress(OSError):
            old.unlink()


# ---------------------------------------------------------------------------------------------

class _NodeProgress:
    """A dbt event callback: a progress line every PROGRESS_EVERY_NODES finished nodes.

    dbt calls it from its worker threads, which do not inherit the caller's context variables:
    the lines are logged in the context the callback was made in (a Prefect task run's, so they
    reach that run's logs instead of Prefect warning about a log without a flow run id).
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.finished = 0
        self.failed = 0
        self.context = contextvars.copy_context()

    def __call__(self, event: Any) -> None:
        if event.info.name != "NodeFinished":
            return
        self.finished += 1
        status = str(getattr(event.data.run_result, "status", "")).lower()
        if status in ("error", "fail"):
            self.failed += 1
        if self.finished % PROGRESS_EVERY_NODES == 0:
            # a copy: two dbt threads may report at once, and a context is entered by one only
            self.context.copy().run(progress, "dbt %s: %d nodes done%s", self.command,
                                    self.finished, f", {self.failed} failed" if self.failed else "")


def _plain_vars(vars: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe vars: dates and other values become their ISO / string form."""
    out: dict[str, Any] = {}
    for key, value in vars.items():
        if value is None or isinstance(value, bool | int | float | str):
            out[key] = value
        elif hasattr(value, "isoformat"):
            out[key] = value.isoformat()
        else:
            out[key] = str(value)
    return out


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _close_connections() -> None:
    """Close every adapter connection and the DuckDB database dbt-duckdb keeps per process."""
    from dbt.adapters.factory import cleanup_connections

    # best effort: the DuckDB environment is closed below either way
    with suppress(Exception):
        cleanup_connections()
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a dependency
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        if env is not None:
            try:
                env.close()
            finally:
                DuckDBConnectionManager._ENV = None


def _clean_message(message: object) -> str:
    """The first lines of a message with quoted literals and long digit runs removed."""
    lines = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    text = " | ".join(lines[:_MAX_MESSAGE_LINES])
    text = _QUOTED.sub("'…'", text)
    text = _LONG_NUMBER.sub("…", text)
    return text[:_MAX_MESSAGE_CHARS]


def _status_text(status: object) -> str:
    return str(getattr(status, "value", status)).lower()


def _outcome(command: str, result: Any, elapsed: float) -> DbtOutcome:
    failures: list[DbtFailure] = []
    counts: Counter[str] = Counter()
    run_results = getattr(getattr(result, "result", None), "results", None)
    if run_results is not None:
        for node_result in run_results:
            status = _status_text(node_result.status)
            counts[status] += 1
            if status not in _FAILED_STATUSES:
                continue
            node = node_result.node
            resource_type = _status_text(getattr(node, "resource_type", "node"))
            if resource_type == "unit_test":
                message = "actual rows differ from the expected rows"
            elif status == "fail":
                message = f"{node_result.failures} failing rows"
            else:
                message = _clean_message(node_result.message)
            failures.append(DbtFailure(node.name, resource_type, status, message))
    exception = getattr(result, "exception", None)
    if exception is not None:
        failures.append(DbtFailure(
            "dbt", "invocation", "error",
            f"{type(exception).__name__}: {_clean_message(exception)}",
        ))
    success = bool(getattr(result, "success", False)) and not failures
    return DbtOutcome(command, success, failures, dict(counts), elapsed)
