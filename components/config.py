"""The stack's configuration: typed, frozen, and validated before any resource is declared.

`parse_config` is pure Python so every rule can be unit-tested without Pulumi. It collects every
mistake in the stack and raises one `ConfigError` listing them all; `load_config` turns that into a
single `pulumi.RunError`, so a user never sees a Python stack trace for a config mistake.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from components.addon_source import KNOWN_ADDONS, UPSTREAM_ADDON_SOURCE, is_url
from components.gateway_api_versions import CHANNELS as GATEWAY_API_CHANNELS
from components.gateway_api_versions import DEFAULT_SOURCE as DEFAULT_GATEWAY_API_SOURCE
from components.gateway_api_versions import FIRST_DEFAULT_ISTIO as FIRST_GATEWAY_API_DEFAULT
from components.gateway_api_versions import parse_release, release_for

PROJECT = "istio-mesh"
# The control plane's namespace: the charts, the addons and the dashboards all live here.
ISTIO_NAMESPACE = "istio-system"
TOP_LEVEL_KEYS = (
    "cluster",
    "istio",
    "injection",
    "addons",
    "dashboards",
    "protect",
    "adopt",
    "environment",
    "security",
    "grafanaAdminPassword",
    "kialiSigningKey",
    "gatewayApi",
)

PROFILES = ("default", "demo", "minimal")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
GATEWAYS = ("ingress", "egress")
MTLS_MODES = ("STRICT", "PERMISSIVE")
# How workloads join the mesh: a sidecar per pod, or ambient (istio-cni and the ztunnel node proxy).
DATAPLANES = ("sidecar", "ambient")
# Ambient mode's charts (cni with `profile: ambient`, ztunnel) are published from 1.22, the release
# that made ambient beta (https://istio.io/latest/news/releases/1.22.x/announcing-1.22/); GA in 1.24.
FIRST_AMBIENT = (1, 22, 0)
# istio-cni and ztunnel upgrade in place, one per node whatever the revisions, and stay within this
# many minors of every control plane (https://istio.io/latest/docs/ambient/upgrade/helm/).
AMBIENT_MAX_MINOR_SKEW = 1
# Ambient mode's node agents by the release names of Istio's Helm guide
# (https://istio.io/latest/docs/ambient/install/helm/), in install order, each with the DaemonSet its
# chart (`cni`, `ztunnel`) runs.
NODE_AGENT_DAEMONSETS: Mapping[str, str] = MappingProxyType(
    {"istio-cni": "istio-cni-node", "ztunnel": "ztunnel"}
)
# `istioctl waypoint apply --for`: the traffic a waypoint handles (istio/istio istioctl/pkg/waypoint).
WAYPOINT_TRAFFIC = ("service", "workload", "all", "none")
KIALI_AUTH = ("anonymous", "token")
GRAFANA_AUTH = ("anonymous", "password")
# The login each dashboard gets unless the stack says otherwise: never anonymous by default.
DEFAULT_AUTH: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType(
    {"kiali": ("token", KIALI_AUTH), "grafana": ("password", GRAFANA_AUTH)}
)
MIN_VERSION = (1, 20, 0)
NODE_PORT_RANGE = (30000, 32767)
# Istio's Helm repository since the move off Google Cloud: "All Helm charts of all Istio versions are
# currently available at https://blob.istio.io/istio-release/charts", 1.31+ only there, and the old
# https://istio-release.storage.googleapis.com/charts loses its charts in December 2026
# (https://istio.io/latest/blog/2026/retirement-of-gcp/). Every version this program accepts (1.20+)
# is served here, so there is one default, not one per version. The same charts are published as OCI
# artifacts at oci://ghcr.io/istio/release/charts.
DEFAULT_CHART_REPOSITORY = "https://blob.istio.io/istio-release/charts"
# The Google Cloud homes of the charts (HTTPS and OCI): 1.30 is the last minor published there and
# they are emptied in December 2026 (same post). Until then a stack may still name one for 1.30 and
# older; for 1.31 on it cannot work at all, so that is a config error rather than a failed `helm pull`.
RETIRED_CHART_REPOSITORIES = (
    "https://istio-release.storage.googleapis.com/charts",
    "oci://gcr.io/istio-release/charts",
)
FIRST_VERSION_NOT_ON_RETIRED_REPOSITORIES = (1, 31, 0)
DEFAULT_ADDON_SOURCE = UPSTREAM_ADDON_SOURCE
DEFAULT_ADDONS = ("prometheus", "grafana", "jaeger", "kiali")
SECRET_KEYS = ("grafanaAdminPassword", "kialiSigningKey")

# Kiali encrypts its login sessions with AES under `login_token.signing_key` and, for every strategy
# but anonymous, refuses to start unless the key is 16, 24 or 32 bytes long (kiali/kiali:
# `ValidateSigningKey` in config/token.go of v1.76, Istio 1.20's addon; `validateSigningKey` in
# config/config.go from v1.87 to v2.26, Istio 1.30's).
# Kiali reads the key from /kiali-override-secrets/login-token-signing-key/value.txt when that file
# exists: up to v2.0 as the file's bytes exactly, from v2.21 with surrounding whitespace trimmed, so
# a key with surrounding whitespace would not be the same key on every version and is refused.
KIALI_SIGNING_KEY_LENGTHS = (16, 24, 32)
KIALI_SIGNING_KEY_ALLOWED = (
    "expected a Pulumi secret of exactly 16, 24 or 32 bytes without surrounding whitespace (Kiali's "
    "login_token.signing_key, an AES key); leave it unset and the stack generates one"
)
# meshplan renders plans offline, where a stack file's `secure:` values cannot be decrypted: it hands
# the program this mask instead (meshplan/stacks.py). Its length says nothing about the real value.
OFFLINE_SECRET_MASK = "[secret]"

# The gateway chart versions whose own values fail their values.schema.json under Helm 3.18.5 and
# newer (the kubernetes provider embeds 3.18.6): Helm's new JSON-schema library ignores the root
# `additionalProperties`/`properties` beside the root `$ref`, so the chart's top-level `defaults` (1.21
# to 1.23) or `_internal_defaults_do_not_set` (1.24 on) key is "not allowed" and every install fails
# (https://github.com/istio/istio/issues/57354). Fixed by https://github.com/istio/istio/pull/57457
# in 1.28.0, backported to 1.27.1, 1.26.4 and 1.25.5; no 1.21 to 1.24 patch has the fix. Found by
# rendering manifests/charts/gateway of every tag from 1.20.0 to 1.30.3 with Helm 4.1.4, which
# refuses exactly these (and the published 1.23.6 and 1.24.6 charts likewise).
# (first affected, last affected, first fixed release after them)
HELM_REJECTED_GATEWAY_CHARTS: tuple[tuple[tuple[int, int, int], tuple[int, int, int], str], ...] = (
    ((1, 21, 0), (1, 25, 4), "1.25.5"),
    ((1, 26, 0), (1, 26, 3), "1.26.4"),
    ((1, 27, 0), (1, 27, 0), "1.27.1"),
)
GATEWAY_SCHEMA_ISSUE = "https://github.com/istio/istio/issues/57354"

# Which gateways each profile brings when the stack does not list them. Helm profiles never create
# gateways themselves (https://istio.io/latest/docs/setup/install/helm/), so they are our releases.
PROFILE_GATEWAYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"default": ("ingress",), "demo": ("ingress", "egress"), "minimal": ()}
)
DEFAULT_GATEWAY_SERVICE_TYPE: Mapping[str, str] = MappingProxyType(
    {"ingress": "LoadBalancer", "egress": "ClusterIP"}
)

# The dashboards that can be exposed: the addon that owns the Service, the Service's name in the
# addon manifest, and the Service ports (by port number) that `nodePort` and `metricsNodePort` bind.
DASHBOARDS: Mapping[str, tuple[str, str, int, int | None]] = MappingProxyType(
    {
        "kiali": ("kiali", "kiali", 20001, 9090),
        "prometheus": ("prometheus", "prometheus", 9090, None),
        "grafana": ("grafana", "grafana", 3000, None),
        "jaeger": ("jaeger", "tracing", 80, None),
    }
)

_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _is_dns_label(value: Any) -> bool:
    """A Kubernetes DNS-1123 label: namespace, revision and tag names."""
    return isinstance(value, str) and len(value) <= 63 and bool(_DNS_LABEL.match(value))


@dataclass(frozen=True)
class SecretShape:
    """What validation may know of a secret config value: its type and length, never its text.

    Its repr is what an error shows, so a config error names the problem and not the secret.
    """

    kind: str  # "string", "mapping" or "list"; "unknown" when the text is meshplan's offline mask
    length: int = 0  # UTF-8 bytes of a string
    padded: bool = False  # a string with leading or trailing whitespace

    @classmethod
    def of(cls, text: str) -> SecretShape:
        """The shape of a config value as Pulumi hands it to the program: a string, JSON for objects."""
        if text == OFFLINE_SECRET_MASK:
            return cls("unknown")
        try:
            structured = json.loads(text)
        except ValueError:
            structured = None
        if isinstance(structured, dict | list):
            return cls("mapping" if isinstance(structured, dict) else "list")
        return cls("string", len(text.encode()), text != text.strip())

    def __repr__(self) -> str:
        if self.kind != "string":
            return f"[secret] (a {self.kind})" if self.kind in ("mapping", "list") else "[secret]"
        padding = ", with surrounding whitespace" if self.padded else ""
        return f"[secret] ({self.length} bytes{padding})"


class ConfigError(Exception):
    """Every problem found in a stack's configuration, each naming its key path."""

    def __init__(self, problems: Sequence[str]):
        self.problems = tuple(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid stack configuration ({len(self.problems)} problem(s)):\n{listing}")


@dataclass(frozen=True)
class ClusterConfig:
    """The one cluster this stack owns: a kubeconfig context, and optionally the file that holds it."""

    context: str
    kubeconfig: str = ""  # empty: the usual kubeconfig loading rules, but always with `context`


@dataclass(frozen=True)
class GatewayConfig:
    """One `gateway` chart release: ingress or egress, its Service type and the control plane it follows."""

    name: str  # "ingress" or "egress"
    service_type: str
    tag: str | None = None  # with revisions: the tag (or revision) whose control plane injects it

    @property
    def release_name(self) -> str:
        return f"istio-{self.name}gateway"


@dataclass(frozen=True)
class Revision:
    """One istiod release installed side by side with others (`istio.revisions`), named by its `revision` value."""

    name: str  # a DNS label, the istiod release's `revision` value
    version: str

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        return parse_version(self.version)


@dataclass(frozen=True)
class IstioConfig:
    """What to install: the chart version and repository, the profile, the gateways and extra istiod values."""

    version: str
    profile: str = "default"
    chart_repository: str = DEFAULT_CHART_REPOSITORY
    gateways: tuple[GatewayConfig, ...] = ()
    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    revisions: tuple[Revision, ...] = ()  # sorted by name; empty: one control plane without revision
    tags: tuple[tuple[str, str], ...] = ()  # (tag, revision), sorted by tag
    default_revision: str | None = None
    # Let one upgrade skip more than two minors (components/upgrade_path.py); off by default.
    allow_minor_skip: bool = False
    dataplane: str = "sidecar"  # sidecar | ambient: with ambient, istio-cni and ztunnel too
    # False when the stack file's `dataplane` was refused: `dataplane` is then the default, and the rules
    # that depend on it stay quiet, so the one mistake is reported once, as itself.
    dataplane_valid: bool = field(default=True, compare=False, repr=False)

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        return parse_version(self.version)

    @property
    def ambient(self) -> bool:
        return self.dataplane == "ambient"

    @property
    def node_agent_version(self) -> str:
        """The chart version of istio-cni and ztunnel: one per node, upgraded in place, following the
        control plane that serves the default tag (`istio.version` without revisions), like gateways."""
        return self.default.version if self.default else self.version

    @property
    def revisioned(self) -> bool:
        return bool(self.revisions)

    @property
    def crd_version(self) -> str:
        """The base chart's version: the newest of `version` and every revision, so CRDs lead upgrades."""
        return max((self.version, *(r.version for r in self.revisions)), key=parse_version)

    def revision(self, target: str) -> Revision:
        """The revision a tag or revision name resolves to (validated to exist)."""
        name = dict(self.tags).get(target, target)
        return next(r for r in self.revisions if r.name == name)

    @property
    def default(self) -> Revision | None:
        return self.revision(self.default_revision) if self.default_revision else None


@dataclass(frozen=True)
class InjectionConfig:
    """Which application namespaces get sidecars, and whether their Deployments are restarted to get them."""

    namespaces: tuple[str, ...] = ()
    restart_workloads: bool = True
    # Namespaces routed by tag (or revision) with `istio.io/rev`; the others use istio-injection.
    routes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Ambient namespaces (`istio.io/dataplane-mode=ambient`), never also in `namespaces`.
    ambient: tuple[str, ...] = ()
    # A waypoint per ambient namespace, by namespace: the traffic it handles (WAYPOINT_TRAFFIC).
    waypoints: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class AddonsConfig:
    """Which of Istio's `samples/addons` to apply, and where their manifests come from."""

    enabled: tuple[str, ...] = DEFAULT_ADDONS
    source: str = DEFAULT_ADDON_SOURCE


@dataclass(frozen=True)
class DashboardConfig:
    """How one addon dashboard is reached (its Service's type and node ports) and how users log in."""

    name: str  # key of DASHBOARDS
    service_type: str = "ClusterIP"
    node_port: int | None = None
    metrics_node_port: int | None = None
    auth: str | None = None  # kiali: anonymous | token; grafana: anonymous | password

    @property
    def addon(self) -> str:
        return DASHBOARDS[self.name][0]

    @property
    def service_name(self) -> str:
        return DASHBOARDS[self.name][1]

    @property
    def port(self) -> int:
        return DASHBOARDS[self.name][2]

    @property
    def metrics_port(self) -> int | None:
        return DASHBOARDS[self.name][3]


@dataclass(frozen=True)
class GatewayApiConfig:
    """The Kubernetes Gateway API CRDs this stack installs (components/gateway_api.py)."""

    version: str  # a release tag, `v1.5.1`
    channel: str = "standard"
    source: str = DEFAULT_GATEWAY_API_SOURCE
    # Take over CRDs of another version that something else applied; else such a cluster is refused.
    take_over: bool = False

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        release = parse_release(self.version)
        assert release is not None  # validated
        return release


@dataclass(frozen=True)
class MeshConfig:
    """The whole validated stack configuration: what `__main__.py` hands to the Mesh component."""

    cluster: ClusterConfig
    istio: IstioConfig
    injection: InjectionConfig = InjectionConfig()
    addons: AddonsConfig = AddonsConfig()
    dashboards: tuple[DashboardConfig, ...] = ()
    protect: bool = False
    # Take over a hand-made installation in the next `up` (components/adoption.py); else it is refused.
    adopt: bool = False
    environment: str = "development"
    mtls: str | None = None  # STRICT | PERMISSIVE: a mesh-wide PeerAuthentication
    grafana_admin_password: bool = False  # set as a Pulumi secret; the value never enters MeshConfig
    kiali_signing_key: bool = False  # likewise: set, else generated (components/generated_password.py)
    gateway_api: GatewayApiConfig | None = None  # None: this stack leaves the Gateway API CRDs alone

    @property
    def production(self) -> bool:
        return self.environment == "production"

    def dashboard(self, name: str) -> DashboardConfig:
        return find_dashboard(self.dashboards, name)


def find_dashboard(dashboards: Sequence[DashboardConfig], name: str) -> DashboardConfig:
    """The stack's dashboard settings, or the defaults (ClusterIP, secure login) when absent."""
    for dashboard in dashboards:
        if dashboard.name == name:
            return dashboard
    default_auth = DEFAULT_AUTH[name][0] if name in DEFAULT_AUTH else None
    return DashboardConfig(name=name, auth=default_auth)


def parse_version(text: str) -> tuple[int, int, int]:
    match = _VERSION.match(text)
    if not match:
        raise ValueError(f"not an exact x.y.z version: {text!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


T = TypeVar("T")


class _Problems:
    """Collects problems as `path: got <value>; <what is allowed>` lines."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def bad(self, path: str, value: Any, allowed: str) -> None:
        self.items.append(f"{path}: got {_show(value)}; {allowed}")

    def missing(self, path: str, allowed: str) -> None:
        self.items.append(f"{path}: is required; {allowed}")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return repr(value)


def _mapping(
    problems: _Problems, path: str, value: Any, allowed_keys: Sequence[str] | None
) -> Mapping[str, Any]:
    """`value` as a mapping (None: empty); `allowed_keys=None` accepts any key (names the user picks)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        wanted = f"with keys {', '.join(allowed_keys)}" if allowed_keys else "of names to settings"
        problems.bad(path, value, f"expected a mapping {wanted}")
        return {}
    for key in sorted(set(value) - set(allowed_keys or value), key=str):
        problems.bad(
            f"{path}.{key}", value[key], f"unknown key; allowed keys: {', '.join(allowed_keys or ())}"
        )
    return value


def _typed(
    problems: _Problems,
    section: Mapping[str, Any],
    path: str,
    key: str,
    kind: type[T],
    default: T,
    allowed: str,
    check: Callable[[T], bool] = lambda _: True,
) -> T:
    if key not in section or section[key] is None:
        return default
    value = section[key]
    # bool is an int subclass in Python; a `true` where a port belongs is still a mistake.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or not check(value):
        problems.bad(f"{path}.{key}" if path else key, value, allowed)
        return default
    return value


VERSION_ALLOWED = "an exact chart version x.y.z, 1.20.0 or newer"


def _required_version(problems: _Problems, path: str, version: Any) -> str | None:
    """A required exact chart version at `path`, or None after reporting what is wrong with it."""
    if version is None:
        problems.missing(path, VERSION_ALLOWED)
        return None
    if not isinstance(version, str) or not _VERSION.match(version) or parse_version(version) < MIN_VERSION:
        problems.bad(path, version, VERSION_ALLOWED)
        return None
    return version


def parse_config(raw: Mapping[str, Any], *, base_dir: Path) -> MeshConfig:
    """Validate the stack's `istio-mesh:*` values (keys without the namespace) into a MeshConfig.

    `base_dir` is the project directory: relative addon source directories are resolved against it.
    Raises ConfigError listing every problem at once.
    """
    problems = _Problems()
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS), key=str)
    for key in unknown:
        problems.bad(key, raw[key], f"unknown key; allowed keys: {', '.join(TOP_LEVEL_KEYS)}")

    cluster = _parse_cluster(problems, raw.get("cluster"))
    istio = _parse_istio(problems, raw.get("istio"))
    injection = _parse_injection(problems, raw.get("injection"), istio)
    addons = _parse_addons(problems, raw.get("addons"), base_dir)
    dashboards = _parse_dashboards(problems, raw.get("dashboards"), addons)
    protect = _typed(problems, raw, "", "protect", bool, False, "expected true or false")
    adopt = _typed(problems, raw, "", "adopt", bool, False, "expected true or false")
    environment = _typed(
        problems,
        raw,
        "",
        "environment",
        str,
        "development",
        "expected a lowercase DNS label such as development, staging or production",
        _is_dns_label,
    )

    security = _mapping(problems, "security", raw.get("security"), ("mtls",))
    mtls = _typed(
        problems,
        security,
        "security",
        "mtls",
        str,
        None,
        f"allowed: {', '.join(MTLS_MODES)}",
        lambda v: v in MTLS_MODES,
    )
    # The password itself is a Pulumi secret read by the program; only its presence is validated here.
    password_set = raw.get("grafanaAdminPassword") not in (None, "")
    # Without one, the stack generates Grafana's admin password once and keeps it as a Pulumi secret
    # (components/generated_password.py), so every stack previews and deploys with no manual step.
    kiali_key_set = _check_kiali_signing_key(problems, raw.get("kialiSigningKey"))
    gateway_api = _parse_gateway_api(problems, raw.get("gatewayApi"), istio, base_dir)
    if gateway_api is None and injection.waypoints and istio is not None:
        problems.bad(
            "injection.waypoints",
            dict(injection.waypoints),
            "a waypoint is a Gateway API Gateway: keep gatewayApi.enabled (the default from Istio 1.22)",
        )
    if problems.items or cluster is None or istio is None:
        raise ConfigError(problems.items)
    return MeshConfig(
        cluster=cluster,
        istio=istio,
        injection=injection,
        addons=addons,
        dashboards=dashboards,
        protect=protect,
        adopt=adopt,
        environment=environment,
        mtls=mtls,
        grafana_admin_password=password_set,
        kiali_signing_key=kiali_key_set,
        gateway_api=gateway_api,
    )


