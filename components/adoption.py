"""Adopting a cluster set up by hand: refused in Check, or taken over with `adopt: true`.

The seed installs Istio by hand: `helm install istio-base base`, `istiod`, the gateway releases in
istio-system, and `kubectl apply` of the addons. A first `pulumi up` over that fails halfway, after
it has changed the cluster (seen on the local cluster, README "Clusters set up by hand"):

- each Release: Helm refuses a release name in use, "cannot re-use a name that is still in use";
- each addon object: the kubernetes provider creates with server-side apply, which (v4.25.0, the
  local engine's provider) updates the object that is there, and fails on every field whose value
  the program changes, owned by `kubectl-client-side-apply`: "Apply failed with 1 conflict:
  conflict with "kubectl-client-side-apply" using v1: .spec.type" (the dashboards' Services),
  `...env[name="POD_IP"].valueFrom.fieldRef` (Grafana's Deployment). Where it succeeds, kubectl's
  manager stays a co-owner of every field, so a field the program later drops would stay. (Newer
  providers create client-side and fail with AlreadyExists instead, unless
  `PULUMI_K8S_UPSERT_EXISTING_OBJECTS` is set: the pulumi_kubernetes 4.34.2 SDK's `Provider` doc.)

`Adoption` is a dynamic resource that every change of the control plane waits for (it comes right
after the cluster claim, before istio-system). Its Check reads the cluster the first time it is
registered, and, when the cluster holds a hand-made installation, refuses the preview or the `up`
before anything changes, naming what is in the way and the two ways on. With `adopt: true`, its
create hands the installation over instead, and the rest of the same `up` installs the stack's own:

- each Helm release of a name the stack installs keeps its objects, which carry Helm's ownership
  metadata for that release name (`meta.helm.sh/release-name`), but loses its history (the
  `owner=helm,name=<release>` Secrets): the Release's `helm install` then adopts the objects and
  updates them to the stack's values, as Helm does for objects of its own release name;
- each addon object of the stack's manifests that exists is deleted, and created again by the
  stack moments later, with the stack as its one field manager. The addons keep nothing across a
  restart (their storage is `emptyDir`), so what is lost is what any restart loses.

What can't be adopted is refused whatever `adopt` says: a Helm release that isn't `deployed` (a
failed or interrupted operation: `helm rollback` or `helm uninstall` it first), and an Istio
Deployment (`istiod`, a gateway) with no Helm release of its name (an istioctl install:
`istioctl uninstall --purge` first). The cluster is the stack's own, and nothing is read or changed, when istio-system
carries the stack's `istio-mesh/environment` label or when the Adoption is already in the state.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

from components.cluster import helm, kubectl
from components.config import ISTIO_NAMESPACE, NODE_AGENT_DAEMONSETS, ClusterConfig, IstioConfig
from components.local_command import run_bash

# Set on istio-system by every stack (components/control_plane.py, ENVIRONMENT_LABEL).
OWN_NAMESPACE_LABEL = "istio-mesh/environment"
KUBECTL_TIMEOUT_SECONDS = 300
BASE_RELEASE = "istio-base"
INJECTION_LABELS = ("istio-injection", "istio.io/rev")
# The kubernetes provider's field managers are `pulumi-kubernetes-<hex>`, one per resource.
STACK_MANAGER_PREFIX = "pulumi-kubernetes"
# Every release whatever its state, in Helm 3 (which lists only deployed and failed ones by default,
# and has `--all`) and in Helm 4 (which lists all by default, and has no `--all`).
LIST_EVERY_STATE = ("--deployed", "--failed", "--pending", "--uninstalling")


class AdoptionError(Exception):
    """The cluster could not be read, or the hand-over failed."""


def release_names(istio: IstioConfig) -> list[str]:
    """The Helm releases the stack installs, as components/control_plane.py names them."""
    istiods = [f"istiod-{r.name}" for r in istio.revisions] if istio.revisions else ["istiod"]
    node_agents = list(NODE_AGENT_DAEMONSETS) if istio.ambient else []
    return [BASE_RELEASE, *istiods, *node_agents, *(g.release_name for g in istio.gateways)]


def workload_refs(releases: Sequence[str]) -> list[str]:
    """The workload each release runs under its own name (istiod and gateways: a Deployment; the
    node agents: their DaemonSet), as kubectl names them: where an istioctl install shows."""
    return [
        f"daemonset.apps/{NODE_AGENT_DAEMONSETS[r]}" if r in NODE_AGENT_DAEMONSETS else f"deployment.apps/{r}"
        for r in releases
    ]


def object_ref(obj: Mapping[str, Any]) -> str:
    """kubectl's `<kind>.<group>/<name>` of a manifest object (the core group has none)."""
    group = obj["apiVersion"].rpartition("/")[0]
    kind = obj["kind"].lower()
    return f"{kind}.{group}/{obj['metadata']['name']}" if group else f"{kind}/{obj['metadata']['name']}"


