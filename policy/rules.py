"""The istio-mesh policy rules as plain functions over a stack's resources.

Each rule takes the resources in the offline plan shape written by `meshplan` (`urn`, `type`, `name`,
`provider`, `protect`, wire-format camelCase `inputs`, ...) and a `RuleContext`, and returns its
violations. The Pulumi policy pack (`policy/__main__.py`) adapts the engine's `PolicyResource`s to
the same shape, so the offline check and `pulumi preview --policy-pack policy` apply one code path.

The rules only read through `Mapping` / `Sequence` (never `dict` / `list`): the policy SDK hands
resource properties over as read-only proxies that raise `UnknownValueError` when a value is not
known during a preview, and the SDK turns that into an advisory "can't run during preview" notice.
In offline plans, unknown values are the string `[unknown]` and secrets `[secret]`; the rules skip
what they cannot see there, the live policy pack sees the real values.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

try:
    from .istio_releases import UPSTREAM_SUPPORT_PAGE, oldest_supported_minor, support_status, unknown_reason
except ImportError:  # pragma: no cover - run by `pulumi` as a policy pack: this folder is sys.path[0]
    from istio_releases import (  # type: ignore[no-redef]
        UPSTREAM_SUPPORT_PAGE,
        oldest_supported_minor,
        support_status,
        unknown_reason,
    )

    # The Gateway API table is the program's (components/gateway_api_versions.py): the stack installs
    # the release it names and the rules hold the stack to the minimums it names, so there is one
    # table, not a copy that could drift. A pack run by `pulumi` (or hack/policy-analyzer) has only
    # this folder on sys.path and no parent package, so the repository root goes right after it,
    # before site-packages: the repository's own `components` is the one imported.
    _ROOT = str(Path(__file__).resolve().parent.parent)
    if _ROOT not in sys.path:
        sys.path.insert(1, _ROOT)

from components import gateway_api_versions as gateway_api

# The stand-ins `meshplan` writes for values a plan cannot show.
SECRET = "[secret]"
UNKNOWN = "[unknown]"

NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE = "kubernetes:core/v1:Service"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
# pulumi-kubernetes' Helm v4 Chart: a component whose chart, version and protect mean what a
# Release's do (protect passes to every object it holds). Its objects are resources of their own,
# judged as such: a gateway's Service among them, so its values' nodePorts are not read again.
CHART_V4 = "kubernetes:helm.sh/v4:Chart"
HELM_INSTALLS = frozenset({RELEASE, CHART_V4})
# components/local_command.py: kubectl and helm scripts run as a Pulumi dynamic resource.
COMMAND = "pulumi-python:dynamic/istio-mesh:Command"
KUBERNETES_PROVIDER = "pulumi:providers:kubernetes"

ISTIO_NAMESPACE = "istio-system"
ENVIRONMENT_LABEL = "istio-mesh/environment"
PRODUCTION = "production"
# The explicit provider the program creates; preferred when a stack somehow has more than one.
CLUSTER_PROVIDER_NAME = "cluster"

# Charts published in Istio's Helm repository; their chart version is the Istio version.
ISTIO_CHARTS = frozenset({"base", "istiod", "gateway", "cni", "ztunnel"})
# The charts whose version is the control plane's: istiod, and base (the CRDs and the webhook config).
CONTROL_PLANE_CHARTS = frozenset({"istiod", "base"})

# Namespaces: a plain Namespace, or a server-side-apply patch of one the applications own
# (components/injection.py). Both may label one namespace; the rules merge them by metadata.name.
NAMESPACE_PATCH = "kubernetes:core/v1:NamespacePatch"
NAMESPACE_TYPES = frozenset({NAMESPACE, NAMESPACE_PATCH})
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"

# Ambient mode: a namespace labelled `istio.io/dataplane-mode=ambient` is captured by ztunnel
# (https://istio.io/latest/docs/ambient/usage/add-workloads/); sidecars come with `istio-injection=enabled`
# or any `istio.io/rev` (the revision and tag webhooks select on it, components/revision_tags.py).
DATAPLANE_MODE_LABEL = "istio.io/dataplane-mode"
AMBIENT = "ambient"
INJECTION_LABEL = "istio-injection"
INJECTION_ENABLED = "enabled"
REVISION_LABEL = "istio.io/rev"
# Ambient mode is GA (stable, supported for production) from Istio 1.24.0; before it, beta or alpha.
# https://istio.io/latest/news/releases/1.24.x/announcing-1.24/
AMBIENT_GA = (1, 24, 0)
AMBIENT_GA_VERSION = "1.24.0"
DASHBOARDS = frozenset({"kiali", "prometheus", "grafana", "tracing"})
EXPOSED_SERVICE_TYPES = frozenset({"NodePort", "LoadBalancer"})
# A Service without `spec.type` is ClusterIP (Kubernetes' default). Gateway Services live inside the
# `gateway` releases' values and are never dashboards; only their nodePorts are checked.
DEFAULT_SERVICE_TYPE = "ClusterIP"

# The API server's default `--service-node-port-range`.
# https://kubernetes.io/docs/concepts/services-networking/service/#type-nodeport
NODE_PORT_MIN, NODE_PORT_MAX = 30000, 32767

# Exact `MAJOR.MINOR.PATCH`: no range, wildcard, `v` prefix or pre-release.
EXACT_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

# Kiali's strategy when its config has no `auth.strategy`: `token` on Kubernetes (`openshift` on
# OpenShift), https://kiali.io/docs/configuration/authentication/ . So a missing auth block is NOT
# treated as anonymous: Kiali itself would ask for a token. Istio's sample addon sets `anonymous`
# explicitly, and that explicit value is what this rule catches.
KIALI_DEFAULT_STRATEGY = "token"
KIALI_SAFE_STRATEGIES = "token, openid, openshift or header"

# pulumi-kubernetes components, never custom resources: local ones (registered by the Python SDK)
# have no provider, remote ones (yaml/v2, helm v4, kustomize v2: registered by the provider's
# Construct) need not record one. Either way the objects they hold are what a provider acts on, and
# those are checked. A policy pack is not told whether a resource is custom, so they are named here.
COMPONENT_TYPES = frozenset(
    {
        "kubernetes:yaml:ConfigFile",
        "kubernetes:yaml:ConfigGroup",
        "kubernetes:yaml/v2:ConfigFile",
        "kubernetes:yaml/v2:ConfigGroup",
        "kubernetes:helm.sh/v2:Chart",
        "kubernetes:helm.sh/v3:Chart",
        "kubernetes:helm.sh/v4:Chart",
        "kubernetes:kustomize:Directory",
        "kubernetes:kustomize/v2:Directory",
    }
)

# Shell control operators that end one simple command. shlex returns a run of these as one token.
_OPERATOR_CHARS = ";&|()\n"
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash"})
# Programs that run the program named after them (and their own options).
_WRAPPERS = frozenset({"sudo", "env", "exec", "command", "time", "nohup", "timeout", "xargs", "watch"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Shell reserved words that can stand before a command word (`if kubectl ...; then kubectl ...`).
_RESERVED = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{"})

Resource = Mapping[str, Any]
Resources = Sequence[Resource]


@dataclass(frozen=True)
class Violation:
    """One resource that breaks one rule, with the message a user sees."""

    rule: str
    urn: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.urn}: {self.message}"


@dataclass(frozen=True)
class RuleContext:
    """What the rules know about the stack beyond its resources; build it with `context_for`.

    `production` comes from the `istio-mesh/environment` label of the istio-system Namespace (the
    program copies the `istio-mesh:environment` config there). `kube_context` / `kubeconfig` are the
    `context` / `kubeconfig` inputs of the stack's explicit kubernetes provider (`cluster_provider`).
    """

    today: date
    production: bool = False
    environment: str | None = None
    cluster_provider: str | None = None
    kube_context: str | None = None
    kubeconfig: str | None = None


RuleCheck = Callable[[Resources, RuleContext], list[Violation]]


@dataclass(frozen=True)
class Rule:
    """A policy rule: its id, what it enforces, and the function that finds violations."""

    id: str
    description: str
    check: RuleCheck


# --- reading resources -------------------------------------------------------------------------


def _is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _dig(value: Any, *path: str) -> Any:
    """`value[path[0]][path[1]]...`, or None as soon as a level is missing or not a mapping."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _inputs(resource: Resource) -> Mapping[str, Any]:
    inputs = resource.get("inputs")
    return inputs if isinstance(inputs, Mapping) else {}


