"""Which policy rules fire for the objects of a Helm v4 Chart and a kustomize Directory.

pulumi-kubernetes' `helm.sh/v4:Chart` and `kustomize/v2:Directory` are components: the provider
registers each object they hold as a resource of its own kind, with the component's provider, and
the component itself reaches no cluster. So the rules judge the objects, never the component: a
component has no provider of its own to blame, and the policy pack is not told that a resource is a
component (the plan shape here leaves `custom` out, as the pack's adapter does). Each object below
breaks exactly one rule, and each violation is stated in full. A v4 Chart's own chart, version and
protect are judged as a Release's are (the tests at the end).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from policy.rules import COMPONENT_TYPES, Violation, check_all, context_for

TODAY = date(2026, 1, 15)
CONTEXT = "prod-cluster"


def urn(type_: str, name: str, parent_type: str | None = None) -> str:
    qualified = f"{parent_type}${type_}" if parent_type else type_
    return f"urn:pulumi:prod::istio-mesh::{qualified}::{name}"


PROVIDER = urn("pulumi:providers:kubernetes", "cluster")
DEFAULT_PROVIDER = urn("pulumi:providers:kubernetes", "default_4_34_2")
CHART = "kubernetes:helm.sh/v4:Chart"
DIRECTORY = "kubernetes:kustomize/v2:Directory"


def resource(
    type_: str, name: str, inputs: dict[str, Any], *, parent: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A resource in the plan shape the rules read (what meshplan writes and the pack adapts to)."""
    parent_type = parent.split("::")[2] if parent else None
    return {
        "urn": urn(type_, name, parent_type),
        "type": type_,
        "name": name,
        "parent": parent,
        "provider": PROVIDER,
        "protect": False,
        "inputs": inputs,
    } | extra


def component(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    # Remote components are registered without a provider reference of their own.
    return resource(type_, name, inputs, provider=None)


def service(name: str, service_type: str, ports: list[dict[str, Any]], *, parent: str) -> dict[str, Any]:
    metadata = {"name": name, "namespace": "istio-system"}
    return resource(
        "kubernetes:core/v1:Service",
        f"{name}:istio-system/{name}",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {"type": service_type, "ports": ports},
        },
        parent=parent,
    )


def stack(*resources: dict[str, Any]) -> list[dict[str, Any]]:
    """A production stack: the labelled istio-system Namespace and the cluster provider, then `resources`."""
    namespace = resource(
        "kubernetes:core/v1:Namespace",
        "istio-system",
        {"metadata": {"name": "istio-system", "labels": {"istio-mesh/environment": "production"}}},
    )
    provider = resource("pulumi:providers:kubernetes", "cluster", {"context": CONTEXT}, provider=None)
    return [namespace, provider, *resources]


def violations(resources: list[dict[str, Any]]) -> list[Violation]:
    return check_all(resources, context_for(resources, TODAY))


CHART_COMPONENT = component(
    CHART, "kiali-server", {"chart": "kiali-server", "version": "2.5.0", "namespace": "istio-system"}
)
DIRECTORY_COMPONENT = component(DIRECTORY, "monitoring", {"directory": "./monitoring"})


# pulumi-kubernetes' component resources, every generation of them (named here, not read from the
# rules, so a type missing there fails).
KUBERNETES_COMPONENTS = [
    "kubernetes:helm.sh/v2:Chart",
    "kubernetes:helm.sh/v3:Chart",
    "kubernetes:helm.sh/v4:Chart",
    "kubernetes:kustomize/v2:Directory",
    "kubernetes:kustomize:Directory",
    "kubernetes:yaml/v2:ConfigFile",
    "kubernetes:yaml/v2:ConfigGroup",
    "kubernetes:yaml:ConfigFile",
    "kubernetes:yaml:ConfigGroup",
]


@pytest.mark.parametrize("type_", KUBERNETES_COMPONENTS)
def test_a_component_without_a_provider_is_no_violation(type_: str) -> None:
    # An exact version, which a v4 Chart needs (below); the other components do not read it.
    assert violations(stack(component(type_, "holder", {"version": "1.0.0"}))) == []
    assert type_ in COMPONENT_TYPES


def test_the_same_object_outside_a_component_needs_a_provider() -> None:
    """The control for the test above: a kubernetes resource with no provider is a violation."""
    config_map = resource(
        "kubernetes:core/v1:ConfigMap", "settings", {"metadata": {"name": "settings"}}, provider=None
    )
    assert [str(v) for v in violations(stack(config_map))] == [
        f"explicit-provider: {config_map['urn']}: has no explicit provider, so it would use the ambient "
        "kubeconfig; pass cluster with ResourceOptions(provider=...) or providers=..."
    ]


