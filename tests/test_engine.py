"""The mock engine's own costs: importing it (as `meshplan diff`'s parent does) loads no SDK module,
and a render leaves the garbage collector as it found it."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from meshplan import engine
from tests.harness import FIXTURE_ADDONS, GATEWAY_API_CONFIG, build

ROOT = Path(__file__).resolve().parents[1]
SDK_PACKAGES = ("pulumi", "pulumi_kubernetes", "dill", "google.protobuf", "grpc")


def _sdk_modules(code: str) -> list[str]:
    """The SDK modules loaded by a fresh interpreter after running `code`."""
    script = code + textwrap.dedent(
        f"""
        import json, sys
        prefixes = {SDK_PACKAGES!r}
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in prefixes
                                or m.startswith(tuple(p + "." for p in prefixes)))))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_meshplan_loads_no_sdk_module() -> None:
    assert _sdk_modules("import meshplan.cli, meshplan.engine, meshplan.stacks, meshplan.diff\n") == []


def test_diff_of_two_stacks_renders_both_in_children_without_the_sdk() -> None:
    code = textwrap.dedent(
        f"""
        import contextlib, io
        from meshplan import cli
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = cli.main(["diff", "--json", "--project-dir", {str(ROOT)!r}, "--stack", "dev",
                             "--shared-config", "addons.source={FIXTURE_ADDONS / "k8s-labels"}",
                             "--shared-config", "grafanaAdminPassword=x", "--against", "prod",
                             "--shared-config", "{GATEWAY_API_CONFIG}"])
        assert code == 0, code
        assert json.loads(out.getvalue())["update"]
        """
    )
    assert _sdk_modules("import json\n" + code) == []


# --- the garbage collector -------------------------------------------------------------------------


def test_render_leaves_the_collector_as_it_found_it() -> None:
    assert gc.get_freeze_count() == 0
    build("dev")
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_render_keeps_a_callers_frozen_objects_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not the freeze count itself: frozen objects the render releases (a first render drops some
    # lazily built caches) leave the permanent generation without anyone unfreezing it.
    calls: list[str] = []
    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0
        monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
        monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
        build("dev")
        assert calls == []
        assert gc.get_freeze_count() > 0
    finally:
        monkeypatch.undo()
        gc.unfreeze()


def test_raw_inputs_reveal_what_inputs_mask() -> None:
    secret = next(r for r in build("prod").resources if r.type == "kubernetes:core/v1:Secret")
    assert engine.SECRET in json.dumps(secret.inputs)
    assert engine.SECRET not in json.dumps(secret.raw_inputs)
    assert secret.raw_inputs is secret.raw_inputs  # worked out once


def test_each_render_has_its_own_stack_and_exports() -> None:
    prod = build("prod", istio={"revisions": {"a": {"version": "1.29.6"}}})
    assert "revisions" in prod.outputs
    dev = build("dev")
    assert "revisions" not in dev.outputs
    top_level = [r.parent for r in dev.resources if r.type == "istio-mesh:index:Mesh"]
    assert top_level == ["urn:pulumi:dev::istio-mesh::pulumi:pulumi:Stack::istio-mesh-dev"]


# --- custom resources: created with their inputs as outputs ---------------------------------------

ECHO_PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s

cluster = pulumi.ResourceOptions(provider=k8s.Provider("cluster", context="kind-test"))
istiod = k8s.helm.v3.Release("istiod", chart="istiod", version="1.20.8", namespace="istio-system",
                             values={"pilot": {"traceSampling": 100}}, opts=cluster)
login = k8s.core.v1.Secret("login", metadata={"name": "login"},
                           string_data={"password": pulumi.Output.secret("s3cr3t")}, opts=cluster)
pulumi.export("id", istiod.id)
pulumi.export("values", istiod.values)
pulumi.export("status", istiod.status.apply(lambda s: [s.name, s.namespace, s.version, s.status]))
pulumi.export("password", login.string_data)
pulumi.export("secretName", login.metadata.apply(lambda m: m.name))
"""


def test_custom_resources_echo_their_inputs_and_a_release_reports_its_status(tmp_path: Path) -> None:
    (tmp_path / "__main__.py").write_text(ECHO_PROGRAM)
    result = engine.render(tmp_path, "test", {})
    assert result.error is None
    assert result.outputs == {
        "id": "istiod-id",
        "values": {"pilot": {"traceSampling": 100}},
        "status": ["istiod", "istio-system", "1.20.8", "deployed"],
        "password": engine.SECRET,  # a secret input comes back a secret output
        "secretName": "login",
    }


INVOKE_PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s

cluster = pulumi.ResourceOptions(provider=k8s.Provider("cluster", context="kind-test"))
pulumi.export("invoked", pulumi.runtime.invoke("test:index:lookup", {"name": "a"}).value)
pulumi.export("invokedOutput", pulumi.runtime.invoke_output("test:index:lookup", {"name": "b"}))
existing = k8s.core.v1.Namespace.get("existing", "default", opts=cluster)
pulumi.export("read", existing.metadata.apply(lambda m: m and m.name))
"""


def test_invokes_and_reads_are_answered_on_the_loops_own_thread(tmp_path: Path) -> None:
    # Monitor calls run inline on the event loop's thread; MockMonitor answers an invoke (and a
    # read) by running the loop re-entrantly, which must neither deadlock nor fail.
    (tmp_path / "__main__.py").write_text(INVOKE_PROGRAM)
    result = engine.render(tmp_path, "test", {})
    assert result.error is None
    # The mocks answer every invoke with an empty result; a read returns no state, so a preview
    # does not know its properties yet.
    assert result.outputs == {"invoked": {}, "invokedOutput": {}, "read": engine.UNKNOWN}
    assert [r.name for r in result.registrations] == ["cluster"]  # a read registers nothing


# --- objects a yaml/v2 ConfigGroup's provider constructs -------------------------------------------

CONFIG_GROUP_PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s

cluster = k8s.Provider("cluster", context="kind-test")
objs = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
     "data": {"token": pulumi.Output.secret("s3cr3t")}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "login", "namespace": "shop"},
     "type": "Opaque", "data": {"password": "cGxhaW4="}, "stringData": {"password": "plain"}},
    {"apiVersion": "v1", "kind": "ConfigMap",
     "metadata": {"name": "after-login", "namespace": "shop", "annotations": {
         "config.kubernetes.io/depends-on":
             "/namespaces/shop/Secret/login,apiextensions.k8s.io/CustomResourceDefinition/gadgets.example.com"}}},
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": "gadgets.example.com"},
     "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Gadget", "plural": "gadgets"}}},
    {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}},
    {"apiVersion": "other.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
]
k8s.yaml.v2.ConfigGroup("app", objs=objs, opts=pulumi.ResourceOptions(provider=cluster, protect=True))
k8s.yaml.v2.ConfigGroup("other", objs=objs[:1], resource_prefix="blue",
                        opts=pulumi.ResourceOptions(provider=cluster))
