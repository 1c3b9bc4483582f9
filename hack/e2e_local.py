"""The real-engine scenario: this program under the real Pulumi engine, on a local cluster.

`make e2e-local` runs it after `hack/cluster.sh up`; it reads KUBECONFIG, CONTEXT and CHARTS from
the environment and the toolchain's bin directory from ISTIO_MESH_TOOLCHAIN_BIN. Every check is
made on the API server (or with helm against it), and the run ends with one line
`N passed, N failed`.

The Python language host can't be built from the Go module proxy (README, "The real engine"), so
each stack runs through the Automation API's inline program: the CLI drives the engine and the
real provider plugins, and talks to a language server in this process that runs `__main__.py`.
Stack files are copies of the repository's with the local cluster, chart repository and addon
directory set as config overrides, written into a scratch project directory, never into the repo.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pulumi import automation as auto  # noqa: E402

PROJECT = "istio-mesh"
ISTIO_NAMESPACE = "istio-system"
SHARED = ROOT.parent / "shared" / "upstream"
# One `pulumi up` of a stack; Helm's own waits inside are shorter (components/control_plane.py).
STEP_TIMEOUT_SECONDS = 900
PASSPHRASE = "istio-mesh-e2e"  # the local secrets provider of a throwaway backend


@dataclass
class Results:
    passed: int = 0
    failed: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        else:
            self.failed.append(name)
            print(f"FAIL {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    def summary(self) -> str:
        return f"{self.passed} passed, {len(self.failed)} failed"


@dataclass(frozen=True)
class Cluster:
    """The local cluster, reached only through its own kubeconfig file and context."""

    kubeconfig: str
    context: str

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        argv = ["kubectl", "--kubeconfig", self.kubeconfig, "--context", self.context, *args]
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
        return result.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "--output=json"))

    def exists(self, *args: str) -> bool:
        return bool(self.kubectl("get", *args, "--ignore-not-found", "--output=name").strip())

    def helm(self, *args: str) -> str:
        argv = ["helm", "--kubeconfig", self.kubeconfig, "--kube-context", self.context, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class Stacks:
    """Stacks of this project in a scratch project directory, with a local file backend."""

    def __init__(self, cluster: Cluster, charts: str, scratch: Path) -> None:
        self.cluster = cluster
        self.charts = charts
        self.scratch = scratch
        (scratch / "backend").mkdir(parents=True, exist_ok=True)
        self.project_dir = scratch / "project"
        self.project_dir.mkdir(exist_ok=True)
        shutil.copy(ROOT / "Pulumi.yaml", self.project_dir / "Pulumi.yaml")
        self.env = {
            "PULUMI_BACKEND_URL": f"file://{scratch / 'backend'}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            # The dynamic provider (components/local_command.py) runs in a plugin process that
            # imports the program's modules: the project directory here is a scratch copy.
            "PYTHONPATH": str(ROOT),
            "PULUMI_PYTHON_CMD": sys.executable,
        }

    def config(self, stack_file: Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The stack file's config, pointed at the local cluster, charts and addons."""
        values = yaml.safe_load(stack_file.read_text())["config"]
        local = {
            f"{PROJECT}:cluster": {"context": self.cluster.context, "kubeconfig": self.cluster.kubeconfig},
            f"{PROJECT}:istio": {"chartRepository": self.charts},
            f"{PROJECT}:addons": {"source": str(SHARED / "addons" / "{version}")},
        }
        values = merged(values, local)
        return merged(values, {f"{PROJECT}:{k}": v for k, v in (overrides or {}).items()})

    def stack(self, name: str, config: Mapping[str, Any]) -> auto.Stack:
        """Select (or create) stack `name` and set its config to exactly `config`."""
        stack = auto.create_or_select_stack(
            stack_name=name,
            project_name=PROJECT,
            program=run_program,
            opts=auto.LocalWorkspaceOptions(work_dir=str(self.project_dir), env_vars=self.env),
        )
        # Written after `stack init`, keeping the encryption salt it put in the stack file.
        stack_file = self.project_dir / f"Pulumi.{name}.yaml"
        settings = yaml.safe_load(stack_file.read_text()) if stack_file.exists() else None
        settings = {**(settings or {}), "config": dict(config)}
        stack_file.write_text(yaml.safe_dump(settings))
        return stack


