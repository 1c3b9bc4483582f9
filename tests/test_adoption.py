"""Adopting a cluster set up by hand (components/adoption.py).

The graph tests render the program; the provider tests run `AdoptionProvider` with small scripts
standing in for kubectl and helm; the command lines are checked against the real binaries. The
real engine's run is the `adopt` scenario of hack/e2e_local.py.
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import dill
import pytest

from components.adoption import (
    AdoptionError,
    AdoptionProvider,
    Findings,
    findings,
    label_handover,
    object_ref,
    refusal,
)
from meshplan.engine import CONFIG_GROUP
from tests.harness import build
from tests.test_cli_lines import binaries, subcommand  # noqa: F401  (binaries is a fixture)

ADOPTION = "pulumi-python:dynamic/istio-mesh:Adoption"
CLAIM = "pulumi-python:dynamic/istio-mesh:ClusterClaim"
UPGRADE_PATH = "pulumi-python:dynamic/istio-mesh:UpgradePath"
GENERATED_PASSWORD = "pulumi-python:dynamic/istio-mesh:GeneratedPassword"
KUBECTL = "kubectl --context kind-istio-dev"
HELM = "helm --kube-context kind-istio-dev"
DEV_RELEASES = ["istio-base", "istiod", "istio-ingressgateway", "istio-egressgateway"]


def settings_of(graph: Any) -> dict[str, Any]:
    """The Adoption's settings, from its serialized provider (a secret input, revealed for tests)."""
    adoption = graph.get(ADOPTION, "adoption")
    provider = dill.loads(base64.b64decode(adoption.raw_inputs["__provider"]))
    assert isinstance(provider, AdoptionProvider)
    return provider.settings


# --- the graph ----------------------------------------------------------------------------------


def test_the_adoption_comes_right_after_the_claim_and_everything_waits_for_it() -> None:
    graph = build()
    claim = graph.get(CLAIM, "cluster-claim")
    adoption = graph.get(ADOPTION, "adoption")
    assert {k: v for k, v in adoption.inputs.items() if not k.startswith("__")} == {
        "namespace": "istio-system"
    }
    assert adoption.dependencies == (claim.urn,)
    assert graph.depends_on(graph.get(UPGRADE_PATH, "istio-upgrade-path"), adoption)
    groups = {r.urn for r in graph.of_type(CONFIG_GROUP)}
    waiting = [
        r
        for r in graph.resources
        if r.custom
        and r not in (claim, adoption)
        and r.parent not in groups
        and not r.type.startswith("pulumi:providers:")
    ]
    assert waiting
    assert [r.name for r in waiting if not graph.depends_on(r, adoption)] == [
        r.name for r in waiting if r.type == GENERATED_PASSWORD
    ]
    assert all(graph.depends_on(g, adoption) for g in graph.of_type(CONFIG_GROUP))


def test_the_settings_name_the_stack_releases_addon_objects_and_injected_namespaces() -> None:
    settings = settings_of(build())
    assert settings["adopt"] is False
    assert settings["releases"] == DEV_RELEASES
    assert settings["injectedNamespaces"] == ["default"]
    assert settings["kubectl"] == KUBECTL
    assert settings["namespace"] == f"{KUBECTL} get --ignore-not-found --output=json namespace istio-system"
    assert settings["getNamespace"] == (
        f"{KUBECTL} get --ignore-not-found --output=json --show-managed-fields namespace '{{namespace}}'"
    )
    assert settings["helmList"] == (
        f"{HELM} list --namespace istio-system --deployed --failed --pending --uninstalling --output json"
    )
    assert settings["deployments"] == (
        f"{KUBECTL} --namespace istio-system get --ignore-not-found --output=json "
        + " ".join(f"deployment.apps/{r}" for r in DEV_RELEASES)
    )
    assert settings["forgetRelease"] == (
        f"{KUBECTL} --namespace istio-system delete secret --selector 'owner=helm,name={{release}}'"
    )
    namespaced = settings["namespaced"].split(" get --ignore-not-found --output=json ")[1].split()
    assert "deployment.apps/kiali" in namespaced and "service/prometheus" in namespaced
    assert settings["deleteNamespaced"] == (
        f"{KUBECTL} --namespace istio-system delete --ignore-not-found --wait {' '.join(namespaced)}"
    )
    cluster_scoped = settings["clusterScoped"].split(" get --ignore-not-found --output=json ")[1].split()
    assert "clusterrole.rbac.authorization.k8s.io/kiali" in cluster_scoped
    assert all("/" in ref and not ref.startswith(("namespace", "service/")) for ref in cluster_scoped)
    assert settings["deleteClusterScoped"] == (
        f"{KUBECTL} delete --ignore-not-found --wait {' '.join(cluster_scoped)}"
    )


