"""Production hardening: mesh-wide mTLS, no anonymous dashboards by default, Grafana's secret."""

from __future__ import annotations

import copy
import json

import yaml

from components.hardening import grafana_login, kiali_auth
from tests.harness import (
    COMMAND,
    CONFIG_GROUP,
    CONFIG_MAP,
    DEPLOYMENT,
    PROD_PASSWORD,
    build,
    fixture_objects,
)

PEER_AUTHENTICATION = "kubernetes:security.istio.io/v1:PeerAuthentication"
SECRET_TYPE = "kubernetes:core/v1:Secret"
# Addon objects, as the kubernetes provider names them in their addon's ConfigGroup.
KIALI_CONFIG = "kiali:istio-system/kiali"
GRAFANA_DEPLOYMENT = "grafana:istio-system/grafana"


def _kiali_strategy(graph_config_map: dict) -> str:
    return yaml.safe_load(graph_config_map["data"]["config.yaml"])["auth"]["strategy"]


def test_prod_declares_strict_mtls_after_istiod() -> None:
    graph = build("prod")
    peer = graph.get(PEER_AUTHENTICATION, "mesh-mtls")
    assert peer.inputs["metadata"] == {"name": "default", "namespace": "istio-system"}
    assert peer.inputs["spec"] == {"mtls": {"mode": "STRICT"}}
    assert graph.depends_on(peer, graph.release("istiod"))
    assert graph.depends_on(peer, graph.release("istio-base"))


def test_charts_before_1_22_get_the_v1beta1_peer_authentication() -> None:
    graph = build(security={"mtls": "PERMISSIVE"})
    (peer,) = [r for r in graph.resources if r.name == "mesh-mtls"]
    assert peer.type == "kubernetes:security.istio.io/v1beta1:PeerAuthentication"
    assert peer.inputs["spec"] == {"mtls": {"mode": "PERMISSIVE"}}


def test_no_mtls_resource_unless_asked() -> None:
    assert [r for r in build().resources if r.name == "mesh-mtls"] == []


def test_kiali_uses_token_login_unless_the_stack_says_anonymous() -> None:
    assert _kiali_strategy(dict(build("prod").get(CONFIG_MAP, KIALI_CONFIG).inputs)) == "token"
    assert (
        _kiali_strategy(
            dict(build(dashboards={"kiali": {"auth": None}}).get(CONFIG_MAP, KIALI_CONFIG).inputs)
        )
        == "token"
    )


def test_an_explicit_anonymous_kiali_keeps_the_addons_config_as_shipped() -> None:
    shipped = next(o for o in fixture_objects("app-labels", "kiali") if o["kind"] == "ConfigMap")
    declared = build().get(CONFIG_MAP, KIALI_CONFIG).inputs
    assert declared["data"]["config.yaml"] == shipped["data"]["config.yaml"]


