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

# Kiali's login-token signing key comes from a Secret of the stack's own (components/mesh.py), never
# from the ConfigMap, which carries upstream's `login_token.signing_key: CHANGEME00000000` (the
# kiali.yaml addon of every Istio release from 1.20 to 1.30). Kiali takes the file
# /kiali-override-secrets/login-token-signing-key/value.txt, when it exists, over the ConfigMap's value
# (`SecretFileLoginTokenSigningKey` and `overrideSecretsDir` in config/config.go of kiali/kiali, from
# v1.76 on), so the Secret is mounted there and the ConfigMap keeps no key at all: a Kiali that
# somehow lacks the file refuses token login rather than signing with a well-known key.
KIALI_SIGNING_KEY_SECRET = "kiali-signing-key"
KIALI_SIGNING_KEY_ITEM = "signing-key"
KIALI_SIGNING_KEY_VOLUME = "kiali-signing-key"
KIALI_SIGNING_KEY_DIR = "/kiali-override-secrets/login-token-signing-key"
KIALI_SIGNING_KEY_FILE = "value.txt"


class HardeningError(Exception):
    """The addon lacks the object a login setting has to change."""


def _copy_of(objects: list[dict[str, Any]], kind: str, name: str, addon: str) -> dict[str, Any]:
    """The one object of that kind and name, replaced in `objects` by a deep copy for changing."""
    found = [i for i, o in enumerate(objects) if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise HardeningError(f"the {addon} addon has {len(found)} {kind}(s) named {name!r}; expected one")
    objects[found[0]] = copy.deepcopy(objects[found[0]])
    return objects[found[0]]


def _kiali_settings(config_map: dict[str, Any]) -> dict[str, Any]:
    """The parsed `config.yaml` of Kiali's ConfigMap (empty when it has none)."""
    data = config_map.setdefault("data", {})
    settings = yaml.load(data.get("config.yaml") or "", Loader=YAML_LOADER) or {}
    if not isinstance(settings, dict):
        raise HardeningError("the kiali addon's ConfigMap `kiali` has a config.yaml that is not a mapping")
    return settings


def kiali_auth(objects: Sequence[Mapping[str, Any]], strategy: str) -> list[dict[str, Any]]:
    """Set Kiali's `auth.strategy` in its ConfigMap (https://kiali.io/docs/configuration/authentication/)."""
    result = [dict(o) for o in objects]
    config_map = _copy_of(result, "ConfigMap", "kiali", "kiali")
    data = config_map.setdefault("data", {})
    settings = _kiali_settings(config_map)
    auth = settings.setdefault("auth", {})
    if auth.get("strategy") == strategy:
        return result  # already as asked: keep upstream's bytes
    auth["strategy"] = strategy
    data["config.yaml"] = yaml.safe_dump(settings, sort_keys=False)
    return result


def kiali_signing_key(objects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Kiali signs with the key in the `kiali-signing-key` Secret; the ConfigMap keeps none.

    The Deployment mounts the Secret's one item as the file Kiali reads (KIALI_SIGNING_KEY_DIR). The
    volume is not optional: without the Secret the pod waits for it instead of starting keyless.
    """
    result = [dict(o) for o in objects]
    config_map = _copy_of(result, "ConfigMap", "kiali", "kiali")
    settings = _kiali_settings(config_map)
    login = settings.get("login_token")
    if isinstance(login, dict) and "signing_key" in login:
        del login["signing_key"]
        if not login:
            del settings["login_token"]
        config_map["data"]["config.yaml"] = yaml.safe_dump(settings, sort_keys=False)
    deployment = _copy_of(result, "Deployment", "kiali", "kiali")
    pod = deployment["spec"]["template"]["spec"]
    kiali = [c for c in pod.get("containers", []) if c.get("name") == "kiali"]
    if len(kiali) != 1:
        raise HardeningError(
            f"the kiali addon's Deployment `kiali` has {len(kiali)} container(s) named kiali"
        )
    volume = {
        "name": KIALI_SIGNING_KEY_VOLUME,
        "secret": {
            "secretName": KIALI_SIGNING_KEY_SECRET,
            "items": [{"key": KIALI_SIGNING_KEY_ITEM, "path": KIALI_SIGNING_KEY_FILE}],
        },
    }
    mount = {"name": KIALI_SIGNING_KEY_VOLUME, "mountPath": KIALI_SIGNING_KEY_DIR, "readOnly": True}
    pod["volumes"] = [v for v in pod.get("volumes", []) if v.get("name") != KIALI_SIGNING_KEY_VOLUME]
    pod["volumes"].append(volume)
    mounts = kiali[0].get("volumeMounts", [])
    kiali[0]["volumeMounts"] = [
        m
        for m in mounts
        if m.get("name") != KIALI_SIGNING_KEY_VOLUME and m.get("mountPath") != KIALI_SIGNING_KEY_DIR
    ] + [mount]
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
