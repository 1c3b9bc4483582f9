"""The control plane at the version boundaries the charts in ../shared do not sit on.

tests/test_oracle_charts.py checks the CRD handling and the PeerAuthentication API version against
the real base charts of 1.20.8 to 1.30.3; the releases where they change are 1.24.0 (CRDs move from
`crds/` into templates, https://istio.io/latest/news/releases/1.24.x/announcing-1.24/upgrade-notes/)
and 1.22.0 (security.istio.io/v1, https://istio.io/latest/news/releases/1.22.x/announcing-1.22/).
"""

from __future__ import annotations

import json
import shlex

import pytest

from tests.harness import COMMAND, NO_GATEWAYS, build


@pytest.mark.parametrize(("version", "applied"), [("1.23.6", True), ("1.24.0", False), ("1.24.6", False)])
def test_the_crds_are_applied_by_the_program_until_1_24_0(version: str, applied: bool) -> None:
    graph = build(istio={"version": version, "gateways": NO_GATEWAYS})
    assert graph.error is None
    assert ("istio-crds" in graph.names(COMMAND)) is applied
    base = graph.release("istio-base")
    # What the program sends; the provider's Check records skipCrds false when unset, and drops
    # takeOwnership, which v4.25.0 doesn't know (meshplan/provider_check.py).
    assert (base.raw_inputs.get("skipCrds"), base.raw_inputs.get("takeOwnership")) == (
        (True, None) if applied else (None, True)
    )
    assert (base.inputs["skipCrds"], "takeOwnership" in base.inputs) == (applied, False)


def test_the_crd_apply_may_take_ten_minutes() -> None:
    # A first `helm show crds` pulls the chart; the apply then waits for every CRD to be accepted.
    assert build().get(COMMAND, "istio-crds").inputs["timeout"] == 600


@pytest.mark.parametrize(
    ("version", "api_version"), [("1.21.6", "v1beta1"), ("1.22.0", "v1"), ("1.30.3", "v1")]
)
def test_mesh_wide_mtls_uses_security_v1_from_1_22_0(version: str, api_version: str) -> None:
    graph = build(istio={"version": version, "gateways": NO_GATEWAYS}, security={"mtls": "PERMISSIVE"})
    (policy,) = [r for r in graph.resources if r.name == "mesh-mtls"]
    assert policy.type == f"kubernetes:security.istio.io/{api_version}:PeerAuthentication"
    assert policy.inputs["apiVersion"] == f"security.istio.io/{api_version}"
    assert policy.inputs["spec"] == {"mtls": {"mode": "PERMISSIVE"}}
    assert policy.inputs["metadata"] == {"name": "default", "namespace": "istio-system"}
    # The Mesh's child since it waits for the injection (tests/test_mtls.py), no longer ControlPlane's.
    assert policy.parent == graph.of_type("istio-mesh:index:Mesh")[0].urn


@pytest.mark.parametrize(("version", "api_version"), [("1.21.6", "v1beta1"), ("1.22.0", "v1")])
def test_the_strict_hold_of_a_first_restart_uses_the_policys_api_version(
    version: str, api_version: str
) -> None:
    # The PERMISSIVE PeerAuthentication a namespace gets around its first restart under STRICT
    # (components/injection.py) is read by the same CRDs as the mesh-wide one.
    graph = build(istio={"version": version, "gateways": NO_GATEWAYS}, security={"mtls": "STRICT"})
    create = graph.get(COMMAND, "default-restart").inputs["create"]
    (manifest,) = shlex.split(create.split(" <<< ", 1)[1].split(";", 1)[0])
    assert json.loads(manifest) == {
        "apiVersion": f"security.istio.io/{api_version}",
        "kind": "PeerAuthentication",
        "metadata": {"name": "istio-mesh-sidecar-rollout", "namespace": "default"},
        "spec": {"mtls": {"mode": "PERMISSIVE"}},
    }
