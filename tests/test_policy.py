"""The policy rules on hand-written plans, the Istio support table, and the pack's Pulumi adapter.

Each rule test starts from `good_plan()` (compliant), changes one thing, and asserts the exact
violation lines, so a change of wording or of what a rule reports shows up here.
"""

from __future__ import annotations

import copy
import itertools
import runpy
import sys
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
)
from pulumi_policy.policy import _NotApplicableError, _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

import policy.__main__ as pack
from policy import istio_releases, rules
from policy.istio_releases import FIRST_RELEASES, end_of_support, parse_minor, support_status
from policy.rules import RULE_IDS, RuleContext, Violation, check_plan, context_for

TODAY = date(2026, 1, 15)
STACK = "prod"
CONTEXT = "kind-istio-prod"
KUBECONFIG = "/etc/istio-mesh/prod.kubeconfig"
ISTIO = "1.28.2"
REPO = "https://blob.istio.io/istio-release/charts"
TARGET = f"--context {CONTEXT} --kubeconfig {KUBECONFIG}"


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::istio-mesh::{type_}::{name}"


PROVIDER = urn("pulumi:providers:kubernetes", "cluster")
DEFAULT_K8S_PROVIDER = urn("pulumi:providers:kubernetes", "default_4_34_2")
# Dynamic resources run in the CLI's pulumi-python plugin, through its default provider.
DEFAULT_COMMAND_PROVIDER = urn("pulumi:providers:pulumi-python", "default")
NAMESPACE_URN = urn("kubernetes:core/v1:Namespace", "istio-system")
BASE_URN = urn("kubernetes:helm.sh/v3:Release", "istio-base")
ISTIOD_URN = urn("kubernetes:helm.sh/v3:Release", "istiod")
GATEWAY_URN = urn("kubernetes:helm.sh/v3:Release", "istio-ingressgateway")
KIALI_URN = urn("kubernetes:core/v1:Service", "istio-system/kiali")
GRAFANA_URN = urn("kubernetes:core/v1:Service", "istio-system/grafana")
RESTART_URN = urn("pulumi-python:dynamic/istio-mesh:Command", "restart-default")
CNI_URN = urn("kubernetes:helm.sh/v3:Release", "istio-cni")
ZTUNNEL_URN = urn("kubernetes:helm.sh/v3:Release", "ztunnel")
NAMESPACE_PATCH = "kubernetes:core/v1:NamespacePatch"
APPS_URN = urn(NAMESPACE_PATCH, "apps-ambient")
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
GATEWAY_API_URN = urn("istio-mesh:index:GatewayApi", "gateway-api")
GATEWAY_API_CRDS_URN = urn("kubernetes:yaml/v2:ConfigGroup", "gateway-api-crds")
# What Istio 1.28 was built against (components/gateway_api_versions.py), and the standard channel's kinds.
GATEWAY_API = "v1.4.1"
GATEWAY_API_KINDS = ("gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants")
# A day when 1.22 and 1.23 were still supported, so an ambient stack on them breaks only the ambient rule.
BEFORE_AMBIENT_GA = date(2024, 10, 1)


