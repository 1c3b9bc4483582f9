"""Stack config validation: pure Python, no Pulumi. One test per rule, then all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.config import (
    DEFAULT_ADDON_SOURCE,
    ConfigError,
    DashboardConfig,
    GatewayConfig,
    MeshConfig,
    parse_config,
)
from tests.harness import ROOT, merge


def valid_raw(**overrides: Any) -> dict[str, Any]:
    """The dev stack's shape, as plain values; `overrides` deep-merge (None removes a key)."""
    raw = {
        "cluster": {"context": "kind-istio-dev"},
        "istio": {
            "version": "1.20.8",
            "profile": "demo",
            "gateways": {"ingress": {"serviceType": "NodePort"}, "egress": {}},
        },
        "injection": {"namespaces": ["default"], "restartWorkloads": True},
        "addons": {"enabled": ["prometheus", "grafana", "jaeger", "kiali"]},
        "dashboards": {
            "kiali": {"type": "NodePort", "nodePort": 30007, "metricsNodePort": 30008, "auth": "anonymous"},
            "prometheus": {"type": "NodePort", "nodePort": 30009},
        },
        "protect": False,
        "grafanaAdminPassword": "set",
    }
    return merge(raw, overrides)


def parse(raw: dict[str, Any]) -> MeshConfig:
    return parse_config(raw, base_dir=ROOT)


