"""The kubernetes provider's Check, as far as it changes the inputs the engine records.

The engine records a resource's inputs after its provider's Check, not as the program sent them,
and `pulumi preview --json` shows those. So meshplan's plans show them too. What the kubernetes
provider (the v4.25.0 build of hack/toolchain.versions) does in Check:

- A `helm.sh/v3:Release` is decoded into the provider's Release struct and encoded again
  (provider/pkg/provider/helm_release.go, `Check`, `decodeRelease`, `resource.NewPropertyMap`):
  every field of the struct comes back with its zero value when the program left it out (`false`,
  `""`), `repositoryOpts` with all six of its fields, and inputs the struct has no field for
  (`compat`, which the SDK sends) are gone. A namespace left empty is the provider's default one,
  a missing `timeout` is 300 unless `skipAwait` is set.
- A built-in Kubernetes object is converted to its typed Go object and back
  (provider/pkg/clients/unstructured.go, `Normalize`; provider/pkg/provider/provider.go,
  `normalizeInputs`): fields the type doesn't have are dropped, `omitempty` fields that are empty
  are dropped (k8s.io/apimachinery/pkg/runtime/converter.go, `isZero`: `""`, `0`, `false`, an
  empty list or map, but never a pointer that is set or a struct), quantities take their
  canonical form, and nothing the program left out is added. Then the read-only metadata
  (`creationTimestamp`, `uid`, ...) is removed. Objects with unknown values are not converted. The
  typed fields come from `kube_types.json`, written by hack/kubetypes from the Go types themselves.
- A Secret is not converted: its `stringData` moves into `data`, base64-encoded.
- A CustomResourceDefinition loses `status` and a `spec.preserveUnknownFields: false`.
- Null values are skipped everywhere in maps before any of this (`SkipNulls`).

The Python dynamic provider (`pulumi-python:dynamic/...`) gives back its inputs with the
secretness of a nested value lifted to the property that holds it.

A component the provider constructs (a `yaml/v2:ConfigGroup`) is registered by the provider
itself, with no inputs: the engine records none for it.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import re
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal, localcontext
from pathlib import Path
from typing import Any

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
PROVIDER_DEFAULT_TIMEOUT_SECONDS = 300  # helm_release.go, defaultTimeoutSeconds

# The Release struct's fields that the program may leave out, with their Go zero values; `chart`,
# `name`, `namespace`, `version`, `values`, `timeout` and `repositoryOpts` are handled apart.
_RELEASE_ZERO_FIELDS: dict[str, Any] = {
    **dict.fromkeys(
        (
            "allowNullValues",
            "atomic",
            "cleanupOnFail",
            "createNamespace",
            "dependencyUpdate",
            "devel",
            "disableCRDHooks",
            "disableOpenapiValidation",
            "disableWebhooks",
            "forceUpdate",
            "lint",
            "recreatePods",
            "renderSubchartNotes",
            "replace",
            "resetValues",
            "reuseValues",
            "skipAwait",
            "skipCrds",
            "verify",
            "waitForJobs",
        ),
        False,
    ),
    **dict.fromkeys(("chart", "description", "keyring", "name", "namespace", "postrender", "version"), ""),
}
_RELEASE_FIELDS = {*_RELEASE_ZERO_FIELDS, "maxHistory", "repositoryOpts", "timeout", "values"}
_REPOSITORY_OPTS_FIELDS = ("caFile", "certFile", "keyFile", "password", "repo", "username")
_READ_ONLY_METADATA = (
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "generation",
    "managedFields",
    "resourceVersion",
    "uid",
)


class _NotConvertible(Exception):
    """The value doesn't fit its Go type: the provider then keeps the object as it was sent."""


@functools.cache
def _types() -> Mapping[str, Any]:
    return json.loads(Path(__file__).with_name("kube_types.json").read_text())


def checked_inputs(
    type_: str,
    inputs: Mapping[str, Any],
    *,
    remote: bool = False,
    unknown: str,
    secret: str,
    default_namespace: str = "",
) -> dict[str, Any]:
    """`inputs` (plain JSON, secrets and unknowns as markers) as the provider's Check returns them."""
    if remote:
        return {}
    if type_.startswith("pulumi-python:dynamic/"):
        # The Python dynamic provider deserializes the inputs and sends them back: a list or map
        # holding a secret comes back secret as a whole (pulumi/runtime/rpc.py,
        # `deserialize_property`, "push the secretness up").
        return {k: secret if _contains(v, secret) else v for k, v in inputs.items()}
    if not type_.startswith("kubernetes:") or type_.startswith("kubernetes:yaml/"):
        return dict(inputs)
    inputs = dict(_skip_nulls(inputs))
    if type_ == RELEASE_TYPE:
        return _release(inputs, default_namespace)
    return _kubernetes_object(inputs, unknown, secret)  # anything without a kind goes through as it is