def test_compliant_objects_of_a_chart_and_a_directory_pass() -> None:
    objects = [
        service("kiali", "ClusterIP", [{"port": 20001}], parent=CHART_COMPONENT["urn"]),
        service("prometheus", "ClusterIP", [{"port": 9090}], parent=DIRECTORY_COMPONENT["urn"]),
    ]
    assert violations(stack(CHART_COMPONENT, DIRECTORY_COMPONENT, *objects)) == []


def test_the_objects_of_a_helm_v4_chart_are_judged_rule_by_rule() -> None:
    parent = CHART_COMPONENT["urn"]
    kiali = service("kiali", "NodePort", [{"port": 20001, "nodePort": 40001}], parent=parent)
    config_map = resource(
        "kubernetes:core/v1:ConfigMap",
        "kiali:istio-system/kiali",
        {
            "metadata": {"name": "kiali", "namespace": "istio-system"},
            "data": {"config.yaml": "auth:\n  strategy: anonymous\n"},
        },
        parent=parent,
    )
    assert [str(v) for v in violations(stack(CHART_COMPONENT, kiali, config_map))] == [
        f"node-ports-valid: {kiali['urn']}: nodePort 40001 is outside 30000-32767",
        f"production-dashboards-internal: {kiali['urn']}: dashboard Service istio-system/kiali has type "
        "NodePort; on production dashboards must be ClusterIP",
        f"kiali-not-anonymous-when-exposed: {kiali['urn']}: Kiali Service istio-system/kiali has type NodePort "
        "and ConfigMap istio-system/kiali sets auth.strategy anonymous; an exposed Kiali needs token, openid, "
        "openshift or header",
    ]


def test_the_objects_of_a_kustomize_directory_are_judged_rule_by_rule() -> None:
    parent = DIRECTORY_COMPONENT["urn"]
    prometheus = service("prometheus", "LoadBalancer", [{"port": 9090, "nodePort": 30009}], parent=parent)
    grafana = service("grafana", "ClusterIP", [{"port": 3000, "nodePort": 30009}], parent=parent)
    deployment = resource(
        "kubernetes:apps/v1:Deployment",
        "monitoring:istio-system/exporter",
        {"metadata": {"name": "exporter", "namespace": "istio-system"}},
        parent=parent,
        provider=f"{DEFAULT_PROVIDER}::0b1d",
    )
    found = violations(stack(DIRECTORY_COMPONENT, prometheus, grafana, deployment))
    assert [str(v) for v in found] == [
        f"node-ports-valid: {prometheus['urn']}: nodePort 30009 is used by both grafana:istio-system/grafana "
        "and prometheus:istio-system/prometheus",
        f"production-dashboards-internal: {prometheus['urn']}: dashboard Service istio-system/prometheus has "
        "type LoadBalancer; on production dashboards must be ClusterIP",
        f"explicit-provider: {deployment['urn']}: uses the default provider default_4_34_2; pass cluster with "
        "ResourceOptions(provider=...) or providers=...",
    ]


def test_off_production_an_exposed_dashboard_of_a_chart_is_allowed() -> None:
    kiali = service("kiali", "NodePort", [{"port": 20001, "nodePort": 30007}], parent=CHART_COMPONENT["urn"])
    resources = stack(CHART_COMPONENT, kiali)
    resources[0]["inputs"]["metadata"]["labels"] = {"istio-mesh/environment": "development"}
    assert violations(resources) == []


# A Helm v4 Chart installs one chart at one version, as a v3 Release does: the rules that read a
# release's chart, version and protect read a v4 Chart's the same way (protect on a component passes
# to every object it holds, the CRDs of `base` among them).