def _of_type(resources: Resources, type_: str) -> Iterator[Resource]:
    return (r for r in resources if r.get("type") == type_)


def _helm_installs(resources: Resources) -> Iterator[Resource]:
    """The Helm Releases and v4 Charts: each installs one chart at one version."""
    return (r for r in resources if r.get("type") in HELM_INSTALLS)


def _urn(resource: Resource) -> str:
    return str(resource.get("urn") or "")


def _name(resource: Resource) -> str:
    return str(resource.get("name") or _urn(resource).rsplit("::", 1)[-1])


def _object_name(resource: Resource) -> str:
    """The Kubernetes name: `metadata.name`, else the Pulumi name (what auto-naming starts from)."""
    name = _dig(_inputs(resource), "metadata", "name")
    return name if isinstance(name, str) and name else _name(resource)


def _object_namespace(resource: Resource) -> str | None:
    namespace = _dig(_inputs(resource), "metadata", "namespace")
    return namespace if isinstance(namespace, str) and namespace else None


def _service_type(resource: Resource) -> str:
    service_type = _dig(_inputs(resource), "spec", "type")
    return service_type if isinstance(service_type, str) and service_type else DEFAULT_SERVICE_TYPE


def _chart(resource: Resource) -> str:
    """The chart's own name: `istiod` also for `istio/istiod` or `oci://.../charts/istiod`."""
    chart = _inputs(resource).get("chart")
    if not isinstance(chart, str) or not chart:
        return _name(resource)
    return chart.rstrip("/").rsplit("/", 1)[-1]


def _is_dashboard(resource: Resource) -> bool:
    return _object_name(resource) in DASHBOARDS and _object_namespace(resource) == ISTIO_NAMESPACE


