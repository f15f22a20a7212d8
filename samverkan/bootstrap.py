"""Set-up and entry for a fresh machine that has only Python 3.11 (standard library only).

    python3 -m samverkan.bootstrap demo [demo options]   # install, then run the demo
    python3 -m samverkan.bootstrap test [pytest options] # install, then run the test suite

Installs ``uv`` into ``.tools/`` if it is not on PATH, syncs ``.venv`` from the committed
``uv.lock`` (exactly, with this interpreter, compiled to bytecode; uv never downloads a
Python), then runs the command inside the environment. Before the tests, ``npm ci`` installs
what the report's browser tests inject into Chromium (axe-core,
``tests/browser/package-lock.json``); the tests themselves never fetch anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UV_VERSION = "0.13.8"
# The test suite runs on three workers: the machines have two cores, and a third worker uses the
# time the tests spend waiting on servers, subprocesses and retries (measured: 7 min 10 s against
# 7 min 56 s on two). A file's tests, which share the worlds their fixtures build, stay on one worker.
COMMANDS = {"demo": ["samverkan", "demo"], "test": ["pytest", "-n", "3", "--dist", "loadfile"],
            "samverkan": ["samverkan"]}


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    tools = ROOT / ".tools"
    uv = tools / "bin" / "uv"
    if not uv.exists():
        print(f"samverkan: installing uv {UV_VERSION} into {tools}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(tools)
        subprocess.run([str(tools / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", f"uv=={UV_VERSION}"], check=True)
    return str(uv)


BROWSER_TOOLS = ROOT / "tests" / "browser"


def _browser_tools() -> None:
    """``npm ci`` in tests/browser when its node_modules is missing or older than the lock
    file. Without npm, or when it fails, the accessibility test says so (and fails under
    CI=true)."""
    lock = BROWSER_TOOLS / "package-lock.json"
    installed = BROWSER_TOOLS / "node_modules" / ".package-lock.json"
    if not lock.exists() or (installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime):
        return
    npm = shutil.which("npm")
    if npm is None:
        print("samverkan: npm is not installed; the report's accessibility test needs axe-core "
              "(apt-get install -y npm, then npm ci in tests/browser)", file=sys.stderr, flush=True)
        return
    print("samverkan: installing the browser tests' tools (npm ci in tests/browser)", flush=True)
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BROWSER_TOOLS)
    if done.returncode != 0:
        print("samverkan: npm ci failed in tests/browser; the accessibility test cannot run",
              file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.version_info < (3, 11):  # noqa: UP036 - runs on any python3 before install
        print("samverkan needs Python 3.11 or newer", file=sys.stderr)
        return 2
    # Never let uv download a Python; trust the platform's certificate store (registries behind a
    # corporate or local trust root).
    env = {"UV_SYSTEM_CERTS": "true", **os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    # --compile-bytecode: every `samverkan` command is a new process that imports Prefect,
    # Great Expectations and dbt; without .pyc files (uv writes none by default, and a
    # PYTHONDONTWRITEBYTECODE environment keeps Python from writing them) each process compiles
    # them from source again: 5-10 s of CPU per run. Compiled once here; a later sync with
    # nothing new to install takes under a second.
    subprocess.run([_uv(), "sync", "--locked", "--quiet", "--compile-bytecode", "--python",
                    sys.executable], cwd=ROOT, env=env, check=True)
    if argv[0] == "test":
        _browser_tools()
    command = COMMANDS[argv[0]]
    executable = ROOT / ".venv" / "bin" / command[0]
    return subprocess.call([str(executable), *command[1:], *argv[1:]], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
