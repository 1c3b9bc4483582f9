"""The real program under the mock engine: types, inputs, edges, providers, ownership, outputs."""

from __future__ import annotations

import copy
from importlib.metadata import version
from typing import Any

import pytest

from components.addons import object_key
from components.config import PROJECT, parse_config
from components.dashboards import expose
from tests.harness import (
    COMMAND,
    CONFIG_GROUP,
    CONFIG_MAP,
    DEPLOYMENT,
    NAMESPACE,
    NAMESPACE_PATCH,
    NO_GATEWAYS,
    PROVIDER,
    RELEASE,
    ROOT,
    SERVICE,
    Graph,
    build,
    fixture_objects,
    stack_config,
)

CHARTS = "https://blob.istio.io/istio-release/charts"
MESH = "istio-mesh:index:Mesh"
CONTROL_PLANE = "istio-mesh:index:ControlPlane"


@pytest.fixture(scope="module")
def dev() -> Graph:
    return build()


@pytest.fixture(scope="module")
def prod() -> Graph:
    return build("prod")


def test_dev_renders_without_error(dev: Graph) -> None:
    assert dev.error is None


def test_one_explicit_provider_targets_the_stacks_context(dev: Graph) -> None:
    (provider,) = dev.of_type(PROVIDER)
    assert provider.name == "cluster"
    # Provider inputs travel as strings, as the engine hands them to the provider plugin.
    # ConfigMaps and Secrets are updated in place, never deleted and created again under their name.
    # The engine records the plugin version the SDK asks for as an input too.
    assert provider.inputs == {
        "context": "kind-istio-dev",
        "enableServerSideApply": "true",
        "enableConfigMapMutable": "true",
        "enableSecretMutable": "true",
        "version": version("pulumi_kubernetes"),
    }
    kubernetes = [r for r in dev.resources if r.type.startswith("kubernetes:")]
    assert len(kubernetes) > 20
    assert {r.provider for r in kubernetes} == {provider.urn}


def test_kubeconfig_reaches_the_provider_and_every_kubectl_call() -> None:
    graph = build(cluster={"kubeconfig": "/etc/istio-mesh/dev.kubeconfig"})
    (provider,) = graph.of_type(PROVIDER)
    assert provider.inputs["kubeconfig"] == "/etc/istio-mesh/dev.kubeconfig"
    restart = graph.get(COMMAND, "default-restart")
    target = (
        "kubectl --context kind-istio-dev --kubeconfig /etc/istio-mesh/dev.kubeconfig --namespace default"
    )
    assert restart.inputs["create"] == (
        f"set -eo pipefail; {target} get deployment,statefulset,daemonset --output=name"
        f" | xargs --no-run-if-empty {target} rollout restart;"
        f" {target} get deployment,statefulset,daemonset --output=name"
        f" | xargs --no-run-if-empty --max-args=1 {target} rollout status --timeout=300s"
    )
    assert (
        graph.get(COMMAND, "istio-crds")
        .inputs["create"]
        .endswith(
            "| kubectl --context kind-istio-dev --kubeconfig /etc/istio-mesh/dev.kubeconfig "
            "apply --server-side --force-conflicts --field-manager istio-mesh -f -"
        )
    )


def test_the_mesh_components_nest_under_one_mesh(dev: Graph) -> None:
    (mesh,) = dev.of_type(MESH)
    assert sorted((r.type, r.name) for r in dev.children(mesh)) == [
        (CONTROL_PLANE, "control-plane"),
        ("istio-mesh:index:Injection", "injection"),
        ("kubernetes:core/v1:Secret", "istio-system/kiali-signing-key"),
        (CONFIG_GROUP, "grafana"),
        (CONFIG_GROUP, "jaeger"),
        (CONFIG_GROUP, "kiali"),
        (CONFIG_GROUP, "prometheus"),
        (COMMAND, "kiali-rollout"),
        ("pulumi-python:dynamic/istio-mesh:GeneratedPassword", "kiali-signing-key"),
    ]
    assert mesh.providers == {"kubernetes": dev.of_type(PROVIDER)[0].urn}
    assert dev.ancestors(dev.release("istiod")) == [CONTROL_PLANE, MESH]


