"""Sidecar injection: label the application namespaces, then restart their workloads."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_kubernetes as k8s

from components.config import ClusterConfig, InjectionConfig, IstioConfig
from components.local_command import Command, restart_workloads

INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
# Each workload's rollout gets this long; the whole restart of a namespace gets the command's.
ROLLOUT_TIMEOUT_SECONDS = 300
COMMAND_TIMEOUT_SECONDS = 1200


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
    """

    def __init__(
        self,
        name: str,
        injection: InjectionConfig,
        *,
        cluster: ClusterConfig,
        istio: IstioConfig,
        injector: Callable[[str | None], pulumi.Resource],
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
            label_needs = [injector(target)]
            if injection.restart_workloads:
                uninject = Command(
                    f"{namespace}-uninject",
                    delete=restart,
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
                        create=restart,
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
