"""What the revision-tag webhooks do at admission: which pods they inject, with which istiod.

The API server's own rules are modelled here, small: a webhook is called for a request its `rules`
match, in a namespace its `namespaceSelector` selects, for an object its `objectSelector` selects
(https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/). The
selectors are label selectors with set-based requirements, validated as the API server validates
them. Each test states where a pod goes, so a wrong key, operator, value or webhook fails here
whatever the code looks like; tests/test_oracle_charts.py holds the same webhooks to Istio's chart.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from components.revision_tags import tag_webhook, webhook_name

Labels = Mapping[str, str]


def _requirement_matches(requirement: Mapping[str, Any], labels: Labels) -> bool:
    key, operator = requirement["key"], requirement["operator"]
    values = requirement.get("values")
    # The API server refuses a selector whose values do not fit its operator.
    if operator in ("In", "NotIn"):
        assert isinstance(values, list) and values, f"{operator} needs values: {requirement}"
    elif operator in ("Exists", "DoesNotExist"):
        assert "values" not in requirement, f"{operator} takes no values: {requirement}"
    else:
        raise AssertionError(f"unknown operator {operator!r} in {requirement}")
    assert key, f"empty key in {requirement}"
    if operator == "In":
        return key in labels and labels[key] in (values or [])
    if operator == "NotIn":
        return key not in labels or labels[key] not in (values or [])
    if operator == "Exists":
        return key in labels
    return key not in labels


def selects(selector: Mapping[str, Any], labels: Labels) -> bool:
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    match_labels = selector.get("matchLabels", {})
    return all(labels.get(k) == v for k, v in match_labels.items()) and all(
        _requirement_matches(r, labels) for r in selector.get("matchExpressions", [])
    )


POD_CREATE = {"operation": "CREATE", "group": "", "version": "v1", "resource": "pods"}


def _rule_matches(rule: Mapping[str, Any], request: Mapping[str, str]) -> bool:
    def has(field: str, value: str) -> bool:
        return value in rule[field] or "*" in rule[field]

    return (
        has("operations", request["operation"])
        and has("apiGroups", request["group"])
        and has("apiVersions", request["version"])
        and has("resources", request["resource"])
    )


def called(
    configuration: Mapping[str, Any],
    namespace: Labels,
    pod: Labels,
    request: Mapping[str, str] = POD_CREATE,
) -> list[str]:
    """Names of the configuration's webhooks the API server calls for this request."""
    return [
        webhook["name"]
        for webhook in configuration["webhooks"]
        if any(_rule_matches(rule, request) for rule in webhook["rules"])
        and selects(webhook["namespaceSelector"], namespace)
        and selects(webhook["objectSelector"], pod)
    ]


def injectors(tags: Mapping[str, str], namespace: Labels, pod: Labels) -> list[tuple[str, str]]:
    """(tag, webhook) pairs called for a pod created with these labels, over every tag's webhooks."""
    return [
        (tag, name)
        for tag, revision in sorted(tags.items())
        for name in called(tag_webhook(tag, revision), namespace, pod)
    ]


TAGS = {"default": "1-29-6", "prod-stable": "1-29-6", "prod-canary": "1-30-3"}


@pytest.mark.parametrize(
    ("namespace", "pod", "expected"),
    [
        # A namespace on a tag: the tag's namespace webhook.
        ({"istio.io/rev": "prod-canary"}, {}, [("prod-canary", "rev.namespace.sidecar-injector.istio.io")]),
        ({"istio.io/rev": "prod-stable"}, {}, [("prod-stable", "rev.namespace.sidecar-injector.istio.io")]),
        # A pod may opt out, and only with "false".
        ({"istio.io/rev": "prod-canary"}, {"sidecar.istio.io/inject": "false"}, []),
        (
            {"istio.io/rev": "prod-canary"},
            {"sidecar.istio.io/inject": "true"},
            [("prod-canary", "rev.namespace.sidecar-injector.istio.io")],
        ),
        # `istio-injection` takes precedence over `istio.io/rev` on a namespace.
        (
            {"istio-injection": "enabled", "istio.io/rev": "prod-canary"},
            {},
            [("default", "namespace.sidecar-injector.istio.io")],
        ),
        ({"istio-injection": "disabled", "istio.io/rev": "prod-canary"}, {}, []),
        # `istio.io/rev=default` is the default tag, like any tag.
        ({"istio.io/rev": "default"}, {}, [("default", "rev.namespace.sidecar-injector.istio.io")]),
        # A pod on a tag in an unlabelled namespace: the tag's object webhook.
        ({}, {"istio.io/rev": "prod-canary"}, [("prod-canary", "rev.object.sidecar-injector.istio.io")]),
        ({}, {"istio.io/rev": "prod-canary", "sidecar.istio.io/inject": "false"}, []),
        # A labelled namespace decides, whatever the pod says.
        (
            {"istio.io/rev": "prod-stable"},
            {"istio.io/rev": "prod-canary"},
            [("prod-stable", "rev.namespace.sidecar-injector.istio.io")],
        ),
        (
            {"istio-injection": "enabled"},
            {"istio.io/rev": "prod-canary"},
            [("default", "namespace.sidecar-injector.istio.io")],
        ),
        # The default revision's own selectors, served by the default tag.
        ({"istio-injection": "enabled"}, {}, [("default", "namespace.sidecar-injector.istio.io")]),
        ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "false"}, []),
        ({}, {"sidecar.istio.io/inject": "true"}, [("default", "object.sidecar-injector.istio.io")]),
        # Opting in with a revision goes to that revision's tag, never also to the default.
        (
            {},
            {"sidecar.istio.io/inject": "true", "istio.io/rev": "prod-canary"},
            [("prod-canary", "rev.object.sidecar-injector.istio.io")],
        ),
        # Nothing asked for: no sidecar.
        ({}, {}, []),
        ({"istio-injection": "disabled"}, {"sidecar.istio.io/inject": "true"}, []),
        ({"istio.io/rev": "unknown-tag"}, {}, []),
        ({"istio.io/rev": "unknown-tag"}, {"sidecar.istio.io/inject": "true"}, []),
        ({}, {"sidecar.istio.io/inject": "yes"}, []),
    ],
)
def test_where_a_new_pod_is_injected(namespace: Labels, pod: Labels, expected: list[tuple[str, str]]) -> None:
    assert injectors(TAGS, namespace, pod) == expected


