"""`python -m meshplan`: show, diff, graph and check on the real program, offline.

Most tests call `meshplan.cli.main(argv)` in-process and read stdout/stderr with capsys; one runs the
real `python -m meshplan` in a subprocess. Every render uses the fixture addons, so nothing downloads.
Regenerate the golden files after an intended change to the graph with
`UPDATE_GOLDEN=1 pytest tests/test_meshplan.py`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import types
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshplan import cli
from meshplan.diff import changed_paths, diff_plans, key_path, stackless
from tests.harness import FIXTURE_ADDONS, GATEWAY_API_CONFIG, build

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"

# Dev runs Istio 1.20.x (the `app-labels` addon shape); prod 1.21+ (`k8s-labels`).
DEV_ADDONS = f"addons.source={FIXTURE_ADDONS / 'app-labels'}"
PROD_ADDONS = f"addons.source={FIXTURE_ADDONS / 'k8s-labels'}"
DEV = ("--project-dir", str(ROOT), "--stack", "dev", "--config", DEV_ADDONS, "--config", GATEWAY_API_CONFIG)
# Prod asks for Grafana's admin password as a secret the repository does not hold; any value does
# offline, and the program turns it into a secret, so it must never be printed either.
PROD_PASSWORD = "not-a-real-password-7f3a"
PROD = (
    "--project-dir", str(ROOT), "--stack", "prod", "--config", PROD_ADDONS,
    "--config", f"grafanaAdminPassword={PROD_PASSWORD}", "--config", GATEWAY_API_CONFIG,
)  # fmt: skip
KIALI_SERVICE = "kubernetes:yaml/v2:ConfigGroup$kubernetes:core/v1:Service::kiali:istio-system/kiali"
# Pulumi passphrase ciphertexts (made up): they must never be printed, not even in an error.
TOKEN_CIPHERTEXT = "v1:c2VjcmV0bm9uY2U=:Y2lwaGVydGV4dG9mdGhldG9rZW4="
PASSWORD_CIPHERTEXT = "v1:bm9uY2Vub25jZQ==:Y2lwaGVydGV4dHBhc3N3b3Jk"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def meshplan(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    capsys.readouterr()  # drop anything an earlier step of the test printed
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(encoding="utf-8"), (
        f"output differs from {path} (UPDATE_GOLDEN=1 rewrites it)"
    )


@pytest.fixture(autouse=True)
def empty_chart_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No chart in the cache: every plan is the same whatever the machine has rendered before."""
    monkeypatch.setenv("ISTIO_MESH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def dev_plan() -> dict[str, Any]:
    graph = build("dev")
    assert graph.error is None
    return graph.render.plan()


@pytest.fixture
def dev_plan_file(tmp_path: Path, dev_plan: dict[str, Any]) -> Path:
    """The dev plan as `show --json` saves it."""
    path = tmp_path / "dev-plan.json"
    path.write_text(json.dumps(dev_plan, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def resource(plan: Mapping[str, Any], suffix: str) -> Mapping[str, Any]:
    found = [r for r in plan["resources"] if r["urn"].endswith(suffix)]
    assert len(found) == 1, suffix
    return found[0]


# --- show ----------------------------------------------------------------------------------------


def test_show_text_matches_golden(capsys: pytest.CaptureFixture[str]) -> None:
    run = meshplan(capsys, "show", *DEV)
    assert run.code == 0, run.err
    check_golden("show-dev.txt", run.out)
    assert "needs: istiod" in run.out
    assert "nodePort: 30007 (port http 20001)" in run.out


def test_show_json_is_the_engine_plan_and_matches_golden(
    capsys: pytest.CaptureFixture[str], dev_plan: dict[str, Any]
) -> None:
    run = meshplan(capsys, "show", "--json", *DEV)
    assert run.code == 0, run.err
    # The engine's plan, and for each Release why its chart was not rendered (not in the cache).
    plan = run.json()
    rendered = plan.pop("rendered")
    assert plan == dev_plan
    releases = sorted(r["urn"] for r in dev_plan["resources"] if r["type"] == "kubernetes:helm.sh/v3:Release")
    assert sorted(rendered) == releases
    assert all(sorted(entry) == ["chart", "notRendered"] for entry in rendered.values())
    never = meshplan(capsys, "show", "--json", "--charts", "never", *DEV)
    assert never.out == json.dumps(dev_plan, indent=2, sort_keys=True) + "\n"
    check_golden("show-dev.json", run.out)
    again = meshplan(capsys, "show", "--json", *DEV)
    assert again.out == run.out


def test_show_marks_protect_and_reads_any_stack_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stack_file = tmp_path / "Pulumi.laptop.yaml"
    shutil.copyfile(ROOT / "Pulumi.dev.yaml", stack_file)
    run = meshplan(
        capsys,
        "show",
        "--project-dir",
        str(ROOT),
        "--stack-file",
        str(stack_file),
        "--config",
        DEV_ADDONS,
        "--config",
        "protect=true",
    )
    assert run.code == 0, run.err
    assert run.out.startswith("istio-mesh laptop: ")  # the stack's name comes from the file name
    assert "kubernetes:helm.sh/v3:Release istio-base [protect]" in run.out


# --- diff ----------------------------------------------------------------------------------------


def test_diff_one_node_port_is_one_path(
    capsys: pytest.CaptureFixture[str], dev_plan: dict[str, Any], dev_plan_file: Path
) -> None:
    ports = resource(dev_plan, KIALI_SERVICE)["inputs"]["spec"]["ports"]
    index = next(i for i, port in enumerate(ports) if port.get("nodePort") == 30007)
    change = ("--config", "dashboards.kiali.nodePort=30010", "--against", str(dev_plan_file))

    run = meshplan(capsys, "diff", "--json", *DEV, *change)
    assert run.code == 0, run.err
    result = run.json()
    assert result["create"] == [] and result["delete"] == []
    assert [u["urn"] for u in result["update"]] == [resource(dev_plan, KIALI_SERVICE)["urn"]]
    assert result["update"][0]["paths"] == [f"spec.ports[{index}].nodePort"]
    assert result["unchanged"] == len(dev_plan["resources"]) - 1

    text = meshplan(capsys, "diff", *DEV, *change).out
    assert (
        f"~ kubernetes:core/v1:Service kiali:istio-system/kiali\n    spec.ports[{index}].nodePort: 30007 → 30010\n"
        in text
    )
    assert text.endswith(
        f"0 to create, 1 to update, 0 to delete, {len(dev_plan['resources']) - 1} unchanged\n"
    )


def test_diff_new_injected_namespace_only_adds(
    capsys: pytest.CaptureFixture[str], dev_plan_file: Path
) -> None:
    run = meshplan(
        capsys,
        "diff",
        "--json",
        *DEV,
        "--config",
        "injection.namespaces=[default, shop]",
        "--against",
        str(dev_plan_file),
    )
    assert run.code == 0, run.err
    result = run.json()
    assert result["update"] == [] and result["delete"] == []
    created = [urn.rsplit("$", 1)[-1] for urn in result["create"]]
    assert created == [
        "kubernetes:core/v1:NamespacePatch::shop-injection",
        "pulumi-python:dynamic/istio-mesh:Command::shop-restart",
        "pulumi-python:dynamic/istio-mesh:Command::shop-uninject",
    ]

    text = meshplan(
        capsys,
        "diff",
        *DEV,
        "--config",
        "injection.namespaces=[default, shop]",
        "--against",
        str(dev_plan_file),
    ).out
    assert "+ kubernetes:core/v1:NamespacePatch shop-injection\n" in text
    assert "+ pulumi-python:dynamic/istio-mesh:Command shop-restart\n" in text
    assert not re.search(r"^[~-] ", text, re.MULTILINE)


def test_diff_dev_against_prod(capsys: pytest.CaptureFixture[str]) -> None:
    both = (
        "--shared-config", PROD_ADDONS, "--shared-config", f"grafanaAdminPassword={PROD_PASSWORD}",
        "--shared-config", GATEWAY_API_CONFIG, "--against", "prod",
    )  # fmt: skip
    run = meshplan(capsys, "diff", "--json", "--project-dir", str(ROOT), "--stack", "dev", *both)
    assert run.code == 0, run.err
    result = run.json()
    updates = {u["urn"].split("::", 1)[1]: u["paths"] for u in result["update"]}
    base = "istio-mesh::istio-mesh:index:Mesh$istio-mesh:index:ControlPlane$kubernetes:helm.sh/v3:Release::"
    assert "[protect]" in updates[base + "istio-base"]  # prod protects the CRDs, dev does not
    assert "version" in updates[base + "istiod"]
    # Matched without the stack name: the stack itself (`istio-mesh-dev` / `-prod`) is no re-parenting.
    assert not any("[parent]" in paths for paths in updates.values())
    assert all(urn.startswith("urn:pulumi:dev::") for urn in result["create"])
    assert all(urn.startswith("urn:pulumi:prod::") for urn in result["delete"])
    assert result["unchanged"] > 0

    text_run = meshplan(capsys, "diff", "--exit-code", "--project-dir", str(ROOT), "--stack", "dev", *both)
    assert text_run.code == 1
    assert "~ kubernetes:helm.sh/v3:Release istio-base\n    [protect]: true → false\n" in text_run.out
    assert PROD_PASSWORD not in text_run.out + text_run.err


def test_diff_against_a_saved_plan_without_changes(
    capsys: pytest.CaptureFixture[str], dev_plan_file: Path
) -> None:
    run = meshplan(capsys, "diff", "--exit-code", *DEV, "--against", str(dev_plan_file))
    assert run.code == 0, run.err
    count = len(json.loads(dev_plan_file.read_text())["resources"])
    assert run.out.endswith(f"\n0 to create, 0 to update, 0 to delete, {count} unchanged\n")


def test_diff_reports_options_as_bracketed_paths(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dev_plan: dict[str, Any]
) -> None:
    old = json.loads(json.dumps(dev_plan))
    kiali = next(r for r in old["resources"] if r["urn"].endswith(KIALI_SERVICE))
    namespace = next(r for r in old["resources"] if r["type"] == "kubernetes:core/v1:Namespace")
    assert kiali["dependsOn"] == []  # the Service waits through its ConfigGroup
    kiali["dependsOn"] = [namespace["urn"]]
    kiali["ignoreChanges"] = ["spec"]
    kiali["inputs"]["metadata"]["labels"]["istio.io/rev"] = "canary"
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps(old))
    run = meshplan(capsys, "diff", "--json", *DEV, "--against", str(saved))
    assert run.code == 0, run.err
    assert run.json()["update"] == [
        {
            "urn": kiali["urn"],
            "paths": ["[dependsOn]", "[ignoreChanges]", 'metadata.labels["istio.io/rev"]'],
        }
    ]


# --- graph ---------------------------------------------------------------------------------------


def _expected_edges(plan: Mapping[str, Any]) -> Counter[tuple[str, str]]:
    ids = {r["urn"]: f"n{i}" for i, r in enumerate(sorted(plan["resources"], key=lambda r: r["urn"]))}
    return Counter((ids[dep], ids[r["urn"]]) for r in plan["resources"] for dep in r["dependsOn"])


def test_graph_mermaid_draws_every_dependency_once(
    capsys: pytest.CaptureFixture[str], dev_plan: dict[str, Any]
) -> None:
    run = meshplan(capsys, "graph", *DEV)
    assert run.code == 0, run.err
    assert run.out.startswith("flowchart LR\n")
    edges = Counter(re.findall(r"^\s*(n\d+) --> (n\d+)$", run.out, re.MULTILINE))
    assert edges == _expected_edges(dev_plan)
    assert set(edges.values()) == {1}
    # Every resource is drawn exactly once, as a node or as the subgraph of a component.
    drawn = Counter(re.findall(r"^\s*(?:subgraph )?(n\d+) ?\[", run.out, re.MULTILINE))
    assert drawn == Counter(f"n{i}" for i in range(len(dev_plan["resources"])))
    assert '["Release<br/>istiod"]' in run.out


def test_graph_dot_draws_every_dependency_once(
    capsys: pytest.CaptureFixture[str], dev_plan: dict[str, Any]
) -> None:
    run = meshplan(capsys, "graph", "--format", "dot", *DEV)
    assert run.code == 0, run.err
    assert run.out.startswith('digraph "istio-mesh/dev" {\n') and run.out.endswith("}\n")
    edges = Counter(re.findall(r"^\s*(n\d+) -> (n\d+);$", run.out, re.MULTILINE))
    assert edges == _expected_edges(dev_plan)
    assert set(edges.values()) == {1}


# --- secrets -------------------------------------------------------------------------------------


def _secret_stack_file(directory: Path) -> Path:
    """The dev stack plus a `secure:` istio value and a `secure:` Grafana password."""
    data = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    config = data["config"]
    config["istio-mesh:istio"]["values"] = {"pilot": {"env": {"PILOT_TOKEN": {"secure": TOKEN_CIPHERTEXT}}}}
    config["istio-mesh:grafanaAdminPassword"] = {"secure": PASSWORD_CIPHERTEXT}
    path = directory / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_secrets_are_masked_everywhere(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dev_plan_file: Path
) -> None:
    stack = (
        "--project-dir",
        str(ROOT),
        "--stack-file",
        str(_secret_stack_file(tmp_path)),
        "--config",
        DEV_ADDONS,
    )
    runs = {
        "show": meshplan(capsys, "show", *stack),
        "show --json": meshplan(capsys, "show", "--json", *stack),
        "graph": meshplan(capsys, "graph", *stack),
        "diff": meshplan(capsys, "diff", *stack, "--against", str(dev_plan_file)),
        "diff --json": meshplan(capsys, "diff", "--json", *stack, "--against", str(dev_plan_file)),
    }
    for verb, run in runs.items():
        assert run.code == 0, (verb, run.err)
        for ciphertext in (TOKEN_CIPHERTEXT, PASSWORD_CIPHERTEXT):
            assert ciphertext not in run.out + run.err, verb
            assert ciphertext.split(":")[2] not in run.out + run.err, verb

    plan = runs["show --json"].json()
    istiod = resource(plan, "Release::istiod")
    assert istiod["inputs"]["values"]["pilot"]["env"] == {"PILOT_TOKEN": "[secret]"}
    assert "values.pilot.env: (none) → [secret]" in runs["diff"].out
    assert "values.pilot.env" in json.dumps(runs["diff --json"].json())


def test_secrets_are_masked_in_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "Pulumi.dev.yaml"
    broken.write_text(f"config:\n  istio-mesh:grafanaAdminPassword:\n    secure: {PASSWORD_CIPHERTEXT}: [\n")
    run = meshplan(capsys, "show", "--project-dir", str(ROOT), "--stack-file", str(broken))
    assert run.code == 2
    assert "is not valid YAML" in run.err
    assert "Traceback" not in run.err
    # The parser quotes the line it stopped at, cut short; not even a piece of the ciphertext shows.
    for piece in PASSWORD_CIPHERTEXT.split(":")[1:]:
        assert piece not in run.err


def test_redactor_masks_ciphertexts_not_ordinary_words(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(
        "config:\n"
        f"  istio-mesh:grafanaAdminPassword:\n    secure: {PASSWORD_CIPHERTEXT}\n"
        "  istio-mesh:istio:\n    values: {tls: {secure: false}}\n"
    )
    redact = cli.Redactor()
    redact.add_stack_file(stack_file)
    assert redact(f"a {PASSWORD_CIPHERTEXT} b") == "a [secret] b"
    assert redact("...bm9uY2Vub25jZQ==:Y2lwaGVy") == "...[secret]:[secret]"
    assert redact("secure: false, profile: default") == "secure: false, profile: default"


# --- git:REV -------------------------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    identity = [
        "-c",
        "user.name=meshplan test",
        "-c",
        "user.email=test@example.invalid",
        "-c",
        "commit.gpgsign=false",
    ]
    done = subprocess.run(
        ["git", *identity, *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_diff_against_git_revision(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    # The project's files (tracked, and new ones not yet committed), but no meshplan: an old revision
    # renders with this checkout's meshplan.
    listed = _git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not name.startswith(("meshplan/", "tests/")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "-m", "before")
    stack_file = repo / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("nodePort: 30009", "nodePort: 30011"))
    _git(repo, "commit", "--quiet", "-am", "prometheus on 30011")

    args = (
        "--project-dir",
        str(repo),
        "--stack",
        "dev",
        "--shared-config",
        DEV_ADDONS,
        "--against",
        "git:HEAD~1",
    )
    run = meshplan(capsys, "diff", "--json", *args)
    assert run.code == 0, run.err
    result = run.json()
    assert result["create"] == [] and result["delete"] == []
    assert len(result["update"]) == 1
    assert result["update"][0]["urn"].endswith(
        "kubernetes:core/v1:Service::prometheus:istio-system/prometheus"
    )
    assert result["update"][0]["paths"] == ["spec.ports[0].nodePort"]

    text = meshplan(capsys, "diff", "--exit-code", *args)
    assert text.code == 1
    assert "spec.ports[0].nodePort: 30009 → 30011" in text.out
    assert text.out.startswith("stack dev against git:HEAD~1 (stack dev)\n")
    # The temporary worktree is gone again.
    assert _git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1

    unknown = meshplan(
        capsys, "diff", "--project-dir", str(repo), "--stack", "dev", "--against", "git:no-such-rev"
    )
    assert unknown.code == 2
    assert "git:no-such-rev: no such revision" in unknown.err


# --- exit codes and errors -----------------------------------------------------------------------


def test_config_error_exits_2_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    run = meshplan(capsys, "show", *DEV, "--config", "istio.version=1.19.0")
    assert run.code == 2
    assert run.out == ""
    assert "istio.version" in run.err and "Traceback" not in run.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("diff", *DEV, "--against", "no-such-stack"), "--against no-such-stack"),
        (("diff", *DEV, "--against", "git:"), "expected a git revision"),
        (("show", "--project-dir", str(ROOT), "--stack", "staging"), "no stack file"),
        (("show", "--project-dir", str(ROOT)), "--stack is required"),
        (("show", *DEV, "--config", "nonsense"), "expected KEY=VALUE"),
        (("show", "--project-dir", "/nonexistent", "--stack", "dev"), "not a Pulumi project"),
        # Neither the current directory nor any above it is a project.
        (("show", "--stack", "dev"), "no Pulumi.yaml in"),
        (("graph", *DEV, "--format", "svg"), "invalid choice"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_mistakes_exit_2_without_traceback(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT.parent)  # not in the project: `--project-dir` defaults to the one around here
    run = meshplan(capsys, *argv)
    assert run.code == 2
    assert "Traceback" not in run.err
    if message is not None:
        assert message in run.err


def test_bad_plan_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    not_json = tmp_path / "plan.json"
    not_json.write_text("{")
    assert "is not JSON" in meshplan(capsys, "diff", *DEV, "--against", str(not_json)).err
    not_plan = tmp_path / "other.json"
    not_plan.write_text('{"resources": [{"urn": 1}]}')
    run = meshplan(capsys, "diff", *DEV, "--against", str(not_plan))
    assert run.code == 2 and "resources[0]" in run.err


# --- check ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _FakeViolation:
    rule: str
    urn: str
    message: str


def _fake_policy(
    monkeypatch: pytest.MonkeyPatch, violations: list[str], advisory: frozenset[str] = frozenset()
) -> list[Any]:
    seen: list[Any] = []

    def check_plan(plan: Mapping[str, Any], today: Any) -> list[_FakeViolation]:
        seen.append((plan, today))
        return [_FakeViolation(*line.split(": ", 2)) for line in violations]

    rules = types.ModuleType("policy.rules")
    rules.check_plan = check_plan  # type: ignore[attr-defined]
    rules.plan_context = lambda plan, today: "context"  # type: ignore[attr-defined]
    rules.is_advisory = lambda rule, context: rule in advisory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "policy.rules", rules)
    return seen


def test_check_prints_violations_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _fake_policy(monkeypatch, ["rule-a: urn:x: one", "rule-b: urn:y: two"])
    run = meshplan(capsys, "check", *DEV, "--today", "2025-01-31")
    assert (run.code, run.out) == (1, "rule-a: urn:x: one\nrule-b: urn:y: two\n")
    plan, today = seen[0]
    assert today.isoformat() == "2025-01-31"
    assert plan["stack"] == "dev" and plan["resources"]


def test_check_with_only_advisory_violations_warns_and_exits_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_policy(monkeypatch, ["rule-a: urn:x: one"], advisory=frozenset({"rule-a"}))
    run = meshplan(capsys, "check", *DEV)
    assert (run.code, run.out) == (0, "advisory: rule-a: urn:x: one\n")


def test_one_mandatory_violation_fails_the_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_policy(monkeypatch, ["rule-a: urn:x: one", "rule-b: urn:y: two"], advisory=frozenset({"rule-a"}))
    run = meshplan(capsys, "check", *DEV)
    assert (run.code, run.out) == (1, "advisory: rule-a: urn:x: one\nrule-b: urn:y: two\n")


def test_check_without_violations_exits_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_policy(monkeypatch, [])
    run = meshplan(capsys, "check", *DEV)
    assert (run.code, run.out) == (0, "no policy violations\n")


def test_check_with_the_real_rules_warns_on_the_hand_made_dev_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Istio 1.20.8 is out of support and Kiali is anonymous on a NodePort: advisory off production.
    run = meshplan(capsys, "check", *DEV, "--today", "2026-11-25")
    assert run.code == 0, run.err
    # One line per finding, the resources by type and name, the four Releases' lines folded.
    assert run.out.splitlines() == [
        "advisory: istio-version-supported: Release istio-base, istio-egressgateway, istio-ingressgateway, "
        "istiod: Istio 1.20.8 (chart {base|gateway|istiod}) is out of support: 1.20 went out of support on "
        "2024-06-21 (six weeks after 1.22.0 of 2024-05-10); on 2026-11-25 use 1.30 or newer",
        "advisory: kiali-not-anonymous-when-exposed: Service kiali:istio-system/kiali: Kiali Service "
        "istio-system/kiali has type NodePort and ConfigMap istio-system/kiali sets auth.strategy anonymous; "
        "an exposed Kiali needs token, openid, openshift or header",
    ]


def test_check_with_the_real_rules_fails_an_exposed_production_dashboard(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = meshplan(
        capsys,
        "check",
        *PROD,
        "--config",
        "dashboards.prometheus.type=NodePort",
        "--config",
        "dashboards.prometheus.nodePort=30100",
        "--today",
        "2026-11-25",
    )
    assert run.code == 1, run.err
    assert run.out == (
        "production-dashboards-internal: Service prometheus:istio-system/prometheus: dashboard Service "
        "istio-system/prometheus has type NodePort; on production dashboards must be ClusterIP\n"
    )


# --- the plan comparison itself ------------------------------------------------------------------


def test_paths_quote_keys_with_dots_and_slashes() -> None:
    assert key_path("metadata.labels", "istio.io/rev") == 'metadata.labels["istio.io/rev"]'
    assert key_path("metadata.labels", "istio-injection") == "metadata.labels.istio-injection"
    assert key_path("", "spec") == "spec"
    old = {"spec": {"ports": [{"nodePort": 1}, {"nodePort": 2}]}, "a": True}
    new = {"spec": {"ports": [{"nodePort": 1}]}, "a": 1}
    assert [p for p, _, _ in changed_paths(old, new)] == ["a", "spec.ports[1]"]


def test_urns_compare_without_the_stack() -> None:
    assert stackless("urn:pulumi:dev::istio-mesh::pulumi:providers:kubernetes::cluster") == (
        "istio-mesh::pulumi:providers:kubernetes::cluster"
    )
    assert stackless("urn:pulumi:dev::istio-mesh::pulumi:pulumi:Stack::istio-mesh-dev") == stackless(
        "urn:pulumi:prod::istio-mesh::pulumi:pulumi:Stack::istio-mesh-prod"
    )


# --- the real command ----------------------------------------------------------------------------


def test_python_dash_m_meshplan_smoke() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    show = subprocess.run(
        [sys.executable, "-m", "meshplan", "show", "--stack", "dev", "--config", DEV_ADDONS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert show.returncode == 0, show.stderr
    assert show.stdout == (GOLDEN / "show-dev.txt").read_text(encoding="utf-8")
    bad = subprocess.run(
        [sys.executable, "-m", "meshplan", "show", "--stack", "dev", "--config", "istio.version=1.19.0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "istio.version" in bad.stderr and "Traceback" not in bad.stderr


def _resource(name: str, depends_on: list[str], inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:dev::istio-mesh::kubernetes:core/v1:ConfigMap::{name}",
        "type": "kubernetes:core/v1:ConfigMap",
        "name": name,
        "parent": None,
        "dependsOn": depends_on,
        "provider": None,
        "protect": False,
        "retainOnDelete": False,
        "ignoreChanges": [],
        "inputs": inputs,
    }


def test_a_change_of_dependencies_alone_is_no_update_as_in_pulumi_preview() -> None:
    old = {"resources": [_resource("a", ["urn:pulumi:dev::istio-mesh::x:y:Z::one"], {"data": {"k": "1"}})]}
    moved = {"resources": [_resource("a", ["urn:pulumi:dev::istio-mesh::x:y:Z::two"], {"data": {"k": "1"}})]}
    diff = diff_plans(old, moved)
    assert (diff.resources, diff.unchanged) == ([], 1)
    # With a real change, the new edges are shown with it.
    changed = {
        "resources": [_resource("a", ["urn:pulumi:dev::istio-mesh::x:y:Z::two"], {"data": {"k": "2"}})]
    }
    (update,) = diff_plans(old, changed).resources
    assert [c.path for c in update.changes] == ["[dependsOn]", "data.k"]


def _component(remote: bool, objs: list[dict[str, Any]]) -> dict[str, Any]:
    group = _resource("addon", [], {"objs": objs})
    return {**group, "type": "kubernetes:yaml/v2:ConfigGroup", "custom": False, "remote": remote}


def test_a_remote_components_own_inputs_are_not_diffed() -> None:
    # The provider's Construct call takes them; the change shows on the objects it constructs.
    old = {"resources": [_component(True, [{"kind": "ConfigMap", "data": {"k": "1"}}])]}
    new = {"resources": [_component(True, [{"kind": "ConfigMap", "data": {"k": "2"}}])]}
    assert (diff_plans(old, new).resources, diff_plans(old, new).unchanged) == ([], 1)
    # Its options still are, and a component the program registers itself diffs on its inputs.
    protected = {"resources": [{**new["resources"][0], "protect": True}]}
    (update,) = diff_plans(old, protected).resources
    assert [c.path for c in update.changes] == ["[protect]"]
    local_old = {"resources": [_component(False, [{"kind": "ConfigMap", "data": {"k": "1"}}])]}
    local_new = {"resources": [_component(False, [{"kind": "ConfigMap", "data": {"k": "2"}}])]}
    (update,) = diff_plans(local_old, local_new).resources
    assert [c.path for c in update.changes] == ["objs[0].data.k"]
