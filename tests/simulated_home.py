"""A data directory over a simulated municipality, for the tests that run the pipeline's step
functions in-process over several nights (no Prefect): the case system (SQLite) and the police
inbox written from the population, the SS 12000 server on loopback, the key, token and
``samverkan.toml`` in place while the scenario runs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from samverkan.config import Paths


@dataclass
class SimulatedHome:
    paths: Paths
    case_system_url: str
    police_inbox: Path


def simulated_home(root: Path, pop: Any) -> SimulatedHome:
    """``root/home`` with the population's case system and police files in its simulator zone."""
    from samverkan.simulator.case_system_db import write_case_system
    from samverkan.simulator.police_files import write_police_files

    p = Paths(root / "home").ensure()
    p.simulator.mkdir(parents=True)
    url = f"sqlite:///{p.simulator / 'case_system.sqlite'}"
    write_case_system(pop, url)
    inbox = p.simulator / "police_inbox"
    write_police_files(pop, inbox)
    return SimulatedHome(p, url, inbox)


@contextmanager
def serving(home: SimulatedHome, pop: Any, data: Any, key: str, truth: Path) -> Iterator[Any]:
    """Serve ``data`` (an ``SS12000Data``) on loopback and configure ``home`` for it, with
    ``key`` as the pseudonym key, until the block ends; yields the running server."""
    from samverkan.demo import TOKEN_ENV, SimulatedSources, write_demo_config
    from samverkan.simulator.ss12000_server import serve

    token = secrets.token_urlsafe(16)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAMVERKAN_HOME", str(home.paths.home))
        mp.setenv("SAMVERKAN_PSEUDONYM_KEY", key)
        mp.setenv(TOKEN_ENV, token)
        for name in ("SAMVERKAN_PSEUDONYM_KEY_FILE", "SAMVERKAN_CONFIG"):
            mp.delenv(name, raising=False)
        with serve(data, token) as server:
            write_demo_config(home.paths, server.base_url, SimulatedSources(
                pop.reference_date, home.case_system_url, home.police_inbox, truth))
            yield server
