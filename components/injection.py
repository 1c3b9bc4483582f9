"""Sidecar injection: label the application namespaces, then restart their workloads."""

from __future__ import annotations

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s

from components.cluster import kubectl
from components.config import ClusterConfig, InjectionConfig

INJECTION_LABEL = "istio-injection"


class Injection(pulumi.ComponentResource):
    """`istio-injection=enabled` on each namespace, and a rollout restart so running pods get sidecars."""

    def __init__(
        self,
        name: str,
        injection: InjectionConfig,
        *,
        cluster: ClusterConfig,
        istio_version: str,
        control_plane: pulumi.Resource,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("istio-mesh:index:Injection", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.labels: list[k8s.core.v1.NamespacePatch] = []
        self.restarts: list[command.local.Command] = []
        for namespace in injection.namespaces:
            # The application namespaces belong to the applications: a server-side-apply patch owns
            # just this one label, and destroying it removes only the label.
            label = k8s.core.v1.NamespacePatch(
                f"{namespace}-injection",
                metadata={
                    "name": namespace,
                    "labels": {INJECTION_LABEL: "enabled"},
                    # Take the label over from whoever set it by hand (e.g. `kubectl label`).
                    "annotations": {"pulumi.com/patchForce": "true"},
                },
                # The webhook must exist before pods are created in a labelled namespace.
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[control_plane])),
            )
            self.labels.append(label)
            if injection.restart_workloads:
                self.restarts.append(
                    command.local.Command(
                        f"{namespace}-restart",
                        create=kubectl(cluster, "rollout", "restart", "deployment", "--namespace", namespace),
                        # Re-run when the proxy version changes, so every pod runs the new sidecar.
                        triggers=[istio_version],
                        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[label])),
                    )
                )
        self.register_outputs({"namespaces": list(injection.namespaces)})