GATEWAY_API_VERSION_ALLOWED = "a Gateway API release tag such as v1.5.1"


def _parse_gateway_api(
    problems: _Problems, value: Any, istio: IstioConfig | None, base_dir: Path
) -> GatewayApiConfig | None:
    """`gatewayApi`: the Gateway API CRDs, on by default from Istio 1.22 at the table's version."""
    section = _mapping(problems, "gatewayApi", value, ("enabled", "version", "channel", "source", "takeOver"))
    istio_version = parse_version(istio.crd_version) if istio is not None else None
    on_by_default = istio_version is not None and istio_version >= FIRST_GATEWAY_API_DEFAULT
    enabled = _typed(
        problems, section, "gatewayApi", "enabled", bool, on_by_default, "expected true or false"
    )
    channel = _typed(
        problems,
        section,
        "gatewayApi",
        "channel",
        str,
        "standard",
        f"allowed: {', '.join(GATEWAY_API_CHANNELS)}",
        lambda v: v in GATEWAY_API_CHANNELS,
    )
    source = _source(problems, section, "gatewayApi", DEFAULT_GATEWAY_API_SOURCE, base_dir)
    take_over = _typed(problems, section, "gatewayApi", "takeOver", bool, False, "expected true or false")
    version = _typed(
        problems,
        section,
        "gatewayApi",
        "version",
        str,
        None,
        GATEWAY_API_VERSION_ALLOWED,
        lambda v: v is not None and parse_release(v) is not None,
    )
    if not enabled or istio_version is None:
        return None
    if version is None and "version" not in section:
        row = release_for(istio_version)
        if row is None:
            problems.missing(
                "gatewayApi.version",
                f"the table (components/gateway_api_versions.py) has no Gateway API release for Istio "
                f"{istio_version[0]}.{istio_version[1]}; name one ({GATEWAY_API_VERSION_ALLOWED}), or set "
                "gatewayApi.enabled: false",
            )
            return None
        version = row.pinned
    if version is None:
        return None
    return GatewayApiConfig(version=version, channel=channel, source=source, take_over=take_over)


