"""Day 2: revisions, revision tags, CRDs that lead upgrades, and the order of a destroy.

The canary walkthrough of the README is tested here step by step, each graph against the previous.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.config import ConfigError, Revision, parse_config
from meshplan.diff import diff_plans
from meshplan.engine import Registration
from tests.harness import (
    CANARY,
    COMMAND,
    CONFIG_GROUP,
    NAMESPACE,
    NAMESPACE_PATCH,
    NO_GATEWAYS,
    RELEASE,
    ROOT,
    Graph,
    Replace,
    build,
    canary_graphs,
)

WEBHOOK = "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration"


@pytest.fixture(scope="module")
def canary() -> list[Graph]:
    return canary_graphs()


def _changes(old: Graph, new: Graph) -> dict[str, list[str]]:
    diff = diff_plans(old.render.plan(), new.render.plan())
    return {
        kind: sorted(f"{r.type.rsplit(':', 1)[1]} {r.name}" for r in diff.of_kind(kind))
        for kind in ("create", "update", "delete")
    }


def _service(graph: Graph, tag: str) -> list[str]:
    webhooks = graph.get(WEBHOOK, f"istio-revision-tag-{tag}").inputs["webhooks"]
    return sorted({w["clientConfig"]["service"]["name"] for w in webhooks})


# --- config ------------------------------------------------------------------------------------------


def _raw(**istio_keys: Any) -> dict[str, Any]:
    return {
        "cluster": {"context": "c"},
        "istio": {"version": "1.30.3", **istio_keys},
        "grafanaAdminPassword": "set",
    }


def _problems(raw: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=ROOT)
    return caught.value.problems


def test_revisions_tags_and_routes_parse_in_a_fixed_order() -> None:
    raw = _raw(
        revisions={"1-30-3": {"version": "1.30.3"}, "1-29-6": {"version": "1.29.6"}},
        tags={"prod-stable": "1-29-6", "prod-canary": "1-30-3"},
        defaultRevision="1-29-6",
    )
    raw["injection"] = {"namespaces": {"shop": "prod-canary", "default": "prod-stable"}}
    config = parse_config(raw, base_dir=ROOT)
    assert config.istio.revisions == (Revision("1-29-6", "1.29.6"), Revision("1-30-3", "1.30.3"))
    assert config.istio.tags == (("prod-canary", "1-30-3"), ("prod-stable", "1-29-6"))
    assert config.istio.default_revision == "1-29-6"
    assert config.istio.crd_version == "1.30.3"
    assert config.istio.revision("prod-canary") == Revision("1-30-3", "1.30.3")
    assert config.injection.namespaces == ("default", "shop")
    assert dict(config.injection.routes) == {"default": "prod-stable", "shop": "prod-canary"}


def test_a_single_revision_is_the_default_one() -> None:
    config = parse_config(_raw(revisions={"stable": {"version": "1.29.6"}}), base_dir=ROOT)
    assert config.istio.default_revision == "stable"
    assert config.istio.crd_version == "1.30.3"  # istio.version is the floor of the CRDs


@pytest.mark.parametrize(
    ("istio_keys", "namespaces", "expected"),
    [
        (
            {"revisions": {"a": {"version": "1.29.6"}}, "tags": {"prod-stable": "gone"}},
            None,
            "istio.tags.prod-stable: got 'gone'; no such revision; declared: a (a revision still in use cannot be removed)",
        ),
        (
            {"revisions": {"a": {"version": "1.29.6"}, "b": {"version": "1.30.3"}}},
            None,
            "istio.defaultRevision: is required; the revision serving istio-injection=enabled, one of a, b",
        ),
        (
            {"revisions": {"a": {"version": "1.29.6"}}, "defaultRevision": "b"},
            None,
            "istio.defaultRevision: got 'b'; no such revision; declared: a (a revision still in use cannot be removed)",
        ),
        (
            {"revisions": {"default": {"version": "1.29.6"}}},
            None,
            "istio.revisions.default: got 'default'; a revision name must be a DNS-1123 label other than "
            "`default` (which Istio reserves for the default revision)",
        ),
        (
            {"revisions": {"a": {"version": "1.19.1"}}},
            None,
            "istio.revisions.a.version: got '1.19.1'; an exact chart version x.y.z, 1.20.0 or newer",
        ),
        (
            {"revisions": {"a": {"version": "1.29.6"}}, "tags": {"default": "a"}},
            None,
            "istio.tags.default: got 'a'; a tag name must be a DNS-1123 label other than `default` (which Istio "
            "reserves for the default revision); the default tag follows defaultRevision",
        ),
        (
            {"revisions": {"a": {"version": "1.29.6"}}, "tags": {"a": "a"}},
            None,
            "istio.tags.a: got 'a'; a tag cannot have the name of a revision",
        ),
        (
            {"tags": {"prod-stable": "a"}},
            None,
            "istio.tags.prod-stable: got 'a'; tags point at revisions: declare istio.revisions",
        ),
        (
            {"revisions": {"a": {"version": "1.29.6"}}, "gateways": {"ingress": {"tag": "prod-canary"}}},
            None,
            "istio.gateways.ingress.tag: got 'prod-canary'; no such tag or revision; declared: a "
            "(a revision still in use cannot be removed)",
        ),
        (
            {},
            {"shop": "prod-canary"},
            "injection.namespaces.shop: got 'prod-canary'; routing by tag needs istio.revisions (and istio.tags)",
        ),
        (
            {"revisions": {"a": {"version": "1.29.6"}}, "tags": {"prod-stable": "a"}},
            {"shop": "prod-canary"},
            "injection.namespaces.shop: got 'prod-canary'; no such tag or revision; declared: a, prod-stable "
            "(a revision still in use cannot be removed)",
        ),
    ],
)
def test_each_revision_rule(istio_keys: dict[str, Any], namespaces: Any, expected: str) -> None:
    raw = _raw(**istio_keys)
    if namespaces is not None:
        raw["injection"] = {"namespaces": namespaces}
    assert _problems(raw) == (expected,)


# --- the graph of one step ---------------------------------------------------------------------------


def test_each_revision_is_its_own_istiod_release(canary: list[Graph]) -> None:
    graph = canary[2]
    assert graph.names(RELEASE) == ["istio-base", "istio-ingressgateway", "istiod-1-29-6", "istiod-1-30-3"]
    old, new = graph.release("istiod-1-29-6"), graph.release("istiod-1-30-3")
    assert (old.inputs["version"], old.inputs["values"]) == (
        "1.29.6",
        {"revision": "1-29-6"},
    )
    assert (new.inputs["version"], new.inputs["values"]) == (
        "1.30.3",
        {"revision": "1-30-3"},
    )
    assert graph.release("istio-base").inputs["values"] == {"defaultRevision": "1-29-6"}


def test_tags_are_webhooks_on_their_revisions_istiod(canary: list[Graph]) -> None:
    graph = canary[2]
    assert graph.names(WEBHOOK) == [
        "istio-revision-tag-default",
        "istio-revision-tag-prod-canary",
        "istio-revision-tag-prod-stable",
    ]
    assert _service(graph, "prod-stable") == ["istiod-1-29-6"]
    assert _service(graph, "prod-canary") == ["istiod-1-30-3"]
    assert _service(graph, "default") == ["istiod-1-29-6"]
    canary_tag = graph.get(WEBHOOK, "istio-revision-tag-prod-canary")
    assert canary_tag.inputs["metadata"]["labels"] == {
        "istio.io/tag": "prod-canary",
        "istio.io/rev": "1-30-3",
        "app": "sidecar-injector",
    }
    assert [w["name"] for w in canary_tag.inputs["webhooks"]] == [
        "rev.namespace.sidecar-injector.istio.io",
        "rev.object.sidecar-injector.istio.io",
    ]
    assert canary_tag.inputs["webhooks"][0]["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "istio.io/rev", "operator": "In", "values": ["prod-canary"]},
            {"key": "istio-injection", "operator": "DoesNotExist"},
        ]
    }
    # Only the default tag serves istio-injection=enabled namespaces.
    default_names = [w["name"] for w in graph.get(WEBHOOK, "istio-revision-tag-default").inputs["webhooks"]]
    assert "namespace.sidecar-injector.istio.io" in default_names
    assert graph.depends_on(canary_tag, graph.release("istiod-1-30-3"))
    assert not graph.depends_on(canary_tag, graph.release("istiod-1-29-6"))


def test_routed_namespaces_carry_only_the_revision_label(canary: list[Graph]) -> None:
    graph = canary[2]
    labels = {
        p.inputs["metadata"]["name"]: p.inputs["metadata"]["labels"] for p in graph.of_type(NAMESPACE_PATCH)
    }
    assert labels == {"default": {"istio.io/rev": "prod-stable"}, "shop": {"istio.io/rev": "prod-canary"}}
    shop = graph.get(NAMESPACE_PATCH, "shop-injection")
    assert graph.depends_on(shop, graph.get(WEBHOOK, "istio-revision-tag-prod-canary"))
    assert graph.get(COMMAND, "shop-restart").inputs["triggers"] == ["1-30-3", "1.30.3"]
    assert graph.get(COMMAND, "default-restart").inputs["triggers"] == ["1-29-6", "1.29.6"]


def test_a_plain_namespace_list_is_served_by_the_default_tag() -> None:
    graph = build("prod", stack_file=CANARY[2], injection=Replace({"namespaces": ["default"]}))
    patch = graph.get(NAMESPACE_PATCH, "default-injection")
    assert patch.inputs["metadata"]["labels"] == {"istio-injection": "enabled"}
    assert graph.depends_on(patch, graph.get(WEBHOOK, "istio-revision-tag-default"))


def test_gateways_follow_a_tag_and_restart_when_it_moves() -> None:
    graph = build("prod", stack_file=CANARY[2], istio={"gateways": {"ingress": {"tag": "prod-canary"}}})
    gateway = graph.release("istio-ingressgateway")
    assert gateway.inputs["version"] == "1.30.3"
    assert gateway.inputs["values"] == {
        "service": {"type": "LoadBalancer"},
        "revision": "prod-canary",
    }
    assert graph.depends_on(gateway, graph.get(WEBHOOK, "istio-revision-tag-prod-canary"))
    restart = graph.get(COMMAND, "istio-ingressgateway-restart")
    target = "kubectl --context prod-cluster --namespace istio-system"
    # Only a move restarts: a new release already starts its pods with the right proxy.
    assert "create" not in restart.inputs
    assert restart.inputs["update"] == (
        f"set -eo pipefail; {target} rollout restart deployment/istio-ingressgateway;"
        f" {target} rollout status --timeout=300s deployment/istio-ingressgateway"
    )
    assert restart.inputs["triggers"] == ["1-30-3", "1.30.3"]


# --- the canary upgrade, step by step ----------------------------------------------------------------


def test_step_1_adds_the_canary_control_plane_and_moves_the_crds_first(canary: list[Graph]) -> None:
    # The Gateway API CRDs follow the CRDs' version too: v1.4.1 (Istio 1.29) to v1.5.1 (1.30), which
    # brings the safe-upgrades policy.
    gateway_api = [
        f"CustomResourceDefinition {n}.gateway.networking.k8s.io"
        for n in ("gatewayclasses", "gateways", "httproutes")
    ]
    policy = "safe-upgrades.gateway.networking.k8s.io"
    assert _changes(canary[0], canary[1]) == {
        "create": [
            "Release istiod-1-30-3",
            "ReleaseRecovery istiod-1-30-3-recovery",
            f"ValidatingAdmissionPolicy {policy}",
            f"ValidatingAdmissionPolicyBinding {policy}",
        ],
        "update": [
            "Command istio-crds-adopt",
            *gateway_api,
            "GatewayApiGuard gateway-api-guard",
            "Release istio-base",
            "UpgradePath istio-upgrade-path",
        ],
        "delete": [],
    }
    graph = canary[1]
    assert graph.release("istio-base").inputs["version"] == "1.30.3"
    assert graph.depends_on(graph.release("istiod-1-30-3"), graph.release("istio-base"))


def test_step_2_adds_the_canary_tag_and_moves_only_shop(canary: list[Graph]) -> None:
    assert _changes(canary[1], canary[2]) == {
        "create": [
            "Command istio-revision-tag-prod-canary-ca-bundle",
            "MutatingWebhookConfiguration istio-revision-tag-prod-canary",
        ],
        "update": ["Command shop-restart", "NamespacePatch shop-injection"],
        "delete": [],
    }


def test_step_3_moves_the_stable_tag_in_place(canary: list[Graph]) -> None:
    before, after = canary[2], canary[3]
    assert _changes(before, after) == {
        "create": [],
        "update": [
            "Command default-restart",
            "Command istio-revision-tag-prod-stable-ca-bundle",
            "MutatingWebhookConfiguration istio-revision-tag-prod-stable",
        ],
        "delete": [],
    }
    old_tag = before.get(WEBHOOK, "istio-revision-tag-prod-stable")
    new_tag = after.get(WEBHOOK, "istio-revision-tag-prod-stable")
    # The same object, updated: at no moment of the update is the tag's webhook missing.
    assert old_tag.urn == new_tag.urn
    assert not new_tag.delete_before_replace
    assert old_tag.inputs["metadata"]["name"] == new_tag.inputs["metadata"]["name"]
    assert (_service(before, "prod-stable"), _service(after, "prod-stable")) == (
        ["istiod-1-29-6"],
        ["istiod-1-30-3"],
    )
    # Only the namespace whose tag moved restarts; shop was already on 1-30-3.
    assert before.get(COMMAND, "shop-restart").inputs == after.get(COMMAND, "shop-restart").inputs
    assert after.get(COMMAND, "default-restart").inputs["triggers"] == ["1-30-3", "1.30.3"]


def test_step_4_retires_the_old_revision(canary: list[Graph]) -> None:
    assert _changes(canary[3], canary[4]) == {
        "create": [],
        "update": [
            "Command istio-ingressgateway-restart",
            "Command istio-revision-tag-default-ca-bundle",
            "MutatingWebhookConfiguration istio-revision-tag-default",
            "Release istio-base",
            "Release istio-ingressgateway",
        ],
        "delete": ["Release istiod-1-29-6", "ReleaseRecovery istiod-1-29-6-recovery"],
    }


def test_removing_a_revision_still_in_use_is_a_config_error() -> None:
    graph = build("prod", stack_file=CANARY[2], istio={"revisions": {"1-29-6": None}})
    assert graph.resources == []
    assert graph.error is not None
    assert "istio.tags.prod-stable: got '1-29-6'; no such revision; declared: 1-30-3" in graph.error
    assert "istio.defaultRevision: got '1-29-6'; no such revision" in graph.error


# --- CRDs --------------------------------------------------------------------------------------------


def test_charts_before_1_24_get_their_crds_applied_before_base_and_istiod() -> None:
    graph = build()  # dev: 1.20.8
    crds = graph.get(COMMAND, "istio-crds")
    apply = (
        "set -o pipefail; helm show crds base --repo https://blob.istio.io/istio-release/charts "
        "--version 1.20.8 | kubectl --context kind-istio-dev apply --server-side --force-conflicts "
        "--field-manager istio-mesh -f -"
    )
    # Applied on create and again on every version change; never deleted (Istio keeps its CRDs).
    assert (crds.inputs["create"], crds.inputs["update"], "delete" in crds.inputs) == (apply, apply, False)
    assert crds.inputs["triggers"] == ["1.20.8", "https://blob.istio.io/istio-release/charts"]
    base = graph.release("istio-base")
    assert base.inputs["skipCrds"] is True
    assert "takeOwnership" not in base.raw_inputs
    assert graph.depends_on(base, crds)
    assert graph.depends_on(graph.release("istiod"), crds)
    assert graph.depends_on(crds, graph.get(NAMESPACE, "istio-system"))


def test_upgrading_a_pre_1_24_install_reapplies_the_crds_at_the_new_version() -> None:
    crds = build(istio={"version": "1.23.6", "gateways": NO_GATEWAYS}).get(COMMAND, "istio-crds")
    assert "--version 1.23.6" in crds.inputs["create"]
    assert crds.inputs["triggers"][0] == "1.23.6"  # a new version re-runs the apply


def test_from_1_24_the_base_chart_adopts_the_crds_an_older_install_left() -> None:
    graph = build(istio={"version": "1.24.6", "gateways": NO_GATEWAYS})
    assert "istio-crds" not in graph.names(COMMAND)
    base = graph.release("istio-base")
    # The program asks for takeOwnership; the provider build here (v4.25.0) has no such field and
    # its Check drops it, which is why istio-crds-adopt marks the CRDs first.
    assert base.raw_inputs["takeOwnership"] is True
    assert "takeOwnership" not in base.inputs
    assert base.inputs["skipCrds"] is False


def test_oci_repositories_name_the_chart_by_url() -> None:
    crds = build(istio={"chartRepository": "oci://registry.example/istio/charts"}).get(COMMAND, "istio-crds")
    assert crds.inputs["create"].startswith(
        "set -o pipefail; helm show crds oci://registry.example/istio/charts/base --version 1.20.8 | "
    )


# --- destroy -----------------------------------------------------------------------------------------


def destroy_order(graph: Graph) -> list[str]:
    """The order the engine deletes custom resources in: every dependent before what it depends on.

    As in the engine's dependency graph, a resource depends on its dependencies, its provider and
    its parent, so the objects a ConfigGroup constructs go before the group, and the group (which
    depends on the namespace) before the namespace. Components are deleted too, but only the custom
    resources' order is returned.
    """
    remaining = {r.urn: r for r in graph.resources}

    def needs(resource: Registration) -> set[str | None]:
        return {*resource.dependencies, resource.provider, resource.parent}

    order: list[str] = []
    while remaining:
        # Deletable now: nothing still present depends on it.
        ready = sorted(
            urn
            for urn in remaining
            if not any(urn in needs(other) for other in remaining.values() if other.urn != urn)
        )
        assert ready, "dependency cycle"
        for urn in ready:
            resource = remaining.pop(urn)
            if resource.custom:
                order.append(resource.name)
    return order


@pytest.mark.parametrize("step", [0, 2])
def test_destroy_restores_labels_then_gateways_revisions_base_and_the_namespace(
    canary: list[Graph], step: int
) -> None:
    graph = canary[step]
    order = destroy_order(graph)

    def position(names: list[str]) -> list[int]:
        return [order.index(n) for n in names]

    labels = graph.names(NAMESPACE_PATCH)
    tags = graph.names(WEBHOOK)
    gateways = ["istio-ingressgateway"]
    istiods = [n for n in graph.names(RELEASE) if n.startswith("istiod-")]
    addon_objects = [r.name for r in graph.resources if CONFIG_GROUP in graph.ancestors(r)]
    assert len(addon_objects) == 21
    assert max(position(labels)) < min(position(tags))
    assert max(position(tags)) < min(position(istiods))
    assert max(position(gateways)) < min(position(istiods))
    assert max(position(istiods)) < order.index("istio-base")
    assert order.index("istio-base") < order.index("istio-system")
    assert max(position(addon_objects)) < order.index("istio-system")
    # Last: the provider, and the adoption then the stack's claim on the cluster (the adoption waits
    # for the claim), once everything that waits for them is gone.
    assert order.index("istio-system") < order.index("adoption") < order.index("cluster-claim")
    assert set(order[-3:]) == {"cluster", "adoption", "cluster-claim"}


def test_dev_destroys_labels_before_istiod() -> None:
    graph = build()
    order = destroy_order(graph)
    assert order.index("default-injection") < order.index("istiod") < order.index("istio-base")
    assert order.index("istio-base") < order.index("istio-crds") < order.index("istio-system")


def test_outputs_name_the_revisions_and_the_default(canary: list[Graph]) -> None:
    outputs = canary[2].outputs
    assert outputs["revisions"] == {"1-29-6": "1.29.6", "1-30-3": "1.30.3"}
    assert outputs["tags"] == {"prod-canary": "1-30-3", "prod-stable": "1-29-6"}
    assert outputs["defaultRevision"] == "1-29-6"
    assert "revisions" not in build().outputs  # a single control plane says nothing of revisions


def test_oci_repositories_name_the_chart_in_full_with_no_repository_options() -> None:
    registry = "oci://ghcr.io/istio/release/charts"
    graph = build(istio={"chartRepository": registry + "/"})
    for release, chart in (
        ("istio-base", "base"),
        ("istiod", "istiod"),
        ("istio-ingressgateway", "gateway"),
        ("istio-egressgateway", "gateway"),
    ):
        inputs = graph.release(release).inputs
        assert inputs["chart"] == f"{registry}/{chart}", release
        assert "repositoryOpts" not in inputs, release
    # An HTTPS repository keeps the plain chart name and its repositoryOpts, as before.
    https = build().release("istiod").inputs
    assert (https["chart"], https["repositoryOpts"]) == (
        "istiod",
        {
            "repo": "https://blob.istio.io/istio-release/charts",
            "caFile": "",
            "certFile": "",
            "keyFile": "",
            "password": "",
            "username": "",
        },
    )


def test_from_1_24_existing_crds_are_marked_as_the_base_releases_first() -> None:
    graph = build("prod")  # 1.30.3: the CRDs are templates of the base chart
    adopt = graph.get(COMMAND, "istio-crds-adopt")
    target = "kubectl --context prod-cluster"
    script = (
        f"set -eo pipefail; {target} get crd --output=name | awk '/[.]istio[.]io$/'"
        f" | xargs --no-run-if-empty --replace {target} label --overwrite '{{}}'"
        " app.kubernetes.io/managed-by=Helm;"
        f" {target} get crd --output=name | awk '/[.]istio[.]io$/'"
        f" | xargs --no-run-if-empty --replace {target} annotate --overwrite '{{}}'"
        " meta.helm.sh/release-name=istio-base"
        " meta.helm.sh/release-namespace=istio-system"
    )
    assert (adopt.inputs["create"], adopt.inputs["update"], adopt.inputs["triggers"]) == (
        script,
        script,
        ["1.30.3"],
    )
    assert "delete" not in adopt.inputs
    base = graph.release("istio-base")
    assert graph.depends_on(base, adopt)
    assert base.raw_inputs["takeOwnership"] is True
    # Before 1.24 the CRDs are applied instead, and nothing is adopted.
    assert "istio-crds-adopt" not in build().names(COMMAND)


def test_a_protected_stack_has_a_protected_guard_that_a_destroy_reaches_first() -> None:
    graph = build("prod")
    guard = graph.get(COMMAND, "destroy-guard")
    assert guard.protect is True
    # It does nothing itself; a destroy deletes what depends on a resource before the resource,
    # so it meets this protected guard before anything of the control plane.
    assert {k: v for k, v in guard.inputs.items() if k != "__provider"} == {"triggers": [], "timeout": 60}
    for release in ("istio-base", "istiod", "istio-ingressgateway"):
        assert graph.depends_on(guard, graph.release(release)), release
    assert graph.depends_on(guard, graph.get(NAMESPACE_PATCH, "default-injection"))
    assert graph.depends_on(guard, graph.get(COMMAND, "grafana-rollout"))
    # An unprotected stack has nothing to guard.
    assert "destroy-guard" not in build().names(COMMAND)
