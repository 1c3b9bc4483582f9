"""The mock engine's own costs: importing it (as `meshplan diff`'s parent does) loads no SDK module,
and a render leaves the garbage collector as it found it."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from meshplan import engine
from tests.harness import FIXTURE_ADDONS, build

ROOT = Path(__file__).resolve().parents[1]
SDK_PACKAGES = ("pulumi", "pulumi_kubernetes", "pulumi_command", "google.protobuf", "grpc")


def _sdk_modules(code: str) -> list[str]:
    """The SDK modules loaded by a fresh interpreter after running `code`."""
    script = code + textwrap.dedent(
        f"""
        import json, sys
        prefixes = {SDK_PACKAGES!r}
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in prefixes
                                or m.startswith(tuple(p + "." for p in prefixes)))))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_meshplan_loads_no_sdk_module() -> None:
    assert _sdk_modules("import meshplan.cli, meshplan.engine, meshplan.stacks, meshplan.diff\n") == []


def test_diff_of_two_stacks_renders_both_in_children_without_the_sdk() -> None:
    code = textwrap.dedent(
        f"""
        import contextlib, io
        from meshplan import cli
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = cli.main(["diff", "--json", "--project-dir", {str(ROOT)!r}, "--stack", "dev",
                             "--config", "addons.source={FIXTURE_ADDONS / "k8s-labels"}",
                             "--config", "grafanaAdminPassword=x", "--against", "prod"])
        assert code == 0, code
        assert json.loads(out.getvalue())["update"]
        """
    )
    assert _sdk_modules("import json\n" + code) == []


# --- the garbage collector -------------------------------------------------------------------------


def test_render_leaves_the_collector_as_it_found_it() -> None:
    assert gc.get_freeze_count() == 0
    build("dev")
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_render_keeps_a_callers_frozen_objects_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        build("dev")
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_raw_inputs_reveal_what_inputs_mask() -> None:
    secret = next(r for r in build("prod").resources if r.type == "kubernetes:core/v1:Secret")
    assert engine.SECRET in json.dumps(secret.inputs)
    assert engine.SECRET not in json.dumps(secret.raw_inputs)
    assert secret.raw_inputs is secret.raw_inputs  # worked out once


def test_each_render_has_its_own_stack_and_exports() -> None:
    prod = build("prod", istio={"revisions": {"a": {"version": "1.29.6"}}})
    assert "revisions" in prod.outputs
    dev = build("dev")
    assert "revisions" not in dev.outputs
    top_level = [r.parent for r in dev.resources if r.type == "istio-mesh:index:Mesh"]
    assert top_level == ["urn:pulumi:dev::istio-mesh::pulumi:pulumi:Stack::istio-mesh-dev"]
