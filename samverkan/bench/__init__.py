"""``samverkan bench``: the build's wall time and peak memory at a given size, side by side with
hand-written DuckDB SQL and a straightforward pandas pipeline for the same indicators.

A benchmark, not a test: it prints figures and writes them to JSON. The modules:

- :mod:`samverkan.bench.measure`: a child process measured for wall time and peak resident
  memory over its whole process tree (sampled from /proc), optionally under a memory ceiling.
- :mod:`samverkan.bench.world`: the simulated sources and a data directory loaded by the real
  pipeline up to the day before the reference date, built once and cached.
- :mod:`samverkan.bench.baselines_sql` / :mod:`samverkan.bench.baselines_pandas`: the chosen
  indicators computed straight from the raw tables.
- :mod:`samverkan.bench.run`: the measurements, the table and the JSON file.
"""
