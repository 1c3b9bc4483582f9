"""Helm values for the Istio charts, per chart version and profile. Pure functions, no Pulumi."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.config import GatewayConfig, IstioConfig

# Charts accept a `profile` value from 1.21 on; 1.20 charts silently ignore it
# (https://istio.io/latest/docs/setup/additional-setup/config-profiles/).
FIRST_PROFILE_AWARE = (1, 21, 0)

# Helm has no `minimal` profile: istioctl's minimal is the default control plane without gateways,
# and gateways are separate releases here anyway.
CHART_PROFILE = {"default": "default", "demo": "demo", "minimal": "default"}

# What the demo profile does to istiod, spelled out for 1.20 charts, which ignore `profile`.
DEMO_ISTIOD_VALUES: Mapping[str, Any] = {
    "meshConfig": {"accessLogFile": "/dev/stdout"},
    "global": {"proxy": {"resources": {"requests": {"cpu": "10m", "memory": "40Mi"}}}},
    "pilot": {
        "autoscaleEnabled": False,
        "traceSampling": 100,
        "resources": {"requests": {"cpu": "10m", "memory": "100Mi"}},
    },
}
DEMO_GATEWAY_VALUES: Mapping[str, Any] = {
    "autoscaling": {"enabled": False},
    "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}},
}


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


def profile_values(istio: IstioConfig, demo_values: Mapping[str, Any]) -> dict[str, Any]:
    if istio.version_tuple >= FIRST_PROFILE_AWARE:
        return {"profile": CHART_PROFILE[istio.profile]}
    return _copy(demo_values) if istio.profile == "demo" else {}


def base_values() -> dict[str, Any]:
    # `defaultRevision: default` makes the base chart create the default validating webhook,
    # as Istio's Helm install guide does (https://istio.io/latest/docs/setup/install/helm/).
    return {"defaultRevision": "default"}


def istiod_values(istio: IstioConfig) -> dict[str, Any]:
    """The profile's values, then the stack's own `istio.values`, merged last."""
    return deep_merge(profile_values(istio, DEMO_ISTIOD_VALUES), istio.values)


def gateway_values(istio: IstioConfig, gateway: GatewayConfig) -> dict[str, Any]:
    return deep_merge(profile_values(istio, DEMO_GATEWAY_VALUES), {"service": {"type": gateway.service_type}})
