"""The dependency graph of a plan as Mermaid or Graphviz text.

Node ids are `n<index>` in URN order, so the same plan always draws the same text. Arrows point from
a dependency to the resource that needs it: left to right is the order a deployment creates them in.
Components are drawn as boxes around their children (Mermaid subgraphs, Graphviz clusters); every
`dependsOn` edge of the plan is drawn exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshplan.engine import short_ref


def type_short(type_: str) -> str:
    """`kubernetes:helm.sh/v3:Release` -> `Release`; `pulumi:providers:kubernetes` -> `provider:kubernetes`."""
    if type_.startswith("pulumi:providers:"):
        return "provider:" + type_.removeprefix("pulumi:providers:")
    return type_.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class Node:
    """One resource of the plan as drawn: its diagram id, type, name and whether it is a component."""

    id: str
    urn: str
    type_short: str
    name: str
    component: bool


@dataclass
class Layout:
    """The plan arranged for drawing: nodes, the tree of parents and children, and dependency edges."""

    nodes: dict[str, Node]  # by URN
    children: dict[str | None, list[str]]  # parent URN (None: top level) -> child URNs, URN order
    edges: list[tuple[str, str]]  # (dependency URN, dependent URN), each once, in id order

    def is_box(self, urn: str) -> bool:
        """Components with children are drawn as boxes; an empty one is just a node."""
        return self.nodes[urn].component and bool(self.children.get(urn))


def layout(plan: Mapping[str, Any]) -> Layout:
    resources: Sequence[Mapping[str, Any]] = sorted(plan["resources"], key=lambda r: r["urn"])
    nodes = {
        r["urn"]: Node(f"n{i}", r["urn"], type_short(r["type"]), r["name"], not r.get("custom", True))
        for i, r in enumerate(resources)
    }
    # A dependency outside the plan (a plan file edited by hand) still gets its edge.
    for resource in resources:
        for urn in resource.get("dependsOn") or []:
            if urn not in nodes:
                type_, _, name = short_ref(urn).partition(" ")
                nodes[urn] = Node(f"x{len(nodes) - len(resources)}", urn, type_short(type_), name, False)
    by_urn = {r["urn"]: r for r in resources}
    children: dict[str | None, list[str]] = {}
    for urn in nodes:
        parent = by_urn[urn].get("parent") if urn in by_urn else None
        children.setdefault(parent if parent in nodes else None, []).append(urn)
    edges = {(dep, r["urn"]) for r in resources for dep in r.get("dependsOn") or []}

    def order(edge: tuple[str, str]) -> tuple[int, int, str, str]:
        ids = [nodes[urn].id for urn in edge]
        return int(ids[0][1:]), int(ids[1][1:]), ids[0], ids[1]

    return Layout(nodes, children, sorted(edges, key=order))


def _mermaid_label(node: Node) -> str:
    def escape(value: str) -> str:
        return value.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")

    return f'"{escape(node.type_short)}<br/>{escape(node.name)}"'


def mermaid(plan: Mapping[str, Any]) -> str:
    graph = layout(plan)
    lines = ["flowchart LR", "  %% arrows point from a dependency to the resource that needs it"]

    def emit(urn: str, indent: str) -> None:
        node = graph.nodes[urn]
        if graph.is_box(urn):
            lines.append(f"{indent}subgraph {node.id} [{_mermaid_label(node)}]")
            for child in graph.children[urn]:
                emit(child, indent + "  ")
            lines.append(f"{indent}end")
        else:
            lines.append(f"{indent}{node.id}[{_mermaid_label(node)}]")
            # Children of a custom resource sit beside it: only components are drawn as boxes.
            for child in graph.children.get(urn, []):
                emit(child, indent)

    _walk_roots(graph, lambda urn: emit(urn, "  "))
    lines += [f"  {graph.nodes[dep].id} --> {graph.nodes[res].id}" for dep, res in graph.edges]
    return "\n".join(lines) + "\n"


def _dot_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot(plan: Mapping[str, Any]) -> str:
    graph = layout(plan)
    title = f"{plan.get('project', 'plan')}/{plan.get('stack', '')}"
    lines = [
        f"digraph {_dot_string(title)} {{",
        "  // arrows point from a dependency to the resource that needs it",
        "  rankdir=LR;",
        "  node [shape=box];",
    ]
    in_edges = {urn for edge in graph.edges for urn in edge}

    def label(node: Node) -> str:
        return _dot_string(f"{node.type_short}\n{node.name}").replace("\n", "\\n")

    def emit(urn: str, indent: str) -> None:
        node = graph.nodes[urn]
        if graph.is_box(urn):
            lines.append(f"{indent}subgraph cluster_{node.id} {{")
            lines.append(f"{indent}  label={label(node)};")
            # Graphviz edges join nodes, not clusters: a component with edges needs a node too.
            if urn in in_edges:
                lines.append(f"{indent}  {node.id} [label={label(node)}, shape=folder];")
            for child in graph.children[urn]:
                emit(child, indent + "  ")
            lines.append(f"{indent}}}")
        else:
            shape = ", shape=folder" if node.component else ""
            lines.append(f"{indent}{node.id} [label={label(node)}{shape}];")
            for child in graph.children.get(urn, []):
                emit(child, indent)

    _walk_roots(graph, lambda urn: emit(urn, "  "))
    lines += [f"  {graph.nodes[dep].id} -> {graph.nodes[res].id};" for dep, res in graph.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _walk_roots(graph: Layout, emit: Callable[[str], None]) -> None:
    for urn in graph.children.get(None, []):
        emit(urn)
