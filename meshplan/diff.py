"""Compare two plans the way `pulumi preview --diff` would: created, deleted and updated resources.

Resources are matched by URN without the stack name, so a plan of `dev` can be compared with a plan
of `prod`, with a saved plan, or with the same stack rendered from another git revision.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshplan import UserError
from meshplan.engine import SECRET, UNKNOWN, short_ref, stackless

# Resource options that change what the engine does with a resource, compared alongside its inputs.
META_FIELDS = ("protect", "retainOnDelete", "ignoreChanges", "provider", "parent", "dependsOn")

# Longer values are cut: a whole Grafana dashboard in one diff line helps nobody.
MAX_VALUE_CHARS = 120
MAX_TEXT_LINES = 12

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class PlanError(UserError):
    """A plan that cannot be compared: not a meshplan plan, or a URN declared twice."""


class _Missing:
    """The side of a change where the value does not exist."""

    def __repr__(self) -> str:
        return "(none)"


MISSING: Any = _Missing()


def _stackless_refs(value: Any) -> Any:
    """Resource references inside inputs are URNs too; they must not differ by stack alone."""
    if isinstance(value, str):
        return stackless(value)
    if isinstance(value, Mapping):
        return {key: _stackless_refs(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stackless_refs(item) for item in value]
    return value


def key_path(path: str, key: str) -> str:
    """`metadata.labels` + `istio.io/rev` -> `metadata.labels["istio.io/rev"]`."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _same_scalar(old: Any, new: Any) -> bool:
    # JSON text tells apart what == does not: True and 1, 1 and 1.0, "1" and 1.
    return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)