def _show(value: Any) -> str:
    """A value as it would appear in JSON: strings quoted, so `""` and `"1.24"` read unambiguously."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def _as_int(value: Any) -> int | None:
    """Numbers arrive as floats from the engine (protobuf Struct) and as ints from JSON plans."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _exact_version(resource: Resource) -> tuple[int, int, int] | None:
    """A Helm install's exact `x.y.z` chart version as numbers; None for any other (or unknown) version.

    A version that is not an exact pin is `exact-chart-versions`' violation; the version rules skip it.
    """
    version = _inputs(resource).get("version")
    match = EXACT_VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _kind(resource: Resource) -> str:
    """`kubernetes:core/v1:NamespacePatch` -> `NamespacePatch`."""
    return str(resource.get("type") or "").rsplit(":", 1)[-1]


def _install_kind(release: Resource) -> str:
    return "release" if release.get("type") == RELEASE else "Chart"


def _provider_name(reference: str) -> str:
    """`urn:pulumi:stack::project::pulumi:providers:kubernetes::cluster[::id]` -> `cluster`."""
    parts = reference.split("::")
    return parts[3] if len(parts) >= 4 else reference


def _is_default_provider(reference: str) -> bool:
    # The engine names the providers it creates itself `default` or `default_<version>`.
    return _provider_name(reference).startswith("default")


# --- the stack's context -----------------------------------------------------------------------


def context_for(resources: Resources, today: date) -> RuleContext:
    """Derive production-ness and the cluster coordinates from the resources themselves."""
    environment: str | None = None
    for namespace in _of_type(resources, NAMESPACE):
        if _object_name(namespace) != ISTIO_NAMESPACE:
            continue
        label = _dig(_inputs(namespace), "metadata", "labels", ENVIRONMENT_LABEL)
        if isinstance(label, str):
            environment = label
    # Compared case-insensitively: a stack that says `Production` must not slip past the
    # production-only rules because of a capital letter.
    production = environment is not None and environment.strip().lower() == PRODUCTION

    providers = [
        r for r in _of_type(resources, KUBERNETES_PROVIDER) if not _is_default_provider(_urn(r) or _name(r))
    ]
    named = [r for r in providers if _name(r) == CLUSTER_PROVIDER_NAME]
    provider = named[0] if named else providers[0] if len(providers) == 1 else None
    kube_context = kubeconfig = None
    if provider is not None:
        value = _inputs(provider).get("context")
        kube_context = value if isinstance(value, str) and value else None
        value = _inputs(provider).get("kubeconfig")
        kubeconfig = value if isinstance(value, str) and value else None
    return RuleContext(
        today=today,
        production=production,
        environment=environment,
        cluster_provider=None if provider is None else _name(provider),
        kube_context=kube_context,
        kubeconfig=kubeconfig,
    )


# --- rules ---------------------------------------------------------------------------------------


def exact_chart_versions(resources: Resources, context: RuleContext) -> list[Violation]:
    """Every Helm release and v4 Chart pins an exact `x.y.z` chart version, so a re-run never upgrades silently."""
    rule = "exact-chart-versions"
    found: list[Violation] = []
    for release in _helm_installs(resources):
        version = _inputs(release).get("version")
        if version == UNKNOWN:
            continue
        if version is None:
            message = f"chart {_chart(release)} has no version; pin an exact x.y.z version"
        elif isinstance(version, str) and EXACT_VERSION.match(version):
            continue
        else:
            message = (
                f"chart {_chart(release)} version {_show(version)} is not an exact x.y.z version "
                "(no ranges, ^, ~, *, x, pre-releases or empty)"
            )
        found.append(Violation(rule, _urn(release), message))
    return found


def _node_ports(resource: Resource) -> Iterator[Any]:
    """The nodePort values a resource asks for: a Service's, or a gateway release's Service values."""
    if resource.get("type") == SERVICE:
        ports = _dig(_inputs(resource), "spec", "ports")
    elif resource.get("type") == RELEASE and _chart(resource) == "gateway":
        ports = _dig(_inputs(resource), "values", "service", "ports")
    else:
        return
    if not _is_list(ports):
        return
    for port in ports:
        value = _dig(port, "nodePort")
        # Absent or 0 lets Kubernetes allocate one from the range itself.
        if value is not None and value != 0 and value != UNKNOWN:
            yield value


def node_ports_valid(resources: Resources, context: RuleContext) -> list[Violation]:
    """Every requested nodePort is inside the API server's range and used once in the stack."""
    rule = "node-ports-valid"
    found: list[Violation] = []
    first_user: dict[int, str] = {}
    for resource in sorted(resources, key=_urn):
        name = _name(resource)
        for value in _node_ports(resource):
            port = _as_int(value)
            if port is None:
                message = f"nodePort {_show(value)} is not an integer in {NODE_PORT_MIN}-{NODE_PORT_MAX}"
                found.append(Violation(rule, _urn(resource), message))
                continue
            if not NODE_PORT_MIN <= port <= NODE_PORT_MAX:
                message = f"nodePort {port} is outside {NODE_PORT_MIN}-{NODE_PORT_MAX}"
                found.append(Violation(rule, _urn(resource), message))
            other = first_user.get(port)
            if other is None:
                first_user[port] = name
                continue
            message = (
                f"nodePort {port} is used twice by {name}"
                if other == name
                else f"nodePort {port} is used by both {other} and {name}"
            )
            found.append(Violation(rule, _urn(resource), message))
    return found


