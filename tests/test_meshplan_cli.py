"""The newcomer's list (issue 11): one-side overrides, short check lines, the `meshplan` command,
the default stack, `make help`, YAML errors naming the file, versions kept as text, namespace typos,
no spurious errors after a top-level typo, and how to work offline when a source is unreachable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from meshplan import checks, cli
from meshplan.stacks import looks_like_project, parse_override
from tests.test_meshplan import DEV, DEV_ADDONS, PROD_ADDONS, meshplan

ROOT = Path(__file__).resolve().parents[1]
KIALI_NODE_PORT = "dashboards.kiali.nodePort=30010"


# --- one side of a diff --------------------------------------------------------------------------


def test_config_changes_only_the_new_side_of_a_diff(capsys: pytest.CaptureFixture[str]) -> None:
    base = ("--project-dir", str(ROOT), "--stack", "dev", "--shared-config", DEV_ADDONS, "--against", "dev")
    new_side = meshplan(capsys, "diff", *base, "--config", KIALI_NODE_PORT)
    assert new_side.code == 0, new_side.err
    assert "    spec.ports[0].nodePort: 30007 → 30010\n" in new_side.out
    assert "0 to create, 1 to update, 0 to delete, " in new_side.out

    old_side = meshplan(capsys, "diff", *base, "--against-config", KIALI_NODE_PORT)
    assert "    spec.ports[0].nodePort: 30010 → 30007\n" in old_side.out

    both = meshplan(capsys, "diff", *base, "--config", KIALI_NODE_PORT, "--against-config", KIALI_NODE_PORT)
    assert "0 to create, 0 to update, 0 to delete, " in both.out


def test_against_config_needs_a_side_with_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(meshplan(capsys, "show", "--json", *DEV).out)
    run = meshplan(capsys, "diff", *DEV, "--against", str(plan), "--against-config", KIALI_NODE_PORT)
    assert run.code == 2
    assert f"--against-config: --against {plan} is a saved plan, which has no config" in run.err


# --- check lines ---------------------------------------------------------------------------------


def test_findings_fold_when_only_the_resource_differs() -> None:
    release = "urn:pulumi:dev::istio-mesh::istio-mesh:index:ControlPlane$kubernetes:helm.sh/v3:Release::"
    findings = [
        checks.Finding("old", True, release + "istio-base", "Istio 1.20.8 (chart base) is out of support"),
        checks.Finding("old", True, release + "istiod", "Istio 1.20.8 (chart istiod) is out of support"),
        checks.Finding("old", False, release + "istiod", "Istio 1.20.8 (chart istiod) is out of support"),
        checks.Finding("ports", False, "urn:pulumi:dev::istio-mesh::pulumi:providers:kubernetes::c", "same"),
        checks.Finding("ports", False, release + "istiod", "same"),
        checks.Finding("other", False, release + "a", "one thing is wrong here"),
        checks.Finding("other", False, release + "b", "something else entirely"),
    ]
    assert checks.format_findings(findings) == [
        "advisory: old: Release istio-base, istiod: Istio 1.20.8 (chart {base|istiod}) is out of support",
        "old: Release istiod: Istio 1.20.8 (chart istiod) is out of support",
        "ports: provider:kubernetes c, Release istiod: same",
        "other: Release a: one thing is wrong here",
        "other: Release b: something else entirely",
    ]


# --- the `meshplan` command ----------------------------------------------------------------------


def test_the_project_installs_a_meshplan_command() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"meshplan": "meshplan.cli:run"}
    assert project["tool"]["setuptools"]["packages"] == ["meshplan"]


def test_the_command_works_from_any_directory(tmp_path: Path) -> None:
    # What the installed script runs (`meshplan.cli:run`), from a directory outside the project.
    installed = shutil.which("meshplan", path=str(Path(sys.executable).parent))
    command = [installed] if installed else [sys.executable, "-c", "from meshplan.cli import run; run()"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*command, "show", "--project-dir", str(ROOT), "--stack", "dev", "--config", DEV_ADDONS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("istio-mesh dev: ")


def test_the_project_dir_is_found_from_a_subdirectory(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT / "components")
    run = meshplan(capsys, "show", "--stack", "dev", "--config", DEV_ADDONS)
    assert run.code == 0, run.err
    assert run.out.startswith("istio-mesh dev: ")


# --- --stack -------------------------------------------------------------------------------------


def _project_with(tmp_path: Path, *stacks: str) -> Path:
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "components", tmp_path / "components")
    for stack in stacks:
        shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / f"Pulumi.{stack}.yaml")
    return tmp_path


def test_the_only_stack_is_the_default(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    project = _project_with(tmp_path, "laptop")
    run = meshplan(capsys, "show", "--project-dir", str(project), "--config", DEV_ADDONS)
    assert run.code == 0, run.err
    assert run.out.startswith("istio-mesh laptop: ")


@pytest.mark.parametrize(
    ("stacks", "argv", "message"),
    [
        (("a", "b"), (), "--stack is required when a project has several stacks; stacks: a, b"),
        ((), (), "has no stack file Pulumi.<stack>.yaml"),
        (("a", "b"), ("--stack", "c"), "--stack c: no stack file Pulumi.c.yaml in {project}; stacks: a, b"),
    ],
)
def test_a_missing_stack_lists_the_stacks(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    stacks: tuple[str, ...],
    argv: tuple[str, ...],
    message: str,
) -> None:
    project = _project_with(tmp_path, *stacks)
    run = meshplan(capsys, "show", "--project-dir", str(project), *argv)
    assert run.code == 2
    assert message.format(project=project) in run.err


def test_help_says_when_stack_is_needed(capsys: pytest.CaptureFixture[str]) -> None:
    run = meshplan(capsys, "show", "--help")
    assert run.code == 0
    assert "needed only when it has several stacks" in " ".join(run.out.split())


# --- make help -----------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_help_lists_the_targets() -> None:
    done = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert "  check          The README's test command: linters, type checks and every offline test." in lines
    assert "  lint           runs: ruff check ." in lines
    assert "  venv           needs: $(BIN)/python" in lines
    assert any(line.startswith("  help           Lists the targets, each with") for line in lines)


# --- stack files and --config values -------------------------------------------------------------


def test_yaml_errors_name_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "Pulumi.dev.yaml"
    broken.write_text("config:\n  istio-mesh:cluster:\n    context: [a\n")
    run = meshplan(capsys, "show", "--project-dir", str(ROOT), "--stack-file", str(broken))
    assert run.code == 2
    assert run.err == (
        f"meshplan: error: {broken} is not valid YAML: while parsing a flow sequence\n"
        f'  in "{broken}", line 3, column 14\n'
        "did not find expected ',' or ']'\n"
        f'  in "{broken}", line 4, column 1\n'
    )
    run = meshplan(capsys, "show", *DEV, "--config", "istio.values={a")
    assert 'in "--config istio.values", line 1, column 1' in run.err
    assert "<unicode string>" not in run.err


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("istio.version=1.20", "1.20"),
        ("istio.revisions.canary.version=1.30", "1.30"),
        ("istio.version=1.20.8", "1.20.8"),
        ("dashboards.kiali.nodePort=30010", 30010),
        ("protect=true", True),
        ("istio.values.pilot.traceSampling=1.50", 1.5),  # not a version: YAML's number
    ],
)
def test_version_values_keep_their_text(text: str, value: object) -> None:
    assert parse_override(text)[1] == value


def test_a_short_version_is_reported_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    run = meshplan(capsys, "show", *DEV, "--config", "istio.version=1.20")
    assert run.code == 2
    assert "  - istio.version: got '1.20'; an exact chart version x.y.z, 1.20.0 or newer\n" in run.err


@pytest.mark.parametrize(
    ("namespace", "typo"),
    [
        ("istiomesh", True),
        ("istio_mesh", True),
        ("Istio-Mesh", True),
        ("isito-mesh", True),
        ("istio-mesh", False),
        ("kubernetes", False),
        ("istio", False),
        ("myapp", False),
    ],
)
def test_namespaces_that_look_like_the_projects(namespace: str, typo: bool) -> None:
    assert looks_like_project(namespace) is typo


def test_a_key_in_a_misspelt_namespace_is_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(
        (ROOT / "Pulumi.dev.yaml").read_text()
        + "  istiomesh:security:\n    mtls: STRICT\n  kubernetes:namespace: apps\n"
    )
    run = meshplan(
        capsys, "show", "--project-dir", str(ROOT), "--stack-file", str(stack_file), "--config", DEV_ADDONS
    )
    assert run.code == 0, run.err
    assert run.err == (
        f"warning: {stack_file}: config key istiomesh:security is in namespace 'istiomesh', which the "
        "program ignores; did you mean istio-mesh:security?\n"
    )


def test_a_top_level_typo_is_the_only_problem(capsys: pytest.CaptureFixture[str]) -> None:
    # Prod uses Grafana's password login; the misspelt key hides nothing that needs the password.
    run = meshplan(
        capsys,
        "show",
        "--project-dir",
        str(ROOT),
        "--stack",
        "prod",
        "--config",
        PROD_ADDONS,
        "--config",
        "dashbords.kiali.type=ClusterIP",
    )
    assert run.code == 2
    assert run.err == (
        "meshplan: error: stack prod: invalid stack configuration (1 problem(s)):\n"
        "  - dashbords: got {'kiali': {'type': 'ClusterIP'}}; unknown key; allowed keys: cluster, istio, "
        "injection, addons, dashboards, protect, adopt, environment, security, grafanaAdminPassword, "
        "kialiSigningKey, gatewayApi\n"
    )


# --- unreachable sources -------------------------------------------------------------------------


def test_an_unreachable_source_says_how_to_work_offline() -> None:
    message = (
        "stack dev: Could not download addon 'kiali' (Istio 1.20.8) from https://x/kiali.yaml: timed out."
    )
    assert cli.with_offline_hint(message) == (
        f"{message}\nto render offline, point the sources at local directories: --config addons.source=DIR "
        "(a directory holding <addon>.yaml, such as istio-<version>/samples/addons) and, for the charts, "
        "--chart-dir DIR (a directory of <chart>-<version>.tgz); istio.chartRepository takes a Helm "
        "repository URL, e.g. http://127.0.0.1:PORT of `python3 -m http.server` in such a directory; "
        "--config gatewayApi.source=DIR (a directory holding <channel>-install.yaml of the stack's Gateway "
        "API release, {version} allowed in DIR), or gatewayApi.enabled=false"
    )
    assert (
        cli.with_offline_hint("stack dev: istio.version: got '1.2'") == "stack dev: istio.version: got '1.2'"
    )


def test_a_refused_download_ends_with_the_offline_hint(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 on the loopback: nothing listens, so the download is refused at once, with no network.
    run = meshplan(
        capsys,
        "show",
        "--project-dir",
        str(ROOT),
        "--stack",
        "dev",
        "--config",
        "addons.source=http://127.0.0.1:9/{version}",
    )
    assert run.code == 2
    assert run.err.rstrip("\n").endswith(cli.OFFLINE_HINT)


def test_an_unreachable_gateway_api_release_ends_with_the_offline_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ISTIO_MESH_CACHE_DIR", str(tmp_path))  # nothing cached: it must download
    run = meshplan(
        capsys,
        "show",
        "--project-dir",
        str(ROOT),
        "--stack",
        "prod",
        "--config",
        "addons.source=tests/fixtures/addons/k8s-labels",
        "--config",
        "gatewayApi.source=http://127.0.0.1:9/{version}.zip",
    )
    assert run.code == 2
    assert "Could not download the Gateway API v1.5.1 from http://127.0.0.1:9/v1.5.1.zip" in run.err
    assert run.err.rstrip("\n").endswith(cli.OFFLINE_HINT)