def changed_paths(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Every leaf-most path whose value differs, with both values (MISSING where absent)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            yield from changed_paths(old.get(key, MISSING), new.get(key, MISSING), key_path(path, str(key)))
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            yield from changed_paths(
                old[index] if index < len(old) else MISSING,
                new[index] if index < len(new) else MISSING,
                f"{path}[{index}]",
            )
    elif old is MISSING or new is MISSING or not _same_scalar(old, new):
        yield path or "(inputs)", old, new


@dataclass(frozen=True)
class Change:
    """One changed input of an updated resource: its path and the old and new values."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ResourceDiff:
    """One resource that is created, deleted or updated between two plans."""

    kind: str  # "create", "delete" or "update"
    key: str  # the URN without the stack
    urn: str  # the new side's URN, or the old side's for a deletion
    type: str
    name: str
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True)
class ObjectDiff:
    """One object a Helm release's chart renders that is created, deleted or updated."""

    kind: str  # "create", "delete" or "update"
    release: str  # the Release's URN without the stack
    release_urn: str
    object: str  # `Deployment istio-system/istiod`
    changes: tuple[Change, ...] = ()


@dataclass
class PlanDiff:
    """Everything that differs between two plans, and how many resources stay as they are.

    `objects` are the rendered objects of Helm releases (`show --charts`), compared when both plans
    rendered a release; `not_compared` says which releases could not be, and why.
    """

    resources: list[ResourceDiff] = field(default_factory=list)
    unchanged: int = 0
    objects: list[ObjectDiff] = field(default_factory=list)
    objects_unchanged: int = 0
    not_compared: dict[str, str] = field(default_factory=dict)  # release key -> why
    rendered: bool = False  # whether either plan had rendered releases

    def of_kind(self, kind: str) -> list[ResourceDiff]:
        return [r for r in self.resources if r.kind == kind]

    def objects_of(self, release: str) -> list[ObjectDiff]:
        return [o for o in self.objects if o.release == release]

    @property
    def has_changes(self) -> bool:
        return bool(self.resources or self.objects)


def check_plan_shape(plan: Any, origin: str) -> dict[str, Any]:
    """The parts of a plan the diff relies on; a clear PlanError for anything else."""
    if not isinstance(plan, Mapping) or not isinstance(plan.get("resources"), list):
        raise PlanError(f"{origin}: not a meshplan plan (expected an object with a `resources` list)")
    for index, resource in enumerate(plan["resources"]):
        if not isinstance(resource, Mapping) or not all(
            isinstance(resource.get(k), str) for k in ("urn", "type", "name")
        ):
            raise PlanError(f"{origin}: resources[{index}] needs string `urn`, `type` and `name`")
        for key in ("dependsOn", "ignoreChanges"):
            value = resource.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise PlanError(f"{origin}: resources[{index}].{key} must be a list of strings")
        if not isinstance(resource.get("inputs", {}), Mapping):
            raise PlanError(f"{origin}: resources[{index}].inputs must be an object")
    return dict(plan)


def load_plan_file(path: Path) -> dict[str, Any]:
    """A plan saved by `meshplan show --json`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PlanError(f"cannot read plan file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise PlanError(f"plan file {path} is not UTF-8 text") from None
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as error:
        raise PlanError(f"plan file {path} is not JSON: {error}") from None
    return check_plan_shape(plan, f"plan file {path}")


def _index(plan: Mapping[str, Any], origin: str) -> dict[str, Mapping[str, Any]]:
    indexed: dict[str, Mapping[str, Any]] = {}
    for resource in plan["resources"]:
        key = stackless(resource["urn"])
        if key in indexed:
            raise PlanError(f"{origin}: resource {resource['urn']} is declared twice")
        indexed[key] = resource
    return indexed


def _meta(resource: Mapping[str, Any]) -> dict[str, Any]:
    def ref(value: Any) -> Any:
        return stackless(value) if isinstance(value, str) else value

    return {
        "protect": bool(resource.get("protect", False)),
        "retainOnDelete": bool(resource.get("retainOnDelete", False)),
        "ignoreChanges": sorted(resource.get("ignoreChanges") or []),
        "provider": ref(resource.get("provider")),
        "parent": ref(resource.get("parent")),
        "dependsOn": sorted({stackless(urn) for urn in resource.get("dependsOn") or []}),
    }


def resource_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    changes = [
        Change(f"[{name}]", old_value, new_value)
        for name in META_FIELDS
        if not _same_scalar(old_value := _meta(old)[name], new_value := _meta(new)[name])
    ]
    if new.get("remote") and old.get("remote"):
        # A remote component's inputs are arguments to its provider's Construct call, not state the
        # engine diffs: the engine hands them to Construct and records the component the provider
        # registers (pulumi/pulumi pkg/resource/deploy/source_eval.go). A change shows on the
        # resources it constructs, as in `pulumi preview`.
        return changes
    old_inputs = _stackless_refs(old.get("inputs") or {})
    new_inputs = _stackless_refs(new.get("inputs") or {})
    changes.extend(Change(path, a, b) for path, a, b in changed_paths(old_inputs, new_inputs))
    return changes


DEPENDENCY_ONLY = frozenset({"[dependsOn]"})
MOVED = frozenset({"[parent]"})


def diff_plans(old: Mapping[str, Any], new: Mapping[str, Any]) -> PlanDiff:
    """What applying `new` over `old` would do."""
    old_index = _index(old, "the old plan")
    new_index = _index(new, "the new plan")
    # A resource that moved (a new parent, a new name) under an alias is the same resource, as the
    # engine sees it: compared with what its alias names in the old plan, not deleted and created.
    moved: set[str] = set()
    for key, resource in new_index.items():
        for alias in resource.get("aliases") or []:
            was = stackless(alias)
            if key not in old_index and was in old_index and was not in new_index:
                old_index[key] = old_index.pop(was)
                moved.add(key)
                break
    result = PlanDiff()
    for key in sorted(set(old_index) | set(new_index)):
        before, after = old_index.get(key), new_index.get(key)
        if before is None and after is not None:
            result.resources.append(ResourceDiff("create", key, after["urn"], after["type"], after["name"]))
        elif after is None and before is not None:
            result.resources.append(
                ResourceDiff("delete", key, before["urn"], before["type"], before["name"])
            )
        elif before is not None and after is not None:
            changes = resource_changes(before, after)
            # `pulumi preview` shows a resource whose only change is its dependencies as unchanged:
            # the engine records the new edges with a "same" step. Listed when something else changes.
            # A move under an alias changes the parent alone: the engine's step is a "same" too.
            same = DEPENDENCY_ONLY | MOVED if key in moved else DEPENDENCY_ONLY
            if any(change.path not in same for change in changes):
                result.resources.append(
                    ResourceDiff("update", key, after["urn"], after["type"], after["name"], tuple(changes))
                )
            else:
                result.unchanged += 1
    diff_rendered(old, new, result)
    return result


def _rendered_index(plan: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    rendered = plan.get("rendered")
    if not isinstance(rendered, Mapping):
        return {}
    return {stackless(urn): (urn, entry) for urn, entry in rendered.items() if isinstance(entry, Mapping)}


def diff_rendered(old: Mapping[str, Any], new: Mapping[str, Any], result: PlanDiff) -> None:
    """The objects of each Helm release that both plans rendered, compared object by object."""
    old_index, new_index = _rendered_index(old), _rendered_index(new)
    # Compared when some release was rendered: charts at hand on neither side leave the diff as it was.
    result.rendered = any("objects" in entry for _, entry in [*old_index.values(), *new_index.values()])
    if not result.rendered:
        return
    old_releases = {stackless(r["urn"]) for r in old["resources"]}
    new_releases = {stackless(r["urn"]) for r in new["resources"]}
    for key in sorted(set(old_index) | set(new_index)):
        before, after = old_index.get(key), new_index.get(key)
        old_objects = before[1].get("objects") if before else ({} if key not in old_releases else None)
        new_objects = after[1].get("objects") if after else ({} if key not in new_releases else None)
        if not isinstance(old_objects, Mapping) or not isinstance(new_objects, Mapping):
            reasons = [
                f"{side}: {entry[1].get('notRendered') or entry[1].get('error')}"
                for side, entry in (("old", before), ("new", after))
                if entry and not isinstance(entry[1].get("objects"), Mapping)
            ]
            result.not_compared[key] = "; ".join(reasons) or "rendered on one side only"
            continue
        urn = (after or before or (key, {}))[0]
        for object_id in sorted(set(old_objects) | set(new_objects)):
            if object_id not in old_objects:
                result.objects.append(ObjectDiff("create", key, urn, object_id))
            elif object_id not in new_objects:
                result.objects.append(ObjectDiff("delete", key, urn, object_id))
            else:
                changes = tuple(
                    Change(path, a, b)
                    for path, a, b in changed_paths(old_objects[object_id], new_objects[object_id])
                )
                if changes:
                    result.objects.append(ObjectDiff("update", key, urn, object_id, changes))
                else:
                    result.objects_unchanged += 1


def show_value(value: Any, *, meta: bool = False) -> str:
    """One value of a `path: old → new` line."""
    if value is MISSING:
        return "(none)"
    if value is None:
        return "null"
    if value in (SECRET, UNKNOWN):
        return str(value)
    if meta:  # URNs of providers, parents and dependencies: their type and name say enough
        if isinstance(value, str):
            return short_ref(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return "[" + ", ".join(short_ref(v) for v in value) + "]"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _contains_secret(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return value == SECRET


def _text_changes(old: str, new: str) -> list[str]:
    """The changed lines of a multi-line text (a ConfigMap's file, a script): the value line cannot."""
    changed = [
        line
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), n=0, lineterm="")
        if not line.startswith(("---", "+++", "@@"))
    ]
    shown = [f"{line[0]} {line[1:]}" for line in changed[:MAX_TEXT_LINES]]
    if len(changed) > MAX_TEXT_LINES:
        shown.append(f"… {len(changed) - MAX_TEXT_LINES} more changed lines")
    return shown


