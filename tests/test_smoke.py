"""Smoke: every flow imports and is a Prefect flow; the CLI answers."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

from prefect import Flow

import flows
from samverkan.config import PROJECT_ROOT


def test_every_flow_module_imports_and_defines_a_flow():
    names = [m.name for m in pkgutil.iter_modules(flows.__path__) if not m.name.startswith("_")]
    assert {"pipeline", "transform", "publish", "lagesbild", "extract_ss12000", "extract_case_system",
            "extract_police"} <= set(names)
    for name in names:
        module = importlib.import_module(f"flows.{name}")
        assert any(isinstance(v, Flow) for v in vars(module).values()), name


def test_cli_help():
    result = subprocess.run([sys.executable, "-m", "samverkan.cli", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for command in ("demo", "run", "lagesbild", "pseudonym"):
        assert command in result.stdout


def test_cli_version():
    from importlib.metadata import version

    result = subprocess.run([sys.executable, "-m", "samverkan.cli", "--version"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"samverkan {version('samverkan')}\n"


def test_every_option_and_command_of_the_cli_has_help():
    import argparse

    from samverkan.cli import build_parser

    parser = build_parser()
    assert "``" not in parser.description and "usual sequence" in parser.epilog
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(subparsers) == 1
    commands = subparsers[0]
    helped = {choice.dest: choice.help for choice in commands._choices_actions}
    assert set(helped) == set(commands.choices)  # every command is listed with a help line
    missing = [f"samverkan {name}" for name, text in helped.items() if not (text or "").strip()]
    for prog, p in [("samverkan", parser), *((f"samverkan {n}", c) for n, c in commands.choices.items())]:
        missing += [f"{prog} {'/'.join(a.option_strings) or a.dest}" for a in p._actions
                    if not (a.help or "").strip() or a.help == argparse.SUPPRESS]
    assert not missing, missing


def test_lagesbild_flow_is_named_and_thin():
    from flows.lagesbild import build_lagesbild_task, lagesbild, publish_lagesbild_task

    assert lagesbild.name == "lagesbild"
    assert build_lagesbild_task.name == "dbt-build-lagesbild"
    assert publish_lagesbild_task.name == "gate-and-publish-lagesbild"


def test_demo_rejects_a_lesson_volume_out_of_range_without_a_traceback(tmp_path):
    for value in ("0", "7", "two"):
        result = subprocess.run(
            [sys.executable, "-m", "samverkan.cli", "demo", "--lessons-per-day", value],
            capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "SAMVERKAN_HOME": str(tmp_path / "home")})
        assert result.returncode == 2, value
        assert "--lessons-per-day" in result.stderr and "Traceback" not in result.stderr, value
    assert not (tmp_path / "home").exists()  # refused before anything was simulated


# A path into the folder beside the repository that a user's clone does not have. Built by
# concatenation so that this file's own source does not match it.
OUTSIDE_PATH = re.compile(r"\.\./" + "shared|" + "shared/" + r"(spec|reference)")
STANDALONE_PATHS = ("README.md", "samverkan", "flows", "tests", "dbt_project", ".ci")


def _tracked_files(root: Path) -> list[Path]:
    """The tracked files under STANDALONE_PATHS (git ls-files; a walk without git)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", *STANDALONE_PATHS], cwd=root,
                                capture_output=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        listed = None
    if listed is not None:
        return [root / name for name in listed.decode("utf-8").split("\0") if name]
    files: list[Path] = []
    for top in STANDALONE_PATHS:
        start = root / top
        if start.is_file():
            files.append(start)
            continue
        for path in start.rglob("*"):
            parts = path.relative_to(root).parts
            if parts[:2] == ("dbt_project", "target") or "__pycache__" in parts or ".venv" in parts:
                continue
            if path.is_file():
                files.append(path)
    return files


def test_no_tracked_file_points_outside_the_repository():
    files = _tracked_files(PROJECT_ROOT)
    assert any(f.name == "test_smoke.py" for f in files)
    found = []
    for path in files:
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE_PATH.search(line):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()[:120]}")
    assert not found, "paths outside the repository:\n" + "\n".join(found)


def test_the_environment_is_compiled_to_bytecode():
    """The bootstrap installs with ``uv sync --compile-bytecode``: every `samverkan` command is
    a new process importing Prefect, Great Expectations and dbt, which would otherwise be
    compiled from source each time (5-10 s of CPU; Python writes no .pyc itself where
    PYTHONDONTWRITEBYTECODE is set)."""
    from importlib.util import cache_from_source, find_spec

    missing = [name for name in ("prefect.flows", "great_expectations.core.expectation_suite",
                                 "dbt.cli.main", "pandas.core.frame", "duckdb")
               if not Path(cache_from_source(find_spec(name).origin)).exists()]
    assert not missing, (f"no bytecode for {missing}: install with `python3 -m samverkan.bootstrap` "
                         "(uv sync --compile-bytecode)")
