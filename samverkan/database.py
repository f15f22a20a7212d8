"""Every DuckDB connection the pipeline opens: bounded memory, a spill folder, no needless order.

The ``[warehouse]`` section of ``samverkan.toml`` (:func:`samverkan.config.settings.warehouse_settings`)
gives DuckDB a memory limit (default: half the machine's memory, at most 4 GiB), a number of threads (default:
the CPUs this process may use) and a folder for spilling what does not fit (default
``<home>/warehouse/spill/``, owner only: spill files hold person-level data). Every connection
(:func:`connect`; the warehouse files through :func:`samverkan.locks.connect_warehouse`, dbt's
database through :mod:`samverkan.dbt_plugin`, Great Expectations through
:func:`sqlalchemy_connect_args`) gets them, and ``preserve_insertion_order = false``: nothing in
the pipeline reads rows in the order they were inserted (every file that is published is
written with an explicit ``order by``, which DuckDB keeps), and without it DuckDB can stream
and spill large results. The one connection outside this module is the simulator's
(:mod:`samverkan.simulator.ss12000_server`): it plays the municipality's school platform, not
the pipeline, and relies on insertion order.

An extract's connections (:func:`loading`: the validation of what it pulled and the load into
the restricted warehouse) get ``load_memory_limit`` instead (default 512 MiB, or
``memory_limit`` when that is lower): they append and scan, which streams, and a first load of
a whole term must fit beside the Python process that pulls it (README, "Performance").

Each DuckDB database instance spills into its own sub-folder of the spill folder
(``duckdb-<pid>-<random>``), which DuckDB creates when it first spills and removes when it is
closed: two instances sharing one folder would delete each other's files when one closes. A
killed process leaves its sub-folder behind; :func:`clear_spill` removes them when a run starts
and when it ends (only folders with that prefix: the configured folder may hold other files).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samverkan.config.settings import OWNER_ONLY_DIR, Paths

if TYPE_CHECKING:
    import duckdb

SPILL_PREFIX = "duckdb-"
_KIB = 1024
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": _KIB, "mib": _KIB**2, "gib": _KIB**3, "tib": _KIB**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*")
# Below this DuckDB cannot build the project's larger joins even when spilling.
MIN_MEMORY_BYTES = 128 * _KIB**2


def parse_size(text: str) -> int | None:
    """Bytes of a DuckDB size string ("4GiB", "512 MB", "2.5GB"); None when it is not one.
    Units as DuckDB reads them: KB/MB/GB/TB powers of 1000, KiB/MiB/GiB/TiB powers of 1024."""
    match = _SIZE.fullmatch(text)
    if not match or match[2].lower() not in _UNITS:
        return None
    return int(float(match[1]) * _UNITS[match[2].lower()])


def format_size(n: int) -> str:
    """``n`` bytes as DuckDB reads them, in whole MiB ("11854MiB")."""
    return f"{max(1, n // _KIB**2)}MiB"


def physical_memory() -> int:
    """Bytes of memory this process can use: the machine's physical memory, or the cgroup's
    limit (a container) when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with suppress(OSError, ValueError):
            text = Path(limit_file).read_text(encoding="ascii").strip()
            if text.isdigit() and 0 < int(text) < total:
                total = int(text)
    return total


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# The default is capped: at Stockholm's size (100 000 pupils) a full build peaks at about
# 4.7 GiB under a 4 GiB limit, and a larger limit buys little time (spilling is sequential I/O)
# while it lets one night take most of a shared machine. Raise it in samverkan.toml if wanted.
DEFAULT_MEMORY_LIMIT_CAP = 4 * 2**30