def istio_chart(chart: str, version: str | None, **extra: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = {"chart": chart, "namespace": "istio-system"}
    if version is not None:
        inputs["version"] = version
    return component(CHART, f"istio-{chart}", inputs) | extra


@pytest.mark.parametrize(("version", "shown"), [("^1.28.0", '"^1.28.0"'), ("1.28", '"1.28"'), ("", '""')])
def test_a_v4_chart_pins_an_exact_version(version: str, shown: str) -> None:
    chart = istio_chart("istiod", version)
    assert [str(v) for v in violations(stack(chart))] == [
        f"exact-chart-versions: {chart['urn']}: chart istiod version {shown} is not an exact x.y.z version "
        "(no ranges, ^, ~, *, x, pre-releases or empty)"
    ]


def test_a_v4_chart_without_a_version_installs_the_latest() -> None:
    chart = istio_chart("istiod", None)
    assert [str(v) for v in violations(stack(chart))] == [
        f"exact-chart-versions: {chart['urn']}: chart istiod has no version; pin an exact x.y.z version"
    ]


def test_an_istio_v4_chart_out_of_support() -> None:
    chart = istio_chart("istiod", "1.26.3")
    assert [str(v) for v in violations(stack(chart))] == [
        f"istio-version-supported: {chart['urn']}: Istio 1.26.3 (chart istiod) is out of support: 1.26 went "
        "out of support on 2025-12-11 (six weeks after 1.28.0 of 2025-10-30); on 2026-01-15 use 1.27 or newer"
    ]


def test_an_istio_v4_chart_newer_than_the_support_table() -> None:
    chart = istio_chart("gateway", "1.32.0")
    assert [str(v) for v in violations(stack(chart))] == [
        f"istio-version-known: {chart['urn']}: Istio 1.32.0 (chart gateway) is unknown to the support table: "
        "1.32 is newer than 1.31, the newest minor of the support table (checked 2026-12-02); check upstream "
        "(https://istio.io/latest/docs/releases/supported-releases/) and update policy/istio_releases.py"
    ]


def test_an_unprotected_v4_base_chart_on_production() -> None:
    assert violations(stack(istio_chart("base", "1.28.2", protect=True))) == []
    chart = istio_chart("base", "1.28.2")
    assert [str(v) for v in violations(stack(chart))] == [
        f"production-base-protected: {chart['urn']}: base Chart istio-base holds Istio's CRDs and has "
        "protect: false; production requires protect: true"
    ]
    off_production = stack(chart)
    off_production[0]["inputs"]["metadata"]["labels"] = {"istio-mesh/environment": "development"}
    assert violations(off_production) == []


def test_a_v4_gateway_charts_node_ports_are_judged_on_its_service_once() -> None:
    """The chart's values ask for the nodePort its rendered Service (a resource of its own) holds."""
    ports = [{"name": "http2", "port": 80, "nodePort": 31080}]
    chart = istio_chart("gateway", "1.28.2")
    chart["inputs"]["values"] = {"service": {"type": "NodePort", "ports": ports}}
    gateway = service("istio-ingressgateway", "NodePort", ports, parent=chart["urn"])
    assert violations(stack(chart, gateway)) == []
    gateway["inputs"]["spec"]["ports"] = [{"name": "http2", "port": 80, "nodePort": 29999}]
    assert [str(v) for v in violations(stack(chart, gateway))] == [
        f"node-ports-valid: {gateway['urn']}: nodePort 29999 is outside 30000-32767"
    ]


# Ambient mode and the Gateway API CRDs, as the program nests them: a v4 ztunnel Chart is judged as a
# ztunnel Release is, and the CRDs are the objects of a ConfigGroup inside the GatewayApi component.


def test_a_v4_ztunnel_chart_below_ambient_ga_on_production() -> None:
    chart = istio_chart("ztunnel", "1.23.6")
    assert [str(v) for v in check_all(stack(chart), context_for(stack(chart), date(2024, 10, 1)))] == [
        f"production-ambient-ga: {chart['urn']}: ztunnel Chart istio-ztunnel runs ambient mode at Istio 1.23.6; "
        "on production ambient needs Istio 1.24.0 or newer, where it is GA"
    ]


def test_gateway_api_crds_nested_in_components_are_judged() -> None:
    component_ = component("istio-mesh:index:GatewayApi", "gateway-api", {})
    group = component("kubernetes:yaml/v2:ConfigGroup", "gateway-api-crds", {}) | {
        "parent": component_["urn"]
    }
    group["urn"] = urn("kubernetes:yaml/v2:ConfigGroup", "gateway-api-crds", "istio-mesh:index:GatewayApi")
    crd = resource(
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
        "gateway-api-crds:grpcroutes.gateway.networking.k8s.io",
        {
            "metadata": {
                "name": "grpcroutes.gateway.networking.k8s.io",
                "annotations": {
                    "gateway.networking.k8s.io/bundle-version": "v1.0.0",
                    "gateway.networking.k8s.io/channel": "experimental",
                },
            }
        },
        parent=group["urn"],
    )
    istiod = istio_chart("istiod", "1.29.6")
    assert violations(stack(istiod, component_, group, crd)) == []
    istiod["inputs"]["version"] = "1.30.3"  # GRPCRoute needs v1.1.0 from 1.30 (MinimumCRDVersions)
    assert [str(v) for v in violations(stack(istiod, component_, group, crd))] == [
        f"gateway-api-crds-minimum: {crd['urn']}: Gateway API CRD grpcroutes.gateway.networking.k8s.io has "
        "bundle-version v1.0.0; Istio 1.30.3 (chart istiod) needs v1.1.0 or newer"
    ]