def resource(type_: str, name: str, inputs: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {
        "urn": urn(type_, name),
        "type": type_,
        "name": name,
        "parent": None,
        "dependsOn": [],
        "provider": PROVIDER if type_.startswith("kubernetes:") else None,
        "protect": False,
        "retainOnDelete": False,
        "ignoreChanges": [],
        "inputs": inputs,
    } | options


def release(name: str, chart: str, values: dict[str, Any], **options: Any) -> dict[str, Any]:
    inputs = {
        "name": name,
        "chart": chart,
        "version": ISTIO,
        "namespace": "istio-system",
        "repositoryOpts": {"repo": REPO},
        "values": values,
    }
    return resource("kubernetes:helm.sh/v3:Release", name, inputs, dependsOn=[NAMESPACE_URN], **options)


def service(name: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    inputs = {"metadata": {"name": name, "namespace": "istio-system"}, "spec": {"ports": ports}}
    return resource("kubernetes:core/v1:Service", f"istio-system/{name}", inputs)


def good_plan(environment: str = "production") -> dict[str, Any]:
    """A small plan of the program's shape that every rule accepts (on `TODAY`)."""
    return {
        "project": "istio-mesh",
        "stack": STACK,
        "resources": [
            resource(
                "pulumi:providers:kubernetes", "cluster", {"context": CONTEXT, "kubeconfig": KUBECONFIG}
            ),
            resource(
                "kubernetes:core/v1:Namespace",
                "istio-system",
                {"metadata": {"name": "istio-system", "labels": {"istio-mesh/environment": environment}}},
            ),
            release("istio-base", "base", {}, protect=True),
            release("istiod", "istiod", {"pilot": {"autoscaleEnabled": False}}),
            release(
                "istio-ingressgateway",
                "gateway",
                {
                    "service": {
                        "type": "NodePort",
                        "ports": [
                            {"name": "http2", "port": 80, "targetPort": 80, "nodePort": 31080},
                            {"name": "https", "port": 443, "targetPort": 443, "nodePort": 31443},
                        ],
                    }
                },
            ),
            service("kiali", [{"name": "http", "port": 20001}, {"name": "http-metrics", "port": 9090}]),
            service("prometheus", [{"name": "http", "port": 9090}]),
            service("grafana", [{"name": "service", "port": 3000}]),
            service("tracing", [{"name": "http-query", "port": 80, "targetPort": 16686}]),
            resource(
                "kubernetes:core/v1:ConfigMap",
                "istio-system/kiali",
                {
                    "metadata": {"name": "kiali", "namespace": "istio-system"},
                    # What Istio's sample addon ships: fine while Kiali is ClusterIP.
                    "data": {"config.yaml": "auth:\n  strategy: anonymous\nserver:\n  web_root: /kiali\n"},
                },
            ),
            resource(
                "pulumi-python:dynamic/istio-mesh:Command",
                "restart-default",
                {
                    "create": f"kubectl {TARGET} rollout restart deployment --namespace default"
                    f" && kubectl --context={CONTEXT} --kubeconfig={KUBECONFIG} rollout status deployment"
                    " --namespace default --timeout 5m",
                },
                provider=DEFAULT_COMMAND_PROVIDER,
            ),
        ],
        "outputs": {},
    }


def namespace_patch(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """A label on an application namespace, as components/injection.py applies it."""
    metadata = {"name": namespace, "labels": labels, "annotations": {"pulumi.com/patchForce": "true"}}
    return resource(NAMESPACE_PATCH, name, {"metadata": metadata})


def crd_urn(plural: str) -> str:
    return urn(CRD, f"gateway-api-crds:{plural}.gateway.networking.k8s.io")


def gateway_api_crd(plural: str, version: str = GATEWAY_API) -> dict[str, Any]:
    """One Gateway API CRD as the ConfigGroup's object (its name `<group>:<object>`, as the provider names it)."""
    name = f"{plural}.gateway.networking.k8s.io"
    metadata = {
        "name": name,
        "annotations": {
            "gateway.networking.k8s.io/bundle-version": version,
            "gateway.networking.k8s.io/channel": "standard",
        },
    }
    inputs = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
    }
    return resource(CRD, f"gateway-api-crds:{name}", inputs, parent=GATEWAY_API_CRDS_URN)


def ambient_plan(environment: str = "production") -> dict[str, Any]:
    """`good_plan` in ambient mode: istiod and istio-cni with the ambient profile, ztunnel, an ambient
    namespace beside the injected one, and the Gateway API CRDs its waypoints need. Every rule accepts it."""
    plan = good_plan(environment)
    find(plan, "istiod")["inputs"]["values"]["profile"] = "ambient"
    restart = plan["resources"].pop()  # stays last
    plan["resources"] += [
        release("istio-cni", "cni", {"profile": "ambient"}),
        release("ztunnel", "ztunnel", {}),
        namespace_patch("default-injection", "default", {"istio-injection": "enabled"}),
        namespace_patch("apps-ambient", "apps", {"istio.io/dataplane-mode": "ambient"}),
        resource("istio-mesh:index:GatewayApi", "gateway-api", {}, provider=None),
        resource(
            "kubernetes:yaml/v2:ConfigGroup", "gateway-api-crds", {}, provider=None, parent=GATEWAY_API_URN
        ),
        *(gateway_api_crd(plural) for plural in GATEWAY_API_KINDS),
        restart,
    ]
    return plan


def find(plan: Mapping[str, Any], name: str, type_: str | None = None) -> dict[str, Any]:
    """The plan's resource named `name` (the first one, or the one of `type_`), to change in place."""
    return next(r for r in plan["resources"] if r["name"] == name and type_ in (None, r["type"]))


def lines(plan: Mapping[str, Any], today: date = TODAY) -> list[str]:
    return [str(v) for v in check_plan(plan, today)]


# --- the good plan and the context ---------------------------------------------------------------


@pytest.mark.parametrize("environment", ["production", "development"])
def test_good_plan_has_no_violations(environment: str) -> None:
    assert lines(good_plan(environment)) == []
    assert lines(ambient_plan(environment)) == []


def test_context_reads_environment_and_cluster() -> None:
    context = context_for(good_plan()["resources"], TODAY)
    assert context == RuleContext(
        today=TODAY,
        production=True,
        environment="production",
        cluster_provider="cluster",
        kube_context=CONTEXT,
        kubeconfig=KUBECONFIG,
    )


@pytest.mark.parametrize(
    ("labels", "production"),
    [
        ({"istio-mesh/environment": "production"}, True),
        ({"istio-mesh/environment": " Production "}, True),
        ({"istio-mesh/environment": "development"}, False),
        ({"istio-mesh/environment": "prod"}, False),
        ({}, False),
    ],
)
def test_production_comes_from_the_namespace_label(labels: dict[str, str], production: bool) -> None:
    plan = good_plan()
    find(plan, "istio-system")["inputs"]["metadata"]["labels"] = labels
    assert context_for(plan["resources"], TODAY).production is production


def test_violation_str() -> None:
    assert (
        str(Violation("explicit-provider", "urn:x", "no provider")) == "explicit-provider: urn:x: no provider"
    )


# --- one test (or a few) per rule --------------------------------------------------------------


@pytest.mark.parametrize(
    "version", ["~1.28.0", "^1.28.0", "1.28.x", "1.28.*", "*", "", "1.28", ">=1.28.0", "v1.28.2"]
)
def test_exact_chart_versions(version: str) -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"]["version"] = version
    assert lines(plan) == [
        f'exact-chart-versions: {ISTIOD_URN}: chart istiod version "{version}" is not an exact x.y.z version '
        "(no ranges, ^, ~, *, x, pre-releases or empty)"
    ]


def test_exact_chart_versions_missing() -> None:
    plan = good_plan()
    del find(plan, "istiod")["inputs"]["version"]
    assert lines(plan) == [
        f"exact-chart-versions: {ISTIOD_URN}: chart istiod has no version; pin an exact x.y.z version"
    ]


def test_node_port_outside_range() -> None:
    plan = good_plan()
    find(plan, "istio-ingressgateway")["inputs"]["values"]["service"]["ports"][0]["nodePort"] = 29999
    assert lines(plan) == [f"node-ports-valid: {GATEWAY_URN}: nodePort 29999 is outside 30000-32767"]


def test_node_port_used_twice_in_one_resource() -> None:
    plan = good_plan()
    find(plan, "istio-ingressgateway")["inputs"]["values"]["service"]["ports"][1]["nodePort"] = 31080
    assert lines(plan) == [
        f"node-ports-valid: {GATEWAY_URN}: nodePort 31080 is used twice by istio-ingressgateway"
    ]


def test_node_port_used_by_two_resources() -> None:
    plan = good_plan("development")  # a NodePort dashboard is fine off production
    find(plan, "istio-system/grafana")["inputs"]["spec"] = {
        "type": "NodePort",
        "ports": [{"name": "service", "port": 3000, "nodePort": 31080}],
    }
    assert lines(plan) == [
        f"node-ports-valid: {GATEWAY_URN}: nodePort 31080 is used by both istio-system/grafana and istio-ingressgateway"
    ]


def test_node_port_not_an_integer() -> None:
    plan = good_plan()
    find(plan, "istio-ingressgateway")["inputs"]["values"]["service"]["ports"][0]["nodePort"] = "http"
    assert lines(plan) == [
        f'node-ports-valid: {GATEWAY_URN}: nodePort "http" is not an integer in 30000-32767'
    ]


def test_production_dashboards_internal() -> None:
    plan = good_plan()
    find(plan, "istio-system/grafana")["inputs"]["spec"]["type"] = "LoadBalancer"
    assert lines(plan) == [
        f"production-dashboards-internal: {GRAFANA_URN}: dashboard Service istio-system/grafana has type "
        "LoadBalancer; on production dashboards must be ClusterIP"
    ]


def test_exposed_dashboards_are_fine_off_production() -> None:
    plan = good_plan("development")
    find(plan, "istio-system/grafana")["inputs"]["spec"]["type"] = "LoadBalancer"
    assert lines(plan) == []


def test_production_base_protected() -> None:
    plan = good_plan()
    find(plan, "istio-base")["protect"] = False
    assert lines(plan) == [
        f"production-base-protected: {BASE_URN}: base release istio-base holds Istio's CRDs and has "
        "protect: false; production requires protect: true"
    ]


def test_unprotected_base_is_fine_off_production() -> None:
    plan = good_plan("development")
    find(plan, "istio-base")["protect"] = False
    assert lines(plan) == []


ISTIO_126_EOL = (
    "is out of support: 1.26 went out of support on 2025-12-11 (six weeks after 1.28.0 of 2025-10-30); "
    "on 2026-01-15 use 1.27 or newer"
)


@pytest.mark.parametrize("environment", ["production", "development"])
def test_istio_version_supported(environment: str) -> None:
    # The rule reports on every stack; only the pack's enforcement level depends on the environment.
    plan = good_plan(environment)
    find(plan, "istiod")["inputs"]["version"] = "1.26.3"
    assert lines(plan) == [
        f"istio-version-supported: {ISTIOD_URN}: Istio 1.26.3 (chart istiod) {ISTIO_126_EOL}"
    ]


def test_istio_version_older_than_table() -> None:
    plan = good_plan()
    find(plan, "istio-base")["inputs"]["version"] = "1.19.4"
    assert lines(plan) == [
        f"istio-version-supported: {BASE_URN}: Istio 1.19.4 (chart base) is out of support: 1.19 is older "
        "than 1.20, the oldest minor of the support table, and long out of support; "
        "on 2026-01-15 use 1.27 or newer"
    ]


def test_kiali_not_anonymous_when_exposed() -> None:
    plan = good_plan("development")
    find(plan, "istio-system/kiali")["inputs"]["spec"]["type"] = "NodePort"
    assert lines(plan) == [
        f"kiali-not-anonymous-when-exposed: {KIALI_URN}: Kiali Service istio-system/kiali has type NodePort "
        "and ConfigMap istio-system/kiali sets auth.strategy anonymous; an exposed Kiali needs token, "
        "openid, openshift or header"
    ]


def test_exposed_anonymous_kiali_on_production_breaks_two_rules_in_rule_order() -> None:
    plan = good_plan()
    find(plan, "istio-system/kiali")["inputs"]["spec"]["type"] = "LoadBalancer"
    assert lines(plan) == [
        f"production-dashboards-internal: {KIALI_URN}: dashboard Service istio-system/kiali has type "
        "LoadBalancer; on production dashboards must be ClusterIP",
        f"kiali-not-anonymous-when-exposed: {KIALI_URN}: Kiali Service istio-system/kiali has type "
        "LoadBalancer and ConfigMap istio-system/kiali sets auth.strategy anonymous; an exposed Kiali "
        "needs token, openid, openshift or header",
    ]


@pytest.mark.parametrize(
    "config",
    [
        "auth:\n  strategy: token\n",
        "auth:\n  strategy: openid\n",
        "server:\n  web_root: /kiali\n",  # no auth block: Kiali's own default, token
        "auth: {}\n",
        "",
    ],
)
def test_exposed_kiali_with_authentication_is_fine(config: str) -> None:
    plan = good_plan("development")
    find(plan, "istio-system/kiali")["inputs"]["spec"]["type"] = "NodePort"
    find(plan, "istio-system/kiali", "kubernetes:core/v1:ConfigMap")["inputs"]["data"]["config.yaml"] = config
    assert lines(plan) == []


def test_exposed_kiali_with_unreadable_config() -> None:
    plan = good_plan("development")
    find(plan, "istio-system/kiali")["inputs"]["spec"]["type"] = "NodePort"
    find(plan, "istio-system/kiali", "kubernetes:core/v1:ConfigMap")["inputs"]["data"]["config.yaml"] = (
        "[secret]"
    )
    assert lines(plan) == [
        f"kiali-not-anonymous-when-exposed: {KIALI_URN}: Kiali Service istio-system/kiali has type NodePort "
        "and the auth strategy in ConfigMap istio-system/kiali cannot be read (config.yaml is not visible "
        "in the plan); an exposed Kiali needs token, openid, openshift or header"
    ]


def test_explicit_provider_missing() -> None:
    plan = good_plan()
    find(plan, "istio-system/grafana")["provider"] = None
    assert lines(plan) == [
        f"explicit-provider: {GRAFANA_URN}: has no explicit provider, so it would use the ambient "
        "kubeconfig; pass cluster with ResourceOptions(provider=...) or providers=..."
    ]


def test_explicit_provider_default() -> None:
    plan = good_plan()
    find(plan, "istio-system/grafana")["provider"] = DEFAULT_K8S_PROVIDER
    assert lines(plan) == [
        f"explicit-provider: {GRAFANA_URN}: uses the default provider default_4_34_2; "
        "pass cluster with ResourceOptions(provider=...) or providers=..."
    ]


def test_explicit_provider_skips_components() -> None:
    plan = good_plan()
    plan["resources"].append(resource("kubernetes:yaml:ConfigGroup", "addons", {}, provider=None))
    plan["resources"].append(resource("kubernetes:yaml/v2:ConfigGroup", "kiali", {}, provider=None))
    plan["resources"].append(resource("kubernetes:core/v1:Secret", "x", {}, provider=None, custom=False))
    assert lines(plan) == []


def restart_with(create: str) -> dict[str, Any]:
    plan = good_plan()
    find(plan, "restart-default")["inputs"]["create"] = create
    return plan


def test_commands_name_cluster_missing_context() -> None:
    plan = restart_with(f"kubectl --kubeconfig {KUBECONFIG} rollout restart deployment -n default")
    assert lines(plan) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `kubectl --kubeconfig {KUBECONFIG} "
        f"rollout restart deployment -n default` has no --context; expected --context {CONTEXT}"
    ]


@pytest.mark.parametrize(
    ("create", "call"),
    [
        (
            f"kubectl --context kind-other --kubeconfig {KUBECONFIG} get ns",
            f"kubectl --context kind-other --kubeconfig {KUBECONFIG} get ns",
        ),
        (
            f"kubectl {TARGET} get ns;kubectl --context=kind-other --kubeconfig={KUBECONFIG} get ns",
            f"kubectl --context=kind-other --kubeconfig={KUBECONFIG} get ns",
        ),
        (
            f"set -e\n/usr/local/bin/kubectl --kubeconfig {KUBECONFIG} --context kind-other get ns | grep x",
            f"/usr/local/bin/kubectl --kubeconfig {KUBECONFIG} --context kind-other get ns",
        ),
    ],
)
def test_commands_name_cluster_wrong_context(create: str, call: str) -> None:
    assert lines(restart_with(create)) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `{call}` uses --context kind-other; "
        f"expected --context {CONTEXT}"
    ]


