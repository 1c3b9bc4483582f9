"""The Helm values per chart version and profile, as pure functions (no Pulumi engine).

tests/test_oracle_charts.py renders these values with the real charts; this file states the rules
that pick them: where `profile` starts to count, how stack values merge, which version a gateway's
chart follows, and what the base chart's default revision is.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.config import GatewayConfig, IstioConfig, Revision
from components.values import base_values, deep_merge, gateway_values, gateway_version, istiod_values

REVISIONS = (Revision("old", "1.20.8"), Revision("new", "1.21.0"))


def revisioned(**extra: Any) -> IstioConfig:
    return IstioConfig(
        version="1.20.8", revisions=REVISIONS, tags=(("canary", "new"),), default_revision="old", **extra
    )


@pytest.mark.parametrize(
    ("version", "profile_value"),
    [("1.20.8", None), ("1.20.99", None), ("1.21.0", "demo"), ("1.21.6", "demo"), ("2.0.0", "demo")],
)
def test_charts_from_1_21_0_take_the_demo_profile_by_name(version: str, profile_value: str | None) -> None:
    values = istiod_values(IstioConfig(version=version, profile="demo"))
    if profile_value is None:
        assert "profile" not in values
        assert values["meshConfig"]["accessLogFile"] == "/dev/stdout"
    else:
        assert values == {"profile": profile_value}


@pytest.mark.parametrize("profile", ["default", "minimal"])
@pytest.mark.parametrize("version", ["1.20.8", "1.21.0", "1.30.3"])
def test_default_and_minimal_set_no_values(profile: str, version: str) -> None:
    assert istiod_values(IstioConfig(version=version, profile=profile)) == {}
    assert gateway_values(
        IstioConfig(version=version, profile=profile), GatewayConfig("ingress", "ClusterIP")
    ) == {"service": {"type": "ClusterIP"}}


def test_stack_values_merge_last_and_a_revision_names_itself() -> None:
    istio = IstioConfig(
        version="1.20.8",
        profile="demo",
        values={"pilot": {"traceSampling": 1}, "meshConfig": {"accessLogFile": ""}},
    )
    values = istiod_values(istio)
    assert values["pilot"] == {
        "autoscaleEnabled": False,
        "traceSampling": 1,
        "resources": {"requests": {"cpu": "10m", "memory": "100Mi"}},
    }
    assert values["meshConfig"]["accessLogFile"] == ""
    # With a revision, the revision's version decides the profile values, and the name is set.
    assert istiod_values(revisioned(profile="demo"), REVISIONS[1]) == {"profile": "demo", "revision": "new"}
    assert istiod_values(revisioned(profile="demo"), REVISIONS[0])["revision"] == "old"
    assert "profile" not in istiod_values(revisioned(profile="demo"), REVISIONS[0])


def test_deep_merge_merges_mappings_replaces_everything_else_and_copies() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": {"e": 1}, "f": 1}
    override = {"a": {"c": [3], "g": {"h": 1}}, "d": 5, "f": {"i": 1}}
    merged = deep_merge(base, override)
    assert merged == {"a": {"b": 1, "c": [3], "g": {"h": 1}}, "d": 5, "f": {"i": 1}}
    merged["a"]["c"].append(4)
    merged["a"]["g"]["h"] = 2
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": {"e": 1}, "f": 1}
    assert override == {"a": {"c": [3], "g": {"h": 1}}, "d": 5, "f": {"i": 1}}
    # Nested values of the base are copies too, and tuples become lists, as YAML has no tuples.
    nested = {"x": {"y": [{"z": 1}]}, "t": (1, 2)}
    copied = deep_merge(nested, {})
    copied["x"]["y"][0]["z"] = 2
    assert nested == {"x": {"y": [{"z": 1}]}, "t": (1, 2)}
    assert copied["t"] == [1, 2]


def test_the_base_charts_default_revision() -> None:
    assert base_values(IstioConfig(version="1.30.3")) == {"defaultRevision": "default"}
    assert base_values(revisioned()) == {"defaultRevision": "old"}


@pytest.mark.parametrize(
    ("gateway", "version"),
    [
        (GatewayConfig("ingress", "LoadBalancer"), "1.20.8"),  # untagged: the default revision's
        (GatewayConfig("ingress", "LoadBalancer", tag="canary"), "1.21.0"),  # a tag: its revision's
        (GatewayConfig("egress", "ClusterIP", tag="new"), "1.21.0"),  # a revision named directly
    ],
)
def test_a_gateway_chart_follows_the_control_plane_that_injects_it(
    gateway: GatewayConfig, version: str
) -> None:
    assert gateway_version(revisioned(), gateway) == version
    assert gateway_version(IstioConfig(version="1.29.6"), gateway) == "1.29.6"


def test_demo_gateway_values_per_version_and_gateway() -> None:
    ports = [15021, 80, 443, 31400, 15443]
    old = gateway_values(IstioConfig("1.20.8", "demo"), GatewayConfig("ingress", "NodePort"))
    # Istio picks a gateway port's protocol from its name's prefix (http2, https, tcp, tls).
    assert [(p["name"], p["port"], p["targetPort"], p["protocol"]) for p in old["service"].pop("ports")] == [
        ("status-port", 15021, 15021, "TCP"),
        ("http2", 80, 80, "TCP"),
        ("https", 443, 443, "TCP"),
        ("tcp", 31400, 31400, "TCP"),
        ("tls", 15443, 15443, "TCP"),
    ]
    assert old == {
        "autoscaling": {"enabled": False},
        "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}},
        "service": {"type": "NodePort"},
    }
    new = gateway_values(revisioned(profile="demo"), GatewayConfig("egress", "ClusterIP", tag="canary"))
    assert new == {
        "profile": "demo",
        "autoscaling": {"enabled": False},
        "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}},
        "service": {"type": "ClusterIP"},
        "revision": "canary",
    }
    # Each call gets its own copy of the ports: changing one stack's values leaves the next alone.
    again = gateway_values(IstioConfig("1.20.8", "demo"), GatewayConfig("ingress", "NodePort"))
    assert [p["port"] for p in again["service"]["ports"]] == ports
