"""Dashboards: the addons' own Services, changed to be reachable as the stack asks.

Each Service keeps exactly one owner (the addon that ships it) and its upstream selector, so it
always selects the addon's real pods, whatever labels that Istio version's addon uses.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from components.cluster import kubectl
from components.config import ISTIO_NAMESPACE, ClusterConfig, DashboardConfig

# Kiali serves its UI under this path (its `server.web_root`).
WEB_PATHS = {"kiali": "/kiali"}


class DashboardError(Exception):
    """The addon manifest lacks what a dashboard needs; the message says what and where."""


def expose(objects: Sequence[Mapping[str, Any]], dashboard: DashboardConfig) -> list[dict[str, Any]]:
    """Return the addon's objects with the dashboard's Service set to the stack's type and node ports.

    `objects` is left as it is; only the Service that changes is copied, the rest are shared.
    """
    result = [dict(obj) for obj in objects]
    services = [
        index
        for index, obj in enumerate(result)
        if obj["kind"] == "Service"
        and obj["metadata"]["name"] == dashboard.service_name
        and obj["metadata"].get("namespace", ISTIO_NAMESPACE) == ISTIO_NAMESPACE
    ]
    if len(services) != 1:
        raise DashboardError(
            f"dashboards.{dashboard.name}: the {dashboard.addon} addon has {len(services)} Service(s) named "
            f"{dashboard.service_name!r} in {ISTIO_NAMESPACE}; expected exactly one"
        )
    if dashboard.service_type == "ClusterIP":
        return result  # upstream's Service is already ClusterIP: leave it exactly as shipped
    service = result[services[0]] = copy.deepcopy(result[services[0]])
    spec = service.setdefault("spec", {})
    spec["type"] = dashboard.service_type
    wanted = {dashboard.port: dashboard.node_port}
    if dashboard.metrics_port is not None:
        wanted[dashboard.metrics_port] = dashboard.metrics_node_port
    ports = spec.get("ports", [])
    for number, node_port in wanted.items():
        matching = [port for port in ports if port.get("port") == number]
        if not matching:
            raise DashboardError(
                f"dashboards.{dashboard.name}: Service {dashboard.service_name!r} of the {dashboard.addon} "
                f"addon has no port {number}; its ports are {sorted(p.get('port') for p in ports)}"
            )
        if node_port is not None:
            matching[0]["nodePort"] = node_port
    return result


def access(dashboard: DashboardConfig, cluster: ClusterConfig) -> dict[str, Any]:
    """How a person reaches the dashboard: its node port, or the port-forward command for ClusterIP."""
    path = WEB_PATHS.get(dashboard.name, "")
    info: dict[str, Any] = {
        "type": dashboard.service_type,
        "service": f"{ISTIO_NAMESPACE}/{dashboard.service_name}",
    }
    if dashboard.service_type == "NodePort" and dashboard.node_port is not None:
        info["nodePort"] = dashboard.node_port
        info["url"] = f"http://<node-address>:{dashboard.node_port}{path}"
        if dashboard.metrics_node_port is not None:
            info["metricsNodePort"] = dashboard.metrics_node_port
    else:
        forward = kubectl(
            cluster,
            "port-forward",
            "--namespace",
            ISTIO_NAMESPACE,
            f"svc/{dashboard.service_name}",
            f"{dashboard.port}:{dashboard.port}",
        )
        info["portForward"] = forward
        info["url"] = f"http://localhost:{dashboard.port}{path}"
    return info
