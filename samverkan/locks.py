"""Locks on a data directory: one run at a time, and waiting for the warehouse files.

**The run lock.** One run at a time on a data directory.

``samverkan run``, ``backfill``, ``lagesbild`` and ``demo`` hold an exclusive ``flock`` on
``run/samverkan.lock`` for their whole duration, taken before Prefect starts. The file holds a
small JSON document naming the holder (pid, command, start time), so a second command says at
once which run is in progress instead of failing later on a DuckDB lock. The kernel releases
a ``flock`` when its process dies: a lock file left by a killed run never blocks the next one.

Holding the lock is what makes "when a run starts" safe for clean-ups that must not touch a
concurrent run's files (the validation scratch files).

**The warehouse files.** Every connection to a warehouse file (restricted or analytics,
read-write or read-only) is opened by :func:`connect_warehouse`: when another process holds
the file (an analyst's DuckDB session, say), it waits up to :data:`WAREHOUSE_WAIT_SECONDS`
(``SAMVERKAN_WAREHOUSE_WAIT_SECONDS``) and then raises :class:`WarehouseBusy`, one message
naming the file and, where DuckDB says it, the process that holds it. dbt opens the files
itself: :func:`ensure_writable` waits the same way before dbt starts. DuckDB is imported only
when a warehouse file is opened, so the command line stays quick to start.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from samverkan.config import Paths
from samverkan.config.settings import OWNER_ONLY_DIR, OWNER_ONLY_FILE
from samverkan.progress import progress

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")


class RunInProgress(Exception):
    """Another process holds the run lock of this data directory."""

    def __init__(self, p: Paths, holder: dict[str, Any]) -> None:
        self.holder = holder
        pid = holder.get("pid", "?")
        command = holder.get("command") or "?"
        started = holder.get("started") or "?"
        super().__init__(
            f"a run is in progress on {p.home}: pid {pid}, `{command}`, started {started}. "
            f"Wait for it to finish (the lock is {p.run_lock}; it is released when that process "
            "ends)")


def _read_holder(fd: int) -> dict[str, Any]:
    """The holder's JSON; it writes it right after taking the lock, so retry briefly."""
    for _ in range(10):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", errors="replace").strip()
        if text:
            try:
                holder = json.loads(text)
                return holder if isinstance(holder, dict) else {}
            except ValueError:
                pass
        time.sleep(0.05)
    return {}


@contextmanager
def run_lock(p: Paths, command: str) -> Iterator[dict[str, Any]]:
    """Hold this data directory's run lock, or raise :class:`RunInProgress` at once."""
    p.run_state.mkdir(mode=OWNER_ONLY_DIR, parents=True, exist_ok=True)
    fd = os.open(p.run_lock, os.O_RDWR | os.O_CREAT, OWNER_ONLY_FILE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress(p, _read_holder(fd)) from None
        holder = {"pid": os.getpid(), "command": command,
                  "started": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        try:
            yield holder
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# The warehouse files
# ---------------------------------------------------------------------------------------------

# How long a step waits for a warehouse file another process holds before it gives up.
WAREHOUSE_WAIT_SECONDS = 60.0
WAREHOUSE_WAIT_ENV = "SAMVERKAN_WAREHOUSE_WAIT_SECONDS"
_RETRY_EVERY_SECONDS = 1.0
_LOCK_CONFLICT = "Could not set lock on file"
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


class WarehouseBusy(Exception):
    """A warehouse file stayed held by another process for the whole wait. The message names
    the file and, where DuckDB says it, the holding process; it holds no data value. Not worth
    retrying a whole extract for: the wait was the retry."""

    transient = False

    def __init__(self, path: Path, waited: float, pid: int | None = None,
                 program: str | None = None) -> None:
        self.path, self.waited, self.pid, self.program = Path(path), waited, pid, program
        holder = (f"another process (PID {pid}, {program})" if pid and program
                  else f"another process (PID {pid})" if pid else "another process")
        super().__init__(
            f"{self.path} is held by {holder}; waited {waited:g} s for it. Close that connection "
            "(an open DuckDB session on the warehouse?) and run again; analysts read the snapshot "
            "in analytics/current/, never the warehouse files")


def warehouse_wait_seconds() -> float:
    """:data:`WAREHOUSE_WAIT_SECONDS`, or ``SAMVERKAN_WAREHOUSE_WAIT_SECONDS`` when set."""
    value = os.environ.get(WAREHOUSE_WAIT_ENV, "").strip()
    try:
        return max(0.0, float(value)) if value else WAREHOUSE_WAIT_SECONDS
    except ValueError:
        return WAREHOUSE_WAIT_SECONDS


def _holder(error: BaseException) -> tuple[int | None, str | None] | None:
    """(pid, program) of the process DuckDB says holds the file; None when ``error`` is not a
    lock conflict."""
    message = str(error)
    if _LOCK_CONFLICT not in message:
        return None
    match = _LOCK_HOLDER.search(message)
    if not match:
        return None, None
    return int(match["pid"]), Path(match["program"]).name


def wait_for_warehouse(open_: Callable[[], T], path: Path, wait: float | None = None) -> T:
    """``open_()``, retried while DuckDB says another process holds ``path``, for up to
    ``wait`` seconds (default :func:`warehouse_wait_seconds`); then :class:`WarehouseBusy`."""
    import duckdb

    wait = warehouse_wait_seconds() if wait is None else wait
    started = time.monotonic()
    said = False
    while True:
        try:
            return open_()
        except duckdb.IOException as exc:
            holder = _holder(exc)
            if holder is None:
                raise
            waited = time.monotonic() - started
            if waited >= wait:
                raise WarehouseBusy(path, round(wait, 1), *holder) from None
            if not said:
                pid = f" (PID {holder[0]})" if holder[0] else ""
                progress("waiting up to %g s for %s: another process%s holds it", wait, path, pid)
                said = True
            time.sleep(min(_RETRY_EVERY_SECONDS, wait - waited))


def connect_warehouse(path: Path, read_only: bool = False,
                      wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """A connection to a warehouse file (``<home>/warehouse/*.duckdb``), waiting (bounded) while
    another process holds it, with that data directory's ``[warehouse]`` settings
    (:func:`samverkan.database.duckdb_config`)."""
    import duckdb

    from samverkan.database import duckdb_config

    path = Path(path)
    config = duckdb_config(Paths(path.parent.parent) if path.parent.name == "warehouse" else None)
    return wait_for_warehouse(
        lambda: duckdb.connect(str(path), read_only=read_only, config=dict(config)), path, wait)


def ensure_writable(p: Paths, wait: float | None = None) -> None:
    """Wait (bounded) until both warehouse files can be opened for writing, for a writer that
    opens them itself (dbt); :class:`WarehouseBusy` when one stays held."""
    for path in (p.restricted_db, p.analytics_db):
        if path.exists():
            connect_warehouse(path, wait=wait).close()
