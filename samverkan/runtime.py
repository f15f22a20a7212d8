"""Process set-up shared by the CLI commands: environment defaults and logging."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

PREFECT_DEFAULTS = {
    # Prefect's ephemeral server needs ~30 s on a fresh home, past its 20 s default.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DO_NOT_TRACK": "1",
    # Route the platform's own log lines (counts and batch ids only) into Prefect run logs.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "samverkan",
    # Prefect's console handler (on the root logger, which the `samverkan` lines propagate to)
    # prints nothing short of a crash: the progress lines are printed by samverkan.progress, a
    # failure ends as the command's own summary (one line per cause), and every log line,
    # Prefect's flow and task runs with their tracebacks included, stays in the run logs and the
    # log file (attach_log_file). `samverkan -v` shows the whole log on the console instead.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    # A `samverkan` line logged outside a flow run (the command's own failure line, after
    # Prefect is imported) goes to the log file; without this Prefect's API handler prints a
    # UserWarning about it on the console.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def apply_environment_defaults(verbose: bool = False) -> None:
    """Set defaults before Prefect is imported; explicit settings win. ``verbose``: Prefect's
    console handler shows every log line (debug included)."""
    defaults = dict(PREFECT_DEFAULTS)
    if verbose:
        defaults["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "DEBUG"
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


LOG_FILE_NAME = "samverkan.log"


def configure_logging(log_dir: Path, verbose: bool = False) -> Path:
    """The ``samverkan`` logger writes to ``<logs>/samverkan.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("samverkan")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    return attach_log_file(logger, log_dir)


class LogFileHandler(logging.FileHandler):
    """The log file. When a record cannot be written (a full disk, a file system gone
    read-only) the console gets one line naming the file and the cause, once per file, instead
    of the logging module's traceback; the command goes on and says what failed."""

    _reported: set[str] = set()  # noqa: RUF012 - shared by every handler of the process

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        error = sys.exc_info()[1]
        if self.baseFilename in self._reported:
            return
        self._reported.add(self.baseFilename)
        cause = (error.strerror if isinstance(error, OSError) and error.strerror
                 else type(error).__name__ if error else "unknown error")
        with contextlib.suppress(Exception):
            print(f"samverkan: cannot write the log file {self.baseFilename}: {cause}",
                  file=sys.stderr, flush=True)


def attach_log_file(logger: logging.Logger, log_dir: Path) -> Path:
    """Write ``logger``'s records (tracebacks included) to the log file, once. Prefect's loggers
    get it after Prefect has configured logging (its set-up replaces handlers)."""
    log_file = log_dir / LOG_FILE_NAME
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == log_file.resolve()
               for h in logger.handlers):
        handler = LogFileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    return log_file
