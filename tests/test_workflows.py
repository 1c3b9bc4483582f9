"""Static checks of the CI workflows, the kind cluster config and the end-to-end script.

None of these can run GitHub Actions or a cluster; they lint what can be linted and pin down the
properties the workflows must keep (fork safety, the production gate, the kind port mappings).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
KIND_CONFIG = ROOT / "hack" / "kind-dev.yaml"
E2E_SCRIPT = ROOT / "hack" / "e2e.sh"

WORKFLOW_FILES = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"


def find_tool(name: str) -> str | None:
    """The tool installed next to this interpreter (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict[Any, Any]) -> set[str]:
    """Event names of a workflow's `on:` (PyYAML reads the bare key `on` as the boolean True)."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return {str(event) for event in on}
    if isinstance(on, dict):
        return {str(event) for event in on}
    raise AssertionError(f"unexpected `on:` value: {on!r}")


def workflow(name: str) -> dict[Any, Any]:
    path = WORKFLOWS / name
    assert path.is_file(), f"{path} is missing"
    return load_yaml(path)


def test_workflows_exist() -> None:
    names = {path.name for path in WORKFLOW_FILES}
    assert {"pr.yml", "deploy.yml", "drift.yml", "e2e.yml"} <= names, names


def test_actionlint() -> None:
    actionlint = find_tool("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (pip install -r requirements-dev.txt provides it)")
    files = [str(path.relative_to(ROOT)) for path in WORKFLOW_FILES]
    proc = subprocess.run(
        [actionlint, "-no-color", *files], cwd=ROOT, capture_output=True, text=True, check=False
    )
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0, output
    assert output == ""


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_workflow_schema(path: Path) -> None:
    check_jsonschema = find_tool("check-jsonschema")
    if check_jsonschema is None:
        pytest.skip("check-jsonschema is not installed (pip install -r requirements-dev.txt provides it)")
    proc = subprocess.run(
        [check_jsonschema, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_no_pull_request_target(path: Path) -> None:
    # pull_request_target runs with a write token and secrets in the base repository's context;
    # combined with checking out the PR's code it hands both to forks.
    assert "pull_request_target" not in triggers(load_yaml(path))


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_actions_are_pinned(path: Path) -> None:
    for job_id, job in load_yaml(path)["jobs"].items():
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses is None or uses.startswith(("./", "docker://")):
                continue
            ref = uses.rpartition("@")[2]
            assert re.fullmatch(r"v\d+(\.\d+){0,2}|[0-9a-f]{40}", ref), (
                f"{path.name}: job {job_id} uses {uses}: pin a version tag or a commit SHA"
            )


def test_pr_jobs_using_secrets_skip_forks() -> None:
    jobs = workflow("pr.yml")["jobs"]
    with_secrets = [job_id for job_id, job in jobs.items() if "secrets." in yaml.safe_dump(job)]
    assert with_secrets, "pr.yml should have a preview job that uses secrets"
    for job_id in with_secrets:
        condition = str(jobs[job_id].get("if", ""))
        assert FORK_GUARD in condition, f"pr.yml job {job_id} uses secrets but runs for forks"


def test_pr_plan_job_runs_for_forks_without_secrets() -> None:
    jobs = workflow("pr.yml")["jobs"]
    plan = jobs["plan"]
    assert "secrets." not in yaml.safe_dump(plan)
    assert "if" not in plan, "the offline plan must run for every pull request, forks included"
    checkout = next(
        step for step in plan["steps"] if str(step.get("uses", "")).startswith("actions/checkout")
    )
    assert checkout["with"]["fetch-depth"] == 0, "meshplan diffs against the base commit: full history"


def test_pr_comment_is_sticky_and_skipped_for_forks() -> None:
    jobs = workflow("pr.yml")["jobs"]
    text = (WORKFLOWS / "pr.yml").read_text()
    assert text.count("<!-- istio-mesh-plan -->") >= 2, "the marker is written and searched for"
    commenting = [job_id for job_id, job in jobs.items() if "updateComment" in yaml.safe_dump(job)]
    assert commenting, "no job updates the previous plan comment"
    for job_id in commenting:
        assert FORK_GUARD in str(jobs[job_id].get("if", "")), f"pr.yml job {job_id} would fail for forks"
        assert jobs[job_id].get("permissions", {}).get("pull-requests") == "write"


def deploy_jobs() -> dict[str, dict[str, Any]]:
    return workflow("deploy.yml")["jobs"]


def job_for_stack(stack: str) -> tuple[str, dict[str, Any]]:
    for job_id, job in deploy_jobs().items():
        if job.get("env", {}).get("STACK") == stack or job_id == stack:
            return job_id, job
    raise AssertionError(f"deploy.yml has no job for the {stack} stack")


def environment_name(job: dict[str, Any]) -> str | None:
    environment = job.get("environment")
    return environment.get("name") if isinstance(environment, dict) else environment


def test_deploy_prod_is_gated_by_production_environment() -> None:
    _, prod = job_for_stack("prod")
    assert environment_name(prod) == "production"


def test_deploy_prod_runs_after_dev() -> None:
    dev_id, _ = job_for_stack("dev")
    _, prod = job_for_stack("prod")
    needs = prod.get("needs", [])
    assert dev_id in ([needs] if isinstance(needs, str) else needs)


def test_deploy_never_cancels_a_running_update() -> None:
    assert "push" in triggers(workflow("deploy.yml"))
    groups = set()
    for stack in ("dev", "prod"):
        job_id, job = job_for_stack(stack)
        concurrency = job.get("concurrency")
        assert isinstance(concurrency, dict), f"deploy.yml job {job_id} has no concurrency group"
        assert concurrency.get("cancel-in-progress") is False, f"deploy.yml job {job_id} may cancel `up`"
        groups.add(concurrency["group"])
    assert len(groups) == 2, "one concurrency group per stack"


def test_drift_runs_nightly_and_fails_on_drift() -> None:
    drift = workflow("drift.yml")
    assert {"schedule", "workflow_dispatch"} <= triggers(drift)
    text = (WORKFLOWS / "drift.yml").read_text()
    assert re.search(r"pulumi refresh\b[^\n]*--preview-only", text)
    assert re.search(r"pulumi refresh\b[^\n]*--expect-no-changes", text)


def test_kind_config() -> None:
    config = load_yaml(KIND_CONFIG)
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["name"] == "istio-dev"
    control_planes = [node for node in config["nodes"] if node["role"] == "control-plane"]
    assert len(control_planes) == 1
    mappings = {m["containerPort"]: m for m in control_planes[0].get("extraPortMappings", [])}
    for port in (30007, 30008, 30009):
        assert port in mappings, f"no extraPortMapping for NodePort {port}"
        mapping = mappings[port]
        assert mapping["hostPort"] == port
        assert mapping.get("protocol", "TCP") == "TCP"
        assert mapping["listenAddress"] == "127.0.0.1"


def test_e2e_script_parses() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    proc = subprocess.run([bash, "-n", str(E2E_SCRIPT)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "set -euo pipefail" in E2E_SCRIPT.read_text()


# `kubectl` where bash would run it as a command: at the start of a command, after a pipe or an
# operator, in a command substitution or subshell, or after a keyword.
KUBECTL_COMMAND = re.compile(r"(?:^|[;&|(]|\$\(|\b(?:then|do|else|if|while|until|!)\s)\s*kubectl\b")


def kubectl_invocations(script: str) -> list[str]:
    """Each kubectl command line of a bash script, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", script)
    found = []
    for line in joined.splitlines():
        code = re.sub(r"(^|\s)#.*$", "", line)
        for match in KUBECTL_COMMAND.finditer(code):
            # The command runs up to the next pipe, list operator or end of line.
            found.append(re.split(r"\|\||&&|[|;]", code[match.end() :])[0])
    return found


def test_kubectl_invocations_detector() -> None:
    script = "\n".join(
        [
            "x=$(kubectl get ns)",
            "if kubectl \\",
            "  --context c get pods; then :; fi",
            "# kubectl get nodes (a comment)",
            "for tool in kind kubectl; do :; done",
            "kubectl version | grep Client",
        ]
    )
    found = [args.strip() for args in kubectl_invocations(script)]
    assert found == ["get ns)", "--context c get pods", "version"]


def test_e2e_kubectl_always_names_the_context() -> None:
    invocations = kubectl_invocations(E2E_SCRIPT.read_text())
    assert invocations, "hack/e2e.sh runs no kubectl command: the check would prove nothing"
    for args in invocations:
        assert re.search(r"--context[= ]", args), f"kubectl without --context in hack/e2e.sh: kubectl{args}"