def _check_kiali_signing_key(problems: _Problems, value: Any) -> bool:
    """Whether the stack sets Kiali's signing key, after checking it is one Kiali accepts.

    `value` is the key's SecretShape (`load_config` never hands over the text), or a string, whose
    shape is taken here. Checked for every auth strategy: the key is there for the day the stack
    turns token login on. Unset (or empty), the stack generates one (components/mesh.py).
    """
    if value is None or value == "":
        return False
    shape = SecretShape.of(value) if isinstance(value, str) else value
    if not isinstance(shape, SecretShape) or shape.kind in ("mapping", "list"):
        shown = shape if isinstance(shape, SecretShape) else SecretShape(type(value).__name__)
        problems.bad("kialiSigningKey", shown, f"not a string; {KIALI_SIGNING_KEY_ALLOWED}")
    elif shape.kind == "string" and (shape.length not in KIALI_SIGNING_KEY_LENGTHS or shape.padded):
        problems.bad("kialiSigningKey", shape, KIALI_SIGNING_KEY_ALLOWED)
    return True


def _parse_cluster(problems: _Problems, value: Any) -> ClusterConfig | None:
    if value is None:
        problems.missing(
            "cluster", "a mapping with `context`, the kubeconfig context of this stack's cluster"
        )
        return None
    section = _mapping(problems, "cluster", value, ("context", "kubeconfig"))
    context = section.get("context")
    if context is None or context == "":
        problems.missing("cluster.context", "the kubeconfig context of the one cluster this stack owns")
    elif not isinstance(context, str):
        problems.bad("cluster.context", context, "expected a kubeconfig context name (a string)")
    kubeconfig = _typed(
        problems, section, "cluster", "kubeconfig", str, "", "expected a path to a kubeconfig file"
    )
    if not isinstance(context, str) or not context:
        return None
    return ClusterConfig(context=context, kubeconfig=kubeconfig)


