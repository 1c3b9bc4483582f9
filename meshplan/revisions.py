"""Render plans in child processes: two stacks side by side, or a stack as of another git revision.

The Pulumi SDK keeps its settings in process-wide state, so two renders at the same time need two
processes. Each child is `python -m meshplan show --json` of *this* checkout (cwd and PYTHONPATH
point at it), so a revision from before meshplan existed renders just as well; the engine puts the
rendered project's directory first on sys.path, so the child still runs that revision's components.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshplan import UserError
from meshplan.diff import PlanError, check_plan_shape

MESHPLAN_ROOT = Path(__file__).resolve().parents[1]
RENDER_TIMEOUT_SECONDS = 900

# Set by git hooks and wrappers; they would point our git commands at some other repository.
_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY")


class RevisionError(UserError):
    """A git revision that cannot be checked out, or a child render that failed; says which."""


@dataclass(frozen=True)
class RenderRequest:
    """One side of a diff to render in a child process: a project directory, a stack and its overrides."""

    # Prefixed to this side's errors when the child cannot know where it came from ("git:HEAD~1").
    label: str
    project_dir: Path
    stack: str
    stack_file: Path | None = None
    overrides: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # more `show` options, e.g. how charts are rendered

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "meshplan", "show", "--json"]
        args += ["--project-dir", str(self.project_dir), "--stack", self.stack]
        if self.stack_file is not None:
            args += ["--stack-file", str(self.stack_file)]
        for override in self.overrides:
            args += ["--config", override]
        return [*args, *self.options]


@dataclass(frozen=True)
class Rendered:
    """A child process's plan and the warnings the program logged while rendering it."""

    plan: dict[str, Any]
    stderr: str  # warnings the program logged while rendering


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(MESHPLAN_ROOT), env.get("PYTHONPATH")]))
    return env


def _error_text(stderr: str) -> str:
    lines = [line.removeprefix("meshplan: error: ") for line in stderr.strip().splitlines()]
    return "\n".join(lines) or "no error message"


def render_all(requests: Sequence[RenderRequest]) -> list[Rendered]:
    """Render every request at once, one child process each; plans in request order."""
    children: list[subprocess.Popen[str]] = []
    try:
        for request in requests:
            children.append(
                subprocess.Popen(
                    request.argv(),
                    cwd=MESHPLAN_ROOT,
                    env=_child_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    encoding="utf-8",
                )
            )
        results = []
        for request, child in zip(requests, children, strict=True):
            try:
                stdout, stderr = child.communicate(timeout=RENDER_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                raise RevisionError(
                    f"rendering stack {request.stack} took longer than {RENDER_TIMEOUT_SECONDS} s"
                ) from None
            prefix = f"{request.label}: " if request.label else ""
            if child.returncode != 0:
                raise RevisionError(prefix + _error_text(stderr))
            try:
                plan = check_plan_shape(json.loads(stdout), f"stack {request.stack}")
            except (json.JSONDecodeError, PlanError) as error:
                raise RevisionError(
                    f"{prefix}the render of stack {request.stack} printed no plan: {error}"
                ) from None
            results.append(Rendered(plan, stderr))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as error:
        raise RevisionError(f"cannot run git: {error.strerror}") from None
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()
        raise RevisionError(f"git {' '.join(args)} failed: {message[-1] if message else done.returncode}")
    return done.stdout.strip()


@dataclass(frozen=True)
class Checkout:
    """A git revision checked out in a temporary work tree, and where the repository's own tree is."""

    toplevel: Path  # the repository's work tree
    root: Path  # the temporary work tree of the revision
    commit: str

    def moved(self, path: Path) -> Path:
        """Where a file of the repository is in the revision's work tree; outside paths stay put."""
        resolved = path.resolve()
        if resolved.is_relative_to(self.toplevel):
            return self.root / resolved.relative_to(self.toplevel)
        return resolved


@contextlib.contextmanager
def checkout(project_dir: Path, rev: str) -> Iterator[Checkout]:
    """`rev` of the repository holding `project_dir`, in a temporary `git worktree`, removed afterwards."""
    label = f"git:{rev}"
    if not rev or rev.startswith("-"):
        raise RevisionError(f"{label}: expected a git revision after `git:`, e.g. git:HEAD~1 or git:main")
    try:
        toplevel = Path(_git(project_dir, "rev-parse", "--show-toplevel")).resolve()
    except RevisionError:
        raise RevisionError(f"{label}: {project_dir} is not inside a git work tree") from None
    try:
        commit = _git(toplevel, "rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
    except RevisionError:
        raise RevisionError(f"{label}: no such revision in {toplevel}") from None
    scratch = Path(tempfile.mkdtemp(prefix="meshplan-"))
    root = scratch / "tree"
    try:
        try:
            _git(toplevel, "worktree", "add", "--detach", "--quiet", str(root), commit)
        except RevisionError as error:
            raise RevisionError(f"{label}: {error}") from None
        try:
            yield Checkout(toplevel, root, commit)
        finally:
            try:
                _git(toplevel, "worktree", "remove", "--force", str(root))
            except RevisionError:
                # Delete the directory by hand, then let git forget the worktree it no longer finds.
                shutil.rmtree(scratch, ignore_errors=True)
                with contextlib.suppress(RevisionError):
                    _git(toplevel, "worktree", "prune")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
