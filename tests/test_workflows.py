"""Static checks of the CI workflows, the kind cluster config and the end-to-end script.

None of these can run GitHub Actions or a cluster; they lint what can be linted and pin down the
properties the workflows must keep (fork safety, the production gate, the kind port mappings, which
stacks get a real cluster, the kind node image).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
KIND_CONFIG = ROOT / "hack" / "kind-dev.yaml"
E2E_SCRIPT = ROOT / "hack" / "e2e.sh"
STACKS_SCRIPT = ROOT / "hack" / "stacks.py"

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


# --- Which stacks get a real cluster (hack/stacks.py) ----------------------------------------------


@functools.cache
def stacks_module() -> ModuleType:
    """hack/stacks.py, imported from its path (hack/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("hack_stacks", STACKS_SCRIPT)
    assert spec is not None and spec.loader is not None, f"cannot import {STACKS_SCRIPT}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cluster_stacks(root: Path) -> list[str]:
    function: Callable[[Path], list[str]] = stacks_module().cluster_stacks
    return function(root)


def write_stack(root: Path, name: str, config: Any) -> None:
    (root / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(config))


def with_context(context: Any) -> dict[str, Any]:
    return {"config": {"istio-mesh:cluster": {"context": context}, "istio-mesh:protect": False}}


def test_cluster_stacks_skips_kind_contexts_keeps_the_rest_sorted(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: istio-mesh\nruntime: python\n")  # the project, no stack
    (tmp_path / "other.yaml").write_text("config: {}\n")
    write_stack(tmp_path, "dev", with_context("kind-istio-dev"))
    write_stack(tmp_path, "laptop", with_context("kind-kind"))
    write_stack(tmp_path, "prod", with_context("prod-cluster"))
    write_stack(tmp_path, "b-staging", with_context("gke_proj_europe-west1_staging"))
    write_stack(tmp_path, "a-edge", with_context("edge-kind-1"))  # `kind-` only counts as a prefix
    write_stack(tmp_path, "kindish", with_context("kind"))  # no dash: not kind's naming
    assert cluster_stacks(tmp_path) == ["a-edge", "b-staging", "kindish", "prod"]


def test_cluster_stacks_keeps_stacks_it_cannot_classify(tmp_path: Path) -> None:
    # Unknown is not local: the stack's job then fails loudly instead of being skipped silently.
    write_stack(tmp_path, "encrypted", with_context({"secure": "v1:abc"}))
    write_stack(tmp_path, "nocontext", {"config": {"istio-mesh:cluster": {"kubeconfig": "/k"}}})
    write_stack(tmp_path, "nocluster", {"config": {"istio-mesh:protect": True}})
    write_stack(tmp_path, "noconfig", {"secretsprovider": "passphrase"})
    (tmp_path / "Pulumi.empty.yaml").write_text("")
    write_stack(tmp_path, "otherproject", {"config": {"other:cluster": {"context": "kind-x"}}})
    assert cluster_stacks(tmp_path) == [
        "empty",
        "encrypted",
        "nocluster",
        "noconfig",
        "nocontext",
        "otherproject",
    ]


def test_cluster_stacks_reads_the_flat_key_too(tmp_path: Path) -> None:
    # `pulumi config set cluster.context X` (without --path) writes the flat key.
    write_stack(tmp_path, "flat", {"config": {"istio-mesh:cluster.context": "kind-flat"}})
    write_stack(tmp_path, "real", {"config": {"istio-mesh:cluster.context": "real"}})
    assert cluster_stacks(tmp_path) == ["real"]


def test_cluster_stacks_of_an_empty_directory(tmp_path: Path) -> None:
    assert cluster_stacks(tmp_path) == []


def run_stacks_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STACKS_SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_stacks_cli_prints_compact_json(tmp_path: Path) -> None:
    # The workflows compare the output with '[]' and feed it to fromJSON() as a matrix.
    assert run_stacks_cli("--root", str(tmp_path)).stdout == "[]\n"
    write_stack(tmp_path, "dev", with_context("kind-istio-dev"))
    write_stack(tmp_path, "prod", with_context("prod-cluster"))
    write_stack(tmp_path, "edge", with_context("edge"))
    proc = run_stacks_cli("--root", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '["edge","prod"]\n'
    assert "dev" in proc.stderr, "the skipped local stack is named in the log"


def test_stacks_cli_fails_on_a_broken_stack_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.bad.yaml").write_text("config: [unclosed\n")
    proc = run_stacks_cli("--root", str(tmp_path))
    assert proc.returncode != 0
    assert proc.stdout == ""


def test_repository_stacks() -> None:
    # dev targets the kind cluster of `make dev-up` and hack/e2e.sh; prod a real cluster.
    assert load_yaml(ROOT / "Pulumi.yaml")["name"] == stacks_module().PROJECT
    stacks = cluster_stacks(ROOT)
    assert "dev" not in stacks
    assert "prod" in stacks
    proc = run_stacks_cli()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == stacks


def discovery_jobs(name: str) -> set[str]:
    """The jobs of a workflow that run hack/stacks.py."""
    return {
        job_id
        for job_id, job in workflow(name)["jobs"].items()
        if any("hack/stacks.py" in str(step.get("run", "")) for step in job.get("steps", []))
    }


def needs_of(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


@pytest.mark.parametrize(
    ("name", "cluster_jobs"),
    [("deploy.yml", ["dev", "prod"]), ("drift.yml", ["refresh"]), ("pr.yml", ["preview"])],
)
def test_cluster_jobs_take_their_stacks_from_hack_stacks(name: str, cluster_jobs: list[str]) -> None:
    jobs = workflow(name)["jobs"]
    found = discovery_jobs(name)
    assert len(found) == 1, f"{name}: expected one job running hack/stacks.py, found {sorted(found)}"
    (discovery,) = found
    for step in jobs[discovery]["steps"]:
        if "hack/stacks.py" in str(step.get("run", "")):
            assert '>> "$GITHUB_OUTPUT"' in step["run"]
    output = f"needs.{discovery}.outputs.list"
    assert "list" in jobs[discovery]["outputs"]
    for job_id in cluster_jobs:
        job = jobs[job_id]
        assert discovery in needs_of(job), f"{name}: job {job_id} does not wait for {discovery}"
        uses = yaml.safe_dump({"if": job.get("if"), "strategy": job.get("strategy")}, width=1000)
        assert output in uses, f"{name}: job {job_id} ignores the cluster stack list"
    # Every job that gets the cluster credentials is one of them.
    with_kubeconfig = {job_id for job_id, job in jobs.items() if "KUBECONFIG_DATA" in yaml.safe_dump(job)}
    assert with_kubeconfig == set(cluster_jobs)


@pytest.mark.parametrize("name", ["deploy.yml", "drift.yml", "pr.yml"])
def test_only_the_plan_lists_stack_files_itself(name: str) -> None:
    # The old shell glob over Pulumi.*.yaml kept local stacks; only the offline plan may still use it.
    for job_id, job in workflow(name)["jobs"].items():
        if "Pulumi.*.yaml" in yaml.safe_dump(job, width=1000):
            assert (name, job_id) == ("pr.yml", "plan"), f"{name}: job {job_id} lists every stack"


def test_pr_plan_job_plans_every_stack() -> None:
    plan = workflow("pr.yml")["jobs"]["plan"]
    text = yaml.safe_dump(plan, width=1000)
    assert "hack/stacks.py" not in text
    assert not needs_of(plan)
    render = next(step for step in plan["steps"] if step.get("id") == "render")
    assert 'glob("Pulumi.*.yaml")' in render["run"], "the plan must keep listing every stack itself"
    # One meshplan process for the whole repository (issue 11): its summary table and every stack.
    assert render["run"].count('meshplan("') == 1
    assert 'meshplan("diff", "--all", "--against", f"git:{base}", "--exit-code", *fetch)' in render["run"]


# A small evaluator for the `if:` expressions of GitHub Actions, enough for the ones in deploy.yml:
# literals, needs.<job>.result / needs.<job>.outputs.<name>, !, ==, !=, &&, ||, parentheses and the
# functions below. As on GitHub, an `if` without a status function gets an implicit `success() &&`.
EXPRESSION_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>&&|\|\||==|!=|!|\(|\)|,)|(?P<name>[A-Za-z_][\w.-]*))"
)
STATUS_FUNCTION = re.compile(r"\b(?:success|failure|cancelled|always)\(\)")


def evaluate_if(expression: str, needs: dict[str, dict[str, Any]], cancelled: bool = False) -> bool:
    tokens: list[tuple[str, str]] = []
    position = 0
    expression = expression.strip()
    while position < len(expression):
        match = EXPRESSION_TOKEN.match(expression, position)
        assert match and match.end() > position, f"cannot read {expression[position:]!r}"
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(expression) and expression[position].isspace():
            position += 1
    if not STATUS_FUNCTION.search(expression):
        tokens = [
            ("name", "success"),
            ("op", "("),
            ("op", ")"),
            ("op", "&&"),
            ("op", "("),
            *tokens,
            ("op", ")"),
        ]
    index = 0

    def peek() -> str | None:
        return tokens[index][1] if index < len(tokens) else None

    def take(expected: str | None = None) -> tuple[str, str]:
        nonlocal index
        token = tokens[index]
        assert expected is None or token[1] == expected, f"expected {expected}, got {token[1]}"
        index += 1
        return token

    functions: dict[str, Callable[..., Any]] = {
        "success": lambda: not cancelled and all(n["result"] == "success" for n in needs.values()),
        "failure": lambda: any(n["result"] == "failure" for n in needs.values()),
        "cancelled": lambda: cancelled,
        "always": lambda: True,
        "contains": lambda haystack, needle: needle in haystack,
        "fromJSON": json.loads,
    }

    # Each step parses its part; `live` False parses without evaluating (the skipped side of a
    # short-circuit: `needs.x.result == 'success' && fromJSON(needs.x.outputs.list)` must not fail).
    def primary(live: bool) -> Any:
        kind, text = take()
        if text == "(":
            value = either(live)
            take(")")
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if peek() == "(":
            take("(")
            args = []
            while peek() != ")":
                args.append(either(live))
                if peek() == ",":
                    take(",")
            take(")")
            return functions[text](*args) if live else None
        head, *path = text.split(".")
        assert head == "needs", f"unsupported context {text}"
        value: Any = needs
        for part in path if live else []:
            value = value[part]
        return value

    def comparison(live: bool) -> Any:
        left = primary(live)
        if peek() in ("==", "!="):
            operator = take()[1]
            right = primary(live)
            return (left == right) == (operator == "==")
        return left

    def negation(live: bool) -> Any:
        if peek() == "!":
            take("!")
            return not negation(live)
        return comparison(live)

    def both(live: bool) -> Any:
        value = negation(live)
        while peek() == "&&":
            take("&&")
            right = negation(live and bool(value))
            value = value and right
        return value

    def either(live: bool = True) -> Any:
        value = both(live)
        while peek() == "||":
            take("||")
            right = both(live and not value)
            value = value or right
        return value

    result = either()
    assert index == len(tokens), f"unread tokens: {tokens[index:]}"
    return bool(result)


def test_if_evaluator() -> None:
    needs = {"a": {"result": "success", "outputs": {"list": '["x"]'}}}
    assert evaluate_if("contains(fromJSON(needs.a.outputs.list), 'x')", needs)
    assert not evaluate_if("contains(fromJSON(needs.a.outputs.list), 'y')", needs)
    assert not evaluate_if("needs.a.result == 'success'", {"a": {"result": "skipped"}})
    assert evaluate_if("!cancelled() && (needs.a.result == 'skipped' || false)", {"a": {"result": "skipped"}})
    assert not evaluate_if("always() && !cancelled()", needs, cancelled=True)
    # && and || short-circuit, as on GitHub: the unevaluated side may not even be valid.
    failed = {"a": {"result": "failure", "outputs": {"list": ""}}}
    assert not evaluate_if(
        "always() && needs.a.result == 'success' && fromJSON(needs.a.outputs.list)", failed
    )
    assert evaluate_if("always() && (needs.a.result == 'failure' || fromJSON(needs.a.outputs.list))", failed)


def simulate_deploy(
    stacks: list[str], *, discovery: str = "success", dev_outcome: str = "success", cancelled: bool = False
) -> dict[str, str]:
    """The result of each deploy.yml job: `ran` for prod, the given outcome for dev, or `skipped`."""
    jobs = deploy_jobs()
    (discovery_id,) = discovery_jobs("deploy.yml")
    dev_id, dev = job_for_stack("dev")
    prod_id, prod = job_for_stack("prod")
    results: dict[str, dict[str, Any]] = {
        discovery_id: {
            "result": discovery,
            "outputs": {"list": json.dumps(stacks) if discovery == "success" else ""},
        }
    }
    for job_id, job, outcome in ((dev_id, dev, dev_outcome), (prod_id, prod, "ran")):
        needs = {need: results[need] for need in needs_of(job)}
        assert set(needs) <= set(jobs)
        runs = evaluate_if(str(job.get("if", "success()")), needs, cancelled)
        results[job_id] = {"result": outcome if runs else "skipped", "outputs": {}}
    return {"dev": results[dev_id]["result"], "prod": results[prod_id]["result"]}


def test_deploy_order_with_a_local_dev_stack() -> None:
    # Today: dev is a kind stack, so its job is skipped, and that must not block prod.
    assert simulate_deploy(["prod"]) == {"dev": "skipped", "prod": "ran"}


def test_deploy_order_with_a_cluster_dev_stack() -> None:
    # Should dev move to a real cluster, prod again waits for a successful dev deploy.
    assert simulate_deploy(["dev", "prod"]) == {"dev": "success", "prod": "ran"}
    assert simulate_deploy(["dev", "prod"], dev_outcome="failure") == {"dev": "failure", "prod": "skipped"}
    assert simulate_deploy(["dev", "prod"], dev_outcome="cancelled")["prod"] == "skipped"


def test_deploy_stops_when_cancelled_or_discovery_failed() -> None:
    assert simulate_deploy(["prod"], cancelled=True)["prod"] == "skipped"
    assert simulate_deploy(["dev", "prod"], cancelled=True)["prod"] == "skipped"
    assert simulate_deploy([], discovery="failure") == {"dev": "skipped", "prod": "skipped"}
    assert simulate_deploy(["dev"]) == {"dev": "success", "prod": "skipped"}


def test_every_cluster_stack_has_a_deploy_job() -> None:
    for stack in cluster_stacks(ROOT):
        job_for_stack(stack)  # raises when deploy.yml would never deploy the stack


# --- The kind node image -----------------------------------------------------------------------------

# kind only guarantees a node image with the kind release whose notes publish it, by digest. kind
# v0.28.0 and v0.29.0 publish no Kubernetes 1.29 image; v0.27.0 publishes this one.
KIND_RELEASE = "v0.27.0"
KIND_NODE_IMAGE = (
    "kindest/node:v1.29.14@sha256:8703bd94ee24e51b778d5556ae310c6c0fa67d761fae6379c8e0bb480e6fea29"
)
# Kubernetes minors each Istio minor supports (istio.io/latest/docs/releases/supported-releases).
ISTIO_KUBERNETES = {"1.20": range(25, 30)}


def kubernetes_minor(version: str) -> int:
    match = re.fullmatch(r"v?1\.(\d+)(?:\.\d+)?", version)
    assert match, f"not a Kubernetes version: {version}"
    return int(match.group(1))


def test_kind_node_image_is_pinned_by_digest() -> None:
    nodes = load_yaml(KIND_CONFIG)["nodes"]
    for node in nodes:
        assert node.get("image") == KIND_NODE_IMAGE, f"{node['role']} node: pin {KIND_NODE_IMAGE}"
    assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", KIND_NODE_IMAGE)


def test_kind_node_image_suits_the_dev_stacks_istio() -> None:
    version = str(load_yaml(ROOT / "Pulumi.dev.yaml")["config"]["istio-mesh:istio"]["version"])
    istio_minor = ".".join(version.split(".")[:2])
    assert istio_minor in ISTIO_KUBERNETES, (
        f"the dev stack runs Istio {version}: add the Kubernetes minors it supports to ISTIO_KUBERNETES, "
        "and pin a kind node image (hack/kind-dev.yaml) and kind release (e2e.yml) in that range"
    )
    tag = KIND_NODE_IMAGE.split(":", 1)[1].split("@", 1)[0]
    assert kubernetes_minor(tag) in ISTIO_KUBERNETES[istio_minor]


def test_e2e_installs_the_kind_release_of_the_node_image() -> None:
    steps = workflow("e2e.yml")["jobs"]["e2e"]["steps"]
    kind_action = next(step for step in steps if str(step.get("uses", "")).startswith("helm/kind-action@"))
    assert kind_action["with"]["version"] == KIND_RELEASE
    assert kind_action["with"].get("install_only") is True, "hack/e2e.sh creates the cluster itself"
    # kubectl supports one minor version of skew with the API server.
    node_minor = kubernetes_minor(KIND_NODE_IMAGE.split(":", 1)[1].split("@", 1)[0])
    assert abs(kubernetes_minor(kind_action["with"]["kubectl_version"]) - node_minor) <= 1


def test_kind_node_image_override_still_works() -> None:
    script = E2E_SCRIPT.read_text()
    # `kind create cluster --image` replaces the image of every node of the config.
    assert re.search(
        r'kind create cluster --config "\$ROOT/hack/kind-dev\.yaml"[^\n]*\\\n[^\n]*'
        r'\$\{KIND_NODE_IMAGE:\+--image "\$KIND_NODE_IMAGE"\}',
        script,
    )
    e2e = workflow("e2e.yml")
    on = e2e.get("on", e2e.get(True))
    assert isinstance(on, dict)
    assert "kind-node-image" in on["workflow_dispatch"]["inputs"]
    run = next(step for step in e2e["jobs"]["e2e"]["steps"] if "hack/e2e.sh" in str(step.get("run", "")))
    assert run["env"]["KIND_NODE_IMAGE"] == "${{ inputs.kind-node-image }}"
