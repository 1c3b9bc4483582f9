"""A release an interrupted `up` left pending is rolled back (or uninstalled) before its next upgrade.

The graph tests render the program; the provider tests run `ReleaseRecoveryProvider` with small
scripts standing in for helm, which print what `helm history --output json` prints.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from components import release_recovery
from components.release_recovery import RecoveryError, ReleaseRecoveryProvider, pending_status
from tests.harness import RELEASE, build

RECOVERY = "pulumi-python:dynamic/istio-mesh:ReleaseRecovery"
HELM = "helm --kube-context kind-istio-dev"


def test_every_release_waits_for_its_recovery() -> None:
    graph = build()
    releases = graph.of_type(RELEASE)
    assert sorted(r.name for r in releases) == [
        "istio-base",
        "istio-egressgateway",
        "istio-ingressgateway",
        "istiod",
    ]
    assert graph.names(RECOVERY) == sorted(f"{r.name}-recovery" for r in releases)
    for release in releases:
        recovery = graph.get(RECOVERY, f"{release.name}-recovery")
        assert recovery.urn in release.dependencies
        assert recovery.parent == release.parent


def test_a_recovery_names_the_stacks_cluster_in_every_helm_call() -> None:
    recovery = build().get(RECOVERY, "istiod-recovery")
    inputs = {k: v for k, v in recovery.inputs.items() if not k.startswith("__")}
    assert inputs == {
        "release": "istiod",
        "namespace": "istio-system",
        "history": f"{HELM} history istiod --namespace istio-system --max 1 --output json",
        "rollback": f"{HELM} rollback istiod --namespace istio-system",
        "uninstall": f"{HELM} uninstall istiod --namespace istio-system --wait",
    }


def test_a_recovery_waits_for_what_its_release_waits_for() -> None:
    graph = build()
    base, istiod = graph.release("istio-base"), graph.release("istiod")
    assert graph.depends_on(graph.get(RECOVERY, "istiod-recovery"), base)
    assert not graph.depends_on(graph.get(RECOVERY, "istio-base-recovery"), istiod)


def _props(tmp_path: Path, history: list[dict[str, Any]] | str) -> dict[str, Any]:
    printed = history if isinstance(history, str) else f"echo {shlex.quote(json.dumps(history))}"
    log = tmp_path / "helm.log"
    return {
        "release": "istiod",
        "namespace": "istio-system",
        "history": printed,
        "rollback": f"echo rollback >> {log}",
        "uninstall": f"echo uninstall >> {log}",
    }


def _ran(tmp_path: Path) -> list[str]:
    log = tmp_path / "helm.log"
    return log.read_text().split() if log.exists() else []


@pytest.mark.parametrize(
    ("status", "ran"),
    [
        ("pending-upgrade", ["rollback"]),
        ("pending-rollback", ["rollback"]),
        ("pending-install", ["uninstall"]),
        ("deployed", []),
        ("failed", []),
    ],
)
def test_update_recovers_only_a_pending_release(tmp_path: Path, status: str, ran: list[str]) -> None:
    props = _props(tmp_path, [{"revision": 2, "status": status}])
    ReleaseRecoveryProvider().update("istio-system/istiod", props, props)
    assert _ran(tmp_path) == ran


@pytest.mark.parametrize(("status", "changes"), [("pending-upgrade", True), ("deployed", False)])
def test_a_pending_release_is_a_change_in_preview(tmp_path: Path, status: str, changes: bool) -> None:
    props = _props(tmp_path, [{"revision": 3, "status": status}])
    assert ReleaseRecoveryProvider().diff("istio-system/istiod", props, props).changes is changes
    assert _ran(tmp_path) == []  # a diff changes nothing


def test_a_changed_input_is_a_change_too(tmp_path: Path) -> None:
    olds = _props(tmp_path, [{"revision": 1, "status": "deployed"}])
    news = {**olds, "rollback": olds["rollback"] + " --wait"}
    assert ReleaseRecoveryProvider().diff("istio-system/istiod", olds, news).changes is True


def test_no_release_yet_means_nothing_to_recover(tmp_path: Path) -> None:
    props = _props(tmp_path, "echo 'Error: release: not found' >&2; exit 1")
    created = ReleaseRecoveryProvider().create(props)
    assert created.id == "istio-system/istiod"
    assert _ran(tmp_path) == []


def test_helm_failing_otherwise_is_an_error_naming_the_command(tmp_path: Path) -> None:
    props = _props(tmp_path, "echo 'Error: Kubernetes cluster unreachable' >&2; exit 1")
    with pytest.raises(RecoveryError, match="Kubernetes cluster unreachable"):
        ReleaseRecoveryProvider().diff("istio-system/istiod", props, props)


def test_a_failed_rollback_says_why_the_release_needed_it(tmp_path: Path) -> None:
    props = {
        **_props(tmp_path, [{"revision": 2, "status": "pending-upgrade"}]),
        "rollback": "echo nope; exit 3",
    }
    with pytest.raises(RecoveryError) as raised:
        ReleaseRecoveryProvider().update("istio-system/istiod", props, props)
    assert str(raised.value) == (
        "release istio-system/istiod is pending-upgrade (an earlier operation was interrupted) "
        "and echo nope; exit 3 failed: nope"
    )


def test_create_recovers_a_release_left_pending_before_the_stack_knew_it(tmp_path: Path) -> None:
    props = _props(tmp_path, [{"revision": 4, "status": "pending-upgrade"}])
    created = ReleaseRecoveryProvider().create({**props, "__provider": "x"})
    assert _ran(tmp_path) == ["rollback"]
    assert created.outs == props


def test_update_records_exactly_its_inputs(tmp_path: Path) -> None:
    props = _props(tmp_path, [{"revision": 1, "status": "deployed"}])
    assert (
        ReleaseRecoveryProvider().update("istio-system/istiod", props, {**props, "__provider": "x"}).outs
        == props
    )


def test_an_empty_history_is_nothing_to_recover(tmp_path: Path) -> None:
    assert pending_status(_props(tmp_path, "true")) is None
    assert pending_status(_props(tmp_path, [])) is None


def test_helm_runs_within_five_minutes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timeouts: list[int] = []
    real = release_recovery.run_bash
    monkeypatch.setattr(release_recovery, "run_bash", lambda *a, **k: timeouts.append(a[1]) or real(*a, **k))
    pending_status(_props(tmp_path, [{"revision": 1, "status": "deployed"}]))
    assert timeouts == [300]


def test_helms_failure_is_reported_with_the_command(tmp_path: Path) -> None:
    props = _props(tmp_path, "echo 'Error: Kubernetes cluster unreachable' >&2; exit 1")
    with pytest.raises(RecoveryError) as raised:
        pending_status(props)
    assert str(raised.value) == (
        "echo 'Error: Kubernetes cluster unreachable' >&2; exit 1: Error: Kubernetes cluster unreachable"
    )


def test_a_failed_rollback_repeats_the_last_2000_characters_of_its_output(tmp_path: Path) -> None:
    props = {
        **_props(tmp_path, [{"revision": 2, "status": "pending-upgrade"}]),
        "rollback": "printf 'a%.0s' $(seq 1 1000); printf 'b%.0s' $(seq 1 2000); exit 1",
    }
    with pytest.raises(RecoveryError) as raised:
        ReleaseRecoveryProvider().update("istio-system/istiod", props, props)
    assert str(raised.value).endswith(" failed: " + "b" * 2000)


def test_a_recovery_says_what_it_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr(release_recovery.pulumi.log, "info", lambda message, *_, **__: said.append(message))
    props = _props(tmp_path, [{"revision": 2, "status": "pending-install"}])
    ReleaseRecoveryProvider().update("istio-system/istiod", props, props)
    assert said == [f"release istio-system/istiod was pending-install: {props['uninstall']}"]
