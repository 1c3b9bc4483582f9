"""A plan as a tree a person can read: components, their resources, the inputs that matter, the order.

Only inputs already in the plan are printed, and the plan has secrets masked, so nothing here can
show a secret; inputs that may hold credentials without being marked secret (a provider's
kubeconfig, a command's environment) are never printed at all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from meshplan.engine import CONFIG_GROUP, RELEASE_TYPE, short_ref

SERVICE = "kubernetes:core/v1:Service"
LABELLED_KINDS = ("kubernetes:core/v1:Namespace", "kubernetes:core/v1:NamespacePatch")
PROVIDER_PREFIX = "pulumi:providers:"
COMMAND_PREFIX = "command:"
DYNAMIC_PREFIX = "pulumi-python:dynamic/"


def is_command(type_: str) -> bool:
    """pulumi-command's `command:local:Command`, or the program's own dynamic `...:Command`."""
    return type_.startswith(COMMAND_PREFIX) or (
        type_.startswith(DYNAMIC_PREFIX) and type_.endswith(":Command")
    )


def text(value: Any) -> str:
    """A value on one line: plain strings as they are, anything else as compact JSON."""
    if isinstance(value, str) and "\n" not in value:
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _metadata_lines(resource: Mapping[str, Any]) -> list[str]:
    metadata = _get(resource, "inputs", "metadata")
    if metadata is None:
        return []
    if not isinstance(metadata, Mapping):
        return [f"metadata: {text(metadata)}"]
    name, namespace = metadata.get("name"), metadata.get("namespace")
    lines = []
    if name is not None:
        where = f"{text(namespace)}/{text(name)}" if namespace is not None else text(name)
        lines.append(f"metadata: {where}")
    labels = metadata.get("labels")
    if resource["type"] in LABELLED_KINDS and labels:
        if isinstance(labels, Mapping):
            lines.append("labels: " + ", ".join(f"{k}={text(v)}" for k, v in sorted(labels.items())))
        else:
            lines.append(f"labels: {text(labels)}")
    return lines


def _service_lines(spec: Any) -> list[str]:
    if not isinstance(spec, Mapping):
        return [f"spec: {text(spec)}"] if spec is not None else []
    lines = [f"type: {text(spec.get('type', 'ClusterIP'))}"]
    ports = spec.get("ports")
    if isinstance(ports, list):
        for port in ports:
            if isinstance(port, Mapping) and "nodePort" in port:
                label = f"{port['name']} " if port.get("name") else ""
                lines.append(f"nodePort: {text(port['nodePort'])} (port {label}{text(port.get('port'))})")
    elif ports is not None:
        lines.append(f"ports: {text(ports)}")
    return lines


def key_inputs(resource: Mapping[str, Any]) -> list[str]:
    """The few inputs that tell this resource apart, as `key: value` lines."""
    type_: str = resource["type"]
    inputs = resource.get("inputs")
    if not isinstance(inputs, Mapping):
        return [f"inputs: {text(inputs)}"] if inputs else []
    lines: list[str] = []
    if type_.startswith(PROVIDER_PREFIX):
        lines += [f"{key}: {text(inputs[key])}" for key in ("context", "namespace") if key in inputs]
        if "kubeconfig" in inputs:
            lines.append("kubeconfig: (set)")  # may be a whole kubeconfig, credentials included
    elif type_ == RELEASE_TYPE:
        lines += [f"{key}: {text(inputs[key])}" for key in ("chart", "version", "namespace") if key in inputs]
        repository = _get(inputs, "repositoryOpts", "repo")
        if repository is not None:
            lines.append(f"repository: {text(repository)}")
        values = inputs.get("values")
        if isinstance(values, Mapping) and values:
            lines.append("values: " + ", ".join(sorted(values)))
        elif values:
            lines.append(f"values: {text(values)}")
    elif type_ == CONFIG_GROUP:
        pass  # no inputs as the engine records them: its objects are resources of their own below
    elif is_command(type_):  # a dynamic resource's `__provider` (its pickled code) is never shown
        lines += [f"{key}: {text(inputs[key])}" for key in ("create", "update", "delete") if key in inputs]
        if inputs.get("triggers"):
            lines.append(f"triggers: {text(inputs['triggers'])}")
    else:
        lines += _metadata_lines(resource)
        if type_ == SERVICE:
            lines += _service_lines(inputs.get("spec"))
    return lines


class _Tree:
    def __init__(self, resources: Sequence[Mapping[str, Any]]) -> None:
        self.by_urn = {r["urn"]: r for r in resources}
        self.children: dict[str | None, list[str]] = {}
        for resource in resources:
            parent = resource.get("parent")
            self.children.setdefault(parent if parent in self.by_urn else None, []).append(resource["urn"])
        self._depth: dict[str, int] = {}
        self._rank: dict[str, int] = {}
        self.name_count = Counter(r["name"] for r in resources)

    def depth(self, urn: str, visiting: frozenset[str] = frozenset()) -> int:
        """Longest chain of dependencies below a resource: the order a deployment creates them in."""
        if urn not in self._depth:
            deps = [
                d for d in self.by_urn[urn].get("dependsOn") or [] if d in self.by_urn and d not in visiting
            ]
            self._depth[urn] = 1 + max(self.depth(d, visiting | {urn}) for d in deps) if deps else 0
        return self._depth[urn]

    def rank(self, urn: str) -> int:
        """A component comes where its first resource does."""
        if urn not in self._rank:
            kids = self.children.get(urn, [])
            self._rank[urn] = min(self.rank(k) for k in kids) if kids else self.depth(urn)
        return self._rank[urn]

    def ordered(self, parent: str | None) -> list[str]:
        def key(urn: str) -> tuple[int, bool, str]:
            # Providers first among equals: everything else runs through them.
            return self.rank(urn), not self.by_urn[urn]["type"].startswith(PROVIDER_PREFIX), urn

        return sorted(self.children.get(parent, []), key=key)

    def dependency_name(self, urn: str) -> str:
        resource = self.by_urn.get(urn)
        if resource is None:
            return short_ref(urn)
        name = resource["name"]
        # Addon objects share names across kinds (istio-system/kiali is a Service and a Deployment).
        return f"{name} ({resource['type']})" if self.name_count[name] > 1 else name


def _header(resource: Mapping[str, Any]) -> str:
    flags = [flag for flag in ("protect", "retainOnDelete") if resource.get(flag)]
    return f"{resource['type']} {resource['name']}" + "".join(f" [{flag}]" for flag in flags)


def _details(tree: _Tree, resource: Mapping[str, Any]) -> list[str]:
    lines = key_inputs(resource)
    if resource.get("ignoreChanges"):
        lines.append("ignoreChanges: " + ", ".join(resource["ignoreChanges"]))
    needs = sorted(tree.dependency_name(urn) for urn in resource.get("dependsOn") or [])
    lines += [f"needs: {name}" for name in needs]
    return lines


def _output_lines(value: Any, indent: str) -> list[str]:
    lines = []
    for key in sorted(value):
        item = value[key]
        if isinstance(item, Mapping) and item:
            lines.append(f"{indent}{key}:")
            lines += _output_lines(item, indent + "  ")
        elif isinstance(item, list) and all(not isinstance(v, (Mapping, list)) for v in item):
            lines.append(f"{indent}{key}: [" + ", ".join(text(v) for v in item) + "]")
        else:
            lines.append(f"{indent}{key}: {text(item)}")
    return lines


def format_tree(plan: Mapping[str, Any]) -> str:
    resources: Sequence[Mapping[str, Any]] = plan["resources"]
    tree = _Tree(resources)
    components = sum(1 for r in resources if not r.get("custom", True))
    lines = [
        f"{plan.get('project', '?')} {plan.get('stack', '?')}: "
        f"{len(resources)} resources ({components} components)"
    ]

    rendered: Mapping[str, Any] = plan.get("rendered") or {}

    def emit(urn: str, prefix: str, last: bool) -> None:
        resource = tree.by_urn[urn]
        lines.append(prefix + ("└─ " if last else "├─ ") + _header(resource))
        inner = prefix + ("   " if last else "│  ")
        kids = tree.ordered(urn)
        # A rendered Release's objects are shown as its children: what the chart puts in the cluster.
        chart = rendered.get(urn) or {}
        objects = sorted(chart.get("objects") or {})
        detail_prefix = inner + ("│  " if kids or objects else "   ")
        details = _details(tree, resource)
        if objects:
            details.append(f"objects: {len(objects)} (helm template of {chart.get('chart')})")
        elif chart:
            details.append(f"objects: not rendered: {chart.get('notRendered') or chart.get('error')}")
        lines.extend(detail_prefix + line for line in details)
        for index, object_id in enumerate(objects):
            end = index == len(objects) - 1 and not kids
            lines.append(inner + ("└─ " if end else "├─ ") + object_id)
        for index, kid in enumerate(kids):
            emit(kid, inner, index == len(kids) - 1)

    roots = tree.ordered(None)
    for index, root in enumerate(roots):
        emit(root, "", index == len(roots) - 1)
    outputs = plan.get("outputs")
    if isinstance(outputs, Mapping) and outputs:
        lines += ["", "outputs:", *_output_lines(outputs, "  ")]
    return "\n".join(lines) + "\n"
