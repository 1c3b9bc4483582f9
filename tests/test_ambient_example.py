"""examples/ambient/Pulumi.ambient.yaml, the README's ambient walkthrough: what it declares, exactly.

The rules behind each resource are tested on their own (test_ambient.py, test_ambient_config.py,
test_gateway_api.py, test_policy*.py); this holds the example to what the README says of it, and
to the policy pack it is meant to pass.
"""

from __future__ import annotations

from datetime import date
from itertools import pairwise
from typing import Any

from policy.rules import check_plan
from tests.harness import NAMESPACE_PATCH, RELEASE, ROOT, Graph, build

EXAMPLE = ROOT / "examples" / "ambient" / "Pulumi.ambient.yaml"
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
# A day inside Istio 1.30's upstream support (policy/istio_releases.py).
DAY = date(2026, 12, 2)


def example(**overrides: Any) -> Graph:
    graph = build("ambient", stack_file=EXAMPLE, **overrides)
    assert graph.error is None, graph.error
    return graph


def test_the_example_installs_ambient_in_istios_order_at_1_30_3() -> None:
    graph = example()
    releases = {r.name: r for r in graph.of_type(RELEASE)}
    assert sorted(releases) == ["istio-base", "istio-cni", "istiod", "ztunnel"]
    assert {name: r.inputs["version"] for name, r in releases.items()} == dict.fromkeys(releases, "1.30.3")
    assert releases["istiod"].inputs["values"] == {"profile": "ambient"}
    assert releases["istio-cni"].inputs["values"] == {"profile": "ambient"}
    assert releases["istio-cni"].inputs["chart"] == "cni"
    assert releases["ztunnel"].inputs["chart"] == "ztunnel"
    chain = ["istio-base", "istiod", "istio-cni", "ztunnel"]
    for earlier, later in pairwise(chain):
        assert graph.depends_on(releases[later], releases[earlier]), (later, earlier)
    assert releases["istio-base"].protect


def test_shop_is_ambient_behind_its_waypoint_and_nothing_is_injected() -> None:
    graph = example()
    assert graph.names(NAMESPACE_PATCH) == ["shop-injection"]
    labels = graph.get(NAMESPACE_PATCH, "shop-injection").inputs["metadata"]["labels"]
    assert labels == {"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"}
    waypoint = graph.get(GATEWAY, "shop-waypoint")
    assert waypoint.inputs["metadata"] == {
        "name": "waypoint",
        "namespace": "shop",
        "labels": {"istio.io/waypoint-for": "service"},
    }
    assert graph.outputs["ambientNamespaces"] == ["shop"]
    assert graph.outputs["injectedNamespaces"] == []


def test_the_gateway_api_crds_are_the_release_istio_1_30_pins() -> None:
    graph = example()
    crds = graph.of_type(CRD)
    assert crds
    assert {
        c.inputs["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] for c in crds
    } == {"v1.5.1"}
    assert graph.outputs["gatewayApi"] == {"version": "v1.5.1", "channel": "standard"}


def test_the_example_passes_the_policy_pack_and_ambient_before_1_24_does_not() -> None:
    assert [str(v) for v in check_plan(example().render.plan(), DAY)] == []
    older = example(istio={"version": "1.23.6"}, gatewayApi={"version": "v1.1.0"})
    refused = sorted(
        (v.urn.rsplit("::", 1)[-1], v.message)
        for v in check_plan(older.render.plan(), DAY)
        if v.rule == "production-ambient-ga"
    )
    tail = "at Istio 1.23.6; on production ambient needs Istio 1.24.0 or newer, where it is GA"
    assert refused == [
        ("istio-cni", f"cni release istio-cni runs ambient mode (profile ambient) {tail}"),
        ("istiod", f"istiod release istiod runs ambient mode (profile ambient) {tail}"),
        (
            "shop-injection",
            "namespace shop is ambient (istio.io/dataplane-mode=ambient) and istiod release istiod is "
            "at Istio 1.23.6; on production ambient needs Istio 1.24.0 or newer, where it is GA",
        ),
        ("ztunnel", f"ztunnel release ztunnel runs ambient mode {tail}"),
    ]
