"""The flows run against a real Prefect server (started here on loopback), not only ephemeral."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import write_config

ROOT = Path(__file__).resolve().parent.parent
HEADER = "Diarienummer;Brottsdatum;Anmälningsdatum;Brottskod;Brottsbenämning;Kommun;Stadsdel;" \
         "Personnummer;Roll;Ålder;Status;Senast ändrad"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> object:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """One real Prefect server for this module's tests (starting one costs ~20 s)."""
    tmp_path = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=5):  # noqa: S310
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    output = (tmp_path / "server.log").read_text()[-3000:]
                    pytest.fail("Prefect server did not start:\n" + output)
                time.sleep(1)
        yield api
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_extract_flow_runs_against_a_prefect_server(prefect_server, tmp_path):
    home = tmp_path / "data"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    row = "5000-K100001-26;2026-03-02;2026-03-03;0301;Misshandel utomhus;Stockholm;Bredäng;" \
          "20130101-2397;Misstänkt;13;Aktiv;2026-03-03 10:15"
    (inbox / "polis_20260303.csv").write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\r\n{row}\r\n".encode())
    home.mkdir()
    write_config(home, f'[police]\ninbox = "{inbox}"\n')
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "SAMVERKAN_HOME": str(home),
           "PREFECT_HOME": str(tmp_path / "client-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    result = subprocess.run(
        [sys.executable, "-c", "from flows.extract_police import extract_police; "
         "r = extract_police(); print('loaded', r.totals()['loaded'])"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "loaded 1" in result.stdout
    assert "Starting temporary server" not in result.stdout + result.stderr  # not ephemeral

    runs = _post(f"{prefect_server}/flow_runs/filter", {"limit": 20})
    flows = {f["id"]: f["name"] for f in _post(f"{prefect_server}/flows/filter", {"limit": 50})}
    completed = {flows[r["flow_id"]] for r in runs if r["state_type"] == "COMPLETED"}
    assert "extract-police" in completed

    # the run left its artifact: rows per source
    artifacts = {a["key"]: a for a in _post(f"{prefect_server}/artifacts/filter", {"limit": 50})}
    table = artifacts["load-report-police"]
    assert table["type"] == "table"
    rows = json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]
    assert rows[0]["source"] == "police" and rows[0]["received"] == 1 and rows[0]["loaded"] == 1

    # a failed gate leaves the gate artifact, linking the readable gate report it wrote
    result = subprocess.run(
        [sys.executable, "-c", "from flows.publish import publish; "
         "r = publish(dbt_success=False, dbt_detail='forced failure'); print('published', r.published)"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "published False" in result.stdout
    artifacts = {a["key"]: a for a in _post(f"{prefect_server}/artifacts/filter", {"limit": 50})}
    gate = artifacts["publication-gate"]
    assert gate["type"] == "markdown" and "FAILED" in gate["data"] and "dbt_build" in gate["data"]
    reports = list((home / "validation").glob("gate-*/gate.html"))
    assert len(reports) == 1 and reports[0].as_uri() in gate["data"]


def _prefect(args: list[str], api: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(home),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_prefect_deploy_all_registers_both_deployments_with_their_schedules(prefect_server, tmp_path):
    """The README's commands: create the process work pool, then `prefect deploy --all`."""
    home = tmp_path / "client-home"
    created = _prefect(["work-pool", "create", "samverkan-process", "--type", "process"],
                       prefect_server, home)
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    deployed = _prefect(["deploy", "--all"], prefect_server, home)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

    deployments = _post(f"{prefect_server}/deployments/filter", {"limit": 20})
    flows = {f["id"]: f["name"] for f in _post(f"{prefect_server}/flows/filter", {"limit": 50})}
    by_name = {d["name"]: d for d in deployments}
    assert set(by_name) == {"nightly", "weekly-lagesbild"}
    expected = {"nightly": ("pipeline", "0 2 * * *"), "weekly-lagesbild": ("lagesbild", "0 6 * * 1")}
    for name, (flow_name, cron) in expected.items():
        deployment = by_name[name]
        assert flows[deployment["flow_id"]] == flow_name
        assert deployment["work_pool_name"] == "samverkan-process"
        assert [s["schedule"].get("cron") for s in deployment["schedules"]] == [cron]
        assert [s["schedule"].get("timezone") for s in deployment["schedules"]] == ["Europe/Stockholm"]
        assert all(s["active"] for s in deployment["schedules"])
        # the working directory is this checkout, so a process worker finds the flows
        steps = deployment["pull_steps"] or []
        directories = [s["prefect.deployments.steps.set_working_directory"]["directory"]
                       for s in steps if "prefect.deployments.steps.set_working_directory" in s]
        assert directories == [str(ROOT)]
    # the scheduler has planned the next nightly run at 02:00 Stockholm time
    runs = _post(f"{prefect_server}/flow_runs/filter",
                 {"deployments": {"id": {"any_": [by_name["nightly"]["id"]]}}, "limit": 5})
    if runs:  # the scheduler service may not have run yet; when it has, the time is right
        import datetime as dt
        from zoneinfo import ZoneInfo

        when = dt.datetime.fromisoformat(runs[0]["expected_start_time"]).astimezone(
            ZoneInfo("Europe/Stockholm"))
        assert (when.hour, when.minute) == (2, 0)