def test_commands_name_cluster_missing_kubeconfig_in_a_nested_shell() -> None:
    plan = restart_with(f"bash -c 'kubectl --context {CONTEXT} get ns && echo kubectl is fine'")
    assert lines(plan) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `kubectl --context {CONTEXT} get ns` "
        f"has no --kubeconfig; expected --kubeconfig {KUBECONFIG}"
    ]


def test_commands_name_cluster_checks_delete_and_ignores_flags_after_double_dash() -> None:
    plan = good_plan()
    find(plan, "restart-default")["inputs"]["delete"] = f"kubectl {TARGET} exec deploy/x -- kubectl get ns"
    assert lines(plan) == []
    find(plan, "restart-default")["inputs"]["delete"] = "kubectl exec deploy/x -- kubectl --context a get ns"
    assert lines(plan) == [
        f"commands-name-cluster: {RESTART_URN}: delete: kubectl call `kubectl exec deploy/x -- kubectl "
        f"--context a get ns` has no --context; expected --context {CONTEXT}",
        f"commands-name-cluster: {RESTART_URN}: delete: kubectl call `kubectl exec deploy/x -- kubectl "
        f"--context a get ns` has no --kubeconfig; expected --kubeconfig {KUBECONFIG}",
    ]


@pytest.mark.parametrize(
    "create",
    [
        "echo kubectl is not run here && grep -c kubectl /etc/hosts",
        f"timeout 60s kubectl {TARGET} get ns",
        f"KUBE_EDITOR=true sudo -E env A=1 kubectl {TARGET} get ns",
        f"kubectl {TARGET} get ns \\\n  --output name",
        f"if kubectl {TARGET} get ns x; then kubectl {TARGET} delete ns x; fi",
        f"sh -ec 'kubectl {TARGET} get ns'",
    ],
)
def test_kubectl_calls_are_found_where_the_shell_runs_them(create: str) -> None:
    assert lines(restart_with(create)) == []
    # The same script with the cluster flags removed is reported, once per kubectl call.
    bare = create.replace(f" {TARGET}", "")
    assert len(lines(restart_with(bare))) == 2 * create.count(f"kubectl {TARGET}")