def test_releases_are_pinned_to_the_stack_version(dev: Graph) -> None:
    releases = {r.name: r.inputs for r in dev.of_type(RELEASE)}
    assert sorted(releases) == ["istio-base", "istio-egressgateway", "istio-ingressgateway", "istiod"]
    expected_charts = {
        "istio-base": "base",
        "istiod": "istiod",
        "istio-ingressgateway": "gateway",
        "istio-egressgateway": "gateway",
    }
    for name, inputs in releases.items():
        assert inputs["chart"] == expected_charts[name]
        assert inputs["name"] == name  # an explicit release name: no random suffix
        assert inputs["version"] == "1.20.8"
        assert inputs["namespace"] == "istio-system"
        # As the provider's Check records it: every field of RepositoryOpts, empty unless set.
        assert inputs["repositoryOpts"] == {
            "repo": CHARTS,
            "caFile": "",
            "certFile": "",
            "keyFile": "",
            "password": "",
            "username": "",
        }
        assert "compat" not in inputs  # sent by the SDK, unknown to the provider's Release
    assert releases["istio-base"]["values"] == {"defaultRevision": "default"}
    assert releases["istio-base"]["timeout"] == 300
    assert releases["istiod"]["timeout"] == 600
    assert releases["istio-ingressgateway"]["timeout"] == 600


def test_control_plane_order_namespace_base_istiod_gateways(dev: Graph) -> None:
    namespace = dev.get(NAMESPACE, "istio-system")
    base, istiod = dev.release("istio-base"), dev.release("istiod")
    assert dev.depends_on(base, namespace)
    assert dev.depends_on(istiod, base)
    for gateway in ("istio-ingressgateway", "istio-egressgateway"):
        assert dev.depends_on(dev.release(gateway), istiod)
    assert not dev.depends_on(base, istiod)


def test_addons_need_only_the_namespace_never_the_control_plane(dev: Graph) -> None:
    namespace = dev.get(NAMESPACE, "istio-system")
    base, istiod = dev.release("istio-base"), dev.release("istiod")
    groups = dev.of_type(CONFIG_GROUP)
    assert sorted(g.name for g in groups) == ["grafana", "jaeger", "kiali", "prometheus"]
    for group in groups:
        assert not dev.depends_on(group, istiod), group.name
        # Kiali lists Istio's resources at start, so it waits for the CRDs; the others don't. Its
        # Deployment mounts its signing key's Secret, so it waits for that too.
        if group.name == "kiali":
            signing_key = dev.get("kubernetes:core/v1:Secret", "istio-system/kiali-signing-key")
            assert sorted(group.dependencies) == sorted([namespace.urn, base.urn, signing_key.urn])
        else:
            assert group.dependencies == (namespace.urn,), group.name
            assert not dev.depends_on(group, base), group.name
    # The provider constructs the objects once the group's dependencies are in place; the objects
    # themselves wait for nothing outside their group.
    addon_objects = [r for r in dev.resources if CONFIG_GROUP in dev.ancestors(r)]
    assert len(addon_objects) == 21
    assert all(r.dependencies == () and r.custom for r in addon_objects)


