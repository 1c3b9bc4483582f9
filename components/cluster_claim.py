"""One cluster, one stack: the first stack to deploy claims the cluster; another stack's `up` stops.

Two stacks against the same cluster would fight over one istio-system, one set of CRDs and one
injector: each `up` undoes the other's. `meshplan check --all` refuses two stack files that name the
same cluster (meshplan/fleet.py, `one-cluster-one-stack`), but a stack file in another repository,
or a second stack created from the same file by hand, is out of its sight. So the cluster itself
records its owner: a ConfigMap `kube-system/istio-mesh-owner` whose `stack` is
`<project>/<stack>`, written by the first stack's `up` and removed by its `destroy`.

`ClusterClaim` is a Pulumi dynamic resource that owns that ConfigMap. Its Check reads the ConfigMap
(kubectl, naming the stack's context) and refuses when another stack owns the cluster, naming that
stack: the engine runs Check when the claim is registered, first of everything in the mesh, so
`pulumi preview` and `pulumi up` stop before anything changes. Its inputs don't change from one
`up` to the next, so a second `up` is a no-op. `kube-system` is used because it exists in every
cluster and isn't the program's: the claim has to be written before istio-system is.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pulumi
import pulumi.dynamic

from components.cluster import kubectl
from components.config import ClusterConfig
from components.local_command import run_bash

CLAIM_NAMESPACE = "kube-system"
CLAIM_NAME = "istio-mesh-owner"
OWNER_KEY = "stack"
KUBECTL_TIMEOUT_SECONDS = 120
FIELDS = ("owner", "read", "write", "release")


class ClaimError(Exception):
    """The claim could not be read, written or released."""


def _run(script: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_bash(script, KUBECTL_TIMEOUT_SECONDS, stdin=stdin)


def current_owner(props: dict[str, Any]) -> str | None:
    """The stack that owns the cluster, or None when no stack does."""
    result = _run(props["read"])
    if result.returncode != 0:
        raise ClaimError(f"{props['read']}: {result.stderr.strip()}")
    if not result.stdout.strip():
        return None  # --ignore-not-found: no claim
    data = json.loads(result.stdout).get("data") or {}
    return str(data.get(OWNER_KEY, ""))


def refusal(owner: str, claimed_by: str) -> str:
    return (
        f"this cluster is owned by stack {claimed_by} (ConfigMap {CLAIM_NAMESPACE}/{CLAIM_NAME}), "
        f"not {owner}: two stacks on one cluster would undo each other's changes. Deploy this stack "
        f"to another cluster, or `pulumi destroy` {claimed_by} first"
    )


def manifest(owner: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": CLAIM_NAME,
                "namespace": CLAIM_NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "istio-mesh"},
            },
            "data": {OWNER_KEY: owner},
        },
        sort_keys=True,
    )


class ClusterClaimProvider(pulumi.dynamic.ResourceProvider):
    """Refuses in Check when another stack owns the cluster; writes and removes the claim."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        claimed_by = current_owner(news)
        failures = []
        # `olds` are this claim's inputs in the stack's state: a renamed stack still owns its cluster.
        if claimed_by is not None and claimed_by not in (news["owner"], (olds or {}).get("owner")):
            failures.append(pulumi.dynamic.CheckFailure("owner", refusal(news["owner"], claimed_by)))
        return pulumi.dynamic.CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        self._write(props)
        return pulumi.dynamic.CreateResult(id_=f"{CLAIM_NAMESPACE}/{CLAIM_NAME}", outs=_recorded(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = any(olds.get(f) != news.get(f) for f in FIELDS)
        return pulumi.dynamic.DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        self._write(news, previous=olds.get("owner"))
        return pulumi.dynamic.UpdateResult(outs=_recorded(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        claimed_by = current_owner(props)
        if claimed_by is None:
            return
        if claimed_by != props["owner"]:
            raise ClaimError(refusal(props["owner"], claimed_by))
        result = _run(props["release"])
        if result.returncode != 0:
            raise ClaimError(f"{props['release']}: {result.stderr.strip()}")

    @staticmethod
    def _write(props: dict[str, Any], previous: str | None = None) -> None:
        # Checked again here: another stack may have claimed the cluster since this one's Check.
        claimed_by = current_owner(props)
        if claimed_by is not None and claimed_by not in (props["owner"], previous):
            raise ClaimError(refusal(props["owner"], claimed_by))
        result = _run(props["write"], stdin=manifest(props["owner"]))
        if result.returncode != 0:
            raise ClaimError(f"{props['write']}: {result.stderr.strip()}")


def _recorded(props: dict[str, Any]) -> dict[str, Any]:
    return {field: props[field] for field in FIELDS}


class ClusterClaim(pulumi.dynamic.Resource, module="istio-mesh", name="ClusterClaim"):
    """The stack's claim on its cluster (`pulumi-python:dynamic/istio-mesh:ClusterClaim`)."""

    def __init__(
        self, name: str, *, owner: str, cluster: ClusterConfig, opts: pulumi.ResourceOptions | None = None
    ):
        where = ("--namespace", CLAIM_NAMESPACE)
        props = {
            "owner": owner,
            "read": kubectl(
                cluster, *where, "get", "configmap", CLAIM_NAME, "--ignore-not-found", "--output=json"
            ),
            # Server-side apply under its own field manager: the claim's one writer.
            "write": kubectl(
                cluster, "apply", "--server-side", "--field-manager=istio-mesh-claim", "--filename=-"
            ),
            "release": kubectl(cluster, *where, "delete", "configmap", CLAIM_NAME, "--ignore-not-found"),
        }
        super().__init__(ClusterClaimProvider(), name, props, opts)