def test_commands_with_secret_kubeconfig_need_the_flag_only() -> None:
    plan = good_plan()
    find(plan, "cluster")["inputs"]["kubeconfig"] = "[secret]"
    assert lines(plan) == []
    find(plan, "restart-default")["inputs"]["create"] = f"kubectl --context {CONTEXT} get ns"
    assert lines(plan) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `kubectl --context {CONTEXT} get ns` "
        "has no --kubeconfig; expected --kubeconfig the provider's kubeconfig"
    ]


def test_commands_without_kubeconfig_on_the_provider_need_only_the_context() -> None:
    plan = good_plan()
    del find(plan, "cluster")["inputs"]["kubeconfig"]
    find(plan, "restart-default")["inputs"]["create"] = f"kubectl --context {CONTEXT} get ns"
    assert lines(plan) == []


def test_commands_unparseable() -> None:
    plan = restart_with(f"kubectl {TARGET} get ns 'unterminated")
    assert lines(plan) == [
        f"commands-name-cluster: {RESTART_URN}: create: cannot be parsed to check its kubectl calls "
        "(No closing quotation)"
    ]


AMBIENT_GA = "on production ambient needs Istio 1.24.0 or newer, where it is GA"


def test_production_ambient_ga_ztunnel() -> None:
    plan = ambient_plan()
    find(plan, "ztunnel")["inputs"]["version"] = "1.23.6"
    assert lines(plan, BEFORE_AMBIENT_GA) == [
        f"production-ambient-ga: {ZTUNNEL_URN}: ztunnel release ztunnel runs ambient mode at Istio 1.23.6; "
        f"{AMBIENT_GA}"
    ]


