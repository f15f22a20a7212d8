"""Shared by the extract benchmarks: one extract (validated or not), timed, with the process's
peak resident memory before and after, and the batch's row accounting."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Measured:
    batch: Any          # the one batch the extract produced
    seconds: float
    before_kib: int     # peak RSS before the extract
    peak_kib: int       # peak RSS after it


def measure_extract(p: Any, extractor: Any, validate: bool) -> Measured:
    """``run_extract`` of ``extractor`` into the data directory ``p`` (through the Great
    Expectations batch validation when ``validate``), as the pipeline runs it."""
    from samverkan.extract import run_extract

    validator = None
    if validate:
        from samverkan.quality import batch_validator

        validator = batch_validator(extractor, p)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = run_extract(p, extractor, validator)
    seconds = time.perf_counter() - started
    (batch,) = result.batches
    return Measured(batch, seconds, before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def accounting(m: Measured) -> str:
    b = m.batch
    return (f"batch valid: {b.valid}; received {b.received:,}, loaded {b.loaded:,}, "
            f"quarantined {b.quarantined:,}")
