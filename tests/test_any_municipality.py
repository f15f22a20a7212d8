"""A municipality that is not Stockholm adopts the product by following the README's section
"Pointing it at real sources" literally: its commands, in its order, with the filling-in
steps in between done as an operator would (writing the values the README names).

The municipality is the simulator's Malmö (code 1280, organisation number 212000-1124, two
stadsområden, four SSPF areas, its own school units and independent huvudmän, one served
school unit missing from its reference, a police district its reference does not know),
served on this machine by the real simulator: SS 12000 on 127.0.0.1, a SQLite case system, a
police inbox. The publication must equal Malmö's ground truth cell by cell, with Malmö's
names, areas and huvudman split, and nothing of Stockholm in it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from truth_compare import assert_equals_truth, read_cells

from samverkan.simulator.municipalities import MALMO

ROOT = Path(__file__).resolve().parent.parent
SEED, PUPILS, LESSONS_PER_DAY = 1280, 700, 1
TOKEN_VARIABLE = "MALMO_SS12000_TOKEN"  # noqa: S105 - the name of a variable
KEY = "malmo-pseudonym-key-" + "0123456789abcdef" * 2


def readme_commands() -> list[str]:
    """The commands of the README's "Pointing it at real sources" code block, comments cut."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Pointing it at real sources", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


@dataclass
class Adoption:
    home: Path
    outputs: dict[str, subprocess.CompletedProcess]
    truth: Path
    seconds: dict[str, float]


def _fill(config: Path, values: dict[tuple[str, str], str]) -> None:
    """Fill in empty required keys of the samverkan.toml that `samverkan init` wrote, as an
    operator does in an editor: (section, key) → TOML value."""
    section = ""
    out = []
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        key = line.removeprefix("# ").split("=", 1)[0].strip()
        if (section, key) in values and "=" in line:  # a required key, or an optional one uncommented
            line = f"{key} = {values.pop((section, key))}"
        out.append(line)
    assert not values, f"init wrote no such keys: {values}"
    config.write_text("\n".join(out) + "\n", encoding="utf-8")


def _fill_reference(reference: Path) -> None:
    """Step 5: the municipality's areas, district names and targets (Malmö's own files), and
    the SSPF area of every school unit init listed; the unit in no SSPF area is deleted."""
    for name in ("ref_stadsdelsomraden.csv", "ref_sspf_omraden.csv", "ref_stadsdelar.csv",
                 "ref_indicator_targets.csv"):
        (reference / name).write_bytes((MALMO.reference_dir / name).read_bytes())
    area = {r["school_unit_code"]: r["sspf_omrade_code"]
            for r in csv.DictReader(io.StringIO((MALMO.reference_dir / "ref_skolenheter.csv")
                                                .read_text(encoding="utf-8")))}
    path = reference / "ref_skolenheter.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    out = io.StringIO()
    writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        if row["school_unit_code"] in area:
            writer.writerow({**row, "sspf_omrade_code": area[row["school_unit_code"]]})
    path.write_text(out.getvalue(), encoding="utf-8")


@pytest.fixture(scope="module")
def adoption(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Adoption:
    from samverkan.simulator.case_system_db import write_case_system
    from samverkan.simulator.ground_truth import compute_ground_truth, write_ground_truth
    from samverkan.simulator.police_files import write_police_files
    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data, serve

    root = tmp_path_factory.mktemp("malmo")
    pop = generate(seed=SEED, pupils=PUPILS, lessons_per_day=LESSONS_PER_DAY, municipality=MALMO)
    case_db = root / "systems" / "rapport.sqlite"
    case_db.parent.mkdir()
    write_case_system(pop, f"sqlite:///{case_db}")
    inbox = root / "systems" / "polis" / "inbox"
    write_police_files(pop, inbox)
    truth = root / "ground_truth.csv"
    write_ground_truth(compute_ground_truth(pop), truth)

    home = root / "samverkan" / "data"
    token = secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items()
           if k not in ("SAMVERKAN_CONFIG", "SAMVERKAN_PSEUDONYM_KEY", "SAMVERKAN_PSEUDONYM_KEY_FILE")}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "PREFECT_API_URL": prefect_api_url, TOKEN_VARIABLE: token,
                "SAMVERKAN_PSEUDONYM_KEY": KEY})
    outputs: dict[str, subprocess.CompletedProcess] = {}
    seconds: dict[str, float] = {}
    with serve(SS12000Data.from_population(pop), token) as server:
        for command in readme_commands():
            if command.startswith("export "):
                name, value = command.removeprefix("export ").split("=", 1)
                assert name == "SAMVERKAN_HOME"
                env[name] = str(home)  # the README's /srv/samverkan/data, here under tmp
                continue
            if command == "samverkan init --from-ss12000":  # step 3 comes before it
                _fill(home / "samverkan.toml", {
                    ("municipality", "code"): '"1280"',
                    ("municipality", "name"): '"Malmö"',
                    ("municipality", "organisation_number"): '"212000-1124"',
                    ("general", "reference_date"): f'"{pop.reference_date.isoformat()}"',
                    ("ss12000", "base_url"): f'"{server.base_url}"',
                    ("ss12000", "token_env"): f'"{TOKEN_VARIABLE}"',
                    ("case_system", "url"): f'"sqlite:///{case_db}"',
                    ("police", "inbox"): f'"{inbox}"',
                })
            if command == "samverkan check":  # step 5 comes before it
                _fill_reference(home / "reference")
            started = time.monotonic()
            outputs[command] = subprocess.run(command.split(), env=env, cwd=ROOT, capture_output=True,
                                              text=True, timeout=1200)
            seconds[command] = time.monotonic() - started
    return Adoption(home, outputs, truth, seconds)


