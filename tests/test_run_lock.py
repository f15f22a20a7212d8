"""Every flow holds the data directory's run lock, like the commands: a flow run a Prefect worker
starts from a deployment cannot overlap a `samverkan run` (or another flow run).

The flows run in-process on the test worker's Prefect server; the other run is a real process
holding the real lock, or the real `samverkan` command in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY, write_config
from prefect import flow

from samverkan.config import Paths
from samverkan.locks import RunInProgress, run_lock

ROOT = Path(__file__).resolve().parent.parent
HEADER = "Diarienummer;Brottsdatum;Anmälningsdatum;Brottskod;Brottsbenämning;Kommun;Stadsdel;" \
         "Personnummer;Roll;Ålder;Status;Senast ändrad"
ROW = "5000-K100001-26;2026-03-02;2026-03-03;0301;Misshandel utomhus;Stockholm;Bredäng;" \
      "20130101-2397;Misstänkt;13;Aktiv;2026-03-03 10:15"
HOLD_RUN_LOCK = """
import sys, time
from pathlib import Path
from samverkan.config import Paths
from samverkan.locks import run_lock
with run_lock(Paths(Path(sys.argv[1])), "samverkan run") as holder:
    print(holder["started"], flush=True)
    time.sleep(120)
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api_url: str) -> Paths:
    """A data directory with only a police inbox configured (one delivery); the flows of this
    process read it."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "polis_20260303.csv").write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\r\n{ROW}\r\n".encode())
    data = tmp_path / "data"
    data.mkdir()
    write_config(data, f'[police]\ninbox = "{inbox}"\n')
    monkeypatch.setenv("SAMVERKAN_HOME", str(data))
    monkeypatch.setenv("SAMVERKAN_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.delenv("SAMVERKAN_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.delenv("SAMVERKAN_CONFIG", raising=False)
    return Paths(data).ensure()


def _tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` with its mode, size and modification time."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
def other_run(home: Paths) -> Iterator[tuple[int, str]]:
    """Another process holding the run lock as `samverkan run` does: (its pid, its start time)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_RUN_LOCK, str(home.home)], cwd=ROOT,
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        started = process.stdout.readline().strip()
        assert started, process.stderr.read()
        yield process.pid, started
    finally:
        process.kill()
        process.wait()


def _entry_flows() -> dict[str, Callable[[], Any]]:
    from flows.backfill import backfill
    from flows.extract_case_system import extract_case_system
    from flows.extract_police import extract_police
    from flows.extract_ss12000 import extract_ss12000
    from flows.lagesbild import lagesbild
    from flows.pipeline import pipeline
    from flows.publish import publish
    from flows.transform import transform

    return {"pipeline": pipeline, "backfill": lambda: backfill("2026-03-02", "2026-03-03"),
            "lagesbild": lagesbild, "publish": lambda: publish(dbt_success=False, dbt_detail="x"),
            "transform": transform, "extract-ss12000": extract_ss12000,
            "extract-case-system": extract_case_system, "extract-police": extract_police}


def test_every_flow_refuses_at_once_while_another_run_holds_the_lock(home: Paths, other_run):
    """As a deployment run would be: the flow fails at once, naming the other run, and touches
    nothing (not the other run's validation scratch, not the inbox, not a zone)."""
    pid, started = other_run
    scratch = home.scratch / "validation-of-the-other-run.duckdb"
    scratch.write_bytes(b"in use")
    inbox = home.home.parent / "inbox"
    before, inbox_before = _tree(home.home), _tree(inbox)
    timings = {}
    for name, run in _entry_flows().items():
        begun = time.monotonic()
        with pytest.raises(RunInProgress) as info:
            run()
        timings[name] = time.monotonic() - begun
        message = str(info.value)
        assert f"a run is in progress on {home.home}: pid {pid}, `samverkan run`, started " \
               f"{started}" in message, (name, message)
    print(f"\nrefused in {', '.join(f'{k} {v:.1f} s' for k, v in timings.items())}")
    assert max(timings.values()) < 15, timings
    assert _tree(home.home) == before
    assert _tree(inbox) == inbox_before
    assert scratch.read_bytes() == b"in use"


def test_a_flow_run_takes_the_lock_and_a_command_refuses_naming_it(home: Paths):
    """The lock file names the flow run that holds it; `samverkan run` started meanwhile exits
    at once with that name; the lock is free when the flow ends."""
    seen: dict[str, Any] = {}

    from flows._exclusive import exclusive

    @flow(name="lock-probe")
    @exclusive("lock-probe")
    def lock_probe() -> None:
        seen["holder"] = json.loads(home.run_lock.read_text(encoding="utf-8"))
        env = {**os.environ, "SAMVERKAN_HOME": str(home.home)}
        seen["cli"] = subprocess.run([sys.executable, "-m", "samverkan.cli", "run"], env=env,
                                     cwd=ROOT, capture_output=True, text=True, timeout=120)

    lock_probe()
    holder = seen["holder"]
    assert holder["pid"] == os.getpid()
    assert holder["command"].startswith("Prefect flow run ") and "(flow lock-probe)" in holder["command"]
    cli = seen["cli"]
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert f"pid {os.getpid()}, `{holder['command']}`, started {holder['started']}" in cli.stderr
    assert "Traceback" not in cli.stdout + cli.stderr
    assert "Checks passed" not in cli.stdout  # refused before the checks and Prefect
    assert home.run_lock.read_text(encoding="utf-8") == ""
    with run_lock(home, "test") as mine:  # released
        assert mine["command"] == "test"


def test_the_pipeline_started_by_prefect_runs_its_sub_flows_under_its_lock(home: Paths):
    """The pipeline as a deployment runs it (the outermost holder): its extract flows (in task
    threads) and the publish flow re-enter the lock instead of refusing (they would fail with
    'a run is in progress' naming this process), and the validation scratch a killed run left
    is removed when it starts."""
    from flows.pipeline import pipeline

    scratch = home.scratch / "left-by-a-killed-run.duckdb"
    scratch.write_bytes(b"stale")
    config = home.home / "samverkan.toml"  # no source: each extract fails at once
    config.write_text(config.read_text(encoding="utf-8").split("[police]")[0], encoding="utf-8")
    state = pipeline(return_state=True)
    assert state.is_failed()
    assert "publication gate failed" in (state.message or ""), state.message
    assert not scratch.exists()
    gates = sorted(home.validation.glob("gate-*/gate.json"))
    assert len(gates) == 1
    failed = json.loads(gates[0].read_text(encoding="utf-8"))["failed_extracts"]
    causes = {f["source"]: f["cause"] for f in failed}
    assert causes == {source: f"no [{source}] section in the configuration"
                      for source in ("ss12000", "case_system", "police")}, causes
    with run_lock(home, "test"):  # released
        pass
