"""The upgrade path: a stack moves Istio by at most two minors at a time, as Istio supports.

Istio supports in-place and canary upgrades across at most two minor versions
(https://istio.io/latest/docs/setup/upgrade/), and istioctl refuses a larger skip. To know where a
stack is upgrading from, `UpgradePath` is a Pulumi dynamic resource whose only input is the version
the CRDs lead at (`istio.crd_version`): the engine hands its Check both the version in the stack's
state and the new one, so a skip is refused in `pulumi preview`, before anything changes. Every
object of the control plane waits for it. `istio.allowMinorSkip: true` lets one skip through, on
purpose; remove it after that `up`.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic

from components.config import parse_version

MAX_MINOR_STEP = 2


def skip_problem(previous: str | None, new: str, *, allow_skip: bool) -> str | None:
    """Why moving from `previous` to `new` is refused, or None when it may go ahead."""
    if previous is None or allow_skip:
        return None
    (old_major, old_minor, _), (new_major, new_minor, _) = parse_version(previous), parse_version(new)
    if new_major == old_major and new_minor - old_minor <= MAX_MINOR_STEP:
        return None
    return (
        f"istio: upgrading from {previous} to {new} skips {new_minor - old_minor - 1} minor version(s); "
        f"Istio supports upgrades across at most {MAX_MINOR_STEP} minors "
        "(https://istio.io/latest/docs/setup/upgrade/). Upgrade in steps (for example "
        f"{old_major}.{old_minor + MAX_MINOR_STEP}.x first), or set istio.allowMinorSkip: true for this "
        "one `up` if you have checked the release notes of every minor in between"
    )


class UpgradePathProvider(pulumi.dynamic.ResourceProvider):
    """Check refuses a skip; nothing else happens on the cluster."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        # The engine's `olds` here are the previous inputs of this resource in the stack's state.
        previous = _olds.get("version") if _olds else None
        problem = skip_problem(previous, news["version"], allow_skip=bool(news.get("allowSkip")))
        failures = [pulumi.dynamic.CheckFailure("version", problem)] if problem else []
        return pulumi.dynamic.CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_="istio-upgrade-path", outs=dict(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = any(olds.get(k) != news.get(k) for k in ("version", "allowSkip"))
        return pulumi.dynamic.DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=dict(news))


class UpgradePath(pulumi.dynamic.Resource, module="istio-mesh", name="UpgradePath"):
    """The CRDs' version, checked against the one in the stack's state (`...dynamic/istio-mesh:UpgradePath`)."""

    def __init__(
        self, name: str, *, version: str, allow_skip: bool, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(UpgradePathProvider(), name, {"version": version, "allowSkip": allow_skip}, opts)