"""


def _config_group_render(tmp_path: Path) -> engine.Render:
    (tmp_path / "__main__.py").write_text(CONFIG_GROUP_PROGRAM)
    result = engine.render(tmp_path, "test", {})
    assert result.error is None
    return result


def test_config_group_objects_are_resources_named_as_the_provider_names_them(tmp_path: Path) -> None:
    # pulumi-kubernetes provider/pkg/provider/yaml/v2/yaml.go, register(): `<prefix>:<namespace>/<name>`
    # or `<prefix>:<name>`, the prefix defaulting to the group's name.
    result = _config_group_render(tmp_path)
    by_name = {r.name: r for r in result.registrations}
    group, provider = by_name["app"], by_name["cluster"]
    assert (group.remote, group.custom) == (True, False)
    prefix = "urn:pulumi:test::istio-mesh::kubernetes:yaml/v2:ConfigGroup$"
    assert [(r.urn, r.type) for r in result.registrations if r.parent == group.urn] == [
        (prefix + "kubernetes:core/v1:Namespace::app:shop", "kubernetes:core/v1:Namespace"),
        (prefix + "kubernetes:core/v1:ConfigMap::app:shop/settings", "kubernetes:core/v1:ConfigMap"),
        (prefix + "kubernetes:apps/v1:Deployment::app:default/web", "kubernetes:apps/v1:Deployment"),
        (prefix + "kubernetes:core/v1:Secret::app:shop/login", "kubernetes:core/v1:Secret"),
        (prefix + "kubernetes:core/v1:ConfigMap::app:shop/after-login", "kubernetes:core/v1:ConfigMap"),
        (
            prefix + "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition::app:gadgets.example.com",
            "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition",
        ),
        (prefix + "kubernetes:example.com/v1:Gadget::app:default/g", "kubernetes:example.com/v1:Gadget"),
        (prefix + "kubernetes:other.example.com/v1:Widget::app:w", "kubernetes:other.example.com/v1:Widget"),
    ]
    for child in (by_name["app:shop"], by_name["app:shop/settings"], by_name["app:default/web"]):
        assert child.custom and not child.remote
        assert child.provider == provider.urn  # the group's provider constructs them
        assert child.protect  # inherited from the group
    # A namespaced kind without a namespace gets the provider's default one, in its inputs too.
    assert by_name["app:default/web"].inputs == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2},
    }
    # A custom kind whose CRD is not in the group: nothing offline knows its scope, so it stays as written.
    assert by_name["app:w"].inputs["metadata"] == {"name": "w"}
    # The provider orders objects as cli-utils does: their Namespace, the CRD of their kind and
    # `config.kubernetes.io/depends-on`, each only when it is in the same group.
    assert {
        name: [d.split("::")[-1] for d in r.dependencies]
        for name, r in by_name.items()
        if r.parent in (group.urn, by_name["other"].urn)
    } == {
        "app:shop": [],
        "app:shop/settings": ["app:shop"],
        "app:default/web": [],
        "app:shop/login": ["app:shop"],
        "app:shop/after-login": ["app:shop", "app:shop/login", "app:gadgets.example.com"],
        "app:gadgets.example.com": [],
        "app:default/g": ["app:gadgets.example.com"],
        "app:w": [],
        "blue:shop": [],
    }
    other = by_name["other"]
    assert [r.name for r in result.registrations if r.parent == other.urn] == ["blue:shop"]
    assert not by_name["blue:shop"].protect


def test_a_config_group_object_in_the_providers_namespace(tmp_path: Path) -> None:
    program = CONFIG_GROUP_PROGRAM.replace('context="kind-test"', 'context="kind-test", namespace="apps"')
    (tmp_path / "__main__.py").write_text(program)
    result = engine.render(tmp_path, "test", {})
    assert result.error is None
    names = [r.name for r in result.registrations]
    assert "app:apps/web" in names and "app:apps/g" in names and "app:w" in names


def test_a_secret_inside_a_config_group_stays_secret_in_its_object(tmp_path: Path) -> None:
    by_name = {r.name: r for r in _config_group_render(tmp_path).registrations}
    settings = by_name["app:shop/settings"]
    assert settings.inputs["data"] == {"token": engine.SECRET}
    assert settings.raw_inputs["data"] == {"token": "s3cr3t"}
    # The provider marks a v1 Secret's data and stringData secret, whatever the program said.
    login = by_name["app:shop/login"]
    assert (login.inputs["data"], login.inputs["stringData"]) == (engine.SECRET, engine.SECRET)
    assert login.raw_inputs["stringData"] == {"password": "plain"}
    assert login.inputs["type"] == "Opaque"


def test_show_loads_only_the_modules_it_uses() -> None:
    # diff, graph and git checkouts are imported by the verbs that use them.
    code = textwrap.dedent(
        f"""
        import contextlib, io, sys
        from meshplan import cli
        with contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(["show", "--project-dir", {str(ROOT)!r}, "--stack", "dev",
                             "--config", "addons.source={FIXTURE_ADDONS / "app-labels"}"])
        assert code == 0, code
        print(sorted(m for m in sys.modules if m.startswith("meshplan")))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    loaded = done.stdout.splitlines()[-1]
    assert loaded == str(
        [
            "meshplan",
            "meshplan.charts",
            "meshplan.cli",
            "meshplan.engine",
            "meshplan.provider_check",
            "meshplan.show",
            "meshplan.stacks",
        ]
    )


def test_a_registration_records_the_urns_its_aliases_name() -> None:
    # mesh-mtls moved from ControlPlane to Mesh (components/mesh.py) with its old parent as alias;
    # the plan carries the old URN, which is how `meshplan diff` matches it as the engine does.
    from tests.harness import build

    graph = build("prod")
    (policy,) = [r for r in graph.resources if r.name == "mesh-mtls"]
    peer = "kubernetes:security.istio.io/v1:PeerAuthentication"
    assert policy.aliases == (
        f"urn:pulumi:prod::istio-mesh::istio-mesh:index:Mesh$istio-mesh:index:ControlPlane${peer}::mesh-mtls",
    )
    assert policy.to_plan()["aliases"] == list(policy.aliases)
    assert "aliases" not in graph.get("kubernetes:core/v1:Namespace", "istio-system").to_plan()
