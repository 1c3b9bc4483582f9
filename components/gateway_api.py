"""The Kubernetes Gateway API CRDs of a stack: one resource per object, never deleted, behind a guard.

Istio does not install the Gateway API CRDs (https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/),
but its gateways, waypoints and istiod's Gateway controller need them. `GatewayApi` applies the
release the stack names (components/gateway_api_source.py: its CRDs and, from v1.5, the
`safe-upgrades` ValidatingAdmissionPolicy and binding), before istiod:

- every object is its own resource, created and updated by server-side apply (the stack's provider
  has `enableServerSideApply`, and in that mode a create is an upsert: pulumi-kubernetes
  provider/pkg/await/await.go, Creation), so CRDs already on the cluster at the stack's release
  and channel, applied by hand, are adopted silently: the stack's field manager joins theirs with
  the same values;
- `retainOnDelete`: a destroy, or a stack that turns `gatewayApi.enabled` off, leaves them, like
  Istio's own CRDs (deleting a CRD deletes every Gateway and HTTPRoute of the cluster);
- with `gatewayApi.takeOver`, `pulumi.com/patchForce: "true"`, so the fields that another manager
  owns with other values are taken (the provider's force-conflicts); the policy and its binding
  always have it (see `stack_metadata`);
- `GatewayApiGuard` first, whose Check reads the cluster (see its docstring) and refuses, before
  anything changes, what would take CRDs of another release or channel away from whoever manages
  them now.

Each object is a `kubernetes.apiextensions.CustomResource` of the object's own apiVersion and kind:
the same resource as the typed class (`kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition`,
the same inputs on the wire, checked under the mock engine), without the typed class's walk of its
nested Args types. Measured under the mock engine (meshplan/engine.py, 2 cores, a program
registering v1.5.1's 10 standard objects, 637 kB of JSON, medians of 11 interleaved renders after a
warm-up): typed classes 306 ms, CustomResource 225 ms, one yaml/v2 ConfigGroup 161 ms. The
ConfigGroup is faster, but its objects are registered by the provider, and a group's
`retainOnDelete` does not reach them (pulumi/pulumi-kubernetes#3065, closed as won't fix), so a
destroy would delete every CRD: one resource per object is the only way to keep them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi.dynamic
import pulumi_kubernetes as k8s

from components.cluster import kubectl
from components.cluster_claim import CLAIM_NAME, CLAIM_NAMESPACE, current_owner
from components.cluster_claim import refusal as claim_refusal
from components.config import ClusterConfig, GatewayApiConfig
from components.gateway_api_source import SAFE_UPGRADES
from components.gateway_api_versions import (
    BUNDLE_VERSION_ANNOTATION,
    CHANNEL_ANNOTATION,
    GROUP,
    parse_release,
)
from components.local_command import run_bash

# How the guard knows a CRD is this stack's: the component sets it on every object it applies.
# An annotation rather than field managers: the provider's field manager name is per resource
# (`pulumi-kubernetes-<hex>`), and a hand-made `kubectl apply --server-side` of the same release
# would look alike. The ClusterClaim already makes the cluster one stack's, so the annotation needs
# no stack name (and a renamed stack keeps its CRDs).
MANAGED_ANNOTATION = "istio-mesh/managed-by"
MANAGED_VALUE = "istio-mesh"
PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce"
# From this release on, the safe-upgrades policy refuses experimental CRDs over standard ones and
# CRDs older than it (its CEL, config/crd/standard/gateway.networking.k8s.io_vap_safeupgrades.yaml).
SAFE_UPGRADES_FROM = (1, 5, 0)
KUBECTL_TIMEOUT_SECONDS = 120
TAKE_OVER = "pulumi config set --path istio-mesh:gatewayApi.takeOver true"


class GatewayApiGuardError(Exception):
    """The cluster could not be read, or changed since the Check into one the guard refuses."""


def _bundle_key(text: str) -> tuple[int, int, int]:
    return parse_release(text) or (0, 0, 0)


def guard_refusal(
    props: Mapping[str, Any], crds: Sequence[Mapping[str, Any]], policy_present: bool
) -> str | None:
    """Why the stack's release may not be applied over `crds` (the cluster's of the stack's names),
    or None. `props` are the guard's inputs (version, channel, takeOver)."""
    version, channel, take_over = props["version"], props["channel"], bool(props["takeOver"])
    # The policy is in force when the cluster has it, or as soon as the stack's own (v1.5+) is applied.
    policy = policy_present or _bundle_key(version) >= SAFE_UPGRADES_FROM
    theirs: list[str] = []
    blocked: list[str] = []
    for crd in sorted(crds, key=lambda c: c["metadata"]["name"]):
        metadata = crd["metadata"]
        name = metadata["name"]
        annotations = metadata.get("annotations") or {}
        bundle = str(annotations.get(BUNDLE_VERSION_ANNOTATION, "(none)"))
        their_channel = str(annotations.get(CHANNEL_ANNOTATION, "(none)"))
        group = (crd.get("spec") or {}).get("group")
        if group == GROUP and policy and their_channel == "standard" and channel == "experimental":
            blocked.append(
                f"CustomResourceDefinition {name} is {bundle} of the standard channel, and the "
                f"ValidatingAdmissionPolicy {SAFE_UPGRADES} (Gateway API v1.5 and newer) refuses "
                "experimental CRDs over standard ones"
            )
        if policy_present and group == GROUP and _bundle_key(version) < SAFE_UPGRADES_FROM:
            blocked.append(
                f"CustomResourceDefinition {name}: the cluster's ValidatingAdmissionPolicy {SAFE_UPGRADES} "
                f"refuses Gateway API CRDs older than v1.5.0, and the stack's are {version}"
            )
        if annotations.get(MANAGED_ANNOTATION) == MANAGED_VALUE or take_over:
            continue
        if (bundle, their_channel) != (version, channel):
            bundle_key, wanted = parse_release(bundle), _bundle_key(version)
            how = "another release" if bundle_key is None else "older" if bundle_key < wanted else "newer"
            if bundle_key == wanted:
                how = "another channel"
            theirs.append(f"CustomResourceDefinition {name}: {bundle} ({their_channel} channel), {how}")
    if not theirs and not blocked:
        return None
    lines = [f"the stack installs the Gateway API CRDs {version} ({channel} channel), but:"]
    if theirs:
        lines.append(
            "this cluster has Gateway API CRDs of another release or channel that this stack did not install:"
        )
        lines += [f"  - {t}" for t in theirs]
    if blocked:
        lines.append("the API server would refuse the stack's CRDs:")
        lines += [f"  - {b}" for b in dict.fromkeys(blocked)]
        lines.append(
            f"Delete the policy and its binding first (`kubectl delete validatingadmissionpolicybinding,"
            f"validatingadmissionpolicy {SAFE_UPGRADES}`) if you mean it, or keep the cluster's channel "
            "and a release of v1.5.0 or newer (gatewayApi.channel, gatewayApi.version)."
        )
    if theirs:
        versions = sorted({t.split(": ", 1)[1].split(" (", 1)[0] for t in theirs})
        lines.append(
            f"Either let this stack take them over (`{TAKE_OVER}`: every field is then the stack's, "
            "forced over their manager, and a `pulumi destroy` leaves them at the stack's release); "
            f"or install what the cluster has: gatewayApi.version ({', '.join(versions)}) and gatewayApi.channel, "
            "or gatewayApi.enabled: false to leave the CRDs to whoever manages them now."
        )
    return "\n".join(lines)


