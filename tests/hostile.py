"""Shared by the bad-input corpus (tests/test_corpus_*.py): a small simulated municipality on
real sources, the real `samverkan` command in a subprocess, and what every case asserts about
its outcome (exit code, one clear message, no traceback on the console, the previous
publication byte-identical where the gate must block).

The municipality is the simulator's small Malmö: an SS 12000 server on 127.0.0.1, a SQLite case
system and a police CSV inbox on disk, each a copy of its own so a case can break it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samverkan.config import Paths

ROOT = Path(__file__).resolve().parent.parent
KEY = "corpus-test-key-0123456789-abcdefghijklmn"
TOKEN_ENV = "CORPUS_SS12000_TOKEN"  # noqa: S105 - the name of a variable
SEED = 7
PUPILS = 120
LESSONS_PER_DAY = 1
# What a Python traceback looks like on the console: its header or one of its frame lines.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s+File \".*\", line \d+", re.MULTILINE)


@functools.cache
def population() -> Any:
    """The small Malmö (seeded, so every call gives the same world)."""
    from samverkan.simulator.municipalities import MALMO
    from samverkan.simulator.population import generate

    return generate(seed=SEED, pupils=PUPILS, lessons_per_day=LESSONS_PER_DAY, municipality=MALMO)


def write_sources(root: Path) -> tuple[Path, Path]:
    """The small Malmö's case system (SQLite) and police inbox under ``root``."""
    from samverkan.simulator.case_system_db import write_case_system
    from samverkan.simulator.police_files import write_police_files

    root.mkdir(parents=True, exist_ok=True)
    sqlite, inbox = root / "rapport.sqlite", root / "inbox"
    write_case_system(population(), f"sqlite:///{sqlite}")
    write_police_files(population(), inbox)
    return sqlite, inbox


def ss12000_data() -> Any:
    """The small Malmö's SS 12000 data, for ``samverkan.simulator.ss12000_server.serve``."""
    from samverkan.simulator.ss12000_server import SS12000Data

    return SS12000Data.from_population(population())


@dataclass
class Installation:
    """A Malmö data directory (configuration, reference files, key) and the environment of a
    `samverkan` command on it."""

    home: Path
    env: dict[str, str]
    case_db: Path
    inbox: Path
    base_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def paths(self) -> Paths:
        return Paths(self.home)

    @property
    def config(self) -> Path:
        return self.home / "samverkan.toml"

    def edit_config(self, old: str, new: str) -> None:
        """Replace ``old`` (which must be there) by ``new`` in samverkan.toml."""
        text = self.config.read_text(encoding="utf-8")
        assert old in text, f"{old!r} is not in {self.config}"
        self.config.write_text(text.replace(old, new, 1), encoding="utf-8")


def install(home: Path, base_url: str, token: str, case_db: Path, inbox: Path,
            prefect_api_url: str, reference_date: str = "2026-06-12") -> Installation:
    """Malmö's configuration and reference files in ``home``; the key and the SS 12000 token in
    the environment; the test worker's Prefect server."""
    from samverkan.simulator.municipalities import MALMO, write_reference

    home.mkdir(parents=True, exist_ok=True)
    write_reference(MALMO, home / "reference")
    (home / "samverkan.toml").write_text(
        '[municipality]\ncode = "1280"\nname = "Malmö"\norganisation_number = "212000-1124"\n\n'
        f'[general]\nreference_date = "{reference_date}"\n\n'
        f'[ss12000]\nbase_url = "{base_url}"\ntoken_env = "{TOKEN_ENV}"\n\n'
        f'[case_system]\nurl = "sqlite:///{case_db}"\n\n[police]\ninbox = "{inbox}"\n',
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("SAMVERKAN_CONFIG", "SAMVERKAN_PSEUDONYM_KEY_FILE")}
    env.update({"SAMVERKAN_HOME": str(home), "SAMVERKAN_PSEUDONYM_KEY": KEY, TOKEN_ENV: token,
                "PREFECT_API_URL": prefect_api_url})
    return Installation(home, env, case_db, inbox, base_url)


def copy_sources(sqlite: Path, inbox: Path, target: Path) -> tuple[Path, Path]:
    """A private copy of a case system and a police inbox, for a case that breaks them."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sqlite, target / sqlite.name)
    shutil.copytree(inbox, target / inbox.name, symlinks=True)
    return target / sqlite.name, target / inbox.name


def cli(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """The real `samverkan` command, as a subprocess."""
    return subprocess.run([sys.executable, "-m", "samverkan.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def console(result: subprocess.CompletedProcess) -> str:
    return (result.stdout or "") + (result.stderr or "")


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    text = console(result)
    assert not TRACEBACK.search(text), f"a traceback reached the console:\n{text[-4000:]}"


def assert_clean_failure(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 1, no traceback on the console, and one console line holding every needle;
    returns that line."""
    text = console(result)
    assert result.returncode == 1, f"exit code {result.returncode}:\n{text[-4000:]}"
    assert_no_traceback(result)
    lines = [line for line in text.splitlines() if all(n in line for n in needles)]
    assert lines, f"no console line holds {needles!r}:\n{text[-4000:]}"
    return lines[0]


def publication_fingerprint(paths: Paths) -> dict[str, str]:
    """Every file of the published zone (and where `current` points) by content: equal before
    and after a blocked run means the previous publication is byte-identical and still the
    current one."""
    root = paths.published
    prints: dict[str, str] = {}
    if not root.exists():
        return prints
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            prints[name] = "-> " + os.readlink(path)
        elif path.is_file():
            prints[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return prints
