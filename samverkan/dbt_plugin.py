"""dbt-duckdb plugin: installs the identity macros and the pseudonym key on every connection.

Configured in ``dbt_project/profiles.yml`` as ``plugins: [{module: samverkan.dbt_plugin}]``.
The key is read from the environment here, in Python, and bound as a parameter, so it never
appears in compiled SQL, ``target/`` or dbt's logs (``env_var()`` in model SQL would leak it).
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from samverkan.pseudonymisation import install_identity_functions, key_configured, load_key


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        # Fail at start-up with a clear message rather than mid-run; never echo the key.
        self._key = load_key() if key_configured() else None
        if self._key is None and plugin_config.get("require_key", True):
            load_key()  # raises PseudonymKeyError with the reason

    def configure_connection(self, conn: Any) -> None:
        install_identity_functions(conn, self._key)

    def configure_cursor(self, cursor: Any) -> Any:
        # Variables and temp macros are per connection: each cursor needs its own.
        install_identity_functions(cursor, self._key)
        return cursor
