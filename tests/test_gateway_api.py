"""The GatewayApi component: its guard's rules, one change -> one exact message, and the graph it registers."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from components import gateway_api
from components.gateway_api import GatewayApiGuardError, GatewayApiGuardProvider, guard_refusal
from tests.harness import NO_GATEWAYS, RELEASE, build

GATEWAY_API = "istio-mesh:index:GatewayApi"
GUARD = "pulumi-python:dynamic/istio-mesh:GatewayApiGuard"
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
STANDARD = ("gatewayclasses", "gateways", "httproutes")
TAKE_OVER = "pulumi config set --path istio-mesh:gatewayApi.takeOver true"
POLICY_WAY_OUT = (
    "Delete the policy and its binding first (`kubectl delete validatingadmissionpolicybinding,"
    "validatingadmissionpolicy safe-upgrades.gateway.networking.k8s.io`) if you mean it, or keep the "
    "cluster's channel and a release of v1.5.0 or newer (gatewayApi.channel, gatewayApi.version)."
)


def crd(
    name: str,
    bundle: str | None = "v1.5.1",
    channel: str | None = "standard",
    *,
    managed: bool = False,
    group: str = "gateway.networking.k8s.io",
) -> dict[str, Any]:
    annotations: dict[str, str] = {}
    if bundle is not None:
        annotations["gateway.networking.k8s.io/bundle-version"] = bundle
    if channel is not None:
        annotations["gateway.networking.k8s.io/channel"] = channel
    if managed:
        annotations["istio-mesh/managed-by"] = "istio-mesh"
    return {"metadata": {"name": f"{name}.{group}", "annotations": annotations}, "spec": {"group": group}}


def props(version: str = "v1.5.1", channel: str = "standard", take_over: bool = False) -> dict[str, Any]:
    return {"version": version, "channel": channel, "takeOver": take_over}


def ways_out(versions: str) -> str:
    return (
        f"Either let this stack take them over (`{TAKE_OVER}`: every field is then the stack's, forced over "
        "their manager, and a `pulumi destroy` leaves them at the stack's release); or install what the "
        f"cluster has: gatewayApi.version ({versions}) and gatewayApi.channel, or gatewayApi.enabled: false "
        "to leave the CRDs to whoever manages them now."
    )


# --- the guard's rules ---------------------------------------------------------------------------


def test_a_fresh_cluster_passes() -> None:
    assert guard_refusal(props(), [], policy_present=False) is None


def test_the_same_release_applied_by_hand_is_adopted_silently() -> None:
    assert guard_refusal(props(), [crd(n) for n in STANDARD], policy_present=True) is None


def test_the_stacks_own_crds_of_another_release_are_upgraded() -> None:
    assert guard_refusal(props(), [crd("gateways", "v1.4.1", managed=True)], policy_present=False) is None


def test_an_older_release_managed_elsewhere_is_refused() -> None:
    assert guard_refusal(props(), [crd("gateways", "v1.4.1")], policy_present=False) == (
        "the stack installs the Gateway API CRDs v1.5.1 (standard channel), but:\n"
        "this cluster has Gateway API CRDs of another release or channel that this stack did not install:\n"
        "  - CustomResourceDefinition gateways.gateway.networking.k8s.io: v1.4.1 (standard channel), older\n"
        + ways_out("v1.4.1")
    )


def test_a_newer_release_managed_elsewhere_is_refused_as_a_downgrade() -> None:
    assert guard_refusal(props("v1.4.1"), [crd("httproutes", "v1.5.1")], policy_present=False) == (
        "the stack installs the Gateway API CRDs v1.4.1 (standard channel), but:\n"
        "this cluster has Gateway API CRDs of another release or channel that this stack did not install:\n"
        "  - CustomResourceDefinition httproutes.gateway.networking.k8s.io: v1.5.1 (standard channel), newer\n"
        + ways_out("v1.5.1")
    )


def test_another_channel_or_no_annotation_is_refused() -> None:
    message = guard_refusal(
        props(),
        [crd("gateways", channel="experimental"), crd("httproutes", None, None)],
        policy_present=False,
    )
    assert message == (
        "the stack installs the Gateway API CRDs v1.5.1 (standard channel), but:\n"
        "this cluster has Gateway API CRDs of another release or channel that this stack did not install:\n"
        "  - CustomResourceDefinition gateways.gateway.networking.k8s.io: v1.5.1 (experimental channel), "
        "another channel\n"
        "  - CustomResourceDefinition httproutes.gateway.networking.k8s.io: (none) ((none) channel), another "
        "release\n" + ways_out("(none), v1.5.1")
    )


def test_take_over_lets_another_release_through() -> None:
    assert guard_refusal(props(take_over=True), [crd("gateways", "v1.2.1")], policy_present=False) is None


def test_experimental_over_standard_is_refused_by_the_policy_even_with_take_over() -> None:
    message = guard_refusal(
        props(channel="experimental", take_over=True), [crd("gateways", managed=True)], policy_present=False
    )
    assert message == (
        "the stack installs the Gateway API CRDs v1.5.1 (experimental channel), but:\n"
        "the API server would refuse the stack's CRDs:\n"
        "  - CustomResourceDefinition gateways.gateway.networking.k8s.io is v1.5.1 of the standard channel, "
        "and the ValidatingAdmissionPolicy safe-upgrades.gateway.networking.k8s.io (Gateway API v1.5 and newer) "
        "refuses experimental CRDs over standard ones\n" + POLICY_WAY_OUT
    )


def test_experimental_over_standard_before_the_policy_passes() -> None:
    assert (
        guard_refusal(props("v1.4.1", "experimental"), [crd("gateways", "v1.4.1", managed=True)], False)
        is None
    )
    # ... unless the cluster has the policy; and the x-k8s.io group is never judged by it.
    assert guard_refusal(props("v1.4.1", "experimental"), [crd("gateways", "v1.4.1", managed=True)], True)
    xmesh = crd("xmeshes", managed=True, group="gateway.networking.x-k8s.io")
    assert guard_refusal(props(channel="experimental"), [xmesh], policy_present=True) is None


def test_a_release_before_the_clusters_policy_is_refused() -> None:
    message = guard_refusal(props("v1.4.1"), [crd("gateways", "v1.5.1", managed=True)], policy_present=True)
    assert message == (
        "the stack installs the Gateway API CRDs v1.4.1 (standard channel), but:\n"
        "the API server would refuse the stack's CRDs:\n"
        "  - CustomResourceDefinition gateways.gateway.networking.k8s.io: the cluster's ValidatingAdmissionPolicy "
        "safe-upgrades.gateway.networking.k8s.io refuses Gateway API CRDs older than v1.5.0, and the stack's are "
        "v1.4.1\n" + POLICY_WAY_OUT
    )


# --- the guard as the engine runs it -------------------------------------------------------------


def fake_cluster(
    monkeypatch: pytest.MonkeyPatch, *, owner: str | None, crds: list[dict], policy: bool
) -> None:
    def run_bash(script: str, timeout: int, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        if "configmap istio-mesh-owner" in script:
            out = json.dumps({"data": {"stack": owner}}) if owner else ""
        elif "customresourcedefinition/" in script:
            out = json.dumps({"kind": "List", "items": crds})
        else:
            assert "validatingadmissionpolicy/safe-upgrades.gateway.networking.k8s.io" in script, script
            out = "validatingadmissionpolicy.admissionregistration.k8s.io/safe-upgrades\n" if policy else ""
        return subprocess.CompletedProcess(script, 0, out, "")

    monkeypatch.setattr(gateway_api, "run_bash", run_bash)
    # Through the function's own module: other tests render programs that re-import `components`.
    monkeypatch.setitem(gateway_api.current_owner.__globals__, "run_bash", run_bash)


def guard_props() -> dict[str, Any]:
    graph = build("prod")
    inputs = dict(graph.get(GUARD, "gateway-api-guard").inputs)
    assert inputs.pop("__provider") == "[secret]"  # the serialized provider, as for every dynamic resource
    return inputs


def test_check_refuses_on_the_version_property(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cluster(monkeypatch, owner=None, crds=[crd("gateways", "v1.4.1")], policy=False)
    result = GatewayApiGuardProvider().check({}, guard_props())
    assert [(f.property, f.reason.splitlines()[2]) for f in result.failures or []] == [
        (
            "version",
            "  - CustomResourceDefinition gateways.gateway.networking.k8s.io: v1.4.1 (standard channel), older",
        )
    ]
    with pytest.raises(GatewayApiGuardError):
        GatewayApiGuardProvider().create(guard_props())


def test_check_refuses_another_stacks_cluster_first(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cluster(monkeypatch, owner="istio-mesh/other", crds=[], policy=False)
    result = GatewayApiGuardProvider().check({}, guard_props())
    assert [(f.property, f.reason) for f in result.failures or []] == [
        (
            "owner",
            "this cluster is owned by stack istio-mesh/other (ConfigMap kube-system/istio-mesh-owner), not "
            "istio-mesh/prod: two stacks on one cluster would undo each other's changes. Deploy this stack to "
            "another cluster, or `pulumi destroy` istio-mesh/other first",
        )
    ]
    # A renamed stack keeps its cluster: the owner in its state is the claim's.
    assert not GatewayApiGuardProvider().check({"owner": "istio-mesh/other"}, guard_props()).failures


def test_check_passes_the_stacks_own_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cluster(
        monkeypatch,
        owner="istio-mesh/prod",
        crds=[crd(n, "v1.4.1", managed=True) for n in STANDARD],
        policy=False,
    )
    assert not GatewayApiGuardProvider().check({}, guard_props()).failures
    assert GatewayApiGuardProvider().create(guard_props()).outs == guard_props()


def test_the_guard_reads_what_it_needs_naming_the_context() -> None:
    inputs = guard_props()
    assert inputs == {
        "owner": "istio-mesh/prod",
        "version": "v1.5.1",
        "channel": "standard",
        "takeOver": False,
        "crds": [f"{n}.gateway.networking.k8s.io" for n in STANDARD],
        "readClaim": "kubectl --context prod-cluster --namespace kube-system get --ignore-not-found configmap "
        "istio-mesh-owner --output=json",
        "readCrds": "kubectl --context prod-cluster get --ignore-not-found --output=json "
        + " ".join(f"customresourcedefinition/{n}.gateway.networking.k8s.io" for n in STANDARD),
        "readPolicy": "kubectl --context prod-cluster get --ignore-not-found --output=name "
        "validatingadmissionpolicy/safe-upgrades.gateway.networking.k8s.io",
    }


# --- the registered graph ------------------------------------------------------------------------


def test_the_crds_are_children_of_the_component_retained_and_behind_the_guard() -> None:
    graph = build("prod")
    assert graph.error is None, graph.error
    component = graph.get(GATEWAY_API, "gateway-api")
    assert graph.ancestors(component) == ["istio-mesh:index:Mesh"]
    guard = graph.get(GUARD, "gateway-api-guard")
    assert guard.parent == component.urn and not guard.retain_on_delete
    children = graph.children(component)
    assert [(r.type, r.name) for r in children] == [
        (GUARD, "gateway-api-guard"),
        *((CRD, f"{n}.gateway.networking.k8s.io") for n in STANDARD),
        (POLICY, "safe-upgrades.gateway.networking.k8s.io"),
        (BINDING, "safe-upgrades.gateway.networking.k8s.io"),
    ]
    for resource in children[1:]:
        assert resource.retain_on_delete and not resource.protect
        assert guard.urn in resource.dependencies
        assert set(resource.inputs) == {"apiVersion", "kind", "metadata", "spec"}
        annotations = resource.inputs["metadata"]["annotations"]
        assert annotations["istio-mesh/managed-by"] == "istio-mesh"
        # Without takeOver only the policy and binding force (their atomic match structs).
        forced = annotations.get("pulumi.com/patchForce") == "true"
        assert forced == (resource.type != CRD), resource.name
    crds = [r for r in children if r.type == CRD]
    policy, binding = children[-2:]
    assert {c.urn for c in crds} <= set(policy.dependencies)
    assert policy.urn in binding.dependencies
    assert crds[0].inputs["metadata"] == {
        "name": "gatewayclasses.gateway.networking.k8s.io",
        "annotations": {
            "gateway.networking.k8s.io/bundle-version": "v1.5.1",
            "gateway.networking.k8s.io/channel": "standard",
            "istio-mesh/managed-by": "istio-mesh",
        },
    }
    assert graph.outputs["gatewayApi"] == {"version": "v1.5.1", "channel": "standard"}


def test_take_over_forces_the_fields_of_another_manager() -> None:
    graph = build("prod", gatewayApi={"takeOver": True})
    assert graph.error is None, graph.error
    for resource in [*graph.of_type(CRD), *graph.of_type(POLICY), *graph.of_type(BINDING)]:
        assert resource.inputs["metadata"]["annotations"]["pulumi.com/patchForce"] == "true"
    assert graph.get(GUARD, "gateway-api-guard").inputs["takeOver"] is True


def test_every_istiod_waits_for_the_crds() -> None:
    graph = build(
        "prod",
        istio={"revisions": {"a": {"version": "1.29.6"}, "b": {"version": "1.30.3"}}, "defaultRevision": "b"},
    )
    assert graph.error is None, graph.error
    istiods = [r for r in graph.of_type(RELEASE) if r.name.startswith("istiod")]
    assert len(istiods) == 2
    for istiod in istiods:
        for crd_resource in graph.of_type(CRD):
            assert graph.depends_on(istiod, crd_resource), istiod.name


def test_the_experimental_channel_and_a_pinned_version() -> None:
    graph = build("prod", gatewayApi={"channel": "experimental"})
    assert graph.error is None, graph.error
    assert "xmeshes.gateway.networking.x-k8s.io" in graph.names(CRD)
    graph = build("prod", istio={"version": "1.24.6", "gateways": NO_GATEWAYS})
    assert graph.error is None, graph.error
    assert {
        r.inputs["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"]
        for r in graph.of_type(CRD)
    } == {"v1.2.1"}
    assert not graph.of_type(POLICY)


def test_a_stack_before_1_22_or_disabled_has_no_gateway_api() -> None:
    for graph in (build("dev"), build("prod", gatewayApi={"enabled": False})):
        assert graph.error is None, graph.error
        assert not graph.of_type(GATEWAY_API) and not graph.of_type(GUARD) and not graph.of_type(CRD)
        assert "gatewayApi" not in graph.outputs


def test_a_source_problem_stops_the_program_with_its_message(tmp_path: Any) -> None:
    graph = build("prod", gatewayApi={"source": str(tmp_path)})
    assert graph.error == (
        f"Gateway API v1.5.1 (standard channel) not found: {tmp_path}/standard-install.yaml does not exist "
        f"(gatewayApi.source is '{tmp_path}')."
    )


# --- reading the cluster, and the provider's other calls -------------------------------------------


def answering(
    monkeypatch: pytest.MonkeyPatch, crds_out: str, policy_out: str = "", code: int = 0, err: str = ""
) -> None:
    def run_bash(script: str, timeout: int, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        assert timeout == 120, timeout
        return subprocess.CompletedProcess(
            script, code, crds_out if script == "read-crds" else policy_out, err
        )

    monkeypatch.setattr(gateway_api, "run_bash", run_bash)


READ = {"readCrds": "read-crds", "readPolicy": "read-policy"}


def test_the_cluster_is_read_as_kubectl_prints_one_many_or_no_crds(monkeypatch: pytest.MonkeyPatch) -> None:
    gateways, routes = crd("gateways"), crd("httproutes")
    answering(monkeypatch, json.dumps({"kind": "List", "items": [gateways, routes]}), "vap/safe-upgrades\n")
    assert gateway_api.read_cluster(READ) == ([gateways, routes], True)
    answering(monkeypatch, json.dumps({"kind": "CustomResourceDefinition", **gateways}))
    assert gateway_api.read_cluster(READ) == ([{"kind": "CustomResourceDefinition", **gateways}], False)
    answering(monkeypatch, "\n", "\n")
    assert gateway_api.read_cluster(READ) == ([], False)


def test_a_failed_read_names_the_command_and_the_end_of_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    answering(monkeypatch, "", code=1, err="error: forbidden\n")
    with pytest.raises(GatewayApiGuardError) as error:
        gateway_api.read_cluster(READ)
    assert str(error.value) == "read-crds: error: forbidden"
    answering(monkeypatch, "", code=1, err="x" * 10 + "y" * 2000)
    with pytest.raises(GatewayApiGuardError) as error:
        gateway_api.read_cluster(READ)
    assert str(error.value) == "read-crds: " + "y" * 2000


def test_the_guard_is_one_resource_that_changes_with_its_inputs_and_checks_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = GatewayApiGuardProvider()
    news = guard_props()
    assert provider.diff("gateway-api-guard", dict(news), news).changes is False
    assert provider.diff("gateway-api-guard", {**news, "version": "v1.4.1"}, news).changes is True
    assert provider.diff("gateway-api-guard", {**news, "takeOver": True}, news).changes is True
    fake_cluster(monkeypatch, owner="istio-mesh/prod", crds=[], policy=False)
    assert provider.create(news).id == "gateway-api-guard"
    assert provider.update("gateway-api-guard", news, news).outs == news
    fake_cluster(monkeypatch, owner="istio-mesh/prod", crds=[crd("gateways", "v1.4.1")], policy=False)
    with pytest.raises(GatewayApiGuardError) as error:
        provider.update("gateway-api-guard", news, news)
    assert str(error.value).splitlines()[2] == (
        "  - CustomResourceDefinition gateways.gateway.networking.k8s.io: v1.4.1 (standard channel), older"
    )


def test_the_applied_metadata_drops_the_creation_timestamp_and_keeps_the_rest() -> None:
    obj = {
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": "gateways.gateway.networking.k8s.io",
            "creationTimestamp": None,
            "labels": {"a": "b"},
        },
    }
    assert gateway_api.stack_metadata(obj, take_over=False) == {
        "name": "gateways.gateway.networking.k8s.io",
        "labels": {"a": "b"},
        "annotations": {"istio-mesh/managed-by": "istio-mesh"},
    }
    assert gateway_api.stack_metadata(obj, take_over=True)["annotations"] == {
        "istio-mesh/managed-by": "istio-mesh",
        "pulumi.com/patchForce": "true",
    }


# --- the release table ----------------------------------------------------------------------------


def test_each_istio_minor_names_the_crds_it_serves_only_from_a_later_release() -> None:
    """Istio's MinimumCRDVersions (pkg/config/schema/gatewayapi/minimumversions.go) of 1.30 and 1.31."""
    from components.gateway_api_versions import release_for

    tcp, tls = "tcproutes.gateway.networking.k8s.io", "tlsroutes.gateway.networking.k8s.io"
    grpc, backend = "grpcroutes.gateway.networking.k8s.io", "backendtlspolicies.gateway.networking.k8s.io"
    istio_1_31, istio_1_30, istio_1_29 = (
        release_for((1, 31, 0)),
        release_for((1, 30, 3)),
        release_for((1, 29, 6)),
    )
    assert istio_1_31 is not None and istio_1_30 is not None and istio_1_29 is not None
    assert [istio_1_31.minimum(c) for c in (tcp, tls, grpc, backend, "gateways.gateway.networking.k8s.io")] == [
        "v1.6.0", "v1.5.0", "v1.1.0", "v1.4.0", "v1.0.0",
    ]  # fmt: skip
    assert [istio_1_30.minimum(c) for c in (tcp, tls, grpc, backend)] == [
        "v1.0.0",
        "v1.5.0",
        "v1.1.0",
        "v1.4.0",
    ]
    assert [istio_1_29.minimum(c) for c in (tcp, tls, grpc, backend)] == ["v1.0.0"] * 4
    assert [r.overall_minimum for r in (istio_1_31, istio_1_30, istio_1_29)] == ["v1.6.0", "v1.5.0", "v1.0.0"]
    assert [istio_1_31.pinned, istio_1_30.pinned, istio_1_29.pinned] == ["v1.6.0", "v1.5.1", "v1.4.1"]
    assert release_for((1, 21, 9)) is None and release_for((2, 30, 0)) is None


