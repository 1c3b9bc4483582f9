"""Which Kubernetes Gateway API release goes with each Istio minor. Pure data, no Pulumi.

Istio's gateways and waypoints are Gateway API objects, but Istio does not install the Gateway API
CRDs (https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/). This table says
which release of them a stack installs (`pinned`) and the oldest release Istio still serves from
(`minimum`). The policy pack reads the same table (policy/rules.py).

Sources, checked against the istio/istio tags:
- `pinned`: the `sigs.k8s.io/gateway-api` requirement in go.mod at the newest patch tag of the minor
  (1.22.8, 1.23.6, 1.24.6, 1.25.5, 1.26.8, 1.27.9, 1.28.10, 1.29.6, 1.30.3; for 1.31, 1.31.0-rc.0,
  the newest tag of it mirrored here): the release that Istio minor was built and tested against.
- `minimums`: from 1.30, `MinimumCRDVersions` (pkg/config/schema/gatewayapi/minimumversions.go):
  istiod ignores a CRD older than its entry, and `istioctl analyze` reports it as IST0176. Every
  other CRD, and every CRD before 1.30, needs v1.0.0: `istioctl x precheck`
  (istioctl/pkg/precheck/precheck.go) asks that the stable kinds serve `v1`, new in v1.0.0.

To extend: add the new minor when its first patch is tagged, from the same two places.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

# Istio has shipped ambient-ready Gateway API support since 1.22; older stacks opt in explicitly.
FIRST_DEFAULT_ISTIO = (1, 22, 0)
CHANNELS = ("standard", "experimental")
# Where a stack's Gateway API CRDs come from unless it says otherwise: the release's Go module as the
# Go module proxy serves it. A module version's zip never changes once published (the Go checksum
# database holds every proxy to the first one), and it holds `config/crd/<channel>/`, the files the
# release's `<channel>-install.yaml` is concatenated from (hack/build-install-yaml.sh).
# components/gateway_api_source.py verifies each download against gateway-api.lock.
DEFAULT_SOURCE = "https://proxy.golang.org/sigs.k8s.io/gateway-api/@v/{version}.zip"
# The annotation every Gateway API CRD carries with its release (sigs.k8s.io/gateway-api
# pkg/consts: BundleVersionAnnotation, ChannelAnnotation).
BUNDLE_VERSION_ANNOTATION = "gateway.networking.k8s.io/bundle-version"
CHANNEL_ANNOTATION = "gateway.networking.k8s.io/channel"
GROUP = "gateway.networking.k8s.io"

_RELEASE = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


# What every Gateway API CRD needs, for any Istio minor this table knows.
BASE_MINIMUM = "v1.0.0"
_MINIMUMS_1_30: Mapping[str, str] = MappingProxyType(
    {
        "grpcroutes.gateway.networking.k8s.io": "v1.1.0",
        "backendtlspolicies.gateway.networking.k8s.io": "v1.4.0",
        "tlsroutes.gateway.networking.k8s.io": "v1.5.0",
    }
)
_MINIMUMS_1_31: Mapping[str, str] = MappingProxyType(
    {**_MINIMUMS_1_30, "tcproutes.gateway.networking.k8s.io": "v1.6.0"}
)
_NONE: Mapping[str, str] = MappingProxyType({})


class GatewayApiRelease(NamedTuple):
    pinned: str  # the release a stack installs by default
    minimums: Mapping[str, str]  # CRD name -> oldest release istiod serves it from (others: BASE_MINIMUM)

    def minimum(self, crd: str) -> str:
        return self.minimums.get(crd, BASE_MINIMUM)

    @property
    def overall_minimum(self) -> str:
        """The oldest release every CRD of it is served from: the highest of the minimums."""
        return max((BASE_MINIMUM, *self.minimums.values()), key=lambda v: parse_release(v) or (0, 0, 0))


GATEWAY_API_FOR_ISTIO: Mapping[str, GatewayApiRelease] = MappingProxyType(
    {
        "1.22": GatewayApiRelease("v1.1.0", _NONE),
        "1.23": GatewayApiRelease("v1.1.0", _NONE),
        "1.24": GatewayApiRelease("v1.2.1", _NONE),
        "1.25": GatewayApiRelease("v1.2.1", _NONE),
        "1.26": GatewayApiRelease("v1.3.0", _NONE),
        "1.27": GatewayApiRelease("v1.3.0", _NONE),
        "1.28": GatewayApiRelease("v1.4.1", _NONE),
        "1.29": GatewayApiRelease("v1.4.1", _NONE),
        "1.30": GatewayApiRelease("v1.5.1", _MINIMUMS_1_30),
        "1.31": GatewayApiRelease("v1.6.0", _MINIMUMS_1_31),
    }
)


def parse_release(text: str) -> tuple[int, int, int] | None:
    """`v1.5.1` as (1, 5, 1); None for anything else (prereleases included)."""
    match = _RELEASE.match(text) if isinstance(text, str) else None
    if not match:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def release_for(istio_version: tuple[int, int, int]) -> GatewayApiRelease | None:
    """The table's row for an Istio version's minor; None when the table does not know the minor."""
    return GATEWAY_API_FOR_ISTIO.get(f"{istio_version[0]}.{istio_version[1]}")