def _skip_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _skip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_skip_nulls(v) for v in value]
    return value


def _release(inputs: Mapping[str, Any], default_namespace: str) -> dict[str, Any]:
    checked: dict[str, Any] = {**_RELEASE_ZERO_FIELDS}
    checked.update({k: v for k, v in inputs.items() if k in _RELEASE_FIELDS})
    if not checked["namespace"]:
        checked["namespace"] = default_namespace
    if "timeout" not in inputs and not checked["skipAwait"]:
        checked["timeout"] = PROVIDER_DEFAULT_TIMEOUT_SECONDS
    options = inputs.get("repositoryOpts")
    if isinstance(options, Mapping):
        checked["repositoryOpts"] = {
            **dict.fromkeys(_REPOSITORY_OPTS_FIELDS, ""),
            **{k: v for k, v in options.items() if k in _REPOSITORY_OPTS_FIELDS},
        }
    checked.setdefault("values", {})  # decodeRelease always makes the map, empty or not
    return checked


def _contains(value: Any, marker: str) -> bool:
    if isinstance(value, Mapping):
        return any(_contains(v, marker) for v in value.values())
    if isinstance(value, list):
        return any(_contains(v, marker) for v in value)
    return value == marker


def _kubernetes_object(inputs: dict[str, Any], unknown: str, secret: str) -> dict[str, Any]:
    api_version, kind = inputs.get("apiVersion"), inputs.get("kind")
    if not _contains(inputs, unknown):
        if kind == "Secret" and api_version == "v1":
            inputs = _secret(inputs, secret)
        elif kind == "CustomResourceDefinition" and api_version == "apiextensions.k8s.io/v1":
            inputs = _crd(inputs)
        else:
            type_name = _types()["kinds"].get(f"{api_version}/{kind}")
            if type_name is not None:
                with contextlib.suppress(_NotConvertible):  # kept as sent, as the provider does
                    inputs = _convert(inputs, type_name)
    metadata = inputs.get("metadata")
    if isinstance(metadata, Mapping):
        inputs = {**inputs, "metadata": {k: v for k, v in metadata.items() if k not in _READ_ONLY_METADATA}}
    return inputs


def _secret(inputs: dict[str, Any], secret: str) -> dict[str, Any]:
    string_data = inputs.get("stringData")
    if not isinstance(string_data, Mapping) or not string_data:
        return inputs
    if not all(isinstance(v, str) and v != secret for v in string_data.values()):
        # A secret value is no string to the provider (it reads `stringData` as a map of strings,
        # fails, and leaves the Secret as it is).
        return inputs
    data = dict(inputs.get("data") or {})
    data.update({k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()})
    return {**{k: v for k, v in inputs.items() if k != "stringData"}, "data": data}


def _crd(inputs: dict[str, Any]) -> dict[str, Any]:
    checked = {k: v for k, v in inputs.items() if k != "status"}
    spec = checked.get("spec")
    if isinstance(spec, Mapping) and spec.get("preserveUnknownFields") is False:
        checked["spec"] = {k: v for k, v in spec.items() if k != "preserveUnknownFields"}
    return checked


def _convert(value: Any, spec: Any) -> Any:
    """`value` through its Go type `spec` and back to JSON, as the provider's Normalize does."""
    if isinstance(spec, dict):
        ((shape, inner),) = spec.items()
        if shape == "pointer":
            return _convert(value, inner)
        if shape == "list":
            if not isinstance(value, list):
                raise _NotConvertible
            return [None if item is None else _convert(item, inner) for item in value]
        if not isinstance(value, Mapping):  # "map"
            raise _NotConvertible
        return {k: _convert(v, inner) for k, v in value.items()}
    if spec == "any":
        return value
    if spec in ("string", "bytes"):
        if not isinstance(value, str):
            raise _NotConvertible
        return value
    if spec == "bool":
        if not isinstance(value, bool):
            raise _NotConvertible
        return value
    if spec in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _NotConvertible
        return value
    if spec == "quantity":
        return canonical_quantity(value)
    if not isinstance(value, Mapping):
        raise _NotConvertible
    converted: dict[str, Any] = {}
    for field in _types()["types"][spec]:
        name = field["name"]
        if name not in value:
            continue  # a field the program left out stays out (pruneMap)
        item = _convert(value[name], field["type"])
        if field.get("omitEmpty") and _is_zero(item, field["type"]):
            continue
        converted[name] = item
    return converted