def test_grafana_login_comes_from_the_secret_and_anonymous_admin_is_off() -> None:
    graph = build("prod")
    env = graph.get(DEPLOYMENT, GRAFANA_DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    by_name = {e["name"]: e for e in env}
    assert by_name["GF_AUTH_ANONYMOUS_ENABLED"] == {"name": "GF_AUTH_ANONYMOUS_ENABLED", "value": "false"}
    assert by_name["GF_SECURITY_ADMIN_PASSWORD"] == {
        "name": "GF_SECURITY_ADMIN_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "grafana-admin", "key": "admin-password"}},
    }
    assert len(env) == len(by_name)  # each variable set once
    secret = graph.get(SECRET_TYPE, "istio-system/grafana-admin")
    # Grafana's objects are constructed only once the Secret they read exists.
    grafana = graph.get(CONFIG_GROUP, "grafana")
    assert graph.depends_on(grafana, secret)
    assert graph.get(DEPLOYMENT, GRAFANA_DEPLOYMENT).parent == grafana.urn
    # The engine receives the password as a Pulumi secret, so the state stores it encrypted.
    assert secret.inputs["stringData"] == "[secret]"
    assert secret.raw_inputs["stringData"] == {"admin-password": PROD_PASSWORD}


def test_the_password_appears_nowhere_in_plain_text() -> None:
    graph = build("prod")
    plan = json.dumps(graph.render.plan())
    assert PROD_PASSWORD not in plan
    assert PROD_PASSWORD not in json.dumps(graph.outputs)


GENERATED_PASSWORD = "pulumi-python:dynamic/istio-mesh:GeneratedPassword"


def test_a_stack_without_a_password_generates_one_kept_secret() -> None:
    graph = build("prod", grafanaAdminPassword=None)
    assert graph.error is None
    # Grafana's password, and Kiali's signing key (tests/test_kiali_login.py).
    assert graph.names(GENERATED_PASSWORD) == ["grafana-admin-password", "kiali-signing-key"]
    generated = graph.get(GENERATED_PASSWORD, "grafana-admin-password")
    # 24 random bytes, drawn once at create; `result` is encrypted in state and masked in previews.
    assert {k: v for k, v in generated.inputs.items() if k != "__provider"} == {"bytes": 24}
    secret = graph.get(SECRET_TYPE, "istio-system/grafana-admin")
    assert secret.inputs["stringData"] == "[secret]"
    assert graph.depends_on(secret, generated)
    assert graph.outputs["grafanaAdminPassword"] == "[secret]"


def test_a_set_password_generates_no_password() -> None:
    graph = build("prod")
    assert graph.names(GENERATED_PASSWORD) == ["kiali-signing-key"]  # no grafana-admin-password
    assert graph.outputs["grafanaAdminPassword"] == "[secret]"


def test_dev_keeps_the_hand_made_anonymous_grafana() -> None:
    graph = build()
    env = graph.get(DEPLOYMENT, GRAFANA_DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "GF_AUTH_ANONYMOUS_ENABLED", "value": "true"} in env
    assert graph.names(SECRET_TYPE) == ["istio-system/kiali-signing-key"]  # no grafana-admin


def test_an_anonymous_grafana_gets_no_password_secret_even_if_one_is_set() -> None:
    graph = build(grafanaAdminPassword=PROD_PASSWORD)  # dev says dashboards.grafana.auth: anonymous
    assert graph.names(SECRET_TYPE) == ["istio-system/kiali-signing-key"]  # no grafana-admin


def test_login_changes_copy_only_the_object_they_change() -> None:
    for change, addon, kind in (
        (lambda objs: kiali_auth(objs, "token"), "kiali", "ConfigMap"),
        (grafana_login, "grafana", "Deployment"),
    ):
        objects = fixture_objects("app-labels", addon)
        shipped = copy.deepcopy(objects)
        changed = change(objects)
        assert objects == shipped  # the caller's objects are left as they were
        assert [o["kind"] for o in changed] == [o["kind"] for o in shipped]
        assert [o for o in changed if o["kind"] != kind] == [o for o in shipped if o["kind"] != kind]
        assert [o for o in changed if o["kind"] == kind] != [o for o in shipped if o["kind"] == kind]


def _rollout_script(deployment: str) -> str:
    target = "kubectl --context prod-cluster --namespace istio-system"
    return (
        f"set -eo pipefail; {target} rollout restart deployment/{deployment};"
        f" {target} rollout status --timeout=300s deployment/{deployment}"
    )


def test_a_new_grafana_password_rolls_grafana_and_only_that() -> None:
    before, after = build("prod"), build("prod", grafanaAdminPassword="another-password")
    rollout = after.get(COMMAND, "grafana-rollout")
    # Only an update runs: a new Grafana starts with the password it reads.
    assert {k: v for k, v in rollout.inputs.items() if k != "__provider"} == {
        "update": _rollout_script("grafana"),
        "triggers": "[secret]",  # the password itself: the list is encrypted in state like the Secret
        "timeout": 360,
    }
    assert rollout.raw_inputs["triggers"] == ["another-password"]
    assert before.get(COMMAND, "grafana-rollout").raw_inputs["triggers"] == [PROD_PASSWORD]
    assert after.depends_on(rollout, after.get(CONFIG_GROUP, "grafana"))
    assert after.depends_on(rollout, after.get(SECRET_TYPE, "istio-system/grafana-admin"))
    # Kiali's config did not change, so its rollout's trigger stays as it was.
    assert before.get(COMMAND, "kiali-rollout").inputs == after.get(COMMAND, "kiali-rollout").inputs


def test_a_kiali_login_change_rolls_kiali() -> None:
    token, anonymous = build("prod"), build("prod", dashboards={"kiali": {"auth": "anonymous"}})
    rollout = token.get(COMMAND, "kiali-rollout")
    assert rollout.inputs["update"] == _rollout_script("kiali")
    assert "create" not in rollout.inputs
    assert rollout.inputs["triggers"] == "[secret]"  # it holds the signing key (tests/test_kiali_login.py)
    digest, key = rollout.raw_inputs["triggers"]
    assert len(digest) == 64
    assert key == "[unknown]"  # prod's key is generated at its first `up`
    assert anonymous.get(COMMAND, "kiali-rollout").raw_inputs["triggers"][0] != digest
    assert token.depends_on(rollout, token.get(CONFIG_GROUP, "kiali"))


def test_an_anonymous_grafana_has_no_rollout() -> None:
    assert "grafana-rollout" not in build().names(COMMAND)