@dataclass(frozen=True)
class HandMade:
    """What a hand-made installation may hold of the stack's: `adopt` says whether to take it over."""

    adopt: bool = False
    addon_objects: tuple[Mapping[str, Any], ...] = ()
    # The namespaces the stack labels for injection: their label's owner is handed over too.
    injected_namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Findings:
    """What a hand-made installation has in the way of the stack."""

    releases: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    # Refused whatever `adopt` says, each with its way out.
    blocked: tuple[str, ...] = ()
    # The cluster is the stack's own: nothing was looked at.
    own: bool = False

    @property
    def empty(self) -> bool:
        return not (self.releases or self.objects or self.blocked)


def findings(
    namespace: Mapping[str, Any] | None,
    listed_releases: Sequence[Mapping[str, Any]],
    deployments: Sequence[Mapping[str, Any]],
    existing_objects: Sequence[Mapping[str, Any]],
    releases: Sequence[str],
) -> Findings:
    """What is in the way, from what the cluster answered; nothing when the cluster is the stack's."""
    if namespace is None:
        return Findings()
    if OWN_NAMESPACE_LABEL in (namespace.get("metadata", {}).get("labels") or {}):
        return Findings(own=True)
    helm_releases = {r["name"]: r.get("status", "") for r in listed_releases if r.get("name") in releases}
    blocked = [
        f"Helm release {ISTIO_NAMESPACE}/{name} is {status}, not deployed (an operation failed or was "
        f"interrupted): `helm rollback {name} -n {ISTIO_NAMESPACE}` or `helm uninstall {name} -n "
        f"{ISTIO_NAMESPACE}` first"
        for name, status in sorted(helm_releases.items())
        if status != "deployed"
    ]
    release_of = {daemonset: release for release, daemonset in NODE_AGENT_DAEMONSETS.items()}
    workloads = {
        (
            w.get("kind", "Deployment"),
            w["metadata"]["name"],
            release_of.get(w["metadata"]["name"], w["metadata"]["name"]),
        )
        for w in deployments
        if w.get("kind", "Deployment") == "Deployment" or w["metadata"]["name"] in release_of
    }
    blocked += [
        f"{kind} {ISTIO_NAMESPACE}/{name} exists without a Helm release {release} (an istioctl or kubectl "
        f"install, which Helm can't adopt): `istioctl uninstall --purge` (or delete it) first"
        for kind, name, release in sorted(workloads)
        if release in releases and release not in helm_releases
    ]
    objects = []
    for obj in existing_objects:
        namespace_name = obj["metadata"].get("namespace")
        ref = object_ref(obj)
        objects.append(f"{namespace_name}/{ref}" if namespace_name else ref)
    return Findings(tuple(sorted(helm_releases)), tuple(sorted(objects)), tuple(blocked))


def refusal(found: Findings, adopt: bool) -> str | None:
    """The Check failure's message, or None when the `up` may go on."""
    if found.empty or (adopt and not found.blocked):
        return None
    lines = ["this cluster holds an Istio installation made by hand, which this stack would collide with:"]
    lines += [f"  - Helm release {ISTIO_NAMESPACE}/{r}" for r in found.releases]
    lines += [f"  - {o} (an addon object applied by kubectl)" for o in found.objects]
    if found.blocked:
        lines.append("These can't be adopted:")
        lines += [f"  - {b}" for b in found.blocked]
    else:
        lines.append(
            "Either let this stack take them over: `pulumi config set istio-mesh:adopt true` for one `up` "
            "(each release keeps its objects and loses its Helm history; each addon object is deleted and "
            "created again by the stack), then `pulumi config rm istio-mesh:adopt`;"
        )
        lines.append(
            f"or remove them first: `helm uninstall {' '.join(found.releases) or '<release>'} -n "
            f"{ISTIO_NAMESPACE}` and `kubectl delete -f samples/addons` (README, Clusters set up by hand)"
        )
    return "\n".join(lines)


