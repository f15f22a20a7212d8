"""``samverkan check``: whether a run can work, one line per check, in seconds.

Run on its own, and at the start of every ``run``, ``lagesbild`` and ``backfill`` before
Prefect starts: the configuration file (which one, unknown keys, wrong types and values), the
pseudonym key (present, long enough, its file readable by its owner only), the data
directory, the municipality's reference files, and each source (reachable, authenticated, the
expected data there; each probe gives up after a few seconds). A detail names the file, key,
host or path and the cause, never a data value or a secret.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from samverkan.config.settings import (
    SOURCES,
    ConfigError,
    Paths,
    Settings,
    config_file,
    load_settings,
    paths,
)


@dataclass(frozen=True)
class CheckResult:
    """One check: its name (e.g. ``ss12000``), whether it passed, and a detail that names the
    file, key, host or path and the cause; never a data value."""

    name: str
    ok: bool
    detail: str


@dataclass
class CheckReport:
    results: list[CheckResult]
    seconds: float
    settings: Settings | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def lines(self) -> list[str]:
        out = []
        for r in self.results:
            first, *rest = r.detail.splitlines() or [""]
            out.append(f"  {'ok  ' if r.ok else 'FAIL'}  {r.name:<13s} {first}")
            out.extend(f"  {'':4s}  {'':<13s} {line}" for line in rest)
        return out


def check_configuration(environ: Mapping[str, str]) -> tuple[CheckResult, Settings | None]:
    p = paths(environ)
    cfg = config_file(p, environ)
    try:
        settings = load_settings(environ)
    except ConfigError as exc:
        return CheckResult("configuration", False, "\n".join(exc.problems)), None
    m = settings.municipality
    detail = f"{cfg} ({m.name}, {m.code}, {m.organisation_number})"
    return CheckResult("configuration", True, detail), settings


def check_key(environ: Mapping[str, str]) -> CheckResult:
    """The pseudonym key: present, at least 32 characters, and a key file that only its owner
    can read (the key links every person across the sources)."""
    from samverkan.pseudonymisation import (
        KEY_ENV,
        KEY_FILE_ENV,
        PseudonymKeyError,
        default_key_file,
        load_key,
    )

    try:
        load_key(environ)
    except PseudonymKeyError as exc:
        return CheckResult("pseudonym key", False, str(exc))
    if environ.get(KEY_ENV):
        return CheckResult("pseudonym key", True, f"from ${KEY_ENV}")
    path = Path(environ[KEY_FILE_ENV]) if environ.get(KEY_FILE_ENV) else default_key_file(environ)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return CheckResult("pseudonym key", False,
                           f"key file {path} can be read by others (mode {mode:04o}); "
                           f"make it private: chmod 600 {path}")
    return CheckResult("pseudonym key", True, f"key file {path} (mode {mode:04o})")


def check_data_directory(p: Paths) -> CheckResult:
    home = p.home
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".check-"):
            pass
    except OSError as exc:
        return CheckResult("data directory", False,
                           f"{home} cannot be written ({exc.strerror or type(exc).__name__})")
    return CheckResult("data directory", True, str(home))


def check_warehouse(settings: Settings) -> CheckResult:
    """The effective ``[warehouse]`` settings: DuckDB's memory limit, threads and spill folder
    (which must be a folder this process can write, owner-only)."""
    from samverkan.database import WarehouseSettings, format_size, physical_memory

    w = settings.warehouse or WarehouseSettings.defaults(settings.paths)
    detail = (f"memory_limit {w.memory_limit} (this machine: {format_size(physical_memory())}), "
              f"load_memory_limit {w.load_memory_limit}, threads {w.threads}, "
              f"spill folder {w.temp_directory}")
    try:
        root = w.ensure_spill_root()
        with tempfile.NamedTemporaryFile(dir=root, prefix=".check-"):
            pass
    except OSError as exc:
        return CheckResult("warehouse", False, f"{detail}: the spill folder cannot be written "
                                               f"({exc.strerror or type(exc).__name__})")
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o077:
        return CheckResult("warehouse", False, f"{detail}: the spill folder can be read by others "
                                               f"(mode {mode:04o}); chmod 700 {root}")
    return CheckResult("warehouse", True, f"{detail} (mode {mode:04o})")


def check_reference(p: Paths) -> CheckResult:
    from samverkan.config.reference import ReferenceError, read_reference

    try:
        data = read_reference(p.reference)
    except ReferenceError as exc:
        return CheckResult("reference", False, "\n".join(exc.problems))
    counts = {name: len(rows) for name, rows in data.rows.items()}
    return CheckResult("reference", True,
                       f"{p.reference} ({counts['ref_stadsdelsomraden']} stadsdelsområden, "
                       f"{counts['ref_sspf_omraden']} SSPF areas, {counts['ref_skolenheter']} school "
                       f"units, {counts['ref_stadsdelar']} district names)")


def prefect_api_url(environ: Mapping[str, str]) -> str | None:
    """The Prefect API a run reports to: ``PREFECT_API_URL``, else the active profile's in
    ``$PREFECT_HOME/profiles.toml`` (read as a file: importing Prefect takes seconds); None when
    neither sets one (each run then starts a temporary server of its own)."""
    if environ.get("PREFECT_API_URL"):
        return environ["PREFECT_API_URL"]
    home = Path(environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    try:
        profiles = tomllib.loads((home / "profiles.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    name = environ.get("PREFECT_PROFILE") or profiles.get("active")
    url = profiles.get("profiles", {}).get(name, {}).get("PREFECT_API_URL")
    return url if isinstance(url, str) and url else None


def check_prefect(environ: Mapping[str, str], timeout: float = 5.0) -> CheckResult:
    """The Prefect API answers its health check (or no API is configured: each run starts a
    temporary server)."""
    url = prefect_api_url(environ)
    if url is None:
        return CheckResult("prefect", True, "no PREFECT_API_URL: each run starts a temporary Prefect server")
    parts = urllib.parse.urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    shown = f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"  # never a password
    if parts.scheme not in ("http", "https") or not parts.hostname or port == ":?":
        return CheckResult("prefect", False, f"PREFECT_API_URL {shown} is not an http(s) URL with a "
                                             "host and port")
    hint = ("start the Prefect server (`prefect server start`), or unset PREFECT_API_URL and "
            "each run starts a temporary one")
    request = urllib.request.Request(url.rstrip("/") + "/health")  # noqa: S310 - http(s), above
    if environ.get("PREFECT_API_KEY"):
        request.add_header("Authorization", f"Bearer {environ['PREFECT_API_KEY']}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - http(s) only
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        cause = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return CheckResult("prefect", False, f"the Prefect API at {shown} does not answer ({cause}); {hint}")
    if status != 200:
        return CheckResult("prefect", False, f"the Prefect API at {shown} answered HTTP {status} to its "
                                             f"health check; {hint}")
    return CheckResult("prefect", True, f"the Prefect API at {shown}")


def _source_probe(settings: Settings, source: str) -> Callable[[], CheckResult]:
    def probe() -> CheckResult:
        config = getattr(settings, source)
        if config is None:
            return CheckResult(source, False, f"no [{source}] section in {settings.config_file}")
        if settings.source_problems.get(source):
            return CheckResult(source, False, "\n".join(settings.source_problems[source]))
        try:
            if source == "ss12000":
                from samverkan.sources.ss12000 import probe as probe_ss12000

                return probe_ss12000(config, settings.municipality.organisation_number,
                                     settings.config_file)
            if source == "case_system":
                from samverkan.sources.case_system import probe as probe_case_system

                return probe_case_system(config)
            from samverkan.sources.police import probe as probe_police

            return probe_police(config)
        except Exception as exc:  # noqa: BLE001 - a probe must report, not crash the check
            return CheckResult(source, False, f"the check itself failed ({type(exc).__name__})")
    return probe


def run_checks(environ: Mapping[str, str] | None = None, *, sources: bool = True) -> CheckReport:
    """Every check, the sources' probes concurrently (each gives up after a few seconds)."""
    env = os.environ if environ is None else environ
    started = time.monotonic()
    p = paths(env)
    configuration, settings = check_configuration(env)
    results = [configuration, check_key(env), check_data_directory(p), check_reference(p)]
    if settings is not None:
        results.append(check_warehouse(settings))
    with ThreadPoolExecutor(max_workers=len(SOURCES) + 1) as pool:
        prefect = pool.submit(check_prefect, env)
        if sources:
            if settings is None:
                results += [CheckResult(s, False, "not checked: the configuration has errors")
                            for s in SOURCES]
            else:
                futures = [pool.submit(_source_probe(settings, s)) for s in SOURCES]
                results += [f.result() for f in futures]
        results.append(prefect.result())
    return CheckReport(results, time.monotonic() - started, settings)

