"""The plans `meshplan diff --against` accepts, and the exact error for each one it cannot compare.

A saved plan comes from a file anyone may have edited; each mistake is named with where it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshplan.diff import PlanError, check_plan_shape, diff_plans, load_plan_file

URN = "urn:pulumi:dev::istio-mesh::kubernetes:core/v1:Namespace::istio-system"


def resource(**fields: Any) -> dict[str, Any]:
    return {"urn": URN, "type": "kubernetes:core/v1:Namespace", "name": "istio-system", **fields}


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ([], "saved: not a meshplan plan (expected an object with a `resources` list)"),
        ({"resources": {}}, "saved: not a meshplan plan (expected an object with a `resources` list)"),
        ({}, "saved: not a meshplan plan (expected an object with a `resources` list)"),
        ({"resources": ["x"]}, "saved: resources[0] needs string `urn`, `type` and `name`"),
        (
            {"resources": [resource(), resource(name=1)]},
            "saved: resources[1] needs string `urn`, `type` and `name`",
        ),
        ({"resources": [resource(type=None)]}, "saved: resources[0] needs string `urn`, `type` and `name`"),
        ({"resources": [resource(urn=None)]}, "saved: resources[0] needs string `urn`, `type` and `name`"),
        ({"resources": [resource(dependsOn="a")]}, "saved: resources[0].dependsOn must be a list of strings"),
        ({"resources": [resource(dependsOn=[1])]}, "saved: resources[0].dependsOn must be a list of strings"),
        (
            {"resources": [resource(ignoreChanges="a")]},
            "saved: resources[0].ignoreChanges must be a list of strings",
        ),
        ({"resources": [resource(inputs=[])]}, "saved: resources[0].inputs must be an object"),
    ],
)
def test_a_plan_that_cannot_be_compared_says_where(plan: Any, message: str) -> None:
    with pytest.raises(PlanError) as raised:
        check_plan_shape(plan, "saved")
    assert str(raised.value) == message


def test_optional_fields_may_be_missing_or_null() -> None:
    plan = {
        "resources": [
            resource(dependsOn=None, ignoreChanges=None),
            resource(dependsOn=["a"], ignoreChanges=[]),
        ]
    }
    assert check_plan_shape(plan, "saved") == plan
    assert check_plan_shape({"resources": []}, "saved") == {"resources": []}


def test_a_plan_file_is_read_parsed_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"resources": [resource()], "outputs": {}}), encoding="utf-8")
    assert load_plan_file(good) == {"resources": [resource()], "outputs": {}}

    cases = {
        "missing.json": None,
        "binary.json": b"\xff\xfe{",
        "broken.json": b"{",
        "shape.json": b'{"resources": [1]}',
    }
    messages = {}
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(PlanError) as raised:
            load_plan_file(path)
        messages[name] = str(raised.value)
    assert messages == {
        "missing.json": f"cannot read plan file {tmp_path / 'missing.json'}: No such file or directory",
        "binary.json": f"plan file {tmp_path / 'binary.json'} is not UTF-8 text",
        "broken.json": f"plan file {tmp_path / 'broken.json'} is not JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        "shape.json": f"plan file {tmp_path / 'shape.json'}: resources[0] needs string `urn`, `type` and `name`",
    }


def test_a_resource_declared_twice_is_refused_on_either_side() -> None:
    twice = {"resources": [resource(), resource(urn=URN.replace("dev", "other"))]}
    with pytest.raises(
        PlanError, match=r"^the old plan: resource urn:pulumi:other::.*::istio-system is declared twice$"
    ):
        diff_plans(twice, {"resources": []})
    with pytest.raises(
        PlanError, match=r"^the new plan: resource urn:pulumi:other::.*::istio-system is declared twice$"
    ):
        diff_plans({"resources": []}, twice)


# A resource moved under another parent keeps its old URN as an alias (components/mesh.py's
# mesh-mtls, once ControlPlane's): the engine matches the two and records a "same" step.
OLD_PARENT = "urn:pulumi:dev::istio-mesh::istio-mesh:index:Mesh$istio-mesh:index:ControlPlane::control-plane"
NEW_PARENT = "urn:pulumi:dev::istio-mesh::istio-mesh:index:Mesh::istio-mesh"
PEER = "kubernetes:security.istio.io/v1:PeerAuthentication"
MOVED_FROM = (
    f"urn:pulumi:dev::istio-mesh::istio-mesh:index:Mesh$istio-mesh:index:ControlPlane${PEER}::mesh-mtls"
)
MOVED_TO = f"urn:pulumi:dev::istio-mesh::istio-mesh:index:Mesh${PEER}::mesh-mtls"


def _policy(urn: str, parent: str, mode: str, **fields: Any) -> dict[str, Any]:
    inputs = {"spec": {"mtls": {"mode": mode}}}
    return {"urn": urn, "type": PEER, "name": "mesh-mtls", "parent": parent, "inputs": inputs, **fields}


def test_a_resource_moved_under_its_alias_is_the_same_resource() -> None:
    old = {"resources": [_policy(MOVED_FROM, OLD_PARENT, "STRICT")]}
    new = {"resources": [_policy(MOVED_TO, NEW_PARENT, "STRICT", aliases=[MOVED_FROM])]}
    diff = diff_plans(old, new)
    assert (diff.resources, diff.unchanged) == ([], 1)


def test_a_moved_resource_that_also_changes_is_one_update() -> None:
    old = {"resources": [_policy(MOVED_FROM, OLD_PARENT, "PERMISSIVE")]}
    new = {"resources": [_policy(MOVED_TO, NEW_PARENT, "STRICT", aliases=[MOVED_FROM])]}
    (update,) = diff_plans(old, new).resources
    assert (update.kind, update.urn) == ("update", MOVED_TO)
    assert [c.path for c in update.changes] == ["[parent]", "spec.mtls.mode"]


def test_without_the_alias_a_move_is_a_delete_and_a_create() -> None:
    old = {"resources": [_policy(MOVED_FROM, OLD_PARENT, "STRICT")]}
    new = {"resources": [_policy(MOVED_TO, NEW_PARENT, "STRICT")]}
    assert sorted((r.kind, r.urn) for r in diff_plans(old, new).resources) == [
        ("create", MOVED_TO),
        ("delete", MOVED_FROM),
    ]


def test_an_alias_to_a_urn_still_in_use_moves_nothing() -> None:
    old = {"resources": [_policy(MOVED_FROM, OLD_PARENT, "STRICT")]}
    new = {
        "resources": [
            _policy(MOVED_FROM, OLD_PARENT, "STRICT"),
            _policy(MOVED_TO, NEW_PARENT, "STRICT", aliases=[MOVED_FROM]),
        ]
    }
    diff = diff_plans(old, new)
    assert [(r.kind, r.urn) for r in diff.resources] == [("create", MOVED_TO)]
    assert diff.unchanged == 1