def problems_of(raw: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


def test_the_dev_shape_parses_to_exact_values() -> None:
    config = parse(valid_raw())
    assert config.cluster.context == "kind-istio-dev"
    assert config.cluster.kubeconfig == ""
    assert config.istio.version == "1.20.8"
    assert config.istio.profile == "demo"
    assert config.istio.chart_repository == "https://blob.istio.io/istio-release/charts"
    assert config.istio.gateways == (
        GatewayConfig("ingress", "NodePort"),
        GatewayConfig("egress", "ClusterIP"),
    )
    assert dict(config.istio.values) == {}
    assert config.injection.namespaces == ("default",)
    assert config.injection.restart_workloads is True
    assert config.addons.enabled == ("prometheus", "grafana", "jaeger", "kiali")
    assert config.addons.source == DEFAULT_ADDON_SOURCE
    assert config.dashboards == (
        DashboardConfig("kiali", "NodePort", 30007, 30008, "anonymous"),
        DashboardConfig("prometheus", "NodePort", 30009, None),
    )
    assert config.protect is False
    assert config.environment == "development"


def test_defaults_when_only_the_required_keys_are_set() -> None:
    config = parse(
        {"cluster": {"context": "c"}, "istio": {"version": "1.30.3"}, "grafanaAdminPassword": "set"}
    )
    assert config.istio.profile == "default"
    assert config.istio.gateways == (GatewayConfig("ingress", "LoadBalancer"),)
    assert config.injection.namespaces == ()
    assert config.injection.restart_workloads is True
    assert config.addons.enabled == ("prometheus", "grafana", "jaeger", "kiali")
    assert config.dashboards == ()
    assert config.protect is False
    assert config.mtls is None
    assert config.dashboard("kiali").auth == "token"  # never anonymous unless the stack says so
    assert config.dashboard("grafana").auth == "password"


@pytest.mark.parametrize(
    ("profile", "gateways"),
    [("default", ("ingress",)), ("demo", ("ingress", "egress")), ("minimal", ())],
)
def test_gateways_follow_the_profile_when_not_listed(profile: str, gateways: tuple[str, ...]) -> None:
    config = parse(valid_raw(istio={"profile": profile, "gateways": None}))
    assert tuple(g.name for g in config.istio.gateways) == gateways


def test_addons_and_gateways_come_out_in_a_fixed_order() -> None:
    config = parse(
        valid_raw(
            addons={"enabled": ["kiali", "prometheus", "grafana", "jaeger"]},
            istio={"gateways": {"egress": {}, "ingress": {}}},
        )
    )
    assert config.addons.enabled == ("prometheus", "grafana", "jaeger", "kiali")
    assert [g.name for g in config.istio.gateways] == ["ingress", "egress"]


# One test per rule: each names the key path, the bad value and what is allowed.
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"cluster": None},
            "cluster: is required; a mapping with `context`, the kubeconfig context of this stack's cluster",
        ),
        (
            {"cluster": {"context": None}},
            "cluster.context: is required; the kubeconfig context of the one cluster this stack owns",
        ),
        (
            {"cluster": {"kubeconfig": 3}},
            "cluster.kubeconfig: got 3; expected a path to a kubeconfig file",
        ),
        (
            {"istio": {"profile": "demoo"}},
            "istio.profile: got 'demoo'; allowed: default, demo, minimal",
        ),
        (
            {"istio": {"version": "1.20"}},
            "istio.version: got '1.20'; an exact chart version x.y.z, 1.20.0 or newer",
        ),
        (
            {"istio": {"version": "1.19.9"}},
            "istio.version: got '1.19.9'; an exact chart version x.y.z, 1.20.0 or newer",
        ),
        (
            {"istio": {"version": "^1.20.0"}},
            "istio.version: got '^1.20.0'; an exact chart version x.y.z, 1.20.0 or newer",
        ),
        (
            {"istio": {"chartRepository": "istio-release"}},
            "istio.chartRepository: got 'istio-release'; expected an http(s) or oci:// Helm repository URL",
        ),
        (
            {"istio": {"gateways": {"ingress": {"serviceType": "External"}}}},
            "istio.gateways.ingress.serviceType: got 'External'; allowed: ClusterIP, NodePort, LoadBalancer",
        ),
        (
            {"istio": {"gateways": {"east-west": {}}}},
            "istio.gateways.east-west: got {}; unknown key; allowed keys: ingress, egress",
        ),
        (
            {"istio": {"values": ["pilot"]}},
            "istio.values: got ['pilot']; expected a mapping of istiod Helm values",
        ),
        (
            {"addons": {"enabled": ["prometheus", "zipkin", "kiali"]}},
            "addons.enabled[1]: got 'zipkin'; allowed: prometheus, grafana, jaeger, kiali, loki",
        ),
        (
            {"addons": {"enabled": ["kiali", "prometheus", "kiali"]}},
            "addons.enabled[2]: got 'kiali'; each addon may be listed once",
        ),
        (
            {"addons": {"source": "no/such/dir"}},
            f"addons.source: got 'no/such/dir'; expected an existing directory (looked at {ROOT}/no/such/dir)",
        ),
        (
            {"dashboards": {"prometheus": {"nodePort": 29999}}},
            "dashboards.prometheus.nodePort: got 29999; expected an integer NodePort in 30000-32767",
        ),
        (
            {"dashboards": {"prometheus": {"nodePort": 32768}}},
            "dashboards.prometheus.nodePort: got 32768; expected an integer NodePort in 30000-32767",
        ),
        (
            {"dashboards": {"prometheus": {"nodePort": "30009"}}},
            "dashboards.prometheus.nodePort: got '30009'; expected an integer NodePort in 30000-32767",
        ),
        (
            {"dashboards": {"prometheus": {"nodePort": 30007}}},
            "dashboards.prometheus.nodePort: got 30007; already used by dashboards.kiali.nodePort; "
            "each NodePort once",
        ),
        (
            {"dashboards": {"kiali": {"metricsNodePort": 30007}}},
            "dashboards.kiali.metricsNodePort: got 30007; already used by dashboards.kiali.nodePort; "
            "each NodePort once",
        ),
        (
            {"dashboards": {"kiali": {"type": "Ingress"}}},
            "dashboards.kiali.type: got 'Ingress'; allowed: ClusterIP, NodePort, LoadBalancer",
        ),
        (
            {"dashboards": {"prometheus": {"type": "ClusterIP"}}},
            "dashboards.prometheus.nodePort: got 30009; a ClusterIP Service has no node port; remove it",
        ),
        (
            {"dashboards": {"prometheus": {"nodePort": None}}},
            "dashboards.prometheus.nodePort: is required; a NodePort dashboard needs its port, in 30000-32767",
        ),
        (
            {"dashboards": {"prometheus": {"metricsNodePort": 30010}}},
            "dashboards.prometheus.metricsNodePort: got 30010; unknown key; allowed keys: type, nodePort",
        ),
        (
            {"addons": {"enabled": ["prometheus"]}, "dashboards": {"prometheus": None}},
            "dashboards.kiali: got {'type': 'NodePort', 'nodePort': 30007, 'metricsNodePort': 30008, 'auth': 'anonymous'}; "
            "needs the kiali addon in addons.enabled",
        ),
        (
            {"injection": {"namespaces": ["Shop_1"]}},
            "injection.namespaces[0]: got 'Shop_1'; expected a namespace name (a DNS-1123 label)",
        ),
        (
            {"injection": {"namespaces": ["default", "default"]}},
            "injection.namespaces[1]: got 'default'; each namespace may be listed once",
        ),
        (
            {"injection": {"namespaces": ["istio-system"]}},
            "injection.namespaces[0]: got 'istio-system'; the control plane's namespace is never injected",
        ),
        (
            {"injection": {"restartWorkloads": "yes"}},
            "injection.restartWorkloads: got 'yes'; expected true or false",
        ),
        ({"protect": "true"}, "protect: got 'true'; expected true or false"),
        ({"adopt": "yes"}, "adopt: got 'yes'; expected true or false"),
        ({"security": {"mtls": "strict"}}, "security.mtls: got 'strict'; allowed: STRICT, PERMISSIVE"),
        (
            {"dashboards": {"kiali": {"auth": "none"}}},
            "dashboards.kiali.auth: got 'none'; allowed: anonymous, token",
        ),
        (
            {"environment": "Prod"},
            "environment: got 'Prod'; expected a lowercase DNS label such as development, staging or production",
        ),
        (
            {"dashboard": {}},
            "dashboard: got {}; unknown key; allowed keys: cluster, istio, injection, addons, dashboards, "
            "protect, adopt, environment, security, grafanaAdminPassword, kialiSigningKey, gatewayApi",
        ),
    ],
)
def test_each_rule_reports_path_value_and_allowed(overrides: dict[str, Any], expected: str) -> None:
    assert problems_of(valid_raw(**overrides)) == (expected,)