def test_production_ambient_ga_cni() -> None:
    plan = ambient_plan()
    find(plan, "istio-cni")["inputs"]["version"] = "1.22.8"
    assert lines(plan, BEFORE_AMBIENT_GA) == [
        f"production-ambient-ga: {CNI_URN}: cni release istio-cni runs ambient mode (profile ambient) at "
        f"Istio 1.22.8; {AMBIENT_GA}"
    ]


def test_production_ambient_ga_istiod_and_the_ambient_namespace_it_serves() -> None:
    plan = ambient_plan()
    find(plan, "istiod")["inputs"]["version"] = "1.23.6"
    assert lines(plan, BEFORE_AMBIENT_GA) == [
        f"production-ambient-ga: {APPS_URN}: namespace apps is ambient (istio.io/dataplane-mode=ambient) and "
        f"istiod release istiod is at Istio 1.23.6; {AMBIENT_GA}",
        f"production-ambient-ga: {ISTIOD_URN}: istiod release istiod runs ambient mode (profile ambient) at "
        f"Istio 1.23.6; {AMBIENT_GA}",
    ]


def test_production_ambient_ga_an_ambient_namespace_under_a_sidecar_istiod() -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"]["version"] = "1.23.6"
    assert lines(plan, BEFORE_AMBIENT_GA) == []
    plan["resources"].append(namespace_patch("apps-ambient", "apps", {"istio.io/dataplane-mode": "ambient"}))
    assert lines(plan, BEFORE_AMBIENT_GA) == [
        f"production-ambient-ga: {APPS_URN}: namespace apps is ambient (istio.io/dataplane-mode=ambient) and "
        f"istiod release istiod is at Istio 1.23.6; {AMBIENT_GA}"
    ]


def test_ambient_below_ga_is_fine_off_production() -> None:
    plan = ambient_plan("development")
    for name in ("istiod", "istio-cni", "ztunnel"):
        find(plan, name)["inputs"]["version"] = "1.23.6"
    assert lines(plan, BEFORE_AMBIENT_GA) == []


def test_gateway_api_crds_minimum() -> None:
    plan = ambient_plan()
    find(plan, "gateway-api-crds:httproutes.gateway.networking.k8s.io")["inputs"]["metadata"]["annotations"][
        "gateway.networking.k8s.io/bundle-version"
    ] = "v0.8.0"
    assert lines(plan) == [
        f"gateway-api-crds-minimum: {crd_urn('httproutes')}: Gateway API CRD httproutes.gateway.networking.k8s.io "
        "has bundle-version v0.8.0; Istio 1.28.2 (chart istiod) needs v1.0.0 or newer"
    ]


def test_gateway_api_crds_minimum_of_one_kind() -> None:
    """From 1.30 a CRD may need more than v1.0.0: TLSRoute v1.5.0 (MinimumCRDVersions)."""
    plan = ambient_plan()
    find(plan, "istiod")["inputs"]["version"] = "1.30.3"
    assert lines(plan) == []
    plan["resources"].insert(-1, gateway_api_crd("tlsroutes"))
    assert lines(plan) == [
        f"gateway-api-crds-minimum: {crd_urn('tlsroutes')}: Gateway API CRD tlsroutes.gateway.networking.k8s.io "
        "has bundle-version v1.4.1; Istio 1.30.3 (chart istiod) needs v1.5.0 or newer"
    ]


def test_gateway_api_crds_known() -> None:
    plan = ambient_plan()
    find(plan, "istiod")["inputs"]["version"] = "1.40.0"
    assert lines(plan) == [
        f"istio-version-known: {ISTIOD_URN}: Istio 1.40.0 (chart istiod) is unknown to the support table: 1.40 "
        "is newer than 1.31, the newest minor of the support table (checked 2026-12-02); check upstream "
        "(https://istio.io/latest/docs/releases/supported-releases/) and update policy/istio_releases.py",
        f"gateway-api-crds-known: {ISTIOD_URN}: Istio 1.40.0 (chart istiod) is unknown to the Gateway API "
        "table, which knows 1.22 to 1.31: the 5 Gateway API CRDs are not checked; add 1.40 to "
        "components/gateway_api_versions.py from istio/istio at that tag",
    ]


def test_ambient_namespaces_not_injected() -> None:
    plan = ambient_plan()
    find(plan, "apps-ambient")["inputs"]["metadata"]["labels"]["istio-injection"] = "enabled"
    assert lines(plan) == [
        f"ambient-namespaces-not-injected: {APPS_URN}: namespace apps is ambient (istio.io/dataplane-mode=ambient "
        "on NamespacePatch apps-ambient) and injected (istio-injection=enabled on NamespacePatch apps-ambient); "
        "sidecars take precedence over ztunnel: label it for one data plane"
    ]


def test_ambient_namespaces_not_injected_merges_a_namespaces_resources() -> None:
    plan = ambient_plan()
    plan["resources"].append(
        resource(
            "kubernetes:core/v1:Namespace",
            "apps",
            {"metadata": {"name": "apps", "labels": {"istio.io/rev": "canary"}}},
        )
    )
    assert lines(plan) == [
        f"ambient-namespaces-not-injected: {APPS_URN}: namespace apps is ambient (istio.io/dataplane-mode=ambient "
        "on NamespacePatch apps-ambient) and injected (istio.io/rev=canary on Namespace apps); "
        "sidecars take precedence over ztunnel: label it for one data plane"
    ]


