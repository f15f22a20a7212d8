"""Measuring a child process: wall time and peak resident memory of the child and all its
descendants, sampled from /proc; with a ceiling, the whole process group is stopped as soon as
the sampled memory passes it (the measurement then says so instead of taking the machine
down)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE_SECONDS = 0.2
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process /proc shows."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (those alive now)."""
    tree = _children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def process_rss(pid: int) -> int:
    """Resident bytes of the process ``pid`` alone (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    return sum(process_rss(current) for current in process_tree(pid))


@dataclass
class Measurement:
    """One measured child: wall seconds, peak RSS over its process tree, exit code; the
    last JSON object it printed on stdout (``result``); ``exceeded`` when it was stopped at
    the ceiling."""

    label: str
    wall_seconds: float
    peak_rss_bytes: int
    returncode: int
    result: dict[str, Any] = field(default_factory=dict)
    exceeded_bytes: int | None = None
    error: str = ""
    # for each mark (a text of the child's output): the peak up to its first line holding it
    peak_before: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.exceeded_bytes is None and not self.error

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "wall_seconds": round(self.wall_seconds, 2),
                "peak_rss_bytes": self.peak_rss_bytes, "returncode": self.returncode,
                "exceeded_bytes": self.exceeded_bytes, "error": self.error, "result": self.result,
                "peak_before": self.peak_before}


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return {}


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def run_measured(label: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, ceiling_bytes: int | None = None,
                 timeout_seconds: float | None = None, log_file: Path | None = None,
                 marks: Sequence[str] = ()) -> Measurement:
    """Run ``argv`` as a child in its own process group while this process samples the
    resident memory of the child and its descendants every :data:`SAMPLE_SECONDS`. Past
    ``ceiling_bytes`` (or ``timeout_seconds``) the group is killed. The child's stdout and
    stderr go to ``log_file`` (appended) when given; the error line of a failed child is its
    last stderr lines. For each of ``marks`` the peak up to the first output line that holds
    it is kept (``peak_before``: a phase of the child, e.g. a backfill's pull before its
    build)."""
    started = time.monotonic()
    child = subprocess.Popen(list(argv), env=dict(env) if env is not None else None, cwd=cwd,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    peak = [0]
    exceeded: list[int] = []
    done = threading.Event()

    def stop_group() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)

    def sample() -> None:
        while not done.is_set():
            rss = tree_rss(child.pid)
            peak[0] = max(peak[0], rss)
            if ceiling_bytes is not None and rss > ceiling_bytes and not exceeded:
                exceeded.append(rss)
                stop_group()
            if timeout_seconds is not None and time.monotonic() - started > timeout_seconds:
                stop_group()
            done.wait(SAMPLE_SECONDS)

    peak_before: dict[str, int] = {}
    lock = threading.Lock()

    def read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            for mark in marks:
                if mark in line and mark not in peak_before:
                    with lock:
                        peak_before[mark] = max(peak[0], tree_rss(child.pid))

    out_lines: list[str] = []
    err_lines: list[str] = []
    readers = [threading.Thread(target=read, args=(child.stdout, out_lines), daemon=True),
               threading.Thread(target=read, args=(child.stderr, err_lines), daemon=True)]
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for reader in readers:
        reader.start()
    try:
        for reader in readers:
            reader.join()
        child.wait()
    except BaseException:
        stop_group()
        raise
    finally:
        done.set()
        sampler.join()
    stdout, stderr = "".join(out_lines), "".join(err_lines)
    wall = time.monotonic() - started
    if log_file is not None:
        with log_file.open("a", encoding="utf-8") as f:
            f.write(f"===== {label}: {' '.join(argv)}\n{stdout}\n----- stderr\n{stderr}\n")
    m = Measurement(label, wall, peak[0], child.returncode, _last_json(stdout),
                    exceeded[0] if exceeded else None, peak_before=peak_before)
    if m.exceeded_bytes is None and child.returncode != 0:
        m.error = _tail(stderr) or _tail(stdout) or f"exit code {child.returncode}"
    return m
