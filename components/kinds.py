"""Declare a parsed Kubernetes object as the typed pulumi-kubernetes resource of its kind.

Typed resources (rather than one opaque `yaml.v2.ConfigGroup`) put every object of an addon into the
graph with its own type token, so previews, `meshplan diff` and policies see each one.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

ResourceFactory = Callable[..., pulumi.CustomResource]

# The kinds Istio's addons are made of, plus their close relatives, as (pulumi_kubernetes module,
# class). Classes are looked up on first use: pulumi_kubernetes loads its modules lazily, and
# loading every API group up front would cost more than evaluating the rest of the program.
# Anything in an API group with a dot in its name (a CRD-defined kind) is a CustomResource.
TYPED_KINDS: Mapping[tuple[str, str], tuple[str, str]] = {
    ("v1", "ConfigMap"): ("core.v1", "ConfigMap"),
    ("v1", "Namespace"): ("core.v1", "Namespace"),
    ("v1", "PersistentVolumeClaim"): ("core.v1", "PersistentVolumeClaim"),
    ("v1", "Secret"): ("core.v1", "Secret"),
    ("v1", "Service"): ("core.v1", "Service"),
    ("v1", "ServiceAccount"): ("core.v1", "ServiceAccount"),
    ("apps/v1", "DaemonSet"): ("apps.v1", "DaemonSet"),
    ("apps/v1", "Deployment"): ("apps.v1", "Deployment"),
    ("apps/v1", "StatefulSet"): ("apps.v1", "StatefulSet"),
    ("batch/v1", "Job"): ("batch.v1", "Job"),
    ("policy/v1", "PodDisruptionBudget"): ("policy.v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networking.v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("rbac.v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("rbac.v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"): ("rbac.v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rbac.v1", "RoleBinding"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("apiextensions.v1", "CustomResourceDefinition"),
}


def _factory(api_version: str, kind: str) -> ResourceFactory | None:
    location = TYPED_KINDS.get((api_version, kind))
    if location is None:
        return None
    module, name = location
    return getattr(importlib.import_module(f"pulumi_kubernetes.{module}"), name)


_CAMEL_HUMP = re.compile(r"(?<!^)(?=[A-Z])")


def is_supported(api_version: str, kind: str) -> bool:
    return (api_version, kind) in TYPED_KINDS or _is_custom(api_version)


def _is_custom(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def object_key(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """What makes an object unique in a cluster: API group, kind, namespace and name."""
    group = obj["apiVersion"].rpartition("/")[0]
    metadata = obj["metadata"]
    return group, obj["kind"], metadata.get("namespace", ""), metadata["name"]


def resource_name(obj: Mapping[str, Any]) -> str:
    metadata = obj["metadata"]
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata['name']}" if namespace else metadata["name"]


def declare(obj: Mapping[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Declare `obj` (already checked with `is_supported`) as a resource named after its identity."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    fields = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind")}
    name = resource_name(obj)
    factory = _factory(api_version, kind)
    if factory is None:
        return k8s.apiextensions.CustomResource(name, api_version=api_version, kind=kind, opts=opts, **fields)
    # Top-level fields are constructor arguments (`roleRef` -> `role_ref`); nested values pass
    # through untouched in the manifest's own camelCase.
    kwargs = {_CAMEL_HUMP.sub("_", key).lower(): value for key, value in fields.items()}
    return factory(name, opts=opts, **kwargs)
