"""Kiali's login-token signing key: the stack's own, a Pulumi secret, mounted where Kiali reads it.

Facts from kiali/kiali's config/config.go (v1.76, Istio 1.20's addon, to v2.26, Istio 1.30's): a file
/kiali-override-secrets/login-token-signing-key/value.txt overrides `login_token.signing_key`, and
every strategy but anonymous refuses a key that is not 16, 24 or 32 bytes long.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import OFFLINE_SECRET_MASK, SecretShape, parse_config
from components.generated_password import GeneratedPasswordProvider
from components.hardening import kiali_signing_key
from components.mesh import KIALI_SIGNING_KEY_BYTES
from meshplan.engine import PROJECT, SECRET, render
from tests.harness import (
    COMMAND,
    CONFIG_GROUP,
    CONFIG_MAP,
    DEPLOYMENT,
    PROD_PASSWORD,
    ROOT,
    Graph,
    build,
    fixture_objects,
    stack_config,
)

SECRET_TYPE = "kubernetes:core/v1:Secret"
GENERATED_PASSWORD = "pulumi-python:dynamic/istio-mesh:GeneratedPassword"
KEY_SECRET = "istio-system/kiali-signing-key"
KIALI = "kiali:istio-system/kiali"
# What `pulumi config set --secret kialiSigningKey` might hold: 32 bytes, and another of 24.
KEY = "k3y-of-thirty-two-bytes-exactly!"
OTHER_KEY = "another-24-byte-key-here"
UPSTREAM_ADDONS = ROOT.parent / "shared" / "upstream" / "addons"

VOLUME = {
    "name": "kiali-signing-key",
    "secret": {"secretName": "kiali-signing-key", "items": [{"key": "signing-key", "path": "value.txt"}]},
}
MOUNT = {
    "name": "kiali-signing-key",
    "mountPath": "/kiali-override-secrets/login-token-signing-key",
    "readOnly": True,
}
ALLOWED = (
    "expected a Pulumi secret of exactly 16, 24 or 32 bytes without surrounding whitespace (Kiali's "
    "login_token.signing_key, an AES key); leave it unset and the stack generates one"
)


def build_with_key(key: Any, stack: str = "prod", **overrides: Any) -> Graph:
    """`stack` with `kialiSigningKey` set as a Pulumi secret (and prod's Grafana password)."""
    secret_keys = [f"{PROJECT}:kialiSigningKey"]
    if stack == "prod":
        overrides.setdefault("grafanaAdminPassword", PROD_PASSWORD)
        secret_keys.append(f"{PROJECT}:grafanaAdminPassword")
    config = stack_config(stack, kialiSigningKey=key, **overrides)
    return Graph(render(ROOT, stack, config, secret_keys=secret_keys))


def _pod(graph: Graph) -> dict[str, Any]:
    return graph.get(DEPLOYMENT, KIALI).inputs["spec"]["template"]["spec"]


def _settings(graph: Graph) -> dict[str, Any]:
    return yaml.safe_load(graph.get(CONFIG_MAP, KIALI).inputs["data"]["config.yaml"])


# --- the Secret, the mount and the ConfigMap ------------------------------------------------------


def test_the_stacks_key_is_a_secret_of_the_stack_mounted_where_kiali_reads_it() -> None:
    graph = build_with_key(KEY)
    assert graph.error is None
    secret = graph.get(SECRET_TYPE, KEY_SECRET)
    assert secret.inputs["metadata"] == {"name": "kiali-signing-key", "namespace": "istio-system"}
    assert secret.inputs["stringData"] == SECRET  # encrypted in state, masked in every preview
    assert secret.raw_inputs["stringData"] == {"signing-key": KEY}
    pod = _pod(graph)
    assert pod["volumes"][-1] == VOLUME
    assert [v["name"] for v in pod["volumes"]].count("kiali-signing-key") == 1
    (kiali,) = pod["containers"]
    assert kiali["volumeMounts"] == [
        {"name": "kiali-configuration", "mountPath": "/kiali-configuration"},
        MOUNT,
    ]
    # Kiali's objects are constructed only once the Secret its pod mounts exists.
    assert graph.depends_on(graph.get(CONFIG_GROUP, "kiali"), secret)
    assert graph.names(GENERATED_PASSWORD) == []  # the stack's key, none generated


def test_without_a_key_the_stack_generates_one_of_32_characters() -> None:
    graph = build("prod")
    assert graph.error is None
    generated = graph.get(GENERATED_PASSWORD, "kiali-signing-key")
    assert {k: v for k, v in generated.inputs.items() if k != "__provider"} == {"bytes": 24}
    secret = graph.get(SECRET_TYPE, KEY_SECRET)
    assert secret.inputs["stringData"] == SECRET
    assert graph.depends_on(secret, generated)
    # What the provider draws for those bytes is a key Kiali accepts: 32 URL-safe characters.
    assert KIALI_SIGNING_KEY_BYTES == 24
    created = GeneratedPasswordProvider().create({"bytes": KIALI_SIGNING_KEY_BYTES})
    assert created.outs is not None
    drawn = created.outs["result"]
    assert len(drawn.encode()) == 32
    assert drawn == drawn.strip()


def test_an_anonymous_kiali_gets_its_own_key_too() -> None:
    # Dev's Kiali is anonymous: the key is unused until the stack turns token login on, but upstream's
    # shared key is never the one waiting there.
    graph = build()
    assert graph.get(GENERATED_PASSWORD, "kiali-signing-key").name == "kiali-signing-key"
    assert graph.get(SECRET_TYPE, KEY_SECRET).inputs["stringData"] == SECRET
    assert _pod(graph)["volumes"][-1] == VOLUME


def test_no_kiali_no_key() -> None:
    graph = build_with_key(KEY, addons={"enabled": ["prometheus", "grafana", "jaeger"]}, dashboards=None)
    assert graph.error is None
    assert graph.names(SECRET_TYPE) == ["istio-system/grafana-admin"]
    assert graph.names(GENERATED_PASSWORD) == []
    assert "kiali-rollout" not in graph.names(COMMAND)


@pytest.mark.parametrize("version", ["1.20.8", "1.23.6", "1.24.6", "1.29.6", "1.30.3"])
def test_upstreams_addon_keeps_no_signing_key_in_its_config_map(version: str) -> None:
    source = UPSTREAM_ADDONS / version
    if not (source / "kiali.yaml").is_file():
        pytest.skip(f"{source} is missing (the upstream Istio addons, read at run time)")
    shipped = [o for o in yaml.safe_load_all((source / "kiali.yaml").read_text()) if o]
    before = copy.deepcopy(shipped)
    (config_map,) = [o for o in shipped if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kiali"]
    settings = yaml.safe_load(config_map["data"]["config.yaml"])
    assert settings["login_token"]["signing_key"] == "CHANGEME00000000"  # what upstream ships

    changed = kiali_signing_key(shipped)
    assert shipped == before  # the caller's objects are left as they were
    assert "CHANGEME" not in json.dumps(changed)
    (new_map,) = [o for o in changed if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kiali"]
    new_settings = yaml.safe_load(new_map["data"]["config.yaml"])
    # Only the key goes (and `login_token`, which holds nothing else in these releases).
    expected = {k: v for k, v in settings.items() if k != "login_token"}
    assert settings["login_token"] == {"signing_key": "CHANGEME00000000"}
    assert new_settings == expected
    (deployment,) = [o for o in changed if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (shipped_deployment,) = [o for o in before if o["kind"] == "Deployment"]
    shipped_pod = shipped_deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [*shipped_pod["volumes"], VOLUME]
    assert pod["containers"][0]["volumeMounts"] == [*shipped_pod["containers"][0]["volumeMounts"], MOUNT]
    # Every other object is upstream's, untouched.
    assert [o for o in changed if o["kind"] not in ("ConfigMap", "Deployment")] == [
        o for o in before if o["kind"] not in ("ConfigMap", "Deployment")
    ]


def test_the_real_addon_through_the_whole_program_has_no_changeme() -> None:
    source = UPSTREAM_ADDONS / "1.30.3"
    if not (source / "kiali.yaml").is_file():
        pytest.skip(f"{source} is missing (the upstream Istio addons, read at run time)")
    graph = build_with_key(KEY, addons={"source": str(source)})
    assert graph.error is None
    settings = _settings(graph)
    assert "login_token" not in settings
    assert settings["auth"]["strategy"] == "token"
    assert "CHANGEME" not in json.dumps(graph.render.plan())
    assert MOUNT in _pod(graph)["containers"][0]["volumeMounts"]


def test_a_config_map_without_a_key_keeps_upstreams_bytes() -> None:
    # The fixtures carry no login_token: nothing to remove, so config.yaml is left as shipped.
    objects = fixture_objects("k8s-labels", "kiali")
    changed = kiali_signing_key(objects)
    assert [o for o in changed if o["kind"] == "ConfigMap"] == [
        o for o in objects if o["kind"] == "ConfigMap"
    ]


def test_a_login_token_with_other_settings_keeps_them() -> None:
    objects = fixture_objects("k8s-labels", "kiali")
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    config_map["data"]["config.yaml"] += (
        "login_token:\n  signing_key: CHANGEME00000000\n  expiration_seconds: 600\n"
    )
    changed = kiali_signing_key(objects)
    settings = yaml.safe_load(next(o for o in changed if o["kind"] == "ConfigMap")["data"]["config.yaml"])
    assert settings["login_token"] == {"expiration_seconds": 600}


def test_a_mount_already_at_the_path_is_replaced_not_doubled() -> None:
    objects = fixture_objects("k8s-labels", "kiali")
    once = kiali_signing_key(objects)
    twice = kiali_signing_key(once)
    assert twice == once


# --- restarts ------------------------------------------------------------------------------------


def test_a_new_key_rolls_kiali_and_only_kiali() -> None:
    before, after = build_with_key(KEY), build_with_key(OTHER_KEY)
    rollout = after.get(COMMAND, "kiali-rollout")
    digest = before.get(COMMAND, "kiali-rollout").raw_inputs["triggers"][0]
    assert len(digest) == 64
    assert rollout.inputs["triggers"] == SECRET  # it holds the key: encrypted in state
    assert before.get(COMMAND, "kiali-rollout").raw_inputs["triggers"] == [digest, KEY]
    assert rollout.raw_inputs["triggers"] == [digest, OTHER_KEY]
    assert after.depends_on(rollout, after.get(SECRET_TYPE, KEY_SECRET))
    assert after.depends_on(rollout, after.get(CONFIG_GROUP, "kiali"))
    # Grafana's password did not change, so its rollout stays as it was.
    assert before.get(COMMAND, "grafana-rollout").inputs == after.get(COMMAND, "grafana-rollout").inputs


# --- never in plain text -------------------------------------------------------------------------


def test_the_key_appears_nowhere_in_plain_text() -> None:
    graph = build_with_key(KEY)
    assert KEY not in json.dumps(graph.render.plan())
    assert KEY not in json.dumps(graph.outputs)
    assert "kialiSigningKey" not in graph.outputs
    config_map = json.dumps(graph.get(CONFIG_MAP, KIALI).raw_inputs)
    assert KEY not in config_map
    assert "signing_key" not in config_map


# --- the config key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("k" * 15, "[secret] (15 bytes)"),
        ("k" * 17, "[secret] (17 bytes)"),
        ("k" * 33, "[secret] (33 bytes)"),
        ("é" + "k" * 15, "[secret] (17 bytes)"),  # 16 characters, 17 bytes: Kiali counts bytes
        ("k" * 15 + "\n", "[secret] (16 bytes, with surrounding whitespace)"),
        (" " + "k" * 23, "[secret] (24 bytes, with surrounding whitespace)"),
    ],
)
def test_a_key_kiali_would_refuse_is_a_config_error_that_never_shows_it(key: str, shown: str) -> None:
    graph = build_with_key(key)
    assert graph.error == (
        f"invalid stack configuration (1 problem(s)):\n  - kialiSigningKey: got {shown}; {ALLOWED}"
    )


@pytest.mark.parametrize("key", ["k" * 16, "k" * 24, "k" * 32, "é" * 8 + "k" * 8, "é" * 16])
def test_each_length_kiali_accepts_is_accepted(key: str) -> None:
    graph = build_with_key(key)
    assert graph.error is None
    assert graph.get(SECRET_TYPE, KEY_SECRET).raw_inputs["stringData"] == {"signing-key": key}


def test_a_structured_value_is_refused_as_not_a_string() -> None:
    graph = build_with_key({"key": "k" * 16})
    assert graph.error == (
        "invalid stack configuration (1 problem(s)):\n"
        f"  - kialiSigningKey: got [secret] (a mapping); not a string; {ALLOWED}"
    )


def test_the_key_is_reported_with_every_other_problem_at_once() -> None:
    graph = build_with_key("short", environment="Prod")
    assert graph.error == (
        "invalid stack configuration (2 problem(s)):\n"
        "  - environment: got 'Prod'; expected a lowercase DNS label such as development, staging or production\n"
        f"  - kialiSigningKey: got [secret] (5 bytes); {ALLOWED}"
    )


def test_an_empty_key_is_unset_and_one_is_generated() -> None:
    graph = build_with_key("")
    assert graph.error is None
    assert graph.names(GENERATED_PASSWORD) == ["kiali-signing-key"]


def test_parse_config_never_sees_the_key_only_its_shape() -> None:
    raw = {"cluster": {"context": "c"}, "istio": {"version": "1.30.3"}}
    assert parse_config({**raw, "kialiSigningKey": SecretShape.of("k" * 24)}, base_dir=ROOT).kiali_signing_key
    assert not parse_config(raw, base_dir=ROOT).kiali_signing_key
    assert SecretShape.of("k" * 24) == SecretShape("string", 24, False)
    assert SecretShape.of('["a"]') == SecretShape("list")
    assert repr(SecretShape.of("k" * 24)) == "[secret] (24 bytes)"


def test_meshplans_offline_mask_is_not_measured(tmp_path: Path) -> None:
    # meshplan cannot decrypt a stack file's `secure:` values and passes its mask instead.
    assert OFFLINE_SECRET_MASK == SECRET
    assert SecretShape.of(SECRET) == SecretShape("unknown")
    data = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    data["config"]["istio-mesh:kialiSigningKey"] = {"secure": "v1:bm9uY2Vub25jZQ==:a2lhbGlrZXk="}
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(data))
    graph = build("prod", stack_file=stack_file)
    assert graph.error is None
    assert graph.get(SECRET_TYPE, KEY_SECRET).inputs["stringData"] == SECRET
    assert graph.names(GENERATED_PASSWORD) == []
