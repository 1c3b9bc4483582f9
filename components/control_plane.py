"""The control plane: istio-system, the `base` chart (CRDs), istiod, then the gateways."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.config import ISTIO_NAMESPACE, IstioConfig
from components.values import base_values, gateway_values, istiod_values

ENVIRONMENT_LABEL = "istio-mesh/environment"

# Helm's own default (300 s) is too short for a first istiod pull on a cold node, and a hung
# LoadBalancer should fail the update rather than block it for an hour.
BASE_TIMEOUT_SECONDS = 300
ISTIOD_TIMEOUT_SECONDS = 600
GATEWAY_TIMEOUT_SECONDS = 600


class ControlPlane(pulumi.ComponentResource):
    """istio-system, then base -> istiod -> gateways, each a Helm release pinned to the stack's version."""

    def __init__(
        self,
        name: str,
        istio: IstioConfig,
        *,
        protect_crds: bool,
        environment: str,
        mtls: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("istio-mesh:index:ControlPlane", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repository = k8s.helm.v3.RepositoryOptsArgs(repo=istio.chart_repository)

        self.namespace = k8s.core.v1.Namespace(
            ISTIO_NAMESPACE,
            metadata={"name": ISTIO_NAMESPACE, "labels": {ENVIRONMENT_LABEL: environment}},
            opts=child,
        )
        namespace = self.namespace.metadata.name

        self.base = k8s.helm.v3.Release(
            "istio-base",
            name="istio-base",
            chart="base",
            version=istio.version,
            namespace=namespace,
            repository_opts=repository,
            values=base_values(),
            timeout=BASE_TIMEOUT_SECONDS,
            # Deleting this release deletes Istio's CRDs and with them every VirtualService,
            # Gateway and policy in the cluster.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=protect_crds)),
        )
        self.istiod = k8s.helm.v3.Release(
            "istiod",
            name="istiod",
            chart="istiod",
            version=istio.version,
            namespace=namespace,
            repository_opts=repository,
            values=istiod_values(istio),
            timeout=ISTIOD_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.base])),
        )
        # Gateway pods are injected by istiod's webhook, so they wait for istiod to be ready.
        self.gateways = [
            k8s.helm.v3.Release(
                gateway.release_name,
                name=gateway.release_name,
                chart="gateway",
                version=istio.version,
                namespace=namespace,
                repository_opts=repository,
                values=gateway_values(istio, gateway),
                timeout=GATEWAY_TIMEOUT_SECONDS,
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.istiod])),
            )
            for gateway in istio.gateways
        ]
        # Mesh-wide mutual TLS: a PeerAuthentication named `default` in the root namespace applies to
        # every workload (https://istio.io/latest/docs/reference/config/security/peer_authentication/).
        self.peer_authentication = None
        if mtls is not None:
            self.peer_authentication = k8s.apiextensions.CustomResource(
                "mesh-mtls",
                # security.istio.io/v1 is served from 1.22; older charts only have v1beta1.
                api_version="security.istio.io/v1"
                if istio.version_tuple >= (1, 22, 0)
                else "security.istio.io/v1beta1",
                kind="PeerAuthentication",
                metadata={"name": "default", "namespace": namespace},
                spec={"mtls": {"mode": mtls}},
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.istiod])),
            )
        self.register_outputs(
            {
                "namespace": namespace,
                "version": istio.version,
                "istiod": self.istiod.status.name,
                "gateways": [gateway.status.name for gateway in self.gateways],
            }
        )