def test_check_all_orders_by_rule_then_urn() -> None:
    plan = good_plan()
    find(plan, "istio-system/grafana")["provider"] = None
    find(plan, "istio-system/kiali")["provider"] = None
    find(plan, "istiod")["inputs"]["version"] = "latest"
    found = check_plan(plan, TODAY)
    assert [(v.rule, v.urn) for v in found] == [
        ("exact-chart-versions", ISTIOD_URN),
        ("explicit-provider", GRAFANA_URN),
        ("explicit-provider", KIALI_URN),
    ]
    assert [v.rule for v in found] == sorted((v.rule for v in found), key=RULE_IDS.index)


def test_rule_ids() -> None:
    assert RULE_IDS == (
        "exact-chart-versions",
        "node-ports-valid",
        "production-dashboards-internal",
        "production-base-protected",
        "production-ambient-ga",
        "istio-version-supported",
        "istio-version-known",
        "gateway-api-crds-minimum",
        "gateway-api-crds-known",
        "kiali-not-anonymous-when-exposed",
        "ambient-namespaces-not-injected",
        "explicit-provider",
        "commands-name-cluster",
    )


def test_check_plan_rejects_a_plan_without_resource_objects() -> None:
    with pytest.raises(ValueError, match="list of resource objects"):
        check_plan({"resources": ["not a resource"]}, TODAY)


# --- the support table -----------------------------------------------------------------------------


def test_table_is_consecutive_and_in_order() -> None:
    minors = [parse_minor(m) for m in FIRST_RELEASES]
    assert minors == sorted(minors)
    assert all(b == (a[0], a[1] + 1) for a, b in itertools.pairwise(minors))
    dates = list(FIRST_RELEASES.values())
    assert dates == sorted(dates)


@pytest.mark.parametrize(
    ("minor", "eol"),
    [
        ("1.20", date(2024, 6, 21)),  # 1.22.0 (2024-05-10) + 6 weeks
        ("1.22", date(2024, 12, 17)),  # 1.24.0 (2024-11-05) + 6 weeks
        ("1.28", date(2026, 6, 26)),  # 1.30.0 (2026-05-15) + 6 weeks
        ("1.29", date(2026, 10, 15)),  # announced; 1.31.0 (2026-08-20) + 6 weeks would be 2026-10-01
        ("1.30", None),
        ("1.31", None),
    ],
)
def test_end_of_support(minor: str, eol: date | None) -> None:
    assert end_of_support(minor) == eol


@pytest.mark.parametrize("minor", ["1.20", "1.28"])
def test_support_ends_on_the_end_of_support_day(minor: str) -> None:
    eol = end_of_support(minor)
    assert eol is not None
    version = f"{minor}.1"
    assert support_status(version, eol - timedelta(days=1)).supported is True
    assert support_status(version, eol).supported is False
    assert support_status(version, eol + timedelta(days=1)).supported is False
    assert support_status(version, eol).end_of_support == eol


def test_minor_without_known_successor_is_supported() -> None:
    status = support_status("1.30.0", date(2030, 1, 1))
    assert (status.supported, status.end_of_support, status.in_table) == (True, None, True)


def test_minor_newer_than_table_is_supported_with_unknown_end() -> None:
    status = support_status("1.32.0", TODAY)
    assert (status.supported, status.end_of_support, status.in_table, status.minor) == (
        True,
        None,
        False,
        "1.32",
    )


@pytest.mark.parametrize("version", ["1.19.9", "1.0.0", "0.8.0"])
def test_minor_older_than_table_is_unsupported(version: str) -> None:
    status = support_status(version, date(2023, 11, 14))
    assert (status.supported, status.in_table) == (False, False)


@pytest.mark.parametrize(
    ("version", "minor"), [("1.24", (1, 24)), ("v1.24.3", (1, 24)), ("1.24.0-rc.1", (1, 24))]
)
def test_parse_minor(version: str, minor: tuple[int, int]) -> None:
    assert parse_minor(version) == minor


@pytest.mark.parametrize("version", ["", "latest", "1", "1.x", "~1.24.0"])
def test_parse_minor_rejects(version: str) -> None:
    with pytest.raises(ValueError, match="not an Istio version"):
        parse_minor(version)


def test_oldest_supported_minor() -> None:
    assert istio_releases.oldest_supported_minor(TODAY) == "1.27"
    assert istio_releases.oldest_supported_minor(date(2040, 1, 1)) == "1.30"


# --- the policy pack -------------------------------------------------------------------------------

EXPECTED_POLICIES = [
    ("exact-chart-versions", EnforcementLevel.MANDATORY),
    ("node-ports-valid", EnforcementLevel.MANDATORY),
    ("production-dashboards-internal", EnforcementLevel.MANDATORY),
    ("production-base-protected", EnforcementLevel.MANDATORY),
    ("production-ambient-ga", EnforcementLevel.MANDATORY),
    ("istio-version-supported", EnforcementLevel.MANDATORY),
    ("istio-version-supported-advisory", EnforcementLevel.ADVISORY),
    ("istio-version-known", EnforcementLevel.ADVISORY),
    ("gateway-api-crds-minimum", EnforcementLevel.MANDATORY),
    ("gateway-api-crds-known", EnforcementLevel.ADVISORY),
    ("kiali-not-anonymous-when-exposed", EnforcementLevel.MANDATORY),
    ("kiali-not-anonymous-when-exposed-advisory", EnforcementLevel.ADVISORY),
    ("ambient-namespaces-not-injected", EnforcementLevel.MANDATORY),
    ("explicit-provider", EnforcementLevel.MANDATORY),
    ("commands-name-cluster", EnforcementLevel.MANDATORY),
]


def test_pack_builds_its_policies_without_an_engine() -> None:
    assert pack.PACK_NAME == "istio-mesh"
    assert [(p.name, p.enforcement_level) for p in pack.build_policies()] == EXPECTED_POLICIES


