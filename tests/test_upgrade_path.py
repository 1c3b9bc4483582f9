"""The upgrade path: at most two minors per upgrade, refused in Check before anything changes."""

from __future__ import annotations

import pytest

from components.upgrade_path import UpgradePathProvider, skip_problem
from tests.harness import NAMESPACE, build

UPGRADE_PATH = "pulumi-python:dynamic/istio-mesh:UpgradePath"


@pytest.mark.parametrize(
    ("previous", "new"),
    [
        (None, "1.30.3"),
        ("1.23.6", "1.24.6"),
        ("1.28.2", "1.30.3"),
        ("1.30.3", "1.30.5"),
        ("1.30.3", "1.29.6"),
    ],
)
def test_a_first_install_a_patch_and_up_to_two_minors_go_ahead(previous: str | None, new: str) -> None:
    assert skip_problem(previous, new, allow_skip=False) is None


def test_three_minors_are_refused_with_what_to_do() -> None:
    assert skip_problem("1.20.8", "1.23.6", allow_skip=False) == (
        "istio: upgrading from 1.20.8 to 1.23.6 skips 2 minor version(s); Istio supports upgrades across "
        "at most 2 minors (https://istio.io/latest/docs/setup/upgrade/). Upgrade in steps (for example "
        "1.22.x first), or set istio.allowMinorSkip: true for this one `up` if you have checked the "
        "release notes of every minor in between"
    )


def test_the_override_lets_a_skip_through() -> None:
    assert skip_problem("1.20.8", "1.30.3", allow_skip=True) is None


def test_check_compares_the_state_with_the_new_version() -> None:
    provider = UpgradePathProvider()
    refused = provider.check({"version": "1.24.6"}, {"version": "1.29.6", "allowSkip": False})
    assert [(f.property, f.reason[:50]) for f in refused.failures or []] == [
        ("version", "istio: upgrading from 1.24.6 to 1.29.6 skips 4 min")
    ]
    assert provider.check({}, {"version": "1.29.6", "allowSkip": False}).failures == []
    assert provider.check({"version": "1.24.6"}, {"version": "1.29.6", "allowSkip": True}).failures == []


def test_everything_of_the_control_plane_waits_for_the_upgrade_path() -> None:
    graph = build(
        "prod",
        istio={
            "revisions": {"a": {"version": "1.29.6"}, "b": {"version": "1.30.3"}},
            "tags": {"stable": "a"},
            "defaultRevision": "a",
        },
    )
    (gate,) = graph.of_type(UPGRADE_PATH)
    # The version the CRDs lead at: the newest control plane's.
    assert {k: v for k, v in gate.inputs.items() if k != "__provider"} == {
        "version": "1.30.3",
        "allowSkip": False,
    }
    assert graph.depends_on(graph.get(NAMESPACE, "istio-system"), gate)
    for release in ("istio-base", "istiod-a", "istiod-b", "istio-ingressgateway"):
        assert graph.depends_on(graph.release(release), gate), release


def test_allow_minor_skip_reaches_the_gate_and_is_validated() -> None:
    (gate,) = build(istio={"allowMinorSkip": True}).of_type(UPGRADE_PATH)
    assert gate.inputs["allowSkip"] is True
    graph = build(istio={"allowMinorSkip": "yes"})
    assert graph.error is not None
    assert "istio.allowMinorSkip: got 'yes'; expected true or false" in graph.error
