"""Configuration: where things live and how the sources are reached (``settings``), the
municipality's reference data (``reference``), ``samverkan init`` and ``samverkan check``.
"""

from samverkan.config.settings import (
    CONFIG_ENV,
    DBT_PROJECT_DIR,
    EXPECTATIONS_DIR,
    PROJECT_ROOT,
    SOURCES,
    SQL_DIR,
    CaseSystemConfig,
    ConfigError,
    Municipality,
    Option,
    Paths,
    PoliceConfig,
    Settings,
    SS12000Config,
    config_file,
    home_dir,
    indicator_parameters,
    load_settings,
    paths,
    schema,
)

__all__ = [
    "CONFIG_ENV", "DBT_PROJECT_DIR", "EXPECTATIONS_DIR", "PROJECT_ROOT", "SOURCES", "SQL_DIR",
    "CaseSystemConfig", "ConfigError", "Municipality", "Option", "Paths", "PoliceConfig",
    "SS12000Config", "Settings", "config_file", "home_dir", "indicator_parameters", "load_settings",
    "paths", "schema",
]
