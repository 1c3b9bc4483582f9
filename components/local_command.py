"""Commands run on the machine that runs `pulumi up`: kubectl and helm against the stack's cluster.

`Command` is a Pulumi dynamic resource (https://www.pulumi.com/docs/iac/concepts/resources/dynamic-providers/)
with three bash scripts, each run at one point of the resource's life:

- `create` when the resource is created;
- `update` when, and only when, its `triggers` change (a new Istio version, a tag moved to another
  revision). Any other change (a renamed context, an edited script) is recorded without running
  anything, so nothing restarts for a reason that has nothing to do with the proxies (issue 10,
  item 18). A Command that had no `create` script and gets one with its new triggers runs that
  `create` instead: what it would have done had it been created now, which it never did (an
  ambient namespace's restart that becomes a sidecar namespace's, components/injection.py);
- `delete` when the resource is deleted, after everything that depends on it is gone.

Why not pulumi-command's `command:local:Command`: it re-runs `create` on any input change unless
`update` is set, and then runs `update` on any change too, so it cannot tell a trigger from a
renamed context; and its provider plugin is not served by the Go module proxy, so the real engine
this project tests against (README, "The real engine") could not run it. The dynamic provider runs
in the CLI's bundled `pulumi-resource-pulumi-python` plugin, with the program's own virtualenv.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi.dynamic

from components.cluster import kubectl
from components.config import ClusterConfig

SCRIPTS = ("create", "update", "delete")
# The inputs a diff looks at; the serialized provider (`__provider`) is not one of them, so a new
# release of this module changes no resource.
FIELDS = (*SCRIPTS, "triggers", "timeout")
# How much of a failing script's output the error repeats.
OUTPUT_TAIL_LINES = 40


class CommandError(Exception):
    """A script failed; the message has its exit status and the end of its output."""


def run_bash(script: str, timeout: int, *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `script` with bash, its output captured; a run over `timeout` seconds is a CommandError.

    The one way the dynamic resources (this module's, components/cluster_claim.py,
    components/release_recovery.py) run kubectl and helm.
    """
    try:
        return subprocess.run(
            ["/bin/bash", "-c", script],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CommandError(f"did not finish within {timeout} s: {script}") from None


def run_script(phase: str, script: str, timeout: int) -> None:
    """Run one phase's script with bash, failing with the end of its output if it fails."""
    if not script:
        return
    try:
        result = run_bash(script, timeout)
    except CommandError as error:
        raise CommandError(f"{phase}: {error}") from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-OUTPUT_TAIL_LINES:]
        raise CommandError(f"{phase}: exit status {result.returncode}: {script}\n" + "\n".join(output))


class CommandProvider(pulumi.dynamic.ResourceProvider):
    """Runs a Command's scripts; see the module docstring for when each one runs."""

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        run_script("create", props.get("create", ""), int(props["timeout"]))
        # A stable ID: nothing about a Command is unique in the cluster, and a random one would
        # make two runs of the same program differ.
        digest = hashlib.sha256(json.dumps(props.get("triggers", []), sort_keys=True).encode()).hexdigest()
        return pulumi.dynamic.CreateResult(id_=digest[:16], outs=_recorded(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [field for field in FIELDS if olds.get(field) != news.get(field)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        if olds.get("triggers") != news.get("triggers"):
            if news.get("create") and not olds.get("create"):
                run_script("create", news["create"], int(news["timeout"]))
            else:
                run_script("update", news.get("update", ""), int(news["timeout"]))
        return pulumi.dynamic.UpdateResult(outs=_recorded(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        run_script("delete", props.get("delete", ""), int(props["timeout"]))


def _recorded(props: Mapping[str, Any]) -> dict[str, Any]:
    return {field: props[field] for field in FIELDS if field in props}


class Command(pulumi.dynamic.Resource, module="istio-mesh", name="Command"):
    """A script per phase, run by `CommandProvider`; an empty script does nothing.

    Its type token is `pulumi-python:dynamic/istio-mesh:Command`.
    """

    def __init__(
        self,
        name: str,
        *,
        create: str = "",
        update: str = "",
        delete: str = "",
        triggers: Sequence[pulumi.Input[str]] = (),
        timeout: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        scripts = {"create": create, "update": update, "delete": delete}
        props: dict[str, Any] = {phase: script for phase, script in scripts.items() if script}
        props["triggers"] = list(triggers)
        props["timeout"] = timeout
        super().__init__(CommandProvider(), name, props, opts)


# The workload kinds whose pods get (or lose) sidecars when they are recreated.
WORKLOAD_KINDS = "deployment,statefulset,daemonset"


def restart_workloads(
    cluster: ClusterConfig, namespace: str, *, timeout: int, names: Sequence[str] = ()
) -> str:
    """Restart the workloads in `namespace` (all of them, or `names`), then wait for each rollout.

    `kubectl rollout restart` returns once the pod templates are patched; `rollout status` waits
    for the new pods, and fails when a rollout does not finish within `timeout` seconds, so a
    rollout that fails fails the `up`. An empty namespace restarts nothing and succeeds.
    """
    restart = kubectl(cluster, "--namespace", namespace, "rollout", "restart")
    status = kubectl(cluster, "--namespace", namespace, "rollout", "status", f"--timeout={timeout}s")
    if names:
        listed = " ".join(shlex.quote(name) for name in names)
        return f"set -eo pipefail; {restart} {listed}; " + "; ".join(
            f"{status} {shlex.quote(name)}" for name in names
        )
    workloads = kubectl(cluster, "--namespace", namespace, "get", WORKLOAD_KINDS, "--output=name")
    return (
        f"set -eo pipefail; {workloads} | xargs --no-run-if-empty {restart}; "
        f"{workloads} | xargs --no-run-if-empty --max-args=1 {status}"
    )
