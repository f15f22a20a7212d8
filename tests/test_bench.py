"""`samverkan bench`'s process-tree sampler: it sees a grandchild's memory and stops a child
past its ceiling. (That the bench's baselines give the models' cells is tested on the demo world,
in e2e_bench.py, collected by test_end_to_end.py.) No timings are asserted: the bench is a
benchmark, not a test. The cached world's versions are checked here too."""

from __future__ import annotations

import sys

from samverkan.bench.measure import run_measured

# a child that starts a grandchild which touches 300 MiB and holds it for a second
ALLOCATE = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
            "\"import time; b = b'x' * (300 * 2**20); time.sleep(1.5)\"], check=True)")


def test_sampler_counts_the_memory_of_the_whole_process_tree() -> None:
    m = run_measured("allocate", [sys.executable, "-c", ALLOCATE])
    assert m.returncode == 0 and m.ok
    assert m.peak_rss_bytes >= 250 * 2**20


def test_a_child_past_its_ceiling_is_stopped_and_reported() -> None:
    m = run_measured("allocate", [sys.executable, "-c", ALLOCATE], ceiling_bytes=100 * 2**20)
    assert m.exceeded_bytes is not None and m.exceeded_bytes > 100 * 2**20
    assert not m.ok and m.returncode != 0


def test_a_world_is_rebuilt_for_its_loads_and_refreshed_for_its_models() -> None:
    """The cached world's name follows what its raw tables depend on (LOADED); the models and
    steps (MODELS) only mark it for a rebuild of its models. Every entry exists (a misspelt one
    would never change the digest), and the two sets share nothing."""
    from samverkan.bench.world import LOADED, MODELS, ROOT, WorldSpec, digest

    assert all((ROOT / entry).exists() for entry in LOADED + MODELS)
    assert not any(a == b or a.startswith(b + "/") or b.startswith(a + "/")
                   for a in LOADED for b in MODELS)
    assert "dbt_project" not in " ".join(LOADED)
    assert WorldSpec(1, 150, 4).name().endswith(digest(LOADED)[:12])
    assert digest(MODELS) != digest(LOADED)


def test_the_peak_before_a_mark_leaves_out_what_came_after() -> None:
    """A child that prints a mark, then touches 300 MiB: the peak before the mark is small,
    the whole peak is not (a backfill's pull, then its build)."""
    code = ("import sys, time; print('pulling', flush=True); time.sleep(0.6); "
            "print('dbt build: starting', flush=True); b = b'x' * (300 * 2**20); time.sleep(1)")
    m = run_measured("phases", [sys.executable, "-c", code], marks=("dbt build:", "never printed"))
    assert m.ok
    assert m.peak_rss_bytes >= 250 * 2**20
    assert set(m.peak_before) == {"dbt build:"}
    assert 0 < m.peak_before["dbt build:"] < 200 * 2**20