def test_every_mistake_is_reported_at_once() -> None:
    raw = valid_raw(
        cluster={"context": None},
        istio={"version": "1.19.0", "profile": "tiny"},
        addons={"enabled": ["prometheus", "kiali", "zipkin"]},
        dashboards={"kiali": {"nodePort": 80}, "prometheus": {"type": "Public"}},
        injection={"namespaces": ["Bad Name"]},
    )
    problems = problems_of(raw)
    paths = [p.split(":")[0] for p in problems]
    assert paths == [
        "cluster.context",
        "istio.version",
        "istio.profile",
        "injection.namespaces[0]",
        "addons.enabled[2]",
        "dashboards.kiali.nodePort",
        "dashboards.prometheus.type",
    ]
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert str(caught.value).startswith("invalid stack configuration (7 problem(s)):\n  - cluster.context: ")


def test_an_existing_local_addon_directory_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "addons").mkdir()
    config = parse_config(valid_raw(addons={"source": "addons"}), base_dir=tmp_path)
    assert config.addons.source == "addons"


node_ports = st.integers(min_value=30000, max_value=32767)


@given(kiali=node_ports, metrics=node_ports, prometheus=node_ports)
def test_any_distinct_in_range_node_ports_are_accepted(kiali: int, metrics: int, prometheus: int) -> None:
    raw = valid_raw(
        dashboards={
            "kiali": {"nodePort": kiali, "metricsNodePort": metrics},
            "prometheus": {"nodePort": prometheus},
        }
    )
    if len({kiali, metrics, prometheus}) < 3:
        assert any("each NodePort once" in p for p in problems_of(raw))
    else:
        ports = {d.name: (d.node_port, d.metrics_node_port) for d in parse(raw).dashboards}
        assert ports == {"kiali": (kiali, metrics), "prometheus": (prometheus, None)}


