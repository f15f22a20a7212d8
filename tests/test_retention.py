"""Landing retention: loaded batches older than retention_days are purged, by batch id;
batches that were never loaded stay."""

from __future__ import annotations

import datetime as dt
import logging

from samverkan.config import Paths, PoliceConfig
from samverkan.extract import ValidationOutcome, run_extract
from samverkan.landing import list_batches
from samverkan.retention import purge_landing
from samverkan.sources.police import PoliceExtractor

HEADER = ("Diarienummer;Brottsdatum;Anmälningsdatum;Brottskod;Brottsbenämning;Kommun;Stadsdel;"
          "Personnummer;Roll;Ålder;Status;Senast ändrad")


def _deliver(inbox, day: str, diarienummer: str) -> None:
    row = (f"{diarienummer};2026-03-02;2026-03-03;0301;Misshandel utomhus;Stockholm;Bredäng;"
           "20130101-2397;Misstänkt;13;Aktiv;2026-03-03 10:15")
    (inbox / f"polis_{day}.csv").write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\r\n{row}\r\n".encode())


def test_loaded_batches_past_retention_are_purged_and_logged(tmp_path, caplog):
    p = Paths(tmp_path / "home").ensure()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    extractor = PoliceExtractor(PoliceConfig(inbox))
    _deliver(inbox, "20260303", "5000-K100001-26")
    first = run_extract(p, extractor).batch_ids
    _deliver(inbox, "20260304", "5000-K100002-26")
    rejected = run_extract(p, extractor, lambda m: ValidationOutcome(False, ("test:rejected",)))
    assert not rejected.ok
    assert len(list_batches(p.landing, "police")) == 2

    now = dt.datetime.now(dt.UTC)
    assert purge_landing(p, 30, now=now + dt.timedelta(days=29)) == []
    with caplog.at_level(logging.INFO, logger="samverkan.retention"):
        purged = purge_landing(p, 30, now=now + dt.timedelta(days=31))
    assert purged == first
    remaining = [b.batch_id for b in list_batches(p.landing, "police")]
    assert remaining == rejected.batch_ids  # never loaded: kept for inspection
    assert any(first[0] in record.getMessage() for record in caplog.records)
