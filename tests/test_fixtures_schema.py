"""The hand-written addon fixtures must stay valid Kubernetes and keep the label facts the code relies on.

Other tests use these files as stand-ins for Istio's ``samples/addons``; if a fixture drifted into
something the API server would reject, or lost the selector shape of its Istio release, those tests
would keep passing against manifests that no real cluster ever sees.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable
from typing import Any

import kubernetes_validate
import pytest
import yaml

from components.addon_source import KNOWN_ADDONS, parse_manifest

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "addons"
SHAPES = ("app-labels", "k8s-labels")
FIXTURE_FILES = [(shape, addon) for shape in SHAPES for addon in KNOWN_ADDONS]
KUBERNETES_VERSION = "1.30"
NAMESPACE = "istio-system"
CLUSTER_SCOPED_KINDS = frozenset({"ClusterRole", "ClusterRoleBinding"})
WORKLOAD_KINDS = ("Deployment", "StatefulSet")

# Object kinds of each real addon manifest (Grafana's dashboards and Loki's runtime config are
# ConfigMaps too, so the kind set is what stays stable across releases).
EXPECTED_KINDS = {
    "prometheus": {
        "ServiceAccount",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
    },
    "grafana": {"ServiceAccount", "ConfigMap", "Service", "Deployment"},
    "jaeger": {"Service", "Deployment"},
    "kiali": {"ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"},
    "loki": {"ServiceAccount", "ConfigMap", "Service", "StatefulSet"},
}

PROMETHEUS_SELECTOR = {
    "app-labels": {"component": "server", "app": "prometheus", "release": "prometheus"},
    "k8s-labels": {
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/name": "prometheus",
        "app.kubernetes.io/instance": "prometheus",
    },
}
KIALI_SELECTOR = {"app.kubernetes.io/name": "kiali", "app.kubernetes.io/instance": "kiali"}


def _load(shape: str, addon: str) -> list[dict[str, Any]]:
    path = FIXTURES / shape / f"{addon}.yaml"
    return parse_manifest(path.read_text(encoding="utf-8"), str(path))


def _find(objects: Iterable[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _workloads(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def _container_ports(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return [port for c in workload["spec"]["template"]["spec"]["containers"] for port in c.get("ports", [])]


def _service_ports(service: dict[str, Any]) -> list[tuple[str, int, int | str]]:
    return [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]]


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_has_exactly_the_known_addons(shape: str) -> None:
    names = sorted(p.name for p in (FIXTURES / shape).iterdir())
    assert names == sorted(f"{addon}.yaml" for addon in KNOWN_ADDONS)


@pytest.mark.parametrize(("shape", "addon"), FIXTURE_FILES)
def test_every_object_is_valid_kubernetes_1_30(shape: str, addon: str) -> None:
    objects = _load(shape, addon)
    assert objects
    for obj in objects:
        label = f"{shape}/{addon}.yaml {obj['kind']}/{obj['metadata']['name']}"
        try:
            checked = kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{label}: {exc.message} at {'/'.join(str(p) for p in exc.absolute_path)}")
        assert checked == KUBERNETES_VERSION, label


@pytest.mark.parametrize(("shape", "addon"), FIXTURE_FILES)
def test_namespaces_kinds_and_names(shape: str, addon: str) -> None:
    objects = _load(shape, addon)
    assert {o["kind"] for o in objects} == EXPECTED_KINDS[addon]
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "duplicate kind/name in one file"
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        expected = None if obj["kind"] in CLUSTER_SCOPED_KINDS else NAMESPACE
        assert namespace == expected, f"{obj['kind']}/{obj['metadata']['name']}"
        for subject in obj.get("subjects", []):
            assert subject["namespace"] == NAMESPACE


@pytest.mark.parametrize(("shape", "addon"), FIXTURE_FILES)
def test_workload_selectors_match_their_own_pods(shape: str, addon: str) -> None:
    # The API server rejects a Deployment/StatefulSet whose selector does not match its template;
    # the JSON schema cannot express that, so it is checked here.
    workloads = _workloads(_load(shape, addon))
    assert len(workloads) == 1
    for workload in workloads:
        match_labels = workload["spec"]["selector"]["matchLabels"]
        assert match_labels.items() <= _pod_labels(workload).items()
        containers = workload["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1


@pytest.mark.parametrize(("shape", "addon"), FIXTURE_FILES)
def test_every_service_selects_a_workload_and_its_ports(shape: str, addon: str) -> None:
    objects = _load(shape, addon)
    workloads = _workloads(objects)
    services = [o for o in objects if o["kind"] == "Service"]
    assert services
    for service in services:
        name = service["metadata"]["name"]
        selector = service["spec"]["selector"]
        assert selector, name
        selected = [w for w in workloads if selector.items() <= _pod_labels(w).items()]
        assert selected, f"Service {name} selects no Deployment/StatefulSet in {shape}/{addon}.yaml"
        ports = [port for w in selected for port in _container_ports(w)]
        numbers = {p["containerPort"] for p in ports}
        names = {p["name"] for p in ports if "name" in p}
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert target in (numbers if isinstance(target, int) else names), f"{name}:{port['name']}"


@pytest.mark.parametrize("shape", SHAPES)
def test_prometheus_labels(shape: str) -> None:
    objects = _load(shape, "prometheus")
    service = _find(objects, "Service", "prometheus")
    deployment = _find(objects, "Deployment", "prometheus")
    selector = PROMETHEUS_SELECTOR[shape]
    assert service["spec"]["selector"] == selector
    assert _service_ports(service) == [("http", 9090, 9090)]
    assert deployment["spec"]["selector"]["matchLabels"] == selector
    pod_labels = _pod_labels(deployment)
    assert selector.items() <= pod_labels.items()
    assert pod_labels != selector
    if shape == "app-labels":
        assert pod_labels["chart"].startswith("prometheus-")
        assert pod_labels["heritage"] == "Helm"
    else:
        assert not {"app", "component", "release"} & pod_labels.keys()


@pytest.mark.parametrize("shape", SHAPES)
def test_kiali_service_config_and_mount(shape: str) -> None:
    objects = _load(shape, "kiali")
    service = _find(objects, "Service", "kiali")
    assert _service_ports(service) == [("http", 20001, 20001), ("http-metrics", 9090, 9090)]
    assert service["spec"]["selector"] == KIALI_SELECTOR
    deployment = _find(objects, "Deployment", "kiali")
    assert KIALI_SELECTOR.items() <= _pod_labels(deployment).items()
    assert _pod_labels(deployment) != KIALI_SELECTOR

    config_text = _find(objects, "ConfigMap", "kiali")["data"]["config.yaml"]
    assert "auth:\n  strategy: anonymous" in config_text
    config = yaml.safe_load(config_text)
    assert config["auth"] == {"strategy": "anonymous"}
    assert config["deployment"]["accessible_namespaces"] == ["**"]
    assert config["server"]["port"] == 20001
    assert config["server"]["web_root"] == "/kiali"

    pod_spec = deployment["spec"]["template"]["spec"]
    volumes = [v["name"] for v in pod_spec["volumes"] if v.get("configMap", {}).get("name") == "kiali"]
    assert len(volumes) == 1
    mounts = pod_spec["containers"][0]["volumeMounts"]
    assert [m["name"] for m in mounts] == volumes


@pytest.mark.parametrize("shape", SHAPES)
def test_grafana_anonymous_admin(shape: str) -> None:
    objects = _load(shape, "grafana")
    assert [p[1] for p in _service_ports(_find(objects, "Service", "grafana"))] == [3000]
    container = _find(objects, "Deployment", "grafana")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "GF_AUTH_ANONYMOUS_ENABLED": "true",
        "GF_AUTH_ANONYMOUS_ORG_ROLE": "Admin",
        "GF_AUTH_BASIC_ENABLED": "false",
    }
    assert "[server]" in _find(objects, "ConfigMap", "grafana")["data"]["grafana.ini"]


@pytest.mark.parametrize("shape", SHAPES)
def test_jaeger_services(shape: str) -> None:
    objects = _load(shape, "jaeger")
    _find(objects, "Deployment", "jaeger")
    assert [p[1:] for p in _service_ports(_find(objects, "Service", "tracing"))] == [(80, 16686)]
    assert [p[1:] for p in _service_ports(_find(objects, "Service", "zipkin"))] == [(9411, 9411)]
    collector = _service_ports(_find(objects, "Service", "jaeger-collector"))
    assert [p[1] for p in collector] == [14268, 14250, 9411]


@pytest.mark.parametrize("shape", SHAPES)
def test_loki_is_a_statefulset(shape: str) -> None:
    objects = _load(shape, "loki")
    statefulset = _find(objects, "StatefulSet", "loki")
    _find(objects, "Service", statefulset["spec"]["serviceName"])
    _find(objects, "Service", "loki")
    _find(objects, "ConfigMap", "loki")
    _find(objects, "ServiceAccount", "loki")
