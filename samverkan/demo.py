"""The demo: a simulated municipality served on loopback, then the real pipeline over it."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from samverkan.config import Paths
from samverkan.pseudonymisation import KEY_FILE_ENV, create_key_file, default_key_file, key_configured
from samverkan.simulator.municipalities import STOCKHOLM, Municipality

TOKEN_ENV = "SAMVERKAN_SS12000_TOKEN"  # noqa: S105 - the name of a variable


@dataclass
class SimulatedSources:
    reference_date: dt.date
    case_system_url: str
    police_inbox: Path
    ground_truth: Path


def ensure_key(p: Paths) -> None:
    """Use the configured key; otherwise create a random demo key file (mode 0600)."""
    if key_configured():
        return
    key_file = default_key_file()
    create_key_file(key_file)
    os.environ[KEY_FILE_ENV] = str(key_file)
    print(f"Created a random pseudonym key in {key_file} (mode 0600)")


def write_demo_config(p: Paths, base_url: str, sources: SimulatedSources,
                      municipality: Municipality = STOCKHOLM, timeout_seconds: float | None = None,
                      memory_limit: str | None = None) -> Path:
    """The simulated municipality's ``samverkan.toml`` (its identity and the simulator's
    endpoints, and ``[warehouse] memory_limit`` when given) and its reference files in
    ``<home>/reference/``."""
    from samverkan.simulator.municipalities import write_reference

    m = municipality
    write_reference(m, p.reference)
    cfg = p.home / "samverkan.toml"
    timeout = f"timeout_seconds = {timeout_seconds}\n" if timeout_seconds is not None else ""
    warehouse = f'\n[warehouse]\nmemory_limit = "{memory_limit}"\n' if memory_limit else ""
    cfg.write_text(
        "# Written by `samverkan demo`: the simulated municipality and the simulator's endpoints.\n"
        "# For real sources see the README, \"Pointing it at real sources\".\n"
        "[municipality]\n"
        f'code = "{m.code}"\n'
        f'name = "{m.name}"\n'
        f'organisation_number = "{m.organisation_number}"\n\n'
        "[general]\n"
        f'reference_date = "{sources.reference_date.isoformat()}"\n\n'
        "[ss12000]\n"
        f'base_url = "{base_url}"\n'
        f'token_env = "{TOKEN_ENV}"\n'
        f"{timeout}\n"
        "[case_system]\n"
        f'url = "{sources.case_system_url}"\n\n'
        "[police]\n"
        f'inbox = "{sources.police_inbox}"\n'
        f"{warehouse}",
        encoding="utf-8",
    )
    return cfg


def reset_if_other_municipality(p: Paths, seed: int, pupils: int, lessons_per_day: int,
                                municipality: Municipality) -> None:
    """A demo of another municipality, or with another seed, size or lesson volume, is another
    world: start from empty zones (the key is kept) instead of mixing two simulated populations
    in one warehouse."""
    marker = p.simulator / "simulator.json"
    wanted = {"seed": seed, "pupils": pupils, "lessons_per_day": lessons_per_day}
    if municipality.key != "stockholm":  # the default's marker stays as it was
        wanted["municipality"] = municipality.key
    if marker.exists() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
        return
    for zone in (p.landing, p.warehouse, p.published, p.analysts, p.validation, p.simulator,
                 p.reference):
        if zone.exists():
            shutil.rmtree(zone)
    if p.run_state.exists():  # all but the run lock this demo holds
        for item in p.run_state.iterdir():
            if item != p.run_lock:
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    p.ensure()
    p.simulator.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(wanted), encoding="utf-8")


def simulate(p: Paths, seed: int, pupils: int, lessons_per_day: int,  # noqa: ANN201 - (Population, sources)
             municipality: Municipality):
    from samverkan.simulator.case_system_db import write_case_system
    from samverkan.simulator.ground_truth import compute_ground_truth, write_ground_truth
    from samverkan.simulator.police_files import write_police_files
    from samverkan.simulator.population import generate

    p.simulator.mkdir(parents=True, exist_ok=True)
    # the attendance records go to disk as they are generated (and the SS 12000 server sorts
    # and serves them from there): the world's size is bounded by the disk, not the memory
    pop = generate(seed=seed, pupils=pupils, lessons_per_day=lessons_per_day, municipality=municipality,
                   directory=p.simulator / "world")
    url = f"sqlite:///{p.simulator / 'case_system.sqlite'}"
    write_case_system(pop, url)
    inbox = p.simulator / "police_inbox"
    write_police_files(pop, inbox)
    truth = p.simulator / "ground_truth.csv"
    write_ground_truth(compute_ground_truth(pop), truth)
    return pop, SimulatedSources(pop.reference_date, url, inbox, truth)


# With --fault-rate the simulated platform also stalls answers; the demo's client gives up on a
# stalled answer after this many seconds and retries (the stall lasts one second longer).
FAULT_CLIENT_TIMEOUT = 3.0


def run_demo(p: Paths, seed: int, pupils: int, lessons_per_day: int, fault_rate: float = 0.0,
             municipality: str = "stockholm", memory_limit: str | None = None) -> int:
    """Simulate a municipality, serve its school platform and run the pipeline over it;
    ``fault_rate`` (0..1) makes the simulated school platform answer about that share of
    requests with 429, 500, 503 or a stall the client must time out on and retry.
    ``lessons_per_day`` (recorded lessons a pupil and school day) sets the volume of the
    attendance feed. ``memory_limit`` (a DuckDB size) bounds DuckDB's memory
    (``[warehouse] memory_limit``; default half the machine's, at most 4 GiB)."""
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError("fault_rate must be between 0 and 1")
    from samverkan.simulator.municipalities import profile

    m = profile(municipality)
    p.ensure()
    reset_if_other_municipality(p, seed, pupils, lessons_per_day, m)
    ensure_key(p)
    print(f"Simulating {m.name} (seed {seed}, about {pupils} pupils, "
          f"{lessons_per_day} lessons a day) …", flush=True)
    pop, sources = simulate(p, seed, pupils, lessons_per_day, m)
    token = secrets.token_urlsafe(24)
    os.environ[TOKEN_ENV] = token
    data = SS12000Data.from_population(pop)
    faults = {"fault_rate": fault_rate, "fault_seed": seed, "fault_retry_after": 1,
              "fault_stall_seconds": FAULT_CLIENT_TIMEOUT + 1.0} if fault_rate > 0 else {}
    if faults:
        print(f"The simulated school platform fails about {fault_rate:.0%} of its requests "
              "(429, 500, 503, stalled answers)", flush=True)
    with serve(data, token, **faults) as server:
        write_demo_config(p, server.base_url, sources, m,
                          timeout_seconds=FAULT_CLIENT_TIMEOUT if faults else None,
                          memory_limit=memory_limit)
        print("Running the pipeline: extract ×3 → dbt build → gate → publish …", flush=True)
        from samverkan.cli import run_pipeline

        return run_pipeline(p, sources.reference_date.isoformat())
