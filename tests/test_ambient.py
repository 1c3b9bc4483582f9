"""Ambient mode in the graph (issue 12, parts 1 and 2): the node agents in Istio's order, ambient
namespaces, waypoints, and the one-`up` move of a namespace between sidecars and ambient.

Config rules are in tests/test_ambient_config.py; what the charts make of the values, in
tests/test_oracle_charts.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.local_command import CommandProvider
from meshplan.diff import MISSING, diff_plans
from tests.harness import COMMAND, NAMESPACE_PATCH, RELEASE, Graph, Replace, build
from tests.test_mtls import held, restart

CONTROL_PLANE = "istio-mesh:index:ControlPlane"
INJECTION = "istio-mesh:index:Injection"
RECOVERY = "pulumi-python:dynamic/istio-mesh:ReleaseRecovery"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
REPOSITORY = {"repo": "https://blob.istio.io/istio-release/charts"}
COMMAND_TIMEOUT = 1200

# The prod stack (1.30.3, STRICT, `default` injected) with the data plane switched to ambient.
AMBIENT = {"dataplane": "ambient"}


def ambient(*namespaces: str, waypoints: dict[str, str] | None = None, **overrides: Any) -> Graph:
    injection: dict[str, object] = {"namespaces": Replace([]), "ambient": Replace(list(namespaces))}
    if waypoints:
        injection["waypoints"] = Replace({ns: {"for": t} for ns, t in waypoints.items()})
    graph = build("prod", istio=overrides.pop("istio", AMBIENT), injection=injection, **overrides)
    assert graph.error is None, graph.error
    return graph


def inputs(graph: Graph, name: str) -> dict[str, object]:
    """A Command's inputs as the program sends them, without its serialized provider."""
    return {k: v for k, v in graph.get(COMMAND, name).raw_inputs.items() if k != "__provider"}


# --- the node agents ------------------------------------------------------------------------------


def test_ambient_installs_istio_cni_then_ztunnel_each_pinned_with_its_recovery() -> None:
    graph = ambient("default")
    control_plane = graph.of_type(CONTROL_PLANE)[0]
    cni, ztunnel = graph.release("istio-cni"), graph.release("ztunnel")
    assert cni.raw_inputs == {
        "name": "istio-cni",
        "chart": "cni",
        "repositoryOpts": REPOSITORY,
        "version": "1.30.3",
        "namespace": "istio-system",
        "values": {"profile": "ambient"},
        "timeout": 900,
        "compat": "true",
    }
    assert ztunnel.raw_inputs == {
        "name": "ztunnel",
        "chart": "ztunnel",
        "repositoryOpts": REPOSITORY,
        "version": "1.30.3",
        "namespace": "istio-system",
        "values": {},
        "timeout": 900,
        "compat": "true",
    }
    # istiod gets the ambient profile, and no other profile value.
    assert graph.release("istiod").raw_inputs["values"] == {"profile": "ambient"}
    for release in (cni, ztunnel):
        assert release.parent == control_plane.urn
        (recovery,) = [r for r in graph.of_type(RECOVERY) if r.name == f"{release.name}-recovery"]
        assert recovery.urn in release.dependencies
    # Istio's order: base, istiod, istio-cni, ztunnel, then the namespaces that use them.
    base, istiod = graph.release("istio-base"), graph.release("istiod")
    label = graph.get(NAMESPACE_PATCH, "default-injection")
    chain = [base, istiod, cni, ztunnel, label]
    for later, earlier in zip(chain[1:], chain, strict=False):
        assert graph.depends_on(later, earlier), (later.name, earlier.name)
    assert not graph.depends_on(cni, ztunnel)
    assert not graph.depends_on(istiod, cni)


def test_a_sidecar_stack_has_no_node_agents_and_keeps_its_istiod_values() -> None:
    graph = build("prod")
    assert "istio-cni" not in graph.names(RELEASE) and "ztunnel" not in graph.names(RELEASE)
    assert graph.release("istiod").raw_inputs["values"] == {}
    assert not graph.of_type(GATEWAY)
    assert "ambientNamespaces" not in graph.outputs


