"""Locks on a data directory: one run at a time, and waiting for the warehouse files.

**The run lock.** One run at a time on a data directory.

``samverkan run``, ``backfill``, ``lagesbild`` and ``demo`` hold an exclusive ``flock`` on
``run/samverkan.lock`` for their whole duration, taken before Prefect starts; every flow
(``flows/``) takes it too when it starts, so a run a Prefect worker starts from a deployment
and a command cannot overlap. The lock is re-entrant within a process: a flow called by the
command that holds it, or by another flow, runs under the lock its process already holds.
The file holds a small JSON document naming the holder (pid, command, start time), so a
second run says at once which run is in progress instead of failing later on a DuckDB lock.
The kernel releases a ``flock`` when its process dies: a lock file left by a killed run never
blocks the next one.

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

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import threading
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


# The run locks this process holds: lock file -> [fd, holder, depth]. A flow called inside
# another flow (or by the command that took the lock) enters the lock its process holds instead
# of taking it again: flock is per open file, so a second open in the same process would refuse.
_HELD: dict[str, list[Any]] = {}
_HELD_GUARD = threading.Lock()


def _take(p: Paths, command: str) -> tuple[dict[str, Any], bool]:
    """Take (or re-enter) the run lock; (holder, whether this call took it)."""
    key = os.path.realpath(p.run_lock)
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held[2] += 1
            return held[1], False
        p.run_state.mkdir(mode=OWNER_ONLY_DIR, parents=True, exist_ok=True)
        fd = os.open(p.run_lock, os.O_RDWR | os.O_CREAT, OWNER_ONLY_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunInProgress(p, holder) from None
        except BaseException:
            os.close(fd)
            raise
        holder = {"pid": os.getpid(), "command": command,
                  "started": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        except OSError as exc:  # e.g. a full disk: name the file
            os.close(fd)  # closing the file releases its flock
            raise OSError(exc.errno, exc.strerror, str(p.run_lock)) from None
        except BaseException:
            os.close(fd)
            raise
        _HELD[key] = [fd, holder, 1]
        return holder, True


def _release(p: Paths) -> None:
    key = os.path.realpath(p.run_lock)
    with _HELD_GUARD:
        held = _HELD[key]
        held[2] -= 1
        if held[2] > 0:
            return
        del _HELD[key]
        fd = held[0]
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextmanager
def _locked(p: Paths, command: str) -> Iterator[tuple[dict[str, Any], bool]]:
    holder, outermost = _take(p, command)
    try:
        yield holder, outermost
    finally:
        _release(p)


@contextmanager
def run_lock(p: Paths, command: str) -> Iterator[dict[str, Any]]:
    """Hold this data directory's run lock, or raise :class:`RunInProgress` at once.
    Re-entrant within a process: an inner holder gets the outer one's holder document."""
    with _locked(p, command) as (holder, _outermost):
        yield holder


class ChecksFailed(Exception):
    """The checks that run first under the lock failed (they printed why); nothing was done."""


@contextmanager
def exclusive_run(p: Paths, command: str,
                  check: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
    """One run on this data directory: the run lock (:func:`run_lock`), and, for the run that
    takes it (not a flow inside it), the clean-ups only a lock holder may do: the validation
    scratch a killed run left is removed when the run starts and when it ends, and the
    person-level files an earlier release put into the published versions are removed.
    ``check`` (the checks of `samverkan check`) runs first, right after the lock is taken: when
    it fails, :class:`ChecksFailed` is raised and nothing else is done (nothing imported that
    the run itself needs, nothing written but the checks' own probe files)."""
    with _locked(p, command) as (holder, outermost):
        if check is not None and not check():
            raise ChecksFailed(command)
        if not outermost:
            yield holder
            return
        from samverkan.publish import remove_person_level_from_published

        _clear_scratch(p)
        remove_person_level_from_published(p)  # left there by an earlier release
        try:
            yield holder
        finally:
            _clear_scratch(p)


def _clear_scratch(p: Paths) -> None:
    """Remove every validation scratch file and DuckDB's spill files (both person-level; only
    while holding the run lock); the validation module is imported only when there is one."""
    from samverkan.config.settings import ConfigError
    from samverkan.database import clear_spill, warehouse_settings_for

    if p.scratch.is_dir() and any(p.scratch.iterdir()):
        from samverkan.quality import clear_scratch

        clear_scratch(p)
    with contextlib.suppress(ConfigError):  # a wrong [warehouse] value: the run's check says so
        clear_spill(warehouse_settings_for(p))


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
