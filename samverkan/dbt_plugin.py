"""dbt-duckdb plugin: the warehouse settings of the database, the identity macros, and the
pseudonym key and the run parameters on every connection.

Configured in ``dbt_project/profiles.yml`` as ``plugins: [{module: samverkan.dbt_plugin}]``.
The key is read from the environment here, in Python, and bound as a parameter, so it never
appears in compiled SQL, ``target/`` or dbt's logs (``env_var()`` in model SQL would leak it).

The memory limit, threads, spill folder and ``preserve_insertion_order = false``
(:mod:`samverkan.database`) are given to DuckDB when dbt-duckdb creates its database
(``update_connection_config``), not as the profile's ``settings:``, which dbt-duckdb re-applies
with ``SET`` on every cursor: DuckDB refuses to switch the temp directory once it has spilled.
``samverkan.transform.dbt_env`` puts them in the environment; without them (dbt started by
hand) they come from the ``[warehouse]`` configuration of the restricted warehouse's data
directory.

The run parameters (reference date, data version, attendance logic fingerprint:
:mod:`samverkan.run_parameters`) are read from the environment of the invocation when the
plugin starts and defined as DuckDB macros beside the identity macros.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from samverkan.pseudonymisation import (
    install_identity_functions,
    key_configured,
    load_key,
    set_key,
)
from samverkan.run_parameters import run_parameter_macros_sql


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        # Fail at start-up with a clear message rather than mid-run; never echo the key.
        self._key = load_key() if key_configured() else None
        if self._key is None and plugin_config.get("require_key", True):
            load_key()  # raises PseudonymKeyError with the reason
        self._run_parameters = run_parameter_macros_sql(os.environ)

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        config.update(duckdb_config(os.environ))

    def configure_connection(self, conn: Any) -> None:
        # The identity macros go into the restricted warehouse itself (its main schema), where
        # every cursor of this connection sees them: installing them per cursor cost about a
        # quarter of every data test's time. They hold no key (they read the connection's
        # variable) and are replaced by every dbt invocation, so they follow this code.
        install_identity_functions(conn, self._key, temporary=False)
        conn.execute(self._run_parameters)

    def configure_cursor(self, cursor: Any) -> Any:
        # Variables and temp macros are per connection: each cursor (one per dbt node) needs
        # the key and the run parameters of its own.
        if self._key is not None:
            set_key(cursor, self._key)
        cursor.execute(self._run_parameters)
        return cursor


def duckdb_config(environ: Any) -> dict[str, Any]:
    """The DuckDB ``config`` of dbt's database: from the environment ``dbt_env`` sets, else from
    the configuration of the data directory of ``SAMVERKAN_RESTRICTED_DB``."""
    from samverkan.config import Paths
    from samverkan.database import DBT_ENV, warehouse_settings_for

    if environ.get(DBT_ENV["memory_limit"]) and environ.get(DBT_ENV["threads"]):
        config = {"memory_limit": environ[DBT_ENV["memory_limit"]],
                  "threads": int(environ[DBT_ENV["threads"]]),
                  "preserve_insertion_order": False}
        if environ.get(DBT_ENV["temp_directory"]):
            config["temp_directory"] = environ[DBT_ENV["temp_directory"]]
        return config
    restricted = environ.get("SAMVERKAN_RESTRICTED_DB")
    p = Paths(Path(restricted).parent.parent) if restricted else None
    return warehouse_settings_for(p).duckdb_config()
