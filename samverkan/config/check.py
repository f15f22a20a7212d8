"""``samverkan check``: whether a run can work, one line per check."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """One check: its name (e.g. ``ss12000``), whether it passed, and a detail that names the
    file, key, host or path and the cause; never a data value."""

    name: str
    ok: bool
    detail: str