def _parse_istio(problems: _Problems, value: Any) -> IstioConfig | None:
    if value is None:
        problems.missing("istio", "a mapping with at least `version`")
        return None
    section = _mapping(
        problems,
        "istio",
        value,
        (
            "version",
            "profile",
            "chartRepository",
            "gateways",
            "values",
            "revisions",
            "tags",
            "defaultRevision",
            "allowMinorSkip",
            "dataplane",
        ),
    )
    version = _required_version(problems, "istio.version", section.get("version"))

    profile = _typed(
        problems,
        section,
        "istio",
        "profile",
        str,
        "default",
        f"allowed: {', '.join(PROFILES)}",
        lambda v: v in PROFILES,
    )
    repository = _typed(
        problems,
        section,
        "istio",
        "chartRepository",
        str,
        DEFAULT_CHART_REPOSITORY,
        "expected an http(s) or oci:// Helm repository URL",
        lambda v: v.startswith(("https://", "http://", "oci://")),
    )
    gateways = _parse_gateways(problems, section, profile)
    values = _typed(
        problems, section, "istio", "values", Mapping, {}, "expected a mapping of istiod Helm values"
    )
    allow_minor_skip = _typed(
        problems, section, "istio", "allowMinorSkip", bool, False, "expected true or false"
    )
    dataplane = _typed(
        problems,
        section,
        "istio",
        "dataplane",
        str,
        "sidecar",
        f"allowed: {', '.join(DATAPLANES)}",
        lambda v: v in DATAPLANES,
    )
    revisions, tags, default_revision = _parse_revisions(problems, section)
    if dataplane == "ambient":
        _check_ambient_versions(problems, version, revisions, default_revision)
    _check_repository_serves(problems, repository, [version, *(r.version for r in revisions)])
    targets = {r.name for r in revisions} | {tag for tag, _ in tags}
    for gateway in gateways:
        if gateway.tag is not None:
            _check_target(problems, f"istio.gateways.{gateway.name}.tag", gateway.tag, targets)
    _check_gateway_charts(problems, gateways, version, revisions, tags, default_revision)
    if version is None:
        return None
    return IstioConfig(
        version=version,
        profile=profile,
        chart_repository=repository,
        gateways=gateways,
        values=MappingProxyType(dict(values)),
        revisions=revisions,
        tags=tags,
        default_revision=default_revision,
        allow_minor_skip=allow_minor_skip,
        dataplane=dataplane,
        dataplane_valid=section.get("dataplane") in (None, *DATAPLANES),
    )