def run_program() -> None:
    runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")


def log_output(line: str) -> None:
    print(f"    | {line}", flush=True)


@contextmanager
def timed(title: str) -> Iterator[None]:
    started = time.monotonic()
    print(f"== {title}", flush=True)
    try:
        yield
    finally:
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)


def attempt(results: Results, name: str, action: Callable[[], Any]) -> Any:
    """Run a step that must succeed; a failure is one failed check with the engine's message."""
    try:
        value = action()
    except Exception as error:
        message = str(error).strip().splitlines()
        results.check(name, False, " / ".join(message[-15:]) or traceback.format_exc(limit=2))
        return None
    results.check(name, True)
    return value


# --- checks on the API server -------------------------------------------------------------------


def available(cluster: Cluster, namespace: str, deployment: str) -> bool:
    if not cluster.exists("deployment", deployment, "--namespace", namespace):
        return False
    status = cluster.get("deployment", deployment, "--namespace", namespace).get("status", {})
    return any(
        c.get("type") == "Available" and c.get("status") == "True" for c in status.get("conditions", [])
    )


def node_ports(service: Mapping[str, Any]) -> dict[int, int | None]:
    return {p["port"]: p.get("nodePort") for p in service["spec"].get("ports", [])}


def selects_ready_pods(cluster: Cluster, service: Mapping[str, Any]) -> bool:
    selector = ",".join(f"{k}={v}" for k, v in sorted(service["spec"].get("selector", {}).items()))
    if not selector:
        return False
    pods = cluster.get("pods", "--namespace", ISTIO_NAMESPACE, "--selector", selector)["items"]
    return bool(pods) and all(
        p["status"].get("phase") == "Running"
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        for p in pods
    )


def check_hand_made_state(results: Results, cluster: Cluster, releases: list[str]) -> None:
    """The end state of the hand-made setup, read back from the API server."""
    kiali = cluster.get("service", "kiali", "--namespace", ISTIO_NAMESPACE)
    prometheus = cluster.get("service", "prometheus", "--namespace", ISTIO_NAMESPACE)
    results.check(
        "kiali is NodePort 20001->30007, 9090->30008",
        kiali["spec"]["type"] == "NodePort" and node_ports(kiali) == {20001: 30007, 9090: 30008},
        f"{kiali['spec']['type']} {node_ports(kiali)}",
    )
    results.check(
        "prometheus is NodePort 9090->30009",
        prometheus["spec"]["type"] == "NodePort" and node_ports(prometheus) == {9090: 30009},
        f"{prometheus['spec']['type']} {node_ports(prometheus)}",
    )
    results.check("kiali's selector selects its running pods", selects_ready_pods(cluster, kiali))
    results.check("prometheus's selector selects its running pods", selects_ready_pods(cluster, prometheus))
    labels = cluster.get("namespace", "default")["metadata"].get("labels", {})
    results.check(
        "default carries istio-injection=enabled", labels.get("istio-injection") == "enabled", str(labels)
    )
    listed = json.loads(cluster.helm("list", "--all-namespaces", "--all", "--output=json"))
    statuses = {r["name"]: r["status"] for r in listed}
    results.check(
        f"helm releases deployed: {', '.join(releases)}",
        all(statuses.get(r) == "deployed" for r in releases),
        str(statuses),
    )
    for deployment in ["istiod", *[r for r in releases if r.startswith("istio-") and r != "istio-base"]]:
        results.check(f"deployment {deployment} available", available(cluster, ISTIO_NAMESPACE, deployment))
    for addon in ("prometheus", "grafana", "jaeger", "kiali"):
        results.check(f"addon deployment {addon} available", available(cluster, ISTIO_NAMESPACE, addon))
    results.check(
        "Istio CRDs present",
        cluster.exists("crd", "virtualservices.networking.istio.io")
        and cluster.exists("crd", "peerauthentications.security.istio.io"),
    )
    results.check(
        "injector webhook present", cluster.exists("mutatingwebhookconfiguration", "istio-sidecar-injector")
    )