@given(port=st.integers().filter(lambda p: not 30000 <= p <= 32767))
def test_any_out_of_range_node_port_is_rejected_with_its_path(port: int) -> None:
    problems = problems_of(valid_raw(dashboards={"prometheus": {"nodePort": port}}))
    assert problems == (
        f"dashboards.prometheus.nodePort: got {port}; expected an integer NodePort in 30000-32767",
    )


@given(
    version=st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 20)).map(
        lambda t: ".".join(map(str, t))
    )
)
def test_versions_are_accepted_exactly_from_1_20_0(version: str) -> None:
    major, minor, _ = (int(p) for p in version.split("."))
    # Without gateways: which gateway charts Helm installs is a rule of its own (tests below); with a
    # Gateway API release named, since the table knows no release for minors newer than it.
    raw = valid_raw(
        istio={"version": version, "profile": "minimal", "gateways": None}, gatewayApi={"version": "v1.5.1"}
    )
    if (major, minor) >= (1, 20):
        assert parse(raw).istio.version == version
    else:
        assert problems_of(raw) == (
            f"istio.version: got {version!r}; an exact chart version x.y.z, 1.20.0 or newer",
        )


# --- gateway charts that Helm 3.18.5+ refuses ----------------------------------------------------
# Helm 3.18.5 and newer reject the gateway chart's own defaults against its values.schema.json for
# 1.21.0-1.25.4, 1.26.0-1.26.3 and 1.27.0 (https://github.com/istio/istio/issues/57354), as the real
# Helm shows on every tag of manifests/charts/gateway (see HELM_REJECTED_GATEWAY_CHARTS).

GATEWAY_REFUSED = (
    "Helm 3.18.5 and newer (the kubernetes provider's 3.18.6 too) refuse the gateway chart of Istio {v}, "
    "whose own default values fail its values.schema.json (https://github.com/istio/istio/issues/57354), "
    "so the {which} cannot be installed; use the nearest fixed release, {fixed}, or any version outside "
    "1.21.0-1.25.4, 1.26.0-1.26.3 and 1.27.0, or no gateways (istio.gateways: {{}})"
)


def _refused(path: str, version: str, which: str, fixed: str) -> str:
    return f"{path}: got {version!r}; " + GATEWAY_REFUSED.format(v=version, which=which, fixed=fixed)


@pytest.mark.parametrize(
    ("version", "fixed"),
    [
        ("1.21.0", "1.25.5 (no 1.21 patch has the fix)"),  # first affected
        ("1.24.6", "1.25.5 (no 1.24 patch has the fix)"),
        ("1.25.4", "1.25.5"),  # last affected of the first range
        ("1.26.0", "1.26.4"),
        ("1.26.3", "1.26.4"),  # last affected of 1.26
        ("1.27.0", "1.27.1"),  # the only affected 1.27
    ],
)
def test_a_gateway_on_a_chart_helm_refuses_is_a_config_error(version: str, fixed: str) -> None:
    # The dev shape: the demo profile's ingress and egress, listed explicitly.
    assert problems_of(valid_raw(istio={"version": version})) == (
        _refused("istio.version", version, "ingress and egress gateways", fixed),
    )


@pytest.mark.parametrize("version", ["1.20.8", "1.25.5", "1.26.4", "1.27.1", "1.28.0", "1.30.3"])
def test_a_gateway_on_the_last_version_before_or_the_first_fixed_one_is_accepted(version: str) -> None:
    config = parse(valid_raw(istio={"version": version}))
    assert [g.name for g in config.istio.gateways] == ["ingress", "egress"]