def test_each_addon_object_is_a_resource_of_its_own_kind_in_its_group(dev: Graph) -> None:
    kiali = dev.get(CONFIG_GROUP, "kiali")
    assert kiali.remote and not kiali.custom
    assert kiali.provider == dev.of_type(PROVIDER)[0].urn
    assert sorted((r.type, r.name) for r in dev.children(kiali)) == [
        ("kubernetes:apps/v1:Deployment", "kiali:istio-system/kiali"),
        ("kubernetes:core/v1:ConfigMap", "kiali:istio-system/kiali"),
        ("kubernetes:core/v1:Service", "kiali:istio-system/kiali"),
        ("kubernetes:core/v1:ServiceAccount", "kiali:istio-system/kiali"),
        ("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "kiali:kiali"),
        ("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", "kiali:kiali"),
    ]
    # The program sends the objects as the manifest has them, dashboards applied, in manifest
    # order; the engine records no inputs for the group, which the provider constructs.
    assert [o["kind"] for o in kiali.raw_inputs["objs"]] == [r.inputs["kind"] for r in dev.children(kiali)]
    assert kiali.inputs == {}


def test_demo_profile_is_spelled_out_for_1_20_charts(dev: Graph) -> None:
    # Copies: `dev` is shared by the whole module, and the pops below must not change it.
    values = copy.deepcopy(dev.release("istiod").inputs["values"])
    # tests/test_oracle_charts.py checks the providers themselves against Istio 1.20.8's demo profile.
    providers = values["meshConfig"].pop("extensionProviders")
    assert [provider["name"] for provider in providers] == ["otel", "skywalking", "otel-tracing"]
    assert values == {
        "meshConfig": {"accessLogFile": "/dev/stdout"},
        "global": {"proxy": {"resources": {"requests": {"cpu": "10m", "memory": "40Mi"}}}},
        "pilot": {
            "autoscaleEnabled": False,
            "traceSampling": 100,
            "resources": {"requests": {"cpu": "10m", "memory": "100Mi"}},
        },
    }
    ingress = copy.deepcopy(dev.release("istio-ingressgateway").inputs["values"])
    assert [port["port"] for port in ingress["service"].pop("ports")] == [15021, 80, 443, 31400, 15443]
    assert ingress == {
        "autoscaling": {"enabled": False},
        "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}},
        "service": {"type": "NodePort"},
    }
    # The demo's extra ports are the ingress's only.
    assert dev.release("istio-egressgateway").inputs["values"]["service"] == {"type": "ClusterIP"}


@pytest.mark.parametrize(
    ("profile", "chart_values"), [("demo", {"profile": "demo"}), ("default", {}), ("minimal", {})]
)
def test_charts_from_1_21_get_the_profile_value(profile: str, chart_values: dict[str, str]) -> None:
    # The charts have no `default` profile: `profile: default` fails with "unknown profile default".
    # 1.25.5: the first of these whose gateway chart today's Helm accepts (components/config.py).
    graph = build(istio={"version": "1.25.5", "profile": profile})
    assert graph.release("istiod").inputs["values"] == chart_values
    for gateway in ("istio-ingressgateway", "istio-egressgateway"):
        assert graph.release(gateway).inputs["values"].get("profile") == chart_values.get("profile")


def test_default_profile_on_1_20_sets_no_profile_values() -> None:
    graph = build(istio={"profile": "default", "gateways": None})
    assert graph.release("istiod").inputs["values"] == {}
    assert graph.names(RELEASE) == ["istio-base", "istio-ingressgateway", "istiod"]
    assert graph.release("istio-ingressgateway").inputs["values"] == {"service": {"type": "LoadBalancer"}}


def test_minimal_profile_installs_no_gateways() -> None:
    graph = build(istio={"profile": "minimal", "gateways": None})
    assert graph.names(RELEASE) == ["istio-base", "istiod"]


def test_stack_values_merge_last_into_istiod() -> None:
    graph = build(istio={"values": {"pilot": {"traceSampling": 1, "env": {"A": "b"}}}})
    pilot = graph.release("istiod").inputs["values"]["pilot"]
    assert pilot == {
        "autoscaleEnabled": False,
        "traceSampling": 1,
        "resources": {"requests": {"cpu": "10m", "memory": "100Mi"}},
        "env": {"A": "b"},
    }


def test_prod_is_the_newest_release_default_profile_and_protected(prod: Graph) -> None:
    assert prod.error is None
    assert prod.of_type(PROVIDER)[0].inputs["context"] == "prod-cluster"
    assert prod.release("istiod").inputs["version"] == "1.30.3"
    assert prod.release("istiod").inputs["values"] == {}
    assert prod.names(RELEASE) == ["istio-base", "istio-ingressgateway", "istiod"]
    assert prod.release("istio-ingressgateway").inputs["values"]["service"] == {"type": "LoadBalancer"}
    assert sorted(r.name for r in prod.resources if r.protect) == ["destroy-guard", "istio-base"]
    labels = prod.get(NAMESPACE, "istio-system").inputs["metadata"]["labels"]
    assert labels == {"istio-mesh/environment": "production"}


def test_dev_protects_nothing(dev: Graph) -> None:
    assert [r.name for r in dev.resources if r.protect] == []
    assert dev.get(NAMESPACE, "istio-system").inputs["metadata"]["labels"] == {
        "istio-mesh/environment": "development"
    }


def test_injection_labels_after_istiod_then_restarts(dev: Graph) -> None:
    (patch,) = dev.of_type(NAMESPACE_PATCH)
    assert patch.name == "default-injection"
    assert patch.inputs["metadata"] == {
        "name": "default",
        "labels": {"istio-injection": "enabled"},
        "annotations": {"pulumi.com/patchForce": "true"},
    }
    assert dev.depends_on(patch, dev.release("istiod"))
    restart = dev.get(COMMAND, "default-restart")
    target = "kubectl --context kind-istio-dev --namespace default"
    # Deployments, StatefulSets and DaemonSets all get sidecars, and the `up` waits for each rollout.
    script = (
        f"set -eo pipefail; {target} get deployment,statefulset,daemonset --output=name"
        f" | xargs --no-run-if-empty {target} rollout restart;"
        f" {target} get deployment,statefulset,daemonset --output=name"
        f" | xargs --no-run-if-empty --max-args=1 {target} rollout status --timeout=300s"
    )
    # `__provider` is the dynamic provider's class, pickled by reference (a Pulumi secret by default).
    provider = {"__provider": "[secret]"}
    assert restart.inputs == {
        "create": script,
        "update": script,
        "triggers": ["1.20.8"],
        "timeout": 1200,
        **provider,
    }
    assert dev.depends_on(restart, patch)
    # On destroy the label goes first, then `default-uninject` restarts the workloads without
    # sidecars, and only then is istiod deleted.
    uninject = dev.get(COMMAND, "default-uninject")
    assert uninject.inputs == {"delete": script, "triggers": [], "timeout": 1200, **provider}
    assert dev.depends_on(patch, uninject)
    assert dev.depends_on(uninject, dev.release("istiod"))
    assert not dev.depends_on(uninject, patch)


def test_every_namespace_is_labelled_and_restarts_can_be_turned_off() -> None:
    graph = build(injection={"namespaces": ["default", "shop"], "restartWorkloads": False})
    assert sorted(p.inputs["metadata"]["name"] for p in graph.of_type(NAMESPACE_PATCH)) == ["default", "shop"]
    assert graph.names(COMMAND) == ["istio-crds", "kiali-rollout"]


def test_restarts_run_again_when_the_istio_version_changes() -> None:
    restart = build(istio={"version": "1.21.6", "gateways": NO_GATEWAYS}).get(COMMAND, "default-restart")
    assert restart.inputs["triggers"] == ["1.21.6"]


def test_every_kubernetes_object_has_exactly_one_owner(dev: Graph) -> None:
    owned = [
        object_key(r.inputs)
        for r in dev.resources
        if r.type.startswith("kubernetes:") and r.custom and r.type not in (RELEASE, NAMESPACE_PATCH)
    ]
    assert len(owned) == len(set(owned))
    services = [r.inputs["metadata"]["name"] for r in dev.of_type(SERVICE)]
    assert services.count("kiali") == 1
    assert services.count("prometheus") == 1
    patched = {r.inputs["metadata"]["name"] for r in dev.of_type(NAMESPACE_PATCH)}
    declared = {r.inputs["metadata"]["name"] for r in dev.of_type(NAMESPACE)}
    assert not patched & declared


def _service(graph: Graph, name: str) -> dict[str, Any]:
    """The addon's own Service: the one its ConfigGroup (named after the addon) declares."""
    return dict(graph.get(SERVICE, f"{name}:istio-system/{name}").inputs)


def test_dashboards_are_the_addons_own_services_on_fixed_node_ports(dev: Graph) -> None:
    kiali, prometheus = _service(dev, "kiali"), _service(dev, "prometheus")
    assert kiali["spec"]["type"] == "NodePort"
    assert [(p["port"], p.get("nodePort")) for p in kiali["spec"]["ports"]] == [(20001, 30007), (9090, 30008)]
    assert prometheus["spec"]["type"] == "NodePort"
    assert [(p["port"], p.get("nodePort")) for p in prometheus["spec"]["ports"]] == [(9090, 30009)]
    # Untouched addon Services stay exactly as shipped.
    assert "nodePort" not in str(_service(dev, "grafana"))


def _pod_labels(fixture_dir: str, addon: str) -> list[dict[str, str]]:
    return [
        o["spec"]["template"]["metadata"]["labels"]
        for o in fixture_objects(fixture_dir, addon)
        if o["kind"] in ("Deployment", "StatefulSet")
    ]


@pytest.mark.parametrize(("version", "fixture_dir"), [("1.20.8", "app-labels"), ("1.21.6", "k8s-labels")])
def test_dashboard_selectors_select_the_addons_real_pods(version: str, fixture_dir: str) -> None:
    graph = build(istio={"version": version, "gateways": NO_GATEWAYS})
    for name in ("kiali", "prometheus"):
        selector = _service(graph, name)["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in _pod_labels(fixture_dir, name)), name
    prometheus_selector = _service(graph, "prometheus")["spec"]["selector"]
    if fixture_dir == "app-labels":
        assert prometheus_selector == {"component": "server", "app": "prometheus", "release": "prometheus"}
    else:
        assert prometheus_selector == {
            "app.kubernetes.io/component": "server",
            "app.kubernetes.io/name": "prometheus",
            "app.kubernetes.io/instance": "prometheus",
        }


def test_cluster_ip_dashboards_leave_the_services_as_shipped(prod: Graph) -> None:
    assert "nodePort" not in str(_service(prod, "kiali"))
    assert _service(prod, "kiali")["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_dev_outputs(dev: Graph) -> None:
    assert dev.outputs == {
        "istioVersion": "1.20.8",
        "profile": "demo",
        "injectedNamespaces": ["default"],
        "addons": ["prometheus", "grafana", "jaeger", "kiali"],
        "dashboards": {
            "grafana": {
                "type": "ClusterIP",
                "service": "istio-system/grafana",
                "portForward": "kubectl --context kind-istio-dev port-forward --namespace istio-system svc/grafana 3000:3000",
                "url": "http://localhost:3000",
            },
            "kiali": {
                "type": "NodePort",
                "service": "istio-system/kiali",
                "nodePort": 30007,
                "metricsNodePort": 30008,
                "url": "http://<node-address>:30007/kiali",
            },
            "prometheus": {
                "type": "NodePort",
                "service": "istio-system/prometheus",
                "nodePort": 30009,
                "url": "http://<node-address>:30009",
            },
        },
    }


def test_prod_outputs_say_how_to_port_forward(prod: Graph) -> None:
    assert prod.outputs["dashboards"]["kiali"] == {
        "type": "ClusterIP",
        "service": "istio-system/kiali",
        "portForward": "kubectl --context prod-cluster port-forward --namespace istio-system svc/kiali 20001:20001",
        "url": "http://localhost:20001/kiali",
    }


def test_preview_and_update_declare_the_same_graph(dev: Graph) -> None:
    update = build(preview=False)
    assert update.error is None
    assert update.render.plan() == dev.render.plan()


def test_rendering_twice_gives_identical_plans(dev: Graph) -> None:
    assert build().render.plan() == dev.render.plan()


def test_a_config_mistake_stops_before_any_resource() -> None:
    graph = build(istio={"version": "1.19.0"}, dashboards={"kiali": {"nodePort": 1}})
    assert graph.resources == []
    assert graph.error is not None
    assert "istio.version: got '1.19.0'" in graph.error
    assert "dashboards.kiali.nodePort: got 1" in graph.error
    assert "Traceback" not in graph.error


def test_a_missing_addon_file_is_a_clear_error(tmp_path: Any) -> None:
    graph = build(
        addons={"source": str(tmp_path), "enabled": ["prometheus", "kiali"]}, dashboards={"grafana": None}
    )
    assert graph.resources == []
    assert graph.error is not None
    assert graph.error.startswith("addon problems:\n  - ")
    assert "prometheus" in graph.error and "kiali" in graph.error


def test_kiali_config_map_is_declared_from_the_addon(dev: Graph) -> None:
    config_map = dev.get(CONFIG_MAP, "kiali:istio-system/kiali")
    assert "config.yaml" in config_map.inputs["data"]
    assert dev.get(DEPLOYMENT, "kiali:istio-system/kiali").inputs["metadata"]["name"] == "kiali"


def test_a_dashboard_copies_only_the_service_it_changes() -> None:
    raw = {key.removeprefix(f"{PROJECT}:"): value for key, value in stack_config().items()}
    kiali = parse_config(raw, base_dir=ROOT).dashboard("kiali")
    objects = fixture_objects("app-labels", "kiali")
    shipped = copy.deepcopy(objects)
    exposed = expose(objects, kiali)
    assert objects == shipped  # the caller's objects are left as they were
    changed = [new for new, old in zip(exposed, shipped, strict=True) if new != old]
    assert [(o["kind"], o["metadata"]["name"]) for o in changed] == [("Service", "kiali")]