def _check_ambient_versions(
    problems: _Problems, version: str | None, revisions: Sequence[Revision], default_revision: str | None
) -> None:
    """Ambient needs 1.22+ charts on every control plane, each within one minor of the node agents."""
    paths = [("istio.version", version)] if not revisions else []
    paths += [(f"istio.revisions.{r.name}.version", r.version) for r in revisions]
    too_old = False
    for path, found in paths:
        if found is not None and parse_version(found) < FIRST_AMBIENT:
            too_old = True
            problems.bad(
                path,
                found,
                f"ambient mode needs Istio {_dotted(FIRST_AMBIENT)} or newer (older releases publish no "
                "ztunnel chart and no ambient profile); use a newer version or istio.dataplane: sidecar",
            )
    default = next((r for r in revisions if r.name == default_revision), None)
    if too_old or not revisions or default is None:
        return  # one control plane is always level with its node agents
    agents = parse_version(default.version)
    for revision in revisions:
        found = revision.version_tuple
        if found[0] != agents[0] or abs(found[1] - agents[1]) > AMBIENT_MAX_MINOR_SKEW:
            problems.bad(
                f"istio.revisions.{revision.name}.version",
                revision.version,
                f"istio-cni and ztunnel run one version per node, upgraded in place with the default "
                f"revision ({default.name}, {default.version}), and must stay within "
                f"{AMBIENT_MAX_MINOR_SKEW} minor of every control plane; keep this revision within "
                f"{agents[0]}.{agents[1] - 1}-{agents[0]}.{agents[1] + 1}, or move the default revision in steps",
            )


def _gateway_chart(
    gateway: GatewayConfig,
    version: str | None,
    revisions: Sequence[Revision],
    tags: Sequence[tuple[str, str]],
    default_revision: str | None,
) -> tuple[str, str] | None:
    """The key path and version of a gateway's chart, which follows the control plane that injects it.

    The same choice as `gateway_version` in components/values.py (tests/test_config.py holds the two
    together): the tagged revision, else the default revision, else `istio.version`.
    """
    if not revisions:
        return ("istio.version", version) if version is not None else None
    target = gateway.tag or default_revision
    name = dict(tags).get(target, target) if target is not None else None
    revision = next((r for r in revisions if r.name == name), None)
    if revision is None:
        return None  # a missing or unknown tag or revision, already reported
    return f"istio.revisions.{revision.name}.version", revision.version


