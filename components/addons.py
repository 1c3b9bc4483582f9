"""Istio's observability addons: every object of each addon manifest as a resource of its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi

from components.addon_source import AddonSourceError, load_addon
from components.config import ISTIO_NAMESPACE, MeshConfig
from components.dashboards import DashboardError, expose
from components.hardening import HardeningError, grafana_login, kiali_auth
from components.kinds import declare, is_supported, object_key

AddonObjects = Mapping[str, Sequence[Mapping[str, Any]]]

# Objects the control plane already owns; an addon that ships one would give it two owners.
CONTROL_PLANE_OBJECTS = {("", "Namespace", "", ISTIO_NAMESPACE)}


class AddonError(Exception):
    """Problems with the addon manifests, all of them, in one message."""


def prepare_addons(
    config: MeshConfig, base_dir: Path, cache_dir: Path | None = None
) -> dict[str, list[dict]]:
    """Read every enabled addon and apply the dashboards to its objects, before anything is declared.

    Raises AddonError listing every problem: unreadable sources, unsupported kinds, objects declared
    twice, dashboards whose Service or port is missing.
    """
    problems: list[str] = []
    prepared: dict[str, list[dict]] = {}
    owners: dict[tuple[str, str, str, str], str] = dict.fromkeys(CONTROL_PLANE_OBJECTS, "the control plane")
    for addon in config.addons.enabled:
        try:
            objects: list[dict] = [
                dict(obj)
                for obj in load_addon(
                    config.addons.source, config.istio.version, addon, base_dir=base_dir, cache_dir=cache_dir
                )
            ]
        except AddonSourceError as error:
            problems.append(str(error))
            continue
        for dashboard in config.dashboards:
            if dashboard.addon == addon:
                try:
                    objects = expose(objects, dashboard)
                except DashboardError as error:
                    problems.append(str(error))
        try:
            if addon == "kiali":
                objects = kiali_auth(objects, config.dashboard("kiali").auth or "token")
            if addon == "grafana" and config.dashboard("grafana").auth == "password":
                objects = grafana_login(objects)
        except HardeningError as error:
            problems.append(str(error))
        for obj in objects:
            key = object_key(obj)
            where = f"addon {addon}: {obj['apiVersion']} {obj['kind']} {'/'.join(filter(None, key[2:]))}"
            if not is_supported(obj["apiVersion"], obj["kind"]):
                problems.append(f"{where}: kind {obj['kind']} of {obj['apiVersion']} is not supported")
            elif key in owners:
                problems.append(f"{where}: already declared by {owners[key]}; every object has one owner")
            else:
                owners[key] = f"addon {addon}"
        prepared[addon] = objects
    if problems:
        raise AddonError("addon problems:\n" + "\n".join(f"  - {p}" for p in problems))
    return prepared


class Addon(pulumi.ComponentResource):
    """One addon (Prometheus, Grafana, Jaeger, Kiali, Loki): its objects, in manifest order.

    It needs only the istio-system namespace, never the control plane, so the addons come up while
    istiod is still rolling out. Custom resources wait for the CRDs of the same manifest.
    """

    def __init__(
        self,
        name: str,
        objects: Sequence[Mapping[str, Any]],
        *,
        namespace: pulumi.Resource,
        needs: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("istio-mesh:index:Addon", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=[namespace, *needs])
        crds = [declare(obj, child) for obj in objects if obj["kind"] == "CustomResourceDefinition"]
        after_crds = (
            pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=crds)) if crds else child
        )
        self.resources = crds + [
            declare(obj, after_crds) for obj in objects if obj["kind"] != "CustomResourceDefinition"
        ]
        self.register_outputs({"objects": len(self.resources)})
