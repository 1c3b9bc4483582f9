"""Istio's observability addons: each addon's objects as one yaml/v2 ConfigGroup, one resource per object.

`kubernetes.yaml.v2.ConfigGroup(objs=...)` hands the objects to the kubernetes provider, which
registers each one as a resource of its own kind under the group (named `<addon>-<namespace>/<name>`),
orders them (CRDs and Namespaces first, `config.kubernetes.io/depends-on`) and waits for each to be
ready. So `pulumi preview` and policies still see every object, while the program registers one
resource per addon: typed pulumi-kubernetes classes cost the Python SDK a type-hint walk of every
nested Args and output class they touch, which measured as most of the program's preview time
(bench/preview.py). https://www.pulumi.com/registry/packages/kubernetes/api-docs/yaml/v2/configgroup/
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.addon_source import AddonSourceError, load_addon
from components.config import ISTIO_NAMESPACE, MeshConfig
from components.dashboards import DashboardError, expose
from components.hardening import HardeningError, grafana_login, kiali_auth

ObjectKey = tuple[str, str, str, str]

# Objects the control plane already owns; an addon that ships one would give it two owners.
CONTROL_PLANE_OBJECTS: frozenset[ObjectKey] = frozenset({("", "Namespace", "", ISTIO_NAMESPACE)})


class AddonError(Exception):
    """Problems with the addon manifests, all of them, in one message."""


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    """What makes an object unique in a cluster: API group, kind, namespace and name."""
    group = obj["apiVersion"].rpartition("/")[0]
    metadata = obj["metadata"]
    return group, obj["kind"], metadata.get("namespace", ""), metadata["name"]


def prepare_addons(
    config: MeshConfig, base_dir: Path, cache_dir: Path | None = None
) -> dict[str, list[dict]]:
    """Read every enabled addon and apply the dashboards to its objects, before anything is declared.

    Raises AddonError listing every problem: unreadable sources, objects declared twice, dashboards
    whose Service or port is missing.
    """
    problems: list[str] = []
    prepared: dict[str, list[dict]] = {}
    owners: dict[ObjectKey, str] = dict.fromkeys(CONTROL_PLANE_OBJECTS, "the control plane")
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
            if key in owners:
                where = f"addon {addon}: {obj['apiVersion']} {obj['kind']} {'/'.join(filter(None, key[2:]))}"
                problems.append(f"{where}: already declared by {owners[key]}; every object has one owner")
            else:
                owners[key] = f"addon {addon}"
        prepared[addon] = objects
    if problems:
        raise AddonError("addon problems:\n" + "\n".join(f"  - {p}" for p in problems))
    return prepared


def addon_group(
    addon: str,
    objects: Sequence[Mapping[str, Any]],
    *,
    namespace: pulumi.Resource,
    needs: Sequence[pulumi.Resource] = (),
    opts: pulumi.ResourceOptions,
) -> k8s.yaml.v2.ConfigGroup:
    """One addon's objects, in manifest order, as a ConfigGroup named after the addon.

    It waits for the istio-system namespace (and `needs`), never for the control plane, so the addons
    come up while istiod is still rolling out. The provider inherited through `opts` (parent or
    `providers`) constructs the group, so every object goes to the stack's cluster.
    """
    return k8s.yaml.v2.ConfigGroup(
        addon,
        objs=list(objects),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[namespace, *needs])),
    )
