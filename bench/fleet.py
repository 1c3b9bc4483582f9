"""Benchmark: `meshplan show --all` over 50 generated stacks against `meshplan show` of one of them.

Issue budget: a repository of 50 stacks renders within 3 times the time of one stack. The stacks
are generated into a scratch copy of the project (program, components, policy, Pulumi.yaml): each
targets its own kind context and node ports, on one of three Istio versions, with the offline
fixture addons; charts are not rendered (`--charts never`), so nothing is downloaded. Both
commands run as whole processes (`python -m meshplan`), alternating, medians reported, with
bench/preview.py's private warmed bytecode cache. Run: `python bench/fleet.py [--stacks 50]`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

if __package__:  # imported as bench.fleet (the tests generate their stacks with it)
    from bench.preview import ROOT, bench_env, medians
else:  # run as a script: bench/ is on sys.path, and must stay out of an importer's (bench/meshplan.py)
    from preview import ROOT, bench_env, medians

FIXTURES = ROOT / "tests" / "fixtures" / "addons"
# Stacks at Istio 1.22+ install the Gateway API CRDs: from the hand-written fixtures, not downloaded.
GATEWAY_API = ROOT / "tests" / "fixtures" / "gateway-api" / "{version}"
VERSIONS = ("1.20.8", "1.29.6", "1.30.3")
BUDGET = 3.0


def stack_file(index: int) -> str:
    """One generated stack: the dev stack's shape on cluster `kind-fleet-<index>`."""
    version = VERSIONS[index % len(VERSIONS)]
    addons = FIXTURES / ("app-labels" if version.startswith("1.20.") else "k8s-labels")
    port = 30100 + 3 * index
    return f"""config:
  istio-mesh:cluster:
    context: kind-fleet-{index:02d}
  istio-mesh:istio:
    version: {version}
    profile: demo
    gateways:
      ingress:
        serviceType: NodePort
      egress: {{}}
  istio-mesh:injection:
    namespaces: [default, shop-{index:02d}]
  istio-mesh:addons:
    enabled: [prometheus, grafana, jaeger, kiali]
    source: {addons}
  istio-mesh:gatewayApi:
    source: {GATEWAY_API}
  istio-mesh:dashboards:
    kiali: {{type: NodePort, nodePort: {port}, metricsNodePort: {port + 1}, auth: anonymous}}
    grafana: {{auth: anonymous}}
    prometheus: {{type: NodePort, nodePort: {port + 2}}}
"""


def make_project(target: Path, stacks: int) -> None:
    """A copy of the project with `stacks` generated stack files and none of the real ones."""
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy2(ROOT / name, target / name)
    for directory in ("components", "policy"):
        shutil.copytree(ROOT / directory, target / directory, ignore=shutil.ignore_patterns("__pycache__"))
    for index in range(stacks):
        (target / f"Pulumi.fleet-{index:02d}.yaml").write_text(stack_file(index))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stacks", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshplan-fleet-") as scratch, bench_env() as env:
        project = Path(scratch)
        make_project(project, args.stacks)
        common = ["--project-dir", str(project), "--charts", "never"]
        commands = {
            "one": [sys.executable, "-m", "meshplan", "show", "--stack", "fleet-00", *common],
            "all": [sys.executable, "-m", "meshplan", "show", "--all", *common],
        }
        median = medians(commands, env, args.runs)
    one, every = median["one"], median["all"]
    print(f"one stack   {one * 1000:7.0f} ms  (median of {args.runs})")
    print(
        f"{args.stacks} stacks  {every * 1000:7.0f} ms  ({every / one:.2f} x one stack, budget {BUDGET:.0f} x)"
    )
    return 0 if every <= one * BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