def test_the_demo_profile_on_ambient_is_spelled_out_beside_the_ambient_profile() -> None:
    graph = ambient("default", istio={**AMBIENT, "profile": "demo", "gateways": Replace({})})
    values = graph.release("istiod").raw_inputs["values"]
    assert values["profile"] == "ambient"
    assert values["pilot"] == {
        "autoscaleEnabled": False,
        "traceSampling": 100,
        "resources": {"requests": {"cpu": "10m", "memory": "100Mi"}},
    }
    assert [p["name"] for p in values["meshConfig"]["extensionProviders"]] == [
        "otel",
        "skywalking",
        "otel-tracing",
        "jaeger",
    ]
    sizes = {"resources": {"requests": {"cpu": "10m", "memory": "40Mi"}}}
    assert graph.release("istio-cni").raw_inputs["values"] == {"profile": "ambient", **sizes}
    assert graph.release("ztunnel").raw_inputs["values"] == sizes


REVISIONS = {
    "dataplane": "ambient",
    "version": "1.29.6",
    "revisions": {"1-29-6": {"version": "1.29.6"}, "1-30-3": {"version": "1.30.3"}},
    "tags": {"prod-canary": "1-30-3"},
    "defaultRevision": "1-29-6",
}


def test_with_revisions_the_node_agents_follow_the_default_revision() -> None:
    graph = ambient("default", waypoints={"default": "service"}, istio=REVISIONS)
    cni, ztunnel = graph.release("istio-cni"), graph.release("ztunnel")
    assert cni.raw_inputs["version"] == ztunnel.raw_inputs["version"] == "1.29.6"
    assert cni.raw_inputs["values"] == {"profile": "ambient"}
    # No plain `istiod` Service with revisions: ztunnel talks to istiod-1-29-6.
    assert ztunnel.raw_inputs["values"] == {"revision": "1-29-6"}
    assert graph.depends_on(cni, graph.release("istiod-1-29-6"))
    assert not graph.depends_on(cni, graph.release("istiod-1-30-3"))
    for name in ("1-29-6", "1-30-3"):
        assert graph.release(f"istiod-{name}").raw_inputs["values"] == {
            "profile": "ambient",
            "revision": name,
        }
    # The waypoint follows the default tag, as the namespace's pods do.
    waypoint = graph.get(GATEWAY, "default-waypoint")
    assert waypoint.inputs["metadata"]["labels"] == {
        "istio.io/waypoint-for": "service",
        "istio.io/rev": "default",
    }
    assert graph.depends_on(waypoint, graph.release("istiod-1-29-6"))


def test_moving_the_default_revision_upgrades_the_node_agents_in_place() -> None:
    before = ambient("default", istio=REVISIONS)
    after = ambient("default", istio={**REVISIONS, "defaultRevision": "1-30-3"})
    diff = diff_plans(before.render.plan(), after.render.plan())
    changes = {
        r.name: [(c.path, c.old, c.new) for c in r.changes]
        for r in diff.resources
        if r.name in ("istio-cni", "ztunnel")
    }
    assert {r.name: r.kind for r in diff.resources if r.name in changes} == {
        "istio-cni": "update",
        "ztunnel": "update",
    }
    assert ("version", "1.29.6", "1.30.3") in changes["istio-cni"]
    assert ("version", "1.29.6", "1.30.3") in changes["ztunnel"]
    assert ("values.revision", "1-29-6", "1-30-3") in changes["ztunnel"]


# --- ambient namespaces and waypoints -------------------------------------------------------------


def test_an_ambient_namespace_is_labelled_after_ztunnel_and_restarts_nothing_to_join() -> None:
    graph = ambient("default", "shop")
    injection = graph.of_type(INJECTION)[0]
    for ns in ("default", "shop"):
        label = graph.get(NAMESPACE_PATCH, f"{ns}-injection")
        assert label.parent == injection.urn
        assert label.inputs["metadata"] == {
            "name": ns,
            "labels": {"istio.io/dataplane-mode": "ambient"},
            "annotations": {"pulumi.com/patchForce": "true"},
        }
        assert graph.depends_on(label, graph.release("ztunnel"))
        restart_ = graph.get(COMMAND, f"{ns}-restart")
        uninject = graph.get(COMMAND, f"{ns}-uninject")
        assert restart_.parent == uninject.parent == injection.urn
        # No create: a new ambient namespace is not restarted; ztunnel captures its running pods.
        # The update runs only on a move (its trigger changes), held at PERMISSIVE under STRICT.
        assert inputs(graph, f"{ns}-restart") == {
            "update": held(ns),
            "triggers": ["ambient"],
            "timeout": COMMAND_TIMEOUT,
        }
        assert inputs(graph, f"{ns}-uninject") == {"triggers": [], "timeout": COMMAND_TIMEOUT}
        assert graph.depends_on(restart_, label)
    assert graph.outputs["ambientNamespaces"] == ["default", "shop"]
    assert graph.outputs["injectedNamespaces"] == []


