"""meshplan's model of the kubernetes provider's Check: the inputs the engine records.

The expected values are what the real provider (v4.25.0) recorded in `pulumi preview` on the local
cluster (hack/e2e_local.py, scenario "meshplan"), and what k8s.io/apimachinery v0.33.3's
`Quantity.String()` prints for each quantity (checked with a Go program against that module).
"""

from __future__ import annotations

from typing import Any

import pytest

from meshplan.engine import SECRET, UNKNOWN
from meshplan.provider_check import canonical_quantity, checked_inputs

RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def check(type_: str, inputs: dict[str, Any], **options: Any) -> dict[str, Any]:
    return checked_inputs(type_, inputs, unknown=UNKNOWN, secret=SECRET, **options)


RELEASE_ZEROS = {
    "allowNullValues": False,
    "atomic": False,
    "cleanupOnFail": False,
    "createNamespace": False,
    "dependencyUpdate": False,
    "description": "",
    "devel": False,
    "disableCRDHooks": False,
    "disableOpenapiValidation": False,
    "disableWebhooks": False,
    "forceUpdate": False,
    "keyring": "",
    "lint": False,
    "postrender": "",
    "recreatePods": False,
    "renderSubchartNotes": False,
    "replace": False,
    "resetValues": False,
    "reuseValues": False,
    "skipAwait": False,
    "skipCrds": False,
    "verify": False,
    "waitForJobs": False,
}


def test_a_release_comes_back_as_the_providers_struct_without_compat() -> None:
    sent = {
        "chart": "istiod",
        "compat": "true",
        "name": "istiod",
        "namespace": "istio-system",
        "repositoryOpts": {"repo": "http://127.0.0.1:8879"},
        "timeout": 600,
        "values": {"pilot": {"autoscaleEnabled": False}},
        "version": "1.20.8",
    }
    assert check(RELEASE, sent) == {
        **RELEASE_ZEROS,
        "chart": "istiod",
        "name": "istiod",
        "namespace": "istio-system",
        "repositoryOpts": {
            "caFile": "",
            "certFile": "",
            "keyFile": "",
            "password": "",
            "repo": "http://127.0.0.1:8879",
            "username": "",
        },
        "timeout": 600,
        "values": {"pilot": {"autoscaleEnabled": False}},
        "version": "1.20.8",
    }


def test_a_release_gets_the_providers_defaults_for_what_the_program_left_out() -> None:
    checked = check(RELEASE, {"chart": "oci://ghcr.io/istio/release/charts/base"}, default_namespace="apps")
    assert checked == {
        **RELEASE_ZEROS,
        "chart": "oci://ghcr.io/istio/release/charts/base",
        "name": "",
        "namespace": "apps",
        "timeout": 300,
        "values": {},
        "version": "",
    }
    assert "repositoryOpts" not in checked  # a nil pointer stays out
    # With skipAwait, no default timeout.
    assert "timeout" not in check(RELEASE, {"chart": "base", "skipAwait": True})


def test_a_built_in_object_drops_empty_omitempty_fields_unknown_fields_and_read_only_metadata() -> None:
    sent = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "prometheus",
            "annotations": {},
            "creationTimestamp": None,
            "uid": "x",
            "generation": 3,
            "resourceVersion": "7",
        },
        "spec": {
            "replicas": 0,  # *int32: set, so kept
            "strategy": {"rollingUpdate": None, "type": "Recreate"},
            "notAField": 1,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "readinessProbe": {"initialDelaySeconds": 0, "periodSeconds": 5},
                            "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": ""}],
                            "resources": {},  # a struct: never empty
                            "securityContext": {"privileged": False},  # *bool: set, so kept
                            "stdin": False,  # bool: empty
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],  # a set pointer: kept
                }
            },
        },
    }
    assert check(DEPLOYMENT, sent) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "prometheus"},
        "spec": {
            "replicas": 0,
            "strategy": {"type": "Recreate"},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "readinessProbe": {"periodSeconds": 5},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            "resources": {},
                            "securityContext": {"privileged": False},
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                }
            },
        },
    }


