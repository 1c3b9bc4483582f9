#!/usr/bin/env python3
"""Which stacks need a real cluster: the stack discovery of deploy.yml, drift.yml and pr.yml's preview.

A stack is a `Pulumi.<stack>.yaml` at the repository root. It is *local* when its
`istio-mesh:cluster.context` starts with `kind-`: it targets a kind cluster on a laptop or on the
e2e runner (the dev stack, `kind-istio-dev`), which no GitHub-hosted runner can reach, so the jobs
that talk to a real cluster (pulumi up, refresh, preview) leave it out. Every other stack is kept,
including one whose context is missing or encrypted (`secure:`): its job then fails loudly instead
of the stack being skipped silently. The offline plan (meshplan, pr.yml `plan`) needs no cluster
and does not use this: it plans every stack.

    python3 hack/stacks.py [--root DIR]     # prints the cluster stacks as a JSON list, sorted

Needs PyYAML (pinned in requirements.txt); the workflows install that pin before running this.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

PROJECT = "istio-mesh"  # `name:` in Pulumi.yaml: the namespace of the stack config keys
LOCAL_CONTEXT_PREFIX = "kind-"


def stack_files(root: Path | str) -> dict[str, Path]:
    """Every stack of the project at `root`, by name: `Pulumi.<stack>.yaml` (not `Pulumi.yaml`)."""
    found = {}
    for path in Path(root).glob("Pulumi.*.yaml"):
        name = path.name[len("Pulumi.") : -len(".yaml")]
        if name:
            found[name] = path
    return found


def cluster_context(path: Path) -> Any:
    """The stack's `cluster.context` as written: a str, None when unset, anything else when odd.

    Reads the nested form the program uses (`istio-mesh:cluster: {context: ...}`) and the flat key
    `istio-mesh:cluster.context` that `pulumi config set cluster.context ...` writes.
    """
    document = yaml.safe_load(path.read_text()) or {}
    if not isinstance(document, dict):
        raise ValueError(f"{path.name}: expected a mapping at the top level")
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path.name}: `config` is not a mapping")
    cluster = config.get(f"{PROJECT}:cluster")
    if isinstance(cluster, dict) and "context" in cluster:
        return cluster["context"]
    return config.get(f"{PROJECT}:cluster.context")


def is_local(context: Any) -> bool:
    """A kind cluster's context (kind names them `kind-<cluster>`): not reachable from CI."""
    return isinstance(context, str) and context.startswith(LOCAL_CONTEXT_PREFIX)


def cluster_stacks(root: Path | str) -> list[str]:
    """The stacks at `root` that target a real cluster (every stack but the local ones), sorted."""
    return sorted(name for name, path in stack_files(root).items() if not is_local(cluster_context(path)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the stacks that need a real cluster, as JSON.")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="directory holding the Pulumi.<stack>.yaml files (default: the repository root)",
    )
    args = parser.parse_args(argv)
    stacks = cluster_stacks(args.root)
    for name in sorted(set(stack_files(args.root)) - set(stacks)):
        print(
            f"skipping local stack {name} (cluster.context starts with {LOCAL_CONTEXT_PREFIX})",
            file=sys.stderr,
        )
    # Compact: the workflows compare the output with '[]' and pass it to fromJSON().
    print(json.dumps(stacks, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
