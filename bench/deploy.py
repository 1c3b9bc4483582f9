"""Deploy time on the local cluster: the real `pulumi up` against the hand-made procedure.

    python bench/deploy.py [--delay-ms 10000]

Starts its own local cluster (hack/cluster.sh, named istio-mesh-bench) on which kwok marks a pod
Ready `--delay-ms` after it is scheduled, so each wait for pods costs what it costs on a real
cluster, then times, with the dev stack's versions:

- the real `pulumi up` of the dev stack from empty, the no-op second `up`, and `pulumi preview`;
- the seed's hand-made procedure, one step after another with the same helm and kubectl: helm
  install base, istiod and the two gateways with --wait, label `default`, restart its workloads,
  kubectl apply the addons, wait for Kiali, make the two dashboard Services NodePort.

It reports the ratio of `pulumi up` to the hand-made procedure, and to the longest chain of waits
that nothing can run beside: istiod's pods, then a gateway's, then the restarted workload's (the
addons come up beside istiod). A benchmark, not a test: it asserts nothing about the times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hack.e2e_local import APPLICATION, SHARED, Cluster, Stacks  # noqa: E402

VERSION = "1.20.8"  # the dev stack's
ADDONS = ("prometheus", "grafana", "jaeger", "kiali")
NAMESPACE = "istio-system"


def timed(label: str, action: Callable[[], object], times: dict[str, float]) -> None:
    started = time.monotonic()
    action()
    times[label] = time.monotonic() - started
    print(f"{label:<44} {times[label]:7.1f} s", flush=True)


def hand_made(cluster: Cluster, charts: str, times: dict[str, float]) -> None:
    """The seed's procedure, scripted: each step waits for the one before."""

    def helm_install(release: str, chart: str, *values: str) -> Callable[[], object]:
        return lambda: cluster.helm(
            "install",
            release,
            chart,
            "--repo",
            charts,
            "--version",
            VERSION,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--wait",
            "--timeout",
            "10m",
            *values,
        )

    timed("hand-made: helm install base", helm_install("istio-base", "base"), times)
    timed("hand-made: helm install istiod --wait", helm_install("istiod", "istiod"), times)
    timed(
        "hand-made: helm install ingress gateway --wait",
        helm_install("istio-ingressgateway", "gateway", "--set", "service.type=NodePort"),
        times,
    )
    timed(
        "hand-made: helm install egress gateway --wait",
        helm_install("istio-egressgateway", "gateway", "--set", "service.type=ClusterIP"),
        times,
    )
    timed(
        "hand-made: label default",
        lambda: cluster.kubectl("label", "namespace", "default", "istio-injection=enabled", "--overwrite"),
        times,
    )

    def restart() -> None:
        cluster.kubectl("rollout", "restart", "deployment", "--namespace", "default")
        cluster.kubectl("rollout", "status", "deployment/web", "--namespace", "default", "--timeout=10m")

    timed("hand-made: rollout restart and wait", restart, times)
    addons = [str(SHARED / "addons" / VERSION / f"{addon}.yaml") for addon in ADDONS]
    timed(
        "hand-made: kubectl apply addons",
        lambda: cluster.kubectl("apply", *[f"--filename={a}" for a in addons]),
        times,
    )
    timed(
        "hand-made: wait for kiali",
        lambda: cluster.kubectl(
            "rollout", "status", "deployment/kiali", "--namespace", NAMESPACE, "--timeout=10m"
        ),
        times,
    )

    def dashboards() -> None:
        for service, ports in (("kiali", {20001: 30007, 9090: 30008}), ("prometheus", {9090: 30009})):
            current = cluster.get("service", service, "--namespace", NAMESPACE)["spec"]["ports"]
            patched = [{**p, "nodePort": ports[p["port"]]} if p["port"] in ports else p for p in current]
            patch = {"spec": {"type": "NodePort", "ports": patched}}
            cluster.kubectl(
                "patch", "service", service, "--namespace", NAMESPACE, "--patch", json.dumps(patch)
            )

    timed("hand-made: dashboards as NodePort", dashboards, times)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--delay-ms", type=int, default=10_000, help="kwok's pod-ready delay (ms)")
    args = parser.parse_args()
    python = str(ROOT / ".venv" / "bin" / "python")
    env = {
        **os.environ,
        "PYTHON": python,
        "ISTIO_MESH_CLUSTER_NAME": "istio-mesh-bench",
        "ISTIO_MESH_E2E_DIR": str(Path.home() / ".cache" / "istio-mesh" / "bench"),
        "ISTIO_MESH_POD_READY_DELAY_MS": str(args.delay_ms),
    }
    bin_dir = (
        subprocess.run(
            ["bash", str(ROOT / "hack" / "toolchain.sh")], env=env, capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    os.environ.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        PULUMI_HOME=str(Path(bin_dir).parent / "pulumi-home"),
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        ISTIO_MESH_TOOLCHAIN_BIN=bin_dir,
    )
    env["PATH"] = os.environ["PATH"]
    cluster_sh = ["bash", str(ROOT / "hack" / "cluster.sh")]
    subprocess.run([*cluster_sh, "down"], env=env, capture_output=True, check=False)
    up = subprocess.run([*cluster_sh, "up"], env=env, capture_output=True, text=True, check=True)
    endpoints = dict(line.split("=", 1) for line in up.stdout.strip().splitlines()[-3:])
    scratch = Path(tempfile.mkdtemp(prefix="istio-mesh-bench-"))
    times: dict[str, float] = {}
    try:
        cluster = Cluster(endpoints["KUBECONFIG"], endpoints["CONTEXT"])
        cluster.kubectl("apply", "--filename=-", stdin=APPLICATION)
        cluster.kubectl("rollout", "status", "deployment/web", "--namespace", "default", "--timeout=5m")
        stacks = Stacks(cluster, endpoints["CHARTS"], scratch)
        stack = stacks.stack("bench", stacks.config(ROOT / "Pulumi.dev.yaml"))
        print(f"kwok pod-ready delay: {args.delay_ms / 1000:.0f} s", flush=True)
        timed("pulumi up (dev, from empty)", lambda: stack.up(color="never"), times)
        timed("pulumi up (no changes)", lambda: stack.up(color="never", expect_no_changes=True), times)
        timed("pulumi preview", lambda: stack.preview(color="never"), times)
        stack.destroy(color="never")
        stack.workspace.remove_stack("bench")
        cluster.kubectl("label", "namespace", "default", "istio-injection-", check=False)
        started = time.monotonic()
        hand_made(cluster, endpoints["CHARTS"], times)
        hand_made_total = time.monotonic() - started
        chain = (
            times["hand-made: helm install istiod --wait"]
            + times["hand-made: helm install ingress gateway --wait"]
            + times["hand-made: rollout restart and wait"]
        )
        pulumi_up = times["pulumi up (dev, from empty)"]
        print(f"{'hand-made procedure, in all':<44} {hand_made_total:7.1f} s")
        print(f"{'longest chain of waits (istiod, gateway, restart)':<44} {chain:7.1f} s")
        print(f"pulumi up / hand-made procedure: {pulumi_up / hand_made_total:.2f}")
        print(f"pulumi up / longest chain of waits: {pulumi_up / chain:.2f}")
    finally:
        subprocess.run([*cluster_sh, "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