def change_lines(change: Change) -> list[str]:
    """`path: old → new`, and for multi-line texts the changed lines below it."""
    old, new = change.old, change.new
    # A value that is secret on one side is sensitive on both: the other side may be the very same
    # secret, saved unmasked by some other tool.
    if _contains_secret(old) or _contains_secret(new):
        old = SECRET if old is not MISSING else old
        new = SECRET if new is not MISSING else new
    meta = change.path.startswith("[")
    lines = [f"{change.path}: {show_value(old, meta=meta)} → {show_value(new, meta=meta)}"]
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
        lines.extend(f"    {line}" for line in _text_changes(old, new))
    return lines


SYMBOLS = {"create": "+", "delete": "-", "update": "~"}


def summary_line(diff: PlanDiff) -> str:
    counts = {kind: len(diff.of_kind(kind)) for kind in SYMBOLS}
    line = (
        f"{counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete, {diff.unchanged} unchanged"
    )
    if diff.rendered:
        objects = {kind: sum(1 for o in diff.objects if o.kind == kind) for kind in SYMBOLS}
        line += (
            f"\nobjects of Helm releases: {objects['create']} to create, {objects['update']} to update, "
            f"{objects['delete']} to delete, {diff.objects_unchanged} unchanged"
        )
    return line


