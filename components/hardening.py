"""Logins for the dashboards: no anonymous access unless the stack asks for it.

Pure functions over the addon objects, applied before anything is declared, so the addon's own
ConfigMap and Deployment keep their single owner.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from components.addon_source import YAML_LOADER

GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_PASSWORD_KEY = "admin-password"


class HardeningError(Exception):
    """The addon lacks the object a login setting has to change."""


def _copy_of(objects: list[dict[str, Any]], kind: str, name: str, addon: str) -> dict[str, Any]:
    """The one object of that kind and name, replaced in `objects` by a deep copy for changing."""
    found = [i for i, o in enumerate(objects) if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise HardeningError(f"the {addon} addon has {len(found)} {kind}(s) named {name!r}; expected one")
    objects[found[0]] = copy.deepcopy(objects[found[0]])
    return objects[found[0]]


def kiali_auth(objects: Sequence[Mapping[str, Any]], strategy: str) -> list[dict[str, Any]]:
    """Set Kiali's `auth.strategy` in its ConfigMap (https://kiali.io/docs/configuration/authentication/)."""
    result = [dict(o) for o in objects]
    config_map = _copy_of(result, "ConfigMap", "kiali", "kiali")
    data = config_map.setdefault("data", {})
    settings = yaml.load(data.get("config.yaml") or "", Loader=YAML_LOADER) or {}
    if not isinstance(settings, dict):
        raise HardeningError("the kiali addon's ConfigMap `kiali` has a config.yaml that is not a mapping")
    auth = settings.setdefault("auth", {})
    if auth.get("strategy") == strategy:
        return result  # already as asked: keep upstream's bytes
    auth["strategy"] = strategy
    data["config.yaml"] = yaml.safe_dump(settings, sort_keys=False)
    return result


def grafana_login(objects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Turn Grafana's anonymous admin off; the admin password comes from the `grafana-admin` Secret."""
    result = [dict(o) for o in objects]
    deployment = _copy_of(result, "Deployment", "grafana", "grafana")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    grafana = next((c for c in containers if c.get("name") == "grafana"), containers[0])
    settings: dict[str, Any] = {
        "GF_AUTH_ANONYMOUS_ENABLED": {"value": "false"},
        "GF_AUTH_BASIC_ENABLED": {"value": "true"},
        "GF_AUTH_DISABLE_LOGIN_FORM": {"value": "false"},
        "GF_SECURITY_ADMIN_USER": {"value": "admin"},
        "GF_SECURITY_ADMIN_PASSWORD": {
            "valueFrom": {"secretKeyRef": {"name": GRAFANA_ADMIN_SECRET, "key": GRAFANA_PASSWORD_KEY}}
        },
    }
    env = [e for e in grafana.get("env", []) if e.get("name") not in settings]
    env += [{"name": name, **value} for name, value in settings.items()]
    grafana["env"] = env
    return result