def engine_resources(plan: Mapping[str, Any]) -> list[PolicyResource]:
    """The plan as the policy SDK hands it to a stack policy: proxied props, numbers as floats."""
    providers: dict[str, PolicyProviderResource] = {}
    for r in plan["resources"]:
        if r["type"].startswith("pulumi:providers:"):
            providers[r["urn"]] = PolicyProviderResource(
                r["type"], _proxied(r["inputs"]), r["urn"], r["name"]
            )
    found: list[PolicyResource] = []
    for r in plan["resources"]:
        opts = PolicyResourceOptions(
            r["protect"], r["ignoreChanges"], None, [], PolicyCustomTimeouts(0, 0, 0), [], r["parent"]
        )
        provider = r["provider"]
        if provider and provider not in providers:  # a default provider the plan does not list
            providers[provider] = PolicyProviderResource(
                "pulumi:providers:x", _proxied({}), provider, "default"
            )
        found.append(
            PolicyResource(
                r["type"],
                _proxied(r["inputs"]),
                r["urn"],
                r["name"],
                opts,
                providers.get(provider) if provider else None,
                None,
                [],
                {},
            )
        )
    return found


def _floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _proxied(inputs: Mapping[str, Any]) -> Any:
    return unknown_checking_proxy(_floats(copy.deepcopy(dict(inputs))))