def test_without_restart_workloads_an_ambient_namespace_has_no_commands() -> None:
    graph = build(
        "prod",
        istio=AMBIENT,
        injection={"namespaces": Replace([]), "ambient": ["shop"], "restartWorkloads": False},
    )
    assert graph.error is None
    assert [n for n in graph.names(COMMAND) if n.startswith("shop-")] == []
    assert graph.get(NAMESPACE_PATCH, "shop-injection").inputs["metadata"]["labels"] == {
        "istio.io/dataplane-mode": "ambient"
    }


@pytest.mark.parametrize("traffic", ["service", "workload", "all", "none"])
def test_a_waypoint_is_the_gateway_istioctl_writes_and_the_label_waits_for_it(traffic: str) -> None:
    graph = ambient("default", "shop", waypoints={"shop": traffic})
    (waypoint,) = graph.of_type(GATEWAY)
    assert waypoint.name == "shop-waypoint"
    assert waypoint.parent == graph.of_type(INJECTION)[0].urn
    assert waypoint.inputs == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "waypoint", "namespace": "shop", "labels": {"istio.io/waypoint-for": traffic}},
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
    }
    assert graph.depends_on(waypoint, graph.release("istiod"))
    label = graph.get(NAMESPACE_PATCH, "shop-injection")
    assert label.inputs["metadata"]["labels"] == {
        "istio.io/dataplane-mode": "ambient",
        "istio.io/use-waypoint": "waypoint",
    }
    assert graph.depends_on(label, waypoint)
    # `default` has no waypoint and does not wait for shop's.
    assert not graph.depends_on(graph.get(NAMESPACE_PATCH, "default-injection"), waypoint)


# --- the move -------------------------------------------------------------------------------------


def _changes(before: Graph, after: Graph) -> dict[tuple[str, str], list[tuple[str, object, object]]]:
    """Each changed resource's input changes (None: absent on that side); options left out."""
    diff = diff_plans(before.render.plan(), after.render.plan())

    def value(found: object) -> object:
        return None if found is MISSING else found

    return {
        (r.kind, r.name): [
            (c.path, value(c.old), value(c.new)) for c in r.changes if not c.path.startswith("[")
        ]
        for r in diff.resources
    }


NODE_AGENTS = {
    ("create", "istio-cni"): [],
    ("create", "istio-cni-recovery"): [],
    ("create", "ztunnel"): [],
    ("create", "ztunnel-recovery"): [],
    ("update", "istiod"): [("values.profile", None, "ambient")],
}


def test_sidecar_to_ambient_is_one_up_that_relabels_then_restarts_once() -> None:
    before = build("prod")
    after = ambient("default")
    changes = _changes(before, after)
    # Nothing deleted and nothing replaced: same names, updated in place.
    assert {kind for kind, _ in changes} == {"create", "update"}
    assert {key: value for key, value in changes.items() if key not in NODE_AGENTS} == {
        ("update", "default-injection"): [
            ("metadata.labels.istio-injection", "enabled", None),
            ('metadata.labels["istio.io/dataplane-mode"]', None, "ambient"),
        ],
        ("update", "default-restart"): [
            ("create", held("default"), None),
            ("triggers[0]", "1.30.3", "ambient"),
            ("update", restart("default"), held("default")),
        ],
        ("update", "default-uninject"): [("delete", held("default"), None)],
    }
    # The trigger changed and the new inputs have no create: the provider runs `update`, once.
    ran = _provider_update(inputs(before, "default-restart"), inputs(after, "default-restart"))
    assert ran == [("update", held("default"))]
    # The uninject's trigger is the same: its edited delete script runs nothing.
    assert (
        _provider_update(
            inputs(before, "default-uninject"),
            inputs(after, "default-uninject"),
        )
        == []
    )
    # The restart waits for the new label, which waits for ztunnel.
    assert after.depends_on(after.get(COMMAND, "default-restart"), after.release("ztunnel"))


