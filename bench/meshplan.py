"""Benchmark: `meshplan show` and `meshplan diff` (two stacks) against the import-only floor.

Issue budget: `show` within 15 % of the floor; `diff` of two stacks (rendered concurrently in two
processes) no more than one `show` plus 25 %. Run: `python bench/meshplan.py`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preview import FLOOR, ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "addons" / "k8s-labels"
COMMON = [
    "--config",
    f"addons.source={FIXTURES}",
    "--config",
    "istio.version=1.30.3",
    "--config",
    "grafanaAdminPassword=x",
]
SHOW = [sys.executable, "-m", "meshplan", "show", "--stack", "dev", *COMMON]
DIFF = [sys.executable, "-m", "meshplan", "diff", "--stack", "dev", "--against", "prod", *COMMON]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=False, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(runs: int = 5) -> int:
    floor_cmd = [sys.executable, "-c", FLOOR]
    for argv in (floor_cmd, SHOW, DIFF):
        timed(argv)  # warm caches
    samples: dict[str, list[float]] = {"floor": [], "show": [], "diff": []}
    for _ in range(runs):
        samples["floor"].append(timed(floor_cmd))
        samples["show"].append(timed(SHOW))
        samples["diff"].append(timed(DIFF))
    floor, show, diff = (statistics.median(samples[k]) for k in ("floor", "show", "diff"))
    print(f"floor {floor * 1000:6.0f} ms")
    print(f"show  {show * 1000:6.0f} ms  ({(show / floor - 1) * 100:+.1f} % over floor, budget +15 %)")
    print(f"diff  {diff * 1000:6.0f} ms  ({(diff / show - 1) * 100:+.1f} % over show, budget +25 %)")
    return 0 if show <= floor * 1.15 and diff <= show * 1.25 else 1


if __name__ == "__main__":
    raise SystemExit(main())
