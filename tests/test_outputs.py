"""What each component registers as its outputs, and which gateways a stack gets.

A component's `register_outputs` is what `pulumi stack` and the engine show for it, and it marks the
component as complete: without it the engine keeps waiting on the component's outputs. The mock
monitor of the SDK answers the call and forgets it, so these tests record the requests themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pulumi.runtime.mocks
import pytest
from google.protobuf import empty_pb2, json_format

from tests.harness import RELEASE, Graph, Replace, build

CONTROL_PLANE = "istio-mesh:index:ControlPlane"
INJECTION = "istio-mesh:index:Injection"


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, dict[str, Any]]]:
    """`<type> <name>` -> the outputs registered for that component, for the stacks built in the test."""
    recorded: dict[str, dict[str, Any]] = {}

    def record(_monitor: object, request: Any) -> empty_pb2.Empty:
        _, type_, name = request.urn.rsplit("::", 2)
        recorded[f"{type_.rsplit('$', 1)[-1]} {name}"] = json_format.MessageToDict(request.outputs)
        return empty_pb2.Empty()

    monkeypatch.setattr(pulumi.runtime.mocks.MockMonitor, "RegisterResourceOutputs", record)
    yield recorded


def test_dev_control_plane_and_injection_register_what_they_installed(
    registered: dict[str, dict[str, Any]],
) -> None:
    graph = build(preview=False)
    assert graph.error is None
    assert registered[f"{CONTROL_PLANE} control-plane"] == {
        "namespace": "istio-system",
        "crdVersion": "1.20.8",
        "istiods": ["istiod"],
        "tags": [],
        # The demo profile's gateways, ingress first.
        "gateways": ["istio-ingressgateway", "istio-egressgateway"],
    }
    assert registered[f"{INJECTION} injection"] == {"namespaces": ["default"]}


def test_revisioned_control_plane_registers_each_istiod_tag_and_gateway(
    registered: dict[str, dict[str, Any]],
) -> None:
    graph = build(
        "prod",
        istio={
            "version": "1.29.6",
            "revisions": {"old": {"version": "1.29.6"}, "new": {"version": "1.30.3"}},
            "tags": {"stable": "old", "canary": "new"},
            "defaultRevision": "old",
            "gateways": {"egress": {}, "ingress": {"tag": "canary"}},
        },
        injection={"namespaces": {"shop": "canary", "default": "stable"}},
        preview=False,
    )
    assert graph.error is None
    assert registered[f"{CONTROL_PLANE} control-plane"] == {
        "namespace": "istio-system",
        # The CRDs lead: the newest version of any revision.
        "crdVersion": "1.30.3",
        "istiods": ["istiod-new", "istiod-old"],
        "tags": ["canary", "default", "stable"],
        "gateways": ["istio-ingressgateway", "istio-egressgateway"],
    }
    assert registered[f"{INJECTION} injection"] == {"namespaces": ["default", "shop"]}


def test_no_injected_namespaces_and_no_gateways_are_registered_as_empty(
    registered: dict[str, dict[str, Any]],
) -> None:
    graph = build(istio={"profile": "minimal", "gateways": None}, injection={"namespaces": []}, preview=False)
    assert graph.error is None
    assert registered[f"{CONTROL_PLANE} control-plane"]["gateways"] == []
    assert registered[f"{INJECTION} injection"] == {"namespaces": []}


def _gateways(graph: Graph) -> list[tuple[str, str, Any]]:
    """(release, service type, revision value) of each gateway release, in declaration order."""
    return [
        (r.name, r.inputs["values"]["service"]["type"], r.inputs["values"].get("revision"))
        for r in graph.of_type(RELEASE)
        if r.inputs["chart"] == "gateway"
    ]


@pytest.mark.parametrize(
    ("istio", "expected"),
    [
        # Without `istio.gateways`, the profile decides: demo brings both, default the ingress only.
        (
            {"profile": "demo", "gateways": None},
            [("istio-ingressgateway", "LoadBalancer", None), ("istio-egressgateway", "ClusterIP", None)],
        ),
        ({"profile": "default", "gateways": None}, [("istio-ingressgateway", "LoadBalancer", None)]),
        ({"profile": "minimal", "gateways": None}, []),
        # Listed gateways replace the profile's; the order is always ingress, egress.
        ({"profile": "minimal", "gateways": {"egress": {}}}, [("istio-egressgateway", "ClusterIP", None)]),
        (
            {
                "profile": "default",
                "gateways": {"egress": {"serviceType": "NodePort"}, "ingress": {"serviceType": "ClusterIP"}},
            },
            [("istio-ingressgateway", "ClusterIP", None), ("istio-egressgateway", "NodePort", None)],
        ),
        ({"profile": "demo", "gateways": {}}, []),
    ],
)
def test_which_gateways_a_stack_gets(istio: dict[str, Any], expected: list[tuple[str, str, Any]]) -> None:
    # The whole section replaced: the dev stack's own gateways must not merge into the listed ones.
    graph = build(istio=Replace({"version": "1.20.8", **{k: v for k, v in istio.items() if v is not None}}))
    assert graph.error is None
    assert _gateways(graph) == expected
