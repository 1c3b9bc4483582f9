"""Build the real program's graph under the mock engine, one stack and a few overrides at a time."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshplan.engine import PROJECT, Registration, Render, render
from meshplan.stacks import load_stack

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_ADDONS = ROOT / "tests" / "fixtures" / "addons"
# Hand-written stand-ins for each pinned Gateway API release (tests/test_gateway_api_source.py).
FIXTURE_GATEWAY_API = ROOT / "tests" / "fixtures" / "gateway-api" / "{version}"
# The same for `meshplan --config`: a stack at Istio 1.22+ would otherwise download its Gateway API release.
GATEWAY_API_CONFIG = f"gatewayApi.source={FIXTURE_GATEWAY_API}"

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
NAMESPACE_PATCH = "kubernetes:core/v1:NamespacePatch"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"
COMMAND = "pulumi-python:dynamic/istio-mesh:Command"
PROVIDER = "pulumi:providers:kubernetes"


def fixture_objects(shape: str, addon: str) -> list[dict[str, Any]]:
    """The objects of one fixture addon manifest (`shape`: app-labels or k8s-labels), as shipped."""
    text = (FIXTURE_ADDONS / shape / f"{addon}.yaml").read_text()
    return [obj for obj in yaml.safe_load_all(text) if obj]


def fixture_source(version: str) -> str:
    """The fixture addons with the label style of `version`'s upstream addons."""
    return str(FIXTURE_ADDONS / ("app-labels" if version.startswith("1.20.") else "k8s-labels"))


@dataclass(frozen=True)
class Replace:
    """An override that replaces a key wholesale instead of deep-merging into it."""

    value: Any


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into `base`; a None value removes the key, a `Replace` replaces it."""
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Replace):
            result[key] = copy.deepcopy(value.value)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def stack_config(stack: str = "dev", stack_file: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """The stack file's config (namespaced keys) with `overrides` (top-level keys) deep-merged in.

    Unless a test sets `addons.source` or `gatewayApi.source` itself, both come from the offline
    fixtures.
    """
    config = dict(load_stack(ROOT, stack, stack_file=stack_file).values)
    for key, value in overrides.items():
        name = f"{PROJECT}:{key}"
        if value is None:
            config.pop(name, None)
        elif isinstance(value, Replace):
            config[name] = copy.deepcopy(value.value)
        elif isinstance(value, Mapping) and isinstance(config.get(name), Mapping):
            config[name] = merge(config[name], value)
        else:
            config[name] = copy.deepcopy(value)
    addons = config.get(f"{PROJECT}:addons")
    if isinstance(addons, Mapping) and "source" not in overrides.get("addons", {}):
        istio = config.get(f"{PROJECT}:istio")
        version = istio.get("version") if isinstance(istio, Mapping) else None
        config[f"{PROJECT}:addons"] = {**addons, "source": fixture_source(str(version))}
    gateway_api = config.get(f"{PROJECT}:gatewayApi", {})
    given = overrides.get("gatewayApi")
    if isinstance(gateway_api, Mapping) and not (isinstance(given, Mapping) and "source" in given):
        config[f"{PROJECT}:gatewayApi"] = {**gateway_api, "source": str(FIXTURE_GATEWAY_API)}
    return config


@dataclass
class Graph:
    render: Render

    @property
    def error(self) -> str | None:
        return self.render.error

    @property
    def resources(self) -> list[Registration]:
        return self.render.registrations

    @property
    def outputs(self) -> dict[str, Any]:
        return self.render.outputs

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def get(self, type_: str, name: str) -> Registration:
        found = [r for r in self.resources if r.type == type_ and r.name == name]
        assert len(found) == 1, f"{len(found)} resources of type {type_} named {name}: {self.names()}"
        return found[0]

    def names(self, type_: str | None = None) -> list[str]:
        return sorted(r.name for r in self.resources if type_ is None or r.type == type_)

    def release(self, name: str) -> Registration:
        return self.get(RELEASE, name)

    def depends_on(self, resource: Registration, other: Registration) -> bool:
        """True when `resource` waits for `other`, directly or through other resources."""
        by_urn = self.render.by_urn()
        seen: set[str] = set()
        stack = list(resource.dependencies)
        while stack:
            urn = stack.pop()
            if urn == other.urn:
                return True
            if urn in seen or urn not in by_urn:
                continue
            seen.add(urn)
            stack.extend(by_urn[urn].dependencies)
        return False

    def ancestors(self, resource: Registration) -> list[str]:
        by_urn = self.render.by_urn()
        chain: list[str] = []
        parent = resource.parent
        while parent and parent in by_urn:
            chain.append(by_urn[parent].type)
            parent = by_urn[parent].parent
        return chain

    def children(self, parent: Registration) -> list[Registration]:
        return [r for r in self.resources if r.parent == parent.urn]


# `istio.gateways: {}`: no gateways, whatever the profile. The gateway charts of 1.21.0 to 1.25.4
# (and 1.26.0-1.26.3, 1.27.0) are refused with gateways (components/config.py), so tests of those
# versions that are not about gateways run without them.
NO_GATEWAYS = Replace({})

# What `pulumi config set --secret grafanaAdminPassword` gives a production stack.
PROD_PASSWORD = "correct-horse-battery-staple"


def build(
    stack: str = "dev", *, stack_file: Path | None = None, preview: bool = True, **overrides: Any
) -> Graph:
    """Render `stack` with `overrides` (top-level keys, deep-merged); prod gets its Grafana secret."""
    secret_keys = []
    if stack == "prod" and "grafanaAdminPassword" not in overrides:
        overrides["grafanaAdminPassword"] = PROD_PASSWORD
    if overrides.get("grafanaAdminPassword") is not None:
        secret_keys.append(f"{PROJECT}:grafanaAdminPassword")
    config = stack_config(stack, stack_file, **overrides)
    return Graph(render(ROOT, stack, config, secret_keys=secret_keys, preview=preview))


# The README's canary upgrade from 1.29.6 to 1.30.3: one stack file per step.
CANARY = [ROOT / "examples" / "canary" / f"step-{step}.yaml" for step in range(5)]


def canary_graphs() -> list[Graph]:
    """The prod stack at each canary step, each rendered without error."""
    graphs = [build("prod", stack_file=path) for path in CANARY]
    for graph in graphs:
        assert graph.error is None, graph.error
    return graphs