def test_adopt_revisions_and_namespaces_reach_the_settings_and_change_no_input() -> None:
    plain = build()
    adopting = build(adopt=True, injection={"namespaces": ["default", "shop"]})
    assert settings_of(adopting)["adopt"] is True
    assert settings_of(adopting)["injectedNamespaces"] == ["default", "shop"]
    # The settings live in the serialized provider, a secret: no input changes, no update shows.
    assert plain.get(ADOPTION, "adoption").inputs == adopting.get(ADOPTION, "adoption").inputs
    revisions = build("prod", istio={"revisions": {"a": {"version": "1.29.6"}}, "gateways": {"ingress": {}}})
    assert settings_of(revisions)["releases"] == ["istio-base", "istiod-a", "istio-ingressgateway"]


def test_ambient_adds_the_node_agents_and_their_daemonsets_to_what_is_looked_for() -> None:
    ambient = build("prod", istio={"dataplane": "ambient"}, injection={"namespaces": [], "ambient": ["shop"]})
    settings = settings_of(ambient)
    assert settings["releases"] == ["istio-base", "istiod", "istio-cni", "ztunnel", "istio-ingressgateway"]
    assert settings["deployments"].split(" get --ignore-not-found --output=json ")[1].split() == [
        "deployment.apps/istio-base",
        "deployment.apps/istiod",
        "daemonset.apps/istio-cni-node",
        "daemonset.apps/ztunnel",
        "deployment.apps/istio-ingressgateway",
    ]
    # A sidecar stack looks for no node agent.
    assert "istio-cni" not in settings_of(build("prod"))["releases"]


def test_adopt_is_a_boolean() -> None:
    graph = build(adopt="yes")
    assert graph.error is not None and "adopt: got 'yes'; expected true or false" in graph.error


def test_object_refs_name_kind_and_group() -> None:
    assert (
        object_ref({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kiali"}}) == "service/kiali"
    )
    assert (
        object_ref({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "kiali"}})
        == "deployment.apps/kiali"
    )
    assert (
        object_ref(
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"}}
        )
        == "clusterrole.rbac.authorization.k8s.io/x"
    )


# --- what is in the way -------------------------------------------------------------------------

HAND_MADE_NAMESPACE = {"metadata": {"name": "istio-system", "labels": {"kubernetes.io/metadata.name": "x"}}}
OWN_NAMESPACE = {"metadata": {"name": "istio-system", "labels": {"istio-mesh/environment": "development"}}}
DEPLOYED = [{"name": r, "status": "deployed"} for r in DEV_RELEASES] + [
    {"name": "other", "status": "deployed"}
]
DEPLOYMENTS = [{"metadata": {"name": n}} for n in ("istiod", "istio-ingressgateway", "istio-egressgateway")]
KIALI = [
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "kiali", "namespace": "istio-system"},
    },
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "kiali"}},
]


def test_a_fresh_cluster_or_the_stack_own_has_nothing_in_the_way() -> None:
    assert findings(None, DEPLOYED, DEPLOYMENTS, KIALI, DEV_RELEASES) == Findings()
    assert findings(OWN_NAMESPACE, DEPLOYED, DEPLOYMENTS, KIALI, DEV_RELEASES) == Findings(own=True)
    assert findings(HAND_MADE_NAMESPACE, [], [], [], DEV_RELEASES).empty


def test_a_helm_install_by_hand_is_adoptable() -> None:
    found = findings(HAND_MADE_NAMESPACE, DEPLOYED, DEPLOYMENTS, KIALI, DEV_RELEASES)
    assert found == Findings(
        releases=("istio-base", "istio-egressgateway", "istio-ingressgateway", "istiod"),
        objects=("clusterrole.rbac.authorization.k8s.io/kiali", "istio-system/deployment.apps/kiali"),
    )
    assert refusal(found, adopt=True) is None
    assert refusal(found, adopt=False) == (
        "this cluster holds an Istio installation made by hand, which this stack would collide with:\n"
        "  - Helm release istio-system/istio-base\n"
        "  - Helm release istio-system/istio-egressgateway\n"
        "  - Helm release istio-system/istio-ingressgateway\n"
        "  - Helm release istio-system/istiod\n"
        "  - clusterrole.rbac.authorization.k8s.io/kiali (an addon object applied by kubectl)\n"
        "  - istio-system/deployment.apps/kiali (an addon object applied by kubectl)\n"
        "Either let this stack take them over: `pulumi config set istio-mesh:adopt true` for one `up` "
        "(each release keeps its objects and loses its Helm history; each addon object is deleted and "
        "created again by the stack), then `pulumi config rm istio-mesh:adopt`;\n"
        "or remove them first: `helm uninstall istio-base istio-egressgateway istio-ingressgateway istiod "
        "-n istio-system` and `kubectl delete -f samples/addons` (README, Clusters set up by hand)"
    )
    assert refusal(Findings(), adopt=False) is None


