"""One cluster, one stack: the claim comes first, and another stack's Check is refused.

The graph tests render the program; the provider tests run `ClusterClaimProvider` with small scripts
standing in for kubectl.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from components import cluster_claim
from components.cluster_claim import ClaimError, ClusterClaimProvider
from meshplan.engine import CONFIG_GROUP
from tests.harness import build

CLAIM = "pulumi-python:dynamic/istio-mesh:ClusterClaim"
GENERATED_PASSWORD = "pulumi-python:dynamic/istio-mesh:GeneratedPassword"
KUBECTL = "kubectl --context kind-istio-dev"

REFUSAL = (
    "this cluster is owned by stack istio-mesh/prod (ConfigMap kube-system/istio-mesh-owner), not "
    "istio-mesh/dev: two stacks on one cluster would undo each other's changes. Deploy this stack to "
    "another cluster, or `pulumi destroy` istio-mesh/prod first"
)


def test_the_claim_names_the_stack_and_its_cluster() -> None:
    claim = build().get(CLAIM, "cluster-claim")
    inputs = {k: v for k, v in claim.inputs.items() if not k.startswith("__")}
    assert inputs == {
        "owner": "istio-mesh/dev",
        "read": f"{KUBECTL} --namespace kube-system get configmap istio-mesh-owner --ignore-not-found --output=json",
        "write": f"{KUBECTL} apply --server-side --field-manager=istio-mesh-claim --filename=-",
        "release": f"{KUBECTL} --namespace kube-system delete configmap istio-mesh-owner --ignore-not-found",
    }
    assert build("prod").get(CLAIM, "cluster-claim").inputs["owner"] == "istio-mesh/prod"


def test_everything_that_touches_the_cluster_waits_for_the_claim() -> None:
    graph = build()
    claim = graph.get(CLAIM, "cluster-claim")
    assert claim.dependencies == ()
    groups = {r.urn for r in graph.of_type(CONFIG_GROUP)}
    waiting = [
        r
        for r in graph.resources
        # A group's objects are registered by the provider once the group's dependencies exist.
        if r.custom
        and r is not claim
        and r.parent not in groups
        and not r.type.startswith("pulumi:providers:")
    ]
    assert waiting
    assert [r.name for r in waiting if not graph.depends_on(r, claim)] == [
        r.name
        for r in waiting
        if r.type == GENERATED_PASSWORD  # computed in the engine, not the cluster
    ]
    assert all(graph.depends_on(graph.get(CONFIG_GROUP, g.name), claim) for g in graph.of_type(CONFIG_GROUP))


def _props(tmp_path: Path, claimed_by: str | None, owner: str = "istio-mesh/dev") -> dict[str, Any]:
    printed = "" if claimed_by is None else json.dumps({"data": {"stack": claimed_by}})
    return {
        "owner": owner,
        "read": f"echo -n {shlex.quote(printed)}",
        "write": f"cat > {tmp_path / 'written.json'}",
        "release": f"touch {tmp_path / 'released'}",
    }


@pytest.mark.parametrize("claimed_by", [None, "istio-mesh/dev"])
def test_check_passes_a_free_cluster_or_one_this_stack_owns(tmp_path: Path, claimed_by: str | None) -> None:
    props = _props(tmp_path, claimed_by)
    assert ClusterClaimProvider().check({}, props).failures == []


def test_check_refuses_a_cluster_another_stack_owns_naming_it(tmp_path: Path) -> None:
    failures = ClusterClaimProvider().check({}, _props(tmp_path, "istio-mesh/prod")).failures
    assert [(f.property, f.reason) for f in failures] == [("owner", REFUSAL)]
    assert not (tmp_path / "written.json").exists()


def test_create_writes_the_claim(tmp_path: Path) -> None:
    created = ClusterClaimProvider().create(_props(tmp_path, None))
    assert created.id == "kube-system/istio-mesh-owner"
    assert json.loads((tmp_path / "written.json").read_text()) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "istio-mesh-owner",
            "namespace": "kube-system",
            "labels": {"app.kubernetes.io/managed-by": "istio-mesh"},
        },
        "data": {"stack": "istio-mesh/dev"},
    }


def test_create_refuses_a_claim_another_stack_wrote_since_check(tmp_path: Path) -> None:
    with pytest.raises(ClaimError) as raised:
        ClusterClaimProvider().create(_props(tmp_path, "istio-mesh/prod"))
    assert str(raised.value) == REFUSAL
    assert not (tmp_path / "written.json").exists()


def test_delete_releases_only_this_stacks_claim(tmp_path: Path) -> None:
    ClusterClaimProvider().delete("kube-system/istio-mesh-owner", _props(tmp_path, "istio-mesh/dev"))
    assert (tmp_path / "released").exists()
    (tmp_path / "released").unlink()
    with pytest.raises(ClaimError):
        ClusterClaimProvider().delete("kube-system/istio-mesh-owner", _props(tmp_path, "istio-mesh/prod"))
    ClusterClaimProvider().delete("kube-system/istio-mesh-owner", _props(tmp_path, None))
    assert not (tmp_path / "released").exists()


def test_an_unreadable_claim_is_an_error_naming_the_command(tmp_path: Path) -> None:
    props = {**_props(tmp_path, None), "read": "echo 'connection refused' >&2; exit 1"}
    with pytest.raises(ClaimError, match="connection refused"):
        ClusterClaimProvider().check({}, props)


def test_the_same_inputs_are_no_change(tmp_path: Path) -> None:
    props = _props(tmp_path, "istio-mesh/dev")
    assert ClusterClaimProvider().diff("kube-system/istio-mesh-owner", props, dict(props)).changes is False
    renamed = {**props, "owner": "istio-mesh/dev2"}
    assert ClusterClaimProvider().diff("kube-system/istio-mesh-owner", props, renamed).changes is True


def test_a_renamed_stack_keeps_its_cluster(tmp_path: Path) -> None:
    before = _props(tmp_path, "istio-mesh/dev")
    renamed = {**before, "owner": "istio-mesh/dev-eu"}
    assert ClusterClaimProvider().check(before, renamed).failures == []
    ClusterClaimProvider().update("kube-system/istio-mesh-owner", before, renamed)
    assert json.loads((tmp_path / "written.json").read_text())["data"] == {"stack": "istio-mesh/dev-eu"}


def test_the_claim_is_read_with_no_input_and_within_two_minutes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read that would take stdin as the owner finds no owner: kubectl gets no input.
    props = {
        **_props(tmp_path, None),
        "read": 'line=$(cat); [ -z "$line" ] || printf \'{"data":{"stack":"%s"}}\' "$line"',
    }
    assert cluster_claim.current_owner(props) is None
    timeouts: list[int] = []
    real = cluster_claim.run_bash
    monkeypatch.setattr(cluster_claim, "run_bash", lambda *a, **k: timeouts.append(a[1]) or real(*a, **k))
    cluster_claim.current_owner(_props(tmp_path, None))
    assert timeouts == [120]


def test_a_claim_without_its_stack_key_belongs_to_no_stack_of_ours(tmp_path: Path) -> None:
    props = {**_props(tmp_path, None), "read": "echo '{\"data\": {}}'"}
    failures = ClusterClaimProvider().check({}, props).failures
    assert [f.reason for f in failures] == [
        "this cluster is owned by stack  (ConfigMap kube-system/istio-mesh-owner), not istio-mesh/dev: "
        "two stacks on one cluster would undo each other's changes. Deploy this stack to another "
        "cluster, or `pulumi destroy`  first"
    ]


def test_the_written_claim_is_the_same_text_every_time(tmp_path: Path) -> None:
    ClusterClaimProvider().create(_props(tmp_path, None))
    assert (tmp_path / "written.json").read_text() == (
        '{"apiVersion": "v1", "data": {"stack": "istio-mesh/dev"}, "kind": "ConfigMap", "metadata": '
        '{"labels": {"app.kubernetes.io/managed-by": "istio-mesh"}, "name": "istio-mesh-owner", '
        '"namespace": "kube-system"}}'
    )


def test_a_renamed_stack_whose_claim_was_deleted_by_hand_claims_again(tmp_path: Path) -> None:
    before = _props(tmp_path, None)
    renamed = {**before, "owner": "istio-mesh/dev-eu"}
    assert ClusterClaimProvider().check(before, renamed).failures == []
    updated = ClusterClaimProvider().update("kube-system/istio-mesh-owner", before, renamed)
    assert updated.outs == {k: renamed[k] for k in ("owner", "read", "write", "release")}
    assert json.loads((tmp_path / "written.json").read_text())["data"] == {"stack": "istio-mesh/dev-eu"}


def test_create_records_exactly_its_inputs(tmp_path: Path) -> None:
    props = _props(tmp_path, None)
    assert ClusterClaimProvider().create({**props, "__provider": "x"}).outs == props


@pytest.mark.parametrize("phase", ["write", "release"])
def test_a_failed_write_or_release_is_an_error_naming_the_command(tmp_path: Path, phase: str) -> None:
    claimed_by = None if phase == "write" else "istio-mesh/dev"
    props = {**_props(tmp_path, claimed_by), phase: "echo 'Forbidden' >&2; exit 1"}
    with pytest.raises(ClaimError) as raised:
        if phase == "write":
            ClusterClaimProvider().create(props)
        else:
            ClusterClaimProvider().delete("kube-system/istio-mesh-owner", props)
    assert str(raised.value) == "echo 'Forbidden' >&2; exit 1: Forbidden"


def test_an_unreadable_claim_names_the_command_and_kubectls_words(tmp_path: Path) -> None:
    props = {**_props(tmp_path, None), "read": "echo 'connection refused' >&2; exit 1"}
    with pytest.raises(ClaimError) as raised:
        cluster_claim.current_owner(props)
    assert str(raised.value) == "echo 'connection refused' >&2; exit 1: connection refused"