def label_handover(namespace: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch that leaves the injection labels of `namespace` to no field manager but the stack's.

    `kubectl label` (manager `kubectl-label`) owns a label it set; the stack's NamespacePatch forces
    the same value, and the two then share it, so the label would outlive the stack's destroy. The
    patch removes the labels from every other manager's fields (the label itself stays), guarded by
    the namespace's resourceVersion. None when no other manager owns them.
    """
    metadata = namespace["metadata"]
    kept: list[dict[str, Any]] = []
    changed = False
    for entry in metadata.get("managedFields") or []:
        entry = json.loads(json.dumps(entry))
        owned = entry.get("fieldsV1", {}).get("f:metadata", {}).get("f:labels", {})
        if not str(entry.get("manager", "")).startswith(STACK_MANAGER_PREFIX):
            for key in INJECTION_LABELS:
                changed = owned.pop(f"f:{key}", None) is not None or changed
            if "f:labels" in entry.get("fieldsV1", {}).get("f:metadata", {}) and set(owned) <= {"."}:
                del entry["fieldsV1"]["f:metadata"]["f:labels"]
            if entry.get("fieldsV1", {}).get("f:metadata") == {}:
                del entry["fieldsV1"]["f:metadata"]
            if not entry.get("fieldsV1"):
                continue
        kept.append(entry)
    if not changed:
        return None
    return {"metadata": {"resourceVersion": metadata["resourceVersion"], "managedFields": kept}}


def _run(script: str) -> str:
    result = run_bash(script, KUBECTL_TIMEOUT_SECONDS)
    if result.returncode != 0:
        raise AdoptionError(f"{script}: {result.stderr.strip()[-2000:]}")
    return result.stdout


def _items(script: str) -> list[dict[str, Any]]:
    """The objects a `kubectl get ... --output=json` printed: none, one, or a List's items."""
    if not script:
        return []
    out = _run(script).strip()
    if not out:
        return []
    parsed = json.loads(out)
    return list(parsed.get("items", [])) if parsed.get("kind", "").endswith("List") else [parsed]


def read(settings: Mapping[str, Any]) -> Findings:
    """Ask the cluster what is in the way (see `findings`)."""
    namespace = _items(settings["namespace"])
    if not namespace:
        return Findings()
    listed = json.loads(_run(settings["helmList"]) or "[]")
    return findings(
        namespace[0],
        listed,
        _items(settings["deployments"]),
        [*_items(settings["namespaced"]), *_items(settings["clusterScoped"])],
        settings["releases"],
    )


class AdoptionProvider(pulumi.dynamic.ResourceProvider):
    """Refuses a hand-made installation in Check, or hands it over on create with `adopt`.

    Its settings (what to look for, the kubectl and helm lines, `adopt`) are the provider's own, not
    the resource's inputs: the engine keeps the provider serialized as a secret (`__provider`), so a
    new addon, revision or namespace, or `adopt` set and removed again, changes no input and shows
    no update in `pulumi preview` or `meshplan diff`. They matter only the first time, before the
    Adoption is in the state; after that it does nothing.
    """

    def __init__(self, settings: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        super().__init__()
        self.settings = dict(settings)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as pairs, never as a dict: the SDK's serialize_provider wraps pickle's
        # `_batch_setitems` (which pickles every dict) in one more sorting wrapper each time it runs
        # and never unwraps it, so in a process that renders many stacks (the tests, `meshplan show
        # --all`) a dict in a provider recurses through thousands of wrappers (pulumi 3.272.0,
        # pulumi/dynamic/dynamic.py). Lists and tuples don't go through it.
        return (AdoptionProvider, (tuple(sorted(self.settings.items())),))

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        if olds:  # in the stack's state: the cluster is the stack's own
            return pulumi.dynamic.CheckResult(news, [])
        message = refusal(read(self.settings), bool(self.settings["adopt"]))
        failures = [pulumi.dynamic.CheckFailure("namespace", message)] if message else []
        return pulumi.dynamic.CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = {**props, **self.hand_over()}
        return pulumi.dynamic.CreateResult(id_="adoption", outs=outs)

    def hand_over(self) -> dict[str, list[str]]:
        """Take over what is in the way (nothing on a fresh cluster or the stack's own); what was taken."""
        settings = self.settings
        found = read(settings)
        message = refusal(found, bool(settings.get("adopt")))
        if message:  # the cluster changed since Check
            raise AdoptionError(message)
        for release in found.releases:
            _run(settings["forgetRelease"].replace("{release}", release))
            pulumi.log.info(f"adopting Helm release {ISTIO_NAMESPACE}/{release}: its history is deleted")
        if found.objects:
            for script in (settings["deleteNamespaced"], settings["deleteClusterScoped"]):
                if script:
                    _run(script)
            pulumi.log.info(f"adopting {len(found.objects)} addon objects: deleted, the stack creates them")
        labels = []
        if _items(settings["namespace"]) and not found.own:
            for name in settings["injectedNamespaces"]:
                namespace = _items(settings["getNamespace"].replace("{namespace}", name))
                patch = label_handover(namespace[0]) if namespace else None
                if patch is not None:
                    change = shlex.join(
                        ["patch", "namespace", name, "--type=merge", "--patch", json.dumps(patch)]
                    )
                    _run(f"{settings['kubectl']} {change}")
                    labels.append(name)
        if labels:
            pulumi.log.info(f"the injection labels of {', '.join(labels)}: now owned by the stack alone")
        return {"releases": list(found.releases), "objects": list(found.objects), "labels": labels}

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        # Once created, the cluster is the stack's: nothing left to adopt, whatever changes.
        return pulumi.dynamic.DiffResult(changes=False, replaces=[], delete_before_replace=False)


class Adoption(pulumi.dynamic.Resource, module="istio-mesh", name="Adoption"):
    """The hand-over of a hand-made installation (`pulumi-python:dynamic/istio-mesh:Adoption`)."""

    def __init__(
        self,
        name: str,
        *,
        cluster: ClusterConfig,
        istio: IstioConfig,
        hand_made: HandMade,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        releases = release_names(istio)
        addon_objects = hand_made.addon_objects
        namespaced = [
            object_ref(o) for o in addon_objects if o["metadata"].get("namespace") == ISTIO_NAMESPACE
        ]
        cluster_scoped = [object_ref(o) for o in addon_objects if not o["metadata"].get("namespace")]
        where = ("--namespace", ISTIO_NAMESPACE)
        get = ("get", "--ignore-not-found", "--output=json")
        delete = ("delete", "--ignore-not-found", "--wait")
        settings = {
            "adopt": hand_made.adopt,
            "releases": releases,
            "injectedNamespaces": list(hand_made.injected_namespaces),
            "kubectl": kubectl(cluster),
            "getNamespace": kubectl(cluster, *get, "--show-managed-fields", "namespace", "{namespace}"),
            "namespace": kubectl(cluster, *get, "namespace", ISTIO_NAMESPACE),
            "helmList": helm(cluster, "list", *where, *LIST_EVERY_STATE, "--output", "json"),
            "deployments": kubectl(cluster, *where, *get, *workload_refs(releases)),
            "namespaced": kubectl(cluster, *where, *get, *namespaced) if namespaced else "",
            "clusterScoped": kubectl(cluster, *get, *cluster_scoped) if cluster_scoped else "",
            # Helm keeps a release's history in Secrets labelled with its name; the objects stay.
            "forgetRelease": kubectl(
                cluster, *where, "delete", "secret", "--selector", "owner=helm,name={release}"
            ),
            "deleteNamespaced": kubectl(cluster, *where, *delete, *namespaced) if namespaced else "",
            "deleteClusterScoped": kubectl(cluster, *delete, *cluster_scoped) if cluster_scoped else "",
        }
        super().__init__(AdoptionProvider(settings), name, {"namespace": ISTIO_NAMESPACE}, opts)