def test_a_pending_release_and_an_istioctl_install_are_refused_even_with_adopt() -> None:
    listed = [
        {"name": "istio-base", "status": "deployed"},
        {"name": "istio-ingressgateway", "status": "pending-upgrade"},
    ]
    found = findings(HAND_MADE_NAMESPACE, listed, DEPLOYMENTS, [], DEV_RELEASES)
    assert found.blocked == (
        "Helm release istio-system/istio-ingressgateway is pending-upgrade, not deployed (an operation "
        "failed or was interrupted): `helm rollback istio-ingressgateway -n istio-system` or `helm uninstall "
        "istio-ingressgateway -n istio-system` first",
        "Deployment istio-system/istio-egressgateway exists without a Helm release istio-egressgateway (an "
        "istioctl or kubectl install, which Helm can't adopt): `istioctl uninstall --purge` (or delete it) first",
        "Deployment istio-system/istiod exists without a Helm release istiod (an istioctl or kubectl "
        "install, which Helm can't adopt): `istioctl uninstall --purge` (or delete it) first",
    )
    message = refusal(found, adopt=True)
    assert message is not None
    assert message.splitlines()[3:] == ["These can't be adopted:", *(f"  - {b}" for b in found.blocked)]
    assert "pulumi config set" not in message


AMBIENT_RELEASES = ["istio-base", "istiod", "istio-cni", "ztunnel"]


def test_an_istioctl_ambient_install_is_refused_and_a_helm_one_adoptable() -> None:
    daemonsets = [
        {"kind": "DaemonSet", "metadata": {"name": "istio-cni-node"}},
        {"kind": "DaemonSet", "metadata": {"name": "ztunnel"}},
        {"kind": "DaemonSet", "metadata": {"name": "unrelated"}},
    ]
    by_helm = [{"name": r, "status": "deployed"} for r in AMBIENT_RELEASES]
    found = findings(HAND_MADE_NAMESPACE, by_helm, daemonsets, [], AMBIENT_RELEASES)
    assert found.releases == tuple(sorted(AMBIENT_RELEASES)) and found.blocked == ()
    by_istioctl = by_helm[:2]
    found = findings(HAND_MADE_NAMESPACE, by_istioctl, daemonsets, [], AMBIENT_RELEASES)
    assert found.blocked == (
        "DaemonSet istio-system/istio-cni-node exists without a Helm release istio-cni (an istioctl or "
        "kubectl install, which Helm can't adopt): `istioctl uninstall --purge` (or delete it) first",
        "DaemonSet istio-system/ztunnel exists without a Helm release ztunnel (an istioctl or kubectl "
        "install, which Helm can't adopt): `istioctl uninstall --purge` (or delete it) first",
    )


# --- the label's owner --------------------------------------------------------------------------


def _entry(manager: str, labels: dict[str, Any]) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": "Update",
        "apiVersion": "v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": labels}},
    }


def test_the_label_is_left_to_the_stack_alone() -> None:
    apiserver = _entry("kube-apiserver", {".": {}, "f:kubernetes.io/metadata.name": {}})
    namespace = {
        "metadata": {
            "name": "default",
            "resourceVersion": "990",
            "managedFields": [
                apiserver,
                _entry("kubectl-label", {"f:istio-injection": {}}),
                _entry("kubectl-label", {"f:team": {}, "f:istio.io/rev": {}}),
                _entry("pulumi-kubernetes-0104be01", {"f:istio-injection": {}}),
            ],
        }
    }
    assert label_handover(namespace) == {
        "metadata": {
            "resourceVersion": "990",
            "managedFields": [
                apiserver,
                _entry("kubectl-label", {"f:team": {}}),
                _entry("pulumi-kubernetes-0104be01", {"f:istio-injection": {}}),
            ],
        }
    }
    # The input is left as it was.
    assert namespace["metadata"]["managedFields"][1] == _entry("kubectl-label", {"f:istio-injection": {}})
    namespace["metadata"]["managedFields"] = [
        apiserver,
        _entry("pulumi-kubernetes-1", {"f:istio-injection": {}}),
    ]
    assert label_handover(namespace) is None


