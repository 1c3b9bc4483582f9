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
import base64
import copy
import functools
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pulumi import automation as auto  # noqa: E402

from components.gateway_api import MANAGED_ANNOTATION, MANAGED_VALUE  # noqa: E402
from hack.fake_istiod import FakeIstiod  # noqa: E402

PROJECT = "istio-mesh"
ISTIO_NAMESPACE = "istio-system"
SHARED = ROOT.parent / "shared" / "upstream"
# One `pulumi up` of a stack; Helm's own waits inside are shorter (components/control_plane.py).
STEP_TIMEOUT_SECONDS = 900
PASSPHRASE = "istio-mesh-e2e"  # the local secrets provider of a throwaway backend


# Checks that fail today for a defect found by this scenario and not fixed yet, each with the
# reason (also in README.md, "The real engine"). They are strict: one that passes fails the run,
# so the entry goes as soon as the defect is fixed.
KNOWN_FAILURES: dict[str, str] = {}


@dataclass
class Results:
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        known = KNOWN_FAILURES.get(name)
        if ok and known:
            self.failed.append(name)
            print(f"FAIL (XPASS) {name}: passes now; remove it from KNOWN_FAILURES", flush=True)
        elif ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        elif known:
            self.expected.append(name)
            print(f"XFAIL {name}: {known}{' | ' + detail if detail else ''}", flush=True)
        else:
            self.failed.append(name)
            print(f"FAIL {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    def summary(self) -> str:
        known = f" ({len(self.expected)} known failures: XFAIL above)" if self.expected else ""
        return f"{self.passed} passed, {len(self.failed)} failed{known}"


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
    """`override` deep-merged into `base`; None removes a key."""
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
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
            # The Go module proxy's zip of each Gateway API release, as `go mod download` left it in
            # the module cache (hack/toolchain.sh): the default source's bytes, verified against the
            # same gateway-api.lock, read without network.
            f"{PROJECT}:gatewayApi": {"source": f"file://{gateway_api_zip('{version}')}"},
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

    @contextmanager
    def deployed(self, results: Results, name: str, config: Mapping[str, Any]) -> Iterator[auto.Stack]:
        """Stack `name` with `config`, destroyed when the block ends, however it ends."""
        stack = self.stack(name, config)
        try:
            yield stack
        finally:
            self.cleanup(results, stack)

    def cleanup(self, results: Results, stack: auto.Stack) -> None:
        """Destroy what a scenario left, even after a failure, so the next one starts clean.

        A destroy keeps the Gateway API CRDs (components/gateway_api.py): they go by hand here, as an
        operator retiring the cluster would remove them, so that each scenario starts from a cluster
        without them.
        """
        try:
            self._destroy(results, stack)
        finally:
            remove_gateway_api(self.cluster)

    def _destroy(self, results: Results, stack: auto.Stack) -> None:
        name = stack.name
        try:
            stack.destroy(color="never")
        except auto.CommandError as error:
            if "protect" not in str(error):
                results.check(f"{name}: cleanup destroy", False, str(error)[-300:])
            else:
                subprocess.run(
                    ["pulumi", "state", "unprotect", "--all", "--yes", "--stack", name],
                    cwd=self.project_dir,
                    env={**os.environ, **self.env},
                    capture_output=True,
                    check=True,
                )
                stack.destroy(color="never")
        stack.workspace.remove_stack(name)


def gateway_api_zip(version: str) -> Path:
    """Where `go mod download sigs.k8s.io/gateway-api@<version>` keeps the proxy's zip."""
    cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout
    return (
        Path(cache.strip()) / "cache" / "download" / "sigs.k8s.io" / "gateway-api" / "@v" / f"{version}.zip"
    )


def gateway_api_manifest(version: str, channel: str = "standard") -> str:
    """A Gateway API release's `<channel>-install.yaml` objects, as its hack/build-install-yaml.sh
    puts them together: `config/crd/<channel>/gateway*.yaml` of the module, in name order."""
    with zipfile.ZipFile(gateway_api_zip(version)) as archive:
        prefix = f"sigs.k8s.io/gateway-api@{version}/config/crd/{channel}/"
        names = sorted(
            n for n in archive.namelist() if n.startswith(prefix) and Path(n).name.startswith("gateway")
        )
        return "\n---\n".join(archive.read(n).decode() for n in names)


GATEWAY_API_GROUPS = (".gateway.networking.k8s.io", ".gateway.networking.x-k8s.io")
GATEWAY_API_POLICY = "safe-upgrades.gateway.networking.k8s.io"


def gateway_api_crds(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """The cluster's Gateway API CRDs by name, with their managedFields."""
    return {
        crd["metadata"]["name"]: crd
        for crd in cluster.get("crd", "--show-managed-fields")["items"]
        if crd["metadata"]["name"].endswith(GATEWAY_API_GROUPS)
    }


def remove_gateway_api(cluster: Cluster) -> None:
    names = sorted(gateway_api_crds(cluster))
    if names:
        # Waiting until they are gone: a CRD applied again while it still terminates is deleted with it.
        cluster.kubectl("delete", "crd", *names, "--ignore-not-found", "--timeout=90s")
    for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
        cluster.kubectl("delete", kind, GATEWAY_API_POLICY, "--ignore-not-found")


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
    listed = json.loads(cluster.helm("list", "--all-namespaces", "--output=json"))
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


def restarted_at(cluster: Cluster, kind: str, name: str, namespace: str = "default") -> str | None:
    obj = cluster.get(kind, name, "--namespace", namespace)
    return obj["spec"]["template"]["metadata"].get("annotations", {}).get(RESTARTED_AT)


# --- the scenario -------------------------------------------------------------------------------


def scenario_dev(results: Results, stacks: Stacks) -> None:
    cluster = stacks.cluster
    cluster.kubectl("apply", "--filename=-", stdin=APPLICATION)
    with stacks.deployed(results, "dev", stacks.config(ROOT / "Pulumi.dev.yaml")) as stack:
        _scenario_dev(results, stacks, stack)


def _scenario_dev(results: Results, stacks: Stacks, stack: auto.Stack) -> None:
    cluster = stacks.cluster
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
        check_kiali_signing_key(results, cluster)
    with timed("2. nothing to do the second time"):
        expect_no_changes(results, "dev", stack)
    with timed("one cluster, one stack: a second stack's up is refused"):
        twin = stacks.stack("dev-twin", stacks.config(ROOT / "Pulumi.dev.yaml"))
        releases_before = cluster.helm("list", "--all-namespaces", "--output=json")
        output: list[str] = []
        try:
            twin.up(on_output=output.append, color="never")
            refused, detail = False, "the up succeeded"
        except auto.CommandError as error:
            text = "\n".join(output) + str(error)
            refused = f"this cluster is owned by stack {PROJECT}/{stack.name}" in text
            detail = text[-600:]
        results.check(
            "dev-twin: pulumi up is refused, naming the stack that owns the cluster", refused, detail
        )
        state = twin.export_stack().deployment or {}
        created = [r["urn"] for r in state.get("resources", []) if r["type"].startswith("kubernetes:")]
        results.check(
            "dev-twin: ... before anything changed",
            cluster.helm("list", "--all-namespaces", "--output=json") == releases_before and not created,
            str(created[:5]),
        )
        twin.destroy(color="never")  # its state holds only the provider and components
        twin.workspace.remove_stack("dev-twin")
    with timed("8. pulumi destroy"):
        destroy_and_check(results, cluster, "dev", stack)


def expect_no_changes(results: Results, name: str, stack: auto.Stack) -> None:
    """`pulumi up`, `preview` and `refresh` of `stack`, each with `--expect-no-changes`."""
    for operation in ("up", "preview", "refresh"):
        attempt(
            results,
            f"{name}: pulumi {operation} --expect-no-changes",
            functools.partial(
                getattr(stack, operation), expect_no_changes=True, on_output=log_output, color="never"
            ),
        )


def destroy_and_check(results: Results, cluster: Cluster, name: str, stack: auto.Stack) -> None:
    """`pulumi destroy` of a dev-shaped stack, then what must (and must not) remain on the cluster."""
    before = {
        kind: restarted_at(cluster, kind, workload)
        for kind, workload in (("deployment", "web"), ("statefulset", "db"))
    }
    if attempt(
        results, f"{name}: pulumi destroy", lambda: stack.destroy(on_output=log_output, color="never")
    ):
        check_destroyed(results, cluster, before)


def check_kiali_signing_key(results: Results, cluster: Cluster) -> None:
    """Kiali signs with the stack's own key, from a Secret, never upstream's CHANGEME (issue 10, 14).

    The key itself is never printed: only its length.
    """
    secret = cluster.get("secret", "kiali-signing-key", "--namespace", ISTIO_NAMESPACE)
    key = base64.b64decode(secret.get("data", {}).get("signing-key", ""))
    results.check(
        "kiali's signing key is a Secret of the stack's, 32 bytes", len(key) == 32, f"{len(key)} bytes"
    )
    pod = cluster.get("deployment", "kiali", "--namespace", ISTIO_NAMESPACE)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounted = [
        (m["mountPath"], volumes.get(m["name"], {}).get("secret"))
        for c in pod["containers"]
        if c["name"] == "kiali"
        for m in c.get("volumeMounts", [])
    ]
    expected = (
        "/kiali-override-secrets/login-token-signing-key",
        {"secretName": "kiali-signing-key", "items": [{"key": "signing-key", "path": "value.txt"}]},
    )
    results.check(
        "kiali mounts it where Kiali reads its signing key",
        any(
            path == expected[0]
            and {k: v for k, v in (secret or {}).items() if k != "defaultMode"} == expected[1]
            for path, secret in mounted
        ),
        str(mounted),
    )
    config = cluster.get("configmap", "kiali", "--namespace", ISTIO_NAMESPACE)["data"]["config.yaml"]
    results.check(
        "kiali's ConfigMap keeps no signing key", "CHANGEME" not in config and "signing_key" not in config
    )


def check_destroyed(results: Results, cluster: Cluster, restarted_before: Mapping[str, str | None]) -> None:
    labels = cluster.get("namespace", "default")["metadata"].get("labels", {})
    results.check("default lost istio-injection", "istio-injection" not in labels, str(labels))
    for kind, name in (("deployment", "web"), ("statefulset", "db")):
        results.check(
            f"{kind} {name} restarted again after the label went",
            restarted_at(cluster, kind, name) not in (None, restarted_before.get(kind)),
        )
    results.check(
        "no helm release remains", not json.loads(cluster.helm("list", "--all-namespaces", "--output=json"))
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
    results.check(
        "the stack's claim on the cluster is gone",
        not cluster.exists("configmap", "istio-mesh-owner", "--namespace", "kube-system"),
    )


# --- 0. adopting a cluster set up by hand ---------------------------------------------------------

HAND_MADE_VERSION = "1.20.8"
HAND_MADE_RELEASES = (
    ("istio-base", "base", ()),
    ("istiod", "istiod", ()),
    ("istio-ingressgateway", "gateway", ("--set", "service.type=NodePort")),
    ("istio-egressgateway", "gateway", ()),
)
HAND_MADE_ADDONS = ("prometheus", "grafana", "jaeger", "kiali")
KUBECTL_MANAGERS = ("kubectl-client-side-apply", "kubectl", "kubectl-label", "before-first-apply")


def install_by_hand(stacks: Stacks) -> None:
    """The seed's procedure: helm install from the chart repository, label, kubectl apply the addons."""
    cluster = stacks.cluster
    for release, chart, values in HAND_MADE_RELEASES:
        cluster.helm(
            "install", release, chart, "--repo", stacks.charts, "--version", HAND_MADE_VERSION,
            "--namespace", ISTIO_NAMESPACE, "--create-namespace", "--wait", "--timeout", "5m", *values,
        )  # fmt: skip
    cluster.kubectl("label", "namespace", "default", "istio-injection=enabled", "--overwrite")
    addons = SHARED / "addons" / HAND_MADE_VERSION
    cluster.kubectl("apply", *[f"--filename={addons / f'{a}.yaml'}" for a in HAND_MADE_ADDONS])


def release_revisions(cluster: Cluster) -> dict[str, tuple[int, str]]:
    listed = json.loads(cluster.helm("list", "--all-namespaces", "--output=json"))
    return {r["name"]: (int(r["revision"]), r["status"]) for r in listed}


def addon_managers(cluster: Cluster) -> dict[str, list[str]]:
    """Each addon object of the manifests, by kind/name: its field managers and last-applied annotation."""
    result: dict[str, list[str]] = {}
    for addon in HAND_MADE_ADDONS:
        path = SHARED / "addons" / HAND_MADE_VERSION / f"{addon}.yaml"
        listed = cluster.get("--filename", str(path), "--show-managed-fields")
        for obj in listed.get("items", [listed]):
            metadata = obj["metadata"]
            # A status is its controller's (kube-controller-manager), never an owner of the object.
            fields = [m for m in metadata.get("managedFields") or [] if m.get("subresource") != "status"]
            managers = sorted({m["manager"] for m in fields})
            if "kubectl.kubernetes.io/last-applied-configuration" in (metadata.get("annotations") or {}):
                managers.append("last-applied-configuration")
            result[f"{obj['kind']}/{metadata['name']}"] = managers
    return result


ISTIOCTL_LIKE = """
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod, namespace: istio-system, labels: {app: istiod, install.operator.istio.io/owning-resource: installed-state}}
spec:
  replicas: 1
  selector: {matchLabels: {app: istiod}}
  template:
    metadata: {labels: {app: istiod}}
    spec: {containers: [{name: discovery, image: registry.invalid/pilot:1.20.8}]}
"""


def scenario_adopt(results: Results, stacks: Stacks) -> None:
    cluster = stacks.cluster
    cluster.kubectl("apply", "--filename=-", stdin=APPLICATION)
    with timed(
        "0. adopt: an istiod without a Helm release (as istioctl installs it) is refused, adopt or not"
    ):
        # No istioctl in the toolchain: its istiod Deployment, with no Helm release, stands in for it.
        cluster.kubectl("apply", "--filename=-", stdin=ISTIOCTL_LIKE)
        stack = stacks.stack("adopt", stacks.config(ROOT / "Pulumi.dev.yaml", {"adopt": True}))
        output: list[str] = []
        try:
            stack.preview(on_output=output.append, color="never")
            refused, detail = False, "the preview passed"
        except auto.CommandError as error:
            text = "\n".join(output) + str(error)
            refused = (
                "Deployment istio-system/istiod exists without a Helm release istiod" in text
                and "`istioctl uninstall --purge`" in text
            )
            detail = text[-800:]
        results.check("adopt: an istiod no Helm release owns is refused even with adopt", refused, detail)
        stack.workspace.remove_stack("adopt")
        # Gone again, istio-system too: the seed's helm install creates it (--create-namespace).
        cluster.kubectl("delete", "--filename=-", "--wait", "--timeout=120s", stdin=ISTIOCTL_LIKE)
    with timed("0. adopt: Istio 1.20.8 installed by hand (helm install, kubectl apply)"):
        install_by_hand(stacks)
    with stacks.deployed(results, "adopt", stacks.config(ROOT / "Pulumi.dev.yaml")) as stack:
        _scenario_adopt(results, stacks, stack)


def _scenario_adopt(results: Results, stacks: Stacks, stack: auto.Stack) -> None:
    cluster = stacks.cluster
    before = release_revisions(cluster)
    managers_before = addon_managers(cluster)
    print(f"    hand-made releases: {before}", flush=True)
    with timed("0. adopt: preview and up without `adopt` are refused before anything changes"):
        for operation in ("preview", "up"):
            output: list[str] = []
            text = ""
            try:
                getattr(stack, operation)(on_output=output.append, color="never")
                refused, detail = False, f"the {operation} succeeded"
            except auto.CommandError as error:
                text = "\n".join(output) + str(error)
                refused = (
                    "this cluster holds an Istio installation made by hand" in text
                    and all(f"Helm release {ISTIO_NAMESPACE}/{r}" in text for r in before)
                    and f"{ISTIO_NAMESPACE}/deployment.apps/kiali (an addon object applied by kubectl)"
                    in text
                    and "pulumi config set istio-mesh:adopt true" in text
                )
                detail = text[-1500:]
            if (
                results.check(
                    f"adopt: pulumi {operation} without adopt is refused, naming what is in the way",
                    refused,
                    detail,
                )
                and operation == "preview"
            ):
                # The engine's diagnostic, as a user sees it, up to the end of the message.
                start = max(text.rfind("error: pulumi-python:dynamic/istio-mesh:Adoption"), 0)
                for line in text[start:].splitlines()[:40]:
                    log_output(line)
                    if "(README, Clusters set up by hand)" in line:
                        break
        state = stack.export_stack().deployment or {}
        created = [r["urn"] for r in state.get("resources", []) if r["type"].startswith("kubernetes:")]
        labels = cluster.get("namespace", ISTIO_NAMESPACE)["metadata"].get("labels", {})
        results.check(
            "adopt: ... and nothing changed (releases, addon objects' managers, istio-system, state)",
            release_revisions(cluster) == before
            and addon_managers(cluster) == managers_before
            and "istio-mesh/environment" not in labels
            and not created,
            f"{release_revisions(cluster)} {created[:5]} {labels}",
        )
    with timed("0. adopt: pulumi up with adopt: true"):
        stack = stacks.stack("adopt", stacks.config(ROOT / "Pulumi.dev.yaml", {"adopt": True}))
        attempt(
            results,
            "adopt: pulumi preview with adopt passes, and changes nothing",
            lambda: stack.preview(on_output=log_output, color="never"),
        )
        results.check(
            "adopt: ... the releases are still the hand-made ones", release_revisions(cluster) == before
        )
        if (
            attempt(
                results, "adopt: pulumi up with adopt", lambda: stack.up(on_output=log_output, color="never")
            )
            is None
        ):
            return
        check_hand_made_state(
            results, cluster, ["istio-base", "istiod", "istio-ingressgateway", "istio-egressgateway"]
        )
        after = release_revisions(cluster)
        results.check(
            "adopt: each release is the stack's own, a first revision, deployed",
            after == {r: (1, "deployed") for r in before},
            str(after),
        )
        istiod = cluster.get("deployment", "istiod", "--namespace", ISTIO_NAMESPACE)
        annotations = istiod["metadata"].get("annotations", {})
        results.check(
            "adopt: istiod's Deployment (made by hand) belongs to the release istiod",
            annotations.get("meta.helm.sh/release-name") == "istiod",
            str(annotations),
        )
        namespace = cluster.get("namespace", ISTIO_NAMESPACE, "--show-managed-fields")["metadata"]
        print(
            "    istio-system's field managers (helm created it): "
            f"{sorted({m['manager'] for m in namespace.get('managedFields') or []})}",
            flush=True,
        )
        managers = addon_managers(cluster)
        shared = {k: v for k, v in managers.items() if len(v) != 1 or v[0] in KUBECTL_MANAGERS}
        results.check(
            "adopt: every addon object has one field manager, the stack's (no kubectl, no last-applied)",
            bool(managers) and not shared,
            str(dict(list(shared.items())[:6])),
        )
        ns = cluster.get("namespace", "default", "--show-managed-fields")["metadata"]
        label_owners = sorted(
            m["manager"]
            for m in ns.get("managedFields") or []
            if "f:istio-injection" in json.dumps(m.get("fieldsV1", {}))
        )
        results.check(
            "adopt: default's istio-injection label has one owner, the stack's NamespacePatch",
            len(label_owners) == 1 and label_owners[0] not in KUBECTL_MANAGERS,
            str(label_owners),
        )
    with timed("0. adopt: without adopt again, nothing to do"):
        stack = stacks.stack("adopt", stacks.config(ROOT / "Pulumi.dev.yaml"))
        expect_no_changes(results, "adopt", stack)
    with timed("0. adopt: pulumi destroy"):
        destroy_and_check(results, cluster, "adopt", stack)


# --- 3. meshplan against the engine -------------------------------------------------------------


def preview_steps(stack: auto.Stack) -> dict[str, dict[str, Any]]:
    """What the real engine plans for `stack`, by URN: type, parent and inputs of each step."""
    steps: dict[str, dict[str, Any]] = {}

    def record(event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is None or pre.metadata.new is None:
            return
        new = pre.metadata.new
        steps[pre.metadata.urn] = {"type": new.type, "parent": new.parent or None, "inputs": new.inputs}

    stack.preview(on_event=record, color="never")
    return steps


def preview_ops(stack: auto.Stack) -> dict[str, str]:
    """What the real engine plans for `stack`: the operation of each step, by URN."""
    ops: dict[str, str] = {}

    def record(event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None:
            ops[pre.metadata.urn] = str(pre.metadata.op.value)

    stack.preview(on_event=record, color="never")
    return ops


def meshplan_show(stack_file: Path, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`meshplan show --json` of the same stack file with the same overrides, by URN."""
    overrides = []
    for key, value in config.items():
        if key.endswith((":cluster", ":istio", ":addons")) and isinstance(value, Mapping):
            for sub in ("context", "kubeconfig", "chartRepository", "source"):
                if sub in value:
                    overrides += ["--config", f"{key.split(':', 1)[1]}.{sub}={value[sub]}"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshplan",
            "show",
            "--json",
            "--charts",
            "never",
            "--stack",
            "plan",
            "--stack-file",
            str(stack_file),
            *overrides,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    plan = json.loads(out)
    resources = plan["resources"] if "resources" in plan else plan["stacks"][0]["resources"]
    return {
        r["urn"]: {"type": r["type"], "parent": r.get("parent"), "inputs": r.get("inputs", {})}
        for r in resources
    }


def _comparable(value: Any) -> Any:
    """Secrets as one marker on both sides; the engine's and meshplan's JSON otherwise as they are."""
    if isinstance(value, Mapping):
        if value.get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270":
            return "[secret]"
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def compare_plans(results: Results, env: str, engine: Mapping[str, Any], mock: Mapping[str, Any]) -> None:
    # The engine adds a default provider for resources the program gives none (the dynamic
    # resources' pulumi-python provider); meshplan plans what the program declares.
    defaults = sorted(
        u for u, s in engine.items() if s["type"].startswith("pulumi:providers:") and "::default" in u
    )
    print(f"    engine's default providers, not in meshplan's plan: {defaults}", flush=True)
    engine_urns = {
        u for u, s in engine.items() if not s["type"].startswith("pulumi:pulumi:Stack") and u not in defaults
    }
    mock_urns = {u for u, s in mock.items() if not s["type"].startswith("pulumi:pulumi:Stack")}
    results.check(
        f"meshplan {env}: the same URNs as the real preview",
        engine_urns == mock_urns,
        f"only in the engine: {sorted(engine_urns - mock_urns)[:8]}; only in meshplan: {sorted(mock_urns - engine_urns)[:8]}",
    )
    common = sorted(engine_urns & mock_urns)
    wrong_types = [u for u in common if engine[u]["type"] != mock[u]["type"]]
    results.check(f"meshplan {env}: the same types", not wrong_types, str(wrong_types[:5]))
    wrong_parents = [u for u in common if (engine[u]["parent"] or None) != (mock[u]["parent"] or None)]
    results.check(f"meshplan {env}: the same parents", not wrong_parents, str(wrong_parents[:5]))
    # The engine's step inputs are the provider's checked inputs (meshplan/provider_check.py):
    # meshplan must show the same, key for key. Keys the engine reserves (`__provider` of a dynamic
    # resource, encrypted; a provider's `__internal`) are not the program's.
    wrong_inputs = []
    wrong_keys: set[str] = set()
    for urn in common:
        sent = _comparable(mock[urn]["inputs"])
        got = _comparable(engine[urn]["inputs"] or {})
        for key in sorted(set(sent) | set(got)):
            if key.startswith("__"):
                continue
            if got.get(key, "<absent>") != sent.get(key, "<absent>"):
                wrong_keys.add(f"{engine[urn]['type'].rsplit(':', 1)[-1]}.{key}")
                wrong_inputs.append(
                    f"{urn.rsplit('::', 1)[-1]}.{key}: engine {str(got.get(key, '<absent>'))[:120]} "
                    f"!= meshplan {str(sent.get(key, '<absent>'))[:120]}"
                )
    print(f"    inputs that differ, by type and key: {sorted(wrong_keys)}", flush=True)
    results.check(
        f"meshplan {env}: the same inputs, as the engine records them",
        not wrong_inputs,
        "; ".join(wrong_inputs[:6]),
    )


def scenario_meshplan(results: Results, stacks: Stacks) -> None:
    for stack_file in (ROOT / "Pulumi.dev.yaml", ROOT / "Pulumi.prod.yaml"):
        env = stack_file.stem.split(".")[-1]
        with timed(f"3. meshplan show --json against the real pulumi preview: {env}"):
            _compare_with_meshplan(results, stacks, env, stacks.config(stack_file))


def _compare_with_meshplan(results: Results, stacks: Stacks, env: str, config: Mapping[str, Any]) -> None:
    stack = stacks.stack("plan", config)
    engine = attempt(results, f"plan {env}: pulumi preview", lambda: preview_steps(stack))
    stack.workspace.remove_stack("plan")
    if engine is None:
        return
    plan_file = stacks.scratch / "Pulumi.plan.yaml"
    plan_file.write_text(yaml.safe_dump({"config": dict(config)}))
    mock = attempt(results, f"plan {env}: meshplan show --json", lambda: meshplan_show(plan_file, config))
    if mock is not None:
        compare_plans(results, env, engine, mock)


# --- 4. upgrade in place across the CRD boundary ------------------------------------------------


def crd_owner(cluster: Cluster, name: str) -> tuple[str | None, str | None]:
    metadata = cluster.get("crd", name)["metadata"]
    return (
        metadata.get("annotations", {}).get("meta.helm.sh/release-name"),
        metadata.get("labels", {}).get("app.kubernetes.io/managed-by"),
    )


# The gateway charts of 1.23.6 and 1.24.6 can't be installed by the provider's Helm (v3.18.6): its
# JSON-schema validation refuses every value, the chart's own defaults included ("additional
# properties ... not allowed"). The upgrade is about the CRDs, so it runs without gateways.
UPGRADE = {"istio": {"profile": "minimal", "gateways": None}}


def scenario_upgrade(results: Results, stacks: Stacks) -> None:
    def config(version: str) -> dict[str, Any]:
        return stacks.config(ROOT / "Pulumi.dev.yaml", merged(UPGRADE, {"istio": {"version": version}}))

    with (
        stacks.deployed(results, "upgrade", config("1.23.6")) as stack,
        timed("4. upgrade in place: 1.23.6 -> 1.24.6"),
    ):
        _scenario_upgrade(results, stacks, stack, config)


def _scenario_upgrade(
    results: Results, stacks: Stacks, stack: auto.Stack, config: Callable[[str], dict[str, Any]]
) -> None:
    cluster = stacks.cluster
    up = functools.partial(stack.up, on_output=log_output, color="never")
    if attempt(results, "upgrade: pulumi up at 1.23.6", up) is None:
        return
    stacks.stack("upgrade", config("1.29.6"))
    output: list[str] = []
    try:
        stack.preview(on_output=output.append, color="never")
        refused, detail = False, "the preview passed"
    except auto.CommandError as error:
        text = "\n".join(output) + str(error)
        refused, detail = "skips 5 minor version(s)" in text, text[-400:]
    results.check("upgrade: 1.23.6 -> 1.29.6 is refused in preview", refused, detail)
    stacks.stack("upgrade", config("1.24.6"))
    if attempt(results, "upgrade: pulumi up to 1.24.6", up) is None:
        return
    listed = {r["name"]: r["chart"] for r in json.loads(cluster.helm("list", "-A", "--output=json"))}
    results.check(
        "upgrade: both releases at 1.24.6",
        listed == {"istio-base": "base-1.24.6", "istiod": "istiod-1.24.6"},
        str(listed),
    )
    for crd in ("virtualservices.networking.istio.io", "wasmplugins.extensions.istio.io"):
        owner = crd_owner(cluster, crd)
        results.check(
            f"upgrade: {crd} owned by the base release", owner == ("istio-base", "Helm"), str(owner)
        )
    labels = cluster.get("crd", "virtualservices.networking.istio.io")["metadata"].get("labels", {})
    results.check(
        "upgrade: the CRDs are 1.24.6's",
        labels.get("helm.sh/chart") == "base-1.24.6" or labels.get("app.kubernetes.io/version") == "1.24.6",
        str(labels),
    )
    attempt(
        results,
        "upgrade: then nothing to do",
        lambda: stack.up(expect_no_changes=True, on_output=log_output, color="never"),
    )


# --- 5. the canary walkthrough -----------------------------------------------------------------


class WebhookWatch:
    """Polls the API server while an `up` runs: a tag webhook seen once must never disappear."""

    def __init__(self, cluster: Cluster, names: list[str]) -> None:
        import threading

        self.cluster, self.names = cluster, names
        self.seen: set[str] = set()
        self.gaps: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            present = set(
                n.split("/", 1)[1]
                for n in self.cluster.kubectl(
                    "get", "mutatingwebhookconfiguration", "--output=name", check=False
                ).split()
            )
            self.polls += 1
            for name in self.names:
                if name in present:
                    self.seen.add(name)
                elif name in self.seen:
                    self.gaps.append(name)
            self._stop.wait(0.2)

    def __enter__(self) -> WebhookWatch:
        self.seen = set(
            n.split("/", 1)[1]
            for n in self.cluster.kubectl("get", "mutatingwebhookconfiguration", "--output=name").split()
        )
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


CANARY_EXPECTED = {
    # step: (istiod releases, {tag: revision}, {namespace: istio.io/rev})
    0: (
        {"istiod-1-29-6"},
        {"prod-stable": "1-29-6", "default": "1-29-6"},
        {"default": "prod-stable", "shop": "prod-stable"},
    ),
    1: (
        {"istiod-1-29-6", "istiod-1-30-3"},
        {"prod-stable": "1-29-6", "default": "1-29-6"},
        {"default": "prod-stable", "shop": "prod-stable"},
    ),
    2: (
        {"istiod-1-29-6", "istiod-1-30-3"},
        {"prod-stable": "1-29-6", "prod-canary": "1-30-3", "default": "1-29-6"},
        {"default": "prod-stable", "shop": "prod-canary"},
    ),
    3: (
        {"istiod-1-29-6", "istiod-1-30-3"},
        {"prod-stable": "1-30-3", "prod-canary": "1-30-3", "default": "1-29-6"},
        {"default": "prod-stable", "shop": "prod-canary"},
    ),
    4: (
        {"istiod-1-30-3"},
        {"prod-stable": "1-30-3", "prod-canary": "1-30-3", "default": "1-30-3"},
        {"default": "prod-stable", "shop": "prod-canary"},
    ),
}
# kwok has no load balancer: a LoadBalancer gateway would keep Helm waiting until its timeout.
NO_LOAD_BALANCER = {"istio": {"gateways": {"ingress": {"serviceType": "NodePort"}}}}


def scenario_canary(results: Results, stacks: Stacks) -> None:
    # No istiod runs here to patch its injectors' caBundle, and each tag waits for that bundle
    # before it copies it (components/revision_tags.py): the fake plays that part of istiod.
    with FakeIstiod(stacks.cluster.kubeconfig, stacks.cluster.context) as fake:
        _scenario_canary(results, stacks)
    print(f"    fake istiod patched: {sorted(set(fake.patched))}; errors: {fake.errors[-3:]}", flush=True)


def _scenario_canary(results: Results, stacks: Stacks) -> None:
    cluster = stacks.cluster
    cluster.kubectl("create", "namespace", "shop", check=False)
    stack = None
    for step, (istiods, tags, routes) in CANARY_EXPECTED.items():
        with timed(f"5. canary step {step}"):
            config = stacks.config(ROOT / "examples" / "canary" / f"step-{step}.yaml", NO_LOAD_BALANCER)
            stack = current = stacks.stack("canary", config)
            watched = [f"istio-revision-tag-{t}" for t in tags]
            with WebhookWatch(cluster, watched) as watch:
                ok = attempt(
                    results,
                    f"canary {step}: pulumi up",
                    functools.partial(current.up, on_output=log_output, color="never"),
                )
            results.check(
                f"canary {step}: no tag webhook ever disappeared ({watch.polls} polls)",
                not watch.gaps,
                str(sorted(set(watch.gaps))),
            )
            if not ok:
                break
            releases = {r["name"] for r in json.loads(cluster.helm("list", "-A", "--output=json"))}
            results.check(
                f"canary {step}: istiod releases",
                {r for r in releases if r.startswith("istiod")} == istiods,
                str(releases),
            )
            actual_tags = {}
            for tag in tags:
                name = f"istio-revision-tag-{tag}"
                if cluster.exists("mutatingwebhookconfiguration", name):
                    webhook = cluster.get("mutatingwebhookconfiguration", name)
                    actual_tags[tag] = webhook["metadata"].get("labels", {}).get("istio.io/rev")
                    service = webhook["webhooks"][0]["clientConfig"].get("service", {}).get("name")
                    results.check(
                        f"canary {step}: tag {tag} points at istiod-{tags[tag]}",
                        service == f"istiod-{tags[tag]}",
                        str(service),
                    )
            results.check(f"canary {step}: tags", actual_tags == tags, str(actual_tags))
            labels = {ns: cluster.get("namespace", ns)["metadata"].get("labels", {}) for ns in routes}
            results.check(
                f"canary {step}: namespaces on their tags",
                all(
                    labels[ns].get("istio.io/rev") == tag and "istio-injection" not in labels[ns]
                    for ns, tag in routes.items()
                ),
                str(labels),
            )
    if stack is not None:
        with timed("5. canary: a destroy of the protected stack deletes nothing"):
            releases_before = {r["name"] for r in json.loads(cluster.helm("list", "-A", "--output=json"))}
            try:
                stack.destroy(on_output=log_output, color="never")
                refused = False
            except auto.CommandError as error:
                refused = "protect" in str(error)
            releases_after = {r["name"] for r in json.loads(cluster.helm("list", "-A", "--output=json"))}
            results.check("canary: pulumi destroy of a protected stack is refused", refused)
            results.check(
                "canary: ... and no release was deleted",
                releases_after == releases_before,
                f"gone: {sorted(releases_before - releases_after)}",
            )
            results.check(
                "canary: ... and istiod's validating webhook stays with its service",
                cluster.exists("validatingwebhookconfiguration", "istiod-default-validator")
                and cluster.exists("service", "istiod-1-30-3", "--namespace", ISTIO_NAMESPACE),
            )
        with timed("5. canary: unprotect (pulumi state unprotect --all) and destroy"):
            stacks.cleanup(results, stack)


# --- 6. the prod stack ----------------------------------------------------------------------------

POLICY_ANALYZER = str(ROOT / "hack" / "policy-analyzer")


def scenario_prod(results: Results, stacks: Stacks) -> None:
    with timed("6. prod: preview with no manual step, under the policy pack"):
        stack = stacks.stack("prod", stacks.config(ROOT / "Pulumi.prod.yaml"))
        attempt(
            results,
            "prod: pulumi preview, no grafanaAdminPassword set",
            lambda: stack.preview(on_output=log_output, color="never"),
        )
        attempt(
            results,
            "prod: pulumi preview --policy-pack passes",
            lambda: stack.preview(policy_packs=[POLICY_ANALYZER], on_output=log_output, color="never"),
        )
        exposed = {"dashboards": {"kiali": {"type": "NodePort", "nodePort": 30007, "metricsNodePort": 30008}}}
        stack = stacks.stack("prod", stacks.config(ROOT / "Pulumi.prod.yaml", exposed))
        output: list[str] = []
        try:
            stack.preview(policy_packs=[POLICY_ANALYZER], on_output=output.append, color="never")
            refused, detail = False, "the preview passed"
        except auto.CommandError as error:
            text = "\n".join(output) + str(error)
            # The rule's id, as the CLI prints a mandatory violation, and its message.
            refused = "[mandatory]  production-dashboards-internal" in text and (
                "dashboard Service istio-system/kiali has type NodePort" in text
            )
            detail = text[-600:]
        results.check("prod: a NodePort Kiali is refused by the policy engine", refused, detail)
        stack.workspace.remove_stack("prod")


# --- 7. faults ------------------------------------------------------------------------------------


# The faults stack is the dev stack with STRICT mTLS, so that the mesh-wide policy and the namespace's
# PERMISSIVE hold around its first restart (components/injection.py) run on the real engine too.
FAULTS = {"security": {"mtls": "STRICT"}}


def scenario_faults(results: Results, stacks: Stacks) -> None:
    with stacks.deployed(results, "faults", stacks.config(ROOT / "Pulumi.dev.yaml", FAULTS)) as stack:
        _scenario_faults(results, stacks, stack)


def _scenario_faults(results: Results, stacks: Stacks, stack: auto.Stack) -> None:
    cluster = stacks.cluster
    with timed("7. faults: a change made by hand"):
        if (
            attempt(results, "faults: pulumi up", lambda: stack.up(on_output=log_output, color="never"))
            is None
        ):
            return
        policy = cluster.get("peerauthentication", "default", "--namespace", ISTIO_NAMESPACE)
        results.check(
            "faults: the mesh-wide PeerAuthentication is STRICT once default has restarted",
            policy.get("spec") == {"mtls": {"mode": "STRICT"}},
            str(policy.get("spec")),
        )
        results.check(
            "faults: ... and default's PERMISSIVE hold around its restart is gone",
            not cluster.exists("peerauthentication", "istio-mesh-sidecar-rollout", "--namespace", "default"),
        )
        cluster.kubectl("label", "namespace", "default", "istio-injection-")
        cluster.kubectl(
            "patch",
            "service",
            "kiali",
            "--namespace",
            ISTIO_NAMESPACE,
            "--type=json",
            "--patch",
            '[{"op": "replace", "path": "/spec/ports/0/nodePort", "value": 30017}]',
        )
        drift = []
        try:
            stack.refresh(expect_no_changes=True, on_output=drift.append, color="never")
            reported = False
        except auto.CommandError:
            reported = True
        results.check(
            "faults: pulumi refresh reports the hand-made changes", reported, "\n".join(drift[-10:])
        )
        attempt(
            results, "faults: pulumi up repairs them", lambda: stack.up(on_output=log_output, color="never")
        )
        labels = cluster.get("namespace", "default")["metadata"].get("labels", {})
        kiali = cluster.get("service", "kiali", "--namespace", ISTIO_NAMESPACE)
        results.check("faults: the label is back", labels.get("istio-injection") == "enabled", str(labels))
        results.check(
            "faults: kiali's node port is back", node_ports(kiali).get(20001) == 30007, str(node_ports(kiali))
        )
    with timed("7. faults: the API server stops in the middle of an up"):
        _outage_in_the_middle_of_an_up(results, stacks, stack)


def _outage_in_the_middle_of_an_up(results: Results, stacks: Stacks, stack: auto.Stack) -> None:
    """Stop the API server while Helm waits for istiod's upgrade, then start it and converge.

    kwok's pods are Ready at once, so a change is given that cannot finish: istiod's new pods ask
    for a node that doesn't exist, so the Release's upgrade waits (Helm's `--wait`) until the API
    server is stopped under it. Helm's waiter retries a refused connection 30 times, 2 s apart
    (helm v3.18.6 pkg/kube/wait.go, `isRetryableError`), then the upgrade fails with it.
    """
    cluster = stacks.cluster
    kwokctl = [os.path.join(os.environ.get("ISTIO_MESH_TOOLCHAIN_BIN", ""), "kwokctl")]
    # hack/cluster.sh keeps the cluster in $KWOK_WORKDIR/clusters/<name>/, beside its kubeconfig.
    kubeconfig = Path(cluster.kubeconfig)
    name = ["--name", kubeconfig.parent.name]
    os.environ["KWOK_WORKDIR"] = str(kubeconfig.parents[2])
    stuck = {"istio": {"values": {"pilot": {"nodeSelector": {"istio-mesh.e2e/no-such-node": "true"}}}}}
    stacks.stack("faults", stacks.config(ROOT / "Pulumi.dev.yaml", merged(FAULTS, stuck)))
    upgrading = threading.Event()

    def watch(event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if (
            pre is not None
            and pre.metadata.urn.endswith("::istiod")
            and pre.metadata.op == auto.OpType.UPDATE
        ):
            upgrading.set()

    stopped: list[float] = []

    def stop_when_upgrading() -> None:
        if upgrading.wait(timeout=STEP_TIMEOUT_SECONDS):
            time.sleep(10)  # Helm has applied the new Deployment and is waiting for its pods
            subprocess.run([*kwokctl, "stop", "cluster", *name], capture_output=True, timeout=120, check=True)
            stopped.append(time.monotonic())

    stopper = threading.Thread(target=stop_when_upgrading, daemon=True)
    stopper.start()
    output: list[str] = []
    try:
        stack.up(on_output=output.append, on_event=watch, color="never")
        failed, detail = False, "the up succeeded"
    except auto.CommandError as error:
        text = "\n".join(output) + str(error)
        failed = bool(stopped) and "connection refused" in text and "istiod" in text
        detail = text[-600:]
    stopper.join(timeout=1)
    results.check(
        "faults: an up fails with the connection error when the API server stops in its middle",
        failed,
        detail,
    )
    for attempt_number in range(3):
        started = subprocess.run(
            [*kwokctl, "start", "cluster", *name], capture_output=True, text=True, timeout=300
        )
        if started.returncode == 0:
            break
        print(f"    kwokctl start, try {attempt_number + 1}: {started.stderr.strip()[-300:]}", flush=True)
        time.sleep(5)
    cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")
    # After the restart kwok takes a while (up to minutes on a busy machine) to act for its nodes
    # again: pods stay Pending or Terminating meanwhile. The application's pods are waited for, so
    # that the program's later rollouts are timed against the program, not against kwok's catch-up.
    settled = time.monotonic()
    for _ in range(6):  # each wait within the 120 s that Cluster.kubectl allows a call
        try:
            cluster.kubectl(
                "wait", "--for=condition=Ready", "pod", "--all", "--namespace", "default", "--timeout=100s"
            )
            break
        except RuntimeError:  # timed out: kwok still catching up
            continue
    print(f"    kwok settled after the restart in {time.monotonic() - settled:.0f} s", flush=True)
    status = json.loads(cluster.helm("status", "istiod", "--namespace", ISTIO_NAMESPACE, "--output", "json"))
    print(f"    istiod's release after the outage: {status['info']['status']}", flush=True)
    # Back to the stack's own config: the next up must converge from whatever the outage left.
    stacks.stack("faults", stacks.config(ROOT / "Pulumi.dev.yaml", FAULTS))
    attempt(
        results,
        "faults: pulumi refresh after the outage",
        lambda: stack.refresh(clear_pending_creates=True, on_output=log_output, color="never"),
    )
    attempt(
        results, "faults: the next pulumi up converges", lambda: stack.up(on_output=log_output, color="never")
    )
    status = json.loads(cluster.helm("status", "istiod", "--namespace", ISTIO_NAMESPACE, "--output", "json"))
    results.check(
        "faults: istiod's release is deployed again",
        status["info"]["status"] == "deployed",
        str(status["info"]),
    )
    attempt(
        results,
        "faults: then nothing to do",
        lambda: stack.up(expect_no_changes=True, on_output=log_output, color="never"),
    )


# In this order: Istio's CRDs stay after a destroy, and a later stack may only move them forward
# (the API server refuses to drop a stored version), so the 1.20.8 stacks come first.
# --- 9. ambient mode and the Gateway API ----------------------------------------------------------

AMBIENT_EXAMPLE = ROOT / "examples" / "ambient" / "Pulumi.ambient.yaml"
# `shop`, the example's ambient namespace, with a workload of its own.
SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec: {containers: [{name: cart, image: registry.invalid/cart:1}]}
"""
# The example, with `default` in sidecar mode beside `shop` (then moved to ambient), and unprotected so
# that the scenario's destroy runs to the end (protection is the prod scenario's subject).
AMBIENT_SIDECAR_DEFAULT = {"injection": {"namespaces": ["default"]}, "protect": False}
AMBIENT_ALL = {"injection": {"namespaces": None, "ambient": ["default", "shop"]}, "protect": False}
AMBIENT_DAEMONSETS = ("istio-cni-node", "ztunnel")
# A platform team's older Gateway API, applied by hand before the stack came.
HAND_APPLIED_GATEWAY_API = "v1.4.1"
HAND_MANAGER = "platform-team"
GATEWAY_API_MARKER = (MANAGED_ANNOTATION, MANAGED_VALUE)


def scenario_ambient(results: Results, stacks: Stacks) -> None:
    cluster = stacks.cluster
    cluster.kubectl("apply", "--filename=-", stdin=APPLICATION)
    cluster.kubectl("apply", "--filename=-", stdin=SHOP)
    example = yaml.safe_load(AMBIENT_EXAMPLE.read_text())["config"]
    pinned = example.get(f"{PROJECT}:gatewayApi", {}).get("version") or "v1.5.1"
    with stacks.deployed(
        results, "ambient", stacks.config(AMBIENT_EXAMPLE, AMBIENT_SIDECAR_DEFAULT)
    ) as stack:
        _scenario_ambient(results, stacks, stack, pinned)


def _scenario_ambient(results: Results, stacks: Stacks, stack: auto.Stack, pinned: str) -> None:
    cluster = stacks.cluster
    with timed("9a. ambient: older Gateway API CRDs applied by hand are refused"):
        cluster.kubectl(
            "apply",
            "--server-side",
            f"--field-manager={HAND_MANAGER}",
            "--filename=-",
            stdin=gateway_api_manifest(HAND_APPLIED_GATEWAY_API),
        )
        output: list[str] = []
        try:
            stack.up(on_output=output.append, color="never")
            refused, detail = False, "the up succeeded"
        except auto.CommandError as error:
            text = "\n".join(output) + str(error)
            refused = HAND_APPLIED_GATEWAY_API in text and pinned in text and "gatewayApi.takeOver" in text
            detail = text[-800:]
            # The refusal as a user reads it, into the log.
            print(text[text.find("has a problem") :][:1500], flush=True)
        results.check(
            "ambient: an older hand-applied Gateway API is refused, naming both versions", refused, detail
        )
        results.check(
            "ambient: ... before anything changed",
            not json.loads(cluster.helm("list", "--all-namespaces", "--output=json"))
            and {_bundle_version(c) for c in gateway_api_crds(cluster).values()}
            == {HAND_APPLIED_GATEWAY_API},
        )
    take_over = merged(AMBIENT_SIDECAR_DEFAULT, {"gatewayApi": {"takeOver": True}})
    stack = stacks.stack("ambient", stacks.config(AMBIENT_EXAMPLE, take_over))
    with timed("9b. ambient: pulumi up with gatewayApi.takeOver"):
        if (
            attempt(results, "ambient: pulumi up", lambda: stack.up(on_output=log_output, color="never"))
            is None
        ):
            return
        check_ambient(results, cluster, pinned, ambient=["shop"], sidecar=["default"])
        results.check(
            "ambient: shop's workloads were not restarted to join",
            restarted_at(cluster, "deployment", "cart", "shop") is None,
        )
        results.check(
            "ambient: default's workloads were restarted for their sidecars",
            restarted_at(cluster, "deployment", "web") is not None,
        )
    with timed("9c. ambient: nothing to do the second time"):
        expect_no_changes(results, "ambient", stack)
    with timed("9d. ambient: default moves from sidecars to ambient in one up"):
        before = restarted_at(cluster, "deployment", "web")
        stack = stacks.stack(
            "ambient", stacks.config(AMBIENT_EXAMPLE, merged(AMBIENT_ALL, {"gatewayApi": {"takeOver": True}}))
        )
        preview = preview_ops(stack)
        results.check(
            "ambient: the move previews as the label update and a restart, nothing replaced",
            set(preview.values()) <= {"same", "update"}
            and any(urn.endswith("::default-injection") and op == "update" for urn, op in preview.items())
            and any(urn.endswith("::default-restart") and op == "update" for urn, op in preview.items()),
            str({u.rsplit("::", 1)[-1]: o for u, o in preview.items() if o != "same"}),
        )
        if attempt(
            results, "ambient: pulumi up (the move)", lambda: stack.up(on_output=log_output, color="never")
        ):
            check_ambient(results, cluster, pinned, ambient=["default", "shop"], sidecar=[])
            results.check(
                "ambient: default's workloads restarted once more, to lose their sidecars",
                restarted_at(cluster, "deployment", "web") not in (None, before),
            )
            results.check(
                "ambient: shop's workloads still never restarted",
                restarted_at(cluster, "deployment", "cart", "shop") is None,
            )
        expect_no_changes(results, "ambient (moved)", stack)
    with timed("9e. ambient: destroy keeps the Gateway API CRDs"):
        if attempt(
            results, "ambient: pulumi destroy", lambda: stack.destroy(on_output=log_output, color="never")
        ):
            crds = gateway_api_crds(cluster)
            results.check(
                "ambient: the Gateway API CRDs stay after destroy, at the pinned version",
                bool(crds) and {_bundle_version(c) for c in crds.values()} == {pinned},
                str(sorted(crds)),
            )
            for namespace in ("default", "shop"):
                labels = cluster.get("namespace", namespace)["metadata"].get("labels", {})
                results.check(
                    f"ambient: {namespace} lost its mesh labels",
                    not {k for k in labels if k.startswith("istio.io/") or k == "istio-injection"},
                    str(labels),
                )
            results.check(
                "ambient: no helm release remains",
                not json.loads(cluster.helm("list", "--all-namespaces", "--output=json")),
            )
    with timed("9f. ambient: the same Gateway API release applied by hand is adopted without takeOver"):
        remove_gateway_api(cluster)
        cluster.kubectl(
            "apply",
            "--server-side",
            f"--field-manager={HAND_MANAGER}",
            "--filename=-",
            stdin=gateway_api_manifest(pinned),
        )
        stack = stacks.stack("ambient", stacks.config(AMBIENT_EXAMPLE, AMBIENT_SIDECAR_DEFAULT))
        if attempt(
            results,
            "ambient: pulumi up over a hand-applied " + pinned,
            lambda: stack.up(on_output=log_output, color="never"),
        ):
            crds = gateway_api_crds(cluster)
            marked = {
                name
                for name, crd in crds.items()
                if crd["metadata"].get("annotations", {}).get(GATEWAY_API_MARKER[0]) == GATEWAY_API_MARKER[1]
            }
            shared = {
                name
                for name, crd in crds.items()
                if {HAND_MANAGER}
                < {m.get("manager") for m in crd["metadata"].get("managedFields", [])} - {None}
            }
            results.check(
                "ambient: ... every CRD adopted (the stack's marker, the platform team's fields kept beside)",
                bool(crds) and marked == set(crds) == shared,
                f"marked {sorted(marked)}, shared {sorted(shared)}",
            )
            expect_no_changes(results, "ambient (adopted)", stack)
        try:
            cluster.kubectl(
                "apply",
                "--server-side",
                "--force-conflicts",
                f"--field-manager={HAND_MANAGER}",
                "--filename=-",
                stdin=gateway_api_manifest(HAND_APPLIED_GATEWAY_API),
            )
            refusal = ""
        except RuntimeError as error:
            refusal = str(error)
        # ValidatingAdmissionPolicy admission stays on here (only the webhook plugins are off), so the
        # release's own safe-upgrades policy is enforced by the API server as on a real cluster.
        results.check(
            f"ambient: the API server refuses a hand downgrade to {HAND_APPLIED_GATEWAY_API} (safe-upgrades policy)",
            GATEWAY_API_POLICY in refusal,
            refusal[-400:] or "the downgrade was applied",
        )


def _bundle_version(crd: Mapping[str, Any]) -> str | None:
    return crd["metadata"].get("annotations", {}).get("gateway.networking.k8s.io/bundle-version")


def check_ambient(
    results: Results, cluster: Cluster, pinned: str, *, ambient: list[str], sidecar: list[str]
) -> None:
    """What the ambient example must leave on the cluster: the node agents on every node, the labels,
    the waypoint and the Gateway API CRDs, served at the pinned release."""
    nodes = len(cluster.get("node")["items"])
    for name in AMBIENT_DAEMONSETS:
        status = cluster.get("daemonset", name, "--namespace", ISTIO_NAMESPACE).get("status", {})
        results.check(
            f"ambient: DaemonSet {name} is available on all {nodes} kwok nodes",
            status.get("desiredNumberScheduled") == nodes and status.get("numberAvailable") == nodes,
            json.dumps(status),
        )
    releases = {
        r["name"]: r
        for r in json.loads(cluster.helm("list", "--namespace", ISTIO_NAMESPACE, "--output=json"))
    }
    results.check(
        "ambient: istio-base, istiod, istio-cni and ztunnel are deployed releases",
        all(
            releases.get(n, {}).get("status") == "deployed"
            for n in ("istio-base", "istiod", "istio-cni", "ztunnel")
        ),
        str(sorted(releases)),
    )
    for namespace in ambient:
        labels = cluster.get("namespace", namespace)["metadata"].get("labels", {})
        expected = {"istio.io/dataplane-mode": "ambient"}
        if namespace == "shop":
            expected["istio.io/use-waypoint"] = "waypoint"
        results.check(
            f"ambient: {namespace} is labelled for ambient (and never for injection)",
            all(labels.get(k) == v for k, v in expected.items())
            and "istio-injection" not in labels
            and "istio.io/rev" not in labels,
            str(labels),
        )
    for namespace in sidecar:
        labels = cluster.get("namespace", namespace)["metadata"].get("labels", {})
        results.check(
            f"ambient: {namespace} keeps its sidecar injection beside the ambient namespaces",
            labels.get("istio-injection") == "enabled" and "istio.io/dataplane-mode" not in labels,
            str(labels),
        )
    waypoint = cluster.get("gateway.gateway.networking.k8s.io", "waypoint", "--namespace", "shop")
    results.check(
        "ambient: shop's waypoint is the Gateway istioctl waypoint apply writes",
        waypoint["spec"].get("gatewayClassName") == "istio-waypoint"
        and [(lst.get("name"), lst.get("port"), lst.get("protocol")) for lst in waypoint["spec"]["listeners"]]
        == [("mesh", 15008, "HBONE")]
        and waypoint["metadata"].get("labels", {}).get("istio.io/waypoint-for") == "service",
        json.dumps(waypoint["spec"]),
    )
    crds = gateway_api_crds(cluster)
    served = {
        name
        for name, crd in crds.items()
        if any(
            c["type"] == "Established" and c["status"] == "True"
            for c in crd.get("status", {}).get("conditions", [])
        )
    }
    results.check(
        f"ambient: every Gateway API CRD is served at {pinned}",
        bool(crds) and served == set(crds) and {_bundle_version(c) for c in crds.values()} == {pinned},
        str({n: _bundle_version(c) for n, c in crds.items()}),
    )


SCENARIOS: dict[str, Callable[[Results, Stacks], None]] = {
    "adopt": scenario_adopt,
    "dev": scenario_dev,
    "faults": scenario_faults,
    "meshplan": scenario_meshplan,
    "upgrade": scenario_upgrade,
    "canary": scenario_canary,
    "prod": scenario_prod,
    "ambient": scenario_ambient,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--only", nargs="*", help="run only these scenarios (default: all, in order)")
    args = parser.parse_args()
    cluster = Cluster(os.environ["KUBECONFIG"], os.environ["CONTEXT"])
    bin_dir = os.environ.get("ISTIO_MESH_TOOLCHAIN_BIN")
    if bin_dir:
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    os.environ.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    os.environ.setdefault("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    results = Results()
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="istio-mesh-e2e-"))
    try:
        stacks = Stacks(cluster, os.environ["CHARTS"], scratch)
        remove_gateway_api(cluster)  # left by an earlier run that was killed: every scenario starts without
        for name, scenario in SCENARIOS.items():
            if args.only and name not in args.only:
                continue
            try:
                scenario(results, stacks)
            except Exception:
                results.check(f"{name}: ran to the end", False, traceback.format_exc(limit=3))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"scenario took {time.monotonic() - started:.0f} s", flush=True)
    print(results.summary(), flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