def test_no_pod_is_ever_injected_twice() -> None:
    """Over every combination of the labels that matter, at most one webhook of all the tags is called."""
    namespace_labels = [
        {},
        *({"istio-injection": v} for v in ("enabled", "disabled")),
        *({"istio.io/rev": t} for t in (*TAGS, "other")),
        *({"istio-injection": "enabled", "istio.io/rev": t} for t in TAGS),
    ]
    pod_labels = [
        {**inject, **rev}
        for inject, rev in itertools.product(
            [{}, {"sidecar.istio.io/inject": "true"}, {"sidecar.istio.io/inject": "false"}],
            [{}, *({"istio.io/rev": t} for t in (*TAGS, "other"))],
        )
    ]
    for namespace, pod in itertools.product(namespace_labels, pod_labels):
        assert len(injectors(TAGS, namespace, pod)) <= 1, (namespace, pod)


def test_a_tag_other_than_default_has_only_the_revision_webhooks() -> None:
    assert [w["name"] for w in tag_webhook("prod-canary", "1-30-3")["webhooks"]] == [
        "rev.namespace.sidecar-injector.istio.io",
        "rev.object.sidecar-injector.istio.io",
    ]
    assert injectors({"prod-canary": "1-30-3"}, {"istio-injection": "enabled"}, {}) == []
    assert injectors({"prod-canary": "1-30-3"}, {}, {"sidecar.istio.io/inject": "true"}) == []


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (POD_CREATE, True),
        ({**POD_CREATE, "operation": "UPDATE"}, False),
        ({**POD_CREATE, "resource": "deployments"}, False),
        ({**POD_CREATE, "group": "apps"}, False),
        ({**POD_CREATE, "version": "v1beta1"}, False),
    ],
)
def test_only_pod_creation_is_sent_to_istiod(request_: dict[str, str], expected: bool) -> None:
    for tag in ("default", "prod-canary"):
        configuration = tag_webhook(tag, "1-30-3")
        assert bool(called(configuration, {"istio.io/rev": tag}, {}, request_)) is expected


def test_every_webhook_sends_to_the_tagged_revisions_istiod_and_refuses_pods_it_cannot_reach() -> None:
    configuration = tag_webhook("default", "1-30-3")
    assert len(configuration["webhooks"]) == 4
    for webhook in configuration["webhooks"]:
        # istiod-<revision> in istio-system, its injection endpoint on the webhook port.
        assert webhook["clientConfig"] == {
            "service": {"name": "istiod-1-30-3", "namespace": "istio-system", "path": "/inject", "port": 443}
        }
        # A pod istiod cannot inject is refused, never started without its sidecar.
        assert webhook["failurePolicy"] == "Fail"
        # Injection changes nothing but the pod, so dry runs may call it.
        assert webhook["sideEffects"] == "None"
        assert webhook["admissionReviewVersions"] == ["v1"]


def test_the_configuration_is_named_and_labelled_for_the_tag_and_revision() -> None:
    configuration = tag_webhook("prod-canary", "1-30-3")
    assert webhook_name("prod-canary") == "istio-revision-tag-prod-canary"
    # istiod patches caBundle into webhook configurations labelled with its revision; `istioctl tag
    # list` finds tags by istio.io/tag.
    assert configuration["metadata"] == {
        "name": "istio-revision-tag-prod-canary",
        "labels": {"istio.io/tag": "prod-canary", "istio.io/rev": "1-30-3", "app": "sidecar-injector"},
    }


def test_moving_a_tag_changes_only_the_service_and_revision_label() -> None:
    before, after = tag_webhook("prod-stable", "1-29-6"), tag_webhook("prod-stable", "1-30-3")
    assert before["metadata"]["name"] == after["metadata"]["name"]
    for old, new in zip(before["webhooks"], after["webhooks"], strict=True):
        assert old["clientConfig"]["service"]["name"] == "istiod-1-29-6"
        assert {**old, "clientConfig": new["clientConfig"]} == new
