"""Mesh-wide mutual TLS never before the sidecars are there (issue 10, item 9).

The mesh-wide PeerAuthentication `istio-system/default` (`mesh-mtls`) is a child of the Mesh and
waits for every injected namespace's restart and every gateway, so in the `up` that injects (or
re-injects) them, no policy exists until their pods have sidecars, and Istio's default, PERMISSIVE,
applies (https://istio.io/latest/docs/tasks/security/authentication/mtls-migration/). Pulumi
destroys in reverse dependency order, so the same edges delete it before the labels and the
uninject restarts. Under STRICT, the restart that gives a namespace its sidecars (and the one that
takes them away) holds that namespace at PERMISSIVE meanwhile (components/injection.py).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.local_command import CommandError, CommandProvider, run_script
from meshplan.diff import diff_plans
from meshplan.engine import Registration, _monitor_class
from tests.harness import COMMAND, NAMESPACE_PATCH, NO_GATEWAYS, RELEASE, Graph, build

MESH = "istio-mesh:index:Mesh"
CONTROL_PLANE = "istio-mesh:index:ControlPlane"
PEER_AUTHENTICATION = "kubernetes:security.istio.io/v1:PeerAuthentication"
PEER_AUTHENTICATION_V1BETA1 = "kubernetes:security.istio.io/v1beta1:PeerAuthentication"

RESTART = (
    "set -eo pipefail; kubectl --context prod-cluster --namespace {ns} get deployment,statefulset,daemonset"
    " --output=name | xargs --no-run-if-empty kubectl --context prod-cluster --namespace {ns} rollout restart;"
    " kubectl --context prod-cluster --namespace {ns} get deployment,statefulset,daemonset --output=name"
    " | xargs --no-run-if-empty --max-args=1 kubectl --context prod-cluster --namespace {ns} rollout status"
    " --timeout=300s"
)
HOLD = (
    "set -eo pipefail; kubectl --context prod-cluster --namespace {ns} apply --server-side --field-manager"
    ' istio-mesh -f - <<< \'{{"apiVersion": "security.istio.io/{v}", "kind": "PeerAuthentication",'
    ' "metadata": {{"name": "istio-mesh-sidecar-rollout", "namespace": "{ns}"}},'
    ' "spec": {{"mtls": {{"mode": "PERMISSIVE"}}}}}}\'; '
)
RELEASE_HOLD = (
    "; kubectl --context prod-cluster --namespace {ns} delete peerauthentications.security.istio.io"
    " istio-mesh-sidecar-rollout --ignore-not-found"
)


def restart(ns: str) -> str:
    return RESTART.format(ns=ns)


def held(ns: str, version: str = "v1") -> str:
    """The restart of `ns` with the namespace held at PERMISSIVE around it."""
    return HOLD.format(ns=ns, v=version) + restart(ns) + RELEASE_HOLD.format(ns=ns)


def policy(graph: Graph) -> Registration:
    found = [r for r in graph.resources if r.type.endswith(":PeerAuthentication")]
    assert len(found) == 1, [r.urn for r in found]
    return found[0]


def component(graph: Graph, type_: str) -> Registration:
    (found,) = graph.of_type(type_)
    return found


# --- where it lives -------------------------------------------------------------------------------


def test_the_mesh_wide_policy_is_one_resource_a_child_of_the_mesh() -> None:
    graph = build("prod")
    peer = policy(graph)
    assert (peer.type, peer.name, peer.custom) == (PEER_AUTHENTICATION, "mesh-mtls", True)
    assert peer.urn == (
        "urn:pulumi:prod::istio-mesh::istio-mesh:index:Mesh$kubernetes:security.istio.io/v1:PeerAuthentication::mesh-mtls"
    )
    assert peer.parent == component(graph, MESH).urn
    assert peer.inputs == {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"mtls": {"mode": "STRICT"}},
    }
    assert peer.provider == "urn:pulumi:prod::istio-mesh::pulumi:providers:kubernetes::cluster"


def test_without_security_mtls_there_is_no_policy_and_no_hold() -> None:
    graph = build("prod", security=None)
    assert [r for r in graph.resources if r.type.endswith(":PeerAuthentication")] == []
    assert graph.get(COMMAND, "default-restart").inputs["create"] == restart("default")
    assert graph.get(COMMAND, "default-uninject").inputs["delete"] == restart("default")


def test_a_permissive_mesh_holds_nothing() -> None:
    # Nothing refuses plaintext under PERMISSIVE, so the restarts run as they are.
    graph = build("prod", security={"mtls": "PERMISSIVE"})
    assert graph.get(COMMAND, "default-restart").inputs["create"] == restart("default")
    assert graph.get(COMMAND, "default-uninject").inputs["delete"] == restart("default")


# --- (1) a first install, and any up that restarts -----------------------------------------------


@pytest.mark.parametrize("mode", ["STRICT", "PERMISSIVE"])
def test_the_policy_waits_for_every_injected_namespace_to_restart(mode: str) -> None:
    graph = build("prod", security={"mtls": mode}, injection={"namespaces": ["default", "shop"]})
    peer = policy(graph)
    assert peer.inputs["spec"] == {"mtls": {"mode": mode}}
    for namespace in ("default", "shop"):
        restart_command = graph.get(COMMAND, f"{namespace}-restart")
        assert restart_command.urn in peer.dependencies
        assert graph.get(NAMESPACE_PATCH, f"{namespace}-injection").urn in peer.dependencies
        # And nothing of the injection waits for the policy: it comes strictly after.
        assert not graph.depends_on(restart_command, peer)
    assert graph.depends_on(peer, graph.release("istiod"))
    assert graph.depends_on(peer, graph.release("istio-base"))


def test_the_policy_waits_for_the_gateways_and_their_restarts() -> None:
    graph = build("prod", istio={"revisions": {"a": {"version": "1.29.6"}}})
    peer = policy(graph)
    assert graph.get(RELEASE, "istio-ingressgateway").urn in peer.dependencies
    assert graph.get(COMMAND, "istio-ingressgateway-restart").urn in peer.dependencies
    assert graph.depends_on(peer, graph.get(COMMAND, "default-restart"))
    assert graph.depends_on(peer, graph.release("istiod-a"))


# --- (2) PERMISSIVE -> STRICT on an existing stack -----------------------------------------------


def test_switching_to_strict_updates_the_same_policy_in_place_and_restarts_nothing() -> None:
    before = build("prod", security={"mtls": "PERMISSIVE"})
    after = build("prod")
    diff = diff_plans(before.render.plan(), after.render.plan())
    changes = {(r.kind, r.name): [(c.path, c.old, c.new) for c in r.changes] for r in diff.resources}
    assert changes == {
        ("update", "mesh-mtls"): [("spec.mtls.mode", "PERMISSIVE", "STRICT")],
        ("update", "default-restart"): [("create", restart("default"), held("default"))],
        ("update", "default-uninject"): [("delete", restart("default"), held("default"))],
    }
    # An edited create or delete script is recorded without running anything (components/local_command.py):
    # only a trigger runs `update`, and the switch changes no trigger.
    for name in ("default-restart", "default-uninject"):
        old = before.get(COMMAND, name).raw_inputs
        new = after.get(COMMAND, name).raw_inputs
        assert old["triggers"] == new["triggers"]


def test_an_edited_create_or_delete_script_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr("components.local_command.run_script", lambda phase, *_: ran.append(phase))
    olds = {
        "create": restart("default"),
        "update": restart("default"),
        "triggers": ["1.30.3"],
        "timeout": 1200,
    }
    news = {**olds, "create": held("default")}
    assert CommandProvider().diff("id", olds, news).changes is True
    CommandProvider().update("id", olds, news)
    assert ran == []


# --- (3) a namespace added to a STRICT mesh --------------------------------------------------------


def test_a_namespace_added_to_a_strict_mesh_is_held_permissive_for_its_first_restart() -> None:
    before = build("prod")
    after = build("prod", injection={"namespaces": ["default", "shop"]})
    diff = diff_plans(before.render.plan(), after.render.plan())
    assert sorted((r.kind, r.name) for r in diff.resources) == [
        ("create", "shop-injection"),
        ("create", "shop-restart"),
        ("create", "shop-uninject"),
    ]
    shop = after.get(COMMAND, "shop-restart")
    assert shop.inputs["create"] == held("shop")
    # A new proxy later (an update) restarts without the hold: every pod has a sidecar by then.
    assert shop.inputs["update"] == restart("shop")
    assert after.get(COMMAND, "shop-uninject").inputs["delete"] == held("shop")


def test_the_hold_uses_the_peer_authentication_version_the_crds_serve() -> None:
    graph = build("prod", istio={"version": "1.21.6", "gateways": NO_GATEWAYS})
    assert graph.error is None
    assert policy(graph).type == PEER_AUTHENTICATION_V1BETA1
    assert graph.get(COMMAND, "default-restart").inputs["create"] == held("default", "v1beta1")


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A kubectl on PATH that logs each call (and what `apply` reads from stdin) and knows one Deployment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    script = bin_dir / "kubectl"
    script.write_text(
        "#!/bin/bash\n"
        'echo "$*" >> "$KUBECTL_LOG"\n'
        'case " $* " in\n'
        '  *" apply "*) cat >> "$KUBECTL_LOG" ;;\n'
        '  *" get "*) echo deployment.apps/web ;;\n'
        '  *" rollout status "*) exit "${ROLLOUT_STATUS:-0}" ;;\n'
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBECTL_LOG", str(log))
    yield log


def _calls(log: Path) -> list[Any]:
    lines = log.read_text().splitlines()
    return [json.loads(line) if line.startswith("{") else line for line in lines]


HOLD_OBJECT = {
    "apiVersion": "security.istio.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "istio-mesh-sidecar-rollout", "namespace": "shop"},
    "spec": {"mtls": {"mode": "PERMISSIVE"}},
}
K = "--context prod-cluster --namespace shop"


def test_the_hold_is_applied_before_the_restart_and_deleted_after_every_rollout(fake_kubectl: Path) -> None:
    run_script("create", held("shop"), 30)
    assert _calls(fake_kubectl) == [
        f"{K} apply --server-side --field-manager istio-mesh -f -",
        HOLD_OBJECT,
        f"{K} get deployment,statefulset,daemonset --output=name",
        f"{K} rollout restart deployment.apps/web",
        f"{K} get deployment,statefulset,daemonset --output=name",
        f"{K} rollout status --timeout=300s deployment.apps/web",
        f"{K} delete peerauthentications.security.istio.io istio-mesh-sidecar-rollout --ignore-not-found",
    ]


def test_a_failed_rollout_leaves_the_namespace_held_permissive(
    fake_kubectl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_STATUS", "1")
    # xargs exits 123 when a command it ran failed (rollout status, here).
    with pytest.raises(CommandError, match=r"^create: exit status 123: set -eo pipefail; "):
        run_script("create", held("shop"), 30)
    calls = _calls(fake_kubectl)
    assert calls[-1] == f"{K} rollout status --timeout=300s deployment.apps/web"
    assert not any(isinstance(call, str) and " delete " in f" {call} " for call in calls)


# --- (4) destroy order -----------------------------------------------------------------------------


def test_a_destroy_deletes_the_policy_before_the_labels_and_the_uninject_restarts() -> None:
    # Pulumi deletes a resource only after everything that depends on it: the policy depends on the
    # label, the label on the uninject Command, so the order is policy, label, uninject restart.
    graph = build("prod")
    peer = policy(graph)
    label = graph.get(NAMESPACE_PATCH, "default-injection")
    uninject = graph.get(COMMAND, "default-uninject")
    assert graph.depends_on(peer, label)
    assert graph.depends_on(peer, uninject)
    assert graph.depends_on(label, uninject)
    assert not graph.depends_on(label, peer)
    assert not graph.depends_on(uninject, peer)


def test_a_protected_stack_stops_at_the_guard_before_it_deletes_the_policy() -> None:
    graph = build("prod")
    guard = graph.get(COMMAND, "destroy-guard")
    assert policy(graph).urn in guard.dependencies
    assert graph.depends_on(guard, policy(graph))


# --- (5) no restarts -------------------------------------------------------------------------------


def test_without_restarts_the_policy_waits_for_the_labels_only_and_nothing_holds() -> None:
    graph = build("prod", injection={"restartWorkloads": False})
    peer = policy(graph)
    assert peer.inputs["spec"] == {"mtls": {"mode": "STRICT"}}
    assert [n for n in graph.names(COMMAND) if n.startswith("default-")] == []
    assert graph.get(NAMESPACE_PATCH, "default-injection").urn in peer.dependencies
    assert not any("istio-mesh-sidecar-rollout" in json.dumps(r.inputs) for r in graph.of_type(COMMAND))


# --- the move from ControlPlane to Mesh -------------------------------------------------------------


@pytest.fixture
def aliases(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The aliases of each registration request, by resource name, as the engine receives them."""
    seen: dict[str, list[Any]] = {}
    monitor: Any = _monitor_class()  # the RecordingMonitor class, typed as its constructor
    register = monitor.RegisterResource

    def recording(self: Any, request: Any) -> Any:
        seen[request.name] = list(request.aliases)
        return register(self, request)

    monkeypatch.setattr(monitor, "RegisterResource", recording)
    return seen


