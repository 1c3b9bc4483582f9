"""Helm values for the Istio charts, per chart version and profile. Pure functions, no Pulumi."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.config import GatewayConfig, IstioConfig, Revision, parse_version

# Charts accept a `profile` value from 1.21 on; 1.20 charts silently ignore it
# (https://istio.io/latest/docs/setup/additional-setup/config-profiles/).
FIRST_PROFILE_AWARE = (1, 21, 0)

# Helm has no `default` profile: the charts' defaults are it, and `profile: default` fails the
# install with "unknown profile default" (every chart from 1.21 to 1.30 has no files/profile-default.yaml).
# Helm has no `minimal` either: istioctl's minimal is the default control plane without gateways, and
# gateways are separate releases here anyway. None = set no `profile` value.
CHART_PROFILE: Mapping[str, str | None] = {"default": None, "demo": "demo", "minimal": None}

# What istioctl's demo profile of 1.20 (manifests/profiles/demo.yaml of 1.20.8) does to istiod,
# spelled out for 1.20 charts, which ignore `profile`.
DEMO_ISTIOD_VALUES: Mapping[str, Any] = {
    "meshConfig": {
        "accessLogFile": "/dev/stdout",
        # The providers the tasks on istio.io name in their Telemetry resources.
        "extensionProviders": [
            {
                "name": "otel",
                "envoyOtelAls": {
                    "service": "opentelemetry-collector.istio-system.svc.cluster.local",
                    "port": 4317,
                },
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
        ],
    },
    "global": {"proxy": {"resources": {"requests": {"cpu": "10m", "memory": "40Mi"}}}},
    "pilot": {
        "autoscaleEnabled": False,
        "traceSampling": 100,
        "resources": {"requests": {"cpu": "10m", "memory": "100Mi"}},
    },
}

# What the demo profile does to the gateways. The `gateway` chart reads none of it from `profile`
# (its demo profile sets `gateways.istio-*gateway`, the keys of the old istioctl gateway charts), so a
# 1.21+ chart with `profile: demo` renders exactly its defaults: these are set on every version.
DEMO_GATEWAY_VALUES: Mapping[str, Any] = {
    "autoscaling": {"enabled": False},
    "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}},
}
# The demo ingress also listens for TCP (31400) and SNI-routed TLS (15443), which tasks on istio.io
# use. Helm replaces lists, so the chart's three default ports are repeated; the gateway chart's
# targets are the service ports themselves (its pods may bind ports below 1024), not istioctl's 8080/8443.
DEMO_INGRESS_PORTS: tuple[Mapping[str, Any], ...] = (
    {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
    {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80},
    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443},
    {"name": "tcp", "port": 31400, "protocol": "TCP", "targetPort": 31400},
    {"name": "tls", "port": 15443, "protocol": "TCP", "targetPort": 15443},
)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge: mappings merge key by key, anything else in `override` replaces."""
    merged: dict[str, Any] = {key: _copy(value) for key, value in base.items()}
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _copy(value)
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(item) for item in value]
    return value


def profile_values(version: str, profile: str, demo_values: Mapping[str, Any]) -> dict[str, Any]:
    """What the profile means for a chart of `version`: a `profile` value, or 1.20's explicit values."""
    if parse_version(version) >= FIRST_PROFILE_AWARE:
        chart_profile = CHART_PROFILE[profile]
        return {"profile": chart_profile} if chart_profile else {}
    return _copy(demo_values) if profile == "demo" else {}


def base_values(istio: IstioConfig) -> dict[str, Any]:
    # `defaultRevision` makes the base chart create the default validating webhook for that
    # revision, as Istio's Helm guides do (https://istio.io/latest/docs/setup/install/helm/,
    # https://istio.io/latest/docs/setup/upgrade/helm/).
    return {"defaultRevision": istio.default_revision or "default"}


def istiod_values(istio: IstioConfig, revision: Revision | None = None) -> dict[str, Any]:
    """The profile's values for that chart version, the revision, then the stack's `istio.values`."""
    version = revision.version if revision else istio.version
    if istio.ambient:
        values = {"profile": AMBIENT_PROFILE, **ambient_demo_values(version, istio.profile)}
    else:
        values = profile_values(version, istio.profile, DEMO_ISTIOD_VALUES)
    if revision is not None:
        values["revision"] = revision.name
    return deep_merge(values, istio.values)


def gateway_version(istio: IstioConfig, gateway: GatewayConfig) -> str:
    """A gateway's chart follows the control plane that injects it."""
    if not istio.revisioned:
        return istio.version
    revision = istio.revision(gateway.tag) if gateway.tag else istio.default
    return revision.version if revision else istio.version


def gateway_values(istio: IstioConfig, gateway: GatewayConfig) -> dict[str, Any]:
    values = profile_values(gateway_version(istio, gateway), istio.profile, {})
    if istio.profile == "demo":
        values = deep_merge(values, DEMO_GATEWAY_VALUES)
        if gateway.name == "ingress":
            values = deep_merge(values, {"service": {"ports": DEMO_INGRESS_PORTS}})
    values = deep_merge(values, {"service": {"type": gateway.service_type}})
    if gateway.tag:
        # The chart labels the pods `istio.io/rev=<tag>`, which the tag's webhook injects.
        values["revision"] = gateway.tag
    return values


