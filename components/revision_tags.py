"""Revision tags as webhooks we own, so moving a tag is an in-place update of one object.

`istioctl tag set` and the istiod chart's `revisionTags` both express a tag as a
MutatingWebhookConfiguration `istio-revision-tag-<tag>` that sends pod admission for namespaces (or
pods) labelled `istio.io/rev=<tag>` to the tagged revision's istiod. Declared by the istiod chart,
moving a tag would move that object from one Helm release to another: Helm refuses an object owned
by another release, and between the two upgrades no webhook would exist, so pods would start without
sidecars. Declared here, the move changes the service it points at and nothing else.
istiod patches `caBundle` into every webhook labelled with its revision
(https://istio.io/latest/docs/setup/upgrade/canary/#stable-revision-labels); all revisions share the
mesh's root CA, so the bundle stays valid while a tag moves.

istiod patches it only some time after the webhook exists, and until then the API server cannot
trust istiod's certificate: a pod admitted in between is refused with an x509 error
(`failurePolicy: Fail`). So, as `istioctl tag set` does (istio/istio `istioctl/pkg/tag/generate.go`,
`tagWebhookConfigFromCanonicalWebhook`: the bundle of the revision's own injector webhook goes into
the tag's), `copy_ca_bundle_command` waits until the revision's injector has a bundle and copies it
into the tag's webhook, and what admits pods through the tag waits for that copy. Our resource never
declares `caBundle`: with server-side apply it would then own the field, and istiod's later patches
would be perpetual diffs. The copy is a plain `kubectl patch` with its own field manager, which owns
nothing the provider applies.

`istioctl tag set default` also switches off the injector of an unrevisioned istiod
(`DeactivateIstioInjectionWebhook` in `istioctl/pkg/tag/util.go`); see
`deactivate_legacy_injector_command`.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from components.cluster import kubectl
from components.config import ISTIO_NAMESPACE, ClusterConfig

DEFAULT_TAG = "default"
INJECTION_PATH = "/inject"


def webhook_name(tag: str) -> str:
    return f"istio-revision-tag-{tag}"


def _injector(prefix: str, revision: str, namespace_selector: Any, object_selector: Any) -> dict[str, Any]:
    return {
        "name": f"{prefix}sidecar-injector.istio.io",
        "clientConfig": {
            "service": {
                "name": f"istiod-{revision}",
                "namespace": ISTIO_NAMESPACE,
                "path": INJECTION_PATH,
                "port": 443,
            }
        },
        "sideEffects": "None",
        "rules": [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
        ],
        # No sidecar is worse than no pod: a pod the webhook cannot reach is refused, not started bare.
        "failurePolicy": "Fail",
        "admissionReviewVersions": ["v1"],
        "namespaceSelector": namespace_selector,
        "objectSelector": object_selector,
    }


def _expressions(*items: tuple[str, str, list[str] | None]) -> dict[str, Any]:
    return {
        "matchExpressions": [
            {"key": key, "operator": op, **({"values": values} if values is not None else {})}
            for key, op, values in items
        ]
    }


def tag_webhook(tag: str, revision: str) -> dict[str, Any]:
    """The MutatingWebhookConfiguration that makes `tag` inject with `revision`'s istiod.

    The `default` tag also serves `istio-injection=enabled` namespaces and pods labelled
    `sidecar.istio.io/inject=true` without a revision, as the default revision does.
    """
    not_opted_out = ("sidecar.istio.io/inject", "NotIn", ["false"])
    webhooks = [
        _injector(
            "rev.namespace.",
            revision,
            _expressions(("istio.io/rev", "In", [tag]), ("istio-injection", "DoesNotExist", None)),
            _expressions(not_opted_out),
        ),
        _injector(
            "rev.object.",
            revision,
            _expressions(("istio.io/rev", "DoesNotExist", None), ("istio-injection", "DoesNotExist", None)),
            _expressions(not_opted_out, ("istio.io/rev", "In", [tag])),
        ),
    ]
    if tag == DEFAULT_TAG:
        webhooks += [
            _injector(
                "namespace.",
                revision,
                _expressions(("istio-injection", "In", ["enabled"])),
                _expressions(not_opted_out),
            ),
            _injector(
                "object.",
                revision,
                _expressions(
                    ("istio-injection", "DoesNotExist", None), ("istio.io/rev", "DoesNotExist", None)
                ),
                _expressions(
                    ("sidecar.istio.io/inject", "In", ["true"]), ("istio.io/rev", "DoesNotExist", None)
                ),
            ),
        ]
    return {
        "metadata": {
            "name": webhook_name(tag),
            "labels": {"istio.io/tag": tag, "istio.io/rev": revision, "app": "sidecar-injector"},
        },
        "webhooks": webhooks,
    }


# --- the caBundle ---------------------------------------------------------------------------------

# Field managers of the `kubectl patch` steps: each owns only what it patches, never a field that
# the provider applies (server-side apply) or that Helm renders.
CA_BUNDLE_FIELD_MANAGER = "istio-mesh-ca-bundle"
LEGACY_INJECTOR_FIELD_MANAGER = "istio-mesh-legacy-injector"
# How long to wait for istiod to patch its own injector's bundle (it does so once it has started,
# which its Helm release already waited for: seconds, normally).
CA_BUNDLE_WAIT_SECONDS = 300
# Each item xargs reads is one line (GNU xargs: no quote processing with --delimiter), and the
# go-templates end each item with a newline.
XARGS_LINES = "--delimiter=\\n"
_NEWLINE = '{{"\\n"}}'


def injector_webhook_name(revision: str) -> str:
    """The injector webhook that the istiod chart renders for `revision` in istio-system.

    istio/istio `manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml`:
    `istio-sidecar-injector-<revision>`, labelled `istio.io/rev=<revision>`; istiod patches the
    bundle into its webhooks (istio/istio `pkg/webhooks/webhookpatch.go`).
    """
    return f"istio-sidecar-injector-{revision}"


def _template_json(value: Any, **placeholders: str) -> str:
    """Compact JSON for a go-template, each `"@key@"` string replaced by the template action given."""
    text = json.dumps(value, separators=(",", ":"))
    for key, action in placeholders.items():
        text = text.replace(json.dumps(f"@{key}@"), f'"{action}"')
    return text


def ca_bundle_patch_template(tag: str, revision: str) -> str:
    """A go-template over the revision's injector webhook: `--patch=` and the tag's caBundle patch.

    A strategic merge patch: the webhooks of a MutatingWebhookConfiguration merge by `name`, so it
    sets the bundle of each of the tag's webhooks and nothing else. The bundle is the injector's
    first webhook's, as `istioctl tag set` takes it (every webhook of that configuration ends in
    `sidecar-injector.istio.io`, and istiod patches them all alike).
    """
    bundle = "{{(index .webhooks 0).clientConfig.caBundle}}"
    patch = {
        "webhooks": [
            {"name": webhook["name"], "clientConfig": {"caBundle": "@bundle@"}}
            for webhook in tag_webhook(tag, revision)["webhooks"]
        ]
    }
    return "--patch=" + _template_json(patch, bundle=bundle)


def copy_ca_bundle_command(cluster: ClusterConfig, tag: str, revision: str) -> str:
    """Wait (bounded) until `revision`'s injector has a caBundle, then copy it into `tag`'s webhook.

    `kubectl wait --for=jsonpath=...` without a value waits until the field exists (kubectl 1.31+);
    the API server leaves out an empty bundle, so that is "istiod has patched it". The copy goes
    through xargs because its patch is the output of the `get`.
    """
    injector = f"mutatingwebhookconfiguration/{injector_webhook_name(revision)}"
    wait = kubectl(
        cluster,
        "wait",
        "--for=jsonpath={.webhooks[0].clientConfig.caBundle}",
        f"--timeout={CA_BUNDLE_WAIT_SECONDS}s",
        injector,
    )
    get = kubectl(cluster, "get", injector, "--output=go-template=" + ca_bundle_patch_template(tag, revision))
    patch = kubectl(
        cluster,
        "patch",
        "mutatingwebhookconfiguration",
        webhook_name(tag),
        "--type=strategic",
        f"--field-manager={CA_BUNDLE_FIELD_MANAGER}",
    )
    return f"set -eo pipefail; {wait}; {get} | xargs {shlex.quote(XARGS_LINES)} {patch}"


# --- the injector of an unrevisioned istiod ---------------------------------------------------------

# The injector webhooks of an unrevisioned istiod, as istioctl finds them (`GetWebhooksWithRevision`
# with the `default` revision, istio/istio `istioctl/pkg/tag/util.go`); our tags carry
# `istio.io/tag`, so they never match.
LEGACY_INJECTOR_SELECTOR = "istio.io/rev=default,!istio.io/tag"
# istioctl's `util.NeverMatch` (istio/istio `istioctl/pkg/util/common.go`): no namespace or pod
# carries this label.
DEACTIVATED_LABEL = "istio.io/deactivated"
NEVER_MATCH = "never-match"


def legacy_injector_patch_template(*, active: bool) -> str:
    """A go-template over the legacy injector configurations: per configuration, its name, then `--patch=`.

    Deactivating adds `istio.io/deactivated=never-match` to both selectors of every webhook. Where
    istioctl replaces the selectors with that one label, adding it (selectors are ANDed) has the same
    effect and keeps the chart's own requirements, so reactivating (`active=True`) removes just that
    label (null in a strategic merge patch) and the webhook is exactly what Helm installed.
    """
    value = None if active else NEVER_MATCH
    selector = {"matchLabels": {DEACTIVATED_LABEL: value}}
    entry = _template_json(
        {"name": "@name@", "namespaceSelector": selector, "objectSelector": selector}, name="{{$w.name}}"
    )
    webhooks = "{{range $i, $w := .webhooks}}{{if $i}},{{end}}" + entry + "{{end}}"
    item = "{{.metadata.name}}" + _NEWLINE + '--patch={"webhooks":[' + webhooks + "]}" + _NEWLINE
    return "{{range .items}}" + item + "{{end}}"


def legacy_injector_command(cluster: ClusterConfig, *, active: bool) -> str:
    """Deactivate (or reactivate) the injector webhooks of an unrevisioned istiod, if there are any."""
    get = kubectl(
        cluster,
        "get",
        "mutatingwebhookconfiguration",
        f"--selector={LEGACY_INJECTOR_SELECTOR}",
        "--output=go-template=" + legacy_injector_patch_template(active=active),
    )
    patch = kubectl(
        cluster,
        "patch",
        "mutatingwebhookconfiguration",
        "--type=strategic",
        f"--field-manager={LEGACY_INJECTOR_FIELD_MANAGER}",
    )
    lines = shlex.quote(XARGS_LINES)
    return f"set -eo pipefail; {get} | xargs --no-run-if-empty {lines} --max-args=2 {patch}"