def _check_gateway_charts(
    problems: _Problems,
    gateways: Sequence[GatewayConfig],
    version: str | None,
    revisions: Sequence[Revision],
    tags: Sequence[tuple[str, str]],
    default_revision: str | None,
) -> None:
    """Gateways only on chart versions today's Helm installs (HELM_REJECTED_GATEWAY_CHARTS)."""
    gateways_by_chart: dict[tuple[str, str], list[str]] = {}
    for gateway in gateways:
        chart = _gateway_chart(gateway, version, revisions, tags, default_revision)
        if chart is not None:
            gateways_by_chart.setdefault(chart, []).append(gateway.name)
    spans = [
        f"{_dotted(first)}-{_dotted(last)}" if first != last else _dotted(first)
        for first, last, _ in HELM_REJECTED_GATEWAY_CHARTS
    ]
    ranges = f"{', '.join(spans[:-1])} and {spans[-1]}"
    for (path, chart_version), names in gateways_by_chart.items():
        found = parse_version(chart_version)
        for first, last, fixed in HELM_REJECTED_GATEWAY_CHARTS:
            if not first <= found <= last:
                continue
            minor = f"{found[0]}.{found[1]}"
            unfixed_minor = "" if fixed.startswith(f"{minor}.") else f" (no {minor} patch has the fix)"
            which = " and ".join(names) + (" gateways" if len(names) > 1 else " gateway")
            problems.bad(
                path,
                chart_version,
                f"Helm 3.18.5 and newer (the kubernetes provider's 3.18.6 too) refuse the gateway chart of "
                f"Istio {chart_version}, whose own default values fail its values.schema.json "
                f"({GATEWAY_SCHEMA_ISSUE}), so the {which} cannot be installed; use the nearest fixed "
                f"release, {fixed}{unfixed_minor}, or any version outside {ranges}, or no gateways "
                "(istio.gateways: {})",
            )