def test_the_policy_is_in_force_from_v1_5_0_exactly() -> None:
    managed = [crd("gateways", "v1.5.0", managed=True)]
    assert guard_refusal(props("v1.5.0", "experimental"), managed, policy_present=False) == (
        "the stack installs the Gateway API CRDs v1.5.0 (experimental channel), but:\n"
        "the API server would refuse the stack's CRDs:\n"
        "  - CustomResourceDefinition gateways.gateway.networking.k8s.io is v1.5.0 of the standard channel, "
        "and the ValidatingAdmissionPolicy safe-upgrades.gateway.networking.k8s.io (Gateway API v1.5 and newer) "
        "refuses experimental CRDs over standard ones\n" + POLICY_WAY_OUT
    )
    assert guard_refusal(props("v1.5.0"), managed, policy_present=True) is None
    assert guard_refusal(props("v1.4.1", "experimental"), managed, policy_present=False) is None


def test_a_version_that_is_no_release_tag_never_reaches_the_guard() -> None:
    for version in ("1.5.1", "v1.5", "v1.5.1-rc.1"):
        assert build("prod", gatewayApi={"version": version}).error == (
            "invalid stack configuration (1 problem(s)):\n"
            f"  - gatewayApi.version: got {version!r}; a Gateway API release tag such as v1.5.1"
        )


def test_an_update_on_a_cluster_without_a_claim_is_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cluster(monkeypatch, owner=None, crds=[], policy=False)
    assert not GatewayApiGuardProvider().check({"owner": "istio-mesh/prod"}, guard_props()).failures
    assert (
        GatewayApiGuardProvider().update("gateway-api-guard", {"owner": "istio-mesh/old"}, guard_props()).outs
    )