def test_quantities_take_their_canonical_form() -> None:
    sent = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "0.1", "memory": "1024Mi"}}}]
        },
    }
    checked = check("kubernetes:core/v1:Pod", sent)
    assert checked["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "100m", "memory": "1Gi"}}


# What k8s.io/apimachinery v0.33.3 prints for each (`resource.MustParse(s).String()`, run with Go):
# canonical forms, and the texts its parser keeps as written because they look canonical. (Amounts
# beyond an int64 of nano units, which apimachinery clamps, are not modelled.)
QUANTITIES = [
    ("0.1", "100m"),
    ("1000m", "1"),
    ("2000", "2k"),
    ("1024Mi", "1Gi"),
    ("1536", "1536"),
    ("1.5Gi", "1536Mi"),
    ("100Mi", "100Mi"),
    ("1e3", "1e3"),
    ("0.5Ki", "512"),
    ("10m", "10m"),
    ("40Mi", "40Mi"),
    ("1500", "1500"),
    ("1Ki", "1Ki"),
    ("2048Ki", "2Mi"),
    ("1.5", "1500m"),
    ("0.0000000001", "1n"),
    ("12e6", "12e6"),
    ("1E", "1E"),
    ("-2000", "-2k"),
    ("0", "0"),
    ("0Mi", "0"),
    ("123456789", "123456789"),
    ("1.25k", "1250"),
    ("5u", "5u"),
    ("3P", "3P"),
    ("0.1Ki", "102400m"),
    ("1.0001Ki", "1024102400u"),
    ("1Ei", "1Ei"),
    ("1024Pi", "1Ei"),
    ("3E", "3E"),
    ("1E3", "1E3"),
    ("12E6", "12E6"),
    ("1000E3", "1e6"),
    ("1000e3", "1e6"),
    ("1E-3", "1E-3"),
    ("1.5E3", "1500"),
    ("100e-3", "100e-3"),
    ("+5", "+5"),
    ("+2000", "2k"),
    ("+100Mi", "+100Mi"),
    ("-100Mi", "-100Mi"),
    ("05", "05"),
    ("0.5", "500m"),
    ("1.500", "1.500"),
    ("7Ki", "7Ki"),
    ("8Ki", "8Ki"),
    ("9Gi", "9Gi"),
    ("250m", "250m"),
    ("0.25", "250m"),
    ("1e-9", "1e-9"),
    ("1.000000001", "1.000000001"),
    ("+1.5", "1500m"),
    ("1023Ki", "1023Ki"),
    ("3Mi", "3Mi"),
    ("1.0", "1"),
    ("10.0", "10"),
    ("999999", "999999"),
    ("-0", "0"),
    ("-0Mi", "0"),
    ("000", "0"),
    ("007", "007"),
    ("0.50", "500m"),
    ("00.5e3", "500"),
    ("010Ki", "010Ki"),
    ("0100m", "0100m"),
    ("1.5Ki", "1536"),
    ("2G", "2G"),
    ("123456789012345678", "123456789012345678"),
    ("1234567890123456789", "1234567890123456789"),
    ("9223372036854775807", "9223372036854775807"),
    ("1Pi", "1Pi"),
    ("1000Pi", "1000Pi"),
    ("1.5e3", "1500"),
    ("1e-12", "1e-9"),
    ("1000n", "1u"),
    ("1500n", "1500n"),
    ("999n", "999n"),
    ("+12345678901Ki", "+12345678901Ki"),
    ("+123456789012Ki", "123456789012Ki"),
    ("+123456789012345678", "+123456789012345678"),
    ("+1234567890123456789", "1234567890123456789"),
    ("1.0Ki", "1Ki"),
    ("1234567890123456789E-3", "1234567890123456789e-3"),
    (".5", "500m"),
    ("5.", "5."),
    ("1.5E", "1500P"),
    ("100e-12", "1e-9"),
    ("1500e-12", "2e-9"),
    (2, "2"),  # a number in YAML
]


@pytest.mark.parametrize(("written", "canonical"), QUANTITIES)
def test_canonical_quantity_agrees_with_apimachinery(written: Any, canonical: str) -> None:
    assert canonical_quantity(written) == canonical


def test_an_object_that_does_not_fit_its_type_is_kept_as_sent() -> None:
    sent = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": "80", "type": ""},
    }
    assert check("kubernetes:core/v1:Service", sent) == sent


def test_unknown_values_leave_the_object_unconverted_but_read_only_metadata_goes() -> None:
    sent = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": UNKNOWN, "annotations": {}, "creationTimestamp": "2026-01-01T00:00:00Z"},
    }
    assert check("kubernetes:core/v1:Namespace", sent) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": UNKNOWN, "annotations": {}},
    }


def test_a_secrets_string_data_moves_into_data_unless_it_is_secret() -> None:
    sent = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
    assert check("kubernetes:core/v1:Secret", sent) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"k": "dg=="},
    }
    secret = {**sent, "stringData": {"k": SECRET}}
    assert check("kubernetes:core/v1:Secret", secret) == secret


def test_a_crd_loses_its_status_and_a_false_preserve_unknown_fields() -> None:
    sent = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gateways.networking.istio.io"},
        "spec": {"group": "networking.istio.io", "preserveUnknownFields": False},
        "status": {"acceptedNames": {}},
    }
    assert check("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition", sent) == {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gateways.networking.istio.io"},
        "spec": {"group": "networking.istio.io"},
    }


