"""Config rules of ambient mode and waypoints (issue 12): one change, one exact failure each."""

from __future__ import annotations

from typing import Any

import pytest

from components.config import ConfigError, MeshConfig, parse_config
from tests.harness import ROOT, Replace, merge


def raw(**overrides: Any) -> dict[str, Any]:
    """A valid ambient stack: 1.30.3, `shop` ambient with a waypoint, `default` injected."""
    base = {
        "cluster": {"context": "ambient-cluster"},
        "istio": {"version": "1.30.3", "dataplane": "ambient"},
        "injection": {
            "namespaces": ["default"],
            "ambient": ["shop"],
            "waypoints": {"shop": {"for": "service"}},
        },
    }
    return merge(base, overrides)


def parse(values: dict[str, Any]) -> MeshConfig:
    return parse_config(values, base_dir=ROOT)


def problems(values: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(values)
    return list(caught.value.problems)


REVISIONS = {
    "revisions": {"old": {"version": "1.29.6"}, "new": {"version": "1.30.3"}},
    "defaultRevision": "old",
}


def test_the_ambient_stack_parses_to_exact_values() -> None:
    config = parse(raw())
    assert config.istio.dataplane == "ambient"
    assert config.istio.ambient is True
    assert config.istio.node_agent_version == "1.30.3"
    assert config.injection.namespaces == ("default",)
    assert config.injection.ambient == ("shop",)
    assert dict(config.injection.waypoints) == {"shop": "service"}
    assert config.gateway_api is not None


def test_the_defaults_stay_sidecar_with_no_ambient_namespaces_and_no_waypoints() -> None:
    config = parse({"cluster": {"context": "c"}, "istio": {"version": "1.30.3"}})
    assert config.istio.dataplane == "sidecar"
    assert config.istio.ambient is False
    assert config.injection.ambient == ()
    assert dict(config.injection.waypoints) == {}


def test_ambient_namespaces_are_sorted() -> None:
    config = parse(raw(injection={"ambient": ["shop", "cart", "api"]}))
    assert config.injection.ambient == ("api", "cart", "shop")


def test_the_waypoint_traffic_defaults_to_service() -> None:
    assert dict(parse(raw(injection={"waypoints": Replace({"shop": None})})).injection.waypoints) == {
        "shop": "service"
    }


def test_the_node_agents_follow_the_default_revision() -> None:
    config = parse(raw(istio={**REVISIONS, "version": "1.29.6"}))
    assert config.istio.node_agent_version == "1.29.6"
    config = parse(raw(istio={**REVISIONS, "version": "1.29.6", "defaultRevision": "new"}))
    assert config.istio.node_agent_version == "1.30.3"


def test_an_unknown_dataplane_is_refused() -> None:
    assert problems(raw(istio={"dataplane": "sidecars"})) == [
        "istio.dataplane: got 'sidecars'; allowed: sidecar, ambient"
    ]


@pytest.mark.parametrize("version", ["1.21.6", "1.20.8"])
def test_ambient_below_1_22_is_refused(version: str) -> None:
    assert problems(
        raw(
            istio={"version": version, "gateways": {}},
            gatewayApi={"enabled": False},
            injection={"waypoints": None},
        )
    ) == [
        f"istio.version: got '{version}'; ambient mode needs Istio 1.22.0 or newer (older releases publish "
        "no ztunnel chart and no ambient profile); use a newer version or istio.dataplane: sidecar"
    ]


def test_ambient_from_1_22_0_is_accepted() -> None:
    assert parse(raw(istio={"version": "1.22.0", "gateways": {}})).istio.ambient


def test_a_revision_below_1_22_is_refused_on_ambient() -> None:
    revisions = {
        "revisions": {"old": {"version": "1.21.6"}, "new": {"version": "1.22.0"}},
        "defaultRevision": "new",
    }
    assert problems(raw(istio={**revisions, "version": "1.22.0", "gateways": {}})) == [
        "istio.revisions.old.version: got '1.21.6'; ambient mode needs Istio 1.22.0 or newer (older releases "
        "publish no ztunnel chart and no ambient profile); use a newer version or istio.dataplane: sidecar"
    ]


@pytest.mark.parametrize(("default", "other"), [("1.30.3", "1.28.6"), ("1.28.6", "1.30.3")])
def test_a_revision_more_than_one_minor_from_the_node_agents_is_refused(default: str, other: str) -> None:
    revisions = {"revisions": {"a": {"version": default}, "b": {"version": other}}, "defaultRevision": "a"}
    minor = int(default.split(".")[1])
    assert problems(raw(istio={**revisions, "version": default})) == [
        f"istio.revisions.b.version: got '{other}'; istio-cni and ztunnel run one version per node, upgraded "
        f"in place with the default revision (a, {default}), and must stay within 1 minor of every control "
        f"plane; keep this revision within 1.{minor - 1}-1.{minor + 1}, or move the default revision in steps"
    ]


def test_revisions_one_minor_either_side_of_the_node_agents_are_accepted() -> None:
    revisions = {
        "revisions": {"a": {"version": "1.29.6"}, "b": {"version": "1.30.3"}, "c": {"version": "1.28.6"}},
        "defaultRevision": "a",
    }
    assert parse(raw(istio={**revisions, "version": "1.29.6"})).istio.node_agent_version == "1.29.6"


def test_the_skew_rule_is_ambients_only() -> None:
    revisions = {
        "revisions": {"a": {"version": "1.30.3"}, "b": {"version": "1.28.6"}},
        "defaultRevision": "a",
    }
    sidecar = {"cluster": {"context": "c"}, "istio": {**revisions, "version": "1.30.3"}}
    assert parse(sidecar).istio.revisioned


def test_ambient_namespaces_need_the_ambient_dataplane() -> None:
    assert problems(raw(istio={"dataplane": "sidecar"}, injection={"waypoints": None})) == [
        "injection.ambient: got ['shop']; ambient namespaces need istio-cni and ztunnel: set istio.dataplane: ambient"
    ]


def test_a_namespace_is_never_both_injected_and_ambient() -> None:
    assert problems(raw(injection={"namespaces": ["default", "shop"]})) == [
        "injection.ambient[0]: got 'shop'; also listed in injection.namespaces: a namespace is either "
        "sidecar-injected or ambient, never both; to move it to ambient, remove it from injection.namespaces"
    ]


def test_the_both_modes_rule_holds_for_routed_namespaces_too() -> None:
    istio = {"revisions": {"a": {"version": "1.30.3"}}, "tags": {"t": "a"}}
    assert problems(raw(istio=istio, injection={"namespaces": {"shop": "t"}})) == [
        "injection.ambient[0]: got 'shop'; also listed in injection.namespaces: a namespace is either "
        "sidecar-injected or ambient, never both; to move it to ambient, remove it from injection.namespaces"
    ]


@pytest.mark.parametrize(
    ("ambient", "problem"),
    [
        ("shop", "injection.ambient: got 'shop'; expected a list of namespace names"),
        (["Shop"], "injection.ambient[0]: got 'Shop'; expected a namespace name (a DNS-1123 label)"),
        (["shop", "shop"], "injection.ambient[1]: got 'shop'; each namespace may be listed once"),
        (
            ["shop", "istio-system"],
            "injection.ambient[1]: got 'istio-system'; the control plane's namespace is never in the mesh's data plane",
        ),
    ],
)
def test_ambient_namespace_names(ambient: Any, problem: str) -> None:
    found = problems(raw(injection={"ambient": ambient, "waypoints": None}))
    assert found == [problem]


def test_a_waypoint_needs_an_ambient_namespace() -> None:
    assert problems(raw(injection={"waypoints": {"default": {"for": "service"}}})) == [
        "injection.waypoints.default: got {'for': 'service'}; a waypoint serves an ambient namespace: list "
        "the namespace in injection.ambient"
    ]


def test_a_waypoints_traffic_is_one_istioctl_knows() -> None:
    assert problems(raw(injection={"waypoints": {"shop": {"for": "services"}}})) == [
        "injection.waypoints.shop.for: got 'services'; allowed: service, workload, all, none"
    ]


def test_a_waypoint_takes_only_for() -> None:
    assert problems(raw(injection={"waypoints": {"shop": {"name": "w"}}})) == [
        "injection.waypoints.shop.name: got 'w'; unknown key; allowed keys: for"
    ]


def test_a_waypoint_needs_the_gateway_api() -> None:
    assert problems(raw(gatewayApi={"enabled": False})) == [
        "injection.waypoints: got {'shop': 'service'}; a waypoint is a Gateway API Gateway: keep "
        "gatewayApi.enabled (the default from Istio 1.22)"
    ]