def test_ambient_to_sidecar_is_one_up_that_relabels_then_restarts_once_as_a_first_injection() -> None:
    before = ambient("default")
    after = build("prod")
    changes = _changes(before, after)
    assert {kind for kind, _ in changes} == {"update", "delete"}
    assert changes[("update", "default-restart")] == [
        ("create", None, held("default")),
        ("triggers[0]", "ambient", "1.30.3"),
        ("update", held("default"), restart("default")),
    ]
    ran = _provider_update(inputs(before, "default-restart"), inputs(after, "default-restart"))
    # The restart that gives the pods their sidecars, held at PERMISSIVE, as a namespace's first.
    assert ran == [("create", held("default"))]


def test_an_ambient_namespaces_upgrade_restarts_nothing() -> None:
    before = ambient("default", istio={**AMBIENT, "version": "1.29.6"})
    after = ambient("default")
    changes = _changes(before, after)
    assert not [name for _, name in changes if name.startswith("default-")]
    assert ("version", "1.29.6", "1.30.3") in changes[("update", "istio-cni")]
    assert ("version", "1.29.6", "1.30.3") in changes[("update", "ztunnel")]


def test_existing_sidecar_stacks_commands_and_triggers_stay_byte_identical() -> None:
    """What a sidecar namespace's Commands were before ambient mode existed (tests/test_mtls.py)."""
    graph = build("prod")
    assert inputs(graph, "default-restart") == {
        "create": held("default"),
        "update": restart("default"),
        "triggers": ["1.30.3"],
        "timeout": COMMAND_TIMEOUT,
    }
    assert inputs(graph, "default-uninject") == {
        "delete": held("default"),
        "triggers": [],
        "timeout": COMMAND_TIMEOUT,
    }
    # Setting `dataplane: sidecar` explicitly changes nothing at all.
    assert not _changes(graph, build("prod", istio={"dataplane": "sidecar"}))


def _provider_update(olds: dict[str, object], news: dict[str, object]) -> list[tuple[str, object]]:
    """The scripts CommandProvider.update runs for that change (run_script recorded, nothing run)."""
    ran: list[tuple[str, object]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "components.local_command.run_script", lambda phase, script, _timeout: ran.append((phase, script))
        )
        CommandProvider().update("id", dict(olds), dict(news))
    return ran


def test_meshplan_diff_shows_the_move_as_the_label_update_and_the_restart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.test_meshplan import PROD_ADDONS, ROOT, meshplan

    # Both sides offline with the same addons; the new side moves `default` to ambient.
    run = meshplan(
        capsys,
        "diff",
        *("--project-dir", str(ROOT), "--stack", "prod", "--against", "prod", "--charts", "never"),
        *("--config", PROD_ADDONS, "--against-config", PROD_ADDONS),
        *("--config", "istio.dataplane=ambient"),
        *("--config", "injection.namespaces=[]", "--config", "injection.ambient=[default]"),
    )
    assert run.code == 0, run.err
    blocks = {block.splitlines()[0]: block + "\n" for block in run.out.split("\n~ ")[1:]}
    label = blocks["kubernetes:core/v1:NamespacePatch default-injection"]
    assert '    metadata.labels.istio-injection: "enabled" → (none)\n' in label
    assert '    metadata.labels["istio.io/dataplane-mode"]: (none) → "ambient"\n' in label
    assert (
        '    triggers[0]: "1.30.3" → "ambient"\n'
        in blocks["pulumi-python:dynamic/istio-mesh:Command default-restart"]
    )
    assert "+ kubernetes:helm.sh/v3:Release istio-cni\n" in run.out
    assert "+ kubernetes:helm.sh/v3:Release ztunnel\n" in run.out
    assert run.out.rstrip().splitlines()[-1].startswith("4 to create, 4 to update, 0 to delete, ")


def test_the_mesh_wide_mtls_waits_for_each_ambient_namespaces_label_even_without_restarts() -> None:
    """As for sidecar namespaces (test_mtls.py): the mesh-wide policy comes after the namespaces join the
    mesh, and a destroy deletes it before their labels."""
    graph = build(
        "prod",
        istio=AMBIENT,
        injection={"namespaces": Replace([]), "ambient": ["shop"], "restartWorkloads": False},
    )
    assert graph.error is None, graph.error
    mesh_mtls = graph.get("kubernetes:security.istio.io/v1:PeerAuthentication", "mesh-mtls")
    assert graph.get(NAMESPACE_PATCH, "shop-injection").urn in mesh_mtls.dependencies