def test_a_custom_resource_is_not_converted() -> None:
    sent = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "istio-system", "labels": {}},
        "spec": {"mtls": {"mode": ""}},
    }
    assert check("kubernetes:security.istio.io/v1:PeerAuthentication", sent) == sent


def test_a_constructed_component_has_no_inputs() -> None:
    objs = {"objs": [{"apiVersion": "v1", "kind": "ConfigMap"}]}
    assert check("kubernetes:yaml/v2:ConfigGroup", objs, remote=True) == {}


def test_a_dynamic_resource_lifts_a_nested_secret_to_its_property() -> None:
    sent = {"triggers": ["82c5a7f9", SECRET], "create": "kubectl version", "env": {"A": "1"}}
    assert check("pulumi-python:dynamic/istio-mesh:Command", sent) == {
        "triggers": SECRET,
        "create": "kubectl version",
        "env": {"A": "1"},
    }


def test_nulls_are_skipped_in_maps_before_anything_else() -> None:
    sent = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": None}, "data": None}
    assert check("kubernetes:core/v1:ConfigMap", sent) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
    }


def test_a_release_keeps_max_history() -> None:
    assert check(RELEASE, {"chart": "base", "maxHistory": 5})["maxHistory"] == 5


@pytest.mark.parametrize("type_", ["random:index:RandomPassword", "kubernetes:yaml/v2:ConfigFile"])
def test_other_types_are_recorded_as_sent_nulls_and_all(type_: str) -> None:
    assert check(type_, {"a": None, "b": [1]}) == {"a": None, "b": [1]}


def test_nulls_inside_lists_are_skipped_too() -> None:
    sent = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": None, "args": ["x", None]}]}}},
    }
    checked = check(DEPLOYMENT, sent)
    assert checked["spec"]["template"]["spec"]["containers"] == [{"name": "c", "args": ["x", None]}]


def test_only_a_v1_crd_is_normalized_as_one() -> None:
    sent = {
        "apiVersion": "apiextensions.k8s.io/v1beta1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "x"},
        "spec": {"preserveUnknownFields": False},
        "status": {},
    }
    assert check("kubernetes:apiextensions.k8s.io/v1beta1:CustomResourceDefinition", sent) == sent


def test_string_data_joins_the_secrets_data() -> None:
    sent = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": "YQ=="},
        "stringData": {"b": "b"},
    }
    assert check("kubernetes:core/v1:Secret", sent)["data"] == {"a": "YQ==", "b": "Yg=="}


def test_int_or_string_fields_keep_what_they_were_given() -> None:
    sent = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}]},
    }
    assert check("kubernetes:core/v1:Service", sent) == sent


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "template", "spec", "containers"), {"name": "c"}),  # a list given a map
        (("metadata", "labels"), ["a"]),  # a map given a list
        (("spec", "template", "spec", "containers"), [{"name": 7}]),  # a string given a number
        (("spec", "template", "spec", "containers"), [{"name": "c", "stdin": "yes"}]),  # a bool, text
        (("spec", "replicas"), True),  # an int given a bool
        (("spec", "template", "spec", "containers"), [{"name": "c", "args": {"a": "b"}}]),  # a list, a map
        (("spec", "template"), "x"),  # a struct given text
        (("spec", "template", "spec", "containers"), [{"name": "c", "resources": {"limits": {"cpu": [1]}}}]),
        (
            ("spec", "template", "spec", "containers"),
            [{"name": "c", "resources": {"limits": {"cpu": "1.2.3"}}}],
        ),
        (
            ("spec", "template", "spec", "containers"),
            [{"name": "c", "resources": {"limits": {"cpu": "lots"}}}],
        ),
    ],
)
def test_a_value_that_does_not_fit_keeps_the_whole_object_as_sent(path: tuple[str, ...], value: Any) -> None:
    sent: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "annotations": {}},
        "spec": {"paused": False, "template": {"spec": {}}},
    }
    target = sent
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    # Kept as sent: the empty annotations and the false `paused` stay, which conversion would drop.
    assert check(DEPLOYMENT, sent) == sent


def test_a_true_preserve_unknown_fields_stays() -> None:
    sent = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "x"},
        "spec": {"preserveUnknownFields": True},
    }
    assert check("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition", sent) == sent


def test_an_int_or_string_beside_an_empty_field_is_kept_and_the_empty_field_goes() -> None:
    sent = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"sessionAffinity": "", "ports": [{"port": 80, "targetPort": "http"}]},
    }
    assert check("kubernetes:core/v1:Service", sent)["spec"] == {
        "ports": [{"port": 80, "targetPort": "http"}]
    }