def production_dashboards_internal(resources: Resources, context: RuleContext) -> list[Violation]:
    """On production, dashboards stay ClusterIP: reached with `kubectl port-forward`, never from outside."""
    rule = "production-dashboards-internal"
    if not context.production:
        return []
    found: list[Violation] = []
    for service in _of_type(resources, SERVICE):
        service_type = _service_type(service)
        if _is_dashboard(service) and service_type in EXPOSED_SERVICE_TYPES:
            message = (
                f"dashboard Service {ISTIO_NAMESPACE}/{_object_name(service)} has type {service_type}; "
                "on production dashboards must be ClusterIP"
            )
            found.append(Violation(rule, _urn(service), message))
    return found


def production_base_protected(resources: Resources, context: RuleContext) -> list[Violation]:
    """On production, the `base` release (Istio's CRDs) is protected: deleting it deletes every CR."""
    rule = "production-base-protected"
    if not context.production:
        return []
    found: list[Violation] = []
    for release in _helm_installs(resources):
        if _chart(release) == "base" and release.get("protect") is not True:
            message = (
                f"base {_install_kind(release)} {_name(release)} holds Istio's CRDs and has protect: false; "
                "production requires protect: true"
            )
            found.append(Violation(rule, _urn(release), message))
    return found


def istio_version_supported(resources: Resources, context: RuleContext) -> list[Violation]:
    """Every Istio chart's minor is inside upstream support on `context.today`.

    Reports on every stack; the policy pack makes it mandatory on production only.
    """
    rule = "istio-version-supported"
    found: list[Violation] = []
    for release in _helm_installs(resources):
        version = _inputs(release).get("version")
        # A version that is not an exact pin is `exact-chart-versions`' violation, not this rule's.
        if _chart(release) not in ISTIO_CHARTS or not isinstance(version, str):
            continue
        if not EXACT_VERSION.match(version):
            continue
        status = support_status(version, context.today)
        if status.supported:
            continue
        message = (
            f"Istio {version} (chart {_chart(release)}) is out of support: {status.reason}; "
            f"on {context.today.isoformat()} use {oldest_supported_minor(context.today)} or newer"
        )
        found.append(Violation(rule, _urn(release), message))
    return found


def istio_version_known(resources: Resources, context: RuleContext) -> list[Violation]:
    """Every Istio chart's version is one the support table knows, so `istio-version-supported` can judge it.

    A version newer than the table (or a table gone stale) passes `istio-version-supported`, which
    cannot call the newest Istio unsupported; this rule says so instead of letting it pass silently.
    Always advisory: an unknown version is a reason to look, not to block a deploy.
    """
    rule = "istio-version-known"
    found: list[Violation] = []
    for release in _helm_installs(resources):
        version = _inputs(release).get("version")
        if (
            _chart(release) not in ISTIO_CHARTS
            or not isinstance(version, str)
            or not EXACT_VERSION.match(version)
        ):
            continue
        reason = unknown_reason(version, context.today)
        if reason is None:
            continue
        message = (
            f"Istio {version} (chart {_chart(release)}) is unknown to the support table: {reason}; check "
            f"upstream ({UPSTREAM_SUPPORT_PAGE}) and update policy/istio_releases.py"
        )
        found.append(Violation(rule, _urn(release), message))
    return found


def _ambient_setting(release: Resource) -> str | None:
    """How a Helm install runs ambient mode ("" for ztunnel, which exists for nothing else), or None.

    istiod and istio-cni take the `ambient` profile (https://istio.io/latest/docs/ambient/install/helm/);
    istio-cni also runs ambient with `ambient.enabled` set, or `cni.ambient.enabled` in the charts before
    1.22, whose values sat under `cni` (the profile sets that). istio-cni without them, and istiod
    without the profile, serve sidecars only.
    """
    chart = _chart(release)
    if chart == "ztunnel":
        return ""
    if chart not in ("istiod", "cni"):
        return None
    values = _inputs(release).get("values")
    if _dig(values, "profile") == AMBIENT:
        return "profile ambient"
    if chart == "cni":
        for path in (("ambient", "enabled"), ("cni", "ambient", "enabled")):
            if _dig(values, *path) is True:
                return f"{'.'.join(path)}: true"
    return None


def _label(resource: Resource, key: str) -> str | None:
    """A namespace label's value when the plan shows it as text, else None (absent, unknown, secret)."""
    value = _dig(_inputs(resource), "metadata", "labels", key)
    return value if isinstance(value, str) and value not in (SECRET, UNKNOWN) else None


def _is_ambient_namespace(resource: Resource) -> bool:
    return _label(resource, DATAPLANE_MODE_LABEL) == AMBIENT