# Ambient mode (`istio.dataplane: ambient`) is a chart profile: for istiod it turns on
# PILOT_ENABLE_AMBIENT, HBONE for sidecars and gateways (so they reach ambient pods through ztunnel)
# and `cni.ambient.enabled`; for the cni chart, `ambient.enabled`, the node agent's redirection
# (manifests/helm-profiles/ambient.yaml of every release from 1.22; Istio's own Helm steps install
# istiod and cni with `profile=ambient`, https://istio.io/latest/docs/ambient/install/helm/).
# tests/test_oracle_charts.py holds both to what the real 1.24.6, 1.29.6 and 1.30.3 charts render.
AMBIENT_PROFILE = "ambient"
DEMO_REQUESTS: Mapping[str, Any] = {"requests": {"cpu": "10m", "memory": "40Mi"}}
# The demo profile's tracing and logging providers since 1.22 (the OpenTelemetry collectors in the
# `observability` namespace); 1.25 added `jaeger` (manifests/helm-profiles/demo.yaml of each tag).
DEMO_PROVIDERS: tuple[Mapping[str, Any], ...] = (
    {
        "name": "otel",
        "envoyOtelAls": {"service": "opentelemetry-collector.observability.svc.cluster.local", "port": 4317},
    },
    {
        "name": "skywalking",
        "skywalking": {"service": "tracing.istio-system.svc.cluster.local", "port": 11800},
    },
    {
        "name": "otel-tracing",
        "opentelemetry": {"port": 4317, "service": "opentelemetry-collector.observability.svc.cluster.local"},
    },
)
DEMO_JAEGER_PROVIDER: Mapping[str, Any] = {
    "name": "jaeger",
    "opentelemetry": {"port": 4317, "service": "jaeger-collector.istio-system.svc.cluster.local"},
}
FIRST_DEMO_JAEGER = (1, 25, 0)
# The demo profile sizes waypoints (and the cni and ztunnel pods) from 1.24.
FIRST_DEMO_AMBIENT_SIZES = (1, 24, 0)


def ambient_demo_values(version: str, profile: str) -> dict[str, Any]:
    """istio.profile demo on an ambient istiod, whose one `profile` value is `ambient`.

    A chart takes one profile (its templates/zzz_profile.yaml loads files/profile-<name>.yaml), so
    ambient and demo cannot both be profiles. Ambient's is kept: it is the one the mesh cannot work
    without, and upstream keeps it current. What the demo profile does to istiod is spelled out here
    instead, as for 1.20 (DEMO_ISTIOD_VALUES): smaller requests, no autoscaler, every trace, access
    logs and the tasks' telemetry providers. The default and minimal profiles add nothing.
    """
    if profile != "demo":
        return {}
    found = parse_version(version)
    providers = [*DEMO_PROVIDERS, *([DEMO_JAEGER_PROVIDER] if found >= FIRST_DEMO_JAEGER else [])]
    proxy_sizes: dict[str, Any] = {"proxy": {"resources": DEMO_REQUESTS}}
    if found >= FIRST_DEMO_AMBIENT_SIZES:
        proxy_sizes["waypoint"] = {"resources": DEMO_REQUESTS}
    return _copy(
        {
            "meshConfig": {"accessLogFile": "/dev/stdout", "extensionProviders": providers},
            "global": proxy_sizes,
            "pilot": DEMO_ISTIOD_VALUES["pilot"],
        }
    )


def node_agent_sizes(istio: IstioConfig) -> dict[str, Any]:
    """The demo profile's requests for the istio-cni and ztunnel pods (its `cni` and `ztunnel` keys)."""
    if istio.profile != "demo" or parse_version(istio.node_agent_version) < FIRST_DEMO_AMBIENT_SIZES:
        return {}
    return {"resources": _copy(DEMO_REQUESTS)}


def cni_values(istio: IstioConfig) -> dict[str, Any]:
    """istio-cni in ambient mode: the chart's ambient profile (`ambient.enabled`)."""
    return {"profile": AMBIENT_PROFILE, **node_agent_sizes(istio)}


def ztunnel_values(istio: IstioConfig) -> dict[str, Any]:
    """ztunnel: the chart's defaults, and with revisions the revision it takes certificates and config from.

    ztunnel finds istiod at `istiod.<ns>.svc:15012`, or `istiod-<revision>...` with a `revision` value
    (the chart's daemonset.yaml, CA_ADDRESS and XDS_ADDRESS). With revisions there is no plain
    `istiod` Service, so ztunnel follows the default revision, which the program upgrades it with:
    Istio's revisioned ambient upgrade moves ztunnel in place to the new revision
    (https://istio.io/latest/docs/ambient/upgrade/helm/). No profile: ztunnel's needs none.
    """
    values = node_agent_sizes(istio)
    if istio.default is not None:
        values["revision"] = istio.default.name
    return values
