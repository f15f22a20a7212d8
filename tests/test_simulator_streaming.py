"""The streaming simulator: attendance written per lesson day to Parquet part files, served
from disk and summed for the ground truth without holding the term in memory.

Determinism (same seed, same world; another seed, another world), the on-disk forms agreeing
with the in-memory ones (the SS 12000 pages and the ground truth, with an overlay of changed
and deleted records), and memory at a small size, measured in child processes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from samverkan.simulator.attendance import AttendanceParts
from samverkan.simulator.ground_truth import compute_ground_truth
from samverkan.simulator.population import generate
from samverkan.simulator.ss12000_server import SS12000Data, _DiskStore, _PageQuery

FRAMES = ("organisations", "persons", "enrolments", "calendar_events", "klient",
          "aktualisering", "utredning", "insats", "gallring", "police_rows")
AT = dt.datetime(2026, 6, 13, 12, 0, tzinfo=dt.UTC)


def _parts_digest(parts: AttendanceParts) -> str:
    """sha256 over every part's content (schema, then each column's values), in order."""
    h = hashlib.sha256()
    for path in parts.files:
        table = pq.read_table(path)
        h.update(path.name.encode() + str(table.schema).encode())
        for column in table.columns:
            h.update(pd.util.hash_pandas_object(column.to_pandas(), index=False)
                     .to_numpy().tobytes())
    return h.hexdigest()


def test_same_seed_same_world_other_seed_other_world(tmp_path: Path) -> None:
    a = generate(seed=5, pupils=150, lessons_per_day=2, directory=tmp_path / "a")
    b = generate(seed=5, pupils=150, lessons_per_day=2, directory=tmp_path / "b")
    c = generate(seed=6, pupils=150, lessons_per_day=2, directory=tmp_path / "c")
    assert isinstance(a.attendances, AttendanceParts)
    assert [p.parent for p in a.attendances.files] == [tmp_path / "a" / "attendance"] * len(
        a.attendances.files)
    # one part per lesson day, every one holding records
    assert len(a.attendances.files) == a.calendar_events["start_time"].dt.date.nunique()
    assert all(pq.ParquetFile(p).metadata.num_rows > 0 for p in a.attendances.files)
    assert _parts_digest(a.attendances) == _parts_digest(b.attendances)
    assert _parts_digest(a.attendances) != _parts_digest(c.attendances)
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)
    assert not a.persons["pnr"].equals(c.persons["pnr"])
    fa, fc = a.attendance_frame(), c.attendance_frame()
    assert len(fa) == len(a.attendances) == a.attendances.rows
    assert set(fa["id"]).isdisjoint(set(fc["id"]))
    # a generated world again into the same directory replaces its parts
    again = generate(seed=5, pupils=150, lessons_per_day=2, directory=tmp_path / "a")
    assert _parts_digest(again.attendances) == _parts_digest(b.attendances)


def test_private_world_directory_goes_with_the_population() -> None:
    pop = generate(seed=5, pupils=20, lessons_per_day=1)
    world = pop.attendances.world.path
    assert world.is_dir() and pop.attendances.files[0].is_relative_to(world)
    del pop
    import gc

    gc.collect()
    assert not world.exists()


def _pages(data: SS12000Data, limit: int, endpoint: str = "attendances", **query: object) -> bytes:
    store, key, out = data.store(endpoint), None, []
    while True:
        body, last, more = store.page(_PageQuery(key=key, **query), limit)
        out.append(body)
        if not more:
            return b",".join(b for b in out if b)
        key = last


def test_disk_store_and_overlay_agree_with_memory(tmp_path: Path) -> None:
    """The attendance endpoint served from disk pages exactly like the in-memory store, before
    and after changes; the ground truth of the parts with an overlay equals the one of the
    changed frame."""
    pop = generate(seed=7, pupils=60, lessons_per_day=2, directory=tmp_path)
    frame = pop.attendance_frame()
    disk = SS12000Data.from_population(pop)
    memory = SS12000Data.from_population(dataclasses.replace(pop, attendances=frame))
    assert isinstance(disk.store("attendances"), _DiskStore)
    assert disk.served_checksum("attendances") == memory.served_checksum("attendances")
    mods = memory.store("attendances").mod
    for limit, query in ((997, {}), (5000, {}), (300, {"after": int(mods[100]),
                                                       "before": int(mods[len(mods) // 2])})):
        assert _pages(disk, limit, **query) == _pages(memory, limit, **query)
    ids = memory.ids("attendances")
    assert disk.ids("attendances") == ids
    # the calendar events too, with their startTime filter
    assert isinstance(disk.store("calendarEvents"), _DiskStore)
    assert disk.served_checksum("calendarEvents") == memory.served_checksum("calendarEvents")
    starts = memory.store("calendarEvents").start
    window = (int(starts.min()) + 20 * 86_400_000_000, int(starts.min()) + 30 * 86_400_000_000)
    for limit in (40, 3000):
        pages = [_pages(d, limit, endpoint="calendarEvents", start_range=window)
                 for d in (disk, memory)]
        assert pages[0] == pages[1] and pages[0]
    for data in (disk, memory):
        record = data.get("attendances", ids[3])
        record["validAbsenceMinutes"], record["attendanceMinutes"] = 60, 0
        data.upsert("attendances", record, AT)
        data.delete_many("attendances", ids[10:14], AT)
        with pytest.raises(KeyError):
            data.delete("attendances", ids[10], AT)
    assert disk.count("attendances") == memory.count("attendances") == len(ids) - 4
    assert disk.served_checksum("attendances") == memory.served_checksum("attendances")
    assert _pages(disk, 777) == _pages(memory, 777)
    assert disk.deletions() == memory.deletions()

    # the same changes in the population: an overlay on the parts, or a changed frame
    version = frame[frame["id"] == ids[3]].copy()
    version["valid_absence_minutes"], version["attendance_minutes"] = 60, 0
    version["modified_at"] = version["modified_at"] + pd.Timedelta(days=1)
    parts = pop.attendances.without(ids[10:14]).with_versions(version)
    changed = pd.concat([frame[~frame["id"].isin(ids[10:14])], version], ignore_index=True)
    assert len(parts) == len(frame) - 4
    current = pd.concat([frame[~frame["id"].isin([*ids[10:14], ids[3]])], version],
                        ignore_index=True)
    pd.testing.assert_frame_equal(parts.frame(), current)
    pd.testing.assert_frame_equal(
        compute_ground_truth(dataclasses.replace(pop, attendances=parts)),
        compute_ground_truth(dataclasses.replace(pop, attendances=changed)))
    # the ground truth's DuckDB scratch (person-day table, spill) is gone from the world
    assert not list(pop.attendances.world.path.glob("ground-truth-*"))


_CHILD = textwrap.dedent("""
    import json, resource, sys
    from samverkan.simulator.population import generate
    pop = generate(seed=3, pupils=int(sys.argv[1]), directory=sys.argv[2])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    frame = pop.attendance_frame()
    print(json.dumps({"peak": peak, "records": len(frame),
                      "frame": int(frame.memory_usage(deep=True).sum())}))
""")


def _generate_in_child(pupils: int, directory: Path) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(pupils), str(directory)],
                          capture_output=True, text=True, check=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_generation_memory_does_not_grow_with_the_attendance(tmp_path: Path) -> None:
    """Peak RSS of generate() at 600 and 2 400 pupils (child processes). Holding the term's
    attendance would grow the peak by at least the attendance frame's growth (the old generator
    grew by about three times that); the streaming generator holds one lesson day, so its
    growth must stay below half of it. With 4 lessons a day the frame grows by about 0.7 M
    records, ~95 MiB: the bound (~48 MiB) is well above the growth of the day buffers and of
    the calendar events (~15 MiB) and below what any whole-term copy of the records needs."""
    small = _generate_in_child(600, tmp_path / "small")
    large = _generate_in_child(2400, tmp_path / "large")
    assert large["records"] > 3.5 * small["records"]
    frame_growth = large["frame"] - small["frame"]
    assert frame_growth > 64 * 2**20  # the measurement has something to detect
    assert large["peak"] - small["peak"] < 0.5 * frame_growth, (small, large)