def _engine_alias_urn(stack: str, alias: Any, type_: str, name: str) -> str:
    """The URN the Pulumi engine derives from an alias spec: the spec's parent, the resource's own
    type and name where the spec leaves them empty (pulumi/pulumi `resource.CreateURN`)."""
    spec = alias.spec
    parent_type = spec.parentUrn.split("::")[2]
    return f"urn:pulumi:{stack}::istio-mesh::{parent_type}${spec.type or type_}::{spec.name or name}"


@pytest.mark.parametrize(
    ("stack", "overrides", "type_"),
    [
        ("prod", {}, PEER_AUTHENTICATION),
        ("dev", {"security": {"mtls": "STRICT"}}, PEER_AUTHENTICATION_V1BETA1),
    ],
)
def test_the_policy_is_aliased_to_its_urn_under_the_control_plane(
    aliases: dict[str, list[Any]], stack: str, overrides: dict[str, Any], type_: str
) -> None:
    graph = build(stack, **overrides)
    peer = policy(graph)
    assert peer.type == type_
    (alias,) = aliases["mesh-mtls"]
    assert alias.WhichOneof("alias") == "spec"
    assert alias.spec.parentUrn == component(graph, CONTROL_PLANE).urn
    assert (alias.spec.name, alias.spec.type, alias.spec.stack, alias.spec.project) == ("", "", "", "")
    # The URN the program gave it as ControlPlane's child (fdcbbdd's program, rendered the same way).
    assert _engine_alias_urn(stack, alias, peer.type, peer.name) == (
        f"urn:pulumi:{stack}::istio-mesh::istio-mesh:index:Mesh$istio-mesh:index:ControlPlane${type_}::mesh-mtls"
    )
    # No other resource is aliased.
    assert {name for name, found in aliases.items() if found} == {"mesh-mtls"}
