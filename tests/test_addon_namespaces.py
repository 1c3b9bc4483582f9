"""Every namespaced addon object lands in istio-system, never in the provider's default namespace.

Istio 1.20's loki.yaml leaves six of its seven objects without metadata.namespace (only the
`loki-headless` Service names istio-system), and a ConfigGroup creates such objects in the
provider's default namespace: `default`, an injected application namespace. The manifest below has
that shape, cut down to what matters here, plus the cluster-scoped RBAC of the newer Loki addons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.addons import (
    CLUSTER_SCOPED_KINDS,
    NAMESPACED_KINDS,
    AddonError,
    in_istio_namespace,
    object_key,
    prepare_addons,
)
from components.config import parse_config

# The kinds and namespaces of https://github.com/istio/istio/blob/1.20.8/samples/addons/loki.yaml,
# with the ClusterRole/ClusterRoleBinding that loki.yaml has from 1.24 on.
LOKI_120 = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: loki}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: loki}
data: {config.yaml: "auth_enabled: false\\n"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: loki-runtime}
---
apiVersion: v1
kind: Service
metadata: {name: loki-memberlist}
spec: {ports: [{name: tcp, port: 7946}]}
---
apiVersion: v1
kind: Service
metadata: {name: loki-headless, namespace: istio-system}
spec: {clusterIP: None, ports: [{name: http-metrics, port: 3100}]}
---
apiVersion: v1
kind: Service
metadata: {name: loki}
spec: {ports: [{name: http-metrics, port: 3100}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: loki}
spec: {serviceName: loki-headless}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: loki-clusterrole}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: loki-clusterrolebinding}
subjects: [{kind: ServiceAccount, name: loki, namespace: istio-system}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: loki-clusterrole}
"""


def _config(source: Path, addons: list[str]) -> Any:
    raw = {
        "cluster": {"context": "kind-istio-dev"},
        "istio": {"version": "1.20.8"},
        "addons": {"enabled": addons, "source": str(source)},
        "grafanaAdminPassword": "set",
    }
    return parse_config(raw, base_dir=source)


def test_loki_objects_all_land_in_istio_system(tmp_path: Path) -> None:
    (tmp_path / "loki.yaml").write_text(LOKI_120, encoding="utf-8")
    prepared = prepare_addons(_config(tmp_path, ["loki"]), tmp_path)
    assert [object_key(obj) for obj in prepared["loki"]] == [
        ("", "ServiceAccount", "istio-system", "loki"),
        ("", "ConfigMap", "istio-system", "loki"),
        ("", "ConfigMap", "istio-system", "loki-runtime"),
        ("", "Service", "istio-system", "loki-memberlist"),
        ("", "Service", "istio-system", "loki-headless"),
        ("", "Service", "istio-system", "loki"),
        ("apps", "StatefulSet", "istio-system", "loki"),
        ("rbac.authorization.k8s.io", "ClusterRole", "", "loki-clusterrole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding", "", "loki-clusterrolebinding"),
    ]
    # Cluster-scoped objects get no namespace key at all, not an empty one.
    assert "namespace" not in prepared["loki"][7]["metadata"]
    assert "namespace" not in prepared["loki"][8]["metadata"]
    # Only metadata.namespace is added: the rest of each object is upstream's.
    assert prepared["loki"][3] == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "loki-memberlist", "namespace": "istio-system"},
        "spec": {"ports": [{"name": "tcp", "port": 7946}]},
    }


def test_placing_copies_and_leaves_the_parsed_objects_alone() -> None:
    parsed = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "loki"}}]
    placed, problems = in_istio_namespace("loki", parsed)
    assert (placed, problems) == (
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "loki", "namespace": "istio-system"},
            }
        ],
        [],
    )
    assert parsed == [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "loki"}}]


def test_an_explicit_namespace_is_kept() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "monitoring"}}
    assert in_istio_namespace("loki", [obj]) == ([obj], [])


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [("networking.istio.io/v1", "VirtualService"), ("telemetry.istio.io/v1", "Telemetry")],
)
def test_istio_resources_are_namespaced(api_version: str, kind: str) -> None:
    obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}
    [placed], problems = in_istio_namespace("kiali", [obj])
    assert (placed["metadata"], problems) == ({"name": "x", "namespace": "istio-system"}, [])


def test_a_kind_of_unknown_scope_without_namespace_is_reported_with_the_others(tmp_path: Path) -> None:
    (tmp_path / "loki.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n", encoding="utf-8"
    )
    (tmp_path / "jaeger.yaml").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: jaeger}\n",
        encoding="utf-8",
    )
    with pytest.raises(AddonError) as raised:
        prepare_addons(_config(tmp_path, ["jaeger", "loki"]), tmp_path)
    assert str(raised.value) == (
        "addon problems:\n"
        "  - addon jaeger: monitoring.coreos.com/v1 ServiceMonitor jaeger has no metadata.namespace and its "
        "kind is not known to be namespaced or cluster-scoped; give it a namespace (istio-system) in the "
        "manifest, or remove it\n"
        "  - addon loki: example.com/v1 Widget w has no metadata.namespace and its kind is not known to be "
        "namespaced or cluster-scoped; give it a namespace (istio-system) in the manifest, or remove it"
    )


def test_no_kind_is_both_namespaced_and_cluster_scoped() -> None:
    assert not CLUSTER_SCOPED_KINDS & NAMESPACED_KINDS


UPSTREAM_ADDONS = Path(__file__).resolve().parents[2] / "shared" / "upstream" / "addons"


@pytest.mark.skipif(not UPSTREAM_ADDONS.is_dir(), reason="needs ../shared/upstream (real Istio addons)")
def test_every_real_addon_object_is_placed() -> None:
    """Istio's real samples/addons (1.20.8 ... 1.30.3): nothing of unknown scope, nothing left unplaced."""
    from components.addon_source import load_addon

    manifests = sorted(UPSTREAM_ADDONS.glob("*/*.yaml"))
    assert len(manifests) == 25
    for manifest in manifests:
        version, addon = manifest.parent.name, manifest.stem
        objects = load_addon(str(UPSTREAM_ADDONS / "{version}"), version, addon, base_dir=UPSTREAM_ADDONS)
        placed, problems = in_istio_namespace(addon, objects)
        assert problems == []
        for obj in placed:
            scope = (obj["apiVersion"].rpartition("/")[0], obj["kind"])
            expected = None if scope in CLUSTER_SCOPED_KINDS else "istio-system"
            assert obj["metadata"].get("namespace") == expected, (manifest, obj["metadata"]["name"])
