"""`meshplan show|diff|check --all`: every stack in one process, one summary table, one cluster per stack.

The stacks are generated as bench/fleet.py generates them, into a scratch copy of the project.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench.fleet import make_project, stack_file
from tests.test_meshplan import meshplan


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    make_project(tmp_path, 4)
    return tmp_path


def test_show_all_prints_one_table_then_each_stack(capsys: pytest.CaptureFixture[str], fleet: Path) -> None:
    run = meshplan(capsys, "show", "--all", "--project-dir", str(fleet), "--charts", "never", "--jobs", "2")
    assert run.code == 0, run.err
    table, *details = run.out.split("\n\n=== ")
    assert table.splitlines() == [
        "stack     context        istio   create  update  delete  violations",
        "fleet-00  kind-fleet-00  1.20.8  -       -       -       0 (+2 advisory)",
        "fleet-01  kind-fleet-01  1.29.6  -       -       -       0 (+2 advisory)",
        "fleet-02  kind-fleet-02  1.30.3  -       -       -       0 (+1 advisory)",
        "fleet-03  kind-fleet-03  1.20.8  -       -       -       0 (+2 advisory)",
    ]
    assert [d.splitlines()[:2] for d in details] == [
        [
            f"fleet-0{i} (Pulumi.fleet-0{i}.yaml) ===",
            # From Istio 1.22 a stack installs the Gateway API CRDs: one more component.
            f"istio-mesh fleet-0{i}: {count} resources ({7 if i % 3 == 0 else 8} components)",
        ]
        for i, count in enumerate(_resource_counts(capsys, fleet))
    ]


def _resource_counts(capsys: pytest.CaptureFixture[str], fleet: Path) -> list[int]:
    """Each stack's resource count as `show --stack` says it, one process per stack."""
    counts = []
    for index in range(4):
        one = meshplan(
            capsys,
            "show",
            "--json",
            "--project-dir",
            str(fleet),
            "--stack",
            f"fleet-0{index}",
            "--charts",
            "never",
        )
        counts.append(len(one.json()["resources"]))
    return counts


def test_one_worker_and_several_give_the_same_output(capsys: pytest.CaptureFixture[str], fleet: Path) -> None:
    args = ("show", "--all", "--project-dir", str(fleet), "--charts", "never")
    assert meshplan(capsys, *args, "--jobs", "1").out == meshplan(capsys, *args, "--jobs", "2").out


def test_two_stacks_on_one_cluster_are_a_violation(capsys: pytest.CaptureFixture[str], fleet: Path) -> None:
    (fleet / "Pulumi.twin.yaml").write_text(stack_file(1).replace("nodePort: 3010", "nodePort: 3020"))
    run = meshplan(capsys, "check", "--all", "--project-dir", str(fleet), "--charts", "never")
    assert run.code == 1
    lines = run.out.splitlines()
    assert lines[2] == "fleet-01  kind-fleet-01  1.29.6  -       -       -       1 (+2 advisory)"
    assert lines[5] == "twin      kind-fleet-01  1.29.6  -       -       -       1 (+2 advisory)"
    violation = (
        "one-cluster-one-stack: stack {stack}: stacks fleet-01, twin all target context kind-fleet-01 "
        "(default kubeconfig); a cluster belongs to one stack"
    )
    assert lines.count(violation.format(stack="fleet-01")) == 1
    assert lines.count(violation.format(stack="twin")) == 1


def test_the_same_context_in_another_kubeconfig_is_another_cluster(
    capsys: pytest.CaptureFixture[str], fleet: Path
) -> None:
    twin = stack_file(1).replace("context: kind-fleet-01", "context: kind-fleet-01\n    kubeconfig: ~/other")
    (fleet / "Pulumi.twin.yaml").write_text(twin.replace("nodePort: 3010", "nodePort: 3020"))
    run = meshplan(capsys, "check", "--all", "--project-dir", str(fleet), "--charts", "never")
    assert run.code == 0, run.out + run.err
    assert "one-cluster-one-stack" not in run.out


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_diff_all_compares_every_stack_with_a_git_revision(
    capsys: pytest.CaptureFixture[str], fleet: Path
) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=fleet, check=True, capture_output=True)

    git("init", "--quiet", "--initial-branch=main")
    git("add", "--all")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "fleet")
    stack = fleet / "Pulumi.fleet-02.yaml"
    stack.write_text(stack.read_text().replace("namespaces: [default, shop-02]", "namespaces: [default]"))
    (fleet / "Pulumi.new.yaml").write_text(stack_file(9))
    run = meshplan(
        capsys,
        "diff",
        "--all",
        "--against",
        "git:HEAD",
        "--exit-code",
        "--project-dir",
        str(fleet),
        "--charts",
        "never",
    )
    assert run.code == 1, run.err
    table = run.out.split("\n\n")[0].splitlines()
    assert [line.split()[:6] for line in table[1:]] == [
        ["fleet-00", "kind-fleet-00", "1.20.8", "0", "0", "0"],
        ["fleet-01", "kind-fleet-01", "1.29.6", "0", "0", "0"],
        ["fleet-02", "kind-fleet-02", "1.30.3", "0", "0", "3"],
        ["fleet-03", "kind-fleet-03", "1.20.8", "0", "0", "0"],
        ["new", "kind-fleet-09", "1.20.8", table[5].split()[3], "0", "0"],
    ]
    assert int(table[5].split()[3]) > 30  # a stack new at HEAD: all of it is created
    assert "stack new against git:HEAD (no stack new there)" in run.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("show", "--all", "--stack", "fleet-00"),
            "--all renders every stack: leave out --stack and --stack-file",
        ),
        (
            ("show", "--all", "nothing-*.yaml"),
            "--all nothing-*.yaml: no stack file Pulumi.<stack>.yaml matches in",
        ),
        (("diff", "--all", "--against", "fleet-00"), "with --all, --against is git:REV (each stack at REV)"),
        (("show", "--all", "--jobs", "0"), "--jobs 0: expected 1 or more"),
        (("show", "--all", "--json"), "--all prints a table and each stack's text; for JSON, run each stack"),
    ],
)
def test_all_mistakes(
    capsys: pytest.CaptureFixture[str], fleet: Path, argv: tuple[str, ...], message: str
) -> None:
    run = meshplan(capsys, *argv, "--project-dir", str(fleet))
    assert run.code == 2
    assert message in run.err