def _injection_labels(resource: Resource) -> list[str]:
    """The labels that give a namespace's pods sidecars, as `key=value`."""
    found: list[str] = []
    if _label(resource, INJECTION_LABEL) == INJECTION_ENABLED:
        found.append(f"{INJECTION_LABEL}={INJECTION_ENABLED}")
    revision = _label(resource, REVISION_LABEL)
    if revision:
        found.append(f"{REVISION_LABEL}={revision}")
    return found


def production_ambient_ga(resources: Resources, context: RuleContext) -> list[Violation]:
    """On production, ambient mode runs Istio 1.24.0 or newer, where it is GA.

    Ambient is istio-cni or istiod with the ambient profile, ztunnel, or a namespace labelled
    `istio.io/dataplane-mode=ambient` (judged by the istiod versions of the stack, which program it).
    """
    rule = "production-ambient-ga"
    if not context.production:
        return []
    allowed = f"on production ambient needs Istio {AMBIENT_GA_VERSION} or newer, where it is GA"
    found: list[Violation] = []
    old_istiods: list[str] = []
    for release in _helm_installs(resources):
        version = _exact_version(release)
        if version is None or version >= AMBIENT_GA:
            continue
        name = f"{_chart(release)} {_install_kind(release)} {_name(release)}"
        if _chart(release) == "istiod":
            old_istiods.append(f"{name} is at Istio {_dotted(version)}")
        setting = _ambient_setting(release)
        if setting is None:
            continue
        how = f" ({setting})" if setting else ""
        message = f"{name} runs ambient mode{how} at Istio {_dotted(version)}; {allowed}"
        found.append(Violation(rule, _urn(release), message))
    if old_istiods:
        for namespace in (r for r in resources if r.get("type") in NAMESPACE_TYPES):
            if not _is_ambient_namespace(namespace):
                continue
            message = (
                f"namespace {_object_name(namespace)} is ambient ({DATAPLANE_MODE_LABEL}={AMBIENT}) and "
                f"{' and '.join(old_istiods)}; {allowed}"
            )
            found.append(Violation(rule, _urn(namespace), message))
    return found


def _gateway_api_crds(resources: Resources) -> list[tuple[str, Resource]]:
    """The Gateway API CRDs of the stack (`<plural>.gateway.networking.k8s.io`), by name."""
    suffix = f".{gateway_api.GROUP}"
    return [
        (_object_name(crd), crd) for crd in _of_type(resources, CRD) if _object_name(crd).endswith(suffix)
    ]


def _newest_control_plane(resources: Resources) -> tuple[tuple[int, int, int], Resource] | None:
    """The newest exact istiod or base version of the stack, with its install (istiod first on a tie)."""
    found = [
        ((version, _chart(install) == "istiod"), install)
        for install in _helm_installs(resources)
        if _chart(install) in CONTROL_PLANE_CHARTS and (version := _exact_version(install)) is not None
    ]
    if not found:
        return None
    (version, _), install = max(found, key=lambda pair: pair[0])
    return version, install


def gateway_api_crds_minimum(resources: Resources, context: RuleContext) -> list[Violation]:
    """Every Gateway API CRD is at or above the release the stack's newest Istio needs of it.

    The minimum is `GATEWAY_API_FOR_ISTIO[<minor>].minimum(<crd>)` of components/gateway_api_versions.py
    for the newest istiod or base version. From 1.30 istiod does not process the kinds of an older CRD
    (IST0176, https://istio.io/latest/docs/reference/config/analysis/ist0176/), and before it Istio needs
    the `v1` the CRDs serve from v1.0.0. A minor the table does not know is `gateway-api-crds-known`'s.
    """
    rule = "gateway-api-crds-minimum"
    crds = _gateway_api_crds(resources)
    newest = _newest_control_plane(resources) if crds else None
    if newest is None:
        return []
    version, install = newest
    table = gateway_api.GATEWAY_API_FOR_ISTIO.get(_dotted(version[:2]))
    if table is None:
        return []
    found: list[Violation] = []
    for name, crd in crds:
        bundle = _dig(_inputs(crd), "metadata", "annotations", gateway_api.BUNDLE_VERSION_ANNOTATION)
        if bundle in (SECRET, UNKNOWN):
            continue
        minimum = table.minimum(name)
        needs = f"Istio {_dotted(version)} (chart {_chart(install)}) needs {minimum} or newer"
        if bundle is None:
            message = (
                f"Gateway API CRD {name} has no {gateway_api.BUNDLE_VERSION_ANNOTATION} annotation; {needs}"
            )
        elif (release := gateway_api.parse_release(bundle)) is None:
            message = (
                f"Gateway API CRD {name} has bundle-version {_show(bundle)}, no release like v1.2.1; {needs}"
            )
        elif release < (gateway_api.parse_release(minimum) or (0, 0, 0)):
            message = f"Gateway API CRD {name} has bundle-version {bundle}; {needs}"
        else:
            continue
        found.append(Violation(rule, _urn(crd), message))
    return found