def _dotted(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


def _check_repository_serves(problems: _Problems, repository: str, versions: Sequence[str | None]) -> None:
    """A retired Google Cloud chart repository has no chart of Istio 1.31 or newer."""
    if repository.rstrip("/") not in RETIRED_CHART_REPOSITORIES:
        return
    known = [v for v in versions if v is not None]
    newest = max(known, key=parse_version, default=None)
    if newest is None or parse_version(newest) < FIRST_VERSION_NOT_ON_RETIRED_REPOSITORIES:
        return
    problems.bad(
        "istio.chartRepository",
        repository,
        f"Istio {newest} is not published there (1.30 is the last minor on Istio's retired Google Cloud "
        f"repositories); use {DEFAULT_CHART_REPOSITORY} (the default) or oci://ghcr.io/istio/release/charts",
    )


def _check_target(problems: _Problems, path: str, target: str, targets: set[str]) -> None:
    """A tag or revision reference must name one that `istio.revisions`/`istio.tags` still declare."""
    if not targets:
        problems.bad(path, target, "routing by tag needs istio.revisions (and istio.tags)")
    elif target not in targets:
        problems.bad(
            path,
            target,
            f"no such tag or revision; declared: {', '.join(sorted(targets))} "
            "(a revision still in use cannot be removed)",
        )


def _is_revision(problems: _Problems, path: str, value: Any, names: set[str]) -> bool:
    if value in names:
        return True
    problems.bad(
        path,
        value,
        f"no such revision; declared: {', '.join(sorted(names))} (a revision still in use cannot be removed)",
    )
    return False


def _parse_revisions(
    problems: _Problems, istio: Mapping[str, Any]
) -> tuple[tuple[Revision, ...], tuple[tuple[str, str], ...], str | None]:
    """`revisions`, `tags` and `defaultRevision`: control planes side by side for canary upgrades."""
    label = "a DNS-1123 label other than `default` (which Istio reserves for the default revision)"
    raw_revisions = _mapping(problems, "istio.revisions", istio.get("revisions"), None)
    revisions: list[Revision] = []
    for name in sorted(raw_revisions, key=str):
        path = f"istio.revisions.{name}"
        if not _is_dns_label(name) or name == "default":
            problems.bad(path, name, f"a revision name must be {label}")
            continue
        entry = _mapping(problems, path, raw_revisions[name], ("version",))
        version = _required_version(problems, f"{path}.version", entry.get("version"))
        if version is not None:
            revisions.append(Revision(name, version))
    names = {r.name for r in revisions}

    raw_tags = _mapping(problems, "istio.tags", istio.get("tags"), None)
    tags: list[tuple[str, str]] = []
    for tag in sorted(raw_tags, key=str):
        path = f"istio.tags.{tag}"
        target = raw_tags[tag]
        if not _is_dns_label(tag) or tag == "default":
            problems.bad(path, target, f"a tag name must be {label}; the default tag follows defaultRevision")
        elif tag in names:
            problems.bad(path, target, "a tag cannot have the name of a revision")
        elif not names:
            problems.bad(path, target, "tags point at revisions: declare istio.revisions")
        elif _is_revision(problems, path, target, names):
            tags.append((tag, target))

    default_revision = istio.get("defaultRevision")
    if default_revision is None:
        # One revision serves the default tag unless the stack says which; more need saying.
        if len(revisions) == 1:
            default_revision = revisions[0].name
        elif len(revisions) > 1:
            problems.missing(
                "istio.defaultRevision",
                f"the revision serving istio-injection=enabled, one of {', '.join(sorted(names))}",
            )
    elif not names:
        problems.bad("istio.defaultRevision", default_revision, "declare istio.revisions first")
        default_revision = None
    elif not _is_revision(problems, "istio.defaultRevision", default_revision, names):
        default_revision = None
    return tuple(revisions), tuple(tags), default_revision


def _parse_gateways(problems: _Problems, istio: Mapping[str, Any], profile: str) -> tuple[GatewayConfig, ...]:
    if "gateways" not in istio or istio["gateways"] is None:
        names: Sequence[str] = PROFILE_GATEWAYS.get(profile, ())
        return tuple(GatewayConfig(name, DEFAULT_GATEWAY_SERVICE_TYPE[name]) for name in names)
    section = _mapping(problems, "istio.gateways", istio["gateways"], GATEWAYS)
    gateways = []
    for name in GATEWAYS:  # fixed order, whatever order the stack file uses
        if name not in section:
            continue
        path = f"istio.gateways.{name}"
        gateway = _mapping(problems, path, section[name], ("serviceType", "tag"))
        service_type = _typed(
            problems,
            gateway,
            path,
            "serviceType",
            str,
            DEFAULT_GATEWAY_SERVICE_TYPE[name],
            f"allowed: {', '.join(SERVICE_TYPES)}",
            lambda v: v in SERVICE_TYPES,
        )
        tag = _typed(problems, gateway, path, "tag", str, None, "expected a revision tag or revision name")
        gateways.append(GatewayConfig(name, service_type, tag))
    return tuple(gateways)


def _parse_injection(problems: _Problems, value: Any, istio: IstioConfig | None) -> InjectionConfig:
    """A list labels `istio-injection=enabled`; a mapping routes each namespace to a tag or revision."""
    section = _mapping(
        problems, "injection", value, ("namespaces", "restartWorkloads", "ambient", "waypoints")
    )
    namespaces: list[str] = []
    routes: dict[str, str] = {}
    raw_namespaces = section.get("namespaces")
    if isinstance(raw_namespaces, Mapping):
        entries = [(f"injection.namespaces.{name}", name, target) for name, target in raw_namespaces.items()]
    elif isinstance(raw_namespaces, list):
        entries = [(f"injection.namespaces[{i}]", name, None) for i, name in enumerate(raw_namespaces)]
    else:
        entries = []
        if raw_namespaces is not None:
            problems.bad(
                "injection.namespaces",
                raw_namespaces,
                "expected a list of namespace names, or a mapping of namespace name to revision tag",
            )
    targets = {r.name for r in istio.revisions} | {t for t, _ in istio.tags} if istio else None
    for path, name, target in entries:
        if not _is_dns_label(name):
            problems.bad(path, name, "expected a namespace name (a DNS-1123 label)")
        elif name in namespaces:
            problems.bad(path, name, "each namespace may be listed once")
        elif name == ISTIO_NAMESPACE:
            problems.bad(path, name, "the control plane's namespace is never injected")
        elif target is not None and not isinstance(target, str):
            problems.bad(path, target, "expected a revision tag or revision name")
        else:
            namespaces.append(name)
            if target is not None:
                routes[name] = target
                if targets is not None:
                    _check_target(problems, path, target, targets)
    restart = _typed(problems, section, "injection", "restartWorkloads", bool, True, "expected true or false")
    ambient = _parse_ambient_namespaces(problems, section.get("ambient"), istio, namespaces)
    # A namespace listed as ambient but refused for its own reason is not refused again for its waypoint.
    raw_ambient = section.get("ambient")
    listed: list[Any] = raw_ambient if isinstance(raw_ambient, list) else []
    waypoints = {
        name: traffic
        for name, traffic in _parse_waypoints(problems, section.get("waypoints"), listed).items()
        if name in ambient
    }
    # A fixed order, whatever order the stack file lists them in.
    return InjectionConfig(
        namespaces=tuple(sorted(namespaces)) if routes else tuple(namespaces),
        restart_workloads=restart,
        routes=MappingProxyType(dict(sorted(routes.items()))),
        ambient=tuple(sorted(ambient)),
        waypoints=MappingProxyType(dict(sorted(waypoints.items()))),
    )


def _parse_ambient_namespaces(
    problems: _Problems, value: Any, istio: IstioConfig | None, injected: Sequence[str]
) -> list[str]:
    """`injection.ambient`: namespaces labelled `istio.io/dataplane-mode=ambient`, never also injected."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.bad("injection.ambient", value, "expected a list of namespace names")
        return []
    # An unknown istio.dataplane is reported once, as itself (it reads as the sidecar default here).
    if istio is not None and not istio.ambient and value and istio.dataplane_valid:
        problems.bad(
            "injection.ambient",
            value,
            "ambient namespaces need istio-cni and ztunnel: set istio.dataplane: ambient",
        )
    ambient: list[str] = []
    for index, name in enumerate(value):
        path = f"injection.ambient[{index}]"
        if not _is_dns_label(name):
            problems.bad(path, name, "expected a namespace name (a DNS-1123 label)")
        elif name in ambient:
            problems.bad(path, name, "each namespace may be listed once")
        elif name == ISTIO_NAMESPACE:
            problems.bad(path, name, "the control plane's namespace is never in the mesh's data plane")
        elif name in injected:
            # The one rule for a namespace in both modes: its pods would get a sidecar and ztunnel
            # would skip them (https://istio.io/latest/docs/ambient/usage/add-workloads/).
            problems.bad(
                path,
                name,
                "also listed in injection.namespaces: a namespace is either sidecar-injected or ambient, "
                "never both; to move it to ambient, remove it from injection.namespaces",
            )
        else:
            ambient.append(name)
    return ambient


def _parse_waypoints(problems: _Problems, value: Any, ambient: Sequence[Any]) -> dict[str, str]:
    """`injection.waypoints`: `{namespace: {for: service}}`, a waypoint for an ambient namespace."""
    section = _mapping(problems, "injection.waypoints", value, None)
    waypoints: dict[str, str] = {}
    for name in sorted(section, key=str):
        path = f"injection.waypoints.{name}"
        settings = _mapping(problems, path, section[name], ("for",))
        traffic = _typed(
            problems,
            settings,
            path,
            "for",
            str,
            "service",
            f"allowed: {', '.join(WAYPOINT_TRAFFIC)}",
            lambda v: v in WAYPOINT_TRAFFIC,
        )
        if name not in ambient:
            problems.bad(
                path,
                dict(settings),
                "a waypoint serves an ambient namespace: list the namespace in injection.ambient",
            )
            continue
        waypoints[name] = traffic
    return waypoints


def _parse_addons(problems: _Problems, value: Any, base_dir: Path) -> AddonsConfig:
    section = _mapping(problems, "addons", value, ("enabled", "source"))
    enabled: list[str] = list(DEFAULT_ADDONS)
    if "enabled" in section and section["enabled"] is not None:
        raw_enabled = section["enabled"]
        enabled = []
        if not isinstance(raw_enabled, list):
            problems.bad("addons.enabled", raw_enabled, f"expected a list of: {', '.join(KNOWN_ADDONS)}")
        else:
            for index, name in enumerate(raw_enabled):
                path = f"addons.enabled[{index}]"
                if name not in KNOWN_ADDONS:
                    problems.bad(path, name, f"allowed: {', '.join(KNOWN_ADDONS)}")
                elif name in enabled:
                    problems.bad(path, name, "each addon may be listed once")
                else:
                    enabled.append(name)
    source = _source(problems, section, "addons", DEFAULT_ADDON_SOURCE, base_dir)
    # Apply in a fixed order so the graph never depends on how the stack file lists them.
    ordered = tuple(name for name in KNOWN_ADDONS if name in enabled)
    return AddonsConfig(enabled=ordered, source=source)


def _source(problems: _Problems, section: Mapping[str, Any], path: str, default: str, base_dir: Path) -> str:
    """`<path>.source`: a URL template, or a local directory (resolved against `base_dir`) that exists
    unless its path still holds `{version}`."""
    source = _typed(
        problems,
        section,
        path,
        "source",
        str,
        default,
        "expected a URL template or a local directory",
        lambda v: bool(v.strip()),
    )
    if not is_url(source) and "{version}" not in source:
        directory = Path(source) if Path(source).is_absolute() else base_dir / source
        if not directory.is_dir():
            problems.bad(f"{path}.source", source, f"expected an existing directory (looked at {directory})")
    return source


def _parse_dashboards(problems: _Problems, value: Any, addons: AddonsConfig) -> tuple[DashboardConfig, ...]:
    section = _mapping(problems, "dashboards", value, tuple(DASHBOARDS))
    dashboards: list[DashboardConfig] = []
    used_ports: dict[int, str] = {}
    low, high = NODE_PORT_RANGE
    for name in DASHBOARDS:
        if name not in section:
            continue
        path = f"dashboards.{name}"
        keys: tuple[str, ...] = (
            ("type", "nodePort", "metricsNodePort") if DASHBOARDS[name][3] else ("type", "nodePort")
        )
        auth_default, auth_allowed = DEFAULT_AUTH.get(name, (None, ()))
        dashboard = _mapping(problems, path, section[name], (*keys, "auth") if auth_allowed else keys)
        auth = _typed(
            problems,
            dashboard,
            path,
            "auth",
            str,
            auth_default,
            f"allowed: {', '.join(auth_allowed)}",
            lambda v, allowed=auth_allowed: v in allowed,
        )
        service_type = _typed(
            problems,
            dashboard,
            path,
            "type",
            str,
            "ClusterIP",
            f"allowed: {', '.join(SERVICE_TYPES)}",
            lambda v: v in SERVICE_TYPES,
        )
        # A bad type is reported once; checks that depend on the type would only repeat it.
        type_known = dashboard.get("type", "ClusterIP") in SERVICE_TYPES
        ports: dict[str, int | None] = {}
        for port_key in keys[1:]:
            port = _typed(
                problems,
                dashboard,
                path,
                port_key,
                int,
                None,
                f"expected an integer NodePort in {low}-{high}",
                lambda v: v is not None and low <= v <= high,
            )
            ports[port_key] = port
            if port is None:
                continue
            if not type_known:
                continue
            if service_type == "ClusterIP":
                problems.bad(f"{path}.{port_key}", port, "a ClusterIP Service has no node port; remove it")
            elif port in used_ports:
                problems.bad(
                    f"{path}.{port_key}", port, f"already used by {used_ports[port]}; each NodePort once"
                )
            else:
                used_ports[port] = f"{path}.{port_key}"
        if type_known and service_type == "NodePort" and dashboard.get("nodePort") is None:
            problems.missing(f"{path}.nodePort", f"a NodePort dashboard needs its port, in {low}-{high}")
        if DASHBOARDS[name][0] not in addons.enabled:
            problems.bad(path, dict(dashboard), f"needs the {DASHBOARDS[name][0]} addon in addons.enabled")
        dashboards.append(
            DashboardConfig(
                name=name,
                service_type=service_type,
                node_port=ports.get("nodePort"),
                metrics_node_port=ports.get("metricsNodePort"),
                auth=auth,
            )
        )
    return tuple(dashboards)


def load_config(base_dir: Path) -> MeshConfig:
    """Read the stack's `istio-mesh:*` config and validate it; one pulumi.RunError lists every mistake."""
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env

    config = pulumi.Config(PROJECT)
    prefix = f"{PROJECT}:"
    # Enumerate the keys the stack actually sets, so a misspelt top-level key is reported rather
    # than silently ignored.
    keys = sorted({k[len(prefix) :] for k in (*get_config_env(), *CONFIG.get()) if k.startswith(prefix)})
    raw: dict[str, Any] = {}
    for key in keys:
        if key == "kialiSigningKey":
            # Only its shape, for Kiali's length rule; the text is dropped here and the program
            # reads the key again as a Pulumi secret (see `secret_value`).
            text = config.get(key)
            raw[key] = SecretShape.of(text) if text else None
            continue
        if key in SECRET_KEYS:
            # Only whether it is set: the value stays a Pulumi secret (see `secret_value`).
            raw[key] = "set" if config.get_secret(key) is not None else None
            continue
        try:
            raw[key] = config.get_object(key)
        except pulumi.ConfigTypeError:
            raw[key] = config.get(key)  # a plain string such as `environment: production`
    try:
        return parse_config(raw, base_dir=base_dir)
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None


def secret_value(key: str) -> Any:
    """A secret config value as a Pulumi secret Output (None when unset); never read as plaintext."""
    import pulumi

    return pulumi.Config(PROJECT).get_secret(key)