def _run(script: str) -> str:
    result = run_bash(script, KUBECTL_TIMEOUT_SECONDS)
    if result.returncode != 0:
        raise GatewayApiGuardError(f"{script}: {result.stderr.strip()[-2000:]}")
    return result.stdout


def read_cluster(props: Mapping[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The cluster's CRDs of the stack's names, and whether the safe-upgrades policy exists."""
    out = _run(props["readCrds"]).strip()
    parsed = json.loads(out) if out else {}
    crds = (
        list(parsed.get("items", []))
        if str(parsed.get("kind", "")).endswith("List")
        else ([parsed] if parsed else [])
    )
    return crds, bool(_run(props["readPolicy"]).strip())


def problems(olds: Mapping[str, Any] | None, props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(property, message) of everything the guard refuses, reading the cluster."""
    # The cluster's owner first: another stack's CRDs carry the same annotation, so only the claim
    # tells them from this stack's. ClusterClaim refuses the same in its own Check; the guard does not
    # rely on the engine checking the claim before it.
    claimed_by = current_owner({"read": props["readClaim"]})
    if claimed_by is not None and claimed_by not in (props["owner"], (olds or {}).get("owner")):
        return [("owner", claim_refusal(props["owner"], claimed_by))]
    message = guard_refusal(props, *read_cluster(props))
    return [("version", message)] if message else []


class GatewayApiGuardProvider(pulumi.dynamic.ResourceProvider):
    """Refuses in Check; its create and update check again (the cluster may have changed since)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        failures = [pulumi.dynamic.CheckFailure(prop, reason) for prop, reason in problems(olds, news)]
        return pulumi.dynamic.CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        self._again(None, props)
        return pulumi.dynamic.CreateResult(id_="gateway-api-guard", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = any(olds.get(key) != news.get(key) for key in news)
        return pulumi.dynamic.DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        self._again(olds, news)
        return pulumi.dynamic.UpdateResult(outs=news)

    @staticmethod
    def _again(olds: Mapping[str, Any] | None, props: Mapping[str, Any]) -> None:
        found = problems(olds, props)
        if found:
            raise GatewayApiGuardError(found[0][1])


class GatewayApiGuard(pulumi.dynamic.Resource, module="istio-mesh", name="GatewayApiGuard"):
    """The Check before the Gateway API CRDs (`pulumi-python:dynamic/istio-mesh:GatewayApiGuard`)."""

    def __init__(
        self,
        name: str,
        *,
        owner: str,
        gateway_api: GatewayApiConfig,
        crds: Sequence[str],
        cluster: ClusterConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        get = ("get", "--ignore-not-found")
        props = {
            "owner": owner,
            "version": gateway_api.version,
            "channel": gateway_api.channel,
            "takeOver": gateway_api.take_over,
            "crds": list(crds),
            "readClaim": kubectl(
                cluster, "--namespace", CLAIM_NAMESPACE, *get, "configmap", CLAIM_NAME, "--output=json"
            ),
            "readCrds": kubectl(
                cluster, *get, "--output=json", *(f"customresourcedefinition/{c}" for c in crds)
            ),
            "readPolicy": kubectl(
                cluster, *get, "--output=name", f"validatingadmissionpolicy/{SAFE_UPGRADES}"
            ),
        }
        super().__init__(GatewayApiGuardProvider(), name, props, opts)


def stack_metadata(obj: Mapping[str, Any], take_over: bool) -> dict[str, Any]:
    """The object's metadata with the stack's marker, and `patchForce` when it takes others' fields.

    The safe-upgrades policy and its binding are always forced. Their `matchConstraints` and
    `matchResources` are atomic structs (k8s.io/api admissionregistration/v1 MatchResources,
    `+structType=atomic`) that the API server fills with defaults (matchPolicy, namespaceSelector,
    objectSelector), so a second manager applying the very same manifest conflicts with the first on
    the whole struct: seen on the real engine, adopting a release applied by hand with `kubectl apply
    --server-side` (hack/e2e_local.py, scenario 9f). The guard has already refused a cluster whose
    CRDs are of another release or channel, so what is forced is the stack's own release's policy.
    """
    metadata = {k: v for k, v in obj["metadata"].items() if k != "creationTimestamp"}
    annotations = {**(metadata.get("annotations") or {}), MANAGED_ANNOTATION: MANAGED_VALUE}
    if take_over or obj["kind"] != "CustomResourceDefinition":
        annotations[PATCH_FORCE_ANNOTATION] = "true"
    return {**metadata, "annotations": annotations}


class GatewayApi(pulumi.ComponentResource):
    """The Gateway API CRDs of `gateway_api.version` and channel, guarded, retained on delete."""

    def __init__(
        self,
        name: str,
        gateway_api: GatewayApiConfig,
        objects: Sequence[Mapping[str, Any]],
        *,
        cluster: ClusterConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("istio-mesh:index:GatewayApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        crd_names = [o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"]
        self.guard = GatewayApiGuard(
            "gateway-api-guard",
            owner=f"{pulumi.get_project()}/{pulumi.get_stack()}",
            gateway_api=gateway_api,
            crds=crd_names,
            cluster=cluster,
            opts=child,
        )

        def resource(obj: Mapping[str, Any], *needs: pulumi.Resource) -> k8s.apiextensions.CustomResource:
            return k8s.apiextensions.CustomResource(
                obj["metadata"]["name"],
                api_version=obj["apiVersion"],
                kind=obj["kind"],
                metadata=stack_metadata(obj, gateway_api.take_over),
                spec=obj["spec"],
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[self.guard, *needs], retain_on_delete=True)
                ),
            )

        self.crds = [resource(o) for o in objects if o["kind"] == "CustomResourceDefinition"]
        # The policy comes after the CRDs, as in the release manifest (kubectl applies in order), and
        # its binding after it.
        self.policies: list[k8s.apiextensions.CustomResource] = []
        for obj in objects:
            if obj["kind"] != "CustomResourceDefinition":
                self.policies.append(resource(obj, *self.crds, *self.policies))
        self.register_outputs(
            {"version": gateway_api.version, "channel": gateway_api.channel, "crds": crd_names}
        )