def default_memory_limit() -> str:
    """Half the machine's memory (:func:`physical_memory`), at most 4 GiB."""
    return format_size(min(physical_memory() // 2, DEFAULT_MEMORY_LIMIT_CAP))


# An extract's DuckDB connections: appends and scans stream, and DuckDB would otherwise fill
# memory_limit with cached blocks of the load (5 GiB of process memory at Stockholm's size).
# DuckDB's resident memory exceeds its limit (allocations outside its buffer pool): loading a
# whole Stockholm term under 1 GiB took the process to 2.1 GiB, 0.4 GiB of it Python's.
DEFAULT_LOAD_MEMORY_LIMIT = 512 * 2**20


def default_load_memory_limit(memory_limit: str) -> str:
    """512 MiB, or ``memory_limit`` when that is lower."""
    limit = parse_size(memory_limit) or DEFAULT_LOAD_MEMORY_LIMIT
    return format_size(min(limit, DEFAULT_LOAD_MEMORY_LIMIT))


_LOADING: ContextVar[bool] = ContextVar("samverkan_loading", default=False)


@contextmanager
def loading() -> Iterator[None]:
    """DuckDB connections opened in this block (in this thread or task: one extract) get the
    ``load_memory_limit`` of the warehouse settings instead of ``memory_limit``."""
    token = _LOADING.set(True)
    try:
        yield
    finally:
        _LOADING.reset(token)


@dataclass(frozen=True)
class WarehouseSettings:
    """How DuckDB may use this machine. ``memory_limit`` is a DuckDB size string (the limit of
    an extract's connections: ``load_memory_limit``); ``temp_directory`` the spill folder (each
    database instance spills into its own sub-folder of it)."""

    memory_limit: str
    threads: int
    temp_directory: Path
    load_memory_limit: str = format_size(DEFAULT_LOAD_MEMORY_LIMIT)

    @classmethod
    def defaults(cls, p: Paths) -> WarehouseSettings:
        memory_limit = default_memory_limit()
        return cls(memory_limit, cpu_count(), default_spill_directory(p),
                   default_load_memory_limit(memory_limit))

    def ensure_spill_root(self) -> Path:
        """The spill folder, created owner-only (0700) when missing and set to 0700 when this
        user owns it (spill files hold person-level data)."""
        root = self.temp_directory
        root.mkdir(mode=OWNER_ONLY_DIR, parents=True, exist_ok=True)
        if root.stat().st_mode & 0o777 != OWNER_ONLY_DIR and root.stat().st_uid == os.getuid():
            root.chmod(OWNER_ONLY_DIR)
        return root

    def new_spill_directory(self) -> Path:
        """A fresh sub-folder of the spill folder for one database instance (not created: DuckDB
        creates it when it first spills and removes it when the instance closes)."""
        return self.ensure_spill_root() / f"{SPILL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"

    def duckdb_config(self, spill: bool = True) -> dict[str, Any]:
        """The ``config`` of a new DuckDB database instance: with ``spill`` a fresh spill
        sub-folder (the spill folder is created), else DuckDB's own temp directory; within
        :func:`loading` the load memory limit."""
        config: dict[str, Any] = {
            "memory_limit": self.load_memory_limit if _LOADING.get() else self.memory_limit,
            "threads": self.threads, "preserve_insertion_order": False}
        if spill:
            config["temp_directory"] = str(self.new_spill_directory())
        return config


def default_spill_directory(p: Paths) -> Path:
    return p.spill


def warehouse_settings_for(p: Paths | None = None,
                           environ: Mapping[str, str] | None = None) -> WarehouseSettings:
    """The ``[warehouse]`` settings of the data directory ``p`` (default: the configured one);
    the defaults where the configuration file does not exist."""
    from samverkan.config import paths
    from samverkan.config.settings import warehouse_settings

    return warehouse_settings(p or paths(environ), environ)


def duckdb_config(p: Paths | None = None) -> dict[str, Any]:
    """The DuckDB ``config`` of a new database instance with the warehouse settings of the data
    directory ``p`` (default: the configured one). Outside any installation (no data directory)
    no spill folder is made: DuckDB's own temp directory applies."""
    from samverkan.config import paths

    p = p or paths()
    return warehouse_settings_for(p).duckdb_config(spill=p.home.is_dir())


def connect(database: str | Path = ":memory:", read_only: bool = False,
            p: Paths | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the warehouse settings of the data directory ``p`` (default:
    the configured one). Use it for every DuckDB connection: warehouse files, scratch files
    and in-memory databases alike."""
    import duckdb

    return duckdb.connect(str(database), read_only=read_only, config=duckdb_config(p))


def sqlalchemy_connect_args(p: Paths | None = None, read_only: bool = False) -> dict[str, Any]:
    """``connect_args`` of a SQLAlchemy ``duckdb:///`` engine (Great Expectations) with the
    warehouse settings of the data directory ``p``."""
    return {"read_only": read_only, "config": duckdb_config(p)}


# The environment variables :mod:`samverkan.dbt_plugin` reads dbt's DuckDB settings from.
DBT_ENV = {"memory_limit": "SAMVERKAN_DUCKDB_MEMORY_LIMIT", "threads": "SAMVERKAN_DUCKDB_THREADS",
           "temp_directory": "SAMVERKAN_DUCKDB_TEMP_DIRECTORY"}


def dbt_settings_env(settings: WarehouseSettings, spill: bool = True) -> dict[str, str]:
    """:data:`DBT_ENV` for one dbt invocation (one database instance, one spill sub-folder;
    none without ``spill``)."""
    config = settings.duckdb_config(spill)
    return {DBT_ENV[key]: str(config[key]) for key in DBT_ENV if key in config}


def clear_spill(settings: WarehouseSettings) -> int:
    """Remove every spill sub-folder in the spill folder (a killed process's leftovers hold
    person-level data); returns how many. Only for a process that holds the run lock
    (:mod:`samverkan.locks`). Touches only the sub-folders this module names."""
    root = settings.temp_directory
    if not root.is_dir():
        return 0
    removed = 0
    for item in root.iterdir():
        if item.name.startswith(SPILL_PREFIX) and item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
            removed += 1
    return removed
