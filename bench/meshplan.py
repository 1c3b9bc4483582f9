"""Benchmark: `meshplan show` and `meshplan diff` (two stacks) against the import-only floor.

Issue budget: `show` within 15 % of the floor; `diff` of two stacks (rendered concurrently in two
processes) no more than one `show` plus 25 %. Run: `python bench/meshplan.py`.

The floor is bench/preview.py's, ending as `python -m meshplan` does (`os._exit`, no interpreter
teardown), with the same private, warmed bytecode cache for every process; see bench/preview.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preview import EXIT, FLOOR, ROOT, bench_env, medians

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
DIFF = [sys.executable, "-m", "meshplan", "diff", "--stack", "dev", "--against", "prod"]
DIFF += [arg.replace("--config", "--shared-config") for arg in COMMON]  # both sides


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    commands = {"floor": [sys.executable, "-c", FLOOR + EXIT], "show": SHOW, "diff": DIFF}
    with bench_env() as env:
        median = medians(commands, env, args.runs)
    floor, show, diff = (median[k] for k in ("floor", "show", "diff"))
    print(f"floor {floor * 1000:6.0f} ms  (median of {args.runs})")
    print(f"show  {show * 1000:6.0f} ms  ({(show / floor - 1) * 100:+.1f} % over floor, budget +15 %)")
    print(f"diff  {diff * 1000:6.0f} ms  ({(diff / show - 1) * 100:+.1f} % over show, budget +25 %)")
    return 0 if show <= floor * 1.15 and diff <= show * 1.25 else 1


if __name__ == "__main__":
    raise SystemExit(main())
