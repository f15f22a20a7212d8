"""Process set-up shared by the CLI commands: environment defaults and logging."""

from __future__ import annotations

import logging
import os
from pathlib import Path

PREFECT_DEFAULTS = {
    # Prefect's ephemeral server needs ~30 s on a fresh home, past its 20 s default.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DO_NOT_TRACK": "1",
    # Route the platform's own log lines (counts and batch ids only) into Prefect run logs.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "samverkan",
}


def apply_environment_defaults() -> None:
    """Set defaults before Prefect is imported; explicit settings win."""
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)


def configure_logging(log_dir: Path, verbose: bool = False) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "samverkan.log"
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger("samverkan")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(fmt)
        root.addHandler(handler)
    return log_file