def run_policy(name: str, plan: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    policy = next(p for p in pack.build_policies(lambda: TODAY) if p.name == name)
    reported: list[tuple[str, str | None]] = []
    policy.validate(StackValidationArgs(engine_resources(plan)), lambda m, u=None: reported.append((m, u)))
    return reported


def broken_plan(environment: str, newest_istio_unknown: bool = False) -> dict[str, Any]:
    """A plan that breaks every rule at least once (the production-only ones on production only).

    But one of the two Gateway API rules: the CRDs are held to the minimums of the newest Istio's minor
    (`gateway-api-crds-minimum`) or, when the table does not know that minor, reported unchecked
    (`gateway-api-crds-known`). `newest_istio_unknown` adds an istiod of a minor newer than the table.
    """
    plan = ambient_plan(environment)
    find(plan, "ztunnel")["inputs"]["version"] = "1.23.6"
    find(plan, "gateway-api-crds:httproutes.gateway.networking.k8s.io")["inputs"]["metadata"]["annotations"][
        "gateway.networking.k8s.io/bundle-version"
    ] = "v0.8.0"
    find(plan, "default-injection")["inputs"]["metadata"]["labels"]["istio.io/dataplane-mode"] = "ambient"
    if newest_istio_unknown:
        plan["resources"].insert(-1, release("istiod-canary", "istiod", {}))
        find(plan, "istiod-canary")["inputs"]["version"] = "1.40.0"
    find(plan, "istiod")["inputs"]["version"] = "1.26.3"
    find(plan, "istio-base")["inputs"]["version"] = "^1.28.0"
    find(plan, "istio-ingressgateway")["inputs"]["version"] = "1.32.0"
    find(plan, "istio-base")["protect"] = False
    find(plan, "istio-ingressgateway")["inputs"]["values"]["service"]["ports"][0]["nodePort"] = 29999
    find(plan, "istio-system/kiali")["inputs"]["spec"]["type"] = "NodePort"
    find(plan, "istio-system/grafana")["provider"] = DEFAULT_K8S_PROVIDER
    find(plan, "restart-default")["inputs"]["create"] = "kubectl get ns"
    return plan


def by_rule(plan: Mapping[str, Any]) -> dict[str, list[tuple[str, str | None]]]:
    found: dict[str, list[tuple[str, str | None]]] = {}
    for violation in check_plan(plan, TODAY):
        found.setdefault(violation.rule, []).append((violation.message, violation.urn))
    return found


PRODUCTION_ONLY = {"production-dashboards-internal", "production-base-protected", "production-ambient-ga"}


@pytest.mark.parametrize("newest_istio_unknown", [False, True])
@pytest.mark.parametrize("environment", ["production", "development"])
def test_pack_reports_what_the_rules_report(environment: str, newest_istio_unknown: bool) -> None:
    plan = broken_plan(environment, newest_istio_unknown)
    expected = by_rule(plan)
    production = environment == "production"
    unchecked = "gateway-api-crds-minimum" if newest_istio_unknown else "gateway-api-crds-known"
    assert set(expected) == set(RULE_IDS) - (set() if production else PRODUCTION_ONLY) - {unchecked}
    for policy in pack.POLICY_SPECS:
        applies = policy.applies is None or policy.applies(context_for(plan["resources"], TODAY))
        if not applies:
            with pytest.raises(_NotApplicableError) as raised:
                run_policy(policy.name, plan)
            assert raised.value.reason == policy.not_applicable
            continue
        assert sorted(run_policy(policy.name, plan), key=str) == sorted(
            expected.get(policy.rule.id, []), key=str
        )


@pytest.mark.parametrize("plan", [good_plan(), ambient_plan()], ids=["sidecar", "ambient"])
def test_pack_on_the_good_plan_reports_nothing(plan: dict[str, Any]) -> None:
    for name, _ in EXPECTED_POLICIES:
        if not name.endswith("-advisory"):
            assert run_policy(name, plan) == []


def test_unknown_values_reach_the_sdk_as_unknown() -> None:
    """A value unknown during preview is not judged: the SDK's UnknownValueError gets through."""
    plan = good_plan()
    find(plan, "istiod")["inputs"]["version"] = UNKNOWN_STRING_VALUE
    with pytest.raises(UnknownValueError):
        run_policy("exact-chart-versions", plan)


def test_plan_resource_shape() -> None:
    [*_, restart] = engine_resources(good_plan())
    shaped = pack.plan_resource(restart)
    assert set(shaped) == {
        "urn",
        "type",
        "name",
        "parent",
        "dependsOn",
        "provider",
        "protect",
        "ignoreChanges",
        "inputs",
    }
    assert (shaped["urn"], shaped["provider"], shaped["protect"]) == (
        RESTART_URN,
        DEFAULT_COMMAND_PROVIDER,
        False,
    )


def analyze_stack_request(plan: Mapping[str, Any]) -> analyzer_pb2.AnalyzeStackRequest:
    """The plan as the Pulumi engine sends it to a policy pack over gRPC."""
    by_urn = {r["urn"]: r for r in plan["resources"]}
    resources = []
    for r in plan["resources"]:
        properties = struct_pb2.Struct()
        properties.update(r["inputs"])
        provider = None
        if r["provider"]:
            declared = by_urn.get(r["provider"], {"type": "pulumi:providers:kubernetes", "inputs": {}})
            provider_properties = struct_pb2.Struct()
            provider_properties.update(declared["inputs"])
            provider = analyzer_pb2.AnalyzerProviderResource(
                type=declared["type"],
                urn=r["provider"],
                name=r["provider"].rsplit("::", 1)[-1],
                properties=provider_properties,
            )
        resources.append(
            analyzer_pb2.AnalyzerResource(
                type=r["type"],
                urn=r["urn"],
                name=r["name"],
                properties=properties,
                options=analyzer_pb2.AnalyzerResourceOptions(protect=r["protect"]),
                provider=provider,
            )
        )
    return analyzer_pb2.AnalyzeStackRequest(resources=resources)


@pytest.mark.parametrize("newest_istio_unknown", [False, True])
@pytest.mark.parametrize("environment", ["production", "development"])
def test_pack_through_the_sdk_analyzer(environment: str, newest_istio_unknown: bool) -> None:
    """The SDK's own analyzer servicer (what `PolicyPack` serves) reports exactly the rules' lines."""
    plan = broken_plan(environment, newest_istio_unknown)
    servicer = _PolicyAnalyzerServicer(
        pack.PACK_NAME, "0.0.1", list(pack.build_policies(lambda: TODAY)), EnforcementLevel.MANDATORY
    )
    response = servicer.AnalyzeStack(analyze_stack_request(plan), None)
    reported = sorted(
        (d.policyName, d.enforcementLevel, d.urn, d.message.splitlines()[-1]) for d in response.diagnostics
    )
    advisory = environment != "production"
    split = pack.PRODUCTION_MANDATORY_RULES
    expected = sorted(
        (
            f"{v.rule}-advisory" if v.rule in split and advisory else v.rule,
            analyzer_pb2.ADVISORY
            if (v.rule in split and advisory) or v.rule in rules.ADVISORY_RULES
            else analyzer_pb2.MANDATORY,
            v.urn,
            v.message,
        )
        for v in check_plan(plan, TODAY)
    )
    assert reported == expected
    not_applicable = sorted(n.policy_name for n in response.not_applicable)
    assert not_applicable == (
        [
            "istio-version-supported",
            "kiali-not-anonymous-when-exposed",
            "production-ambient-ga",
            "production-base-protected",
            "production-dashboards-internal",
        ]
        if advisory
        else ["istio-version-supported-advisory", "kiali-not-anonymous-when-exposed-advisory"]
    )


@pytest.fixture
def pack_modules_restored() -> Iterator[None]:
    saved_path = list(sys.path)
    names = ("rules", "istio_releases", "components", "components.gateway_api_versions")
    saved = {name: sys.modules.get(name) for name in names}
    yield
    sys.path[:] = saved_path
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


def test_pack_runs_the_way_pulumi_runs_it(
    monkeypatch: pytest.MonkeyPatch, pack_modules_restored: None
) -> None:
    """`python -m pulumi.policy` runs the folder with runpy: no package, the folder on sys.path."""
    built: list[tuple[str, list[tuple[str, EnforcementLevel | None]]]] = []
    path_while_running: list[str] = []

    def fake_pack(name: str, policies: list[Any], **_: Any) -> None:
        built.append((name, [(p.name, p.enforcement_level) for p in policies]))
        path_while_running.extend(sys.path)

    monkeypatch.setattr("pulumi_policy.PolicyPack", fake_pack)
    # Only the pack's folder on sys.path, as under `pulumi`: not the repository (which pytest adds), nor
    # the Gateway API table already imported from it.
    root = Path(pack.__file__).resolve().parents[1]
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != root]
    for name in ("components", "components.gateway_api_versions"):
        sys.modules.pop(name, None)
    folder = str(Path(pack.__file__).parent)
    runpy.run_path(folder, run_name="__main__")
    assert built == [("istio-mesh", EXPECTED_POLICIES)]
    # The pack imported its modules top-level (the fallback imports), not as the `policy` package.
    assert sys.modules["rules"] is not rules
    assert "istio_releases" in sys.modules
    # ... and the Gateway API table from the repository, which the fallback put right after the folder.
    assert path_while_running[:2] == [folder, str(root)]
    table = sys.modules["components.gateway_api_versions"]
    assert Path(str(table.__file__)) == root / "components" / "gateway_api_versions.py"
    assert sys.modules["rules"].gateway_api is table


@pytest.mark.parametrize(
    ("environment", "rule_id", "advisory"),
    [
        ("production", "istio-version-supported", False),
        ("production", "kiali-not-anonymous-when-exposed", False),
        ("development", "istio-version-supported", True),
        ("development", "kiali-not-anonymous-when-exposed", True),
        ("development", "explicit-provider", False),
        ("production", "explicit-provider", False),
        ("production", "istio-version-known", True),
        ("development", "istio-version-known", True),
    ],
)
def test_which_violations_only_warn(environment: str, rule_id: str, advisory: bool) -> None:
    context = rules.plan_context(good_plan(environment), TODAY)
    assert rules.is_advisory(rule_id, context) is advisory
