"""The exact text `meshplan diff` prints: headers, symbols, indentation, values, truncation and `…`.

Each test diffs two small hand-written plans (the old one of stack `dev`, the new one of `prod`, so
resources match by URN without the stack) and states the whole output. A reviewer reads this text in
a pull request; any change to its shape shows here.
"""

from __future__ import annotations

import json
from typing import Any

from meshplan.diff import diff_plans, format_json, format_text

NAMESPACE = "kubernetes:core/v1:Namespace"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET_TYPE = "kubernetes:core/v1:Secret"
GROUP = "kubernetes:yaml/v2:ConfigGroup"
PROVIDER_TYPE = "pulumi:providers:kubernetes"


def urn(stack: str, type_: str, name: str) -> str:
    return f"urn:pulumi:{stack}::istio-mesh::{type_}::{name}"


def res(
    stack: str, type_: str, name: str, inputs: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    return {"urn": urn(stack, type_, name), "type": type_, "name": name, "inputs": inputs or {}, **fields}


def text(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> str:
    return format_text(diff_plans({"resources": old}, {"resources": new}), old_label="dev", new_label="prod")


def test_no_change_is_the_header_and_the_summary() -> None:
    plan = [res("dev", NAMESPACE, "istio-system", {"metadata": {"name": "istio-system"}})]
    same = [res("prod", NAMESPACE, "istio-system", {"metadata": {"name": "istio-system"}})]
    assert text(plan, same) == "prod against dev\n\n0 to create, 0 to update, 0 to delete, 1 unchanged\n"


def test_created_deleted_and_updated_resources_in_urn_order() -> None:
    old = [
        res("dev", RELEASE, "istiod", {"version": "1.29.6"}),
        res("dev", CONFIG_MAP, "kiali", {"data": {}}),
        res("dev", CONFIG_MAP, "grafana", {"data": {}}),
    ]
    new = [
        res("prod", RELEASE, "istiod", {"version": "1.30.3"}),
        res("prod", RELEASE, "istio-egressgateway", {"version": "1.30.3"}),
        res("prod", CONFIG_MAP, "grafana", {"data": {}}),
    ]
    assert text(old, new) == (
        "prod against dev\n"
        "\n"
        "- kubernetes:core/v1:ConfigMap kiali\n"
        "+ kubernetes:helm.sh/v3:Release istio-egressgateway\n"
        "~ kubernetes:helm.sh/v3:Release istiod\n"
        '    version: "1.29.6" → "1.30.3"\n'
        "\n"
        "1 to create, 1 to update, 1 to delete, 1 unchanged\n"
    )


def test_changed_values_are_shown_as_json_by_path() -> None:
    old = res(
        "dev",
        NAMESPACE,
        "istio-system",
        {
            "metadata": {"labels": {"istio-mesh/environment": "development", "team": "mesh"}},
            "spec": {"ports": [80, 443], "enabled": 1, "note": None},
            "data": {"where": "cafe"},
        },
    )
    new = res(
        "prod",
        NAMESPACE,
        "istio-system",
        {
            "metadata": {"labels": {"istio-mesh/environment": "production", "istio.io/rev": "canary"}},
            "spec": {"ports": [80], "enabled": True, "note": {"a": [1, "b"]}},
            "data": {"where": "café"},
        },
    )
    assert text([old], [new]) == (
        "prod against dev\n"
        "\n"
        "~ kubernetes:core/v1:Namespace istio-system\n"
        '    data.where: "cafe" → "café"\n'
        '    metadata.labels["istio-mesh/environment"]: "development" → "production"\n'
        '    metadata.labels["istio.io/rev"]: (none) → "canary"\n'
        '    metadata.labels.team: "mesh" → (none)\n'
        "    spec.enabled: 1 → true\n"
        '    spec.note: null → {"a": [1, "b"]}\n'
        "    spec.ports[1]: 443 → (none)\n"
        "\n"
        "0 to create, 1 to update, 0 to delete, 0 unchanged\n"
    )


def test_long_values_are_cut_at_120_characters_with_an_ellipsis() -> None:
    exactly = "a" * 118  # 120 characters with its quotes
    longer = "b" * 119  # 121 with its quotes: cut to 119 and "…"
    old = res("dev", CONFIG_MAP, "values", {"data": {"exactly": "", "longer": ""}})
    new = res("prod", CONFIG_MAP, "values", {"data": {"exactly": exactly, "longer": longer}})
    assert text([old], [new]) == (
        "prod against dev\n"
        "\n"
        "~ kubernetes:core/v1:ConfigMap values\n"
        f'    data.exactly: "" → "{exactly}"\n'
        f'    data.longer: "" → "{"b" * 118}…\n'
        "\n"
        "0 to create, 1 to update, 0 to delete, 0 unchanged\n"
    )


def test_a_multi_line_text_shows_its_changed_lines_up_to_twelve() -> None:
    old_script = "\n".join(["set -e", *(f"step {i}" for i in range(7))])
    new_script = "\n".join(["set -eu", *(f"step {i}" for i in range(7)), "done"])
    old = res("dev", CONFIG_MAP, "scripts", {"data": {"run.sh": old_script}})
    new = res("prod", CONFIG_MAP, "scripts", {"data": {"run.sh": new_script}})
    assert len(json.dumps(new_script)) <= 120  # shown whole: the point here is the lines below
    assert text([old], [new]) == (
        "prod against dev\n"
        "\n"
        "~ kubernetes:core/v1:ConfigMap scripts\n"
        # A key that is not a plain word is quoted.
        f'    data["run.sh"]: {json.dumps(old_script)} → {json.dumps(new_script)}\n'
        "        - set -e\n"
        "        + set -eu\n"
        "        + done\n"
        "\n"
        "0 to create, 1 to update, 0 to delete, 0 unchanged\n"
    )

    # Thirteen changed lines (six old, seven new): twelve shown, then how many more.
    many_old = "\n".join(f"old {i}" for i in range(6))
    many_new = "\n".join(f"new {i}" for i in range(7))
    lines = text(
        [res("dev", CONFIG_MAP, "scripts", {"data": {"run.sh": many_old}})],
        [res("prod", CONFIG_MAP, "scripts", {"data": {"run.sh": many_new}})],
    ).splitlines()
    assert lines[4:] == [
        *(f"        - old {i}" for i in range(6)),
        *(f"        + new {i}" for i in range(6)),
        "        … 1 more changed lines",
        "",
        "0 to create, 1 to update, 0 to delete, 0 unchanged",
    ]

    # Exactly twelve: no marker.
    twelve = text(
        [res("dev", CONFIG_MAP, "scripts", {"data": {"run.sh": many_old}})],
        [res("prod", CONFIG_MAP, "scripts", {"data": {"run.sh": many_new.rsplit("\n", 1)[0]}})],
    ).splitlines()
    assert twelve[4:] == [
        *(f"        - old {i}" for i in range(6)),
        *(f"        + new {i}" for i in range(6)),
        "",
        "0 to create, 1 to update, 0 to delete, 0 unchanged",
    ]


def test_a_secret_on_either_side_hides_both_values() -> None:
    old = res("dev", SECRET_TYPE, "grafana-admin", {"stringData": {"password": "hunter2", "user": "admin"}})
    new = res("prod", SECRET_TYPE, "grafana-admin", {"stringData": {"password": "[secret]"}})
    assert text([old], [new]) == (
        "prod against dev\n"
        "\n"
        "~ kubernetes:core/v1:Secret grafana-admin\n"
        "    stringData.password: [secret] → [secret]\n"
        '    stringData.user: "admin" → (none)\n'
        "\n"
        "0 to create, 1 to update, 0 to delete, 0 unchanged\n"
    )


def test_options_are_shown_before_inputs_with_short_references() -> None:
    namespace = urn("dev", NAMESPACE, "istio-system")
    old = res(
        "dev",
        RELEASE,
        "istio-base",
        {"version": "1.30.3"},
        protect=False,
        provider=urn("dev", PROVIDER_TYPE, "default_4_34_2") + "::id-1",
        dependsOn=[],
    )
    new = res(
        "prod",
        RELEASE,
        "istio-base",
        {"version": "1.30.3", "timeout": 300},
        protect=True,
        provider=urn("prod", PROVIDER_TYPE, "cluster") + "::id-2",
        dependsOn=[namespace.replace("dev", "prod", 1)],
    )
    assert text([old], [new]) == (
        "prod against dev\n"
        "\n"
        "~ kubernetes:helm.sh/v3:Release istio-base\n"
        "    [protect]: false → true\n"
        "    [provider]: pulumi:providers:kubernetes default_4_34_2::id-1 → pulumi:providers:kubernetes cluster::id-2\n"
        "    [dependsOn]: [] → [kubernetes:core/v1:Namespace istio-system]\n"
        "    timeout: (none) → 300\n"
        "\n"
        "0 to create, 1 to update, 0 to delete, 0 unchanged\n"
    )


def test_a_change_of_dependencies_alone_is_unchanged() -> None:
    old = res("dev", CONFIG_MAP, "kiali", {"data": {}}, dependsOn=[])
    new = res("prod", CONFIG_MAP, "kiali", {"data": {}}, dependsOn=[urn("prod", NAMESPACE, "istio-system")])
    assert text([old], [new]) == "prod against dev\n\n0 to create, 0 to update, 0 to delete, 1 unchanged\n"


def test_a_remote_components_inputs_are_not_diffed_its_options_are() -> None:
    old = res("dev", GROUP, "kiali", {"objs": [{"kind": "Service"}]}, remote=True)
    new = res("prod", GROUP, "kiali", {"objs": [{"kind": "Deployment"}]}, remote=True)
    assert text([old], [new]) == "prod against dev\n\n0 to create, 0 to update, 0 to delete, 1 unchanged\n"
    assert text([old], [{**new, "retainOnDelete": True}]) == (
        "prod against dev\n"
        "\n"
        "~ kubernetes:yaml/v2:ConfigGroup kiali\n"
        "    [retainOnDelete]: false → true\n"
        "\n"
        "0 to create, 1 to update, 0 to delete, 0 unchanged\n"
    )


def test_json_lists_urns_and_changed_paths() -> None:
    old = [
        res("dev", RELEASE, "istiod", {"version": "1.29.6", "values": {"a": 1}}),
        res("dev", CONFIG_MAP, "kiali"),
    ]
    new = [
        res("prod", RELEASE, "istiod", {"version": "1.30.3", "values": {"a": 2}}),
        res("prod", CONFIG_MAP, "grafana"),
    ]
    document = format_json(diff_plans({"resources": old}, {"resources": new}))
    assert document == (
        json.dumps(
            {
                "create": [urn("prod", CONFIG_MAP, "grafana")],
                "delete": [urn("dev", CONFIG_MAP, "kiali")],
                "unchanged": 0,
                "update": [{"paths": ["values.a", "version"], "urn": urn("prod", RELEASE, "istiod")}],
            },
            indent=2,
        )
        + "\n"
    )


# --- the objects a Helm release's chart renders (`show --charts` plans) ----------------------------


def chart_labels(version: str) -> dict[str, Any]:
    return {"labels": {"helm.sh/chart": f"istiod-{version}", "app.kubernetes.io/version": version}}


def rendered_plan(stack: str, version: str, objects: dict[str, Any] | None, **entry: Any) -> dict[str, Any]:
    release = res(stack, RELEASE, "istiod", {"version": version})
    return {
        "resources": [release],
        "rendered": {release["urn"]: {"objects": objects} if objects is not None else entry},
    }


def rendered_text(old: dict[str, Any], new: dict[str, Any]) -> str:
    return format_text(diff_plans(old, new), old_label="dev", new_label="prod")


def test_a_releases_objects_are_listed_under_it_version_labels_folded() -> None:
    old = rendered_plan(
        "dev",
        "1.29.6",
        {
            "ConfigMap istio-system/istio": {"metadata": chart_labels("1.29.6"), "data": {"mesh": "a"}},
            "Deployment istio-system/istiod": {"metadata": chart_labels("1.29.6"), "spec": {"replicas": 1}},
            "Service istio-system/old": {"metadata": {}},
        },
    )
    new = rendered_plan(
        "prod",
        "1.30.3",
        {
            "ConfigMap istio-system/istio": {"metadata": chart_labels("1.30.3"), "data": {"mesh": "a"}},
            "Deployment istio-system/istiod": {"metadata": chart_labels("1.30.3"), "spec": {"replicas": 2}},
            "Service istio-system/new": {"metadata": {}},
        },
    )
    assert rendered_text(old, new) == (
        "prod against dev\n"
        "\n"
        "~ kubernetes:helm.sh/v3:Release istiod\n"
        '    version: "1.29.6" → "1.30.3"\n'
        "    ~ Deployment istio-system/istiod (and its version labels)\n"
        "        spec.replicas: 1 → 2\n"
        "    + Service istio-system/new\n"
        "    - Service istio-system/old\n"
        "    ~ 1 object changes only the version labels (helm.sh/chart, app.kubernetes.io/version): "
        "ConfigMap istio-system/istio\n"
        "\n"
        "0 to create, 1 to update, 0 to delete, 0 unchanged\n"
        "objects of Helm releases: 1 to create, 2 to update, 1 to delete, 0 unchanged\n"
    )


def test_many_relabelled_objects_and_long_object_changes_are_cut() -> None:
    names = [f"ConfigMap istio-system/c{i}" for i in range(6)]
    old = rendered_plan(
        "dev",
        "1.29.6",
        {
            **{name: {"metadata": chart_labels("1.29.6")} for name in names},
            "Deployment istio-system/istiod": {"env": {f"E{i:02}": "a" for i in range(14)}},
        },
    )
    new = rendered_plan(
        "prod",
        "1.29.6",
        {
            **{name: {"metadata": chart_labels("1.30.3")} for name in names},
            "Deployment istio-system/istiod": {"env": {f"E{i:02}": "b" for i in range(14)}},
        },
    )
    assert rendered_text(old, new) == (
        "prod against dev\n"
        "\n"
        # The release's inputs are the same: its objects changed (say, another --kube-version).
        "= kubernetes:helm.sh/v3:Release istiod (its inputs unchanged)\n"
        "    ~ Deployment istio-system/istiod\n"
        + "".join(f'        env.E{i:02}: "a" → "b"\n' for i in range(12))
        + "        … 2 more changed lines\n"
        "    ~ 6 objects change only the version labels (helm.sh/chart, app.kubernetes.io/version): "
        "ConfigMap istio-system/c0, ConfigMap istio-system/c1, ConfigMap istio-system/c2, "
        "ConfigMap istio-system/c3 and 2 more\n"
        "\n"
        "0 to create, 0 to update, 0 to delete, 1 unchanged\n"
        "objects of Helm releases: 0 to create, 7 to update, 0 to delete, 0 unchanged\n"
    )


def test_a_release_rendered_on_one_side_only_says_why_it_is_not_compared() -> None:
    old = rendered_plan("dev", "1.29.6", None, notRendered="chart istiod 1.29.6 is not at hand")
    new = rendered_plan("prod", "1.30.3", {"Deployment istio-system/istiod": {}})
    assert rendered_text(old, new) == (
        "prod against dev\n"
        "\n"
        "~ kubernetes:helm.sh/v3:Release istiod\n"
        '    version: "1.29.6" → "1.30.3"\n'
        "    (objects not compared: old: chart istiod 1.29.6 is not at hand)\n"
        "\n"
        "0 to create, 1 to update, 0 to delete, 0 unchanged\n"
        "objects of Helm releases: 0 to create, 0 to update, 0 to delete, 0 unchanged\n"
    )
    document = json.loads(format_json(diff_plans(old, new)))
    assert document["objects"] == {
        "create": [],
        "delete": [],
        "update": [],
        "unchanged": 0,
        "notCompared": [
            {
                "release": "istio-mesh::kubernetes:helm.sh/v3:Release::istiod",
                "reason": "old: chart istiod 1.29.6 is not at hand",
            }
        ],
    }


def test_json_lists_the_objects_of_releases_beside_the_resources() -> None:
    old = rendered_plan(
        "dev", "1.29.6", {"Deployment istio-system/istiod": {"a": 1}, "Service istio-system/x": {}}
    )
    new = rendered_plan(
        "prod", "1.29.6", {"Deployment istio-system/istiod": {"a": 2}, "Service istio-system/y": {}}
    )
    release = urn("prod", RELEASE, "istiod")
    assert json.loads(format_json(diff_plans(old, new)))["objects"] == {
        "create": [{"release": release, "object": "Service istio-system/y"}],
        "delete": [{"release": release, "object": "Service istio-system/x"}],
        "update": [{"release": release, "object": "Deployment istio-system/istiod", "paths": ["a"]}],
        "unchanged": 0,
        "notCompared": [],
    }
    # Plans without rendered releases keep the JSON they always had.
    plain = [res("dev", RELEASE, "istiod", {"version": "1.29.6"})]
    assert "objects" not in json.loads(format_json(diff_plans({"resources": plain}, {"resources": plain})))


def test_references_to_other_resources_do_not_differ_by_stack() -> None:
    def refs(stack: str, target: str) -> dict[str, Any]:
        ref = urn(stack, NAMESPACE, target)
        return {"owner": ref, "all": [ref, "plain"], "nested": {"deeper": {"ref": ref}}}

    old = res("dev", CONFIG_MAP, "kiali", refs("dev", "istio-system"))
    assert text([old], [res("prod", CONFIG_MAP, "kiali", refs("prod", "istio-system"))]) == (
        "prod against dev\n\n0 to create, 0 to update, 0 to delete, 1 unchanged\n"
    )
    # A reference to another resource is a change, shown without the stack.
    new = res(
        "prod", CONFIG_MAP, "kiali", {**refs("prod", "istio-system"), "owner": urn("prod", NAMESPACE, "shop")}
    )
    assert text([old], [new]) == (
        "prod against dev\n"
        "\n"
        "~ kubernetes:core/v1:ConfigMap kiali\n"
        '    owner: "istio-mesh::kubernetes:core/v1:Namespace::istio-system" → '
        '"istio-mesh::kubernetes:core/v1:Namespace::shop"\n'
        "\n"
        "0 to create, 1 to update, 0 to delete, 0 unchanged\n"
    )