def gateway_api_crds_known(resources: Resources, context: RuleContext) -> list[Violation]:
    """The newest Istio of a stack with Gateway API CRDs is a minor the Gateway API table knows.

    Otherwise `gateway-api-crds-minimum` has no minimum to hold the CRDs to: this rule says so instead of
    letting them pass silently. Always advisory, as `istio-version-known`: a reason to look, not to block.
    """
    rule = "gateway-api-crds-known"
    crds = _gateway_api_crds(resources)
    newest = _newest_control_plane(resources) if crds else None
    if newest is None:
        return []
    version, install = newest
    minor = _dotted(version[:2])
    if minor in gateway_api.GATEWAY_API_FOR_ISTIO:
        return []
    known = sorted(
        gateway_api.GATEWAY_API_FOR_ISTIO, key=lambda key: tuple(int(part) for part in key.split("."))
    )
    message = (
        f"Istio {_dotted(version)} (chart {_chart(install)}) is unknown to the Gateway API table, which knows "
        f"{known[0]} to {known[-1]}: the {len(crds)} Gateway API CRDs are not checked; add {minor} to "
        "components/gateway_api_versions.py from istio/istio at that tag"
    )
    return [Violation(rule, _urn(install), message)]


def ambient_namespaces_not_injected(resources: Resources, context: RuleContext) -> list[Violation]:
    """No namespace is both ambient and injected: its pods would get sidecars, which take precedence over
    ztunnel (https://istio.io/latest/docs/ambient/migrate/enable-ambient-mode/), so it is not ambient.

    A namespace may be labelled by several resources (a Namespace and a NamespacePatch of it): they are
    merged by metadata.name. One violation per namespace, on the first (by URN) resource making it ambient.
    """
    rule = "ambient-namespaces-not-injected"
    ambient: dict[str, list[Resource]] = {}
    injected: dict[str, list[str]] = {}
    for resource in sorted((r for r in resources if r.get("type") in NAMESPACE_TYPES), key=_urn):
        name = _object_name(resource)
        if _is_ambient_namespace(resource):
            ambient.setdefault(name, []).append(resource)
        injected.setdefault(name, []).extend(
            f"{label} on {_kind(resource)} {_name(resource)}" for label in _injection_labels(resource)
        )
    found: list[Violation] = []
    for name, labelled in ambient.items():
        if not injected.get(name):
            continue
        where = ", ".join(f"{_kind(r)} {_name(r)}" for r in labelled)
        message = (
            f"namespace {name} is ambient ({DATAPLANE_MODE_LABEL}={AMBIENT} on {where}) and injected "
            f"({', '.join(injected[name])}); sidecars take precedence over ztunnel: label it for one data plane"
        )
        found.append(Violation(rule, _urn(labelled[0]), message))
    return found


def _kiali_strategy(config_map: Resource) -> tuple[str | None, str | None]:
    """(strategy, None), or (None, why it cannot be read) for Kiali's `config.yaml`."""
    text = _dig(_inputs(config_map), "data", "config.yaml")
    if text is None:
        return KIALI_DEFAULT_STRATEGY, None
    if text in (SECRET, UNKNOWN):
        return None, "config.yaml is not visible in the plan"
    if not isinstance(text, str):
        return None, "config.yaml is not text"
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return None, f"config.yaml is not YAML: {str(error).splitlines()[0]}"
    if config is None:
        return KIALI_DEFAULT_STRATEGY, None
    if not isinstance(config, Mapping):
        return None, "config.yaml is not a mapping"
    auth = config.get("auth")
    if auth is None:
        return KIALI_DEFAULT_STRATEGY, None
    if not isinstance(auth, Mapping):
        return None, "auth is not a mapping"
    strategy = auth.get("strategy")
    if strategy is None:
        return KIALI_DEFAULT_STRATEGY, None
    if not isinstance(strategy, str):
        return None, f"auth.strategy is {_show(strategy)}"
    return strategy.strip().lower(), None


def kiali_not_anonymous_when_exposed(resources: Resources, context: RuleContext) -> list[Violation]:
    """A Kiali reachable from outside the cluster must ask who is there (any stack, not only production)."""
    rule = "kiali-not-anonymous-when-exposed"
    config_maps = {
        _object_namespace(cm): cm for cm in _of_type(resources, CONFIG_MAP) if _object_name(cm) == "kiali"
    }
    found: list[Violation] = []
    for service in _of_type(resources, SERVICE):
        service_type = _service_type(service)
        if _object_name(service) != "kiali" or service_type not in EXPOSED_SERVICE_TYPES:
            continue
        namespace = _object_namespace(service)
        config_map = config_maps.get(namespace)
        if config_map is None:
            continue  # no config of ours: Kiali runs with its default, token
        where = f"{namespace}/kiali" if namespace else "kiali"
        strategy, problem = _kiali_strategy(config_map)
        if problem is not None:
            message = (
                f"Kiali Service {where} has type {service_type} and the auth strategy in ConfigMap "
                f"{where} cannot be read ({problem}); an exposed Kiali needs {KIALI_SAFE_STRATEGIES}"
            )
        elif strategy == "anonymous":
            message = (
                f"Kiali Service {where} has type {service_type} and ConfigMap {where} sets "
                f"auth.strategy anonymous; an exposed Kiali needs {KIALI_SAFE_STRATEGIES}"
            )
        else:
            continue
        found.append(Violation(rule, _urn(service), message))
    return found