# --- the provider, with scripts standing in for kubectl and helm ----------------------------------


def _echo(value: Any) -> str:
    return f"echo -n {shlex.quote(json.dumps(value) if value is not None else '')}"


def _settings(tmp_path: Path, *, adopt: bool, namespace: Any = HAND_MADE_NAMESPACE) -> dict[str, Any]:
    log = tmp_path / "log"
    record = f"echo >> {log}"
    default = {"metadata": {"name": "default", "resourceVersion": "7", "managedFields": [
        _entry("kubectl-label", {"f:istio-injection": {}})]}}  # fmt: skip
    return {
        "adopt": adopt,
        "releases": DEV_RELEASES,
        "injectedNamespaces": ["default"],
        "kubectl": f"{record} kubectl",
        "getNamespace": _echo(default) + " # {namespace}",
        "namespace": _echo(namespace),
        "helmList": _echo(DEPLOYED[:2]),
        "deployments": _echo({"kind": "List", "items": DEPLOYMENTS[:1]}),
        "namespaced": _echo({"kind": "List", "items": KIALI[:1]}),
        "clusterScoped": _echo(KIALI[1]),
        "forgetRelease": f"{record} forget {{release}}",
        "deleteNamespaced": f"{record} delete namespaced",
        "deleteClusterScoped": f"{record} delete cluster-scoped",
    }


def test_check_refuses_a_hand_made_installation_without_adopt(tmp_path: Path) -> None:
    provider = AdoptionProvider(_settings(tmp_path, adopt=False))
    result = provider.check({}, {"namespace": "istio-system"})
    assert [f.property for f in result.failures] == ["namespace"]
    assert result.failures[0].reason.startswith("this cluster holds an Istio installation made by hand")
    assert "Helm release istio-system/istiod\n" in result.failures[0].reason
    # In the state already: nothing is read, nothing refused.
    assert provider.check({"namespace": "istio-system"}, {"namespace": "istio-system"}).failures == []
    with pytest.raises(AdoptionError, match="made by hand"):
        provider.create({"namespace": "istio-system"})
    assert not (tmp_path / "log").exists()


def test_create_with_adopt_forgets_the_releases_deletes_the_objects_and_hands_the_label_over(
    tmp_path: Path,
) -> None:
    provider = AdoptionProvider(_settings(tmp_path, adopt=True))
    assert provider.check({}, {"namespace": "istio-system"}).failures == []
    created = provider.create({"namespace": "istio-system"})
    assert created.id == "adoption"
    assert created.outs == {
        "namespace": "istio-system",
        "releases": ["istio-base", "istiod"],
        "objects": ["clusterrole.rbac.authorization.k8s.io/kiali", "istio-system/deployment.apps/kiali"],
        "labels": ["default"],
    }
    patch = {"metadata": {"resourceVersion": "7", "managedFields": []}}
    assert (tmp_path / "log").read_text().splitlines() == [
        "forget istio-base",
        "forget istiod",
        "delete namespaced",
        "delete cluster-scoped",
        f"kubectl patch namespace default --type=merge --patch {json.dumps(patch)}",
    ]


def test_create_on_the_stack_own_cluster_does_nothing(tmp_path: Path) -> None:
    provider = AdoptionProvider(_settings(tmp_path, adopt=False, namespace=OWN_NAMESPACE))
    assert provider.check({}, {}).failures == []
    assert provider.create({})
    assert not (tmp_path / "log").exists()
    assert provider.diff("adoption", {}, {"anything": 1}).changes is False


# --- the real CLIs accept every line --------------------------------------------------------------

SCRIPTS = ("namespace", "getNamespace", "helmList", "deployments", "namespaced", "clusterScoped",
           "forgetRelease", "deleteNamespaced", "deleteClusterScoped")  # fmt: skip


@pytest.mark.parametrize("key", SCRIPTS)
def test_the_real_cli_accepts_the_line(binaries: Path, key: str) -> None:  # noqa: F811
    line = settings_of(build(cluster={"kubeconfig": "/etc/istio-mesh/dev.kubeconfig"}))[key]
    argv = shlex.split(line.replace("{namespace}", "default").replace("{release}", "istiod"))
    result = subprocess.run(
        [str(binaries / argv[0]), *argv[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(binaries), "KUBECONFIG": "/nonexistent"},
        check=False,
    )
    assert result.returncode == 0, f"{key}: {line}\n{result.stderr}"
    assert f"{argv[0]} {' '.join(subcommand(argv)[:2])}" in result.stdout, result.stdout[:400]
