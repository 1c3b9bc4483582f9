"""Sidecar injection: label the application namespaces, then restart their workloads."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import kubectl
from components.config import ClusterConfig, InjectionConfig, IstioConfig, parse_version
from components.local_command import Command, restart_workloads

INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
# Each workload's rollout gets this long; the whole restart of a namespace gets the command's.
ROLLOUT_TIMEOUT_SECONDS = 300
COMMAND_TIMEOUT_SECONDS = 1200

# The namespace-wide PeerAuthentication that keeps a namespace PERMISSIVE while its workloads roll
# onto (or off) sidecars under a STRICT mesh: created and deleted by the one script that restarts
# them (`permissive_during`), never left behind by a restart that succeeds.
ROLLOUT_POLICY = "istio-mesh-sidecar-rollout"
ROLLOUT_POLICY_MANAGER = "istio-mesh"
PEER_AUTHENTICATIONS = "peerauthentications.security.istio.io"


def peer_authentication_api_version(istio: IstioConfig) -> str:
    """security.istio.io/v1 is served from 1.22 (https://istio.io/latest/news/releases/1.22.x/announcing-1.22/);
    older base charts serve only v1beta1 (tests/test_oracle_charts.py holds this to the real CRDs)."""
    return (
        "security.istio.io/v1"
        if parse_version(istio.crd_version) >= (1, 22, 0)
        else "security.istio.io/v1beta1"
    )


def permissive_during(cluster: ClusterConfig, namespace: str, api_version: str, script: str) -> str:
    """Run `script` (a restart) with `namespace` held at PERMISSIVE mTLS, then drop that hold.

    Under a STRICT mesh, a pod that gets its sidecar refuses plaintext at once, while the pods not yet
    restarted still send it: a namespace-wide PERMISSIVE PeerAuthentication overrides the mesh-wide
    policy for that namespace (https://istio.io/latest/docs/concepts/security/#peer-authentication),
    the per-namespace step of Istio's migration (https://istio.io/latest/docs/tasks/security/authentication/mtls-migration/).
    It is deleted only after every rollout finished; a failed restart leaves it (the namespace stays
    PERMISSIVE, Istio's default) until the retry succeeds. If the namespace already has a
    namespace-wide policy of its own, istiod keeps the oldest one (istio/istio
    `pilot/pkg/model/authentication.go`, `addPeerAuthentication`), so the application's applies.
    """
    policy = {
        "apiVersion": api_version,
        "kind": "PeerAuthentication",
        "metadata": {"name": ROLLOUT_POLICY, "namespace": namespace},
        "spec": {"mtls": {"mode": "PERMISSIVE"}},
    }
    apply = kubectl(
        cluster,
        "--namespace",
        namespace,
        "apply",
        "--server-side",
        "--field-manager",
        ROLLOUT_POLICY_MANAGER,
        "-f",
        "-",
    )
    delete = kubectl(
        cluster,
        "--namespace",
        namespace,
        "delete",
        PEER_AUTHENTICATIONS,
        ROLLOUT_POLICY,
        "--ignore-not-found",
    )
    manifest = shlex.quote(json.dumps(policy, sort_keys=True))
    return f"set -eo pipefail; {apply} <<< {manifest}; {script}; {delete}"


class Injection(pulumi.ComponentResource):
    """Label each namespace for injection, and restart its workloads so running pods get sidecars.

    With `restartWorkloads`, every namespace gets two Commands. `<ns>-restart` runs after the label
    is applied, and again whenever the proxy that injects the namespace changes. `<ns>-uninject`
    does nothing until it is deleted: the label depends on it, so on a destroy (or when the
    namespace leaves the list) the label goes first, then its delete restarts the workloads, which
    come back without sidecars instead of running proxies against a deleted istiod. It waits for
    the injector too, so istiod is deleted only after that restart.

    A namespace listed plainly gets `istio-injection=enabled`; one routed to a tag gets
    `istio.io/rev=<tag>` and never also `istio-injection`, which would take precedence over it.

    With `mtls` STRICT, the first restart of a namespace (the create of `<ns>-restart`) and the
    restart that takes its sidecars away (the delete of `<ns>-uninject`) run with the namespace held
    at PERMISSIVE (`permissive_during`): the pods still to be restarted speak plaintext to the ones
    already restarted. A restart for a new proxy (an update) needs no hold: every pod has a sidecar.
    """

    def __init__(
        self,
        name: str,
        injection: InjectionConfig,
        *,
        cluster: ClusterConfig,
        istio: IstioConfig,
        injector: Callable[[str | None], pulumi.Resource],
        mtls: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("istio-mesh:index:Injection", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.labels: list[k8s.core.v1.NamespacePatch] = []
        self.restarts: list[Command] = []
        self.uninjects: list[Command] = []
        for namespace in injection.namespaces:
            target = injection.routes.get(namespace)
            labels = {REVISION_LABEL: target} if target else {INJECTION_LABEL: "enabled"}
            restart = restart_workloads(cluster, namespace, timeout=ROLLOUT_TIMEOUT_SECONDS)
            # The restarts that give the pods sidecars (the first) or take them away (uninject): one pod
            # at a time, so under STRICT the namespace is held at PERMISSIVE meanwhile.
            sidecar_change = restart
            if mtls == "STRICT":
                sidecar_change = permissive_during(
                    cluster, namespace, peer_authentication_api_version(istio), restart
                )
            label_needs = [injector(target)]
            if injection.restart_workloads:
                uninject = Command(
                    f"{namespace}-uninject",
                    delete=sidecar_change,
                    timeout=COMMAND_TIMEOUT_SECONDS,
                    opts=pulumi.ResourceOptions.merge(
                        child, pulumi.ResourceOptions(depends_on=[injector(target)])
                    ),
                )
                self.uninjects.append(uninject)
                label_needs.append(uninject)
            # The application namespaces belong to the applications: a server-side-apply patch owns
            # just this label, and destroying it removes only the label. Switching a namespace from
            # one label to the other drops the old one, since this patch no longer applies it.
            label = k8s.core.v1.NamespacePatch(
                f"{namespace}-injection",
                metadata={
                    "name": namespace,
                    "labels": labels,
                    # Take the label over from whoever set it by hand (e.g. `kubectl label`).
                    "annotations": {"pulumi.com/patchForce": "true"},
                },
                # The webhook must exist before pods are created in a labelled namespace.
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=label_needs)),
            )
            self.labels.append(label)
            if injection.restart_workloads:
                self.restarts.append(
                    Command(
                        f"{namespace}-restart",
                        create=sidecar_change,
                        # Re-run when the proxy that injects this namespace changes (a new version, or
                        # its tag moved to another revision), and only then.
                        update=restart,
                        triggers=_proxy_identity(istio, target),
                        timeout=COMMAND_TIMEOUT_SECONDS,
                        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[label])),
                    )
                )
        self.register_outputs({"namespaces": list(injection.namespaces)})


def _proxy_identity(istio: IstioConfig, target: str | None) -> list[str]:
    if not istio.revisioned:
        return [istio.version]
    revision = istio.revision(target) if target else istio.default
    assert revision is not None  # validated: revisions always have a default revision
    return [revision.name, revision.version]
