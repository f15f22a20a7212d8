"""Memory and time of the streaming simulator: generate a world, build the SS 12000 server's
stores and compute the ground truth, each size in a child process of its own.

    .venv/bin/python tests/benchmarks/simulator_memory.py [PUPILS ...]   (default 5000 25000 100000)

Prints, per size, the seconds of each phase, the attendance records written and the child's
peak RSS (MiB). The target is a peak of at most 2 GiB (2048 MiB) at every size; the script
reports the figures and says whether each size met it (it does not fail a build).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

TARGET_MIB = 2048
DEFAULT_SIZES = (5000, 25000, 100000)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _measure(pupils: int, directory: str, out: mp.Queue) -> None:
    from samverkan.simulator.ground_truth import compute_ground_truth
    from samverkan.simulator.population import generate
    from samverkan.simulator.ss12000_server import SS12000Data

    figures: dict[str, float] = {"pupils": pupils}
    t = time.perf_counter()
    pop = generate(pupils=pupils, directory=directory)
    figures["generate_s"] = time.perf_counter() - t
    figures["generate_peak_mib"] = _peak_mib()
    figures["attendance_records"] = len(pop.attendances)
    figures["calendar_events"] = len(pop.calendar_events)
    t = time.perf_counter()
    data = SS12000Data.from_population(pop)
    figures["server_s"] = time.perf_counter() - t
    figures["server_peak_mib"] = _peak_mib()
    t = time.perf_counter()
    truth = compute_ground_truth(pop)
    figures["ground_truth_s"] = time.perf_counter() - t
    figures["cells"] = len(truth)
    figures["served_attendances"] = data.count("attendances")
    figures["peak_mib"] = _peak_mib()
    out.put(figures)


def main(sizes: list[int]) -> int:
    ctx = mp.get_context("spawn")
    for pupils in sizes:
        with tempfile.TemporaryDirectory(prefix="samverkan-bench-world-") as directory:
            queue: mp.Queue = ctx.Queue()
            child = ctx.Process(target=_measure, args=(pupils, directory, queue))
            t = time.perf_counter()
            child.start()
            child.join()
            if child.exitcode != 0:
                print(f"{pupils} pupils: the child failed (exit code {child.exitcode})")
                return 1
            figures = queue.get()
            disk = sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())
        figures["total_s"] = time.perf_counter() - t
        figures["world_dir_mib"] = disk / 2**20
        verdict = "within" if figures["peak_mib"] <= TARGET_MIB else "OVER"
        print(json.dumps({k: round(v, 1) if isinstance(v, float) else v
                          for k, v in figures.items()}), flush=True)
        print(f"{pupils} pupils: peak {figures['peak_mib']:.0f} MiB, {verdict} the "
              f"{TARGET_MIB} MiB target; {figures['total_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main([int(a) for a in sys.argv[1:]] or list(DEFAULT_SIZES)))
