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
"""

from __future__ import annotations

from typing import Any

from components.config import ISTIO_NAMESPACE

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