APPLICATION = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: registry.invalid/web:1}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: registry.invalid/db:1}]}
"""
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def restarted_at(cluster: Cluster, kind: str, name: str) -> str | None:
    obj = cluster.get(kind, name, "--namespace", "default")
    return obj["spec"]["template"]["metadata"].get("annotations", {}).get(RESTARTED_AT)


# --- the scenario -------------------------------------------------------------------------------


def scenario_dev(results: Results, stacks: Stacks) -> None:
    cluster = stacks.cluster
    cluster.kubectl("apply", "--filename=-", stdin=APPLICATION)
    stack = stacks.stack("dev", stacks.config(ROOT / "Pulumi.dev.yaml"))
    with timed("1. pulumi up of the dev stack"):
        if attempt(results, "dev: pulumi up", lambda: stack.up(on_output=log_output, color="never")) is None:
            return
        check_hand_made_state(
            results, cluster, ["istio-base", "istiod", "istio-ingressgateway", "istio-egressgateway"]
        )
        for kind, name in (("deployment", "web"), ("statefulset", "db")):
            results.check(
                f"{kind} {name} in default was restarted", restarted_at(cluster, kind, name) is not None
            )
    with timed("2. nothing to do the second time"):
        attempt(
            results,
            "dev: pulumi up --expect-no-changes",
            lambda: stack.up(expect_no_changes=True, on_output=log_output, color="never"),
        )
        attempt(
            results,
            "dev: pulumi preview --expect-no-changes",
            lambda: stack.preview(expect_no_changes=True, on_output=log_output, color="never"),
        )
        attempt(
            results,
            "dev: pulumi refresh --expect-no-changes",
            lambda: stack.refresh(expect_no_changes=True, on_output=log_output, color="never"),
        )
    with timed("8. pulumi destroy"):
        before = {
            kind: restarted_at(cluster, kind, name)
            for kind, name in (("deployment", "web"), ("statefulset", "db"))
        }
        if attempt(
            results, "dev: pulumi destroy", lambda: stack.destroy(on_output=log_output, color="never")
        ):
            check_destroyed(results, cluster, before)
        stack.workspace.remove_stack("dev")


def check_destroyed(results: Results, cluster: Cluster, restarted_before: Mapping[str, str | None]) -> None:
    labels = cluster.get("namespace", "default")["metadata"].get("labels", {})
    results.check("default lost istio-injection", "istio-injection" not in labels, str(labels))
    for kind, name in (("deployment", "web"), ("statefulset", "db")):
        results.check(
            f"{kind} {name} restarted again after the label went",
            restarted_at(cluster, kind, name) not in (None, restarted_before.get(kind)),
        )
    results.check(
        "no helm release remains", not json.loads(cluster.helm("list", "-A", "--all", "--output=json"))
    )
    leftovers = cluster.kubectl(
        "get",
        "deployment,service,configmap,serviceaccount",
        "--namespace",
        ISTIO_NAMESPACE,
        "--ignore-not-found",
        "--output=name",
    ).split()
    leftovers = [o for o in leftovers if o != "configmap/kube-root-ca.crt" and o != "serviceaccount/default"]
    results.check("nothing of the program remains in istio-system", not leftovers, " ".join(leftovers))
    results.check(
        "istio-system is gone (or going)",
        not cluster.exists("namespace", ISTIO_NAMESPACE)
        or cluster.get("namespace", ISTIO_NAMESPACE)["status"].get("phase") == "Terminating",
    )
    results.check(
        "Istio CRDs stay, as the README says", cluster.exists("crd", "virtualservices.networking.istio.io")
    )
    webhooks = cluster.kubectl(
        "get", "mutatingwebhookconfiguration,validatingwebhookconfiguration", "--output=name"
    ).split()
    istio_webhooks = [w for w in webhooks if "istio" in w]
    results.check("no Istio webhook remains", not istio_webhooks, " ".join(istio_webhooks))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    cluster = Cluster(os.environ["KUBECONFIG"], os.environ["CONTEXT"])
    bin_dir = os.environ.get("ISTIO_MESH_TOOLCHAIN_BIN")
    if bin_dir:
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    os.environ.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    os.environ.setdefault("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    results = Results()
    scratch = Path(tempfile.mkdtemp(prefix="istio-mesh-e2e-"))
    try:
        stacks = Stacks(cluster, os.environ["CHARTS"], scratch)
        scenario_dev(results, stacks)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(results.summary(), flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
