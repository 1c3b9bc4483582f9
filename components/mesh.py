"""The whole mesh of one cluster: control plane, injection, addons and dashboards as one graph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from components.addons import Addon
from components.config import MeshConfig
from components.control_plane import ControlPlane
from components.dashboards import access
from components.injection import Injection


class Mesh(pulumi.ComponentResource):
    """Istio and its observability addons on the cluster whose provider arrives through `opts`."""

    def __init__(
        self,
        name: str,
        config: MeshConfig,
        addon_objects: Mapping[str, Sequence[Mapping[str, Any]]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("istio-mesh:index:Mesh", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.control_plane = ControlPlane(
            "control-plane",
            config.istio,
            protect_crds=config.protect,
            environment=config.environment,
            opts=child,
        )
        self.injection = Injection(
            "injection",
            config.injection,
            cluster=config.cluster,
            istio_version=config.istio.version,
            control_plane=self.control_plane.istiod,
            opts=child,
        )
        self.addons = [
            Addon(addon, objects, namespace=self.control_plane.namespace, opts=child)
            for addon, objects in addon_objects.items()
        ]

        self.outputs: dict[str, Any] = {
            "istioVersion": config.istio.version,
            "profile": config.istio.profile,
            "injectedNamespaces": list(config.injection.namespaces),
            "addons": list(addon_objects),
            "dashboards": {d.name: access(d, config.cluster) for d in config.dashboards},
        }
        self.register_outputs(self.outputs)