# An upgrade changes every object's chart labels; past this many paths an object's lines are cut.
MAX_OBJECT_PATHS = 12


# The labels every object of a chart carries with the chart's version: an upgrade changes them on
# each object, so objects whose only change is these labels are listed on one line.
VERSION_LABEL = re.compile(r'(^|\.)labels\["(app\.kubernetes\.io/version|helm\.sh/chart)"\]$')
MAX_NAMES = 4


def labels_only(obj: ObjectDiff) -> bool:
    """An update that changes nothing but the chart's version labels."""
    return obj.kind == "update" and all(VERSION_LABEL.search(change.path) for change in obj.changes)


def _object_lines(diff: PlanDiff, release: str) -> list[str]:
    lines = []
    relabelled = [o for o in diff.objects_of(release) if labels_only(o)]
    for obj in diff.objects_of(release):
        if labels_only(obj):
            continue
        relabel = any(VERSION_LABEL.search(change.path) for change in obj.changes)
        lines.append(
            f"    {SYMBOLS[obj.kind]} {obj.object}" + (" (and its version labels)" if relabel else "")
        )
        changed = [
            line
            for change in obj.changes
            if not VERSION_LABEL.search(change.path)
            for line in change_lines(change)
        ]
        lines.extend(f"        {line}" for line in changed[:MAX_OBJECT_PATHS])
        if len(changed) > MAX_OBJECT_PATHS:
            lines.append(f"        … {len(changed) - MAX_OBJECT_PATHS} more changed lines")
    if relabelled:
        names = [o.object for o in relabelled]
        shown = ", ".join(names[:MAX_NAMES]) + (
            f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
        )
        noun = "object changes" if len(names) == 1 else "objects change"
        lines.append(
            f"    ~ {len(names)} {noun} only the version labels (helm.sh/chart, app.kubernetes.io/version): {shown}"
        )
    if release in diff.not_compared:
        lines.append(f"    (objects not compared: {diff.not_compared[release]})")
    return lines


def format_text(diff: PlanDiff, *, old_label: str, new_label: str) -> str:
    lines = [f"{new_label} against {old_label}", ""]
    listed = set()
    for resource in diff.resources:
        lines.append(f"{SYMBOLS[resource.kind]} {resource.type} {resource.name}")
        lines.extend(f"    {line}" for change in resource.changes for line in change_lines(change))
        lines.extend(_object_lines(diff, resource.key))
        listed.add(resource.key)
    # A release whose own inputs did not change but whose objects did (another --kube-version).
    for release in sorted({o.release for o in diff.objects} - listed):
        urn = diff.objects_of(release)[0].release_urn
        lines.append(f"= {short_ref(urn)} (its inputs unchanged)")
        lines.extend(_object_lines(diff, release))
    if diff.resources or diff.objects:
        lines.append("")
    lines.append(summary_line(diff))
    return "\n".join(lines) + "\n"


def format_json(diff: PlanDiff) -> str:
    document = {
        "create": sorted(r.urn for r in diff.of_kind("create")),
        "delete": sorted(r.urn for r in diff.of_kind("delete")),
        "update": [
            {"urn": r.urn, "paths": sorted(c.path for c in r.changes)}
            for r in sorted(diff.of_kind("update"), key=lambda r: r.urn)
        ],
        "unchanged": diff.unchanged,
    }
    if diff.rendered:
        # The resources' keys keep their meaning; the rendered objects of Helm releases come beside them.
        def entry(obj: ObjectDiff) -> dict[str, Any]:
            return {"release": obj.release_urn, "object": obj.object}

        document["objects"] = {
            "create": [entry(o) for o in diff.objects if o.kind == "create"],
            "delete": [entry(o) for o in diff.objects if o.kind == "delete"],
            "update": [
                {**entry(o), "paths": sorted(c.path for c in o.changes)}
                for o in diff.objects
                if o.kind == "update"
            ],
            "unchanged": diff.objects_unchanged,
            "notCompared": [
                {"release": key, "reason": why} for key, why in sorted(diff.not_compared.items())
            ],
        }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
