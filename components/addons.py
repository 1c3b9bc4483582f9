"""Istio's observability addons: each addon's objects as one yaml/v2 ConfigGroup, one resource per object.

`kubernetes.yaml.v2.ConfigGroup(objs=...)` hands the objects to the kubernetes provider, which
registers each one as a resource of its own kind under the group (named `<addon>:<namespace>/<name>`),
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
from components.hardening import HardeningError, grafana_login, kiali_auth, kiali_signing_key

ObjectKey = tuple[str, str, str, str]

# Objects the control plane already owns; an addon that ships one would give it two owners.
CONTROL_PLANE_OBJECTS: frozenset[ObjectKey] = frozenset({("", "Namespace", "", ISTIO_NAMESPACE)})

# Built-in kinds that have no namespace, by (API group, kind): what `kubectl api-resources
# --namespaced=false` lists (https://kubernetes.io/docs/reference/kubernetes-api/). They stay without
# metadata.namespace.
CLUSTER_SCOPED_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("certificates.k8s.io", "ClusterTrustBundle"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        ("networking.k8s.io", "IngressClass"),
        ("networking.k8s.io", "IPAddress"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("node.k8s.io", "RuntimeClass"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("resource.k8s.io", "DeviceClass"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("storage.k8s.io", "VolumeAttributesClass"),
    }
)

# Built-in kinds that live in a namespace, by (API group, kind), and Istio's own API groups (every
# Istio CRD is namespaced). An object of one of these without metadata.namespace is put into
# istio-system: left out, the provider would create it in its default namespace (`default`, an
# injected application namespace), as Istio 1.20's loki.yaml does for six of its objects while its
# `loki-headless` Service names istio-system (https://github.com/istio/istio/blob/1.20.8/samples/addons/loki.yaml).
NAMESPACED_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "ConfigMap"),
        ("", "Endpoints"),
        ("", "LimitRange"),
        ("", "PersistentVolumeClaim"),
        ("", "Pod"),
        ("", "PodTemplate"),
        ("", "ReplicationController"),
        ("", "ResourceQuota"),
        ("", "Secret"),
        ("", "Service"),
        ("", "ServiceAccount"),
        ("apps", "ControllerRevision"),
        ("apps", "DaemonSet"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("batch", "CronJob"),
        ("batch", "Job"),
        ("coordination.k8s.io", "Lease"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("networking.k8s.io", "Ingress"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("policy", "PodDisruptionBudget"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("storage.k8s.io", "CSIStorageCapacity"),
    }
)
NAMESPACED_GROUPS: frozenset[str] = frozenset(
    {"networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io"}
)


class AddonError(Exception):
    """Problems with the addon manifests, all of them, in one message."""


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    """What makes an object unique in a cluster: API group, kind, namespace and name."""
    group = obj["apiVersion"].rpartition("/")[0]
    metadata = obj["metadata"]
    return group, obj["kind"], metadata.get("namespace", ""), metadata["name"]


def in_istio_namespace(addon: str, objects: Sequence[Mapping[str, Any]]) -> tuple[list[dict], list[str]]:
    """Every namespaced object without metadata.namespace, copied into istio-system; and the problems.

    Cluster-scoped kinds stay without a namespace, objects that name one keep it. An object of a kind
    this module cannot place (a custom resource of an unknown API group, without a namespace) is a
    problem rather than a guess: guessed wrong, it would land in the provider's default namespace or
    be rejected by the API server.
    """
    placed: list[dict] = []
    problems: list[str] = []
    for obj in objects:
        metadata = obj["metadata"]
        group = obj["apiVersion"].rpartition("/")[0]
        kind = obj["kind"]
        if metadata.get("namespace") or (group, kind) in CLUSTER_SCOPED_KINDS:
            placed.append(dict(obj))
        elif (group, kind) in NAMESPACED_KINDS or group in NAMESPACED_GROUPS:
            placed.append({**obj, "metadata": {**metadata, "namespace": ISTIO_NAMESPACE}})
        else:
            problems.append(
                f"addon {addon}: {obj['apiVersion']} {kind} {metadata['name']} has no metadata.namespace and "
                f"its kind is not known to be namespaced or cluster-scoped; give it a namespace "
                f"({ISTIO_NAMESPACE}) in the manifest, or remove it"
            )
            placed.append(dict(obj))
    return placed, problems


def prepare_addons(
    config: MeshConfig, base_dir: Path, cache_dir: Path | None = None
) -> dict[str, list[dict]]:
    """Read every enabled addon and apply the dashboards to its objects, before anything is declared.

    Namespaced objects without a namespace are put into istio-system first (`in_istio_namespace`).
    Raises AddonError listing every problem: unreadable sources, objects of unknown scope without a
    namespace, objects declared twice, dashboards whose Service or port is missing.
    """
    problems: list[str] = []
    prepared: dict[str, list[dict]] = {}
    owners: dict[ObjectKey, str] = dict.fromkeys(CONTROL_PLANE_OBJECTS, "the control plane")
    for addon in config.addons.enabled:
        try:
            loaded = load_addon(
                config.addons.source, config.istio.version, addon, base_dir=base_dir, cache_dir=cache_dir
            )
        except AddonSourceError as error:
            problems.append(str(error))
            continue
        objects, misplaced = in_istio_namespace(addon, loaded)
        problems.extend(misplaced)
        for dashboard in config.dashboards:
            if dashboard.addon == addon:
                try:
                    objects = expose(objects, dashboard)
                except DashboardError as error:
                    problems.append(str(error))
        try:
            if addon == "kiali":
                objects = kiali_auth(objects, config.dashboard("kiali").auth or "token")
                objects = kiali_signing_key(objects)
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