def _is_zero(value: Any, spec: Any) -> bool:
    """converter.go's isZero for a set value: a set pointer or a struct is never empty."""
    if isinstance(spec, dict):
        shape = next(iter(spec))
        return shape != "pointer" and len(value) == 0
    if spec in ("string", "bytes"):
        return value == ""
    if spec == "bool":
        return value is False
    if spec in ("int", "float"):
        return value == 0
    return False


_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


def canonical_quantity(value: Any) -> Any:
    """A resource.Quantity's canonical string (k8s.io/apimachinery/pkg/api/resource/quantity.go).

    The format follows the suffix it was written with (binary `Ki`..., decimal `m`, `k`..., or an
    exponent); values are kept to nano precision, rounded up, as parsing does. Amounts beyond
    what an int64 of nano units holds (above about 9E) are not modelled. Not a quantity:
    `_NotConvertible`, as the provider then fails to convert and keeps the object unchanged.
    """
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    match = _QUANTITY.match(text) if isinstance(text, str) else None
    if match is None:
        raise _NotConvertible
    if _kept_as_written(match.group(1), match.group(2) or ""):
        return text
    with localcontext(prec=60):  # exa with nano precision needs more than the default 28 digits
        return _canonical(Decimal(match.group(1)), match.group(2) or "")


_INT64_MAX = 2**63 - 1
_MAX_INT64_FACTORS = 18  # quantity.go, maxInt64Factors


def _kept_as_written(number: str, suffix: str) -> bool:
    """Whether `ParseQuantity` keeps the text as written, which `String()` then prints unchanged.

    Its fast path (quantity.go, `ParseQuantity`: "if the number is in canonical form, reuse the
    string") keeps a text whose value fits an int64 at nano scale and that looks canonical: a binary
    amount with no fraction whose value is not a multiple of 8; a decimal one whose scale is a
    multiple of 3, whose digits don't start with 0 or end with 000. So `1E-3` stays `1E-3`, where
    the canonical form would be `1e-3`.
    """
    digits = number.lstrip("+-")
    whole, _, fraction = digits.partition(".")  # digits only, either may be empty (_QUANTITY)
    whole = whole.lstrip("0") or "0"  # parseQuantityString skips leading zeros
    if suffix in _BINARY_SUFFIXES[1:]:
        exponent = 10 * _BINARY_SUFFIXES.index(suffix)
        if fraction or 15 - len(whole) - int(exponent * 3 / 10) - 1 < 0:
            return False
        value = int(whole)
        return value << exponent <= _INT64_MAX and exponent % 10 == 0 and value & 0x07 != 0
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        scale = int(suffix[1:])
    else:
        scale = {v: k for k, v in _DECIMAL_SUFFIXES.items()}[suffix]
    if _MAX_INT64_FACTORS - len(whole + fraction) < 0:
        return False
    scale -= len(fraction)
    shifted = whole + fraction
    return (
        scale >= -9
        and int(shifted) <= _INT64_MAX
        and scale % 3 == 0
        and not shifted.endswith("000")
        and shifted[0] != "0"
    )


def _canonical(number: Decimal, suffix: str) -> str:
    if suffix in _BINARY_SUFFIXES[1:]:
        amount, form = number * (1024 ** _BINARY_SUFFIXES.index(suffix)), "binary"
    elif suffix[:1] in ("e", "E") and len(suffix) > 1:  # `E` alone is exa
        amount, form = number.scaleb(int(suffix[1:])), "exponent"
    else:
        exponent = {v: k for k, v in _DECIMAL_SUFFIXES.items()}[suffix]
        amount, form = number.scaleb(exponent), "decimal"
    amount = amount.quantize(Decimal("1e-9"), rounding=ROUND_CEILING)
    if amount == 0:
        return "0"  # "-0" too
    if form == "binary" and (abs(amount) < 1024 or amount != amount.to_integral_value()):
        form = "decimal"  # small or fractional binary amounts print as decimal, without rounding
    if form == "binary":
        integer, power = int(amount), 0
        while power < len(_BINARY_SUFFIXES) - 1 and integer % 1024 == 0:
            integer, power = integer // 1024, power + 1
        return f"{integer}{_BINARY_SUFFIXES[power]}"
    # Decimal: an integer mantissa and a power of ten that is a multiple of 3, as large as it can be.
    sign, digits, exponent = amount.normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)))
    while exponent % 3:
        mantissa, exponent = mantissa * 10, exponent - 1
    while exponent > 18:  # no suffix above E: the mantissa grows instead
        mantissa, exponent = mantissa * 1000, exponent - 3
    prefix = "-" if sign else ""
    if form == "exponent":
        return f"{prefix}{mantissa}" + (f"e{exponent}" if exponent else "")
    return f"{prefix}{mantissa}{_DECIMAL_SUFFIXES[exponent]}"
