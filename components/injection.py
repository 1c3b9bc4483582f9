"""The application namespaces' data plane: sidecar injection or ambient mode, and waypoints.

Sidecar namespaces are labelled for injection, then their workloads restarted; ambient namespaces
are labelled `istio.io/dataplane-mode=ambient` and, with a waypoint, get its Gateway and
`istio.io/use-waypoint`.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import kubectl
from components.config import ClusterConfig, InjectionConfig, IstioConfig, parse_version
from components.local_command import Command, restart_workloads
from components.revision_tags import DEFAULT_TAG

INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
# Ambient mode's namespace label, and the waypoint a namespace's traffic goes through
# (https://istio.io/latest/docs/ambient/usage/add-workloads/, .../ambient/usage/waypoint/).
DATAPLANE_MODE_LABEL = "istio.io/dataplane-mode"
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"
WAYPOINT_FOR_LABEL = "istio.io/waypoint-for"
# What `istioctl waypoint apply` writes (istio/istio istioctl/pkg/waypoint/waypoint.go, 1.30.3): a
# Gateway named `waypoint` of class istio-waypoint with one HBONE listener, `mesh` on 15008.
WAYPOINT_NAME = "waypoint"
WAYPOINT_CLASS = "istio-waypoint"
WAYPOINT_API_VERSION = "gateway.networking.k8s.io/v1"
HBONE_PORT = 15008
# The `<ns>-restart` trigger of an ambient namespace: no proxy version, so no upgrade restarts it, and
# a move between the modes changes it, which restarts the namespace once (see Injection).
AMBIENT_TRIGGER = "ambient"
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

    An ambient namespace (`injection.ambient`) is labelled `istio.io/dataplane-mode=ambient` under the
    same `<ns>-injection` name, so moving a namespace between the modes updates its label rather than
    replacing it. It waits for ztunnel (`node_agents`). Its pods join and leave the mesh as they run:
    istio-cni enrolls them into ztunnel without a restart
    (https://istio.io/latest/docs/ambient/usage/add-workloads/). So its `<ns>-restart` has no create
    script (a new ambient namespace restarts nothing), and its trigger is `ambient` rather than a proxy
    version (no upgrade restarts it). A move is the one thing that changes that trigger: sidecar ->
    ambient runs the ambient restart's `update` once, after the relabel, so the pods come back without
    sidecars; ambient -> sidecar gives the Command a `create` it never had, which its update runs
    instead (components/local_command.py), the first-injection restart. Both run held at PERMISSIVE
    under STRICT: during the rollout old and new pods differ (a sidecar without HBONE sends plaintext to
    a pod without a sidecar, and an ambient namespace's pods leave ztunnel the moment its label goes,
    before they are restarted with sidecars). Its `<ns>-uninject` stays, with nothing to do, so a move
    deletes neither Command (a deleted uninject would restart the namespace a second time).

    A waypoint (`injection.waypoints`) is the Gateway `waypoint` that `istioctl waypoint apply --for
    <traffic>` writes, in its namespace, after the Gateway API CRDs (`gateway_api`) and the istiod that
    runs it; with revisions labelled `istio.io/rev: default`, so it follows the default tag like the
    namespace's pods. The namespace's `istio.io/use-waypoint` label waits for it.
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
        node_agents: pulumi.Resource | None = None,
        gateway_api: pulumi.Resource | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("istio-mesh:index:Injection", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.labels: list[k8s.core.v1.NamespacePatch] = []
        self.restarts: list[Command] = []
        self.uninjects: list[Command] = []
        self.waypoints: list[k8s.apiextensions.CustomResource] = []
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
            # The webhook must exist before pods are created in a labelled namespace.
            label = _namespace_labels(
                namespace,
                labels,
                pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=label_needs)),
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
        for namespace in injection.ambient:
            self._ambient(namespace, injection, cluster, istio, injector, mtls, node_agents, gateway_api)
        self.register_outputs(
            {
                "namespaces": list(injection.namespaces),
                **({"ambient": list(injection.ambient)} if injection.ambient else {}),
            }
        )

    def _ambient(
        self,
        namespace: str,
        injection: InjectionConfig,
        cluster: ClusterConfig,
        istio: IstioConfig,
        injector: Callable[[str | None], pulumi.Resource],
        mtls: str | None,
        node_agents: pulumi.Resource | None,
        gateway_api: pulumi.Resource | None,
    ) -> None:
        """One ambient namespace: its label, its waypoint, and the restart of a move (see the class)."""
        child = pulumi.ResourceOptions(parent=self)

        def after(*needs: pulumi.Resource | None) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=[n for n in needs if n is not None])
            )

        labels = {DATAPLANE_MODE_LABEL: "ambient"}
        waypoint = None
        if namespace in injection.waypoints:
            waypoint_labels = {WAYPOINT_FOR_LABEL: injection.waypoints[namespace]}
            if istio.revisioned:
                waypoint_labels[REVISION_LABEL] = DEFAULT_TAG
            waypoint = k8s.apiextensions.CustomResource(
                f"{namespace}-waypoint",
                api_version=WAYPOINT_API_VERSION,
                kind="Gateway",
                metadata={"name": WAYPOINT_NAME, "namespace": namespace, "labels": waypoint_labels},
                spec={
                    "gatewayClassName": WAYPOINT_CLASS,
                    "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}],
                },
                # istiod creates the class and deploys the waypoint for the Gateway.
                opts=after(gateway_api, injector(None)),
            )
            self.waypoints.append(waypoint)
            labels[USE_WAYPOINT_LABEL] = WAYPOINT_NAME
        uninject = None
        if injection.restart_workloads:
            # Nothing to do when an ambient namespace leaves; it is here so that a move keeps it.
            uninject = Command(
                f"{namespace}-uninject", timeout=COMMAND_TIMEOUT_SECONDS, opts=after(node_agents)
            )
            self.uninjects.append(uninject)
        label = _namespace_labels(namespace, labels, after(node_agents, uninject, waypoint))
        self.labels.append(label)
        if injection.restart_workloads:
            restart = restart_workloads(cluster, namespace, timeout=ROLLOUT_TIMEOUT_SECONDS)
            if mtls == "STRICT":
                restart = permissive_during(
                    cluster, namespace, peer_authentication_api_version(istio), restart
                )
            self.restarts.append(
                Command(
                    f"{namespace}-restart",
                    update=restart,
                    triggers=[AMBIENT_TRIGGER],
                    timeout=COMMAND_TIMEOUT_SECONDS,
                    opts=after(label),
                )
            )


def _namespace_labels(
    namespace: str, labels: dict[str, str], opts: pulumi.ResourceOptions
) -> k8s.core.v1.NamespacePatch:
    """`<ns>-injection`, the mesh's labels of an application namespace, in either mode.

    The application namespaces belong to the applications: a server-side-apply patch owns just these
    labels, and destroying it removes only them. Switching a namespace from one label to another (a
    tag, or sidecars to ambient) drops the old one, since this patch no longer applies it.
    """
    return k8s.core.v1.NamespacePatch(
        f"{namespace}-injection",
        metadata={
            "name": namespace,
            "labels": labels,
            # Take the labels over from whoever set them by hand (e.g. `kubectl label`).
            "annotations": {"pulumi.com/patchForce": "true"},
        },
        opts=opts,
    )


def _proxy_identity(istio: IstioConfig, target: str | None) -> list[str]:
    if not istio.revisioned:
        return [istio.version]
    revision = istio.revision(target) if target else istio.default
    assert revision is not None  # validated: revisions always have a default revision
    return [revision.name, revision.version]