def test_the_profiles_gateways_are_checked_too() -> None:
    raw = valid_raw(istio={"version": "1.26.3", "profile": "default", "gateways": None})
    assert problems_of(raw) == (_refused("istio.version", "1.26.3", "ingress gateway", "1.26.4"),)
    raw = valid_raw(istio={"version": "1.26.3", "profile": "demo", "gateways": None})
    assert problems_of(raw) == (_refused("istio.version", "1.26.3", "ingress and egress gateways", "1.26.4"),)


def test_no_gateways_on_a_refused_chart_version_is_fine() -> None:
    minimal = parse(valid_raw(istio={"version": "1.27.0", "profile": "minimal", "gateways": None}))
    assert minimal.istio.gateways == ()
    raw = valid_raw(istio={"version": "1.27.0"})
    raw["istio"]["gateways"] = {}  # explicitly none, whatever the profile brings
    assert parse(raw).istio.gateways == ()


def test_gateways_on_revisions_are_checked_at_the_revision_they_follow() -> None:
    istio = {
        "version": "1.27.1",
        "revisions": {"old": {"version": "1.26.3"}, "new": {"version": "1.27.1"}},
        "tags": {"canary": "new"},
        "defaultRevision": "old",
        "gateways": {"ingress": {"tag": "canary"}, "egress": {}},
    }
    # The egress gateway follows the default revision (1.26.3); the ingress the canary tag (1.27.1).
    assert problems_of(valid_raw(istio=istio)) == (
        _refused("istio.revisions.old.version", "1.26.3", "egress gateway", "1.26.4"),
    )
    # The same revisions without a gateway on the old one: nothing refused.
    raw = valid_raw(istio=istio)
    raw["istio"]["gateways"] = {"ingress": {"tag": "canary"}}
    assert [g.name for g in parse(raw).istio.gateways] == ["ingress"]


def test_a_refused_gateway_chart_is_reported_with_every_other_problem() -> None:
    raw = valid_raw(istio={"version": "1.25.4"}, environment="Prod")
    assert problems_of(raw) == (
        _refused("istio.version", "1.25.4", "ingress and egress gateways", "1.25.5"),
        "environment: got 'Prod'; expected a lowercase DNS label such as development, staging or production",
    )


@pytest.mark.parametrize(
    "istio",
    [
        {"version": "1.30.3", "gateways": {"ingress": {}, "egress": {}}},
        {
            "version": "1.29.6",
            "revisions": {"a": {"version": "1.29.6"}, "b": {"version": "1.30.3"}},
            "tags": {"t": "b"},
            "defaultRevision": "a",
            "gateways": {"ingress": {"tag": "t"}, "egress": {"tag": "b"}},
        },
        {
            "version": "1.29.6",
            "revisions": {"a": {"version": "1.29.6"}, "b": {"version": "1.30.3"}},
            "defaultRevision": "b",
            "gateways": {"ingress": {}, "egress": {"tag": "a"}},
        },
    ],
)
def test_the_checked_gateway_version_is_the_one_the_release_gets(istio: dict[str, Any]) -> None:
    from components.config import _gateway_chart
    from components.values import gateway_version

    config = parse(valid_raw(istio=istio)).istio
    for gateway in config.gateways:
        chart = _gateway_chart(
            gateway, config.version, config.revisions, config.tags, config.default_revision
        )
        assert chart is not None
        assert chart[1] == gateway_version(config, gateway)


def test_the_shipped_stacks_and_their_defaults_are_unchanged_by_the_gateway_rule() -> None:
    from tests.harness import build

    dev, prod = build(), build("prod")
    assert dev.error is None and prod.error is None
    assert [r.name for r in dev.of_type("kubernetes:helm.sh/v3:Release") if "gateway" in r.name] == [
        "istio-ingressgateway",
        "istio-egressgateway",
    ]
    assert [r.name for r in prod.of_type("kubernetes:helm.sh/v3:Release") if "gateway" in r.name] == [
        "istio-ingressgateway"
    ]
