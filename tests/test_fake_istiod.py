"""hack/fake_istiod.py writes the bundle where istiod would, and only there (istio/istio `pkg/webhooks/webhookpatch.go`)."""

from __future__ import annotations

from typing import Any

from components.revision_tags import tag_webhook
from hack.fake_istiod import FAKE_CA_BUNDLE, istiod_deployment, patches


def _configuration(
    name: str, revision: str | None, webhooks: list[str], bundle: str | None = None
) -> dict[str, Any]:
    labels = {"istio.io/rev": revision} if revision else {}
    return {
        "metadata": {"name": name, "labels": labels},
        "webhooks": [
            {
                "name": w,
                "clientConfig": {"service": {"name": "x"}, **({"caBundle": bundle} if bundle else {})},
            }
            for w in webhooks
        ],
    }


def test_the_unrevisioned_istiod_is_revision_default() -> None:
    assert (istiod_deployment("default"), istiod_deployment("1-30-3")) == ("istiod", "istiod-1-30-3")


def test_only_injector_webhooks_of_a_running_revision_get_the_bundle() -> None:
    tag = {**tag_webhook("prod", "1-30-3")}
    configurations = [
        tag,
        _configuration(
            "istio-sidecar-injector-1-29-6", "1-29-6", ["rev.namespace.sidecar-injector.istio.io"]
        ),
        _configuration(
            "istio-sidecar-injector", "default", ["namespace.sidecar-injector.istio.io", "other.example.com"]
        ),
        _configuration("unlabelled", None, ["namespace.sidecar-injector.istio.io"]),
    ]
    result = patches(configurations, {"istiod-1-30-3", "istiod"})
    assert result == {
        "istio-revision-tag-prod": [
            {"op": "test", "path": "/webhooks/0/name", "value": "rev.namespace.sidecar-injector.istio.io"},
            {"op": "test", "path": "/webhooks/1/name", "value": "rev.object.sidecar-injector.istio.io"},
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": FAKE_CA_BUNDLE},
            {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": FAKE_CA_BUNDLE},
        ],
        # Only the webhook whose name istiod patches; the other one is not istiod's.
        "istio-sidecar-injector": [
            {"op": "test", "path": "/webhooks/0/name", "value": "namespace.sidecar-injector.istio.io"},
            {"op": "test", "path": "/webhooks/1/name", "value": "other.example.com"},
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": FAKE_CA_BUNDLE},
        ],
    }


def test_a_bundle_already_there_is_not_written_again() -> None:
    done = _configuration(
        "istio-sidecar-injector-1-30-3", "1-30-3", ["rev.namespace.sidecar-injector.istio.io"], FAKE_CA_BUNDLE
    )
    assert patches([done], {"istiod-1-30-3"}) == {}
    stale = _configuration(
        "istio-sidecar-injector-1-30-3", "1-30-3", ["rev.namespace.sidecar-injector.istio.io"], "b2xk"
    )
    assert list(patches([stale], {"istiod-1-30-3"})) == ["istio-sidecar-injector-1-30-3"]
