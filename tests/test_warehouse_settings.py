"""The [warehouse] configuration: DuckDB's memory limit, threads and spill folder reach every
kind of connection the pipeline opens (warehouse files, in-memory helpers, dbt's environment),
a wrong value is a configuration error naming the key, and the spill folder is owner-only and
cleared. dbt's connection is tested in test_dbt_project.py (on its module build), Great Expectations'
in test_quality.py."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from conftest import write_config

from samverkan import database
from samverkan.config import ConfigError, Paths, load_settings
from samverkan.config.check import check_warehouse
from samverkan.config.init import config_template
from samverkan.config.settings import warehouse_settings
from samverkan.locks import connect_warehouse
from samverkan.transform import dbt_env

SETTINGS_SQL = ("select current_setting('memory_limit'), current_setting('threads'), "
                "current_setting('temp_directory'), current_setting('preserve_insertion_order')")
WAREHOUSE_TOML = '\n[warehouse]\nmemory_limit = "1GiB"\nthreads = 1\n'


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _configured(home: Path, body: str = WAREHOUSE_TOML) -> Paths:
    write_config(home, body)
    return Paths(home).ensure()


def test_defaults_half_the_memory_the_cpus_and_a_spill_folder_in_the_restricted_zone(
        samverkan_home: Path) -> None:
    p = _configured(samverkan_home, "")
    w = load_settings().warehouse
    assert w is not None
    assert database.parse_size(w.memory_limit) == pytest.approx(
        min(database.physical_memory() / 2, 4 * 2**30), abs=2**20)
    assert w.threads == database.cpu_count()
    assert w.temp_directory == p.warehouse / "spill"
    assert _mode(p.warehouse / "spill") == 0o700  # created with the zones


def test_the_default_limit_is_half_a_small_machine_and_at_most_4_gib(monkeypatch) -> None:
    monkeypatch.setattr(database, "physical_memory", lambda: 3 * 2**30)
    assert database.default_memory_limit() == "1536MiB"
    monkeypatch.setattr(database, "physical_memory", lambda: 64 * 2**30)
    assert database.parse_size(database.default_memory_limit()) == 4 * 2**30


def test_a_wrong_memory_limit_is_a_configuration_error_naming_the_key(samverkan_home: Path) -> None:
    p = _configured(samverkan_home, '\n[warehouse]\nmemory_limit = "lots"\nthreads = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert "[warehouse] memory_limit: not a size" in text and '"lots"' in text
    assert "[warehouse] threads: must be at least 1" in text
    # every connection reads the section too: it refuses rather than running unbounded
    with pytest.raises(ConfigError, match=r"\[warehouse\] memory_limit"):
        warehouse_settings(p)
    with pytest.raises(ConfigError, match=r"\[warehouse\] memory_limit"):
        connect_warehouse(p.restricted_db)


@pytest.mark.parametrize("text,size", [("4GiB", 4 * 2**30), ("512 MB", 512 * 10**6),
                                       ("1.5gb", 1_500_000_000), ("lots", None), ("4 parsecs", None),
                                       ("GiB", None), ("4096", None), ("4g", None)])
def test_sizes_are_read_as_duckdb_reads_them(text: str, size: int | None) -> None:
    assert database.parse_size(text) == size


def test_warehouse_connections_get_the_configured_settings(samverkan_home: Path) -> None:
    p = _configured(samverkan_home)
    conn = connect_warehouse(p.restricted_db)
    try:
        memory, threads, temp, keep_order = conn.execute(SETTINGS_SQL).fetchone()
    finally:
        conn.close()
    assert (memory, threads, keep_order) == ("1.0 GiB", 1, False)
    assert Path(temp).parent == p.warehouse / "spill"
    assert Path(temp).name.startswith(database.SPILL_PREFIX)
    # an in-memory helper connection (no data directory given): the configured one's settings
    helper = database.connect()
    try:
        assert helper.execute(SETTINGS_SQL).fetchone()[:2] == ("1.0 GiB", 1)
    finally:
        helper.close()


def test_a_build_that_outgrows_the_limit_spills_into_its_own_folder_and_cleans_up(
        samverkan_home: Path) -> None:
    p = _configured(samverkan_home)
    conn = connect_warehouse(p.restricted_db)
    try:
        temp = Path(conn.execute("select current_setting('temp_directory')").fetchone()[0])
        conn.execute("set memory_limit = '24MiB'")  # below the configurable minimum: quicker
        # about 50 MB of rows sorted under a 24 MiB limit: only possible by spilling
        conn.execute("create table t as select md5(i::varchar) as s "
                     "from range(800000) as r(i) order by s")
        assert temp.is_dir() and _mode(temp.parent) == 0o700
        assert conn.execute("select count(*) from t").fetchone()[0] == 800_000
    finally:
        conn.close()
    assert not temp.exists()  # DuckDB removes its own sub-folder when the database closes


def test_clear_spill_removes_leftovers_and_nothing_else(samverkan_home: Path) -> None:
    p = _configured(samverkan_home, '\n[warehouse]\ntemp_directory = "elsewhere/spill"\n')
    w = warehouse_settings(p)
    assert w.temp_directory == p.home / "elsewhere" / "spill"  # relative to the data directory
    root = w.ensure_spill_root()
    assert _mode(root) == 0o700
    left = root / f"{database.SPILL_PREFIX}999999-0a0b0c0d"
    left.mkdir()
    (left / "duckdb_temp_storage-0.tmp").write_bytes(b"person-level rows")
    other = root / "notes.txt"
    other.write_text("not ours")
    assert database.clear_spill(w) == 1
    assert not left.exists() and other.exists()


def test_dbt_gets_the_settings_through_its_environment(samverkan_home: Path) -> None:
    from samverkan.dbt_plugin import duckdb_config

    p = _configured(samverkan_home)
    config = duckdb_config(dbt_env(p))
    assert config["memory_limit"] == "1GiB" and config["threads"] == 1
    assert config["preserve_insertion_order"] is False
    assert Path(config["temp_directory"]).parent == p.warehouse / "spill"


def test_init_writes_the_section_commented_and_check_shows_the_effective_values(
        samverkan_home: Path) -> None:
    template = config_template()
    section = template[template.index("[warehouse]"):]
    assert '# memory_limit = "8GiB"' in section and "# threads = 4" in section
    assert "# temp_directory =" in section
    _configured(samverkan_home)
    result = check_warehouse(load_settings())
    assert result.ok, result.detail
    assert "memory_limit 1GiB" in result.detail and "threads 1" in result.detail
    assert "(mode 0700)" in result.detail


def test_a_run_clears_spill_leftovers_when_it_starts_and_ends(samverkan_home: Path) -> None:
    from samverkan.cli import exclusive

    p = _configured(samverkan_home)
    (p.spill / f"{database.SPILL_PREFIX}1-0a0b0c0d").mkdir()  # a killed run's
    seen: list[list[Path]] = []

    def run(q: Paths) -> int:
        seen.append(list(q.spill.iterdir()))
        (q.spill / f"{database.SPILL_PREFIX}2-0a0b0c0d").mkdir()  # this run's, left behind
        return 0

    assert exclusive("samverkan test", run) == 0
    assert seen == [[]]
    assert list(p.spill.iterdir()) == []


def test_an_extract_gets_the_load_memory_limit_and_the_build_the_memory_limit(
        samverkan_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An extract appends and scans (it streams): its DuckDB connections get load_memory_limit
    (default 512 MiB, or memory_limit when lower), so that DuckDB does not cache a first load's
    blocks up to memory_limit. Checked on the connections a real police extract opens."""
    from samverkan import steps, warehouse

    inbox = samverkan_home / "inbox"
    inbox.mkdir()
    p = _configured(samverkan_home, f'\n[police]\ninbox = "{inbox}"\n'
                                    '\n[warehouse]\nmemory_limit = "3GiB"\nthreads = 1\n')
    w = load_settings().warehouse
    assert (w.memory_limit, w.load_memory_limit) == ("3GiB", "512MiB")
    limits: list[str] = []
    real = warehouse.connect_warehouse

    def observed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - records, then the real one
        conn = real(*args, **kwargs)
        limits.append(conn.execute("select current_setting('memory_limit')").fetchone()[0])
        return conn

    monkeypatch.setattr(warehouse, "connect_warehouse", observed)
    result = steps.extract(load_settings(), "police")
    assert result.batches == [] or all(b.valid for b in result.batches)
    assert limits and set(limits) == {"512.0 MiB"}, limits
    conn = connect_warehouse(p.restricted_db)  # outside an extract: memory_limit
    try:
        assert conn.execute("select current_setting('memory_limit')").fetchone()[0] == "3.0 GiB"
    finally:
        conn.close()
    with database.loading():
        helper = database.connect()
        try:
            assert helper.execute("select current_setting('memory_limit')").fetchone()[0] == "512.0 MiB"
        finally:
            helper.close()
    # a lower memory_limit bounds the load limit too; an explicit one is kept
    _configured(samverkan_home, '\n[warehouse]\nmemory_limit = "256MiB"\n')
    assert load_settings().warehouse.load_memory_limit == "256MiB"
    _configured(samverkan_home, '\n[warehouse]\nload_memory_limit = "768MiB"\n')
    assert load_settings().warehouse.load_memory_limit == "768MiB"
