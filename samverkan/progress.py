"""Progress of long steps, for people watching a command run.

Progress lines go to the ``samverkan.progress`` logger: into the log file and Prefect's run
logs like every other ``samverkan`` line, and, when a CLI command enables it, to the terminal.
Counts, names, batch ids and timings only.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

PROGRESS = logging.getLogger("samverkan.progress")


def progress(message: str, *args: Any) -> None:
    PROGRESS.info(message, *args)


class _Console(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.started = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        elapsed = int(time.monotonic() - self.started)
        try:
            print(f"  [{elapsed // 60:02d}:{elapsed % 60:02d}] {record.getMessage()}", flush=True,
                  file=sys.stdout)
        except Exception:  # noqa: BLE001 - a closed terminal must not stop the pipeline
            self.handleError(record)


def show_progress_on_console() -> None:
    """Print progress lines (with the time since the command started) on stdout."""
    if not any(isinstance(h, _Console) for h in PROGRESS.handlers):
        PROGRESS.addHandler(_Console())
    PROGRESS.setLevel(logging.INFO)
