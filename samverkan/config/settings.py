"""Where things live and how the platform reaches its sources.

Everything is derived from one data directory, ``SAMVERKAN_HOME`` (default ``./data``).
Source endpoints come from ``samverkan.toml`` in that directory (or the file named by
``SAMVERKAN_CONFIG``); the demo writes one that points at the simulator.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
SQL_DIR = PROJECT_ROOT / "samverkan" / "sql"
SOURCES = ("ss12000", "case_system", "police")


class ConfigError(Exception):
    """A configuration problem the operator must fix; the message says what and where."""


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
    def dbt_target(self) -> Path:
        """dbt's target directory (manifest, compiled SQL, docs) for this data directory, so
        two data directories (a demo and the tests, two test workers) never share one."""
        return self.run_state / "dbt-target"

    def ensure(self) -> Paths:
        for directory in (self.landing, self.warehouse, self.published, self.validation, self.logs,
                          self.run_state):
            directory.mkdir(parents=True, exist_ok=True)
        return self


def home_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("SAMVERKAN_HOME", "data")).resolve()


def paths(environ: dict[str, str] | None = None) -> Paths:
    return Paths(home_dir(environ))


@dataclass(frozen=True)
class SS12000Config:
    base_url: str
    token: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    page_size: int = 5000
    timeout_seconds: float = 30.0
    municipality_organisation_number: str = "212000-0142"


@dataclass(frozen=True)
class CaseSystemConfig:
    url: str
    schema: str | None = None


@dataclass(frozen=True)
class PoliceConfig:
    inbox: Path


@dataclass(frozen=True)
class Settings:
    paths: Paths
    ss12000: SS12000Config | None = None
    case_system: CaseSystemConfig | None = None
    police: PoliceConfig | None = None
    reference_date: str | None = None  # ISO date; None means today
    municipality_code: str = "0180"
    municipality_name: str = "Stockholm"
    extra: dict[str, Any] = field(default_factory=dict)


def config_file(p: Paths, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env["SAMVERKAN_CONFIG"]) if env.get("SAMVERKAN_CONFIG") else p.home / "samverkan.toml"


def _section(doc: dict[str, Any], name: str, cfg: Path) -> dict[str, Any] | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{cfg}: [{name}] must be a table")
    return value


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read ``samverkan.toml``; a missing file gives settings without sources."""
    env = os.environ if environ is None else environ
    p = paths(env)
    cfg = config_file(p, env)
    if not cfg.exists():
        return Settings(paths=p)
    try:
        doc = tomllib.loads(cfg.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg}: not valid TOML ({exc})") from None

    def build(cls: type, name: str, **conv: Any) -> Any:
        section = _section(doc, name, cfg)
        if section is None:
            return None
        section = dict(section)
        token_env = section.pop("token_env", None)
        if token_env:
            section["token"] = env.get(token_env)
        secret_env = section.pop("client_secret_env", None)
        if secret_env:
            section["client_secret"] = env.get(secret_env)
        for key, fn in conv.items():
            if key in section:
                section[key] = fn(section[key])
        try:
            return cls(**section)
        except TypeError as exc:
            raise ConfigError(f"{cfg}: [{name}] {exc}") from None

    general = _section(doc, "general", cfg) or {}
    return Settings(
        paths=p,
        ss12000=build(SS12000Config, "ss12000"),
        case_system=build(CaseSystemConfig, "case_system"),
        police=build(PoliceConfig, "police", inbox=Path),
        reference_date=general.get("reference_date"),
        municipality_code=general.get("municipality_code", "0180"),
        municipality_name=general.get("municipality_name", "Stockholm"),
        extra={**{k: general[k] for k in ("retention_days",) if k in general},
               **({"dbt_vars": dbt_vars} if (dbt_vars := _section(doc, "dbt_vars", cfg)) else {})},
    )