def explicit_provider(resources: Resources, context: RuleContext) -> list[Violation]:
    """Every Kubernetes resource goes through the stack's provider, never the ambient kubeconfig."""
    rule = "explicit-provider"
    wanted = context.cluster_provider or "the stack's kubernetes provider"
    advice = f"pass {wanted} with ResourceOptions(provider=...) or providers=..."
    found: list[Violation] = []
    for resource in resources:
        type_ = str(resource.get("type") or "")
        if not type_.startswith("kubernetes:") or type_ in COMPONENT_TYPES:
            continue
        if resource.get("custom") is False:
            continue  # a component: it has no provider of its own, its children are checked
        provider = resource.get("provider")
        if not provider:
            message = f"has no explicit provider, so it would use the ambient kubeconfig; {advice}"
        elif _is_default_provider(str(provider)):
            message = f"uses the default provider {_provider_name(str(provider))}; {advice}"
        else:
            continue
        found.append(Violation(rule, _urn(resource), message))
    return found


def _split_commands(script: str) -> list[list[str]]:
    """A shell script as its simple commands (token lists), split at `&&`, `||`, `;`, `|`, `&`, newlines.

    A backslash-newline is removed, as the shell removes it: `--context=kind-\\<newline>prod` is one word.
    Raises ValueError (from shlex) on unbalanced quotes.
    """
    lexer = shlex.shlex(script.replace("\\\n", ""), posix=True, punctuation_chars=_OPERATOR_CHARS)
    lexer.whitespace = " \t\r"  # newlines separate commands, so they must reach us as operators
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and all(char in _OPERATOR_CHARS for char in token):
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def _program_index(command: Sequence[str]) -> int | None:
    """Index of the program a simple command runs: past `VAR=value` prefixes and wrappers like `sudo`.

    Only the command word counts, so `echo kubectl` or `grep kubectl` are not kubectl calls.
    """
    index = 0
    while index < len(command):
        token = command[index]
        if _ASSIGNMENT.match(token) or token in _RESERVED:
            index += 1
            continue
        program = PurePosixPath(token).name
        if program not in _WRAPPERS:
            return index
        index += 1
        # The wrapper's own options (and `timeout`'s duration) come before the wrapped program.
        while index < len(command) and (
            command[index].startswith("-")
            or _ASSIGNMENT.match(command[index])
            or (program == "timeout" and command[index][:1].isdigit())
        ):
            index += 1
    return None


def _kubectl_calls(script: str) -> Iterator[list[str]]:
    """Every kubectl invocation in `script` as `[kubectl, *args]`, including inside `bash -c '...'`."""
    for command in _split_commands(script):
        index = _program_index(command)
        if index is None:
            continue
        program = PurePosixPath(command[index]).name
        if program == "kubectl":
            yield list(command[index:])
        elif program in _SHELLS:
            rest = command[index + 1 :]
            flag = next((i for i, arg in enumerate(rest) if _is_c_flag(arg)), None)
            if flag is not None and flag + 1 < len(rest):
                yield from _kubectl_calls(rest[flag + 1])


def _is_c_flag(token: str) -> bool:
    return token.startswith("-") and not token.startswith("--") and "c" in token[1:]


def _flag(args: Sequence[str], name: str) -> str | None:
    """The value of `--name value` / `--name=value` (the last one wins, as with kubectl), or None."""
    value: str | None = None
    for index, arg in enumerate(args):
        if arg == "--":
            break  # what follows belongs to the command run by `kubectl exec` / `kubectl debug`
        if arg == name:
            value = args[index + 1] if index + 1 < len(args) else ""
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1 :]
    return value


def commands_name_cluster(resources: Resources, context: RuleContext) -> list[Violation]:
    """Every kubectl call in a Command names the stack's cluster, so none follows `current-context`."""
    rule = "commands-name-cluster"
    found: list[Violation] = []
    for command in _of_type(resources, COMMAND):
        urn = _urn(command)
        for field in ("create", "update", "delete"):
            script = _inputs(command).get(field)
            if not isinstance(script, str) or script in (SECRET, UNKNOWN) or "kubectl" not in script:
                continue
            try:
                calls = list(_kubectl_calls(script))
            except ValueError as error:
                message = f"{field}: cannot be parsed to check its kubectl calls ({error})"
                found.append(Violation(rule, urn, message))
                continue
            for call in calls:
                found.extend(Violation(rule, urn, f"{field}: {m}") for m in _call_problems(call, context))
    return found


def _call_problems(call: Sequence[str], context: RuleContext) -> Iterator[str]:
    shown = f"kubectl call `{shlex.join(call)}`"
    if context.kube_context is None:
        yield f"{shown} cannot be checked: the stack has no explicit kubernetes provider with a context"
        return
    args = call[1:]
    used = _flag(args, "--context")
    if used is None:
        yield f"{shown} has no --context; expected --context {context.kube_context}"
    elif used != context.kube_context:
        yield f"{shown} uses --context {used}; expected --context {context.kube_context}"
    if context.kubeconfig is None:
        return
    used = _flag(args, "--kubeconfig")
    # A secret kubeconfig in an offline plan: its path cannot be compared, only its presence.
    expected = "the provider's kubeconfig" if context.kubeconfig == SECRET else context.kubeconfig
    if used is None:
        yield f"{shown} has no --kubeconfig; expected --kubeconfig {expected}"
    elif context.kubeconfig != SECRET and used != context.kubeconfig:
        yield f"{shown} uses --kubeconfig {used}; expected --kubeconfig {expected}"