def test_the_readme_gives_init_fill_in_check_run() -> None:
    assert readme_commands() == [
        "export SAMVERKAN_HOME=/srv/samverkan/data", "samverkan init", "samverkan init --from-ss12000",
        "samverkan check", "samverkan run"]


def test_every_step_succeeds_without_a_traceback(adoption: Adoption) -> None:
    for command, result in adoption.outputs.items():
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command}:\n{output[-4000:]}"
        assert "Traceback" not in output, f"{command}:\n{output[-4000:]}"
    print({command: round(s, 1) for command, s in adoption.seconds.items()})


def test_init_lists_the_school_units_with_their_huvudman(adoption: Adoption) -> None:
    out = adoption.outputs["samverkan init --from-ss12000"].stdout
    assert "Wrote 10 school units" in out and "fill in sspf_omrade_code for the 10" in out
    served = {u.code: u for u in MALMO.school_units}
    rows = list(csv.DictReader(io.StringIO(
        (adoption.home / "reference" / "ref_skolenheter.csv").read_text(encoding="utf-8"))))
    assert len(rows) == 9  # the operator deleted the unit that lies in no SSPF area
    for row in rows:
        unit = served[row["school_unit_code"]]
        assert row["school_unit_name"] == unit.name
        assert row["huvudman"] == ("kommunal" if unit.huvudman is None else "fristående")


def test_check_reads_the_municipality(adoption: Adoption) -> None:
    out = adoption.outputs["samverkan check"].stdout
    assert f"{adoption.home / 'samverkan.toml'} (Malmö, 1280, 212000-1124)" in out
    assert "All checks passed" in out


def test_the_publication_equals_malmos_ground_truth(adoption: Adoption) -> None:
    published = read_cells(adoption.home / "published" / "current" / "indicators.csv")
    assert_equals_truth(published, read_cells(adoption.truth))


def test_malmos_areas_names_and_huvudman_split(adoption: Adoption) -> None:
    published = read_cells(adoption.home / "published" / "current" / "indicators.csv")
    city = published[published["area_level"] == "stad"]
    assert set(city["area_code"]) == {"1280"} and set(city["area_name"]) == {"Malmö"}
    assert set(published.loc[published["area_level"] == "stadsdelsomrade", "area_code"]) <= {"SOR", "OST"}
    assert set(published.loc[published["area_level"] == "sspf_omrade", "area_code"]) == {
        "SOR-HY", "SOR-FO", "OST-RO", "OST-OX"}
    # the huvudman split: Malmö's own units are kommunal (its organisation number), the rest
    # fristående; before the organisation number reached dbt every unit was fristående here
    hog = published[(published["indicator_id"] == "hog_franvaro") & (published["breakdown"] == "huvudman")
                    & (published["area_level"] == "stad") & (published["period_type"] == "termin")]
    assert set(hog["breakdown_value"]) == {"kommunal", "fristående"}
    kommunal = hog[hog["breakdown_value"] == "kommunal"]["denominator"].dropna()
    assert not kommunal.empty and (kommunal > 0).all()
    # the unit missing from the reference: at school-unit level, in no area
    unit = published[published["area_code"] == "61827051"]
    assert not unit.empty and set(unit["area_level"]) == {"skolenhet"}
    report = (adoption.home / "published" / "current" / "report.html").read_text(encoding="utf-8")
    table = (adoption.home / "published" / "current" / "indicators.csv").read_text(encoding="utf-8")
    for name in ("Malmö", "Söder", "Rosengård", "Hyllie"):
        assert name in report
    assert "Stockholm" not in table and "Stockholm" not in report.replace("Europe/Stockholm", "")


def test_malmos_levels_follow_the_documented_rules(adoption: Adoption) -> None:
    """No indicator is published at a level INDICATOR_RULES.md does not give it; the case
    system's (the stadsområde handling the matter: Söder, Öster) at stad and stadsområde only."""
    from area_levels import documented_area_levels

    published = read_cells(adoption.home / "published" / "current" / "indicators.csv")
    levels = published.groupby("indicator_id")["area_level"].agg(set).to_dict()
    documented = documented_area_levels()
    assert set(levels) == set(documented)
    for indicator, found in levels.items():
        assert found <= documented[indicator], indicator
    for indicator in ("orosanmalningar", "forhandsbedomning_14_dagar", "anmalan_till_utredning"):
        assert levels[indicator] == {"stad", "stadsdelsomrade"}, indicator
    reports = published[(published["indicator_id"] == "orosanmalningar")
                        & (published["area_level"] == "stadsdelsomrade")]
    assert set(reports["area_code"]) == {"SOR", "OST"}


def test_what_the_reference_does_not_cover_is_counted_and_shown(adoption: Adoption) -> None:
    manifest = json.loads((adoption.home / "published" / "current" / "manifest.json")
                          .read_text(encoding="utf-8"))
    gaps = {(g["kind"], g["value"]): g for g in manifest["reference_coverage"]}
    unit = gaps[("school_unit_not_in_reference", "61827051")]
    assert unit["name"] == "Sundsskolan Kulladal" and unit["records"] > 0
    assert gaps[("stadsdel_not_in_reference", MALMO.unknown_police_district)]["records"] > 0
    summary = adoption.outputs["samverkan run"].stdout
    assert "school unit 61827051 (Sundsskolan Kulladal) is not in ref_skolenheter.csv" in summary
    assert f"stadsdel '{MALMO.unknown_police_district}' is not in ref_stadsdelar.csv" in summary
    report = (adoption.home / "published" / "current" / "report.html").read_text(encoding="utf-8")
    assert "Utanför kommunens referensdata" in report and "Skolenhet 61827051" in report
    assert f"Stadsdel ”{MALMO.unknown_police_district}”" in report
