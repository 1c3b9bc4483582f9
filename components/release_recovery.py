"""A Helm release that an interrupted `up` left pending is rolled back before its next upgrade.

Helm writes a release's new revision as `pending-install` or `pending-upgrade` before it touches the
cluster, and as `deployed` or `failed` when it is done. When the API server goes away in between (an
outage, a network cut, a killed `pulumi up`), the revision stays pending, and Helm refuses every
later upgrade of that release, the provider's too: "another operation (install/upgrade/rollback) is
in progress" (helm v3.18.6 `pkg/action/upgrade.go`, `errPending`; the kubernetes provider v4.25.0
has no way around it). The local cluster showed exactly that (README, "The real engine": faults).
Helm's way out is a rollback to the revision before the pending one, which Helm allows while
a revision is pending (`pkg/action/rollback.go`), or, for a first install that never finished, an
uninstall (https://helm.sh/docs/helm/helm_rollback/, https://helm.sh/docs/helm/helm_uninstall/).

`ReleaseRecovery` is a Pulumi dynamic resource beside each Release, which the Release waits for. Its
diff asks Helm for the release's newest revision (`helm history --max 1`): a pending one is a change,
so `pulumi preview` shows it, and `pulumi up` recovers the release before upgrading it. Otherwise it
has nothing to do, so a second `up` is a no-op.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pulumi
import pulumi.dynamic

from components.cluster import helm
from components.config import ClusterConfig
from components.local_command import run_bash

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
HELM_TIMEOUT_SECONDS = 300
# The inputs a diff compares; the serialized provider (`__provider`) is not one of them.
FIELDS = ("release", "namespace", "history", "rollback", "uninstall")


class RecoveryError(Exception):
    """Helm could not tell the release's state, or could not recover it."""


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return run_bash(script, HELM_TIMEOUT_SECONDS)


def pending_status(props: dict[str, Any]) -> str | None:
    """The release's newest revision's status when it is pending; None otherwise, or with no release."""
    result = _run(props["history"])
    if result.returncode != 0:
        if "release: not found" in result.stderr:
            return None  # not installed yet: nothing to recover
        raise RecoveryError(f"{props['history']}: {result.stderr.strip()}")
    revisions = json.loads(result.stdout or "[]")
    status = revisions[-1].get("status") if revisions else None
    return status if status in PENDING else None


def recover(props: dict[str, Any]) -> None:
    status = pending_status(props)
    if status is None:
        return
    # A first install has no revision to go back to: uninstall it, and the Release installs again.
    script = props["uninstall"] if status == "pending-install" else props["rollback"]
    result = _run(script)
    if result.returncode != 0:
        raise RecoveryError(
            f"release {props['namespace']}/{props['release']} is {status} (an earlier operation was "
            f"interrupted) and {script} failed: {(result.stdout + result.stderr).strip()[-2000:]}"
        )
    pulumi.log.info(f"release {props['namespace']}/{props['release']} was {status}: {script}")


class ReleaseRecoveryProvider(pulumi.dynamic.ResourceProvider):
    """Recovers a pending release on create and on update; see the module docstring."""

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        recover(props)
        return pulumi.dynamic.CreateResult(
            id_=f"{props['namespace']}/{props['release']}", outs=_recorded(props)
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = any(olds.get(f) != news.get(f) for f in FIELDS) or pending_status(news) is not None
        return pulumi.dynamic.DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        recover(news)
        return pulumi.dynamic.UpdateResult(outs=_recorded(news))


def _recorded(props: dict[str, Any]) -> dict[str, Any]:
    return {field: props[field] for field in FIELDS}


class ReleaseRecovery(pulumi.dynamic.Resource, module="istio-mesh", name="ReleaseRecovery"):
    """Helm's way out of a pending release, before the release's next upgrade.

    Its type token is `pulumi-python:dynamic/istio-mesh:ReleaseRecovery`.
    """

    def __init__(
        self,
        release: str,
        *,
        namespace: str,
        cluster: ClusterConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        where = ("--namespace", namespace)
        props = {
            "release": release,
            "namespace": namespace,
            "history": helm(cluster, "history", release, *where, "--max", "1", "--output", "json"),
            # Back to the revision before the pending one, which is the last one that finished.
            "rollback": helm(cluster, "rollback", release, *where),
            "uninstall": helm(cluster, "uninstall", release, *where, "--wait"),
        }
        super().__init__(ReleaseRecoveryProvider(), f"{release}-recovery", props, opts)