# --- all together ---------------------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    Rule(
        "exact-chart-versions",
        "Helm releases and v4 Charts pin an exact x.y.z chart version.",
        exact_chart_versions,
    ),
    Rule(
        "node-ports-valid",
        f"nodePorts are in {NODE_PORT_MIN}-{NODE_PORT_MAX} and used once per stack.",
        node_ports_valid,
    ),
    Rule(
        "production-dashboards-internal",
        "On production, the kiali, prometheus, grafana and tracing Services are ClusterIP.",
        production_dashboards_internal,
    ),
    Rule(
        "production-base-protected",
        "On production, the Istio base release or v4 Chart (the CRDs) has protect: true.",
        production_base_protected,
    ),
    Rule(
        "production-ambient-ga",
        "On production, ambient mode (istio-cni or istiod with the ambient profile, ztunnel, an ambient "
        "namespace's istiod) runs Istio 1.24.0 or newer, where it is GA.",
        production_ambient_ga,
    ),
    Rule(
        "istio-version-supported",
        "Istio charts use a minor release inside upstream support.",
        istio_version_supported,
    ),
    Rule(
        "istio-version-known",
        "Istio charts use a version the support table knows (advisory: check upstream otherwise).",
        istio_version_known,
    ),
    Rule(
        "gateway-api-crds-minimum",
        "Gateway API CRDs are at or above the release the newest istiod or base version needs of them.",
        gateway_api_crds_minimum,
    ),
    Rule(
        "gateway-api-crds-known",
        "With Gateway API CRDs, the newest Istio is a minor the Gateway API table knows (advisory: "
        "update the table otherwise).",
        gateway_api_crds_known,
    ),
    Rule(
        "kiali-not-anonymous-when-exposed",
        "A NodePort or LoadBalancer Kiali does not use the anonymous auth strategy.",
        kiali_not_anonymous_when_exposed,
    ),
    Rule(
        "ambient-namespaces-not-injected",
        "No namespace is both ambient (istio.io/dataplane-mode=ambient) and injected (istio-injection=enabled "
        "or istio.io/rev).",
        ambient_namespaces_not_injected,
    ),
    Rule(
        "explicit-provider",
        "Kubernetes resources use the stack's explicit provider, never a default provider.",
        explicit_provider,
    ),
    Rule(
        "commands-name-cluster",
        "Every kubectl call in a Command passes the stack's --context (and --kubeconfig when set).",
        commands_name_cluster,
    ),
)
RULE_IDS: tuple[str, ...] = tuple(rule.id for rule in RULES)

# Rules that block a production stack but only warn on the others: a dev stack that reproduces the
# hand-made setup (an old Istio, anonymous Kiali on a NodePort) is told, not stopped.
PRODUCTION_MANDATORY_RULES = frozenset({"istio-version-supported", "kiali-not-anonymous-when-exposed"})
# Rules that only ever warn, on every stack.
ADVISORY_RULES = frozenset({"istio-version-known", "gateway-api-crds-known"})


def is_advisory(rule_id: str, context: RuleContext) -> bool:
    """Whether a violation of `rule_id` on this stack is a warning rather than a failure."""
    return rule_id in ADVISORY_RULES or (rule_id in PRODUCTION_MANDATORY_RULES and not context.production)


def rule_by_id(rule_id: str) -> Rule:
    """The rule with id `rule_id`; KeyError when there is none."""
    for candidate in RULES:
        if candidate.id == rule_id:
            return candidate
    raise KeyError(rule_id)


def check_all(resources: Resources, context: RuleContext) -> list[Violation]:
    """Every rule's violations, ordered by rule (as in RULES), then URN; each rule's own order within."""
    order = {rule_id: index for index, rule_id in enumerate(RULE_IDS)}
    found = [violation for r in RULES for violation in r.check(resources, context)]
    return sorted(found, key=lambda v: (order[v.rule], v.urn))


def plan_resources(plan: Mapping[str, Any]) -> Resources:
    resources = plan.get("resources") or []
    if not _is_list(resources) or not all(_is_mapping(r) for r in resources):
        raise ValueError("plan['resources'] must be a list of resource objects")
    return resources


def check_plan(plan: Mapping[str, Any], today: date) -> list[Violation]:
    """All violations of a `meshplan` plan (`{"resources": [...], ...}`) on `today`."""
    resources = plan_resources(plan)
    return check_all(resources, context_for(resources, today))


def plan_context(plan: Mapping[str, Any], today: date) -> RuleContext:
    """The context the rules judge a `meshplan` plan in (e.g. for `is_advisory`)."""
    return context_for(plan_resources(plan), today)
